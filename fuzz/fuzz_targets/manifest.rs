//! `manifest.json` parsing: any bytes are refused or accepted without panicking, and an
//! accepted manifest survives a round trip through its canonical bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::manifest::{check_entry_name, folded_name, Manifest};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = check_entry_name(text);
        let _ = folded_name(text);
    }
    let Ok(manifest) = Manifest::parse(data) else {
        return;
    };
    let bytes = manifest.to_bytes();
    let again = Manifest::parse(&bytes).expect("a manifest's own bytes parse");
    assert_eq!(again.files(), manifest.files());
    for entry in manifest.files() {
        assert_eq!(entry.sha256_hex().len(), 64);
    }
});
