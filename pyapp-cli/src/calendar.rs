//! `systemd-analyze calendar` has the last word on every schedule (FORMAT.md 5): both
//! binaries check schedules natively (pyapp-bundle follows systemd's parser) and then,
//! where the tool is installed, ask it too — pyapp-build before a schedule is packed,
//! pyapp-install before a timer is written.

use std::io;
use std::process::Command;

use anyhow::{Context, Result};

/// What `systemd-analyze calendar` says against `schedule` (`(STATUS): FIRST LINE OF
/// STDERR`), `None` when it accepts it or is not installed.
pub fn systemd_calendar_refusal(schedule: &str) -> Result<Option<String>> {
    let mut command = Command::new("systemd-analyze");
    command.args(["calendar", "--", schedule]);
    log::debug!("{command:?}");
    let output = match command.output() {
        Ok(output) => output,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            log::debug!("systemd-analyze is not installed: schedules checked natively only");
            return Ok(None);
        }
        Err(err) => return Err(err).context("failed to run `systemd-analyze calendar`"),
    };
    if output.status.success() {
        return Ok(None);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = stderr
        .lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no reason given");
    Ok(Some(format!("({}): {said}", output.status)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The real `systemd-analyze`: it accepts what the native check accepts, and its words
    /// are what a refusal reports.
    #[test]
    fn asks_the_real_systemd_analyze() {
        if Command::new("systemd-analyze")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("note: systemd-analyze not found; nothing to compare with");
            return;
        }
        assert_eq!(
            systemd_calendar_refusal("*-*-* 03:00:00 Europe/Berlin").unwrap(),
            None
        );
        assert_eq!(systemd_calendar_refusal("hourly").unwrap(), None);
        assert_eq!(
            systemd_calendar_refusal("12:00 Europe//Berlin")
                .unwrap()
                .as_deref(),
            Some(
                "(exit status: 1): Failed to parse calendar specification '12:00 Europe//Berlin': \
                 Invalid argument"
            )
        );
    }
}
