//! End-to-end tests: the real pyapp-build and pyapp-install binaries, real wheels from
//! PyPI (downloaded by tests/run), real Python.

#![allow(clippy::unwrap_used)]

mod build;
mod config;
mod faults;
mod harness;
mod hooks;
mod hostile;
mod install;
mod lifecycle;
mod reference_installer;
mod signatures;
mod store;
mod units;
