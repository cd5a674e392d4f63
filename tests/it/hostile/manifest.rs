//! manifest.json against the entries: wrong sha256 or size, files it does not list, files
//! it lists that are not there, a newer format, and manifests that are not canonical.

use super::bundle::{base, Draft, Entry, ManifestChoice};
use super::{refused, Case};

const CLI: &str = "src/src/hello/cli.py";

/// The base bundle with `change` applied to its entries and its own manifest kept.
fn under_the_old_manifest(change: impl FnOnce(&mut Draft)) -> Vec<u8> {
    let mut draft = Draft::base();
    draft.manifest = ManifestChoice::Original;
    change(&mut draft);
    draft.to_bytes()
}

/// The base bundle with manifest.json replaced by `manifest`.
fn with_manifest(manifest: String) -> Vec<u8> {
    let mut draft = Draft::base();
    draft.manifest = ManifestChoice::Bytes(manifest.into_bytes());
    draft.to_bytes()
}

fn base_manifest() -> String {
    String::from_utf8(base().manifest.clone()).expect("utf-8 manifest")
}

pub fn cases() -> Vec<Case> {
    let cli_size = Draft::base().data(CLI).len();
    let wheel = Draft::base().wheel_name("hello-");
    let manifest = base_manifest();
    let first_row_end = manifest.find("},").expect("two rows") + 2;
    let first_row = manifest["{\"format\":1,\"files\":[".len()..first_row_end].to_owned();
    let mut cases = vec![
        refused(
            "sha256-mismatch-source",
            under_the_old_manifest(|draft| {
                // Same size, one byte changed.
                let data = &mut draft.entry(CLI).data;
                let at = data.iter().position(|b| *b == b'h').expect("an h");
                data[at] = b'H';
            }),
            format!("entry {CLI:?} fails its sha256 check"),
        ),
        refused(
            "sha256-mismatch-wheel",
            under_the_old_manifest(|draft| {
                let data = &mut draft.entry(&wheel).data;
                let middle = data.len() / 2;
                data[middle] ^= 0x01;
            }),
            format!("entry {wheel:?} fails its sha256 check"),
        ),
        refused(
            "size-mismatch",
            under_the_old_manifest(|draft| {
                draft
                    .entry(CLI)
                    .data
                    .extend_from_slice(b"\nimport os; os.system('id')\n");
            }),
            format!(
                "entry {CLI:?} declares {} bytes but the manifest says {cli_size}",
                cli_size + 28
            ),
        ),
        refused(
            "file-not-in-the-manifest",
            under_the_old_manifest(|draft| {
                draft.add(Entry::file("src/src/hello/evil.py", b"import os\n"));
            }),
            "entry \"src/src/hello/evil.py\" is not listed in manifest.json",
        ),
        refused(
            "manifest-lists-a-missing-file",
            under_the_old_manifest(|draft| {
                draft.remove(CLI);
            }),
            format!("entry {CLI:?} is listed in manifest.json but missing from the bundle"),
        ),
        refused(
            "manifest-format-2",
            with_manifest(manifest.replacen("\"format\":1", "\"format\":2", 1)),
            "bundle format 2 is newer than this tool supports (1)",
        ),
        refused(
            "manifest-format-0",
            with_manifest(manifest.replacen("\"format\":1", "\"format\":0", 1)),
            "manifest.json: bundle format 0 is not supported (expected 1)",
        ),
        refused(
            "manifest-not-canonical",
            with_manifest(manifest.replacen(",\"files\"", ", \"files\"", 1)),
            "manifest.json is not in canonical form",
        ),
        refused(
            "manifest-unknown-field",
            with_manifest(manifest.replacen(
                "{\"format\":1,",
                "{\"format\":1,\"trusted\":true,",
                1,
            )),
            "manifest.json: unknown field `trusted`",
        ),
        refused(
            "manifest-not-json",
            with_manifest("format = 1\n".to_owned()),
            "manifest.json: expected ident at line 1 column 2",
        ),
        refused(
            "manifest-lists-a-path-twice",
            with_manifest(manifest.replacen(&first_row, &format!("{first_row}{first_row}"), 1)),
            "manifest.json: path \"configuration.yaml\" is listed twice",
        ),
        refused(
            "manifest-lists-an-escaping-path",
            with_manifest(manifest.replacen(
                "{\"format\":1,\"files\":[",
                "{\"format\":1,\"files\":[{\"path\":\"../x\",\"sha256\":\"0000000000000000000000000000000000000000000000000000000000000000\",\"size\":1},",
                1,
            )),
            "manifest.json: path \"../x\"",
        ),
        refused(
            "manifest-uppercase-sha256",
            with_manifest({
                let at = manifest.find("\"sha256\":\"").expect("a sha256") + 10;
                let mut upper = manifest.clone();
                upper.replace_range(at..at + 64, &manifest[at..at + 64].to_uppercase());
                upper
            }),
            "is not 64 lowercase hex digits",
        ),
    ];

    // 17 MiB of JSON whitespace: refused on its declared size, before it is inflated.
    let mut padded = manifest.clone().into_bytes();
    padded.splice(1..1, std::iter::repeat_n(b' ', 17 << 20));
    let size = padded.len();
    let mut draft = Draft::base();
    draft.manifest = ManifestChoice::Bytes(padded);
    cases.push(refused(
        "manifest-too-large",
        draft.to_bytes(),
        format!("manifest.json is {size} bytes, more than the limit of 16777216"),
    ));
    cases
}
