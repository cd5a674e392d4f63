//! `pyapp-install status APP`: how an installed app is doing, in one place: its version and
//! kept releases (the receipt and `current`), the systemd state of each of its services and
//! timers (one `systemctl show`), the last result of each hook (`.pyapp/hooks.json`), and
//! the disk it takes in its own tree and in the machine-wide wheel store. Read-only: it
//! takes no lock and changes nothing. Without a running systemd (under `--root`, in a
//! container) the unit states are unknown, and it says so instead of failing.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use pyapp_bundle::metadata::{DependencyMode, Listen, Relaxation};
use serde::Serialize;

use crate::app::config_file::ConfigFile;
use crate::app::hook_results::{self, HookResult};
use crate::app::installed::InstalledApp;
use crate::app::installed::ReleaseInfo;
use crate::app::ports;
use crate::app::receipt::{parse_rfc3339_utc, Receipt};
use crate::app::tree::{AppTree, AppsDir};
use crate::engine::list::{self, ListedRelease};
use crate::engine::Target;
use crate::system::systemd::Systemd;
use crate::system::units::{self, unit_stem, Instance};
use pyapp_venv::store::Store;

/// What `status` asks `systemctl show` about each unit.
const UNIT_PROPERTIES: [&str; 8] = [
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "StateChangeTimestamp",
    "Result",
    "NextElapseUSecRealtime",
    "LastTriggerUSec",
];

/// What `status --json` prints (FORMAT.md 9.1).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct AppStatus {
    pub name: String,
    pub version: String,
    pub release: String,
    pub installed_at: String,
    pub path: PathBuf,
    pub user: Option<String>,
    pub python: String,
    pub python_version: String,
    pub config_file: PathBuf,
    pub releases: Vec<ListedRelease>,
    /// `running` or `not-running`: without it every unit state is null.
    pub systemd: &'static str,
    pub services: Vec<ServiceStatus>,
    pub tasks: Vec<TaskStatus>,
    pub hooks: BTreeMap<String, HookResult>,
    pub disk_usage: DiskUsage,
    pub store_usage: StoreUsage,
}

/// A unit's state as systemd reports it; every field but `unit` is null when systemd is
/// not running.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct UnitStatus {
    pub unit: String,
    pub load_state: Option<String>,
    pub active_state: Option<String>,
    pub sub_state: Option<String>,
    /// When it entered its current state.
    pub since: Option<String>,
    /// How its last run ended (`success`, `exit-code`, …).
    pub result: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ServiceStatus {
    pub name: String,
    #[serde(flatten)]
    pub state: UnitStatus,
    pub listen: Listen,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    /// The hardening settings its metadata relaxes (FORMAT.md 8.4).
    pub relaxed: Vec<Relaxation>,
    /// The `.socket` unit that holds its listening socket, when its server takes the
    /// socket from systemd (FORMAT.md 8.8).
    pub listener: Option<UnitStatus>,
    /// Its check and next instances (8.8) that are not inactive: a handover under way, or
    /// one that a crash left behind.
    pub instances: Vec<UnitStatus>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TaskStatus {
    pub name: String,
    pub schedule: String,
    pub timer: TimerStatus,
    pub service: UnitStatus,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TimerStatus {
    #[serde(flatten)]
    pub state: UnitStatus,
    pub next_elapse: Option<String>,
    pub last_trigger: Option<String>,
}

/// The app's own files, in bytes: regular files under `APPS/APP`, each inode once, not
/// counting those that are the wheel store's (they are in [`StoreUsage`]).
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DiskUsage {
    pub bytes: u64,
    pub releases: u64,
    pub data: u64,
    pub log: u64,
}

/// The wheel store entries the app's kept releases use, in bytes, each entry once.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct StoreUsage {
    pub path: PathBuf,
    pub bytes: u64,
    /// The distinct `mode: shared` wheels of the kept releases.
    pub shared_wheels: usize,
    /// How many of them are in the store (an install made before the store has none).
    pub entries: usize,
}

/// How the app `app` is doing. Reads, never writes.
pub fn status(app: &str, target: &Target) -> Result<AppStatus> {
    let installed = InstalledApp::load(&target.apps, app)?;
    gather(&target.apps, &installed, &target.systemd)
}

fn gather(apps: &AppsDir, installed: &InstalledApp, systemd: &Systemd) -> Result<AppStatus> {
    let InstalledApp {
        tree,
        receipt,
        current,
    } = installed;
    let record = receipt
        .releases
        .iter()
        .find(|record| record.release == current.release);
    let releases = list::kept_releases(tree, receipt, Some(&current.release))?;
    let states = systemd.show(&units::unit_names(&current.metadata), &UNIT_PROPERTIES)?;
    let unit = |name: String| unit_status(name, states.as_ref());
    let ports = ports::load(tree)?;
    let app = tree.name();
    let services = current
        .metadata
        .services
        .iter()
        .map(|service| {
            let name = service.name.as_str();
            ServiceStatus {
                name: name.to_owned(),
                state: unit(format!("{}.service", unit_stem(app, name))),
                listen: service.listen,
                relaxed: service.relax.clone(),
                port: (service.listen == Listen::Port)
                    .then(|| ports.get(name).copied())
                    .flatten(),
                socket: (service.listen == Listen::Socket)
                    .then(|| tree.lasting_dir("run").join(format!("{name}.sock"))),
                listener: service
                    .takes_socket()
                    .then(|| unit(Instance::Main.socket_unit(app, name))),
                instances: if service.takes_socket() {
                    [Instance::Check, Instance::Next]
                        .into_iter()
                        .map(|instance| unit(instance.service_unit(app, name)))
                        .filter(|state| {
                            state
                                .active_state
                                .as_deref()
                                .is_some_and(|active| active != "inactive")
                        })
                        .collect()
                } else {
                    Vec::new()
                },
            }
        })
        .collect();
    let tasks = current
        .metadata
        .tasks
        .iter()
        .map(|task| {
            let stem = unit_stem(app, task.name.as_str());
            let timer_name = format!("{stem}.timer");
            let timer_properties = states.as_ref().and_then(|units| units.get(&timer_name));
            let timer_time = |key: &str| {
                timer_properties
                    .and_then(|properties| properties.get(key))
                    .and_then(|value| systemd_time(value))
            };
            TaskStatus {
                name: task.name.as_str().to_owned(),
                schedule: task.schedule.as_str().to_owned(),
                timer: TimerStatus {
                    next_elapse: timer_time("NextElapseUSecRealtime"),
                    last_trigger: timer_time("LastTriggerUSec"),
                    state: unit(timer_name),
                },
                service: unit(format!("{stem}.service")),
            }
        })
        .collect();
    let (disk_usage, store_usage) = usage(apps, tree, receipt, &releases)?;
    Ok(AppStatus {
        name: app.to_owned(),
        version: current.metadata.version.to_string(),
        release: current.release.clone(),
        installed_at: record
            .map_or_else(|| receipt.installed_at.clone(), |r| r.installed_at.clone()),
        path: tree.dir().to_path_buf(),
        user: receipt.user.clone(),
        python: receipt.python_of(&current.release).to_owned(),
        python_version: record.map_or_else(
            || receipt.python_version.clone(),
            |r| r.python_version.clone(),
        ),
        config_file: ConfigFile::new(tree, &current.spec).path(),
        releases,
        systemd: if systemd.is_running() {
            "running"
        } else {
            "not-running"
        },
        services,
        tasks,
        hooks: hook_results::load(tree)?,
        disk_usage,
        store_usage,
    })
}

/// `unit`'s state from `systemctl show` (`states`, `None` without systemd).
pub fn unit_status(
    unit: String,
    states: Option<&BTreeMap<String, BTreeMap<String, String>>>,
) -> UnitStatus {
    let properties = states.and_then(|units| units.get(&unit));
    let value = |key: &str| {
        properties
            .and_then(|properties| properties.get(key))
            .filter(|value| !value.is_empty())
            .cloned()
    };
    UnitStatus {
        load_state: value("LoadState"),
        active_state: value("ActiveState"),
        sub_state: value("SubState"),
        since: value("StateChangeTimestamp").and_then(|value| systemd_time(&value)),
        result: value("Result"),
        unit,
    }
}

/// A timestamp of `systemctl show` under `TZ=UTC` (`Sun 2026-11-22 03:00:00 UTC`) as RFC
/// 3339 (`2026-11-22T03:00:00Z`); systemd's own text when it is in another form; `None`
/// when empty (never happened).
fn systemd_time(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    let fields: Vec<&str> = value.split_whitespace().collect();
    let converted = match fields[..] {
        [_, date, time, "UTC"] | [date, time, "UTC"] => format!("{date}T{time}Z"),
        _ => return Some(value.to_owned()),
    };
    Some(if parse_rfc3339_utc(&converted).is_some() {
        converted
    } else {
        value.to_owned()
    })
}

/// The app's disk usage and its share of the store: the store entries of the `mode:
/// shared` wheels of the kept releases are summed first, each once, and their files are
/// then left out of the app's own usage (they are hard-linked into its venvs).
fn usage(
    apps: &AppsDir,
    tree: &AppTree,
    receipt: &Receipt,
    releases: &[ListedRelease],
) -> Result<(DiskUsage, StoreUsage)> {
    let mut shared = BTreeSet::new();
    for kept in releases {
        let info = ReleaseInfo::of_receipt(tree, receipt, &kept.release)?;
        for dependency in &info.metadata.dependencies {
            if dependency.mode == DependencyMode::Shared {
                shared.insert(dependency.sha256.clone());
            }
        }
    }
    let store = Store::of(apps.path());
    let mut seen = HashSet::new();
    let mut store_usage = StoreUsage {
        path: store.wheels_dir(),
        bytes: 0,
        shared_wheels: shared.len(),
        entries: 0,
    };
    for sha256 in &shared {
        let entry = store.entry_dir(sha256);
        if pyapp_fs::is_real_dir(&entry)? {
            store_usage.entries += 1;
            store_usage.bytes += walk_files(&entry, &mut seen, |_, _| {})?;
        }
    }
    let mut by_dir: BTreeMap<&str, u64> = BTreeMap::new();
    let bytes = walk_files(tree.dir(), &mut seen, |relative, size| {
        if let Some(Component::Normal(top)) = relative.components().next() {
            for name in ["releases", "data", "log"] {
                if top == name {
                    *by_dir.entry(name).or_default() += size;
                }
            }
        }
    })?;
    let of = |name: &str| by_dir.get(name).copied().unwrap_or(0);
    let disk = DiskUsage {
        bytes,
        releases: of("releases"),
        data: of("data"),
        log: of("log"),
    };
    Ok((disk, store_usage))
}

/// The bytes of the regular files under `dir` (links are not followed) whose inode is not
/// in `seen` yet, adding them to it; `each` gets every counted file's path relative to
/// `dir` and its size. Files that vanish during the walk (the app's temporary files) are
/// skipped.
fn walk_files(
    dir: &Path,
    seen: &mut HashSet<(u64, u64)>,
    mut each: impl FnMut(&Path, u64),
) -> Result<u64> {
    let mut total = 0;
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(err) if is_not_found(err.io_error()) => continue,
            Err(err) => {
                return Err(err).with_context(|| format!("failed to walk `{}`", dir.display()))
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(err) if is_not_found(err.io_error()) => continue,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to inspect `{}`", entry.path().display()))
            }
        };
        if !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.len();
        each(
            entry.path().strip_prefix(dir).unwrap_or(entry.path()),
            meta.len(),
        );
    }
    Ok(total)
}

fn is_not_found(err: Option<&io::Error>) -> bool {
    err.is_some_and(|err| err.kind() == io::ErrorKind::NotFound)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn systemd_times_become_rfc3339() {
        assert_eq!(
            systemd_time("Sun 2026-11-22 03:00:00 UTC").as_deref(),
            Some("2026-11-22T03:00:00Z")
        );
        assert_eq!(
            systemd_time("Sat 2026-11-21 17:49:16.240841 UTC").as_deref(),
            Some("2026-11-21T17:49:16.240841Z")
        );
        assert_eq!(systemd_time(""), None);
        // Anything else is shown as systemd wrote it.
        assert_eq!(
            systemd_time("Sun 2026-11-22 03:00:00 CET").as_deref(),
            Some("Sun 2026-11-22 03:00:00 CET")
        );
        assert_eq!(systemd_time("n/a").as_deref(), Some("n/a"));
    }

    #[test]
    fn hard_links_count_once_and_excluded_inodes_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/one"), "12345").unwrap();
        std::fs::hard_link(dir.path().join("a/one"), dir.path().join("two")).unwrap();
        std::fs::write(dir.path().join("three"), "123").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let mut seen = HashSet::new();
        let mut files = Vec::new();
        let total = walk_files(dir.path(), &mut seen, |path, size| {
            files.push((path.to_path_buf(), size));
        })
        .unwrap();
        assert_eq!(total, 8);
        assert_eq!(files.len(), 2);
        assert_eq!(walk_files(dir.path(), &mut seen, |_, _| {}).unwrap(), 0);
    }
}
