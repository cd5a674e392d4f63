//! `pyapp-install config APP [--set KEY=VALUE…] [--config FILE]`: with values, changes the
//! configuration (`--json` prints the change); without, shows it as `KEY = VALUE` lines
//! (`--json`: the values).

use anyhow::Result;

use crate::engine::config::{self, ConfigSetRequest};
use crate::engine::Target;
use crate::output::Output;

pub fn run(request: &ConfigSetRequest, target: &Target, output: &Output) -> Result<()> {
    if request.set.is_empty() && request.file.is_none() {
        let shown = config::show(&request.app, target)?;
        if output.json() {
            return output.print_json(&shown);
        }
        if shown.exists {
            for line in &shown.lines {
                pyapp_cli::print_stdout(&format!("{line}\n"))?;
            }
        }
        return Ok(());
    }
    let change = config::set(request, target)?;
    output.report(&change)
}
