//! Commands of services, tasks and hooks: parsed from a line and from a list (the input
//! split on NUL bytes), then rendered with every placeholder given a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::command::{Command, Placeholder, PlaceholderValues};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let values: PlaceholderValues = Placeholder::ALL
        .iter()
        .map(|p| (*p, format!("/v/{}", p.name())))
        .collect();
    if let Ok(command) = Command::from_line(text) {
        let _ = command.program();
        let _ = command.placeholders();
        let rendered = command.render(&values).expect("every placeholder has a value");
        assert_eq!(rendered.len(), command.written().len());
    }
    let args = text.split('\0').map(str::to_owned).collect();
    if let Ok(command) = Command::from_args(args) {
        let _ = command.placeholders();
        let rendered = command.render(&values).expect("every placeholder has a value");
        assert_eq!(rendered.len(), command.written().len());
    }
});
