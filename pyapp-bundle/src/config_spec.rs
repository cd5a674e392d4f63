//! configuration.yaml (FORMAT.md 4): the spec of an app's configuration, and the values.
//!
//! pyapp-build checks the spec itself (keys, bounds, defaults); pyapp-install checks the values
//! given at install time and kept across upgrades against it, with errors naming key and rule.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::ConfigKey;
use crate::yaml::{join_path, parse_document, Issue, SchemaError};
use crate::FORMAT_VERSION;

/// The longest `help`.
const MAX_HELP: usize = 500;

/// The largest compiled `regex`, so a spec cannot make the installer build a huge automaton.
const MAX_REGEX_BYTES: usize = 1 << 20;

/// configuration.yaml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ConfigSpec {
    pub format: u32,
    #[serde(default)]
    pub file_format: FileFormat,
    /// The INI section holding the keys; see [`ConfigSpec::ini_section`].
    #[serde(default)]
    pub ini_section: Option<String>,
    pub fields: Vec<Field>,
    /// Environment variables of the app's processes, each the value of a field (by key).
    #[serde(default)]
    pub environment: BTreeMap<String, ConfigKey>,
}

/// Variables the app's processes get from pyapp itself (FORMAT.md 7), which `environment`
/// may not set.
const RESERVED_VARIABLES: [&str; 5] = ["PATH", "HOME", "TMPDIR", "VIRTUAL_ENV", "PYTHONUNBUFFERED"];

/// The longest environment variable name.
const MAX_VARIABLE_NAME: usize = 128;

/// The format of the installed config file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileFormat {
    #[default]
    Yaml,
    Ini,
    Json,
    Toml,
    Env,
}

impl FileFormat {
    /// Every format, in the order an existing file is looked for after the spec's own.
    pub const ALL: [FileFormat; 5] = [
        FileFormat::Yaml,
        FileFormat::Ini,
        FileFormat::Json,
        FileFormat::Toml,
        FileFormat::Env,
    ];
}

/// One configuration key and its rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Field {
    pub key: ConfigKey,
    pub widget: Widget,
    #[serde(default)]
    pub default: Option<ConfigValue>,
    /// Must have a value once installed (from the default, `--set`, or `generate`).
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub help: Option<String>,
    /// The whole value must match (Rust regex syntax).
    #[serde(default)]
    pub regex: Option<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub min_length: Option<u32>,
    #[serde(default)]
    pub max_length: Option<u32>,
    #[serde(default)]
    pub choices: Option<Vec<String>>,
    /// `secret` widget only: the installer makes a random value.
    #[serde(default)]
    pub generate: bool,
    /// Masked when shown; makes the config file 0600.
    #[serde(default)]
    pub secret: bool,
}

/// How a value is entered and what type it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Widget {
    String,
    Text,
    Secret,
    Integer,
    Number,
    Boolean,
    Choice,
    Url,
    Email,
    Path,
    Port,
    Duration,
}

/// A configuration value as found in YAML: `true`, `12`, `1.5` or a string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigValue {
    Boolean(bool),
    Integer(i64),
    Number(f64),
    String(String),
}

impl ConfigValue {
    /// The value as an environment variable or a command argument carries it: `true`, `2`,
    /// `0.5`, or the string itself.
    pub fn as_text(&self) -> String {
        match self {
            ConfigValue::String(text) => text.clone(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for ConfigValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigValue::Boolean(value) => write!(f, "{value}"),
            ConfigValue::Integer(value) => write!(f, "{value}"),
            ConfigValue::Number(value) => write!(f, "{value}"),
            ConfigValue::String(value) => write!(f, "{value:?}"),
        }
    }
}

/// A configuration value that breaks its field's rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    /// The rule broken, e.g. `100 is above max 64`.
    pub problem: String,
}

/// The optional rules a field may have, to check they fit its widget.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Rule {
    Regex,
    MinMax,
    Length,
    Choices,
    Generate,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Rule::Regex => "regex",
            Rule::MinMax => "min/max",
            Rule::Length => "min-length/max-length",
            Rule::Choices => "choices",
            Rule::Generate => "generate",
        }
    }
}

impl Widget {
    fn name(self) -> &'static str {
        match self {
            Widget::String => "string",
            Widget::Text => "text",
            Widget::Secret => "secret",
            Widget::Integer => "integer",
            Widget::Number => "number",
            Widget::Boolean => "boolean",
            Widget::Choice => "choice",
            Widget::Url => "url",
            Widget::Email => "email",
            Widget::Path => "path",
            Widget::Port => "port",
            Widget::Duration => "duration",
        }
    }

    /// The optional rules this widget allows (FORMAT.md 4, the widget table).
    fn allows(self, rule: Rule) -> bool {
        match self {
            Widget::String | Widget::Text => matches!(rule, Rule::Regex | Rule::Length),
            Widget::Secret => matches!(rule, Rule::Regex | Rule::Length | Rule::Generate),
            Widget::Integer | Widget::Number | Widget::Port => rule == Rule::MinMax,
            Widget::Choice => rule == Rule::Choices,
            Widget::Url | Widget::Email | Widget::Path => rule == Rule::Regex,
            Widget::Boolean | Widget::Duration => false,
        }
    }
}

impl ConfigSpec {
    /// Parse and check configuration.yaml; `file` labels errors.
    pub fn parse(text: &str, file: &str) -> Result<ConfigSpec, SchemaError> {
        let spec: ConfigSpec = parse_document(text, file)?;
        spec.validate().map_err(|issue| issue.locate(text, file))?;
        Ok(spec)
    }

    /// The field for `key`, if the spec has one.
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.key.as_str() == key)
    }

    /// The field whose key is `key` ignoring ASCII case (keys are unique that way).
    pub fn field_ignoring_case(&self, key: &str) -> Option<&Field> {
        self.fields
            .iter()
            .find(|field| field.key.as_str().eq_ignore_ascii_case(key))
    }

    /// The INI section holding the keys (`app` unless the spec says otherwise).
    pub fn ini_section(&self) -> &str {
        self.ini_section.as_deref().unwrap_or("app")
    }

    /// Whether the installed config file holds a secret (and so is written 0600).
    pub fn has_secrets(&self) -> bool {
        self.fields.iter().any(Field::is_secret)
    }

    /// Check one value against the rules of its field.
    pub fn validate_value(&self, key: &str, value: &ConfigValue) -> Result<(), ConfigError> {
        let field = self.field(key).ok_or_else(|| ConfigError {
            key: key.to_owned(),
            problem: "not a configuration key of this app".to_owned(),
        })?;
        field.check(value)
    }

    /// Check a complete configuration: only known keys, every required key set, every value
    /// valid. Errors come in the order of the spec's fields.
    pub fn validate_config(
        &self,
        values: &BTreeMap<String, ConfigValue>,
    ) -> Result<(), ConfigError> {
        if let Some(unknown) = values.keys().find(|key| self.field(key).is_none()) {
            return Err(ConfigError {
                key: unknown.clone(),
                problem: "not a configuration key of this app".to_owned(),
            });
        }
        for field in &self.fields {
            match values.get(field.key.as_str()) {
                Some(value) => self.validate_value(field.key.as_str(), value)?,
                None if field.required => {
                    return Err(ConfigError {
                        key: field.key.to_string(),
                        problem: "required but not set".to_owned(),
                    })
                }
                None => {}
            }
        }
        Ok(())
    }

    /// The variables `environment` sets from `values` (a complete configuration), sorted by
    /// name; a field without a value sets nothing. Values are written as the config file
    /// shows them (`true`, `2`, `0.5`, the string itself).
    pub fn environment_values(
        &self,
        values: &BTreeMap<String, ConfigValue>,
    ) -> BTreeMap<String, String> {
        self.environment
            .iter()
            .filter_map(|(name, key)| Some((name.clone(), values.get(key.as_str())?.as_text())))
            .collect()
    }

    /// The values `{config.KEY}` takes in commands, by key, from `values` (a complete
    /// configuration): every field that has a value and may be on a command line (not a
    /// secret, not a `text` field: the metadata is checked for those), written as in
    /// [`ConfigSpec::environment_values`].
    pub fn command_values(
        &self,
        values: &BTreeMap<String, ConfigValue>,
    ) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter(|field| !field.is_secret() && field.widget != Widget::Text)
            .filter_map(|field| {
                let key = field.key.as_str();
                Some((key.to_owned(), values.get(key)?.as_text()))
            })
            .collect()
    }

    /// The build-time rules of FORMAT.md 4.
    fn validate(&self) -> Result<(), Issue> {
        if self.format != FORMAT_VERSION {
            return Err(Issue::new(
                "format",
                format!(
                    "format {} is not supported (expected {FORMAT_VERSION})",
                    self.format
                ),
            ));
        }
        match (&self.ini_section, self.file_format) {
            (Some(_), format) if format != FileFormat::Ini => {
                return Err(Issue::new("ini-section", "only used with file-format: ini"))
            }
            (Some(section), _)
                if section.is_empty()
                    || !section
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) =>
            {
                return Err(Issue::new(
                    "ini-section",
                    format!("{section:?} is not a section name (letters, digits, \"_-.\")"),
                ))
            }
            _ => {}
        }
        let mut keys = BTreeSet::new();
        for (index, field) in self.fields.iter().enumerate() {
            let path = format!("fields[{index}]");
            if !keys.insert(field.key.as_str().to_ascii_lowercase()) {
                return Err(Issue::new(
                    join_path(&path, "key"),
                    format!(
                        "{} is already a key (keys are compared ignoring case: INI and .env \
                         files do not tell secret_key from SECRET_KEY)",
                        field.key
                    ),
                ));
            }
            field.validate(&path)?;
        }
        for (name, key) in &self.environment {
            let path = format!("environment.{name}");
            check_variable_name(name).map_err(|problem| Issue::new("environment", problem))?;
            let field = self
                .field(key.as_str())
                .ok_or_else(|| Issue::new(&path, format!("{key} is not a key of fields")))?;
            if field.widget == Widget::Text {
                return Err(Issue::new(
                    &path,
                    format!("{key} is a text field: its value may span lines, which a variable cannot carry"),
                ));
            }
        }
        Ok(())
    }
}

/// An `environment` name: `[A-Z_][A-Z0-9_]*`, none that pyapp sets itself.
fn check_variable_name(name: &str) -> Result<(), String> {
    let valid = name.len() <= MAX_VARIABLE_NAME
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(format!(
            "{name:?} is not a variable name (expected [A-Z_][A-Z0-9_]*, at most {MAX_VARIABLE_NAME} characters)"
        ));
    }
    if name.starts_with("PYAPP_") || RESERVED_VARIABLES.contains(&name) {
        return Err(format!(
            "{name} is set by pyapp-install itself (FORMAT.md 7)"
        ));
    }
    Ok(())
}

impl Field {
    /// Masked when shown, and the config file is 0600.
    pub fn is_secret(&self) -> bool {
        self.secret || self.widget == Widget::Secret
    }

    fn validate(&self, path: &str) -> Result<(), Issue> {
        let widget = self.widget;
        let given = [
            (Rule::Regex, self.regex.is_some()),
            (Rule::MinMax, self.min.is_some() || self.max.is_some()),
            (
                Rule::Length,
                self.min_length.is_some() || self.max_length.is_some(),
            ),
            (Rule::Choices, self.choices.is_some()),
            (Rule::Generate, self.generate),
        ];
        if let Some((rule, _)) = given
            .iter()
            .find(|(rule, present)| *present && !widget.allows(*rule))
        {
            return Err(Issue::new(
                path,
                format!(
                    "{} is not allowed for widget {}",
                    rule.name(),
                    widget.name()
                ),
            ));
        }
        if let Some(help) = &self.help {
            if help.chars().count() > MAX_HELP {
                return Err(Issue::new(
                    join_path(path, "help"),
                    format!(
                        "is {} characters long (at most {MAX_HELP})",
                        help.chars().count()
                    ),
                ));
            }
        }
        if let Some(regex) = &self.regex {
            compile(regex).map_err(|error| Issue::new(join_path(path, "regex"), error))?;
        }
        if let (Some(min), Some(max)) = (self.min, self.max) {
            if min > max {
                return Err(Issue::new(path, format!("min {min} is above max {max}")));
            }
        }
        if let (Some(min), Some(max)) = (self.min_length, self.max_length) {
            if min > max {
                return Err(Issue::new(
                    path,
                    format!("min-length {min} is above max-length {max}"),
                ));
            }
        }
        for (name, bound) in [("min", self.min), ("max", self.max)] {
            let Some(bound) = bound else { continue };
            let whole = matches!(widget, Widget::Integer | Widget::Port);
            if !bound.is_finite() || (whole && bound.fract() != 0.0) {
                return Err(Issue::new(
                    join_path(path, name),
                    format!("{bound} is not a {} bound", widget.name()),
                ));
            }
            if widget == Widget::Port && !(1.0..=65535.0).contains(&bound) {
                return Err(Issue::new(
                    join_path(path, name),
                    format!("{bound} is not a port (1..65535)"),
                ));
            }
        }
        if widget == Widget::Choice {
            let choices = self.choices.as_deref().unwrap_or_default();
            if choices.is_empty() {
                return Err(Issue::new(
                    join_path(path, "choices"),
                    "widget choice needs a non-empty list of choices",
                ));
            }
            let mut seen = BTreeSet::new();
            if let Some(twice) = choices.iter().find(|choice| !seen.insert(*choice)) {
                return Err(Issue::new(
                    join_path(path, "choices"),
                    format!("{twice:?} is listed twice"),
                ));
            }
        }
        if let Some(default) = &self.default {
            if self.is_secret() {
                return Err(Issue::new(
                    join_path(path, "default"),
                    "a secret has no default (use generate: true, or --set at install time)",
                ));
            }
            self.broken_rule(default)
                .map_err(|problem| Issue::new(join_path(path, "default"), problem))?;
        }
        Ok(())
    }

    /// Every rule of this field for `value`; the error names this field's key and the rule
    /// that is broken.
    pub fn check(&self, value: &ConfigValue) -> Result<(), ConfigError> {
        self.broken_rule(value).map_err(|problem| ConfigError {
            key: self.key.to_string(),
            problem,
        })
    }

    /// Every rule of this field for `value`; `Err` says which one is broken.
    fn broken_rule(&self, value: &ConfigValue) -> Result<(), String> {
        match self.widget {
            Widget::Integer | Widget::Port => {
                let ConfigValue::Integer(number) = value else {
                    return Err(format!("expected an integer, found {value}"));
                };
                if self.widget == Widget::Port && !(1..=65535).contains(number) {
                    return Err(format!("{number} is not a port (1..65535)"));
                }
                self.check_min_max(*number as f64, &number.to_string())
            }
            Widget::Number => match value {
                ConfigValue::Integer(number) => {
                    self.check_min_max(*number as f64, &number.to_string())
                }
                ConfigValue::Number(number) if number.is_finite() => {
                    self.check_min_max(*number, &number.to_string())
                }
                _ => Err(format!("expected a number, found {value}")),
            },
            Widget::Boolean => match value {
                ConfigValue::Boolean(_) => Ok(()),
                _ => Err(format!("expected true or false, found {value}")),
            },
            _ => {
                let ConfigValue::String(text) = value else {
                    return Err(format!("expected a string, found {value}"));
                };
                self.check_text(text)
            }
        }
    }

    fn check_min_max(&self, number: f64, shown: &str) -> Result<(), String> {
        if let Some(min) = self.min.filter(|min| number < *min) {
            return Err(format!("{shown} is below min {min}"));
        }
        if let Some(max) = self.max.filter(|max| number > *max) {
            return Err(format!("{shown} is above max {max}"));
        }
        Ok(())
    }

    fn check_text(&self, text: &str) -> Result<(), String> {
        if text.is_empty() && self.is_secret() && !self.required {
            return Ok(());
        }
        let multi_line = self.widget == Widget::Text;
        if text
            .chars()
            .any(|c| c.is_control() && !(multi_line && matches!(c, '\n' | '\t' | '\r')))
        {
            return Err(if multi_line {
                format!("{text:?} contains a control character")
            } else {
                format!("{text:?} must be one line without control characters")
            });
        }
        match self.widget {
            Widget::Choice => {
                let choices = self.choices.as_deref().unwrap_or_default();
                if !choices.iter().any(|choice| choice == text) {
                    return Err(format!("{text:?} is not one of: {}", choices.join(", ")));
                }
            }
            Widget::Url if !is_http_url(text) => {
                return Err(format!("{text:?} is not an absolute http or https URL"));
            }
            Widget::Email if !is_email(text) => {
                return Err(format!("{text:?} is not an email address (local@domain)"));
            }
            Widget::Path if !text.starts_with('/') => {
                return Err(format!("{text:?} is not an absolute path"));
            }
            Widget::Duration if !is_time_span(text) => {
                return Err(format!(
                    "{text:?} is not a systemd time span (e.g. 30s, 5min, 1h 30min)"
                ));
            }
            _ => {}
        }
        let length = text.chars().count();
        if let Some(min) = self.min_length.filter(|min| length < *min as usize) {
            return Err(format!("{text:?} is shorter than min-length {min}"));
        }
        if let Some(max) = self.max_length.filter(|max| length > *max as usize) {
            return Err(format!("{text:?} is longer than max-length {max}"));
        }
        if let Some(pattern) = &self.regex {
            let regex = compile(pattern)?;
            if !regex.is_match(text) {
                return Err(format!("{text:?} does not match regex {pattern}"));
            }
        }
        Ok(())
    }
}

/// The spec's regex, anchored so the whole value must match.
fn compile(pattern: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(MAX_REGEX_BYTES)
        .build()
        .map_err(|error| {
            let first_line = error.to_string();
            let reason = first_line.lines().last().unwrap_or_default().trim();
            format!("{pattern:?} is not a valid regex: {reason}")
        })
}

/// `http://HOST[…]` or `https://HOST[…]`, no whitespace.
fn is_http_url(text: &str) -> bool {
    let Some(rest) = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
    else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !host.is_empty() && !text.chars().any(char::is_whitespace)
}

/// `local@domain`: one `@`, both sides non-empty, no whitespace, a domain of letters, digits,
/// `.` and `-`.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.chars().any(|c| c.is_whitespace() || c == '@')
        && !domain.is_empty()
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
        && !domain.starts_with(['.', '-'])
        && !domain.ends_with(['.', '-'])
}

/// A systemd time span (systemd.time(7)): `infinity`, or `NUMBER[UNIT]` parts, optionally
/// separated by spaces; a bare number is seconds.
fn is_time_span(text: &str) -> bool {
    if text == "infinity" {
        return true;
    }
    const UNITS: [&str; 30] = [
        "usec", "us", "µs", "msec", "ms", "seconds", "second", "sec", "s", "minutes", "minute",
        "min", "m", "hours", "hour", "hr", "h", "days", "day", "d", "weeks", "week", "w", "months",
        "month", "M", "years", "year", "y", "",
    ];
    let mut rest = text.trim_start();
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let mut after = &rest[digits..];
        let mut fraction = 0;
        if let Some(decimals) = after.strip_prefix('.') {
            fraction = decimals.len()
                - decimals
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            if fraction == 0 {
                return false;
            }
            after = &decimals[fraction..];
        }
        if digits + fraction == 0 {
            return false;
        }
        let after = after.trim_start();
        let unit_length = after.len() - after.trim_start_matches(|c: char| c.is_alphabetic()).len();
        if !UNITS.contains(&&after[..unit_length]) {
            return false;
        }
        rest = after[unit_length..].trim_start();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of FORMAT.md 4.
    const SPEC: &str = r#"format: 1
file-format: yaml
fields:
  - key: site_title
    widget: string
    default: Hello
    required: false
    help: Title shown on every page
    regex: '^[^<>]{1,80}$'
  - key: workers
    widget: integer
    default: 2
    min: 1
    max: 64
  - key: log_level
    widget: choice
    choices: [debug, info, warning, error]
    default: info
  - key: secret_key
    widget: secret
    required: true
    generate: true
  - key: smtp_password
    widget: string
    secret: true
"#;

    fn spec(text: &str) -> ConfigSpec {
        ConfigSpec::parse(text, "configuration.yaml").unwrap_or_else(|error| panic!("{error}"))
    }

    fn refusal(text: &str) -> String {
        match ConfigSpec::parse(text, "configuration.yaml") {
            Ok(spec) => panic!("accepted: {spec:?}"),
            Err(error) => error.to_string(),
        }
    }

    fn edited(from: &str, to: &str) -> String {
        assert!(SPEC.contains(from), "{from}");
        SPEC.replacen(from, to, 1)
    }

    fn value_error(spec: &ConfigSpec, key: &str, value: ConfigValue) -> String {
        match spec.validate_value(key, &value) {
            Ok(()) => panic!("{key}: {value} accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn reads_the_spec_example() {
        let spec = spec(SPEC);
        assert_eq!(spec.fields.len(), 5);
        assert_eq!(spec.file_format, FileFormat::Yaml);
        assert_eq!(spec.ini_section(), "app");
        assert_eq!(spec.fields[1].default, Some(ConfigValue::Integer(2)));
        assert!(spec.has_secrets());
        assert!(spec.field("smtp_password").is_some_and(Field::is_secret));
        assert!(!spec.field("site_title").is_some_and(Field::is_secret));
    }

    #[test]
    fn environment_names_fields_and_sets_their_values() {
        let spec = spec(&format!(
            "{SPEC}environment:\n  SITE_TITLE: site_title\n  WORKERS: workers\n  SECRET_KEY: secret_key\n"
        ));
        let values = BTreeMap::from([
            (
                "site_title".to_owned(),
                ConfigValue::String("Hi \"there\"".to_owned()),
            ),
            ("workers".to_owned(), ConfigValue::Integer(4)),
        ]);
        assert_eq!(
            spec.environment_values(&values),
            BTreeMap::from([
                ("SITE_TITLE".to_owned(), "Hi \"there\"".to_owned()),
                ("WORKERS".to_owned(), "4".to_owned()),
            ])
        );
        let with = |mapping: &str| refusal(&format!("{SPEC}environment:\n  {mapping}\n"));
        assert_eq!(
            with("lower: workers"),
            "configuration.yaml:26: environment: \"lower\" is not a variable name (expected [A-Z_][A-Z0-9_]*, at most 128 characters)"
        );
        assert_eq!(
            with("PYAPP_WORKERS: workers"),
            "configuration.yaml:26: environment: PYAPP_WORKERS is set by pyapp-install itself (FORMAT.md 7)"
        );
        assert_eq!(
            with("PATH: workers"),
            "configuration.yaml:26: environment: PATH is set by pyapp-install itself (FORMAT.md 7)"
        );
        assert_eq!(
            with("NOPE: no_such_key"),
            "configuration.yaml:27: environment.NOPE: no_such_key is not a key of fields"
        );
    }

    #[test]
    fn the_fixture_spec_is_valid() {
        spec(include_str!("../../fixtures/hello/configuration.yaml"));
    }

    #[test]
    fn build_time_rules() {
        assert_eq!(
            refusal(&edited("  - key: workers", "  - key: site_title")),
            "configuration.yaml:10: fields[1].key: site_title is already a key (keys are \
             compared ignoring case: INI and .env files do not tell secret_key from SECRET_KEY)"
        );
        assert_eq!(
            refusal(&edited("  - key: workers", "  - key: Site_Title")),
            "configuration.yaml:10: fields[1].key: Site_Title is already a key (keys are \
             compared ignoring case: INI and .env files do not tell secret_key from SECRET_KEY)"
        );
        assert_eq!(
            refusal(&edited("    default: 2\n", "    default: 100\n")),
            "configuration.yaml:12: fields[1].default: 100 is above max 64"
        );
        assert_eq!(
            refusal(&edited("    min: 1\n", "    min: 65\n")),
            "configuration.yaml:10: fields[1]: min 65 is above max 64"
        );
        assert_eq!(
            refusal(&edited("    default: info", "    default: verbose")),
            "configuration.yaml:18: fields[2].default: \"verbose\" is not one of: debug, info, \
             warning, error"
        );
        assert_eq!(
            refusal(&edited(
                "    generate: true\n",
                "    generate: true\n    default: x\n"
            )),
            "configuration.yaml:23: fields[3].default: a secret has no default (use generate: \
             true, or --set at install time)"
        );
        assert_eq!(
            refusal(&edited("    regex: '^[^<>]{1,80}$'", "    regex: '(['")),
            "configuration.yaml:9: fields[0].regex: \"([\" is not a valid regex: error: \
             unclosed character class"
        );
        assert_eq!(
            refusal(&edited("    max: 64\n", "    max: 64\n    regex: x\n")),
            "configuration.yaml:10: fields[1]: regex is not allowed for widget integer"
        );
        assert_eq!(
            refusal(&edited(
                "    choices: [debug, info, warning, error]",
                "    choices: []"
            )),
            "configuration.yaml:17: fields[2].choices: widget choice needs a non-empty list of \
             choices"
        );
        assert_eq!(
            refusal(&edited("    default: Hello", "    default: \"<b>\"")),
            "configuration.yaml:6: fields[0].default: \"<b>\" does not match regex \
             ^[^<>]{1,80}$"
        );
        assert_eq!(
            refusal(&edited("    default: 2\n", "    default: two\n")),
            "configuration.yaml:12: fields[1].default: expected an integer, found \"two\""
        );
        assert_eq!(
            refusal(&edited("    widget: choice", "    widget: dropdown")),
            "configuration.yaml:16: fields[2].widget: \"dropdown\" is not one of: string, \
             text, secret, integer, number, boolean, choice, url, email, path, port, duration"
        );
        assert_eq!(
            refusal(&edited(
                "file-format: yaml",
                "file-format: yaml\nini-section: app"
            )),
            "configuration.yaml:3: ini-section: only used with file-format: ini"
        );
    }

    #[test]
    fn values_are_checked_by_widget_and_rule() {
        let spec = spec(SPEC);
        assert_eq!(
            value_error(&spec, "workers", ConfigValue::Integer(100)),
            "workers: 100 is above max 64"
        );
        assert_eq!(
            value_error(&spec, "workers", ConfigValue::Integer(0)),
            "workers: 0 is below min 1"
        );
        assert_eq!(
            value_error(&spec, "workers", ConfigValue::String("2".to_owned())),
            "workers: expected an integer, found \"2\""
        );
        assert_eq!(
            value_error(&spec, "site_title", ConfigValue::String("a\nb".to_owned())),
            "site_title: \"a\\nb\" must be one line without control characters"
        );
        assert_eq!(
            value_error(&spec, "log_level", ConfigValue::Boolean(true)),
            "log_level: expected a string, found true"
        );
        assert_eq!(
            value_error(&spec, "nope", ConfigValue::Boolean(true)),
            "nope: not a configuration key of this app"
        );
        assert_eq!(
            spec.validate_value("workers", &ConfigValue::Integer(64)),
            Ok(())
        );
        // A field checked on its own names its key too.
        let workers = spec.field("workers").expect("the example has workers");
        assert_eq!(
            workers.check(&ConfigValue::Integer(0)),
            Err(ConfigError {
                key: "workers".to_owned(),
                problem: "0 is below min 1".to_owned(),
            })
        );
    }

    #[test]
    fn formats_of_url_email_path_port_duration() {
        let text = "format: 1\nfields:\n  - {key: u, widget: url}\n  - {key: e, widget: email}\n\
                    \x20 - {key: p, widget: path}\n  - {key: o, widget: port, min: 1024}\n\
                    \x20 - {key: d, widget: duration}\n  - {key: n, widget: number, max: 1.5}\n\
                    \x20 - {key: b, widget: boolean}\n";
        let spec = spec(text);
        let string = |s: &str| ConfigValue::String(s.to_owned());
        for (key, value) in [
            ("u", string("https://example.com/x?y")),
            ("e", string("ops@example.com")),
            ("p", string("/srv/data")),
            ("o", ConfigValue::Integer(8080)),
            ("d", string("1h 30min")),
            ("d", string("30s")),
            ("n", ConfigValue::Number(1.25)),
            ("n", ConfigValue::Integer(1)),
            ("b", ConfigValue::Boolean(false)),
        ] {
            assert_eq!(spec.validate_value(key, &value), Ok(()), "{key}: {value}");
        }
        assert_eq!(
            value_error(&spec, "u", string("ftp://example.com")),
            "u: \"ftp://example.com\" is not an absolute http or https URL"
        );
        assert_eq!(
            value_error(&spec, "e", string("ops")),
            "e: \"ops\" is not an email address (local@domain)"
        );
        assert_eq!(
            value_error(&spec, "p", string("data")),
            "p: \"data\" is not an absolute path"
        );
        assert_eq!(
            value_error(&spec, "o", ConfigValue::Integer(70000)),
            "o: 70000 is not a port (1..65535)"
        );
        assert_eq!(
            value_error(&spec, "o", ConfigValue::Integer(80)),
            "o: 80 is below min 1024"
        );
        assert_eq!(
            value_error(&spec, "d", string("5 parsecs")),
            "d: \"5 parsecs\" is not a systemd time span (e.g. 30s, 5min, 1h 30min)"
        );
        assert_eq!(
            value_error(&spec, "n", ConfigValue::Number(2.5)),
            "n: 2.5 is above max 1.5"
        );
        assert_eq!(
            value_error(&spec, "b", string("yes")),
            "b: expected true or false, found \"yes\""
        );
    }

    #[test]
    fn whole_configuration() {
        let spec = spec(SPEC);
        let mut values = BTreeMap::from([
            (
                "site_title".to_owned(),
                ConfigValue::String("Hi".to_owned()),
            ),
            ("workers".to_owned(), ConfigValue::Integer(2)),
        ]);
        assert_eq!(
            spec.validate_config(&values).map_err(|e| e.to_string()),
            Err("secret_key: required but not set".to_owned())
        );
        values.insert(
            "secret_key".to_owned(),
            ConfigValue::String("s3cret".to_owned()),
        );
        assert_eq!(spec.validate_config(&values), Ok(()));
        values.insert("old_key".to_owned(), ConfigValue::Integer(1));
        assert_eq!(
            spec.validate_config(&values).map_err(|e| e.to_string()),
            Err("old_key: not a configuration key of this app".to_owned())
        );
    }

    #[test]
    fn config_values_read_from_yaml_by_type() {
        let values: BTreeMap<String, ConfigValue> = crate::yaml::parse_unversioned(
            "a: true\nb: 12\nc: 1.5\nd: yes\ne: '12'\nf: hello\ng: 2.0\n",
            "config.yaml",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(values["a"], ConfigValue::Boolean(true));
        assert_eq!(values["b"], ConfigValue::Integer(12));
        assert_eq!(values["c"], ConfigValue::Number(1.5));
        assert_eq!(values["d"], ConfigValue::String("yes".to_owned()));
        assert_eq!(values["e"], ConfigValue::String("12".to_owned()));
        assert_eq!(values["f"], ConfigValue::String("hello".to_owned()));
        assert_eq!(values["g"], ConfigValue::Number(2.0));
        let written = serde_saphyr::to_string(&values).unwrap_or_else(|error| panic!("{error}"));
        let again: BTreeMap<String, ConfigValue> =
            crate::yaml::parse_unversioned(&written, "config.yaml")
                .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(again, values, "{written}");
    }
}
