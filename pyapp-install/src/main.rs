//! The `pyapp-install` binary: parses the arguments, runs the action and maps the result
//! to the exit status (0 done, 1 refused: the user's or the bundle's fault, 2 unexpected,
//! a panic included).

use std::process::ExitCode;

use nix::sys::stat::{umask, Mode};
use pyapp_cli::Messages;
use pyapp_install::cli::Cli;
use pyapp_install::commands;

fn main() -> ExitCode {
    pyapp_cli::guard(|| {
        // Releases must be readable by the app's user whatever umask root's shell has:
        // every file and directory pyapp-install makes gets its mode from this, or sets
        // it itself.
        umask(Mode::from_bits_truncate(0o022));
        let cli: Cli = match pyapp_cli::parse_args() {
            Ok(cli) => cli,
            Err(code) => return code,
        };
        let level = cli.common.verbosity.level();
        let json = cli.common.json;
        pyapp_cli::init_log(level);
        match commands::run(cli) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => pyapp_cli::fail(&Messages::new(level), err, json, None),
        }
    })
}
