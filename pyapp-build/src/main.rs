//! `pyapp-build`: parse the arguments, build (or make a key pair, or generate completions
//! and man pages), print the result, map failures to exit codes.

use std::process::ExitCode;

use clap::CommandFactory;
use pyapp_build::cli::{Args, Command};
use pyapp_cli::Messages;

fn main() -> ExitCode {
    let args: Args = match pyapp_cli::parse_args() {
        Ok(args) => args,
        Err(code) => return code,
    };
    let messages = Messages::new(args.verbosity.level());
    pyapp_cli::init_log(messages.level());
    match &args.command {
        Some(Command::Keygen(keygen)) => match pyapp_build::keygen::keygen(keygen) {
            Ok(files) => {
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
                println!("{}", files.public.display());
                ExitCode::SUCCESS
            }
            Err(err) => fail(&messages, err, false),
        },
        Some(Command::Generate(generate)) => match generate.run(Args::command()) {
            Ok(pages) => {
                for page in pages {
                    println!("{}", page.display());
                }
                ExitCode::SUCCESS
            }
            Err(err) => fail(&messages, err, false),
        },
        None => match pyapp_build::run(&args) {
            Ok(report) => {
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
                if args.json {
                    match serde_json::to_string_pretty(&report) {
                        Ok(json) => println!("{json}"),
                        Err(err) => {
                            messages.error(&format!("cannot write the JSON report: {err}"), None);
                            return ExitCode::from(2);
                        }
                    }
                } else {
                    println!("{}", report.bundle.display());
                }
                ExitCode::SUCCESS
            }
            Err(err) => fail(&messages, err, args.json),
        },
    }
}

/// Reports `err` on stderr and returns its exit status.
fn fail(messages: &Messages, err: anyhow::Error, json: bool) -> ExitCode {
    pyapp_cli::fail(
        messages,
        err,
        json,
        Some("this is a bug or an environment problem, not a problem with the project"),
    )
}
