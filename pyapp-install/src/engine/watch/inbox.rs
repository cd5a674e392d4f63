//! The inbox directory of `watch`: which files in it are bundles ready to install, the lock
//! that keeps two runs from taking the same one, and moving each processed bundle into
//! `done/` or `failed/` with its JSON record. Every move and write goes through a
//! descriptor of the inbox (and of `done/`/`failed/`, opened without following links), so
//! whoever may write the inbox cannot redirect root's writes elsewhere with a planted link.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, TryLockError};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, renameat2, AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{fstatat, Mode};
use nix::unistd::{unlinkat, UnlinkatFlags};

use crate::progress::Progress;
use pyapp_bundle::layout::BUNDLE_SUFFIX;
use pyapp_cli::Refusal;

/// The suffix of the record written beside a processed bundle.
const RECORD_SUFFIX: &str = ".json";

/// The highest `~N` suffix tried when a processed bundle's name is taken.
const MAX_SUFFIX: u32 = 10_000;

/// A file modified less than this long ago may still be being written: it is waited for.
const QUIET: Duration = Duration::from_secs(1);

/// Where a processed bundle goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Failed,
}

impl Outcome {
    /// The subdirectory of the inbox, and the `result` of the record.
    pub fn dir_name(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
        }
    }
}

/// A `*.pyapp` entry of the inbox that is ready to be processed.
#[derive(Debug, Clone)]
pub struct Dropped {
    /// Its name in the inbox.
    pub name: OsString,
    /// Its path.
    pub path: PathBuf,
    /// Whether it is a regular file (a link or a directory is not a bundle).
    pub is_file: bool,
}

impl Dropped {
    /// Its name for messages and records.
    pub fn display_name(&self) -> String {
        self.name.to_string_lossy().into_owned()
    }
}

/// The inbox, locked by this run for as long as it is alive.
#[derive(Debug)]
pub struct Inbox {
    path: PathBuf,
    /// The directory itself: the descriptor every move starts from, and what is flocked.
    dir: File,
}

impl Inbox {
    /// Opens and locks the inbox at `path`: a directory not writable by every user (then
    /// anyone could install apps as root). Waits while another `watch` holds the lock.
    pub fn open(path: &Path, output: &dyn Progress) -> Result<Inbox> {
        let path = &std::path::absolute(path)
            .with_context(|| format!("failed to make `{}` absolute", path.display()))?;
        check_inbox_dir(path)?;
        let dir = File::open(path)
            .with_context(|| format!("failed to open the inbox `{}`", path.display()))?;
        match dir.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                output.note(&format!(
                    "another pyapp-install watch is processing {}: waiting for it",
                    path.display()
                ));
                dir.lock()
                    .with_context(|| format!("failed to lock `{}`", path.display()))?;
            }
            Err(TryLockError::Error(err)) => {
                return Err(err).with_context(|| format!("failed to lock `{}`", path.display()))
            }
        }
        Ok(Inbox {
            path: path.to_owned(),
            dir,
        })
    }

    /// The inbox's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next bundle to process: the oldest `*.pyapp` entry (by modification time, then
    /// name) that is not a dotfile, once it has not changed for [`QUIET`]; `None` when
    /// there is none left.
    pub fn next(&self) -> Result<Option<Dropped>> {
        loop {
            let mut entries = Vec::new();
            for entry in fs::read_dir(&self.path)
                .with_context(|| format!("failed to list `{}`", self.path.display()))?
            {
                let entry =
                    entry.with_context(|| format!("failed to list `{}`", self.path.display()))?;
                let name = entry.file_name();
                if !is_bundle_name(&name) {
                    continue;
                }
                // Gone since the listing (another process took it): not ours to report.
                let Ok(meta) = entry.path().symlink_metadata() else {
                    continue;
                };
                let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                entries.push((modified, name, meta.file_type().is_file()));
            }
            entries.sort();
            let Some((modified, name, is_file)) = entries.into_iter().next() else {
                return Ok(None);
            };
            // A modification time in the future says nothing about an upload in progress.
            let age = SystemTime::now().duration_since(modified).unwrap_or(QUIET);
            if age < QUIET {
                std::thread::sleep(QUIET - age);
                continue;
            }
            return Ok(Some(Dropped {
                path: self.path.join(&name),
                name,
                is_file,
            }));
        }
    }

    /// Moves `bundle` into `done/` or `failed/` (created 0755 when missing) under its own
    /// name or, when that or its record's name is taken, `NAME~2.pyapp`, `NAME~3.pyapp`…;
    /// then writes `record(new path)` beside it as `NAME.pyapp.json`. Returns the new path.
    pub fn file_away(
        &self,
        bundle: &Dropped,
        outcome: Outcome,
        record: impl Fn(&Path) -> Result<Vec<u8>>,
    ) -> Result<PathBuf> {
        let subdir_path = self.path.join(outcome.dir_name());
        pyapp_fs::ensure_dir(&subdir_path, 0o755)?;
        let subdir = openat(
            self.dir.as_fd(),
            outcome.dir_name(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("failed to open `{}`", subdir_path.display()))?;
        let stem = bundle
            .name
            .as_bytes()
            .strip_suffix(BUNDLE_SUFFIX.as_bytes())
            .unwrap_or(bundle.name.as_bytes());
        for attempt in 1..=MAX_SUFFIX {
            let mut name = stem.to_vec();
            if attempt > 1 {
                name.extend_from_slice(format!("~{attempt}").as_bytes());
            }
            name.extend_from_slice(BUNDLE_SUFFIX.as_bytes());
            let name = OsString::from_vec(name);
            let record_name = record_name(&name);
            if exists_at(&subdir, &record_name, &subdir_path)? {
                continue;
            }
            let moved = renameat2(
                self.dir.as_fd(),
                bundle.name.as_os_str(),
                subdir.as_fd(),
                name.as_os_str(),
                RenameFlags::RENAME_NOREPLACE,
            );
            match moved {
                Ok(()) => {}
                Err(Errno::EEXIST) => continue,
                Err(err) => {
                    return Err(err).with_context(|| {
                        format!(
                            "failed to move `{}` into `{}`",
                            bundle.path.display(),
                            subdir_path.display()
                        )
                    })
                }
            }
            let moved_to = subdir_path.join(&name);
            write_record_at(&subdir, &record_name, &record(&moved_to)?, &subdir_path)?;
            return Ok(moved_to);
        }
        Err(Refusal::new(format!(
            "`{}` cannot be moved into `{}`: every name up to ~{MAX_SUFFIX} is taken",
            bundle.path.display(),
            subdir_path.display()
        ))
        .with_hint("clean up that directory")
        .into())
    }
}

/// `NAME.pyapp`, not a dotfile (uploads in progress are written as dotfiles or `*.part`):
/// the same names the `.path` unit's `PathExistsGlob=DIR/*.pyapp` matches.
pub fn is_bundle_name(name: &OsStr) -> bool {
    let bytes = name.as_bytes();
    !bytes.starts_with(b".") && bytes.ends_with(BUNDLE_SUFFIX.as_bytes())
}

/// The record's name for the bundle `name`: `NAME.pyapp.json`.
pub fn record_name(name: &OsStr) -> OsString {
    let mut record = name.to_owned();
    record.push(RECORD_SUFFIX);
    record
}

/// Refuses an inbox that is missing, not a directory, or writable by every user.
pub fn check_inbox_dir(path: &Path) -> Result<()> {
    let meta =
        match fs::metadata(path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Err(Refusal::new(
                format!("the inbox `{}` does not exist", path.display()),
            )
            .with_hint(
                "create it (writable only by root and the group that uploads bundles), or \
                     let `pyapp-install watch --install-units DIR` create it",
            )
            .into()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to inspect `{}`", path.display()))
            }
        };
    if !meta.is_dir() {
        return Err(
            Refusal::new(format!("the inbox `{}` is not a directory", path.display()))
                .with_hint("give the directory bundles are dropped into")
                .into(),
        );
    }
    if meta.permissions().mode() & 0o002 != 0 {
        return Err(Refusal::new(format!(
            "the inbox `{}` is writable by every user: anyone could install apps through it",
            path.display()
        ))
        .with_hint(format!(
            "let only root and an upload group write it: chmod o-w '{}'",
            path.display()
        ))
        .into());
    }
    Ok(())
}

/// Whether anything is at `name` in the directory `dir` (at `dir_path`).
fn exists_at(dir: &OwnedFd, name: &OsStr, dir_path: &Path) -> Result<bool> {
    match fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(_) => Ok(true),
        Err(Errno::ENOENT) => Ok(false),
        Err(err) => Err(err)
            .with_context(|| format!("failed to inspect `{}`", dir_path.join(name).display())),
    }
}

/// Writes `bytes` to `name` in `dir` atomically (a new dotfile, synced, renamed into place).
fn write_record_at(dir: &OwnedFd, name: &OsStr, bytes: &[u8], dir_path: &Path) -> Result<()> {
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    let path = dir_path.join(name);
    let failed = || format!("failed to write `{}`", path.display());
    match unlinkat(dir, tmp.as_os_str(), UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => {}
        Err(err) => return Err(err).with_context(failed),
    }
    let fd = openat(
        dir,
        tmp.as_os_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    )
    .with_context(failed)?;
    let mut file = File::from(fd);
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(failed)?;
    renameat(dir, tmp.as_os_str(), dir, name).with_context(failed)?;
    Ok(pyapp_fs::sync_dir(dir_path)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::progress::Silent;

    #[test]
    fn only_visible_pyapp_files_are_bundles() {
        for name in ["hello-1.0.0.pyapp", "a b.pyapp", "x.PYAPP.pyapp"] {
            assert!(is_bundle_name(OsStr::new(name)), "{name}");
        }
        for name in [
            ".hello-1.0.0.pyapp",
            "hello-1.0.0.pyapp.part",
            "hello.pyapp.json",
            "hello.PYAPP",
            "done",
            ".pyapp",
        ] {
            assert!(!is_bundle_name(OsStr::new(name)), "{name}");
        }
    }

    #[test]
    fn bundles_are_filed_away_under_free_names_with_their_record() {
        let inbox_dir = tempfile::tempdir().unwrap();
        let output = Silent;
        let inbox = Inbox::open(inbox_dir.path(), &output).unwrap();
        let drop = |name: &str| {
            fs::write(inbox_dir.path().join(name), name).unwrap();
            Dropped {
                name: name.into(),
                path: inbox_dir.path().join(name),
                is_file: true,
            }
        };
        let first = inbox
            .file_away(&drop("a.pyapp"), Outcome::Done, |_| Ok(b"{}\n".to_vec()))
            .unwrap();
        assert_eq!(first, inbox_dir.path().join("done/a.pyapp"));
        let second = inbox
            .file_away(&drop("a.pyapp"), Outcome::Done, |_| {
                Ok(b"{\"n\":2}\n".to_vec())
            })
            .unwrap();
        assert_eq!(second, inbox_dir.path().join("done/a~2.pyapp"));
        // A record without its bundle keeps its name too.
        fs::write(inbox_dir.path().join("done/a~3.pyapp.json"), "old").unwrap();
        let fourth = inbox
            .file_away(&drop("a.pyapp"), Outcome::Done, |_| Ok(b"{}\n".to_vec()))
            .unwrap();
        assert_eq!(fourth, inbox_dir.path().join("done/a~4.pyapp"));
        assert_eq!(
            fs::read_to_string(inbox_dir.path().join("done/a~2.pyapp.json")).unwrap(),
            "{\"n\":2}\n"
        );
        assert_eq!(
            pyapp_fs::list_dir(&inbox_dir.path().join("done")).unwrap(),
            [
                "a.pyapp",
                "a.pyapp.json",
                "a~2.pyapp",
                "a~2.pyapp.json",
                "a~3.pyapp.json",
                "a~4.pyapp",
                "a~4.pyapp.json"
            ]
        );
        assert_eq!(pyapp_fs::list_dir(inbox_dir.path()).unwrap(), ["done"]);

        // failed/ planted as a link is refused, nothing moves through it.
        let elsewhere = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), inbox_dir.path().join("failed")).unwrap();
        let planted = drop("b.pyapp");
        assert!(inbox
            .file_away(&planted, Outcome::Failed, |_| Ok(Vec::new()))
            .is_err());
        assert!(planted.path.exists());
        assert!(pyapp_fs::list_dir(elsewhere.path()).unwrap().is_empty());
    }

    #[test]
    fn a_world_writable_inbox_is_refused() {
        let inbox_dir = tempfile::tempdir().unwrap();
        fs::set_permissions(inbox_dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let refused = check_inbox_dir(inbox_dir.path()).unwrap_err().to_string();
        assert!(
            refused.ends_with("is writable by every user: anyone could install apps through it"),
            "{refused}"
        );
        fs::set_permissions(inbox_dir.path(), fs::Permissions::from_mode(0o2770)).unwrap();
        check_inbox_dir(inbox_dir.path()).unwrap();
        let missing = check_inbox_dir(&inbox_dir.path().join("nope")).unwrap_err();
        assert!(missing.to_string().ends_with("nope` does not exist"));
    }
}
