//! `manifest.json` and the rules for entry names (spec/FORMAT.md sections 1 and 1.1).
//!
//! The manifest is the bundle's table of contents: the size and sha256 of every entry. Its
//! bytes are canonical (what a signature covers), so it is written and parsed here only.
//! The entry-name rules live here too because the writer, the reader and the manifest must
//! apply exactly the same ones.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use unicode_normalization::UnicodeNormalization;

use crate::layout::{CONFIGURATION_NAME, DEPS_PREFIX, METADATA_NAME, SRC_PREFIX};
use crate::wheel_name::{WheelName, WheelNameError};
use crate::FORMAT_VERSION;

/// The manifest's and its signature's entry names, defined in [`crate::layout`] with the
/// other names of the layout (and still reachable here).
pub use crate::layout::{MANIFEST_NAME, SIGNATURE_NAME};
/// Largest manifest a reader accepts, in bytes.
pub const MAX_MANIFEST_SIZE: u64 = 16 * 1024 * 1024;
/// Longest entry name, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

/// The bundle's content digest (spec/FORMAT.md 1.1): the sha256 of the manifest's bytes
/// followed by the name of every executable entry (mode 0755), each ending in a line feed.
/// The manifest gives every other entry's size and sha256, and an entry's mode is its only
/// other property, so two bundles with the same digest install the same files.
pub fn content_sha256<'a>(
    manifest_bytes: &[u8],
    executables: impl IntoIterator<Item = &'a str>,
) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(manifest_bytes);
    for name in executables {
        hasher.update(name.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().into()
}

/// The parsed, validated `manifest.json`: files sorted by path, each path a valid entry name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    format: u32,
    files: Vec<ManifestEntry>,
}

/// One file of the bundle as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestEntry {
    /// The entry name inside the bundle, e.g. `deps/flask-3.0.3-py3-none-any.whl`.
    pub path: String,
    /// sha256 of the uncompressed content.
    #[serde(with = "sha256_hex")]
    pub sha256: [u8; 32],
    /// Size of the uncompressed content in bytes.
    pub size: u64,
}

/// Why a manifest is refused. The reader prefixes the bundle's path.
#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("bundle format {0} is newer than this tool supports ({FORMAT_VERSION})")]
    Newer(u64),
    #[error("{MANIFEST_NAME}: bundle format {0} is not supported (expected {FORMAT_VERSION})")]
    Unsupported(u32),
    #[error("{MANIFEST_NAME} is {size} bytes, more than the limit of {MAX_MANIFEST_SIZE}")]
    TooLarge { size: u64 },
    #[error("{MANIFEST_NAME}: {0}")]
    Json(serde_json::Error),
    #[error("{MANIFEST_NAME}: path {path:?} {problem}")]
    BadPath { path: String, problem: NameError },
    #[error("{MANIFEST_NAME}: path {path:?} is reserved and cannot be listed")]
    Reserved { path: String },
    #[error("{MANIFEST_NAME}: path {path:?} is listed twice")]
    Duplicate { path: String },
    #[error("{MANIFEST_NAME}: path {path:?} collides with {other:?} (same name after Unicode normalisation and lower-casing)")]
    Collision { path: String, other: String },
    #[error("{MANIFEST_NAME}: files are not sorted: {path:?} comes after {previous:?}")]
    Unsorted { path: String, previous: String },
    #[error("{MANIFEST_NAME} is not in canonical form (compact JSON, fixed key order, one trailing newline)")]
    NotCanonical,
}

/// Why a name is not a valid entry name; the message completes `entry "NAME" ...`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("has an empty name")]
    Empty,
    #[error("is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    #[error("contains a control character")]
    ControlCharacter,
    #[error("starts with a drive letter")]
    DriveLetter,
    #[error("is an absolute path")]
    Absolute,
    #[error("contains a backslash")]
    Backslash,
    #[error("is a directory entry")]
    Directory,
    #[error("has an empty path component")]
    EmptyComponent,
    #[error("has a \".\" path component")]
    DotComponent,
    #[error("escapes the bundle root")]
    DotDotComponent,
    #[error("is a wheel directly under {DEPS_PREFIX}: {0}")]
    BadWheelName(WheelNameError),
    #[error("is not a wheel file directly under {DEPS_PREFIX}")]
    NotAWheel,
    #[error(
        "is outside the bundle layout ({METADATA_NAME}, {CONFIGURATION_NAME}, {DEPS_PREFIX}*.whl, \
         {SRC_PREFIX}...)"
    )]
    OutsideLayout,
}

/// Checks `name` against the entry-name rules of FORMAT.md section 1: relative, `/`-separated,
/// no empty, `.` or `..` component, no `\`, no control character, no drive letter, at most
/// [`MAX_NAME_LEN`] bytes, and inside the layout (`metadata.yaml`, `configuration.yaml`,
/// `deps/<wheel>.whl`, `src/<path>`, or the reserved manifest and signature names).
pub fn check_entry_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let bytes = name.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err(NameError::DriveLetter);
    }
    if name.starts_with('/') {
        return Err(NameError::Absolute);
    }
    if name.contains('\\') {
        return Err(NameError::Backslash);
    }
    if name.ends_with('/') {
        return Err(NameError::Directory);
    }
    for component in name.split('/') {
        match component {
            "" => return Err(NameError::EmptyComponent),
            "." => return Err(NameError::DotComponent),
            ".." => return Err(NameError::DotDotComponent),
            _ => {}
        }
    }
    check_layout(name)
}

fn check_layout(name: &str) -> Result<(), NameError> {
    if let Some(wheel) = name.strip_prefix(DEPS_PREFIX) {
        if wheel.contains('/') || !wheel.ends_with(".whl") {
            return Err(NameError::NotAWheel);
        }
        return WheelName::parse(wheel)
            .map(|_| ())
            .map_err(NameError::BadWheelName);
    }
    let allowed = name.starts_with(SRC_PREFIX)
        || matches!(
            name,
            MANIFEST_NAME | SIGNATURE_NAME | METADATA_NAME | CONFIGURATION_NAME
        );
    if allowed {
        Ok(())
    } else {
        Err(NameError::OutsideLayout)
    }
}

/// The form two names are compared in for collisions: NFC, then lower-cased (and NFC again,
/// since lower-casing can denormalise). Two entries with the same folded name would unpack
/// onto one file on a case-insensitive or normalising filesystem.
pub fn folded_name(name: &str) -> String {
    name.nfc()
        .collect::<String>()
        .to_lowercase()
        .nfc()
        .collect()
}

impl Manifest {
    /// A format-1 manifest listing `files`, which must be sorted by path, unique (also after
    /// folding) and valid entry names other than the reserved ones.
    pub fn new(files: Vec<ManifestEntry>) -> Result<Self, ManifestError> {
        let manifest = Manifest {
            format: FORMAT_VERSION,
            files,
        };
        manifest.check_files()?;
        Ok(manifest)
    }

    /// Parses and validates `manifest.json`. A `format` newer than [`FORMAT_VERSION`] is
    /// reported before anything else is looked at; then unknown fields, bad hex, unsorted or
    /// duplicate paths, invalid names and non-canonical bytes are all refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let size = bytes.len() as u64;
        if size > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge { size });
        }
        #[derive(Deserialize)]
        struct FormatProbe {
            format: Option<serde_json::Value>,
        }
        let probe: FormatProbe = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        if let Some(format) = probe.format.as_ref().and_then(serde_json::Value::as_u64) {
            if format > u64::from(FORMAT_VERSION) {
                return Err(ManifestError::Newer(format));
            }
        }
        let manifest: Manifest = serde_json::from_slice(bytes).map_err(ManifestError::Json)?;
        if manifest.format != FORMAT_VERSION {
            return Err(ManifestError::Unsupported(manifest.format));
        }
        manifest.check_files()?;
        if manifest.to_bytes() != bytes {
            return Err(ManifestError::NotCanonical);
        }
        Ok(manifest)
    }

    fn check_files(&self) -> Result<(), ManifestError> {
        let mut folded = std::collections::HashMap::with_capacity(self.files.len());
        let mut previous: Option<&str> = None;
        for entry in &self.files {
            let path = entry.path.as_str();
            check_entry_name(path).map_err(|problem| ManifestError::BadPath {
                path: path.to_owned(),
                problem,
            })?;
            if path == MANIFEST_NAME || path == SIGNATURE_NAME {
                return Err(ManifestError::Reserved {
                    path: path.to_owned(),
                });
            }
            if let Some(previous) = previous {
                if path == previous {
                    return Err(ManifestError::Duplicate {
                        path: path.to_owned(),
                    });
                }
                if path.as_bytes() < previous.as_bytes() {
                    return Err(ManifestError::Unsorted {
                        path: path.to_owned(),
                        previous: previous.to_owned(),
                    });
                }
            }
            if let Some(other) = folded.insert(folded_name(path), path) {
                return Err(ManifestError::Collision {
                    path: path.to_owned(),
                    other: other.to_owned(),
                });
            }
            previous = Some(path);
        }
        Ok(())
    }

    /// The canonical bytes: compact JSON, keys in the order `format`, `files` and `path`,
    /// `sha256`, `size`, one trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers into a Vec cannot fail.
        let mut bytes = serde_json::to_vec(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The bundle format version (always [`FORMAT_VERSION`] once parsed).
    pub fn format(&self) -> u32 {
        self.format
    }

    /// Every file of the bundle except the manifest and its signature, sorted by path.
    pub fn files(&self) -> &[ManifestEntry] {
        &self.files
    }

    /// The entry for `path`, if listed.
    pub fn get(&self, path: &str) -> Option<&ManifestEntry> {
        self.files
            .binary_search_by(|entry| entry.path.as_bytes().cmp(path.as_bytes()))
            .ok()
            .and_then(|index| self.files.get(index))
    }
}

impl ManifestEntry {
    /// The sha256 as 64 lowercase hex digits.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// `sha256` as exactly 64 lowercase hex digits.
mod sha256_hex {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(digest: &[u8; 32], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&hex::encode(digest))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<[u8; 32], D::Error> {
        let text = String::deserialize(deserializer)?;
        let lowercase_hex = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if text.len() != 64 || !lowercase_hex {
            return Err(D::Error::custom(format!(
                "sha256 {text:?} is not 64 lowercase hex digits"
            )));
        }
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&text, &mut digest).map_err(D::Error::custom)?;
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHEEL: &str = "deps/flask-3.0.3-py3-none-any.whl";

    fn entry(path: &str, byte: u8, size: u64) -> ManifestEntry {
        ManifestEntry {
            path: path.to_owned(),
            sha256: [byte; 32],
            size,
        }
    }

    fn sample() -> Manifest {
        Manifest::new(vec![
            entry("configuration.yaml", 0xab, 12),
            entry(WHEEL, 0x01, 101254),
        ])
        .expect("valid manifest")
    }

    #[test]
    fn serialises_canonically() {
        let bytes = sample().to_bytes();
        let text = String::from_utf8(bytes).expect("utf-8");
        let expected = format!(
            "{{\"format\":1,\"files\":[{{\"path\":\"configuration.yaml\",\"sha256\":\"{}\",\"size\":12}},\
             {{\"path\":\"{WHEEL}\",\"sha256\":\"{}\",\"size\":101254}}]}}\n",
            "ab".repeat(32),
            "01".repeat(32)
        );
        assert_eq!(text, expected);
    }

    #[test]
    fn round_trips() {
        let manifest = sample();
        let parsed = Manifest::parse(&manifest.to_bytes()).expect("parses");
        assert_eq!(parsed, manifest);
        assert_eq!(
            parsed.get(WHEEL).map(ManifestEntry::sha256_hex),
            Some("01".repeat(32))
        );
        assert!(parsed.get("metadata.yaml").is_none());
    }

    fn parse_err(text: &str) -> String {
        match Manifest::parse(text.as_bytes()) {
            Ok(_) => panic!("{text} parsed"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn refuses_newer_format_before_anything_else() {
        assert_eq!(
            parse_err("{\"format\":2,\"files\":\"whatever\",\"signed\":true}\n"),
            "bundle format 2 is newer than this tool supports (1)"
        );
        assert_eq!(
            parse_err("{\"format\":0,\"files\":[]}\n"),
            "manifest.json: bundle format 0 is not supported (expected 1)"
        );
    }

    #[test]
    fn refuses_unknown_fields_and_bad_hex() {
        assert!(parse_err("{\"format\":1,\"files\":[],\"extra\":1}\n")
            .starts_with("manifest.json: unknown field `extra`"));
        let upper = format!(
            "{{\"format\":1,\"files\":[{{\"path\":\"metadata.yaml\",\"sha256\":\"{}\",\"size\":1}}]}}\n",
            "AB".repeat(32)
        );
        assert!(parse_err(&upper).contains("is not 64 lowercase hex digits"));
        let extra_key = format!(
            "{{\"format\":1,\"files\":[{{\"path\":\"metadata.yaml\",\"sha256\":\"{}\",\"size\":1,\"mode\":1}}]}}\n",
            "ab".repeat(32)
        );
        assert!(parse_err(&extra_key).starts_with("manifest.json: unknown field `mode`"));
    }

    #[test]
    fn refuses_unsorted_duplicate_and_colliding_paths() {
        let files = |a: &str, b: &str| {
            String::from_utf8(
                Manifest {
                    format: 1,
                    files: vec![entry(a, 1, 1), entry(b, 2, 2)],
                }
                .to_bytes(),
            )
            .expect("utf-8")
        };
        assert_eq!(
            parse_err(&files("src/b", "src/a")),
            "manifest.json: files are not sorted: \"src/a\" comes after \"src/b\""
        );
        assert_eq!(
            parse_err(&files("src/a", "src/a")),
            "manifest.json: path \"src/a\" is listed twice"
        );
        assert_eq!(
            parse_err(&files("src/A", "src/a")),
            "manifest.json: path \"src/a\" collides with \"src/A\" \
             (same name after Unicode normalisation and lower-casing)"
        );
        assert_eq!(
            parse_err(&files("src/../x", "src/a")),
            "manifest.json: path \"src/../x\" escapes the bundle root"
        );
        assert_eq!(
            parse_err(&files("manifest.json", "src/a")),
            "manifest.json: path \"manifest.json\" is reserved and cannot be listed"
        );
    }

    #[test]
    fn refuses_non_canonical_bytes() {
        let mut bytes = sample().to_bytes();
        bytes.pop();
        assert_eq!(
            Manifest::parse(&bytes).map_err(|e| e.to_string()).err(),
            Some(
                "manifest.json is not in canonical form (compact JSON, fixed key order, \
                 one trailing newline)"
                    .to_owned()
            )
        );
        let spaced = String::from_utf8(sample().to_bytes())
            .expect("utf-8")
            .replacen(",", ", ", 1);
        assert!(parse_err(&spaced).contains("not in canonical form"));
    }

    #[test]
    fn entry_name_rules() {
        let cases: &[(&str, Option<&str>)] = &[
            ("metadata.yaml", None),
            ("src/hello/__init__.py", None),
            (WHEEL, None),
            ("", Some("has an empty name")),
            ("../evil", Some("escapes the bundle root")),
            ("src/a/../../b", Some("escapes the bundle root")),
            ("/etc/passwd", Some("is an absolute path")),
            ("C:\\x", Some("starts with a drive letter")),
            ("src\\x", Some("contains a backslash")),
            ("src/./x", Some("has a \".\" path component")),
            (".", Some("has a \".\" path component")),
            ("..", Some("escapes the bundle root")),
            ("src//x", Some("has an empty path component")),
            ("src/x/", Some("is a directory entry")),
            ("src/a\nb", Some("contains a control character")),
            ("src/a\u{7f}", Some("contains a control character")),
            (
                "deps/x/y.whl",
                Some("is not a wheel file directly under deps/"),
            ),
            (
                "deps/readme.txt",
                Some("is not a wheel file directly under deps/"),
            ),
            ("notes.txt", Some("is outside the bundle layout")),
        ];
        for (name, expected) in cases {
            let got = check_entry_name(name).err().map(|e| e.to_string());
            match expected {
                None => assert_eq!(got, None, "{name:?}"),
                Some(prefix) => assert!(
                    got.as_deref().is_some_and(|g| g.starts_with(prefix)),
                    "{name:?}: {got:?}"
                ),
            }
        }
        assert!(check_entry_name(&format!("src/{}", "a".repeat(1021))).is_err());
        assert!(check_entry_name(&format!("src/{}", "a".repeat(1020))).is_ok());
        assert!(matches!(
            check_entry_name("deps/not-a-wheel.whl"),
            Err(NameError::BadWheelName(_))
        ));
    }

    #[test]
    fn folding_merges_case_and_normalisation() {
        assert_eq!(folded_name("src/Café"), folded_name("src/cafe\u{301}"));
        assert_eq!(folded_name("SRC/A"), "src/a");
    }
}
