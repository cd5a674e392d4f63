//! The ZIP container: entry names, file types and modes, extra fields, duplicates and
//! collisions, zip bombs, headers that disagree, bytes outside the structure, ZIP64
//! records, truncated and corrupt files.

use super::bundle::{
    base, end_record, get_u16, get_u32, header_offsets, put_u16, put_u32, put_u64, Draft, Entry,
    ManifestChoice,
};
use super::{derived, refused, Case};

const CLI: &str = "src/src/hello/cli.py";
const CONFIG: &str = "src/src/hello/config.py";

/// `entry "NAME" RULE`, the reader's words for an entry that breaks a rule.
fn entry(name: &str, rule: &str) -> String {
    format!("entry {name:?} {rule}")
}

/// The base bundle plus an entry `name` that the manifest does not list (the reader
/// judges a name before it looks the name up in the manifest).
fn with_unlisted(name: &str) -> Vec<u8> {
    derived(|draft| {
        draft.add(Entry {
            listed: false,
            ..Entry::file(name, b"owned\n")
        });
    })
}

/// The base bundle with the mode of cli.py replaced by `mode`.
fn cli_with_mode(mode: u32) -> Vec<u8> {
    derived(|draft| draft.entry(CLI).mode = mode)
}

/// The base bundle patched by `patch(bytes, local header offset, central header offset)`
/// of entry `name`.
fn patched(name: &str, patch: impl FnOnce(&mut Vec<u8>, usize, usize)) -> Vec<u8> {
    let mut bytes = base().bytes.clone();
    let (local, central) = header_offsets(&bytes, name);
    patch(&mut bytes, local, central);
    bytes
}

/// Where each central directory header starts, from the end record.
fn central_headers(bytes: &[u8]) -> Vec<usize> {
    let end = end_record(bytes);
    let count = get_u16(bytes, end + 10);
    let mut at = get_u32(bytes, end + 16) as usize;
    let mut headers = Vec::new();
    for _ in 0..count {
        headers.push(at);
        at += 46
            + usize::from(get_u16(bytes, at + 28))
            + usize::from(get_u16(bytes, at + 30))
            + usize::from(get_u16(bytes, at + 32));
    }
    headers
}

/// A ZIP64 end of central directory record and its locator for `bytes` (whose end record
/// starts at `end`), claiming `entries` entries.
fn zip64_records(bytes: &[u8], end: usize, entries: u64) -> Vec<u8> {
    let mut records = Vec::new();
    records.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
    records.extend_from_slice(&44u64.to_le_bytes());
    records.extend_from_slice(&0x031eu16.to_le_bytes());
    records.extend_from_slice(&45u16.to_le_bytes());
    records.extend_from_slice(&0u32.to_le_bytes());
    records.extend_from_slice(&0u32.to_le_bytes());
    records.extend_from_slice(&entries.to_le_bytes());
    records.extend_from_slice(&entries.to_le_bytes());
    records.extend_from_slice(&u64::from(get_u32(bytes, end + 12)).to_le_bytes());
    records.extend_from_slice(&u64::from(get_u32(bytes, end + 16)).to_le_bytes());
    records.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
    records.extend_from_slice(&0u32.to_le_bytes());
    records.extend_from_slice(&(end as u64).to_le_bytes());
    records.extend_from_slice(&1u32.to_le_bytes());
    records
}

/// Deterministic noise.
fn noise(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x5eed;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

pub fn cases() -> Vec<Case> {
    let mut cases = names();
    cases.extend(types_and_modes());
    cases.extend(duplicates());
    cases.extend(bombs());
    cases.extend(structure());
    cases
}

fn names() -> Vec<Case> {
    let long = format!("src/{}", "a".repeat(1100));
    let mut cases: Vec<Case> = [
        ("entry-dotdot", "../x", "escapes the bundle root"),
        (
            "entry-into-a-sibling-app",
            "src/../../hello-evil/owned",
            "escapes the bundle root",
        ),
        ("entry-absolute", "/etc/cron.d/evil", "is an absolute path"),
        ("entry-drive-letter", "C:\\x", "starts with a drive letter"),
        (
            "entry-backslash",
            "src\\..\\..\\evil",
            "contains a backslash",
        ),
        ("entry-empty-name", "", "has an empty name"),
        ("entry-dot", ".", "has a \".\" path component"),
        ("entry-dotdot-only", "..", "escapes the bundle root"),
        (
            "entry-control-character",
            "src/evil\nExecStart=/bin/sh",
            "contains a control character",
        ),
        (
            "entry-outside-the-layout",
            "etc/passwd",
            "is outside the bundle layout",
        ),
        ("entry-directory-name", "src/evil/", "is a directory entry"),
        (
            "entry-not-a-wheel-name",
            "deps/evil.whl",
            "is a wheel directly under deps/",
        ),
        ("entry-name-too-long", &long, "is longer than 1024 bytes"),
    ]
    .into_iter()
    .map(|(case, name, rule)| refused(case, with_unlisted(name), entry(name, rule)))
    .collect();

    // Bytes that are not UTF-8: written as "src/xx.py", then patched.
    let mut bytes = with_unlisted("src/xx.py");
    let (local, central) = header_offsets(&bytes, "src/xx.py");
    for at in [local + 30 + 4, central + 46 + 4] {
        bytes[at] = 0xff;
        bytes[at + 1] = 0xfe;
    }
    cases.push(refused(
        "entry-name-not-utf8",
        bytes,
        "has a name that is not valid UTF-8",
    ));
    cases
}

fn types_and_modes() -> Vec<Case> {
    let mut cases: Vec<Case> = [
        ("entry-symlink", 0o120_777, "is a symlink"),
        ("entry-directory", 0o040_755, "is a directory"),
        (
            "entry-char-device",
            0o020_644,
            "is a device or other special file (mode 0o20644)",
        ),
        (
            "entry-block-device",
            0o060_644,
            "is a device or other special file (mode 0o60644)",
        ),
        (
            "entry-fifo",
            0o010_644,
            "is a device or other special file (mode 0o10644)",
        ),
        (
            "entry-socket",
            0o140_644,
            "is a device or other special file (mode 0o140644)",
        ),
        (
            "entry-setuid",
            0o104_755,
            "has the setuid bit (mode 0o104755)",
        ),
        (
            "entry-setgid",
            0o102_755,
            "has the setgid bit (mode 0o102755)",
        ),
        (
            "entry-sticky",
            0o101_644,
            "has the sticky bit (mode 0o101644)",
        ),
        (
            "entry-world-writable",
            0o100_666,
            "is world-writable (mode 0o100666)",
        ),
        (
            "entry-group-writable",
            0o100_664,
            "has mode 0o100664 (expected 0o100644 or 0o100755)",
        ),
    ]
    .into_iter()
    .map(|(case, mode, rule)| refused(case, cli_with_mode(mode), entry(CLI, rule)))
    .collect();

    cases.push(refused(
        "symlink-then-a-file-through-it",
        derived(|draft| {
            draft.add(Entry::with_mode("src/evil", b"/etc", 0o120_777));
            draft.add(Entry::file("src/evil/cron.d/pyapp", b"* * * * * root id\n"));
        }),
        entry("src/evil", "is a symlink"),
    ));
    cases.push(refused(
        "executable-outside-src",
        derived(|draft| draft.entry("metadata.yaml").mode = 0o100_755),
        entry("metadata.yaml", "is executable outside src/"),
    ));
    cases.push(refused(
        "entry-not-unix",
        patched(CLI, |bytes, _, central| bytes[central + 5] = 0),
        entry(CLI, "has no Unix mode"),
    ));
    // Hard links (and owners) hide in extra fields: PKWARE Unix 0x000d holds a link
    // target, Info-ZIP 0x7875 a uid and gid.
    for (case, id, data) in [
        ("extra-field-pkware-unix-hardlink", 0x000d, vec![0u8; 12]),
        (
            "extra-field-uid-gid",
            0x7875,
            vec![1, 4, 0, 0, 0, 0, 4, 0, 0, 0, 0],
        ),
    ] {
        cases.push(refused(
            case,
            derived(|draft| draft.entry(CLI).extra = Some((id, data))),
            entry(
                CLI,
                &format!("has extra field {id:#06x} (only zip64 is allowed)"),
            ),
        ));
    }
    cases
}

fn duplicates() -> Vec<Case> {
    // The zip crate will not write a name twice: write "cli.pz", then rename it.
    let twin = "src/src/hello/cli.pz";
    let mut bytes = derived(|draft| {
        draft.add(Entry::file(twin, b"print('owned')\n"));
    });
    let (local, central) = header_offsets(&bytes, twin);
    for at in [local + 30, central + 46] {
        bytes[at..at + twin.len()].copy_from_slice(CLI.as_bytes());
    }
    vec![
        refused("duplicate-name", bytes, entry(CLI, "appears twice")),
        refused(
            "duplicate-after-case-folding",
            derived(|draft| {
                draft.add(Entry {
                    listed: false,
                    ..Entry::file("src/src/hello/CLI.py", b"print('owned')\n")
                });
            }),
            entry(CLI, "collides with \"src/src/hello/CLI.py\""),
        ),
        refused(
            "file-and-directory-of-one-path",
            derived(|draft| {
                draft.add(Entry::file(&format!("{CLI}/owned.py"), b"print('owned')\n"));
            }),
            entry(
                &format!("{CLI}/owned.py"),
                &format!("is inside {CLI:?}, which is a file entry"),
            ),
        ),
        refused(
            "duplicate-after-unicode-normalisation",
            derived(|draft| {
                draft.add(Entry::file("src/caf\u{e9}.py", b"x = 1\n"));
                draft.add(Entry {
                    listed: false,
                    ..Entry::file("src/cafe\u{301}.py", b"x = 2\n")
                });
            }),
            entry(
                "src/caf\u{e9}.py",
                &format!("collides with {:?}", "src/cafe\u{301}.py"),
            ),
        ),
    ]
}

fn bombs() -> Vec<Case> {
    let mut cases = Vec::new();

    // 16 MiB of zeros (16 KiB deflated) whose headers and manifest say 1 KiB.
    let declared = 1024;
    let mut draft = Draft::base();
    draft.add(Entry::file("src/bomb.txt", &vec![0; declared]));
    draft.manifest = ManifestChoice::Bytes(draft.manifest_bytes());
    draft.entry("src/bomb.txt").data = vec![0; 16 << 20];
    let mut bytes = draft.to_bytes();
    let (local, central) = header_offsets(&bytes, "src/bomb.txt");
    put_u32(&mut bytes, local + 22, declared as u32);
    put_u32(&mut bytes, central + 24, declared as u32);
    cases.push(refused(
        "zip-bomb-inflates-past-its-declared-size",
        bytes,
        entry("src/bomb.txt", "inflates past its declared size 1024"),
    ));

    // cli.py claims (everywhere) 100 bytes more than its stream holds.
    let mut draft = Draft::base();
    let size = draft.data(CLI).len();
    draft.entry(CLI).data.extend_from_slice(&[b'#'; 100]);
    draft.manifest = ManifestChoice::Bytes(draft.manifest_bytes());
    draft.entry(CLI).data.truncate(size);
    let mut bytes = draft.to_bytes();
    let (local, central) = header_offsets(&bytes, CLI);
    put_u32(&mut bytes, local + 22, (size + 100) as u32);
    put_u32(&mut bytes, central + 24, (size + 100) as u32);
    cases.push(refused(
        "entry-shorter-than-declared",
        bytes,
        entry(
            CLI,
            &format!(
                "inflates to {size} bytes, less than its declared size {}",
                size + 100
            ),
        ),
    ));

    // Declared sizes past the caps are refused before anything is inflated: one 5 GiB
    // entry, or five of 4 GiB (the per-entry cap) past the 16 GiB total.
    let huge = |names: &[&str], size: u64| {
        let mut draft = Draft::base();
        for name in names {
            draft.add(Entry {
                large: true,
                ..Entry::file(name, b"small")
            });
        }
        let manifest = String::from_utf8(draft.manifest_bytes()).expect("utf-8");
        let manifest = manifest.replace("\"size\":5}", &format!("\"size\":{size}}}"));
        draft.manifest = ManifestChoice::Bytes(manifest.into_bytes());
        let mut bytes = draft.to_bytes();
        for name in names {
            let (local, central) = header_offsets(&bytes, name);
            // The ZIP64 field: id, length, then the size first in both headers.
            put_u64(&mut bytes, local + 30 + name.len() + 4, size);
            put_u64(&mut bytes, central + 46 + name.len() + 4, size);
        }
        bytes
    };
    cases.push(refused(
        "declared-size-over-the-entry-limit",
        huge(&["src/huge.bin"], 5 << 30),
        entry(
            "src/huge.bin",
            "is 5368709120 bytes, more than the limit of 4294967296",
        ),
    ));
    cases.push(refused(
        "declared-sizes-over-the-total-limit",
        huge(
            &[
                "src/h1.bin",
                "src/h2.bin",
                "src/h3.bin",
                "src/h4.bin",
                "src/h5.bin",
            ],
            4 << 30,
        ),
        "unpacks to more than the limit of 17179869184 bytes",
    ));

    // Two central directory entries sharing one local header and data.
    let bytes = patched(CONFIG, |bytes, _, central| {
        let (cli_local, _) = header_offsets(&base().bytes, CLI);
        put_u32(bytes, central + 42, cli_local as u32);
    });
    cases.push(refused(
        "overlapping-entries",
        bytes,
        format!("entry {CONFIG:?} overlaps entry {CLI:?}"),
    ));
    cases
}

fn structure() -> Vec<Case> {
    let mut cases = Vec::new();
    let local_disagrees = |what: &str| {
        entry(
            CLI,
            &format!("has a local header that disagrees with the central directory ({what})"),
        )
    };
    cases.push(refused(
        "local-header-other-name",
        patched(CLI, |bytes, local, _| {
            bytes[local + 30 + CLI.len() - 1] = b'z'
        }),
        local_disagrees("name"),
    ));
    cases.push(refused(
        "local-header-other-size",
        patched(CLI, |bytes, local, _| {
            let size = get_u32(bytes, local + 22);
            put_u32(bytes, local + 22, size + 1);
        }),
        local_disagrees("sizes"),
    ));
    cases.push(refused(
        "local-header-other-crc",
        patched(CLI, |bytes, local, _| bytes[local + 14] ^= 0xff),
        local_disagrees("crc32"),
    ));
    cases.push(refused(
        "local-header-other-method",
        patched(CLI, |bytes, local, _| put_u16(bytes, local + 8, 0)),
        local_disagrees("compression method"),
    ));
    cases.push(refused(
        "local-header-other-flags",
        patched(CLI, |bytes, local, _| put_u16(bytes, local + 6, 0x0800)),
        local_disagrees("flags"),
    ));
    for (case, flags, rule) in [
        ("entry-encrypted", 0x0001, "is encrypted"),
        ("entry-data-descriptor", 0x0008, "uses a data descriptor"),
        (
            "entry-unknown-flags",
            0x0020,
            "has unsupported flags 0x0020",
        ),
    ] {
        cases.push(refused(
            case,
            patched(CLI, |bytes, local, central| {
                put_u16(bytes, local + 6, flags);
                put_u16(bytes, central + 8, flags);
            }),
            entry(CLI, rule),
        ));
    }
    cases.push(refused(
        "entry-compression-bzip2",
        patched(CLI, |bytes, local, central| {
            put_u16(bytes, local + 8, 12);
            put_u16(bytes, central + 10, 12);
        }),
        entry(
            CLI,
            "uses compression method 12 (only stored and deflated are allowed)",
        ),
    ));
    let wheel = Draft::base().wheel_name("blinker");
    cases.push(refused(
        "wheel-deflated",
        derived(|draft| draft.entry(&wheel).stored = false),
        entry(&wheel, "is compressed (wheels are stored)"),
    ));
    cases.push(refused(
        "source-stored",
        derived(|draft| draft.entry(CLI).stored = true),
        entry(CLI, "is stored (every entry but the wheels is deflated)"),
    ));
    cases.push(refused(
        "entries-out-of-order",
        derived(|draft| {
            let at = draft
                .entries
                .iter()
                .position(|entry| entry.name == CLI)
                .expect("cli.py");
            draft.entries.swap(at, at + 1);
        }),
        entry(CLI, &format!("is out of order (after {CONFIG:?}")),
    ));
    cases.push(refused(
        "manifest-not-the-first-entry",
        patched("manifest.json", |bytes, local, central| {
            bytes[local + 30 + 12] = b'x';
            bytes[central + 46 + 12] = b'x';
        }),
        "has no manifest.json as its first entry",
    ));
    cases.push(refused(
        "entry-corrupt-deflate-stream",
        patched(CLI, |bytes, local, _| {
            let data = local + 30 + CLI.len();
            for byte in &mut bytes[data + 10..data + 40] {
                *byte ^= 0x55;
            }
        }),
        entry(CLI, "has corrupt compressed data"),
    ));

    // Bytes outside the structure.
    let mut trailing = base().bytes.clone();
    trailing.extend_from_slice(b"#!/bin/sh\nid\n");
    cases.push(refused(
        "data-after-the-end-record",
        trailing,
        "has 13 bytes of data after the end of central directory record",
    ));
    // A self-extracting-style prefix, every offset shifted to match.
    let prefix = b"#!/bin/sh\nexec id\n";
    let mut shifted = base().bytes.clone();
    for header in central_headers(&shifted) {
        let offset = get_u32(&shifted, header + 42);
        put_u32(&mut shifted, header + 42, offset + prefix.len() as u32);
    }
    let end = end_record(&shifted);
    let directory = get_u32(&shifted, end + 16);
    put_u32(&mut shifted, end + 16, directory + prefix.len() as u32);
    shifted.splice(0..0, prefix.iter().copied());
    cases.push(refused(
        "data-before-the-first-entry",
        shifted,
        "has 18 unlisted bytes before entry \"manifest.json\"",
    ));
    let mut commented = base().bytes.clone();
    let end = end_record(&commented);
    put_u16(&mut commented, end + 20, 5);
    commented.extend_from_slice(b"hello");
    cases.push(refused(
        "archive-comment",
        commented,
        "has an archive comment",
    ));

    // ZIP64 end records.
    let mut bytes = base().bytes.clone();
    let end = end_record(&bytes);
    let mut records = zip64_records(&bytes, end, 0);
    put_u64(&mut records, 56 + 8, 12_345);
    bytes.splice(end..end, records);
    cases.push(refused(
        "zip64-locator-points-elsewhere",
        bytes,
        "has a bad zip64 end record (the locator does not point right before itself)",
    ));
    let mut bytes = base().bytes.clone();
    let end = end_record(&bytes);
    let entries = u64::from(get_u16(&bytes, end + 10)) + 1;
    bytes.splice(end..end, zip64_records(&base().bytes, end, entries));
    cases.push(refused(
        "zip64-end-record-disagrees",
        bytes,
        "has a bad zip64 end record (it disagrees with the end of central directory record)",
    ));
    let mut bytes = base().bytes.clone();
    let end = end_record(&bytes);
    bytes.splice(end..end, zip64_records(&base().bytes, end, 200_000));
    let end = end_record(&bytes);
    put_u16(&mut bytes, end + 8, u16::MAX);
    put_u16(&mut bytes, end + 10, u16::MAX);
    cases.push(refused(
        "too-many-entries",
        bytes,
        "has 200000 entries, more than the limit of 100000",
    ));
    // A ZIP64 field with a value the 32-bit fields do not ask for.
    let mut bytes = derived(|draft| draft.entry(CLI).large = true);
    let (_, central) = header_offsets(&bytes, CLI);
    let size = Draft::base().data(CLI).len() as u32;
    put_u32(&mut bytes, central + 24, size);
    cases.push(refused(
        "zip64-extra-field-malformed",
        bytes,
        entry(CLI, "has a malformed zip64 extra field"),
    ));

    // Truncated and corrupt files.
    let whole = &base().bytes;
    cases.push(refused(
        "truncated-in-half",
        whole[..whole.len() / 2].to_vec(),
        "is not a zip archive (no end of central directory record)",
    ));
    cases.push(refused(
        "truncated-end-record",
        whole[..whole.len() - 5].to_vec(),
        "is not a zip archive",
    ));
    let mut bytes = whole.clone();
    let end = end_record(&bytes);
    let count = get_u16(&bytes, end + 10) + 1;
    put_u16(&mut bytes, end + 8, count);
    put_u16(&mut bytes, end + 10, count);
    cases.push(refused(
        "end-record-counts-one-entry-more",
        bytes,
        "truncated central directory",
    ));
    cases.push(refused(
        "random-bytes",
        noise(4096),
        "is not a zip archive (no end of central directory record)",
    ));
    let mut bytes = noise(4096);
    let mut end = vec![0x50, 0x4b, 0x05, 0x06, 0, 0, 0, 0, 1, 0, 1, 0];
    end.extend_from_slice(&100u32.to_le_bytes());
    end.extend_from_slice(&3996u32.to_le_bytes());
    end.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(&end);
    cases.push(refused(
        "random-bytes-with-an-end-record",
        bytes,
        "central directory entry 0 has no signature",
    ));
    cases.push(refused("empty-file", Vec::new(), "is not a zip archive"));
    cases
}
