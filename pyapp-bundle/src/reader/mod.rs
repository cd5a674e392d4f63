//! The safe bundle reader used by `pyapp-install`, which runs as root on a file that came
//! from elsewhere (spec/FORMAT.md section 1, spec/SECURITY.md "Bad input").
//!
//! [`Bundle::open`] checks the whole archive before anything is extracted: the ZIP structure
//! byte by byte (end records, central directory, every local header, no gap, overlap or
//! trailing data), every bundle rule (names, layout, modes, methods), the manifest, and the
//! size and sha256 of every entry, inflating no more than the manifest declares (the stored
//! wheels read in place in parallel). Extraction
//! then streams each entry again, re-hashing it, into files it creates itself. A signature
//! entry is parsed at open and checked against trusted keys by [`Bundle::verify_signature`].
//!
//! The wheels are stored (not compressed), so [`Bundle::stored_entry`] can read one in place
//! without copying it out: while the bundle is verified, the BLAKE3 digest of every 64 KiB
//! block of a stored entry is kept, and the [`StoredEntry`] reader checks each block
//! against it before handing out a byte. What is read later is exactly what was verified, even if the
//! file changes in between.

mod checks;
mod error;
mod raw_zip;
mod stored;

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rayon::prelude::*;
use zip::read::Config;
use zip::ZipArchive;

use crate::manifest::Manifest;
use crate::signature::{BundleSignature, KeyIds, TrustedKey};

use checks::{check_entries, check_zip_agrees, inflate, read_manifest, read_signature};
use error::{entry_invalid, infallible_sink, invalid};
pub use error::{BundleError, EntryProblem, ErrorKind, Problem};
use raw_zip::RawArchive;
use stored::{has_blocks_digest, verify_in_place, BlockDigests, StoredData};
pub use stored::{seek_target, StoredEntry};

/// Largest `manifest.json.minisig` accepted, in bytes.
pub const MAX_SIGNATURE_SIZE: u64 = 64 * 1024;

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

impl Bundle {
    /// Opens and verifies the bundle at `path`; see the module documentation for what is
    /// checked. Nothing is extracted.
    pub fn open(path: &Path, limits: &Limits) -> Result<Bundle, BundleError> {
        Ok(Bundle::open_deferring(path, limits, &|_| false)?.0)
    }

    /// [`Bundle::open`], except that the stored entries `defer` picks are not read: their
    /// size and sha256 are checked by [`Deferred::verify`], which can run on another thread
    /// while the rest of the bundle is used. Meant for wheels the caller will not read from
    /// the bundle (its store holds them); a reader of one ([`Bundle::stored_entry`]) checks
    /// it first all the same. The caller must see [`Deferred::verify`] succeed before it
    /// relies on the bundle being what its manifest says.
    pub fn open_deferring(
        path: &Path,
        limits: &Limits,
        defer: &(dyn Fn(&BundleEntry) -> bool + Sync),
    ) -> Result<(Bundle, Deferred), BundleError> {
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
        let deferred = bundle.verify_contents(defer)?;
        Ok((bundle, deferred))
    }

    /// Checks the size and sha256 of every entry but those `defer` picks (returned) and
    /// keeps the block digests of the stored ones. The stored entries (the wheels: nearly
    /// all the bytes) are read in place, in parallel; the deflated ones are inflated
    /// meanwhile, one after the other. Of several failing entries, the first in name order
    /// is reported.
    fn verify_contents(
        &mut self,
        defer: &(dyn Fn(&BundleEntry) -> bool + Sync),
    ) -> Result<Deferred, BundleError> {
        let entries = std::mem::take(&mut self.entries);
        let (file, path) = (Arc::clone(&self.file), self.path.clone());
        let mut deferred = Deferred {
            file: Arc::clone(&file),
            path: path.clone(),
            entries: Vec::new(),
        };
        let mut by_size: Vec<(usize, &BundleEntry, u64)> = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            match &entry.stored {
                Some(_) if defer(entry) => deferred.entries.push(entry.clone()),
                Some(stored) => by_size.push((position, entry, stored.start)),
                None => {}
            }
        }
        // Largest first, one entry per task: a sha256 cannot be split, so the large wheels
        // must not end up queued behind each other on one thread.
        by_size.sort_by_key(|(_, entry, _)| std::cmp::Reverse(entry.size));
        let (stored, deflated) = rayon::join(
            || {
                by_size
                    .par_iter()
                    .with_max_len(1)
                    .map(|&(position, entry, start)| {
                        let mut blocks = BlockDigests::default();
                        let verified = verify_in_place(
                            &file,
                            (&path, &entry.name),
                            &entry.sha256,
                            (start, entry.size),
                            Some(&mut blocks),
                        );
                        (position, verified.map(|()| blocks.finish()))
                    })
                    .collect::<Vec<_>>()
            },
            || {
                entries
                    .iter()
                    .enumerate()
                    .filter(|(_, entry)| entry.stored.is_none())
                    .find_map(|(position, entry)| {
                        let checked = self.stream(entry, &mut io::sink(), &infallible_sink);
                        checked.err().map(|err| (position, err))
                    })
            },
        );
        self.entries = entries;
        let mut first_error = deflated;
        for (position, verified) in stored {
            match verified {
                Ok(blocks) => {
                    if let Some(data) = &self.entries[position].stored {
                        data.blocks.get_or_init(|| blocks.into());
                    }
                }
                Err(err)
                    if first_error
                        .as_ref()
                        .is_none_or(|(first, _)| position < *first) =>
                {
                    first_error = Some((position, err));
                }
                Err(_) => {}
            }
        }
        match first_error {
            Some((_, err)) => Err(err),
            None => Ok(deferred),
        }
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

    /// The bundle's content digest ([`crate::manifest::content_sha256`]).
    pub fn content_sha256(&self) -> [u8; 32] {
        let executables = self
            .entries
            .iter()
            .filter(|entry| entry.executable)
            .map(|entry| entry.name.as_str());
        crate::manifest::content_sha256(&self.manifest_bytes, executables)
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
    /// caller's job (once the tree is complete, many at once is much cheaper than one by
    /// one as they are written).
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
        let entry = self
            .entry(name)
            .ok_or_else(|| entry_invalid(&self.path, name, EntryProblem::NotFound))?;
        let Some(stored) = &entry.stored else {
            let problem = EntryProblem::NotStored;
            return Err(entry_invalid(&self.path, name, problem));
        };
        Ok(StoredEntry {
            file: Arc::clone(&self.file),
            bundle: self.path.as_path().into(),
            name: entry.name.as_str().into(),
            sha256: entry.sha256,
            start: stored.start,
            len: entry.size,
            blocks: Arc::clone(&stored.blocks),
            position: 0,
            cached: None,
            cache: Vec::new(),
        })
    }

    /// The digest of the block digests of the stored entry `name` (the BLAKE3 of them in
    /// order), once its sha256 was checked: not for one deferred and not read since. A
    /// store that keeps it beside the files of that wheel can give it to
    /// [`Deferred::verify`] to know the same bytes again without a sha256.
    pub fn blocks_digest(&self, name: &str) -> Option<[u8; 32]> {
        let blocks = self.entry(name)?.stored.as_ref()?.blocks.get()?;
        Some(stored::blocks_digest(blocks))
    }

    /// Whether the stored entry `name` was deferred by [`Bundle::open_deferring`] and not
    /// read since.
    pub fn is_deferred(&self, name: &str) -> bool {
        self.entry(name)
            .and_then(|entry| entry.stored.as_ref())
            .is_some_and(|stored| stored.blocks.get().is_none())
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

/// The stored entries [`Bundle::open_deferring`] left unread, to be verified.
#[derive(Debug)]
pub struct Deferred {
    file: Arc<File>,
    path: PathBuf,
    /// In name order.
    entries: Vec<BundleEntry>,
}

impl Deferred {
    /// How many entries were deferred.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Checks every deferred entry, one after the other on the calling thread (it is meant
    /// to run beside other work), through the file descriptor the bundle was opened with:
    /// an entry whose bytes have the blocks digest `known` gives for it (what
    /// [`Bundle::blocks_digest`] gave for bytes whose sha256 is the entry's, as a store
    /// recorded it) is those bytes; any other has its size and sha256 checked. The first
    /// that fails, in name order, is the error.
    pub fn verify(
        self,
        known: &dyn Fn(&BundleEntry) -> Option<[u8; 32]>,
    ) -> Result<(), BundleError> {
        for entry in &self.entries {
            let Some(stored) = &entry.stored else {
                continue;
            };
            let at = (stored.start, entry.size);
            if let Some(expected) = known(entry) {
                let same = has_blocks_digest(&self.file, at, &expected).map_err(|source| {
                    BundleError::Io {
                        action: "read",
                        path: self.path.clone(),
                        source,
                    }
                })?;
                if same {
                    continue;
                }
            }
            verify_in_place(
                &self.file,
                (&self.path, &entry.name),
                &entry.sha256,
                at,
                None,
            )?;
        }
        Ok(())
    }
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
