//! Step 4: the receipt of the new current release, old releases and their store entries
//! removed, the web server snippets published.

use anyhow::{Context, Result};
use pyapp_bundle::metadata::Metadata;

use super::web_config;
use crate::app::receipt::{Receipt, ReleaseRecord};
use crate::app::release;
use crate::app::tree::AppTree;
use crate::engine::{gc, Target};
use crate::system::app_user::AppUser;
use crate::system::web::{Server, Site, WebReport};
use pyapp_fs::{fault, FsError};

/// Records `record` as the current release of `tree` (keeping `keep` releases); returns
/// the releases pruned. The activation's last step: a receipt that cannot be written (a
/// full disk) rolls the install back as a failed health check does, so that the exit
/// status and what is current agree.
pub fn record(
    tree: &AppTree,
    previous: Option<&Receipt>,
    record: ReleaseRecord,
    user: Option<&AppUser>,
    keep: usize,
) -> Result<Vec<String>> {
    let mut receipt = Receipt::with_current(tree.name(), previous, record);
    receipt.user = user.map(|user| user.name.clone());
    let (receipt, pruned) = release::prune(tree, &receipt, keep)?;
    fault::point("before-receipt");
    let path = tree.receipt_path();
    fault::disk_full_at("before-receipt").map_err(|source| FsError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    receipt.save(&path)?;
    fault::point("after-receipt");
    Ok(pruned)
}

/// Says which old releases were pruned, and deletes the store entries only they used.
pub fn report_pruned(target: &Target, pruned: &[String]) {
    for name in pruned {
        target
            .progress()
            .note(&format!("removed old release {name}"));
    }
    if !pruned.is_empty() {
        gc::collect_after(&target.apps, target.progress());
    }
}

/// Writes the release's web server snippets, and links them into `server` when asked.
pub fn publish_web(
    target: &Target,
    tree: &AppTree,
    metadata: &Metadata,
    site: Option<&Site>,
    server: Option<Server>,
) -> Result<WebReport> {
    web_config(target, tree)
        .publish(site, server)
        .with_context(|| {
            format!(
                "{} {} is installed and running",
                tree.name(),
                metadata.version
            )
        })
}
