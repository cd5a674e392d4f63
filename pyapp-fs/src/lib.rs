//! pyapp-fs: the filesystem calls pyapp-install makes as root inside directories an app's
//! user may write to. Nothing here follows a link where one could have been planted, every
//! error names its path ([`FsError`]), and writes that must survive a crash are atomic.
//!
//! - the safe calls at the crate root: no-follow directory creation, atomic writes and
//!   symlink switches, removal, listing, directory syncs;
//! - [`ToSync`]: durability for what the install wrote, only;
//! - [`lock`]: the per-app advisory lock;
//! - [`fault`]: the deterministic crash points the fault tests kill at;
//! - [`state`]: the versioned JSON state files, read with one rule for their version.

mod durable;
mod error;
pub mod fault;
pub mod lock;
mod safe;
pub mod state;

pub use durable::ToSync;
pub use error::{FsError, Result};
pub use safe::{
    check_dir_or_missing, ensure_dir, exists, is_real_dir, list_dir, read_link_optional,
    read_optional, remove_dir_all_if_exists, remove_file_if_exists, rename, replace_symlink,
    sync_dir, write_atomic, write_atomic_in,
};
