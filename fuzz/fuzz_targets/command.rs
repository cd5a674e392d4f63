//! Commands of services, tasks and hooks: parsed from a line and from a list (the input
//! split on NUL bytes), then rendered with every placeholder given a value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::command::{Command, Placeholder, PlaceholderValues};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let fixed: PlaceholderValues = Placeholder::ALL
        .iter()
        .map(|p| (*p, format!("/v/{}", p.name())))
        .collect();
    let check = |command: Command| {
        let _ = command.program();
        let mut values = fixed.clone();
        values.set_config(
            command
                .config_keys()
                .into_iter()
                .map(|key| (key.to_owned(), format!("v-{key}")))
                .collect(),
        );
        let rendered = command.render(&values).expect("every placeholder has a value");
        assert_eq!(rendered.len(), command.written().len());
    };
    if let Ok(command) = Command::from_line(text) {
        check(command);
    }
    let args = text.split('\0').map(str::to_owned).collect();
    if let Ok(command) = Command::from_args(args) {
        check(command);
    }
});
