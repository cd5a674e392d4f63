//! placeholder
use anyhow::Result;
use crate::{app_tree::AppsDir, cli::InstallArgs, output::Output};
pub fn install(_apps: &AppsDir, _args: &InstallArgs, _output: &Output) -> Result<()> { Ok(()) }
