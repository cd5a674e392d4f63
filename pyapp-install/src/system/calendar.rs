//! `systemd-analyze calendar` has the last word on every schedule (FORMAT.md 5):
//! pyapp-bundle checked each natively when the bundle was read, and where the tool is
//! installed the server's own systemd is asked too, before anything is installed, so a
//! timer that would not load is refused instead of written.

use anyhow::Result;
use pyapp_bundle::metadata::Metadata;
use pyapp_cli::{systemd_calendar_refusal, Refusal};

/// Refuses the first task schedule of `metadata` (`OnCalendar=` of the task's timer, as
/// written: a schedule holds no `%` to escape) that `systemd-analyze calendar` refuses;
/// nothing when the tool is not installed.
pub fn confirm_schedules(metadata: &Metadata) -> Result<()> {
    for (index, task) in metadata.tasks.iter().enumerate() {
        let schedule = task.schedule.as_str();
        if let Some(said) = systemd_calendar_refusal(schedule)? {
            return Err(Refusal::new(format!(
                "metadata.yaml: tasks[{index}].schedule: {schedule:?} is refused by \
                 `systemd-analyze calendar` {said}"
            ))
            .with_hint("fix the schedule in the project's metadata.yaml and build the bundle again")
            .into());
        }
    }
    Ok(())
}
