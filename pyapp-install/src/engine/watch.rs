//! `pyapp-install watch DIR`: installs the bundles dropped into an inbox directory, then
//! exits (FORMAT.md 10). Each bundle goes through the very install `pyapp-install BUNDLE`
//! runs, with the installed app's update policy followed ([`crate::app::policy`]), and is then
//! moved to `DIR/done/` or `DIR/failed/` with a JSON record of what happened. Watching is
//! systemd's job: `--install-units` writes a `.path` unit that starts this command whenever
//! `DIR/*.pyapp` exists ([`inbox_units`]); [`inbox`] holds the directory's rules.

mod inbox;
mod inbox_units;

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::app::ports::PortRange;
use crate::app::receipt::now_rfc3339;
use crate::cli::{CommonArgs, InstallArgs, WatchArgs};
use crate::engine::install::{self, Action, Report};
use crate::engine::Progress;
use crate::output::Output;
use pyapp_cli::{classify, Refusal};

use inbox::{Dropped, Inbox, Outcome};

/// What `watch` did with one bundle: the JSON record beside it (`NAME.pyapp.json`) and,
/// with `--json`, one line on stdout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct Record {
    /// The bundle's name as it was dropped.
    bundle: String,
    /// `done` or `failed`.
    result: &'static str,
    action: RecordAction,
    /// Where the bundle is now.
    moved_to: String,
    app: Option<String>,
    version: Option<String>,
    release: Option<String>,
    /// The one-line error of a failed bundle.
    error: Option<String>,
    /// What to do next, when there is something.
    hint: Option<String>,
    /// When it was processed (RFC 3339, UTC).
    time: String,
}

/// An install's action, or how it failed.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
enum RecordAction {
    Install(Action),
    Failure(Failure),
}

/// How a bundle failed: the kinds of `pyapp-install BUNDLE`'s exit statuses 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Failure {
    /// The bundle's or the policy's fault: a bad bundle, a refused version, a failed check.
    Refused,
    /// Something unexpected on this machine.
    Failed,
}

/// The `watch` action.
pub fn watch(
    common: &CommonArgs,
    args: &WatchArgs,
    port_range: PortRange,
    output: &Output,
) -> Result<()> {
    if args.install_units {
        return inbox_units::install(common, args, port_range, output);
    }
    let inbox = Inbox::open(&args.dir, output)?;
    let mut total = 0;
    let mut failures = Vec::new();
    while let Some(bundle) = inbox.next()? {
        total += 1;
        if let Some(failure) = process(common, args, port_range, &inbox, &bundle, output)? {
            failures.push(failure);
        }
    }
    if total == 0 {
        output.note(&format!("no bundles in {}", inbox.path().display()));
    }
    if failures.is_empty() {
        return Ok(());
    }
    let message = format!(
        "{} of {total} bundles dropped into {} failed; they are in {} with their reasons",
        failures.len(),
        inbox.path().display(),
        inbox.path().join(Outcome::Failed.dir_name()).display()
    );
    if failures.contains(&Failure::Failed) {
        anyhow::bail!(message);
    }
    Err(Refusal::new(message).into())
}

/// Installs one dropped bundle and files it away; returns how it failed, if it did.
fn process(
    common: &CommonArgs,
    args: &WatchArgs,
    port_range: PortRange,
    inbox: &Inbox,
    bundle: &Dropped,
    output: &Output,
) -> Result<Option<Failure>> {
    let name = bundle.display_name();
    output.note(&format!(
        "{name}: installing from {}",
        inbox.path().display()
    ));
    let installed = if bundle.is_file {
        let install_args = InstallArgs {
            bundle: Some(bundle.path.clone()),
            python: args.python.clone(),
            wait: true,
            compile_bytecode: args.compile_bytecode,
            trusted_keys: args.trusted_keys.clone(),
            port_range,
            allow_downgrade: args.allow_downgrade,
            follow_update_policy: true,
            allow_major: args.allow_major,
            ..InstallArgs::default()
        };
        // The install's own messages go to stderr as usual; its JSON is this record's.
        let install_output = Output::new(common.verbosity.level(), false);
        install::install(
            &common.root(),
            &common.apps(),
            &install_args,
            &install_output,
        )
        .map_err(pyapp_cli::explain_disk_full)
    } else {
        Err(Refusal::new(format!(
            "`{}` is not a regular file (a link or a directory): only bundle files are installed",
            bundle.path.display()
        ))
        .with_hint("copy the bundle file itself into the inbox")
        .into())
    };
    let (outcome, failure) = match &installed {
        Ok(_) => (Outcome::Done, None),
        Err(err) if classify(err).status == 1 => (Outcome::Failed, Some(Failure::Refused)),
        Err(_) => (Outcome::Failed, Some(Failure::Failed)),
    };
    let time = now_rfc3339();
    let moved_to = inbox.file_away(bundle, outcome, |moved_to| {
        let record = record(&name, outcome, &installed, moved_to, &time);
        let mut json = serde_json::to_vec_pretty(&record)?;
        json.push(b'\n');
        Ok(json)
    })?;
    let record = record(&name, outcome, &installed, &moved_to, &time);
    if output.json() {
        output.print_json(&record)?;
    }
    if let Some(error) = &record.error {
        // Errors reach stderr even with --quiet.
        eprintln!("error: {name}: {error}");
        if let Some(hint) = &record.hint {
            eprintln!("hint: {hint}");
        }
    } else if let Some(hint) = &record.hint {
        output.note(&format!("hint: {hint}"));
    }
    output.note(&format!("moved {name} to {}", moved_to.display()));
    Ok(failure)
}

/// The record of `name`, now at `moved_to`, after the install `installed`, at `time`.
fn record(
    name: &str,
    outcome: Outcome,
    installed: &Result<Report>,
    moved_to: &Path,
    time: &str,
) -> Record {
    let mut record = Record {
        bundle: name.to_owned(),
        result: outcome.dir_name(),
        action: RecordAction::Failure(Failure::Failed),
        moved_to: moved_to.display().to_string(),
        app: None,
        version: None,
        release: None,
        error: None,
        hint: None,
        time: time.to_owned(),
    };
    match installed {
        Ok(report) => {
            record.action = RecordAction::Install(report.action);
            record.app = Some(report.app.clone());
            record.version = Some(report.version.clone());
            record.release = Some(report.release.clone());
            if report.action == Action::Staged {
                record.hint = Some(format!(
                    "staged, not running: switch to it with `pyapp-install {}`",
                    shell_word(&moved_to.display().to_string())
                ));
            }
        }
        Err(err) => {
            let failure = classify(err);
            if failure.status == 1 {
                record.action = RecordAction::Failure(Failure::Refused);
            }
            record.error = Some(format!("{err:#}"));
            record.hint = failure.hint;
        }
    }
    record
}

/// `word` as one shell word, for commands in hints: single-quoted unless it is plain.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-~@%=:,".contains(c));
    if plain {
        return word.to_owned();
    }
    format!("'{}'", word.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hint_commands_quote_what_the_shell_would_split() {
        assert_eq!(shell_word("/srv/in/done/a.pyapp"), "/srv/in/done/a.pyapp");
        assert_eq!(
            shell_word("/srv/my inbox/a.pyapp"),
            "'/srv/my inbox/a.pyapp'"
        );
        assert_eq!(shell_word("/srv/it's"), "'/srv/it'\\''s'");
        assert_eq!(shell_word(""), "''");
    }
}
