//! pyapp-venv: a Python environment for an app without pip or network, the way uv builds
//! one: find and query the interpreter, create the venv, install wheels into it natively,
//! sharing unpacked wheels between venvs through the store.
//!
//! - [`interpreter`]: discovery on PATH and one query of a chosen interpreter;
//! - [`venv`]: the venv's layout and `pyvenv.cfg`, made without running Python;
//! - [`wheel_install`]: wheels verified, placed, their scripts and RECORD written;
//! - [`store`]: `APPS/.store`, shared wheels unpacked once and hard-linked.

pub mod interpreter;
pub mod store;
pub mod venv;
pub mod wheel_install;
