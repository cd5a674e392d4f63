//! `configuration.yaml` on any text, then a configuration checked against it: the input is
//! the spec, optionally followed by a NUL byte and a YAML mapping of values.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use pyapp_bundle::config_spec::{ConfigSpec, ConfigValue};
use pyapp_bundle::yaml::parse_unversioned;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (spec_text, values_text) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(spec) = ConfigSpec::parse(spec_text, "configuration.yaml") else {
        return;
    };
    let _ = spec.has_secrets();
    let _ = spec.ini_section();
    if let Ok(values) =
        parse_unversioned::<BTreeMap<String, ConfigValue>>(values_text, "config.yaml")
    {
        let _ = spec.validate_config(&values);
        for (key, value) in &values {
            let _ = spec.validate_value(key, value);
        }
    }
});
