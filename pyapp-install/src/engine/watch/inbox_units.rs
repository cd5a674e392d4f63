//! `pyapp-install watch --install-units DIR`: the two units that make systemd the watcher
//! (FORMAT.md 10.4). `pyapp-inbox.path` waits for `DIR/*.pyapp` (the files `watch` takes:
//! not dotfiles, not `*.part`, nothing in `done/` or `failed/`) and starts
//! `pyapp-inbox.service`, a oneshot running this program's `watch DIR` with the same
//! options. When the service exits while a bundle is still there, systemd starts it again.
//! Values go through [`crate::system::units::escape`], so a DIR with spaces reaches the program whole.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::app::ports::PortRange;
use crate::app::tree::DEFAULT_APPS_DIR;
use crate::engine::install::DEFAULT_MAX_INSTALLED_SIZE;
use crate::engine::watch::WatchRequest;
use crate::engine::Target;
use crate::progress::Progress;
use crate::system::systemd::{existing_unit_text, Systemd};
use crate::system::units::escape::{self, EscapeError};
use crate::system::units::UnitFile;
use pyapp_bundle::layout::BUNDLE_SUFFIX;
use pyapp_cli::Refusal;

use super::inbox::check_inbox_dir;

/// The path unit, enabled; it starts [`SERVICE_UNIT`].
pub const PATH_UNIT: &str = "pyapp-inbox.path";
/// The oneshot service running `pyapp-install watch DIR`.
pub const SERVICE_UNIT: &str = "pyapp-inbox.service";

/// The line that marks the two files as written by this command (replaced freely; any
/// other file of those names is refused).
const MARKER: &str = "# pyapp-inbox";

/// What `watch --install-units` did, as `--json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UnitsReport {
    /// `written` (new or different units) or `unchanged`.
    pub action: &'static str,
    pub units: [&'static str; 2],
    pub unit_dir: String,
    pub inbox: String,
    /// The service's command line, as the program will receive it.
    pub command: Vec<String>,
    /// Whether systemd was running, so the path unit was enabled and started.
    pub enabled: bool,
}

/// Writes, and on a running systemd enables, the units that run `request` whenever a
/// bundle is dropped into its inbox.
pub fn install_units(request: &WatchRequest, target: &Target) -> Result<UnitsReport> {
    let output = target.progress();
    let inbox = std::path::absolute(&request.dir)
        .with_context(|| format!("failed to make `{}` absolute", request.dir.display()))?;
    let program = std::env::current_exe().context("failed to find this program's own path")?;
    let command = command_line(&program, &inbox, target, request)?;
    let (program_text, words) = command.split_first().context("an empty command line")?;
    let units = generate(&inbox, program_text, words).map_err(|err| {
        Refusal::new(format!("cannot write the inbox's units: {err}"))
            .with_hint("choose an inbox directory (and paths) of plain characters")
    })?;

    let on_disk = target.root.join(inbox.strip_prefix("/").unwrap_or(&inbox));
    if !pyapp_fs::exists(&on_disk)? {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&on_disk)
            .with_context(|| format!("failed to create `{}`", on_disk.display()))?;
        output.note(&format!(
            "created the inbox {} (root's, 0755: let an upload group write it with chgrp \
             and chmod g+w)",
            on_disk.display()
        ));
    }
    check_inbox_dir(&on_disk)?;

    let systemd = &target.systemd;
    let changed = write_marked_units(systemd, &units, MARKER, "watch")?;
    enable_path_unit(systemd, &units, PATH_UNIT, changed, output)?;
    output.note(&format!(
        "{} {PATH_UNIT} and {SERVICE_UNIT} in {}: bundles dropped into {} are installed{}",
        if changed { "wrote" } else { "unchanged:" },
        systemd.unit_dir().display(),
        inbox.display(),
        if systemd.is_running() {
            " from now on"
        } else {
            " once they are enabled"
        }
    ));
    Ok(UnitsReport {
        action: if changed { "written" } else { "unchanged" },
        units: [PATH_UNIT, SERVICE_UNIT],
        unit_dir: systemd.unit_dir().display().to_string(),
        inbox: inbox.display().to_string(),
        command,
        enabled: systemd.is_running(),
    })
}

/// The service's command: this program, the options that are not the defaults, `watch
/// DIR` and the watch options (paths made absolute: the service runs in `/`).
fn command_line(
    program: &Path,
    inbox: &Path,
    target: &Target,
    args: &WatchRequest,
) -> Result<Vec<String>> {
    let absolute = |path: &Path| -> Result<String> {
        let path = std::path::absolute(path)
            .with_context(|| format!("failed to make `{}` absolute", path.display()))?;
        Ok(path.display().to_string())
    };
    let mut command = vec![program.display().to_string()];
    let apps_dir = target.apps.runtime_path();
    if apps_dir != Path::new(DEFAULT_APPS_DIR) {
        command.push("--apps-dir".to_owned());
        command.push(apps_dir.display().to_string());
    }
    if target.port_range != PortRange::DEFAULT {
        command.push("--port-range".to_owned());
        command.push(target.port_range.to_string());
    }
    command.push("watch".to_owned());
    command.push(inbox.display().to_string());
    if args.allow_major {
        command.push("--allow-major".to_owned());
    }
    if args.allow_downgrade {
        command.push("--allow-downgrade".to_owned());
    }
    if let Some(python) = &args.python {
        command.push("--python".to_owned());
        command.push(absolute(python)?);
    }
    for key in &args.trusted_keys {
        command.push("--trusted-key".to_owned());
        command.push(absolute(key)?);
    }
    if args.compile_bytecode {
        command.push("--compile-bytecode".to_owned());
    }
    if args.max_installed_size != DEFAULT_MAX_INSTALLED_SIZE {
        command.push("--max-installed-size".to_owned());
        command.push(args.max_installed_size.to_string());
    }
    Ok(command)
}

/// The two unit files for the inbox `inbox` whose service runs `program` with `words`.
fn generate(inbox: &Path, program: &str, words: &[String]) -> Result<Vec<UnitFile>, EscapeError> {
    let inbox_text = inbox.display().to_string();
    let header = format!(
        "# Generated by pyapp-install watch --install-units: do not edit, running it again \
         replaces it.\n{MARKER}\n"
    );
    let description = escape::text(&format!(
        "pyapp inbox {inbox_text}: install the bundles dropped into it"
    ))?;
    let glob = format!("{}/*{BUNDLE_SUFFIX}", escape::glob_dir(&inbox_text)?);
    let path_unit = format!(
        "{header}[Unit]\nDescription={description}\n\n[Path]\nPathExistsGlob={glob}\n\
         Unit={SERVICE_UNIT}\n\n[Install]\nWantedBy=paths.target\n"
    );
    let mut exec = escape::exec_program(program)?;
    for word in words {
        exec.push(' ');
        exec.push_str(&escape::exec_word(word)?);
    }
    // Type=oneshot: no start timeout (an install may take long), and the path unit waits
    // for it to finish before it looks at the directory again.
    let service_unit = format!(
        "{header}[Unit]\nDescription={description}\n\n[Service]\nType=oneshot\nExecStart={exec}\n"
    );
    Ok(vec![
        UnitFile {
            name: PATH_UNIT.to_owned(),
            text: path_unit,
        },
        UnitFile {
            name: SERVICE_UNIT.to_owned(),
            text: service_unit,
        },
    ])
}

/// On a running systemd: reloads it when the units `changed`, enables and starts
/// `path_unit` (restarted when it changed, to take its new directives); otherwise says
/// what to run once systemd runs.
pub fn enable_path_unit(
    systemd: &Systemd,
    units: &[UnitFile],
    path_unit: &str,
    changed: bool,
    output: &dyn Progress,
) -> Result<()> {
    if systemd.is_running() {
        if changed {
            systemd.daemon_reload()?;
        }
        systemd.enable_now(&[path_unit.to_owned()])?;
        if changed {
            systemd.try_restart(&[path_unit.to_owned()])?;
        }
    } else if let Some(steps) = systemd.manual_steps(units) {
        output.note(&steps);
    }
    Ok(())
}

/// Writes `units` (each atomically, only when its text changed) into the unit directory;
/// a file of the same name that `pyapp-install VERB --install-units` did not write (its
/// `marker` line is missing: an admin's, a masked unit) is refused before anything is
/// written. Returns whether anything changed.
pub fn write_marked_units(
    systemd: &Systemd,
    units: &[UnitFile],
    marker: &str,
    verb: &str,
) -> Result<bool> {
    let dir = systemd.unit_dir();
    let mut to_write = Vec::new();
    for unit in units {
        let path = dir.join(&unit.name);
        match existing_unit_text(&path)? {
            Some(text) if text == unit.text => continue,
            Some(text) if !text.lines().take(5).any(|line| line == marker) => {
                return Err(Refusal::new(format!(
                    "`{}` exists and was not written by pyapp-install {verb}; refusing to \
                     replace it",
                    path.display()
                ))
                .with_hint(format!(
                    "move it away, then run `pyapp-install {verb} --install-units` again"
                ))
                .into())
            }
            _ => to_write.push((path, unit)),
        }
    }
    if !to_write.is_empty() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    }
    for (path, unit) in &to_write {
        pyapp_fs::write_atomic(path, unit.text.as_bytes(), 0o644)?;
    }
    Ok(!to_write.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    #[test]
    fn the_units_carry_the_inbox_and_the_command_whole() {
        let units = generate(
            Path::new("/srv/pyapp inbox/100%"),
            "/usr/local/bin/pyapp-install",
            &words(&[
                "watch",
                "/srv/pyapp inbox/100%",
                "--python",
                "/opt/py $3/bin/python3",
            ]),
        )
        .unwrap();
        let header = "# Generated by pyapp-install watch --install-units: do not edit, \
                      running it again replaces it.\n# pyapp-inbox\n";
        assert_eq!(units[0].name, "pyapp-inbox.path");
        assert_eq!(
            units[0].text,
            format!(
                "{header}[Unit]\nDescription=pyapp inbox /srv/pyapp inbox/100%%: install the \
                 bundles dropped into it\n\n[Path]\nPathExistsGlob=/srv/pyapp inbox/100%%/*.pyapp\n\
                 Unit=pyapp-inbox.service\n\n[Install]\nWantedBy=paths.target\n"
            )
        );
        assert!(units[0].is_enabled());
        assert_eq!(units[1].name, "pyapp-inbox.service");
        assert!(
            units[1].text.ends_with(
                "\n[Service]\nType=oneshot\nExecStart=\"/usr/local/bin/pyapp-install\" \
                 \"watch\" \"/srv/pyapp inbox/100%%\" \"--python\" \"/opt/py $$3/bin/python3\"\n"
            ),
            "{}",
            units[1].text
        );
        assert!(!units[1].is_enabled());
    }

    #[test]
    fn inboxes_units_cannot_carry_are_refused() {
        for inbox in ["/srv/in*", "/srv/a\nExecStartPre=/bin/sh", "/srv/in\\"] {
            let refused = generate(Path::new(inbox), "/bin/pyapp-install", &[]);
            assert!(refused.is_err(), "{inbox:?} accepted");
        }
    }

    #[test]
    fn units_not_written_by_watch_are_refused_and_ours_replaced() {
        let root = tempfile::tempdir().unwrap();
        let systemd = Systemd::detect(root.path());
        let units = generate(Path::new("/srv/in"), "/bin/pyapp-install", &[]).unwrap();
        assert!(write_marked_units(&systemd, &units, MARKER, "watch").unwrap());
        assert!(
            !write_marked_units(&systemd, &units, MARKER, "watch").unwrap(),
            "rewritten unchanged"
        );
        let other = generate(Path::new("/srv/other"), "/bin/pyapp-install", &[]).unwrap();
        assert!(write_marked_units(&systemd, &other, MARKER, "watch").unwrap());
        let service = systemd.unit_dir().join(SERVICE_UNIT);
        fs::write(&service, "[Service]\nExecStart=/bin/true\n").unwrap();
        let refused = write_marked_units(&systemd, &units, MARKER, "watch")
            .unwrap_err()
            .to_string();
        assert!(
            refused.ends_with("was not written by pyapp-install watch; refusing to replace it"),
            "{refused}"
        );
        assert_eq!(
            fs::read_to_string(&service).unwrap(),
            "[Service]\nExecStart=/bin/true\n"
        );
        // Nothing was half-written: the path unit is still the other inbox's.
        assert_eq!(
            fs::read_to_string(systemd.unit_dir().join(PATH_UNIT)).unwrap(),
            other[0].text
        );
    }
}
