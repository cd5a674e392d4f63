//! [`FsError`]: what can go wrong on the filesystem, each case naming its path. Two cases
//! are the user's to fix, not bugs (a link or file planted where a directory belongs, an
//! app locked by another run): [`FsError::is_refusal`] says which, for the exit status.

use std::io;
use std::path::{Path, PathBuf};

/// A failed filesystem operation.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// A system call failed; `action` says what was being done (`inspect`, `create directory`…).
    #[error("failed to {action} `{}`", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A rename failed.
    #[error("failed to rename `{}` to `{}`", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A link, or something other than a directory, where a directory must be.
    #[error("`{}` is {}; refusing to follow or replace it", path.display(), if *link { "a symbolic link" } else { "not a directory" })]
    InTheWay { path: PathBuf, link: bool },
    /// Another process holds the app's lock.
    #[error("{app} is locked by {holder} (another pyapp-install is changing it; lock `{}`)", path.display())]
    Locked {
        app: String,
        holder: String,
        path: PathBuf,
    },
    /// A state file that is not valid JSON of its layout.
    #[error("`{}` is not a valid {what}", path.display())]
    InvalidState {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A state file whose layout version this build does not read.
    #[error("`{}` {}", path.display(), match found {
        Some(found) if found.parse::<u64>().is_ok_and(|found| found > u64::from(*supported)) =>
            format!("has {field} {found}, newer than this build supports ({supported})"),
        Some(found) => format!("has {field} {found} (this build supports {supported})"),
        None => format!("has no valid {field} (this build supports {supported})"),
    })]
    StateFormat {
        path: PathBuf,
        field: &'static str,
        found: Option<String>,
        supported: u32,
    },
    /// A path that must have a parent directory has none.
    #[error("`{}` has no parent directory", path.display())]
    NoParent { path: PathBuf },
}

impl FsError {
    /// The error of `action` on `path`, for `map_err`.
    pub fn io<E: Into<io::Error>>(action: &'static str, path: &Path) -> impl FnOnce(E) -> FsError {
        let path = path.to_owned();
        move |source| FsError::Io {
            action,
            path,
            source: source.into(),
        }
    }

    /// Whether this is the user's to fix (exit status 1) rather than unexpected.
    pub fn is_refusal(&self) -> bool {
        matches!(self, FsError::InTheWay { .. } | FsError::Locked { .. })
    }

    /// What the user can do about a refusal.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            FsError::InTheWay { .. } => {
                Some("move it away (it may have been planted), then run pyapp-install again")
            }
            FsError::Locked { .. } => {
                Some("wait for it to finish, or run again with --wait to queue behind it")
            }
            _ => None,
        }
    }
}

/// The result of a filesystem operation.
pub type Result<T, E = FsError> = std::result::Result<T, E>;
