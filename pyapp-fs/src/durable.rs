//! Making what an install wrote durable, and nothing else: the server's other writers (a
//! database, a log shipper) keep their dirty data to themselves, so the install never waits
//! for it and their own `fsync`s are not stuck behind a flush of the whole filesystem.
//!
//! Every writer reports what it writes to a [`ToSync`]: each file as it is closed
//! ([`ToSync::file`], which hands its dirty pages to the kernel for write-back without
//! waiting) and each directory it creates or adds entries to ([`ToSync::dir`]). Once the
//! tree is complete, [`ToSync::sync`] waits for the files' data (`fdatasync`) and for the
//! directories (`fsync`), many at once so the journal commits them together, before the
//! caller renames the tree into place and syncs the directory of that rename. Nothing is
//! walked: the list is what was written. A debug build checks that it is all that was
//! ([`ToSync::debug_assert_covers`]).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{FsError, Result};

/// How many syncs are in flight at once. They mostly wait for the disk, not the CPU:
/// enough of them let the filesystem batch them into few journal commits (and the block
/// layer into few cache flushes) and keep the device's queue full.
const SYNC_THREADS: usize = 16;

/// What was written into a tree and is not durable yet: the regular files written (not
/// hard links to files made durable elsewhere) and the directories created or given new
/// entries. Shared by the threads that write (it locks).
#[derive(Debug, Default)]
pub struct ToSync {
    files: Mutex<Vec<PathBuf>>,
    dirs: Mutex<HashSet<PathBuf>>,
}

impl ToSync {
    pub fn new() -> ToSync {
        ToSync::default()
    }

    /// `file`, just written at `path`: the kernel is asked to start writing its dirty
    /// pages now, without waiting (sync_file_range(2) with `SYNC_FILE_RANGE_WRITE`, only a
    /// hint: a filesystem without it is fine), so that [`ToSync::sync`] finds them written
    /// or under way.
    pub fn file(&self, file: &File, path: &Path) {
        start_writeback(file);
        self.file_at(path);
    }

    /// The file at `path`, written and closed by someone else: [`ToSync::sync`] waits for
    /// its data.
    pub fn file_at(&self, path: &Path) {
        lock(&self.files).push(path.to_path_buf());
    }

    /// The directory at `path` was created or given entries (a file, a link, a
    /// subdirectory): [`ToSync::sync`] syncs it, once however often it is listed.
    pub fn dir(&self, path: &Path) {
        let mut dirs = lock(&self.dirs);
        if !dirs.contains(path) {
            dirs.insert(path.to_path_buf());
        }
    }

    /// [`ToSync::dir`] for `dir` and each directory between it and `base` (`base`
    /// included): what creating `dir` with its missing parents may have changed.
    pub fn dirs_from(&self, base: &Path, dir: &Path) {
        for path in dir.ancestors().take_while(|path| path.starts_with(base)) {
            self.dir(path);
        }
    }

    /// Makes everything listed durable, and empties the list: the data of its files
    /// (`fdatasync`) and its directories (`fsync`: their entries and the inodes they name),
    /// [`SYNC_THREADS`] at a time, one descriptor each, links never followed. The tree
    /// must be complete (the order within it does not matter): renaming it afterwards,
    /// then syncing the directory of the rename, publishes a tree a crash cannot leave
    /// half written. The first error is returned; nothing more is started after it.
    pub fn sync(&self) -> Result<()> {
        let files = std::mem::take(&mut *lock(&self.files));
        let dirs = std::mem::take(&mut *lock(&self.dirs));
        let work: Vec<(PathBuf, bool)> = files
            .into_iter()
            .map(|path| (path, false))
            .chain(dirs.into_iter().map(|path| (path, true)))
            .collect();
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<FsError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..SYNC_THREADS.min(work.len()) {
                scope.spawn(|| {
                    while let Some((path, dir)) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(err) = sync_one(path, *dir) {
                            lock(&failed).get_or_insert(err);
                        }
                        if lock(&failed).is_some() {
                            break;
                        }
                    }
                });
            }
        });
        match failed.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    /// In a debug build, panics when the tree at `root` holds a directory, or a regular
    /// file with a single link, that is not listed: a writer into it that did not say
    /// what it wrote, which [`ToSync::sync`] would leave to chance. Paths are compared
    /// with their links resolved (a tree may be written through a link to it). Does
    /// nothing in a release build. Call it once the tree is complete, before syncing.
    pub fn debug_assert_covers(&self, root: &Path) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut parents: HashMap<PathBuf, PathBuf> = HashMap::new();
        let mut real = |path: &Path| -> PathBuf {
            let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
                return path.to_path_buf();
            };
            let parent = parents.entry(parent.to_path_buf()).or_insert_with(|| {
                std::fs::canonicalize(parent)
                    .unwrap_or_else(|err| panic!("`{}`: {err}", parent.display()))
            });
            parent.join(name)
        };
        let files: HashSet<PathBuf> = lock(&self.files).iter().map(|p| real(p)).collect();
        let dirs: HashSet<PathBuf> = lock(&self.dirs).iter().map(|p| real(p)).collect();
        let root = real(root);
        let mut missing = Vec::new();
        let mut pending = vec![root.clone()];
        while let Some(dir) = pending.pop() {
            let listing =
                std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("`{}`: {err}", dir.display()));
            for entry in listing {
                let entry = entry.unwrap_or_else(|err| panic!("`{}`: {err}", dir.display()));
                let path = entry.path();
                let meta = entry
                    .metadata()
                    .unwrap_or_else(|err| panic!("`{}`: {err}", path.display()));
                if meta.is_dir() {
                    pending.push(path);
                } else if meta.is_file() && meta.nlink() == 1 && !files.contains(&path) {
                    missing.push(path);
                }
            }
            if !dirs.contains(&dir) {
                missing.push(dir);
            }
        }
        assert!(
            missing.is_empty(),
            "written under `{}` but not listed to be synced: {missing:?}",
            root.display()
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[allow(unsafe_code)]
fn start_writeback(file: &File) {
    // SAFETY: sync_file_range only reads its integer arguments; the descriptor is borrowed
    // from an open `File` for the duration of the call, and the range 0..0 means "to the
    // end of the file". No memory is shared with the kernel.
    let _ = unsafe {
        nix::libc::sync_file_range(file.as_raw_fd(), 0, 0, nix::libc::SYNC_FILE_RANGE_WRITE)
    };
}

/// Syncs the directory (`fsync`) or the file's data (`fdatasync`) at `path`.
fn sync_one(path: &Path, dir: bool) -> Result<()> {
    let flags = nix::libc::O_NOFOLLOW | if dir { nix::libc::O_DIRECTORY } else { 0 };
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(FsError::io("open", path))?;
    if dir {
        handle
            .sync_all()
            .map_err(FsError::io("sync the directory", path))
    } else {
        nix::unistd::fdatasync(&handle).map_err(FsError::io("sync", path))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::fs;

    /// A tree written and listed as an install does: a file, a subtree made at once, a
    /// hard link to a file made durable elsewhere, a symbolic link.
    fn written_tree(root: &Path, to_sync: &ToSync) {
        let elsewhere = root.join("elsewhere");
        fs::write(&elsewhere, b"durable already").unwrap();
        let tree = root.join("tree");
        fs::create_dir_all(tree.join("a/b/c")).unwrap();
        to_sync.dirs_from(&tree, &tree.join("a/b/c"));
        let one = tree.join("a/one");
        let file = fs::File::create(&one).unwrap();
        to_sync.file(&file, &one);
        fs::write(tree.join("a/b/c/two"), b"2").unwrap();
        to_sync.file_at(&tree.join("a/b/c/two"));
        fs::hard_link(&elsewhere, tree.join("linked")).unwrap();
        std::os::unix::fs::symlink("a", tree.join("symlink")).unwrap();
    }

    #[test]
    fn what_is_listed_is_synced_once_and_the_list_emptied() {
        let root = tempfile::tempdir().unwrap();
        let to_sync = ToSync::new();
        written_tree(root.path(), &to_sync);
        to_sync.dir(&root.path().join("tree/a"));
        assert_eq!(lock(&to_sync.dirs).len(), 4, "tree, a, b and c, each once");
        to_sync.debug_assert_covers(&root.path().join("tree"));
        to_sync.sync().unwrap();
        assert!(lock(&to_sync.files).is_empty() && lock(&to_sync.dirs).is_empty());
        ToSync::new().sync().unwrap();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not listed to be synced")]
    fn a_file_no_one_listed_is_caught_in_a_debug_build() {
        let root = tempfile::tempdir().unwrap();
        let to_sync = ToSync::new();
        written_tree(root.path(), &to_sync);
        fs::write(root.path().join("tree/a/unlisted"), b"").unwrap();
        to_sync.debug_assert_covers(&root.path().join("tree"));
    }

    #[test]
    fn a_missing_path_or_a_file_listed_as_a_directory_is_an_error_naming_it() {
        let root = tempfile::tempdir().unwrap();
        let to_sync = ToSync::new();
        to_sync.file_at(&root.path().join("missing"));
        let err = to_sync.sync().unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
        fs::write(root.path().join("one"), b"1").unwrap();
        to_sync.dir(&root.path().join("one"));
        let err = to_sync.sync().unwrap_err().to_string();
        assert!(err.contains("one"), "{err}");
    }
}
