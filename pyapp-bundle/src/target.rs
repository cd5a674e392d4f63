//! The Python a bundle is built for or installed into: version, ABI, architecture, libc.
//!
//! From a [`TargetPython`] follow the compatibility tags it supports (ordered like
//! `packaging.tags.sys_tags`, most specific first) and the PEP 508 marker environment used
//! to evaluate dependency markers. pyapp-install builds one by asking the real interpreter;
//! pyapp-build can build one from pip-style `--python-version` / `--platform` options.

use std::fmt;

use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use thiserror::Error;

use crate::tags::Tag;

/// The C library the interpreter is linked against, which decides the `manylinux` /
/// `musllinux` platform tags it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Libc {
    /// GNU libc `major.minor`: accepts `manylinux_MAJOR_M` for every `M <= minor`.
    Glibc(u16, u16),
    /// musl `major.minor`: accepts `musllinux_MAJOR_M` for every `M <= minor`.
    Musl(u16, u16),
    /// Unknown or neither: only plain `linux_ARCH` wheels fit.
    None,
}

/// A Python version `major.minor.micro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PythonVersion {
    pub major: u8,
    pub minor: u8,
    pub micro: u8,
}

impl fmt::Display for PythonVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.micro)
    }
}

/// A target Python interpreter on Linux.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPython {
    /// `sys.implementation.name`: `cpython`, `pypy`.
    pub implementation: String,
    /// `sys.version_info[:3]`.
    pub version: PythonVersion,
    /// `sys.abiflags`: empty for ordinary builds, `t` free-threaded, `d` debug.
    pub abiflags: String,
    /// `platform.machine()`: `x86_64`, `aarch64`, `armv7l`, `i686`, ...
    pub arch: String,
    /// The C library and its version.
    pub libc: Libc,
}

/// Why pip-style target options could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error("invalid Python version `{0}`: expected 3.X, 3.X.Y or 3X")]
    InvalidPythonVersion(String),
    #[error(
        "unsupported platform `{0}`: expected manylinux_2_N_ARCH, manylinux2014_ARCH, \
         musllinux_1_N_ARCH or linux_ARCH"
    )]
    InvalidPlatform(String),
}

/// Legacy manylinux aliases and the glibc version each stands for.
const LEGACY_MANYLINUX: [(&str, (u16, u16)); 3] = [
    ("manylinux2014", (2, 17)),
    ("manylinux2010", (2, 12)),
    ("manylinux1", (2, 5)),
];

impl TargetPython {
    /// A CPython target from pip-style options: `--python-version 3.11` (also `311` or
    /// `3.11.4`; the micro version defaults to 0) and `--platform manylinux_2_28_x86_64`
    /// (also `manylinux2014_aarch64`, `musllinux_1_2_x86_64`, `linux_x86_64`).
    pub fn from_pip_options(python_version: &str, platform: &str) -> Result<Self, TargetError> {
        let version = parse_python_version(python_version)
            .ok_or_else(|| TargetError::InvalidPythonVersion(python_version.to_string()))?;
        let (libc, arch) = parse_platform(platform)
            .ok_or_else(|| TargetError::InvalidPlatform(platform.to_string()))?;
        Ok(TargetPython {
            implementation: "cpython".to_string(),
            version,
            abiflags: String::new(),
            arch,
            libc,
        })
    }

    /// `3.11`, the version as `python_version` markers and `python3.X` names use it.
    pub fn short_version(&self) -> String {
        format!("{}.{}", self.version.major, self.version.minor)
    }

    /// Every tag this interpreter accepts, most specific first, in the order of
    /// `packaging.tags.sys_tags`: `cpXY-cpXY-PLAT`, `cpXY-abi3-PLAT`, `cpXY-none-PLAT`,
    /// `cpXW-abi3-PLAT` for older minors down to `cp32`, then `py3X-none-PLAT`,
    /// `py3-none-PLAT` and older `py3W-none-PLAT`, then `cpXY-none-any` and the `py*`
    /// versions with `none-any`. Platforms go from the newest `manylinux_2_N` down to the
    /// oldest (with the legacy `manylinux2014`/`2010`/`1` aliases in place), then
    /// `linux_ARCH`. Implementations other than CPython get only the `py*` tags.
    pub fn supported_tags(&self) -> Vec<Tag> {
        let platforms = self.platform_tags();
        let (major, minor) = (self.version.major, self.version.minor);
        let mut tags = Vec::new();
        if self.implementation == "cpython" {
            let interpreter = format!("cp{major}{minor}");
            let abi = format!("cp{major}{minor}{}", self.abiflags);
            let abi3 = !self.abiflags.contains('t');
            for platform in &platforms {
                tags.push(Tag::new(&interpreter, &abi, platform));
            }
            if abi3 {
                for platform in &platforms {
                    tags.push(Tag::new(&interpreter, "abi3", platform));
                }
            }
            for platform in &platforms {
                tags.push(Tag::new(&interpreter, "none", platform));
            }
            if abi3 && major == 3 {
                for older in (2..minor).rev() {
                    for platform in &platforms {
                        tags.push(Tag::new(format!("cp3{older}"), "abi3", platform));
                    }
                }
            }
        }
        let mut py_versions = vec![format!("py{major}{minor}"), format!("py{major}")];
        py_versions.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
        for python in &py_versions {
            for platform in &platforms {
                tags.push(Tag::new(python, "none", platform));
            }
        }
        if self.implementation == "cpython" {
            tags.push(Tag::new(format!("cp{major}{minor}"), "none", "any"));
        }
        for python in &py_versions {
            tags.push(Tag::new(python, "none", "any"));
        }
        tags
    }

    /// The platform tags, most specific first: `manylinux_2_N_ARCH` down to the oldest
    /// glibc the architecture has wheels for (legacy aliases after their glibc version),
    /// or `musllinux_1_N_ARCH` down to 0, then `linux_ARCH`.
    fn platform_tags(&self) -> Vec<String> {
        let arch = &self.arch;
        let mut platforms = Vec::new();
        match self.libc {
            Libc::Glibc(major, minor) => {
                // manylinux1/2010 (glibc 2.5/2.12) exist only for x86; elsewhere 2.17 is the floor.
                let oldest = if matches!(arch.as_str(), "x86_64" | "i686") {
                    5
                } else {
                    17
                };
                for m in (0..=minor).rev().filter(|m| major != 2 || *m >= oldest) {
                    platforms.push(format!("manylinux_{major}_{m}_{arch}"));
                    if let Some((legacy, _)) =
                        LEGACY_MANYLINUX.iter().find(|(_, v)| *v == (major, m))
                    {
                        platforms.push(format!("{legacy}_{arch}"));
                    }
                }
            }
            Libc::Musl(major, minor) => {
                for m in (0..=minor).rev() {
                    platforms.push(format!("musllinux_{major}_{m}_{arch}"));
                }
            }
            Libc::None => {}
        }
        platforms.push(format!("linux_{arch}"));
        platforms
    }

    /// The PEP 508 marker environment of this target on Linux. `platform_release` and
    /// `platform_version` (the kernel's) are unknown and left empty.
    pub fn marker_environment(&self) -> MarkerEnvironment {
        let full_version = self.version.to_string();
        let short_version = self.short_version();
        let python_implementation = match self.implementation.as_str() {
            "cpython" => "CPython",
            "pypy" => "PyPy",
            other => other,
        };
        let builder = MarkerEnvironmentBuilder {
            implementation_name: &self.implementation,
            implementation_version: &full_version,
            os_name: "posix",
            platform_machine: &self.arch,
            platform_python_implementation: python_implementation,
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full_version,
            python_version: &short_version,
            sys_platform: "linux",
        };
        // Both versions are made of plain integers, which always parse.
        MarkerEnvironment::try_from(builder).unwrap_or_else(|_| {
            unreachable!("`{full_version}` and `{short_version}` are valid PEP 440 versions")
        })
    }
}

fn parse_python_version(text: &str) -> Option<PythonVersion> {
    let numbers: Vec<u8> = if text.contains('.') {
        text.split('.')
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?
    } else {
        // pip's compact form: `311` is 3.11, `39` is 3.9.
        let (major, minor) = text.split_at_checked(1)?;
        vec![major.parse().ok()?, minor.parse().ok()?]
    };
    match numbers.as_slice() {
        [3, minor] => Some(PythonVersion {
            major: 3,
            minor: *minor,
            micro: 0,
        }),
        [3, minor, micro] => Some(PythonVersion {
            major: 3,
            minor: *minor,
            micro: *micro,
        }),
        _ => None,
    }
}

/// `(libc, arch)` from a platform tag.
fn parse_platform(platform: &str) -> Option<(Libc, String)> {
    let valid_arch = |arch: &str| {
        !arch.is_empty() && arch.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    // `2_28_x86_64` -> (2, 28, "x86_64")
    let versioned = |rest: &str| -> Option<(u16, u16, String)> {
        let mut parts = rest.splitn(3, '_');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let arch = parts.next()?;
        valid_arch(arch).then(|| (major, minor, arch.to_string()))
    };
    if let Some(rest) = platform.strip_prefix("manylinux_") {
        let (major, minor, arch) = versioned(rest)?;
        return Some((Libc::Glibc(major, minor), arch));
    }
    if let Some(rest) = platform.strip_prefix("musllinux_") {
        let (major, minor, arch) = versioned(rest)?;
        return Some((Libc::Musl(major, minor), arch));
    }
    for (legacy, (major, minor)) in LEGACY_MANYLINUX {
        if let Some(arch) = platform
            .strip_prefix(legacy)
            .and_then(|r| r.strip_prefix('_'))
        {
            return valid_arch(arch).then(|| (Libc::Glibc(major, minor), arch.to_string()));
        }
    }
    let arch = platform.strip_prefix("linux_")?;
    valid_arch(arch).then(|| (Libc::None, arch.to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cpython311() -> TargetPython {
        TargetPython {
            implementation: "cpython".into(),
            version: PythonVersion {
                major: 3,
                minor: 11,
                micro: 7,
            },
            abiflags: String::new(),
            arch: "x86_64".into(),
            libc: Libc::Glibc(2, 36),
        }
    }

    fn strings(tags: &[Tag]) -> Vec<String> {
        tags.iter().map(Tag::to_string).collect()
    }

    #[test]
    fn tags_follow_packaging_order() {
        let tags = strings(&cpython311().supported_tags());
        let position = |t: &str| {
            tags.iter()
                .position(|x| x == t)
                .unwrap_or_else(|| panic!("{t} missing"))
        };
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_36_x86_64");
        assert!(
            position("cp311-cp311-manylinux_2_17_x86_64")
                < position("cp311-cp311-manylinux2014_x86_64")
        );
        assert!(
            position("cp311-cp311-manylinux2014_x86_64")
                < position("cp311-cp311-manylinux_2_16_x86_64")
        );
        assert!(position("cp311-cp311-manylinux1_x86_64") < position("cp311-cp311-linux_x86_64"));
        assert!(
            position("cp311-cp311-linux_x86_64") < position("cp311-abi3-manylinux_2_36_x86_64")
        );
        assert!(position("cp311-none-linux_x86_64") < position("cp310-abi3-manylinux_2_36_x86_64"));
        assert!(position("cp32-abi3-linux_x86_64") < position("py311-none-manylinux_2_36_x86_64"));
        assert!(position("py3-none-linux_x86_64") < position("py310-none-manylinux_2_36_x86_64"));
        assert!(position("cp311-none-any") < position("py311-none-any"));
        assert_eq!(tags.last().map(String::as_str), Some("py30-none-any"));
        assert!(!tags.contains(&"cp311-cp311-manylinux_2_4_x86_64".to_string()));
        assert!(!tags.contains(&"cp31-abi3-linux_x86_64".to_string()));
        assert!(!tags.iter().any(|t| t.contains("musllinux")));
    }

    #[test]
    fn aarch64_stops_at_manylinux2014_and_free_threading_has_no_abi3() {
        let mut target = cpython311();
        target.arch = "aarch64".into();
        target.abiflags = "t".into();
        let tags = strings(&target.supported_tags());
        assert!(tags.contains(&"cp311-cp311t-manylinux2014_aarch64".to_string()));
        assert!(!tags
            .iter()
            .any(|t| t.contains("manylinux_2_16") || t.contains("manylinux2010")));
        assert!(!tags.iter().any(|t| t.contains("abi3")));
    }

    #[test]
    fn pip_options_build_a_target() {
        let t = TargetPython::from_pip_options("3.11", "manylinux_2_28_x86_64").unwrap();
        assert_eq!(t.libc, Libc::Glibc(2, 28));
        assert_eq!(t.arch, "x86_64");
        assert_eq!(t.short_version(), "3.11");
        let t = TargetPython::from_pip_options("312", "manylinux2014_aarch64").unwrap();
        assert_eq!(
            (t.version.minor, t.libc, t.arch.as_str()),
            (12, Libc::Glibc(2, 17), "aarch64")
        );
        let t = TargetPython::from_pip_options("3.9.18", "musllinux_1_2_x86_64").unwrap();
        assert_eq!((t.version.micro, t.libc), (18, Libc::Musl(1, 2)));
        let t = TargetPython::from_pip_options("3.10", "linux_armv7l").unwrap();
        assert_eq!(t.libc, Libc::None);
        let musl = strings(
            &TargetPython::from_pip_options("3.12", "musllinux_1_1_x86_64")
                .unwrap()
                .supported_tags(),
        );
        assert_eq!(
            musl[..3],
            [
                "cp312-cp312-musllinux_1_1_x86_64",
                "cp312-cp312-musllinux_1_0_x86_64",
                "cp312-cp312-linux_x86_64"
            ]
        );
    }

    #[test]
    fn bad_pip_options_are_refused() {
        for version in ["3", "2.7", "3.x", "", "3.11.1.1"] {
            assert!(
                TargetPython::from_pip_options(version, "linux_x86_64").is_err(),
                "{version}"
            );
        }
        for platform in [
            "win_amd64",
            "manylinux_2_x86_64",
            "manylinux_2_28_",
            "macosx_11_0_arm64",
            "manylinux2014",
        ] {
            assert!(
                TargetPython::from_pip_options("3.11", platform).is_err(),
                "{platform}"
            );
        }
    }

    #[test]
    fn marker_environment_describes_linux_cpython() {
        let env = cpython311().marker_environment();
        assert_eq!(env.python_version().string, "3.11");
        assert_eq!(env.python_full_version().string, "3.11.7");
        assert_eq!(env.sys_platform(), "linux");
        assert_eq!(env.platform_system(), "Linux");
        assert_eq!(env.os_name(), "posix");
        assert_eq!(env.platform_machine(), "x86_64");
        assert_eq!(env.implementation_name(), "cpython");
        assert_eq!(env.platform_python_implementation(), "CPython");
        let requirement: pep508_rs::Requirement =
            "tomli ; python_version < '3.11' and sys_platform == 'linux'"
                .parse()
                .unwrap();
        assert!(!requirement.evaluate_markers(&env, &[]));
    }
}
