//! What the reader reports: [`BundleError`] names the bundle, and for a broken rule the
//! [`Problem`] (or, for one entry, the [`EntryProblem`]); [`ErrorKind`] says whose fault it
//! is. Kept apart from the checks so that callers can match on the rules in one place.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::layout::{MANIFEST_NAME, SRC_PREFIX};
use crate::manifest::{ManifestError, NameError};
use crate::signature::{KeyId, KeyIds, SignatureFormatError};

/// Whose fault an error is, for the exit code: the bundle's (1) or ours (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The bundle is malformed, hostile or does not match its manifest.
    BadBundle,
    /// Reading the bundle or writing the output failed on this machine.
    Io,
}

/// Why a bundle could not be opened or an entry not read; one line naming the bundle,
/// the entry and the rule.
#[derive(Debug, Error)]
pub enum BundleError {
    #[error("{}: {problem}", bundle.display())]
    Invalid {
        bundle: PathBuf,
        problem: Box<Problem>,
    },
    #[error("failed to {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to write entry {entry:?}: {source}")]
    Output { entry: String, source: io::Error },
}

impl BundleError {
    /// Whose fault this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            BundleError::Invalid { .. } => ErrorKind::BadBundle,
            BundleError::Io { .. } | BundleError::Output { .. } => ErrorKind::Io,
        }
    }

    /// The broken rule, when the bundle is at fault.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            BundleError::Invalid { problem, .. } => Some(problem.as_ref()),
            _ => None,
        }
    }
}

/// A rule of the format that the bundle breaks.
#[derive(Debug, Error)]
pub enum Problem {
    #[error("is not a zip archive ({0})")]
    NotZip(&'static str),
    #[error("is truncated ({0})")]
    Truncated(&'static str),
    #[error("is corrupt ({0})")]
    Corrupt(String),
    #[error("has {bytes} bytes of data after the end of central directory record")]
    DataAfterEnd { bytes: u64 },
    #[error("has an archive comment")]
    Comment,
    #[error("has a bad zip64 end record ({0})")]
    BadZip64(&'static str),
    #[error("spans several disks")]
    MultiDisk,
    #[error("has {count} entries, more than the limit of {max}")]
    TooManyEntries { count: u64, max: usize },
    #[error("has {bytes} unlisted bytes before entry {name:?}")]
    GapBeforeEntry { name: String, bytes: u64 },
    #[error("has {bytes} unlisted bytes before the central directory")]
    GapBeforeDirectory { bytes: u64 },
    #[error("has {bytes} unlisted bytes between the central directory and its end record")]
    GapBeforeEnd { bytes: u64 },
    #[error("entry {name:?} overlaps entry {other:?}")]
    Overlap { name: String, other: String },
    #[error("entry {name:?} overlaps the central directory")]
    OverlapsDirectory { name: String },
    #[error("has no {MANIFEST_NAME} as its first entry")]
    NoManifest,
    #[error("{0}")]
    Manifest(ManifestError),
    #[error("unpacks to more than the limit of {max} bytes")]
    TotalTooLarge { max: u64 },
    #[error("entry {name:?} {problem}")]
    Entry { name: String, problem: EntryProblem },
    #[error("not signed, and this server requires signed bundles (trusted keys: {trusted})")]
    Unsigned { trusted: KeyIds },
    #[error(
        "signature does not verify with any trusted key (signed with key {signed}; trusted keys: {trusted})"
    )]
    Untrusted { signed: KeyId, trusted: KeyIds },
}

/// A rule one entry breaks; the message completes `entry "NAME" ...`.
#[derive(Debug, Error)]
pub enum EntryProblem {
    #[error("{0}")]
    Name(NameError),
    #[error("has a name that is not valid UTF-8")]
    NotUtf8,
    #[error("has a non-ASCII name without the UTF-8 flag")]
    NotMarkedUtf8,
    #[error("appears twice")]
    Duplicate,
    #[error("collides with {other:?} (same name after Unicode normalisation and lower-casing)")]
    Collision { other: String },
    #[error(
        "is inside {file:?}, which is a file entry (a path cannot be both a file and a directory)"
    )]
    InsideFile { file: String },
    #[error("is out of order (after {previous:?}; entries follow {MANIFEST_NAME} in byte order)")]
    OutOfOrder { previous: String },
    #[error("must be the second entry, right after {MANIFEST_NAME}")]
    SignatureNotSecond,
    #[error("{0}")]
    Signature(SignatureFormatError),
    #[error("has no Unix mode")]
    NotUnix,
    #[error("is a directory")]
    Directory,
    #[error("is a symlink")]
    Symlink,
    #[error("is a device or other special file (mode {mode:#o})")]
    Special { mode: u32 },
    #[error("has the setuid bit (mode {mode:#o})")]
    Setuid { mode: u32 },
    #[error("has the setgid bit (mode {mode:#o})")]
    Setgid { mode: u32 },
    #[error("has the sticky bit (mode {mode:#o})")]
    Sticky { mode: u32 },
    #[error("is world-writable (mode {mode:#o})")]
    WorldWritable { mode: u32 },
    #[error("has mode {mode:#o} (expected 0o100644 or 0o100755)")]
    BadMode { mode: u32 },
    #[error("is executable outside {SRC_PREFIX}")]
    ExecutableOutsideSrc,
    #[error("is encrypted")]
    Encrypted,
    #[error("uses a data descriptor")]
    DataDescriptor,
    #[error("has unsupported flags {0:#06x}")]
    Flags(u16),
    #[error("uses compression method {0} (only stored and deflated are allowed)")]
    Method(u16),
    #[error("is compressed (wheels are stored)")]
    WheelNotStored,
    #[error("is stored (every entry but the wheels is deflated)")]
    NotDeflated,
    #[error("is stored but its compressed size differs from its size")]
    StoredSizes,
    #[error("has extra field {0:#06x} (only zip64 is allowed)")]
    ExtraField(u16),
    #[error("has a malformed zip64 extra field")]
    BadZip64Extra,
    #[error("has a comment")]
    Comment,
    #[error("starts on another disk")]
    OtherDisk,
    #[error("has no local header at offset {0}")]
    NoLocalHeader(u64),
    #[error("has a local header that disagrees with the central directory ({0})")]
    LocalHeader(&'static str),
    #[error("is not listed in {MANIFEST_NAME}")]
    NotListed,
    #[error("is listed in {MANIFEST_NAME} but missing from the bundle")]
    Missing,
    #[error("declares {declared} bytes but the manifest says {listed}")]
    SizeMismatch { declared: u64, listed: u64 },
    #[error("is {size} bytes, more than the limit of {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("inflates past its declared size {size}")]
    InflatesPast { size: u64 },
    #[error("inflates to {actual} bytes, less than its declared size {size}")]
    InflatesShort { actual: u64, size: u64 },
    #[error(
        "fails its sha256 check (manifest {}…, actual {}…)",
        short_hex(expected),
        short_hex(actual)
    )]
    Sha256Mismatch {
        expected: [u8; 32],
        actual: [u8; 32],
    },
    #[error("has corrupt compressed data ({0})")]
    CorruptData(String),
    #[error("is {size} bytes, more than the {cap} allowed here")]
    TooLargeToRead { size: u64, cap: u64 },
    #[error("does not exist in the bundle")]
    NotFound,
    #[error("is compressed, so it cannot be read in place")]
    NotStored,
}

fn short_hex(digest: &[u8; 32]) -> String {
    hex::encode(&digest[..8])
}

pub(super) fn invalid(bundle: &Path, problem: Problem) -> BundleError {
    BundleError::Invalid {
        bundle: bundle.to_owned(),
        problem: Box::new(problem),
    }
}

pub(super) fn entry_invalid(bundle: &Path, name: &str, problem: EntryProblem) -> BundleError {
    invalid(
        bundle,
        Problem::Entry {
            name: name.to_owned(),
            problem,
        },
    )
}

/// The write-error mapping for sinks that cannot fail (`Vec`, `io::sink()`).
pub(super) fn infallible_sink(source: io::Error) -> BundleError {
    BundleError::Output {
        entry: String::new(),
        source,
    }
}
