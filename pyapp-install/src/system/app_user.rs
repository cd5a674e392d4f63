//! The system user an app runs as: one per app, created by pyapp-install (`useradd
//! --system`, named after the app, no login shell, home in `data/`), or an existing one
//! named with `--user`. Users are looked up in `ROOT/etc/passwd` and `ROOT/etc/group`
//! themselves, not through the host's NSS, so `--root` finds the image's users.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::app::receipt::Receipt;
use crate::app::tree::AppTree;
use crate::progress::Progress;
use pyapp_cli::Refusal;

/// The login shell of the users pyapp-install creates: none.
const NO_LOGIN_SHELL: &str = "/usr/sbin/nologin";

/// Where `useradd` is looked for before `PATH` (root's `PATH` may lack the sbin dirs).
const USERADD_PATHS: [&str; 2] = ["/usr/sbin/useradd", "/sbin/useradd"];

/// The user (and its primary group) an app's processes run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// The home directory `ROOT/etc/passwd` gives (a run-time path).
    pub home: PathBuf,
}

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    comment: String,
    home: PathBuf,
}

impl PasswdEntry {
    fn to_user(&self) -> AppUser {
        AppUser {
            name: self.name.clone(),
            uid: self.uid,
            gid: self.gid,
            home: self.home.clone(),
        }
    }
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupEntry {
    name: String,
    gid: u32,
}

/// The comment (GECOS field) of the users pyapp-install creates: it tells them apart from
/// users that merely share an app's name.
pub fn user_comment(app: &str) -> String {
    format!("pyapp app {app}")
}

/// Whether `root` is the host's own `/` (not an image staged with `--root`).
pub fn is_host_root(root: &Path) -> bool {
    let root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    root.components()
        .all(|c| matches!(c, Component::RootDir | Component::CurDir))
}

/// The user `name` of `root`'s `etc/passwd` (the user an app's receipt names), if it is
/// there; `None` also when `root` has no `etc/passwd`.
pub fn lookup_user(root: &Path, name: &str) -> Result<Option<AppUser>> {
    let passwd_path = root.join("etc/passwd");
    if !pyapp_fs::exists(&passwd_path)? {
        return Ok(None);
    }
    Ok(read_passwd(&passwd_path)?
        .iter()
        .find(|entry| entry.name == name)
        .map(PasswdEntry::to_user))
}

/// The gid of the group `name` of `root`'s `etc/group`, if it is there.
pub fn lookup_group(root: &Path, name: &str) -> Result<Option<u32>> {
    Ok(read_group(&root.join("etc/group"))?
        .into_iter()
        .find(|entry| entry.name == name)
        .map(|entry| entry.gid))
}

/// The user an app's receipt names, looked up under `root`.
pub fn user_of(root: &Path, receipt: &Receipt) -> Result<Option<AppUser>> {
    match &receipt.user {
        Some(name) => lookup_user(root, name),
        None => Ok(None),
    }
}

/// Makes sure the user of the app in `tree` exists under `root` and returns it.
///
/// - `explicit` (`--user NAME`): that user, which must exist and not be root.
/// - otherwise the system user and group named after the app, created with `useradd` when
///   missing (with `--prefix ROOT` under `--root`). A user of that name that pyapp-install
///   did not create (its comment is not [`user_comment`]) is refused.
///
/// `None` when `root` is not `/` and has no `etc/passwd` (a scratch root, not an OS
/// image): then no user is created and the app's files stay owned by root, which is said
/// on stderr.
pub fn ensure_app_user(
    root: &Path,
    tree: &AppTree,
    explicit: Option<&str>,
    output: &dyn Progress,
) -> Result<Option<AppUser>> {
    let passwd_path = root.join("etc/passwd");
    let host = is_host_root(root);
    if !host && !pyapp_fs::exists(&passwd_path)? {
        if let Some(name) = explicit {
            return Err(Refusal::new(format!(
                "--user {name}: `{}` does not exist, so no user can be looked up there",
                passwd_path.display()
            ))
            .with_hint("leave out --user to stage the tree owned by root")
            .into());
        }
        output.note(&format!(
            "note: `{}` does not exist: no app user is created, the files of {} stay owned by root",
            passwd_path.display(),
            tree.name()
        ));
        return Ok(None);
    }
    let users = read_passwd(&passwd_path)?;

    if let Some(name) = explicit {
        let entry = users.iter().find(|u| u.name == name).ok_or_else(|| {
            Refusal::new(format!(
                "--user {name}: no such user in `{}`",
                passwd_path.display()
            ))
            .with_hint(format!(
                "create it first (useradd --system {name}), or leave out --user to let pyapp-install create one"
            ))
        })?;
        if entry.uid == 0 {
            return Err(Refusal::new(format!(
                "--user {name}: refusing to run {} as root (uid 0)",
                tree.name()
            ))
            .with_hint("name an unprivileged user, or leave out --user")
            .into());
        }
        return Ok(Some(entry.to_user()));
    }

    let name = tree.name();
    if let Some(entry) = users.iter().find(|u| u.name == name) {
        if entry.comment == user_comment(name) {
            return Ok(Some(entry.to_user()));
        }
        return Err(Refusal::new(format!(
            "a user {name} already exists in `{}` and was not created by pyapp-install (its comment is {:?}, not {:?})",
            passwd_path.display(),
            entry.comment,
            user_comment(name)
        ))
        .with_hint(format!(
            "to run the app as that user, install with --user {name}"
        ))
        .into());
    }
    let group_path = root.join("etc/group");
    if read_group(&group_path)?.iter().any(|g| g.name == name) {
        return Err(Refusal::new(format!(
            "a group {name} already exists in `{}` but no user {name}: `useradd --user-group` would fail",
            group_path.display()
        ))
        .with_hint(format!(
            "remove the group (groupdel {name}), or install with --user NAME to use an existing user"
        ))
        .into());
    }

    let home = tree.runtime_dir().join("data");
    run_useradd(root, host, name, &home)?;
    let users = read_passwd(&passwd_path)?;
    let entry = users.iter().find(|u| u.name == name).with_context(|| {
        format!(
            "useradd succeeded but `{}` has no user {name}",
            passwd_path.display()
        )
    })?;
    output.note(&format!(
        "created system user {name} (uid {}, gid {})",
        entry.uid, entry.gid
    ));
    Ok(Some(entry.to_user()))
}

/// `useradd --system --user-group ... NAME`, with `--prefix ROOT` unless `host`.
fn run_useradd(root: &Path, host: bool, name: &str, home: &Path) -> Result<()> {
    let program = USERADD_PATHS
        .iter()
        .map(Path::new)
        .find(|path| path.exists())
        .unwrap_or(Path::new("useradd"));
    let mut command = Command::new(program);
    command
        .args(["--system", "--user-group", "--no-create-home"])
        .arg("--home-dir")
        .arg(home)
        .args(["--shell", NO_LOGIN_SHELL])
        .arg("--comment")
        .arg(user_comment(name));
    if !host {
        command.arg("--prefix").arg(root);
    }
    command.arg(name);
    log::debug!("{command:?}");
    let result = command
        .output()
        .with_context(|| format!("failed to run `{}`", program.display()))?;
    if !result.status.success() {
        anyhow::bail!(
            "`{}` failed to create the user {name} ({}): {}",
            program.display(),
            result.status,
            String::from_utf8_lossy(&result.stderr).trim()
        );
    }
    Ok(())
}

/// The users of a passwd file.
fn read_passwd(path: &Path) -> Result<Vec<PasswdEntry>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read `{}`", path.display()))?;
    Ok(parse_passwd(&text))
}

/// The groups of a group file; none when it does not exist.
fn read_group(path: &Path) -> Result<Vec<GroupEntry>> {
    match pyapp_fs::read_optional(path)? {
        Some(bytes) => Ok(parse_group(&String::from_utf8_lossy(&bytes))),
        None => Ok(Vec::new()),
    }
}

/// `name:password:uid:gid:comment:home:shell` lines; comments, NIS `+`/`-` lines and
/// malformed lines are skipped (they name no user pyapp-install could use).
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, uid, gid, comment, home, _shell] = fields.as_slice() else {
                return None;
            };
            if name.is_empty() || name.starts_with(['#', '+', '-']) {
                return None;
            }
            Some(PasswdEntry {
                name: (*name).to_owned(),
                uid: uid.parse().ok()?,
                gid: gid.parse().ok()?,
                comment: (*comment).to_owned(),
                home: PathBuf::from(home),
            })
        })
        .collect()
}

/// `name:password:gid:members` lines, skipped like [`parse_passwd`]'s.
fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let [name, _, gid, _members] = fields.as_slice() else {
                return None;
            };
            if name.is_empty() || name.starts_with(['#', '+', '-']) {
                return None;
            }
            Some(GroupEntry {
                name: (*name).to_owned(),
                gid: gid.parse().ok()?,
            })
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::app::tree::AppsDir;
    use crate::progress::Silent;
    use pyapp_cli::find_refusal;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/bash
# a comment line
+nisuser::::::
broken:x:notanumber:1:broken:/:/bin/sh
short:x:1
hello:x:998:997:pyapp app hello:/applications/hello/data:/usr/sbin/nologin
www:x:33:33:www-data:/var/www:/usr/sbin/nologin
";

    const GROUP: &str = "\
root:x:0:
hello:x:997:
bad:x:x:
";

    fn scratch_root(passwd: &str, group: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), passwd).unwrap();
        std::fs::write(root.path().join("etc/group"), group).unwrap();
        root
    }

    fn tree(root: &Path, app: &str) -> AppTree {
        AppsDir::new(root, Path::new("/applications"))
            .app(app)
            .unwrap()
    }

    fn quiet() -> Silent {
        Silent
    }

    #[test]
    fn parses_passwd_and_skips_what_names_no_user() {
        let users = parse_passwd(PASSWD);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["root", "hello", "www"]);
        assert_eq!(
            users[1],
            PasswdEntry {
                name: "hello".into(),
                uid: 998,
                gid: 997,
                comment: "pyapp app hello".into(),
                home: PathBuf::from("/applications/hello/data"),
            }
        );
    }

    #[test]
    fn parses_group() {
        let groups = parse_group(GROUP);
        assert_eq!(
            groups,
            [
                GroupEntry {
                    name: "root".into(),
                    gid: 0
                },
                GroupEntry {
                    name: "hello".into(),
                    gid: 997
                }
            ]
        );
    }

    #[test]
    fn host_root_is_only_slash() {
        assert!(is_host_root(Path::new("/")));
        assert!(is_host_root(Path::new("//")));
        assert!(!is_host_root(Path::new("/tmp/image")));
    }

    #[test]
    fn a_user_pyapp_created_is_reused() {
        let root = scratch_root(PASSWD, GROUP);
        let user = ensure_app_user(root.path(), &tree(root.path(), "hello"), None, &quiet())
            .unwrap()
            .unwrap();
        assert_eq!(
            (user.name.as_str(), user.uid, user.gid),
            ("hello", 998, 997)
        );
    }

    #[test]
    fn a_foreign_user_of_the_apps_name_is_refused_with_a_hint() {
        let root = scratch_root("hello:x:1000:1000:Hello Person:/home/hello:/bin/bash\n", "");
        let err =
            ensure_app_user(root.path(), &tree(root.path(), "hello"), None, &quiet()).unwrap_err();
        let refusal = find_refusal(&err).expect("a refusal");
        assert!(refusal
            .to_string()
            .contains("was not created by pyapp-install"));
        assert_eq!(
            refusal.hint(),
            Some("to run the app as that user, install with --user hello")
        );
    }

    #[test]
    fn a_leftover_group_of_the_apps_name_is_refused() {
        let root = scratch_root("root:x:0:0:root:/root:/bin/bash\n", GROUP);
        let err =
            ensure_app_user(root.path(), &tree(root.path(), "hello"), None, &quiet()).unwrap_err();
        assert!(err.to_string().contains("a group hello already exists"));
    }

    #[test]
    fn explicit_user_must_exist_and_not_be_root() {
        let root = scratch_root(PASSWD, GROUP);
        let app = tree(root.path(), "hello");
        let www = ensure_app_user(root.path(), &app, Some("www"), &quiet())
            .unwrap()
            .unwrap();
        assert_eq!((www.uid, www.gid), (33, 33));
        let missing = ensure_app_user(root.path(), &app, Some("nobody2"), &quiet()).unwrap_err();
        assert!(missing.to_string().contains("--user nobody2: no such user"));
        let as_root = ensure_app_user(root.path(), &app, Some("root"), &quiet()).unwrap_err();
        assert!(as_root
            .to_string()
            .contains("refusing to run hello as root"));
    }

    #[test]
    fn a_scratch_root_without_passwd_gets_no_user() {
        let root = tempfile::tempdir().unwrap();
        let app = tree(root.path(), "hello");
        assert_eq!(
            ensure_app_user(root.path(), &app, None, &quiet()).unwrap(),
            None
        );
        let err = ensure_app_user(root.path(), &app, Some("www"), &quiet()).unwrap_err();
        assert!(find_refusal(&err).is_some());
    }

    /// Runs the real `useradd --prefix` on a copy of an OS's account files: only as root
    /// (useradd refuses otherwise), touching nothing outside the temporary root.
    #[test]
    fn creates_a_system_user_under_a_root_with_useradd() {
        if !nix::unistd::geteuid().is_root() || !Path::new(USERADD_PATHS[0]).exists() {
            eprintln!("skipped: needs root and {}", USERADD_PATHS[0]);
            return;
        }
        let root = scratch_root("root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\n");
        std::fs::write(
            root.path().join("etc/shadow"),
            "root:*:19000:0:99999:7:::\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/gshadow"), "root:*::\n").unwrap();
        let app = tree(root.path(), "hello");
        let user = ensure_app_user(root.path(), &app, None, &quiet())
            .unwrap()
            .unwrap();
        assert_eq!(user.name, "hello");
        assert_eq!(user.home, PathBuf::from("/applications/hello/data"));
        assert!(
            user.uid > 0 && user.uid < 1000,
            "a system uid: {}",
            user.uid
        );
        let passwd = std::fs::read_to_string(root.path().join("etc/passwd")).unwrap();
        assert!(
            passwd.contains(&format!(
                "hello:x:{}:{}:pyapp app hello:/applications/hello/data:/usr/sbin/nologin",
                user.uid, user.gid
            )),
            "{passwd}"
        );
        let group = std::fs::read_to_string(root.path().join("etc/group")).unwrap();
        assert!(group.contains(&format!("hello:x:{}:", user.gid)), "{group}");
        // Installing again reuses it.
        let again = ensure_app_user(root.path(), &app, None, &quiet())
            .unwrap()
            .unwrap();
        assert_eq!(again, user);
    }
}
