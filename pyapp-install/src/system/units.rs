//! The systemd units of an app (FORMAT.md 8), generated from its metadata: one
//! `APP-SERVICE.service` per service, `APP-TASK.service` + `APP-TASK.timer` per task, and
//! for a service whose server takes its socket from systemd ([`Service::takes_socket`]) the
//! units of the handover (FORMAT.md 8.8): `APP-SERVICE.socket` owns the listening socket,
//! `APP-SERVICE.check.service` runs a new release on the private
//! `APP-SERVICE.check.socket` for its health check, and `APP-SERVICE.next.service` serves
//! the public socket beside `APP-SERVICE.service` while that one restarts. When the server
//! serves every socket it is passed (gunicorn), the main and next instances also listen on
//! private sockets of their own (`APP-SERVICE.main.socket`, `APP-SERVICE.next.socket`), on
//! which the handover waits for each to answer before the other stops. Pure
//! text generation: [`crate::system::systemd`] writes and registers the files. Every outside value
//! goes through [`escape`], so systemd reads back exactly what the metadata says, or the
//! unit is refused.

pub mod escape;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pyapp_bundle::command::{Command, CommandError, Placeholder, PlaceholderValues};
use pyapp_bundle::metadata::{Isolation, Listen, Metadata, Relaxation, Restart, Service, Task};

use anyhow::Result;
use pyapp_cli::Refusal;

use crate::app::env::AppEnvironment;
use crate::app::tree::AppTree;
use crate::system::systemd::MARKER_PREFIX;
use crate::system::web;

pub use crate::system::systemd::UnitFile;

pub use escape::EscapeError;

/// The mode of [`check_socket_dir`] (root:APP) and of the sockets in it (root:APP, made by
/// systemd): root and the app's group connect, only root creates or replaces.
pub const CHECK_DIR_MODE: u32 = 0o750;
const CHECK_SOCKET_MODE: &str = "0660";

/// The descriptor systemd passes the first socket as (`SD_LISTEN_FDS_START`).
const LISTEN_FD: u32 = 3;

/// The lasting directories a unit may write to (`ReadWritePaths=`).
const WRITABLE_DIRS: [&str; 4] = ["data", "tmp", "run", "log"];

/// The mode of the environment file: systemd (root) reads it; it may hold secrets.
const ENVIRONMENT_FILE_MODE: u32 = 0o600;

/// Home directory trees that `ProtectHome=` hides.
const HOME_TREES: [&str; 3] = ["/home/", "/root/", "/run/user/"];

/// What a chrooted unit sees of the host, read-only (`-`: skipped when missing): the
/// programs and libraries, the dynamic loader's cache, name resolution, TLS roots, time zone.
const CHROOT_HOST_PATHS: [&str; 17] = [
    "/usr",
    "-/bin",
    "-/sbin",
    "-/lib",
    "-/lib32",
    "-/lib64",
    "-/etc/ld.so.cache",
    "-/etc/ssl",
    "-/etc/ca-certificates",
    "-/etc/resolv.conf",
    "-/etc/hosts",
    "-/etc/host.conf",
    "-/etc/gai.conf",
    "-/etc/nsswitch.conf",
    "-/etc/localtime",
    "-/etc/mime.types",
    "-/etc/passwd",
];

/// The hardening every unit gets (see FORMAT.md 8.3): scored by `systemd-analyze security`.
const HARDENING: &str = "\
NoNewPrivileges=yes
PrivateTmp=yes
PrivateDevices=yes
DevicePolicy=closed
PrivateUsers=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
KeyringMode=private
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
SystemCallArchitectures=native
CapabilityBoundingSet=
AmbientCapabilities=
";

/// The directive that relaxes `relaxation`, written after [`HARDENING`]: a later
/// boolean or `ProcSubset=` line wins, a later allow-list `SystemCallFilter=` or
/// `RestrictAddressFamilies=` line adds to the list.
fn relaxed(relaxation: Relaxation) -> (&'static str, &'static str) {
    match relaxation {
        Relaxation::Setuid => ("SystemCallFilter", "@setuid"),
        Relaxation::Resources => ("SystemCallFilter", "@resources"),
        Relaxation::WriteExecuteMemory => ("MemoryDenyWriteExecute", "no"),
        Relaxation::Proc => ("ProcSubset", "all"),
        Relaxation::Netlink => ("RestrictAddressFamilies", "AF_NETLINK"),
    }
}

/// A unit that cannot be generated: the metadata (or a path) holds something unit files
/// cannot carry.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    #[error("{unit}: {field}: {source}")]
    Value {
        unit: String,
        field: &'static str,
        source: EscapeError,
    },
    #[error("{unit}: command: {source}")]
    Command { unit: String, source: CommandError },
    #[error("{unit}: no port was allocated for this `listen: port` service")]
    NoPort { unit: String },
}

/// Everything about the installation the units need besides the metadata. Paths are
/// run-time paths (without `--root`).
#[derive(Debug, Clone)]
pub struct UnitContext<'a> {
    /// The app's tree (its run-time directory is what the units name).
    pub tree: &'a AppTree,
    /// The app's system user and group (`User=`, `Group=`).
    pub user: &'a str,
    pub group: &'a str,
    /// The configuration file (`{config}`).
    pub config_file: &'a Path,
    /// The environment of every unit: `AppEnvironment::new(tree, version,
    /// APP/current/venv, config_file)`; each service adds its own variables to it.
    pub environment: &'a AppEnvironment,
    /// The port of each `listen: port` service, by service name (see [`crate::app::ports`]).
    pub ports: &'a BTreeMap<String, u16>,
    /// The app's `EnvironmentFile=` (run-time path), when configuration.yaml sets variables.
    pub environment_file: Option<&'a Path>,
    /// The base interpreter the venv was built on (the receipt's `python`): its prefix is
    /// bound into the units when it lives under a home directory or in a chroot.
    pub python: &'a Path,
    /// The values of `{mount}` and `{config.KEY}` (the configuration file as it is now).
    pub app_values: &'a PlaceholderValues,
}

/// The name of a service's or task's unit, without suffix: `hello-web`.
pub fn unit_stem(app: &str, name: &str) -> String {
    format!("{app}-{name}")
}

/// The mode of the public socket of a `listen: socket` service: whoever reaches it (the
/// app's `run/`, which only the app and the web server's group traverse) may connect, as
/// with the socket gunicorn binds itself. systemd (root) never changes its owner: root
/// does nothing to a path in `run/` but bind it (after unlinking what is there).
const PUBLIC_SOCKET_MODE: &str = "0666";

/// One instance of a service whose server takes its socket (FORMAT.md 8.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instance {
    /// `APP-SERVICE.service`, on the public `APP-SERVICE.socket`.
    Main,
    /// `APP-SERVICE.check.service`: a new release on the private `APP-SERVICE.check.socket`,
    /// which only root can connect to, until its health check passed.
    Check,
    /// `APP-SERVICE.next.service`: the same release as `Main`, on the public socket,
    /// serving while `Main` drains and restarts.
    Next,
}

/// Every instance, in the order their units are generated.
const INSTANCES: [Instance; 3] = [Instance::Main, Instance::Check, Instance::Next];

impl Instance {
    /// The service unit of this instance of `service`.
    pub fn service_unit(self, app: &str, service: &str) -> String {
        let stem = unit_stem(app, service);
        match self {
            Instance::Main => format!("{stem}.service"),
            Instance::Check => format!("{stem}.check.service"),
            Instance::Next => format!("{stem}.next.service"),
        }
    }

    /// The socket unit this instance takes its listening socket from.
    pub fn socket_unit(self, app: &str, service: &str) -> String {
        match self {
            Instance::Main | Instance::Next => format!("{}.socket", unit_stem(app, service)),
            Instance::Check => self.private_socket_unit(app, service),
        }
    }

    /// The socket unit of this instance's private socket ([`private_socket`]): the check
    /// instance's only one; the main and next instances' second one, when their server
    /// serves every socket it is passed ([`Service::serves_every_socket`]), so that root
    /// can tell when this instance answers while another shares its public socket.
    pub fn private_socket_unit(self, app: &str, service: &str) -> String {
        let stem = unit_stem(app, service);
        match self {
            Instance::Main => format!("{stem}.main.socket"),
            Instance::Check => format!("{stem}.check.socket"),
            Instance::Next => format!("{stem}.next.socket"),
        }
    }

    /// The name of this instance's private socket in [`private_socket_dir`].
    fn private_socket_name(self, service: &str) -> String {
        match self {
            Instance::Main => format!("{service}.main.sock"),
            Instance::Check => format!("{service}.sock"),
            Instance::Next => format!("{service}.next.sock"),
        }
    }

    /// Whether this instance of `service` has a private socket.
    fn has_private_socket(self, service: &Service) -> bool {
        self == Instance::Check || service.serves_every_socket()
    }
}

/// `APPS/APP/.pyapp/check`: the directory of the private sockets the health check reaches
/// a new release on, and the handover each instance on (host path): root's,
/// [`CHECK_DIR_MODE`], the app's group may enter.
pub fn private_socket_dir(tree: &AppTree) -> PathBuf {
    tree.state_dir().join("check")
}

/// The private socket of `instance` of `service` (host path).
pub fn private_socket(tree: &AppTree, instance: Instance, service: &str) -> PathBuf {
    private_socket_dir(tree).join(instance.private_socket_name(service))
}

/// The names of the units [`generate`] makes for `metadata`, sorted: known before
/// anything else about the installation is.
pub fn unit_names(metadata: &Metadata) -> Vec<String> {
    let app = metadata.name.as_str();
    let services = metadata.services.iter().flat_map(|service| {
        let name = service.name.as_str();
        let mut names = vec![Instance::Main.service_unit(app, name)];
        if service.takes_socket() {
            names.push(Instance::Main.socket_unit(app, name));
            for instance in INSTANCES {
                names.push(instance.service_unit(app, name));
                if instance.has_private_socket(service) {
                    names.push(instance.private_socket_unit(app, name));
                }
            }
        }
        names
    });
    let tasks = metadata.tasks.iter().flat_map(|task| {
        let stem = unit_stem(app, task.name.as_str());
        [format!("{stem}.service"), format!("{stem}.timer")]
    });
    let mut names: Vec<String> = services.chain(tasks).collect();
    names.sort();
    names.dedup();
    names
}

/// Writes the app's environment file ([`AppTree::environment_file`]) with `vars`, or removes
/// it when there are none. Values the file cannot carry are refused, naming the variable.
pub fn write_environment_file(tree: &AppTree, vars: &BTreeMap<String, String>) -> Result<()> {
    let path = tree.environment_file();
    if vars.is_empty() {
        return Ok(pyapp_fs::remove_file_if_exists(&path)?);
    }
    let mut text =
        String::from("# Written by pyapp-install from configuration.yaml's environment.\n");
    for (name, value) in vars {
        let line = escape::environment_file_line(name, value)
            .map_err(|err| Refusal::new(format!("environment variable {name}: {err}")))?;
        text.push_str(&line);
    }
    Ok(pyapp_fs::write_atomic(
        &path,
        text.as_bytes(),
        ENVIRONMENT_FILE_MODE,
    )?)
}

/// `APP/.pyapp/chroot` on disk: the empty directory `isolation: chroot` units use as
/// `RootDirectory=`. The installer creates it (0755, root) before starting the units.
pub fn chroot_dir(tree: &AppTree) -> PathBuf {
    tree.state_dir().join("chroot")
}

/// Every unit of the app, sorted by name: services, then each task's service and timer.
pub fn generate(metadata: &Metadata, context: &UnitContext) -> Result<Vec<UnitFile>, UnitError> {
    let mut units = Vec::new();
    for service in &metadata.services {
        if service.takes_socket() {
            for instance in INSTANCES {
                units.push(service_unit(metadata, service, Some(instance), context)?);
                if instance.has_private_socket(service) {
                    units.push(socket_unit(metadata, service, Some(instance), context)?);
                }
            }
            units.push(socket_unit(metadata, service, None, context)?);
        } else {
            units.push(service_unit(metadata, service, None, context)?);
        }
    }
    for task in &metadata.tasks {
        units.push(task_service_unit(metadata, task, context)?);
        units.push(timer_unit(metadata, task)?);
    }
    units.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(units)
}

/// The run-time paths every unit uses.
struct Paths {
    app: PathBuf,
    current: PathBuf,
    venv: PathBuf,
}

impl Paths {
    fn new(context: &UnitContext) -> Paths {
        let app = context.tree.runtime_dir().to_path_buf();
        let current = app.join("current");
        let venv = current.join("venv");
        Paths { app, current, venv }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.app.join(name)
    }
}

/// Builds one unit's text, tagging every refused value with the unit's name.
struct Writer {
    unit: String,
    text: String,
}

impl Writer {
    fn new(app: &str, unit: String) -> Writer {
        let mut text = String::new();
        text.push_str("# Generated by pyapp-install: do not edit, the next install replaces it.\n");
        let _ = writeln!(text, "{MARKER_PREFIX}{app}");
        Writer { unit, text }
    }

    fn line(&mut self, line: &str) {
        self.text.push_str(line);
        self.text.push('\n');
    }

    fn directive(&mut self, key: &str, value: &str) {
        let _ = writeln!(self.text, "{key}={value}");
    }

    fn escaped(
        &self,
        field: &'static str,
        result: Result<String, EscapeError>,
    ) -> Result<String, UnitError> {
        result.map_err(|source| UnitError::Value {
            unit: self.unit.clone(),
            field,
            source,
        })
    }

    fn path(&self, field: &'static str, path: &Path) -> Result<String, UnitError> {
        self.escaped(field, escape::path(&path.display().to_string()))
    }

    fn finish(self) -> UnitFile {
        UnitFile {
            name: self.unit,
            text: self.text,
        }
    }
}

/// A service's process as its unit starts it: the arguments (program resolved to the
/// venv's `bin/` when bare) and the whole environment. `pyapp-install run` starts exactly
/// this.
#[derive(Debug, Clone)]
pub struct ServiceProcess {
    pub argv: Vec<String>,
    pub environment: AppEnvironment,
}

/// The process of `service` (one of `metadata`'s services) when it binds its own socket,
/// as `pyapp-install run` starts it.
pub fn service_process(
    metadata: &Metadata,
    service: &Service,
    context: &UnitContext,
) -> Result<ServiceProcess, UnitError> {
    process_of(metadata, service, false, context)
}

/// The process of `service`; `passed`: systemd passes it its listening socket as
/// descriptor [`LISTEN_FD`] (`{fd}` is `3`).
fn process_of(
    metadata: &Metadata,
    service: &Service,
    passed: bool,
    context: &UnitContext,
) -> Result<ServiceProcess, UnitError> {
    let unit_name = format!(
        "{}.service",
        unit_stem(metadata.name.as_str(), service.name.as_str())
    );
    let paths = Paths::new(context);
    let mut environment = context.environment.clone();
    let mut values = common_values(&paths, context);
    match service.listen {
        Listen::Socket => {
            let socket = paths.dir("run").join(format!("{}.sock", service.name));
            values.insert(Placeholder::Listen, format!("unix:{}", socket.display()));
            environment.set("PYAPP_SOCKET", socket.display().to_string());
        }
        Listen::Port => {
            let port =
                context
                    .ports
                    .get(service.name.as_str())
                    .ok_or_else(|| UnitError::NoPort {
                        unit: unit_name.clone(),
                    })?;
            values.insert(Placeholder::Listen, format!("127.0.0.1:{port}"));
            values.insert(Placeholder::Port, port.to_string());
            environment.set("PYAPP_PORT", port.to_string());
        }
        Listen::None => {}
    }
    if passed {
        // `{listen}` keeps its address: gunicorn takes `LISTEN_FDS` over its `--bind`.
        values.insert(Placeholder::Fd, LISTEN_FD.to_string());
    }
    if let Some(workers) = service.workers {
        values.insert(Placeholder::Workers, workers.to_string());
        environment.set("PYAPP_WORKERS", workers.to_string());
    }
    if let Some(threads) = service.threads {
        values.insert(Placeholder::Threads, threads.to_string());
        environment.set("PYAPP_THREADS", threads.to_string());
    }
    if let Some(mount) = web::script_name(metadata, service) {
        environment.set("SCRIPT_NAME", mount);
    }
    let argv = command_argv(&unit_name, &service.command, &values, &paths)?;
    Ok(ServiceProcess { argv, environment })
}

/// The unit of `service`, or of one `instance` of it when its server takes its socket.
fn service_unit(
    metadata: &Metadata,
    service: &Service,
    instance: Option<Instance>,
    context: &UnitContext,
) -> Result<UnitFile, UnitError> {
    let app = metadata.name.as_str();
    let name = service.name.as_str();
    let stem = unit_stem(app, name);
    let unit_name = instance.map_or_else(
        || format!("{stem}.service"),
        |instance| instance.service_unit(app, name),
    );
    let mut unit = Writer::new(app, unit_name);
    let paths = Paths::new(context);
    let run = paths.dir("run");
    let process = process_of(metadata, service, instance.is_some(), context)?;

    let mut description = describe(app, name, service.description.as_deref());
    match instance {
        Some(Instance::Check) => description.push_str(" (a new release, for its health check)"),
        Some(Instance::Next) => description.push_str(" (serving while the main one restarts)"),
        _ => {}
    }
    // The public socket first, so that it is `{fd}` (3); then the private one, if any.
    let mut sockets = Vec::new();
    if let Some(instance) = instance {
        sockets.push(instance.socket_unit(app, name));
        if instance != Instance::Check && instance.has_private_socket(service) {
            sockets.push(instance.private_socket_unit(app, name));
        }
    }
    // A check instance's failure is its upgrade's, recorded as such (FORMAT.md 13.1).
    let notify = matches!(instance, None | Some(Instance::Main));
    unit_section(&mut unit, &description, &sockets, notify)?;
    unit.line("[Service]");
    if service.pid_file {
        unit.directive("Type", "forking");
        let pid_file = unit.path("pid-file", &run.join(format!("{}.pid", service.name)))?;
        unit.directive("PIDFile", &pid_file);
    } else if instance.is_some() && service.runs_gunicorn() {
        // gunicorn says READY=1 once it has taken the socket: `systemctl start` returns then
        // (before its workers have loaded the app).
        unit.directive("Type", "notify");
        unit.directive("NotifyAccess", "main");
    } else {
        unit.directive("Type", "simple");
    }
    for socket in &sockets {
        unit.directive("Sockets", socket);
    }
    let exec_start = exec_line(&unit, &process.argv)?;
    unit.directive("ExecStart", &exec_start);
    if let Some(signal) = service.reload_signal {
        unit.directive(
            "ExecReload",
            &format!("/bin/kill -s {} $MAINPID", signal.name()),
        );
    }
    let restart = match (instance, service.restart) {
        // A release on trial is not restarted: its health check judges it as it is.
        (Some(Instance::Check), _) | (_, Restart::No) => "no",
        (_, Restart::Always) => "always",
        (_, Restart::OnFailure) => "on-failure",
    };
    unit.directive("Restart", restart);
    unit.directive("RestartSec", "2s");
    // Stopping drains: SIGTERM to the server, which finishes its requests, then SIGKILL to
    // whatever is left after the grace period.
    unit.directive("KillMode", "mixed");
    unit.directive("TimeoutStopSec", &format!("{}s", service.stop_grace));
    process_section(
        &mut unit,
        &stem,
        metadata,
        context,
        &paths,
        &process.environment,
    )?;
    if service.listen == Listen::Socket && instance.is_none() {
        // Servers chown the socket they bind to their own user and group (gunicorn always
        // does), which @privileged forbids; without capabilities it can do no more.
        unit.directive("SystemCallFilter", "@chown");
    }
    for relaxation in &service.relax {
        let (directive, value) = relaxed(*relaxation);
        unit.directive(directive, value);
    }
    if matches!(instance, None | Some(Instance::Main)) {
        unit.line("");
        unit.line("[Install]");
        unit.directive("WantedBy", "multi-user.target");
    }
    Ok(unit.finish())
}

/// A socket unit of `service`: the public one (`None`: its port on 127.0.0.1 or
/// `run/NAME.sock`), enabled with the app, or `instance`'s private one (0660, root and the
/// app's group, in root's `.pyapp/check`), started with its service (the check instance's
/// only during a handover).
fn socket_unit(
    metadata: &Metadata,
    service: &Service,
    private: Option<Instance>,
    context: &UnitContext,
) -> Result<UnitFile, UnitError> {
    let app = metadata.name.as_str();
    let name = service.name.as_str();
    let unit_name = match private {
        Some(instance) => instance.private_socket_unit(app, name),
        None => Instance::Main.socket_unit(app, name),
    };
    let mut unit = Writer::new(app, unit_name);
    let paths = Paths::new(context);
    let description = describe(app, name, service.description.as_deref());
    let description = match private {
        Some(Instance::Check) => format!("{description} (socket of a release under check)"),
        Some(Instance::Main) => format!("{description} (private socket)"),
        Some(Instance::Next) => format!("{description} (private socket of next)"),
        None => format!("{description} (socket)"),
    };
    let description = unit.escaped("description", escape::text(&description))?;
    unit.line("[Unit]");
    unit.directive("Description", &description);
    unit.line("");
    unit.line("[Socket]");
    let address = match (private, service.listen) {
        (None, Listen::Port) => {
            let port = context.ports.get(name).ok_or_else(|| UnitError::NoPort {
                unit: unit.unit.clone(),
            })?;
            format!("127.0.0.1:{port}")
        }
        (None, _) => unit.path("socket", &paths.dir("run").join(format!("{name}.sock")))?,
        (Some(instance), _) => unit.path(
            "socket",
            &paths
                .dir(".pyapp")
                .join("check")
                .join(instance.private_socket_name(name)),
        )?,
    };
    unit.directive("ListenStream", &address);
    if private.is_some() {
        // An instance's private socket is reached by root (the HTTP check, the handover)
        // and by the app's own health check command (its group), nobody else.
        let group = unit.escaped("group", escape::account(context.group))?;
        unit.directive("SocketGroup", &group);
        unit.directive("SocketMode", CHECK_SOCKET_MODE);
    } else if service.listen == Listen::Socket {
        unit.directive("SocketMode", PUBLIC_SOCKET_MODE);
    }
    unit.directive("Backlog", "1024");
    let activated = private.unwrap_or(Instance::Main);
    unit.directive("Service", &activated.service_unit(app, name));
    if private.is_none() {
        unit.line("");
        unit.line("[Install]");
        unit.directive("WantedBy", "sockets.target");
    }
    Ok(unit.finish())
}

fn task_service_unit(
    metadata: &Metadata,
    task: &Task,
    context: &UnitContext,
) -> Result<UnitFile, UnitError> {
    let app = metadata.name.as_str();
    let stem = unit_stem(app, task.name.as_str());
    let mut unit = Writer::new(app, format!("{stem}.service"));
    let paths = Paths::new(context);
    let values = common_values(&paths, context);

    let description = describe(app, task.name.as_str(), task.description.as_deref());
    unit_section(&mut unit, &description, &[], true)?;
    unit.line("[Service]");
    unit.directive("Type", "oneshot");
    let argv = command_argv(&unit.unit, &task.command, &values, &paths)?;
    let exec_start = exec_line(&unit, &argv)?;
    unit.directive("ExecStart", &exec_start);
    process_section(
        &mut unit,
        &stem,
        metadata,
        context,
        &paths,
        context.environment,
    )?;
    Ok(unit.finish())
}

fn timer_unit(metadata: &Metadata, task: &Task) -> Result<UnitFile, UnitError> {
    let app = metadata.name.as_str();
    let stem = unit_stem(app, task.name.as_str());
    let mut unit = Writer::new(app, format!("{stem}.timer"));
    let description = describe(app, task.name.as_str(), task.description.as_deref());
    let description = unit.escaped(
        "description",
        escape::text(&format!("{description} (timer)")),
    )?;
    unit.line("[Unit]");
    unit.directive("Description", &description);
    unit.line("");
    unit.line("[Timer]");
    let schedule = unit.escaped("schedule", escape::text(task.schedule.as_str()))?;
    unit.directive("OnCalendar", &schedule);
    unit.directive("Persistent", "true");
    unit.directive("Unit", &format!("{stem}.service"));
    unit.line("");
    unit.line("[Install]");
    unit.directive("WantedBy", "timers.target");
    Ok(unit.finish())
}

/// The description as given, or `APP SERVICE`.
fn describe(app: &str, name: &str, description: Option<&str>) -> String {
    match description {
        Some(text) => text.to_owned(),
        None => format!("{app} {name}"),
    }
}

/// `[Unit]`; `sockets`: the socket units the service takes its listening sockets from;
/// `notify`: its failure starts `pyapp-notify@UNIT.service` (FORMAT.md 13.1).
fn unit_section(
    unit: &mut Writer,
    description: &str,
    sockets: &[String],
    notify: bool,
) -> Result<(), UnitError> {
    let description = unit.escaped("description", escape::text(description))?;
    unit.line("[Unit]");
    unit.directive("Description", &description);
    unit.directive("After", "network.target");
    if notify {
        unit.directive("OnFailure", "pyapp-notify@%n.service");
    }
    for socket in sockets {
        unit.directive("Requires", socket);
        unit.directive("After", socket);
    }
    unit.line("");
    Ok(())
}

/// The placeholders every command may use (FORMAT.md 2.2), as run-time paths.
fn common_values(paths: &Paths, context: &UnitContext) -> PlaceholderValues {
    let dir = |name: &str| paths.dir(name).display().to_string();
    let mut values = PlaceholderValues::from([
        (Placeholder::App, paths.app.display().to_string()),
        (Placeholder::Data, dir("data")),
        (Placeholder::Tmp, dir("tmp")),
        (Placeholder::Run, dir("run")),
        (Placeholder::Log, dir("log")),
        (
            Placeholder::Config,
            context.config_file.display().to_string(),
        ),
        (Placeholder::Venv, paths.venv.display().to_string()),
        (
            Placeholder::Src,
            paths.current.join("src").display().to_string(),
        ),
    ]);
    values.extend(context.app_values);
    values
}

/// The rendered command of `unit`, its program resolved (a bare name is the venv's
/// `bin/NAME`).
fn command_argv(
    unit: &str,
    command: &Command,
    values: &PlaceholderValues,
    paths: &Paths,
) -> Result<Vec<String>, UnitError> {
    let mut argv = command
        .render(values)
        .map_err(|source| UnitError::Command {
            unit: unit.to_owned(),
            source,
        })?;
    if let Some(program) = argv.first_mut() {
        if !program.starts_with('/') {
            *program = paths.venv.join("bin").join(&*program).display().to_string();
        }
    }
    Ok(argv)
}

/// `ExecStart=`'s value: every word of `argv` quoted for unit-file syntax.
fn exec_line(unit: &Writer, argv: &[String]) -> Result<String, UnitError> {
    let mut words = argv.iter();
    let program = words.next().map(String::as_str).unwrap_or_default();
    let mut line = unit.escaped("command", escape::exec_program(program))?;
    for word in words {
        line.push(' ');
        line.push_str(&unit.escaped("command", escape::exec_word(word))?);
    }
    Ok(line)
}

/// Who the process runs as, where, with what environment, and its sandbox.
fn process_section(
    unit: &mut Writer,
    stem: &str,
    metadata: &Metadata,
    context: &UnitContext,
    paths: &Paths,
    environment: &AppEnvironment,
) -> Result<(), UnitError> {
    let user = unit.escaped("user", escape::account(context.user))?;
    let group = unit.escaped("group", escape::account(context.group))?;
    unit.directive("User", &user);
    unit.directive("Group", &group);
    let data = unit.path("data directory", &paths.dir("data"))?;
    unit.directive("WorkingDirectory", &data);
    unit.directive("UMask", "0027");
    unit.directive("SyslogIdentifier", stem);
    for (name, value) in environment.vars() {
        let assignment = unit.escaped("environment", escape::environment(name, value))?;
        unit.directive("Environment", &assignment);
    }
    if let Some(file) = context.environment_file {
        let file = unit.path("environment file", file)?;
        unit.directive("EnvironmentFile", &file);
    }

    let writable = WRITABLE_DIRS
        .iter()
        .map(|name| unit.path("writable directories", &paths.dir(name)))
        .collect::<Result<Vec<_>, _>>()?;
    let prefix = interpreter_prefix(context.python);
    let prefix_in_home = HOME_TREES.iter().any(|home| prefix.starts_with(home));
    unit.directive("ProtectSystem", "strict");
    unit.directive("ReadWritePaths", &writable.join(" "));
    // An interpreter in a home directory (pyenv, a user's build) is shown to the service in
    // an otherwise empty home tree; ProtectHome=yes would hide it.
    unit.directive("ProtectHome", if prefix_in_home { "tmpfs" } else { "yes" });
    match metadata.isolation {
        Isolation::None => {
            if prefix_in_home {
                let prefix = unit.path("interpreter", &prefix)?;
                unit.directive("BindReadOnlyPaths", &prefix);
            }
        }
        Isolation::Chroot => {
            let root = unit.path("chroot", &paths.dir(".pyapp").join("chroot"))?;
            unit.directive("RootDirectory", &root);
            unit.directive("MountAPIVFS", "yes");
            let mut read_only: Vec<String> =
                CHROOT_HOST_PATHS.iter().map(|p| (*p).to_owned()).collect();
            if !prefix.starts_with("/usr") {
                read_only.push(unit.path("interpreter", &prefix)?);
            }
            for name in ["releases", "current", "config"] {
                read_only.push(unit.path("app directories", &paths.dir(name))?);
            }
            unit.directive("BindReadOnlyPaths", &read_only.join(" "));
            unit.directive("BindPaths", &writable.join(" "));
        }
    }
    unit.text.push_str(HARDENING);
    Ok(())
}

/// The installation prefix of the interpreter at `python`: `/usr` for `/usr/bin/python3.11`.
fn interpreter_prefix(python: &Path) -> PathBuf {
    python
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("/usr"))
        .to_path_buf()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::AppsDir;

    /// metadata.yaml of the example app, in the form pyapp-build writes into a bundle.
    const HELLO_METADATA: &str = r#"format: 1
name: hello
version: 1.0.0
summary: A small greeting web service
requires-python: ">=3.9"
module: hello
entry-point: hello.web:app
source-commit: null
built-by: pyapp-build 0.1.0
app-wheel: hello-1.0.0-py3-none-any.whl
dependencies:
  - name: hello
    version: 1.0.0
    wheel: hello-1.0.0-py3-none-any.whl
    sha256: 0000000000000000000000000000000000000000000000000000000000000000
    mode: local
resources:
  writable-dirs: [sessions]
services:
  - name: web
    description: Hello web server
    command: [gunicorn, --bind, "{listen}", --workers, "{workers}", "hello.web:app"]
    listen: port
    workers: 2
    restart: on-failure
tasks:
  - name: cleanup
    description: Remove expired sessions
    schedule: "*-*-* 03:00:00"
    command: hello-cleanup
"#;

    struct Fixture {
        tree: AppTree,
        environment: AppEnvironment,
        ports: BTreeMap<String, u16>,
        app_values: PlaceholderValues,
    }

    impl Fixture {
        fn new() -> Fixture {
            let apps = AppsDir::new(Path::new("/tmp/image"), Path::new("/applications"));
            let tree = apps.app("hello").unwrap();
            let environment = AppEnvironment::new(
                &tree,
                "1.0.0",
                Path::new("/applications/hello/current/venv"),
                Path::new("/applications/hello/config/config.yaml"),
            );
            Fixture {
                tree,
                environment,
                ports: BTreeMap::from([("web".to_owned(), 8000)]),
                app_values: PlaceholderValues::new(),
            }
        }

        fn context<'a>(&'a self, python: &'a Path) -> UnitContext<'a> {
            UnitContext {
                tree: &self.tree,
                user: "hello",
                group: "hello",
                config_file: Path::new("/applications/hello/config/config.yaml"),
                environment: &self.environment,
                ports: &self.ports,
                environment_file: None,
                python,
                app_values: &self.app_values,
            }
        }
    }

    #[test]
    fn relaxed_settings_come_after_the_hardening_they_relax() {
        let text = HELLO_METADATA.replace(
            "    restart: on-failure\n",
            "    restart: on-failure\n    relax: [setuid, proc, write-execute-memory, resources, netlink]\n",
        );
        let units = generate_text(&text).unwrap();
        let web = &units
            .iter()
            .find(|unit| unit.name == "hello-web.service")
            .unwrap()
            .text;
        assert!(
            web.ends_with(
                "\nAmbientCapabilities=\nSystemCallFilter=@setuid\nProcSubset=all\n\
                 MemoryDenyWriteExecute=no\nSystemCallFilter=@resources\n\
                 RestrictAddressFamilies=AF_NETLINK\n\n[Install]\nWantedBy=multi-user.target\n"
            ),
            "{web}"
        );
        let plain = generate_text(HELLO_METADATA).unwrap();
        assert!(plain.iter().all(|unit| !unit.text.contains("@setuid")));
    }

    fn metadata(text: &str) -> Metadata {
        Metadata::parse(text, "metadata.yaml").unwrap()
    }

    /// The unit named `name` among `units`.
    fn unit<'a>(units: &'a [UnitFile], name: &str) -> &'a str {
        &units.iter().find(|unit| unit.name == name).unwrap().text
    }

    fn generate_text(text: &str) -> Result<Vec<UnitFile>, UnitError> {
        let fixture = Fixture::new();
        generate(
            &metadata(text),
            &fixture.context(Path::new("/usr/bin/python3.11")),
        )
    }

    /// Compares with `pyapp-install/tests/snapshots/NAME`; `UPDATE_SNAPSHOTS=1` rewrites it.
    fn assert_snapshot(name: &str, text: &str) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/snapshots")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_SNAPSHOTS=1 writes it)", path.display()));
        assert_eq!(text, expected, "{name} differs from its snapshot");
    }

    #[test]
    fn the_example_units_match_their_snapshots() {
        let units = generate_text(HELLO_METADATA).unwrap();
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hello-cleanup.service",
                "hello-cleanup.timer",
                "hello-web.check.service",
                "hello-web.check.socket",
                "hello-web.main.socket",
                "hello-web.next.service",
                "hello-web.next.socket",
                "hello-web.service",
                "hello-web.socket",
            ]
        );
        for unit in &units {
            assert_snapshot(&unit.name, &unit.text);
            assert_eq!(
                unit.text.matches("\nUser=").count(),
                usize::from(unit.name.ends_with(".service"))
            );
        }
        let enabled: Vec<&str> = units
            .iter()
            .filter(|unit| unit.is_enabled())
            .map(|unit| unit.name.as_str())
            .collect();
        assert_eq!(
            enabled,
            [
                "hello-cleanup.timer",
                "hello-web.service",
                "hello-web.socket"
            ],
            "the check and next instances start only during a handover"
        );
        assert_eq!(unit_names(&metadata(HELLO_METADATA)), names);
    }

    #[test]
    fn chroot_units_match_their_snapshot() {
        let text = HELLO_METADATA.to_owned() + "isolation: chroot\n";
        let fixture = Fixture::new();
        let units = generate(
            &metadata(&text),
            &fixture.context(Path::new("/opt/python3.12/bin/python3.12")),
        )
        .unwrap();
        let web = units
            .iter()
            .find(|u| u.name == "hello-web.service")
            .unwrap();
        assert_snapshot("chroot-hello-web.service", &web.text);
    }

    #[test]
    fn an_interpreter_under_home_is_bound_into_an_empty_home() {
        let fixture = Fixture::new();
        let python = Path::new("/root/.pyenv/versions/3.11.7/bin/python3.11");
        let units = generate(&metadata(HELLO_METADATA), &fixture.context(python)).unwrap();
        let web = unit(&units, "hello-web.service");
        assert!(
            web.contains("\nProtectHome=tmpfs\nBindReadOnlyPaths=/root/.pyenv/versions/3.11.7\n")
        );
    }

    #[test]
    fn only_a_server_that_serves_every_socket_gets_private_ones() {
        let text = HELLO_METADATA.replace(
            "command: [gunicorn, --bind, \"{listen}\", --workers, \"{workers}\", \"hello.web:app\"]",
            "command: [uvicorn, --fd, \"{fd}\", --workers, \"{workers}\", \"hello.web:app\"]",
        );
        assert_ne!(text, HELLO_METADATA);
        let units = generate_text(&text).unwrap();
        let names: Vec<&str> = units.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "hello-cleanup.service",
                "hello-cleanup.timer",
                "hello-web.check.service",
                "hello-web.check.socket",
                "hello-web.next.service",
                "hello-web.service",
                "hello-web.socket",
            ],
            "uvicorn listens on {{fd}} only"
        );
        let web = unit(&units, "hello-web.service");
        assert_eq!(web.matches("\nSockets=").count(), 1);
        assert!(web.contains("\"--fd\" \"3\""));
        assert_eq!(unit_names(&metadata(&text)), names);
    }

    #[test]
    fn socket_services_get_their_socket_and_environment() {
        let text = HELLO_METADATA
            .replace("listen: port", "listen: socket")
            .replace("--workers, \"{workers}\"", "--threads, \"{threads}\"")
            .replace(
                "workers: 2",
                "threads: 4\n    pid-file: true\n    restart: always",
            )
            .replace("    restart: on-failure\n", "");
        let units = generate_text(&text).unwrap();
        let web = unit(&units, "hello-web.service");
        assert!(web.contains(
            "\nExecStart=\"/applications/hello/current/venv/bin/gunicorn\" \"--bind\" \
             \"unix:/applications/hello/run/web.sock\" \"--threads\" \"4\" \"hello.web:app\"\n"
        ));
        assert!(web.contains("\nEnvironment=\"PYAPP_SOCKET=/applications/hello/run/web.sock\"\n"));
        assert!(web.contains("\nEnvironment=\"PYAPP_THREADS=4\"\n"));
        assert!(!web.contains("PYAPP_PORT"));
        assert!(web.contains("\nType=forking\nPIDFile=/applications/hello/run/web.pid\n"));
        // gunicorn chowns the socket it binds: allowed after the @privileged deny list.
        assert!(web.contains(
            "\nSystemCallFilter=~@privileged @resources\n\
             SystemCallErrorNumber=EPERM\n"
        ));
        assert!(
            web.ends_with("\nSystemCallFilter=@chown\n\n[Install]\nWantedBy=multi-user.target\n")
        );
        assert!(!units[0].text.contains("@chown"), "only socket services");
        assert!(
            !web.contains("\nSockets="),
            "gunicorn binds its socket itself with a pid file"
        );
        assert!(web.contains("\nRestart=always\n"));
    }

    #[test]
    fn hostile_descriptions_are_escaped_or_refused() {
        let text = HELLO_METADATA.replace(
            "description: Hello web server",
            "description: \"100% %n $HOME ; ExecStartPre=/bin/sh \\\"q\\\"\"",
        );
        let units = generate_text(&text).unwrap();
        assert!(unit(&units, "hello-web.service")
            .contains("\nDescription=100%% %%n $HOME ; ExecStartPre=/bin/sh \"q\"\n"));
        // A trailing `\` is refused twice: by the metadata, and by the unit writer should
        // such a value ever reach it.
        let text = HELLO_METADATA.replace("description: Hello web server", "description: 'web \\'");
        let refused = Metadata::parse(&text, "metadata.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            refused.contains("services[0].description: must not end with `\\`"),
            "{refused}"
        );
        assert_eq!(
            escape::text("web \\").unwrap_err().to_string(),
            "\"web \\\\\" ends with \"\\\", which systemd reads as a line continuation"
        );
    }

    #[test]
    fn hostile_commands_reach_the_process_literally() {
        let text = HELLO_METADATA.replace(
            "command: hello-cleanup",
            "command: [\"/opt/100%/tool\", \"$HOME\", \"%n\", \";\", \"a ; b\", \"x\\\\\", \"say \\\"hi\\\"\", \"{data}/%i\"]",
        );
        let units = generate_text(&text).unwrap();
        assert!(units[0].text.contains(
            "\nExecStart=\"/opt/100%%/tool\" \"$$HOME\" \"%%n\" \";\" \"a ; b\" \"x\\\\\" \
             \"say \\\"hi\\\"\" \"/applications/hello/data/%%i\"\n"
        ));
        let text = HELLO_METADATA.replace("command: hello-cleanup", "command: \"/opt/$x/tool\"");
        assert_eq!(
            generate_text(&text).unwrap_err().to_string(),
            "hello-cleanup.service: command: \"/opt/$x/tool\" contains \"$\", which systemd cannot \
             take literally in a program path"
        );
    }

    #[test]
    fn hostile_environment_values_are_escaped() {
        let mut fixture = Fixture::new();
        fixture
            .environment
            .set("PYAPP_VERSION", "1\" ExecStartPre=\"/bin/sh %n $HOME\\");
        let units = generate(
            &metadata(HELLO_METADATA),
            &fixture.context(Path::new("/usr/bin/python3.11")),
        )
        .unwrap();
        assert!(unit(&units, "hello-web.service").contains(
            "\nEnvironment=\"PYAPP_VERSION=1\\\" ExecStartPre=\\\"/bin/sh %%n $HOME\\\\\"\n"
        ));
        fixture.environment.set("PYAPP_VERSION", "1\nUser=root");
        let refused = generate(
            &metadata(HELLO_METADATA),
            &fixture.context(Path::new("/usr/bin/python3.11")),
        );
        assert!(matches!(
            refused,
            Err(UnitError::Value {
                field: "environment",
                source: EscapeError::ControlCharacter { .. },
                ..
            })
        ));
    }

    #[test]
    fn unsafe_paths_and_accounts_are_refused() {
        let apps = AppsDir::new(Path::new("/"), Path::new("/srv/my apps"));
        let tree = apps.app("hello").unwrap();
        let fixture = Fixture::new();
        let mut context = fixture.context(Path::new("/usr/bin/python3.11"));
        context.tree = &tree;
        assert_eq!(
            generate(&metadata(HELLO_METADATA), &context)
                .unwrap_err()
                .to_string(),
            "hello-web.service: data directory: \"/srv/my apps/hello/data\" has characters \
             systemd path lists do not take literally (allowed: letters, digits, \"/._+-@~\")"
        );
        let mut context = fixture.context(Path::new("/usr/bin/python3.11"));
        context.user = "root\nUser=x";
        assert!(generate(&metadata(HELLO_METADATA), &context).is_err());
    }

    #[test]
    fn a_port_service_needs_its_port() {
        let mut fixture = Fixture::new();
        fixture.ports.clear();
        let refused = generate(
            &metadata(HELLO_METADATA),
            &fixture.context(Path::new("/usr/bin/python3.11")),
        );
        assert_eq!(
            refused.unwrap_err().to_string(),
            "hello-web.service: no port was allocated for this `listen: port` service"
        );
    }
}
