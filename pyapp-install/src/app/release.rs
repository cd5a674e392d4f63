//! Releases: `APPS/APP/releases/<version>-<12 hex of the bundle's content digest>/`, each built
//! under a `.staging-` name first and renamed into place only when complete, and renamed
//! to a `.removing-` name before it is deleted, so a release directory without a leading
//! dot is always whole. Also the atomic `current` switch and the pruning of old releases.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use pyapp_fs::state::{self, Versioned};
use pyapp_fs::ToSync;
use serde::{Deserialize, Serialize};

use crate::app::receipt::{Receipt, ReleaseRecord};
use crate::app::tree::AppTree;
use pyapp_fs::fault;

/// Each release's own record, `releases/RELEASE/release.json`: what the receipt says of
/// it, written into the release when it is built, so that a receipt a crash left behind
/// `current` is completed from what is on disk ([`completed_receipt`]).
pub const RECORD_FILE: &str = "release.json";

/// The layout of [`RECORD_FILE`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RecordFile {
    release_format: u32,
    record: ReleaseRecord,
}

impl Versioned for RecordFile {
    const WHAT: &'static str = "release record";
    const FORMAT_FIELD: &'static str = "release-format";
    /// 2: the record names its bundle by content digest (as receipt format 2).
    const FORMAT: u32 = 2;
}

/// Names under `releases/` with this prefix are unfinished releases.
const STAGING_PREFIX: &str = ".staging-";
/// Names under `releases/` with this prefix are releases being deleted.
const REMOVING_PREFIX: &str = ".removing-";

/// The release name of a bundle: its version and the first 12 hex digits of its sha256.
pub fn release_name(version: &str, bundle_sha256: &str) -> String {
    let short = bundle_sha256.get(..12).unwrap_or(bundle_sha256);
    format!("{version}-{short}")
}

/// A release being built in `releases/.staging-RELEASE-PID/`. While it is built, the
/// link `releases/RELEASE -> .staging-RELEASE-PID` lets it be filled through its final
/// path, so the paths written into the venv (shebangs, `activate`) are the final ones.
/// Whatever fills it lists what it writes in [`Staging::to_sync`]. Dropping it without
/// [`Staging::finish`] removes it (on an error or a panic); if the process is killed
/// instead, [`remove_stale_staging`] does it later.
#[derive(Debug)]
pub struct Staging {
    staging_dir: PathBuf,
    final_dir: PathBuf,
    to_sync: ToSync,
    finished: bool,
}

impl Staging {
    /// Creates the staging directory and the link to it (and `releases/` when needed).
    pub fn create(tree: &AppTree, release: &str) -> Result<Staging> {
        pyapp_fs::ensure_dir(&tree.releases_dir(), 0o755)?;
        let name = format!("{STAGING_PREFIX}{release}-{}", std::process::id());
        let staging_dir = tree.releases_dir().join(&name);
        pyapp_fs::remove_dir_all_if_exists(&staging_dir)?;
        pyapp_fs::ensure_dir(&staging_dir, 0o755)?;
        let final_dir = tree.release_dir(release);
        let to_sync = ToSync::new();
        to_sync.dir(&staging_dir);
        let staging = Staging {
            staging_dir,
            final_dir,
            to_sync,
            finished: false,
        };
        pyapp_fs::replace_symlink(Path::new(&name), &staging.final_dir)?;
        Ok(staging)
    }

    /// The directory being filled.
    pub fn dir(&self) -> &Path {
        &self.staging_dir
    }

    /// The release's final directory, a link to [`Staging::dir`] until finished: the path
    /// to write into files that refer to the release.
    pub fn final_path(&self) -> &Path {
        &self.final_dir
    }

    /// Where every directory created or given entries in the staged tree, and every file
    /// written into it (not those hard-linked from the store), is to be listed: what
    /// [`Staging::finish`] makes durable.
    pub fn to_sync(&self) -> &ToSync {
        &self.to_sync
    }

    /// Writes `record`, the release's own record ([`RECORD_FILE`]), into it, durably.
    pub fn save_record(&self, record: &ReleaseRecord) -> Result<()> {
        let file = RecordFile {
            release_format: RecordFile::FORMAT,
            record: record.clone(),
        };
        let path = self.staging_dir.join(RECORD_FILE);
        state::write(&path, &file)?;
        self.to_sync.file_at(&path);
        Ok(())
    }

    /// Makes the staged tree durable (what [`Staging::to_sync`] lists: the data of the
    /// files written into it and its directories; files hard-linked from the store were
    /// made durable there before they were linked; a debug build checks that nothing else
    /// was written) and renames it to its final name in place of the link, durably:
    /// `releases/` and the app's directory (which may have just been given `releases/`)
    /// are synced after the rename.
    pub fn finish(mut self) -> Result<()> {
        self.to_sync.debug_assert_covers(&self.staging_dir);
        self.to_sync.sync()?;
        pyapp_fs::remove_file_if_exists(&self.final_dir)?;
        pyapp_fs::rename(&self.staging_dir, &self.final_dir)?;
        let releases = self.final_dir.parent();
        for dir in releases.into_iter().chain(releases.and_then(Path::parent)) {
            pyapp_fs::sync_dir(dir)?;
        }
        self.finished = true;
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.finished {
            // Best effort: a leftover is removed by the next run anyway.
            let _ = std::fs::remove_file(&self.final_dir);
            let _ = std::fs::remove_dir_all(&self.staging_dir);
        }
    }
}

/// Removes what a killed earlier run left behind: unfinished releases (staging
/// directories and the links to them), half-deleted ones, and a new `current` link that
/// was never renamed into place. Call it holding the app's lock, so that no running
/// install's staging directory is taken away.
pub fn remove_stale_staging(tree: &AppTree) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for name in pyapp_fs::list_dir(&tree.releases_dir())? {
        let path = tree.release_dir(&name);
        if name.starts_with(STAGING_PREFIX) || name.starts_with(REMOVING_PREFIX) {
            pyapp_fs::remove_dir_all_if_exists(&path)?;
            removed.push(name);
        } else if pyapp_fs::read_link_optional(&path)?.is_some() {
            pyapp_fs::remove_file_if_exists(&path)?;
        }
    }
    let current = tree.current_link();
    let new_current = format!(
        "{}.tmp-",
        current.file_name().unwrap_or_default().to_string_lossy()
    );
    for name in pyapp_fs::list_dir(tree.dir())? {
        if name.starts_with(&new_current) {
            pyapp_fs::remove_file_if_exists(&tree.dir().join(name))?;
        }
    }
    Ok(removed)
}

/// Deletes the release `name`: renamed to a `.removing-` name first (durably), so a crash
/// in the middle never leaves a partial tree under a release's name for a later install
/// to switch to.
pub fn remove_release(tree: &AppTree, name: &str) -> Result<()> {
    delete_release(tree, name, None)
}

/// [`remove_release`], with the fault point `point` (if any) half-way through the deletion.
fn delete_release(tree: &AppTree, name: &str, point: Option<&str>) -> Result<()> {
    let path = tree.release_dir(name);
    if !pyapp_fs::exists(&path)? {
        return Ok(());
    }
    let doomed = tree.release_dir(&format!("{REMOVING_PREFIX}{name}"));
    pyapp_fs::remove_dir_all_if_exists(&doomed)?;
    pyapp_fs::rename(&path, &doomed)?;
    pyapp_fs::sync_dir(&tree.releases_dir())?;
    if let Some(point) = point {
        pyapp_fs::remove_dir_all_if_exists(&doomed.join("venv"))?;
        fault::point(point);
    }
    Ok(pyapp_fs::remove_dir_all_if_exists(&doomed)?)
}

/// Deletes every release and `releases/` itself (for `remove`), one release at a time
/// with [`remove_release`]. `current` must be gone already.
pub fn remove_all(tree: &AppTree) -> Result<()> {
    remove_stale_staging(tree)?;
    for name in releases_on_disk(tree)? {
        delete_release(tree, &name, Some("mid-remove"))?;
    }
    Ok(pyapp_fs::remove_dir_all_if_exists(&tree.releases_dir())?)
}

/// The complete releases on disk, by name.
pub fn releases_on_disk(tree: &AppTree) -> Result<Vec<String>> {
    let mut releases = Vec::new();
    for name in pyapp_fs::list_dir(&tree.releases_dir())? {
        if !name.starts_with('.') && pyapp_fs::is_real_dir(&tree.release_dir(&name))? {
            releases.push(name);
        }
    }
    Ok(releases)
}

/// The release `current` points at, if `current` is a link of the form `releases/NAME`.
pub fn current_release(tree: &AppTree) -> Result<Option<String>> {
    let Some(target) = pyapp_fs::read_link_optional(&tree.current_link())? else {
        return Ok(None);
    };
    let name = target
        .strip_prefix("releases")
        .ok()
        .filter(|rest| rest.components().count() == 1)
        .and_then(|rest| rest.to_str())
        .map(str::to_owned);
    Ok(name)
}

/// The record `release` keeps of itself, if it has one (releases built before records were
/// written have none).
pub fn load_record(tree: &AppTree, release: &str) -> Result<Option<ReleaseRecord>> {
    let path = tree.release_dir(release).join(RECORD_FILE);
    Ok(state::read::<RecordFile>(&path)?.map(|file| file.record))
}

/// `receipt` as `current` says it is. A crash between the switch and the receipt leaves
/// `current` at a release the receipt does not list: with that release's own record it
/// becomes the current one, after the releases the receipt had (as the install would
/// have written it), those no longer on disk (pruned before the crash) dropped. Otherwise
/// (`current` agrees, is one of the listed releases, or has no record) `receipt` as it is.
pub fn completed_receipt(tree: &AppTree, receipt: Receipt) -> Result<Receipt> {
    let Some(current) = current_release(tree)? else {
        return Ok(receipt);
    };
    if receipt.releases.iter().any(|r| r.release == current) {
        return Ok(receipt);
    }
    let Some(record) = load_record(tree, &current)?.filter(|r| r.release == current) else {
        return Ok(receipt);
    };
    let on_disk = releases_on_disk(tree)?;
    Ok(Receipt::with_current(&receipt.name, Some(&receipt), record)
        .retaining(|r| on_disk.contains(&r.release)))
}

/// The release an install of `release` replaces: the one `current` points at or, when
/// `current` already points at `release` (an earlier run was killed between the switch
/// and the receipt), the receipt's current release if it is still on disk; so that run's
/// hooks and a rollback after a failed health check still see the upgrade it was.
pub fn running_before(tree: &AppTree, receipt: &Receipt, release: &str) -> Result<Option<String>> {
    match current_release(tree)? {
        Some(current) if current != release => Ok(Some(current)),
        Some(_)
            if receipt.release != release
                && pyapp_fs::is_real_dir(&tree.release_dir(&receipt.release))? =>
        {
            Ok(Some(receipt.release.clone()))
        }
        _ => Ok(None),
    }
}

/// Points `current` at `releases/RELEASE` atomically (a relative link, so the tree can be
/// staged under `--root` and moved).
pub fn switch_current(tree: &AppTree, release: &str) -> Result<()> {
    Ok(pyapp_fs::replace_symlink(
        &Path::new("releases").join(release),
        &tree.current_link(),
    )?)
}

/// Saves `receipt` with `record` (complete on disk) as the app's staged release, then
/// deletes the release staged before it, if any and not the same: the last bundle staged
/// is the one that waits (the earlier one's bundle can stage or install it again).
/// Returns the deleted release's name.
pub fn save_staged(
    tree: &AppTree,
    receipt: &Receipt,
    record: ReleaseRecord,
) -> Result<Option<String>> {
    let replaced = receipt
        .staged
        .as_ref()
        .map(|staged| staged.release.clone())
        .filter(|name| {
            *name != record.release && receipt.releases.iter().all(|r| r.release != *name)
        });
    receipt.with_staged(record).save(&tree.receipt_path())?;
    if let Some(name) = &replaced {
        remove_release(tree, name)?;
    }
    Ok(replaced)
}

/// Removes old releases so that at most `keep` remain (see [`releases_to_prune`]);
/// returns the receipt without them and the removed names.
pub fn prune(tree: &AppTree, receipt: &Receipt, keep: usize) -> Result<(Receipt, Vec<String>)> {
    let doomed = releases_to_prune(tree, receipt, keep)?;
    for name in &doomed {
        delete_release(tree, name, Some("mid-prune"))?;
    }
    let kept = receipt.retaining(|r| !doomed.contains(&r.release));
    Ok((kept, doomed))
}

/// The releases to remove so that at most `keep` remain, never the current one nor the
/// one before it (rollback's target). Complete releases the receipt does not know (left by
/// a crash before the receipt was written) count as the oldest. The staged release is
/// neither counted nor removed.
pub fn releases_to_prune(tree: &AppTree, receipt: &Receipt, keep: usize) -> Result<Vec<String>> {
    let known: HashSet<&str> = receipt
        .releases
        .iter()
        .chain(&receipt.staged)
        .map(|r| r.release.as_str())
        .collect();
    let mut oldest_first: Vec<String> = releases_on_disk(tree)?
        .into_iter()
        .filter(|name| !known.contains(name.as_str()))
        .collect();
    oldest_first.extend(receipt.releases.iter().map(|r| r.release.clone()));
    let mut protected = vec![receipt.release.as_str()];
    protected.extend(receipt.previous().map(|r| r.release.as_str()));
    Ok(releases_to_remove(&oldest_first, &protected, keep))
}

/// Which of `oldest_first` go so that at most `keep` stay (the newest), `protected` always
/// staying (and counting).
fn releases_to_remove(oldest_first: &[String], protected: &[&str], keep: usize) -> Vec<String> {
    let mut room = keep.saturating_sub(protected.len());
    let mut doomed = Vec::new();
    for name in oldest_first.iter().rev() {
        if protected.contains(&name.as_str()) {
            continue;
        }
        if room > 0 {
            room -= 1;
        } else {
            doomed.push(name.clone());
        }
    }
    doomed.reverse();
    doomed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn keeps_the_newest_and_never_current_or_previous() {
        let all = names(&["a", "b", "c", "d", "e"]);
        assert_eq!(releases_to_remove(&all, &["e", "d"], 3), names(&["a", "b"]));
        // After a rollback to "b", "b" and "a" stay whatever their age.
        assert_eq!(releases_to_remove(&all, &["b", "a"], 3), names(&["c", "d"]));
        assert_eq!(
            releases_to_remove(&all, &["e", "d"], 2),
            names(&["a", "b", "c"])
        );
        assert!(releases_to_remove(&all, &["e", "d"], 10).is_empty());
    }

    #[test]
    fn release_names_carry_twelve_hex_digits() {
        assert_eq!(
            release_name("1.0.0", "0123456789abcdef0123"),
            "1.0.0-0123456789ab"
        );
    }
}
