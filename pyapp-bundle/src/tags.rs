//! Platform compatibility tags (`cp311-cp311-manylinux_2_17_x86_64`).
//!
//! A wheel declares the tags it runs on in its file name; a target interpreter supports an
//! ordered list of tags (see [`crate::target`]). Comparing the two decides whether a wheel
//! can be installed and, among several candidates, which one fits best.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::wheel_name::WheelName;

/// One `python-abi-platform` triple, e.g. `py3-none-any`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag {
    /// The Python tag: `cp311`, `py3`, `py311`.
    pub python: String,
    /// The ABI tag: `cp311`, `abi3`, `none`.
    pub abi: String,
    /// The platform tag: `manylinux_2_17_x86_64`, `linux_aarch64`, `any`.
    pub platform: String,
}

/// A tag triple that is not three non-empty `-`-separated parts of `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid compatibility tag `{0}`: expected PYTHON-ABI-PLATFORM")]
pub struct TagParseError(pub String);

impl Tag {
    /// A tag from its three parts, as given.
    pub fn new(
        python: impl Into<String>,
        abi: impl Into<String>,
        platform: impl Into<String>,
    ) -> Self {
        Tag {
            python: python.into(),
            abi: abi.into(),
            platform: platform.into(),
        }
    }
}

/// Whether `part` is one non-empty component of a tag (no `.` or `-`).
pub(crate) fn is_tag_component(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl FromStr for Tag {
    type Err = TagParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            [python, abi, platform] if parts.iter().all(|p| is_tag_component(p)) => {
                Ok(Tag::new(*python, *abi, *platform))
            }
            _ => Err(TagParseError(s.to_string())),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.python, self.abi, self.platform)
    }
}

impl WheelName {
    /// How well this wheel fits an interpreter whose supported tags are `supported`
    /// (ordered most specific first, as [`crate::target::TargetPython::supported_tags`]
    /// returns them).
    ///
    /// `None` when no tag of the wheel is supported; otherwise the index in `supported` of
    /// the best tag the wheel carries: lower is a better fit.
    pub fn compatibility(&self, supported: &[Tag]) -> Option<usize> {
        let tags = self.tags();
        supported.iter().position(|tag| tags.contains(tag))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_through_display() {
        let tag: Tag = "cp311-abi3-manylinux_2_17_x86_64".parse().unwrap();
        assert_eq!(tag.python, "cp311");
        assert_eq!(tag.abi, "abi3");
        assert_eq!(tag.platform, "manylinux_2_17_x86_64");
        assert_eq!(tag.to_string(), "cp311-abi3-manylinux_2_17_x86_64");
    }

    #[test]
    fn malformed_tags_are_refused() {
        for bad in [
            "py3-none",
            "py3-none-any-x",
            "py3--any",
            "py3-no ne-any",
            "py3.py2-none-any",
        ] {
            assert!(bad.parse::<Tag>().is_err(), "{bad}");
        }
    }

    #[test]
    fn compatibility_picks_the_most_specific_supported_tag() {
        let supported: Vec<Tag> = [
            "cp311-cp311-manylinux_2_17_x86_64",
            "cp311-abi3-manylinux_2_17_x86_64",
            "py3-none-any",
        ]
        .iter()
        .map(|t| t.parse().unwrap())
        .collect();
        let abi3: WheelName = "x-1.0-cp38-abi3.cp311-manylinux_2_17_x86_64.whl"
            .parse()
            .unwrap();
        assert_eq!(abi3.compatibility(&supported), None);
        let both: WheelName = "x-1.0-py3.cp311-none.abi3-any.manylinux_2_17_x86_64.whl"
            .parse()
            .unwrap();
        assert_eq!(both.compatibility(&supported), Some(1));
        let pure: WheelName = "x-1.0-py2.py3-none-any.whl".parse().unwrap();
        assert_eq!(pure.compatibility(&supported), Some(2));
        let win: WheelName = "x-1.0-cp311-cp311-win_amd64.whl".parse().unwrap();
        assert_eq!(win.compatibility(&supported), None);
    }
}
