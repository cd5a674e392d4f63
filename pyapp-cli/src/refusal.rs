//! `Refusal`: an error that is the user's or the input's fault (bad input, a failed check,
//! a held lock). Both binaries map it to exit status 1 and print its hint; every other
//! error is unexpected and exits with 2.

use std::fmt;

/// A refusal to go on, with an optional next step for the user.
#[derive(Debug)]
pub struct Refusal {
    message: String,
    hint: Option<String>,
}

impl Refusal {
    /// A refusal with this one-line message.
    pub fn new(message: impl Into<String>) -> Self {
        Refusal {
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what the user can do about it, printed as `hint: ...`.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// What the user can do about it, if anything.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Refusal {}

/// The refusal anywhere in this error's chain, if there is one.
pub fn find_refusal(error: &anyhow::Error) -> Option<&Refusal> {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Refusal>())
}
