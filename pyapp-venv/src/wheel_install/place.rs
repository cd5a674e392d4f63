//! Writing a wheel's files: extracted from its archive (into a venv, or into a store entry
//! being unpacked), inflated whole or streamed ([`Scratch`]), hashed on the way and checked
//! against `RECORD`; or placed from the wheel's store entry: hard-linked (copied across
//! filesystems), except `#!python` scripts, which are rewritten for each venv. Also the
//! files the installer generates.
//! Every directory made and every file written is listed in the caller's [`ToSync`]; a
//! hard link is not (its file was made durable in the store before it was linked).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use pyapp_fs::ToSync;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use zip::ZipArchive;

use super::record::{HashAlgorithm, Hasher, RecordHash, RecordRow};
use super::scripts;
use super::{entry_problem, WheelProblem};
use crate::store::IndexedFile;

/// The longest first line searched for a `#!python` placeholder.
const MAX_SHEBANG_LINE: u64 = 4096;

/// The size of the buffer files are copied through.
const COPY_BUFFER: usize = 64 * 1024;

/// How much memory all threads together may hold for files inflated whole
/// ([`Scratch`]): each thread's share covers a file's compressed bytes and its contents.
const WHOLE_FILES_MEMORY: usize = 16 * 1024 * 1024;

/// The largest file a thread inflates whole, however few threads there are.
const MAX_WHOLE_FILE: usize = 4 * 1024 * 1024;

/// One thread's buffers for extracting and copying files. A file of an archive no larger
/// than `whole_limit` (compressed and inflated) is read whole and inflated in one call by
/// libdeflate, about 45% less CPU time than streaming it through zlib-rs (the wheels of
/// bench/'s full set, 189 MB: 300 ms against 535 ms); a larger one is streamed, so memory
/// stays bounded whatever the wheels hold.
pub struct Scratch {
    copy: Vec<u8>,
    compressed: Vec<u8>,
    contents: Vec<u8>,
    inflater: libdeflater::Decompressor,
    whole_limit: usize,
}

impl Scratch {
    /// Buffers for a thread of rayon's pool: its share of [`WHOLE_FILES_MEMORY`].
    pub fn new() -> Scratch {
        let share = WHOLE_FILES_MEMORY / 2 / rayon::current_num_threads().max(1);
        Scratch {
            copy: vec![0u8; COPY_BUFFER],
            compressed: Vec::new(),
            contents: Vec::new(),
            inflater: libdeflater::Decompressor::new(),
            whole_limit: share.clamp(COPY_BUFFER, MAX_WHOLE_FILE),
        }
    }

    /// The buffer a streamed file is copied through.
    pub fn copy_buffer(&mut self) -> &mut [u8] {
        &mut self.copy
    }

    /// The contents of the file `index` (`entry`) of `archive`, read and inflated whole,
    /// checked against the size and CRC-32 its archive declares; `None` when it is larger
    /// than this thread inflates whole or compressed in a way other than deflate (then
    /// it is streamed).
    fn read_whole<R: Read + Seek>(
        &mut self,
        archive: &mut ZipArchive<R>,
        index: usize,
        entry: &str,
    ) -> Result<Option<&[u8]>, WheelProblem> {
        let mut raw = archive.by_index_raw(index).map_err(WheelProblem::Zip)?;
        let (size, compressed_size) = (raw.size(), raw.compressed_size());
        let deflated = raw.compression() == zip::CompressionMethod::Deflated;
        let limit = self.whole_limit as u64;
        if !deflated || size > limit || compressed_size > limit {
            return Ok(None);
        }
        let crc32 = raw.crc32();
        self.compressed.clear();
        raw.read_to_end(&mut self.compressed)
            .map_err(|e| entry_problem(entry, format!("failed to read: {e}")))?;
        self.contents.resize(size as usize, 0);
        let inflated = self
            .inflater
            .deflate_decompress(&self.compressed, &mut self.contents)
            .map_err(|err| match err {
                libdeflater::DecompressionError::InsufficientSpace => entry_problem(
                    entry,
                    format!("inflates to more than the {size} bytes the archive declares"),
                ),
                libdeflater::DecompressionError::BadData => {
                    entry_problem(entry, "failed to read: invalid deflate data")
                }
            })?;
        if inflated as u64 != size {
            return Err(entry_problem(
                entry,
                format!("holds {inflated} bytes, the archive declares {size}"),
            ));
        }
        let contents = &self.contents[..inflated];
        if libdeflater::crc32(contents) != crc32 {
            return Err(entry_problem(
                entry,
                "its CRC-32 is not the one the archive declares",
            ));
        }
        Ok(Some(contents))
    }
}

/// What was written to a file: the sha256 of its contents and their size.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Written {
    /// The RECORD row of `dest`, a file of the wheel whose `.dist-info` is in `lib_dir`.
    pub fn record_row(&self, lib_dir: &Path, dest: &Path) -> RecordRow {
        RecordRow {
            path: record_path(lib_dir, dest),
            hash: Some(RecordHash {
                algorithm: HashAlgorithm::Sha256,
                digest: self.sha256.to_vec(),
            }),
            size: Some(self.size),
        }
    }
}

/// A reader that hashes and counts what passes through it.
struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Creates the directories the files at `paths` go in, below `base` (which exists), each
/// with one `mkdir`, in parallel: sorted by their bytes, every directory comes after its
/// parent, and one whose parent another thread has not made yet makes it itself. One that
/// exists must be a directory, not a link to one: nothing is written through a link. Each
/// of them is listed in `to_sync` (made now or before, it is given entries); `base` is not.
pub fn create_parents<'a>(
    base: &Path,
    paths: impl Iterator<Item = &'a Path>,
    to_sync: &ToSync,
) -> Result<(), (PathBuf, io::Error)> {
    let mut dirs: HashSet<&Path> = HashSet::new();
    for path in paths {
        for dir in path.ancestors().skip(1) {
            if dir == base || !dir.starts_with(base) || !dirs.insert(dir) {
                break;
            }
        }
    }
    let mut dirs: Vec<&Path> = dirs.into_iter().collect();
    dirs.sort_unstable_by(|a, b| a.as_os_str().as_bytes().cmp(b.as_os_str().as_bytes()));
    for dir in &dirs {
        to_sync.dir(dir);
    }
    dirs.par_iter().try_for_each(|dir| {
        match fs::create_dir(dir) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(dir) {
                    Ok(meta) if meta.is_dir() => Ok(()),
                    Ok(_) => Err(io::Error::other("exists and is not a directory")),
                    Err(err) => Err(err),
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir),
            Err(err) => Err(err),
        }
        .map_err(|err| (dir.to_path_buf(), err))
    })
}

/// Creates a new file (never through an existing file or link) in an existing directory.
pub fn create_file(path: &Path, mode: u32) -> Result<File, WheelProblem> {
    let write_error = |source| WheelProblem::Write {
        path: path.to_path_buf(),
        source,
    };
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(write_error)?;
    // The umask may have taken bits away; the mode is exactly 0644 or 0755.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))
        .map_err(write_error)?;
    Ok(file)
}

/// Copies `reader` into `out` through `buffer`, hashing what is written when `hasher` is
/// given. Read errors name the entry, write errors the path.
fn copy(
    reader: &mut dyn Read,
    out: &mut File,
    mut hasher: Option<&mut Sha256>,
    buffer: &mut [u8],
    entry: &str,
    dest: &Path,
) -> Result<(), WheelProblem> {
    loop {
        let n = match reader.read(buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(entry_problem(entry, format!("failed to read: {e}"))),
        };
        if let Some(hasher) = hasher.as_deref_mut() {
            hasher.update(&buffer[..n]);
        }
        out.write_all(&buffer[..n])
            .map_err(|source| WheelProblem::Write {
                path: dest.to_path_buf(),
                source,
            })?;
    }
}

/// Reads the first line of `reader` and, when it is a `#!python` placeholder, what it
/// becomes for `python`.
fn first_line(
    reader: &mut impl BufRead,
    python: &Path,
    entry: &str,
) -> Result<(Vec<u8>, Option<Vec<u8>>), WheelProblem> {
    let mut first = Vec::new();
    reader
        .take(MAX_SHEBANG_LINE)
        .read_until(b'\n', &mut first)
        .map_err(|e| entry_problem(entry, format!("failed to read: {e}")))?;
    let rewritten = scripts::rewrite_placeholder(&first, python);
    Ok((first, rewritten))
}

/// One file of an archive and how to write it.
pub struct Extraction<'a> {
    /// Its zip index and entry name.
    pub index: usize,
    pub entry: &'a str,
    /// Its RECORD row, to check it against (`None` when verification is off).
    pub expected: Option<&'a RecordRow>,
    pub dest: &'a Path,
    pub mode: u32,
    /// For a script going into a venv: the interpreter its `#!python` placeholder names.
    pub python: Option<&'a Path>,
}

/// Extracts one file of `archive`: the input hashed (checked against RECORD), a script's
/// `#!python` placeholder rewritten; listed in `to_sync`. A file that is not a script and
/// fits [`Scratch`] is inflated whole, any other streamed. The sha256 of what was written
/// is the input's when nothing was rewritten and RECORD uses sha256; otherwise it is
/// computed.
pub fn extract_file<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    file: &Extraction,
    scratch: &mut Scratch,
    to_sync: &ToSync,
) -> Result<Written, WheelProblem> {
    let algorithm = file
        .expected
        .and_then(|row| row.hash.as_ref())
        .map_or(HashAlgorithm::Sha256, |hash| hash.algorithm);
    let (entry, dest) = (file.entry, file.dest);
    let mut out_hasher = (algorithm != HashAlgorithm::Sha256).then(Sha256::new);
    let whole = match file.python {
        Some(_) => None,
        None => scratch.read_whole(archive, file.index, entry)?,
    };
    let (input_hash, count, out) = match whole {
        Some(contents) => {
            let mut hasher = Hasher::new(algorithm);
            hasher.update(contents);
            if let Some(out_hasher) = &mut out_hasher {
                out_hasher.update(contents);
            }
            let mut out = create_file(dest, file.mode)?;
            out.write_all(contents)
                .map_err(|source| WheelProblem::Write {
                    path: dest.to_path_buf(),
                    source,
                })?;
            (hasher.finish(), contents.len() as u64, out)
        }
        None => stream_file(archive, file, algorithm, &mut out_hasher, scratch)?,
    };
    if let Some(row) = file.expected {
        if let Some(size) = row.size.filter(|s| *s != count) {
            return Err(WheelProblem::SizeMismatch {
                entry: entry.to_string(),
                expected: size,
                actual: count,
            });
        }
        if Some(&input_hash) != row.hash.as_ref() {
            return Err(WheelProblem::HashMismatch(entry.to_string()));
        }
    }
    let (sha256, size) = match out_hasher {
        Some(hasher) => (hasher.finalize().into(), written_size(&out, dest)?),
        None => (sha256_of(&input_hash, entry)?, count),
    };
    to_sync.file(&out, dest);
    Ok(Written { sha256, size })
}

/// Streams one file of `archive` into a new file at its destination, through `scratch`'s
/// copy buffer: a script's `#!python` placeholder rewritten (what is written is then
/// hashed into `out_hasher`, made for it if need be). Returns the input's hash and size,
/// and the file written.
fn stream_file<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    file: &Extraction,
    algorithm: HashAlgorithm,
    out_hasher: &mut Option<Sha256>,
    scratch: &mut Scratch,
) -> Result<(RecordHash, u64, File), WheelProblem> {
    let zip_entry = archive.by_index(file.index).map_err(WheelProblem::Zip)?;
    let declared = zip_entry.size();
    let mut input = HashingReader {
        inner: zip_entry,
        hasher: Hasher::new(algorithm),
        count: 0,
    };
    let mut out = create_file(file.dest, file.mode)?;
    let (entry, dest) = (file.entry, file.dest);
    let buffer = scratch.copy_buffer();
    match file.python {
        Some(python) => {
            let mut reader = BufReader::new(&mut input);
            let (first, rewritten) = first_line(&mut reader, python, entry)?;
            let head = match rewritten {
                Some(shebang) => {
                    out_hasher.get_or_insert_with(Sha256::new);
                    shebang
                }
                None => first,
            };
            if let Some(hasher) = out_hasher.as_mut() {
                hasher.update(&head);
            }
            out.write_all(&head).map_err(|source| WheelProblem::Write {
                path: dest.to_path_buf(),
                source,
            })?;
            copy(
                &mut reader,
                &mut out,
                out_hasher.as_mut(),
                buffer,
                entry,
                dest,
            )?;
        }
        None => copy(
            &mut input,
            &mut out,
            out_hasher.as_mut(),
            buffer,
            entry,
            dest,
        )?,
    }
    if input.count != declared {
        return Err(entry_problem(
            entry,
            format!(
                "holds {} bytes, the archive declares {declared}",
                input.count
            ),
        ));
    }
    Ok((input.hasher.finish(), input.count, out))
}

/// The digest of a sha256 RECORD hash as an array.
fn sha256_of(hash: &RecordHash, entry: &str) -> Result<[u8; 32], WheelProblem> {
    hash.digest
        .as_slice()
        .try_into()
        .map_err(|_| entry_problem(entry, "sha256 digest of the wrong length"))
}

fn written_size(file: &File, dest: &Path) -> Result<u64, WheelProblem> {
    file.metadata()
        .map(|meta| meta.len())
        .map_err(|source| WheelProblem::Write {
            path: dest.to_path_buf(),
            source,
        })
}

/// Places the file `indexed` of a store entry (at `source`) at `dest`: hard-linked (or
/// copied across filesystems), except a script whose `#!python` placeholder is rewritten
/// for `python`, which is written anew. What is written (not linked) is listed in
/// `to_sync`.
#[allow(clippy::too_many_arguments)]
pub fn place_from_store(
    copying: &AtomicBool,
    source: &Path,
    indexed: &IndexedFile,
    dest: &Path,
    mode: u32,
    python: Option<&Path>,
    buffer: &mut [u8],
    to_sync: &ToSync,
) -> Result<Written, WheelProblem> {
    let open_error = |source_error| WheelProblem::Open {
        path: source.to_path_buf(),
        source: source_error,
    };
    if let Some(python) = python {
        let mut reader = BufReader::new(File::open(source).map_err(open_error)?);
        let (_, rewritten) = first_line(&mut reader, python, &indexed.path)?;
        if let Some(shebang) = rewritten {
            let mut out = create_file(dest, mode)?;
            let mut hasher = Sha256::new();
            hasher.update(&shebang);
            out.write_all(&shebang)
                .map_err(|source| WheelProblem::Write {
                    path: dest.to_path_buf(),
                    source,
                })?;
            let entry = &indexed.path;
            copy(
                &mut reader,
                &mut out,
                Some(&mut hasher),
                buffer,
                entry,
                dest,
            )?;
            to_sync.file(&out, dest);
            return Ok(Written {
                sha256: hasher.finalize().into(),
                size: written_size(&out, dest)?,
            });
        }
    }
    link_or_copy(copying, source, dest, mode, to_sync).map_err(|source| WheelProblem::Write {
        path: dest.to_path_buf(),
        source,
    })?;
    Ok(Written {
        sha256: indexed.sha256,
        size: indexed.size,
    })
}

/// Hard-links `source` to `dest`, or copies it when a link fails across filesystems
/// (EXDEV); `copying` is then set, and later files are copied without trying. A copy is
/// listed in `to_sync`.
fn link_or_copy(
    copying: &AtomicBool,
    source: &Path,
    dest: &Path,
    mode: u32,
    to_sync: &ToSync,
) -> io::Result<()> {
    if !copying.load(Ordering::Relaxed) {
        match fs::hard_link(source, dest) {
            Ok(()) => return Ok(()),
            Err(err) if err.raw_os_error() == Some(nix::libc::EXDEV) => {
                copying.store(true, Ordering::Relaxed);
            }
            Err(err) => return Err(err),
        }
    }
    let mut input = File::open(source)?;
    let mut output = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(dest)?;
    output.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    io::copy(&mut input, &mut output)?;
    to_sync.file(&output, dest);
    Ok(())
}

/// Writes a file that is generated, not extracted, in an existing directory; listed in
/// `to_sync`. Its RECORD row.
pub fn write_generated(
    path: &Path,
    contents: &[u8],
    mode: u32,
    lib_dir: &Path,
    to_sync: &ToSync,
) -> Result<RecordRow, WheelProblem> {
    let mut file = create_file(path, mode)?;
    file.write_all(contents)
        .map_err(|source| WheelProblem::Write {
            path: path.to_path_buf(),
            source,
        })?;
    to_sync.file(&file, path);
    Ok(Written {
        sha256: Sha256::digest(contents).into(),
        size: contents.len() as u64,
    }
    .record_row(lib_dir, path))
}

/// `path` below the directory `dir`, `/`-separated, when it is below it and UTF-8. Paths
/// built by joining plain names (every planned file's) are compared as bytes, a tenth of
/// what [`Path::strip_prefix`] costs, which decides the others.
pub fn below_dir<'p>(path: &'p Path, dir: &Path) -> Option<&'p str> {
    let bytes = path.as_os_str().as_bytes();
    match bytes
        .strip_prefix(dir.as_os_str().as_bytes())
        .and_then(|rest| rest.strip_prefix(b"/"))
    {
        Some(rest) => std::str::from_utf8(rest).ok(),
        None => path.strip_prefix(dir).ok()?.to_str(),
    }
}

/// `dest` relative to `lib_dir` with `/` separators (`../../../bin/flask`).
pub fn record_path(lib_dir: &Path, dest: &Path) -> String {
    if let Some(below) = below_dir(dest, lib_dir) {
        return below.to_owned();
    }
    let base: Vec<Component> = lib_dir.components().collect();
    let target: Vec<Component> = dest.components().collect();
    let common = base.iter().zip(&target).take_while(|(a, b)| a == b).count();
    let ups = std::iter::repeat_n("..".to_string(), base.len() - common);
    let downs = target[common..]
        .iter()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    ups.chain(downs).collect::<Vec<_>>().join("/")
}
