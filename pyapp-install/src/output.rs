//! What the user sees: human messages and progress bars on stderr (quiet with `--quiet`,
//! bars only on a terminal, colour only where `NO_COLOR` allows), data (`--json`) on stdout.
//! Steps (`-v`) and external commands (`-vv`) are `log` records, see pyapp-cli.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pyapp_cli::{Level, Messages};
use serde::Serialize;

use crate::progress::{Progress, Task};

/// Where messages, progress and data go for one command.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    messages: Messages,
    json: bool,
}

impl Output {
    /// Messages at `level`; `json` makes stdout carry a JSON document.
    pub fn new(level: Level, json: bool) -> Self {
        Output {
            messages: Messages::new(level),
            json,
        }
    }

    /// Whether the command's result goes to stdout as JSON.
    pub fn json(&self) -> bool {
        self.json
    }

    /// `error: MESSAGE` (and `hint: HINT`) on stderr, even with `--quiet`: for a failure
    /// that does not end the command.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        self.messages.error(message, hint);
    }

    /// With `--json`, prints `value` as one line of JSON on stdout (the command's result).
    pub fn report(&self, value: &impl Serialize) -> Result<()> {
        if self.json {
            self.print_json(value)?;
        }
        Ok(())
    }

    /// Prints `value` as one line of JSON on stdout.
    pub fn print_json(&self, value: &impl Serialize) -> Result<()> {
        let text = serde_json::to_string(value).context("failed to encode the JSON output")?;
        pyapp_cli::print_stdout(&format!("{text}\n"))
    }
}

impl Progress for Output {
    /// A one-line message on stderr.
    fn note(&self, message: &str) {
        self.messages.note(message);
    }

    /// `warning: MESSAGE` on stderr.
    fn warning(&self, message: &str) {
        self.messages.warning(message);
    }

    /// A progress bar on stderr, hidden unless stderr is a terminal.
    fn task(&self, what: &'static str, len: u64) -> Box<dyn Task> {
        if self.messages.level() < Level::Normal || !std::io::stderr().is_terminal() {
            return Box::new(ProgressBar::hidden());
        }
        let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>12} [{bar:30}] {pos}/{len} {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(what);
        Box::new(bar)
    }
}

impl Task for ProgressBar {
    fn advance(&self, done: u64) {
        self.inc(done);
    }

    fn finish(&self) {
        self.finish_and_clear();
    }
}
