//! Reading a stored entry (a wheel) in place: the BLAKE3 digest of every 64 KiB block is
//! taken while the entry is verified, and [`StoredEntry`] checks each block against it
//! before handing out a byte, so what is read later is exactly what was verified. An entry
//! whose verification [`Bundle::open_deferring`] deferred is verified in full (its sha256
//! against the manifest, its block digests taken) the first time anything reads it.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

#[cfg(doc)]
use super::Bundle;

/// The blocks of a stored entry whose digests [`StoredEntry`] checks, in bytes.
pub(super) const BLOCK: usize = 64 * 1024;

/// The bytes of a stored entry: `size` bytes at `start` in the bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredData {
    pub(super) start: u64,
    /// The BLAKE3 digest of each [`BLOCK`] of the data (the last one shorter), set by the
    /// verification in [`Bundle::open`], or by the first read of a deferred entry.
    pub(super) blocks: Blocks,
}

/// The block digests of a stored entry, once it is verified; shared by every reader of it.
pub(super) type Blocks = Arc<OnceLock<Box<[[u8; 32]]>>>;

/// Collects the BLAKE3 digest of every [`BLOCK`] of what is written to it.
#[derive(Default)]
pub(super) struct BlockDigests {
    hasher: blake3::Hasher,
    filled: usize,
    digests: Vec<[u8; 32]>,
}

impl BlockDigests {
    pub(super) fn finish(mut self) -> Vec<[u8; 32]> {
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
    pub(super) file: Arc<File>,
    pub(super) name: Arc<str>,
    pub(super) start: u64,
    pub(super) len: u64,
    /// Its sha256 as the manifest lists it, to verify a deferred entry against.
    pub(super) sha256: [u8; 32],
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
            name: Arc::clone(&self.name),
            start: self.start,
            len: self.len,
            sha256: self.sha256,
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

    /// Reads block `block` from the file into the cache and checks it (verifying the whole
    /// entry first when that was deferred).
    fn load(&mut self, block: u64) -> io::Result<()> {
        self.cached = None;
        let blocks = Arc::clone(&self.blocks);
        let blocks = match blocks.get() {
            Some(blocks) => blocks,
            None => {
                let verified = self.verify()?;
                blocks.get_or_init(|| verified)
            }
        };
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

    /// Reads the whole entry, checks its sha256 against the manifest's and returns the
    /// digest of each of its blocks: the verification [`Bundle::open`] would have done.
    fn verify(&mut self) -> io::Result<Box<[[u8; 32]]>> {
        let mut sha256 = Sha256::new();
        let mut digests = Vec::with_capacity(self.len.div_ceil(BLOCK as u64) as usize);
        let mut offset = 0;
        while offset < self.len {
            let len = (self.len - offset).min(BLOCK as u64) as usize;
            self.cache.resize(len, 0);
            self.file
                .read_exact_at(&mut self.cache, self.start + offset)?;
            sha256.update(&self.cache);
            digests.push(blake3::hash(&self.cache).into());
            offset += len as u64;
        }
        if <[u8; 32]>::from(sha256.finalize()) != self.sha256 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "entry {:?} does not match its sha256 in the manifest",
                    self.name
                ),
            ));
        }
        Ok(digests.into())
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
