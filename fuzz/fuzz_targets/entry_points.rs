//! A wheel's `entry_points.txt` on any text; every console script parsed gets a launcher.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use pyapp_venv::wheel_install::entry_points::parse_scripts;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(scripts) = parse_scripts(text) else {
        return;
    };
    for script in scripts {
        let launcher = script.launcher(Path::new("/applications/app/venv/bin/python"));
        // Nothing from the wheel may start a line of its own in the launcher's source.
        let line_ends = launcher.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
        assert_eq!(line_ends, 6, "{script:?}");
    }
});
