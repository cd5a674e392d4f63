//! The listeners: the unix socket (mode 0660, owned by root and the `pyapp-admin` group,
//! in a directory only they can enter) always, HTTP on the address asked for. Each
//! connection is tagged with who is at the other end ([`Peer`]) for the access checks and
//! the audit record.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use nix::unistd::{chown, Gid};
use tokio::net::{TcpListener, UnixListener};

use super::{api, in_root, Server, ADMIN_GROUP};
use crate::system::app_user::lookup_group;

/// Who a connection comes from.
#[derive(Debug, Clone, Copy)]
pub enum Peer {
    /// A local process on the unix socket, by its uid (`None` when the kernel did not say).
    Socket { uid: Option<u32> },
    /// An HTTP client.
    Http(SocketAddr),
}

impl Peer {
    /// How the audit record names it: `uid 0 (socket)`, `127.0.0.1:51234 (http)`.
    pub fn describe(&self) -> String {
        match self {
            Peer::Socket { uid: Some(uid) } => format!("uid {uid} (socket)"),
            Peer::Socket { uid: None } => "unknown uid (socket)".to_owned(),
            Peer::Http(addr) => format!("{addr} (http)"),
        }
    }
}

impl Connected<IncomingStream<'_, UnixListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, UnixListener>) -> Self {
        let uid = stream.io().peer_cred().ok().map(|cred| cred.uid());
        Peer::Socket { uid }
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer::Http(*stream.remote_addr())
    }
}

/// Binds the listeners and serves until SIGTERM or SIGINT.
pub async fn run(server: Arc<Server>) -> Result<()> {
    let socket_path = in_root(&server.target, &server.request.socket);
    let unix = bind_socket(&socket_path, &server.target)?;
    let note = |message: String| server.target.progress().note(&message);
    note(format!("listening on {}", socket_path.display()));
    let tcp = match server.request.http {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("failed to listen on {addr}"))?;
            note(format!(
                "listening on http://{} (token in {})",
                listener.local_addr().unwrap_or(addr),
                server.access.token_path().display()
            ));
            Some(listener)
        }
        None => None,
    };
    let socket_app = api::router(server.clone()).into_make_service_with_connect_info::<Peer>();
    let socket_task = tokio::spawn(async move {
        axum::serve(unix, socket_app)
            .with_graceful_shutdown(stopped())
            .await
    });
    if let Some(tcp) = tcp {
        let http_app = api::router(server.clone()).into_make_service_with_connect_info::<Peer>();
        axum::serve(tcp, http_app)
            .with_graceful_shutdown(stopped())
            .await
            .context("the HTTP listener failed")?;
    }
    socket_task
        .await
        .context("the socket listener stopped")?
        .context("the socket listener failed")?;
    let _ = fs::remove_file(&socket_path);
    Ok(())
}

/// Resolves at SIGTERM or SIGINT.
async fn stopped() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers the server runs until it is killed.
        _ => std::future::pending().await,
    }
}

/// The unix socket at `path`: its directory 0750 and the socket 0660, both owned by root
/// and the admin group when the root has one (0700/0600, root alone, when not). A stale
/// socket from an earlier run is replaced; anything else in its place is refused.
fn bind_socket(path: &Path, target: &crate::engine::Target) -> Result<UnixListener> {
    let dir = path
        .parent()
        .with_context(|| format!("`{}` has no directory", path.display()))?;
    fs::create_dir_all(dir).with_context(|| format!("failed to create `{}`", dir.display()))?;
    let group = lookup_group(&target.root, ADMIN_GROUP)?;
    if group.is_none() {
        target.progress().warning(&format!(
            "no group {ADMIN_GROUP}: only root may use {}",
            path.display()
        ));
    }
    let (dir_mode, socket_mode) = if group.is_some() {
        (0o750, 0o660)
    } else {
        (0o700, 0o600)
    };
    let set = |place: &Path, mode: u32| -> Result<()> {
        chown(place, None, group.map(Gid::from_raw))
            .with_context(|| format!("failed to give `{}` to {ADMIN_GROUP}", place.display()))?;
        fs::set_permissions(place, fs::Permissions::from_mode(mode))
            .with_context(|| format!("failed to set the mode of `{}`", place.display()))
    };
    set(dir, dir_mode)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            fs::remove_file(path)
                .with_context(|| format!("failed to remove the old `{}`", path.display()))?;
        }
        Ok(_) => {
            return Err(pyapp_cli::Refusal::new(format!(
                "`{}` is in the way of the server's socket",
                path.display()
            ))
            .with_hint("move it away, then start the server again")
            .into())
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)
        .with_context(|| format!("failed to listen on `{}`", path.display()))?;
    set(path, socket_mode)?;
    Ok(listener)
}
