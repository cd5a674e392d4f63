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
use pyapp_fs::fault;

/// Records `record` as the current release of `tree` (keeping `keep` releases) and says
/// what was pruned.
pub fn record(
    target: &Target,
    tree: &AppTree,
    previous: Option<&Receipt>,
    record: ReleaseRecord,
    user: Option<&AppUser>,
    keep: usize,
) -> Result<()> {
    let mut receipt = Receipt::with_current(tree.name(), previous, record);
    receipt.user = user.map(|user| user.name.clone());
    let (receipt, pruned) = release::prune(tree, &receipt, keep)?;
    fault::point("before-receipt");
    receipt.save(&tree.receipt_path())?;
    fault::point("after-receipt");
    for name in &pruned {
        target
            .progress()
            .note(&format!("removed old release {name}"));
    }
    if !pruned.is_empty() {
        gc::collect_after(&target.apps, target.progress());
    }
    Ok(())
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
