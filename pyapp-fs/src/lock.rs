//! One lock per app (`APPS/APP/.pyapp/lock`) so two commands never change the same app at
//! once. It is an advisory file lock (flock): the kernel frees it when its holder exits,
//! even by SIGKILL, so a lock left by a dead process is simply free again. The holder
//! writes its pid into the file so that the one who waits can say who is in the way, and
//! empties it again when it lets go.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{FsError, Result};

/// What to do when another process holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenHeld {
    /// Refuse at once, naming the holder.
    FailFast,
    /// Block until the holder is done.
    Wait,
}

/// The held lock of one app; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct AppLock {
    file: File,
}

impl AppLock {
    /// Takes the lock at `path` for the app `app`, creating the file if needed.
    pub fn acquire(path: &Path, app: &str, when_held: WhenHeld) -> Result<AppLock> {
        let mut file = open_lock_file(path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) if when_held == WhenHeld::Wait => {
                file.lock().map_err(FsError::io("lock", path))?;
            }
            Err(TryLockError::WouldBlock) => {
                return Err(held_by_another(&mut file, path.to_owned(), app));
            }
            Err(TryLockError::Error(err)) => {
                return Err(FsError::io("lock", path)(err));
            }
        }
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(FsError::io("write the lock file", path))?;
        Ok(AppLock { file })
    }
}

impl Drop for AppLock {
    /// Empties the file before the lock goes (a pid names a holder only while it holds
    /// it), so a command that changed nothing, a refused install, leaves it as it was.
    fn drop(&mut self) {
        let _ = self.file.set_len(0);
    }
}

/// Opens (creating it, 0644, never through a link) the file a lock is taken on.
pub fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(FsError::io("open the lock file", path))
}

fn held_by_another(file: &mut File, path: PathBuf, app: &str) -> FsError {
    let mut text = String::new();
    let holder = match file.read_to_string(&mut text) {
        Ok(_) if !text.trim().is_empty() => format!("process {}", text.trim()),
        _ => "another process".to_owned(),
    };
    FsError::Locked {
        app: app.to_owned(),
        holder,
        path,
    }
}
