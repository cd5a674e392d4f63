//! Wheel file names: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
//!
//! The file name is the only thing pyapp trusts to identify a wheel before opening it: its
//! distribution name (compared after PEP 503 normalisation), its PEP 440 version and its
//! compatibility tags (compressed tag sets like `py2.py3` are expanded into triples).

use std::fmt;
use std::str::FromStr;

use pep440_rs::Version;
use thiserror::Error;

use crate::tags::{is_tag_component, Tag};

/// A parsed wheel file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    file_name: String,
    name: String,
    version: Version,
    build: Option<String>,
    python_tags: Vec<String>,
    abi_tags: Vec<String>,
    platform_tags: Vec<String>,
}

/// Why a file name is not a valid wheel file name; always names the file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WheelNameError {
    #[error("`{file_name}`: not a wheel file name: it does not end in `.whl`")]
    NotAWheel { file_name: String },
    #[error(
        "`{file_name}`: invalid wheel file name: expected \
         NAME-VERSION(-BUILD)?-PYTHON-ABI-PLATFORM.whl"
    )]
    WrongShape { file_name: String },
    #[error("`{file_name}`: invalid distribution name `{name}` in wheel file name")]
    InvalidName { file_name: String, name: String },
    #[error("`{file_name}`: invalid version `{version}` in wheel file name: {reason}")]
    InvalidVersion {
        file_name: String,
        version: String,
        reason: String,
    },
    #[error("`{file_name}`: invalid build tag `{build}`: it must start with a digit")]
    InvalidBuildTag { file_name: String, build: String },
    #[error("`{file_name}`: invalid compatibility tag `{tag}` in wheel file name")]
    InvalidTag { file_name: String, tag: String },
}

/// PEP 503 normalisation: lowercase, runs of `-`, `_` and `.` become one `-`.
///
/// `Foo.Bar__baz` and `foo-bar-baz` name the same distribution.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            in_separator = true;
        } else {
            if in_separator && !out.is_empty() {
                out.push('-');
            }
            in_separator = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Whether `name` is a valid distribution name (PEP 508 / core metadata `Name`):
/// ASCII letters, digits, `.`, `_`, `-`, starting and ending with a letter or digit.
pub fn is_valid_distribution_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        _ => false,
    }
}

impl WheelName {
    /// Parse a wheel file name (just the name, no directory).
    pub fn parse(file_name: &str) -> Result<Self, WheelNameError> {
        let stem = file_name
            .strip_suffix(".whl")
            .ok_or_else(|| WheelNameError::NotAWheel {
                file_name: file_name.to_string(),
            })?;
        let wrong_shape = || WheelNameError::WrongShape {
            file_name: file_name.to_string(),
        };
        let parts: Vec<&str> = stem.split('-').collect();
        let (name, version, build, python, abi, platform) = match parts.as_slice() {
            [n, v, p, a, pl] => (*n, *v, None, *p, *a, *pl),
            [n, v, b, p, a, pl] => (*n, *v, Some(*b), *p, *a, *pl),
            _ => return Err(wrong_shape()),
        };
        if !is_valid_distribution_name(name) {
            return Err(WheelNameError::InvalidName {
                file_name: file_name.to_string(),
                name: name.to_string(),
            });
        }
        let parsed_version =
            Version::from_str(version).map_err(|e| WheelNameError::InvalidVersion {
                file_name: file_name.to_string(),
                version: version.to_string(),
                reason: e.to_string(),
            })?;
        if let Some(build) = build {
            let valid = build.starts_with(|c: char| c.is_ascii_digit())
                && build
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(WheelNameError::InvalidBuildTag {
                    file_name: file_name.to_string(),
                    build: build.to_string(),
                });
            }
        }
        let tag_set = |set: &str| -> Result<Vec<String>, WheelNameError> {
            set.split('.')
                .map(|part| {
                    if is_tag_component(part) {
                        Ok(part.to_string())
                    } else {
                        Err(WheelNameError::InvalidTag {
                            file_name: file_name.to_string(),
                            tag: set.to_string(),
                        })
                    }
                })
                .collect()
        };
        Ok(WheelName {
            file_name: file_name.to_string(),
            name: normalize_name(name),
            version: parsed_version,
            build: build.map(str::to_string),
            python_tags: tag_set(python)?,
            abi_tags: tag_set(abi)?,
            platform_tags: tag_set(platform)?,
        })
    }

    /// The file name this was parsed from.
    pub fn file_name(&self) -> &str {
        &self.file_name
    }

    /// The PEP 503-normalised distribution name (`zope-interface`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The distribution version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The optional build tag (always starts with a digit).
    pub fn build_tag(&self) -> Option<&str> {
        self.build.as_deref()
    }

    /// Every `python-abi-platform` triple the file name declares, compressed tag sets
    /// expanded (`py2.py3-none-any` gives two tags).
    pub fn tags(&self) -> Vec<Tag> {
        let mut tags = Vec::new();
        for python in &self.python_tags {
            for abi in &self.abi_tags {
                for platform in &self.platform_tags {
                    tags.push(Tag::new(python, abi, platform));
                }
            }
        }
        tags
    }

    /// Whether a `.dist-info` (or `.data`) directory stem `NAME-VERSION` found inside the
    /// wheel belongs to this wheel: same normalised name and same version.
    pub fn matches_dir_stem(&self, stem: &str) -> bool {
        match stem.rsplit_once('-') {
            Some((name, version)) => {
                normalize_name(name) == self.name
                    && Version::from_str(version).is_ok_and(|v| v == self.version)
            }
            None => false,
        }
    }
}

impl FromStr for WheelName {
    type Err = WheelNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WheelName::parse(s)
    }
}

impl fmt::Display for WheelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file_name)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_pure_wheel() {
        let w = WheelName::parse("Flask-3.0.3-py3-none-any.whl").unwrap();
        assert_eq!(w.name(), "flask");
        assert_eq!(w.version().to_string(), "3.0.3");
        assert_eq!(w.build_tag(), None);
        assert_eq!(w.tags(), vec![Tag::new("py3", "none", "any")]);
        assert_eq!(w.to_string(), "Flask-3.0.3-py3-none-any.whl");
    }

    #[test]
    fn expands_compressed_tag_sets_and_keeps_the_build_tag() {
        let w = WheelName::parse(
            "numpy-1.26.4-1local-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.build_tag(), Some("1local"));
        let tags: Vec<String> = w.tags().iter().map(Tag::to_string).collect();
        assert_eq!(
            tags,
            [
                "cp311-cp311-manylinux_2_17_x86_64",
                "cp311-cp311-manylinux2014_x86_64"
            ]
        );
    }

    #[test]
    fn normalises_names_like_pep_503() {
        assert_eq!(normalize_name("Zope.Interface"), "zope-interface");
        assert_eq!(normalize_name("foo__bar-._baz"), "foo-bar-baz");
        assert_eq!(normalize_name("PyYAML"), "pyyaml");
        let w = WheelName::parse("zope.interface-6.4-cp311-cp311-linux_x86_64.whl").unwrap();
        assert_eq!(w.name(), "zope-interface");
        assert!(w.matches_dir_stem("zope.interface-6.4"));
        assert!(w.matches_dir_stem("zope_interface-6.4.0"));
        assert!(!w.matches_dir_stem("zope_interface-6.5"));
        assert!(!w.matches_dir_stem("zope-6.4"));
    }

    #[test]
    fn local_versions_parse() {
        let w = WheelName::parse("torch-2.3.0+cpu-cp311-cp311-linux_x86_64.whl").unwrap();
        assert_eq!(w.version().to_string(), "2.3.0+cpu");
    }

    #[test]
    fn errors_name_the_file() {
        let cases = [
            ("flask-3.0.3.tar.gz", "not a wheel file name"),
            ("flask-py3-none-any.whl", "invalid wheel file name"),
            ("a-b-c-d-e-f-g.whl", "invalid wheel file name"),
            ("-1.0-py3-none-any.whl", "invalid distribution name"),
            ("fl/ask-1.0-py3-none-any.whl", "invalid distribution name"),
            ("flask-one-py3-none-any.whl", "invalid version `one`"),
            ("flask-1.0-x1-py3-none-any.whl", "invalid build tag `x1`"),
            (
                "flask-1.0-py3..py2-none-any.whl",
                "invalid compatibility tag",
            ),
            ("flask-1.0-py3-none-a/y.whl", "invalid compatibility tag"),
        ];
        for (file_name, message) in cases {
            let err = WheelName::parse(file_name).unwrap_err().to_string();
            assert!(err.contains(message), "{file_name}: {err}");
            assert!(err.contains(file_name), "{file_name}: {err}");
        }
    }
}
