//! `pyapp-install status APP`: the app's state as aligned `LABEL  VALUE` lines, or (with
//! `--json`) the report itself (FORMAT.md 9.1).

use anyhow::Result;
use indicatif::HumanBytes;

use super::list::releases_text;
use crate::app::hook_results::{HookEnd, HookResult};
use crate::engine::status::{self, AppStatus, UnitStatus};
use crate::engine::Target;
use crate::output::Output;

pub fn run(app: &str, target: &Target, output: &Output) -> Result<()> {
    let status = status::status(app, target)?;
    if output.json() {
        return output.print_json(&status);
    }
    pyapp_cli::print_stdout(&human(&status))
}

/// The human form: a header line, then one aligned `LABEL  VALUE` line per fact.
fn human(status: &AppStatus) -> String {
    let mut rows: Vec<(&str, String)> = vec![
        ("path", status.path.display().to_string()),
        (
            "user",
            status
                .user
                .clone()
                .unwrap_or_else(|| "(none: root)".to_owned()),
        ),
        (
            "python",
            format!("{} ({})", status.python, status.python_version),
        ),
        ("config", status.config_file.display().to_string()),
        ("releases", releases_text(&status.releases)),
    ];
    if status.systemd != "running" {
        rows.push(("systemd", "not running: unit states unknown".to_owned()));
    }
    let width = status
        .services
        .iter()
        .flat_map(|service| {
            std::iter::once(&service.state)
                .chain(&service.listener)
                .chain(&service.instances)
                .map(|state| state.unit.len())
        })
        .chain(
            status
                .tasks
                .iter()
                .flat_map(|task| [task.timer.state.unit.len(), task.service.unit.len()]),
        )
        .chain(status.hooks.keys().map(String::len))
        .max()
        .unwrap_or(0);
    for service in &status.services {
        let mut text = state_text(&service.state);
        if let Some(port) = service.port {
            text.push_str(&format!(", port {port}"));
        }
        if let Some(socket) = &service.socket {
            text.push_str(&format!(", socket {}", socket.display()));
        }
        if !service.relaxed.is_empty() {
            let names: Vec<&str> = service.relaxed.iter().map(|r| r.name()).collect();
            text.push_str(&format!(", hardening relaxed: {}", names.join(" ")));
        }
        rows.push(("service", format!("{:<width$}  {text}", service.state.unit)));
        for (label, state) in service
            .listener
            .iter()
            .map(|state| ("socket", state))
            .chain(service.instances.iter().map(|state| ("instance", state)))
        {
            rows.push((
                label,
                format!("{:<width$}  {}", state.unit, state_text(state)),
            ));
        }
    }
    for task in &status.tasks {
        let never = || "never".to_owned();
        let timer = format!(
            "{}, next {}, last {}",
            state_text(&task.timer.state),
            task.timer.next_elapse.clone().unwrap_or_else(never),
            task.timer.last_trigger.clone().unwrap_or_else(never)
        );
        rows.push((
            "timer",
            format!("{:<width$}  {timer}", task.timer.state.unit),
        ));
        rows.push((
            "task",
            format!(
                "{:<width$}  {}",
                task.service.unit,
                state_text(&task.service)
            ),
        ));
    }
    if status.hooks.is_empty() {
        rows.push(("hooks", "none has run".to_owned()));
    }
    for (name, result) in &status.hooks {
        rows.push(("hook", format!("{name:<width$}  {}", hook_text(result))));
    }
    let disk = &status.disk_usage;
    rows.push((
        "disk",
        format!(
            "{} (releases {}, data {}, log {})",
            HumanBytes(disk.bytes),
            HumanBytes(disk.releases),
            HumanBytes(disk.data),
            HumanBytes(disk.log)
        ),
    ));
    let store = &status.store_usage;
    rows.push((
        "store",
        format!(
            "{} in {} of {} shared wheels ({})",
            HumanBytes(store.bytes),
            store.entries,
            store.shared_wheels,
            store.path.display()
        ),
    ));
    let mut text = format!(
        "{} {}, release {}, installed {}\n",
        status.name, status.version, status.release, status.installed_at
    );
    for (label, value) in rows {
        text.push_str(&format!("  {label:<9} {value}\n"));
    }
    text
}

/// `active (running) since 2026-11-21T15:15:31Z`, `inactive (dead), result exit-code`, or
/// `unknown` without systemd.
fn state_text(state: &UnitStatus) -> String {
    let Some(active) = &state.active_state else {
        return "unknown".to_owned();
    };
    let mut text = active.clone();
    if let Some(sub) = &state.sub_state {
        text.push_str(&format!(" ({sub})"));
    }
    if state.load_state.as_deref() == Some("not-found") {
        text.push_str(", not loaded");
    }
    if let Some(since) = &state.since {
        text.push_str(&format!(" since {since}"));
    }
    if let Some(result) = state
        .result
        .as_deref()
        .filter(|result| *result != "success")
    {
        text.push_str(&format!(", result {result}"));
    }
    text
}

/// `succeeded (exit status 0) at 2026-…Z after 0.4 s, release 1.0.0-…`.
fn hook_text(result: &HookResult) -> String {
    let how = match (result.result, result.exit_status, result.signal) {
        (HookEnd::TimedOut, ..) => end_word(HookEnd::TimedOut).to_owned(),
        (end, Some(code), _) => format!("{} (exit status {code})", end_word(end)),
        (end, None, Some(signal)) => format!("{} (killed by signal {signal})", end_word(end)),
        (end, None, None) => end_word(end).to_owned(),
    };
    format!(
        "{how} at {} after {:.1} s, release {}",
        result.started_at, result.duration_seconds, result.release
    )
}

fn end_word(end: HookEnd) -> &'static str {
    match end {
        HookEnd::Succeeded => "succeeded",
        HookEnd::Failed => "failed",
        HookEnd::TimedOut => "timed out",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::status::unit_status;

    #[test]
    fn unit_states_come_from_systemctl_show_or_are_unknown() {
        let mut web = BTreeMap::new();
        for (key, value) in [
            ("Id", "hello-web.service"),
            ("LoadState", "loaded"),
            ("ActiveState", "failed"),
            ("SubState", "failed"),
            ("StateChangeTimestamp", "Sat 2026-11-21 17:49:16 UTC"),
            ("Result", "exit-code"),
        ] {
            web.insert(key.to_owned(), value.to_owned());
        }
        let states = BTreeMap::from([("hello-web.service".to_owned(), web)]);
        let state = unit_status("hello-web.service".to_owned(), Some(&states));
        assert_eq!(state.since.as_deref(), Some("2026-11-21T17:49:16Z"));
        assert_eq!(
            state_text(&state),
            "failed (failed) since 2026-11-21T17:49:16Z, result exit-code"
        );
        let unknown = unit_status("hello-web.service".to_owned(), None);
        assert_eq!(state_text(&unknown), "unknown");
        assert!(unknown.active_state.is_none() && unknown.result.is_none());
    }

    #[test]
    fn hook_results_read_as_sentences() {
        let mut result = HookResult {
            release: "1.0.0-0123456789ab".into(),
            version: "1.0.0".into(),
            started_at: "2026-11-21T15:15:30.123Z".into(),
            duration_seconds: 0.42,
            result: HookEnd::Failed,
            exit_status: Some(3),
            signal: None,
        };
        assert_eq!(
            hook_text(&result),
            "failed (exit status 3) at 2026-11-21T15:15:30.123Z after 0.4 s, release 1.0.0-0123456789ab"
        );
        result.exit_status = None;
        result.signal = Some(9);
        assert!(hook_text(&result).starts_with("failed (killed by signal 9) at "));
        result.result = HookEnd::TimedOut;
        result.signal = None;
        assert!(hook_text(&result).starts_with("timed out at "));
    }
}
