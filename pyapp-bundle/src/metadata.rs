//! metadata.yaml (FORMAT.md 3): the bundle's form, [`Metadata`], and the project's template,
//! [`ProjectMetadata`], which pyapp-build completes from pyproject.toml and the wheels.
//!
//! Parsing validates every rule that needs only the file; the rules that need the bundle's
//! files are separate methods ([`Metadata::check_dependencies`], [`Metadata::check_static_paths`]).

use std::collections::{BTreeMap, BTreeSet};

use pep440_rs::{Version, VersionSpecifiers};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

use crate::calendar::Schedule;
use crate::command::{Command, Placeholder};
use crate::names::{
    check_dist_name, AppName, DebianPackage, PythonModule, UnitName, WritableDirName,
};
use crate::wheel_name::normalize_name;
use crate::wheel_name::WheelName;
use crate::yaml::{join_path, parse_document, Issue, SchemaError};
use crate::FORMAT_VERSION;

/// The longest `summary` and `description`.
const MAX_ONE_LINE: usize = 200;

/// metadata.yaml as found in a bundle (FORMAT.md 3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Metadata {
    pub format: u32,
    pub name: AppName,
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub requires_python: VersionSpecifiers,
    pub module: PythonModule,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_point: Option<String>,
    #[serde(default)]
    pub interface: Interface,
    pub source_commit: Option<String>,
    pub built_by: String,
    pub app_wheel: String,
    pub dependencies: Vec<Dependency>,
    #[serde(default)]
    pub system: System,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<Web>,
}

/// The project's metadata.yaml, the template pyapp-build reads (FORMAT.md 3.2).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectMetadata {
    pub format: u32,
    #[serde(default)]
    pub name: Option<AppName>,
    #[serde(default)]
    pub version: Option<Version>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub requires_python: Option<VersionSpecifiers>,
    pub module: PythonModule,
    #[serde(default)]
    pub entry_point: Option<String>,
    #[serde(default)]
    pub interface: Interface,
    #[serde(default)]
    pub local_dependencies: Vec<String>,
    #[serde(default)]
    pub system: System,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub services: Vec<Service>,
    #[serde(default)]
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub update: Update,
    #[serde(default)]
    pub isolation: Isolation,
    #[serde(default)]
    pub web: Option<Web>,
    // Fields pyapp-build computes: read only to say so when a project sets them.
    #[serde(default, rename = "source-commit")]
    computed_source_commit: Option<IgnoredAny>,
    #[serde(default, rename = "built-by")]
    computed_built_by: Option<IgnoredAny>,
    #[serde(default, rename = "app-wheel")]
    computed_app_wheel: Option<IgnoredAny>,
    #[serde(default, rename = "dependencies")]
    computed_dependencies: Option<IgnoredAny>,
}

/// What pyapp-build knows that the template does not: from pyproject.toml, git and the wheels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Computed {
    /// `[project] name` as written in pyproject.toml.
    pub name: String,
    /// `[project] version`.
    pub version: String,
    /// `[project] description`.
    pub summary: Option<String>,
    /// `[project] requires-python`.
    pub requires_python: Option<String>,
    /// The project's git HEAD, if it is a git checkout.
    pub source_commit: Option<String>,
    /// E.g. `pyapp-build 0.1.0`.
    pub built_by: String,
    /// The file name of the app's own wheel; also one of `wheels`.
    pub app_wheel: String,
    /// Every wheel going into `deps/`: (file name, sha256 in lowercase hex).
    pub wheels: Vec<(String, String)>,
}

/// One wheel of `deps/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Dependency {
    /// PEP 503-normalised distribution name.
    pub name: String,
    pub version: Version,
    /// The wheel's file name under `deps/`.
    pub wheel: String,
    /// Lowercase hex sha256 of the wheel, as in the manifest.
    pub sha256: String,
    pub mode: DependencyMode,
}

/// How the installer places a dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DependencyMode {
    /// Hard-linked from the machine-wide content-addressed store.
    Shared,
    /// Copied into the app's venv.
    Local,
}

/// WSGI or ASGI, for the entry point.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Interface {
    #[default]
    Wsgi,
    Asgi,
}

/// What the system must provide.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct System {
    /// Debian packages required at run time, checked with dpkg.
    #[serde(default)]
    pub packages: Vec<DebianPackage>,
    /// Modules only the system Python provides, linked into the venv.
    #[serde(default)]
    pub python_modules: Vec<PythonModule>,
}

/// Directories the app writes to and paths a web server serves.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Resources {
    /// Created under `data/`, owned by the app user.
    #[serde(default)]
    pub writable_dirs: Vec<WritableDirName>,
    /// Served directly by a web server.
    #[serde(default, rename = "static")]
    pub static_paths: Vec<StaticPath>,
}

/// A URL path served from a directory of the app's source tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPath {
    /// Starts with `/`; no `..` or `//`.
    pub url: String,
    /// Relative to `src/`; must be a directory in the bundle.
    pub path: String,
}

/// A long-running process: unit `APP-NAME.service`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Service {
    pub name: UnitName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub command: Command,
    #[serde(default)]
    pub listen: Listen,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<u32>,
    /// The service writes `{run}/NAME.pid` (`Type=forking`).
    #[serde(default)]
    pub pid_file: bool,
    #[serde(default)]
    pub restart: Restart,
}

/// Where a service listens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Listen {
    /// `unix:{run}/SERVICE.sock`.
    Socket,
    /// `127.0.0.1:PORT`, a port from the installer's range.
    Port,
    /// Nowhere (a worker, a queue consumer).
    #[default]
    None,
}

/// systemd's `Restart=`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    Always,
    #[default]
    OnFailure,
    No,
}

/// A recurrent task: `APP-NAME.service` started by `APP-NAME.timer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Task {
    pub name: UnitName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub schedule: Schedule,
    pub command: Command,
}

/// Commands run as the app user in `data/` around install, update and delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Hooks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_install: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_update: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_update: Option<Command>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_delete: Option<Command>,
    /// Seconds, 1..=86400.
    #[serde(default = "Hooks::default_timeout")]
    pub timeout: u32,
}

impl Hooks {
    fn default_timeout() -> u32 {
        300
    }

    /// The hooks that are set, with their field names.
    pub fn commands(&self) -> impl Iterator<Item = (&'static str, &Command)> {
        [
            ("post-install", &self.post_install),
            ("pre-update", &self.pre_update),
            ("post-update", &self.post_update),
            ("pre-delete", &self.pre_delete),
        ]
        .into_iter()
        .filter_map(|(name, command)| command.as_ref().map(|command| (name, command)))
    }
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            post_install: None,
            pre_update: None,
            post_update: None,
            pre_delete: None,
            timeout: Hooks::default_timeout(),
        }
    }
}

/// How upgrades happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Update {
    #[serde(default)]
    pub policy: Policy,
    /// 2..=100.
    #[serde(default = "Update::default_keep_releases")]
    pub keep_releases: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

impl Update {
    fn default_keep_releases() -> u8 {
        3
    }
}

impl Default for Update {
    fn default() -> Self {
        Update {
            policy: Policy::default(),
            keep_releases: Update::default_keep_releases(),
            health_check: None,
        }
    }
}

/// Which new versions an automatic update may take.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    AlwaysLatest,
    #[default]
    SameMajor,
    Manual,
}

/// Decides whether an upgrade stays: an HTTP probe of a service, or a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct HealthCheck {
    /// The service whose listen address is probed (with `http`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<UnitName>,
    /// GET this path; 2xx/3xx is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<String>,
    /// Exit status 0 is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Command>,
    /// Seconds, 1..=3600.
    #[serde(default = "HealthCheck::default_timeout")]
    pub timeout: u32,
}

impl HealthCheck {
    fn default_timeout() -> u32 {
        30
    }
}

/// Whether the app's units run in a chroot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Isolation {
    #[default]
    None,
    Chroot,
}

/// How a web server in front of the app serves it (FORMAT.md 11): under which URL path,
/// proxying which service, with which limits. Static files come from `resources.static`,
/// their URLs taken relative to `mount`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Web {
    /// The URL path the app is served under: `/` (the default) or e.g. `/blog`.
    #[serde(default = "Web::default_mount")]
    pub mount: String,
    /// The service the web server proxies; absent: the only service that listens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<UnitName>,
    /// The largest request body the web server passes on: `N`, `NK`, `NM` or `NG` (bytes,
    /// KiB, MiB, GiB), at most 1G.
    #[serde(default = "Web::default_max_body_size")]
    pub max_body_size: String,
    /// Seconds the web server waits for the app to accept, read or answer, 1..=3600.
    #[serde(default = "Web::default_timeout")]
    pub timeout: u32,
}

/// The largest `web.max-body-size`: 1 GiB (Apache's `LimitRequestBody` stops at 2 GiB).
const MAX_BODY_SIZE: u64 = 1 << 30;

impl Web {
    fn default_mount() -> String {
        "/".to_owned()
    }

    fn default_max_body_size() -> String {
        "10M".to_owned()
    }

    fn default_timeout() -> u32 {
        60
    }

    /// The mount as a prefix to put before the app's own paths: `` for `/`, else `/blog`.
    pub fn prefix(&self) -> &str {
        self.mount.trim_end_matches('/')
    }

    /// `max-body-size` in bytes (the default's when it does not parse, which validation
    /// refuses).
    pub fn max_body_bytes(&self) -> u64 {
        parse_body_size(&self.max_body_size).unwrap_or(10 << 20)
    }
}

impl Default for Web {
    fn default() -> Self {
        Web {
            mount: Web::default_mount(),
            service: None,
            max_body_size: Web::default_max_body_size(),
            timeout: Web::default_timeout(),
        }
    }
}

/// `N`, `NK`, `NM` or `NG` in bytes, when it is at most [`MAX_BODY_SIZE`] and not 0.
fn parse_body_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (at, 'K') => (&text[..at], 1u64 << 10),
        (at, 'M') => (&text[..at], 1 << 20),
        (at, 'G') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 12 {
        return None;
    }
    let bytes = digits.parse::<u64>().ok()?.checked_mul(unit)?;
    (1..=MAX_BODY_SIZE).contains(&bytes).then_some(bytes)
}

impl Metadata {
    /// The web settings in force: `web`, or the defaults when the metadata has none.
    pub fn web_settings(&self) -> Web {
        self.web.clone().unwrap_or_default()
    }

    /// The service a web server proxies (FORMAT.md 11): `web.service`, or else the only
    /// service that listens; `None` when there is no such service (then the app is not
    /// served by a web server) or, without a `web` section, when several listen.
    pub fn proxied_service(&self) -> Option<&Service> {
        let named = self.web.as_ref().and_then(|web| web.service.as_ref());
        let mut listening = self
            .services
            .iter()
            .filter(|service| service.listen != Listen::None)
            .filter(|service| named.is_none_or(|name| &service.name == name));
        match (listening.next(), listening.next()) {
            (Some(service), None) => Some(service),
            _ => None,
        }
    }

    /// Parse and validate a bundle's metadata.yaml; `file` labels errors.
    pub fn parse(text: &str, file: &str) -> Result<Metadata, SchemaError> {
        let metadata: Metadata = parse_document(text, file)?;
        metadata
            .validate()
            .map_err(|issue| issue.locate(text, file))?;
        Ok(metadata)
    }

    /// The metadata.yaml pyapp-build writes: fields in a fixed order, commands as lists.
    pub fn to_yaml(&self) -> Result<String, serde_saphyr::SerializeError> {
        serde_saphyr::to_string(self)
    }

    /// The rules of FORMAT.md 3.1 that need only this file.
    pub fn validate(&self) -> Result<(), Issue> {
        if self.format != FORMAT_VERSION {
            return Err(Issue::new(
                "format",
                format!(
                    "format {} is not supported (expected {FORMAT_VERSION})",
                    self.format
                ),
            ));
        }
        self.parts().validate()?;
        check_one_line("built-by", &self.built_by)?;
        if let Some(commit) = &self.source_commit {
            check_one_line("source-commit", commit)?;
        }
        let mut wheels = BTreeSet::new();
        for (index, dependency) in self.dependencies.iter().enumerate() {
            let path = format!("dependencies[{index}]");
            dependency.validate(&path)?;
            if !wheels.insert(dependency.wheel.as_str()) {
                return Err(Issue::new(
                    join_path(&path, "wheel"),
                    format!("{} is listed twice", dependency.wheel),
                ));
            }
        }
        if !wheels.contains(self.app_wheel.as_str()) {
            return Err(Issue::new(
                "app-wheel",
                format!("{} is not among the dependencies", self.app_wheel),
            ));
        }
        Ok(())
    }

    /// `dependencies` lists each file of `deps/` exactly once, with its sha256.
    /// `deps_files` holds (file name under `deps/`, lowercase hex sha256) pairs.
    pub fn check_dependencies(&self, deps_files: &[(String, String)]) -> Result<(), SchemaError> {
        let listed: BTreeMap<&str, &str> = self
            .dependencies
            .iter()
            .map(|dependency| (dependency.wheel.as_str(), dependency.sha256.as_str()))
            .collect();
        let mut present = BTreeSet::new();
        for (file, sha256) in deps_files {
            present.insert(file.as_str());
            match listed.get(file.as_str()) {
                None => {
                    return Err(unlocated(
                        "dependencies",
                        format!("deps/{file} is in the bundle but not listed"),
                    ))
                }
                Some(listed_sha256) if listed_sha256 != sha256 => {
                    return Err(unlocated(
                        "dependencies",
                        format!(
                        "deps/{file} has sha256 {sha256}, but metadata.yaml lists {listed_sha256}"
                    ),
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(missing) = listed.keys().find(|wheel| !present.contains(*wheel)) {
            return Err(unlocated(
                "dependencies",
                format!("{missing} is listed but deps/{missing} is not in the bundle"),
            ));
        }
        Ok(())
    }

    /// Every `resources.static[].path` is a directory of the bundle's `src/`; `entries` are
    /// the bundle's entry names (`src/hello/static/app.css`…).
    pub fn check_static_paths<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a str> + Clone,
    ) -> Result<(), SchemaError> {
        for (index, static_path) in self.resources.static_paths.iter().enumerate() {
            let prefix = format!("src/{}/", static_path.path.trim_end_matches('/'));
            if !entries
                .clone()
                .into_iter()
                .any(|entry| entry.starts_with(&prefix))
            {
                return Err(unlocated(
                    &format!("resources.static[{index}].path"),
                    format!(
                        "{} is not a directory of the app's source",
                        static_path.path
                    ),
                ));
            }
        }
        Ok(())
    }

    fn parts(&self) -> AppParts<'_> {
        AppParts {
            summary: self.summary.as_deref(),
            entry_point: self.entry_point.as_deref(),
            resources: &self.resources,
            services: &self.services,
            tasks: &self.tasks,
            hooks: &self.hooks,
            update: &self.update,
            web: self.web.as_ref(),
        }
    }
}

/// A bundle-level error without a line: the file is fine, the bundle disagrees with it.
fn unlocated(path: &str, message: String) -> SchemaError {
    SchemaError::Invalid(crate::yaml::FieldError {
        file: "metadata.yaml".to_owned(),
        line: None,
        path: path.to_owned(),
        message,
    })
}

impl Dependency {
    fn validate(&self, path: &str) -> Result<(), Issue> {
        check_dist_name(&self.name)
            .map_err(|error| Issue::new(join_path(path, "name"), error.to_string()))?;
        if normalize_name(&self.name) != self.name {
            return Err(Issue::new(
                join_path(path, "name"),
                format!(
                    "{:?} is not normalised (expected {:?})",
                    self.name,
                    normalize_name(&self.name)
                ),
            ));
        }
        if self.sha256.len() != 64
            || !self
                .sha256
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(Issue::new(
                join_path(path, "sha256"),
                format!("{:?} is not 64 lowercase hex digits", self.sha256),
            ));
        }
        let wheel = WheelName::parse(&self.wheel)
            .map_err(|error| Issue::new(join_path(path, "wheel"), error.to_string()))?;
        if wheel.name() != self.name || wheel.version() != &self.version {
            return Err(Issue::new(
                join_path(path, "wheel"),
                format!(
                    "{} is {} {}, not {} {}",
                    self.wheel,
                    wheel.name(),
                    wheel.version(),
                    self.name,
                    self.version
                ),
            ));
        }
        Ok(())
    }
}

impl ProjectMetadata {
    /// Parse and validate a project's metadata.yaml template; `file` labels errors.
    pub fn parse(text: &str, file: &str) -> Result<ProjectMetadata, SchemaError> {
        let template: ProjectMetadata = parse_document(text, file)?;
        template
            .validate()
            .map_err(|issue| issue.locate(text, file))?;
        Ok(template)
    }

    /// The app's top-level import package.
    pub fn module(&self) -> &str {
        self.module.as_str()
    }

    /// The distributions to install with `mode: local`, as written.
    pub fn local_dependencies(&self) -> impl Iterator<Item = &str> {
        self.local_dependencies.iter().map(String::as_str)
    }

    fn validate(&self) -> Result<(), Issue> {
        let computed_fields = [
            ("source-commit", self.computed_source_commit.is_some()),
            ("built-by", self.computed_built_by.is_some()),
            ("app-wheel", self.computed_app_wheel.is_some()),
            ("dependencies", self.computed_dependencies.is_some()),
        ];
        if let Some((field, _)) = computed_fields.iter().find(|(_, present)| *present) {
            return Err(Issue::new(
                *field,
                "pyapp-build computes this field: remove it from the project's metadata.yaml",
            ));
        }
        for (index, name) in self.local_dependencies.iter().enumerate() {
            check_dist_name(name).map_err(|error| {
                Issue::new(format!("local-dependencies[{index}]"), error.to_string())
            })?;
        }
        AppParts {
            summary: self.summary.as_deref(),
            entry_point: self.entry_point.as_deref(),
            resources: &self.resources,
            services: &self.services,
            tasks: &self.tasks,
            hooks: &self.hooks,
            update: &self.update,
            web: self.web.as_ref(),
        }
        .validate()
    }

    /// The bundle's metadata: this template completed with what pyapp-build computed.
    /// A value the template repeats from pyproject.toml must agree with it.
    pub fn into_metadata(self, computed: Computed) -> Result<Metadata, SchemaError> {
        self.complete(computed).map_err(|issue| {
            SchemaError::Invalid(crate::yaml::FieldError {
                file: "metadata.yaml".to_owned(),
                line: None,
                path: issue.path,
                message: issue.message,
            })
        })
    }

    fn complete(self, computed: Computed) -> Result<Metadata, Issue> {
        let name = match self.name {
            Some(name) => name,
            None => AppName::new(normalize_name(&computed.name))
                .map_err(|error| invalid_in_pyproject("name", &computed.name, &error))?,
        };
        let project_version: Version = computed
            .version
            .parse()
            .map_err(|error| invalid_in_pyproject("version", &computed.version, &error))?;
        let version = agree("version", self.version, Some(project_version))?
            .ok_or_else(|| Issue::new("version", "missing: set it in pyproject.toml"))?;
        let summary = agree("summary", self.summary, computed.summary)?;
        let project_requires = match &computed.requires_python {
            Some(text) => Some(
                text.parse::<VersionSpecifiers>()
                    .map_err(|error| invalid_in_pyproject("requires-python", text, &error))?,
            ),
            None => None,
        };
        let requires_python = agree("requires-python", self.requires_python, project_requires)?
            .ok_or_else(|| {
                Issue::new(
                    "requires-python",
                    "missing: set it in pyproject.toml or metadata.yaml",
                )
            })?;

        let local: BTreeSet<String> = self
            .local_dependencies
            .iter()
            .map(|name| normalize_name(name))
            .collect();
        let mut dependencies = Vec::with_capacity(computed.wheels.len());
        for (file, sha256) in &computed.wheels {
            let wheel = WheelName::parse(file)
                .map_err(|error| Issue::new("dependencies", error.to_string()))?;
            dependencies.push(Dependency {
                name: wheel.name().to_owned(),
                version: wheel.version().clone(),
                wheel: file.clone(),
                sha256: sha256.clone(),
                mode: if local.contains(wheel.name()) {
                    DependencyMode::Local
                } else {
                    DependencyMode::Shared
                },
            });
        }
        dependencies.sort_by(|a, b| a.wheel.cmp(&b.wheel));
        for (index, name) in self.local_dependencies.iter().enumerate() {
            let normalized = normalize_name(name);
            if !dependencies.iter().any(|d| d.name == normalized) {
                return Err(Issue::new(
                    format!("local-dependencies[{index}]"),
                    format!("{name} is not among the pinned distributions"),
                ));
            }
        }

        let metadata = Metadata {
            format: FORMAT_VERSION,
            name,
            version,
            summary,
            requires_python,
            module: self.module,
            entry_point: self.entry_point,
            interface: self.interface,
            source_commit: computed.source_commit,
            built_by: computed.built_by,
            app_wheel: computed.app_wheel,
            dependencies,
            system: self.system,
            resources: self.resources,
            services: self.services,
            tasks: self.tasks,
            hooks: self.hooks,
            update: self.update,
            isolation: self.isolation,
            web: self.web,
        };
        metadata.validate()?;
        Ok(metadata)
    }
}

fn invalid_in_pyproject(field: &str, value: &str, error: &dyn std::fmt::Display) -> Issue {
    Issue::new(
        field,
        format!("{value:?} from pyproject.toml is not valid: {error}"),
    )
}

/// The template's value if pyproject.toml has none or the same; an error naming both if
/// they differ.
fn agree<T: PartialEq + std::fmt::Display>(
    field: &str,
    template: Option<T>,
    pyproject: Option<T>,
) -> Result<Option<T>, Issue> {
    match (template, pyproject) {
        (Some(template), Some(pyproject)) if template != pyproject => Err(Issue::new(
            field,
            format!(
                "metadata.yaml says {template:?} but pyproject.toml says {pyproject:?}",
                template = template.to_string(),
                pyproject = pyproject.to_string()
            ),
        )),
        (Some(value), _) | (None, Some(value)) => Ok(Some(value)),
        (None, None) => Ok(None),
    }
}

/// The parts of metadata.yaml the bundle and the template share, for validation.
struct AppParts<'a> {
    summary: Option<&'a str>,
    entry_point: Option<&'a str>,
    resources: &'a Resources,
    services: &'a [Service],
    tasks: &'a [Task],
    hooks: &'a Hooks,
    update: &'a Update,
    web: Option<&'a Web>,
}

/// Placeholders that only a service's own settings give a value.
const SERVICE_ONLY: [Placeholder; 4] = [
    Placeholder::Listen,
    Placeholder::Port,
    Placeholder::Workers,
    Placeholder::Threads,
];

impl AppParts<'_> {
    fn validate(&self) -> Result<(), Issue> {
        if let Some(summary) = self.summary {
            check_one_line("summary", summary)?;
        }
        if let Some(entry_point) = self.entry_point {
            check_entry_point(entry_point)?;
        }
        self.check_resources()?;
        self.check_units()?;
        self.check_hooks()?;
        self.check_update()?;
        self.check_web()
    }

    fn check_resources(&self) -> Result<(), Issue> {
        let mut dirs = BTreeSet::new();
        for (index, dir) in self.resources.writable_dirs.iter().enumerate() {
            if !dirs.insert(dir) {
                return Err(Issue::new(
                    format!("resources.writable-dirs[{index}]"),
                    format!("{dir} is listed twice"),
                ));
            }
        }
        let mut urls = BTreeSet::new();
        for (index, static_path) in self.resources.static_paths.iter().enumerate() {
            let path = format!("resources.static[{index}]");
            check_static_url(&join_path(&path, "url"), &static_path.url)?;
            if static_path.url.trim_end_matches('/').is_empty() {
                return Err(Issue::new(
                    join_path(&path, "url"),
                    "\"/\" would hide the whole app behind its static files (serve them under a \
                     path, e.g. /static)",
                ));
            }
            check_relative_dir(&join_path(&path, "path"), &static_path.path)?;
            if !urls.insert(static_path.url.trim_end_matches('/')) {
                return Err(Issue::new(
                    join_path(&path, "url"),
                    format!("{} is listed twice", static_path.url),
                ));
            }
        }
        Ok(())
    }

    fn check_units(&self) -> Result<(), Issue> {
        let mut names = BTreeSet::new();
        let mut unique = |path: String, name: &UnitName| {
            if names.insert(name.as_str().to_owned()) {
                Ok(())
            } else {
                Err(Issue::new(
                    path,
                    format!("{name} is already the name of a service or task (they share the unit names)"),
                ))
            }
        };
        for (index, service) in self.services.iter().enumerate() {
            let path = format!("services[{index}]");
            unique(join_path(&path, "name"), &service.name)?;
            if let Some(description) = &service.description {
                check_one_line(&join_path(&path, "description"), description)?;
            }
            for (field, value) in [("workers", service.workers), ("threads", service.threads)] {
                if let Some(value) = value {
                    check_bounds(&join_path(&path, field), value, 1, 1024)?;
                }
            }
            check_service_placeholders(&join_path(&path, "command"), service)?;
        }
        for (index, task) in self.tasks.iter().enumerate() {
            let path = format!("tasks[{index}]");
            unique(join_path(&path, "name"), &task.name)?;
            if let Some(description) = &task.description {
                check_one_line(&join_path(&path, "description"), description)?;
            }
            check_no_service_placeholders(&join_path(&path, "command"), &task.command)?;
        }
        Ok(())
    }

    fn check_hooks(&self) -> Result<(), Issue> {
        for (name, command) in self.hooks.commands() {
            check_no_service_placeholders(&format!("hooks.{name}"), command)?;
        }
        check_bounds("hooks.timeout", self.hooks.timeout, 1, 86_400)
    }

    fn check_update(&self) -> Result<(), Issue> {
        check_bounds(
            "update.keep-releases",
            u32::from(self.update.keep_releases),
            2,
            100,
        )?;
        let Some(check) = &self.update.health_check else {
            return Ok(());
        };
        let path = "update.health-check";
        check_bounds(&join_path(path, "timeout"), check.timeout, 1, 3600)?;
        match (&check.http, &check.command) {
            (Some(_), Some(_)) | (None, None) => {
                Err(Issue::new(path, "give exactly one of http and command"))
            }
            (None, Some(command)) => {
                if check.service.is_some() {
                    return Err(Issue::new(
                        join_path(path, "service"),
                        "only used with http: remove it or probe with http",
                    ));
                }
                check_no_service_placeholders(&join_path(path, "command"), command)
            }
            (Some(http), None) => {
                if !http.starts_with('/')
                    || http.len() > 1024
                    || http.chars().any(|c| c.is_control() || c.is_whitespace())
                {
                    return Err(Issue::new(
                        join_path(path, "http"),
                        format!("{http:?} is not a URL path (starts with \"/\", no spaces)"),
                    ));
                }
                let Some(name) = &check.service else {
                    return Err(Issue::new(
                        join_path(path, "service"),
                        "required with http: the service whose address is probed",
                    ));
                };
                match self.services.iter().find(|service| &service.name == name) {
                    None => Err(Issue::new(
                        join_path(path, "service"),
                        format!("{name} is not one of the services"),
                    )),
                    Some(service) if service.listen == Listen::None => Err(Issue::new(
                        join_path(path, "service"),
                        format!("{name} does not listen (set listen: socket or port)"),
                    )),
                    Some(_) => Ok(()),
                }
            }
        }
    }
}

impl AppParts<'_> {
    /// `web` (FORMAT.md 3.1): a URL path to mount on, a listening service to proxy (named,
    /// or the only one), limits in range. Without a `web` section nothing is required.
    fn check_web(&self) -> Result<(), Issue> {
        let Some(web) = self.web else {
            return Ok(());
        };
        if web.mount != "/" {
            check_static_url("web.mount", &web.mount)?;
            if web.mount.ends_with('/') {
                return Err(Issue::new(
                    "web.mount",
                    format!(
                        "{:?} ends with \"/\" (write {:?})",
                        web.mount,
                        web.mount.trim_end_matches('/')
                    ),
                ));
            }
        }
        let listening: Vec<&Service> = self
            .services
            .iter()
            .filter(|service| service.listen != Listen::None)
            .collect();
        match &web.service {
            Some(name) => match self.services.iter().find(|service| &service.name == name) {
                None => {
                    return Err(Issue::new(
                        "web.service",
                        format!("{name} is not one of the services"),
                    ))
                }
                Some(service) if service.listen == Listen::None => {
                    return Err(Issue::new(
                        "web.service",
                        format!("{name} does not listen (set listen: socket or port)"),
                    ))
                }
                Some(_) => {}
            },
            None if listening.is_empty() => {
                return Err(Issue::new(
                    "web",
                    "no service listens (set listen: socket or port on the service the web \
                     server proxies)",
                ))
            }
            None if listening.len() > 1 => {
                let names: Vec<&str> = listening.iter().map(|s| s.name.as_str()).collect();
                return Err(Issue::new(
                    "web.service",
                    format!(
                        "required when several services listen ({}): name the one the web \
                         server proxies",
                        names.join(", ")
                    ),
                ));
            }
            None => {}
        }
        if parse_body_size(&web.max_body_size).is_none() {
            return Err(Issue::new(
                "web.max-body-size",
                format!(
                    "{:?} is not a size from 1 to 1G (write N, NK, NM or NG, e.g. 10M)",
                    web.max_body_size
                ),
            ));
        }
        check_bounds("web.timeout", web.timeout, 1, 3600)
    }
}

/// `{listen}` only in listening services, `{port}` only with `listen: port`, `{workers}` and
/// `{threads}` only where set.
fn check_service_placeholders(path: &str, service: &Service) -> Result<(), Issue> {
    for placeholder in service.command.placeholders() {
        let problem = match placeholder {
            Placeholder::Listen if service.listen == Listen::None => "needs listen: socket or port",
            Placeholder::Port if service.listen != Listen::Port => "needs listen: port",
            Placeholder::Workers if service.workers.is_none() => "needs workers to be set",
            Placeholder::Threads if service.threads.is_none() => "needs threads to be set",
            _ => continue,
        };
        return Err(Issue::new(path, format!("{placeholder} {problem}")));
    }
    Ok(())
}

fn check_no_service_placeholders(path: &str, command: &Command) -> Result<(), Issue> {
    match command
        .placeholders()
        .into_iter()
        .find(|placeholder| SERVICE_ONLY.contains(placeholder))
    {
        Some(placeholder) => Err(Issue::new(
            path,
            format!("{placeholder} is only available in services"),
        )),
        None => Ok(()),
    }
}

fn check_bounds(path: &str, value: u32, min: u32, max: u32) -> Result<(), Issue> {
    if value < min {
        Err(Issue::new(path, format!("{value} is below min {min}")))
    } else if value > max {
        Err(Issue::new(path, format!("{value} is above max {max}")))
    } else {
        Ok(())
    }
}

fn check_one_line(path: &str, text: &str) -> Result<(), Issue> {
    if text.chars().any(char::is_control) {
        Err(Issue::new(
            path,
            "must be one line without control characters",
        ))
    } else if text.ends_with('\\') {
        Err(Issue::new(
            path,
            "must not end with `\\` (unit files read it as a line continuation)",
        ))
    } else if text.chars().count() > MAX_ONE_LINE {
        Err(Issue::new(
            path,
            format!(
                "is {} characters long (at most {MAX_ONE_LINE})",
                text.chars().count()
            ),
        ))
    } else {
        Ok(())
    }
}

/// `module.sub:attr` or `module.sub:factory()`, each part a Python identifier.
fn check_entry_point(entry_point: &str) -> Result<(), Issue> {
    let dotted = |text: &str| {
        !text.is_empty()
            && text.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let valid = match entry_point.split_once(':') {
        Some((module, attr)) => dotted(module) && dotted(attr.strip_suffix("()").unwrap_or(attr)),
        None => false,
    };
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            "entry-point",
            format!("{entry_point:?} is not \"module:attr\" or \"module:factory()\""),
        ))
    }
}

/// A URL path: starts with `/`, no `..` segment, no `//`, only unreserved characters and `/`.
fn check_static_url(path: &str, url: &str) -> Result<(), Issue> {
    let valid = url.starts_with('/')
        && !url.contains("//")
        && !url
            .split('/')
            .any(|segment| segment == ".." || segment == ".")
        && url
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~'));
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            path,
            format!(
                "{url:?} is not a URL path (starts with \"/\"; letters, digits, \"-_.~/\"; no \"..\" or \"//\")"
            ),
        ))
    }
}

/// A relative directory inside `src/`: no empty, `.` or `..` component, no `\`.
fn check_relative_dir(path: &str, dir: &str) -> Result<(), Issue> {
    let valid = !dir.is_empty()
        && !dir.starts_with('/')
        && !dir.contains('\\')
        && !dir.chars().any(char::is_control)
        && dir
            .trim_end_matches('/')
            .split('/')
            .all(|component| !matches!(component, "" | "." | ".."));
    if valid {
        Ok(())
    } else {
        Err(Issue::new(
            path,
            format!("{dir:?} is not a relative path inside src/ (no \"..\", no leading \"/\")"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLASK_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const HELLO_SHA: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    /// The example of FORMAT.md 3.1.
    const BUNDLE_METADATA: &str = r#"format: 1
name: hello
version: 1.2.0
summary: A small greeting service
requires-python: ">=3.9"
module: hello
entry-point: hello.web:app
interface: wsgi
source-commit: 3f2c
built-by: pyapp-build 0.1.0
app-wheel: hello-1.2.0-py3-none-any.whl
dependencies:
  - name: flask
    version: 3.0.3
    wheel: flask-3.0.3-py3-none-any.whl
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
    mode: shared
  - name: hello
    version: 1.2.0
    wheel: hello-1.2.0-py3-none-any.whl
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
    mode: local
system:
  packages: [libpq5]
  python-modules: [apt]
resources:
  writable-dirs: [sessions, cache]
  static:
    - url: /static
      path: hello/static
services:
  - name: web
    description: Hello web server
    command: [gunicorn, --bind, "{listen}", --workers, "{workers}", hello.web:app]
    listen: socket
    workers: 2
    threads: 4
    pid-file: false
    restart: on-failure
tasks:
  - name: cleanup
    description: Remove old sessions
    schedule: "*-*-* 03:00:00"
    command: hello-cleanup
hooks:
  post-install: hello-migrate
  pre-update: null
  post-update: hello-migrate
  pre-delete: null
  timeout: 300
update:
  policy: same-major
  keep-releases: 3
  health-check:
    service: web
    http: /health
    timeout: 30
isolation: none
web:
  mount: /hello
  service: web
  max-body-size: 10M
  timeout: 60
"#;

    fn parsed(text: &str) -> Metadata {
        Metadata::parse(text, "metadata.yaml").unwrap_or_else(|error| panic!("{error}"))
    }

    fn refusal(text: &str) -> String {
        match Metadata::parse(text, "metadata.yaml") {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    /// The example with `from` replaced by `to` (which must occur).
    fn edited(from: &str, to: &str) -> String {
        assert!(BUNDLE_METADATA.contains(from), "{from}");
        BUNDLE_METADATA.replacen(from, to, 1)
    }

    #[test]
    fn reads_the_spec_example() {
        let metadata = parsed(BUNDLE_METADATA);
        assert_eq!(metadata.name.as_str(), "hello");
        assert_eq!(metadata.version.to_string(), "1.2.0");
        assert_eq!(metadata.requires_python.to_string(), ">=3.9");
        assert_eq!(metadata.services[0].listen, Listen::Socket);
        assert_eq!(metadata.services[0].restart, Restart::OnFailure);
        assert_eq!(metadata.tasks[0].schedule.as_str(), "*-*-* 03:00:00");
        assert_eq!(metadata.hooks.pre_update, None);
        assert_eq!(metadata.dependencies[1].mode, DependencyMode::Local);
        assert_eq!(metadata.update.policy, Policy::SameMajor);
        assert_eq!(metadata.resources.static_paths[0].path, "hello/static");
    }

    #[test]
    fn written_yaml_reads_back_the_same() {
        let metadata = parsed(BUNDLE_METADATA);
        let written = metadata.to_yaml().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed(&written), metadata, "{written}");
        assert!(
            written.starts_with("format: 1\nname: hello\nversion: \"1.2.0\"\n"),
            "{written}"
        );
        let again = parsed(&written)
            .to_yaml()
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(again, written);
    }

    #[test]
    fn defaults_apply() {
        let minimal = "format: 1\nname: x\nversion: '1.0'\nrequires-python: '>=3.9'\nmodule: x\n\
                       source-commit: null\nbuilt-by: pyapp-build 0.1.0\n\
                       app-wheel: x-1.0-py3-none-any.whl\ndependencies:\n  - name: x\n    \
                       version: '1.0'\n    wheel: x-1.0-py3-none-any.whl\n    \
                       sha256: 2222222222222222222222222222222222222222222222222222222222222222\n    \
                       mode: shared\n";
        let metadata = parsed(minimal);
        assert_eq!(metadata.interface, Interface::Wsgi);
        assert_eq!(metadata.hooks.timeout, 300);
        assert_eq!(metadata.update.keep_releases, 3);
        assert_eq!(metadata.isolation, Isolation::None);
        assert_eq!(metadata.source_commit, None);
    }

    #[test]
    fn names_are_checked_with_their_line() {
        assert_eq!(
            refusal(&edited("  - name: web", "  - name: Web")),
            "metadata.yaml:32: services[0].name: \"Web\" is not a valid name (expected \
             [a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\")"
        );
    }

    #[test]
    fn schedule_is_checked() {
        assert_eq!(
            refusal(&edited("\"*-*-* 03:00:00\"", "\"25:00\"")),
            "metadata.yaml:43: tasks[0].schedule: \"25:00\" is not a valid calendar \
             expression: hour 25 out of range 0..23"
        );
    }

    #[test]
    fn service_and_task_names_share_one_namespace() {
        assert_eq!(
            refusal(&edited("  - name: cleanup", "  - name: web")),
            "metadata.yaml:41: tasks[0].name: web is already the name of a service or task \
             (they share the unit names)"
        );
    }

    #[test]
    fn placeholders_must_have_values() {
        assert_eq!(
            refusal(&edited("\"{listen}\"", "\"{port}\"")),
            "metadata.yaml:34: services[0].command: {port} needs listen: port"
        );
        assert_eq!(
            refusal(&edited("    workers: 2\n", "")),
            "metadata.yaml:34: services[0].command: {workers} needs workers to be set"
        );
        assert_eq!(
            refusal(&edited(
                "command: hello-cleanup",
                "command: [hello-cleanup, \"{listen}\"]"
            )),
            "metadata.yaml:44: tasks[0].command: {listen} is only available in services"
        );
    }

    #[test]
    fn health_check_rules() {
        assert_eq!(
            refusal(&edited(
                "    http: /health\n",
                "    http: /health\n    command: [check]\n"
            )),
            "metadata.yaml:54: update.health-check: give exactly one of http and command"
        );
        assert_eq!(
            refusal(
                &edited("    listen: socket\n", "").replace("\"{listen}\"", "unix:/tmp/web.sock")
            ),
            "metadata.yaml:54: update.health-check.service: web does not listen (set listen: \
             socket or port)"
        );
        assert_eq!(
            refusal(&edited("  keep-releases: 3", "  keep-releases: 1")),
            "metadata.yaml:53: update.keep-releases: 1 is below min 2"
        );
    }

    #[test]
    fn web_settings_and_the_proxied_service() {
        let metadata = parsed(BUNDLE_METADATA);
        let web = metadata.web_settings();
        assert_eq!((web.prefix(), web.max_body_bytes()), ("/hello", 10 << 20));
        assert_eq!(
            metadata.proxied_service().map(|s| s.name.as_str()),
            Some("web")
        );
        // Without a web section: mounted at "/", the only listening service proxied.
        let plain = parsed(&edited(
            "web:\n  mount: /hello\n  service: web\n  max-body-size: 10M\n  timeout: 60\n",
            "",
        ));
        assert_eq!(plain.web, None);
        assert_eq!(plain.web_settings().prefix(), "");
        assert_eq!(plain.web_settings().timeout, 60);
        assert_eq!(
            plain.proxied_service().map(|s| s.name.as_str()),
            Some("web")
        );
        let sizes = [("512", 512), ("64K", 64 << 10), ("1G", 1 << 30)];
        for (text, bytes) in sizes {
            assert_eq!(parse_body_size(text), Some(bytes), "{text}");
        }
        for bad in [
            "",
            "0",
            "2G",
            "1.5M",
            "10m",
            "M",
            "-1",
            "10 M",
            "99999999999999",
        ] {
            assert_eq!(parse_body_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn web_rules() {
        let web = |from: &str, to: &str| refusal(&edited(from, to));
        assert_eq!(
            web("  mount: /hello\n", "  mount: /hello/\n"),
            "metadata.yaml:60: web.mount: \"/hello/\" ends with \"/\" (write \"/hello\")"
        );
        assert_eq!(
            web("  mount: /hello\n", "  mount: /a b\n"),
            "metadata.yaml:60: web.mount: \"/a b\" is not a URL path (starts with \"/\"; \
             letters, digits, \"-_.~/\"; no \"..\" or \"//\")"
        );
        assert_eq!(
            web("  service: web\n  max", "  service: api\n  max"),
            "metadata.yaml:61: web.service: api is not one of the services"
        );
        assert_eq!(
            web("  max-body-size: 10M", "  max-body-size: 3G"),
            "metadata.yaml:62: web.max-body-size: \"3G\" is not a size from 1 to 1G (write N, \
             NK, NM or NG, e.g. 10M)"
        );
        assert_eq!(
            web("  timeout: 60", "  timeout: 0"),
            "metadata.yaml:63: web.timeout: 0 is below min 1"
        );
        assert_eq!(
            web("  - url: /static", "  - url: /"),
            "metadata.yaml:29: resources.static[0].url: \"/\" would hide the whole app behind \
             its static files (serve them under a path, e.g. /static)"
        );
        // A second listening service: web.service says which one is proxied, or is required.
        let two = BUNDLE_METADATA.replacen(
            "tasks:\n",
            "  - name: api\n    command: [api, \"{listen}\"]\n    listen: port\ntasks:\n",
            1,
        );
        assert_eq!(
            parsed(&two).proxied_service().map(|s| s.name.as_str()),
            Some("web")
        );
        let unnamed = two.replacen("  service: web\n  max", "  max", 1);
        assert!(refusal(&unnamed).ends_with(
            "web.service: required when several services listen (web, api): name the one \
             the web server proxies"
        ));
        let no_web = two.replacen(
            "web:\n  mount: /hello\n  service: web\n  max-body-size: 10M\n  timeout: 60\n",
            "",
            1,
        );
        assert_eq!(parsed(&no_web).proxied_service(), None);
        let quiet = BUNDLE_METADATA
            .replacen("    listen: socket\n", "", 1)
            .replace("\"{listen}\"", "unix:/tmp/web.sock")
            .replacen(
                "  health-check:\n    service: web\n    http: /health\n    timeout: 30\n",
                "",
                1,
            );
        assert_eq!(
            refusal(&quiet),
            "metadata.yaml:56: web.service: web does not listen (set listen: socket or port)"
        );
        assert!(
            refusal(&quiet.replacen("  service: web\n  max", "  max", 1)).ends_with(
                "web: no service listens (set listen: socket or port on the service the web \
             server proxies)"
            )
        );
    }

    #[test]
    fn dependencies_are_checked() {
        assert_eq!(
            refusal(&edited("wheel: flask-3.0.3-py3", "wheel: flask-3.0.4-py3")),
            "metadata.yaml:15: dependencies[0].wheel: flask-3.0.4-py3-none-any.whl is flask \
             3.0.4, not flask 3.0.3"
        );
        assert_eq!(
            refusal(&edited("  - name: flask", "  - name: Flask")),
            "metadata.yaml:13: dependencies[0].name: \"Flask\" is not normalised (expected \
             \"flask\")"
        );
        assert_eq!(
            refusal(&edited("app-wheel: hello-1.2.0", "app-wheel: hello-1.2.1")),
            "metadata.yaml:11: app-wheel: hello-1.2.1-py3-none-any.whl is not among the \
             dependencies"
        );
        assert_eq!(
            refusal(&edited("    mode: shared", "    mode: global")),
            "metadata.yaml:17: dependencies[0].mode: \"global\" is not one of: shared, local"
        );
    }

    #[test]
    fn versions_are_pep_440() {
        assert_eq!(
            refusal(&edited("version: 1.2.0\n", "version: 1.2.x\n")),
            "metadata.yaml:3: version: after parsing `1.2`, found `.x`, which is not part of a \
             valid version"
        );
        assert_eq!(
            refusal(&edited("\">=3.9\"", "\">=3.9,<<4\"")),
            "metadata.yaml:5: requires-python: Failed to parse version: no such comparison \
             operator \"<<\", must be one of ~= == != <= >= < > ===:"
        );
        // A line break in the value would cut the parser's message short.
        assert_eq!(
            refusal(&edited(
                "version: 1.2.0\n",
                "version: \"1.2.0\\nUser=root\"\n"
            )),
            "metadata.yaml:3: version: \"1.2.0\\nUser=root\" contains a control character"
        );
    }

    #[test]
    fn dependencies_match_the_bundle() {
        let metadata = parsed(BUNDLE_METADATA);
        let flask = (
            "flask-3.0.3-py3-none-any.whl".to_owned(),
            FLASK_SHA.to_owned(),
        );
        let hello = (
            "hello-1.2.0-py3-none-any.whl".to_owned(),
            HELLO_SHA.to_owned(),
        );
        assert_eq!(
            metadata.check_dependencies(&[flask.clone(), hello.clone()]),
            Ok(())
        );
        let message = |files: &[(String, String)]| {
            metadata
                .check_dependencies(files)
                .map_err(|error| error.to_string())
                .err()
        };
        assert_eq!(
            message(std::slice::from_ref(&flask)).as_deref(),
            Some(
                "metadata.yaml: dependencies: hello-1.2.0-py3-none-any.whl is listed but \
                 deps/hello-1.2.0-py3-none-any.whl is not in the bundle"
            )
        );
        let extra = ("six-1.0-py3-none-any.whl".to_owned(), FLASK_SHA.to_owned());
        assert_eq!(
            message(&[flask.clone(), hello.clone(), extra]).as_deref(),
            Some("metadata.yaml: dependencies: deps/six-1.0-py3-none-any.whl is in the bundle but not listed")
        );
        let tampered = (flask.0.clone(), HELLO_SHA.to_owned());
        assert_eq!(
            message(&[tampered, hello]),
            Some(format!(
                "metadata.yaml: dependencies: deps/flask-3.0.3-py3-none-any.whl has sha256 \
                 {HELLO_SHA}, but metadata.yaml lists {FLASK_SHA}"
            ))
        );
    }

    #[test]
    fn static_paths_must_exist() {
        let metadata = parsed(BUNDLE_METADATA);
        assert_eq!(
            metadata.check_static_paths(["src/hello/static/app.css", "src/hello/web.py"]),
            Ok(())
        );
        assert_eq!(
            metadata
                .check_static_paths(["src/hello/staticfile"])
                .map_err(|error| error.to_string()),
            Err(
                "metadata.yaml: resources.static[0].path: hello/static is not a directory of \
                 the app's source"
                    .to_owned()
            )
        );
        assert_eq!(
            refusal(&edited("      path: hello/static", "      path: ../etc")),
            "metadata.yaml:30: resources.static[0].path: \"../etc\" is not a relative path \
             inside src/ (no \"..\", no leading \"/\")"
        );
    }

    const TEMPLATE: &str = "format: 1\nmodule: hello\nentry-point: hello.web:app\n\
                            local-dependencies: [Flask]\n\
                            services:\n  - name: web\n    command: gunicorn\n";

    fn computed() -> Computed {
        Computed {
            name: "Hello".to_owned(),
            version: "1.2.0".to_owned(),
            summary: Some("A small greeting service".to_owned()),
            requires_python: Some(">=3.9".to_owned()),
            source_commit: None,
            built_by: "pyapp-build 0.1.0".to_owned(),
            app_wheel: "hello-1.2.0-py3-none-any.whl".to_owned(),
            wheels: vec![
                (
                    "hello-1.2.0-py3-none-any.whl".to_owned(),
                    HELLO_SHA.to_owned(),
                ),
                (
                    "flask-3.0.3-py3-none-any.whl".to_owned(),
                    FLASK_SHA.to_owned(),
                ),
            ],
        }
    }

    fn template(text: &str) -> ProjectMetadata {
        ProjectMetadata::parse(text, "metadata.yaml").unwrap_or_else(|error| panic!("{error}"))
    }

    #[test]
    fn template_is_completed() {
        let metadata = template(TEMPLATE)
            .into_metadata(computed())
            .unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(metadata.name.as_str(), "hello");
        assert_eq!(
            metadata.summary.as_deref(),
            Some("A small greeting service")
        );
        let rows: Vec<(&str, DependencyMode)> = metadata
            .dependencies
            .iter()
            .map(|d| (d.name.as_str(), d.mode))
            .collect();
        assert_eq!(
            rows,
            [
                ("flask", DependencyMode::Local),
                ("hello", DependencyMode::Shared)
            ]
        );
        let written = metadata.to_yaml().unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(parsed(&written), metadata);
    }

    #[test]
    fn the_fixture_template_is_valid() {
        let text = include_str!("../../fixtures/hello/metadata.yaml");
        let metadata = template(text).into_metadata(computed());
        assert!(metadata.is_ok(), "{metadata:?}");
    }

    fn template_refusal(text: &str, computed: Computed) -> String {
        match ProjectMetadata::parse(text, "metadata.yaml") {
            Ok(template) => match template.into_metadata(computed) {
                Ok(metadata) => panic!("accepted: {metadata:?}"),
                Err(error) => error.to_string(),
            },
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn template_must_agree_with_pyproject() {
        assert_eq!(
            template_refusal(&format!("{TEMPLATE}version: 1.3.0\n"), computed()),
            "metadata.yaml: version: metadata.yaml says \"1.3.0\" but pyproject.toml says \"1.2.0\""
        );
        assert_eq!(
            template_refusal(
                &format!("{TEMPLATE}requires-python: '>=3.11'\n"),
                computed()
            ),
            "metadata.yaml: requires-python: metadata.yaml says \">=3.11\" but pyproject.toml \
             says \">=3.9\""
        );
        let no_python = Computed {
            requires_python: None,
            ..computed()
        };
        assert_eq!(
            template_refusal(TEMPLATE, no_python),
            "metadata.yaml: requires-python: missing: set it in pyproject.toml or metadata.yaml"
        );
        let only_hello = Computed {
            wheels: vec![(
                "hello-1.2.0-py3-none-any.whl".to_owned(),
                HELLO_SHA.to_owned(),
            )],
            ..computed()
        };
        assert_eq!(
            template_refusal(TEMPLATE, only_hello),
            "metadata.yaml: local-dependencies[0]: Flask is not among the pinned distributions"
        );
    }

    #[test]
    fn template_must_not_set_computed_fields() {
        assert_eq!(
            template_refusal(&format!("{TEMPLATE}app-wheel: x.whl\n"), computed()),
            "metadata.yaml:8: app-wheel: pyapp-build computes this field: remove it from the \
             project's metadata.yaml"
        );
        assert_eq!(
            template_refusal(&format!("{TEMPLATE}bogus: 1\n"), computed()),
            "metadata.yaml:8: bogus: unknown field (known fields: format, name, version, \
             summary, requires-python, module, entry-point, interface, local-dependencies, \
             system, resources, services, tasks, hooks, update, isolation, web, \
             source-commit, built-by, app-wheel, dependencies)"
        );
    }
}
