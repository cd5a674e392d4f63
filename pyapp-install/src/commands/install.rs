//! `pyapp-install BUNDLE`: installs a bundle (here, or with `--remote` through a
//! management server); `--json` prints what it did.

use anyhow::{Context, Result};

use crate::cli::InstallArgs;
use crate::engine::{install, Target};
use crate::output::Output;
use crate::progress::Progress;
use crate::server::remote;
use crate::settings;

pub fn run(args: &InstallArgs, target: &Target, output: &Output) -> Result<()> {
    if let Some(url) = &args.remote {
        return run_remote(args, url, output);
    }
    let report = install::install(&settings::install_request(args)?, target)?;
    output.report(&report)
}

fn run_remote(args: &InstallArgs, url: &str, output: &Output) -> Result<()> {
    let request = settings::install_request(args)?;
    let token = match &args.token_file {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("failed to read the token `{}`", file.display()))?,
        ),
        None => std::env::var("PYAPP_TOKEN").ok(),
    };
    let report = remote::install(
        url,
        token.as_deref(),
        &request.bundle,
        request.rules.allow_downgrade,
    )?;
    output.note(&format!(
        "{} {} {} (release {}) on {url}",
        report["action"].as_str().unwrap_or("installed"),
        report["app"].as_str().unwrap_or("?"),
        report["version"].as_str().unwrap_or("?"),
        report["release"].as_str().unwrap_or("?"),
    ));
    output.report(&report)
}
