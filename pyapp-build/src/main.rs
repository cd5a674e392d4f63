//! `pyapp-build`: parse the arguments, build (or make a key pair), print the result, map
//! failures to exit codes.

use std::process::ExitCode;

use clap::Parser;
use pyapp_build::cli::Command;

fn main() -> ExitCode {
    let args = pyapp_build::cli::Args::parse();
    if let Some(Command::Keygen(keygen)) = &args.command {
        return match pyapp_build::keygen::keygen(keygen) {
            Ok(files) => {
                let protection = if files.encrypted {
                    "encrypted"
                } else {
                    "not encrypted"
                };
                eprintln!(
                    "key {}: secret key {} ({protection}; keep it private), public key {}",
                    files.id,
                    files.secret.display(),
                    files.public.display()
                );
                eprintln!("hint: copy the public key to each server's APPS/.pyapp-trusted-keys/");
                println!("{}", files.public.display());
                ExitCode::SUCCESS
            }
            Err(err) => fail(&err),
        };
    }
    match pyapp_build::run(&args) {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(json) => println!("{json}"),
                    Err(err) => {
                        eprintln!("error: cannot write the JSON report: {err}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                println!("{}", report.bundle.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err),
    }
}

/// Reports `err` on stderr and returns its exit status.
fn fail(err: &anyhow::Error) -> ExitCode {
    let code = pyapp_build::exit_code(err);
    eprintln!("error: {err:#}");
    if code == 2 {
        eprintln!("hint: this is a bug or an environment problem, not a problem with the project");
    }
    ExitCode::from(code)
}
