//! `pyapp-install gc`: deletes the shared store's entries no release uses any more, and
//! the same collection after `remove` and after pruning releases.

use anyhow::Result;
use serde::Serialize;

use crate::app::tree::AppsDir;
use crate::engine::Progress;
use crate::output::Output;
use pyapp_cli::Refusal;
use pyapp_venv::store::{Collected, Store};

/// After `remove` and after pruning releases: deletes the store entries no release uses
/// any more, unless an install holds the store (then the next run does it). Says what it
/// freed; a failure is a warning, since the command itself succeeded.
pub fn collect_after(apps: &AppsDir, output: &Output) {
    match Store::of(apps.path()).collect_garbage(false, false) {
        Ok(Some(collected)) if !collected.removed.is_empty() => output.note(&format!(
            "freed {} unused wheel(s) from the store ({})",
            collected.removed.len(),
            human_bytes(collected.removed_bytes)
        )),
        Ok(_) => {}
        Err(err) => output.note(&format!(
            "warning: could not collect the store's unused wheels: {err:#}"
        )),
    }
}

/// The `gc` action: `pyapp-install gc [--dry-run] [--wait]`.
pub fn gc(apps: &AppsDir, dry_run: bool, wait: bool, output: &Output) -> Result<()> {
    let store = Store::of(apps.path());
    let collected = store.collect_garbage(dry_run, wait)?.ok_or_else(|| {
        Refusal::new(format!(
            "the store `{}` is in use by another pyapp-install",
            store.dir().display()
        ))
        .with_hint("run again with --wait to collect once it is done")
    })?;
    if output.json() {
        output.print_json(&GcReport {
            action: if dry_run {
                "would-collect"
            } else {
                "collected"
            },
            dry_run,
            store: store.dir().display().to_string(),
            collected: &collected,
        })?;
    }
    let verb = if dry_run { "would free" } else { "freed" };
    for entry in &collected.removed {
        output.note(&format!(
            "{verb} {} ({})",
            entry.wheel.as_deref().unwrap_or(&entry.sha256),
            human_bytes(entry.bytes)
        ));
    }
    output.note(&format!(
        "{verb} {} unused wheel(s), {}; {} in use",
        collected.removed.len(),
        human_bytes(collected.removed_bytes),
        collected.kept
    ));
    Ok(())
}

/// What `gc --json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct GcReport<'a> {
    action: &'static str,
    dry_run: bool,
    store: String,
    #[serde(flatten)]
    collected: &'a Collected,
}

/// `1.5 MB`, for messages.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    if value < 1000.0 {
        return format!("{bytes} bytes");
    }
    let mut unit = "";
    for name in UNITS {
        value /= 1000.0;
        unit = name;
        if value < 1000.0 {
            break;
        }
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_bytes(999), "999 bytes");
        assert_eq!(human_bytes(1_500_000), "1.5 MB");
        assert_eq!(human_bytes(2_000_000_000), "2.0 GB");
    }
}
