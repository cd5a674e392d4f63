//! The ZIP structure, parsed from raw bytes (APPNOTE 6.3.10 sections 4.3 and 4.5).
//!
//! zip 9 is lenient where a root-run installer must not be: it searches for the end record
//! past trailing data, ignores gaps between entries, keeps one of two same-named entries, and
//! does not expose the extra-field ids or the local headers. This parser is strict: every
//! byte of the file belongs to exactly one local header, entry data, the central directory or
//! the end records, in that order.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use super::error::{entry_invalid, BundleError, EntryProblem, Problem};
use super::Limits;
use crate::manifest::MAX_NAME_LEN;

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
pub(super) const METHOD_STORED: u16 = 0;
pub(super) const METHOD_DEFLATED: u16 = 8;
const FLAG_ENCRYPTED: u16 = 1 << 0;
const FLAG_DATA_DESCRIPTOR: u16 = 1 << 3;
const FLAG_STRONG_ENCRYPTION: u16 = 1 << 6;
pub(super) const FLAG_UTF8: u16 = 1 << 11;
/// Bits 1-2 (deflate options) and 11 (UTF-8 name) are all a bundle may set.
const FLAGS_ALLOWED: u16 = 0b110 | FLAG_UTF8;

/// One central directory entry, with ZIP64 values resolved.
#[derive(Debug, Clone)]
pub(super) struct RawEntry {
    pub(super) index: usize,
    pub(super) name: Vec<u8>,
    pub(super) made_by: u16,
    pub(super) flags: u16,
    pub(super) method: u16,
    pub(super) crc32: u32,
    pub(super) compressed_size: u64,
    pub(super) size: u64,
    pub(super) header_offset: u64,
    pub(super) external_attributes: u32,
    /// Where the entry's data begins, once its local header has been read.
    pub(super) data_start: u64,
}

/// Where the central directory is, from the end records.
struct EndRecords {
    entries: u64,
    directory_offset: u64,
    directory_size: u64,
    /// Where the end records begin (the ZIP64 end record if there is one).
    start: u64,
}

pub(super) struct RawArchive<'a> {
    pub(super) path: &'a Path,
    pub(super) reader: BufReader<File>,
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
    pub(super) fn read_structure(&mut self, limits: &Limits) -> Result<Vec<RawEntry>, BundleError> {
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
