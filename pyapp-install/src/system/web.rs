//! Serving an app through a web server (FORMAT.md 11). From the current release's metadata
//! (`web.mount`, the proxied service's socket or port, `resources.static`) pyapp-install
//! writes one snippet per server dialect into `APPS/APP/web/` on every install, upgrade and
//! rollback: static directories served from disk, everything else under the mount proxied
//! to the app. `--web nginx` links the nginx snippet as `/etc/nginx/pyapp.d/APP.conf`,
//! included by a server block pyapp-install writes once (`/etc/nginx/conf.d/pyapp.conf`),
//! checks the whole configuration with `nginx -t` and reloads nginx; a configuration nginx
//! refuses is unlinked again, so nginx is never left with a broken include. `--web apache`
//! and `--web lighttpd` do the same in Debian's layouts (each dialect module says how,
//! [`Linking`]). An app stays
//! linked (the link is the record) until `remove` unlinks it, or a release that no web
//! server serves becomes current.
//!
//! Every path written into a snippet is a run-time path made only of characters no
//! server's syntax treats specially, or the install is refused before the release is
//! switched to.

mod apache;
mod lighttpd;
mod nginx;

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use nix::sys::stat::{fchmod, Mode};
use nix::unistd::{fchown, Gid, Uid};
use pyapp_bundle::metadata::{Listen, Metadata, Service, StaticRoot};
use serde::Serialize;

use crate::app::ports;
use crate::app::tree::AppTree;
use crate::progress::Progress;
use crate::system::app_user::{self, AppUser};
use crate::system::ownership;
use crate::system::systemd::Systemd;
use crate::system::systemd::MARKER_PREFIX;
use pyapp_cli::Refusal;

/// The group Debian's nginx, apache2 and lighttpd run as: it gets into `run/` when the
/// proxied service listens on a socket.
pub const WEB_GROUP: &str = "www-data";

/// The mode of `run/` then: the app user writes, the web server's group traverses (and so
/// reaches the socket), nobody else. No setgid: the socket keeps the app's group (gunicorn
/// chowns it to that, which a group the service's user namespace does not map would
/// refuse), and is connectable by whoever reaches it (gunicorn binds it 0777, uvicorn
/// makes it 0666).
const SOCKET_RUN_DIR_MODE: u32 = 0o750;

/// The mode of `data/` when the web server serves a directory of it: the web server's
/// group may pass through (to the static directories) but not list it.
const DATA_DIR_PASS_MODE: u32 = 0o710;

/// The mode of a static directory of `data/`: the app writes, the web server's group reads;
/// setgid, so what the app makes in it (collectstatic's files and directories) has the web
/// server's group too.
const DATA_STATIC_DIR_MODE: u32 = 0o2750;

/// The longest wait for the app to accept a connection, whatever `web.timeout` says
/// (nginx's `proxy_connect_timeout` stops at 75 s).
const MAX_CONNECT_TIMEOUT: u32 = 60;

/// Writes one server's snippet for a site.
type SnippetWriter = fn(&Site) -> String;

/// The snippet dialects written for every web-served app, by file name.
const SNIPPETS: [(&str, SnippetWriter); 3] = [
    ("nginx.conf", nginx::snippet),
    ("apache.conf", apache::snippet),
    ("lighttpd.conf", lighttpd::snippet),
];

/// The web servers `--web` links an app into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    Nginx,
    Apache,
    Lighttpd,
}

impl Server {
    const ALL: [Server; 3] = [Server::Nginx, Server::Apache, Server::Lighttpd];

    /// How apps are linked into it.
    fn linking(self) -> &'static Linking {
        match self {
            Server::Nginx => &nginx::LINKING,
            Server::Apache => &apache::LINKING,
            Server::Lighttpd => &lighttpd::LINKING,
        }
    }

    fn name(self) -> &'static str {
        self.linking().name
    }
}

/// How pyapp-install links apps into one web server; paths are relative to the root.
struct Linking {
    /// As `--web` and messages say it.
    name: &'static str,
    /// Its Debian package.
    package: &'static str,
    /// The snippet of `APPS/APP/web/` it includes.
    snippet: &'static str,
    /// Its configuration directory: there when it is installed.
    config_dir: &'static str,
    /// Where the links to the apps' snippets go.
    link_dir: &'static str,
    /// The file that makes the server include every file of `link_dir`, written when
    /// missing (and the administrator's from then on)...
    include_point: &'static str,
    include_text: &'static str,
    /// ...and the link that enables it, (link, target), where the server's layout has one.
    enabled_by: Option<(&'static str, &'static str)>,
    /// The server's check of its whole configuration: a program of /usr/sbin, arguments.
    check: &'static [&'static str],
    /// Its systemd unit.
    unit: &'static str,
    /// What usually makes the check fail, for the hint.
    usual_problem: &'static str,
}

/// What the web server connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `APPS/APP/run/SERVICE.sock`.
    Socket(String),
    /// 127.0.0.1:PORT.
    Port(u16),
}

/// A static directory: the URL prefix (with the mount, ending in `/`) and the run-time
/// directory under `current/src/` or `data/` (ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticDir {
    pub url: String,
    pub dir: String,
    /// For a directory of `data/`, which the app user writes: `APPS/APP/data`, below which
    /// the web server must follow no symbolic link (one the app planted could point at any
    /// file the web server may read).
    pub no_links_below: Option<String>,
}

/// Everything a snippet says about one app, checked for what the servers' syntax needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub app: String,
    /// The mount without its trailing `/`: empty for `/`, else e.g. `/blog`.
    pub prefix: String,
    pub backend: Backend,
    pub statics: Vec<StaticDir>,
    pub max_body_bytes: u64,
    /// Seconds (`web.timeout`).
    pub timeout: u32,
    /// `web.strip-prefix`: the app gets paths without the prefix, and the prefix in
    /// `X-Forwarded-Prefix`.
    pub strip_prefix: bool,
}

impl Site {
    /// The site of `metadata`'s release of `tree`, with the port [`ports`] remembers; `None`
    /// when no service is proxied (FORMAT.md 11). Refused when a path holds a character the
    /// servers' syntax would not take literally.
    pub fn of(tree: &AppTree, metadata: &Metadata) -> Result<Option<Site>> {
        let Some(service) = metadata.proxied_service() else {
            return Ok(None);
        };
        let web = metadata.web_settings();
        let backend = match service.listen {
            Listen::Socket => Backend::Socket(config_path(&socket_path(tree, service))?),
            Listen::Port => Backend::Port(
                ports::load(tree)?
                    .get(service.name.as_str())
                    .copied()
                    .with_context(|| {
                        format!("{} has no port allocated for {}", tree.name(), service.name)
                    })?,
            ),
            Listen::None => return Ok(None),
        };
        let src = tree.runtime_dir().join("current/src");
        let data = tree.runtime_dir().join("data");
        let statics = metadata
            .resources
            .static_paths
            .iter()
            .map(|static_path| {
                let (base, no_links_below) = match static_path.from {
                    StaticRoot::Src => (&src, None),
                    StaticRoot::Data => (&data, Some(config_path(&data)?)),
                };
                Ok(StaticDir {
                    url: format!("{}{}/", web.prefix(), static_path.url.trim_end_matches('/')),
                    dir: format!(
                        "{}/",
                        config_path(&base.join(static_path.path.trim_end_matches('/')))?
                    ),
                    no_links_below,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Site {
            app: tree.name().to_owned(),
            prefix: web.prefix().to_owned(),
            backend,
            statics,
            max_body_bytes: web.max_body_bytes(),
            timeout: web.timeout,
            strip_prefix: web.strip_prefix,
        }))
    }

    /// The mount with a trailing `/`: `/` or `/blog/`.
    fn mount(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// The path the app's `/` is proxied as: the mount, or `/` when the prefix is stripped.
    fn upstream_root(&self) -> String {
        if self.strip_prefix {
            "/".to_owned()
        } else {
            self.mount()
        }
    }

    fn connect_timeout(&self) -> u32 {
        self.timeout.min(MAX_CONNECT_TIMEOUT)
    }

    /// The comment lines every snippet starts with (the second marks whose it is, as in
    /// units).
    fn header(&self, server: &str, usage: &str) -> String {
        format!(
            "# Generated by pyapp-install: do not edit, the next install replaces it.\n\
             {MARKER_PREFIX}{app}\n\
             # {server}: {app} at {mount}, {usage} (spec/FORMAT.md section 11).\n",
            app = self.app,
            mount = self.mount()
        )
    }

    /// Every snippet: (file name, text).
    pub fn snippets(&self) -> Vec<(&'static str, String)> {
        SNIPPETS
            .iter()
            .map(|(name, write)| (*name, write(self)))
            .collect()
    }
}

/// `APPS/APP/run/SERVICE.sock` at run time, where a `listen: socket` service binds.
fn socket_path(tree: &AppTree, service: &Service) -> PathBuf {
    tree.runtime_dir()
        .join("run")
        .join(format!("{}.sock", service.name))
}

/// A path as it is written into a snippet: absolute and made of ASCII letters, digits and
/// `/._+-@~` only (no quote, space, `;`, `$`, `{`, `#` or `\` any server would interpret).
fn config_path(path: &Path) -> Result<String> {
    let text = path.display().to_string();
    let literal = text.starts_with('/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._+-@~".contains(c));
    if literal {
        return Ok(text);
    }
    Err(Refusal::new(format!(
        "web: {text:?} has characters web server configurations do not take literally \
         (allowed: letters, digits, \"/._+-@~\")"
    ))
    .with_hint("use an apps directory (--apps-dir) and static paths made of those characters")
    .into())
}

/// The mount the proxied `service` sees in its request paths: the mount below `/`, unless
/// the web server strips it (`web.strip-prefix`); `None` for any other service.
fn path_prefix(metadata: &Metadata, service: &str) -> Option<String> {
    let web = metadata.web_settings();
    let proxied = metadata.proxied_service()?;
    (proxied.name.as_str() == service && !web.prefix().is_empty() && !web.strip_prefix)
        .then(|| web.prefix().to_owned())
}

/// What `SCRIPT_NAME` a service gets: the mount, for the proxied service of an app mounted
/// below `/` whose paths keep it (gunicorn strips it from request paths and the app builds
/// its URLs under it).
pub fn script_name(metadata: &Metadata, service: &Service) -> Option<String> {
    path_prefix(metadata, service.name.as_str())
}

/// The path a health check requests from `service`: the mount before `path` when the
/// service is the proxied one and sees the mount (it expects every path under its
/// `SCRIPT_NAME`).
pub fn service_path(metadata: &Metadata, service: &str, path: &str) -> String {
    match path_prefix(metadata, service) {
        Some(prefix) => format!("{prefix}{path}"),
        None => path.to_owned(),
    }
}

/// The lasting directories of `tree` the web server reaches into for `metadata`, with the
/// gid of [`WEB_GROUP`]: `run/` when the proxied service listens on a socket, `data/` when a
/// static directory is `from: data` (none without the group). Given to
/// [`ownership::own_lasting_dirs`], so that these directories keep the web server's group
/// through an upgrade instead of passing through the app's group (which would refuse the
/// server's requests until [`own_run_dir`] and [`own_data_statics`] ran).
pub fn web_groups(root: &Path, metadata: &Metadata) -> Result<Vec<(&'static str, u32)>> {
    let Some(gid) = app_user::lookup_group(root, WEB_GROUP)? else {
        return Ok(Vec::new());
    };
    let socket = metadata
        .proxied_service()
        .is_some_and(|service| service.listen == Listen::Socket);
    let statics = metadata
        .resources
        .static_paths
        .iter()
        .any(|static_path| static_path.from == StaticRoot::Data);
    Ok([("run", socket), ("data", statics)]
        .into_iter()
        .filter(|(_, reached)| *reached)
        .map(|(dir, _)| (dir, gid))
        .collect())
}

/// Gives `run/` the group [`WEB_GROUP`] and mode 0750 when the proxied service listens on
/// a socket, so the web server (and only it, besides the app) can connect; otherwise
/// leaves it as ownership made it. Through descriptors that refuse links, like
/// [`ownership::own_lasting_dirs`], which runs first (with [`web_groups`]).
pub fn own_run_dir(
    root: &Path,
    tree: &AppTree,
    user: &AppUser,
    metadata: &Metadata,
    output: &dyn Progress,
) -> Result<()> {
    if !metadata
        .proxied_service()
        .is_some_and(|service| service.listen == Listen::Socket)
    {
        return Ok(());
    }
    let Some(gid) = app_user::lookup_group(root, WEB_GROUP)? else {
        output.note(&format!(
            "no group {WEB_GROUP} in {}: only {} can connect to its socket",
            root.join("etc/group").display(),
            user.name
        ));
        return Ok(());
    };
    let path = tree.lasting_dir("run");
    let app_dir = ownership::open_dir(tree.dir())?;
    let run = ownership::open_dir_at(&app_dir, "run", &path)?;
    let stat = nix::sys::stat::fstat(&run)
        .with_context(|| format!("failed to inspect `{}`", path.display()))?;
    if stat.st_uid != user.uid || stat.st_gid != gid {
        fchown(
            &run,
            Some(Uid::from_raw(user.uid)),
            Some(Gid::from_raw(gid)),
        )
        .with_context(|| format!("failed to change the owner of `{}`", path.display()))?;
    }
    fchmod(&run, Mode::from_bits_truncate(SOCKET_RUN_DIR_MODE))
        .with_context(|| format!("failed to set the mode of `{}`", path.display()))
}

/// Makes each `resources.static` directory `from: data` of `metadata` (`data/NAME`, before
/// the hooks that fill it run), owned by the app user with the group [`WEB_GROUP`] and mode
/// 2750, and lets that group pass through `data/` (0710): the web server reads the
/// directories, nobody else does. Through descriptors that refuse links, like
/// [`ownership::own_lasting_dirs`], which runs first (with [`web_groups`]). Without [`WEB_GROUP`], the
/// directories stay the app's and a note says the web server cannot read them.
pub fn own_data_statics(
    root: &Path,
    tree: &AppTree,
    user: &AppUser,
    metadata: &Metadata,
    output: &dyn Progress,
) -> Result<()> {
    let names: Vec<&str> = metadata
        .resources
        .static_paths
        .iter()
        .filter(|static_path| static_path.from == StaticRoot::Data)
        .map(|static_path| static_path.path.as_str())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    let (uid, app_gid) = (Uid::from_raw(user.uid), Gid::from_raw(user.gid));
    let web_gid = app_user::lookup_group(root, WEB_GROUP)?.map(Gid::from_raw);
    let data_path = tree.lasting_dir("data");
    let app_dir = ownership::open_dir(tree.dir())?;
    let data = ownership::open_dir_at(&app_dir, "data", &data_path)?;
    match web_gid {
        Some(gid) => {
            ownership::set_owner(&data, &data_path, uid, gid)?;
            fchmod(&data, Mode::from_bits_truncate(DATA_DIR_PASS_MODE))
                .with_context(|| format!("failed to set the mode of `{}`", data_path.display()))?;
        }
        None => output.note(&format!(
            "no group {WEB_GROUP} in {}: a web server cannot read {}'s static files in data/",
            root.join("etc/group").display(),
            tree.name()
        )),
    }
    for name in names {
        let path = data_path.join(name);
        match nix::sys::stat::mkdirat(&data, name, Mode::from_bits_truncate(0o750)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(err) => {
                return Err(anyhow::Error::new(err)
                    .context(format!("failed to create `{}`", path.display())))
            }
        }
        let dir = ownership::open_dir_at(&data, name, &path)?;
        ownership::set_owner(&dir, &path, uid, web_gid.unwrap_or(app_gid))?;
        let mode = if web_gid.is_some() {
            DATA_STATIC_DIR_MODE
        } else {
            0o750
        };
        fchmod(&dir, Mode::from_bits_truncate(mode))
            .with_context(|| format!("failed to set the mode of `{}`", path.display()))?;
    }
    Ok(())
}

/// What `--json` reports about the web server configuration.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct WebReport {
    /// `APPS/APP/web`, where the snippets are; absent when the app is not web-served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snippets: Option<String>,
    /// The servers the app is linked into.
    pub linked: Vec<Linked>,
}

/// One server the app is linked into.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Linked {
    pub server: Server,
    /// `ROOT/etc/nginx/pyapp.d/APP.conf`.
    pub link: String,
    /// The link is new or the snippet it points at changed.
    pub changed: bool,
    /// The server was reloaded.
    pub reloaded: bool,
}

/// Where the snippets and the links are: the app's tree and the target root.
pub struct WebConfig<'a> {
    pub root: &'a Path,
    pub tree: &'a AppTree,
    pub systemd: &'a Systemd,
    pub output: &'a dyn Progress,
}

impl WebConfig<'_> {
    /// `APPS/APP/web`.
    fn snippet_dir(&self) -> PathBuf {
        self.tree.dir().join("web")
    }

    /// `ROOT/etc/nginx/pyapp.d/APP.conf`.
    fn link_path(&self, server: Server) -> PathBuf {
        self.root
            .join(server.linking().link_dir)
            .join(format!("{}.conf", self.tree.name()))
    }

    /// What the link points at: the snippet's run-time path.
    fn link_target(&self, server: Server) -> PathBuf {
        self.tree
            .runtime_dir()
            .join("web")
            .join(server.linking().snippet)
    }

    /// Whether the app is linked into `server` (its link is there, pointing at the app's
    /// snippet). Something else at the link's path is not the app's.
    fn is_linked(&self, server: Server) -> Result<bool> {
        Ok(
            pyapp_fs::read_link_optional(&self.link_path(server))?.as_deref()
                == Some(self.link_target(server).as_path()),
        )
    }

    /// Whether `--root` is the running system, where servers are checked and reloaded.
    fn is_live(&self) -> bool {
        app_user::is_host_root(self.root)
    }

    /// Writes the snippets of `site` (or, when the release is not web-served, removes them
    /// and unlinks the app), links the app into `link` when asked, and checks and reloads
    /// every server it is linked into whose configuration changed.
    pub fn publish(&self, site: Option<&Site>, link: Option<Server>) -> Result<WebReport> {
        let Some(site) = site else {
            self.unpublish()?;
            return Ok(WebReport::default());
        };
        let dir = self.snippet_dir();
        pyapp_fs::ensure_dir(&dir, 0o755)?;
        let snippets = site.snippets();
        let mut changed: Vec<(&str, &[u8])> = Vec::new();
        for (name, text) in &snippets {
            if pyapp_fs::read_optional(&dir.join(name))?.as_deref() != Some(text.as_bytes()) {
                changed.push((name, text.as_bytes()));
            }
        }
        // One sync of the directory for all of them.
        pyapp_fs::write_atomic_in(&dir, &changed, 0o644)?;
        let changed_snippets: Vec<&str> = changed.iter().map(|(name, _)| *name).collect();
        let mut report = WebReport {
            snippets: Some(self.tree.runtime_dir().join("web").display().to_string()),
            linked: Vec::new(),
        };
        for server in Server::ALL {
            let was_linked = self.is_linked(server)?;
            if !was_linked && link != Some(server) {
                continue;
            }
            let changed = !was_linked || changed_snippets.contains(&server.linking().snippet);
            let reloaded = self.link(server, was_linked, changed)?;
            report.linked.push(Linked {
                server,
                link: self.link_path(server).display().to_string(),
                changed,
                reloaded,
            });
        }
        Ok(report)
    }

    /// Refuses `--web SERVER` before anything is installed when the release `metadata`
    /// describes has no service to proxy, the server is not installed, or something that is
    /// not the app's link is where its link would go.
    pub fn check_can_link(&self, server: Server, metadata: &Metadata) -> Result<()> {
        if metadata.proxied_service().is_none() {
            return Err(Refusal::new(format!(
                "--web {}: {} has no service for a web server to proxy",
                server.name(),
                self.tree.name()
            ))
            .with_hint(
                "give the service `listen: socket` or `listen: port` in metadata.yaml, and name \
                 it in web.service when several listen",
            )
            .into());
        }
        self.check_link_free(server)
    }

    /// Refuses to link into `server` when it is not installed on the running system or
    /// something that is not the app's link is where its link would go.
    fn check_link_free(&self, server: Server) -> Result<()> {
        let linking = server.linking();
        let config_dir = self.root.join(linking.config_dir);
        if self.is_live() && !pyapp_fs::is_real_dir(&config_dir)? {
            return Err(Refusal::new(format!(
                "--web {name}: {name} is not installed here (no {})",
                config_dir.display(),
                name = linking.name,
            ))
            .with_hint(format!(
                "install it first: apt-get install {}",
                linking.package
            ))
            .into());
        }
        let link = self.link_path(server);
        if self.is_linked(server)? || !pyapp_fs::exists(&link)? {
            return Ok(());
        }
        Err(Refusal::new(format!(
            "`{}` exists and is not pyapp-install's link to {}'s snippet; refusing to replace it",
            link.display(),
            self.tree.name()
        ))
        .with_hint("move it away, then install again with --web")
        .into())
    }

    /// Links the app into `server` (unless it was), then, on the running system, checks the
    /// server's whole configuration and reloads it when `changed`. A refused configuration
    /// is unlinked (with an include point made now) before the error is returned.
    fn link(&self, server: Server, was_linked: bool, changed: bool) -> Result<bool> {
        let linking = server.linking();
        let link = self.link_path(server);
        let mut made = Vec::new();
        if !was_linked {
            self.check_link_free(server)?;
            // Under --root the image may not have the server yet: its directories are made.
            create_dirs(&self.root.join(linking.link_dir))?;
            let include_point = self.root.join(linking.include_point);
            if !pyapp_fs::exists(&include_point)? {
                create_dirs(include_point.parent().unwrap_or(self.root))?;
                pyapp_fs::write_atomic(&include_point, linking.include_text.as_bytes(), 0o644)?;
                made.push(include_point);
                if let Some((enabled, target)) = linking.enabled_by {
                    let enabled = self.root.join(enabled);
                    if pyapp_fs::read_link_optional(&enabled)?.is_none() {
                        create_dirs(enabled.parent().unwrap_or(self.root))?;
                        pyapp_fs::replace_symlink(Path::new(target), &enabled)?;
                        made.push(enabled);
                    }
                }
            }
            pyapp_fs::replace_symlink(&self.link_target(server), &link)?;
        }
        if !self.is_live() {
            self.output.note(&format!(
                "{} links {}'s snippet; check and reload {} once this root runs",
                link.display(),
                self.tree.name(),
                linking.name
            ));
            return Ok(false);
        }
        if let Err(problem) = self.check(server) {
            pyapp_fs::remove_file_if_exists(&link)?;
            for path in made.iter().rev() {
                pyapp_fs::remove_file_if_exists(path)?;
            }
            return Err(Refusal::new(format!(
                "{server} refused the configuration with {app}'s snippet, so {link} is removed \
                 again ({server} keeps running as it was): {problem}",
                server = linking.name,
                app = self.tree.name(),
                link = link.display(),
            ))
            .with_hint(format!(
                "fix what {} says ({}), then install again with --web {}",
                linking.name, linking.usual_problem, linking.name
            ))
            .into());
        }
        if changed {
            return self.reload(server);
        }
        Ok(false)
    }

    /// Runs the server's configuration check; its complaint when it fails.
    fn check(&self, server: Server) -> Result<(), String> {
        let linking = server.linking();
        let (program, args) = linking.check.split_first().unwrap_or((&"", &[]));
        let output = Command::new(find_program(program))
            .args(args)
            .output()
            .map_err(|err| format!("cannot run {program}: {err}"))?;
        if output.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&output.stderr);
        Err(said
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; "))
    }

    /// Reloads `server` when systemd runs it; says how otherwise. Whether it reloaded.
    fn reload(&self, server: Server) -> Result<bool> {
        let unit = server.linking().unit;
        if self.systemd.is_active(unit)? {
            self.systemd.reload(&[unit.to_owned()])?;
            self.output.note(&format!(
                "reloaded {} for {}",
                server.name(),
                self.tree.name()
            ));
            return Ok(true);
        }
        self.output.note(&format!(
            "{} is not running under systemd: start or reload it to serve {}",
            server.name(),
            self.tree.name()
        ));
        Ok(false)
    }

    /// Unlinks the app from every server it is linked into (reloading those that run) and
    /// removes its snippets: for `remove`, and for a release no web server serves.
    pub fn unpublish(&self) -> Result<()> {
        for server in Server::ALL {
            if !self.is_linked(server)? {
                continue;
            }
            let link = self.link_path(server);
            pyapp_fs::remove_file_if_exists(&link)?;
            self.output.note(&format!(
                "unlinked {} from {}",
                self.tree.name(),
                link.display()
            ));
            if self.is_live() && self.check(server).is_ok() {
                self.reload(server)?;
            }
        }
        Ok(pyapp_fs::remove_dir_all_if_exists(&self.snippet_dir())?)
    }
}

/// `dir` and its missing parents, 0755.
fn create_dirs(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))
}

/// `/usr/sbin/NAME` or `/sbin/NAME` when there (root's `PATH` may lack them), else `NAME`.
fn find_program(name: &str) -> PathBuf {
    ["/usr/sbin", "/sbin"]
        .iter()
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.metadata().is_ok_and(|meta| meta.mode() & 0o111 != 0))
        .unwrap_or_else(|| PathBuf::from(name))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
