//! `pyapp-install gc`: deletes the shared store's entries no release uses any more, and
//! the same collection after `remove` and after pruning releases.

use anyhow::Result;
use serde::Serialize;

use crate::app::tree::AppsDir;
use crate::engine::Target;
use crate::progress::Progress;
use pyapp_cli::Refusal;
use pyapp_venv::store::{Collected, Store};

/// After `remove` and after pruning releases: deletes the store entries no release uses
/// any more, unless an install holds the store (then the next run does it). Says what it
/// freed; a failure is a warning, since the command itself succeeded.
pub fn collect_after(apps: &AppsDir, output: &dyn Progress) {
    match Store::of(apps.path()).collect_garbage(false, false) {
        Ok(Some(collected)) if !collected.removed.is_empty() => output.note(&format!(
            "freed {} unused wheel(s) from the store ({})",
            collected.removed.len(),
            human_bytes(collected.removed_bytes)
        )),
        Ok(_) => {}
        Err(err) => output.warning(&format!(
            "could not collect the store's unused wheels: {err:#}"
        )),
    }
}

/// What `gc` is asked: `pyapp-install gc [--dry-run] [--wait]`.
#[derive(Debug, Clone, Copy)]
pub struct GcRequest {
    /// Say what would be deleted, delete nothing.
    pub dry_run: bool,
    /// Wait for an install that holds the store instead of refusing.
    pub wait: bool,
}

/// What `gc` did, as `gc --json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GcReport {
    pub action: &'static str,
    pub dry_run: bool,
    pub store: String,
    #[serde(flatten)]
    pub collected: Collected,
}

/// Deletes the shared store's entries no release uses any more.
pub fn gc(request: &GcRequest, target: &Target) -> Result<GcReport> {
    let progress = target.progress();
    let store = Store::of(target.apps.path());
    let collected = store
        .collect_garbage(request.dry_run, request.wait)?
        .ok_or_else(|| {
            Refusal::new(format!(
                "the store `{}` is in use by another pyapp-install",
                store.dir().display()
            ))
            .with_hint("run again with --wait to collect once it is done")
        })?;
    let verb = if request.dry_run {
        "would free"
    } else {
        "freed"
    };
    for entry in &collected.removed {
        progress.note(&format!(
            "{verb} {} ({})",
            entry.wheel.as_deref().unwrap_or(&entry.sha256),
            human_bytes(entry.bytes)
        ));
    }
    progress.note(&format!(
        "{verb} {} unused wheel(s), {}; {} in use",
        collected.removed.len(),
        human_bytes(collected.removed_bytes),
        collected.kept
    ));
    Ok(GcReport {
        action: if request.dry_run {
            "would-collect"
        } else {
            "collected"
        },
        dry_run: request.dry_run,
        store: store.dir().display().to_string(),
        collected,
    })
}

/// `1.5 MB`, for messages.
pub fn human_bytes(bytes: u64) -> String {
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
