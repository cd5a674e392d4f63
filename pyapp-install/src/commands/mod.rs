//! Runs the action the command line asks for; `main` maps its result to an exit status.

use anyhow::Result;
use clap::CommandFactory;

use crate::cli::{Cli, Command};
use crate::engine::gc::GcRequest;
use crate::engine::logs::LogsRequest;
use crate::engine::{config, list, logs, remove, rollback, run, status};
use crate::output::Output;
use crate::settings::{self, when_held};
use crate::system::systemd::Systemd;
use pyapp_cli::Refusal;

mod gc;
mod install;
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
    let apps = cli.common.apps();
    match cli.command {
        Some(Command::List) => list::list(&apps, &output),
        Some(Command::Rollback { app, wait }) => rollback::rollback(
            &cli.common.root(),
            &apps,
            &app,
            cli.install.port_range,
            when_held(wait),
            &output,
        ),
        Some(Command::Remove { app, purge, wait }) => remove::remove(
            &cli.common.root(),
            &apps,
            &app,
            purge,
            cli.install.port_range,
            when_held(wait),
            &output,
        ),
        Some(Command::Config {
            app,
            set,
            config,
            wait,
        }) => config::config(
            &apps,
            &app,
            &set,
            config.as_deref(),
            &Systemd::detect(&cli.common.root()),
            when_held(wait),
            &output,
        ),
        Some(Command::Run { app, service }) => run::run(
            &cli.common.root(),
            &apps,
            &app,
            &service,
            cli.install.port_range,
            &output,
        ),
        Some(Command::Status { app }) => status::status(&cli.common.root(), &apps, &app, &output),
        Some(Command::Logs {
            app,
            follow,
            lines,
            since,
        }) => logs::logs(
            &cli.common.root(),
            &apps,
            &app,
            LogsRequest {
                follow,
                lines,
                since,
            },
            &output,
        ),
        Some(Command::Generate(generate)) => {
            for page in generate.run(Cli::command())? {
                println!("{}", page.display());
            }
            Ok(())
        }
        Some(Command::Watch(args)) => watch::run(&args, &target, &output),
        Some(Command::Gc { dry_run, wait }) => {
            gc::run(&GcRequest { dry_run, wait }, &target, &output)
        }
        None => install::run(&cli.install, &target, &output),
    }
}
