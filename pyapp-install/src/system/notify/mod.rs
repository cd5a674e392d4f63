//! Notifications (FORMAT.md 13.1): the events a failure becomes, their spool under
//! `/var/lib/pyapp/notify` and the two channels they are delivered on. The engine decides
//! what is an event and when delivery runs; this module keeps and sends them.

pub mod config;
pub mod send;

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use crate::app::receipt::{now_micros, now_rfc3339_millis};
use pyapp_fs::lock::{AppLock, WhenHeld};
use pyapp_fs::state::{self, Versioned};

/// The spool, relative to the root.
pub const SPOOL_DIR: &str = "var/lib/pyapp/notify";

/// The version of a spooled record's layout.
pub const NOTIFICATION_FORMAT: u32 = 1;

/// How many delivered (or given-up) events `sent/` keeps.
pub const KEEP_SENT: usize = 200;

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    ServiceFailed,
    TaskFailed,
    HookFailed,
    InstallFailed,
    UpgradeFailed,
    RollbackFailed,
    ConfigFailed,
}

/// One failure, as the webhook and the command receive it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Event {
    /// Microseconds since the epoch and the recording process's id: unique, ordered.
    pub id: String,
    /// RFC 3339 UTC with milliseconds.
    pub time: String,
    pub host: String,
    pub kind: EventKind,
    pub app: String,
    /// The failed unit (`service-failed`, `task-failed`).
    pub unit: Option<String>,
    /// The failed hook (`hook-failed`).
    pub hook: Option<String>,
    /// The release that failed, when known.
    pub version: Option<String>,
    pub release: Option<String>,
    pub message: String,
    /// The last lines of the unit's journal.
    pub log: Vec<String>,
}

impl Event {
    /// A new event of `kind` about `app`, now, on this host; the rest unknown.
    pub fn new(kind: EventKind, app: &str, message: String) -> Event {
        Event {
            id: format!("{}-{}", now_micros(), std::process::id()),
            time: now_rfc3339_millis(),
            host: host_name(),
            kind,
            app: app.to_owned(),
            unit: None,
            hook: None,
            version: None,
            release: None,
            message,
            log: Vec::new(),
        }
    }
}

/// A channel an event is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Webhook,
    Command,
}

/// Where one channel's delivery of an event stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Every try failed: given up.
    Failed,
}

/// One channel's delivery of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Delivery {
    pub channel: Channel,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// When the next try is due (RFC 3339 UTC), while pending after a failed one.
    pub next_attempt: Option<String>,
}

/// A spooled event with its deliveries: `pending/ID.json` or `sent/ID.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Record {
    pub notification_format: u32,
    pub event: Event,
    /// Empty until a deliverer has read the configuration.
    pub deliveries: Vec<Delivery>,
}

impl Versioned for Record {
    const WHAT: &'static str = "notification";
    const FORMAT_FIELD: &'static str = "notification-format";
    const FORMAT: u32 = NOTIFICATION_FORMAT;
}

/// Which part of the spool a record is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    Pending,
    Sent,
}

impl Queue {
    fn dir(self) -> &'static str {
        match self {
            Queue::Pending => "pending",
            Queue::Sent => "sent",
        }
    }
}

/// The spool of `root`: `ROOT/var/lib/pyapp/notify/{pending,sent}/`, root's, 0700.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
}

impl Spool {
    pub fn of(root: &Path) -> Spool {
        Spool {
            dir: root.join(SPOOL_DIR),
        }
    }

    /// Makes the spool's directories that are missing: `var/lib/pyapp` as `/var/lib`
    /// (0755), the spool and its queues root's alone (0700).
    pub fn ensure(&self) -> Result<()> {
        let mut missing: Vec<&Path> = self
            .dir
            .ancestors()
            .take_while(|dir| !dir.exists())
            .collect();
        missing.reverse();
        for dir in missing {
            let mode = if dir == self.dir { 0o700 } else { 0o755 };
            pyapp_fs::ensure_dir(dir, mode)?;
        }
        for queue in [Queue::Pending, Queue::Sent] {
            pyapp_fs::ensure_dir(&self.dir.join(queue.dir()), 0o700)?;
        }
        Ok(())
    }

    fn path(&self, queue: Queue, id: &str) -> PathBuf {
        self.dir.join(queue.dir()).join(format!("{id}.json"))
    }

    /// Spools `event`, pending delivery.
    pub fn add(&self, event: Event) -> Result<PathBuf> {
        self.ensure()?;
        let path = self.path(Queue::Pending, &event.id);
        let record = Record {
            notification_format: NOTIFICATION_FORMAT,
            event,
            deliveries: Vec::new(),
        };
        state::write(&path, &record)?;
        Ok(path)
    }

    /// The ids in `queue`, oldest first.
    pub fn ids(&self, queue: Queue) -> Result<Vec<String>> {
        let names = pyapp_fs::list_dir(&self.dir.join(queue.dir()))?;
        Ok(names
            .into_iter()
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .collect())
    }

    /// The record `id` of `queue`, `None` when it is gone (delivered meanwhile).
    pub fn read(&self, queue: Queue, id: &str) -> Result<Option<Record>> {
        Ok(state::read(&self.path(queue, id))?)
    }

    /// Saves `record`, still pending.
    pub fn update(&self, record: &Record) -> Result<()> {
        Ok(state::write(
            &self.path(Queue::Pending, &record.event.id),
            record,
        )?)
    }

    /// Moves `record` (saved as it is now) to `sent/` and deletes the oldest there beyond
    /// [`KEEP_SENT`].
    pub fn finish(&self, record: &Record) -> Result<()> {
        let id = &record.event.id;
        state::write(&self.path(Queue::Sent, id), record)?;
        pyapp_fs::remove_file_if_exists(&self.path(Queue::Pending, id))?;
        let sent = self.ids(Queue::Sent)?;
        for old in &sent[..sent.len().saturating_sub(KEEP_SENT)] {
            pyapp_fs::remove_file_if_exists(&self.path(Queue::Sent, old))?;
        }
        Ok(())
    }

    /// Moves the pending record `id`, which cannot be read, out of `pending/` (which must
    /// empty for the deliverer to rest): to `ID.json.unreadable` beside the queues.
    pub fn set_aside(&self, id: &str) -> Result<PathBuf> {
        let to = self.dir.join(format!("{id}.json.unreadable"));
        pyapp_fs::rename(&self.path(Queue::Pending, id), &to)?;
        Ok(to)
    }

    /// The spool's lock, held by the one deliverer at a time.
    pub fn lock(&self, when_held: WhenHeld) -> Result<AppLock> {
        self.ensure()?;
        Ok(AppLock::acquire(
            &self.dir.join("lock"),
            "the notification spool",
            when_held,
        )?)
    }
}

/// This machine's name (the kernel's, whatever the root).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    pub(crate) fn event(id: &str) -> Event {
        Event {
            id: id.to_owned(),
            time: "2026-12-03T06:16:10.123Z".to_owned(),
            host: "web1".to_owned(),
            kind: EventKind::TaskFailed,
            app: "hello".to_owned(),
            unit: Some("hello-cleanup.service".to_owned()),
            hook: None,
            version: Some("1.0.0".to_owned()),
            release: Some("1.0.0-3f2a9c41".to_owned()),
            message: "hello-cleanup.service failed: exit status 4".to_owned(),
            log: vec!["Traceback".to_owned()],
        }
    }

    #[test]
    fn an_event_serialises_as_the_format_says() {
        let json = serde_json::to_value(event("1-2")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "1-2",
                "time": "2026-12-03T06:16:10.123Z",
                "host": "web1",
                "kind": "task-failed",
                "app": "hello",
                "unit": "hello-cleanup.service",
                "hook": null,
                "version": "1.0.0",
                "release": "1.0.0-3f2a9c41",
                "message": "hello-cleanup.service failed: exit status 4",
                "log": ["Traceback"],
            })
        );
        let kinds: Vec<String> = [
            EventKind::ServiceFailed,
            EventKind::HookFailed,
            EventKind::InstallFailed,
            EventKind::UpgradeFailed,
            EventKind::RollbackFailed,
            EventKind::ConfigFailed,
        ]
        .iter()
        .map(|kind| {
            serde_json::to_value(kind)
                .unwrap()
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
        assert_eq!(
            kinds,
            [
                "service-failed",
                "hook-failed",
                "install-failed",
                "upgrade-failed",
                "rollback-failed",
                "config-failed"
            ]
        );
    }

    #[test]
    fn the_spool_keeps_pending_and_sent_records() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::of(root.path());
        assert!(spool.ids(Queue::Pending).unwrap().is_empty());
        spool.add(event("2-1")).unwrap();
        spool.add(event("1-1")).unwrap();
        assert_eq!(spool.ids(Queue::Pending).unwrap(), ["1-1", "2-1"]);
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(root.path().join(SPOOL_DIR))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o700);
        let mut record = spool.read(Queue::Pending, "1-1").unwrap().unwrap();
        record.deliveries.push(Delivery {
            channel: Channel::Webhook,
            state: DeliveryState::Delivered,
            attempts: 1,
            last_error: None,
            next_attempt: None,
        });
        spool.finish(&record).unwrap();
        assert_eq!(spool.ids(Queue::Pending).unwrap(), ["2-1"]);
        assert_eq!(spool.read(Queue::Sent, "1-1").unwrap().unwrap(), record);
        let text =
            std::fs::read_to_string(root.path().join(SPOOL_DIR).join("sent/1-1.json")).unwrap();
        assert!(text.contains("\"notification-format\": 1"), "{text}");
        assert!(spool.read(Queue::Pending, "1-1").unwrap().is_none());
    }
}
