//! The native venv and wheel installer against the references: `python -m venv` plus
//! `python -m installer`, and `python -m venv` plus `pip install -r
//! tests/reference-wheels.txt`, on real wheels from PyPI (tests/fetch-wheels.sh downloads
//! them).
//!
//! Each must give the same files with the same contents (launchers, RECORD, INSTALLER and
//! pip's REQUESTED aside: the native ones are checked for validity instead), the same
//! `sys.path`, importable modules, working console scripts and a clean `pip check`. pip
//! is the reference for where `.data/headers` go: `python -m installer` puts them in
//! another directory, under the file name's spelling of the project.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pyapp_bundle::wheel_name::normalize_name;
use pyapp_venv::interpreter::Interpreter;
use pyapp_venv::venv::Venv;
use pyapp_venv::wheel_install::record::{parse_record, Hasher};
use pyapp_venv::wheel_install::{install_wheels, InstallOptions};

use crate::harness::workspace;

/// Modules every reference wheel provides, imported in the native venv.
const MODULES: &[&str] = &[
    "asgiref",
    "black",
    "blinker",
    "certifi",
    "charset_normalizer",
    "click",
    "django",
    "docutils",
    "flask",
    "greenlet",
    "gunicorn",
    "idna",
    "itsdangerous",
    "jinja2",
    "jupyterlab_widgets",
    "markupsafe",
    "mypy_extensions",
    "numpy",
    "packaging",
    "pathspec",
    "platformdirs",
    "requests",
    "setuptools",
    "sqlparse",
    "urllib3",
    "werkzeug",
    "yaml",
    "zope.event",
    "zope.interface",
];

/// Console scripts (entry points and `.data/scripts`) and an argument that makes each print
/// something and exit 0.
const SCRIPTS: &[(&str, &str)] = &[
    ("black", "--version"),
    ("django-admin", "--version"),
    ("f2py", "-v"),
    ("flask", "--version"),
    ("gunicorn", "--version"),
    ("normalizer", "--version"),
    ("rst2html.py", "--version"),
];

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Every file and link under `root`, relative, with its contents (a link's target).
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.expect("walk venv");
        let relative = entry
            .path()
            .strip_prefix(root)
            .expect("inside the venv")
            .to_string_lossy()
            .into_owned();
        let contents = if entry.path_is_symlink() {
            fs::read_link(entry.path())
                .expect("read link")
                .into_os_string()
                .into_encoded_bytes()
        } else if entry.file_type().is_file() {
            fs::read(entry.path()).expect("read file")
        } else {
            continue;
        };
        files.insert(relative, contents);
    }
    files
}

/// Replace the venv root in a script's bytes, so that two venvs compare.
fn without_root(bytes: &[u8], root: &Path) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    text.replace(&*root.to_string_lossy(), "VENV").into_bytes()
}

/// The venv's `sys.path` with its root replaced, and its `sys.base_prefix`.
fn python_paths(root: &Path) -> (String, String) {
    let output = run(Command::new(root.join("bin/python"))
        .args([
            "-c",
            "import sys; print(sys.prefix); print(sys.base_prefix); print(sys.path[1:])",
        ])
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .current_dir(root));
    let text = String::from_utf8(output.stdout).expect("utf-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        root.to_str().expect("utf-8 root"),
        "sys.prefix is the venv"
    );
    (
        lines[2].replace(&*root.to_string_lossy(), "VENV"),
        lines[1].to_string(),
    )
}

/// `python -m venv` + `python -m installer`, the way a user of the reference would do it.
fn reference_venv(interpreter: &Interpreter, root: &Path, wheels: &[PathBuf]) {
    run(Command::new(&interpreter.path)
        .args(["-m", "venv", "--without-pip"])
        .arg(root));
    let located = Command::new(&interpreter.path)
        .args([
            "-c",
            "import installer, os; print(os.path.dirname(os.path.dirname(installer.__file__)))",
        ])
        .output()
        .expect("run python");
    assert!(
        located.status.success(),
        "the reference installer is missing: run tests/fetch-wheels.sh (pip install installer)"
    );
    let installer_path = String::from_utf8(located.stdout).expect("utf-8");
    run(Command::new(root.join("bin/python"))
        .args(["-m", "installer", "--no-compile-bytecode"])
        .args(wheels)
        .env("PYTHONPATH", installer_path.trim()));
}

/// `python -m venv` + `pip install` of the pins in `requirements` from `wheel_dir` alone.
fn pip_venv(interpreter: &Interpreter, root: &Path, wheel_dir: &Path, requirements: &Path) {
    run(Command::new(&interpreter.path)
        .args(["-m", "venv", "--without-pip"])
        .arg(root));
    run(Command::new(&interpreter.path)
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(root.join("bin/python"))
        .args([
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-compile",
        ])
        .arg("--find-links")
        .arg(wheel_dir)
        .arg("-r")
        .arg(requirements)
        .env_remove("PIP_FIND_LINKS"));
}

/// The files of a venv that an install of the same wheels must write alike: `skip` left
/// out, `rename` applied to each path, the venv's root replaced in scripts.
fn comparable(
    files: &BTreeMap<String, Vec<u8>>,
    root: &Path,
    skip: &dyn Fn(&str) -> bool,
    rename: &dyn Fn(&str) -> String,
) -> BTreeMap<String, Vec<u8>> {
    files
        .iter()
        .filter(|(path, _)| !skip(path))
        .map(|(path, bytes)| {
            let path = rename(path);
            let bytes = if path.starts_with("bin/") {
                without_root(bytes, root)
            } else {
                bytes.clone()
            };
            (path, bytes)
        })
        .collect()
}

/// The same paths with the same contents in both trees.
fn assert_same_files(
    native: &BTreeMap<String, Vec<u8>>,
    reference: &BTreeMap<String, Vec<u8>>,
    reference_name: &str,
) {
    let native_names: BTreeSet<&String> = native.keys().collect();
    let reference_names: BTreeSet<&String> = reference.keys().collect();
    assert_eq!(
        native_names
            .difference(&reference_names)
            .collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "files only the native installer wrote, not {reference_name}"
    );
    assert_eq!(
        reference_names
            .difference(&native_names)
            .collect::<Vec<_>>(),
        Vec::<&&String>::new(),
        "files only {reference_name} wrote"
    );
    let differing: Vec<&String> = native
        .iter()
        .filter(|(path, bytes)| reference.get(*path) != Some(bytes))
        .map(|(path, _)| path)
        .collect();
    assert!(
        differing.is_empty(),
        "contents differ from {reference_name}'s: {differing:?}"
    );
}

#[test]
fn native_install_matches_python_m_installer_and_pip() {
    let wheel_dir = workspace().join("target/wheels/reference");
    let mut wheels: Vec<PathBuf> = match fs::read_dir(&wheel_dir) {
        Ok(entries) => entries
            .map(|e| e.expect("read wheel dir").path())
            .filter(|p| p.extension().is_some_and(|e| e == "whl"))
            .collect(),
        Err(_) => Vec::new(),
    };
    if wheels.is_empty() {
        eprintln!(
            "skipping: no wheels in {} (run tests/fetch-wheels.sh first)",
            wheel_dir.display()
        );
        return;
    }
    wheels.sort();
    let interpreter = match Interpreter::query(Path::new("python3.11")) {
        Ok(interpreter) if interpreter.target.short_version() == "3.11" => interpreter,
        found => {
            eprintln!("skipping: the reference wheels are for CPython 3.11, found {found:?}");
            return;
        }
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let native_root = dir.path().join("native");
    let reference_root = dir.path().join("reference");

    let venv = Venv::create(&native_root, &interpreter, &[] as &[String]).expect("native venv");
    let report = install_wheels(&venv, &wheels, &InstallOptions::default(), &|| {})
        .unwrap_or_else(|e| panic!("native install: {e}"));
    assert_eq!(report.wheels.len(), wheels.len());
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    reference_venv(&interpreter, &reference_root, &wheels);
    let pip_root = dir.path().join("pip");
    pip_venv(
        &interpreter,
        &pip_root,
        &wheel_dir,
        &workspace().join("tests/reference-wheels.txt"),
    );

    // The same files with the same contents.
    let short = interpreter.target.short_version();
    let native = tree(&native_root);
    let reference = tree(&reference_root);
    let pip = tree(&pip_root);
    let launchers: BTreeSet<String> = native
        .iter()
        .filter(|(path, bytes)| {
            path.starts_with("bin/") && bytes.windows(9).any(|w| w == b"Generated")
        })
        .map(|(path, _)| path.clone())
        .collect();
    assert!(launchers.contains("bin/flask"), "{launchers:?}");
    let skip = |path: &str| {
        path == "pyvenv.cfg"
            || path.starts_with("bin/activate")
            || path == "bin/Activate.ps1"
            || path.starts_with("bin/python")
            || path.ends_with(".dist-info/RECORD")
            || path.ends_with(".dist-info/INSTALLER")
            || launchers.contains(path)
    };
    // installer puts headers in include/python3.X/NAME, NAME spelt as in the wheel's file
    // name; pip (and pyapp) in include/site/python3.X/NAME, NAME normalised as pip-compile
    // and uv write it in a requirement.
    let native_headers = format!("include/site/python{short}/");
    let reference_headers = format!("include/python{short}/");
    let as_installer = |path: &str| match path.strip_prefix(&native_headers) {
        Some(rest) => format!("{reference_headers}{rest}"),
        None => path.to_string(),
    };
    let installer_normalised = |path: &str| match path.strip_prefix(&reference_headers) {
        Some(rest) => {
            let (name, inner) = rest.split_once('/').unwrap_or((rest, ""));
            format!("{reference_headers}{}/{inner}", normalize_name(name))
        }
        None => path.to_string(),
    };
    let native_files = comparable(&native, &native_root, &skip, &as_installer);
    let reference_files = comparable(&reference, &reference_root, &skip, &installer_normalised);
    assert_same_files(&native_files, &reference_files, "python -m installer");
    assert!(reference.contains_key(&format!(
        "{reference_headers}pybind11_global/pybind11/pybind11.h"
    )));

    // pip also installs the `__pycache__` files a wheel ships (numpy has one), which pyapp
    // and installer leave out: they would be stale or for another interpreter.
    let skip_for_pip = |path: &str| {
        skip(path)
            || path.ends_with(".dist-info/REQUESTED")
            || path.split('/').any(|part| part == "__pycache__")
    };
    let native_files = comparable(&native, &native_root, &skip_for_pip, &str::to_string);
    let pip_files = comparable(&pip, &pip_root, &skip_for_pip, &str::to_string);
    assert_same_files(&native_files, &pip_files, "pip");
    for header in ["greenlet/greenlet.h", "pybind11-global/pybind11/pybind11.h"] {
        assert!(
            native_files.contains_key(&format!("{native_headers}{header}")),
            "{header}"
        );
    }
    assert!(native_files.contains_key(
        "share/jupyter/labextensions/@jupyter-widgets/jupyterlab-manager/package.json"
    ));

    // `python -m venv` links python3.X to the base and the others to it; the native venv
    // links python; all resolve to the same interpreter.
    for name in ["python", "python3", &format!("python{short}")] {
        let resolve =
            |root: &Path| fs::canonicalize(root.join("bin").join(name)).expect("resolve python");
        assert_eq!(
            resolve(&native_root),
            resolve(&reference_root),
            "bin/{name}"
        );
    }

    // RECORD: one valid row for every file the wheels put in the venv.
    let site = venv.purelib();
    let skeleton = |path: &str| {
        path == "pyvenv.cfg"
            || path == "lib64"
            || path == "bin/activate"
            || path.starts_with("bin/python")
    };
    let mut recorded = BTreeSet::new();
    for (path, bytes) in &native {
        if !path.ends_with(".dist-info/RECORD") {
            continue;
        }
        let dist_info = native_root
            .join(path)
            .parent()
            .expect("dist-info")
            .to_path_buf();
        assert_eq!(
            fs::read_to_string(dist_info.join("INSTALLER")).expect("INSTALLER"),
            "pyapp\n"
        );
        let rows = parse_record(std::str::from_utf8(bytes).expect("utf-8 RECORD"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        for row in rows {
            let file = lexical(&site.join(&row.path));
            let relative = file
                .strip_prefix(&native_root)
                .unwrap_or_else(|_| panic!("{path}: {} is outside the venv", row.path))
                .to_string_lossy()
                .into_owned();
            if let Some(hash) = &row.hash {
                let contents =
                    fs::read(&file).unwrap_or_else(|e| panic!("{path}: {}: {e}", row.path));
                let mut hasher = Hasher::new(hash.algorithm);
                hasher.update(&contents);
                assert_eq!(&hasher.finish(), hash, "{path}: hash of {}", row.path);
                assert_eq!(
                    row.size,
                    Some(contents.len() as u64),
                    "{path}: size of {}",
                    row.path
                );
            }
            assert!(
                recorded.insert(relative.clone()),
                "{relative} is in two RECORDs"
            );
        }
    }
    let unrecorded: Vec<&String> = native
        .keys()
        .filter(|path| !skeleton(path) && !recorded.contains(*path))
        .collect();
    assert!(unrecorded.is_empty(), "files in no RECORD: {unrecorded:?}");

    // The venv behaves like the reference's.
    let (native_path, native_base) = python_paths(&native_root);
    let (reference_path, reference_base) = python_paths(&reference_root);
    assert_eq!(native_path, reference_path, "sys.path");
    assert_eq!(native_base, reference_base, "sys.base_prefix");
    assert!(
        native_path.contains(&format!("'VENV/lib/python{short}/site-packages'")),
        "{native_path}"
    );
    assert!(!native_path.contains("dist-packages"), "{native_path}");

    // Modules import from the venv, scripts run, pip check is clean.
    let code = format!(
        "import importlib, sys\nfor name in {MODULES:?}:\n    module = importlib.import_module(name)\n    assert module.__file__.startswith(sys.prefix), (name, module.__file__)\n"
    );
    run(Command::new(venv.python())
        .args(["-c", &code])
        .current_dir(dir.path()));
    for (script, arg) in SCRIPTS {
        run(Command::new(native_root.join("bin").join(script))
            .arg(arg)
            .current_dir(dir.path()));
    }
    let check = run(Command::new(&interpreter.path)
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(venv.python())
        .arg("check"));
    assert!(String::from_utf8_lossy(&check.stdout).contains("No broken requirements found"));
}

/// `a/b/../c` -> `a/c`, without touching the filesystem.
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}
