//! End-to-end tests: the real pyapp-build and pyapp-install binaries, real wheels from
//! PyPI (downloaded by tests/run), real Python.

#![allow(clippy::unwrap_used)]

mod ansible;
mod attacks;
mod build;
mod cli;
mod config;
mod console;
mod console_browser;
mod deb;
mod faults;
mod hardening;
mod harness;
mod hooks;
mod hostile;
mod install;
mod layers;
mod lifecycle;
mod notifications;
mod real_apps;
mod reference_installer;
mod signatures;
mod status;
mod store;
mod units;
mod watch;
mod web;
mod zero_downtime;
