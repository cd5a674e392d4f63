//! Wheel file names (and distribution names) on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::wheel_name::{is_valid_distribution_name, normalize_name, WheelName};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = is_valid_distribution_name(text);
    let _ = normalize_name(text);
    if let Ok(name) = WheelName::parse(text) {
        let _ = name.tags();
        let _ = name.build_tag();
        let _ = name.version();
        let _ = name.matches_dir_stem(name.name());
        assert_eq!(name.file_name(), text);
    }
});
