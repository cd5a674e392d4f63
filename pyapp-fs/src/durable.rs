//! Making what an install wrote durable, and nothing else: the server's other writers (a
//! database, a log shipper) keep their dirty data to themselves, so the install never waits
//! for it and their own `fsync`s are not stuck behind a flush of the whole filesystem.
//!
//! Files are handed to the kernel for write-back as soon as they are closed
//! ([`start_writeback`], which does not wait); once a tree is complete, [`sync_trees`] waits
//! for its files' data (`fdatasync`, many at once, so the journal commits them together)
//! and then for its directories (`fsync`), before the caller renames the tree into place
//! and syncs the directory of that rename.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{FsError, Result};

/// How many `fdatasync`s are in flight at once. They mostly wait for the disk, not the
/// CPU: enough of them let the filesystem batch them into few journal commits and keep
/// the device's queue full.
const SYNC_THREADS: usize = 16;

/// Asks the kernel to start writing `file`'s dirty pages to disk now, without waiting for
/// it (sync_file_range(2) with `SYNC_FILE_RANGE_WRITE`), so the `fdatasync` of
/// [`sync_trees`] finds them written or under way. Only a hint: an error (a filesystem that
/// has no such thing) is ignored, [`sync_trees`] makes the file durable all the same.
pub fn start_writeback(file: &File) {
    start_writeback_fd(file.as_raw_fd());
}

#[allow(unsafe_code)]
fn start_writeback_fd(fd: std::os::fd::RawFd) {
    // SAFETY: sync_file_range only reads its integer arguments; `fd` is a descriptor
    // borrowed from an open `File` for the duration of the call, and the range 0..0 means
    // "to the end of the file". No memory is shared with the kernel.
    let _ = unsafe { nix::libc::sync_file_range(fd, 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE) };
}

/// Which regular files of a tree [`sync_trees`] waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Files {
    /// All of them.
    All,
    /// Only those with a single link: a file with more is a hard link to one that was made
    /// durable where it was first written (the shared store), before this tree linked it.
    SingleLink,
}

/// Makes the trees at `roots` durable, links not followed: the data of their regular
/// `files` (`fdatasync`, in parallel), then every directory of them, each root included
/// (`fsync`: their entries and the inodes they name). Renaming a root afterwards, then
/// syncing the directory of the rename, publishes a tree a crash cannot leave half written.
pub fn sync_trees(roots: &[&Path], files: Files) -> Result<()> {
    let (mut regular, mut dirs) = (Vec::new(), Vec::new());
    for root in roots {
        let (more_files, more_dirs) = list_tree(root, files)?;
        regular.extend(more_files);
        dirs.extend(more_dirs);
    }
    in_parallel(&regular, |path| {
        open_no_follow(path, false)
            .and_then(|file| nix::unistd::fdatasync(&file).map_err(Into::into))
            .map_err(FsError::io("sync", path))
    })?;
    in_parallel(&dirs, |path| {
        open_no_follow(path, true)
            .and_then(|dir| dir.sync_all())
            .map_err(FsError::io("sync the directory", path))
    })
}

/// The regular files to sync and the directories of the tree at `root`.
fn list_tree(root: &Path, files: Files) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let (mut regular, mut dirs) = (Vec::new(), Vec::new());
    for item in walkdir::WalkDir::new(root).follow_links(false) {
        let item = item.map_err(|err| FsError::io("list", root)(std::io::Error::from(err)))?;
        let kind = item.file_type();
        if kind.is_dir() {
            dirs.push(item.into_path());
        } else if kind.is_file() {
            let wanted = match files {
                Files::All => true,
                Files::SingleLink => {
                    let meta = item
                        .metadata()
                        .map_err(|err| FsError::io("inspect", item.path())(std::io::Error::from(err)))?;
                    meta.nlink() == 1
                }
            };
            if wanted {
                regular.push(item.into_path());
            }
        }
    }
    Ok((regular, dirs))
}

fn open_no_follow(path: &Path, dir: bool) -> std::io::Result<File> {
    let flags = nix::libc::O_NOFOLLOW | if dir { nix::libc::O_DIRECTORY } else { 0 };
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

/// Runs `op` on every path, [`SYNC_THREADS`] at a time; the first error, if any.
fn in_parallel(paths: &[PathBuf], op: impl Fn(&Path) -> Result<()> + Sync) -> Result<()> {
    let next = AtomicUsize::new(0);
    let failed: Mutex<Option<FsError>> = Mutex::new(None);
    let threads = SYNC_THREADS.min(paths.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let at = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = paths.get(at) else { break };
                if let Err(err) = op(path) {
                    next.store(paths.len(), Ordering::Relaxed);
                    failed
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .get_or_insert(err);
                    break;
                }
            });
        }
    });
    match failed
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn every_file_and_directory_is_listed_and_extra_links_are_left_out_when_asked() {
        let root = tempfile::tempdir().unwrap();
        let tree = root.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/one"), b"1").unwrap();
        fs::write(tree.join("a/b/two"), b"2").unwrap();
        fs::write(root.path().join("outside"), b"3").unwrap();
        fs::hard_link(root.path().join("outside"), tree.join("linked")).unwrap();
        std::os::unix::fs::symlink("a", tree.join("symlink")).unwrap();

        let sorted = |mut paths: Vec<PathBuf>| {
            paths.sort();
            paths
        };
        let (all, dirs) = list_tree(&tree, Files::All).unwrap();
        assert_eq!(
            sorted(all),
            [tree.join("a/b/two"), tree.join("a/one"), tree.join("linked")]
        );
        assert_eq!(sorted(dirs), [tree.clone(), tree.join("a"), tree.join("a/b")]);
        let (single, _) = list_tree(&tree, Files::SingleLink).unwrap();
        assert_eq!(sorted(single), [tree.join("a/b/two"), tree.join("a/one")]);

        sync_trees(&[&tree], Files::SingleLink).unwrap();
        start_writeback(&File::open(tree.join("a/one")).unwrap());
    }

    #[test]
    fn a_missing_tree_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        let err = sync_trees(&[&missing], Files::All).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
