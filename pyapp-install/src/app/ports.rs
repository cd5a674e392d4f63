//! Ports for `listen: port` services (FORMAT.md 8.4): each service gets a port from the
//! installer's range once, remembered in `APP/.pyapp/ports.json` so upgrades, rollbacks and
//! reinstalls keep it, and never one another app under the same apps directory holds or
//! that something already listens on at 127.0.0.1.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::str::FromStr;

use anyhow::Result;
use pyapp_bundle::metadata::{Listen, Metadata};
use serde::{Deserialize, Serialize};

use crate::app::tree::{AppTree, AppsDir};
use pyapp_cli::Refusal;
use pyapp_fs::lock::{AppLock, WhenHeld};
use pyapp_fs::state::{self, Versioned};

/// The version of `ports.json` this code writes and reads.
const PORTS_FORMAT: u32 = 1;

/// The lock file, in the apps directory, held while ports are chosen: two installs of
/// different apps at once must not pick the same port.
const ALLOCATION_LOCK: &str = ".pyapp-ports.lock";

/// An inclusive range of TCP ports, `--port-range 8000-8999`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    /// The range used when `--port-range` is not given.
    pub const DEFAULT: PortRange = PortRange {
        first: 8000,
        last: 8999,
    };
}

impl Default for PortRange {
    fn default() -> Self {
        PortRange::DEFAULT
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(text: &str) -> Result<PortRange, String> {
        let problem = || format!("{text:?} is not a port range FIRST-LAST within 1-65535");
        let (first, last) = text.split_once('-').ok_or_else(problem)?;
        let parse = |port: &str| match port.parse::<u16>() {
            Ok(0) | Err(_) => Err(problem()),
            Ok(port) => Ok(port),
        };
        let (first, last) = (parse(first)?, parse(last)?);
        if first > last {
            return Err(format!(
                "{text:?} runs backwards (write the lower port first)"
            ));
        }
        Ok(PortRange { first, last })
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `APP/.pyapp/ports.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct PortsFile {
    ports_format: u32,
    /// Service name to port; services that went away keep theirs (a rollback may bring
    /// them back).
    ports: BTreeMap<String, u16>,
}

impl Versioned for PortsFile {
    const WHAT: &'static str = "ports file";
    const FORMAT_FIELD: &'static str = "ports-format";
    const FORMAT: u32 = PORTS_FORMAT;
}

/// `APP/.pyapp/ports.json`: the ports the app's services were given.
pub fn ports_path(tree: &AppTree) -> PathBuf {
    tree.state_dir().join("ports.json")
}

/// The ports remembered for the app (service name to port); empty when none were given.
pub fn load(tree: &AppTree) -> Result<BTreeMap<String, u16>> {
    let path = ports_path(tree);
    let file: Option<PortsFile> = state::read(&path)?;
    Ok(file.map(|file| file.ports).unwrap_or_default())
}

/// The port of every `listen: port` service of `metadata`, allocating (and remembering)
/// one from `range` for each service that has none yet. Returns every remembered port.
pub fn allocate(
    apps: &AppsDir,
    tree: &AppTree,
    metadata: &Metadata,
    range: PortRange,
) -> Result<BTreeMap<String, u16>> {
    let mut ports = load(tree)?;
    let missing: Vec<&str> = metadata
        .services
        .iter()
        .filter(|service| service.listen == Listen::Port)
        .map(|service| service.name.as_str())
        .filter(|name| !ports.contains_key(*name))
        .collect();
    if missing.is_empty() {
        return Ok(ports);
    }
    let _lock = AppLock::acquire(
        &apps.path().join(ALLOCATION_LOCK),
        "port allocation",
        WhenHeld::Wait,
    )?;
    let mut taken = ports_of_other_apps(apps, tree)?;
    taken.extend(ports.values().copied());
    for service in missing {
        let port = (range.first..=range.last)
            .find(|port| !taken.contains(port) && is_free(*port))
            .ok_or_else(|| {
                Refusal::new(format!(
                    "no free port left in {range} for {}-{service} ({} taken by apps, the \
                     others in use on 127.0.0.1)",
                    tree.name(),
                    taken
                        .iter()
                        .filter(|p| (range.first..=range.last).contains(*p))
                        .count()
                ))
                .with_hint("give a wider or another range with --port-range FIRST-LAST")
            })?;
        taken.insert(port);
        ports.insert(service.to_owned(), port);
    }
    save(tree, &ports)?;
    Ok(ports)
}

/// Writes `ports.json` atomically.
fn save(tree: &AppTree, ports: &BTreeMap<String, u16>) -> Result<()> {
    let file = PortsFile {
        ports_format: PORTS_FORMAT,
        ports: ports.clone(),
    };
    Ok(state::write(&ports_path(tree), &file)?)
}

/// Every port the other apps under `apps` remember (installed or removed but not purged).
fn ports_of_other_apps(apps: &AppsDir, tree: &AppTree) -> Result<BTreeSet<u16>> {
    let mut taken = BTreeSet::new();
    for name in pyapp_fs::list_dir(apps.path())? {
        if name == tree.name() {
            continue;
        }
        if let Ok(other) = apps.app(&name) {
            taken.extend(load(&other)?.into_values());
        }
    }
    Ok(taken)
}

/// Whether nothing listens on `port` at 127.0.0.1 (we can bind it ourselves).
fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::path::Path;

    fn metadata(services: &[(&str, &str)]) -> Metadata {
        let mut text = String::from(
            "format: 1\nname: hello\nversion: 1.0.0\nrequires-python: \">=3.9\"\nmodule: hello\n\
             source-commit: null\nbuilt-by: test\napp-wheel: hello-1.0.0-py3-none-any.whl\n\
             dependencies:\n  - {name: hello, version: 1.0.0, wheel: hello-1.0.0-py3-none-any.whl, \
             sha256: 0000000000000000000000000000000000000000000000000000000000000000, mode: local}\n\
             services:\n",
        );
        for (name, listen) in services {
            text.push_str(&format!(
                "  - {{name: {name}, command: tool, listen: {listen}}}\n"
            ));
        }
        Metadata::parse(&text, "metadata.yaml").unwrap()
    }

    fn setup() -> (tempfile::TempDir, AppsDir) {
        let root = tempfile::tempdir().unwrap();
        let apps = AppsDir::new(root.path(), Path::new("/applications"));
        for app in ["hello", "other"] {
            std::fs::create_dir_all(apps.path().join(app).join(".pyapp")).unwrap();
        }
        (root, apps)
    }

    /// A range of `size` ports nothing listens on, starting at a port the OS picked.
    fn free_range(size: u16) -> PortRange {
        for _ in 0..50 {
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let first = listener.local_addr().unwrap().port();
            drop(listener);
            if first.checked_add(size).is_some() && (first..first + size).all(is_free) {
                return PortRange {
                    first,
                    last: first + size - 1,
                };
            }
        }
        panic!("no free range of {size} ports");
    }

    #[test]
    fn ranges_parse_and_print() {
        assert_eq!("8000-8999".parse::<PortRange>(), Ok(PortRange::DEFAULT));
        assert_eq!(PortRange::DEFAULT.to_string(), "8000-8999");
        assert_eq!(
            "9000-8000".parse::<PortRange>().unwrap_err(),
            "\"9000-8000\" runs backwards (write the lower port first)"
        );
        for bad in ["8000", "0-10", "1-65536", "a-b", "-", "80 - 90"] {
            assert!(bad.parse::<PortRange>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn ports_are_allocated_once_and_remembered() {
        let (_root, apps) = setup();
        let tree = apps.app("hello").unwrap();
        let range = free_range(4);
        let first = allocate(
            &apps,
            &tree,
            &metadata(&[("web", "port"), ("worker", "none")]),
            range,
        )
        .unwrap();
        assert_eq!(first, BTreeMap::from([("web".to_owned(), range.first)]));
        assert_eq!(load(&tree).unwrap(), first);

        // An upgrade adds a service: the old port stays, the new one gets the next.
        let second = allocate(
            &apps,
            &tree,
            &metadata(&[("web", "port"), ("api", "port")]),
            range,
        )
        .unwrap();
        assert_eq!(second["web"], range.first);
        assert_eq!(second["api"], range.first + 1);

        // A version without `api` (a rollback) keeps api's port reserved.
        let third = allocate(&apps, &tree, &metadata(&[("web", "port")]), range).unwrap();
        assert_eq!(third, second);
    }

    #[test]
    fn ports_are_unique_across_apps_and_skip_ports_in_use() {
        let (_root, apps) = setup();
        let range = free_range(3);
        let other = apps.app("other").unwrap();
        allocate(&apps, &other, &metadata(&[("web", "port")]), range).unwrap();
        let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, range.first + 1)).unwrap();
        let tree = apps.app("hello").unwrap();
        let ports = allocate(&apps, &tree, &metadata(&[("web", "port")]), range).unwrap();
        assert_eq!(ports["web"], range.first + 2);
        let refused = allocate(
            &apps,
            &tree,
            &metadata(&[("web", "port"), ("api", "port")]),
            range,
        )
        .unwrap_err();
        assert_eq!(
            refused.to_string(),
            format!(
                "no free port left in {range} for hello-api (2 taken by apps, the others in use \
                 on 127.0.0.1)"
            )
        );
        drop(busy);
    }

    #[test]
    fn a_planted_link_is_not_followed() {
        let (root, apps) = setup();
        let tree = apps.app("hello").unwrap();
        let secret = root.path().join("secret");
        std::fs::write(&secret, "{}").unwrap();
        std::os::unix::fs::symlink(&secret, ports_path(&tree)).unwrap();
        assert!(load(&tree).is_err());
    }
}
