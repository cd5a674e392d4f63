//! `pyapp-install watch DIR`: installs the bundles dropped into an inbox directory, then
//! exits (FORMAT.md 10). Each bundle goes through the very install `pyapp-install BUNDLE`
//! runs, with the installed app's update policy followed ([`crate::app::policy`]), and is then
//! moved to `DIR/done/` or `DIR/failed/` with a JSON record of what happened. Watching is
//! systemd's job: `--install-units` writes a `.path` unit that starts this command whenever
//! `DIR/*.pyapp` exists ([`inbox_units`]); [`inbox`] holds the directory's rules.

mod inbox;
pub mod inbox_units;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::Serialize;

use crate::app::policy::Rules;
use crate::app::receipt::now_rfc3339;
use crate::engine::install::{self, Action, InstallReport, InstallRequest};
use crate::engine::Target;
use pyapp_cli::{classify, Refusal};
use pyapp_fs::lock::WhenHeld;

use inbox::{Dropped, Inbox, Outcome};

/// What `watch` did with one bundle: the JSON record beside it (`NAME.pyapp.json`) and,
/// with `--json`, one line on stdout.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Record {
    /// The bundle's name as it was dropped.
    pub bundle: String,
    /// `done` or `failed`.
    pub result: &'static str,
    pub action: RecordAction,
    /// Where the bundle is now.
    pub moved_to: String,
    pub app: Option<String>,
    pub version: Option<String>,
    pub release: Option<String>,
    /// The one-line error of a failed bundle.
    pub error: Option<String>,
    /// What to do next, when there is something.
    pub hint: Option<String>,
    /// When it was processed (RFC 3339, UTC).
    pub time: String,
}

/// An install's action, or how it failed.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(untagged)]
pub enum RecordAction {
    Install(Action),
    Failure(Failure),
}

/// How a bundle failed: the kinds of `pyapp-install BUNDLE`'s exit statuses 1 and 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Failure {
    /// The bundle's or the policy's fault: a bad bundle, a refused version, a failed check.
    Refused,
    /// Something unexpected on this machine.
    Failed,
}

/// What `watch` is asked: the inbox and the options every bundle is installed with.
#[derive(Debug, Clone)]
pub struct WatchRequest {
    /// The inbox directory (`done/` and `failed/` are made inside it).
    pub dir: PathBuf,
    /// The interpreter of new releases' venvs.
    pub python: Option<PathBuf>,
    /// Minisign public keys bundles must be signed with.
    pub trusted_keys: Vec<PathBuf>,
    pub compile_bytecode: bool,
    /// The most a release may take on disk (`--max-installed-size`).
    pub max_installed_size: u64,
    /// Take a new major version of an app whose update policy is same-major.
    pub allow_major: bool,
    /// Take a version lower than the app's current one.
    pub allow_downgrade: bool,
}

impl WatchRequest {
    /// The install of the dropped bundle `bundle`: as `pyapp-install BUNDLE`, waiting for
    /// the app's lock and following the installed release's update policy.
    fn install(&self, bundle: &Path) -> InstallRequest {
        InstallRequest {
            bundle: bundle.to_owned(),
            python: self.python.clone(),
            dry_run: false,
            when_held: WhenHeld::Wait,
            options: install::options(true, self.compile_bytecode),
            user: None,
            set: Vec::new(),
            config: None,
            trusted_keys: self.trusted_keys.clone(),
            rules: Rules {
                follow_policy: true,
                allow_major: self.allow_major,
                allow_downgrade: self.allow_downgrade,
                stage_only: false,
            },
            web: None,
            max_installed_size: self.max_installed_size,
        }
    }
}

/// Installs every bundle in the inbox and files it away; `on_record` hears of each as it
/// is done. Fails (after the last bundle) when any bundle failed.
pub fn watch(
    request: &WatchRequest,
    target: &Target,
    on_record: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<()> {
    let progress = target.progress();
    let inbox = Inbox::open(&request.dir, progress)?;
    let mut total = 0;
    let mut failures = Vec::new();
    while let Some(bundle) = inbox.next()? {
        total += 1;
        let record = process(request, target, &inbox, &bundle)?;
        on_record(&record)?;
        if let RecordAction::Failure(failure) = record.action {
            failures.push(failure);
        }
    }
    if total == 0 {
        progress.note(&format!("no bundles in {}", inbox.path().display()));
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

/// Installs one dropped bundle and files it away.
fn process(
    request: &WatchRequest,
    target: &Target,
    inbox: &Inbox,
    bundle: &Dropped,
) -> Result<Record> {
    let name = bundle.display_name();
    target.progress().note(&format!(
        "{name}: installing from {}",
        inbox.path().display()
    ));
    let installed = if bundle.is_file {
        install::install(&request.install(&bundle.path), target)
            .map_err(pyapp_cli::explain_disk_full)
    } else {
        Err(Refusal::new(format!(
            "`{}` is not a regular file (a link or a directory): only bundle files are installed",
            bundle.path.display()
        ))
        .with_hint("copy the bundle file itself into the inbox")
        .into())
    };
    let outcome = match &installed {
        Ok(_) => Outcome::Done,
        Err(_) => Outcome::Failed,
    };
    let time = now_rfc3339();
    let moved_to = inbox.file_away(bundle, outcome, |moved_to| {
        let record = record(&name, outcome, &installed, moved_to, &time);
        let mut json = serde_json::to_vec_pretty(&record)?;
        json.push(b'\n');
        Ok(json)
    })?;
    Ok(record(&name, outcome, &installed, &moved_to, &time))
}

/// The record of `name`, now at `moved_to`, after the install `installed`, at `time`.
fn record(
    name: &str,
    outcome: Outcome,
    installed: &Result<InstallReport>,
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
