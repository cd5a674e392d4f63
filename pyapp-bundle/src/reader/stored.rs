//! Reading a stored entry (a wheel) in place: the BLAKE3 digest of every 64 KiB block is
//! taken while the bundle is verified, and [`StoredEntry`] checks each block against it
//! before handing out a byte, so what is read later is exactly what was verified.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::sync::Arc;

#[cfg(doc)]
use super::Bundle;

/// The blocks of a stored entry whose digests [`StoredEntry`] checks, in bytes.
pub(super) const BLOCK: usize = 64 * 1024;

/// The bytes of a stored entry: `size` bytes at `start` in the bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredData {
    pub(super) start: u64,
    /// The BLAKE3 digest of each [`BLOCK`] of the data (the last one shorter), filled in by
    /// the verification in [`Bundle::open`].
    pub(super) blocks: Arc<[[u8; 32]]>,
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
/// (the file was changed after it was verified) is an `InvalidData` error.
#[derive(Debug)]
pub struct StoredEntry {
    pub(super) file: Arc<File>,
    pub(super) name: Arc<str>,
    pub(super) start: u64,
    pub(super) len: u64,
    pub(super) blocks: Arc<[[u8; 32]]>,
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
