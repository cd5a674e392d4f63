//! `pyapp-install watch DIR`: installs the dropped bundles, saying how each went (with
//! `--json`, one record per line on stdout); `--install-units` writes the inbox's units.

use anyhow::Result;

use crate::cli::WatchArgs;
use crate::engine::watch::{self, inbox_units, Record};
use crate::engine::Target;
use crate::output::Output;
use crate::progress::Progress;
use crate::settings;

pub fn run(args: &WatchArgs, target: &Target, output: &Output) -> Result<()> {
    let request = settings::watch_request(args);
    if args.install_units {
        let report = inbox_units::install_units(&request, target)?;
        return output.report(&report);
    }
    watch::watch(&request, target, &mut |record| say(record, output))
}

/// One processed bundle: its record on stdout with `--json`; its error (even with
/// `--quiet`) or hint and where it went on stderr.
fn say(record: &Record, output: &Output) -> Result<()> {
    output.report(record)?;
    let name = &record.bundle;
    if let Some(error) = &record.error {
        output.error(&format!("{name}: {error}"), record.hint.as_deref());
    } else if let Some(hint) = &record.hint {
        output.note(&format!("hint: {hint}"));
    }
    output.note(&format!("moved {name} to {}", record.moved_to));
    Ok(())
}
