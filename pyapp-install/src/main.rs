//! The `pyapp-install` binary: parses the arguments, runs the action and maps the result
//! to the exit status (0 done, 1 refused: the user's or the bundle's fault, 2 unexpected).

use std::process::ExitCode;

use clap::Parser;
use nix::sys::stat::{umask, Mode};
use pyapp_install::cli::Cli;
use pyapp_install::commands;
use pyapp_install::disk_full;
use pyapp_install::refusal::find_refusal;

fn main() -> ExitCode {
    // Releases must be readable by the app's user whatever umask root's shell has: every
    // file and directory pyapp-install makes gets its mode from this, or sets it itself.
    umask(Mode::from_bits_truncate(0o022));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; bad arguments are the
            // user's fault (1, not clap's usual 2, which means "unexpected" here).
            let _ = err.print();
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let err = disk_full::explain(err);
            eprintln!("error: {err:#}");
            match find_refusal(&err) {
                Some(refusal) => {
                    if let Some(hint) = refusal.hint() {
                        eprintln!("hint: {hint}");
                    }
                    ExitCode::from(1)
                }
                None => ExitCode::from(2),
            }
        }
    }
}
