//! Putting an app's units in place and registering them with systemd (FORMAT.md 8.5):
//! writes `ROOT/etc/systemd/system/APP-*.service|timer` atomically, removes the app's units
//! that are no longer generated, and drives `systemctl` when the target is the running
//! system (`--root /` and `/run/systemd/system` exists). Otherwise the `systemctl` steps are
//! skipped and [`Systemd::manual_steps`] says what to run once the tree is booted.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::refusal::Refusal;
use crate::safe_fs;
use crate::units::{UnitFile, MARKER_PREFIX};

/// Where units go, relative to the root.
const UNIT_DIR: &str = "etc/systemd/system";

/// A `systemctl` command that failed, with what it said.
#[derive(Debug, thiserror::Error)]
#[error("`systemctl {command}` failed ({status}): {stderr}")]
pub struct SystemctlError {
    pub command: String,
    pub status: String,
    pub stderr: String,
}

/// What [`Systemd::write_units`] changed, by unit name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UnitChanges {
    /// New or different units, written.
    pub written: Vec<String>,
    /// Units already on disk with the same text.
    pub unchanged: Vec<String>,
    /// The app's units that are no longer generated, deleted with their `*.wants/` links.
    pub removed: Vec<String>,
}

impl UnitChanges {
    /// Whether any file changed (then systemd needs a `daemon-reload`).
    pub fn changed(&self) -> bool {
        !self.written.is_empty() || !self.removed.is_empty()
    }
}

/// The systemd of the target root: its unit directory, and whether it is running.
#[derive(Debug, Clone)]
pub struct Systemd {
    unit_dir: PathBuf,
    running: bool,
}

impl Systemd {
    /// The systemd of `root`: running iff `root` is `/` and `/run/systemd/system` exists
    /// (what `sd_booted()` checks).
    pub fn detect(root: &Path) -> Systemd {
        let running = root == Path::new("/") && Path::new("/run/systemd/system").is_dir();
        Systemd::new(root, running)
    }

    /// The systemd of `root`, told whether it is running.
    pub fn new(root: &Path, running: bool) -> Systemd {
        Systemd {
            unit_dir: root.join(UNIT_DIR),
            running,
        }
    }

    /// Whether `systemctl` is used (else its steps are skipped).
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// `ROOT/etc/systemd/system`.
    pub fn unit_dir(&self) -> &Path {
        &self.unit_dir
    }

    /// The units on disk that pyapp-install wrote for `app` (they carry its marker line),
    /// sorted by name. Files without the marker, and links, are not the app's.
    pub fn installed_units(&self, app: &str) -> Result<Vec<String>> {
        let mut units = Vec::new();
        for name in safe_fs::list_dir(&self.unit_dir)? {
            if is_app_unit_name(app, &name) && self.carries_marker(app, &name)? {
                units.push(name);
            }
        }
        Ok(units)
    }

    /// Writes `units` (each atomically, only when its text changed) and removes the app's
    /// units that `units` no longer has. A file in the way that pyapp-install did not write
    /// for this app (another app's unit, an admin's, a `systemctl mask` link) is refused.
    pub fn write_units(&self, app: &str, units: &[UnitFile]) -> Result<UnitChanges> {
        fs::create_dir_all(&self.unit_dir)
            .with_context(|| format!("failed to create `{}`", self.unit_dir.display()))?;
        let mut changes = UnitChanges::default();
        for unit in units {
            let path = self.unit_dir.join(&unit.name);
            match existing_unit_text(&path)? {
                Some(text) if text == unit.text => {
                    changes.unchanged.push(unit.name.clone());
                    continue;
                }
                Some(text) if !has_marker(app, &text) => {
                    return Err(Refusal::new(format!(
                        "`{}` exists and was not written by pyapp-install for {app}; refusing \
                         to replace it",
                        path.display()
                    ))
                    .with_hint(
                        "move it away (or rename the service in metadata.yaml), then install again",
                    )
                    .into())
                }
                _ => {}
            }
            safe_fs::write_atomic(&path, unit.text.as_bytes(), 0o644)?;
            changes.written.push(unit.name.clone());
        }
        for name in self.installed_units(app)? {
            if !units.iter().any(|unit| unit.name == name) {
                self.remove_unit(&name)?;
                changes.removed.push(name);
            }
        }
        Ok(changes)
    }

    /// Removes every unit of `app` (for `remove`), with its `*.wants/` links; returns their names.
    pub fn remove_units(&self, app: &str) -> Result<Vec<String>> {
        Ok(self.write_units(app, &[])?.removed)
    }

    /// `systemctl stop UNITS` (nothing when not running or no units).
    pub fn stop(&self, units: &[String]) -> Result<()> {
        self.systemctl(&["stop"], units)
    }

    /// `systemctl daemon-reload` (nothing when not running).
    pub fn daemon_reload(&self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.run_systemctl(&["daemon-reload"])
    }

    /// `systemctl enable --now UNITS`: the units with an `[Install]` section (see
    /// [`UnitFile::is_enabled`]).
    pub fn enable_now(&self, units: &[String]) -> Result<()> {
        self.systemctl(&["enable", "--now"], units)
    }

    /// `systemctl disable --now UNITS`.
    pub fn disable_now(&self, units: &[String]) -> Result<()> {
        self.systemctl(&["disable", "--now"], units)
    }

    /// `systemctl reload UNITS` (a web server rereading its configuration).
    pub fn reload(&self, units: &[String]) -> Result<()> {
        self.systemctl(&["reload"], units)
    }

    /// `systemctl try-restart UNITS`: restarts those that are running.
    pub fn try_restart(&self, units: &[String]) -> Result<()> {
        self.systemctl(&["try-restart"], units)
    }

    /// Whether `unit` is active (`systemctl is-active`); `false` when not running.
    pub fn is_active(&self, unit: &str) -> Result<bool> {
        if !self.running {
            return Ok(false);
        }
        log::debug!("systemctl is-active --quiet {unit}");
        let status = Command::new("systemctl")
            .args(["is-active", "--quiet", unit])
            .status()
            .context("failed to run `systemctl is-active`")?;
        Ok(status.success())
    }

    /// `systemctl show` of `units`: the `properties` (which must include `Id`) of each, by
    /// unit name, with timestamps in UTC (`Sat 2026-11-21 17:49:16 UTC`); `None` when
    /// systemd is not running. A unit systemd does not know has `LoadState=not-found`.
    pub fn show(&self, units: &[String], properties: &[&str]) -> Result<Option<UnitProperties>> {
        if !self.running {
            return Ok(None);
        }
        if units.is_empty() {
            return Ok(Some(BTreeMap::new()));
        }
        let mut args = vec!["show".to_owned(), "-p".to_owned(), properties.join(",")];
        args.extend(units.iter().cloned());
        let output = Command::new("systemctl")
            .arg("--no-pager")
            .args(&args)
            .env("TZ", "UTC")
            .env("LC_ALL", "C")
            .output()
            .with_context(|| format!("failed to run `systemctl {}`", args.join(" ")))?;
        if !output.status.success() {
            return Err(SystemctlError {
                command: args.join(" "),
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            }
            .into());
        }
        Ok(Some(parse_show(&String::from_utf8_lossy(&output.stdout))))
    }

    /// When systemd is not running: what to run once it is, e.g. `units written to
    /// /img/etc/systemd/system; enable them with: systemctl daemon-reload && systemctl
    /// enable --now hello-web.service hello-cleanup.timer`.
    pub fn manual_steps(&self, units: &[UnitFile]) -> Option<String> {
        if self.running || units.is_empty() {
            return None;
        }
        let enabled: Vec<&str> = units
            .iter()
            .filter(|unit| unit.is_enabled())
            .map(|unit| unit.name.as_str())
            .collect();
        Some(format!(
            "units written to {}; enable them with: systemctl daemon-reload && systemctl enable --now {}",
            self.unit_dir.display(),
            enabled.join(" ")
        ))
    }

    fn systemctl(&self, verb: &[&str], units: &[String]) -> Result<()> {
        if !self.running || units.is_empty() {
            return Ok(());
        }
        let mut args: Vec<&str> = verb.to_vec();
        args.extend(units.iter().map(String::as_str));
        self.run_systemctl(&args)
    }

    fn run_systemctl(&self, args: &[&str]) -> Result<()> {
        log::debug!("systemctl --no-ask-password {}", args.join(" "));
        let output = Command::new("systemctl")
            .arg("--no-ask-password")
            .args(args)
            .output()
            .with_context(|| format!("failed to run `systemctl {}`", args.join(" ")))?;
        if output.status.success() {
            return Ok(());
        }
        Err(SystemctlError {
            command: args.join(" "),
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
        .into())
    }

    fn carries_marker(&self, app: &str, name: &str) -> Result<bool> {
        let path = self.unit_dir.join(name);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_file() => {}
            _ => return Ok(false),
        }
        let bytes = safe_fs::read_optional(&path)?.unwrap_or_default();
        Ok(has_marker(app, &String::from_utf8_lossy(&bytes)))
    }

    /// Deletes a unit file and the links `systemctl enable` made to it in
    /// `*.wants/` and `*.requires/` (what `disable` would remove).
    fn remove_unit(&self, name: &str) -> Result<()> {
        for dir in safe_fs::list_dir(&self.unit_dir)? {
            if dir.ends_with(".wants") || dir.ends_with(".requires") {
                let link = self.unit_dir.join(&dir).join(name);
                if fs::symlink_metadata(&link).is_ok_and(|meta| meta.file_type().is_symlink()) {
                    safe_fs::remove_file_if_exists(&link)?;
                }
            }
        }
        safe_fs::remove_file_if_exists(&self.unit_dir.join(name))
    }
}

/// The text of the regular file at `path`; `None` when nothing is there; refused when
/// something else is (a link, e.g. a masked unit, or a directory).
pub fn existing_unit_text(path: &Path) -> Result<Option<String>> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_file() => {}
        Ok(_) => {
            return Err(Refusal::new(format!(
                "`{}` is not a regular file (a masked unit is a link to /dev/null); \
                 refusing to replace it",
                path.display()
            ))
            .with_hint("unmask or move it away, then run the command again")
            .into())
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(err).with_context(|| format!("failed to inspect `{}`", path.display()))
        }
    }
    let bytes = safe_fs::read_optional(path)?.unwrap_or_default();
    Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
}

/// The properties of units as `systemctl show` prints them, by unit name (`Id`).
pub type UnitProperties = BTreeMap<String, BTreeMap<String, String>>;

/// Parses `systemctl show` of several units: a block of `KEY=VALUE` lines per unit, blocks
/// separated by an empty line; each block is filed under its `Id`.
fn parse_show(text: &str) -> UnitProperties {
    let mut units = BTreeMap::new();
    for block in text.split("\n\n") {
        let properties: BTreeMap<String, String> = block
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        if let Some(id) = properties.get("Id") {
            units.insert(id.clone(), properties);
        }
    }
    units
}

/// `APP-SOMETHING.service` or `APP-SOMETHING.timer`.
fn is_app_unit_name(app: &str, name: &str) -> bool {
    name.strip_prefix(app)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|rest| rest.ends_with(".service") || rest.ends_with(".timer"))
}

/// Whether a unit's text has the marker line of `app` among its first lines.
fn has_marker(app: &str, text: &str) -> bool {
    let marker = format!("{MARKER_PREFIX}{app}");
    text.lines().take(5).any(|line| line == marker)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn unit(app: &str, name: &str, body: &str) -> UnitFile {
        UnitFile {
            name: name.to_owned(),
            text: format!("# generated\n{MARKER_PREFIX}{app}\n{body}"),
        }
    }

    fn setup() -> (tempfile::TempDir, Systemd) {
        let root = tempfile::tempdir().unwrap();
        let systemd = Systemd::detect(root.path());
        (root, systemd)
    }

    #[test]
    fn show_output_is_filed_by_unit() {
        let text = "NextElapseUSecRealtime=Sun 2026-11-22 03:00:00 UTC\nLastTriggerUSec=\n\
                    Id=hello-cleanup.timer\nActiveState=active\nSubState=waiting\n\n\
                    Id=hello-web.service\nActiveState=active\nSubState=running\n\
                    ExecStart={ path=/a/b ; argv[]=/a/b --x=1 }\n\n\
                    LoadState=not-found\nId=gone.service\nActiveState=inactive\n";
        let units = parse_show(text);
        assert_eq!(
            units.keys().collect::<Vec<_>>(),
            ["gone.service", "hello-cleanup.timer", "hello-web.service"]
        );
        let timer = &units["hello-cleanup.timer"];
        assert_eq!(
            timer["NextElapseUSecRealtime"],
            "Sun 2026-11-22 03:00:00 UTC"
        );
        assert_eq!(timer["LastTriggerUSec"], "");
        assert_eq!(timer["SubState"], "waiting");
        assert_eq!(
            units["hello-web.service"]["ExecStart"],
            "{ path=/a/b ; argv[]=/a/b --x=1 }"
        );
        assert_eq!(units["gone.service"]["LoadState"], "not-found");
    }

    #[test]
    fn a_root_other_than_slash_is_never_running() {
        let (_root, systemd) = setup();
        assert!(!systemd.is_running());
        // Every systemctl step is skipped: these would fail on a machine without systemd.
        systemd.stop(&["x.service".to_owned()]).unwrap();
        systemd.daemon_reload().unwrap();
        systemd.enable_now(&["x.service".to_owned()]).unwrap();
        assert!(!systemd.is_active("x.service").unwrap());
        assert!(systemd
            .show(&["x.service".to_owned()], &["Id"])
            .unwrap()
            .is_none());
    }

    #[test]
    fn units_are_written_updated_and_stale_ones_removed() {
        let (root, systemd) = setup();
        let web = unit(
            "hello",
            "hello-web.service",
            "[Install]\nWantedBy=multi-user.target\n",
        );
        let old = unit(
            "hello",
            "hello-old.service",
            "[Install]\nWantedBy=multi-user.target\n",
        );
        let changes = systemd
            .write_units("hello", &[web.clone(), old.clone()])
            .unwrap();
        assert_eq!(changes.written, ["hello-web.service", "hello-old.service"]);
        assert!(changes.changed());
        // As `systemctl enable` would have linked it.
        let wants = systemd.unit_dir().join("multi-user.target.wants");
        fs::create_dir_all(&wants).unwrap();
        std::os::unix::fs::symlink("../hello-old.service", wants.join("hello-old.service"))
            .unwrap();
        // Another app's unit sharing the prefix, and an admin's file, stay.
        let other = unit("hello-web", "hello-web-x.service", "");
        systemd.write_units("hello-web", &[other]).unwrap();
        fs::write(
            systemd.unit_dir().join("hello-admin.service"),
            "[Service]\n",
        )
        .unwrap();

        let changes = systemd
            .write_units("hello", std::slice::from_ref(&web))
            .unwrap();
        assert_eq!(changes.unchanged, ["hello-web.service"]);
        assert_eq!(changes.removed, ["hello-old.service"]);
        assert!(!wants.join("hello-old.service").exists());
        assert_eq!(
            safe_fs::list_dir(systemd.unit_dir()).unwrap(),
            [
                "hello-admin.service",
                "hello-web-x.service",
                "hello-web.service",
                "multi-user.target.wants"
            ]
        );
        assert_eq!(
            systemd.installed_units("hello").unwrap(),
            ["hello-web.service"]
        );
        assert_eq!(
            systemd.manual_steps(&[web]).unwrap(),
            format!(
                "units written to {}/etc/systemd/system; enable them with: systemctl \
                 daemon-reload && systemctl enable --now hello-web.service",
                root.path().display()
            )
        );
        assert_eq!(
            systemd.remove_units("hello").unwrap(),
            ["hello-web.service"]
        );
        assert_eq!(
            systemd.installed_units("hello-web").unwrap(),
            ["hello-web-x.service"]
        );
    }

    #[test]
    fn files_not_written_for_the_app_are_refused() {
        let (_root, systemd) = setup();
        fs::create_dir_all(systemd.unit_dir()).unwrap();
        fs::write(systemd.unit_dir().join("hello-web.service"), "[Service]\n").unwrap();
        let web = unit("hello", "hello-web.service", "");
        let refused = systemd
            .write_units("hello", std::slice::from_ref(&web))
            .unwrap_err();
        assert!(refused
            .to_string()
            .contains("was not written by pyapp-install for hello"));

        // A masked unit: a link to /dev/null is neither followed nor replaced.
        fs::remove_file(systemd.unit_dir().join("hello-web.service")).unwrap();
        std::os::unix::fs::symlink("/dev/null", systemd.unit_dir().join("hello-web.service"))
            .unwrap();
        let refused = systemd.write_units("hello", &[web]).unwrap_err();
        assert!(refused.to_string().contains("is not a regular file"));
        assert!(systemd.installed_units("hello").unwrap().is_empty());
    }
}
