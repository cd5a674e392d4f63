//! The operations pyapp-install performs, as typed functions the command line and the
//! management API both call: install, rollback, remove, config, status, logs, list, run,
//! watch, gc. They take typed requests (never command-line types), report progress
//! through a trait and return what they did; they never print.

use std::path::PathBuf;
use std::sync::Arc;

use crate::app::ports::PortRange;
use crate::app::tree::AppsDir;
use crate::progress::Progress;
use crate::system::systemd::Systemd;

pub mod activation;
pub mod config;
pub mod gc;
pub mod install;
pub mod list;
pub mod logs;
pub mod notify;
pub mod remove;
pub mod rollback;
pub mod run;
pub mod status;
pub mod watch;

/// Where an operation happens and who hears about it: built once per command (or API
/// request) and passed to every operation.
#[derive(Clone)]
pub struct Target {
    /// The filesystem root everything is installed under: `/`, or `--root` (absolute).
    pub root: PathBuf,
    /// The directory holding the apps, inside the root.
    pub apps: AppsDir,
    /// How units are registered under the root (with `systemctl` only on the running system).
    pub systemd: Systemd,
    /// The ports `listen: port` services are given theirs from.
    pub port_range: PortRange,
    /// Where the operation's messages and progress go.
    pub progress: Arc<dyn Progress>,
}

impl Target {
    /// The target for the apps directory `apps_dir` (as seen from inside `root`) under `root`.
    pub fn new(
        root: PathBuf,
        apps_dir: &std::path::Path,
        port_range: PortRange,
        progress: Arc<dyn Progress>,
    ) -> Target {
        let root = std::path::absolute(&root).unwrap_or(root);
        Target {
            apps: AppsDir::new(&root, apps_dir),
            systemd: Systemd::detect(&root),
            root,
            port_range,
            progress,
        }
    }

    /// Where the operation's messages and progress go.
    pub fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }
}
