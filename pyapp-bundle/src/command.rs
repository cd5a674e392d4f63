//! Commands of services, tasks, hooks and health checks (FORMAT.md 2.2).
//!
//! A command is checked when metadata.yaml is read (program, control characters, known
//! placeholders) and rendered at install time, when the placeholders' values are known.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::names::check_config_key;

/// A value the installer substitutes into a command argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Placeholder {
    /// `{app}`: the app directory, e.g. `/applications/hello`.
    App,
    /// `{data}`: the app's data directory.
    Data,
    /// `{tmp}`: the app's private temporary directory.
    Tmp,
    /// `{run}`: sockets and pid files.
    Run,
    /// `{log}`: the app's log directory.
    Log,
    /// `{config}`: the installed configuration file.
    Config,
    /// `{venv}`: the current release's virtual environment.
    Venv,
    /// `{src}`: the current release's source tree.
    Src,
    /// `{listen}`: a service's listen address (`unix:PATH` or `127.0.0.1:PORT`).
    Listen,
    /// `{port}`: a service's port, for `listen: port`.
    Port,
    /// `{workers}`: a service's `workers`.
    Workers,
    /// `{threads}`: a service's `threads`.
    Threads,
    /// `{mount}`: the URL path a web server serves the app under, empty for `/`.
    Mount,
    /// `{fd}`: the number of the listening descriptor systemd passes a socket-activated
    /// service (`3`), for servers that take it as an option (`uvicorn --fd {fd}`).
    Fd,
}

impl Placeholder {
    pub const ALL: [Placeholder; 14] = [
        Placeholder::App,
        Placeholder::Data,
        Placeholder::Tmp,
        Placeholder::Run,
        Placeholder::Log,
        Placeholder::Config,
        Placeholder::Venv,
        Placeholder::Src,
        Placeholder::Listen,
        Placeholder::Port,
        Placeholder::Workers,
        Placeholder::Threads,
        Placeholder::Mount,
        Placeholder::Fd,
    ];

    /// The name between the braces: `app` for `{app}`.
    pub fn name(self) -> &'static str {
        match self {
            Placeholder::App => "app",
            Placeholder::Data => "data",
            Placeholder::Tmp => "tmp",
            Placeholder::Run => "run",
            Placeholder::Log => "log",
            Placeholder::Config => "config",
            Placeholder::Venv => "venv",
            Placeholder::Src => "src",
            Placeholder::Listen => "listen",
            Placeholder::Port => "port",
            Placeholder::Workers => "workers",
            Placeholder::Threads => "threads",
            Placeholder::Mount => "mount",
            Placeholder::Fd => "fd",
        }
    }

    fn from_name(name: &str) -> Option<Placeholder> {
        Placeholder::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether the value is an absolute directory, so `{venv}/bin/tool` is an absolute path.
    fn is_directory(self) -> bool {
        matches!(
            self,
            Placeholder::App
                | Placeholder::Data
                | Placeholder::Tmp
                | Placeholder::Run
                | Placeholder::Log
                | Placeholder::Venv
                | Placeholder::Src
        )
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

/// The prefix of a configuration placeholder: `{config.workers}` is the value of the
/// configuration field `workers`.
const CONFIG_PREFIX: &str = "config.";

/// The placeholders' values for one command, as the installer knows them: the fixed
/// placeholders and the configuration's values by key (`{config.KEY}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlaceholderValues {
    fixed: BTreeMap<Placeholder, String>,
    config: BTreeMap<String, String>,
}

impl PlaceholderValues {
    pub fn new() -> PlaceholderValues {
        PlaceholderValues::default()
    }

    pub fn insert(&mut self, placeholder: Placeholder, value: String) {
        self.fixed.insert(placeholder, value);
    }

    /// The values `{config.KEY}` takes, by key (as the configuration file holds them).
    pub fn set_config(&mut self, values: BTreeMap<String, String>) {
        self.config = values;
    }

    /// Every value of `other` added to (or replacing) these.
    pub fn extend(&mut self, other: &PlaceholderValues) {
        self.fixed
            .extend(other.fixed.iter().map(|(p, v)| (*p, v.clone())));
        self.config
            .extend(other.config.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

impl<const N: usize> From<[(Placeholder, String); N]> for PlaceholderValues {
    fn from(fixed: [(Placeholder, String); N]) -> PlaceholderValues {
        fixed.into_iter().collect()
    }
}

impl FromIterator<(Placeholder, String)> for PlaceholderValues {
    fn from_iter<I: IntoIterator<Item = (Placeholder, String)>>(iter: I) -> PlaceholderValues {
        PlaceholderValues {
            fixed: iter.into_iter().collect(),
            config: BTreeMap::new(),
        }
    }
}

/// A command that does not follow FORMAT.md 2.2, or could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("command is empty")]
    Empty,
    #[error("argument {position} ({argument:?}) contains a control character")]
    ControlCharacter { position: usize, argument: String },
    #[error(
        "{program:?} is neither a program name from the venv's bin/ nor an absolute path \
         (a name is letters, digits, \".\", \"_\", \"+\", \"-\"; a path starts with \"/\" or \
         a directory placeholder such as \"{{venv}}/\")"
    )]
    BadProgram { program: String },
    #[error("unknown placeholder \"{{{name}}}\" in {argument:?} (known: {known}, {{config.KEY}}; write {{{{ and }}}} for literal braces)")]
    UnknownPlaceholder {
        name: String,
        argument: String,
        known: String,
    },
    #[error("{argument:?} has an unclosed \"{{\" (write {{{{ for a literal brace)")]
    UnclosedBrace { argument: String },
    #[error("{argument:?} has an unmatched \"}}\" (write }}}} for a literal brace)")]
    UnmatchedBrace { argument: String },
    #[error("placeholder {placeholder} has no value here")]
    NoValue { placeholder: Placeholder },
    #[error("\"{{config.{key}}}\" in {argument:?} does not name a configuration key ({problem})")]
    BadConfigKey {
        key: String,
        argument: String,
        problem: String,
    },
    #[error("placeholder {{config.{key}}} has no value: the configuration does not set {key}")]
    NoConfigValue { key: String },
}

/// One piece of an argument: literal text or a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Placeholder),
    /// `{config.KEY}`.
    Config(String),
}

/// A checked command: its arguments as written, and parsed into pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    written: Vec<String>,
    parsed: Vec<Vec<Piece>>,
}

impl Command {
    /// A command from its YAML string form: split on whitespace, no shell quoting.
    pub fn from_line(line: &str) -> Result<Command, CommandError> {
        Command::from_args(line.split_whitespace().map(str::to_owned).collect())
    }

    /// A command from its YAML list form.
    pub fn from_args(args: Vec<String>) -> Result<Command, CommandError> {
        let Some(program) = args.first() else {
            return Err(CommandError::Empty);
        };
        for (index, argument) in args.iter().enumerate() {
            if argument.chars().any(char::is_control) {
                return Err(CommandError::ControlCharacter {
                    position: index + 1,
                    argument: argument.clone(),
                });
            }
        }
        let parsed = args
            .iter()
            .map(|argument| parse_argument(argument))
            .collect::<Result<Vec<_>, _>>()?;
        if !is_program(program, &parsed[0]) {
            return Err(CommandError::BadProgram {
                program: program.clone(),
            });
        }
        Ok(Command {
            written: args,
            parsed,
        })
    }

    /// The arguments as written in the YAML (placeholders not replaced).
    pub fn written(&self) -> &[String] {
        &self.written
    }

    /// The first argument as written: a program name from the venv's `bin/`, or a path.
    pub fn program(&self) -> &str {
        &self.written[0]
    }

    /// Every placeholder the command uses.
    pub fn placeholders(&self) -> BTreeSet<Placeholder> {
        self.parsed
            .iter()
            .flatten()
            .filter_map(|piece| match piece {
                Piece::Value(placeholder) => Some(*placeholder),
                Piece::Text(_) | Piece::Config(_) => None,
            })
            .collect()
    }

    /// Every configuration key the command uses (`{config.KEY}`).
    pub fn config_keys(&self) -> BTreeSet<&str> {
        self.parsed
            .iter()
            .flatten()
            .filter_map(|piece| match piece {
                Piece::Config(key) => Some(key.as_str()),
                Piece::Text(_) | Piece::Value(_) => None,
            })
            .collect()
    }

    /// The arguments with every placeholder replaced by its value.
    pub fn render(&self, values: &PlaceholderValues) -> Result<Vec<String>, CommandError> {
        self.parsed
            .iter()
            .map(|pieces| {
                let mut argument = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => argument.push_str(text),
                        Piece::Value(placeholder) => argument.push_str(
                            values.fixed.get(placeholder).ok_or(CommandError::NoValue {
                                placeholder: *placeholder,
                            })?,
                        ),
                        Piece::Config(key) => argument.push_str(
                            values
                                .config
                                .get(key)
                                .ok_or_else(|| CommandError::NoConfigValue { key: key.clone() })?,
                        ),
                    }
                }
                Ok(argument)
            })
            .collect()
    }
}

/// A bare name (`gunicorn`, `python3.11`), `/an/absolute/path`, or `{venv}/…`-style path.
fn is_program(program: &str, pieces: &[Piece]) -> bool {
    match pieces.first() {
        Some(Piece::Text(text)) if text.starts_with('/') => true,
        Some(Piece::Value(placeholder)) if placeholder.is_directory() => {
            matches!(pieces.get(1), Some(Piece::Text(text)) if text.starts_with('/'))
        }
        Some(Piece::Text(text)) if pieces.len() == 1 && text == program => {
            program
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && program
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        }
        _ => false,
    }
}

/// Split one argument into text and placeholders; `{{` and `}}` are literal braces.
fn parse_argument(argument: &str) -> Result<Vec<Piece>, CommandError> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = argument.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                text.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                text.push('}');
            }
            '}' => {
                return Err(CommandError::UnmatchedBrace {
                    argument: argument.to_owned(),
                })
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => name.push(c),
                        None => {
                            return Err(CommandError::UnclosedBrace {
                                argument: argument.to_owned(),
                            })
                        }
                    }
                }
                let piece = match name.strip_prefix(CONFIG_PREFIX) {
                    Some(key) => {
                        check_config_key(key).map_err(|err| CommandError::BadConfigKey {
                            key: key.to_owned(),
                            argument: argument.to_owned(),
                            problem: err.to_string(),
                        })?;
                        Piece::Config(key.to_owned())
                    }
                    None => Piece::Value(Placeholder::from_name(&name).ok_or_else(|| {
                        CommandError::UnknownPlaceholder {
                            name: name.clone(),
                            argument: argument.to_owned(),
                            known: Placeholder::ALL.map(|p| p.to_string()).join(", "),
                        }
                    })?),
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
            }
            other => text.push(other),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

/// The two YAML forms of a command.
#[derive(Deserialize)]
#[serde(untagged, expecting = "a command: a string or a list of strings")]
enum WrittenCommand {
    Line(String),
    Args(Vec<String>),
}

impl<'de> Deserialize<'de> for Command {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match WrittenCommand::deserialize(deserializer)? {
            WrittenCommand::Line(line) => Command::from_line(&line),
            WrittenCommand::Args(args) => Command::from_args(args),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// Always written in the list form, which reads back the same.
impl Serialize for Command {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.written.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(line: &str) -> String {
        match Command::from_line(line) {
            Ok(command) => panic!("accepted: {command:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn string_form_is_split_on_whitespace() {
        let command =
            Command::from_line("  hello-cleanup --days\t7 ").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command.written(), ["hello-cleanup", "--days", "7"]);
        assert_eq!(command.program(), "hello-cleanup");
    }

    #[test]
    fn placeholders_are_listed_and_rendered() {
        let command = Command::from_args(
            [
                "gunicorn",
                "--bind",
                "{listen}",
                "--workers",
                "{workers}",
                "--pid={run}/web.pid",
                "{{literal}}",
            ]
            .map(String::from)
            .to_vec(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            command.placeholders(),
            BTreeSet::from([Placeholder::Run, Placeholder::Listen, Placeholder::Workers])
        );
        let values = PlaceholderValues::from([
            (
                Placeholder::Listen,
                "unix:/applications/hello/run/web.sock".to_owned(),
            ),
            (Placeholder::Workers, "2".to_owned()),
            (Placeholder::Run, "/applications/hello/run".to_owned()),
        ]);
        assert_eq!(
            command.render(&values),
            Ok(vec![
                "gunicorn".to_owned(),
                "--bind".to_owned(),
                "unix:/applications/hello/run/web.sock".to_owned(),
                "--workers".to_owned(),
                "2".to_owned(),
                "--pid=/applications/hello/run/web.pid".to_owned(),
                "{literal}".to_owned(),
            ])
        );
        assert_eq!(
            command
                .render(&PlaceholderValues::new())
                .map_err(|e| e.to_string()),
            Err("placeholder {listen} has no value here".to_owned())
        );
    }

    #[test]
    fn config_placeholders_name_keys_and_take_the_configuration_values() {
        let command = Command::from_line(
            "gunicorn --workers={config.workers} --log-level {config.LOG_LEVEL} {mount}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            command.config_keys(),
            BTreeSet::from(["LOG_LEVEL", "workers"])
        );
        assert_eq!(command.placeholders(), BTreeSet::from([Placeholder::Mount]));
        let mut values = PlaceholderValues::from([(Placeholder::Mount, "/shop".to_owned())]);
        assert_eq!(
            command.render(&values).map_err(|e| e.to_string()),
            Err(
                "placeholder {config.workers} has no value: the configuration does not set workers"
                    .to_owned()
            )
        );
        values.set_config(BTreeMap::from([
            ("workers".to_owned(), "4".to_owned()),
            ("LOG_LEVEL".to_owned(), "info".to_owned()),
        ]));
        assert_eq!(
            command.render(&values),
            Ok(["gunicorn", "--workers=4", "--log-level", "info", "/shop"]
                .map(String::from)
                .to_vec())
        );
        assert_eq!(
            refusal("tool {config.log-level}"),
            "\"{config.log-level}\" in \"{config.log-level}\" does not name a configuration key \
             (\"log-level\" is not a valid configuration key (expected [A-Za-z][A-Za-z0-9_]{0,63}))"
        );
        assert!(Command::from_line("{config.tool}").is_err());
    }

    #[test]
    fn programs() {
        for good in [
            "python",
            "python3.11",
            "/usr/bin/env",
            "{venv}/bin/python",
            "c++",
        ] {
            assert!(Command::from_line(good).is_ok(), "{good} refused");
        }
        assert_eq!(
            refusal("./run.sh"),
            "\"./run.sh\" is neither a program name from the venv's bin/ nor an absolute path \
             (a name is letters, digits, \".\", \"_\", \"+\", \"-\"; a path starts with \"/\" or \
             a directory placeholder such as \"{venv}/\")"
        );
        assert!(Command::from_line("bin/tool").is_err());
        assert!(Command::from_line("{listen}").is_err());
        assert!(Command::from_line("{venv}").is_err());
        assert!(Command::from_line("-rf").is_err());
        assert_eq!(refusal("   "), "command is empty");
    }

    #[test]
    fn braces() {
        assert_eq!(
            refusal("tool {home}"),
            "unknown placeholder \"{home}\" in \"{home}\" (known: {app}, {data}, {tmp}, {run}, \
             {log}, {config}, {venv}, {src}, {listen}, {port}, {workers}, {threads}, {mount}, {fd}, \
             {config.KEY}; write {{ and }} for literal braces)"
        );
        assert_eq!(
            refusal("tool {app"),
            "\"{app\" has an unclosed \"{\" (write {{ for a literal brace)"
        );
        assert_eq!(
            refusal("tool {app}/{app"),
            "\"{app}/{app\" has an unclosed \"{\" (write {{ for a literal brace)"
        );
        assert_eq!(
            refusal("tool a}b"),
            "\"a}b\" has an unmatched \"}\" (write }} for a literal brace)"
        );
    }

    #[test]
    fn control_characters_are_refused() {
        let args = vec!["tool".to_owned(), "a\nExecStartPre=/bin/sh".to_owned()];
        assert_eq!(
            Command::from_args(args).map_err(|e| e.to_string()),
            Err(
                "argument 2 (\"a\\nExecStartPre=/bin/sh\") contains a control character".to_owned()
            )
        );
    }

    #[test]
    fn yaml_forms_read_and_write() {
        let command: Command =
            crate::yaml::parse_unversioned("[tool, \"two words\", \"{data}\"]\n", "metadata.yaml")
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command.written(), ["tool", "two words", "{data}"]);
        let written = serde_json::to_string(&command).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(written, r#"["tool","two words","{data}"]"#);
        #[derive(Debug, Deserialize)]
        struct Task {
            #[allow(dead_code)]
            command: Command,
        }
        let refused = crate::yaml::parse_unversioned::<Vec<Task>>(
            "- command: tool\n- command: tool {nope}\n",
            "metadata.yaml",
        );
        assert_eq!(
            refused.map_err(|e| e.to_string()).err().as_deref(),
            Some(
                "metadata.yaml:2: [1].command: unknown placeholder \"{nope}\" in \"{nope}\" \
                 (known: {app}, {data}, {tmp}, {run}, {log}, {config}, {venv}, {src}, {listen}, \
                 {port}, {workers}, {threads}, {mount}, {fd}, {config.KEY}; write {{ and }} for literal braces)"
            )
        );
    }
}
