//! `pyapp-install list`: the installed apps as a table, or as JSON on stdout.

use anyhow::Result;

use crate::engine::list::{self, ListedRelease};
use crate::engine::Target;
use crate::output::Output;
use crate::progress::Progress;

pub fn run(target: &Target, output: &Output) -> Result<()> {
    let report = list::list(target)?;
    if output.json() {
        return output.print_json(&report);
    }
    if report.apps.is_empty() {
        output.note(&format!(
            "no apps installed in {}",
            target.apps.path().display()
        ));
        return Ok(());
    }
    for app in &report.apps {
        let staged = match &app.staged {
            Some(release) => format!(" (staged: {release})"),
            None => String::new(),
        };
        pyapp_cli::print_stdout(&format!(
            "{:<32} {:<16} {}{staged}\n",
            app.name,
            app.version,
            releases_text(&app.releases)
        ))?;
    }
    Ok(())
}

/// The releases on one line, the current one marked: `1.0.0-ba9876543210 1.1.0-0123456789ab*`.
pub fn releases_text(releases: &[ListedRelease]) -> String {
    let names: Vec<String> = releases
        .iter()
        .map(|r| {
            let marker = if r.current { "*" } else { "" };
            format!("{}{marker}", r.release)
        })
        .collect();
    names.join(" ")
}
