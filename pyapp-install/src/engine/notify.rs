//! Notifications (FORMAT.md 13.1): what becomes an event (a failed unit, a failed
//! activation, pre-delete hook or configuration change), delivering the spooled events
//! with retries, listing them, and the units that make systemd run the two. Recording
//! never fails the operation that failed: a spool that cannot be written is a warning.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::app::hook_results;
use crate::app::installed::ReleaseInfo;
use crate::app::receipt::{now_micros, parse_rfc3339_utc, rfc3339_utc, Receipt};
use crate::app::tree::{AppTree, DEFAULT_APPS_DIR};
use crate::engine::watch::inbox_units::{enable_path_unit, write_marked_units};
use crate::engine::Target;
use crate::system::app_user::is_host_root;
use crate::system::hooks::HookName;
use crate::system::notify::config::NotifyConfig;
use crate::system::notify::{
    self, send, Channel, Delivery, DeliveryState, Event, EventKind, Queue, Record, Spool,
};
use crate::system::systemd::{existing_unit_text, UnitFile, MARKER_PREFIX};
use crate::system::units::escape;
use pyapp_cli::Refusal;
use pyapp_fs::lock::WhenHeld;

/// The template unit an app unit's `OnFailure=` starts.
pub const TEMPLATE_UNIT: &str = "pyapp-notify@.service";
/// The oneshot that delivers the spool.
pub const DELIVER_UNIT: &str = "pyapp-notify.service";
/// The path unit starting [`DELIVER_UNIT`] when something is pending; enabled.
pub const PATH_UNIT: &str = "pyapp-notify.path";

/// The line marking the units `notify --install-units` wrote.
const MARKER: &str = "# pyapp-notify";

/// How many of a failed unit's last journal lines an event carries.
const LOG_LINES: usize = 10;

/// The longest wait between two tries.
const MAX_DELAY: Duration = Duration::from_secs(86_400);

/// Spools `event` when `target` is the host itself (never an image under `--root`); a
/// spool that cannot be written is said as a warning.
pub fn record(target: &Target, event: Event) {
    if !is_host_root(&target.root) {
        return;
    }
    if let Err(err) = Spool::of(&target.root).add(event) {
        target.progress().warning(&format!(
            "the failure was not recorded as a notification: {err:#}"
        ));
    }
}

/// Records that the activation of `release` (`version`) of `tree`'s app, begun at
/// `started_at` (RFC 3339 with milliseconds), failed with `err`: `hook-failed` when a
/// hook of that release failed since, else `kind`.
pub fn activation_failed(
    target: &Target,
    tree: &AppTree,
    kind: EventKind,
    (version, release): (&str, &str),
    started_at: &str,
    err: &anyhow::Error,
) {
    let hook = hook_results::load(tree).ok().and_then(|hooks| {
        hooks
            .into_iter()
            .find(|(name, result)| {
                name != HookName::HealthCheck.as_str()
                    && result.release == release
                    && result.started_at.as_str() >= started_at
                    && result.result != hook_results::HookEnd::Succeeded
            })
            .map(|(name, _)| name)
    });
    let kind = if hook.is_some() {
        EventKind::HookFailed
    } else {
        kind
    };
    release_failed(target, tree, kind, hook, (version, release), err);
}

/// Records `kind` about the running release (`info`), outside an activation: the failed
/// pre-delete `hook` of `remove` (which then removes nothing), or a `config --set` whose
/// saved configuration the release did not take (`config-failed`).
pub fn running_release_failed(
    target: &Target,
    tree: &AppTree,
    (kind, hook): (EventKind, Option<HookName>),
    info: &ReleaseInfo,
    err: &anyhow::Error,
) {
    let version = info.metadata.version.to_string();
    release_failed(
        target,
        tree,
        kind,
        hook.map(|hook| hook.as_str().to_owned()),
        (&version, &info.release),
        err,
    );
}

/// Records `kind` about `release` (`version`) of `tree`'s app, with `err` as the message.
fn release_failed(
    target: &Target,
    tree: &AppTree,
    kind: EventKind,
    hook: Option<String>,
    (version, release): (&str, &str),
    err: &anyhow::Error,
) {
    record(
        target,
        Event {
            hook,
            version: Some(version.to_owned()),
            release: Some(release.to_owned()),
            ..Event::new(kind, tree.name(), format!("{err:#}"))
        },
    );
}

/// What `notify --unit UNIT` recorded.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UnitReport {
    pub action: &'static str,
    pub event: Event,
}

/// Records that `unit`, one of an app's (its file carries the app's marker), failed.
pub fn unit_failed(unit: &str, target: &Target) -> Result<UnitReport> {
    let refuse = |why: &str| -> anyhow::Error {
        Refusal::new(format!("{unit}: {why}"))
            .with_hint(
                "`pyapp-install notify --unit` is for pyapp-notify@.service, which systemd starts",
            )
            .into()
    };
    let stem = unit
        .strip_suffix(".service")
        .filter(|stem| {
            !stem.is_empty()
                && stem
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        })
        .ok_or_else(|| refuse("not the name of an app's service unit"))?;
    let unit_dir = target.systemd.unit_dir();
    let app_of = |name: &str| -> Result<Option<String>> {
        Ok(existing_unit_text(&unit_dir.join(name))?.and_then(|text| {
            text.lines()
                .take(5)
                .find_map(|line| line.strip_prefix(MARKER_PREFIX).map(str::to_owned))
        }))
    };
    let app = app_of(unit)?.ok_or_else(|| refuse("not a unit pyapp-install wrote for an app"))?;
    let tree = target.apps.app(&app)?;
    let timer = format!("{stem}.timer");
    let kind = if app_of(&timer)?.as_deref() == Some(app.as_str()) {
        EventKind::TaskFailed
    } else {
        EventKind::ServiceFailed
    };
    let properties = target
        .systemd
        .show(
            &[unit.to_owned()],
            &["Id", "Result", "ExecMainCode", "ExecMainStatus"],
        )?
        .and_then(|mut units| units.remove(unit))
        .unwrap_or_default();
    let message = unit_message(unit, &properties);
    let log = target
        .systemd
        .journal_tail(unit, LOG_LINES)
        .unwrap_or_default();
    let current = Receipt::load(&tree.receipt_path())?;
    let event = Event {
        unit: Some(unit.to_owned()),
        version: current.as_ref().map(|receipt| receipt.version.clone()),
        release: current.as_ref().map(|receipt| receipt.release.clone()),
        log,
        ..Event::new(kind, &app, message)
    };
    Spool::of(&target.root).add(event.clone())?;
    target
        .progress()
        .note(&format!("recorded: {}", event.message));
    Ok(UnitReport {
        action: "recorded",
        event,
    })
}

/// `hello-cleanup.service failed (exit-code: exit status 4)`, from `systemctl show`.
fn unit_message(unit: &str, properties: &std::collections::BTreeMap<String, String>) -> String {
    let result = properties.get("Result").map_or("unknown", String::as_str);
    let status = properties.get("ExecMainStatus").map_or("", String::as_str);
    // ExecMainCode is the CLD_* code of the main process: 1 exited, 2 killed, 3 dumped.
    let how = match properties.get("ExecMainCode").map(String::as_str) {
        Some("1") => format!(": exit status {status}"),
        Some("2") => format!(": killed by signal {status}"),
        Some("3") => format!(": dumped core on signal {status}"),
        _ => String::new(),
    };
    format!("{unit} failed ({result}{how})")
}

/// What `notify --deliver` did.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DeliverReport {
    /// Events every channel delivered.
    pub delivered: usize,
    /// Events a channel gave up on.
    pub failed: usize,
    /// Events kept without deliveries: no channel is configured.
    pub unconfigured: usize,
    /// Another deliverer held the spool: this one did nothing.
    pub busy: bool,
}

/// Delivers every pending event on each configured channel, retrying failed tries after
/// the configured delay (doubling), until nothing is pending.
pub fn deliver(target: &Target) -> Result<DeliverReport> {
    let spool = Spool::of(&target.root);
    let mut report = DeliverReport::default();
    let _lock = match spool.lock(WhenHeld::FailFast) {
        Ok(lock) => lock,
        Err(err) if is_locked(&err) => {
            target
                .progress()
                .note("another `pyapp-install notify --deliver` is delivering the spool");
            report.busy = true;
            return Ok(report);
        }
        Err(err) => return Err(err),
    };
    let config = NotifyConfig::load(&target.root)?;
    loop {
        let mut next_due: Option<u64> = None;
        let ids = spool.ids(Queue::Pending)?;
        if ids.is_empty() {
            return Ok(report);
        }
        for id in ids {
            let Some(mut record) = read_pending(&spool, &id, target)? else {
                continue;
            };
            if record.deliveries.is_empty() {
                record.deliveries = channels(config.as_ref());
            }
            for delivery in &mut record.deliveries {
                try_delivery(delivery, &record.event, config.as_ref(), target);
            }
            let due = record
                .deliveries
                .iter()
                .filter(|delivery| delivery.state == DeliveryState::Pending)
                .filter_map(|delivery| delivery.next_attempt.as_deref().and_then(seconds_of))
                .min();
            match due {
                Some(due) => {
                    spool.update(&record)?;
                    next_due = Some(next_due.map_or(due, |next| next.min(due)));
                }
                None => {
                    let states = record.deliveries.iter().map(|delivery| delivery.state);
                    if record.deliveries.is_empty() {
                        report.unconfigured += 1;
                    } else if states.clone().any(|state| state == DeliveryState::Failed) {
                        report.failed += 1;
                    } else {
                        report.delivered += 1;
                    }
                    spool.finish(&record)?;
                }
            }
        }
        if let Some(due) = next_due {
            wait_until(&spool, due)?;
        }
    }
}

/// Sleeps until `due` (seconds since the epoch), or until a new event is spooled.
fn wait_until(spool: &Spool, due: u64) -> Result<()> {
    let known = spool.ids(Queue::Pending)?;
    while now_seconds() < due {
        std::thread::sleep(Duration::from_secs(1));
        if spool
            .ids(Queue::Pending)?
            .iter()
            .any(|id| !known.contains(id))
        {
            break;
        }
    }
    Ok(())
}

/// Seconds since the epoch of a time this module wrote (`next-attempt`).
fn seconds_of(time: &str) -> Option<u64> {
    parse_rfc3339_utc(time).map(|micros| micros / 1_000_000)
}

fn now_seconds() -> u64 {
    now_micros() / 1_000_000
}

fn is_locked(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<pyapp_fs::FsError>()
            .is_some_and(|err| matches!(err, pyapp_fs::FsError::Locked { .. }))
    })
}

/// The pending record `id`; one that cannot be read is set aside with a warning, so that
/// it does not stop the others.
fn read_pending(spool: &Spool, id: &str, target: &Target) -> Result<Option<Record>> {
    match spool.read(Queue::Pending, id) {
        Ok(record) => Ok(record),
        Err(err) => {
            let to = spool.set_aside(id)?;
            target.progress().warning(&format!(
                "notification {id} set aside as `{}`: {err:#}",
                to.display()
            ));
            Ok(None)
        }
    }
}

/// A pending delivery per configured channel.
fn channels(config: Option<&NotifyConfig>) -> Vec<Delivery> {
    let Some(config) = config else {
        return Vec::new();
    };
    let mut channels = Vec::new();
    if config.webhook.is_some() {
        channels.push(Channel::Webhook);
    }
    if config.command.is_some() {
        channels.push(Channel::Command);
    }
    channels
        .into_iter()
        .map(|channel| Delivery {
            channel,
            state: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
            next_attempt: None,
        })
        .collect()
}

/// Tries `delivery` once when it is pending and due.
fn try_delivery(
    delivery: &mut Delivery,
    event: &Event,
    config: Option<&NotifyConfig>,
    target: &Target,
) {
    let now = now_seconds();
    let due = delivery
        .next_attempt
        .as_deref()
        .and_then(seconds_of)
        .is_none_or(|at| at <= now);
    if delivery.state != DeliveryState::Pending || !due {
        return;
    }
    let Some(config) = config else {
        delivery.state = DeliveryState::Failed;
        delivery.last_error = Some(format!(
            "{} is gone: no channel is configured",
            crate::system::notify::config::CONFIG_FILE
        ));
        delivery.next_attempt = None;
        return;
    };
    let body = match serde_json::to_vec(event) {
        Ok(body) => body,
        Err(err) => {
            delivery.state = DeliveryState::Failed;
            delivery.last_error = Some(err.to_string());
            return;
        }
    };
    let sent = match (delivery.channel, &config.webhook, &config.command) {
        (Channel::Webhook, Some(hook), _) => send::post(hook, &body, config.timeout),
        (Channel::Command, _, Some(command)) => send::run(command, &body, config.timeout),
        (channel, ..) => Err(anyhow::anyhow!(
            "the {} channel is no longer configured",
            serde_json::to_value(channel)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default()
        )),
    };
    delivery.attempts += 1;
    match sent {
        Ok(()) => {
            delivery.state = DeliveryState::Delivered;
            delivery.last_error = None;
            delivery.next_attempt = None;
            target.progress().note(&format!(
                "delivered notification {} ({:?}) on try {}",
                event.id, delivery.channel, delivery.attempts
            ));
        }
        Err(err) => {
            delivery.last_error = Some(format!("{err:#}"));
            if delivery.attempts >= config.attempts {
                delivery.state = DeliveryState::Failed;
                delivery.next_attempt = None;
                target.progress().warning(&format!(
                    "gave up notification {} after {} tries: {err:#}",
                    event.id, delivery.attempts
                ));
            } else {
                let delay = config
                    .retry_delay
                    .saturating_mul(1 << (delivery.attempts - 1).min(20))
                    .min(MAX_DELAY);
                delivery.next_attempt = Some(rfc3339_utc(now + delay.as_secs()));
                target.progress().note(&format!(
                    "notification {} not delivered ({err:#}); next try in {} s",
                    event.id,
                    delay.as_secs()
                ));
            }
        }
    }
}

/// How an event's delivery stands, as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotificationState {
    Pending,
    Delivered,
    Failed,
    Unconfigured,
}

/// One event with its deliveries, as `notify --json` and the API list it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Notification {
    pub id: String,
    pub state: NotificationState,
    pub event: Event,
    pub deliveries: Vec<Delivery>,
}

/// The recent events, newest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct NotificationsReport {
    pub notifications: Vec<Notification>,
}

/// The newest `limit` events (of `app` only, when given), pending and sent.
pub fn list(target: &Target, app: Option<&str>, limit: usize) -> Result<NotificationsReport> {
    if let Some(app) = app {
        target.apps.app(app)?;
    }
    let spool = Spool::of(&target.root);
    let mut all: Vec<(String, Queue)> = Vec::new();
    for queue in [Queue::Pending, Queue::Sent] {
        all.extend(spool.ids(queue)?.into_iter().map(|id| (id, queue)));
    }
    all.sort_by(|a, b| b.0.cmp(&a.0));
    let mut notifications = Vec::new();
    for (id, queue) in all {
        if notifications.len() >= limit {
            break;
        }
        // A record delivered (moved) since it was listed is read from its new place.
        let record = match spool.read(queue, &id)? {
            Some(record) => record,
            None => match spool.read(Queue::Sent, &id)? {
                Some(record) => record,
                None => continue,
            },
        };
        if app.is_some_and(|app| app != record.event.app) {
            continue;
        }
        let states = || record.deliveries.iter().map(|delivery| delivery.state);
        let state = if states().any(|state| state == DeliveryState::Pending)
            || (queue == Queue::Pending && record.deliveries.is_empty())
        {
            NotificationState::Pending
        } else if record.deliveries.is_empty() {
            NotificationState::Unconfigured
        } else if states().any(|state| state == DeliveryState::Failed) {
            NotificationState::Failed
        } else {
            NotificationState::Delivered
        };
        notifications.push(Notification {
            id,
            state,
            event: record.event,
            deliveries: record.deliveries,
        });
    }
    Ok(NotificationsReport { notifications })
}

/// What `notify --install-units` did.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UnitsReport {
    pub action: &'static str,
    pub units: [&'static str; 3],
    pub unit_dir: String,
    /// Whether systemd was running, so the path unit was enabled and started.
    pub enabled: bool,
}

/// Writes the template, the deliverer and its path unit naming this program, and on a
/// running systemd enables the path unit.
pub fn install_units(target: &Target) -> Result<UnitsReport> {
    let program = std::env::current_exe().context("failed to find this program's own path")?;
    let apps_dir = target.apps.runtime_path();
    let units = generate(
        &program.display().to_string(),
        (apps_dir != Path::new(DEFAULT_APPS_DIR)).then(|| apps_dir.display().to_string()),
    )
    .map_err(|err| {
        Refusal::new(format!("cannot write the notification units: {err}"))
            .with_hint("run pyapp-install from a path of plain characters")
    })?;
    Spool::of(&target.root).ensure()?;
    let systemd = &target.systemd;
    let changed = write_marked_units(systemd, &units, MARKER, "notify")?;
    enable_path_unit(systemd, &units, PATH_UNIT, changed, target.progress())?;
    target.progress().note(&format!(
        "{} {TEMPLATE_UNIT}, {DELIVER_UNIT} and {PATH_UNIT} in {}",
        if changed { "wrote" } else { "unchanged:" },
        systemd.unit_dir().display()
    ));
    Ok(UnitsReport {
        action: if changed { "written" } else { "unchanged" },
        units: [TEMPLATE_UNIT, DELIVER_UNIT, PATH_UNIT],
        unit_dir: systemd.unit_dir().display().to_string(),
        enabled: systemd.is_running(),
    })
}

/// The three units, running `program` (with `--apps-dir DIR` when not the default).
fn generate(program: &str, apps_dir: Option<String>) -> Result<Vec<UnitFile>, escape::EscapeError> {
    let header = format!(
        "# Generated by pyapp-install notify --install-units: do not edit, running it again \
         replaces it.\n{MARKER}\n"
    );
    let mut exec = escape::exec_program(program)?;
    if let Some(dir) = &apps_dir {
        exec.push_str(&format!(" \"--apps-dir\" {}", escape::exec_word(dir)?));
    }
    let pending = format!("/{}/pending", notify::SPOOL_DIR);
    // `%i`: the instance, the failed unit's whole name (`hello-web.service`); app unit
    // names have nothing systemd would escape.
    let template = format!(
        "{header}[Unit]\nDescription=pyapp: record that %i failed\n\n[Service]\nType=oneshot\n\
         ExecStart={exec} \"notify\" \"--unit\" \"%i\"\n"
    );
    let deliver = format!(
        "{header}[Unit]\nDescription=pyapp: deliver the notifications in {pending}\n\n\
         [Service]\nType=oneshot\nExecStart={exec} \"notify\" \"--deliver\"\n"
    );
    let path = format!(
        "{header}[Unit]\nDescription=pyapp: deliver notifications when they are spooled\n\n\
         [Path]\nDirectoryNotEmpty={pending}\nUnit={DELIVER_UNIT}\n\n[Install]\n\
         WantedBy=paths.target\n"
    );
    Ok(vec![
        UnitFile {
            name: TEMPLATE_UNIT.to_owned(),
            text: template,
        },
        UnitFile {
            name: DELIVER_UNIT.to_owned(),
            text: deliver,
        },
        UnitFile {
            name: PATH_UNIT.to_owned(),
            text: path,
        },
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_units_run_this_program_and_the_packaged_ones_match() {
        let units = generate("/usr/bin/pyapp-install", None).unwrap();
        for unit in &units {
            let packaged = std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../packaging")
                    .join(&unit.name),
            )
            .unwrap();
            assert_eq!(packaged, unit.text, "packaging/{} differs", unit.name);
        }
        assert!(units[0]
            .text
            .contains("\nExecStart=\"/usr/bin/pyapp-install\" \"notify\" \"--unit\" \"%i\"\n"));
        assert!(units[2].is_enabled() && !units[0].is_enabled() && !units[1].is_enabled());
        let other = generate("/opt/p/pyapp-install", Some("/srv/apps".into())).unwrap();
        assert!(other[1].text.contains(
            "\nExecStart=\"/opt/p/pyapp-install\" \"--apps-dir\" \"/srv/apps\" \"notify\" \"--deliver\"\n"
        ));
    }

    #[test]
    fn a_failed_try_is_retried_when_due_then_given_up() {
        let root = tempfile::tempdir().unwrap();
        let target = Target::new(
            root.path().to_path_buf(),
            Path::new(DEFAULT_APPS_DIR),
            crate::app::ports::PortRange::DEFAULT,
            std::sync::Arc::new(crate::progress::Silent),
        );
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        std::fs::create_dir_all(root.path().join("etc/pyapp")).unwrap();
        std::fs::write(
            root.path().join(crate::system::notify::config::CONFIG_FILE),
            format!("webhook: http://{closed}/\nattempts: 3\nretry-delay: 60\ntimeout: 2\n"),
        )
        .unwrap();
        let config = NotifyConfig::load(root.path()).unwrap();
        let mut deliveries = channels(config.as_ref());
        let event = Event::new(
            EventKind::ServiceFailed,
            "hello",
            "hello-web.service failed (signal: killed by signal 9)".into(),
        );
        let delivery = &mut deliveries[0];
        try_delivery(delivery, &event, config.as_ref(), &target);
        assert_eq!(delivery.state, DeliveryState::Pending);
        assert_eq!(delivery.attempts, 1);
        assert!(delivery
            .last_error
            .as_deref()
            .unwrap()
            .contains("cannot connect"));
        let next = seconds_of(delivery.next_attempt.as_deref().unwrap()).unwrap();
        assert!((60..=62).contains(&(next - now_seconds())), "{next}");
        // Not due yet: not tried.
        try_delivery(delivery, &event, config.as_ref(), &target);
        assert_eq!(delivery.attempts, 1);
        // Due: tried, and the delay doubles.
        delivery.next_attempt = Some(rfc3339_utc(now_seconds()));
        try_delivery(delivery, &event, config.as_ref(), &target);
        assert_eq!(delivery.attempts, 2);
        let next = seconds_of(delivery.next_attempt.as_deref().unwrap()).unwrap();
        assert!((120..=122).contains(&(next - now_seconds())), "{next}");
        delivery.next_attempt = Some(rfc3339_utc(now_seconds()));
        try_delivery(delivery, &event, config.as_ref(), &target);
        assert_eq!(delivery.attempts, 3);
        assert_eq!(delivery.state, DeliveryState::Failed);
        assert_eq!(delivery.next_attempt, None);
    }

    #[test]
    fn unit_messages_say_how_the_main_process_ended() {
        let props = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            unit_message(
                "hello-cleanup.service",
                &props(&[
                    ("Result", "exit-code"),
                    ("ExecMainCode", "1"),
                    ("ExecMainStatus", "4")
                ])
            ),
            "hello-cleanup.service failed (exit-code: exit status 4)"
        );
        assert_eq!(
            unit_message(
                "hello-web.service",
                &props(&[
                    ("Result", "signal"),
                    ("ExecMainCode", "2"),
                    ("ExecMainStatus", "9")
                ])
            ),
            "hello-web.service failed (signal: killed by signal 9)"
        );
        assert_eq!(
            unit_message("x.service", &props(&[])),
            "x.service failed (unknown)"
        );
    }
}
