//! `metadata.yaml` (bundle) and the project's metadata (pyapp-build's input) on any text:
//! refused with a located error or accepted, never a panic, hang or blow-up.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::metadata::{Metadata, ProjectMetadata};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(metadata) = Metadata::parse(text, "metadata.yaml") {
        let _ = metadata.validate();
        for (_, command) in metadata.hooks.commands() {
            let _ = command.placeholders();
        }
        if let Ok(yaml) = metadata.to_yaml() {
            // What the builder writes, the installer must read back.
            let again = Metadata::parse(&yaml, "metadata.yaml");
            assert!(again.is_ok(), "re-parsing to_yaml failed: {again:?}\n{yaml}");
        }
    }
    if let Ok(project) = ProjectMetadata::parse(text, "metadata.yaml") {
        let _ = project.module();
        let _ = project.local_dependencies().count();
    }
});
