//! From the command line to the engine: clap's arguments (`cli`) become the [`Target`] and
//! the typed requests the operations take, so that nothing below `commands` sees a clap
//! type (the way ripgrep turns its low-level arguments into `HiArgs`).

use std::sync::Arc;

use anyhow::{Context, Result};
use pyapp_fs::lock::WhenHeld;

use crate::app::policy::Rules;
use crate::app::ports::PortRange;
use crate::cli::{CommonArgs, InstallArgs, ServeArgs, WatchArgs};
use crate::engine::install::{self, InstallRequest, DEFAULT_MAX_INSTALLED_SIZE};
use crate::engine::watch::WatchRequest;
use crate::engine::Target;
use crate::output::Output;
use crate::server::ServeRequest;

/// The target of every action: `--root`, `--apps-dir`, the port range, and `output` for
/// messages and progress.
pub fn target(common: &CommonArgs, port_range: PortRange, output: Output) -> Target {
    Target::new(
        common.root.clone(),
        &common.apps_dir,
        port_range,
        Arc::new(output),
    )
}

/// `--wait`: wait for another pyapp-install holding the lock, or fail at once.
pub fn when_held(wait: bool) -> WhenHeld {
    if wait {
        WhenHeld::Wait
    } else {
        WhenHeld::FailFast
    }
}

/// `pyapp-install BUNDLE [OPTIONS]`.
pub fn install_request(args: &InstallArgs) -> Result<InstallRequest> {
    let bundle = args
        .bundle
        .clone()
        .context("no bundle given (the command line parser should have refused)")?;
    Ok(InstallRequest {
        bundle,
        python: args.python.clone(),
        dry_run: args.dry_run,
        when_held: when_held(args.wait),
        options: install::options(!args.no_verify_record, args.compile_bytecode),
        user: args.user.clone(),
        set: args.set.clone(),
        config: args.config.clone(),
        trusted_keys: args.trusted_keys.clone(),
        rules: Rules {
            follow_policy: false,
            allow_major: false,
            allow_downgrade: args.allow_downgrade,
            stage_only: args.stage_only,
        },
        web: args.web.map(Into::into),
        max_installed_size: args
            .max_installed_size
            .unwrap_or(DEFAULT_MAX_INSTALLED_SIZE),
    })
}

/// `pyapp-install watch DIR [OPTIONS]`.
pub fn watch_request(args: &WatchArgs) -> WatchRequest {
    WatchRequest {
        dir: args.dir.clone(),
        python: args.python.clone(),
        trusted_keys: args.trusted_keys.clone(),
        compile_bytecode: args.compile_bytecode,
        allow_major: args.allow_major,
        allow_downgrade: args.allow_downgrade,
        max_installed_size: args
            .max_installed_size
            .unwrap_or(DEFAULT_MAX_INSTALLED_SIZE),
    }
}

/// The most an uploaded bundle may be without `--max-upload`: 1 GiB.
const DEFAULT_MAX_UPLOAD: u64 = 1 << 30;

/// `pyapp-install serve [OPTIONS]`.
pub fn serve_request(args: &ServeArgs) -> ServeRequest {
    let address = args
        .http_address
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
    ServeRequest {
        socket: args.socket.clone(),
        http: args
            .http
            .map(|port| std::net::SocketAddr::new(address, port)),
        state_dir: args.state_dir.clone(),
        max_upload: args.max_upload.unwrap_or(DEFAULT_MAX_UPLOAD),
        python: args.python.clone(),
        trusted_keys: args.trusted_keys.clone(),
        rate: args.rate,
    }
}
