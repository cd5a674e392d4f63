//! The audit record of every change made through the server: one journal entry (syslog
//! identifier `pyapp-console`) saying who, what, on which app and how it ended, sent with
//! the journal's native protocol so that each is a field of its own (`PYAPP_WHO`,
//! `PYAPP_ACTION`, `PYAPP_APP`, `PYAPP_RESULT`); the time is the entry's. Without a journal
//! the record goes to the log (`-v`).

use std::os::unix::net::UnixDatagram;

/// The journal's socket for native entries.
const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// Records that `who` did `action` (on `app`) and it ended with `result` (`ok`, or the
/// error).
pub fn record(who: &str, action: &str, app: Option<&str>, result: &str) {
    let app_text = app.map(|app| format!(" {app}")).unwrap_or_default();
    let message = format!("{who}: {action}{app_text}: {result}");
    let priority = if result == "ok" { "5" } else { "4" };
    let mut entry = String::new();
    for (field, value) in [
        ("MESSAGE", message.as_str()),
        ("PRIORITY", priority),
        ("SYSLOG_IDENTIFIER", "pyapp-console"),
        ("PYAPP_WHO", who),
        ("PYAPP_ACTION", action),
        ("PYAPP_APP", app.unwrap_or("")),
        ("PYAPP_RESULT", result),
    ] {
        // One line per field: a value's own line breaks would end it early.
        entry.push_str(&format!("{field}={}\n", value.replace('\n', " ")));
    }
    let sent =
        UnixDatagram::unbound().and_then(|socket| socket.send_to(entry.as_bytes(), JOURNAL_SOCKET));
    if sent.is_err() {
        log::warn!("audit: {message}");
    }
}
