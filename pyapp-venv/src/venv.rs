//! A virtual environment made natively, without `python -m venv` and without pip.
//!
//! `pyvenv.cfg`, `bin/python` linked to the base interpreter (with `python3` and
//! `python3.X` beside it), `lib64 -> lib` on 64-bit Linux, an empty site-packages and an
//! `activate` script: Python itself then sets `sys.prefix` to the venv and leaves the
//! system site-packages out. Modules only the system provides (`apt`, `gi`) are linked in
//! from Debian's dist-packages.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::path::{Path, PathBuf};

use pyapp_fs::ToSync;
use thiserror::Error;

use crate::interpreter::Interpreter;

/// Where Debian keeps the Python modules its packages (`python3-apt`, `python3-gi`) install.
pub const SYSTEM_DIST_PACKAGES: &str = "/usr/lib/python3/dist-packages";

/// A virtual environment on disk and the interpreter it is built on.
#[derive(Debug, Clone)]
pub struct Venv {
    root: PathBuf,
    /// Where the venv is at run time, written into shebangs and `activate`: the same as
    /// `root`, except when installing under another filesystem root (`--root`, DESTDIR).
    runtime_root: PathBuf,
    interpreter: Interpreter,
}

/// Why a venv could not be created.
#[derive(Debug, Error)]
pub enum VenvError {
    #[error(
        "venv path `{0}` must be absolute, UTF-8 and free of quotes, `\\`, `$`, backticks \
         and control characters"
    )]
    UnsafePath(PathBuf),
    #[error("failed to create the venv at `{path}`: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("system Python module `{0}` is not a Python identifier")]
    ModuleName(String),
    #[error("system Python module `{name}` is not in {dir} for Python {version}")]
    ModuleMissing {
        name: String,
        dir: PathBuf,
        version: String,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> VenvError + '_ {
    move |source| VenvError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Whether a path can be embedded in shebangs and shell/Python quotes as it is.
fn is_safe_path(path: &Path) -> bool {
    path.is_absolute()
        && path.to_str().is_some_and(|p| {
            !p.chars()
                .any(|c| c.is_control() || matches!(c, '\'' | '"' | '\\' | '$' | '`'))
        })
}

/// Create a directory (and its parents) with mode 0755.
fn make_dir(path: &Path) -> Result<(), VenvError> {
    fs::DirBuilder::new()
        .recursive(true)
        .create(path)
        .map_err(io_error(path))
}

/// Write a new file (never over an existing one or through a link) with `mode`; listed in
/// `to_sync`.
fn write_new(path: &Path, contents: &[u8], mode: u32, to_sync: &ToSync) -> Result<(), VenvError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error(path))?;
    file.write_all(contents).map_err(io_error(path))?;
    to_sync.file(&file, path);
    Ok(())
}

fn make_symlink(target: &Path, link: &Path) -> Result<(), VenvError> {
    symlink(target, link).map_err(io_error(link))
}

impl Venv {
    /// Create a venv at `root`, which must not exist yet, on `interpreter`, with
    /// `system_modules` linked in from [`SYSTEM_DIST_PACKAGES`]; not made durable (a
    /// build's venv).
    pub fn create(
        root: &Path,
        interpreter: &Interpreter,
        system_modules: &[impl AsRef<str>],
    ) -> Result<Venv, VenvError> {
        Venv::create_staged(root, root, interpreter, system_modules, &ToSync::new())
    }

    /// Like [`Venv::create`], writing the venv at `root` for it to run at `runtime_root`
    /// (DESTDIR-style staging: `root` is `runtime_root` under another filesystem root),
    /// and listing in `to_sync` its directories and the files written (the directory
    /// `root` is made in is the caller's to list).
    pub fn create_staged(
        root: &Path,
        runtime_root: &Path,
        interpreter: &Interpreter,
        system_modules: &[impl AsRef<str>],
        to_sync: &ToSync,
    ) -> Result<Venv, VenvError> {
        for path in [root, runtime_root] {
            if !is_safe_path(path) {
                return Err(VenvError::UnsafePath(path.to_path_buf()));
            }
        }
        fs::create_dir(root).map_err(io_error(root))?;
        let venv = Venv {
            root: root.to_path_buf(),
            runtime_root: runtime_root.to_path_buf(),
            interpreter: interpreter.clone(),
        };
        to_sync.dir(root);
        let layout = &interpreter.layout;
        let dirs = [&layout.purelib, &layout.platlib, &layout.scripts];
        for dir in dirs
            .map(PathBuf::as_path)
            .into_iter()
            .chain([Path::new("include")])
        {
            make_dir(&root.join(dir))?;
            to_sync.dirs_from(root, &root.join(dir));
        }
        // Like `python -m venv`: 64-bit Linux looks in lib64 too.
        let lib64 = root.join("lib64");
        if interpreter.is_64bit && root.join("lib").is_dir() && !lib64.exists() {
            make_symlink(Path::new("lib"), &lib64)?;
        }
        venv.link_interpreter()?;
        write_new(
            &root.join("pyvenv.cfg"),
            venv.pyvenv_cfg().as_bytes(),
            0o644,
            to_sync,
        )?;
        write_new(
            &venv.scripts_dir().join("activate"),
            venv.activate_script().as_bytes(),
            0o644,
            to_sync,
        )?;
        venv.link_system_modules(Path::new(SYSTEM_DIST_PACKAGES), system_modules)?;
        Ok(venv)
    }

    /// The venv root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The base interpreter.
    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    /// `VENV/bin/python`, the interpreter scripts run with.
    pub fn python(&self) -> PathBuf {
        self.scripts_dir().join("python")
    }

    /// `VENV/bin/python` as the venv's scripts see it at run time: their shebang.
    pub fn runtime_python(&self) -> PathBuf {
        self.runtime_root
            .join(&self.interpreter.layout.scripts)
            .join("python")
    }

    /// Pure-Python modules: `VENV/lib/python3.X/site-packages`.
    pub fn purelib(&self) -> PathBuf {
        self.root.join(&self.interpreter.layout.purelib)
    }

    /// Platform-specific modules (the same directory on most systems).
    pub fn platlib(&self) -> PathBuf {
        self.root.join(&self.interpreter.layout.platlib)
    }

    /// Scripts: `VENV/bin`.
    pub fn scripts_dir(&self) -> PathBuf {
        self.root.join(&self.interpreter.layout.scripts)
    }

    /// Data files: the venv root.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join(&self.interpreter.layout.data)
    }

    /// C headers of the distribution whose normalised name is `name`:
    /// `VENV/include/site/python3.X/NAME`, where pip puts them for a requirement spelt that
    /// way (as pip-compile and uv write them, or a wheel file) and uv always does.
    pub fn headers_dir(&self, name: &str) -> PathBuf {
        self.root
            .join("include/site")
            .join(format!("python{}", self.interpreter.target.short_version()))
            .join(name)
    }

    /// Names in `bin/` that belong to the interpreter and no wheel may write.
    pub fn interpreter_names(&self) -> [String; 3] {
        [
            "python".to_string(),
            "python3".to_string(),
            format!("python{}", self.interpreter.target.short_version()),
        ]
    }

    /// `bin/python -> BASE`, `bin/python3 -> python`, `bin/python3.X -> python`.
    fn link_interpreter(&self) -> Result<(), VenvError> {
        let bin = self.scripts_dir();
        make_symlink(&self.interpreter.base_executable, &bin.join("python"))?;
        for name in &self.interpreter_names()[1..] {
            make_symlink(Path::new("python"), &bin.join(name))?;
        }
        Ok(())
    }

    fn pyvenv_cfg(&self) -> String {
        let base = &self.interpreter.base_executable;
        let home = base.parent().unwrap_or(Path::new("/"));
        let version = self.interpreter.target.version;
        format!(
            "home = {home}\n\
             implementation = {implementation}\n\
             version_info = {version_info}\n\
             version = {version}\n\
             executable = {executable}\n\
             include-system-site-packages = false\n",
            home = home.display(),
            implementation = match self.interpreter.target.implementation.as_str() {
                "cpython" => "CPython",
                "pypy" => "PyPy",
                other => other,
            },
            version_info = self.interpreter.version_info,
            executable = base.display(),
        )
    }

    /// A POSIX shell `activate` script (bash, dash, zsh): `. VENV/bin/activate`.
    fn activate_script(&self) -> String {
        let prompt = self
            .runtime_root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        format!(
            r#"# Generated by pyapp-install. Use with `. {root}/bin/activate` from a POSIX shell;
# `deactivate` undoes it.

deactivate () {{
    if [ -n "${{_PYAPP_OLD_PATH+set}}" ]; then
        PATH="$_PYAPP_OLD_PATH"
        export PATH
        unset _PYAPP_OLD_PATH
    fi
    if [ -n "${{_PYAPP_OLD_PYTHONHOME+set}}" ]; then
        PYTHONHOME="$_PYAPP_OLD_PYTHONHOME"
        export PYTHONHOME
        unset _PYAPP_OLD_PYTHONHOME
    fi
    if [ -n "${{_PYAPP_OLD_PS1+set}}" ]; then
        PS1="$_PYAPP_OLD_PS1"
        export PS1
        unset _PYAPP_OLD_PS1
    fi
    unset VIRTUAL_ENV VIRTUAL_ENV_PROMPT
    hash -r 2>/dev/null
    if [ "${{1:-}}" != nondestructive ]; then
        unset -f deactivate
    fi
}}

deactivate nondestructive

VIRTUAL_ENV='{root}'
export VIRTUAL_ENV
_PYAPP_OLD_PATH="$PATH"
PATH="$VIRTUAL_ENV/bin:$PATH"
export PATH
if [ -n "${{PYTHONHOME+set}}" ]; then
    _PYAPP_OLD_PYTHONHOME="$PYTHONHOME"
    unset PYTHONHOME
fi
if [ -z "${{VIRTUAL_ENV_DISABLE_PROMPT:-}}" ]; then
    _PYAPP_OLD_PS1="${{PS1:-}}"
    PS1='({prompt}) '"${{PS1:-}}"
    export PS1
    VIRTUAL_ENV_PROMPT='({prompt}) '
    export VIRTUAL_ENV_PROMPT
fi
hash -r 2>/dev/null
"#,
            root = self.runtime_root.display(),
        )
    }

    /// What [`Venv::create`] linked into site-packages from the system (its symbolic
    /// links there): the system's, never to be written through.
    pub fn linked_modules(&self) -> Vec<PathBuf> {
        let mut links = Vec::new();
        for dir in [self.purelib(), self.platlib()] {
            let Ok(listing) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in listing.flatten() {
                if entry.file_type().is_ok_and(|kind| kind.is_symlink())
                    && !links.contains(&entry.path())
                {
                    links.push(entry.path());
                }
            }
        }
        links
    }

    /// Link each of `names` from `dir` into site-packages: a package directory `NAME/`,
    /// a module `NAME.py`, or an extension module built for this interpreter.
    pub(crate) fn link_system_modules(
        &self,
        dir: &Path,
        names: &[impl AsRef<str>],
    ) -> Result<(), VenvError> {
        for name in names {
            let found = system_module_file(&self.interpreter, dir, name.as_ref())?;
            make_symlink(&dir.join(&found), &self.purelib().join(&found))?;
        }
        Ok(())
    }
}

/// Checks, before anything is built, that every one of `names` is there for `interpreter`
/// among the modules the system provides (what [`Venv::create`] will link).
pub fn check_system_modules(
    interpreter: &Interpreter,
    names: &[impl AsRef<str>],
) -> Result<(), VenvError> {
    for name in names {
        system_module_file(interpreter, Path::new(SYSTEM_DIST_PACKAGES), name.as_ref())?;
    }
    Ok(())
}

/// The file or directory of `dir` that is the module `name` for `interpreter`.
fn system_module_file(
    interpreter: &Interpreter,
    dir: &Path,
    name: &str,
) -> Result<String, VenvError> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(VenvError::ModuleName(name.to_string()));
    }
    let candidates = [
        name.to_string(),
        format!("{name}.py"),
        format!("{name}{}", interpreter.ext_suffix),
        format!("{name}.abi3.so"),
        format!("{name}.so"),
    ];
    candidates
        .into_iter()
        .find(|candidate| dir.join(candidate).exists())
        .ok_or_else(|| VenvError::ModuleMissing {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            version: interpreter.target.short_version(),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use pep440_rs::VersionSpecifiers;
    use std::process::Command;
    use std::str::FromStr;

    fn interpreter() -> Interpreter {
        Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap()).unwrap()
    }

    fn python_says(python: &Path, code: &str) -> String {
        let output = Command::new(python)
            .args(["-c", code])
            .env_remove("PYTHONPATH")
            .env_remove("PYTHONHOME")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    #[test]
    fn behaves_like_python_m_venv() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("venv");
        let interpreter = interpreter();
        let venv = Venv::create(&root, &interpreter, &[] as &[String]).unwrap();
        let answer = python_says(
            &venv.python(),
            "import sys, site, json; print(json.dumps([sys.prefix, sys.base_prefix, \
             site.getsitepackages(), sys.path, sys.flags.no_user_site]))",
        );
        let [prefix, base_prefix, site_packages, path, _]: [serde_json::Value; 5] =
            serde_json::from_str(&answer).unwrap();
        assert_eq!(prefix, root.to_str().unwrap());
        assert_ne!(base_prefix, prefix);
        let purelib = venv.purelib().to_str().unwrap().to_string();
        assert!(
            site_packages
                .as_array()
                .unwrap()
                .contains(&purelib.clone().into()),
            "{answer}"
        );
        let path: Vec<String> = serde_json::from_value(path).unwrap();
        assert!(path.contains(&purelib), "{answer}");
        assert!(
            !path.iter().any(|p| p.contains("site-packages")
                && !p.starts_with(root.to_str().unwrap())
                || p.contains("dist-packages")),
            "system site-packages leak into {path:?}"
        );
        for name in venv.interpreter_names() {
            assert!(venv.scripts_dir().join(&name).exists(), "{name}");
        }
        assert!(root.join("lib64").is_symlink());
        assert!(!venv.scripts_dir().join("pip").exists());
        let has_pip = python_says(
            &venv.python(),
            "import importlib.util; print(importlib.util.find_spec('pip') is not None)",
        );
        assert_eq!(has_pip, "False");
        let cfg = fs::read_to_string(root.join("pyvenv.cfg")).unwrap();
        assert!(
            cfg.contains("include-system-site-packages = false\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains(&format!("version = {}\n", interpreter.target.version)),
            "{cfg}"
        );
    }

    #[test]
    fn activate_puts_the_venv_first_and_deactivate_restores() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("venv");
        let venv = Venv::create(&root, &interpreter(), &[] as &[String]).unwrap();
        let script = format!(
            ". '{}/bin/activate'; command -v python; echo \"$VIRTUAL_ENV\"; deactivate; \
             command -v deactivate | grep -qx deactivate && echo still || echo gone; echo \"${{VIRTUAL_ENV:-unset}}\"",
            venv.root().display()
        );
        let output = Command::new("sh").args(["-c", &script]).output().unwrap();
        let text = String::from_utf8(output.stdout).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                venv.python().to_str().unwrap(),
                root.to_str().unwrap(),
                "gone",
                "unset"
            ],
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn system_modules_are_linked_or_clearly_missing() {
        let dir = tempfile::tempdir().unwrap();
        let interpreter = interpreter();
        let err = Venv::create(&dir.path().join("a"), &interpreter, &["no_such_module_xyz"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("system Python module `no_such_module_xyz` is not in /usr/lib/python3/dist-packages"),
            "{err}"
        );
        let err = Venv::create(&dir.path().join("b"), &interpreter, &["../etc"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a Python identifier"), "{err}");
        let system = Path::new(SYSTEM_DIST_PACKAGES);
        if !system.join("apt").is_dir() {
            eprintln!("skipping the apt part: python3-apt is not installed");
            return;
        }
        let venv = Venv::create(&dir.path().join("c"), &interpreter, &["apt"]).unwrap();
        assert_eq!(
            fs::read_link(venv.purelib().join("apt")).unwrap(),
            system.join("apt")
        );
    }

    #[test]
    fn unsafe_paths_are_refused() {
        let interpreter = interpreter();
        for path in ["relative/venv", "/tmp/it's", "/tmp/a$b", "/tmp/a\nb"] {
            let err = Venv::create(Path::new(path), &interpreter, &[] as &[String]).unwrap_err();
            assert!(matches!(err, VenvError::UnsafePath(_)), "{path}: {err}");
        }
    }
}
