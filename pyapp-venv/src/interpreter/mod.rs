//! The base Python interpreter a release's venv is built on.
//!
//! `--python PATH`, or the newest `python3.X` on `PATH` that satisfies the bundle's
//! `requires-python`. The interpreter is asked once, with a small stdlib-only script, for
//! everything the venv and the wheel installer need: version, ABI, platform, libc and the
//! layout of its `venv` install scheme. The answer can be remembered ([`AnswerCache`]).

mod cache;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;

use pep440_rs::{Version, VersionSpecifiers};
use pyapp_bundle::target::{Libc, PythonVersion, TargetPython};
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use cache::AnswerCache;

/// Stands for the venv root in the scheme paths the interpreter reports.
const VENV_PLACEHOLDER: &str = "/@pyapp-venv@";

/// Asks the interpreter about itself; prints one JSON object. Stdlib only, runs on 3.6+.
/// `depends` lists the files the answer came from: every module imported, every file the
/// process maps (the binary, libpython, the C library), the standard library directory and
/// where a `pyvenv.cfg` is looked for (a venv's interpreter takes its base from it); `exe`
/// the binary that ran.
const QUERY_SCRIPT: &str = r#"
import json, os, sys, sysconfig
scheme = "venv" if "venv" in sysconfig.get_scheme_names() else "posix_prefix"
base = "/@pyapp-venv@"
paths = sysconfig.get_paths(scheme=scheme, vars={"base": base, "platbase": base})
try:
    glibc = os.confstr("CS_GNU_LIBC_VERSION") or ""
except (AttributeError, ValueError, OSError):
    glibc = ""
musl = ""
if not glibc:
    import glob, subprocess
    for loader in sorted(glob.glob("/lib/ld-musl-*.so.1")):
        err = subprocess.run([loader], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE).stderr
        for line in err.decode("utf-8", "replace").splitlines():
            if line.startswith("Version "):
                musl = line.split()[1]
        break
stdlib = sysconfig.get_paths()["stdlib"]
depends = {stdlib}
for module in list(sys.modules.values()):
    file = getattr(module, "__file__", None)
    if isinstance(file, str):
        depends.add(os.path.abspath(file))
try:
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.rstrip("\n").split(None, 5)
            if len(fields) == 6 and fields[5].startswith("/"):
                depends.add(fields[5])
except OSError:
    pass
if sys.executable:
    # Where the interpreter looks for a pyvenv.cfg at start: the directories say when one
    # appears or goes, the file when it changes.
    for cfg_dir in (os.path.dirname(sys.executable), os.path.dirname(os.path.dirname(sys.executable))):
        depends.add(cfg_dir)
        if os.path.exists(os.path.join(cfg_dir, "pyvenv.cfg")):
            depends.add(os.path.join(cfg_dir, "pyvenv.cfg"))
try:
    exe = os.readlink("/proc/self/exe")
except OSError:
    exe = None
print(json.dumps({
    "implementation": sys.implementation.name,
    "version": list(sys.version_info[:3]),
    "releaselevel": sys.version_info.releaselevel,
    "serial": sys.version_info.serial,
    "abiflags": getattr(sys, "abiflags", ""),
    "platform": sysconfig.get_platform(),
    "is_64bit": sys.maxsize > 2 ** 32,
    "glibc": glibc,
    "musl": musl,
    "base_executable": getattr(sys, "_base_executable", None) or sys.executable,
    "stdlib": stdlib,
    "ext_suffix": sysconfig.get_config_var("EXT_SUFFIX") or "",
    "paths": {key: paths[key] for key in ("purelib", "platlib", "scripts", "data")},
    "depends": sorted(depends),
    "exe": exe,
}))
"#;

/// What the query script prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Answer {
    implementation: String,
    version: (u8, u8, u8),
    releaselevel: String,
    serial: u32,
    abiflags: String,
    platform: String,
    is_64bit: bool,
    glibc: String,
    musl: String,
    base_executable: PathBuf,
    stdlib: PathBuf,
    ext_suffix: String,
    paths: BTreeMap<String, String>,
    depends: Vec<PathBuf>,
    /// The binary the process runs (`/proc/self/exe`).
    exe: Option<PathBuf>,
}

/// Where a venv's files go, relative to the venv root (from the interpreter's `venv`
/// install scheme: `lib/python3.11/site-packages`, `bin`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemeLayout {
    pub purelib: PathBuf,
    pub platlib: PathBuf,
    pub scripts: PathBuf,
    pub data: PathBuf,
}

/// A base Python interpreter, as it described itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// The path it was found at or given as.
    pub path: PathBuf,
    /// The real interpreter binary a venv's `bin/python` links to (`sys._base_executable`).
    pub base_executable: PathBuf,
    /// Its standard library (`sysconfig`'s `stdlib` path).
    pub stdlib: PathBuf,
    /// Version, ABI, architecture and libc.
    pub target: TargetPython,
    /// `3.11.7.final.0`, for `pyvenv.cfg`.
    pub version_info: String,
    /// Whether pointers are 64 bits (a venv then gets `lib64 -> lib`).
    pub is_64bit: bool,
    /// The file name suffix of its extension modules (`.cpython-311-x86_64-linux-gnu.so`).
    pub ext_suffix: String,
    /// The venv layout.
    pub layout: SchemeLayout,
}

/// Why no usable interpreter was found.
#[derive(Debug, Error)]
pub enum InterpreterError {
    #[error("failed to run `{path}`: {source}")]
    Spawn {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("`{path}` failed to describe itself ({status}): {stderr}")]
    Failed {
        path: PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("`{path}` gave an answer pyapp-install does not understand: {reason}")]
    BadAnswer { path: PathBuf, reason: String },
    #[error("`{path}` is for `{platform}`; pyapp-install supports Linux only")]
    NotLinux { path: PathBuf, platform: String },
    #[error("`{path}` is Python {version}, but the app requires Python {requires}")]
    NotSatisfied {
        path: PathBuf,
        version: PythonVersion,
        requires: VersionSpecifiers,
    },
    #[error("`{path}` cannot be run by an app's user: {reason}")]
    Unreachable { path: PathBuf, reason: String },
    #[error("no python3.X on PATH satisfies requires-python `{requires}` (found: {found})")]
    NoneFound {
        requires: VersionSpecifiers,
        found: String,
    },
}

impl Interpreter {
    /// `explicit` if given (it must satisfy `requires`), else the newest `python3.X` on
    /// `PATH` that satisfies `requires`.
    pub fn find(
        explicit: Option<&Path>,
        requires: &VersionSpecifiers,
    ) -> Result<Interpreter, InterpreterError> {
        Interpreter::find_usable(explicit, requires, &|_| Ok(()), &AnswerCache::none())
    }

    /// [`Interpreter::find`], taking only an interpreter `usable` accepts: an explicit one
    /// it refuses is refused, one on `PATH` skipped (the error lists each with its reason).
    /// Answers come from `answers` where it remembers them.
    pub fn find_usable(
        explicit: Option<&Path>,
        requires: &VersionSpecifiers,
        usable: &dyn Fn(&Interpreter) -> Result<(), InterpreterError>,
        answers: &AnswerCache,
    ) -> Result<Interpreter, InterpreterError> {
        if let Some(path) = explicit {
            let interpreter = Interpreter::query_with(path, answers)?.require(path, requires)?;
            usable(&interpreter)?;
            return Ok(interpreter);
        }
        let mut found = Vec::new();
        for candidate in python3_on_path() {
            match Interpreter::query_with(&candidate, answers) {
                Ok(interpreter) if interpreter.satisfies(requires) => match usable(&interpreter) {
                    Ok(()) => return Ok(interpreter),
                    Err(err) => found.push(format!("skipped {err}")),
                },
                Ok(interpreter) => found.push(format!(
                    "{} is {}",
                    candidate.display(),
                    interpreter.target.version
                )),
                Err(err) => found.push(err.to_string()),
            }
        }
        Err(InterpreterError::NoneFound {
            requires: requires.clone(),
            found: if found.is_empty() {
                "none".to_string()
            } else {
                found.join("; ")
            },
        })
    }

    /// Refuses an interpreter that a user other than its files' owner cannot run (one under
    /// root's 0700 home, as pyenv puts it): every directory above its binary and its
    /// standard library must be searchable by others, the binary executable and the
    /// standard library readable by them.
    pub fn runnable_by_others(&self) -> Result<(), InterpreterError> {
        let unreachable = |reason: String| InterpreterError::Unreachable {
            path: self.path.clone(),
            reason,
        };
        for (path, needs) in [(&self.base_executable, 0o001), (&self.stdlib, 0o005)] {
            let real = std::fs::canonicalize(path)
                .map_err(|err| unreachable(format!("`{}`: {err}", path.display())))?;
            // Every directory above it must be searchable, then it must be usable itself.
            let checks = real
                .ancestors()
                .skip(1)
                .map(|dir| (dir, 0o001))
                .chain([(real.as_path(), needs)]);
            for (checked, needs) in checks {
                let mode = std::fs::metadata(checked)
                    .map_err(|err| unreachable(format!("`{}`: {err}", checked.display())))?
                    .permissions()
                    .mode();
                if mode & needs != needs {
                    return Err(unreachable(format!(
                        "`{}` (mode {:04o}) is closed to other users",
                        checked.display(),
                        mode & 0o7777
                    )));
                }
            }
        }
        Ok(())
    }

    /// This interpreter (queried at `path`) if its version is in `requires`; otherwise the
    /// error [`Interpreter::find`] gives for an explicit interpreter that does not fit.
    pub fn require(
        self,
        path: &Path,
        requires: &VersionSpecifiers,
    ) -> Result<Interpreter, InterpreterError> {
        if self.satisfies(requires) {
            Ok(self)
        } else {
            Err(InterpreterError::NotSatisfied {
                path: path.to_path_buf(),
                version: self.target.version,
                requires: requires.clone(),
            })
        }
    }

    /// Whether this interpreter's version is in `requires`.
    pub fn satisfies(&self, requires: &VersionSpecifiers) -> bool {
        let v = self.target.version;
        let version = Version::new([u64::from(v.major), u64::from(v.minor), u64::from(v.micro)]);
        requires.contains(&version)
    }

    /// Run the interpreter at `path` once and describe it.
    pub fn query(path: &Path) -> Result<Interpreter, InterpreterError> {
        Interpreter::query_with(path, &AnswerCache::none())
    }

    /// The interpreter at `path` as `answers` remembers it, or else as it describes itself
    /// (the answer then queued in `answers` to be saved).
    pub fn query_with(path: &Path, answers: &AnswerCache) -> Result<Interpreter, InterpreterError> {
        if let Some(answer) = answers.lookup(path) {
            return Interpreter::from_answer(path, answer);
        }
        let answer = Interpreter::ask(path)?;
        let interpreter = Interpreter::from_answer(path, answer.clone())?;
        answers.remember(path, &answer);
        Ok(interpreter)
    }

    /// What the interpreter at `path` says about itself.
    fn ask(path: &Path) -> Result<Answer, InterpreterError> {
        let output = Command::new(path)
            .args(["-I", "-S", "-c", QUERY_SCRIPT])
            .output()
            .map_err(|source| InterpreterError::Spawn {
                path: path.to_path_buf(),
                source,
            })?;
        if !output.status.success() {
            return Err(InterpreterError::Failed {
                path: path.to_path_buf(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        serde_json::from_slice(&output.stdout).map_err(|e| InterpreterError::BadAnswer {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    fn from_answer(path: &Path, answer: Answer) -> Result<Interpreter, InterpreterError> {
        let bad = |reason: String| InterpreterError::BadAnswer {
            path: path.to_path_buf(),
            reason,
        };
        let machine =
            answer
                .platform
                .strip_prefix("linux-")
                .ok_or_else(|| InterpreterError::NotLinux {
                    path: path.to_path_buf(),
                    platform: answer.platform.clone(),
                })?;
        // A 32-bit interpreter on a 64-bit kernel runs 32-bit wheels.
        let arch = match (machine, answer.is_64bit) {
            ("x86_64", false) => "i686",
            ("aarch64", false) => "armv7l",
            (machine, _) => machine,
        };
        let libc = if let Some(version) = answer.glibc.strip_prefix("glibc ") {
            let (major, minor) = major_minor(version)
                .ok_or_else(|| bad(format!("glibc version `{}`", answer.glibc)))?;
            Libc::Glibc(major, minor)
        } else if !answer.musl.is_empty() {
            let (major, minor) = major_minor(&answer.musl)
                .ok_or_else(|| bad(format!("musl version `{}`", answer.musl)))?;
            Libc::Musl(major, minor)
        } else {
            Libc::None
        };
        let scheme_dir = |key: &str| -> Result<PathBuf, InterpreterError> {
            let full = answer
                .paths
                .get(key)
                .ok_or_else(|| bad(format!("no `{key}` install path")))?;
            let relative = full
                .strip_prefix(VENV_PLACEHOLDER)
                .map(|rest| rest.trim_start_matches('/'))
                .filter(|rest| !rest.split('/').any(|c| c == ".."))
                .ok_or_else(|| bad(format!("`{key}` path `{full}` is outside the venv")))?;
            Ok(PathBuf::from(relative))
        };
        let layout = SchemeLayout {
            purelib: scheme_dir("purelib")?,
            platlib: scheme_dir("platlib")?,
            scripts: scheme_dir("scripts")?,
            data: scheme_dir("data")?,
        };
        let (major, minor, micro) = answer.version;
        if !answer.base_executable.is_absolute() {
            return Err(bad(format!(
                "executable `{}` is not an absolute path",
                answer.base_executable.display()
            )));
        }
        Ok(Interpreter {
            path: path.to_path_buf(),
            base_executable: answer.base_executable,
            stdlib: answer.stdlib,
            target: TargetPython {
                implementation: answer.implementation,
                version: PythonVersion {
                    major,
                    minor,
                    micro,
                },
                abiflags: answer.abiflags,
                arch: arch.to_string(),
                libc,
            },
            version_info: format!(
                "{major}.{minor}.{micro}.{}.{}",
                answer.releaselevel, answer.serial
            ),
            is_64bit: answer.is_64bit,
            ext_suffix: answer.ext_suffix,
            layout,
        })
    }
}

/// `2.36` -> (2, 36); extra components are ignored.
fn major_minor(version: &str) -> Option<(u16, u16)> {
    let mut parts = version.split('.');
    let major = u16::from_str(parts.next()?).ok()?;
    let minor = u16::from_str(parts.next()?).ok()?;
    Some((major, minor))
}

/// Every `python3.X` on `PATH`, newest minor version first, each version's in `PATH` order
/// (the first is what a shell would run; the others are there when it cannot be used).
fn python3_on_path() -> Vec<PathBuf> {
    let mut by_minor: BTreeMap<u32, Vec<PathBuf>> = BTreeMap::new();
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(minor) = name
                .to_str()
                .and_then(|n| n.strip_prefix("python3."))
                .and_then(|m| m.parse::<u32>().ok())
            else {
                continue;
            };
            let executable = std::fs::metadata(entry.path())
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable {
                by_minor.entry(minor).or_default().push(entry.path());
            }
        }
    }
    by_minor.into_values().rev().flatten().collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn queries_the_python_on_path() {
        let interpreter =
            Interpreter::find(None, &VersionSpecifiers::from_str(">=3.8").unwrap()).unwrap();
        assert_eq!(interpreter.target.implementation, "cpython");
        assert_eq!(interpreter.target.version.major, 3);
        assert!(interpreter.base_executable.is_absolute());
        let short = interpreter.target.short_version();
        assert_eq!(
            interpreter.layout.purelib,
            PathBuf::from(format!("lib/python{short}/site-packages"))
        );
        assert_eq!(interpreter.layout.scripts, PathBuf::from("bin"));
        assert_eq!(interpreter.layout.data, PathBuf::from(""));
        assert!(interpreter.ext_suffix.ends_with(".so"));
        assert!(matches!(interpreter.target.libc, Libc::Glibc(2, _)));
    }

    #[test]
    fn an_unsatisfiable_requirement_names_what_was_found() {
        let err = Interpreter::find(None, &VersionSpecifiers::from_str(">=4").unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no python3.X on PATH satisfies requires-python `>=4`"),
            "{err}"
        );
        assert!(err.contains("python3."), "{err}");
        let err = Interpreter::find(
            Some(Path::new("/nonexistent/python3")),
            &VersionSpecifiers::from_str(">=3").unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("failed to run `/nonexistent/python3`"),
            "{err}"
        );
    }

    #[test]
    fn an_interpreter_behind_a_closed_directory_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let system = Interpreter::find_usable(
            None,
            &VersionSpecifiers::from_str(">=3.8").unwrap(),
            &Interpreter::runnable_by_others,
            &AnswerCache::none(),
        )
        .unwrap();
        // pyenv's layout: the interpreter in root's 0700 home.
        let home = tempfile::tempdir().unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let bin = home.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let name = format!("python{}", system.target.short_version());
        std::fs::copy(&system.base_executable, bin.join(&name)).unwrap();
        let private = Interpreter::query(&bin.join(&name)).unwrap();
        let err = private.runnable_by_others().unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "`{}` cannot be run by an app's user: `{}` (mode 0700) is closed to other users",
                bin.join(&name).display(),
                home.path().display()
            )
        );
    }
}
