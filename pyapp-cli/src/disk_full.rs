//! A full disk is not a bug in either binary but a state of the machine the user can fix:
//! wherever a write fails with ENOSPC, [`explain`] turns the error into one refusal
//! (exit status 1) that says so, names the file being written and says what to do.

use std::io;

use crate::refusal::Refusal;

/// What the C library and Python say for ENOSPC, for errors that carry it only as text
/// (a subprocess's output, an error type without a source).
const ENOSPC_TEXT: &str = "No space left on device";

/// `error` itself, unless the disk being full is what caused it: then the refusal
/// `disk full: no space left on device while writing `PATH``, with a hint. Nothing else
/// of the error is lost: a failed install has already removed what it staged.
pub fn explain(error: anyhow::Error) -> anyhow::Error {
    let causes: Vec<&(dyn std::error::Error + 'static)> = error.chain().collect();
    let Some(full) = causes.iter().position(|cause| is_enospc(*cause)) else {
        return error;
    };
    // The path is in the nearest message above the cause (or in the cause) that quotes one.
    let path = causes[..=full]
        .iter()
        .rev()
        .find_map(|cause| quoted_path(&cause.to_string()).map(str::to_owned));
    let message = match path {
        Some(path) => format!("disk full: no space left on device while writing `{path}`"),
        None => format!("disk full: no space left on device ({error:#})"),
    };
    Refusal::new(message)
        .with_hint(
            "free some space on that filesystem (`df -h` shows how much is left), then run \
             the same command again; what was installed before is still in place",
        )
        .into()
}

/// Whether `cause` is ENOSPC, as an error value or as the text of one.
fn is_enospc(cause: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(err) = cause.downcast_ref::<io::Error>() {
        return err.raw_os_error() == Some(nix::libc::ENOSPC);
    }
    if let Some(errno) = cause.downcast_ref::<nix::errno::Errno>() {
        return *errno == nix::errno::Errno::ENOSPC;
    }
    cause.to_string().contains(ENOSPC_TEXT)
}

/// The first path quoted in backticks in `message`, the way every I/O error of
/// pyapp-install names its file.
fn quoted_path(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    let (path, _) = rest.split_once('`')?;
    path.starts_with('/').then_some(path)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::refusal::find_refusal;
    use anyhow::Context;

    fn enospc() -> io::Error {
        io::Error::from_raw_os_error(nix::libc::ENOSPC)
    }

    #[test]
    fn a_write_that_found_the_disk_full_is_a_refusal_naming_the_file() {
        let error = Err::<(), _>(enospc())
            .context("failed to write `/applications/hello/releases/.staging-x/a.py`")
            .context("installing hello")
            .unwrap_err();
        let explained = explain(error);
        assert_eq!(
            explained.to_string(),
            "disk full: no space left on device while writing \
             `/applications/hello/releases/.staging-x/a.py`"
        );
        let hint = find_refusal(&explained).and_then(Refusal::hint);
        assert!(hint.is_some_and(|hint| hint.starts_with("free some space")));
    }

    #[test]
    fn enospc_known_only_as_text_is_recognised_too() {
        let error = anyhow::anyhow!(
            "python -m venv failed for `/applications/hello/releases/x/venv`: OSError: [Errno 28] No space left on device"
        );
        assert_eq!(
            explain(error).to_string(),
            "disk full: no space left on device while writing `/applications/hello/releases/x/venv`"
        );
    }

    #[test]
    fn other_errors_are_left_as_they_are() {
        let error = Err::<(), _>(io::Error::from_raw_os_error(nix::libc::EACCES))
            .context("failed to write `/x`")
            .unwrap_err();
        let explained = explain(error);
        assert!(find_refusal(&explained).is_none());
        assert!(explained.to_string().starts_with("failed to write `/x`"));
    }
}
