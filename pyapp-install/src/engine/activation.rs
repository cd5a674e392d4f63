//! Making a release the running one, the same way for an install, an upgrade, a `rollback`
//! and the automatic rollback after a failed hook or health check: generate its units
//! (refusing values units cannot carry before anything is stopped), stop the app's units,
//! switch `current`, run the hook that follows, write and start the units, check health.
//!
//! When every listening service of the app takes its socket from systemd and those sockets
//! are already open, the release changes by a handover instead (FORMAT.md 8.8), and nothing
//! is stopped first: the new release starts beside the old one on a private socket only
//! root and the app's own health check command reach ([`Instance::Check`]), its health
//! check (HTTP or command) runs there, and only then does its
//! [`Instance::Next`] take the public socket, the main instance drain (SIGTERM, SIGKILL
//! after `stop-grace`) and restart on the new release, and `next` drain in turn. The public
//! socket stays open throughout: a connection waits in its backlog, never refused. A
//! failed check stops the check instance; what served never noticed.
//!
//! A server may say it is ready before its workers have loaded the app (gunicorn does):
//! stopping the instance that serves then would leave connections waiting in the backlog
//! for as long as the app takes to load. Where the server serves every socket it is passed,
//! the handover waits until `next` answers on its private socket before the main instance
//! stops, and until the restarted main instance answers on its own before `next` stops.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{Gid, Uid};
use pyapp_bundle::command::{Command, Placeholder, PlaceholderValues};
use pyapp_bundle::metadata::{Isolation, Listen, Service};

use crate::app::config_file::{ConfigFile, ConfigValues};
use crate::app::env::AppEnvironment;
use crate::app::installed::ReleaseInfo;
use crate::app::ports::{self, PortRange};
use crate::app::release;
use crate::app::tree::{AppTree, AppsDir};
use crate::progress::Progress;
use crate::system::app_user::AppUser;
use crate::system::health::{self, Endpoint};
use crate::system::hooks::{self, HookContext, HookName};
use crate::system::ownership;
use crate::system::systemd::Systemd;
use crate::system::units::{self, unit_stem, Instance, ServiceProcess, UnitContext, UnitFile};
use crate::system::web;
use pyapp_cli::Refusal;
use pyapp_fs::fault;

/// The owned parts of a [`UnitContext`].
struct UnitInputs {
    ports: BTreeMap<String, u16>,
    config_file: PathBuf,
    environment: AppEnvironment,
    environment_file: Option<PathBuf>,
    account: String,
    app_values: PlaceholderValues,
}

impl UnitInputs {
    fn context<'a>(&'a self, tree: &'a AppTree, python: &'a Path) -> UnitContext<'a> {
        UnitContext {
            tree,
            user: &self.account,
            group: &self.account,
            config_file: &self.config_file,
            environment: &self.environment,
            ports: &self.ports,
            environment_file: self.environment_file.as_deref(),
            python,
            app_values: &self.app_values,
        }
    }
}

/// How many restarts of the checked service mean it is crashing, not starting.
const CRASH_LOOP_RESTARTS: u32 = 3;

/// How many journal lines of the checked service a failed health check shows.
const JOURNAL_LINES: usize = 50;

/// How long, in seconds, the handover waits for an instance to answer on its private
/// socket when the app has no health check to take the timeout from.
const ANSWER_TIMEOUT: u64 = 60;

/// The app being activated, and where its units go.
pub struct Activation<'a> {
    pub apps: &'a AppsDir,
    pub tree: &'a AppTree,
    pub systemd: Systemd,
    pub user: Option<&'a AppUser>,
    pub port_range: PortRange,
    pub output: &'a dyn Progress,
}

impl Activation<'_> {
    /// The units of `info`'s release: ports allocated (and remembered), the chroot
    /// directory made when asked for, every value escaped or refused, every name checked
    /// against the system ([`Systemd::check_units`]), `{config.KEY}` taken from `config`.
    /// Nothing is stopped or written to the unit directory yet.
    pub fn units_for(&self, info: &ReleaseInfo, config: &ConfigValues) -> Result<Vec<UnitFile>> {
        if info.metadata.isolation == Isolation::Chroot {
            pyapp_fs::ensure_dir(&units::chroot_dir(self.tree), 0o755)?;
        }
        let inputs = self.unit_inputs(info, config)?;
        let units = units::generate(&info.metadata, &inputs.context(self.tree, &info.python))
            .map_err(|err| Refusal::new(format!("cannot write the units: {err}")))?;
        self.systemd.check_units(self.tree.name(), &units)?;
        Ok(units)
    }

    /// [`Activation::units_for`] `info` with the configuration file as it is now.
    pub fn units_now(&self, info: &ReleaseInfo) -> Result<Vec<UnitFile>> {
        self.units_for(info, &self.config_values(info)?)
    }

    /// The process of `info`'s service `name` exactly as its unit starts it.
    pub fn service_process(&self, info: &ReleaseInfo, name: &str) -> Result<ServiceProcess> {
        let service = info
            .metadata
            .services
            .iter()
            .find(|service| service.name.as_str() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = info
                    .metadata
                    .services
                    .iter()
                    .map(|service| service.name.as_str())
                    .collect();
                Refusal::new(format!(
                    "{} has no service {name} (services: {})",
                    self.tree.name(),
                    known.join(", ")
                ))
            })?;
        let inputs = self.unit_inputs(info, &self.config_values(info)?)?;
        let mut process = units::service_process(
            &info.metadata,
            service,
            &inputs.context(self.tree, &info.python),
        )
        .map_err(|err| Refusal::new(err.to_string()))?;
        // What the unit reads from its environment file.
        process.environment.extend(&self.app_variables(info)?);
        Ok(process)
    }

    /// What the units of `info` are made from besides its metadata.
    fn unit_inputs(&self, info: &ReleaseInfo, config: &ConfigValues) -> Result<UnitInputs> {
        let ports = ports::allocate(self.apps, self.tree, &info.metadata, self.port_range)?;
        let config_file = ConfigFile::new(self.tree, &info.spec).runtime_path();
        let venv = self.tree.runtime_dir().join("current/venv");
        let environment = AppEnvironment::new(self.tree, &info.version(), &venv, &config_file);
        let account = self
            .user
            .map_or(self.tree.name(), |user| user.name.as_str())
            .to_string();
        let environment_file =
            (!info.spec.environment.is_empty()).then(|| self.tree.runtime_environment_file());
        Ok(UnitInputs {
            ports,
            config_file,
            environment,
            environment_file,
            account,
            app_values: app_values(info, config),
        })
    }

    /// The configuration file of `info`'s release as it is now (empty before it exists).
    fn config_values(&self, info: &ReleaseInfo) -> Result<ConfigValues> {
        Ok(ConfigFile::new(self.tree, &info.spec)
            .read(&info.spec)?
            .map(|existing| existing.values)
            .unwrap_or_default())
    }

    /// The variables configuration.yaml's `environment` sets for `info`'s release, from
    /// the configuration file as it is now.
    fn app_variables(&self, info: &ReleaseInfo) -> Result<BTreeMap<String, String>> {
        Ok(info.spec.environment_values(&self.config_values(info)?))
    }

    /// Stops every unit of the app (before `current` moves).
    pub fn stop(&self) -> Result<()> {
        let installed = self.systemd.installed_units(self.tree.name())?;
        self.systemd.stop(&installed)
    }

    /// Writes the environment file of `info` and `units` (removing the app's units that are
    /// no longer generated), reloads systemd when they changed and enables and starts them;
    /// without a running systemd, says how to.
    pub fn start(&self, info: &ReleaseInfo, units: &[UnitFile]) -> Result<()> {
        units::write_environment_file(self.tree, &self.app_variables(info)?)?;
        if !Self::socket_services(info).is_empty() {
            // Where the main instance's private socket is (FORMAT.md 8.8).
            self.ensure_check_dir()?;
        }
        let changes = self.systemd.write_units(self.tree.name(), units)?;
        if changes.changed() {
            self.systemd.daemon_reload()?;
        }
        let enabled = enabled_units(units);
        self.systemd.enable_now(&enabled)?;
        if let Some(steps) = self.systemd.manual_steps(units) {
            self.output.note(&steps);
        }
        Ok(())
    }

    /// Writes the app's `units` again (made with the configuration file as it is now) and
    /// reloads systemd when one changed (which it returns); starts nothing.
    pub fn rewrite_units(&self, units: &[UnitFile]) -> Result<bool> {
        let changed = self.systemd.write_units(self.tree.name(), units)?.changed();
        if changed {
            self.systemd.daemon_reload()?;
        }
        Ok(changed)
    }

    /// Whether `info`'s release can take over by a handover: systemd runs, the app has
    /// services that take their socket, every listening service does, and each of those
    /// sockets is open already (an app installed before its units had sockets is stopped
    /// and started once more).
    pub fn can_hand_over(&self, info: &ReleaseInfo) -> Result<bool> {
        if !self.systemd.is_running() {
            return Ok(false);
        }
        let listening: Vec<_> = info
            .metadata
            .services
            .iter()
            .filter(|service| service.listen != Listen::None)
            .collect();
        if listening.is_empty() || !listening.iter().all(|service| service.takes_socket()) {
            return Ok(false);
        }
        for service in listening {
            let socket = Instance::Main.socket_unit(self.tree.name(), service.name.as_str());
            if !self.systemd.is_active(&socket)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Says at install which listening services of `info` cannot take their socket from
    /// systemd: they stop before the new release starts, as they always did.
    pub fn note_restarting_services(&self, info: &ReleaseInfo) {
        for service in &info.metadata.services {
            if service.listen != Listen::None && !service.takes_socket() {
                self.output.note(&format!(
                    "{}: {} does not take its socket from systemd (FORMAT.md 8.8): an upgrade \
                     stops it before the new release starts",
                    unit_stem(self.tree.name(), service.name.as_str()),
                    service.command.program()
                ));
            }
        }
    }

    /// The handover to `info`, whose release `current` already points at, with its
    /// `units` (see the module doc): [`Activation::check_beside`], then
    /// [`Activation::move_traffic`] (the services named in `reloading` reload).
    pub fn hand_over(
        &self,
        info: &ReleaseInfo,
        units: &[UnitFile],
        reloading: &[&str],
    ) -> Result<()> {
        self.check_beside(info, units)?;
        self.move_traffic(info, units, reloading)
    }

    /// Steps 1 to 3 of the handover: `units` written, `info` started on the private check
    /// sockets, its health check there, the check instances stopped. An error leaves the
    /// running instances as they were (the caller puts `current` and the units back).
    pub fn check_beside(&self, info: &ReleaseInfo, units: &[UnitFile]) -> Result<()> {
        let app = self.tree.name();
        units::write_environment_file(self.tree, &self.app_variables(info)?)?;
        if self.systemd.write_units(app, units)?.changed() {
            self.systemd.daemon_reload()?;
        }
        self.ensure_check_dir()?;
        let socket_services = Self::socket_services(info);
        let check_units: Vec<String> = socket_services
            .iter()
            .flat_map(|name| {
                [
                    Instance::Check.socket_unit(app, name),
                    Instance::Check.service_unit(app, name),
                ]
            })
            .collect();
        // A check instance that does not start is the release's failure, like a failed check.
        let checked = self
            .systemd
            .start(&check_units)
            .map_err(|err| {
                let why = format!("{err:#}");
                Refusal::new(format!(
                    "the check instances of release {} did not start: {}",
                    info.release,
                    why.lines().next().unwrap_or_default()
                ))
                .with_hint(format!("`pyapp-install logs {app}` shows why"))
                .into()
            })
            .and_then(|()| self.check_health_of(info, Instance::Check));
        self.systemd.stop(&check_units)?;
        checked
    }

    /// Steps 4 and 5 of the handover, once `info` passed its check: `next` serves while
    /// the main instances restart on it, then the app's other units start. The services
    /// named in `reloading` (a configuration change that leaves their units and
    /// environment as they are, [`Activation::reloading`]) reload instead of restarting.
    pub fn move_traffic(
        &self,
        info: &ReleaseInfo,
        units: &[UnitFile],
        reloading: &[&str],
    ) -> Result<()> {
        let app = self.tree.name();
        let socket_services = Self::socket_services(info);
        for service in info.metadata.services.iter().filter(|s| s.takes_socket()) {
            let name = service.name.as_str();
            if reloading.contains(&name) {
                self.systemd
                    .reload(&[Instance::Main.service_unit(app, name)])?;
                continue;
            }
            let mut next = vec![Instance::Next.service_unit(app, name)];
            self.systemd.start(&next)?;
            self.wait_answering(info, service, Instance::Next);
            self.systemd
                .restart(&[Instance::Main.service_unit(app, name)])?;
            self.wait_answering(info, service, Instance::Main);
            if service.serves_every_socket() {
                next.push(Instance::Next.private_socket_unit(app, name));
            }
            self.systemd.stop(&next)?;
        }
        // The app's other units: all are enabled (and started, timers armed), and the
        // services that do not take a socket restart on the new release.
        let enabled = enabled_units(units);
        self.systemd.enable_now(&enabled)?;
        let handed_over: Vec<String> = socket_services
            .iter()
            .map(|name| Instance::Main.service_unit(app, name))
            .collect();
        let (reloaded, restarted): (Vec<String>, Vec<String>) = enabled
            .into_iter()
            .filter(|name| name.ends_with(".service") && !handed_over.contains(name))
            .partition(|unit| {
                reloading
                    .iter()
                    .any(|name| Instance::Main.service_unit(app, name) == *unit)
            });
        self.systemd.try_reload_or_restart(&reloaded)?;
        self.systemd.try_restart(&restarted)
    }

    /// The services of `info` that take a change of the configuration from `before` to
    /// `after` (whose units are `after_units`) by reloading (`reload-signal`, FORMAT.md
    /// 8.8): all that have a reload signal when the change leaves every unit and the
    /// environment file as they are (a reloaded server keeps its command line and
    /// environment); none otherwise.
    pub fn reloading<'i>(
        &self,
        info: &'i ReleaseInfo,
        before: &ConfigValues,
        after: &ConfigValues,
        after_units: &[UnitFile],
    ) -> Result<Vec<&'i str>> {
        let same = info.spec.environment_values(before) == info.spec.environment_values(after)
            && self.units_for(info, before)? == after_units;
        Ok(info
            .metadata
            .services
            .iter()
            .filter(|service| same && service.reload_signal.is_some())
            .map(|service| service.name.as_str())
            .collect())
    }

    /// Waits until `instance` of `service` answers HTTP on its private socket, when it has
    /// one ([`Service::serves_every_socket`]): its workers have loaded the app, so the
    /// instance beside it on the public socket may stop. As long as the health check may
    /// take (60 s without one); a server that does not answer by then is warned about and
    /// the handover goes on, as it would for a server without a private socket.
    fn wait_answering(&self, info: &ReleaseInfo, service: &Service, instance: Instance) {
        if !service.serves_every_socket() || !self.systemd.is_running() {
            return;
        }
        let name = service.name.as_str();
        let check = info.metadata.update.health_check.as_ref();
        let path = check
            .and_then(|check| {
                check
                    .http
                    .as_deref()
                    .filter(|_| check.service.as_ref() == Some(&service.name))
            })
            .unwrap_or("/");
        let path = web::service_path(&info.metadata, name, path);
        let timeout =
            Duration::from_secs(check.map_or(ANSWER_TIMEOUT, |check| u64::from(check.timeout)));
        let endpoint = Endpoint::Socket(units::private_socket(self.tree, instance, name));
        let unit = instance.service_unit(self.tree.name(), name);
        let started = Instant::now();
        match health::wait_answering(&endpoint, &path, timeout, &mut || self.crashed(&unit)) {
            Ok(status) => self.output.note(&format!(
                "{unit} answers: GET {path} on {endpoint} answered {status} after {:.1} s",
                started.elapsed().as_secs_f64()
            )),
            Err(err) => self.output.warning(&format!(
                "{unit} did not answer on its private socket, the handover goes on: {err}"
            )),
        }
    }

    /// `.pyapp/check` ([`units::private_socket_dir`]): root's, with the app's group
    /// ([`units::CHECK_DIR_MODE`]), so the app's health check command reaches the release
    /// under check and nobody else does (without an app user, root's alone).
    fn ensure_check_dir(&self) -> Result<()> {
        let path = units::private_socket_dir(self.tree);
        pyapp_fs::ensure_dir(&path, units::CHECK_DIR_MODE)?;
        let dir = ownership::open_dir(&path)?;
        let (group, mode) = match self.user {
            Some(user) => (user.gid, units::CHECK_DIR_MODE),
            None => (0, 0o700),
        };
        ownership::set_owner(&dir, &path, Uid::from_raw(0), Gid::from_raw(group))?;
        fchmod(&dir, Mode::from_bits_truncate(mode))
            .with_context(|| format!("failed to set the mode of `{}`", path.display()))
    }

    /// The names of `info`'s services that take their socket.
    fn socket_services(info: &ReleaseInfo) -> Vec<&str> {
        info.metadata
            .services
            .iter()
            .filter(|service| service.takes_socket())
            .map(|service| service.name.as_str())
            .collect()
    }

    /// Puts `previous` back as `current` with its units after a handover to another
    /// release failed its health check: nothing was stopped, nothing is started.
    pub fn undo_switch(&self, previous: &ReleaseInfo) -> Result<()> {
        let units = self.units_now(previous)?;
        release::switch_current(self.tree, &previous.release)?;
        units::write_environment_file(self.tree, &self.app_variables(previous)?)?;
        if self
            .systemd
            .write_units(self.tree.name(), &units)?
            .changed()
        {
            self.systemd.daemon_reload()?;
        }
        Ok(())
    }

    /// Runs `hook` of `info`'s release, if the app has one.
    pub fn hook(&self, hook: HookName, info: &ReleaseInfo) -> Result<()> {
        let Some(command) = hook.command(&info.metadata.hooks) else {
            return Ok(());
        };
        let context = self.hook_context(info, info.metadata.hooks.timeout)?;
        hooks::run_hook(hook, command, &context, self.output)?;
        Ok(())
    }

    /// The health check of `info`'s metadata, once its units run (a no-op without a
    /// running systemd, where nothing was started).
    pub fn check_health(&self, info: &ReleaseInfo) -> Result<()> {
        self.check_health_of(info, Instance::Main)
    }

    /// The health check of `info` against `instance`: the HTTP check against the checked
    /// service (its private socket for [`Instance::Check`]), or the command with
    /// `PYAPP_CHECK_<SERVICE>` naming where each listening service of `instance` is
    /// ([`Activation::check_command`]).
    fn check_health_of(&self, info: &ReleaseInfo, instance: Instance) -> Result<()> {
        let Some(check) = &info.metadata.update.health_check else {
            return Ok(());
        };
        if !self.systemd.is_running() {
            return Ok(());
        }
        let timeout = Duration::from_secs(u64::from(check.timeout));
        if let Some(command) = &check.command {
            return self.check_command(info, instance, command, check.timeout);
        }
        let (Some(path), Some(service)) = (&check.http, &check.service) else {
            return Ok(());
        };
        let endpoint = match instance {
            Instance::Check => Endpoint::Socket(units::private_socket(
                self.tree,
                Instance::Check,
                service.as_str(),
            )),
            _ => self.endpoint(info, service.as_str())?,
        };
        // A service mounted below `/` answers under its mount (its SCRIPT_NAME).
        let path = &web::service_path(&info.metadata, service.as_str(), path);
        let unit = if self.service_takes_socket(info, service.as_str()) {
            instance.service_unit(self.tree.name(), service.as_str())
        } else {
            format!("{}.service", unit_stem(self.tree.name(), service.as_str()))
        };
        let mut hopeless = || self.crashed(&unit);
        let status =
            health::check_http(&endpoint, path, timeout, &mut hopeless).map_err(|err| {
                self.show_journal(&unit);
                Refusal::new(format!("health check failed: {err}")).with_hint(format!(
                    "`pyapp-install logs {}` shows the whole log of the failed release",
                    self.tree.name()
                ))
            })?;
        self.output.note(&format!(
            "health check: GET {path} on {endpoint} answered {status}"
        ));
        Ok(())
    }

    /// The health check `command` of `info`, run like a hook with one variable per
    /// listening service saying where `instance` serves it ([`check_variable`]:
    /// `PYAPP_CHECK_WEB=unix:/applications/hello/.pyapp/check/web.sock` for the release
    /// under check, the public socket or `127.0.0.1:PORT` for the main instance). Against
    /// [`Instance::Check`], the check instances must still run when it exits 0: a release
    /// that crashed meanwhile is not healthy.
    fn check_command(
        &self,
        info: &ReleaseInfo,
        instance: Instance,
        command: &Command,
        timeout: u32,
    ) -> Result<()> {
        let mut context = self.hook_context(info, timeout)?;
        let runtime = self.tree.runtime_dir();
        for service in &info.metadata.services {
            let name = service.name.as_str();
            let address = match (instance, service.listen) {
                (_, Listen::None) => continue,
                (Instance::Check, _) if service.takes_socket() => {
                    format!(
                        "unix:{}",
                        runtime
                            .join(".pyapp/check")
                            .join(format!("{name}.sock"))
                            .display()
                    )
                }
                (_, Listen::Socket) => {
                    format!(
                        "unix:{}",
                        runtime.join("run").join(format!("{name}.sock")).display()
                    )
                }
                (_, Listen::Port) => format!("127.0.0.1:{}", self.port(name)?),
            };
            context.env.set(&check_variable(name), address);
        }
        hooks::run_hook(HookName::HealthCheck, command, &context, self.output)?;
        if instance == Instance::Check {
            for name in Self::socket_services(info) {
                let unit = Instance::Check.service_unit(self.tree.name(), name);
                if !self.systemd.is_active(&unit)? {
                    self.show_journal(&unit);
                    return Err(Refusal::new(format!(
                        "health check failed: {unit} is no longer running"
                    ))
                    .into());
                }
            }
        }
        self.output.note(&format!(
            "health check: {} exited 0",
            command.written().join(" ")
        ));
        Ok(())
    }

    fn service_takes_socket(&self, info: &ReleaseInfo, name: &str) -> bool {
        info.metadata
            .services
            .iter()
            .any(|service| service.name.as_str() == name && service.takes_socket())
    }

    /// Why `unit` will not become healthy however long the check waits: it has failed, or
    /// systemd has restarted it [`CRASH_LOOP_RESTARTS`] times since it was started.
    fn crashed(&self, unit: &str) -> Option<String> {
        let states = self
            .systemd
            .show(
                &[unit.to_owned()],
                &["Id", "ActiveState", "Result", "NRestarts"],
            )
            .ok()??;
        let state = states.get(unit)?;
        let restarts: u32 = state
            .get("NRestarts")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if state.get("ActiveState").map(String::as_str) == Some("failed") {
            let result = state.get("Result").map_or("failed", String::as_str);
            return Some(format!(
                "{unit} failed: {result}, after {restarts} restarts"
            ));
        }
        (restarts >= CRASH_LOOP_RESTARTS)
            .then(|| format!("{unit} keeps crashing: restarted {restarts} times"))
    }

    /// The last lines `unit` wrote to the journal, as notes: the cause of a failed health
    /// check is usually there.
    fn show_journal(&self, unit: &str) {
        match self.systemd.journal_tail(unit, JOURNAL_LINES) {
            Ok(lines) if !lines.is_empty() => {
                self.output.note(&format!("the last lines of {unit}:"));
                for line in lines {
                    self.output.note(&format!("  {line}"));
                }
            }
            Ok(_) => {}
            Err(err) => self
                .output
                .warning(&format!("cannot read the journal of {unit}: {err:#}")),
        }
    }

    /// Where `service` of `info` listens, as a host path or port.
    fn endpoint(&self, info: &ReleaseInfo, service: &str) -> Result<Endpoint> {
        let listen = info
            .metadata
            .services
            .iter()
            .find(|candidate| candidate.name.as_str() == service)
            .map(|candidate| candidate.listen)
            .context("the health check names a service the metadata lacks")?;
        match listen {
            Listen::Socket => Ok(Endpoint::Socket(
                self.tree.lasting_dir("run").join(format!("{service}.sock")),
            )),
            Listen::Port => Ok(Endpoint::Port(self.port(service)?)),
            Listen::None => anyhow::bail!("the health check's service does not listen"),
        }
    }

    /// The port allocated to `service`.
    fn port(&self, service: &str) -> Result<u16> {
        ports::load(self.tree)?
            .get(service)
            .copied()
            .with_context(|| format!("service {service} has no port allocated"))
    }

    fn hook_context(&self, info: &ReleaseInfo, timeout: u32) -> Result<HookContext<'_>> {
        let config_file = ConfigFile::new(self.tree, &info.spec).runtime_path();
        let mut context = HookContext::for_release(
            self.tree,
            self.user,
            &info.version(),
            &info.release,
            &config_file,
            timeout,
        );
        let config = self.config_values(info)?;
        context.env.extend(&info.spec.environment_values(&config));
        context.app_values = app_values(info, &config);
        Ok(context)
    }

    /// Puts `previous` back as the running release after a failed upgrade (or, on a
    /// first install, `None`: no release runs and the app's units are removed).
    pub fn revert_to(&self, previous: Option<&ReleaseInfo>) -> Result<()> {
        self.stop()?;
        fault::point("revert-after-stop");
        match previous {
            Some(info) => {
                let units = self.units_now(info)?;
                release::switch_current(self.tree, &info.release)?;
                fault::point("revert-after-switch");
                self.start(info, &units)
            }
            None => {
                pyapp_fs::remove_file_if_exists(&self.tree.current_link())?;
                if !self.systemd.remove_units(self.tree.name())?.is_empty() {
                    self.systemd.daemon_reload()?;
                }
                Ok(pyapp_fs::remove_file_if_exists(
                    &self.tree.environment_file(),
                )?)
            }
        }
    }
}

/// What `{mount}` and `{config.KEY}` stand for in `info`'s commands: its web mount, and
/// the values of `config`.
fn app_values(info: &ReleaseInfo, config: &ConfigValues) -> PlaceholderValues {
    let mut values = PlaceholderValues::from([(
        Placeholder::Mount,
        info.metadata.web_settings().prefix().to_owned(),
    )]);
    values.set_config(info.spec.command_values(config));
    values
}

/// The variable a health check command finds the address of service `name` in:
/// `PYAPP_CHECK_` and the name in capitals, `-` as `_` (`PYAPP_CHECK_WEB`).
fn check_variable(name: &str) -> String {
    format!(
        "PYAPP_CHECK_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The names of the units of `units` that are enabled (and so started).
fn enabled_units(units: &[UnitFile]) -> Vec<String> {
    units
        .iter()
        .filter(|unit| unit.is_enabled())
        .map(|unit| unit.name.clone())
        .collect()
}
