//! A wheel file on disk as [`super::install_wheels`] reads it: positioned reads, so that
//! clones read the same file in parallel, each at its own position.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use pyapp_bundle::reader::seek_target;

/// An opened wheel file.
#[derive(Debug, Clone)]
pub struct WheelFile {
    file: Arc<File>,
    len: u64,
    position: u64,
}

impl WheelFile {
    /// Opens the wheel at `path`.
    pub fn open(path: &Path) -> io::Result<WheelFile> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(WheelFile {
            file: Arc::new(file),
            len,
            position: 0,
        })
    }
}

impl Read for WheelFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.position);
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], self.position)?;
        self.position += n as u64;
        Ok(n)
    }
}

impl Seek for WheelFile {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.position = seek_target(self.len, self.position, to)?;
        Ok(self.position)
    }
}
