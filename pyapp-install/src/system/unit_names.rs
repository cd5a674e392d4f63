//! Which unit names an app may take (FORMAT.md 8.1). A unit in `/etc/systemd/system`
//! overrides every unit of the same name further down systemd's search path, so an app's
//! unit must not share a name with any unit the system has, nor take a name from the
//! namespaces the operating system fills itself (where a later package or systemd release
//! would put one).

use std::io;
use std::path::{Path, PathBuf};

/// systemd's unit search path for the system manager, highest priority first, relative to
/// the root: systemd.unit(5), as `systemd-analyze unit-paths` prints it (with `/lib` of
/// Debian's unmerged `/usr`). pyapp-install writes into `etc/systemd/system`.
pub const SEARCH_PATH: [&str; 13] = [
    "etc/systemd/system.control",
    "run/systemd/system.control",
    "run/systemd/transient",
    "run/systemd/generator.early",
    "etc/systemd/system",
    "etc/systemd/system.attached",
    "run/systemd/system",
    "run/systemd/system.attached",
    "run/systemd/generator",
    "usr/local/lib/systemd/system",
    "lib/systemd/system",
    "usr/lib/systemd/system",
    "run/systemd/generator.late",
];

/// The first words of the unit names the operating system fills itself: a unit
/// `WORD-…` belongs to it even where none is installed yet. Every app unit is
/// `APP-NAME.service|timer`, so each word reserves the app name `WORD` and `WORD-…`.
const RESERVED_WORDS: [&str; 21] = [
    // systemd: its own units are `systemd-*`; the other first words of the services and
    // timers Debian's systemd package ships; `run-*`, the units systemd-run makes.
    "systemd",
    "console",
    "container",
    "cryptdisks",
    "dbus",
    "debug",
    "getty",
    "initrd",
    "kmod",
    "rc",
    "run",
    "serial",
    "system",
    "user",
    "x11",
    // Debian's package management and what keeps a server reachable and updated: apt
    // (apt-daily), dpkg (dpkg-db-backup), unattended-upgrades, man-db, OpenSSH.
    "apt",
    "dpkg",
    "unattended",
    "man",
    "ssh",
    "sshd",
];

/// The reserved first word `unit` (a unit file name) starts with, if any.
pub fn reserved_word(unit: &str) -> Option<&'static str> {
    RESERVED_WORDS.into_iter().find(|word| {
        unit.strip_prefix(word)
            .is_some_and(|rest| rest.starts_with('-'))
    })
}

/// The first file or link called `unit` on the search path under `root`, leaving out
/// `ROOT/etc/systemd/system` (the directory pyapp-install writes to, judged by its marker).
pub fn system_unit(root: &Path, unit: &str) -> io::Result<Option<PathBuf>> {
    for dir in SEARCH_PATH
        .into_iter()
        .filter(|dir| *dir != "etc/systemd/system")
    {
        let path = root.join(dir).join(unit);
        match std::fs::symlink_metadata(&path) {
            Ok(_) => return Ok(Some(path)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            // A component that is not a directory holds no unit.
            Err(err) if err.kind() == io::ErrorKind::NotADirectory => {}
            Err(err) => return Err(err),
        }
    }
    Ok(None)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn reserved_words_are_first_words() {
        assert_eq!(reserved_word("apt-daily.timer"), Some("apt"));
        assert_eq!(reserved_word("systemd-journald.service"), Some("systemd"));
        assert_eq!(reserved_word("apt-mirror-web.service"), Some("apt"));
        assert_eq!(reserved_word("run-u42.service"), Some("run"));
        assert_eq!(reserved_word("aptly-web.service"), None);
        assert_eq!(reserved_word("manager-web.service"), None);
        assert_eq!(reserved_word("hello-systemd.service"), None);
    }

    /// Every directory `systemd-analyze unit-paths` lists is searched.
    #[test]
    fn the_search_path_is_systemds() {
        let Ok(output) = Command::new("systemd-analyze").arg("unit-paths").output() else {
            eprintln!("note: systemd-analyze not found; nothing to compare with");
            return;
        };
        assert!(output.status.success());
        let listed = String::from_utf8(output.stdout).unwrap();
        let missing: Vec<&str> = listed
            .lines()
            .filter(|dir| !SEARCH_PATH.contains(&dir.trim_start_matches('/')))
            .collect();
        assert!(missing.is_empty(), "not searched: {missing:?}");
    }

    /// The principle of the list: every service and timer that systemd, dbus, apt, dpkg,
    /// man-db, unattended-upgrades and OpenSSH install here and whose name has a `-` (so an
    /// app unit could have it) is reserved.
    #[test]
    fn the_units_of_the_base_system_are_reserved() {
        let packages = [
            "systemd",
            "dbus",
            "apt",
            "dpkg",
            "man-db",
            "unattended-upgrades",
            "openssh-server",
        ];
        let Ok(output) = Command::new("dpkg").arg("-L").args(packages).output() else {
            eprintln!("note: dpkg not found; nothing to compare with");
            return;
        };
        let files = String::from_utf8_lossy(&output.stdout);
        let units: Vec<&str> = files
            .lines()
            .filter(|path| path.contains("/systemd/system/"))
            .filter_map(|path| path.rsplit('/').next())
            .filter(|name| name.ends_with(".service") || name.ends_with(".timer"))
            .filter(|name| name.contains('-'))
            .collect();
        assert!(units.contains(&"apt-daily.timer"), "{units:?}");
        let free: Vec<&&str> = units
            .iter()
            .filter(|unit| reserved_word(unit).is_none())
            .collect();
        assert!(free.is_empty(), "not reserved: {free:?}");
    }

    #[test]
    fn units_anywhere_on_the_search_path_are_found() {
        let root = tempfile::tempdir().unwrap();
        assert_eq!(
            system_unit(root.path(), "backup-nightly.timer").unwrap(),
            None
        );
        // Ours to judge by its marker, not here.
        let etc = root.path().join("etc/systemd/system");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("backup-nightly.timer"), "").unwrap();
        assert_eq!(
            system_unit(root.path(), "backup-nightly.timer").unwrap(),
            None
        );
        // Each directory outranks the one before: the unit systemd would load is named.
        for dir in [
            "run/systemd/generator.late",
            "usr/lib/systemd/system",
            "lib/systemd/system",
            "usr/local/lib/systemd/system",
            "run/systemd/transient",
            "etc/systemd/system.control",
        ] {
            let dir = root.path().join(dir);
            std::fs::create_dir_all(&dir).unwrap();
            // A masked or aliased unit is a link; it is found without being followed.
            std::os::unix::fs::symlink("/nowhere", dir.join("backup-nightly.timer")).unwrap();
            assert_eq!(
                system_unit(root.path(), "backup-nightly.timer").unwrap(),
                Some(dir.join("backup-nightly.timer"))
            );
        }
        // A file where a directory of the path should be hides nothing and breaks nothing.
        std::fs::write(root.path().join("run/systemd/generator"), "").unwrap();
        assert!(system_unit(root.path(), "other-web.service")
            .unwrap()
            .is_none());
    }
}
