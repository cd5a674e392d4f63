//! Who owns what in an app's tree (FORMAT.md 6.2): releases stay root's and read-only to
//! the app; `data/ tmp/ run/ log/` (and `data/WRITABLE-DIR/`) belong to the app user;
//! `config/` is root's, readable by the app's group only. Every change goes through a
//! descriptor opened without following links, one component at a time, so a link the
//! app user planted in its own directories is refused, never followed (spec/SECURITY.md, "Faults").

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{fchmod, fstat, Mode};
use nix::unistd::{fchown, Gid, Uid};
use pyapp_bundle::names::WritableDirName;

use crate::app::tree::AppTree;
use crate::system::app_user::AppUser;
use pyapp_cli::Refusal;

/// The lasting directories the app user owns (and may write to).
pub const APP_OWNED_DIRS: [&str; 4] = ["data", "tmp", "run", "log"];

/// The mode of `config/`: root writes, the app's group reads.
pub const CONFIG_DIR_MODE: u32 = 0o750;

/// Gives the lasting directories of `tree` (already created, see
/// [`pyapp_fs::ensure_dir`]) their owners: [`APP_OWNED_DIRS`] and each
/// `data/WRITABLE-DIR` to `user`, `config/` to root with `user`'s group and
/// [`CONFIG_DIR_MODE`]. A directory `groups` names gets that group instead of `user`'s
/// (the web server's, for the directories it reaches into, [`crate::system::web::web_groups`]):
/// each directory changes owner at most once, to its final owner, so an upgrade never
/// leaves the web server locked out in between. Only the directories themselves: never
/// what is inside them. A link or a file in place of one of them is refused.
pub fn own_lasting_dirs(
    tree: &AppTree,
    user: &AppUser,
    writable_dirs: &[WritableDirName],
    groups: &[(&str, u32)],
) -> Result<()> {
    let app_dir = open_dir(tree.dir())?;
    let (uid, gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    for name in APP_OWNED_DIRS {
        let path = tree.lasting_dir(name);
        let dir = open_dir_at(&app_dir, name, &path)?;
        let group = groups
            .iter()
            .find(|(dir, _)| *dir == name)
            .map_or(gid, |(_, group)| Gid::from_raw(*group));
        set_owner(&dir, &path, uid, group)?;
        if name == "data" {
            for writable in writable_dirs {
                let path = path.join(writable.as_str());
                let sub = open_dir_at(&dir, writable.as_str(), &path)?;
                set_owner(&sub, &path, uid, gid)?;
            }
        }
    }
    let path = tree.lasting_dir("config");
    let config = open_dir_at(&app_dir, "config", &path)?;
    set_owner(&config, &path, Uid::from_raw(0), gid)?;
    fchmod(&config, Mode::from_bits_truncate(CONFIG_DIR_MODE))
        .with_context(|| format!("failed to set the mode of `{}`", path.display()))
}

/// Opens the directory at `path` (whose parents are root's) without following a link
/// in its last component.
pub fn open_dir(path: &Path) -> Result<File> {
    File::options()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|err| match err.raw_os_error() {
            Some(nix::libc::ELOOP | nix::libc::ENOTDIR) => not_a_real_dir(path),
            _ => anyhow::Error::new(err).context(format!("failed to open `{}`", path.display())),
        })
}

/// Opens the directory `name` (one component) of `parent`, refusing a link; `path` is
/// its full path, for messages.
pub fn open_dir_at(parent: &impl AsFd, name: &str, path: &Path) -> Result<OwnedFd> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    openat(parent, name, flags, Mode::empty()).map_err(|err| match err {
        Errno::ELOOP | Errno::ENOTDIR => not_a_real_dir(path),
        err => anyhow::Error::new(err).context(format!("failed to open `{}`", path.display())),
    })
}

/// `fchown` of an open directory, only when its owner differs.
pub fn set_owner(dir: &impl AsFd, path: &Path, uid: Uid, gid: Gid) -> Result<()> {
    let stat = fstat(dir).with_context(|| format!("failed to inspect `{}`", path.display()))?;
    if stat.st_uid == uid.as_raw() && stat.st_gid == gid.as_raw() {
        return Ok(());
    }
    fchown(dir, Some(uid), Some(gid))
        .with_context(|| format!("failed to change the owner of `{}`", path.display()))
}

fn not_a_real_dir(path: &Path) -> anyhow::Error {
    Refusal::new(format!(
        "`{}` is a symbolic link or not a directory; refusing to follow or change it",
        path.display()
    ))
    .with_hint("move it away (it may have been planted), then run pyapp-install again")
    .into()
}

/// Checks that a release tree (before it is renamed into place) is what FORMAT.md 6.2
/// promises: everything owned by the installing user (root), nothing group- or
/// world-writable, every directory 0755 and every file 0644 or 0755, so the app can read
/// its release but never change it. An error names the first path that is not.
pub fn check_release_tree(dir: &Path) -> Result<()> {
    let owner = nix::unistd::geteuid().as_raw();
    for entry in walkdir::WalkDir::new(dir).follow_links(false) {
        let entry = entry.with_context(|| format!("failed to walk `{}`", dir.display()))?;
        let meta = entry
            .metadata()
            .with_context(|| format!("failed to inspect `{}`", entry.path().display()))?;
        let mode = meta.mode() & 0o7777;
        let expected: &[u32] = if meta.is_dir() {
            &[0o755]
        } else if meta.is_file() {
            &[0o644, 0o755]
        } else {
            continue;
        };
        if meta.uid() != owner || !expected.contains(&mode) {
            anyhow::bail!(
                "`{}` has owner {} and mode {mode:04o}; a release must be owned by uid {owner} with mode {}",
                entry.path().display(),
                meta.uid(),
                expected
                    .iter()
                    .map(|m| format!("{m:04o}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            );
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::{AppsDir, LASTING_DIRS};
    use pyapp_fs;
    use std::os::unix::fs::PermissionsExt;

    const APP_UID: u32 = 64_123;
    const APP_GID: u32 = 64_124;
    const WEB_GID: u32 = 64_125;

    fn user() -> AppUser {
        AppUser {
            name: "hello".into(),
            uid: APP_UID,
            gid: APP_GID,
            home: "/applications/hello/data".into(),
        }
    }

    /// A scratch tree with the lasting directories created the way install does.
    fn tree_with_dirs(root: &Path) -> AppTree {
        let tree = AppsDir::new(root, Path::new("/applications"))
            .app("hello")
            .unwrap();
        std::fs::create_dir_all(tree.dir()).unwrap();
        for (name, mode) in LASTING_DIRS {
            pyapp_fs::ensure_dir(&tree.lasting_dir(name), mode).unwrap();
        }
        tree
    }

    fn writable(names: &[&str]) -> Vec<WritableDirName> {
        names
            .iter()
            .map(|n| WritableDirName::new(*n).unwrap())
            .collect()
    }

    fn is_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            return true;
        }
        eprintln!("skipped: changing owners needs root");
        false
    }

    #[test]
    fn app_dirs_go_to_the_app_user_and_config_to_its_group() {
        if !is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let tree = tree_with_dirs(root.path());
        std::fs::create_dir(tree.lasting_dir("data").join("sessions")).unwrap();
        std::fs::write(tree.lasting_dir("data").join("old-file"), "x").unwrap();
        own_lasting_dirs(&tree, &user(), &writable(&["sessions"]), &[]).unwrap();
        let meta = |p: &Path| std::fs::symlink_metadata(p).unwrap();
        for name in ["data", "tmp", "run", "log", "data/sessions"] {
            let m = meta(&tree.dir().join(name));
            assert_eq!((m.uid(), m.gid()), (APP_UID, APP_GID), "{name}");
        }
        let config = meta(&tree.lasting_dir("config"));
        assert_eq!((config.uid(), config.gid()), (0, APP_GID));
        assert_eq!(config.mode() & 0o7777, 0o750);
        // Only the directories themselves.
        assert_eq!(meta(&tree.lasting_dir("data").join("old-file")).uid(), 0);
        // A directory the web server reaches into goes straight to the group given for it.
        own_lasting_dirs(
            &tree,
            &user(),
            &writable(&["sessions"]),
            &[("run", WEB_GID)],
        )
        .unwrap();
        assert_eq!(meta(&tree.lasting_dir("run")).gid(), WEB_GID);
        assert_eq!(meta(&tree.lasting_dir("data")).gid(), APP_GID);
    }

    #[test]
    fn a_planted_link_keeps_its_target_untouched() {
        if !is_root() {
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("shadow");
        std::fs::write(&secret, "secret\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        let tree = tree_with_dirs(root.path());
        let data = tree.lasting_dir("data");
        std::os::unix::fs::symlink(&secret, data.join("x")).unwrap();
        // A writable dir replaced by a link to a directory outside the tree.
        std::os::unix::fs::symlink(outside.path(), data.join("sessions")).unwrap();

        let err = own_lasting_dirs(&tree, &user(), &writable(&["sessions"]), &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a symbolic link or not a directory"),
            "{err}"
        );
        let secret_meta = std::fs::metadata(&secret).unwrap();
        assert_eq!((secret_meta.uid(), secret_meta.gid()), (0, 0));
        assert_eq!(secret_meta.mode() & 0o7777, 0o600);
        assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret\n");
        assert_eq!(std::fs::metadata(outside.path()).unwrap().uid(), 0);

        // config -> the secret: refused, the secret unchanged.
        let config = tree.lasting_dir("config");
        std::fs::remove_dir(&config).unwrap();
        std::os::unix::fs::symlink(&secret, &config).unwrap();
        std::fs::remove_file(data.join("sessions")).unwrap();
        let err = own_lasting_dirs(&tree, &user(), &[], &[]).unwrap_err();
        assert!(err.to_string().contains("config"), "{err}");
        let secret_meta = std::fs::metadata(&secret).unwrap();
        assert_eq!((secret_meta.uid(), secret_meta.gid()), (0, 0));
        assert_eq!(secret_meta.mode() & 0o7777, 0o600);
    }

    #[test]
    fn release_check_names_a_writable_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("module.py");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::os::unix::fs::symlink("/nonexistent", dir.path().join("python")).unwrap();
        check_release_tree(dir.path()).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = check_release_tree(dir.path()).unwrap_err();
        assert!(err.to_string().contains("module.py"), "{err}");
        assert!(err.to_string().contains("mode 0666"), "{err}");
    }
}
