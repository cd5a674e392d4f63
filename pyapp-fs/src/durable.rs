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
use std::sync::{Condvar, Mutex, PoisonError};

use crate::error::{FsError, Result};

/// How many syncs are in flight at once. They mostly wait for the disk, not the CPU:
/// enough of them let the filesystem batch them into few journal commits (and the block
/// layer into few cache flushes) and keep the device's queue full.
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
/// `files` (`fdatasync`) and every directory of them, each root included (`fsync`: their
/// entries and the inodes they name). The trees are walked and synced in one pass by
/// [`SYNC_THREADS`] threads, each directory synced as it is listed (the trees are
/// complete: the order within them does not matter). Renaming a root afterwards, then
/// syncing the directory of the rename, publishes a tree a crash cannot leave half written.
pub fn sync_trees(roots: &[&Path], files: Files) -> Result<()> {
    let walk = Walk {
        queue: Mutex::new((
            roots.iter().map(|root| root.to_path_buf()).collect(),
            roots.len(),
        )),
        changed: Condvar::new(),
        failed: Mutex::new(None),
        files,
    };
    std::thread::scope(|scope| {
        for _ in 0..SYNC_THREADS {
            scope.spawn(|| walk.work());
        }
    });
    match walk
        .failed
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// The directories [`sync_trees`] has yet to sync and list, shared by its threads.
struct Walk {
    /// The directories queued, and how many are queued or being worked on: the walk is
    /// over when none are.
    queue: Mutex<(Vec<PathBuf>, usize)>,
    changed: Condvar,
    failed: Mutex<Option<FsError>>,
    files: Files,
}

impl Walk {
    fn work(&self) {
        while let Some(dir) = self.next() {
            let listed = self.sync_dir(&dir);
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            match listed {
                Ok(children) => {
                    let stopped = self
                        .failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .is_some();
                    if !stopped {
                        queue.1 += children.len();
                        queue.0.extend(children);
                    }
                }
                Err(err) => {
                    // Nothing more is started; the first error is the one reported.
                    queue.1 -= queue.0.len();
                    queue.0.clear();
                    self.failed
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .get_or_insert(err);
                }
            }
            queue.1 -= 1;
            self.changed.notify_all();
        }
    }

    /// The next directory to work on, waiting while others may still find some; `None`
    /// when the walk is over.
    fn next(&self) -> Option<PathBuf> {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(dir) = queue.0.pop() {
                return Some(dir);
            }
            if queue.1 == 0 {
                return None;
            }
            queue = self
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Syncs `dir` and the files in it that are to be synced; its subdirectories.
    fn sync_dir(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let handle = open_no_follow(dir, true).map_err(FsError::io("open", dir))?;
        handle
            .sync_all()
            .map_err(FsError::io("sync the directory", dir))?;
        let mut children = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(FsError::io("list", dir))? {
            let entry = entry.map_err(FsError::io("list", dir))?;
            let kind = entry
                .file_type()
                .map_err(FsError::io("inspect", &entry.path()))?;
            let path = entry.path();
            if kind.is_dir() {
                children.push(path);
            } else if kind.is_file() && self.wanted(&entry)? {
                open_no_follow(&path, false)
                    .and_then(|file| nix::unistd::fdatasync(&file).map_err(Into::into))
                    .map_err(FsError::io("sync", &path))?;
            }
        }
        Ok(children)
    }

    fn wanted(&self, entry: &std::fs::DirEntry) -> Result<bool> {
        Ok(match self.files {
            Files::All => true,
            Files::SingleLink => {
                let meta = entry
                    .metadata()
                    .map_err(FsError::io("inspect", &entry.path()))?;
                meta.nlink() == 1
            }
        })
    }
}

fn open_no_follow(path: &Path, dir: bool) -> std::io::Result<File> {
    let flags = nix::libc::O_NOFOLLOW | if dir { nix::libc::O_DIRECTORY } else { 0 };
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn every_tree_is_walked_whole_and_a_missing_one_is_refused() {
        let root = tempfile::tempdir().unwrap();
        let trees: Vec<PathBuf> = (0..3)
            .map(|n| root.path().join(format!("tree{n}")))
            .collect();
        for tree in &trees {
            fs::create_dir_all(tree.join("a/b/c")).unwrap();
            fs::write(tree.join("a/one"), b"1").unwrap();
            fs::write(tree.join("a/b/c/two"), b"2").unwrap();
            fs::hard_link(tree.join("a/one"), tree.join("linked")).unwrap();
            std::os::unix::fs::symlink("a", tree.join("symlink")).unwrap();
            start_writeback(&File::open(tree.join("a/one")).unwrap());
        }
        let roots: Vec<&Path> = trees.iter().map(PathBuf::as_path).collect();
        sync_trees(&roots, Files::SingleLink).unwrap();
        sync_trees(&roots, Files::All).unwrap();
        // A file where a directory was expected: opened with O_DIRECTORY, refused.
        let err = sync_trees(&[&trees[0].join("a/one")], Files::All).unwrap_err();
        assert!(err.to_string().contains("one"), "{err}");
    }

    #[test]
    fn a_missing_tree_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let missing = root.path().join("missing");
        let err = sync_trees(&[&missing], Files::All).unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
