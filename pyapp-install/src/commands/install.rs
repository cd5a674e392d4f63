//! `pyapp-install BUNDLE`: installs a bundle; `--json` prints what it did.

use anyhow::Result;

use crate::cli::InstallArgs;
use crate::engine::{install, Target};
use crate::output::Output;
use crate::settings;

pub fn run(args: &InstallArgs, target: &Target, output: &Output) -> Result<()> {
    let report = install::install(&settings::install_request(args)?, target)?;
    output.report(&report)
}
