//! Filesystem calls for the installer, each of whose errors names the path, and which never
//! follow a symbolic link where the app's user could have planted one: pyapp-install runs
//! as root inside directories the app may write to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};

use crate::error::{FsError, Result};

/// Refuses when something other than a real directory is at `path` (a link, even to a
/// directory, or a file); nothing there is fine.
pub fn check_dir_or_missing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => Ok(()),
        Ok(meta) => Err(in_the_way(path, meta.file_type().is_symlink())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(FsError::io("inspect", path)(err)),
    }
}

/// Makes sure `path` is a real directory (not a link to one), creating it with `mode`
/// if it is missing. What is already there is not touched. Safe in a parent directory the
/// app's user can write to: every step works on a descriptor of the parent opened without
/// following links, so a link swapped in between two steps is refused, never followed.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => {
            return Err(FsError::NoParent {
                path: path.to_owned(),
            })
        }
    };
    let parent_dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(parent)
        .map_err(|err| match err.raw_os_error() {
            Some(nix::libc::ELOOP | nix::libc::ENOTDIR) => in_the_way(parent, true),
            _ => FsError::io("open", parent)(err),
        })?;
    let mode = Mode::from_bits_truncate(mode);
    match fstatat(&parent_dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
            return Ok(())
        }
        Ok(stat) => {
            let is_link = SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK;
            return Err(in_the_way(path, is_link));
        }
        Err(Errno::ENOENT) => {}
        Err(err) => return Err(FsError::io("inspect", path)(err)),
    }
    mkdirat(&parent_dir, name, mode).map_err(FsError::io("create directory", path))?;
    // The umask may have narrowed the mode: set it exactly, on the new directory itself.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(&parent_dir, name, flags, Mode::empty())
        .and_then(|dir| fchmod(&dir, mode))
        .map_err(FsError::io("set the mode of", path))
}

/// The error for a link or a file where a directory is needed.
fn in_the_way(path: &Path, is_link: bool) -> FsError {
    FsError::InTheWay {
        path: path.to_owned(),
        link: is_link,
    }
}

/// Whether anything (a file, a directory, a link, even a dangling one) is at `path`.
pub fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(FsError::io("inspect", path)(err)),
    }
}

/// Whether `path` is a real directory (a link to one does not count).
pub fn is_real_dir(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.file_type().is_dir()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(FsError::io("inspect", path)(err)),
    }
}

/// The contents of a file, or `None` when it does not exist. A link is not followed.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path);
    match file {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            io::Read::read_to_end(&mut file, &mut bytes).map_err(FsError::io("read", path))?;
            Ok(Some(bytes))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(FsError::io("open", path)(err)),
    }
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old or the new
/// contents, never a mix: write a temporary file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent(path)?;
    replace_file(dir, path, bytes, mode)?;
    sync_dir(dir)
}

/// [`write_atomic`] for several files of the directory `dir`, each `(name, bytes)` with
/// `mode`: each replaced as [`write_atomic`] does, in order, and `dir` synced once for all
/// of them (a crash leaves each file old or new).
pub fn write_atomic_in(dir: &Path, files: &[(&str, &[u8])], mode: u32) -> Result<()> {
    if files.is_empty() {
        return Ok(());
    }
    for (name, bytes) in files {
        replace_file(dir, &dir.join(name), bytes, mode)?;
    }
    sync_dir(dir)
}

/// Writes `bytes` into a temporary file in `dir` (`path`'s directory), syncs it and renames
/// it over `path`; the directory is not synced.
fn replace_file(dir: &Path, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    remove_file_if_exists(&tmp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(FsError::io("create", &tmp))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(FsError::io("write", &tmp))?;
    drop(file);
    rename(&tmp, path)
}

/// Points the symbolic link `link` at `target` atomically: a new link is made beside it
/// and renamed over the old one, so `link` always resolves to the old or the new target.
pub fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    let dir = parent(link)?;
    let tmp = dir.join(format!(
        "{}.tmp-{}",
        link.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    remove_file_if_exists(&tmp)?;
    std::os::unix::fs::symlink(target, &tmp).map_err(FsError::io("create the link", &tmp))?;
    rename(&tmp, link)?;
    sync_dir(dir)
}

/// Where the symbolic link at `path` points, or `None` when there is no link there
/// (nothing, or something that is not a link).
pub fn read_link_optional(path: &Path) -> Result<Option<std::path::PathBuf>> {
    match fs::read_link(path) {
        Ok(target) => Ok(Some(target)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) if err.raw_os_error() == Some(nix::libc::EINVAL) => Ok(None),
        Err(err) => Err(FsError::io("read the link", path)(err)),
    }
}

/// Renames `from` to `to` (same filesystem), replacing a file or link at `to`.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|source| FsError::Rename {
        from: from.to_owned(),
        to: to.to_owned(),
        source,
    })
}

/// Removes a file or a link (never what it points to); nothing there is fine.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(FsError::io("remove", path)(err)),
    }
}

/// Removes a directory tree without following the links inside it; nothing there is fine.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(FsError::io("remove", path)(err)),
    }
}

/// The names in a directory (an empty list when the directory does not exist).
pub fn list_dir(path: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(FsError::io("list", path)(err)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(FsError::io("list", path))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Flushes a directory's entries (new names, renames) to disk.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .map_err(FsError::io("sync the directory", path))
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent().ok_or_else(|| FsError::NoParent {
        path: path.to_owned(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_written_atomically_in_one_directory_replace_the_old_and_leave_nothing_beside() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.service"), b"old").unwrap();
        write_atomic_in(
            dir.path(),
            &[("a.service", b"new a"), ("b.timer", b"new b")],
            0o644,
        )
        .unwrap();
        assert_eq!(fs::read(dir.path().join("a.service")).unwrap(), b"new a");
        assert_eq!(fs::read(dir.path().join("b.timer")).unwrap(), b"new b");
        let mode = fs::metadata(dir.path().join("b.timer"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o644);
        assert_eq!(list_dir(dir.path()).unwrap(), ["a.service", "b.timer"]);
        write_atomic_in(dir.path(), &[], 0o644).unwrap();
    }
}
