//! What is on disk for an app, read and written by the engine: the per-app tree and the
//! apps directory, the receipt and its releases, assigned ports, the update policy gate,
//! trusted keys, the configuration file and the hooks' last results. Nothing here talks
//! to systemd, creates users or runs a process (that is `system`).

pub mod config_file;
pub mod env;
pub mod hook_results;
pub mod installed;
pub mod policy;
pub mod ports;
pub mod receipt;
pub mod release;
pub mod tree;
pub mod trust;
