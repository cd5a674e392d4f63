//! The native wheel installer on any bytes as `fuzz_pkg-1.0-py3-none-any.whl`, installed
//! into a fresh venv: it must refuse or install without panicking, and whatever it writes
//! stays inside the venv, is never a link, and has mode 0644 or 0755 (directories: not
//! writable by others, no setuid/setgid/sticky bits).
#![no_main]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use nix::sys::stat::{umask, Mode};
use pep440_rs::VersionSpecifiers;
use pyapp_venv::interpreter::Interpreter;
use pyapp_venv::venv::Venv;
use pyapp_venv::wheel_install::{install_wheels, InstallOptions};

/// The wheel's file name: the seeds are wheels of this distribution.
const WHEEL: &str = "fuzz_pkg-1.0-py3-none-any.whl";

/// The system's python3, asked once; `None` (no Python here) makes every run a no-op.
/// The umask is set once too, to 022 as pyapp-install's `main` does.
fn interpreter() -> Option<&'static Interpreter> {
    static INTERPRETER: OnceLock<Option<Interpreter>> = OnceLock::new();
    INTERPRETER
        .get_or_init(|| {
            umask(Mode::from_bits_truncate(0o022));
            let any = VersionSpecifiers::from_str(">=3.8").ok()?;
            Interpreter::find(None, &any).ok()
        })
        .as_ref()
}

/// Every symlink under `dir`, relative to `base`; panics on a file or directory whose
/// mode the installer must never give.
fn walk(dir: &Path, base: &Path, links: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if meta.file_type().is_symlink() {
            links.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        } else if meta.is_dir() {
            assert_eq!(mode & 0o7002, 0, "directory {path:?} has mode {mode:o}");
            walk(&path, base, links);
        } else {
            assert!(meta.is_file(), "{path:?} is not a regular file");
            assert!(
                mode == 0o644 || mode == 0o755,
                "file {path:?} has mode {mode:o}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(interpreter) = interpreter() else {
        return;
    };
    let Ok(tmp) = tempfile::tempdir() else {
        return;
    };
    let wheels = tmp.path().join("wheels");
    let wheel = wheels.join(WHEEL);
    if fs::create_dir(&wheels).and_then(|()| fs::write(&wheel, data)).is_err() {
        return;
    }
    let root = tmp.path().join("venv");
    let Ok(venv) = Venv::create(&root, interpreter, &[] as &[String]) else {
        return;
    };
    let mut links_before = Vec::new();
    walk(&root, &root, &mut links_before);
    let options = InstallOptions::default();
    let _ = install_wheels(&venv, &[wheel], &options, &|| {});

    let mut top: Vec<_> = fs::read_dir(tmp.path())
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    top.sort();
    assert_eq!(top, ["venv", "wheels"], "written outside the venv");
    let mut links_after = Vec::new();
    walk(&root, &root, &mut links_after);
    links_before.sort();
    links_after.sort();
    assert_eq!(links_before, links_after, "the install made a link");
});
