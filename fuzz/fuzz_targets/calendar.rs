//! The native `OnCalendar=` checker on any text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::calendar::{check_calendar, Schedule};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let checked = check_calendar(text);
    assert_eq!(checked.is_ok(), Schedule::new(text).is_ok());
});
