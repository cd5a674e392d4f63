//! `pyapp-install serve`: the management server, a JSON API (`/api/v1/…`) and a web console
//! over the same engine operations the command line runs (FORMAT.md 13).
//!
//! It is the only place with an async runtime: [`serve`] builds a tokio runtime and the
//! plain command line never does. Every operation still runs the blocking engine function
//! on a worker thread ([`tokio::task::spawn_blocking`]) with a [`Target`] of its own whose
//! progress goes to the request ([`events`]: server-sent events). It listens on a unix
//! socket always (root and the `pyapp-admin` group) and on HTTP only when asked, where a
//! token, sessions, CSRF checks and rate limits guard it ([`access`]); every change is an
//! audit record in the journal ([`audit`]).

mod access;
mod api;
mod audit;
mod console;
mod events;
mod listen;
pub mod remote;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::engine::Target;

pub use access::rotate_token;

/// The group whose members may use the unix socket besides root.
pub const ADMIN_GROUP: &str = "pyapp-admin";

/// Where the server listens and what it installs with.
#[derive(Debug, Clone)]
pub struct ServeRequest {
    /// The unix socket, as seen inside the target root (`/run/pyapp/api.sock`).
    pub socket: PathBuf,
    /// HTTP on this address too (loopback unless the command line said otherwise).
    pub http: Option<SocketAddr>,
    /// Where the token, and uploads while they are checked, are kept (inside the root).
    pub state_dir: PathBuf,
    /// The largest bundle an upload may be, in bytes.
    pub max_upload: u64,
    /// Installs' interpreter (`None`: as `pyapp-install BUNDLE` finds it).
    pub python: Option<PathBuf>,
    /// Minisign keys an uploaded bundle must be signed with (besides the apps directory's).
    pub trusted_keys: Vec<PathBuf>,
    /// HTTP requests allowed per second per listener, on average (bursts of 5 s of them).
    pub rate: u32,
}

/// The default place of the unix socket.
pub const DEFAULT_SOCKET: &str = "/run/pyapp/api.sock";

/// The default place of the token and uploads.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/pyapp/console";

/// What every handler shares.
pub struct Server {
    pub(crate) request: ServeRequest,
    /// The target as the command line built it; each operation gets a copy with its own
    /// progress.
    pub(crate) target: Target,
    pub(crate) access: access::Access,
    /// Held by the install running: installs in one process would share the store's
    /// staging names (they are made per process), so they take turns; their uploads do not.
    pub(crate) installs: std::sync::Mutex<()>,
}

/// Runs the server until SIGTERM or SIGINT.
pub fn serve(request: &ServeRequest, target: &Target) -> Result<()> {
    let state_dir = in_root(target, &request.state_dir);
    let access = access::Access::open(&state_dir, request.rate)?;
    let server = Arc::new(Server {
        request: request.clone(),
        target: target.clone(),
        access,
        installs: std::sync::Mutex::new(()),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the server's runtime")?;
    let result = runtime.block_on(listen::run(server));
    // An operation still running on a worker thread is not waited for long: the server
    // is stopping.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

/// `path` (absolute, as seen inside the target root) on this machine.
fn in_root(target: &Target, path: &std::path::Path) -> PathBuf {
    target.root.join(path.strip_prefix("/").unwrap_or(path))
}
