//! The filesystem an app is installed on: how much room is left on it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::statvfs::statvfs;

/// The room on the filesystem of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// The directory asked about, or its nearest ancestor that exists (the apps directory
    /// of a first install does not yet).
    pub dir: PathBuf,
    /// Bytes an unprivileged writer can still take (root's reserve not counted).
    pub free: u64,
    /// The allocation unit: a file takes a whole number of them.
    pub block: u64,
}

/// The room on the filesystem that holds (or will hold) `dir`.
pub fn room(dir: &Path) -> Result<Room> {
    let existing = dir
        .ancestors()
        .find(|candidate| candidate.is_dir())
        .unwrap_or(Path::new("/"));
    let stats = statvfs(existing)
        .with_context(|| format!("failed to read the free space of `{}`", existing.display()))?;
    let block = stats.fragment_size().max(1);
    Ok(Room {
        dir: existing.to_owned(),
        free: stats.blocks_available().saturating_mul(block),
        block,
    })
}
