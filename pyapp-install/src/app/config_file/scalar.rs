//! One configuration value as it is written into the file, so that the app reads back
//! exactly that value: YAML read the same by YAML 1.1 (PyYAML) and 1.2 parsers, INI as
//! configparser reads it, floats as Python's `float()` reads them.

use pyapp_bundle::config_spec::ConfigValue;

use super::given::parse_yaml_values;
use super::ini;

/// `value` in YAML, read back the same by YAML 1.2 parsers and by YAML 1.1 ones (PyYAML,
/// which most apps use): a string is plain when it reads back as itself and cannot be a
/// 1.1 boolean, null, number or date (`no`, `~`, `0777`, `2001-12-14`), otherwise
/// double-quoted (JSON's escapes are YAML's).
pub(super) fn yaml_scalar(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Boolean(value) => value.to_string(),
        ConfigValue::Integer(value) => value.to_string(),
        ConfigValue::Number(value) => float_text(*value),
        ConfigValue::String(text) => {
            const YAML_1_1_WORDS: [&str; 12] = [
                "y", "n", "yes", "no", "on", "off", "true", "false", "null", "~", "=", "<<",
            ];
            let plain = !text
                .starts_with(|c: char| c.is_ascii_digit() || matches!(c, '+' | '-' | '.'))
                && !YAML_1_1_WORDS.contains(&text.to_ascii_lowercase().as_str())
                && parse_yaml_values(&format!("k: {text}\n"), "value")
                    .is_ok_and(|read| read.len() == 1 && read.get("k") == Some(value));
            if plain {
                text.clone()
            } else {
                serde_json::Value::String(text.clone()).to_string()
            }
        }
    }
}

/// `value` after `key = ` in INI, or `None` when INI cannot carry it unchanged.
pub(super) fn ini_scalar(value: &ConfigValue) -> Option<String> {
    match value {
        ConfigValue::Boolean(value) => Some(value.to_string()),
        ConfigValue::Integer(value) => Some(value.to_string()),
        ConfigValue::Number(value) => Some(float_text(*value)),
        ConfigValue::String(text) => ini::render_value(text),
    }
}

/// A float that YAML 1.1 and 1.2 and Python's `float()` all read back as the same float:
/// always with a `.`, and a signed exponent (`1.0e+16`, not Rust's `1e16`).
pub(super) fn float_text(value: f64) -> String {
    let text = format!("{value:?}");
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let dot = if mantissa.contains('.') { "" } else { ".0" };
            let sign = if exponent.starts_with('-') { "" } else { "+" };
            format!("{mantissa}{dot}e{sign}{exponent}")
        }
        None => text,
    }
}

/// A help line as a comment: control characters (and Unicode line breaks) become spaces.
pub(super) fn one_line(help: &str) -> String {
    help.chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
                ' '
            } else {
                c
            }
        })
        .collect()
}
