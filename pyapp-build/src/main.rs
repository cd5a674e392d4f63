//! `pyapp-build`: parse the arguments, build (or make a key pair, or generate completions
//! and man pages), print the result, map failures to exit codes (0, 1, or 2 for anything
//! unexpected, a panic included).

use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use pyapp_build::cli::{Args, Command};
use pyapp_cli::{print_stdout, Messages};

fn main() -> ExitCode {
    pyapp_cli::guard(run)
}

fn run() -> ExitCode {
    let args: Args = match pyapp_cli::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let messages = Messages::new(args.verbosity.level());
    pyapp_cli::init_log(messages.level());
    let (done, json) = match &args.command {
        Some(Command::Keygen(keygen)) => {
            let done = pyapp_build::keygen::keygen(keygen).and_then(|files| {
                let protection = if files.encrypted {
                    "encrypted"
                } else {
                    "not encrypted"
                };
                messages.note(&format!(
                    "key {}: secret key {} ({protection}; keep it private), public key {}",
                    files.id,
                    files.secret.display(),
                    files.public.display()
                ));
                messages.hint("copy the public key to each server's APPS/.pyapp-trusted-keys/");
                print_stdout(&format!("{}\n", files.public.display()))
            });
            (done, false)
        }
        Some(Command::Generate(generate)) => {
            let done = generate.run(Args::command()).and_then(|pages| {
                pages
                    .iter()
                    .try_for_each(|page| print_stdout(&format!("{}\n", page.display())))
            });
            (done, false)
        }
        None => {
            let done = pyapp_build::run(&args).and_then(|report| {
                if !report.unused_pins.is_empty() {
                    let verb = if args.keep_unused_pins {
                        "packed"
                    } else {
                        "left out"
                    };
                    messages.warning(&format!(
                        "{verb} {} pin(s) nothing requires: {}",
                        report.unused_pins.len(),
                        report.unused_pins.join(", ")
                    ));
                }
                let text = if args.json {
                    serde_json::to_string_pretty(&report).context("cannot write the JSON report")?
                } else {
                    report.bundle.display().to_string()
                };
                print_stdout(&format!("{text}\n"))
            });
            (done, args.json)
        }
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => pyapp_cli::fail(
            &messages,
            err,
            json,
            Some("this is a bug or an environment problem, not a problem with the project"),
        ),
    }
}
