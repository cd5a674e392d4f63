//! The native wheel installer on any bytes as `fuzz_pkg-1.0-py3-none-any.whl`, installed
//! into a fresh venv: it must refuse or install without panicking, and whatever it writes
//! stays inside the venv and is never a link.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pep440_rs::VersionSpecifiers;
use pyapp_install::interpreter::Interpreter;
use pyapp_install::venv::Venv;
use pyapp_install::wheel_install::{install_wheels, InstallOptions};

/// The wheel's file name: the seeds are wheels of this distribution.
const WHEEL: &str = "fuzz_pkg-1.0-py3-none-any.whl";

/// The system's python3, asked once; `None` (no Python here) makes every run a no-op.
fn interpreter() -> Option<&'static Interpreter> {
    static INTERPRETER: OnceLock<Option<Interpreter>> = OnceLock::new();
    INTERPRETER
        .get_or_init(|| {
            let any = VersionSpecifiers::from_str(">=3.8").ok()?;
            Interpreter::find(None, &any).ok()
        })
        .as_ref()
}

/// Every symlink under `dir`, relative to it.
fn links(dir: &Path, base: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
        } else if kind.is_dir() {
            links(&path, base, out);
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
    links(&root, &root, &mut links_before);
    let options = InstallOptions::default();
    let _ = install_wheels(&venv, &[wheel], &options, &|| {});

    let mut top: Vec<_> = fs::read_dir(tmp.path())
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    top.sort();
    assert_eq!(top, ["venv", "wheels"], "written outside the venv");
    let mut links_after = Vec::new();
    links(&root, &root, &mut links_after);
    links_before.sort();
    links_after.sort();
    assert_eq!(links_before, links_after, "the install made a link");
});
