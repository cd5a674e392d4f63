//! The exit status of a failed command, decided in one place for both binaries: 1 when the
//! error is the user's or the input's fault (a [`Refusal`], a bad bundle or project, a
//! filesystem refusal such as a planted link or a held lock, a full disk), 2 for anything
//! unexpected. [`fail`] prints the failure the same way for both.

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

/// Prints `err` (a full disk said as such) as the failure line (`--json`: the failure
/// object on stdout) and returns its exit status; an unexpected failure gets
/// `unexpected_hint`.
pub fn fail(
    messages: &Messages,
    err: anyhow::Error,
    json: bool,
    unexpected_hint: Option<&str>,
) -> ExitCode {
    let err = crate::disk_full::explain(err);
    let failure = classify(&err);
    let hint = failure.hint.as_deref().or(if failure.status == 2 {
        unexpected_hint
    } else {
        None
    });
    messages.failure(&format!("{err:#}"), hint, failure.status, json);
    ExitCode::from(failure.status)
}
