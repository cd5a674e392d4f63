//! The values given for an app's configuration (`--set KEY=VALUE`, `--config FILE`, or the
//! API's form), typed by each field's widget and refused when the key is unknown, before
//! they are merged into the file.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result};
use pyapp_bundle::config_spec::{ConfigSpec, ConfigValue, Field, Widget};
use pyapp_bundle::yaml::{parse_unversioned, MAX_YAML_BYTES};
use pyapp_cli::Refusal;

use super::{ConfigValues, GivenValues, Source};

impl GivenValues {
    /// The values of `--config FILE` (a YAML mapping, typed as YAML types it) and then of
    /// each `--set KEY=VALUE` (typed by the field's widget: integers, numbers and `true`/
    /// `false` are parsed, anything else is a string). Unknown keys are refused.
    pub fn parse(spec: &ConfigSpec, set: &[String], config: Option<&Path>) -> Result<Self> {
        let mut values = BTreeMap::new();
        if let Some(file) = config {
            for (key, value) in read_config_file(file)? {
                known_field(spec, &key).map_err(|refusal| {
                    refusal.with_hint(format!("the key comes from `{}`", file.display()))
                })?;
                values.insert(key, (value, Source::File(file.to_owned())));
            }
        }
        for assignment in set {
            let Some((key, text)) = assignment.split_once('=') else {
                return Err(Refusal::new(format!(
                    "config: --set {assignment:?}: expected KEY=VALUE"
                ))
                .with_hint("e.g. --set workers=4")
                .into());
            };
            let field = known_field(spec, key)?;
            values.insert(key.to_owned(), (typed(field.widget, text), Source::Set));
        }
        Ok(GivenValues { values })
    }

    /// The rule each given value breaks, by key (secrets masked), as the write would say
    /// it: for showing every problem of a form at once, next to its field.
    pub fn problems(&self, spec: &ConfigSpec) -> BTreeMap<String, String> {
        self.values
            .iter()
            .filter_map(|(key, (value, _))| {
                let field = spec.field(key)?;
                let error = field.check(value).err()?;
                Some((
                    key.clone(),
                    super::masked_problem(field, value, &error.problem),
                ))
            })
            .collect()
    }

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The field for `key`, or the refusal naming the known keys.
pub(super) fn known_field<'a>(spec: &'a ConfigSpec, key: &str) -> Result<&'a Field, Refusal> {
    spec.field(key).ok_or_else(|| {
        let known: Vec<&str> = spec.fields.iter().map(|field| field.key.as_str()).collect();
        let known = if known.is_empty() {
            "this app has none".to_owned()
        } else {
            format!("known keys: {}", known.join(", "))
        };
        Refusal::new(format!(
            "config: {key}: not a configuration key of this app ({known})"
        ))
    })
}

/// A `--config FILE`: a YAML mapping of keys to values, at most 1 MiB.
pub(super) fn read_config_file(path: &Path) -> Result<ConfigValues> {
    let file = File::open(path).map_err(|err| {
        Refusal::new(format!("cannot read `{}`: {err}", path.display()))
            .with_hint("--config takes a YAML file of `key: value` lines")
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_YAML_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Refusal::new(format!("`{}` is not UTF-8", path.display())))?;
    parse_yaml_values(&text, &path.display().to_string()).map_err(|message| {
        Refusal::new(message)
            .with_hint("--config takes a YAML file of `key: value` lines")
            .into()
    })
}

/// A YAML mapping of configuration values; an empty document (or comments only) is empty.
pub(super) fn parse_yaml_values(text: &str, label: &str) -> Result<ConfigValues, String> {
    parse_unversioned::<Option<ConfigValues>>(text, label)
        .map(Option::unwrap_or_default)
        .map_err(|err| err.to_string())
}

/// `text` as a value of `widget`: an integer, a number or a boolean when it parses as one
/// (`true`/`false` only), otherwise the string itself (which the field's check then names).
pub(super) fn typed(widget: Widget, text: &str) -> ConfigValue {
    let string = || ConfigValue::String(text.to_owned());
    match widget {
        Widget::Integer | Widget::Port => {
            text.parse().map_or_else(|_| string(), ConfigValue::Integer)
        }
        Widget::Number => match (text.parse::<i64>(), text.parse::<f64>()) {
            (Ok(integer), _) => ConfigValue::Integer(integer),
            (_, Ok(number)) if number.is_finite() => ConfigValue::Number(number),
            _ => string(),
        },
        Widget::Boolean => match text {
            "true" => ConfigValue::Boolean(true),
            "false" => ConfigValue::Boolean(false),
            _ => string(),
        },
        _ => string(),
    }
}
