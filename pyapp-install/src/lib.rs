//! pyapp-install: verify a `.pyapp` bundle and install it as a release of its app, offline.
//!
//! Layers, each importing only those below it (ARCHITECTURE.md):
//! - [`cli`] (clap types only) and [`commands`] (one per subcommand, the only printing layer);
//! - [`engine`]: the operations as typed functions (install pipeline, rollback, remove, …);
//! - [`app`] (on-disk state of an app) and [`system`] (systemd, web servers, users, hooks);
//! - the crates pyapp-venv, pyapp-fs and pyapp-bundle.

pub mod app;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod output;
pub mod progress;
pub mod settings;
pub mod system;
