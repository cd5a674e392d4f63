//! Verbosity levels and the prefixed lines a user reads on stderr. Steps and external
//! commands are `log` records (so any module can report them without an output handle);
//! everything else goes through [`Messages`].

use std::io::Write;

use anstyle::{AnsiColor, Style};

/// `-q` and `-v` as both binaries take them.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Verbosity {
    /// No messages or progress on stderr; errors still go there.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Say more: -v names each step as it ends with its duration, -vv also every external
    /// command run (systemctl, hooks, pip).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

/// How much goes to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Errors only (`--quiet`).
    Quiet,
    /// Results, notes, warnings and progress bars (the default).
    Normal,
    /// Also each step (`-v`).
    Steps,
    /// Also every external command (`-vv`).
    Commands,
}

impl Verbosity {
    /// The level these flags ask for.
    pub fn level(&self) -> Level {
        match (self.quiet, self.verbose) {
            (true, _) => Level::Quiet,
            (false, 0) => Level::Normal,
            (false, 1) => Level::Steps,
            (false, _) => Level::Commands,
        }
    }
}

const ERROR: Style = AnsiColor::Red.on_default().bold();
const WARNING: Style = AnsiColor::Yellow.on_default().bold();
const HINT: Style = AnsiColor::Cyan.on_default().bold();
const DETAIL: Style = Style::new().dimmed();

/// Writes the user's lines on stderr at a [`Level`].
#[derive(Debug, Clone, Copy)]
pub struct Messages {
    level: Level,
}

impl Messages {
    pub fn new(level: Level) -> Self {
        Messages { level }
    }

    pub fn level(&self) -> Level {
        self.level
    }

    /// A plain line (not shown with `--quiet`).
    pub fn note(&self, message: &str) {
        if self.level >= Level::Normal {
            line(None, message);
        }
    }

    /// `warning: MESSAGE` (not shown with `--quiet`).
    pub fn warning(&self, message: &str) {
        if self.level >= Level::Normal {
            line(Some(("warning:", WARNING)), message);
        }
    }

    /// `hint: MESSAGE`, a next step after a success (not shown with `--quiet`).
    pub fn hint(&self, message: &str) {
        if self.level >= Level::Normal {
            line(Some(("hint:", HINT)), message);
        }
    }

    /// A failed command: the `error:`/`hint:` lines and, with `--json`, the same as one
    /// JSON line on stdout, `{"error": MESSAGE, "hint": HINT or null, "status": STATUS}`,
    /// so that a machine reading stdout never gets nothing.
    pub fn failure(&self, report: &crate::exit::FailureReport, json: bool) {
        self.error(&report.error, report.hint.as_deref());
        if json {
            // The failure is said on stderr already; nothing is left to do if stdout is gone.
            if let Ok(value) = serde_json::to_string(report) {
                let _ = crate::print_stdout(&format!("{value}\n"));
            }
        }
    }

    /// `error: MESSAGE` and, when there is a next step, `hint: HINT`; always shown.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        line(Some(("error:", ERROR)), message);
        if let Some(hint) = hint {
            line(Some(("hint:", HINT)), hint);
        }
    }
}

/// Sends the `log` records of this level to stderr: `log::info!` for a step (`-v`),
/// `log::debug!` for an external command (`-vv`). Call once, first thing in `main`.
pub fn init_log(level: Level) {
    let max = match level {
        Level::Quiet | Level::Normal => log::LevelFilter::Off,
        Level::Steps => log::LevelFilter::Info,
        Level::Commands => log::LevelFilter::Debug,
    };
    // A second call (tests) keeps the first logger, which is just as good.
    let _ = log::set_logger(&StderrLog);
    log::set_max_level(max);
}

/// The logger [`init_log`] installs.
struct StderrLog;

impl log::Log for StderrLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            let prefix = if record.level() <= log::Level::Info {
                "step:"
            } else {
                "run:"
            };
            line(Some((prefix, DETAIL)), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

/// One line on stderr; anstream drops the colour where it does not belong.
fn line(prefix: Option<(&str, Style)>, message: &str) {
    let mut stderr = anstream::stderr().lock();
    // stderr closed or full: there is nowhere left to say so.
    let _ = match prefix {
        Some((prefix, style)) => writeln!(stderr, "{style}{prefix}{style:#} {message}"),
        None => writeln!(stderr, "{message}"),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_levels() {
        let at = |quiet, verbose| Verbosity { quiet, verbose }.level();
        assert_eq!(at(true, 0), Level::Quiet);
        assert_eq!(at(false, 0), Level::Normal);
        assert_eq!(at(false, 1), Level::Steps);
        assert_eq!(at(false, 3), Level::Commands);
    }
}
