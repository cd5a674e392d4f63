//! Progress on stderr: one spinner line naming the current step, shown only when stderr
//! is a terminal and `--quiet` was not given; at `-v` each step is also logged with its
//! duration as it ends.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use pyapp_cli::{Level, StepLog};

/// The build's steps as a counted progress line.
pub struct Steps {
    bar: ProgressBar,
    log: RefCell<StepLog>,
}

impl Steps {
    pub fn new(level: Level, total: u64) -> Steps {
        let visible = level >= Level::Normal && std::io::stderr().is_terminal();
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        if let Ok(style) = ProgressStyle::with_template("{spinner} [{pos}/{len}] {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        Steps {
            bar,
            log: RefCell::new(StepLog::new()),
        }
    }

    /// Start the next step.
    pub fn step(&self, message: &str) {
        self.log.borrow_mut().begin(message);
        self.bar.inc(1);
        self.bar.set_message(message.to_string());
    }

    pub fn finish(&self) {
        self.log.borrow_mut().end();
        self.bar.finish_and_clear();
    }
}
