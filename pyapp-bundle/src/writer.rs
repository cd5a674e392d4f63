//! The deterministic bundle writer used by `pyapp-build` (spec/FORMAT.md section 1).
//!
//! The same entries give a byte-identical bundle: `manifest.json` first, then entries in byte
//! order of their names, fixed timestamps and modes, wheels stored and everything else
//! deflated at level 6. The bundle appears at its final path only once it is complete. A
//! signed bundle has `manifest.json.minisig` as its second entry ([`BundleWriter::finish_signed`]).

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use thiserror::Error;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use crate::layout::{DEPS_PREFIX, SRC_PREFIX};
use crate::manifest::{
    check_entry_name, folded_name, Manifest, ManifestEntry, ManifestError, NameError,
    MANIFEST_NAME, SIGNATURE_NAME,
};
use crate::reader::MAX_SIGNATURE_SIZE;
use crate::signature::{BundleSignature, SignatureFormatError};

/// Entries at least this large get ZIP64 sizes in both headers. Fixed (rather than "when the
/// compressed size overflows", which is only known after compressing) so the headers depend
/// on the input size alone; the margin covers deflate's worst-case expansion.
pub const ZIP64_SIZE_THRESHOLD: u64 = 0xFF00_0000;
/// The deflate level of every non-wheel entry.
pub const DEFLATE_LEVEL: i64 = 6;
/// 1980-01-01 00:00:00 UTC, the earliest time a ZIP entry can record.
const ZIP_EPOCH_MIN: u64 = 315_532_800;
/// 2107-12-31 23:59:59 UTC, the latest time a ZIP entry can record.
const ZIP_EPOCH_MAX: u64 = 4_354_819_199;
const COPY_BUFFER: usize = 64 * 1024;

/// Where an entry's content comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntrySource {
    /// A file on disk, streamed (read twice: once to hash, once to write).
    File(PathBuf),
    /// Bytes in memory, for generated files such as `metadata.yaml`.
    Bytes(Vec<u8>),
}

/// Collects entries, then writes the bundle with [`BundleWriter::finish`].
#[derive(Debug, Default)]
pub struct BundleWriter {
    entries: BTreeMap<String, PendingEntry>,
    folded: HashMap<String, String>,
}

#[derive(Debug)]
struct PendingEntry {
    source: EntrySource,
    executable: bool,
}

/// What [`BundleWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBundle {
    /// The bundle's final path.
    pub path: PathBuf,
    /// The manifest written as its first entry.
    pub manifest: Manifest,
    /// sha256 of the whole bundle file.
    pub sha256: [u8; 32],
    /// The content digest ([`crate::manifest::content_sha256`]): what names its release.
    pub content_sha256: [u8; 32],
    /// Size of the bundle file in bytes.
    pub size: u64,
}

/// Why an entry was refused or the bundle could not be written.
#[derive(Debug, Error)]
pub enum WriteError {
    #[error("entry {name:?} {problem}")]
    BadName { name: String, problem: NameError },
    #[error("entry {name:?} is reserved: the writer adds it itself")]
    Reserved { name: String },
    #[error("entry {name:?} is added twice")]
    Duplicate { name: String },
    #[error("entry {name:?} collides with {other:?} (same name after Unicode normalisation and lower-casing)")]
    Collision { name: String, other: String },
    #[error("entry {name:?} cannot be executable: only files under {SRC_PREFIX} may be")]
    ExecutableOutsideSrc { name: String },
    #[error("`{}` changed while the bundle was being written", path.display())]
    SourceChanged { path: PathBuf },
    #[error("failed to {action} `{}`: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("failed to write `{}`: {source}", path.display())]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("the signature {0}")]
    BadSignature(SignatureFormatError),
    #[error("the signature is {size} bytes, more than the limit of {MAX_SIGNATURE_SIZE}")]
    SignatureTooLarge { size: usize },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl BundleWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an entry. `name` must pass [`check_entry_name`], must not be `manifest.json` or
    /// its signature (the writer adds the manifest itself), and must not equal another entry,
    /// also after NFC and lower-casing. Only `src/` entries may be `executable` (mode 0755).
    pub fn add_file(
        &mut self,
        name: &str,
        source: EntrySource,
        executable: bool,
    ) -> Result<(), WriteError> {
        check_entry_name(name).map_err(|problem| WriteError::BadName {
            name: name.to_owned(),
            problem,
        })?;
        if name == MANIFEST_NAME || name == SIGNATURE_NAME {
            return Err(WriteError::Reserved {
                name: name.to_owned(),
            });
        }
        if executable && !name.starts_with(SRC_PREFIX) {
            return Err(WriteError::ExecutableOutsideSrc {
                name: name.to_owned(),
            });
        }
        if self.entries.contains_key(name) {
            return Err(WriteError::Duplicate {
                name: name.to_owned(),
            });
        }
        if let Some(other) = self.folded.get(&folded_name(name)) {
            return Err(WriteError::Collision {
                name: name.to_owned(),
                other: other.clone(),
            });
        }
        self.folded.insert(folded_name(name), name.to_owned());
        self.entries
            .insert(name.to_owned(), PendingEntry { source, executable });
        Ok(())
    }

    /// Writes the bundle to `out_path`. `source_date_epoch` (seconds, from `SOURCE_DATE_EPOCH`)
    /// becomes every entry's timestamp, clamped to what ZIP can record; without it the
    /// timestamp is 1980-01-01 00:00:00. The bundle is written to a temporary file next to
    /// `out_path`, synced, and renamed into place: on error nothing is left behind.
    pub fn finish(
        self,
        out_path: &Path,
        source_date_epoch: Option<u64>,
    ) -> Result<WrittenBundle, WriteError> {
        self.write(out_path, source_date_epoch, None::<fn(&[u8]) -> Vec<u8>>)
    }

    /// Like [`BundleWriter::finish`], and `sign` turns the manifest's exact bytes into
    /// `manifest.json.minisig`, written as the second entry (deflated, mode 0644, not listed
    /// in the manifest). What it returns must be a signature in the form readers accept
    /// (spec/FORMAT.md 1.2); a deterministic `sign` keeps the bundle reproducible.
    pub fn finish_signed(
        self,
        out_path: &Path,
        source_date_epoch: Option<u64>,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<WrittenBundle, WriteError> {
        self.write(out_path, source_date_epoch, Some(sign))
    }

    fn write(
        self,
        out_path: &Path,
        source_date_epoch: Option<u64>,
        sign: Option<impl FnOnce(&[u8]) -> Vec<u8>>,
    ) -> Result<WrittenBundle, WriteError> {
        let mut files = Vec::with_capacity(self.entries.len());
        for (name, entry) in &self.entries {
            let (size, sha256) = hash_source(&entry.source)?;
            files.push(ManifestEntry {
                path: name.clone(),
                sha256,
                size,
            });
        }
        let manifest = Manifest::new(files)?;
        let manifest_bytes = manifest.to_bytes();
        let signature = sign.map(|sign| sign(&manifest_bytes));
        if let Some(signature) = &signature {
            if signature.len() as u64 > MAX_SIGNATURE_SIZE {
                let size = signature.len();
                return Err(WriteError::SignatureTooLarge { size });
            }
            BundleSignature::parse(signature).map_err(WriteError::BadSignature)?;
        }
        let mtime = zip_timestamp(source_date_epoch);

        let dir = match out_path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
            _ => PathBuf::from("."),
        };
        let temp = TempFile::create(&dir, out_path)?;
        let file = temp
            .file
            .try_clone()
            .map_err(io_error("open", &temp.path))?;
        let zip_error = |source| WriteError::Zip {
            path: temp.path.clone(),
            source,
        };
        let mut zip = ZipWriter::new(BufWriter::new(file));

        zip.start_file(MANIFEST_NAME, entry_options(MANIFEST_NAME, 0, false, mtime))
            .map_err(zip_error)?;
        zip.write_all(&manifest_bytes)
            .map_err(io_error("write", &temp.path))?;
        if let Some(signature) = &signature {
            let options = entry_options(SIGNATURE_NAME, 0, false, mtime);
            zip.start_file(SIGNATURE_NAME, options).map_err(zip_error)?;
            zip.write_all(signature)
                .map_err(io_error("write", &temp.path))?;
        }

        for (listed, (name, entry)) in manifest.files().iter().zip(&self.entries) {
            let options = entry_options(name, listed.size, entry.executable, mtime);
            zip.start_file(name.as_str(), options).map_err(zip_error)?;
            let (size, sha256) = copy_source(&entry.source, &mut zip, &temp.path)?;
            if (size, sha256) != (listed.size, listed.sha256) {
                let path = match &entry.source {
                    EntrySource::File(path) => path.clone(),
                    EntrySource::Bytes(_) => PathBuf::from(name),
                };
                return Err(WriteError::SourceChanged { path });
            }
        }
        let buffered = zip.finish().map_err(zip_error)?;
        let file = buffered
            .into_inner()
            .map_err(|e| io_error("write", &temp.path)(e.into_error()))?;
        file.sync_all().map_err(io_error("sync", &temp.path))?;
        drop(file);

        let (size, sha256) = hash_source(&EntrySource::File(temp.path.clone()))?;
        temp.persist(out_path)?;
        if let Ok(dir_handle) = File::open(&dir) {
            // Make the rename durable; a directory that cannot be synced is not an error.
            let _ = dir_handle.sync_all();
        }
        let executables = manifest
            .files()
            .iter()
            .zip(&self.entries)
            .filter(|(_, (_, entry))| entry.executable)
            .map(|(listed, _)| listed.path.as_str());
        let content_sha256 = crate::manifest::content_sha256(&manifest_bytes, executables);
        Ok(WrittenBundle {
            path: out_path.to_owned(),
            manifest,
            sha256,
            content_sha256,
            size,
        })
    }
}

/// The fixed options of one entry: stored for wheels, deflated otherwise; Unix mode 0644 or
/// 0755; the bundle's single timestamp; ZIP64 sizes only for very large entries.
fn entry_options(name: &str, size: u64, executable: bool, mtime: DateTime) -> SimpleFileOptions {
    let (method, level) = if name.starts_with(DEPS_PREFIX) {
        (CompressionMethod::Stored, None)
    } else {
        (CompressionMethod::Deflated, Some(DEFLATE_LEVEL))
    };
    SimpleFileOptions::default()
        .compression_method(method)
        .compression_level(level)
        .system(System::Unix)
        .unix_permissions(if executable { 0o755 } else { 0o644 })
        .last_modified_time(mtime)
        .large_file(size >= ZIP64_SIZE_THRESHOLD)
}

/// The ZIP timestamp for `SOURCE_DATE_EPOCH` seconds, clamped to 1980..=2107 (UTC); without
/// it, 1980-01-01 00:00:00. Every entry of a bundle gets this one timestamp.
pub fn zip_timestamp(source_date_epoch: Option<u64>) -> DateTime {
    let Some(seconds) = source_date_epoch else {
        return DateTime::DEFAULT;
    };
    let seconds = seconds.clamp(ZIP_EPOCH_MIN, ZIP_EPOCH_MAX);
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let of_day = seconds % 86_400;
    let (hour, minute, second) = (of_day / 3600, of_day % 3600 / 60, of_day % 60);
    // Every component is in range after the clamp, so the fallback is never taken.
    match (
        u16::try_from(year),
        u8::try_from(month),
        u8::try_from(day),
        u8::try_from(hour),
        u8::try_from(minute),
        u8::try_from(second),
    ) {
        (Ok(y), Ok(mo), Ok(d), Ok(h), Ok(mi), Ok(s)) => {
            DateTime::from_date_and_time(y, mo, d, h, mi, s).unwrap_or(DateTime::DEFAULT)
        }
        _ => DateTime::DEFAULT,
    }
}

/// Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

fn hash_source(source: &EntrySource) -> Result<(u64, [u8; 32]), WriteError> {
    copy_source(source, &mut io::sink(), Path::new(""))
}

/// Streams `source` into `out`, returning its size and sha256. `out_path` names `out` in
/// errors.
fn copy_source(
    source: &EntrySource,
    out: &mut dyn Write,
    out_path: &Path,
) -> Result<(u64, [u8; 32]), WriteError> {
    let mut hasher = Sha256::new();
    let size = match source {
        EntrySource::Bytes(bytes) => {
            hasher.update(bytes);
            out.write_all(bytes).map_err(io_error("write", out_path))?;
            bytes.len() as u64
        }
        EntrySource::File(path) => {
            let mut file = File::open(path).map_err(io_error("open", path))?;
            let mut buffer = vec![0u8; COPY_BUFFER];
            let mut size = 0u64;
            loop {
                let n = match file.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_error("read", path)(e)),
                };
                let chunk = &buffer[..n];
                hasher.update(chunk);
                out.write_all(chunk).map_err(io_error("write", out_path))?;
                size += n as u64;
            }
            size
        }
    };
    Ok((size, hasher.finalize().into()))
}

/// A new file next to the bundle, removed on drop unless persisted.
struct TempFile {
    path: PathBuf,
    file: File,
    persisted: bool,
}

impl TempFile {
    fn create(dir: &Path, out_path: &Path) -> Result<Self, WriteError> {
        let stem = out_path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_else(|| "bundle".to_owned());
        let mut attempt = 0u32;
        loop {
            let path = dir.join(format!(".{stem}.{}.{attempt}.tmp", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        persisted: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => {
                    attempt += 1;
                }
                Err(e) => return Err(io_error("create", &path)(e)),
            }
        }
    }

    fn persist(mut self, out_path: &Path) -> Result<(), WriteError> {
        fs::rename(&self.path, out_path).map_err(io_error("rename into place", out_path))?;
        self.persisted = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.persisted {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;
    use zip::ZipArchive;

    const WHEEL: &str = "deps/flask-3.0.3-py3-none-any.whl";

    fn sample(dir: &Path) -> BundleWriter {
        let script = dir.join("run.sh");
        fs::write(&script, b"#!/bin/sh\necho hi\n").expect("write script");
        let mut writer = BundleWriter::new();
        writer
            .add_file("src/z/run.sh", EntrySource::File(script), true)
            .expect("add script");
        writer
            .add_file(
                "metadata.yaml",
                EntrySource::Bytes(b"name: x\n".to_vec()),
                false,
            )
            .expect("add metadata");
        writer
            .add_file(WHEEL, EntrySource::Bytes(vec![7u8; 5000]), false)
            .expect("add wheel");
        writer
            .add_file(
                "src/a.py",
                EntrySource::Bytes(b"print(1)\n".to_vec()),
                false,
            )
            .expect("add source");
        writer
    }

    fn write(dir: &Path, name: &str, epoch: Option<u64>) -> (WrittenBundle, Vec<u8>) {
        let out = dir.join(name);
        let written = sample(dir).finish(&out, epoch).expect("finish");
        let bytes = fs::read(&out).expect("read bundle");
        (written, bytes)
    }

    #[test]
    fn same_input_gives_identical_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (first, a) = write(dir.path(), "a.pyapp", None);
        let (second, b) = write(dir.path(), "b.pyapp", None);
        assert_eq!(a, b);
        assert_eq!(first.sha256, second.sha256);
        assert_eq!(first.sha256, <[u8; 32]>::from(Sha256::digest(&a)));
        assert_eq!(first.size, a.len() as u64);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn source_date_epoch_changes_the_bytes_and_is_clamped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, plain) = write(dir.path(), "a.pyapp", None);
        let (_, dated) = write(dir.path(), "b.pyapp", Some(1_700_000_000));
        let (_, early) = write(dir.path(), "c.pyapp", Some(0));
        assert_ne!(plain, dated);
        assert_eq!(plain, early, "times before 1980 clamp to 1980-01-01");
        let mut archive = ZipArchive::new(Cursor::new(dated)).expect("zip");
        let time = archive
            .by_index(1)
            .expect("entry")
            .last_modified()
            .expect("time");
        assert_eq!(
            (
                time.year(),
                time.month(),
                time.day(),
                time.hour(),
                time.minute(),
                time.second()
            ),
            (2023, 11, 14, 22, 13, 20)
        );
    }

    #[test]
    fn layout_methods_and_modes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (written, bytes) = write(dir.path(), "a.pyapp", Some(1_700_000_001));
        let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("zip");
        let mut seen = Vec::new();
        for i in 0..archive.len() {
            let file = archive.by_index(i).expect("entry");
            seen.push((
                file.name().expect("name").into_owned(),
                file.compression(),
                file.unix_mode(),
            ));
            assert!(file.extra_data().is_none(), "no extra fields");
        }
        let deflated = CompressionMethod::Deflated;
        assert_eq!(
            seen,
            vec![
                (MANIFEST_NAME.to_owned(), deflated, Some(0o100644)),
                (WHEEL.to_owned(), CompressionMethod::Stored, Some(0o100644)),
                ("metadata.yaml".to_owned(), deflated, Some(0o100644)),
                ("src/a.py".to_owned(), deflated, Some(0o100644)),
                ("src/z/run.sh".to_owned(), deflated, Some(0o100755)),
            ]
        );
        assert!(archive.comment().is_empty());
        let mut manifest = Vec::new();
        archive
            .by_name(MANIFEST_NAME)
            .expect("manifest")
            .read_to_end(&mut manifest)
            .expect("read");
        assert_eq!(manifest, written.manifest.to_bytes());
        assert_eq!(written.manifest.files().len(), 4);
    }

    #[test]
    fn a_signed_bundle_has_its_signature_second() {
        use crate::reader::{Bundle, Limits};
        use crate::signature::{encode_signature, KeyId};
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("signed.pyapp");
        let mut signed_manifest = Vec::new();
        let signature = encode_signature("c", KeyId([1; 8]), &[2; 64], "t", &[3; 64]);
        let written = sample(dir.path())
            .finish_signed(&out, None, |manifest| {
                signed_manifest = manifest.to_vec();
                signature.clone()
            })
            .expect("finish");
        assert_eq!(signed_manifest, written.manifest.to_bytes());
        let mut archive = ZipArchive::new(File::open(&out).expect("open")).expect("zip");
        let names: Vec<String> = (0..archive.len())
            .map(|i| {
                archive
                    .by_index(i)
                    .expect("entry")
                    .name()
                    .expect("name")
                    .into_owned()
            })
            .collect();
        assert_eq!(&names[..3], [MANIFEST_NAME, SIGNATURE_NAME, WHEEL]);
        assert_eq!(
            written.manifest.files().len(),
            4,
            "the signature is not listed"
        );
        let bundle = Bundle::open(&out, &Limits::default()).expect("the reader accepts it");
        // The content digest covers the manifest and the executable entry's name, not the
        // signature: the reader finds the writer's.
        let mut hasher = Sha256::new();
        hasher.update(written.manifest.to_bytes());
        hasher.update(b"src/z/run.sh\n");
        assert_eq!(written.content_sha256, <[u8; 32]>::from(hasher.finalize()));
        assert_eq!(bundle.content_sha256(), written.content_sha256);
        let parsed = bundle.signature().expect("signature");
        assert_eq!(parsed.key_id(), KeyId([1; 8]));
        assert_eq!(parsed.trusted_comment(), "t");

        let again = dir.path().join("again.pyapp");
        sample(dir.path())
            .finish_signed(&again, None, |_| signature.clone())
            .expect("finish");
        assert_eq!(
            fs::read(&out).expect("read"),
            fs::read(&again).expect("read")
        );
    }

    #[test]
    fn refuses_a_signature_readers_would_refuse() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("x.pyapp");
        let error = sample(dir.path())
            .finish_signed(&out, None, |_| b"not a signature\n".to_vec())
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "the signature is not a minisign signature: it must be 4 lines, each ending in a line feed (found 1)"
        );
        assert!(!out.exists());
    }

    #[test]
    fn refuses_bad_entries() {
        let mut writer = BundleWriter::new();
        let bytes = || EntrySource::Bytes(Vec::new());
        let err = |r: Result<(), WriteError>| r.err().map(|e| e.to_string());
        assert_eq!(
            err(writer.add_file("../evil", bytes(), false)),
            Some("entry \"../evil\" escapes the bundle root".to_owned())
        );
        assert_eq!(
            err(writer.add_file(MANIFEST_NAME, bytes(), false)),
            Some("entry \"manifest.json\" is reserved: the writer adds it itself".to_owned())
        );
        assert_eq!(
            err(writer.add_file("metadata.yaml", bytes(), true)),
            Some(
                "entry \"metadata.yaml\" cannot be executable: only files under src/ may be"
                    .to_owned()
            )
        );
        writer
            .add_file("src/Readme", bytes(), false)
            .expect("first add");
        assert_eq!(
            err(writer.add_file("src/Readme", bytes(), false)),
            Some("entry \"src/Readme\" is added twice".to_owned())
        );
        assert_eq!(
            err(writer.add_file("src/README", bytes(), false)),
            Some(
                "entry \"src/README\" collides with \"src/Readme\" \
                 (same name after Unicode normalisation and lower-casing)"
                    .to_owned()
            )
        );
    }

    #[test]
    fn leaves_nothing_behind_on_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = BundleWriter::new();
        writer
            .add_file(
                "src/missing.py",
                EntrySource::File(dir.path().join("missing.py")),
                false,
            )
            .expect("add");
        let out = dir.path().join("x.pyapp");
        let error = writer.finish(&out, None).expect_err("missing source");
        assert!(error.to_string().starts_with("failed to open `"), "{error}");
        assert_eq!(fs::read_dir(dir.path()).expect("list").count(), 0);
    }

    #[test]
    fn epoch_conversion() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_675), (2023, 11, 14));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let latest = zip_timestamp(Some(u64::MAX));
        assert_eq!(
            (latest.year(), latest.month(), latest.day()),
            (2107, 12, 31)
        );
        assert_eq!(zip_timestamp(Some(ZIP_EPOCH_MIN)), DateTime::DEFAULT);
    }
}
