//! The steps of a long command, named with their duration at `-v` as each one ends.

use std::time::Instant;

/// The step under way, if any.
#[derive(Debug, Default)]
pub struct StepLog {
    current: Option<(String, Instant)>,
}

impl StepLog {
    pub fn new() -> Self {
        StepLog::default()
    }

    /// Ends the step under way (logging it) and starts `name`.
    pub fn begin(&mut self, name: impl Into<String>) {
        self.end();
        self.current = Some((name.into(), Instant::now()));
    }

    /// Ends the step under way: `step: NAME (12 ms)` at `-v`. A step that failed is
    /// never ended: the error says what happened instead.
    pub fn end(&mut self) {
        if let Some((name, started)) = self.current.take() {
            log::info!("{name} ({} ms)", started.elapsed().as_millis());
        }
    }
}
