//! metadata.yaml (FORMAT.md 3): the bundle's form, [`Metadata`], and the project's template,
//! [`ProjectMetadata`], which pyapp-build completes from pyproject.toml and the wheels.
//!
//! Parsing validates every rule that needs only the file; the rules that need the bundle's
//! files are separate methods ([`Metadata::check_dependencies`], [`Metadata::check_static_paths`]).

mod project;
mod validate;

use pep440_rs::{Version, VersionSpecifiers};
use serde::{Deserialize, Serialize};

use crate::calendar::Schedule;
use crate::command::{Command, Placeholder};
use crate::names::{AppName, DebianPackage, PythonModule, UnitName, WritableDirName};
use crate::yaml::{parse_document, SchemaError};

pub use project::{Computed, ProjectMetadata};

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

/// A URL path served from a directory of the app's source tree, or of its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticPath {
    /// Starts with `/`; no `..` or `//`.
    pub url: String,
    /// `from: src`: relative to `src/`, a directory in the bundle; `from: data`: a directory
    /// name of `data/` (a writable-directory name), made at install.
    pub path: String,
    /// Where `path` is.
    #[serde(default)]
    pub from: StaticRoot,
}

/// The tree a static directory is in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StaticRoot {
    /// The release's source tree: files the bundle carries.
    #[default]
    Src,
    /// The app's `data/`: files a hook makes (Django's `collectstatic`).
    Data,
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
    /// The signal that makes the server reload gracefully (`ExecReload=`): `hup` for
    /// gunicorn, which then replaces its workers without closing its socket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reload_signal: Option<ReloadSignal>,
    /// Seconds a stopping instance may drain its requests after `SIGTERM` before it is
    /// killed (`TimeoutStopSec=`).
    #[serde(default = "default_stop_grace")]
    pub stop_grace: u32,
    /// Hardening settings this service's server cannot run under (FORMAT.md 8.4).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relax: Vec<Relaxation>,
}

/// How long a stopping service drains when metadata.yaml does not say.
pub const DEFAULT_STOP_GRACE: u32 = 30;

fn default_stop_grace() -> u32 {
    DEFAULT_STOP_GRACE
}

impl Service {
    /// Whether the service's server takes its listening socket from systemd (FORMAT.md
    /// 8.8): gunicorn reads `LISTEN_FDS` itself, another server is handed `{fd}`. Such a
    /// service gets an `APP-NAME.socket` unit and upgrades without a refused connection.
    /// A forking server (`pid-file`) does not: `LISTEN_PID` names the process systemd
    /// started, not the one that listens.
    pub fn takes_socket(&self) -> bool {
        if self.listen == Listen::None || self.pid_file {
            return false;
        }
        self.runs_gunicorn() || self.command.placeholders().contains(&Placeholder::Fd)
    }

    /// Whether the service's server serves every socket systemd passes it, not only
    /// `{fd}`: gunicorn listens on all of `LISTEN_FDS`. Such a service's instances are also
    /// reached on a private socket of their own during a handover (FORMAT.md 8.8).
    pub fn serves_every_socket(&self) -> bool {
        self.takes_socket() && self.runs_gunicorn()
    }

    /// Whether the service's program is gunicorn, by the last part of its path.
    pub fn runs_gunicorn(&self) -> bool {
        let program = self.command.program();
        program.rsplit('/').next() == Some("gunicorn")
    }
}

/// A signal a server reloads on (`ExecReload=/bin/kill -s SIGNAL $MAINPID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReloadSignal {
    Hup,
    Usr1,
    Usr2,
}

impl ReloadSignal {
    /// Its name for `kill -s`.
    pub fn name(self) -> &'static str {
        match self {
            ReloadSignal::Hup => "HUP",
            ReloadSignal::Usr1 => "USR1",
            ReloadSignal::Usr2 => "USR2",
        }
    }
}

/// A hardening setting of FORMAT.md 8.4 that a service may relax, because a real server
/// breaks under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Relaxation {
    /// The `@setuid` calls: gunicorn before 21 calls `setuid`/`initgroups` on its own user
    /// in every worker.
    Setuid,
    /// The `@resources` calls (`setpriority`, `sched_setaffinity`, `setrlimit`): a server
    /// that sets its own nice level, CPU affinity or limits.
    Resources,
    /// Memory both writable and executable: JITs (PyPy, numba), libffi closures on old
    /// systems.
    WriteExecuteMemory,
    /// All of `/proc`, not only the service's processes: psutil, `/proc/meminfo`.
    Proc,
    /// `AF_NETLINK` sockets: listing network interfaces (`getifaddrs`, psutil).
    Netlink,
}

impl Relaxation {
    /// Its name in metadata.yaml.
    pub fn name(self) -> &'static str {
        match self {
            Relaxation::Setuid => "setuid",
            Relaxation::Resources => "resources",
            Relaxation::WriteExecuteMemory => "write-execute-memory",
            Relaxation::Proc => "proc",
            Relaxation::Netlink => "netlink",
        }
    }
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
    /// The web server takes the mount off the path it passes on (`/blog/x` reaches the app
    /// as `/x`) and says it in `X-Forwarded-Prefix`; the app gets no `SCRIPT_NAME`.
    #[serde(default)]
    pub strip_prefix: bool,
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
            strip_prefix: false,
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
}

#[cfg(test)]
mod tests;
