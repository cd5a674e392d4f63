//! pyapp-install: verify a `.pyapp` bundle and install it as a release of its app, offline.
//!
//! Layers, each importing only those below it (ARCHITECTURE.md, checked by tests/it/layers.rs):
//! - [`cli`] (clap types only), [`settings`] (arguments → typed requests), [`output`] and
//!   [`commands`] (one per subcommand, the only printing layer);
//! - [`server`]: `serve`, the JSON API and web console over the engine (the only async code);
//! - [`engine`]: the operations as typed functions (install pipeline, rollback, remove, …);
//! - [`system`]: the host (systemd, web servers, users, hooks);
//! - [`app`]: what is on disk for an app;
//! - [`progress`]: how operations report what they are doing;
//! - the crates pyapp-venv, pyapp-fs and pyapp-bundle.

pub mod app;
pub mod cli;
pub mod commands;
pub mod engine;
pub mod output;
pub mod progress;
pub mod server;
pub mod settings;
pub mod system;
