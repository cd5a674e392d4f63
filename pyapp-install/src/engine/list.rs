//! `pyapp-install list`: the installed apps (those with a receipt), their current version
//! and the releases kept, as a table or as JSON on stdout.

use anyhow::Result;
use serde::Serialize;

use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::{AppTree, AppsDir};
use crate::output::Output;
use crate::progress::Progress;

/// One app in `list --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct ListedApp {
    name: String,
    version: String,
    release: Option<String>,
    path: String,
    bundle_sha256: String,
    installed_at: String,
    python: String,
    releases: Vec<ListedRelease>,
    /// The release built but not switched to (`--stage-only`, `watch` under `manual`).
    staged: Option<String>,
}

/// One kept release in `list --json` and `status --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListedRelease {
    pub release: String,
    pub version: String,
    pub installed_at: String,
    pub current: bool,
}

/// The releases `receipt` lists that are on disk, oldest first; the one `current` (the
/// release the link points at) is marked.
pub fn kept_releases(
    tree: &AppTree,
    receipt: &Receipt,
    current: Option<&str>,
) -> Result<Vec<ListedRelease>> {
    let on_disk = release::releases_on_disk(tree)?;
    Ok(receipt
        .releases
        .iter()
        .filter(|r| on_disk.contains(&r.release))
        .map(|r| ListedRelease {
            release: r.release.clone(),
            version: r.version.clone(),
            installed_at: r.installed_at.clone(),
            current: current == Some(r.release.as_str()),
        })
        .collect())
}

/// The `list` action.
pub fn list(apps: &AppsDir, output: &Output) -> Result<()> {
    let mut listed = Vec::new();
    for tree in apps.installed_apps()? {
        let Some(receipt) = Receipt::load(&tree.receipt_path())? else {
            continue;
        };
        // `current` is the truth; the receipt is written just after it is switched.
        let current = release::current_release(&tree)?;
        let releases = kept_releases(&tree, &receipt, current.as_deref())?;
        let on_disk = release::releases_on_disk(&tree)?;
        listed.push(ListedApp {
            name: receipt.name,
            version: receipt.version,
            release: current,
            path: tree.dir().display().to_string(),
            bundle_sha256: receipt.bundle_sha256,
            installed_at: receipt.installed_at,
            python: receipt.python,
            releases,
            staged: receipt
                .staged
                .map(|r| r.release)
                .filter(|release| on_disk.contains(release)),
        });
    }
    if output.json() {
        return output.print_json(&serde_json::json!({ "apps": listed }));
    }
    if listed.is_empty() {
        output.note(&format!("no apps installed in {}", apps.path().display()));
        return Ok(());
    }
    for app in &listed {
        let staged = match &app.staged {
            Some(release) => format!(" (staged: {release})"),
            None => String::new(),
        };
        println!(
            "{:<32} {:<16} {}{staged}",
            app.name,
            app.version,
            releases_text(&app.releases)
        );
    }
    Ok(())
}

/// The releases on one line, the current one marked: `1.0.0-ba9876543210 1.1.0-0123456789ab*`.
pub fn releases_text(releases: &[ListedRelease]) -> String {
    let names: Vec<String> = releases
        .iter()
        .map(|r| {
            let marker = if r.current { "*" } else { "" };
            format!("{}{marker}", r.release)
        })
        .collect();
    names.join(" ")
}
