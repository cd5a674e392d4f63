//! The app's configuration file, `config/config.yaml` (or `config/config.ini`), written from
//! the release's configuration.yaml (FORMAT.md 4.1): defaults, generated secrets and the
//! values given with `--set`/`--config`, kept across upgrades, checked field by field. The
//! merge ([`ConfigFile::plan`]) is pure; reading and writing never follow a planted link.

mod formats;
mod given;
mod ini;
mod scalar;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pyapp_bundle::config_spec::{ConfigSpec, ConfigValue, Field, FileFormat};
use pyapp_bundle::yaml::MAX_YAML_BYTES;

use crate::app::tree::{AppTree, LASTING_DIRS};
use given::{parse_yaml_values, typed};
use pyapp_cli::Refusal;
use scalar::{ini_scalar, one_line, yaml_scalar};

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
        let others = FileFormat::ALL
            .into_iter()
            .filter(|format| *format != self.format);
        for format in std::iter::once(self.format).chain(others) {
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
        // INI and .env files do not keep the case of keys (configparser lower-cases them,
        // .env upper-cases them): each is the spec's key that matches it ignoring case.
        let by_widget = |pairs: Vec<(String, String)>| -> ConfigValues {
            pairs
                .into_iter()
                .map(|(key, text)| match spec.field_ignoring_case(&key) {
                    Some(field) => (field.key.to_string(), typed(field.widget, &text)),
                    None => (key.to_ascii_lowercase(), ConfigValue::String(text)),
                })
                .collect()
        };
        let in_file = |err: String| unreadable(format!("{label}: {err}"));
        let values = match format {
            FileFormat::Yaml => parse_yaml_values(&text, &label).map_err(unreadable)?,
            FileFormat::Ini => by_widget(
                ini::parse(&text, &self.section)
                    .map_err(|err| unreadable(format!("{label}:{}: {}", err.line, err.message)))?,
            ),
            FileFormat::Json => formats::parse_json(&text).map_err(in_file)?,
            FileFormat::Toml => formats::parse_toml(&text).map_err(in_file)?,
            FileFormat::Env => by_widget(formats::parse_env(&text).map_err(in_file)?),
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
            } else if field.is_secret() && !field.required {
                (ConfigValue::String(String::new()), Origin::Default)
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
        if self.format == FileFormat::Json {
            return Ok(json_object(spec, values, kept));
        }
        let (separator, unset) = match self.format {
            FileFormat::Ini => {
                text.push_str(&format!("\n[{}]\n", self.section));
                (" = ", " =")
            }
            FileFormat::Toml => (" = ", " ="),
            FileFormat::Env => ("=", "="),
            FileFormat::Yaml | FileFormat::Json => (": ", ":"),
        };
        let cannot = |key: &str, value: &ConfigValue, format: &str, why: &str| {
            let shown = if secrets.contains(key) || spec.field(key).is_none() {
                MASK.to_owned()
            } else {
                value.to_string()
            };
            Refusal::new(format!(
                "config: {key}: {shown} cannot be written to {format} file unchanged ({why})"
            ))
            .with_hint(format!("give another value with --set {key}=VALUE"))
        };
        let shown_key = |key: &str| match self.format {
            FileFormat::Env => key.to_ascii_uppercase(),
            _ => key.to_owned(),
        };
        let line = |key: &str, value: &ConfigValue| -> Result<String> {
            let rendered = match self.format {
                FileFormat::Ini => ini_scalar(value).ok_or_else(|| {
                    cannot(
                        key,
                        value,
                        "an INI",
                        "spaces around a line, an empty line, or a line starting with # or ;",
                    )
                })?,
                FileFormat::Toml => formats::json_scalar(value),
                FileFormat::Env => formats::env_scalar(value)
                    .ok_or_else(|| cannot(key, value, "a .env", "a ' or a line break"))?,
                FileFormat::Yaml | FileFormat::Json => yaml_scalar(value),
            };
            Ok(format!("{}{separator}{rendered}\n", shown_key(key)))
        };
        for field in &spec.fields {
            let key = field.key.as_str();
            text.push('\n');
            for help in field.help.iter().flat_map(|help| help.lines()) {
                text.push_str(&format!("# {}\n", one_line(help)));
            }
            match values.get(key) {
                Some(value) => text.push_str(&line(key, value)?),
                None => text.push_str(&format!("# {}{unset}\n", shown_key(key))),
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

/// The JSON form of the file: one object, the spec's fields in its order, then the kept
/// keys (JSON has no comments: no header, no help, unset fields left out).
fn json_object(spec: &ConfigSpec, values: &ConfigValues, kept: &ConfigValues) -> String {
    let members: Vec<String> = spec
        .fields
        .iter()
        .filter_map(|field| {
            let key = field.key.as_str();
            values.get(key).map(|value| (key, value))
        })
        .chain(kept.iter().map(|(key, value)| (key.as_str(), value)))
        .map(|(key, value)| {
            format!(
                "  {}: {}",
                serde_json::Value::String(key.to_owned()),
                formats::json_scalar(value)
            )
        })
        .collect();
    if members.is_empty() {
        return "{}\n".to_owned();
    }
    format!("{{\n{}\n}}\n", members.join(",\n"))
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
                KeyChange::Added { key, value } if *value == ConfigValue::String(String::new()) => {
                    format!("config: new key {key} = \"\" (an optional secret: empty until set)")
                }
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

/// A check's message with a secret's value replaced by [`MASK`].
fn masked_problem(field: &Field, value: &ConfigValue, problem: &str) -> String {
    match value {
        ConfigValue::String(text) if field.is_secret() => {
            problem.replace(&format!("{text:?}"), MASK)
        }
        _ => problem.to_owned(),
    }
}

fn file_name(format: FileFormat) -> &'static str {
    match format {
        FileFormat::Yaml => "config.yaml",
        FileFormat::Ini => "config.ini",
        FileFormat::Json => "config.json",
        FileFormat::Toml => "config.toml",
        FileFormat::Env => "config.env",
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
mod tests;
