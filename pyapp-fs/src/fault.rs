//! Deterministic crash points for the fault tests (`tests/it/faults/`): at each step of
//! an install, upgrade, rollback or removal whose interruption must be survivable,
//! [`point`] kills the process with SIGKILL when `PYAPP_INSTALL_KILL_AT` names that step,
//! and at the steps where a full disk must be survivable [`disk_full_at`] fails the write
//! that follows with ENOSPC when `PYAPP_INSTALL_DISK_FULL_AT` names it. Without the
//! variables they do nothing (spec/SECURITY.md, "Faults").

use nix::sys::signal::{raise, Signal};

/// The environment variable naming the point at which to die.
pub const KILL_AT_VAR: &str = "PYAPP_INSTALL_KILL_AT";

/// The environment variable naming the point at which the disk is full.
pub const DISK_FULL_AT_VAR: &str = "PYAPP_INSTALL_DISK_FULL_AT";

/// Every point, in the order an install, a rollback and a removal reach them.
pub const POINTS: [&str; 20] = [
    "extracted",
    "store-unpacked",
    "mid-link",
    "store-published",
    "staged",
    "after-staging",
    "after-config",
    "after-stop",
    "after-switch",
    "mid-prune",
    "before-receipt",
    "after-receipt",
    "revert-after-stop",
    "revert-after-switch",
    "rollback-before-receipt",
    "remove-after-units",
    "remove-after-current",
    "mid-remove",
    "remove-before-receipt",
    "mid-gc",
];

/// Dies at once, as by `kill -9`, when `PYAPP_INSTALL_KILL_AT` equals `name`: no
/// destructor, no cleanup, exactly what a crash or a power cut leaves behind.
pub fn point(name: &str) {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var_os(KILL_AT_VAR).is_some_and(|value| value == name) {
        // raise() returns only if the signal could not be sent; then there is nothing to do.
        let _ = raise(Signal::SIGKILL);
    }
}

/// Fails with ENOSPC, as the next write would on a full disk, when
/// `PYAPP_INSTALL_DISK_FULL_AT` equals `name` (one of [`POINTS`]).
pub fn disk_full_at(name: &str) -> std::io::Result<()> {
    debug_assert!(POINTS.contains(&name), "unknown fault point {name}");
    if std::env::var_os(DISK_FULL_AT_VAR).is_some_and(|value| value == name) {
        return Err(std::io::Error::from_raw_os_error(nix::libc::ENOSPC));
    }
    Ok(())
}
