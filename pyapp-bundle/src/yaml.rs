//! Strict, bounded YAML parsing for `metadata.yaml` and `configuration.yaml` (FORMAT.md 2).
//!
//! Every failure, from the parser or from later validation, becomes one [`SchemaError`] that
//! renders on one line as `FILE:LINE: FIELD: what is wrong`.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_saphyr::budget::BudgetBreach;
use serde_saphyr::granit_parser::{Event, Parser};
use serde_saphyr::{
    options::AliasLimits, Budget, DeserializeError, DuplicateKeyPolicy, MergeKeyPolicy,
    MessageFormatter, NonFiniteFloatPolicy, Options,
};

use crate::FORMAT_VERSION;

/// The largest YAML file either tool reads.
pub const MAX_YAML_BYTES: usize = 1024 * 1024;

/// How deeply collections may nest; the schemas need five levels.
const MAX_DEPTH: usize = 32;

/// A YAML file that could not be read or does not follow its schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "{file}: {size} bytes is more than the {MAX_YAML_BYTES} bytes (1 MiB) a YAML file may hold"
    )]
    TooLarge { file: String, size: usize },
    #[error("{file}: format {found} is newer than this tool supports ({FORMAT_VERSION})")]
    NewerFormat { file: String, found: u64 },
    #[error("{0}")]
    Invalid(FieldError),
}

/// One problem at one place of a YAML file; see [`SchemaError::Invalid`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The file's label, e.g. `metadata.yaml`.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<u64>,
    /// The field path, e.g. `services[0].name`; empty for the whole document.
    pub path: String,
    /// What is wrong, e.g. `"Web" is not a valid name (expected …)`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.path.is_empty() {
            write!(f, ": {}", self.path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A validation failure found after deserialisation: the field path and what is wrong.
///
/// Validators return this; [`Issue::locate`] turns it into a [`SchemaError`] with the file
/// name and, when the path can be found in the text, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub path: String,
    pub message: String,
}

impl Issue {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Issue {
            path: path.into(),
            message: message.into(),
        }
    }

    /// Attach the file label and the line where `path` appears in `text` (if it does).
    pub fn locate(self, text: &str, file: &str) -> SchemaError {
        let line = nodes_of(text)
            .into_iter()
            .find(|node| node.path == self.path)
            .map(|node| node.line);
        SchemaError::Invalid(FieldError {
            file: file.to_owned(),
            line,
            path: self.path,
            message: self.message,
        })
    }
}

/// Join a parent field path and a child key: `join_path("services[0]", "name")`.
pub fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Parse one YAML document of a versioned file (one with a top-level `format:`) into `T`.
///
/// Refuses files over 1 MiB before parsing, and a `format` newer than [`FORMAT_VERSION`]
/// before looking at any other field, so a newer file gets a clear message rather than an
/// unknown-field error.
pub fn parse_document<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, SchemaError> {
    check_size(text, file)?;
    if let Ok(probe) = serde_saphyr::from_str_with_options::<FormatProbe>(text, strict_options()) {
        if let Some(found) = probe.format {
            if found > u64::from(FORMAT_VERSION) {
                return Err(SchemaError::NewerFormat {
                    file: file.to_owned(),
                    found,
                });
            }
            if found != u64::from(FORMAT_VERSION) {
                return Err(Issue::new(
                    "format",
                    format!("format {found} is not supported (expected {FORMAT_VERSION})"),
                )
                .locate(text, file));
            }
        }
    }
    parse_unversioned(text, file)
}

/// Parse one YAML document that has no `format:` field (e.g. an installed config file) into
/// `T`, with the same limits and strictness as [`parse_document`].
pub fn parse_unversioned<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, SchemaError> {
    check_size(text, file)?;
    serde_saphyr::from_str_with_options(text, strict_options())
        .map_err(|error| describe(&error, text, file))
}

fn check_size(text: &str, file: &str) -> Result<(), SchemaError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(SchemaError::TooLarge {
            file: file.to_owned(),
            size: text.len(),
        });
    }
    Ok(())
}

/// Only the `format` field of a versioned file; every other field is ignored.
#[derive(Deserialize)]
struct FormatProbe {
    format: Option<u64>,
}

/// The parser settings of FORMAT.md 2: one document, strict booleans, no duplicate keys,
/// no merge keys, no custom tags, and tight limits on aliases and size.
fn strict_options() -> Options {
    let mut budget = Budget::default();
    budget.max_reader_input_bytes = Some(MAX_YAML_BYTES);
    budget.max_documents = 1;
    budget.max_depth = MAX_DEPTH;
    budget.max_events = 200_000;
    budget.max_nodes = 100_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;

    let mut alias_limits = AliasLimits::default();
    alias_limits.max_total_replayed_events = 10_000;
    alias_limits.max_replay_stack_depth = 16;
    alias_limits.max_alias_expansions_per_anchor = 100;

    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits = alias_limits;
    options.duplicate_keys = DuplicateKeyPolicy::Error;
    options.merge_keys = MergeKeyPolicy::Error;
    options.strict_booleans = true;
    options.reject_unsupported_tags = true;
    options.non_finite_float_policy = NonFiniteFloatPolicy::Reject;
    options.with_snippet = false;
    options
}

/// Turn a parser error into a one-line [`SchemaError`] naming the line and field.
fn describe(error: &DeserializeError, text: &str, file: &str) -> SchemaError {
    let error = innermost(error);
    let location = error
        .location()
        .map(|location| (location.line(), location.column()))
        .filter(|&(line, _)| line > 0);
    let node = location.and_then(|(line, column)| node_at(text, line, column));
    let scalar = node.as_ref().and_then(|node| node.scalar.clone());
    let mut path = node.map(|node| node.path).unwrap_or_default();
    let quoted = |value: Option<String>| match value {
        Some(value) => format!("{value:?} "),
        None => String::new(),
    };
    let message = match error {
        DeserializeError::SerdeUnknownField {
            field, expected, ..
        } => {
            if path.rsplit(['.', '[']).next() != Some(field.as_str()) {
                path = join_path(&path, field);
            }
            format!("unknown field (known fields: {})", expected.join(", "))
        }
        DeserializeError::SerdeMissingField { field, .. } => {
            path = join_path(&mapping_at(text, location), field);
            "required field is missing".to_owned()
        }
        DeserializeError::DuplicateMappingKey { .. } => "duplicate key".to_owned(),
        DeserializeError::InvalidBooleanStrict { .. } => {
            format!("{}is not a boolean (write true or false)", quoted(scalar))
        }
        DeserializeError::InvalidScalar { ty, .. } => {
            format!("{}is not a valid {}", quoted(scalar), type_word(ty))
        }
        DeserializeError::SerdeInvalidType {
            unexpected,
            expected,
            ..
        }
        | DeserializeError::SerdeInvalidValue {
            unexpected,
            expected,
            ..
        } => format!("expected {expected}, found {unexpected}"),
        DeserializeError::SerdeUnknownVariant {
            variant, expected, ..
        } => format!("{variant:?} is not one of: {}", expected.join(", ")),
        DeserializeError::Budget {
            breach: BudgetBreach::Documents { .. },
            ..
        }
        | DeserializeError::MultipleDocuments { .. } => {
            path.clear();
            "only one YAML document is allowed".to_owned()
        }
        DeserializeError::Budget {
            breach: BudgetBreach::Depth { .. },
            ..
        } => {
            path.clear();
            format!("nested more than {MAX_DEPTH} levels deep")
        }
        DeserializeError::AliasReplayLimitExceeded { .. }
        | DeserializeError::AliasExpansionLimitExceeded { .. }
        | DeserializeError::AliasReplayStackDepthExceeded { .. }
        | DeserializeError::Budget { .. } => {
            path.clear();
            format!(
                "document is too large or too deeply nested once aliases are expanded ({})",
                serde_saphyr::DefaultMessageFormatter.format_message(error)
            )
        }
        // A dependency's message quotes the value as it is: one holding a line break would
        // be cut there (see `one_line`), so say what is wrong with it instead.
        DeserializeError::Message { .. }
            if scalar
                .as_ref()
                .is_some_and(|s| s.chars().any(char::is_control)) =>
        {
            format!("{}contains a control character", quoted(scalar))
        }
        DeserializeError::Message { msg, .. } => msg.clone(),
        other => serde_saphyr::DefaultMessageFormatter
            .format_message(other)
            .into_owned(),
    };
    SchemaError::Invalid(FieldError {
        file: file.to_owned(),
        line: location.map(|(line, _)| line),
        path,
        message: one_line(&message),
    })
}

/// The error itself, without the alias or snippet wrappers saphyr may put around it.
fn innermost(error: &DeserializeError) -> &DeserializeError {
    match error.without_snippet() {
        DeserializeError::AliasError { error, .. } => innermost(error),
        other => other,
    }
}

/// The path of the mapping a missing field belongs to. saphyr points at one of its keys (or,
/// for an empty mapping, at the mapping itself).
fn mapping_at(text: &str, location: Option<(u64, u64)>) -> String {
    let Some((line, column)) = location else {
        return String::new();
    };
    nodes_of(text)
        .into_iter()
        .rfind(|node| (node.line, node.column) == (line, column))
        .map(|node| {
            if node.is_key {
                path_parent(&node.path)
            } else {
                node.path
            }
        })
        .unwrap_or_default()
}

/// `services[0].name` -> `services[0]`; `services[0]` -> `services`; `name` -> ``.
fn path_parent(path: &str) -> String {
    match path.rfind(['.', '[']) {
        Some(at) => path[..at].to_owned(),
        None => String::new(),
    }
}

fn type_word(rust_type: &str) -> &str {
    match rust_type {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" | "i8" | "i16" | "i32" | "i64" | "i128"
        | "isize" => "integer",
        "f32" | "f64" => "number",
        other => other,
    }
}

/// Keep a message on one line: the first line (dependencies put carets and snippets on the
/// next ones), other control characters as spaces.
fn one_line(message: &str) -> String {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A node (key or value) of the YAML text with its field path and 1-based position.
#[derive(Debug)]
struct Node {
    path: String,
    line: u64,
    column: u64,
    scalar: Option<String>,
    is_key: bool,
}

/// The node the parser error points at: the last one starting at or before it.
fn node_at(text: &str, line: u64, column: u64) -> Option<Node> {
    nodes_of(text)
        .into_iter()
        .take_while(|node| (node.line, node.column) <= (line, column))
        .last()
}

/// What the walker is inside of.
enum Frame {
    Mapping {
        path: String,
        key: Option<String>,
        expecting_key: bool,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

/// Every node of the text in document order, with its field path, stopping at the first
/// syntax error. Keys get the path of their value. Aliases are not expanded.
fn nodes_of(text: &str) -> Vec<Node> {
    let mut nodes = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let scalar = match &event {
            Event::Scalar(value, ..) => Some(value.to_string()),
            Event::Alias(_) | Event::SequenceStart(..) | Event::MappingStart(..) => None,
            Event::SequenceEnd | Event::MappingEnd => {
                stack.pop();
                advance(&mut stack);
                continue;
            }
            _ => continue,
        };
        let mut is_key = false;
        let path = match stack.last_mut() {
            None => String::new(),
            Some(Frame::Sequence { path, next_index }) => format!("{path}[{next_index}]"),
            Some(Frame::Mapping {
                path,
                key,
                expecting_key,
            }) => {
                if *expecting_key {
                    is_key = true;
                    *key = Some(scalar.clone().unwrap_or_else(|| "?".to_owned()));
                }
                join_path(path, key.as_deref().unwrap_or("?"))
            }
        };
        nodes.push(Node {
            path: path.clone(),
            line: span.start.line() as u64,
            column: span.start.col() as u64 + 1,
            scalar,
            is_key,
        });
        match event {
            Event::SequenceStart(..) => stack.push(Frame::Sequence {
                path,
                next_index: 0,
            }),
            Event::MappingStart(..) => stack.push(Frame::Mapping {
                path,
                key: None,
                expecting_key: true,
            }),
            _ => advance(&mut stack),
        }
    }
    nodes
}

/// A node just ended: the enclosing mapping moves between key and value, the sequence on.
fn advance(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { expecting_key, .. }) => *expecting_key = !*expecting_key,
        Some(Frame::Sequence { next_index, .. }) => *next_index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Doc {
        format: u32,
        name: String,
        #[serde(default)]
        services: Vec<Item>,
        #[serde(default)]
        a: Option<Vec<Vec<Vec<Vec<u32>>>>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "kebab-case")]
    struct Item {
        #[allow(dead_code)]
        name: String,
        #[serde(default)]
        pid_file: bool,
        workers: Option<u32>,
    }

    fn error_of(text: &str) -> String {
        match parse_document::<Doc>(text, "metadata.yaml") {
            Ok(doc) => panic!("accepted: {doc:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn reads_a_valid_document() {
        let doc: Doc = parse_document(
            "format: 1\nname: x\nservices:\n  - name: web\n    pid-file: true\n    workers: 2\n",
            "metadata.yaml",
        )
        .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(doc.format, 1);
        assert_eq!(doc.name, "x");
        assert!(doc.services[0].pid_file);
        assert_eq!(doc.services[0].workers, Some(2));
        assert_eq!(doc.a, None);
    }

    #[test]
    fn unknown_field_is_named_with_its_line() {
        assert_eq!(
            error_of("format: 1\nname: x\nservices:\n  - name: a\n    bogus: 1\n"),
            "metadata.yaml:5: services[0].bogus: unknown field (known fields: name, pid-file, workers)"
        );
    }

    #[test]
    fn duplicate_key_is_refused() {
        assert_eq!(
            error_of("format: 1\nname: x\nname: y\n"),
            "metadata.yaml:3: name: duplicate key"
        );
    }

    #[test]
    fn yes_is_not_a_boolean() {
        assert_eq!(
            error_of("format: 1\nname: x\nservices:\n  - name: a\n    pid-file: yes\n"),
            "metadata.yaml:5: services[0].pid-file: \"yes\" is not a boolean (write true or false)"
        );
    }

    #[test]
    fn negative_count_is_not_an_integer_here() {
        assert_eq!(
            error_of("format: 1\nname: x\nservices:\n  - name: a\n    workers: -3\n"),
            "metadata.yaml:5: services[0].workers: \"-3\" is not a valid integer"
        );
    }

    #[test]
    fn missing_field_is_named() {
        assert_eq!(
            error_of("format: 1\nname: x\nservices:\n  - workers: 2\n"),
            "metadata.yaml:4: services[0].name: required field is missing"
        );
        assert_eq!(
            error_of("format: 1\n"),
            "metadata.yaml:1: name: required field is missing"
        );
        assert_eq!(
            error_of("format: 1\nservices:\n  - name: a\n  - {workers: 2}\n"),
            "metadata.yaml:4: services[1].name: required field is missing"
        );
    }

    /// A document whose fields take any YAML value, so the aliases are really expanded.
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Open {
        format: u32,
        a: serde_json::Value,
        b: serde_json::Value,
        c: serde_json::Value,
        d: serde_json::Value,
        e: serde_json::Value,
    }

    #[test]
    fn alias_bomb_is_refused() {
        let level = |name: &str, below: &str| {
            format!(
                "{name}: &{name} [{}]\n",
                vec![format!("*{below}"); 10].join(",")
            )
        };
        let bomb = format!(
            "format: 1\na: &a [1,1,1,1,1,1,1,1,1,1]\n{}{}{}{}",
            level("b", "a"),
            level("c", "b"),
            level("d", "c"),
            level("e", "d")
        );
        let message = match parse_document::<Open>(&bomb, "metadata.yaml") {
            Ok(_) => panic!("an alias bomb of 100,000 nodes was accepted"),
            Err(error) => error.to_string(),
        };
        assert_eq!(
            message,
            "metadata.yaml:2: document is too large or too deeply nested once aliases are \
             expanded (alias replay limit exceeded: total_replayed_events=10001 > 10000)"
        );
        // A few aliases are fine.
        let small = "format: 1\na: &a [1]\nb: *a\nc: *a\nd: 1\ne: 2\n";
        assert!(parse_document::<Open>(small, "metadata.yaml").is_ok());
    }

    #[test]
    fn more_than_one_mebibyte_is_refused_before_parsing() {
        let text = format!("format: 1\nname: x\n#{}\n", "x".repeat(MAX_YAML_BYTES));
        assert_eq!(
            error_of(&text),
            format!(
                "metadata.yaml: {} bytes is more than the 1048576 bytes (1 MiB) a YAML file may hold",
                text.len()
            )
        );
    }

    #[test]
    fn newer_format_is_reported_before_unknown_fields() {
        assert_eq!(
            error_of("format: 2\nname: x\nshiny-new-field: 1\n"),
            "metadata.yaml: format 2 is newer than this tool supports (1)"
        );
        assert_eq!(
            error_of("format: 0\nname: x\n"),
            "metadata.yaml:1: format: format 0 is not supported (expected 1)"
        );
    }

    #[test]
    fn second_document_is_refused() {
        assert_eq!(
            error_of("format: 1\nname: x\n---\nformat: 1\nname: y\n"),
            "metadata.yaml:3: only one YAML document is allowed"
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!(
            "format: 1\na: {}1{}\nb: 1\nc: 1\nd: 1\ne: 1\n",
            "[".repeat(40),
            "]".repeat(40)
        );
        assert_eq!(
            parse_document::<Open>(&deep, "metadata.yaml")
                .map_err(|error| error.to_string())
                .err(),
            Some("metadata.yaml:2: nested more than 32 levels deep".to_owned())
        );
        assert_eq!(
            error_of("format: 1\nname: [x]\n"),
            "metadata.yaml:2: name: expected string scalar"
        );
    }

    #[test]
    fn custom_tags_and_merge_keys_are_refused() {
        assert_eq!(
            error_of("format: 1\nname: !shell x\n"),
            "metadata.yaml:2: name: unsupported tag `!shell`"
        );
        assert_eq!(
            error_of("format: 1\n<<: {name: x}\n"),
            "metadata.yaml:2: <<: YAML merge keys are not allowed by configured policy"
        );
    }

    #[test]
    fn issue_is_located_by_its_path() {
        let text = "format: 1\nname: x\nservices:\n  - name: a\n  - name: B\n";
        assert_eq!(
            Issue::new("services[1].name", "\"B\" is not a valid name")
                .locate(text, "metadata.yaml")
                .to_string(),
            "metadata.yaml:5: services[1].name: \"B\" is not a valid name"
        );
        assert_eq!(
            Issue::new("hooks", "missing")
                .locate(text, "metadata.yaml")
                .to_string(),
            "metadata.yaml: hooks: missing"
        );
    }
}
