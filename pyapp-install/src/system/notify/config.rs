//! `/etc/pyapp/notify.yaml` (FORMAT.md 13.1): where events are sent. The administrator's
//! file: it must be root's and writable by no one else, because it names a URL root posts
//! to and a command root starts; it is read with the YAML rules of FORMAT.md 2 and each
//! problem is one line naming its field.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use pyapp_bundle::yaml::{self, Issue};
use pyapp_cli::Refusal;
use serde::Deserialize;

use crate::system::app_user::{self, AppUser};

/// The configuration file, relative to the root.
pub const CONFIG_FILE: &str = "etc/pyapp/notify.yaml";

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct NotifyFile {
    webhook: Option<String>,
    command: Option<Vec<String>>,
    user: Option<String>,
    attempts: Option<u32>,
    retry_delay: Option<u64>,
    timeout: Option<u64>,
}

/// Where an HTTP webhook is: `http://HOST[:PORT]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The URL as written, for messages.
    pub url: String,
    /// `HOST:PORT` to connect to (port 80 when none is given).
    pub address: String,
    /// The `Host:` header: the authority as written.
    pub host: String,
    /// The request target, `/` at least.
    pub path: String,
}

/// The command run with the event on its stdin, and whom as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandChannel {
    pub argv: Vec<String>,
    pub user: AppUser,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub webhook: Option<Webhook>,
    pub command: Option<CommandChannel>,
    /// Tries per channel before it gives up.
    pub attempts: u32,
    /// Before the second try; doubled after each failed one.
    pub retry_delay: Duration,
    /// How long one try may take.
    pub timeout: Duration,
}

const DEFAULT_ATTEMPTS: u32 = 5;
const DEFAULT_RETRY_DELAY: u64 = 10;
const DEFAULT_TIMEOUT: u64 = 10;
const DEFAULT_USER: &str = "nobody";

/// `ROOT/etc/pyapp/notify.yaml`.
pub fn config_path(root: &Path) -> PathBuf {
    root.join(CONFIG_FILE)
}

impl NotifyConfig {
    /// The configuration of `root`, `None` when it has no such file. A file that is not
    /// root's alone, or breaks a rule, is refused naming the field.
    pub fn load(root: &Path) -> Result<Option<NotifyConfig>> {
        let path = config_path(root);
        let Some(text) = read_root_file(&path)? else {
            return Ok(None);
        };
        let label = path.display().to_string();
        let file: NotifyFile = yaml::parse_unversioned(&text, &label)?;
        let issue = |field: &str, message: String| -> anyhow::Error {
            Issue::new(field, message).locate(&text, &label).into()
        };
        Self::check(root, file)
            .map(Some)
            .map_err(|(field, message)| issue(field, message))
    }

    fn check(root: &Path, file: NotifyFile) -> Result<NotifyConfig, (&'static str, String)> {
        let webhook = file.webhook.as_deref().map(webhook).transpose()?;
        let command = match file.command {
            Some(argv) => Some(command(root, argv, file.user.as_deref())?),
            None if file.user.is_some() => {
                return Err(("user", "is only used with `command`".to_owned()))
            }
            None => None,
        };
        if webhook.is_none() && command.is_none() {
            return Err((
                "",
                "names neither `webhook` nor `command`: nothing would be sent".to_owned(),
            ));
        }
        let attempts = in_range("attempts", file.attempts, DEFAULT_ATTEMPTS, 1, 100)?;
        let delay = in_range(
            "retry-delay",
            file.retry_delay,
            DEFAULT_RETRY_DELAY,
            1,
            3600,
        )?;
        let timeout = in_range("timeout", file.timeout, DEFAULT_TIMEOUT, 1, 300)?;
        Ok(NotifyConfig {
            webhook,
            command,
            attempts,
            retry_delay: Duration::from_secs(delay),
            timeout: Duration::from_secs(timeout),
        })
    }
}

fn in_range<T: PartialOrd + Copy + std::fmt::Display>(
    field: &'static str,
    value: Option<T>,
    default: T,
    low: T,
    high: T,
) -> Result<T, (&'static str, String)> {
    let value = value.unwrap_or(default);
    if value < low || value > high {
        return Err((field, format!("{value} is not between {low} and {high}")));
    }
    Ok(value)
}

/// `http://HOST[:PORT][/PATH]`; anything else is refused.
fn webhook(url: &str) -> Result<Webhook, (&'static str, String)> {
    let refuse = |why: &str| Err(("webhook", format!("\"{url}\": {why}")));
    let Some(rest) = url.strip_prefix("http://") else {
        return refuse(
            "only http:// URLs are sent (for https, a relay on this host, or \
             `command: [/usr/bin/curl, …]`)",
        );
    };
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("has a space or control character");
    }
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return refuse("expected http://HOST[:PORT]/PATH (no user or password)");
    }
    // `HOST`, `HOST:PORT`, `[V6]` or `[V6]:PORT`.
    let port = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((_, "")) => None,
            Some((_, rest)) => Some(rest.strip_prefix(':').unwrap_or(rest)),
            None => return refuse("an IPv6 address without its closing `]`"),
        },
        None => authority.split_once(':').map(|(_, port)| port),
    };
    let address = match port {
        Some(port) if port.parse::<u16>().is_ok_and(|port| port > 0) => authority.to_owned(),
        Some(_) => return refuse("the port is not a number from 1 to 65535"),
        None => format!("{authority}:80"),
    };
    Ok(Webhook {
        url: url.to_owned(),
        address,
        host: authority.to_owned(),
        path: path.to_owned(),
    })
}

fn command(
    root: &Path,
    argv: Vec<String>,
    user: Option<&str>,
) -> Result<CommandChannel, (&'static str, String)> {
    let Some(program) = argv.first() else {
        return Err(("command", "is empty".to_owned()));
    };
    if !program.starts_with('/') {
        return Err((
            "command",
            format!("\"{program}\" is not an absolute path (the command runs with no PATH search)"),
        ));
    }
    if argv.iter().any(|word| word.contains('\0')) {
        return Err(("command", "has a NUL character".to_owned()));
    }
    let name = user.unwrap_or(DEFAULT_USER);
    let found = app_user::lookup_user(root, name)
        .map_err(|err| ("user", format!("\"{name}\": {err:#}")))?;
    let Some(user) = found else {
        return Err(("user", format!("\"{name}\" is not a user of this system")));
    };
    if user.uid == 0 || user.gid == 0 {
        return Err((
            "user",
            format!("\"{name}\" is root's (uid or gid 0): the command never runs as root"),
        ));
    }
    Ok(CommandChannel { argv, user })
}

/// The text of the file at `path` when it is a regular file of root's that only root may
/// write; `None` when there is none.
fn read_root_file(path: &Path) -> Result<Option<String>> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse(path, "is a symbolic link"))
        }
        Err(err) => {
            return Err(
                anyhow::Error::new(err).context(format!("failed to open `{}`", path.display()))
            )
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("failed to inspect `{}`", path.display()))?;
    if !meta.is_file() {
        return Err(refuse(path, "is not a regular file"));
    }
    // Root's, when pyapp-install runs as root (as it does to send anything).
    let owned_by_us = meta.uid() == nix::unistd::Uid::effective().as_raw();
    if !owned_by_us || meta.mode() & 0o022 != 0 {
        return Err(refuse(
            path,
            "must be owned by root and writable by no one else (it names what root sends and runs)",
        ));
    }
    let mut text = String::new();
    file.take(yaml::MAX_YAML_BYTES as u64 + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("failed to read `{}` (as UTF-8)", path.display()))?;
    Ok(Some(text))
}

fn refuse(path: &Path, why: &str) -> anyhow::Error {
    Refusal::new(format!("`{}` {why}", path.display()))
        .with_hint("chown root: it and chmod go-w it")
        .into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root_with(config: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/pyapp")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        )
        .unwrap();
        std::fs::write(config_path(root.path()), config).unwrap();
        root
    }

    fn refusal(config: &str) -> String {
        let root = root_with(config);
        let err = NotifyConfig::load(root.path()).unwrap_err();
        assert_eq!(pyapp_cli::classify(&err).status, 1, "{err:#}");
        let text = format!("{err:#}");
        assert!(!text.contains('\n'), "one line: {text}");
        text.strip_prefix(&config_path(root.path()).display().to_string())
            .unwrap()
            .to_owned()
    }

    #[test]
    fn a_full_configuration_is_read_with_its_defaults() {
        let root = root_with(
            "webhook: http://127.0.0.1:9000/hooks/pyapp\ncommand: [/usr/bin/logger, -t, pyapp]\n",
        );
        let config = NotifyConfig::load(root.path()).unwrap().unwrap();
        let hook = config.webhook.unwrap();
        assert_eq!(hook.address, "127.0.0.1:9000");
        assert_eq!(hook.host, "127.0.0.1:9000");
        assert_eq!(hook.path, "/hooks/pyapp");
        let command = config.command.unwrap();
        assert_eq!(command.argv, ["/usr/bin/logger", "-t", "pyapp"]);
        assert_eq!((command.user.uid, command.user.gid), (65534, 65534));
        assert_eq!(config.attempts, 5);
        assert_eq!(config.retry_delay, Duration::from_secs(10));
        assert_eq!(config.timeout, Duration::from_secs(10));

        let root = root_with("webhook: http://[::1]:9000/x\n");
        let hook = NotifyConfig::load(root.path())
            .unwrap()
            .unwrap()
            .webhook
            .unwrap();
        assert_eq!(
            (hook.address.as_str(), hook.path.as_str()),
            ("[::1]:9000", "/x")
        );
        let root = root_with("webhook: http://[::1]\n");
        let hook = NotifyConfig::load(root.path())
            .unwrap()
            .unwrap()
            .webhook
            .unwrap();
        assert_eq!(hook.address, "[::1]:80");

        let root = root_with("webhook: http://relay.local\nattempts: 2\nretry-delay: 1\n");
        let config = NotifyConfig::load(root.path()).unwrap().unwrap();
        assert_eq!(config.webhook.unwrap().address, "relay.local:80");
        assert_eq!(config.attempts, 2);
        assert!(config.command.is_none());

        let none = tempfile::tempdir().unwrap();
        assert!(NotifyConfig::load(none.path()).unwrap().is_none());
    }

    #[test]
    fn bad_configurations_are_refused_naming_the_field() {
        for (config, expected) in [
            (
                "webhook: https://hooks.example/x\n",
                ":1: webhook: \"https://hooks.example/x\": only http:// URLs are sent",
            ),
            (
                "webhook: http://h:99999/\n",
                ":1: webhook: \"http://h:99999/\": the port",
            ),
            (
                "webhook: http://u:p@h/\n",
                ":1: webhook: \"http://u:p@h/\": expected",
            ),
            (
                "webhook: http://h:0/\n",
                ":1: webhook: \"http://h:0/\": the port",
            ),
            (
                "webhook: http://[::1/\n",
                ":1: webhook: \"http://[::1/\": an IPv6",
            ),
            (
                "webhook: http://h/\ncolour: red\n",
                ":2: colour: unknown field",
            ),
            (
                "command: [logger]\n",
                ":1: command: \"logger\" is not an absolute path",
            ),
            ("command: []\n", ":1: command: is empty"),
            (
                "command: [/bin/true]\nuser: root\n",
                ":2: user: \"root\" is root's (uid or gid 0)",
            ),
            (
                "command: [/bin/true]\nuser: nosuchuser\n",
                ":2: user: \"nosuchuser\" is not a user of this system",
            ),
            (
                "webhook: http://h/\nuser: nobody\n",
                ":2: user: is only used with `command`",
            ),
            ("attempts: 3\n", ":1: names neither `webhook` nor `command`"),
            (
                "webhook: http://h/\nattempts: 0\n",
                ":2: attempts: 0 is not between 1 and 100",
            ),
            (
                "webhook: http://h/\nretry-delay: 7200\n",
                ":2: retry-delay: 7200 is not between 1 and 3600",
            ),
            ("webhook: http://h/\ntimeout: yes\n", ":2"),
        ] {
            let found = refusal(config);
            assert!(found.starts_with(expected), "{config:?}: {found}");
        }
    }

    #[test]
    fn a_file_others_may_write_is_refused() {
        let root = root_with("webhook: http://h/\n");
        let path = config_path(root.path());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = format!("{:#}", NotifyConfig::load(root.path()).unwrap_err());
        assert!(
            err.ends_with("writable by no one else (it names what root sends and runs)"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &path).unwrap();
        let err = format!("{:#}", NotifyConfig::load(root.path()).unwrap_err());
        assert!(err.ends_with("is a symbolic link"), "{err}");
    }
}
