//! Runs the action the command line asks for; `main` maps its result to an exit status.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::engine::config::ConfigSetRequest;
use crate::engine::gc::GcRequest;
use crate::engine::logs::LogsRequest;
use crate::engine::remove::RemoveRequest;
use crate::engine::rollback::RollbackRequest;
use crate::engine::run::RunRequest;
use crate::output::Output;
use crate::settings::{self, when_held};
use pyapp_cli::Refusal;

mod config;
mod gc;
mod install;
mod list;
mod logs;
mod notify;
mod remove;
mod rollback;
mod run;
mod serve;
mod status;
mod watch;

/// Runs `cli`'s action.
pub fn run(cli: Cli) -> Result<()> {
    if let (Some(command), Some(bundle)) = (&cli.command, &cli.install.bundle) {
        return Err(Refusal::new(format!(
            "give a bundle to install or an action, not both (`{}` and `{}`)",
            bundle.display(),
            command.name()
        ))
        .with_hint("`pyapp-install --help` shows the usage")
        .into());
    }
    let output = Output::new(cli.common.verbosity.level(), cli.common.json);
    let target = settings::target(&cli.common, cli.install.port_range, output);
    match cli.command {
        Some(Command::List) => list::run(&target, &output),
        Some(Command::Rollback { app, wait }) => rollback::run(
            &RollbackRequest {
                app,
                when_held: when_held(wait),
            },
            &target,
            &output,
        ),
        Some(Command::Remove { app, purge, wait }) => remove::run(
            &RemoveRequest {
                app,
                purge,
                when_held: when_held(wait),
            },
            &target,
            &output,
        ),
        Some(Command::Config {
            app,
            set,
            config,
            wait,
        }) => config::run(
            &ConfigSetRequest {
                app,
                set,
                file: config,
                when_held: when_held(wait),
            },
            &target,
            &output,
        ),
        Some(Command::Run { app, service }) => run::run(&RunRequest { app, service }, &target),
        Some(Command::Status { app }) => status::run(&app, &target, &output),
        Some(Command::Logs {
            app,
            follow,
            lines,
            since,
        }) => logs::run(
            &LogsRequest {
                app,
                follow,
                lines,
                since,
            },
            &target,
            &output,
        ),
        Some(Command::Generate(generate)) => {
            for page in generate.run(Cli::command())? {
                pyapp_cli::print_stdout(&format!("{}\n", page.display()))?;
            }
            Ok(())
        }
        Some(Command::Watch(args)) => watch::run(&args, &target, &output),
        Some(Command::Serve(args)) => serve::run(&args, &target, &output),
        Some(Command::Notify(args)) => notify::run(&args, &target, &output),
        Some(Command::Gc { dry_run, wait }) => {
            gc::run(&GcRequest { dry_run, wait }, &target, &output)
        }
        None => install::run(&cli.install, &target, &output),
    }
}
