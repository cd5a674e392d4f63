//! The `.pyapp` bundle format, version 1, as specified in `spec/FORMAT.md`.
//!
//! Shared by `pyapp-build` (which writes bundles) and `pyapp-install` (which reads them):
//! the metadata and configuration schemas with their validation, the manifest, the
//! deterministic writer, the safe reader, and wheel file names and compatibility tags.

pub mod calendar;
pub mod command;
pub mod config_spec;
pub mod manifest;
// Out of alphabetical order only so that this line merges apart from `interpreter`'s.
pub mod layout;
pub mod metadata;
pub mod names;
pub mod reader;
pub mod signature;
pub mod tags;
pub mod target;
pub mod wheel_name;
pub mod writer;
pub mod yaml;

/// The bundle format version this crate reads and writes.
pub const FORMAT_VERSION: u32 = 1;
