//! The host an app is installed on: systemd units (generated and registered), web server
//! snippets, the app's user, privilege dropping, file ownership, hooks and health checks
//! run as the app user. Each module changes the machine outside the app's tree, or runs
//! something; the engine decides when.

pub mod app_user;
pub mod calendar;
pub mod disk;
pub mod health;
pub mod hooks;
pub mod notify;
pub mod ownership;
pub mod packages;
pub mod privilege;
pub mod systemd;
pub mod unit_names;
pub mod units;
pub mod web;
