//! Command-line arguments of `pyapp-install`: installing a bundle is the default action;
//! `list`, `rollback`, `remove`, `gc`, `status`, `logs`… are subcommands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use pyapp_cli::{Generate, Verbosity};

use crate::app::ports::PortRange;
use crate::app::tree::DEFAULT_APPS_DIR;
use crate::system::web::Server;

/// Install or upgrade a Python app from a .pyapp bundle, offline.
///
/// The bundle is verified (every file's sha256) before anything is written. The app gets a
/// new release under APPS/APP/releases/, its own virtual environment built from the bundled
/// wheels (no pip, no network), and `current` is switched to it atomically: a failure at
/// any point leaves the running release in place. config/ and data/ are never touched.
/// Installing the same bundle again changes nothing and says "unchanged".
#[derive(Debug, Parser)]
#[command(
    name = "pyapp-install",
    version,
    after_help = EXAMPLES,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub install: InstallArgs,

    #[command(flatten)]
    pub common: CommonArgs,
}

/// Installing a bundle (the default action).
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// The .pyapp bundle to install.
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundle: Option<PathBuf>,

    /// The Python interpreter of the app's venv [default: the newest python3.X on PATH
    /// that satisfies the bundle's requires-python].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Print what would change and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// When another pyapp-install holds the app's lock, wait for it instead of failing.
    #[arg(long)]
    pub wait: bool,

    /// Compile the installed modules to bytecode with the app's interpreter (faster first
    /// start, larger release).
    #[arg(long)]
    pub compile_bytecode: bool,

    /// Install wheels whose RECORD lists wrong hashes or sizes (some real wheels ship bad
    /// RECORDs); without it such a wheel is refused.
    #[arg(long)]
    pub no_verify_record: bool,

    /// Refuse a bundle whose release would take more than SIZE on disk (bytes, or with K,
    /// M, G or T: KiB, MiB, GiB, TiB) [default: 4G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_installed_size: Option<u64>,

    /// Run the app as this existing user (and its primary group) instead of the system
    /// user pyapp-install creates, named after the app.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Set a configuration value, KEY=VALUE (repeatable): checked against the bundle's
    /// configuration.yaml and written to APPS/APP/config/ (kept across upgrades).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,

    /// Take configuration values from this YAML file of `key: value` lines (--set wins).
    #[arg(long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Trust this minisign public key (repeatable; `pyapp-build keygen` writes pyapp.pub):
    /// with a trusted key, here or in APPS/.pyapp-trusted-keys/*.pub, a bundle must be
    /// signed by one of them or it is refused before anything is written.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,

    /// The ports `listen: port` services get theirs from: each service is given one once,
    /// kept across upgrades and rollbacks, unique among the apps.
    #[arg(long, value_name = "FIRST-LAST", default_value_t = PortRange::DEFAULT)]
    pub port_range: PortRange,

    /// Install a bundle whose version is lower than the app's current one (refused
    /// without it; `pyapp-install rollback APP` is the way back to the previous release).
    #[arg(long)]
    pub allow_downgrade: bool,

    /// Build the release under APPS/APP/releases/ but do not switch to it: nothing stops
    /// or restarts, config/ is not written. Installing the same bundle again later switches
    /// to it without rebuilding. Only for an app that is installed.
    #[arg(long, conflicts_with_all = ["dry_run", "set", "config", "user"])]
    pub stage_only: bool,
    /// Serve the app through this web server: link its snippet (e.g. APPS/APP/web/nginx.conf:
    /// its static directories and the proxy to its service, under web.mount) into the
    /// server's pyapp.d/ (/etc/nginx/pyapp.d/APP.conf), write what includes those once (nginx: a server block
    /// on port 80 in /etc/nginx/conf.d/pyapp.conf; apache: conf-available/pyapp.conf,
    /// enabled; lighttpd: conf-available/50-pyapp.conf, enabled), check the server's whole
    /// configuration (`nginx -t`, `apache2ctl -t`, `lighttpd -tt`) and reload it. A refused
    /// configuration is unlinked again. Upgrades and rollbacks keep the app linked and
    /// reload; `remove` unlinks it.
    #[arg(long, value_name = "SERVER", value_enum)]
    pub web: Option<WebServer>,

    /// Install the bundle on the `pyapp-install serve` at URL instead of here:
    /// http://HOST:PORT (another machine through an SSH tunnel) or unix:/run/pyapp/api.sock.
    /// The server's update policy and options apply; of this command's, only
    /// --allow-downgrade is sent. The token comes from --token-file or $PYAPP_TOKEN.
    #[arg(long, value_name = "URL", conflicts_with_all = [
        "python", "dry_run", "set", "config", "user", "stage_only", "web", "compile_bytecode",
        "trusted_keys", "max_installed_size", "no_verify_record", "wait",
    ])]
    pub remote: Option<String>,

    /// With --remote: the file holding the server's token [default: $PYAPP_TOKEN].
    #[arg(long, value_name = "FILE", requires = "remote")]
    pub token_file: Option<PathBuf>,
}

/// The web servers `--web` links an app into (`system::web::Server`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WebServer {
    /// /etc/nginx/pyapp.d/APP.conf, in the server block of conf.d/pyapp.conf
    Nginx,
    /// Apache httpd 2.4 (Debian's apache2): /etc/apache2/pyapp.d/APP.conf, for every
    /// virtual host (conf-enabled/pyapp.conf)
    Apache,
    /// /etc/lighttpd/pyapp.d/APP.conf (conf-enabled/50-pyapp.conf)
    Lighttpd,
}

impl From<WebServer> for Server {
    fn from(server: WebServer) -> Server {
        match server {
            WebServer::Nginx => Server::Nginx,
            WebServer::Apache => Server::Apache,
            WebServer::Lighttpd => Server::Lighttpd,
        }
    }
}

/// Options every action takes.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// Install under this filesystem root instead of `/`, like DESTDIR (for image builds
    /// and tests): nothing outside it is touched.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// The directory holding the apps, inside --root.
    #[arg(long, global = true, value_name = "DIR", default_value = DEFAULT_APPS_DIR)]
    pub apps_dir: PathBuf,

    /// Print the result as JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(flatten)]
    pub verbosity: Verbosity,
}

/// The actions besides installing.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the installed apps with their current version and kept releases.
    List,

    /// Switch an app back to the release installed before the current one.
    Rollback {
        /// The app's name.
        app: String,

        /// When another pyapp-install holds the app's lock, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
    },

    /// Run one service of an app in the foreground exactly as its systemd unit would
    /// (same user, environment, directory): for containers and machines without systemd.
    Run {
        /// The app's name.
        app: String,

        /// The service's name in the app's metadata.yaml.
        service: String,
    },

    /// Remove an app's releases, `current` and receipt; data/ and config/ stay unless --purge.
    Remove {
        /// The app's name.
        app: String,

        /// Also delete data/, config/ and everything else under the app's directory.
        #[arg(long)]
        purge: bool,

        /// When another pyapp-install holds the app's lock, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
    },

    /// Delete the wheels of the shared store (APPS/.store) that no release uses any more.
    ///
    /// Shared wheels are unpacked once into the store and hard-linked into every release
    /// that installs them; a wheel is in use while a release (or an install in progress)
    /// holds a link to it. `remove` and upgrades that prune old releases collect what they
    /// freed already; this is for doing it by hand, or seeing what it would free.
    Gc {
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,

        /// When an install holds the store, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
    },

    /// Show an app's configuration (secrets masked), or change it with --set/--config:
    /// checked against the current release's configuration.yaml, saved atomically.
    Config {
        /// The app's name.
        app: String,

        /// Set KEY to VALUE (repeatable); integers, numbers and true/false are parsed by
        /// the field's widget.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,

        /// Take values from this YAML file of `key: value` lines (--set wins over it).
        #[arg(long = "config", value_name = "FILE")]
        config: Option<PathBuf>,

        /// When another pyapp-install holds the app's lock, wait for it instead of failing.
        #[arg(long)]
        wait: bool,
    },

    /// Show how an app is doing: version, releases, the systemd state of its services and
    /// timers, the last result of each hook, its disk and wheel store usage.
    ///
    /// Read-only. Without a running systemd (under --root, in a container) the unit states
    /// are shown as unknown. --json prints one object (spec/FORMAT.md 9.1).
    Status {
        /// The app's name.
        app: String,
    },

    /// Show the journal of all an app's units and its hook log (APPS/APP/log/hooks.log) as
    /// one stream ordered by time.
    ///
    /// Each line is `TIME SOURCE: MESSAGE`, SOURCE the unit (`hello-web.service[PID]`),
    /// `systemd[1]` speaking of it, or `hook NAME`. Without a running systemd only the
    /// hook log is shown. --json prints one object per line (spec/FORMAT.md 9.2).
    Logs {
        /// The app's name.
        app: String,

        /// Keep printing new lines as they come (stop with Ctrl-C).
        #[arg(short, long)]
        follow: bool,

        /// Only the last N lines [default: all; 10 with --follow].
        #[arg(short = 'n', long, value_name = "N")]
        lines: Option<usize>,

        /// Only lines from WHEN on: a UTC time (2026-11-21T15:00:00Z) or a duration ago
        /// (30s, 10m, 2h, 3d).
        #[arg(long, value_name = "WHEN", value_parser = crate::engine::logs::parse_since)]
        since: Option<u64>,
    },
    /// Install the bundles dropped into an inbox directory, each as `pyapp-install BUNDLE`
    /// would but following the installed app's update policy, then exit.
    ///
    /// Every `*.pyapp` file directly in DIR (not dotfiles, not `*.part`) is taken, oldest
    /// first, one at a time; one written less than a second ago is waited for. Each is
    /// moved to DIR/done/ or DIR/failed/ with a JSON record beside it (`X.pyapp.json`:
    /// what was done, or the error and its hint). Update policy of the installed release:
    /// always-latest installs any newer version, same-major refuses a new major version
    /// (unless --allow-major), manual only stages the release (switch to it later with
    /// `pyapp-install DIR/done/X.pyapp`). A first install is always done; a downgrade never,
    /// unless --allow-downgrade. Uploaders must write `.X.pyapp` or `X.pyapp.part` and
    /// rename it when complete. Exit status 1 when a bundle failed.
    ///
    /// With --install-units, writes `pyapp-inbox.path` and `pyapp-inbox.service` instead
    /// (and enables the path unit): systemd then runs this command whenever a bundle is
    /// dropped into DIR.
    Watch(WatchArgs),

    /// Run the management server: the JSON API and the web console over the same
    /// operations as these commands (spec/FORMAT.md 13, spec/openapi.json).
    ///
    /// Listens on a unix socket (root and the pyapp-admin group) always, and on HTTP only
    /// with --http: on 127.0.0.1 unless --http-address names another address. HTTP asks
    /// for the token in STATE-DIR/token (made at the first start, 0600): as `Authorization:
    /// Bearer TOKEN`, or in the console's login form. Every change is written to the
    /// journal (`journalctl -t pyapp-console`). Runs until SIGTERM or Ctrl-C.
    Serve(ServeArgs),

    /// Notifications of failures (spec/FORMAT.md 13.1): list the recent ones, or record
    /// a failed unit, deliver the spool, install the units that do both.
    ///
    /// A failed service or task run (through `OnFailure=pyapp-notify@%n.service`) and a
    /// failed install, upgrade or rollback each spool one event in /var/lib/pyapp/notify;
    /// `--deliver` posts it to the webhook and/or pipes it to the command that
    /// /etc/pyapp/notify.yaml names, retrying with a doubling delay. Without an option:
    /// the recent events, newest first, and how their delivery went.
    Notify(NotifyArgs),

    #[command(flatten)]
    Generate(Generate),
}

/// `pyapp-install notify`'s arguments.
#[derive(Debug, Args)]
#[group(multiple = false)]
pub struct NotifyArgs {
    /// Record that UNIT (an app's service, e.g. hello-web.service) failed: what
    /// pyapp-notify@UNIT.service runs.
    #[arg(long, value_name = "UNIT")]
    pub unit: Option<String>,

    /// Deliver the pending events, with retries, until none is pending.
    #[arg(long)]
    pub deliver: bool,

    /// Write pyapp-notify@.service, pyapp-notify.service and pyapp-notify.path running
    /// this program, and enable the path unit.
    #[arg(long)]
    pub install_units: bool,

    /// List only this app's events.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
}

/// `pyapp-install serve`'s arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The unix socket, inside --root.
    #[arg(long, value_name = "PATH", default_value = crate::server::DEFAULT_SOCKET)]
    pub socket: PathBuf,

    /// Also serve HTTP on this port of 127.0.0.1 (0: any free port, said on stderr).
    #[arg(long, value_name = "PORT")]
    pub http: Option<u16>,

    /// Serve HTTP on this address instead of 127.0.0.1 (anyone who can reach it gets the
    /// login form: put TLS in front of it).
    #[arg(long, value_name = "ADDRESS", requires = "http")]
    pub http_address: Option<std::net::IpAddr>,

    /// Where the token and uploads in progress are kept, inside --root.
    #[arg(long, value_name = "DIR", default_value = crate::server::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Refuse an uploaded bundle larger than SIZE (bytes, or with K, M, G or T) [default: 1G].
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_upload: Option<u64>,

    /// HTTP requests taken per second, on average (bursts of five seconds' worth).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub rate: u32,

    /// The Python interpreter of uploaded apps' venvs [default: as `pyapp-install BUNDLE`].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Trust this minisign public key (repeatable): as `pyapp-install --trusted-key`.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,

    /// Write a new token (sessions opened with the old one end), print its path, exit.
    #[arg(long)]
    pub rotate_token: bool,
}

/// `pyapp-install watch`'s arguments.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The inbox directory (done/ and failed/ are made inside it).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Take a new major version of an app whose update policy is same-major.
    #[arg(long)]
    pub allow_major: bool,

    /// Take a version lower than the app's current one.
    #[arg(long)]
    pub allow_downgrade: bool,

    /// The Python interpreter of new releases' venvs [default: as `pyapp-install BUNDLE`].
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,

    /// Trust this minisign public key (repeatable): as `pyapp-install --trusted-key`.
    #[arg(long = "trusted-key", value_name = "FILE")]
    pub trusted_keys: Vec<PathBuf>,

    /// Compile the installed modules to bytecode.
    #[arg(long)]
    pub compile_bytecode: bool,

    /// Refuse a bundle whose release would take more than SIZE on disk: as
    /// `pyapp-install --max-installed-size`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_installed_size: Option<u64>,

    /// Write and enable the systemd units that run this command (with the same options)
    /// when a bundle lands in DIR, instead of processing DIR now.
    #[arg(long)]
    pub install_units: bool,
}

impl Command {
    /// The action's name on the command line.
    pub fn name(&self) -> &'static str {
        match self {
            Command::List => "list",
            Command::Rollback { .. } => "rollback",
            Command::Remove { .. } => "remove",
            Command::Run { .. } => "run",
            Command::Config { .. } => "config",
            Command::Watch(_) => "watch",
            Command::Status { .. } => "status",
            Command::Logs { .. } => "logs",
            Command::Generate(Generate::Completions { .. }) => "completions",
            Command::Generate(Generate::Man { .. }) => "man",
            Command::Gc { .. } => "gc",
            Command::Serve(_) => "serve",
            Command::Notify(_) => "notify",
        }
    }
}

const EXAMPLES: &str = "\
Examples:
  pyapp-install hello-1.0.0.pyapp                    install, or upgrade to this bundle
  pyapp-install --dry-run hello-1.1.0.pyapp          show what an upgrade would do
  pyapp-install --python /usr/bin/python3.12 hello-1.0.0.pyapp
  pyapp-install --root /tmp/image hello-1.0.0.pyapp  stage into an image (like DESTDIR)
  pyapp-install --json hello-1.0.0.pyapp             {\"action\":\"unchanged\",...} for Ansible
  pyapp-install --trusted-key pyapp.pub hello-1.0.0.pyapp   only a bundle signed with that key
  pyapp-install --web nginx hello-1.0.0.pyapp        also serve it through nginx (section 11)
  pyapp-install list --json
  pyapp-install rollback hello                       back to the previous release
  pyapp-install remove hello                         keeps /applications/hello/{data,config}
  pyapp-install remove --purge hello                 deletes everything of hello
  pyapp-install config hello                         show the config (secrets masked)
  pyapp-install config hello --set workers=4         change it (checked, saved atomically)
  pyapp-install watch /srv/pyapp-inbox               install the bundles dropped there
  pyapp-install watch --install-units /srv/pyapp-inbox   ...whenever one is dropped (systemd)
  pyapp-install status hello                         versions, units, hooks, disk usage
  pyapp-install logs -f hello                        its units' journal and hook log, followed
  pyapp-install gc --dry-run                         what the store holds that no release uses
  pyapp-install serve --http 8470                    the API and web console on 127.0.0.1:8470
  pyapp-install --remote http://127.0.0.1:8470 hello-1.1.0.pyapp   install it through that server
  pyapp-install notify --install-units               send failures as /etc/pyapp/notify.yaml says
  pyapp-install notify --app hello                   hello's recent failures and their delivery
  pyapp-install completions bash > /etc/bash_completion.d/pyapp-install

Layout: /applications/APP/{releases/VERSION-HASH/{src,venv}, current -> releases/..., config/,
data/, tmp/, run/, log/, web/, .pyapp/{receipt.json,lock}}; shared wheels in /applications/.store
(spec/FORMAT.md section 6).
web/ holds nginx.conf, apache.conf and lighttpd.conf for an app with a listening service:
its static directories from disk, the rest proxied, under web.mount (section 11).

NO_COLOR=1 turns colour off; -v names each step, -vv also each external command.

Exit status: 0 done (or nothing to do), 1 refused: bad bundle or arguments, failed check,
app locked by another run (the message says why), 2 unexpected failure.";

/// `--max-installed-size`: a number of bytes, or of KiB, MiB, GiB or TiB (`512M`, `4G`,
/// `4GiB`).
fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let shift = match unit.trim_end_matches("iB") {
        "" if unit.is_empty() => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => {
            return Err(format!(
                "`{text}`: not a size (a number, or one with K, M, G or T)"
            ))
        }
    };
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: not a size (a number, or one with K, M, G or T)"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}`: too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_are_bytes_or_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("4GiB"), Ok(4 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        for bad in [
            "",
            "G",
            "4 G",
            "4g",
            "-1",
            "4Gi",
            "4GB",
            "1.5G",
            "99999999999T",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
