//! The app's configuration file, `config/config.yaml` (or `config/config.ini`), written from
//! the release's configuration.yaml (FORMAT.md 4.1): defaults, generated secrets and the
//! values given with `--set`/`--config`, kept across upgrades, checked field by field. The
//! merge ([`ConfigFile::plan`]) is pure; reading and writing never follow a planted link.

mod ini;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pyapp_bundle::config_spec::{ConfigSpec, ConfigValue, Field, FileFormat, Widget};
use pyapp_bundle::yaml::{parse_unversioned, MAX_YAML_BYTES};

use crate::app::tree::{AppTree, LASTING_DIRS};
use pyapp_cli::Refusal;

/// What a secret's value is shown as.
pub const MASK: &str = "********";

/// The random bytes of a generated secret (written as 43 URL-safe base64 characters).
const GENERATED_SECRET_BYTES: usize = 32;

/// The file's mode when the spec has a secret field (or the file keeps keys no longer in the
/// spec, which may have been secrets): readable by its owner, the app user, only.
const SECRET_MODE: u32 = 0o600;

/// The file's mode otherwise: the app user reads and writes, its group reads.
const PLAIN_MODE: u32 = 0o640;

/// Configuration values by key.
pub type ConfigValues = BTreeMap<String, ConfigValue>;

/// Where one app's configuration file is, and in which format.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    app: String,
    dir: PathBuf,
    runtime_dir: PathBuf,
    format: FileFormat,
    section: String,
}

/// The configuration file as found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ExistingConfig {
    /// Where it was read from (the other format's file when the spec changed format).
    pub path: PathBuf,
    /// Its values, typed (INI values by the widget of their field).
    pub values: ConfigValues,
    /// Its owner (uid, gid).
    pub owner: (u32, u32),
    /// Its permission bits.
    pub mode: u32,
}

/// Where a value given now came from, for the hint when it is refused.
#[derive(Debug, Clone, PartialEq)]
enum Source {
    /// `--set KEY=VALUE`.
    Set,
    /// `--config FILE`.
    File(PathBuf),
}

/// The values given on the command line: `--config FILE`, then each `--set KEY=VALUE` (a
/// later one wins), every key a field of the spec.
#[derive(Debug, Clone, Default)]
pub struct GivenValues {
    values: BTreeMap<String, (ConfigValue, Source)>,
}

/// What changed for one key.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyChange {
    /// A field the existing file did not have, filled from its default.
    Added { key: String, value: ConfigValue },
    /// A secret given a random value.
    Generated { key: String },
    /// A value given now that differs from the file's (`from` is `None` when it was unset).
    Set {
        key: String,
        from: Option<ConfigValue>,
        to: ConfigValue,
    },
}

impl KeyChange {
    /// The key that changed.
    pub fn key(&self) -> &str {
        match self {
            KeyChange::Added { key, .. }
            | KeyChange::Generated { key }
            | KeyChange::Set { key, .. } => key,
        }
    }
}

/// The configuration file to write: merged, checked and rendered; see [`ConfigFile::plan`].
#[derive(Debug, Clone)]
pub struct ConfigPlan {
    path: PathBuf,
    values: ConfigValues,
    kept: ConfigValues,
    changes: Vec<KeyChange>,
    secrets: BTreeSet<String>,
    existing: Option<ExistingConfig>,
    contents: String,
    mode: u32,
}

impl ConfigFile {
    /// The configuration file of the app in `tree`, in the format `spec` asks for.
    pub fn new(tree: &AppTree, spec: &ConfigSpec) -> ConfigFile {
        ConfigFile {
            app: tree.name().to_owned(),
            dir: tree.lasting_dir("config"),
            runtime_dir: tree.runtime_dir().join("config"),
            format: spec.file_format,
            section: spec.ini_section().to_owned(),
        }
    }

    /// `APPS/APP/config/config.yaml` (or `config.ini`).
    pub fn path(&self) -> PathBuf {
        self.dir.join(file_name(self.format))
    }

    /// The same file as the app sees it (without `--root`): `PYAPP_CONFIG_FILE`.
    pub fn runtime_path(&self) -> PathBuf {
        self.runtime_dir.join(file_name(self.format))
    }

    /// The file on disk, or `None` when there is none yet. When the spec's format changed
    /// since the file was written, the other format's file is read. A link, a directory or
    /// anything but a plain file at the path is refused, never followed.
    pub fn read(&self, spec: &ConfigSpec) -> Result<Option<ExistingConfig>> {
        let other = match self.format {
            FileFormat::Yaml => FileFormat::Ini,
            FileFormat::Ini => FileFormat::Yaml,
        };
        for format in [self.format, other] {
            let path = self.dir.join(file_name(format));
            if let Some(existing) = self.read_file(&path, format, spec)? {
                return Ok(Some(existing));
            }
        }
        Ok(None)
    }

    fn read_file(
        &self,
        path: &Path,
        format: FileFormat,
        spec: &ConfigSpec,
    ) -> Result<Option<ExistingConfig>> {
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path);
        let file = match opened {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(err) if err.raw_os_error() == Some(nix::libc::ELOOP) => {
                return Err(not_a_file(path, "a symbolic link"))
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to open `{}`", path.display()))
            }
        };
        let meta = file
            .metadata()
            .with_context(|| format!("failed to inspect `{}`", path.display()))?;
        if !meta.is_file() {
            return Err(not_a_file(path, "not a regular file"));
        }
        let mut bytes = Vec::new();
        file.take(MAX_YAML_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("failed to read `{}`", path.display()))?;
        let unreadable = |message: String| -> anyhow::Error {
            Refusal::new(message)
                .with_hint(format!(
                    "fix it by hand, or move it away: `pyapp-install config {} --set KEY=VALUE` \
                     then writes a new one from the defaults",
                    self.app
                ))
                .into()
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| unreadable(format!("`{}` is not UTF-8", path.display())))?;
        let label = path.display().to_string();
        let values = match format {
            FileFormat::Yaml => parse_yaml_values(&text, &label).map_err(unreadable)?,
            FileFormat::Ini => ini::parse(&text, &self.section)
                .map_err(|err| unreadable(format!("{label}:{}: {}", err.line, err.message)))?
                .into_iter()
                .map(|(key, text)| {
                    let value = match spec.field(&key) {
                        Some(field) => typed(field.widget, &text),
                        None => ConfigValue::String(text),
                    };
                    (key, value)
                })
                .collect(),
        };
        Ok(Some(ExistingConfig {
            path: path.to_owned(),
            values,
            owner: (meta.uid(), meta.gid()),
            mode: meta.mode() & 0o7777,
        }))
    }

    /// The file to write for `spec`. Each field's value is, in this order: the one given now,
    /// the existing file's, the spec's default, a random one (`generate: true`), or none.
    /// Every value is checked against its field, and every `required` field must have one;
    /// the first field (in the spec's order) that fails is refused as `config: KEY: RULE`.
    /// Keys of the existing file that the spec no longer has are kept, unchecked.
    pub fn plan(
        &self,
        spec: &ConfigSpec,
        existing: Option<&ExistingConfig>,
        given: &GivenValues,
    ) -> Result<ConfigPlan> {
        self.plan_with(spec, existing, given, &mut random_secret)
    }

    /// [`ConfigFile::plan`] with `generate` making the random secrets.
    fn plan_with(
        &self,
        spec: &ConfigSpec,
        existing: Option<&ExistingConfig>,
        given: &GivenValues,
        generate: &mut dyn FnMut() -> Result<String>,
    ) -> Result<ConfigPlan> {
        let old = existing.map(|existing| &existing.values);
        let mut values = ConfigValues::new();
        let mut changes = Vec::new();
        for field in &spec.fields {
            let key = field.key.as_str();
            let old_value = old.and_then(|old| old.get(key));
            let (value, origin) = if let Some((value, source)) = given.values.get(key) {
                (value.clone(), Origin::Given(source))
            } else if let Some(value) = old_value {
                (value.clone(), Origin::Existing)
            } else if let Some(default) = &field.default {
                (default.clone(), Origin::Default)
            } else if field.generate {
                (ConfigValue::String(generate()?), Origin::Generated)
            } else if field.required {
                return Err(Refusal::new(format!("config: {key}: required but not set"))
                    .with_hint(format!("give it with --set {key}=VALUE"))
                    .into());
            } else {
                continue;
            };
            if let Err(error) = spec.validate_value(key, &value) {
                let problem = masked_problem(field, &value, &error.problem);
                let existing_path = existing.map(|existing| existing.path.as_path());
                return Err(Refusal::new(format!("config: {key}: {problem}"))
                    .with_hint(origin.hint(key, existing_path))
                    .into());
            }
            match origin {
                Origin::Given(_) if old_value != Some(&value) => changes.push(KeyChange::Set {
                    key: key.to_owned(),
                    from: old_value.cloned(),
                    to: value.clone(),
                }),
                Origin::Default if existing.is_some() => changes.push(KeyChange::Added {
                    key: key.to_owned(),
                    value: value.clone(),
                }),
                Origin::Generated => changes.push(KeyChange::Generated {
                    key: key.to_owned(),
                }),
                _ => {}
            }
            values.insert(key.to_owned(), value);
        }
        let kept: ConfigValues = old
            .into_iter()
            .flatten()
            .filter(|(key, _)| spec.field(key).is_none())
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        let secrets = spec
            .fields
            .iter()
            .filter(|field| field.is_secret())
            .map(|field| field.key.to_string())
            .collect();
        let contents = self.render(spec, &values, &kept, &secrets)?;
        let mode = if spec.has_secrets() || !kept.is_empty() {
            SECRET_MODE
        } else {
            PLAIN_MODE
        };
        Ok(ConfigPlan {
            path: self.path(),
            values,
            kept,
            changes,
            secrets,
            existing: existing.cloned(),
            contents,
            mode,
        })
    }

    /// The file's text: a header, then each field of the spec with its help as a comment
    /// (`# KEY:` when it has no value), then the kept keys under a comment saying why.
    fn render(
        &self,
        spec: &ConfigSpec,
        values: &ConfigValues,
        kept: &ConfigValues,
        secrets: &BTreeSet<String>,
    ) -> Result<String> {
        let app = &self.app;
        let mut text = format!(
            "# The configuration of {app}, written by pyapp-install from the app's \
             configuration.yaml.\n# Change it with: pyapp-install config {app} --set KEY=VALUE\n"
        );
        let (separator, unset) = match self.format {
            FileFormat::Yaml => (": ", ":"),
            FileFormat::Ini => {
                text.push_str(&format!("\n[{}]\n", self.section));
                (" = ", " =")
            }
        };
        let line = |key: &str, value: &ConfigValue| -> Result<String> {
            let rendered = match self.format {
                FileFormat::Yaml => yaml_scalar(value),
                FileFormat::Ini => ini_scalar(value).ok_or_else(|| {
                    let shown = if secrets.contains(key) || spec.field(key).is_none() {
                        MASK.to_owned()
                    } else {
                        value.to_string()
                    };
                    Refusal::new(format!(
                        "config: {key}: {shown} cannot be written to an INI file unchanged \
                         (spaces around a line, an empty line, or a line starting with # or ;)"
                    ))
                    .with_hint(format!("give another value with --set {key}=VALUE"))
                })?,
            };
            Ok(format!("{key}{separator}{rendered}\n"))
        };
        for field in &spec.fields {
            let key = field.key.as_str();
            text.push('\n');
            for help in field.help.iter().flat_map(|help| help.lines()) {
                text.push_str(&format!("# {}\n", one_line(help)));
            }
            match values.get(key) {
                Some(value) => text.push_str(&line(key, value)?),
                None => text.push_str(&format!("# {key}{unset}\n")),
            }
        }
        if !kept.is_empty() {
            text.push_str(
                "\n# Not in this release's configuration.yaml: kept (for a rollback), unused \
                 by this release.\n",
            );
            for (key, value) in kept {
                text.push_str(&line(key, value)?);
            }
        }
        Ok(text)
    }
}

/// Where a field's value came from, for the hint when it breaks a rule.
enum Origin<'a> {
    Given(&'a Source),
    Existing,
    Default,
    Generated,
}

impl Origin<'_> {
    fn hint(&self, key: &str, existing: Option<&Path>) -> String {
        match (self, existing) {
            (Origin::Given(Source::File(file)), _) => format!(
                "fix {key} in `{}`, or give a valid value with --set {key}=VALUE",
                file.display()
            ),
            (Origin::Existing, Some(path)) => format!(
                "the value comes from `{}`: give a valid one with --set {key}=VALUE",
                path.display()
            ),
            (Origin::Generated, _) => format!(
                "a generated secret is {GENERATED_SECRET_BYTES} random bytes in URL-safe \
                 base64; give a value the spec accepts with --set {key}=VALUE"
            ),
            _ => format!("give a valid value with --set {key}=VALUE"),
        }
    }
}

impl ConfigPlan {
    /// Where the file is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The values of the spec's fields, as written.
    pub fn values(&self) -> &ConfigValues {
        &self.values
    }

    /// Keys of the existing file that the spec does not have: kept in the file, unused.
    pub fn removed_keys(&self) -> Vec<&str> {
        self.kept.keys().map(String::as_str).collect()
    }

    /// What changed, key by key, in the spec's order.
    pub fn changes(&self) -> &[KeyChange] {
        &self.changes
    }

    /// Whether the file's values (or its path) differ from the existing file's: a new
    /// file, a value given or generated, a field added.
    pub fn changed(&self) -> bool {
        match &self.existing {
            None => true,
            Some(existing) => {
                existing.path != self.path
                    || existing.values.len() != self.values.len() + self.kept.len()
                    || self
                        .values
                        .iter()
                        .chain(&self.kept)
                        .any(|(key, value)| existing.values.get(key) != Some(value))
            }
        }
    }

    /// The file's mode: 0600 when the spec has a secret or the file keeps removed keys,
    /// else 0640.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// `value` as shown to the user: secrets (and kept keys, which may have been) masked.
    pub fn shown(&self, key: &str, value: &ConfigValue) -> String {
        if self.secrets.contains(key) || self.kept.contains_key(key) {
            MASK.to_owned()
        } else {
            value.to_string()
        }
    }

    /// One line per change for the user (secrets masked), each starting with `config:`.
    pub fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        match &self.existing {
            None => notes.push(format!(
                "config: new file {} from configuration.yaml",
                self.path.display()
            )),
            Some(existing) if existing.path != self.path => notes.push(format!(
                "config: the spec now asks for {}; {} is left in place, unused",
                self.path.display(),
                existing.path.display()
            )),
            Some(_) => {}
        }
        for change in &self.changes {
            notes.push(match change {
                KeyChange::Added { key, value } => format!(
                    "config: new key {key} = {} (its default)",
                    self.shown(key, value)
                ),
                KeyChange::Generated { key } => {
                    format!("config: {key} = {MASK} (generated)")
                }
                KeyChange::Set { key, from, to } => {
                    let was = match from {
                        Some(from) => self.shown(key, from),
                        None => "not set".to_owned(),
                    };
                    format!("config: {key} = {} (was {was})", self.shown(key, to))
                }
            });
        }
        for key in self.kept.keys() {
            notes.push(format!(
                "config: {key} is no longer in the app's configuration.yaml: kept in the \
                 file, unused"
            ));
        }
        notes
    }

    /// Writes the file when its values changed, or its mode or owner is not the one wanted:
    /// a temporary file beside it, synced, renamed over it (a link planted at its path is
    /// replaced, never followed). `owner` (uid, gid) defaults to the existing file's.
    /// Returns whether anything was written.
    pub fn write(&self, owner: Option<(u32, u32)>) -> Result<bool> {
        let same_file = self
            .existing
            .as_ref()
            .filter(|existing| existing.path == self.path);
        let owner = owner.or(same_file.map(|existing| existing.owner));
        let up_to_date = same_file.is_some_and(|existing| {
            !self.changed()
                && existing.mode == self.mode
                && owner.is_none_or(|owner| owner == existing.owner)
        });
        if up_to_date {
            return Ok(false);
        }
        let dir = self
            .path
            .parent()
            .with_context(|| format!("`{}` has no parent directory", self.path.display()))?;
        let dir_mode = LASTING_DIRS
            .iter()
            .find(|(name, _)| *name == "config")
            .map_or(0o750, |(_, mode)| *mode);
        pyapp_fs::ensure_dir(dir, dir_mode)?;
        write_file(&self.path, self.contents.as_bytes(), self.mode, owner)?;
        Ok(true)
    }
}

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

    /// Whether no value was given.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// The field for `key`, or the refusal naming the known keys.
fn known_field<'a>(spec: &'a ConfigSpec, key: &str) -> Result<&'a Field, Refusal> {
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
fn read_config_file(path: &Path) -> Result<ConfigValues> {
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
fn parse_yaml_values(text: &str, label: &str) -> Result<ConfigValues, String> {
    parse_unversioned::<Option<ConfigValues>>(text, label)
        .map(Option::unwrap_or_default)
        .map_err(|err| err.to_string())
}

/// `text` as a value of `widget`: an integer, a number or a boolean when it parses as one
/// (`true`/`false` only), otherwise the string itself (which the field's check then names).
fn typed(widget: Widget, text: &str) -> ConfigValue {
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

/// A check's message with a secret's value replaced by [`MASK`].
fn masked_problem(field: &Field, value: &ConfigValue, problem: &str) -> String {
    match value {
        ConfigValue::String(text) if field.is_secret() => {
            problem.replace(&format!("{text:?}"), MASK)
        }
        _ => problem.to_owned(),
    }
}

/// `value` in YAML, read back the same by YAML 1.2 parsers and by YAML 1.1 ones (PyYAML,
/// which most apps use): a string is plain when it reads back as itself and cannot be a
/// 1.1 boolean, null, number or date (`no`, `~`, `0777`, `2001-12-14`), otherwise
/// double-quoted (JSON's escapes are YAML's).
fn yaml_scalar(value: &ConfigValue) -> String {
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
fn ini_scalar(value: &ConfigValue) -> Option<String> {
    match value {
        ConfigValue::Boolean(value) => Some(value.to_string()),
        ConfigValue::Integer(value) => Some(value.to_string()),
        ConfigValue::Number(value) => Some(float_text(*value)),
        ConfigValue::String(text) => ini::render_value(text),
    }
}

/// A float that YAML 1.1 and 1.2 and Python's `float()` all read back as the same float:
/// always with a `.`, and a signed exponent (`1.0e+16`, not Rust's `1e16`).
fn float_text(value: f64) -> String {
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
fn one_line(help: &str) -> String {
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

fn file_name(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Yaml => "config.yaml",
        FileFormat::Ini => "config.ini",
    }
}

/// The refusal for something other than a plain file at the config file's path.
fn not_a_file(path: &Path, what: &str) -> anyhow::Error {
    Refusal::new(format!(
        "`{}` is {what}; refusing to follow or read it",
        path.display()
    ))
    .with_hint("move it away (it may have been planted), then run pyapp-install again")
    .into()
}

/// A random secret: [`GENERATED_SECRET_BYTES`] from the kernel, URL-safe base64.
fn random_secret() -> Result<String> {
    let mut bytes = [0; GENERATED_SECRET_BYTES];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("failed to read `/dev/urandom`")?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Replaces `path` with `contents`, `mode` and `owner` set on a new temporary file beside
/// it before it is synced and renamed into place; the directory is synced after.
fn write_file(path: &Path, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path
        .parent()
        .with_context(|| format!("`{}` has no parent directory", path.display()))?;
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    pyapp_fs::remove_file_if_exists(&tmp)?;
    let written = (|| -> io::Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(SECRET_MODE)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&tmp)?;
        file.write_all(contents)?;
        if let Some((uid, gid)) = owner {
            let meta = file.metadata()?;
            if (meta.uid(), meta.gid()) != (uid, gid) {
                std::os::unix::fs::fchown(&file, Some(uid), Some(gid))?;
            }
        }
        file.set_permissions(Permissions::from_mode(mode))?;
        file.sync_all()
    })();
    if let Err(err) = written {
        // The temporary file is ours: removing it is best effort, the error is the write's.
        let _ = pyapp_fs::remove_file_if_exists(&tmp);
        return Err(err).with_context(|| format!("failed to write `{}`", tmp.display()));
    }
    pyapp_fs::rename(&tmp, path)?;
    Ok(pyapp_fs::sync_dir(dir)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::AppsDir;
    use pyapp_cli::find_refusal;

    /// Every widget and rule the merge has to apply.
    const SPEC: &str = r#"format: 1
fields:
  - key: greeting
    widget: string
    default: Hello
    required: true
    regex: '^[A-Za-z][A-Za-z ,!]{0,39}$'
    help: The word the front page greets visitors with
  - key: workers
    widget: integer
    default: 2
    min: 1
    max: 16
  - key: ratio
    widget: number
    max: 1.5
  - key: debug
    widget: boolean
    default: false
  - key: log_level
    widget: choice
    choices: [debug, info, warning, error]
    default: info
  - key: secret_key
    widget: secret
    required: true
    generate: true
  - key: api_token
    widget: secret
    min-length: 16
  - key: admin_email
    widget: email
    required: true
"#;

    fn spec(text: &str) -> ConfigSpec {
        ConfigSpec::parse(text, "configuration.yaml").unwrap()
    }

    fn ini_spec() -> ConfigSpec {
        spec(&SPEC.replace(
            "format: 1\n",
            "format: 1\nfile-format: ini\nini-section: hello\n",
        ))
    }

    /// A scratch apps directory with the app `hello` and its config/ directory.
    fn scratch(spec: &ConfigSpec) -> (tempfile::TempDir, ConfigFile) {
        let root = tempfile::tempdir().unwrap();
        let tree = AppsDir::new(root.path(), Path::new("/applications"))
            .app("hello")
            .unwrap();
        std::fs::create_dir_all(tree.lasting_dir("config")).unwrap();
        let file = ConfigFile::new(&tree, spec);
        (root, file)
    }

    fn given(spec: &ConfigSpec, set: &[&str]) -> Result<GivenValues> {
        let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
        GivenValues::parse(spec, &set, None)
    }

    fn plan(
        file: &ConfigFile,
        spec: &ConfigSpec,
        existing: Option<&ExistingConfig>,
        set: &[&str],
    ) -> Result<ConfigPlan> {
        let given = given(spec, set)?;
        let mut counter = 0;
        file.plan_with(spec, existing, &given, &mut || {
            counter += 1;
            Ok(format!("generated-{counter}"))
        })
    }

    /// The refusal's message and hint.
    fn refusal(result: Result<impl std::fmt::Debug>) -> (String, String) {
        let err = result.unwrap_err();
        let hint = find_refusal(&err)
            .and_then(|refusal| refusal.hint())
            .unwrap_or_default()
            .to_owned();
        (err.to_string(), hint)
    }

    /// The file of `file` as if it held `values`.
    fn existing(file: &ConfigFile, values: &[(&str, ConfigValue)]) -> ExistingConfig {
        ExistingConfig {
            path: file.path(),
            values: values
                .iter()
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect(),
            owner: (0, 0),
            mode: 0o600,
        }
    }

    fn string(text: &str) -> ConfigValue {
        ConfigValue::String(text.to_owned())
    }

    #[test]
    fn first_install_writes_defaults_generated_secrets_and_given_values() {
        let spec = spec(SPEC);
        let (_root, file) = scratch(&spec);
        let plan = plan(
            &file,
            &spec,
            None,
            &["admin_email=ops@example.com", "workers=4"],
        )
        .unwrap();
        assert_eq!(
            plan.contents,
            "# The configuration of hello, written by pyapp-install from the app's \
             configuration.yaml.\n# Change it with: pyapp-install config hello --set \
             KEY=VALUE\n\
             \n# The word the front page greets visitors with\ngreeting: Hello\n\
             \nworkers: 4\n\n# ratio:\n\ndebug: false\n\nlog_level: info\n\
             \nsecret_key: generated-1\n\n# api_token:\n\nadmin_email: ops@example.com\n"
        );
        assert_eq!(plan.mode(), 0o600);
        assert!(plan.changed());
        assert_eq!(
            plan.notes(),
            [
                format!(
                    "config: new file {} from configuration.yaml",
                    file.path().display()
                ),
                "config: workers = 4 (was not set)".to_owned(),
                "config: secret_key = ******** (generated)".to_owned(),
                "config: admin_email = \"ops@example.com\" (was not set)".to_owned(),
            ]
        );
        assert!(file.runtime_path().ends_with("config/config.yaml"));
        assert!(file
            .runtime_path()
            .starts_with("/applications/hello/config"));
    }

    #[test]
    fn set_values_are_typed_by_widget() {
        let spec = spec(SPEC);
        let given = given(
            &spec,
            &[
                "workers=4",
                "ratio=1.25",
                "debug=true",
                "greeting=12",
                "ratio=1",
            ],
        )
        .unwrap();
        let values: Vec<_> = given.values.values().map(|(value, _)| value).collect();
        assert_eq!(
            values,
            [
                &ConfigValue::Boolean(true),
                &string("12"),
                &ConfigValue::Integer(1),
                &ConfigValue::Integer(4),
            ]
        );
    }

    #[test]
    fn every_rule_is_refused_with_key_and_rule() {
        let spec = spec(SPEC);
        let (_root, file) = scratch(&spec);
        let email = "admin_email=ops@example.com";
        let cases: [(&[&str], &str); 11] = [
            (
                &[email, "workers=four"],
                "config: workers: expected an integer, found \"four\"",
            ),
            (&[email, "workers=0"], "config: workers: 0 is below min 1"),
            (
                &[email, "workers=17"],
                "config: workers: 17 is above max 16",
            ),
            (&[email, "ratio=2.5"], "config: ratio: 2.5 is above max 1.5"),
            (
                &[email, "ratio=inf"],
                "config: ratio: expected a number, found \"inf\"",
            ),
            (
                &[email, "debug=yes"],
                "config: debug: expected true or false, found \"yes\"",
            ),
            (
                &[email, "log_level=verbose"],
                "config: log_level: \"verbose\" is not one of: debug, info, warning, error",
            ),
            (
                &[email, "greeting=<b>"],
                "config: greeting: \"<b>\" does not match regex ^[A-Za-z][A-Za-z ,!]{0,39}$",
            ),
            (
                &[email, "api_token=short"],
                "config: api_token: ******** is shorter than min-length 16",
            ),
            (
                &["admin_email=ops"],
                "config: admin_email: \"ops\" is not an email address (local@domain)",
            ),
            (&[], "config: admin_email: required but not set"),
        ];
        for (set, expected) in cases {
            let (message, hint) = refusal(plan(&file, &spec, None, set));
            assert_eq!(message, expected, "{set:?}");
            assert!(hint.contains("--set"), "{hint}");
        }
        assert_eq!(
            refusal(given(&spec, &["colour=red"])),
            (
                "config: colour: not a configuration key of this app (known keys: greeting, \
                 workers, ratio, debug, log_level, secret_key, api_token, admin_email)"
                    .to_owned(),
                String::new()
            )
        );
        assert_eq!(
            refusal(given(&spec, &["workers"])),
            (
                "config: --set \"workers\": expected KEY=VALUE".to_owned(),
                "e.g. --set workers=4".to_owned()
            )
        );
    }

    #[test]
    fn upgrade_keeps_values_adds_fields_and_keeps_removed_keys() {
        let spec = spec(SPEC);
        let (_root, file) = scratch(&spec);
        let old = existing(
            &file,
            &[
                ("greeting", string("Howdy")),
                ("workers", ConfigValue::Integer(8)),
                ("secret_key", string("kept-secret")),
                ("admin_email", string("ops@example.com")),
                ("old_setting", string("x")),
            ],
        );
        let plan = file
            .plan_with(&spec, Some(&old), &GivenValues::default(), &mut || {
                panic!("an existing secret is never generated again")
            })
            .unwrap();
        assert_eq!(plan.values()["greeting"], string("Howdy"));
        assert_eq!(plan.values()["workers"], ConfigValue::Integer(8));
        assert_eq!(plan.values()["secret_key"], string("kept-secret"));
        assert_eq!(plan.values()["log_level"], string("info"));
        assert_eq!(plan.removed_keys(), ["old_setting"]);
        assert!(plan.changed());
        assert_eq!(
            plan.notes(),
            [
                "config: new key debug = false (its default)",
                "config: new key log_level = \"info\" (its default)",
                "config: old_setting is no longer in the app's configuration.yaml: kept in \
                 the file, unused",
            ]
        );
        assert!(plan.contents.ends_with(
            "\n# Not in this release's configuration.yaml: kept (for a rollback), unused by \
             this release.\nold_setting: x\n"
        ));
    }

    #[test]
    fn upgrade_is_refused_when_a_kept_value_breaks_the_new_spec() {
        let spec = spec(SPEC);
        let (_root, file) = scratch(&spec);
        let old = existing(
            &file,
            &[
                ("greeting", string("Hello")),
                ("workers", ConfigValue::Integer(32)),
                ("secret_key", string("kept-secret")),
                ("admin_email", string("ops@example.com")),
            ],
        );
        assert_eq!(
            refusal(plan(&file, &spec, Some(&old), &[])),
            (
                "config: workers: 32 is above max 16".to_owned(),
                format!(
                    "the value comes from `{}`: give a valid one with --set workers=VALUE",
                    file.path().display()
                )
            )
        );
        let fixed = plan(&file, &spec, Some(&old), &["workers=16"]).unwrap();
        assert_eq!(
            fixed.notes(),
            [
                "config: workers = 16 (was 32)",
                "config: new key debug = false (its default)",
                "config: new key log_level = \"info\" (its default)"
            ]
        );
    }

    #[test]
    fn a_value_set_again_changes_nothing() {
        let spec = spec(SPEC);
        let (_root, file) = scratch(&spec);
        let first = plan(&file, &spec, None, &["admin_email=ops@example.com"]).unwrap();
        let old = existing(
            &file,
            &first
                .values()
                .iter()
                .map(|(key, value)| (key.as_str(), value.clone()))
                .collect::<Vec<_>>(),
        );
        let again = plan(&file, &spec, Some(&old), &["workers=2"]).unwrap();
        assert!(!again.changed());
        assert!(again.notes().is_empty());
        let changed = plan(&file, &spec, Some(&old), &["workers=3"]).unwrap();
        assert!(changed.changed());
    }

    #[test]
    fn generated_secret_survives_a_rewrite_on_disk() {
        for spec in [spec(SPEC), ini_spec()] {
            let (_root, file) = scratch(&spec);
            let first = file
                .plan(
                    &spec,
                    None,
                    &given(&spec, &["admin_email=ops@example.com"]).unwrap(),
                )
                .unwrap();
            assert!(first.write(None).unwrap());
            let generated = first.values()["secret_key"].clone();
            let ConfigValue::String(text) = &generated else {
                panic!("{generated:?}")
            };
            assert_eq!(text.len(), 43, "{text}");
            let read = file.read(&spec).unwrap().unwrap();
            assert_eq!(&read.values, first.values());
            assert_eq!(read.mode, 0o600);
            let second = file
                .plan(&spec, Some(&read), &given(&spec, &["workers=3"]).unwrap())
                .unwrap();
            assert_eq!(second.values()["secret_key"], generated);
            assert!(second.write(None).unwrap());
            let unchanged = file
                .plan(
                    &spec,
                    file.read(&spec).unwrap().as_ref(),
                    &GivenValues::default(),
                )
                .unwrap();
            assert!(!unchanged.write(None).unwrap());
        }
    }

    #[test]
    fn ini_round_trips_every_widget() {
        let spec = ini_spec();
        let (_root, file) = scratch(&spec);
        let set = [
            "admin_email=ops@example.com",
            "ratio=0.5",
            "debug=true",
            "greeting=Hi, there!",
            "api_token=0123456789abcdef#;",
        ];
        let plan = plan(&file, &spec, None, &set).unwrap();
        assert!(plan.contents.contains("\n[hello]\n\n# The word the front page greets visitors with\ngreeting = Hi, there!\n\nworkers = 2\n\nratio = 0.5\n"), "{}", plan.contents);
        plan.write(None).unwrap();
        assert!(file.path().ends_with("config/config.ini"));
        let read = file.read(&spec).unwrap().unwrap();
        assert_eq!(&read.values, plan.values());
    }

    #[test]
    fn ini_refuses_what_it_cannot_hold() {
        let text = SPEC.replace("format: 1\n", "format: 1\nfile-format: ini\n")
            + "  - key: motd\n    widget: text\n";
        let spec = spec(&text);
        let (_root, file) = scratch(&spec);
        let email = "admin_email=ops@example.com";
        assert!(plan(&file, &spec, None, &[email, "motd=two\nlines"]).is_ok());
        assert_eq!(
            refusal(plan(&file, &spec, None, &[email, "motd= padded"])).0,
            "config: motd: \" padded\" cannot be written to an INI file unchanged (spaces \
             around a line, an empty line, or a line starting with # or ;)"
        );
    }

    #[test]
    fn yaml_strings_are_quoted_only_when_needed() {
        for (text, written) in [
            ("Hello", "Hello"),
            ("12", "\"12\""),
            ("true", "\"true\""),
            ("", "\"\""),
            ("a: b", "\"a: b\""),
            ("x # y", "\"x # y\""),
            ("*alias", "\"*alias\""),
            ("two\nlines", "\"two\\nlines\""),
            ("http://localhost", "http://localhost"),
            ("No", "\"No\""),
            ("off", "\"off\""),
            ("~", "\"~\""),
            ("0777", "\"0777\""),
            ("2001-12-14", "\"2001-12-14\""),
            ("-x", "\"-x\""),
            (".5", "\".5\""),
        ] {
            assert_eq!(yaml_scalar(&string(text)), written, "{text:?}");
            let read = parse_yaml_values(&format!("k: {written}\n"), "t").unwrap();
            assert_eq!(read["k"], string(text));
        }
        for (number, written) in [
            (2.0, "2.0"),
            (1e16, "1.0e+16"),
            (1.5e-7, "1.5e-7"),
            (-0.25, "-0.25"),
        ] {
            assert_eq!(yaml_scalar(&ConfigValue::Number(number)), written);
            let read = parse_yaml_values(&format!("k: {written}\n"), "t").unwrap();
            assert_eq!(read["k"], ConfigValue::Number(number));
        }
        assert_eq!(
            parse_yaml_values("# only a comment\n", "t").unwrap(),
            ConfigValues::new()
        );
    }

    #[test]
    fn a_planted_link_is_refused_when_read_and_replaced_when_written() {
        let spec = spec(SPEC);
        let (root, file) = scratch(&spec);
        let target = root.path().join("shadow");
        std::fs::write(&target, "root:x:0:\n").unwrap();
        std::os::unix::fs::symlink(&target, file.path()).unwrap();
        let (message, _) = refusal(file.read(&spec));
        assert_eq!(
            message,
            format!(
                "`{}` is a symbolic link; refusing to follow or read it",
                file.path().display()
            )
        );
        let plan = plan(&file, &spec, None, &["admin_email=ops@example.com"]).unwrap();
        assert!(plan.write(None).unwrap());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:x:0:\n");
        assert!(std::fs::symlink_metadata(file.path()).unwrap().is_file());
    }

    #[test]
    fn a_config_file_given_with_config_is_checked_too() {
        let spec = spec(SPEC);
        let dir = tempfile::tempdir().unwrap();
        let values = dir.path().join("values.yaml");
        std::fs::write(&values, "workers: \"2\"\nadmin_email: ops@example.com\n").unwrap();
        let given = GivenValues::parse(&spec, &["greeting=Hi".to_owned()], Some(&values)).unwrap();
        let (_root, file) = scratch(&spec);
        let (message, hint) = refusal(file.plan(&spec, None, &given));
        assert_eq!(message, "config: workers: expected an integer, found \"2\"");
        assert_eq!(
            hint,
            format!(
                "fix workers in `{}`, or give a valid value with --set workers=VALUE",
                values.display()
            )
        );
        std::fs::write(&values, "colour: red\n").unwrap();
        let (message, hint) = refusal(GivenValues::parse(&spec, &[], Some(&values)));
        assert!(message.starts_with("config: colour: not a configuration key of this app"));
        assert_eq!(hint, format!("the key comes from `{}`", values.display()));
    }
}
