//! Reading a stored entry (a wheel) in place: the BLAKE3 digest of every 64 KiB block is
//! taken while the bundle is verified, and [`StoredEntry`] checks each block against it
//! before handing out a byte, so what is read later is exactly what was verified.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::error::{entry_invalid, BundleError, EntryProblem};

#[cfg(doc)]
use super::Bundle;

/// The blocks of a stored entry whose digests [`StoredEntry`] checks, in bytes.
pub(super) const BLOCK: usize = 64 * 1024;

/// The bytes of a stored entry: `size` bytes at `start` in the bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredData {
    pub(super) start: u64,
    /// The BLAKE3 digest of each [`BLOCK`] of the data (the last one shorter), filled in by
    /// the verification in [`Bundle::open`], or for an entry it deferred by the first
    /// [`Bundle::stored_entry`].
    pub(super) blocks: Blocks,
}

/// The block digests of a stored entry, shared by the bundle and every reader of it: set
/// once the entry's sha256 was checked.
pub(super) type Blocks = Arc<OnceLock<Arc<[[u8; 32]]>>>;

/// Reads the stored entry `name` of the bundle at `bundle` (`len` bytes at `start` of
/// `file`) and checks that its sha256 is `sha256`, giving `blocks` every byte read.
pub(super) fn verify_in_place(
    file: &File,
    (bundle, name): (&Path, &str),
    sha256: &[u8; 32],
    (start, len): (u64, u64),
    blocks: Option<&mut BlockDigests>,
) -> Result<(), BundleError> {
    let actual = hash_in_place(file, start, len, blocks).map_err(|source| BundleError::Io {
        action: "read",
        path: bundle.to_owned(),
        source,
    })?;
    if actual != *sha256 {
        let problem = EntryProblem::Sha256Mismatch {
            expected: *sha256,
            actual,
        };
        return Err(entry_invalid(bundle, name, problem));
    }
    Ok(())
}

/// Reads `len` bytes at `start` of `file` and returns their sha256, giving `blocks` every
/// byte read.
fn hash_in_place(
    file: &File,
    start: u64,
    len: u64,
    mut blocks: Option<&mut BlockDigests>,
) -> io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    read_in_place(file, (start, len), &mut |chunk| {
        hasher.update(chunk);
        if let Some(blocks) = blocks.as_deref_mut() {
            blocks.add(chunk);
        }
    })?;
    Ok(hasher.finalize().into())
}

/// Gives `each` the `len` bytes at `start` of `file`, a chunk of 16 blocks at a time.
fn read_in_place(
    file: &File,
    (start, len): (u64, u64),
    each: &mut dyn FnMut(&[u8]),
) -> io::Result<()> {
    const CHUNK: usize = 16 * BLOCK;
    let mut buffer = vec![0u8; CHUNK.min(usize::try_from(len).unwrap_or(CHUNK))];
    let mut offset = 0;
    while offset < len {
        let take = buffer
            .len()
            .min(usize::try_from(len - offset).unwrap_or(CHUNK));
        let chunk = &mut buffer[..take];
        file.read_exact_at(chunk, start + offset)?;
        each(chunk);
        offset += take as u64;
    }
    Ok(())
}

/// The digest of a stored entry's block digests: the BLAKE3 of them one after the other.
/// Two entries have the same exactly when their bytes are the same (barring a BLAKE3
/// collision), so that whoever recorded it for bytes it verified against a sha256 knows
/// those bytes again at a fifth of a sha256's cost (FORMAT.md 6.1.1).
pub(super) fn blocks_digest(blocks: &[[u8; 32]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for block in blocks {
        hasher.update(block);
    }
    hasher.finalize().into()
}

/// Whether the `len` bytes at `start` of `file` have the blocks digest `expected`.
pub(super) fn has_blocks_digest(
    file: &File,
    at: (u64, u64),
    expected: &[u8; 32],
) -> io::Result<bool> {
    let mut blocks = BlockDigests::default();
    read_in_place(file, at, &mut |chunk| blocks.add(chunk))?;
    Ok(blocks_digest(&blocks.finish()) == *expected)
}

/// Collects the BLAKE3 digest of every [`BLOCK`] of what is written to it.
#[derive(Default)]
pub(super) struct BlockDigests {
    hasher: blake3::Hasher,
    filled: usize,
    digests: Vec<[u8; 32]>,
}

impl BlockDigests {
    /// Takes in the next bytes of the data.
    pub(super) fn add(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
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
    }

    pub(super) fn finish(mut self) -> Vec<[u8; 32]> {
        if self.filled > 0 {
            self.digests.push(self.hasher.finalize().into());
        }
        self.digests
    }
}

/// A stored entry read in place from the verified bundle file (see
/// [`Bundle::stored_entry`]): `Read + Seek` over the entry's bytes, one block at a time,
/// each checked against its digest from the verification. A block that no longer matches
/// (the file was changed after it was verified) is an `InvalidData` error. An entry whose
/// verification was deferred ([`Bundle::open_deferring`]) is verified whole, and its
/// digests taken, before the first block is handed out; one that fails its sha256 is an
/// `InvalidData` error too.
#[derive(Debug)]
pub struct StoredEntry {
    pub(super) file: Arc<File>,
    pub(super) bundle: Arc<Path>,
    pub(super) name: Arc<str>,
    pub(super) sha256: [u8; 32],
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) blocks: Blocks,
    pub(super) position: u64,
    /// The block in `cache`, checked.
    pub(super) cached: Option<u64>,
    pub(super) cache: Vec<u8>,
}

impl Clone for StoredEntry {
    /// Another reader of the same entry at the same position (its own block buffer).
    fn clone(&self) -> Self {
        StoredEntry {
            file: Arc::clone(&self.file),
            bundle: Arc::clone(&self.bundle),
            name: Arc::clone(&self.name),
            sha256: self.sha256,
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

    /// The digests of the entry's blocks: those the verification took, or, for a deferred
    /// entry, those of a verification now.
    fn digests(&self) -> io::Result<Arc<[[u8; 32]]>> {
        if let Some(blocks) = self.blocks.get() {
            return Ok(Arc::clone(blocks));
        }
        let mut digests = BlockDigests::default();
        verify_in_place(
            &self.file,
            (&self.bundle, &self.name),
            &self.sha256,
            (self.start, self.len),
            Some(&mut digests),
        )
        .map_err(|err| match err {
            BundleError::Io { source, .. } => source,
            refused => io::Error::new(io::ErrorKind::InvalidData, refused.to_string()),
        })?;
        Ok(Arc::clone(
            self.blocks.get_or_init(|| digests.finish().into()),
        ))
    }

    /// Reads block `block` from the file into the cache and checks it.
    fn load(&mut self, block: u64) -> io::Result<()> {
        self.cached = None;
        let blocks = self.digests()?;
        let offset = block * BLOCK as u64;
        let len = (self.len - offset).min(BLOCK as u64) as usize;
        self.cache.resize(len, 0);
        self.file
            .read_exact_at(&mut self.cache, self.start + offset)?;
        let digest: [u8; 32] = blake3::hash(&self.cache).into();
        let expected = usize::try_from(block).ok().and_then(|b| blocks.get(b));
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
