//! `systemd-analyze calendar` has the last word on every schedule a bundle ships (FORMAT.md
//! 5): pyapp-bundle's native check follows systemd's parser, and where the tool is installed
//! pyapp-build asks it as well, so a schedule the timer could not load is never packed.

use std::io;
use std::process::Command;

use crate::Refusal;
use anyhow::{Context as _, Result};

/// Refuses `schedule` (the value of `field`, e.g. `metadata.yaml: tasks[0].schedule`) when
/// `systemd-analyze calendar` does; nothing when the tool is not installed.
pub fn confirm(field: &str, schedule: &str) -> Result<()> {
    let mut command = Command::new("systemd-analyze");
    command.args(["calendar", "--", schedule]);
    log::debug!("{command:?}");
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            log::debug!("systemd-analyze is not installed: {field} checked natively only");
            return Ok(());
        }
        Err(err) => return Err(err).context("failed to run `systemd-analyze calendar`"),
    };
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no reason given");
    Err(Refusal::new(format!(
        "{field}: {schedule:?} is refused by `systemd-analyze calendar` ({}): {said}",
        output.status
    ))
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real `systemd-analyze`: what it refuses is refused in its words.
    #[test]
    fn refuses_what_systemd_analyze_refuses() {
        if Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("note: systemd-analyze not found; nothing to compare with");
            return;
        }
        assert!(confirm("tasks[0].schedule", "Mon..Fri 09:00 Europe/Berlin").is_ok());
        let refused = confirm("tasks[0].schedule", "12:00 Europe//Berlin")
            .err()
            .map(|err| err.to_string());
        assert_eq!(
            refused.as_deref(),
            Some(
                "tasks[0].schedule: \"12:00 Europe//Berlin\" is refused by `systemd-analyze \
                 calendar` (exit status: 1): Failed to parse calendar specification '12:00 \
                 Europe//Berlin': Invalid argument"
            )
        );
    }
}
