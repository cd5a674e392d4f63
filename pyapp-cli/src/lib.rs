//! What both command lines share, so that `pyapp-build` and `pyapp-install` feel like one
//! tool:
//!
//! - [`Refusal`]: an error that is the user's fault (exit 1), with an optional `hint:`;
//! - [`fail`]: the one mapping of an error to exit status 1 or 2 and its failure line;
//! - [`Verbosity`]: `-q/--quiet` (errors only) and `-v`/`-vv` (each step, then every
//!   external command), flattened into each binary's arguments;
//! - [`Messages`]: the `error:`, `warning:` and `hint:` lines on stderr, coloured only when
//!   stderr is a terminal and neither `NO_COLOR` nor `CLICOLOR=0` is set (anstream decides);
//! - [`StepLog`]: the steps of a long command with their durations, at `-v`;
//! - [`systemd_calendar_refusal`]: `systemd-analyze calendar`'s word on a schedule;
//! - [`Generate`]: shell completions and roff man pages generated from the clap definitions
//!   (`completions SHELL`, `man [--out-dir DIR]`), so they never drift from `--help`.

mod calendar;
mod disk_full;
mod exit;
mod generate;
mod messages;
mod refusal;
mod steps;

pub use calendar::systemd_calendar_refusal;
pub use disk_full::explain as explain_disk_full;
pub use exit::{classify, fail, guard, print_stdout, Failure, FailureReport};
pub use generate::Generate;
pub use messages::{init_log, Level, Messages, Verbosity};
pub use refusal::{find_refusal, Refusal};
pub use steps::StepLog;

/// The binary's arguments, or the exit status after clap printed why not: `--help` and
/// `--version` succeed, bad arguments are the user's fault (1, where clap's usual 2 would
/// mean "unexpected" here).
pub fn parse_args<P: clap::Parser>() -> Result<P, std::process::ExitCode> {
    P::try_parse().map_err(|err| {
        // Nowhere to report a failure to print the usage.
        let _ = err.print();
        if err.use_stderr() {
            std::process::ExitCode::from(1)
        } else {
            std::process::ExitCode::SUCCESS
        }
    })
}
