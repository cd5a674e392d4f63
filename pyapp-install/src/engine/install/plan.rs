//! `--dry-run`: what the install would create, build and remove, told through progress.

use anyhow::Result;
use pyapp_bundle::layout::DEPS_PREFIX;
use pyapp_bundle::metadata::{DependencyMode, Metadata};
use pyapp_bundle::reader::Bundle;

use super::stage::lasting_dirs;
use crate::app::receipt::{Receipt, ReleaseRecord};
use crate::app::release;
use crate::app::tree::AppTree;
use crate::progress::Progress;
use pyapp_venv::store::Store;

/// The directories, release and pruning the install of `record` would bring.
pub fn describe(
    tree: &AppTree,
    metadata: &Metadata,
    previous: Option<&Receipt>,
    record: &ReleaseRecord,
    keep: usize,
    progress: &dyn Progress,
) -> Result<()> {
    for (dir, _) in lasting_dirs(tree, metadata) {
        if !pyapp_fs::exists(&dir)? {
            progress.note(&format!("would create {}", dir.display()));
        }
    }
    if pyapp_fs::is_real_dir(&tree.release_dir(&record.release))? {
        progress.note(&format!(
            "would switch to release {} (already on disk)",
            record.release
        ));
    } else {
        progress.note(&format!(
            "would build release {} with {} wheels for Python {}",
            record.release,
            metadata.dependencies.len(),
            record.python_version
        ));
    }
    let receipt = Receipt::with_current(tree.name(), previous, record.clone());
    for name in release::releases_to_prune(tree, &receipt, keep)? {
        progress.note(&format!("would remove old release {name}"));
    }
    if metadata.proxied_service().is_some() {
        progress.note(&format!(
            "would write the web server snippets of {} {} to {}",
            tree.name(),
            metadata.version,
            tree.dir().join("web").display()
        ));
    }
    Ok(())
}

/// How many shared wheels the store has and would be linked, how many it would get.
pub fn describe_store(
    store: &Store,
    bundle: &Bundle,
    metadata: &Metadata,
    progress: &dyn Progress,
) {
    let (mut linked, mut unpacked, mut local) = (0, 0, 0);
    for dependency in &metadata.dependencies {
        match dependency.mode {
            DependencyMode::Local => local += 1,
            DependencyMode::Shared => {
                let sha256 = bundle
                    .entry(&format!("{DEPS_PREFIX}{}", dependency.wheel))
                    .map(|entry| hex::encode(entry.sha256));
                match sha256.map(|sha256| store.entry_dir(&sha256).is_dir()) {
                    Some(true) => linked += 1,
                    _ => unpacked += 1,
                }
            }
        }
    }
    progress.note(&format!(
        "would link {linked} shared wheel(s) from the store {}, unpack {unpacked} into it first, and extract {local} local wheel(s)",
        store.dir().display()
    ));
}
