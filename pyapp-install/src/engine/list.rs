//! `pyapp-install list`: the installed apps (those with a receipt), their current version
//! and the releases kept.

use anyhow::Result;
use serde::Serialize;

use crate::app::receipt::Receipt;
use crate::app::release;
use crate::app::tree::AppTree;
use crate::engine::Target;

/// One app in `list --json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ListedApp {
    pub name: String,
    pub version: String,
    pub release: Option<String>,
    pub path: String,
    /// The content digest of the current release's bundle (FORMAT.md 1.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_sha256: Option<String>,
    /// The sha256 of its bundle file, for a release a format-1 receipt recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bundle_sha256: Option<String>,
    pub installed_at: String,
    pub python: String,
    pub releases: Vec<ListedRelease>,
    /// The release built but not switched to (`--stage-only`, `watch` under `manual`).
    pub staged: Option<String>,
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

/// The installed apps, as `list --json` prints them.
#[derive(Debug, Serialize)]
pub struct ListReport {
    pub apps: Vec<ListedApp>,
}

/// The apps installed under `target`, with their current and kept releases.
pub fn list(target: &Target) -> Result<ListReport> {
    let mut listed = Vec::new();
    for tree in target.apps.installed_apps()? {
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
            content_sha256: receipt.content_sha256,
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
    Ok(ListReport { apps: listed })
}
