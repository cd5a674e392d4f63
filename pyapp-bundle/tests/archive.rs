//! The bundle container end to end: what `BundleWriter` writes `Bundle::open` accepts, and
//! every hostile archive of spec/SECURITY.md "Bad input" is refused with its one-line message.

use std::fs;
use std::io::{Cursor, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pyapp_bundle::manifest::{Manifest, ManifestEntry};
use pyapp_bundle::reader::{Bundle, ErrorKind, Limits};
use pyapp_bundle::writer::{BundleWriter, EntrySource};
use sha2::{Digest, Sha256};
use zip::write::{FullFileOptions, SimpleFileOptions};
use zip::{CompressionMethod, System, ZipArchive, ZipWriter};

const WHEEL: &str = "deps/flask-3.0.3-py3-none-any.whl";

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn deflated() -> SimpleFileOptions {
    SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .system(System::Unix)
        .unix_permissions(0o644)
}

fn stored() -> SimpleFileOptions {
    deflated().compression_method(CompressionMethod::Stored)
}

/// The canonical manifest bytes listing `files` (sorted here).
fn manifest_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut entries: Vec<ManifestEntry> = files
        .iter()
        .map(|(path, data)| ManifestEntry {
            path: (*path).to_owned(),
            sha256: sha(data),
            size: data.len() as u64,
        })
        .collect();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest::new(entries).expect("valid manifest").to_bytes()
}

/// A zip with `manifest` as its first entry, then `entries` in the given order.
fn zip_of(manifest: &[u8], entries: &[(&str, &[u8], SimpleFileOptions)]) -> Vec<u8> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("manifest.json", deflated()).expect("start");
    zip.write_all(manifest).expect("write");
    for (name, data, options) in entries {
        zip.start_file(*name, *options).expect("start");
        zip.write_all(data).expect("write");
    }
    zip.finish().expect("finish").into_inner()
}

/// A zip whose manifest lists exactly `entries`.
fn listed_zip(entries: &[(&str, &[u8], SimpleFileOptions)]) -> Vec<u8> {
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    zip_of(&manifest_of(&files), entries)
}

fn good_entries() -> Vec<(&'static str, &'static [u8], SimpleFileOptions)> {
    vec![
        ("configuration.yaml", b"format: 1\nfields: []\n", deflated()),
        (WHEEL, b"not really a wheel", stored()),
        ("metadata.yaml", b"format: 1\nname: hello\n", deflated()),
        ("src/a.py", b"print('a')\n", deflated()),
        ("src/b.py", b"print('b')\n", deflated()),
    ]
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn write(&self, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join("bundle.pyapp");
        fs::write(&path, bytes).expect("write bundle");
        path
    }

    /// Opens `bytes` as a bundle and returns the error's message without the path prefix.
    fn refusal_with(&self, bytes: &[u8], limits: &Limits) -> String {
        let path = self.write(bytes);
        match Bundle::open(&path, limits) {
            Ok(_) => panic!("bundle was accepted"),
            Err(error) => {
                assert_eq!(error.kind(), ErrorKind::BadBundle, "{error}");
                let message = error.to_string();
                assert!(!message.contains('\n'), "one line: {message}");
                let prefix = format!("{}: ", path.display());
                message
                    .strip_prefix(&prefix)
                    .unwrap_or_else(|| panic!("names the bundle: {message}"))
                    .to_owned()
            }
        }
    }

    fn refusal(&self, bytes: &[u8]) -> String {
        self.refusal_with(bytes, &Limits::default())
    }
}

/// Offsets of an entry's local header and central directory header.
fn header_offsets(bytes: &[u8], name: &str) -> (usize, usize) {
    let mut archive = ZipArchive::new(Cursor::new(bytes.to_vec())).expect("zip");
    let file = archive.by_name(name).expect("entry");
    (
        usize::try_from(file.header_start()).expect("offset"),
        usize::try_from(file.central_header_start()).expect("offset"),
    )
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

fn replace_all(bytes: &mut [u8], from: &[u8], to: &[u8]) {
    assert_eq!(from.len(), to.len());
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(from.len()).position(|w| w == from) {
        bytes[at + found..at + found + to.len()].copy_from_slice(to);
        at += found + to.len();
    }
}

fn written_bundle(dir: &Path) -> PathBuf {
    let script = dir.join("tool.sh");
    fs::write(&script, b"#!/bin/sh\nexit 0\n").expect("script");
    let mut writer = BundleWriter::new();
    for (name, data, _) in good_entries() {
        writer
            .add_file(name, EntrySource::Bytes(data.to_vec()), false)
            .expect("add");
    }
    writer
        .add_file("src/bin/tool.sh", EntrySource::File(script), true)
        .expect("add script");
    let out = dir.join("hello-1.0.pyapp");
    writer.finish(&out, Some(1_700_000_000)).expect("finish");
    out
}

#[test]
fn writer_output_round_trips() {
    let fixture = Fixture::new();
    let path = written_bundle(fixture.dir.path());
    let mut bundle = Bundle::open(&path, &Limits::default()).expect("open");
    let names: Vec<&str> = bundle.entries().iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "configuration.yaml",
            WHEEL,
            "metadata.yaml",
            "src/a.py",
            "src/b.py",
            "src/bin/tool.sh"
        ]
    );
    assert_eq!(bundle.manifest().files().len(), 6);
    assert_eq!(bundle.manifest_bytes(), bundle.manifest().to_bytes());
    assert_eq!(
        bundle.read_small("metadata.yaml", 1024).expect("read"),
        b"format: 1\nname: hello\n"
    );
    let mut wheel = Vec::new();
    assert_eq!(bundle.copy_entry_to(WHEEL, &mut wheel).expect("copy"), 18);
    assert_eq!(wheel, b"not really a wheel");
    assert!(bundle.signature().is_none());

    let dest = fixture.dir.path().join("staging");
    fs::create_dir(&dest).expect("staging");
    let script = bundle
        .extract_entry_to_path("src/bin/tool.sh", &dest)
        .expect("extract");
    assert_eq!(script, dest.join("src/bin/tool.sh"));
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o7777;
    assert_eq!(mode(&script), 0o755);
    assert_eq!(mode(&dest.join("src/bin")), 0o755);
    let source = bundle
        .extract_entry_to_path("src/a.py", &dest)
        .expect("extract");
    assert_eq!(mode(&source), 0o644);
    assert_eq!(fs::read(&source).expect("read"), b"print('a')\n");

    let message = |r: Result<PathBuf, pyapp_bundle::reader::BundleError>| {
        r.err().map(|e| (e.kind(), e.to_string()))
    };
    // An existing file (or a symlink planted there) is never followed nor overwritten.
    std::os::unix::fs::symlink("/etc/passwd", dest.join("src/b.py")).expect("symlink");
    let refused = message(bundle.extract_entry_to_path("src/b.py", &dest)).expect("refused");
    assert_eq!(refused.0, ErrorKind::Io);
    assert!(refused.1.starts_with("failed to create `"), "{}", refused.1);
    // A symlinked parent directory is refused too.
    let elsewhere = fixture.dir.path().join("elsewhere");
    fs::create_dir(&elsewhere).expect("dir");
    let dest2 = fixture.dir.path().join("staging2");
    fs::create_dir(&dest2).expect("dir");
    std::os::unix::fs::symlink(&elsewhere, dest2.join("src")).expect("symlink");
    let refused = message(bundle.extract_entry_to_path("src/a.py", &dest2)).expect("refused");
    assert!(
        refused.1.contains("is not a directory is in the way"),
        "{}",
        refused.1
    );
    assert_eq!(fs::read_dir(&elsewhere).expect("list").count(), 0);

    let missing = bundle.read_small("src/nope.py", 10).expect_err("absent");
    assert!(missing
        .to_string()
        .ends_with("entry \"src/nope.py\" does not exist in the bundle"));
    let big = bundle.read_small("metadata.yaml", 4).expect_err("cap");
    assert!(big
        .to_string()
        .ends_with("entry \"metadata.yaml\" is 22 bytes, more than the 4 allowed here"));
}

#[test]
fn a_deferred_entry_is_checked_by_its_verification_or_before_it_is_read() {
    use std::io::Read;

    let fixture = Fixture::new();
    let defer_wheels = |entry: &pyapp_bundle::reader::BundleEntry| entry.name == WHEEL;
    let good = fixture.write(&listed_zip(&good_entries()));
    let (bundle, deferred) =
        Bundle::open_deferring(&good, &Limits::default(), &defer_wheels).expect("open");
    assert_eq!(deferred.len(), 1);
    assert!(bundle.is_deferred(WHEEL));
    assert_eq!(bundle.blocks_digest(WHEEL), None, "not read yet");
    deferred
        .verify(&|_| None)
        .expect("the genuine wheel verifies");
    let mut read = Vec::new();
    let mut reader = bundle
        .stored_entry(WHEEL)
        .expect("verified when first read");
    reader.read_to_end(&mut read).expect("read");
    assert_eq!(read, b"not really a wheel");
    assert!(!bundle.is_deferred(WHEEL));
    let known = bundle.blocks_digest(WHEEL).expect("verified");
    let opened = Bundle::open(&good, &Limits::default()).expect("open");
    assert_eq!(opened.blocks_digest(WHEEL), Some(known));
    // The blocks digest a store recorded knows the genuine wheel again; a wrong one only
    // costs the sha256.
    for recorded in [known, [0; 32]] {
        let (_, deferred) =
            Bundle::open_deferring(&good, &Limits::default(), &defer_wheels).expect("open");
        deferred.verify(&|_| Some(recorded)).expect("genuine");
    }

    // A wheel that is not what the manifest says opens, and is refused by both, whatever
    // blocks digest is recorded for the genuine one.
    let entries = good_entries();
    let mut files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    files[1] = (WHEEL, b"not really a wheeL");
    let bad = fixture.dir.path().join("bad.pyapp");
    fs::write(&bad, zip_of(&manifest_of(&files), &entries)).expect("write");
    let refused = format!("entry \"{WHEEL}\" fails its sha256 check");
    assert!(Bundle::open(&bad, &Limits::default())
        .expect_err("not deferred: refused at open")
        .to_string()
        .contains(&refused));
    // What a store holding the wheel the manifest names recorded for it.
    let mut named = good_entries();
    named[1].1 = b"not really a wheeL";
    let named_path = fixture.dir.path().join("named.pyapp");
    fs::write(&named_path, listed_zip(&named)).expect("write");
    let named = Bundle::open(&named_path, &Limits::default())
        .expect("open")
        .blocks_digest(WHEEL);
    assert!(named.is_some() && named != Some(known));
    for recorded in [None, named] {
        let (_, deferred) =
            Bundle::open_deferring(&bad, &Limits::default(), &defer_wheels).expect("open");
        let error = deferred.verify(&|_| recorded).expect_err("refused");
        assert_eq!(error.kind(), ErrorKind::BadBundle);
        assert!(error.to_string().contains(&refused), "{error}");
    }
    let (bundle, _) =
        Bundle::open_deferring(&bad, &Limits::default(), &defer_wheels).expect("open");
    let mut reader = bundle.stored_entry(WHEEL).expect("a reader");
    let error = reader
        .read_to_end(&mut Vec::new())
        .expect_err("refused before a byte is handed out");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(error.to_string().contains(&refused), "{error}");
    assert!(bundle.is_deferred(WHEEL));
}

#[test]
fn stored_entries_are_read_in_place_and_checked_block_by_block() {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::FileExt;

    let fixture = Fixture::new();
    // 200,000 bytes: three full 64 KiB blocks and a short fourth one.
    let mut state = 0x2545_f491_u32;
    let wheel: Vec<u8> = (0..200_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    let mut entries = good_entries();
    entries[1].1 = Box::leak(wheel.clone().into_boxed_slice());
    let bytes = listed_zip(&entries);
    let path = fixture.write(&bytes);
    let bundle = Bundle::open(&path, &Limits::default()).expect("open");

    let mut reader = bundle.stored_entry(WHEEL).expect("stored");
    assert_eq!(reader.len(), wheel.len() as u64);
    let mut whole = Vec::new();
    reader.read_to_end(&mut whole).expect("read");
    assert_eq!(whole, wheel);
    // Clones read on their own; seeks land anywhere, also across blocks.
    let mut other = reader.clone();
    other.seek(SeekFrom::Start(65_530)).expect("seek");
    let mut across = [0u8; 12];
    other
        .read_exact(&mut across)
        .expect("read across a block boundary");
    assert_eq!(across, wheel[65_530..65_542]);
    other.seek(SeekFrom::End(-3)).expect("seek from the end");
    let mut tail = Vec::new();
    other.read_to_end(&mut tail).expect("read the tail");
    assert_eq!(tail, wheel[wheel.len() - 3..]);

    // Changing the file after verification: the changed block is refused, the others are
    // still served.
    let at = bytes
        .windows(64)
        .position(|w| w == &wheel[140_000..140_064])
        .expect("the wheel is stored as is");
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .expect("open for writing")
        .write_all_at(&[wheel[140_000] ^ 0xff], at as u64)
        .expect("change one byte");
    let mut changed = bundle.stored_entry(WHEEL).expect("stored");
    let mut first = vec![0u8; 65_536];
    changed
        .read_exact(&mut first)
        .expect("the first block is unchanged");
    changed.seek(SeekFrom::Start(140_000)).expect("seek");
    let error = changed
        .read(&mut [0u8; 16])
        .expect_err("the changed block is refused");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
    assert!(
        error
            .to_string()
            .contains("changed since the bundle was verified"),
        "{error}"
    );

    let deflated = bundle.stored_entry("src/a.py").expect_err("compressed");
    assert!(
        deflated
            .to_string()
            .ends_with("entry \"src/a.py\" is compressed, so it cannot be read in place"),
        "{deflated}"
    );
}

#[test]
fn accepts_zip64_sizes_from_other_writers() {
    let fixture = Fixture::new();
    let mut entries = good_entries();
    entries[3].2 = deflated().large_file(true);
    let path = fixture.write(&listed_zip(&entries));
    let mut bundle = Bundle::open(&path, &Limits::default()).expect("open");
    assert_eq!(
        bundle.read_small("src/a.py", 100).expect("read"),
        b"print('a')\n"
    );
}

#[test]
fn refuses_bad_names() {
    let fixture = Fixture::new();
    let cases = [
        ("../evil", "entry \"../evil\" escapes the bundle root"),
        ("/etc/x", "entry \"/etc/x\" is an absolute path"),
        ("C:\\x", "entry \"C:\\\\x\" starts with a drive letter"),
        ("src\\x", "entry \"src\\\\x\" contains a backslash"),
        ("", "entry \"\" has an empty name"),
        (".", "entry \".\" has a \".\" path component"),
        ("..", "entry \"..\" escapes the bundle root"),
        ("src/a\u{1}b", "entry \"src/a\\u{1}b\" contains a control character"),
        ("src/dir/", "entry \"src/dir/\" is a directory entry"),
        ("evil.sh", "entry \"evil.sh\" is outside the bundle layout (metadata.yaml, configuration.yaml, deps/*.whl, src/...)"),
        ("deps/x/y.whl", "entry \"deps/x/y.whl\" is not a wheel file directly under deps/"),
    ];
    for (name, expected) in cases {
        let mut entries = good_entries();
        entries.insert(0, (name, b"x", deflated()));
        let bytes = zip_of(&manifest_of(&[]), &entries);
        assert_eq!(fixture.refusal(&bytes), expected, "{name:?}");
    }
}

#[test]
fn refuses_special_files_and_modes() {
    let fixture = Fixture::new();
    let with_mode = |mode: u32| {
        deflated()
            .into_full_options()
            .external_attributes(mode << 16)
    };
    let cases: Vec<(&str, FullFileOptions, &str)> = vec![
        (
            "src/dir",
            with_mode(0o040_755),
            "entry \"src/dir\" is a directory",
        ),
        (
            "src/dev",
            with_mode(0o020_644),
            "entry \"src/dev\" is a device or other special file (mode 0o20644)",
        ),
        (
            "src/fifo",
            with_mode(0o010_644),
            "entry \"src/fifo\" is a device or other special file (mode 0o10644)",
        ),
        (
            "src/suid",
            with_mode(0o104_755),
            "entry \"src/suid\" has the setuid bit (mode 0o104755)",
        ),
        (
            "src/sgid",
            with_mode(0o102_755),
            "entry \"src/sgid\" has the setgid bit (mode 0o102755)",
        ),
        (
            "src/sticky",
            with_mode(0o101_644),
            "entry \"src/sticky\" has the sticky bit (mode 0o101644)",
        ),
        (
            "src/ww",
            with_mode(0o100_666),
            "entry \"src/ww\" is world-writable (mode 0o100666)",
        ),
        (
            "src/odd",
            with_mode(0o100_600),
            "entry \"src/odd\" has mode 0o100600 (expected 0o100644 or 0o100755)",
        ),
        (
            "metadata.yaml",
            with_mode(0o100_755),
            "entry \"metadata.yaml\" is executable outside src/",
        ),
        (
            "src/dos",
            deflated().system(System::Dos).into_full_options(),
            "entry \"src/dos\" has no Unix mode",
        ),
    ];
    for (name, options, expected) in cases {
        let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
        zip.start_file("manifest.json", deflated()).expect("start");
        zip.write_all(&manifest_of(&[])).expect("write");
        zip.start_file(name, options).expect("start");
        zip.write_all(b"x").expect("write");
        let bytes = zip.finish().expect("finish").into_inner();
        assert_eq!(fixture.refusal(&bytes), expected, "{name}");
    }

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("manifest.json", deflated()).expect("start");
    zip.write_all(&manifest_of(&[])).expect("write");
    zip.add_symlink("src/link", "/etc/shadow", deflated())
        .expect("symlink");
    let bytes = zip.finish().expect("finish").into_inner();
    assert_eq!(fixture.refusal(&bytes), "entry \"src/link\" is a symlink");

    // Hard links (and symlinks) can also hide in extra fields such as the PKWARE Unix field
    // 0x000d (times, uid, gid, link target); only the zip64 field is allowed. The zip crate
    // will not write a reserved id, so write a private one and patch it.
    let mut options = deflated().into_full_options();
    options
        .add_extra_field(0xfeed, [0u8; 12], false)
        .expect("extra field");
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("manifest.json", deflated()).expect("start");
    zip.write_all(&manifest_of(&[])).expect("write");
    zip.start_file("src/hard", options).expect("start");
    zip.write_all(b"x").expect("write");
    let mut bytes = zip.finish().expect("finish").into_inner();
    replace_all(&mut bytes, &[0xed, 0xfe, 12, 0], &[0x0d, 0x00, 12, 0]);
    assert_eq!(
        fixture.refusal(&bytes),
        "entry \"src/hard\" has extra field 0x000d (only zip64 is allowed)"
    );
}

#[test]
fn refuses_duplicates_collisions_and_disorder() {
    let fixture = Fixture::new();
    // Exact duplicates: the zip crate refuses to write them, so rename one afterwards.
    let mut bytes = listed_zip(&good_entries());
    replace_all(&mut bytes, b"src/b.py", b"src/a.py");
    assert_eq!(fixture.refusal(&bytes), "entry \"src/a.py\" appears twice");

    let mut entries = good_entries();
    entries.push(("src/c.PY", b"x", deflated()));
    let listed = listed_zip(&entries);
    entries.push(("src/c.py", b"y", deflated()));
    let manifest = ZipArchive::new(Cursor::new(listed))
        .expect("zip")
        .by_name("manifest.json")
        .map(|mut f| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut bytes).expect("read");
            bytes
        })
        .expect("manifest");
    assert_eq!(
        fixture.refusal(&zip_of(&manifest, &entries)),
        "entry \"src/c.py\" collides with \"src/c.PY\" (same name after Unicode normalisation and lower-casing)"
    );

    let mut entries = good_entries();
    entries.push(("src/cafe\u{301}", b"x", deflated()));
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    let manifest = manifest_of(&files);
    entries.push(("src/caf\u{e9}", b"y", deflated()));
    assert_eq!(
        fixture.refusal(&zip_of(&manifest, &entries)),
        "entry \"src/caf\u{e9}\" collides with \"src/cafe\\u{301}\" \
         (same name after Unicode normalisation and lower-casing)"
    );

    // A path that is a file and a directory: between the two, names that sort between
    // them (`-` and `.` sort before `/`); also when only lower-casing makes them meet.
    let mut entries = good_entries();
    entries.push(("src/x", b"x", deflated()));
    entries.push(("src/x-a", b"x", deflated()));
    entries.push(("src/x.py", b"x", deflated()));
    entries.push(("src/x/y", b"y", deflated()));
    assert_eq!(
        fixture.refusal(&listed_zip(&entries)),
        "entry \"src/x/y\" is inside \"src/x\", which is a file entry (a path cannot be \
         both a file and a directory)"
    );
    let mut entries = good_entries();
    entries.push(("src/X/deep/y", b"y", deflated()));
    entries.push(("src/x", b"x", deflated()));
    entries.sort_by_key(|(name, _, _)| *name);
    assert_eq!(
        fixture.refusal(&listed_zip(&entries)),
        "entry \"src/X/deep/y\" is inside \"src/x\", which is a file entry (a path cannot be \
         both a file and a directory)"
    );

    let mut entries = good_entries();
    entries.swap(3, 4);
    assert_eq!(
        fixture.refusal(&listed_zip(&entries)),
        "entry \"src/a.py\" is out of order (after \"src/b.py\"; entries follow manifest.json in byte order)"
    );

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.start_file("metadata.yaml", deflated()).expect("start");
    zip.write_all(b"x").expect("write");
    zip.start_file("manifest.json", deflated()).expect("start");
    zip.write_all(&manifest_of(&[("metadata.yaml", b"x")]))
        .expect("write");
    let bytes = zip.finish().expect("finish").into_inner();
    assert_eq!(
        fixture.refusal(&bytes),
        "has no manifest.json as its first entry"
    );
}

#[test]
fn refuses_broken_containers() {
    let fixture = Fixture::new();
    let good = listed_zip(&good_entries());

    let mut trailing = good.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(
        fixture.refusal(&trailing),
        "has 4 bytes of data after the end of central directory record"
    );

    let mut prepended = b"junk".to_vec();
    prepended.extend_from_slice(&good);
    assert_eq!(
        fixture.refusal(&prepended),
        "has 4 unlisted bytes between the central directory and its end record"
    );

    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    zip.set_comment("hello").expect("comment");
    zip.start_file("manifest.json", deflated()).expect("start");
    zip.write_all(&manifest_of(&[])).expect("write");
    let bytes = zip.finish().expect("finish").into_inner();
    assert_eq!(fixture.refusal(&bytes), "has an archive comment");

    assert_eq!(
        fixture.refusal(&good[..good.len() / 2]),
        "is not a zip archive (no end of central directory record)"
    );
    assert_eq!(
        fixture.refusal(b"PK"),
        "is not a zip archive (shorter than an end record)"
    );
    // Cut right after a wheel, whose own end record is then the last one in the file: a
    // truncated bundle, not one with data after its end record.
    let wheel = good.clone();
    let mut entries: Vec<(&str, &[u8], SimpleFileOptions)> = good_entries();
    entries[1].1 = &wheel;
    let bytes = listed_zip(&entries);
    let (local, _) = header_offsets(&bytes, WHEEL);
    let cut = local + 30 + WHEEL.len() + wheel.len() + 5;
    assert_eq!(
        fixture.refusal(&bytes[..cut]),
        "is not a zip archive (no end of central directory record)"
    );

    // A zip64 locator that points somewhere else.
    let end = good.len() - 22;
    let mut zip64 = good[..end].to_vec();
    zip64.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    zip64.extend_from_slice(&0u32.to_le_bytes());
    zip64.extend_from_slice(&12345u64.to_le_bytes());
    zip64.extend_from_slice(&1u32.to_le_bytes());
    zip64.extend_from_slice(&good[end..]);
    assert_eq!(
        fixture.refusal(&zip64),
        "has a bad zip64 end record (the locator does not point right before itself)"
    );
}

#[test]
fn refuses_local_headers_that_disagree() {
    let fixture = Fixture::new();
    let good = listed_zip(&good_entries());
    let (local, central) = header_offsets(&good, "src/a.py");

    let mut renamed = good.clone();
    let name_at = local + 30;
    renamed[name_at..name_at + 8].copy_from_slice(b"src/x.py");
    assert_eq!(
        fixture.refusal(&renamed),
        "entry \"src/a.py\" has a local header that disagrees with the central directory (name)"
    );

    let mut resized = good.clone();
    put_u32(&mut resized, local + 22, 1000);
    assert_eq!(
        fixture.refusal(&resized),
        "entry \"src/a.py\" has a local header that disagrees with the central directory (sizes)"
    );

    let mut method = good.clone();
    put_u16(&mut method, local + 8, 0);
    assert_eq!(
        fixture.refusal(&method),
        "entry \"src/a.py\" has a local header that disagrees with the central directory (compression method)"
    );

    let mut unsupported = good.clone();
    put_u16(&mut unsupported, local + 8, 12);
    put_u16(&mut unsupported, central + 10, 12);
    assert_eq!(
        fixture.refusal(&unsupported),
        "entry \"src/a.py\" uses compression method 12 (only stored and deflated are allowed)"
    );

    let mut encrypted = good.clone();
    put_u16(&mut encrypted, central + 8, 1);
    assert_eq!(
        fixture.refusal(&encrypted),
        "entry \"src/a.py\" is encrypted"
    );
}

#[test]
fn refuses_overlaps_and_gaps() {
    let fixture = Fixture::new();
    let good = listed_zip(&good_entries());
    let (a_local, _) = header_offsets(&good, "src/a.py");
    let (b_local, b_central) = header_offsets(&good, "src/b.py");

    let mut overlapping = good.clone();
    put_u32(
        &mut overlapping,
        b_central + 42,
        u32::try_from(a_local).expect("small"),
    );
    assert_eq!(
        fixture.refusal(&overlapping),
        "entry \"src/b.py\" overlaps entry \"src/a.py\""
    );

    let mut gap = good.clone();
    put_u32(
        &mut gap,
        b_central + 42,
        u32::try_from(b_local + 1).expect("small"),
    );
    assert_eq!(
        fixture.refusal(&gap),
        "has 1 unlisted bytes before entry \"src/b.py\""
    );
}

#[test]
fn refuses_what_the_manifest_does_not_vouch_for() {
    let fixture = Fixture::new();
    let entries = good_entries();
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();

    let mut unlisted = entries.clone();
    unlisted.push(("src/z.py", b"extra", deflated()));
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&files), &unlisted)),
        "entry \"src/z.py\" is not listed in manifest.json"
    );

    let mut more = files.clone();
    more.push(("src/gone.py", b"x"));
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&more), &entries)),
        "entry \"src/gone.py\" is listed in manifest.json but missing from the bundle"
    );

    let mut wrong_size = files.clone();
    wrong_size[3] = ("src/a.py", b"short");
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&wrong_size), &entries)),
        "entry \"src/a.py\" declares 11 bytes but the manifest says 5"
    );

    let mut wrong_hash = files.clone();
    wrong_hash[3] = ("src/a.py", b"print('A')\n");
    let expected = format!(
        "entry \"src/a.py\" fails its sha256 check (manifest {}…, actual {}…)",
        &hex::encode(sha(b"print('A')\n"))[..16],
        &hex::encode(sha(b"print('a')\n"))[..16]
    );
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&wrong_hash), &entries)),
        expected
    );

    // A stored wheel is verified in place beside the deflated entries; of several that
    // fail, the first by name is the one named.
    let mut wrong_wheel = files.clone();
    wrong_wheel[1] = (WHEEL, b"not really a wheeL");
    let wheel_refused = format!(
        "entry \"{WHEEL}\" fails its sha256 check (manifest {}…, actual {}…)",
        &hex::encode(sha(b"not really a wheeL"))[..16],
        &hex::encode(sha(b"not really a wheel"))[..16]
    );
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&wrong_wheel), &entries)),
        wheel_refused
    );
    wrong_wheel[3] = ("src/a.py", b"print('A')\n");
    assert_eq!(
        fixture.refusal(&zip_of(&manifest_of(&wrong_wheel), &entries)),
        wheel_refused
    );
    let mut wrong_config = wrong_hash.clone();
    wrong_config[0] = ("configuration.yaml", b"format: 2\nfields: []\n");
    wrong_config[1] = (WHEEL, b"not really a wheeL");
    assert!(fixture
        .refusal(&zip_of(&manifest_of(&wrong_config), &entries))
        .starts_with("entry \"configuration.yaml\" fails its sha256 check"));

    let mut wheel_deflated = entries.clone();
    wheel_deflated[1].2 = deflated();
    assert_eq!(
        fixture.refusal(&listed_zip(&wheel_deflated)),
        format!("entry \"{WHEEL}\" is compressed (wheels are stored)")
    );
    let mut source_stored = entries.clone();
    source_stored[3].2 = stored();
    assert_eq!(
        fixture.refusal(&listed_zip(&source_stored)),
        "entry \"src/a.py\" is stored (every entry but the wheels is deflated)"
    );
}

#[test]
fn caps_inflation_at_the_declared_size() {
    let fixture = Fixture::new();
    let big = vec![b'a'; 100_000];
    let mut entries = good_entries();
    entries.push(("src/bomb", &big, deflated()));
    let mut manifest_files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    // The manifest (and both headers) claim 10 bytes; the deflate stream holds 100,000.
    manifest_files[5] = ("src/bomb", b"aaaaaaaaaa");
    let mut bytes = zip_of(&manifest_of(&manifest_files), &entries);
    let (local, central) = header_offsets(&bytes, "src/bomb");
    put_u32(&mut bytes, local + 22, 10);
    put_u32(&mut bytes, central + 24, 10);
    assert_eq!(
        fixture.refusal(&bytes),
        "entry \"src/bomb\" inflates past its declared size 10"
    );

    // Claiming more than the stream holds is caught too.
    let more = vec![b'a'; 100_010];
    manifest_files[5] = ("src/bomb", &more);
    let mut bytes = zip_of(&manifest_of(&manifest_files), &entries);
    let (local, central) = header_offsets(&bytes, "src/bomb");
    put_u32(&mut bytes, local + 22, 100_010);
    put_u32(&mut bytes, central + 24, 100_010);
    assert_eq!(
        fixture.refusal(&bytes),
        "entry \"src/bomb\" inflates to 100000 bytes, less than its declared size 100010"
    );
}

#[test]
fn enforces_limits_and_the_format_version() {
    let fixture = Fixture::new();
    let good = listed_zip(&good_entries());
    let few = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert_eq!(
        fixture.refusal_with(&good, &few),
        "has 6 entries, more than the limit of 3"
    );
    let small = Limits {
        max_entry_size: 15,
        ..Limits::default()
    };
    assert_eq!(
        fixture.refusal_with(&good, &small),
        "entry \"configuration.yaml\" is 21 bytes, more than the limit of 15"
    );
    let total = Limits {
        max_total_size: 40,
        ..Limits::default()
    };
    assert_eq!(
        fixture.refusal_with(&good, &total),
        "unpacks to more than the limit of 40 bytes"
    );

    // A newer format is reported before any rule it might have changed.
    let newer = zip_of(
        b"{\"format\":2,\"files\":[]}\n",
        &[("hooks/post-install", b"x", deflated())],
    );
    assert_eq!(
        fixture.refusal(&newer),
        "bundle format 2 is newer than this tool supports (1)"
    );
}

#[test]
fn io_errors_are_ours() {
    let fixture = Fixture::new();
    let error = Bundle::open(&fixture.dir.path().join("absent.pyapp"), &Limits::default())
        .expect_err("absent");
    assert_eq!(error.kind(), ErrorKind::Io);
    assert!(error.to_string().starts_with("failed to open `"));
}

/// A signature made by the real minisign 0.11 (over another manifest: only its form matters
/// here; verification is tested in `pyapp_bundle::signature`).
const SIGNATURE: &[u8] = b"untrusted comment: signature from minisign secret key
RURqubsipGDFvq/KcuSF7DqGt/f2SvhzDEkOI//jUwUFQ+xS0VX8QO6EvNJdsrCWN1uyMbp1EUz098EdTkKwdhnRBdyTHeySMQs=
trusted comment: pyapp test
1H7F48rP0U6u9YoZnDIhhWjr+HN6pChB+18HRXSuNvQg4FF8v0c2BH3noY/yWw3v4OSdII02OR6DVMbbPlZADA==
";

/// The good entries with `signature` inserted at `position` (0: right after the manifest).
fn signed_zip(position: usize, signature: &[u8]) -> Vec<u8> {
    let mut entries = good_entries();
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    let manifest = manifest_of(&files);
    entries.insert(position, ("manifest.json.minisig", signature, deflated()));
    zip_of(&manifest, &entries)
}

#[test]
fn exposes_the_signature_entry() {
    let fixture = Fixture::new();
    let mut entries = good_entries();
    let files: Vec<(&str, &[u8])> = entries.iter().map(|(n, d, _)| (*n, *d)).collect();
    let manifest = manifest_of(&files);
    // The signature is not listed in the manifest and comes right after it.
    entries.insert(0, ("manifest.json.minisig", SIGNATURE, deflated()));
    let path = fixture.write(&zip_of(&manifest, &entries));
    let bundle = Bundle::open(&path, &Limits::default()).expect("open");
    let signature = bundle.signature().expect("signature");
    assert_eq!(signature.key_id().to_string(), "BEC560A422BBB96A");
    assert_eq!(signature.trusted_comment(), "pyapp test");
    assert_eq!(bundle.manifest_bytes(), manifest.as_slice());
    assert!(bundle.entry("manifest.json.minisig").is_none());
}

#[test]
fn refuses_a_misplaced_or_malformed_signature() {
    let fixture = Fixture::new();
    assert_eq!(
        fixture.refusal(&signed_zip(2, SIGNATURE)),
        "entry \"manifest.json.minisig\" must be the second entry, right after manifest.json"
    );
    assert_eq!(
        fixture.refusal(&signed_zip(0, b"untrusted comment: x\n")),
        "entry \"manifest.json.minisig\" is not a minisign signature: it must be 4 lines, each ending in a line feed (found 1)"
    );
    let too_large = vec![b'a'; 64 * 1024 + 1];
    assert_eq!(
        fixture.refusal(&signed_zip(0, &too_large)),
        "entry \"manifest.json.minisig\" is 65537 bytes, more than the limit of 65536"
    );
    // A manifest listing it is refused by the manifest's own rules (`manifest.rs`).
}
