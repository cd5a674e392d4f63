//! Remembered answers of interpreters. Asking an interpreter about itself starts a Python
//! (20 to 250 ms, the largest part of a second app's verification), and its answer depends
//! only on files: the binary, the shared libraries it maps (the C library among them), the
//! modules the query imported (`sysconfig`, `_sysconfigdata_*`) and the standard library's
//! directory, plus the `_PYTHON*` and `LD_*` variables of the environment. An answer is
//! kept with a stamp of each file (device, inode, size, modification and change time) and
//! those variables, and used again only while every stamp and variable still matches:
//! upgrading, replacing or touching any of them asks again. Only the answer of a path that
//! is the binary itself (or a link to it) is kept: a script in front of one (a version
//! manager's shim) may choose another interpreter by what no stamp sees.
//!
//! Entries live in a directory only root can write (`APPS/.store/interpreters/`, 0700;
//! spec/FORMAT.md 6.6), read without following links. A lookup never writes: answers
//! found missing are queued, and written by [`AnswerCache::save`] once the install writes.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Answer;

/// The layout version of an entry.
const ENTRY_FORMAT: u32 = 1;

/// Where answers are remembered, and those to write there.
#[derive(Debug, Default)]
pub struct AnswerCache {
    dir: Option<PathBuf>,
    fresh: Mutex<Vec<(PathBuf, Entry)>>,
}

/// One remembered answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Entry {
    interpreter_answer_format: u32,
    /// The path the interpreter was asked at, as given.
    path: PathBuf,
    environment: BTreeMap<String, String>,
    /// The path itself (its target, if a link), then every file the answer depends on.
    stamps: Vec<Stamp>,
    answer: Answer,
}

impl pyapp_fs::state::Versioned for Entry {
    const WHAT: &'static str = "interpreter answer";
    const FORMAT_FIELD: &'static str = "interpreter-answer-format";
    const FORMAT: u32 = ENTRY_FORMAT;
}

/// What identifies a file's version: a replaced, rewritten, touched or re-linked file has
/// another stamp.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Stamp {
    path: PathBuf,
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// The stamp of `path` now (following links), if it can be taken.
    fn of(path: &Path) -> Option<Stamp> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(Stamp {
            path: path.to_owned(),
            dev: metadata.dev(),
            ino: metadata.ino(),
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            ctime: (metadata.ctime(), metadata.ctime_nsec()),
        })
    }

    fn still_matches(&self) -> bool {
        Stamp::of(&self.path).as_ref() == Some(self)
    }
}

impl AnswerCache {
    /// No cache: every query asks.
    pub fn none() -> AnswerCache {
        AnswerCache::default()
    }

    /// Answers remembered in `dir` (created by [`AnswerCache::save`] if missing).
    pub fn at(dir: PathBuf) -> AnswerCache {
        AnswerCache {
            dir: Some(dir),
            fresh: Mutex::default(),
        }
    }

    /// The remembered answer of the interpreter at `path`, if every stamp still matches.
    /// An entry that cannot be read is no answer: the interpreter is asked again and the
    /// entry rewritten.
    pub(super) fn lookup(&self, path: &Path) -> Option<Answer> {
        let file = self.entry_path(path)?;
        let entry: Entry = pyapp_fs::state::read(&file).ok()??;
        let valid = entry.path == path
            && entry.environment == environment()
            && entry.stamps.iter().all(Stamp::still_matches);
        valid.then_some(entry.answer)
    }

    /// Queues `answer`, just given by the interpreter at `path`, to be written by
    /// [`AnswerCache::save`]. Nothing is queued when `path` is not the binary that ran, or
    /// a file it depends on cannot be stamped (nothing would ever match).
    pub(super) fn remember(&self, path: &Path, answer: &Answer) {
        let Some(file) = self.entry_path(path) else {
            return;
        };
        if answer.exe.is_none() || std::fs::canonicalize(path).ok() != answer.exe {
            return;
        }
        let stamps: Option<Vec<Stamp>> = std::iter::once(path)
            .chain(answer.depends.iter().map(PathBuf::as_path))
            .map(Stamp::of)
            .collect();
        let Some(stamps) = stamps else {
            return;
        };
        let entry = Entry {
            interpreter_answer_format: ENTRY_FORMAT,
            path: path.to_owned(),
            environment: environment(),
            stamps,
            answer: answer.clone(),
        };
        self.fresh
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((file, entry));
    }

    /// Writes the answers queued since the last save, creating the directory (0700). An
    /// answer whose paths are not UTF-8 cannot be written as JSON and is left out.
    pub fn save(&self) -> pyapp_fs::Result<()> {
        let fresh = std::mem::take(
            &mut *self
                .fresh
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        if fresh.is_empty() {
            return Ok(());
        }
        pyapp_fs::ensure_dir(dir, 0o700)?;
        for (file, entry) in fresh {
            if let Ok(bytes) = pyapp_fs::state::encode(&file, &entry) {
                pyapp_fs::write_atomic(&file, &bytes, 0o600)?;
            }
        }
        Ok(())
    }

    /// `DIR/HEX.json`, HEX the first 32 hex digits of the sha256 of `path`.
    fn entry_path(&self, path: &Path) -> Option<PathBuf> {
        let digest = Sha256::digest(path.as_os_str().as_bytes());
        let name = format!("{}.json", hex::encode(&digest[..16]));
        Some(self.dir.as_ref()?.join(name))
    }
}

/// The variables of this process's environment that can change an interpreter's answer
/// even under `-I` (`_PYTHON_HOST_PLATFORM`, `_PYTHON_SYSCONFIGDATA_NAME`, the dynamic
/// loader's `LD_*`).
fn environment() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter(|(name, _)| {
            let name = name.as_bytes();
            name.starts_with(b"_PYTHON") || name.starts_with(b"LD_")
        })
        .map(|(name, value)| {
            (
                name.to_string_lossy().into_owned(),
                value.to_string_lossy().into_owned(),
            )
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::str::FromStr;

    use pep440_rs::VersionSpecifiers;

    use super::*;
    use crate::interpreter::Interpreter;

    fn system_python() -> PathBuf {
        Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap())
            .unwrap()
            .base_executable
    }

    /// A copy of the system's interpreter binary in `dir` (it finds the system's standard
    /// library by its build prefix): a file the test may replace.
    fn copied_python(dir: &Path) -> PathBuf {
        let copy = dir.join("python3");
        std::fs::copy(system_python(), &copy).unwrap();
        copy
    }

    /// The only entry in `dir`, with its `ext_suffix` replaced by `marker`: an answer no
    /// interpreter gives, so a query that returns it took it from the cache.
    fn mark_entry(dir: &Path, marker: &str) {
        let entries: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
        assert_eq!(entries.len(), 1, "one entry in {}", dir.display());
        let file = entries[0].as_ref().unwrap().path();
        let mut entry: Entry = pyapp_fs::state::read(&file).unwrap().unwrap();
        entry.answer.ext_suffix = marker.to_owned();
        pyapp_fs::state::write(&file, &entry).unwrap();
    }

    #[test]
    fn an_answer_is_used_again_while_its_files_are_unchanged() {
        let work = tempfile::tempdir().unwrap();
        let python = copied_python(work.path());
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("interpreters");
        let answers = AnswerCache::at(dir.clone());
        let asked = Interpreter::query_with(&python, &answers).unwrap();
        assert!(!dir.exists(), "a lookup never writes");
        answers.save().unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);

        mark_entry(&dir, ".remembered.so");
        let answers = AnswerCache::at(dir.clone());
        let again = Interpreter::query_with(&python, &answers).unwrap();
        assert_eq!(again.ext_suffix, ".remembered.so");
        assert_eq!(again.base_executable, asked.base_executable);
        answers.save().unwrap();
        assert_eq!(
            Interpreter::query_with(&python, &AnswerCache::at(dir.clone()))
                .unwrap()
                .ext_suffix,
            ".remembered.so",
            "a hit is not written again"
        );

        // Replacing the binary (by the same bytes) changes its stamp: the interpreter is
        // asked again.
        std::fs::remove_file(&python).unwrap();
        copied_python(work.path());
        let answers = AnswerCache::at(dir.clone());
        assert_eq!(
            Interpreter::query_with(&python, &answers)
                .unwrap()
                .ext_suffix,
            asked.ext_suffix
        );
        answers.save().unwrap();
        assert_eq!(
            Interpreter::query_with(&python, &AnswerCache::at(dir))
                .unwrap()
                .ext_suffix,
            asked.ext_suffix,
            "the fresh answer replaced the stale one"
        );
    }

    #[test]
    fn every_file_the_answer_came_from_is_stamped() {
        let work = tempfile::tempdir().unwrap();
        let python = copied_python(work.path());
        // Beside, not in, the interpreter's directory: it is stamped.
        let cache = tempfile::tempdir().unwrap();
        let answers = AnswerCache::at(cache.path().join("interpreters"));
        let interpreter = Interpreter::query_with(&python, &answers).unwrap();
        let queued = answers.fresh.lock().unwrap();
        let stamped: Vec<&Path> = queued[0]
            .1
            .stamps
            .iter()
            .map(|s| s.path.as_path())
            .collect();
        assert_eq!(stamped[0], python);
        for needed in [&python, &interpreter.stdlib] {
            let real = std::fs::canonicalize(needed).unwrap();
            assert!(
                stamped.iter().any(|path| *path == real || path == needed),
                "{} is not stamped: {stamped:?}",
                needed.display()
            );
        }
        let names: Vec<String> = stamped
            .iter()
            .filter_map(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().any(|n| n.starts_with("libc.so")), "{names:?}");
        assert!(names.iter().any(|n| n == "sysconfig.py"), "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with("_sysconfigdata")),
            "{names:?}"
        );
    }

    #[test]
    fn a_script_in_front_of_an_interpreter_is_not_remembered() {
        let work = tempfile::tempdir().unwrap();
        let shim = work.path().join("python");
        let script = format!("#!/bin/sh\nexec {} \"$@\"\n", system_python().display());
        std::fs::write(&shim, script).unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = tempfile::tempdir().unwrap();
        let answers = AnswerCache::at(cache.path().join("interpreters"));
        Interpreter::query_with(&shim, &answers).unwrap();
        assert!(answers.fresh.lock().unwrap().is_empty());
        // A link to the binary is the binary.
        let link = work.path().join("python3");
        std::os::unix::fs::symlink(system_python(), &link).unwrap();
        Interpreter::query_with(&link, &answers).unwrap();
        assert_eq!(answers.fresh.lock().unwrap().len(), 1);
    }

    #[test]
    fn a_venvs_interpreter_is_asked_again_when_its_pyvenv_cfg_changes() {
        let work = tempfile::tempdir().unwrap();
        let venv = work.path().join("venv");
        let made = std::process::Command::new(system_python())
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(made.success());
        let python = venv.join("bin/python");
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("interpreters");
        let answers = AnswerCache::at(dir.clone());
        Interpreter::query_with(&python, &answers).unwrap();
        answers.save().unwrap();
        mark_entry(&dir, ".remembered.so");
        let remembered = |python: &Path| {
            Interpreter::query_with(python, &AnswerCache::at(dir.clone()))
                .unwrap()
                .ext_suffix
                == ".remembered.so"
        };
        assert!(remembered(&python));
        let cfg = venv.join("pyvenv.cfg");
        let text = std::fs::read_to_string(&cfg).unwrap();
        std::fs::write(&cfg, format!("{text}# edited\n")).unwrap();
        assert!(!remembered(&python), "pyvenv.cfg changed");
    }

    #[test]
    fn an_unreadable_entry_is_asked_again() {
        let work = tempfile::tempdir().unwrap();
        let python = copied_python(work.path());
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("interpreters");
        let answers = AnswerCache::at(dir.clone());
        Interpreter::query_with(&python, &answers).unwrap();
        answers.save().unwrap();
        let entry = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        std::fs::write(&entry, b"{\"interpreter-answer-format\": 1, \"path\": 3}").unwrap();
        let answers = AnswerCache::at(dir);
        assert!(answers.lookup(&python).is_none());
        Interpreter::query_with(&python, &answers).unwrap();
        answers.save().unwrap();
        assert!(answers.lookup(&python).is_some());
    }
}
