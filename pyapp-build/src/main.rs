//! `pyapp-build`: parse the arguments, build, print the result, map failures to exit codes.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = pyapp_build::cli::Args::parse();
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
        Err(err) => {
            let code = pyapp_build::exit_code(&err);
            eprintln!("error: {err:#}");
            if code == 2 {
                eprintln!(
                    "hint: this is a bug or an environment problem, not a problem with the project"
                );
            }
            ExitCode::from(code)
        }
    }
}
