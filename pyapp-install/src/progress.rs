//! How an operation tells its caller what it is doing, without printing: the command line
//! draws messages and progress bars on stderr (`crate::output::Output`), the management API
//! streams the same calls as server-sent events (`crate::server`). [`Silent`] drops them,
//! for work done on behalf of another operation and for tests.

/// Receives an operation's messages and the progress of its long steps.
pub trait Progress: Send + Sync {
    /// A one-line message for the user (what was done, what to do next).
    fn note(&self, message: &str);

    /// Something went not as planned, but the operation goes on.
    fn warning(&self, message: &str);

    /// A step of `len` units begins (`what`: "extracting", "installing"); the returned
    /// task is advanced as units are done, from any thread, and finished at the end.
    fn task(&self, what: &'static str, len: u64) -> Box<dyn Task>;
}

/// The progress of one step of known length.
pub trait Task: Send + Sync {
    /// `done` more units are done.
    fn advance(&self, done: u64);

    /// The step is over.
    fn finish(&self);
}

/// Progress nobody watches.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn note(&self, _message: &str) {}

    fn warning(&self, _message: &str) {}

    fn task(&self, _what: &'static str, _len: u64) -> Box<dyn Task> {
        Box::new(Silent)
    }
}

impl Task for Silent {
    fn advance(&self, _done: u64) {}

    fn finish(&self) {}
}
