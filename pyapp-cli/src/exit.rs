//! The exit status of a failed command, decided in one place for both binaries: 1 when the
//! error is the user's or the input's fault (a [`Refusal`], a bad bundle or project, a
//! filesystem refusal such as a planted link or a held lock, a full disk), 2 for anything
//! unexpected. [`fail`] prints the failure the same way for both, and [`guard`] makes a
//! panic one more unexpected failure (2), not Rust's 101: a binary ends with 0, 1 or 2
//! and nothing else (`pyapp-install run`, which becomes the app's process, aside).

use std::io::Write;
use std::panic::UnwindSafe;
use std::process::ExitCode;

use pyapp_bundle::writer::WriteError;
use pyapp_fs::FsError;

use crate::messages::Messages;
use crate::refusal::Refusal;

/// How a failed command ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// 1 (refused) or 2 (unexpected).
    pub status: u8,
    /// What the user can do next.
    pub hint: Option<String>,
}

/// Classifies `err` by the first cause in its chain that is the user's to fix.
pub fn classify(err: &anyhow::Error) -> Failure {
    for cause in err.chain() {
        if let Some(refusal) = cause.downcast_ref::<Refusal>() {
            return refused(refusal.hint());
        }
        if let Some(fs) = cause.downcast_ref::<FsError>() {
            if fs.is_refusal() {
                return refused(fs.hint());
            }
        }
        let input_error = cause.is::<pyapp_bundle::yaml::SchemaError>()
            || cause.is::<pyapp_venv::interpreter::InterpreterError>()
            || cause.downcast_ref::<WriteError>().is_some_and(|err| {
                !matches!(
                    err,
                    WriteError::Io { .. }
                        | WriteError::Zip { .. }
                        | WriteError::BadSignature(_)
                        | WriteError::SignatureTooLarge { .. }
                )
            });
        if input_error {
            return refused(None);
        }
    }
    Failure {
        status: 2,
        hint: None,
    }
}

fn refused(hint: Option<&str>) -> Failure {
    Failure {
        status: 1,
        hint: hint.map(str::to_owned),
    }
}

/// A failed operation as `--json` prints it and the management API answers it:
/// `{"error": MESSAGE, "hint": HINT or null, "status": 1 or 2}` (FORMAT.md 12).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FailureReport {
    pub error: String,
    pub hint: Option<String>,
    pub status: u8,
}

impl FailureReport {
    /// `err` (a full disk said as such) classified; an unexpected failure gets
    /// `unexpected_hint`.
    pub fn of(err: anyhow::Error, unexpected_hint: Option<&str>) -> FailureReport {
        let err = crate::disk_full::explain(err);
        let failure = classify(&err);
        let hint = failure.hint.or_else(|| {
            (failure.status == 2)
                .then_some(unexpected_hint)
                .flatten()
                .map(str::to_owned)
        });
        FailureReport {
            error: format!("{err:#}"),
            hint,
            status: failure.status,
        }
    }
}

/// Prints `err` (a full disk said as such) as the failure line (`--json`: the failure
/// object on stdout) and returns its exit status; an unexpected failure gets
/// `unexpected_hint`.
pub fn fail(
    messages: &Messages,
    err: anyhow::Error,
    json: bool,
    unexpected_hint: Option<&str>,
) -> ExitCode {
    let report = FailureReport::of(err, unexpected_hint);
    messages.failure(&report, json);
    ExitCode::from(report.status)
}

/// Runs `body`, a binary's whole work, so that it ends with 0, 1 or 2 only: a panic (a
/// bug, or a write to a stdout nobody reads with `println!`) is said as one `error:` line
/// on stderr and is exit status 2.
pub fn guard(body: impl FnOnce() -> ExitCode + UnwindSafe) -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|text| (*text).to_owned())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".to_owned());
        let place = info
            .location()
            .map(|at| format!(" at {}:{}", at.file(), at.line()))
            .unwrap_or_default();
        // Nothing is left to do when stderr is gone too.
        let _ = writeln!(
            std::io::stderr(),
            "error: internal error{place}: {}",
            what.replace('\n', " ")
        );
    }));
    std::panic::catch_unwind(body).unwrap_or(ExitCode::from(2))
}

/// Writes `text` to stdout and flushes it: a stdout that cannot be written (a reader that
/// went away, a full disk) is an error naming it, not a panic.
pub fn print_stdout(text: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("failed to write to stdout")
}
