//! The safe bundle reader used by `pyapp-install`, which runs as root on a file that came
//! from elsewhere (spec/FORMAT.md section 1, design/THREATS.md "Bad input").
//!
//! [`Bundle::open`] checks the whole archive before anything is extracted: the ZIP structure
//! byte by byte (end records, central directory, every local header, no gap, overlap or
//! trailing data), every bundle rule (names, layout, modes, methods), the manifest, and the
//! size and sha256 of every entry, inflating no more than the manifest declares. Extraction
//! then streams each entry again, re-hashing it, into files it creates itself. A signature
//! entry is parsed at open and checked against trusted keys by [`Bundle::verify_signature`].
//!
//! The wheels are stored (not compressed), so [`Bundle::stored_entry`] can read one in place
//! without copying it out: while the bundle is verified, the BLAKE3 digest of every 64 KiB
//! block of a stored entry is kept, and the [`StoredEntry`] reader checks each block
//! against it before handing out a byte. What is read later is exactly what was verified, even if the
//! file changes in between.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use thiserror::Error;
use zip::read::Config;
use zip::{ZipArchive, ZipReadOptions};

use crate::manifest::{
    check_entry_name, folded_name, Manifest, ManifestError, NameError, MANIFEST_NAME,
    MAX_MANIFEST_SIZE, MAX_NAME_LEN, SIGNATURE_NAME,
};
use crate::signature::{BundleSignature, KeyId, KeyIds, SignatureFormatError, TrustedKey};

/// Largest `manifest.json.minisig` accepted, in bytes.
pub const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;
const COPY_BUFFER: usize = 64 * 1024;
/// The blocks of a stored entry whose digests [`StoredEntry`] checks, in bytes.
const BLOCK: usize = 64 * 1024;
/// What zip 9 reports when an entry inflates past the central directory's uncompressed
/// size, which [`Bundle::open`] has checked equals the manifest's.
const ZIP_OVERFLOW_MESSAGE: &str = "File is larger than its declared uncompressed size";

/// Caps on what a bundle may declare, checked before anything is inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in the archive.
    pub max_entries: usize,
    /// Largest uncompressed size of one entry.
    pub max_entry_size: u64,
    /// Largest sum of the uncompressed sizes of all entries.
    pub max_total_size: u64,
}

impl Default for Limits {
    /// 100,000 entries, 4 GiB per entry, 16 GiB in all.
    fn default() -> Self {
        Limits {
            max_entries: 100_000,
            max_entry_size: 4 << 30,
            max_total_size: 16 << 30,
        }
    }
}

/// An opened, fully verified bundle.
#[derive(Debug)]
pub struct Bundle {
    path: PathBuf,
    /// The opened file (the one verified), for reading stored entries in place.
    file: Arc<File>,
    archive: ZipArchive<BufReader<File>>,
    manifest: Manifest,
    manifest_bytes: Vec<u8>,
    entries: Vec<BundleEntry>,
    signature: Option<BundleSignature>,
}

/// Where `manifest.json.minisig` is: its zip index and its size.
#[derive(Debug, Clone, Copy)]
struct SignatureEntry {
    index: usize,
    size: u64,
}

/// One file of a verified bundle (everything except `manifest.json` and its signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleEntry {
    /// The entry name, e.g. `src/hello/web.py`.
    pub name: String,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// sha256 of the uncompressed content, as listed in the manifest.
    pub sha256: [u8; 32],
    /// Mode 0755 rather than 0644 (only ever true under `src/`).
    pub executable: bool,
    index: usize,
    /// Where a stored entry's bytes are in the file and, once verified, their blocks' digests.
    stored: Option<StoredData>,
}

/// The bytes of a stored entry: `size` bytes at `start` in the bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredData {
    start: u64,
    /// The BLAKE3 digest of each [`BLOCK`] of the data (the last one shorter), filled in by
    /// the verification in [`Bundle::open`].
    blocks: Arc<[[u8; 32]]>,
}

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
    #[error("has no manifest.json as its first entry")]
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
    #[error("is out of order (after {previous:?}; entries follow manifest.json in byte order)")]
    OutOfOrder { previous: String },
    #[error("must be the second entry, right after manifest.json")]
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
    #[error("is executable outside src/")]
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
    #[error("is not listed in manifest.json")]
    NotListed,
    #[error("is listed in manifest.json but missing from the bundle")]
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

impl Bundle {
    /// Opens and verifies the bundle at `path`; see the module documentation for what is
    /// checked. Nothing is extracted.
    pub fn open(path: &Path, limits: &Limits) -> Result<Bundle, BundleError> {
        let io_error = |action, source| BundleError::Io {
            action,
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(|e| io_error("open", e))?;
        let shared = Arc::new(file.try_clone().map_err(|e| io_error("open", e))?);
        let mut raw = RawArchive {
            path,
            reader: BufReader::new(file),
        };
        let raw_entries = raw.read_structure(limits)?;
        let config = Config {
            archive_offset: zip::read::ArchiveOffset::Known(0),
        };
        let mut archive = ZipArchive::with_config(config, raw.reader)
            .map_err(|e| invalid(path, Problem::Corrupt(e.to_string())))?;
        check_zip_agrees(&archive, &raw_entries).map_err(|problem| invalid(path, problem))?;

        let manifest_bytes = read_manifest(&mut archive, path, &raw_entries)?;
        let manifest =
            Manifest::parse(&manifest_bytes).map_err(|e| invalid(path, Problem::Manifest(e)))?;
        let (entries, signature) = check_entries(path, &manifest, raw_entries, limits)?;
        let signature = match signature {
            Some(located) => Some(read_signature(&mut archive, path, located)?),
            None => None,
        };
        let mut bundle = Bundle {
            path: path.to_owned(),
            file: shared,
            archive,
            manifest,
            manifest_bytes,
            entries,
            signature,
        };
        for index in 0..bundle.entries.len() {
            let entry = bundle.entries[index].clone();
            if entry.stored.is_some() {
                let mut digests = BlockDigests::default();
                bundle.stream(&entry, &mut digests, &infallible_sink)?;
                if let Some(stored) = &mut bundle.entries[index].stored {
                    stored.blocks = digests.finish().into();
                }
            } else {
                bundle.stream(&entry, &mut io::sink(), &infallible_sink)?;
            }
        }
        Ok(bundle)
    }

    /// The bundle's path, as given to [`Bundle::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The verified manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The exact bytes of `manifest.json`, which a signature covers.
    pub fn manifest_bytes(&self) -> &[u8] {
        &self.manifest_bytes
    }

    /// Every entry the manifest lists, in name order.
    pub fn entries(&self) -> &[BundleEntry] {
        &self.entries
    }

    /// The entry called `name`, if the manifest lists it.
    pub fn entry(&self, name: &str) -> Option<&BundleEntry> {
        self.entries
            .binary_search_by(|entry| entry.name.as_bytes().cmp(name.as_bytes()))
            .ok()
            .and_then(|index| self.entries.get(index))
    }

    /// Reads a small entry (such as `metadata.yaml`) into memory, refusing one larger than
    /// `cap` bytes, and re-checks its size and sha256.
    pub fn read_small(&mut self, name: &str, cap: u64) -> Result<Vec<u8>, BundleError> {
        let entry = self.find(name)?;
        if entry.size > cap {
            let problem = EntryProblem::TooLargeToRead {
                size: entry.size,
                cap,
            };
            return Err(entry_invalid(&self.path, name, problem));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
        self.stream(&entry, &mut bytes, &infallible_sink)?;
        Ok(bytes)
    }

    /// Streams an entry into `out`, re-checking its size and sha256, and returns its size.
    /// On a mismatch the error comes after the bytes were written: the caller discards them.
    pub fn copy_entry_to(&mut self, name: &str, out: &mut dyn Write) -> Result<u64, BundleError> {
        let entry = self.find(name)?;
        let on_write = |source| BundleError::Output {
            entry: entry.name.clone(),
            source,
        };
        self.stream(&entry, out, &on_write)?;
        Ok(entry.size)
    }

    /// Extracts an entry to `dest_dir/NAME` and returns that path. Missing parent
    /// directories are created (mode 0755); an existing one must be a real directory, not a
    /// symlink. The file is created new (`O_EXCL`: an existing file or symlink there is an
    /// error), filled while re-hashing, and given mode 0644 or 0755 from the entry's
    /// executable bit only. On any error it is removed again. `dest_dir` must be a directory
    /// only the caller can write to (the staging area); making the files durable is the
    /// caller's job (one sync for all of them is much cheaper than one per file).
    pub fn extract_entry_to_path(
        &mut self,
        name: &str,
        dest_dir: &Path,
    ) -> Result<PathBuf, BundleError> {
        let entry = self.find(name)?;
        let mut parent = dest_dir.to_owned();
        if let Some((directories, _)) = entry.name.rsplit_once('/') {
            for component in directories.split('/') {
                parent.push(component);
                create_real_dir(&parent)?;
            }
        }
        let target = dest_dir.join(&entry.name);
        let io_error = |action, source| BundleError::Io {
            action,
            path: target.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(|e| io_error("create", e))?;
        let result = self
            .stream(&entry, &mut file, &|source| io_error("write", source))
            .and_then(|()| {
                let mode = if entry.executable { 0o755 } else { 0o644 };
                file.set_permissions(fs::Permissions::from_mode(mode))
                    .map_err(|e| io_error("set the mode of", e))
            });
        if let Err(error) = result {
            drop(file);
            let _ = fs::remove_file(&target);
            return Err(error);
        }
        Ok(target)
    }

    /// A reader of the stored entry `name` (a wheel) in place in the bundle file, checking
    /// every block against what was verified at open (see the module documentation). It can
    /// be cloned cheaply, each clone with its own position, to read in parallel.
    pub fn stored_entry(&self, name: &str) -> Result<StoredEntry, BundleError> {
        let entry = self.find(name)?;
        let Some(stored) = entry.stored else {
            let problem = EntryProblem::NotStored;
            return Err(entry_invalid(&self.path, name, problem));
        };
        Ok(StoredEntry {
            file: Arc::clone(&self.file),
            name: entry.name.into(),
            start: stored.start,
            len: entry.size,
            blocks: stored.blocks,
            position: 0,
            cached: None,
            cache: Vec::new(),
        })
    }

    /// The parsed `manifest.json.minisig`, if the bundle has one. Its form was checked at
    /// open; whether a trusted key made it is [`Bundle::verify_signature`]'s question.
    pub fn signature(&self) -> Option<&BundleSignature> {
        self.signature.as_ref()
    }

    /// The key among `keys` that signed this bundle's manifest. An unsigned bundle, or one
    /// whose signature no key in `keys` verifies (another key, a changed manifest or trusted
    /// comment, a forged signature), is refused as a bad bundle naming the key ids. With no
    /// keys at all nothing verifies: callers that trust no key do not call this.
    pub fn verify_signature<'k>(
        &self,
        keys: &'k [TrustedKey],
    ) -> Result<&'k TrustedKey, BundleError> {
        let trusted = || KeyIds(keys.iter().map(TrustedKey::id).collect());
        let Some(signature) = &self.signature else {
            return Err(invalid(
                &self.path,
                Problem::Unsigned { trusted: trusted() },
            ));
        };
        signature.verify(&self.manifest_bytes, keys).ok_or_else(|| {
            let problem = Problem::Untrusted {
                signed: signature.key_id(),
                trusted: trusted(),
            };
            invalid(&self.path, problem)
        })
    }

    fn find(&self, name: &str) -> Result<BundleEntry, BundleError> {
        self.entry(name)
            .cloned()
            .ok_or_else(|| entry_invalid(&self.path, name, EntryProblem::NotFound))
    }

    /// Streams a listed entry into `out` and checks its sha256 against the manifest.
    fn stream(
        &mut self,
        entry: &BundleEntry,
        out: &mut dyn Write,
        on_write: &dyn Fn(io::Error) -> BundleError,
    ) -> Result<(), BundleError> {
        let located = (entry.index, entry.name.as_str(), entry.size);
        let actual = inflate(&mut self.archive, &self.path, located, out, on_write)?;
        if actual != entry.sha256 {
            let problem = EntryProblem::Sha256Mismatch {
                expected: entry.sha256,
                actual,
            };
            return Err(entry_invalid(&self.path, &entry.name, problem));
        }
        Ok(())
    }
}

/// Collects the BLAKE3 digest of every [`BLOCK`] of what is written to it.
#[derive(Default)]
struct BlockDigests {
    hasher: blake3::Hasher,
    filled: usize,
    digests: Vec<[u8; 32]>,
}

impl BlockDigests {
    fn finish(mut self) -> Vec<[u8; 32]> {
        if self.filled > 0 {
            self.digests.push(self.hasher.finalize().into());
        }
        self.digests
    }
}

impl Write for BlockDigests {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(BLOCK - self.filled);
            self.hasher.update(&rest[..take]);
            self.filled += take;
            rest = &rest[take..];
            if self.filled == BLOCK {
                self.digests.push(self.hasher.finalize().into());
                self.hasher.reset();
                self.filled = 0;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A stored entry read in place from the verified bundle file (see
/// [`Bundle::stored_entry`]): `Read + Seek` over the entry's bytes, one block at a time,
/// each checked against its digest from the verification. A block that no longer matches
/// (the file was changed after it was verified) is an `InvalidData` error.
#[derive(Debug)]
pub struct StoredEntry {
    file: Arc<File>,
    name: Arc<str>,
    start: u64,
    len: u64,
    blocks: Arc<[[u8; 32]]>,
    position: u64,
    /// The block in `cache`, checked.
    cached: Option<u64>,
    cache: Vec<u8>,
}

impl Clone for StoredEntry {
    /// Another reader of the same entry at the same position (its own block buffer).
    fn clone(&self) -> Self {
        StoredEntry {
            file: Arc::clone(&self.file),
            name: Arc::clone(&self.name),
            start: self.start,
            len: self.len,
            blocks: Arc::clone(&self.blocks),
            position: self.position,
            cached: None,
            cache: Vec::new(),
        }
    }
}

impl StoredEntry {
    /// The entry's size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the entry is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads block `block` from the file into the cache and checks it.
    fn load(&mut self, block: u64) -> io::Result<()> {
        self.cached = None;
        let offset = block * BLOCK as u64;
        let len = (self.len - offset).min(BLOCK as u64) as usize;
        self.cache.resize(len, 0);
        self.file
            .read_exact_at(&mut self.cache, self.start + offset)?;
        let digest: [u8; 32] = blake3::hash(&self.cache).into();
        let expected = usize::try_from(block).ok().and_then(|b| self.blocks.get(b));
        if expected != Some(&digest) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {:?} changed since the bundle was verified (bytes {offset}..{})",
                    self.name,
                    offset + len as u64
                ),
            ));
        }
        self.cached = Some(block);
        Ok(())
    }
}

impl Read for StoredEntry {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.position >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let block = self.position / BLOCK as u64;
        if self.cached != Some(block) {
            self.load(block)?;
        }
        let at = (self.position - block * BLOCK as u64) as usize;
        let n = buf.len().min(self.cache.len() - at);
        buf[..n].copy_from_slice(&self.cache[at..at + n]);
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for StoredEntry {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = seek_target(self.len, self.position, to)?;
        Ok(self.position)
    }
}

/// Where `to` lands in `len` bytes read at `position` (past the end is allowed, reads there
/// find nothing; before the start is an error): for readers of byte ranges by position.
pub fn seek_target(len: u64, position: u64, to: SeekFrom) -> io::Result<u64> {
    match to {
        SeekFrom::Start(offset) => Some(offset),
        SeekFrom::End(delta) => len.checked_add_signed(delta),
        SeekFrom::Current(delta) => position.checked_add_signed(delta),
    }
    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))
}

fn invalid(bundle: &Path, problem: Problem) -> BundleError {
    BundleError::Invalid {
        bundle: bundle.to_owned(),
        problem: Box::new(problem),
    }
}

fn entry_invalid(bundle: &Path, name: &str, problem: EntryProblem) -> BundleError {
    invalid(
        bundle,
        Problem::Entry {
            name: name.to_owned(),
            problem,
        },
    )
}

/// The write-error mapping for sinks that cannot fail (`Vec`, `io::sink()`).
fn infallible_sink(source: io::Error) -> BundleError {
    BundleError::Output {
        entry: String::new(),
        source,
    }
}

/// Reads `manifest.json`, which must be the first entry. Only the container rules apply to
/// it; the bundle rules wait until its format version has been judged, since a newer format
/// may change them.
fn read_manifest(
    archive: &mut ZipArchive<BufReader<File>>,
    bundle: &Path,
    entries: &[RawEntry],
) -> Result<Vec<u8>, BundleError> {
    let first = match entries.first() {
        Some(first) if first.name == MANIFEST_NAME.as_bytes() => first,
        _ => return Err(invalid(bundle, Problem::NoManifest)),
    };
    if first.size > MAX_MANIFEST_SIZE {
        let problem = Problem::Manifest(ManifestError::TooLarge { size: first.size });
        return Err(invalid(bundle, problem));
    }
    check_entry_rules(first, MANIFEST_NAME)
        .map_err(|problem| entry_invalid(bundle, MANIFEST_NAME, problem))?;
    let mut bytes = Vec::new();
    let located = (first.index, MANIFEST_NAME, first.size);
    inflate(archive, bundle, located, &mut bytes, &infallible_sink)?;
    Ok(bytes)
}

/// Reads and parses `manifest.json.minisig` (already capped at [`MAX_SIGNATURE_SIZE`]).
fn read_signature(
    archive: &mut ZipArchive<BufReader<File>>,
    bundle: &Path,
    SignatureEntry { index, size }: SignatureEntry,
) -> Result<BundleSignature, BundleError> {
    let mut bytes = Vec::new();
    let located = (index, SIGNATURE_NAME, size);
    inflate(archive, bundle, located, &mut bytes, &infallible_sink)?;
    BundleSignature::parse(&bytes)
        .map_err(|e| entry_invalid(bundle, SIGNATURE_NAME, EntryProblem::Signature(e)))
}

/// The bundle rules for every entry after the manifest (all of them first), then the match
/// with the manifest and the limits. Returns the listed entries and the signature entry,
/// which may only be the second entry and is not part of the byte order.
fn check_entries(
    bundle: &Path,
    manifest: &Manifest,
    raw: Vec<RawEntry>,
    limits: &Limits,
) -> Result<(Vec<BundleEntry>, Option<SignatureEntry>), BundleError> {
    let mut checked = Vec::with_capacity(raw.len());
    let mut signature = None;
    let mut folded: HashMap<String, String> = HashMap::new();
    let mut previous: Option<String> = None;
    for (position, entry) in raw.into_iter().enumerate().skip(1) {
        let name = entry_name(&entry).map_err(|(name, p)| entry_invalid(bundle, &name, p))?;
        let fail = |problem| entry_invalid(bundle, &name, problem);
        check_entry_name(&name).map_err(|p| fail(EntryProblem::Name(p)))?;
        let is_signature = name == SIGNATURE_NAME;
        if is_signature && position != 1 {
            return Err(fail(EntryProblem::SignatureNotSecond));
        }
        if let Some(previous) = previous.as_ref().filter(|_| !is_signature) {
            if name.as_bytes() < previous.as_bytes() {
                let previous = previous.clone();
                return Err(fail(EntryProblem::OutOfOrder { previous }));
            }
        }
        if let Some(other) = folded.insert(folded_name(&name), name.clone()) {
            return Err(fail(EntryProblem::Collision { other }));
        }
        let executable = check_entry_rules(&entry, &name).map_err(fail)?;
        if is_signature {
            if entry.size > MAX_SIGNATURE_SIZE {
                return Err(fail(EntryProblem::TooLarge {
                    size: entry.size,
                    max: MAX_SIGNATURE_SIZE,
                }));
            }
            signature = Some(SignatureEntry {
                index: entry.index,
                size: entry.size,
            });
        } else {
            previous = Some(name.clone());
            checked.push((name, entry, executable));
        }
    }

    let mut entries = Vec::with_capacity(checked.len());
    let mut listed = manifest.files().iter().peekable();
    let mut total: u64 = 0;
    for (name, entry, executable) in checked {
        let fail = |problem| entry_invalid(bundle, &name, problem);
        // Both lists are sorted: a listed path before this name is missing from the archive.
        if let Some(missing) = listed.next_if(|m| m.path.as_bytes() < name.as_bytes()) {
            return Err(entry_invalid(bundle, &missing.path, EntryProblem::Missing));
        }
        let Some(listed_entry) = listed.next_if(|m| m.path == name) else {
            return Err(fail(EntryProblem::NotListed));
        };
        if entry.size != listed_entry.size {
            return Err(fail(EntryProblem::SizeMismatch {
                declared: entry.size,
                listed: listed_entry.size,
            }));
        }
        if entry.size > limits.max_entry_size {
            return Err(fail(EntryProblem::TooLarge {
                size: entry.size,
                max: limits.max_entry_size,
            }));
        }
        total = total.saturating_add(entry.size);
        if total > limits.max_total_size {
            let max = limits.max_total_size;
            return Err(invalid(bundle, Problem::TotalTooLarge { max }));
        }
        let stored = (entry.method == METHOD_STORED).then(|| StoredData {
            start: entry.data_start,
            blocks: Arc::new([]),
        });
        entries.push(BundleEntry {
            name,
            size: entry.size,
            sha256: listed_entry.sha256,
            executable,
            index: entry.index,
            stored,
        });
    }
    if let Some(missing) = listed.next() {
        return Err(entry_invalid(bundle, &missing.path, EntryProblem::Missing));
    }
    Ok((entries, signature))
}

/// Inflates an entry into `out`, never producing more than its declared size, and returns
/// the sha256 of what it produced. The CRC-32 is not checked: the sha256 is.
fn inflate(
    archive: &mut ZipArchive<BufReader<File>>,
    bundle: &Path,
    (index, name, size): (usize, &str, u64),
    out: &mut dyn Write,
    on_write: &dyn Fn(io::Error) -> BundleError,
) -> Result<[u8; 32], BundleError> {
    let fail = |problem| entry_invalid(bundle, name, problem);
    let options = ZipReadOptions::new().ignore_crc32(true);
    let mut reader = archive
        .by_index_with_options(index, options)
        .map_err(|e| fail(EntryProblem::CorruptData(e.to_string())))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; COPY_BUFFER];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e)
                if e.kind() == io::ErrorKind::InvalidData
                    && e.to_string() == ZIP_OVERFLOW_MESSAGE =>
            {
                return Err(fail(EntryProblem::InflatesPast { size }));
            }
            Err(e) => return Err(fail(EntryProblem::CorruptData(e.to_string()))),
        };
        total += n as u64;
        if total > size {
            return Err(fail(EntryProblem::InflatesPast { size }));
        }
        let chunk = &buffer[..n];
        hasher.update(chunk);
        out.write_all(chunk).map_err(on_write)?;
    }
    if total < size {
        return Err(fail(EntryProblem::InflatesShort {
            actual: total,
            size,
        }));
    }
    Ok(hasher.finalize().into())
}

fn entry_name(entry: &RawEntry) -> Result<String, (String, EntryProblem)> {
    let lossy = || String::from_utf8_lossy(&entry.name).into_owned();
    let name =
        String::from_utf8(entry.name.clone()).map_err(|_| (lossy(), EntryProblem::NotUtf8))?;
    if !name.is_ascii() && entry.flags & FLAG_UTF8 == 0 {
        return Err((name, EntryProblem::NotMarkedUtf8));
    }
    Ok(name)
}

/// The per-entry rules beyond its name: a Unix regular file with mode 0644 or 0755 (0755
/// only under `src/`), stored if it is a wheel and deflated otherwise. Returns whether the
/// entry is executable.
fn check_entry_rules(entry: &RawEntry, name: &str) -> Result<bool, EntryProblem> {
    const UNIX: u16 = 3;
    if entry.made_by >> 8 != UNIX {
        return Err(EntryProblem::NotUnix);
    }
    let mode = entry.external_attributes >> 16;
    match mode & 0o170_000 {
        0o100_000 => {}
        0o040_000 => return Err(EntryProblem::Directory),
        0o120_000 => return Err(EntryProblem::Symlink),
        _ => return Err(EntryProblem::Special { mode }),
    }
    if mode & 0o4000 != 0 {
        return Err(EntryProblem::Setuid { mode });
    }
    if mode & 0o2000 != 0 {
        return Err(EntryProblem::Setgid { mode });
    }
    if mode & 0o1000 != 0 {
        return Err(EntryProblem::Sticky { mode });
    }
    if mode & 0o002 != 0 {
        return Err(EntryProblem::WorldWritable { mode });
    }
    let executable = match mode & 0o7777 {
        0o644 => false,
        0o755 => true,
        _ => return Err(EntryProblem::BadMode { mode }),
    };
    if executable && !name.starts_with("src/") {
        return Err(EntryProblem::ExecutableOutsideSrc);
    }
    let is_wheel = name.starts_with("deps/");
    match (entry.method, is_wheel) {
        (METHOD_STORED, true) | (METHOD_DEFLATED, false) => Ok(executable),
        (_, true) => Err(EntryProblem::WheelNotStored),
        (_, false) => Err(EntryProblem::NotDeflated),
    }
}

/// Checks that the zip crate, which inflates the entries, sees exactly the entries that
/// were validated here, at the same offsets and with the same sizes.
fn check_zip_agrees(
    archive: &ZipArchive<BufReader<File>>,
    entries: &[RawEntry],
) -> Result<(), Problem> {
    let disagree = |what: &str| Problem::Corrupt(format!("the zip reader sees {what} differently"));
    if archive.len() != entries.len() || archive.has_duplicate_names() {
        return Err(disagree("the number of entries"));
    }
    for entry in entries {
        let zip_entry = archive
            .by_index_data(entry.index)
            .map_err(|e| Problem::Corrupt(e.to_string()))?;
        let same = zip_entry.name_raw() == entry.name.as_slice()
            && zip_entry.header_start() == entry.header_offset
            && zip_entry.compressed_size() == entry.compressed_size
            && zip_entry.size() == entry.size;
        if !same {
            return Err(disagree(&format!(
                "entry {:?}",
                String::from_utf8_lossy(&entry.name)
            )));
        }
    }
    Ok(())
}

fn create_real_dir(path: &Path) -> Result<(), BundleError> {
    let io_error = |action, source| BundleError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    match fs::create_dir(path) {
        Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error("set the mode of", e)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let metadata = fs::symlink_metadata(path).map_err(|e| io_error("inspect", e))?;
            if metadata.file_type().is_dir() {
                Ok(())
            } else {
                Err(io_error(
                    "create directory",
                    io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "something that is not a directory is in the way",
                    ),
                ))
            }
        }
        Err(e) => Err(io_error("create directory", e)),
    }
}

// ---------------------------------------------------------------------------------------
// The ZIP structure, parsed from raw bytes (APPNOTE 6.3.10 sections 4.3 and 4.5).
//
// zip 9 is lenient where a root-run installer must not be: it searches for the end record
// past trailing data, ignores gaps between entries, keeps one of two same-named entries, and
// does not expose the extra-field ids or the local headers. This parser is strict: every
// byte of the file belongs to exactly one local header, entry data, the central directory or
// the end records, in that order.
// ---------------------------------------------------------------------------------------

const SIG_LOCAL: u32 = 0x0403_4b50;
const SIG_CENTRAL: u32 = 0x0201_4b50;
const SIG_END: u32 = 0x0605_4b50;
const SIG_ZIP64_END: u32 = 0x0606_4b50;
const SIG_ZIP64_LOCATOR: u32 = 0x0706_4b50;
const END_LEN: u64 = 22;
const ZIP64_END_LEN: u64 = 56;
const ZIP64_LOCATOR_LEN: u64 = 20;
const CENTRAL_LEN: usize = 46;
const LOCAL_LEN: usize = 30;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const U32_SENTINEL: u32 = u32::MAX;
const METHOD_STORED: u16 = 0;
const METHOD_DEFLATED: u16 = 8;
const FLAG_ENCRYPTED: u16 = 1 << 0;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
const FLAG_UTF8: u16 = 1 << 11;
/// Bits 1-2 (deflate options) and 11 (UTF-8 name) are all a bundle may set.
const FLAGS_ALLOWED: u16 = 0b110 | FLAG_UTF8;

/// One central directory entry, with ZIP64 values resolved.
#[derive(Debug, Clone)]
struct RawEntry {
    index: usize,
    name: Vec<u8>,
    made_by: u16,
    flags: u16,
    method: u16,
    crc32: u32,
    compressed_size: u64,
    size: u64,
    header_offset: u64,
    external_attributes: u32,
    /// Where the entry's data begins, once its local header has been read.
    data_start: u64,
}

/// Where the central directory is, from the end records.
struct EndRecords {
    entries: u64,
    directory_offset: u64,
    directory_size: u64,
    /// Where the end records begin (the ZIP64 end record if there is one).
    start: u64,
}

struct RawArchive<'a> {
    path: &'a Path,
    reader: BufReader<File>,
}

/// A little-endian cursor over a byte slice; `None` when the slice is too short.
struct Fields<'a> {
    bytes: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2)?.try_into().ok().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
}

impl RawArchive<'_> {
    fn invalid(&self, problem: Problem) -> BundleError {
        BundleError::Invalid {
            bundle: self.path.to_owned(),
            problem: Box::new(problem),
        }
    }

    fn entry_invalid(&self, name: &[u8], problem: EntryProblem) -> BundleError {
        self.invalid(Problem::Entry {
            name: String::from_utf8_lossy(name).into_owned(),
            problem,
        })
    }

    /// Reads `len` bytes at `offset`; the caller has checked they are inside the file.
    fn read_at(&mut self, offset: u64, len: u64) -> Result<Vec<u8>, BundleError> {
        let io_error = |source| BundleError::Io {
            action: "read",
            path: self.path.to_owned(),
            source,
        };
        let len = usize::try_from(len).map_err(|_| io_error(io::Error::other("too large")))?;
        let mut bytes = vec![0u8; len];
        self.reader
            .seek(SeekFrom::Start(offset))
            .map_err(io_error)?;
        match self.reader.read_exact(&mut bytes) {
            Ok(()) => Ok(bytes),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(self.invalid(Problem::Truncated("the file shrank while being read")))
            }
            Err(e) => Err(io_error(e)),
        }
    }

    /// Parses and checks the whole ZIP structure; returns the central directory entries in
    /// order.
    fn read_structure(&mut self, limits: &Limits) -> Result<Vec<RawEntry>, BundleError> {
        let file_len = self
            .reader
            .get_ref()
            .metadata()
            .map_err(|source| BundleError::Io {
                action: "inspect",
                path: self.path.to_owned(),
                source,
            })?
            .len();
        let end = self.read_end_records(file_len)?;
        if end.entries > limits.max_entries as u64 {
            return Err(self.invalid(Problem::TooManyEntries {
                count: end.entries,
                max: limits.max_entries,
            }));
        }
        let max_header = (CENTRAL_LEN + MAX_NAME_LEN + 4 + 28) as u64;
        if end.directory_size > end.entries.saturating_mul(max_header) {
            return Err(self.invalid(Problem::Corrupt(format!(
                "central directory of {} bytes for {} entries",
                end.directory_size, end.entries
            ))));
        }
        match end.directory_offset.checked_add(end.directory_size) {
            Some(dir_end) if dir_end == end.start => {}
            Some(dir_end) if dir_end < end.start => {
                return Err(self.invalid(Problem::GapBeforeEnd {
                    bytes: end.start - dir_end,
                }))
            }
            _ => {
                return Err(self.invalid(Problem::Corrupt(
                    "the central directory runs past its end record".to_owned(),
                )))
            }
        }
        let directory = self.read_at(end.directory_offset, end.directory_size)?;
        let entries = self.parse_central_directory(&directory, end.entries)?;

        let mut names = HashSet::with_capacity(entries.len());
        let mut expected_offset = 0u64;
        let mut previous: Option<&RawEntry> = None;
        let mut data_starts = Vec::with_capacity(entries.len());
        for entry in &entries {
            if !names.insert(entry.name.as_slice()) {
                return Err(self.entry_invalid(&entry.name, EntryProblem::Duplicate));
            }
            if entry.header_offset < expected_offset {
                let other = previous.map(|p| p.name.as_slice()).unwrap_or_default();
                return Err(self.invalid(Problem::Overlap {
                    name: String::from_utf8_lossy(&entry.name).into_owned(),
                    other: String::from_utf8_lossy(other).into_owned(),
                }));
            }
            if entry.header_offset > expected_offset {
                return Err(self.invalid(Problem::GapBeforeEntry {
                    name: String::from_utf8_lossy(&entry.name).into_owned(),
                    bytes: entry.header_offset - expected_offset,
                }));
            }
            expected_offset = self.check_local_header(entry, end.directory_offset)?;
            data_starts.push(expected_offset - entry.compressed_size);
            previous = Some(entry);
        }
        if expected_offset < end.directory_offset {
            return Err(self.invalid(Problem::GapBeforeDirectory {
                bytes: end.directory_offset - expected_offset,
            }));
        }
        let mut entries = entries;
        for (entry, data_start) in entries.iter_mut().zip(data_starts) {
            entry.data_start = data_start;
        }
        Ok(entries)
    }

    /// Finds the end of central directory record, which must end the file exactly, and the
    /// ZIP64 end record and locator right before it when there are.
    fn read_end_records(&mut self, file_len: u64) -> Result<EndRecords, BundleError> {
        if file_len < END_LEN {
            return Err(self.invalid(Problem::NotZip("shorter than an end record")));
        }
        let tail_len = file_len.min(END_LEN + u64::from(u16::MAX));
        let tail_start = file_len - tail_len;
        let tail = self.read_at(tail_start, tail_len)?;
        let signature = SIG_END.to_le_bytes();
        let last_possible = tail.len() - END_LEN as usize;
        let Some(found) = (0..=last_possible)
            .rev()
            .find(|&at| tail[at..].starts_with(&signature))
        else {
            return Err(self.invalid(Problem::NotZip("no end of central directory record")));
        };
        let mut fields = Fields {
            bytes: &tail[found + 4..],
        };
        let (disk, directory_disk, disk_entries, entries16, size32, offset32, comment_len) = (
            fields.u16(),
            fields.u16(),
            fields.u16(),
            fields.u16(),
            fields.u32(),
            fields.u32(),
            fields.u16(),
        );
        let (
            Some(disk),
            Some(directory_disk),
            Some(disk_entries),
            Some(entries16),
            Some(size32),
            Some(offset32),
            Some(comment_len),
        ) = (
            disk,
            directory_disk,
            disk_entries,
            entries16,
            size32,
            offset32,
            comment_len,
        )
        else {
            return Err(self.invalid(Problem::Truncated("end record")));
        };
        let after = (last_possible - found) as u64;
        if after > 0 {
            if u64::from(comment_len) == after {
                return Err(self.invalid(Problem::Comment));
            }
            // A truncated file often has an end record signature somewhere in its last
            // entries' data: only a record whose central directory ends right before it
            // (or before ZIP64 end records) is a real one followed by data.
            let directory_end = u64::from(offset32) + u64::from(size32);
            let record_start = tail_start + found as u64;
            let real = offset32 == U32_SENTINEL
                || size32 == U32_SENTINEL
                || directory_end == record_start
                || directory_end + ZIP64_END_LEN + ZIP64_LOCATOR_LEN == record_start;
            if !real {
                return Err(self.invalid(Problem::NotZip("no end of central directory record")));
            }
            return Err(self.invalid(Problem::DataAfterEnd { bytes: after }));
        }
        if comment_len != 0 {
            return Err(self.invalid(Problem::Truncated(
                "the end record's comment runs past the end of the file",
            )));
        }
        if disk != 0 || directory_disk != 0 || disk_entries != entries16 {
            return Err(self.invalid(Problem::MultiDisk));
        }
        let end_start = tail_start + found as u64;

        let locator_start = end_start.checked_sub(ZIP64_LOCATOR_LEN);
        let locator = match locator_start {
            Some(start) => {
                let bytes = self.read_at(start, ZIP64_LOCATOR_LEN)?;
                bytes
                    .starts_with(&SIG_ZIP64_LOCATOR.to_le_bytes())
                    .then_some((start, bytes))
            }
            None => None,
        };
        let Some((locator_start, locator)) = locator else {
            return Ok(EndRecords {
                entries: u64::from(entries16),
                directory_offset: u64::from(offset32),
                directory_size: u64::from(size32),
                start: end_start,
            });
        };
        let mut fields = Fields {
            bytes: &locator[4..],
        };
        let (Some(locator_disk), Some(zip64_offset), Some(total_disks)) =
            (fields.u32(), fields.u64(), fields.u32())
        else {
            return Err(self.invalid(Problem::BadZip64("short locator")));
        };
        if locator_disk != 0 || total_disks != 1 {
            return Err(self.invalid(Problem::MultiDisk));
        }
        let Some(zip64_start) = locator_start.checked_sub(ZIP64_END_LEN) else {
            return Err(self.invalid(Problem::BadZip64("no room for the zip64 end record")));
        };
        if zip64_offset != zip64_start {
            return Err(self.invalid(Problem::BadZip64(
                "the locator does not point right before itself",
            )));
        }
        let record = self.read_at(zip64_start, ZIP64_END_LEN)?;
        let mut fields = Fields { bytes: &record };
        let parsed = (|| {
            let signature = fields.u32()?;
            let record_size = fields.u64()?;
            let _made_by = fields.u16()?;
            let _needed = fields.u16()?;
            Some((
                signature,
                record_size,
                fields.u32()?,
                fields.u32()?,
                fields.u64()?,
                fields.u64()?,
                fields.u64()?,
                fields.u64()?,
            ))
        })();
        let Some((
            signature,
            record_size,
            disk,
            directory_disk,
            disk_entries,
            entries,
            size,
            offset,
        )) = parsed
        else {
            return Err(self.invalid(Problem::BadZip64("short record")));
        };
        if signature != SIG_ZIP64_END {
            return Err(self.invalid(Problem::BadZip64("no zip64 end record signature")));
        }
        if record_size != ZIP64_END_LEN - 12 {
            return Err(self.invalid(Problem::BadZip64("extensible data or a wrong size")));
        }
        if disk != 0 || directory_disk != 0 || disk_entries != entries {
            return Err(self.invalid(Problem::MultiDisk));
        }
        let agrees = (entries16 == u16::MAX || u64::from(entries16) == entries)
            && (size32 == U32_SENTINEL || u64::from(size32) == size)
            && (offset32 == U32_SENTINEL || u64::from(offset32) == offset);
        if !agrees {
            return Err(self.invalid(Problem::BadZip64(
                "it disagrees with the end of central directory record",
            )));
        }
        Ok(EndRecords {
            entries,
            directory_offset: offset,
            directory_size: size,
            start: zip64_start,
        })
    }

    /// Parses exactly `count` central directory headers filling `directory`.
    fn parse_central_directory(
        &self,
        directory: &[u8],
        count: u64,
    ) -> Result<Vec<RawEntry>, BundleError> {
        let truncated = || self.invalid(Problem::Corrupt("truncated central directory".to_owned()));
        let mut fields = Fields { bytes: directory };
        let mut entries = Vec::new();
        for index in 0..count {
            let header = fields.take(CENTRAL_LEN).ok_or_else(truncated)?;
            let mut h = Fields { bytes: header };
            let values = (|| {
                Some((
                    h.u32()?,
                    h.u16()?,
                    h.u16()?,
                    h.u16()?,
                    h.u16()?,
                    h.u32()?,
                    h.u32()?,
                    h.u32()?,
                    h.u32()?,
                ))
            })();
            let (
                signature,
                made_by,
                _needed,
                flags,
                method,
                _time_date,
                crc32,
                compressed32,
                size32,
            ) = values.ok_or_else(truncated)?;
            let values = (|| {
                Some((
                    h.u16()?,
                    h.u16()?,
                    h.u16()?,
                    h.u16()?,
                    h.u16()?,
                    h.u32()?,
                    h.u32()?,
                ))
            })();
            let (name_len, extra_len, comment_len, disk_start, _internal, external, offset32) =
                values.ok_or_else(truncated)?;
            if signature != SIG_CENTRAL {
                return Err(self.invalid(Problem::Corrupt(format!(
                    "central directory entry {index} has no signature"
                ))));
            }
            let name = fields.take(usize::from(name_len)).ok_or_else(truncated)?;
            let extra = fields.take(usize::from(extra_len)).ok_or_else(truncated)?;
            fields
                .take(usize::from(comment_len))
                .ok_or_else(truncated)?;
            let fail = |problem| self.entry_invalid(name, problem);
            if comment_len != 0 {
                return Err(fail(EntryProblem::Comment));
            }
            if disk_start != 0 {
                return Err(fail(EntryProblem::OtherDisk));
            }
            if flags & (FLAG_ENCRYPTED | FLAG_STRONG_ENCRYPTION) != 0 {
                return Err(fail(EntryProblem::Encrypted));
            }
            if flags & FLAG_DATA_DESCRIPTOR != 0 {
                return Err(fail(EntryProblem::DataDescriptor));
            }
            if flags & !FLAGS_ALLOWED != 0 {
                return Err(fail(EntryProblem::Flags(flags)));
            }
            if method != METHOD_STORED && method != METHOD_DEFLATED {
                return Err(fail(EntryProblem::Method(method)));
            }
            let zip64 = zip64_extra(extra).map_err(&fail)?;
            let mut values = Fields { bytes: zip64 };
            let mut resolve = |value: u32| -> Result<u64, BundleError> {
                if value == U32_SENTINEL {
                    values
                        .u64()
                        .ok_or_else(|| fail(EntryProblem::BadZip64Extra))
                } else {
                    Ok(u64::from(value))
                }
            };
            let size = resolve(size32)?;
            let compressed_size = resolve(compressed32)?;
            let header_offset = resolve(offset32)?;
            if !values.bytes.is_empty() {
                return Err(fail(EntryProblem::BadZip64Extra));
            }
            if method == METHOD_STORED && compressed_size != size {
                return Err(fail(EntryProblem::StoredSizes));
            }
            entries.push(RawEntry {
                index: usize::try_from(index).map_err(|_| truncated())?,
                name: name.to_vec(),
                made_by,
                flags,
                method,
                crc32,
                compressed_size,
                size,
                header_offset,
                external_attributes: external,
                data_start: 0,
            });
        }
        if !fields.bytes.is_empty() {
            return Err(self.invalid(Problem::Corrupt(format!(
                "central directory has {} bytes after its last entry",
                fields.bytes.len()
            ))));
        }
        Ok(entries)
    }

    /// Checks the local header of `entry` against its central directory entry and returns
    /// where the entry's data ends.
    fn check_local_header(
        &mut self,
        entry: &RawEntry,
        directory_offset: u64,
    ) -> Result<u64, BundleError> {
        let bundle = self.path;
        let name_text = String::from_utf8_lossy(&entry.name).into_owned();
        let fail = |problem| entry_invalid(bundle, &name_text, problem);
        let fixed_end = entry.header_offset + LOCAL_LEN as u64;
        if fixed_end > directory_offset {
            return Err(self.invalid(Problem::OverlapsDirectory {
                name: String::from_utf8_lossy(&entry.name).into_owned(),
            }));
        }
        let header = self.read_at(entry.header_offset, LOCAL_LEN as u64)?;
        let mut h = Fields { bytes: &header };
        let values = (|| {
            Some((
                h.u32()?,
                h.u16()?,
                h.u16()?,
                h.u16()?,
                h.u32()?,
                h.u32()?,
                h.u32()?,
                h.u32()?,
                h.u16()?,
                h.u16()?,
            ))
        })();
        let Some((
            signature,
            _needed,
            flags,
            method,
            _time_date,
            crc32,
            compressed32,
            size32,
            name_len,
            extra_len,
        )) = values
        else {
            return Err(fail(EntryProblem::NoLocalHeader(entry.header_offset)));
        };
        if signature != SIG_LOCAL {
            return Err(fail(EntryProblem::NoLocalHeader(entry.header_offset)));
        }
        let variable_len = u64::from(name_len) + u64::from(extra_len);
        let data_start = fixed_end + variable_len;
        if data_start > directory_offset {
            return Err(self.invalid(Problem::OverlapsDirectory {
                name: String::from_utf8_lossy(&entry.name).into_owned(),
            }));
        }
        let variable = self.read_at(fixed_end, variable_len)?;
        let (name, extra) = variable.split_at(usize::from(name_len));
        if name != entry.name.as_slice() {
            return Err(fail(EntryProblem::LocalHeader("name")));
        }
        if flags != entry.flags {
            return Err(fail(EntryProblem::LocalHeader("flags")));
        }
        if method != entry.method {
            return Err(fail(EntryProblem::LocalHeader("compression method")));
        }
        if crc32 != entry.crc32 {
            return Err(fail(EntryProblem::LocalHeader("crc32")));
        }
        let zip64 = zip64_extra(extra).map_err(&fail)?;
        let (size, compressed_size) = match (size32, compressed32) {
            (U32_SENTINEL, U32_SENTINEL) => {
                let mut values = Fields { bytes: zip64 };
                match (values.u64(), values.u64(), values.bytes.is_empty()) {
                    (Some(size), Some(compressed), true) => (size, compressed),
                    _ => return Err(fail(EntryProblem::BadZip64Extra)),
                }
            }
            _ if zip64.is_empty() => (u64::from(size32), u64::from(compressed32)),
            _ => return Err(fail(EntryProblem::BadZip64Extra)),
        };
        if size != entry.size || compressed_size != entry.compressed_size {
            return Err(fail(EntryProblem::LocalHeader("sizes")));
        }
        match data_start.checked_add(entry.compressed_size) {
            Some(data_end) if data_end <= directory_offset => Ok(data_end),
            _ => Err(self.invalid(Problem::OverlapsDirectory {
                name: String::from_utf8_lossy(&entry.name).into_owned(),
            })),
        }
    }
}

/// The data of the ZIP64 extra field in `extra` (empty if there is none); any other extra
/// field, a repeated or malformed one, is refused.
fn zip64_extra(extra: &[u8]) -> Result<&[u8], EntryProblem> {
    let mut fields = Fields { bytes: extra };
    let mut zip64: Option<&[u8]> = None;
    while !fields.bytes.is_empty() {
        let (Some(id), Some(len)) = (fields.u16(), fields.u16()) else {
            return Err(EntryProblem::BadZip64Extra);
        };
        if id != ZIP64_EXTRA_ID {
            return Err(EntryProblem::ExtraField(id));
        }
        let data = fields
            .take(usize::from(len))
            .ok_or(EntryProblem::BadZip64Extra)?;
        if zip64.replace(data).is_some() {
            return Err(EntryProblem::BadZip64Extra);
        }
    }
    match zip64 {
        Some([]) => Err(EntryProblem::BadZip64Extra),
        Some(data) => Ok(data),
        None => Ok(&[]),
    }
}
