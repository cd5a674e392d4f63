//! The bundle rules checked at open, above the ZIP structure: `manifest.json` first and
//! parsed, the signature entry second, every entry's name, order, mode and method, the
//! match with the manifest and the limits, and the capped inflating that hashes an entry.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use zip::{ZipArchive, ZipReadOptions};

use super::error::{entry_invalid, infallible_sink, invalid, BundleError, EntryProblem, Problem};
use super::raw_zip::{RawEntry, FLAG_UTF8, METHOD_DEFLATED, METHOD_STORED};
use super::stored::StoredData;
use super::{BundleEntry, Limits, MAX_SIGNATURE_SIZE};
use crate::layout::{DEPS_PREFIX, SRC_PREFIX};
use crate::manifest::{
    check_entry_name, folded_name, Manifest, ManifestError, MANIFEST_NAME, MAX_MANIFEST_SIZE,
    SIGNATURE_NAME,
};
use crate::signature::BundleSignature;

#[cfg(doc)]
use super::Bundle;

const COPY_BUFFER: usize = 64 * 1024;

/// What zip 9 reports when an entry inflates past the central directory's uncompressed
/// size, which [`Bundle::open`] has checked equals the manifest's.
const ZIP_OVERFLOW_MESSAGE: &str = "File is larger than its declared uncompressed size";

/// Where `manifest.json.minisig` is: its zip index and its size.
#[derive(Debug, Clone, Copy)]
pub(super) struct SignatureEntry {
    index: usize,
    size: u64,
}

/// Reads `manifest.json`, which must be the first entry. Only the container rules apply to
/// it; the bundle rules wait until its format version has been judged, since a newer format
/// may change them.
pub(super) fn read_manifest(
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
pub(super) fn read_signature(
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
pub(super) fn check_entries(
    bundle: &Path,
    manifest: &Manifest,
    raw: Vec<RawEntry>,
    limits: &Limits,
) -> Result<(Vec<BundleEntry>, Option<SignatureEntry>), BundleError> {
    let mut checked = Vec::with_capacity(raw.len());
    let mut signature = None;
    let mut folded: HashMap<String, String> = HashMap::new();
    let mut directories: HashMap<String, String> = HashMap::new();
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
        let folded_self = folded_name(&name);
        if let Some(other) = folded.get(&folded_self) {
            let other = other.clone();
            return Err(fail(EntryProblem::Collision { other }));
        }
        check_file_or_directory(&name, &folded_self, &folded, &mut directories).map_err(
            |(inside, file)| entry_invalid(bundle, &inside, EntryProblem::InsideFile { file }),
        )?;
        folded.insert(folded_self, name.clone());
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
            blocks: Arc::default(),
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

/// A path is a file or a directory, never both: `src/x` and `src/x/y` cannot both be
/// extracted (nor `src/X` and `src/x/y` on a case-insensitive filesystem, hence the folded
/// names). `files` holds the folded names of the entries seen so far, `directories` every
/// directory they imply, each with the first entry below it; `folded` is `name` folded.
/// On a clash, returns the entry below the directory and the file entry it runs into.
fn check_file_or_directory(
    name: &str,
    folded: &str,
    files: &HashMap<String, String>,
    directories: &mut HashMap<String, String>,
) -> Result<(), (String, String)> {
    if let Some(inside) = directories.get(folded) {
        return Err((inside.clone(), name.to_owned()));
    }
    for (at, _) in folded.match_indices('/') {
        let directory = &folded[..at];
        if let Some(file) = files.get(directory) {
            return Err((name.to_owned(), file.clone()));
        }
        directories
            .entry(directory.to_owned())
            .or_insert_with(|| name.to_owned());
    }
    Ok(())
}

/// Inflates an entry into `out`, never producing more than its declared size, and returns
/// the sha256 of what it produced. The CRC-32 is not checked: the sha256 is.
pub(super) fn inflate(
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
    if executable && !name.starts_with(SRC_PREFIX) {
        return Err(EntryProblem::ExecutableOutsideSrc);
    }
    let is_wheel = name.starts_with(DEPS_PREFIX);
    match (entry.method, is_wheel) {
        (METHOD_STORED, true) | (METHOD_DEFLATED, false) => Ok(executable),
        (_, true) => Err(EntryProblem::WheelNotStored),
        (_, false) => Err(EntryProblem::NotDeflated),
    }
}

/// Checks that the zip crate, which inflates the entries, sees exactly the entries that
/// were validated here, at the same offsets and with the same sizes.
pub(super) fn check_zip_agrees(
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
