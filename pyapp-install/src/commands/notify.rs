//! `pyapp-install notify`: the recent notifications as a table (or `--json`); with
//! `--unit`, `--deliver` or `--install-units`, the engine's part of FORMAT.md 13.1.

use anyhow::Result;

use crate::cli::NotifyArgs;
use crate::engine::notify::{self, NotificationState};
use crate::engine::Target;
use crate::output::Output;

/// How many events the listing shows.
const LISTED: usize = 50;

pub fn run(args: &NotifyArgs, target: &Target, output: &Output) -> Result<()> {
    if let Some(unit) = &args.unit {
        return output.report(&notify::unit_failed(unit, target)?);
    }
    if args.deliver {
        let report = notify::deliver(target)?;
        return output.report(&report);
    }
    if args.install_units {
        return output.report(&notify::install_units(target)?);
    }
    let report = notify::list(target, args.app.as_deref(), LISTED)?;
    if output.json() {
        return output.print_json(&report);
    }
    for item in &report.notifications {
        let state = match item.state {
            NotificationState::Pending => "pending",
            NotificationState::Delivered => "delivered",
            NotificationState::Failed => "failed",
            NotificationState::Unconfigured => "not sent",
        };
        let kind = serde_json::to_value(item.event.kind)?;
        pyapp_cli::print_stdout(&format!(
            "{} {:<16} {:<16} {:<10} {}\n",
            item.event.time,
            item.event.app,
            kind.as_str().unwrap_or_default(),
            state,
            item.event.message.lines().next().unwrap_or_default()
        ))?;
    }
    Ok(())
}
