//! The safe bundle reader on arbitrary bytes: `Bundle::open` must refuse or accept without
//! panicking, and an accepted bundle must stream every entry (and its signature) cleanly.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::reader::{Bundle, Limits};

/// Small enough that a declared size never makes the fuzzer run out of memory or time.
const LIMITS: Limits = Limits {
    max_entries: 1_000,
    max_entry_size: 1 << 20,
    max_total_size: 4 << 20,
};

fuzz_target!(|data: &[u8]| {
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return;
    };
    if file.write_all(data).and_then(|()| file.flush()).is_err() {
        return;
    }
    let Ok(mut bundle) = Bundle::open(file.path(), &LIMITS) else {
        return;
    };
    let names: Vec<String> = bundle.entries().iter().map(|e| e.name.clone()).collect();
    for name in &names {
        let _ = bundle.read_small(name, 64 * 1024);
        let mut sink = Vec::new();
        let copied = bundle.copy_entry_to(name, &mut sink);
        if let Ok(size) = copied {
            assert_eq!(size, sink.len() as u64, "copy_entry_to size of {name}");
        }
    }
    let _ = bundle.signature();
    let _ = pyapp_bundle::manifest::Manifest::parse(bundle.manifest_bytes());
});
