//! Deterministic crash points for the fault tests (`tests/it/faults/`): at each step of
//! an install, upgrade, rollback or removal whose interruption must be survivable,
//! [`point`] kills the process with SIGKILL when `PYAPP_INSTALL_KILL_AT` names that step.
//! Without the variable it does nothing (spec/SECURITY.md, "Faults").

use nix::sys::signal::{raise, Signal};

/// The environment variable naming the point at which to die.
pub const KILL_AT_VAR: &str = "PYAPP_INSTALL_KILL_AT";

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
