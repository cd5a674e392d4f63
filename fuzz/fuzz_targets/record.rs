//! A wheel's RECORD on any text; what parses must survive a round trip through
//! `write_record`, which writes the RECORD of what was installed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_venv::wheel_install::record::{parse_record, write_record};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rows) = parse_record(text) else {
        return;
    };
    let written = write_record(&rows);
    let again = parse_record(&written).expect("write_record output parses");
    assert_eq!(again, rows);
});
