//! The JSON, TOML and `.env` forms of the config file (`file-format: json | toml | env`,
//! FORMAT.md 4.1), read back exactly as they are written: JSON and TOML values keep their
//! own types, `.env` values (all text) are typed by their field's widget, as INI's are.

use pyapp_bundle::config_spec::ConfigValue;

use super::scalar::float_text;
use super::ConfigValues;

/// A config file that cannot be read: what is wrong, with the line when known.
pub type FormatError = String;

/// The values of a JSON config file: one object of scalars.
pub fn parse_json(text: &str) -> Result<ConfigValues, FormatError> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(text).map_err(|err| format!("not a JSON object of values: {err}"))?;
    object
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                serde_json::Value::Bool(value) => ConfigValue::Boolean(value),
                serde_json::Value::String(text) => ConfigValue::String(text),
                serde_json::Value::Number(number) => match number.as_i64() {
                    Some(integer) => ConfigValue::Integer(integer),
                    None => ConfigValue::Number(number.as_f64().unwrap_or(f64::NAN)),
                },
                _ => return Err(format!("{key}: not a string, number or boolean")),
            };
            Ok((key, value))
        })
        .collect()
}

/// `value` in JSON, and in TOML: JSON's string escapes are TOML's basic string escapes,
/// and its numbers and booleans TOML's.
pub fn json_scalar(value: &ConfigValue) -> String {
    match value {
        ConfigValue::Boolean(value) => value.to_string(),
        ConfigValue::Integer(value) => value.to_string(),
        ConfigValue::Number(value) => float_text(*value),
        ConfigValue::String(text) => serde_json::Value::String(text.clone()).to_string(),
    }
}

/// The values of a TOML config file: top-level `key = value` lines of scalars.
pub fn parse_toml(text: &str) -> Result<ConfigValues, FormatError> {
    let table: toml::Table = text
        .parse()
        .map_err(|err: toml::de::Error| format!("not TOML: {}", err.message()))?;
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::Boolean(value) => ConfigValue::Boolean(value),
                toml::Value::Integer(value) => ConfigValue::Integer(value),
                toml::Value::Float(value) => ConfigValue::Number(value),
                toml::Value::String(text) => ConfigValue::String(text),
                _ => return Err(format!("{key}: not a string, number or boolean")),
            };
            Ok((key, value))
        })
        .collect()
}

/// The `KEY=VALUE` pairs of a `.env` file, in file order, as python-dotenv and shells read
/// what [`env_scalar`] writes: `#` comments, blank lines, optional `export `, a value bare
/// or in single quotes (taken literally).
pub fn parse_env(text: &str) -> Result<Vec<(String, String)>, FormatError> {
    let mut pairs = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: not KEY=VALUE", index + 1))?;
        let value = match value.strip_prefix('\'') {
            Some(quoted) => quoted
                .strip_suffix('\'')
                .filter(|inner| !inner.contains('\''))
                .ok_or_else(|| format!("line {}: an unterminated quote", index + 1))?,
            None => value,
        };
        pairs.push((key.trim().to_owned(), value.to_owned()));
    }
    Ok(pairs)
}

/// `value` after `KEY=` in a `.env` file, or `None` when the format cannot carry it
/// unchanged (a `'` or a line break). Strings are single-quoted: nothing in them is
/// expanded by python-dotenv or a shell.
pub fn env_scalar(value: &ConfigValue) -> Option<String> {
    match value {
        ConfigValue::Boolean(value) => Some(value.to_string()),
        ConfigValue::Integer(value) => Some(value.to_string()),
        ConfigValue::Number(value) => Some(float_text(*value)),
        ConfigValue::String(text) if text.contains(['\'', '\n', '\r']) => None,
        ConfigValue::String(text) => Some(format!("'{text}'")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn values() -> Vec<(&'static str, ConfigValue)> {
        vec![
            ("flag", ConfigValue::Boolean(true)),
            ("count", ConfigValue::Integer(-3)),
            ("ratio", ConfigValue::Number(1.0e16)),
            (
                "text",
                ConfigValue::String("a \"quoted\" \\ line\n\ttab ü".into()),
            ),
        ]
    }

    #[test]
    fn json_and_toml_read_back_what_they_write() {
        let json = format!(
            "{{{}}}",
            values()
                .iter()
                .map(|(key, value)| format!("\"{key}\": {}", json_scalar(value)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let toml: String = values()
            .iter()
            .map(|(key, value)| format!("{key} = {}\n", json_scalar(value)))
            .collect();
        let expected: ConfigValues = values()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        assert_eq!(parse_json(&json).unwrap(), expected);
        assert_eq!(parse_toml(&toml).unwrap(), expected);
        assert_eq!(
            parse_toml("[section]\nx = 1\n").unwrap_err(),
            "section: not a string, number or boolean"
        );
        assert!(parse_json("[1]")
            .unwrap_err()
            .starts_with("not a JSON object of values"));
    }

    #[test]
    fn env_files_carry_single_quoted_strings_literally() {
        assert_eq!(
            env_scalar(&ConfigValue::String("$HOME ${X} \"q\" \\".into())).unwrap(),
            "'$HOME ${X} \"q\" \\'"
        );
        assert_eq!(env_scalar(&ConfigValue::String("it's".into())), None);
        assert_eq!(env_scalar(&ConfigValue::String("a\nb".into())), None);
        assert_eq!(
            parse_env("# c\n\nexport A='x = $y'\nB=2\n").unwrap(),
            vec![
                ("A".to_owned(), "x = $y".to_owned()),
                ("B".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(
            parse_env("A='open\n").unwrap_err(),
            "line 1: an unterminated quote"
        );
    }
}
