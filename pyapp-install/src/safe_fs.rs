//! Filesystem calls for the installer, each of whose errors names the path, and which never
//! follow a symbolic link where the app's user could have planted one: pyapp-install runs
//! as root inside directories the app may write to.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, mkdirat, Mode, SFlag};

use crate::refusal::Refusal;

/// Refuses when something other than a real directory is at `path` (a link, even to a
/// directory, or a file); nothing there is fine.
pub fn check_dir_or_missing(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_dir() => Ok(()),
        Ok(meta) => Err(in_the_way(path, meta.file_type().is_symlink())),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to inspect `{}`", path.display())),
    }
}

/// Makes sure `path` is a real directory (not a link to one), creating it with `mode`
/// if it is missing. What is already there is not touched. Safe in a parent directory the
/// app's user can write to: every step works on a descriptor of the parent opened without
/// following links, so a link swapped in between two steps is refused, never followed.
pub fn ensure_dir(path: &Path, mode: u32) -> Result<()> {
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => anyhow::bail!("`{}` has no parent directory", path.display()),
    };
    let parent_dir = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(parent)
        .map_err(|err| match err.raw_os_error() {
            Some(nix::libc::ELOOP | nix::libc::ENOTDIR) => in_the_way(parent, true),
            _ => anyhow::Error::new(err).context(format!("failed to open `{}`", parent.display())),
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
        Err(err) => {
            return Err(err).with_context(|| format!("failed to inspect `{}`", path.display()))
        }
    }
    mkdirat(&parent_dir, name, mode)
        .with_context(|| format!("failed to create directory `{}`", path.display()))?;
    // The umask may have narrowed the mode: set it exactly, on the new directory itself.
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(&parent_dir, name, flags, Mode::empty())
        .and_then(|dir| fchmod(&dir, mode))
        .with_context(|| format!("failed to set the mode of `{}`", path.display()))
}

/// The refusal for a link or a file where pyapp-install needs a directory.
fn in_the_way(path: &Path, is_link: bool) -> anyhow::Error {
    let what = if is_link {
        "a symbolic link"
    } else {
        "not a directory"
    };
    Refusal::new(format!(
        "`{}` is {what}; refusing to follow or replace it",
        path.display()
    ))
    .with_hint("move it away (it may have been planted), then run pyapp-install again")
    .into()
}

/// Whether anything (a file, a directory, a link, even a dangling one) is at `path`.
pub fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("failed to inspect `{}`", path.display())),
    }
}

/// Whether `path` is a real directory (a link to one does not count).
pub fn is_real_dir(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(meta) => Ok(meta.file_type().is_dir()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err).with_context(|| format!("failed to inspect `{}`", path.display())),
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
            io::Read::read_to_end(&mut file, &mut bytes)
                .with_context(|| format!("failed to read `{}`", path.display()))?;
            Ok(Some(bytes))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("failed to open `{}`", path.display())),
    }
}

/// Replaces `path` with `bytes` so that a reader (or a crash) sees the old or the new
/// contents, never a mix: write a temporary file beside it, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = parent(path)?;
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
        .with_context(|| format!("failed to create `{}`", tmp.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write `{}`", tmp.display()))?;
    drop(file);
    rename(&tmp, path)?;
    sync_dir(dir)
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
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("failed to create the link `{}`", tmp.display()))?;
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
        Err(err) => {
            Err(err).with_context(|| format!("failed to read the link `{}`", path.display()))
        }
    }
}

/// Renames `from` to `to` (same filesystem), replacing a file or link at `to`.
pub fn rename(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).with_context(|| {
        format!(
            "failed to rename `{}` to `{}`",
            from.display(),
            to.display()
        )
    })
}

/// Removes a file or a link (never what it points to); nothing there is fine.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to remove `{}`", path.display())),
    }
}

/// Removes a directory tree without following the links inside it; nothing there is fine.
pub fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to remove `{}`", path.display())),
    }
}

/// The names in a directory (an empty list when the directory does not exist).
pub fn list_dir(path: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => {
            return Err(err).with_context(|| format!("failed to list `{}`", path.display()))
        }
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.with_context(|| format!("failed to list `{}`", path.display()))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}

/// Flushes a directory's entries (new names, renames) to disk.
pub fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("failed to sync the directory `{}`", path.display()))
}

/// Flushes everything written on the filesystem holding `path` (file data, then the
/// directories, in one call: cheaper than an fsync per file of a large release tree).
pub fn sync_filesystem(path: &Path) -> Result<()> {
    let dir = File::open(path).with_context(|| format!("failed to open `{}`", path.display()))?;
    nix::unistd::syncfs(&dir)
        .with_context(|| format!("failed to sync the filesystem of `{}`", path.display()))
}

fn parent(path: &Path) -> Result<&Path> {
    path.parent()
        .with_context(|| format!("`{}` has no parent directory", path.display()))
}
