//! Derives hostile bundles from the real one: the base bundle of `fixtures/hello`, built
//! once per test process by the real pyapp-build, taken apart into its entries, edited
//! and put together again with the `zip` crate (manifest recomputed unless a case says
//! otherwise), or patched byte by byte after that.

use std::io::{Cursor, Read, Write};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipArchive, ZipWriter};

use crate::harness::{build_bundle, fixture_copy};

/// Regular files as pyapp-build writes them.
pub const FILE: u32 = 0o100_644;

/// The real bundle of `fixtures/hello` 1.0.0.
pub struct Base {
    /// The bundle file's bytes.
    pub bytes: Vec<u8>,
    /// Its entries after manifest.json, in archive order.
    pub entries: Vec<Entry>,
    /// The bytes of its manifest.json.
    pub manifest: Vec<u8>,
}

/// The base bundle, built with pyapp-build the first time it is asked for.
pub fn base() -> &'static Base {
    static BASE: OnceLock<Base> = OnceLock::new();
    BASE.get_or_init(|| {
        let project = fixture_copy("hello");
        let out = tempfile::tempdir().expect("temp out dir");
        let path = build_bundle(project.path(), out.path());
        let bytes = std::fs::read(&path).expect("read the base bundle");
        let mut archive = ZipArchive::new(Cursor::new(bytes.clone())).expect("base is a zip");
        let mut entries = Vec::new();
        let mut manifest = Vec::new();
        for index in 0..archive.len() {
            let mut file = archive.by_index(index).expect("entry");
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("read entry");
            let name = file.name().expect("utf-8 name").into_owned();
            if name == "manifest.json" {
                manifest = data;
                continue;
            }
            entries.push(Entry {
                mode: file.unix_mode().expect("unix mode"),
                stored: file.compression() == CompressionMethod::Stored,
                listed: true,
                large: false,
                extra: None,
                name,
                data,
            });
        }
        Base {
            bytes,
            entries,
            manifest,
        }
    })
}

/// One archive entry to write.
#[derive(Clone, Debug)]
pub struct Entry {
    pub name: String,
    pub data: Vec<u8>,
    /// The Unix mode, file type included, written in the external attributes.
    pub mode: u32,
    /// Stored (wheels) rather than deflated (everything else).
    pub stored: bool,
    /// Listed in manifest.json when the manifest is recomputed.
    pub listed: bool,
    /// Sizes in a ZIP64 extra field in both headers, as for a 4 GiB entry.
    pub large: bool,
    /// An extra field `(id, data)` in both headers.
    pub extra: Option<(u16, Vec<u8>)>,
}

impl Entry {
    /// A deflated 0644 file, listed in the manifest.
    pub fn file(name: &str, data: &[u8]) -> Entry {
        Entry {
            name: name.to_owned(),
            data: data.to_vec(),
            mode: FILE,
            stored: false,
            listed: true,
            large: false,
            extra: None,
        }
    }

    /// A deflated entry with this mode (file type included), listed in the manifest.
    pub fn with_mode(name: &str, data: &[u8], mode: u32) -> Entry {
        Entry {
            mode,
            ..Entry::file(name, data)
        }
    }
}

/// Which manifest.json a draft gets.
#[derive(Clone, Debug)]
pub enum ManifestChoice {
    /// The sha256 and size of every listed entry, as pyapp-build would write them.
    Recompute,
    /// The base bundle's own manifest.json, whatever the entries are now.
    Original,
    /// These bytes.
    Bytes(Vec<u8>),
}

/// A bundle being derived from the base one.
#[derive(Clone, Debug)]
pub struct Draft {
    pub entries: Vec<Entry>,
    pub manifest: ManifestChoice,
}

impl Draft {
    /// The base bundle's entries, with the manifest recomputed.
    pub fn base() -> Draft {
        Draft {
            entries: base().entries.clone(),
            manifest: ManifestChoice::Recompute,
        }
    }

    /// The entry called `name`.
    pub fn entry(&mut self, name: &str) -> &mut Entry {
        self.entries
            .iter_mut()
            .find(|entry| entry.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the bundle"))
    }

    /// The content of the entry called `name`.
    pub fn data(&self, name: &str) -> &[u8] {
        &self
            .entries
            .iter()
            .find(|entry| entry.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the bundle"))
            .data
    }

    /// Adds `entry` where byte order puts it (after an entry of the same name).
    pub fn add(&mut self, entry: Entry) -> &mut Draft {
        let at = self
            .entries
            .iter()
            .position(|e| e.name.as_bytes() > entry.name.as_bytes())
            .unwrap_or(self.entries.len());
        self.entries.insert(at, entry);
        self
    }

    /// Removes the entry called `name`.
    pub fn remove(&mut self, name: &str) -> &mut Draft {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.name != name);
        assert!(self.entries.len() < before, "{name} is not in the bundle");
        self
    }

    /// Replaces the first `from` by `to` in the text entry `name`.
    pub fn edit(&mut self, name: &str, from: &str, to: &str) -> &mut Draft {
        let entry = self.entry(name);
        let text = String::from_utf8(entry.data.clone()).expect("a text entry");
        assert!(text.contains(from), "{name} does not contain {from:?}");
        entry.data = text.replacen(from, to, 1).into_bytes();
        self
    }

    /// Replaces the first `from` by `to` in metadata.yaml.
    pub fn metadata(&mut self, from: &str, to: &str) -> &mut Draft {
        self.edit("metadata.yaml", from, to)
    }

    /// The name of the wheel in deps/ whose file name starts with `prefix`.
    pub fn wheel_name(&self, prefix: &str) -> String {
        self.entries
            .iter()
            .map(|entry| entry.name.as_str())
            .find(|name| {
                name.strip_prefix("deps/")
                    .is_some_and(|wheel| wheel.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("no wheel {prefix}* in the bundle"))
            .to_owned()
    }

    /// Replaces the wheel `deps/NAME` by `data`, and its sha256 in metadata.yaml's
    /// `dependencies` with it, so only what is inside the wheel is wrong.
    pub fn replace_wheel(&mut self, name: &str, data: Vec<u8>) -> &mut Draft {
        let old = hex::encode(Sha256::digest(self.data(name)));
        let new = hex::encode(Sha256::digest(&data));
        self.entry(name).data = data;
        self.metadata(&format!("sha256: {old}"), &format!("sha256: {new}"))
    }

    /// The manifest.json this draft gets.
    pub fn manifest_bytes(&self) -> Vec<u8> {
        match &self.manifest {
            ManifestChoice::Recompute => manifest_of(&self.entries),
            ManifestChoice::Original => base().manifest.clone(),
            ManifestChoice::Bytes(bytes) => bytes.clone(),
        }
    }

    /// The archive: manifest.json first, then the entries in the draft's order, each with
    /// its mode and method and the fixed timestamp pyapp-build uses.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("manifest.json", options(FILE, false))
            .expect("start manifest");
        zip.write_all(&self.manifest_bytes())
            .expect("write manifest");
        for entry in &self.entries {
            let mut options = options(entry.mode, entry.stored)
                .large_file(entry.large)
                .into_full_options();
            if let Some((_, data)) = &entry.extra {
                options
                    .add_extra_field(PLACEHOLDER_EXTRA_ID, data.clone(), false)
                    .expect("extra field");
            }
            zip.start_file(entry.name.as_str(), options)
                .expect("start entry");
            zip.write_all(&entry.data).expect("write entry");
        }
        let mut bytes = zip.finish().expect("finish zip").into_inner();
        for entry in &self.entries {
            if let Some((id, _)) = &entry.extra {
                set_extra_id(&mut bytes, &entry.name, *id);
            }
        }
        bytes
    }
}

/// The zip crate will not write the reserved ids that matter here (0x000d, the PKWARE
/// Unix field that can carry a hard link): entries are written with this private id,
/// then patched.
const PLACEHOLDER_EXTRA_ID: u16 = 0xfeed;

/// Gives the placeholder extra field of entry `name` the id `id`, in both headers.
fn set_extra_id(bytes: &mut [u8], name: &str, id: u16) {
    let (local, central) = header_offsets(bytes, name);
    for (header, fixed_len, name_len_at, extra_len_at) in
        [(local, 30, 26, 28), (central, 46, 28, 30)]
    {
        let start = header + fixed_len + usize::from(get_u16(bytes, header + name_len_at));
        let end = start + usize::from(get_u16(bytes, header + extra_len_at));
        let mut at = start;
        while at + 4 <= end && get_u16(bytes, at) != PLACEHOLDER_EXTRA_ID {
            at += 4 + usize::from(get_u16(bytes, at + 2));
        }
        assert!(at + 4 <= end, "no placeholder extra field in {name}");
        put_u16(bytes, at, id);
    }
}

/// Writer options for one entry: Unix, `mode` in the external attributes, stored or
/// deflated, pyapp-build's timestamp.
pub fn options(mode: u32, stored: bool) -> SimpleFileOptions {
    let method = if stored {
        CompressionMethod::Stored
    } else {
        CompressionMethod::Deflated
    };
    SimpleFileOptions::default()
        .compression_method(method)
        .system(System::Unix)
        .external_attributes(mode << 16)
        .last_modified_time(DateTime::DEFAULT)
}

/// The canonical manifest.json listing the listed `entries` (sorted by name bytes here),
/// written by hand so that names the format refuses can be listed too.
pub fn manifest_of(entries: &[Entry]) -> Vec<u8> {
    let mut listed: Vec<&Entry> = entries.iter().filter(|entry| entry.listed).collect();
    listed.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let rows: Vec<String> = listed
        .iter()
        .map(|entry| {
            format!(
                "{{\"path\":{},\"sha256\":\"{}\",\"size\":{}}}",
                serde_json::to_string(&entry.name).expect("json string"),
                hex::encode(Sha256::digest(&entry.data)),
                entry.data.len()
            )
        })
        .collect();
    format!("{{\"format\":1,\"files\":[{}]}}\n", rows.join(",")).into_bytes()
}

/// Where the local header and the central directory header of entry `name` start.
pub fn header_offsets(bytes: &[u8], name: &str) -> (usize, usize) {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).expect("a zip to patch");
    let file = archive.by_name(name).expect("entry to patch");
    let offset = |value: u64| usize::try_from(value).expect("small offset");
    (
        offset(file.header_start()),
        offset(file.central_header_start()),
    )
}

/// Where the end of central directory record starts (the archives here have no comment).
pub fn end_record(bytes: &[u8]) -> usize {
    bytes.len() - 22
}

pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

pub fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

pub fn get_u16(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

pub fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// A wheel (a zip of `(name, data)`, every entry deflated, mode 0644).
pub fn wheel_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data) in files {
        zip.start_file(name.as_str(), options(FILE, false))
            .expect("start wheel entry");
        zip.write_all(data).expect("write wheel entry");
    }
    zip.finish().expect("finish wheel").into_inner()
}

/// The entries of a wheel, in order.
pub fn wheel_files(wheel: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = ZipArchive::new(Cursor::new(wheel)).expect("a wheel");
    (0..archive.len())
        .map(|index| {
            let mut file = archive.by_index(index).expect("wheel entry");
            let mut data = Vec::new();
            file.read_to_end(&mut data).expect("read wheel entry");
            (file.name().expect("utf-8 name").into_owned(), data)
        })
        .collect()
}

/// A RECORD row for `data` at `path`: `path,sha256=URLSAFE-BASE64,size`.
pub fn record_row(path: &str, data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let digest = Sha256::digest(data);
    let mut encoded = String::new();
    for chunk in digest.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..chars {
            encoded.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    format!("{path},sha256={encoded},{}", data.len())
}
