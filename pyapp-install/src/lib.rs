//! pyapp-install: verify a `.pyapp` bundle and install it as a release of its app, offline:
//! extract it, build the venv natively from the bundled wheels, switch `current` atomically.
//! One module per step; `commands::run` is what the binary calls.

pub mod activation;
pub mod app_env;
pub mod app_tree;
pub mod app_user;
pub mod cli;
pub mod commands;
pub mod config;
pub mod config_file;
pub mod disk_full;
pub mod fault;
pub mod health;
pub mod hook_results;
pub mod hooks;
pub mod install;
pub use pyapp_bundle::interpreter;
pub mod list;
pub mod lock;
pub mod logs;
pub mod output;
pub mod ownership;
pub mod policy;
pub mod ports;
pub mod privilege;
pub mod receipt;
pub mod refusal;
pub mod release;
pub mod remove;
pub mod rollback;
pub mod run;
pub mod safe_fs;
pub mod status;
pub mod store;
pub mod systemd;
pub mod trust;
pub mod units;
pub mod venv;
pub mod watch;
pub mod web;
pub mod wheel_install;
