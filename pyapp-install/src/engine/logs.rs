//! `pyapp-install logs APP [-f]`: the journal of all the app's units and its hook log
//! (`log/hooks.log`) as one stream, ordered by time (FORMAT.md 9.2).
//!
//! Hooks run outside systemd and must run where there is no journal, so their output stays
//! in the hook log and the two are merged here: `journalctl -o json` gives every entry's
//! time in microseconds; a hook log line takes the time of the `=== TIME hook NAME: …`
//! line that opens its run (milliseconds). Both streams are in time order, so merging them
//! is a walk down both, earlier line first; on a tie the hook log's line comes first (a
//! hook runs before the units it precedes start). With `-f` the backlog is printed, then
//! `journalctl -f --after-cursor` (a child process) and the hook log (polled for growth)
//! are followed. Without a running systemd only the hook log is shown, and a note says so.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::iter::Peekable;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use serde_json::Value;

use crate::app::installed::InstalledApp;
use crate::app::receipt::{now_micros, parse_rfc3339_utc, rfc3339_utc};
use crate::engine::Target;
use crate::system::hooks::HOOK_LOG;
use crate::system::systemd::escape_controls;
use crate::system::units;
use pyapp_cli::Refusal;

/// How often the hook log is checked for new lines while following.
const POLL: Duration = Duration::from_millis(200);

/// How many lines `-f` shows before following, when `-n` does not say.
const FOLLOW_BACKLOG: usize = 10;

/// The journal fields a line is made of (`__REALTIME_TIMESTAMP` and `__CURSOR` always come).
const JOURNAL_FIELDS: &str = "MESSAGE,PRIORITY,_SYSTEMD_UNIT,SYSLOG_IDENTIFIER,_PID";

/// What to show.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    pub app: String,
    /// Keep printing new lines as they come.
    pub follow: bool,
    /// Only the last this many lines (before following).
    pub lines: Option<usize>,
    /// Only lines from this time on, in microseconds since the epoch.
    pub since: Option<u64>,
}

/// One line of the merged stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Microseconds since the Unix epoch.
    pub micros: u64,
    /// `hello-web.service[1234]`, `systemd[1]` or `hook post-install`.
    pub source: String,
    pub message: String,
    /// The journal's syslog priority (0 emerg … 7 debug); `None` for the hook log.
    pub priority: Option<u8>,
}

/// A line as `logs --json` prints it and the management API sends it (FORMAT.md 9.2).
#[derive(Debug, Serialize)]
pub struct LogEntry<'a> {
    /// The time with microseconds, `2026-11-21T15:15:30.123456Z`.
    pub time: String,
    pub source: &'a str,
    pub message: &'a str,
    /// The journal's syslog priority, 0 (emerg) to 7 (debug); absent for the hook log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
}

/// Where the lines go, in order, as they come.
pub trait LogSink {
    /// Takes `line`; `false` when nobody wants more (the reader of the output is gone).
    fn line(&mut self, line: &LogLine) -> Result<bool>;

    /// Whether more lines are still wanted, asked while following when none came for a
    /// while (a reader that went away is noticed without waiting for the next line).
    fn wanted(&self) -> bool {
        true
    }
}

impl LogLine {
    /// The line as JSON shows it.
    pub fn entry(&self) -> LogEntry<'_> {
        LogEntry {
            time: self.precise_time(),
            source: &self.source,
            message: &self.message,
            priority: self.priority,
        }
    }

    /// The time with microseconds, `2026-11-21T15:15:30.123456Z`.
    pub fn precise_time(&self) -> String {
        let seconds = rfc3339_utc(self.micros / 1_000_000);
        format!(
            "{}.{:06}Z",
            seconds.trim_end_matches('Z'),
            self.micros % 1_000_000
        )
    }

    /// `TIME SOURCE: MESSAGE`, one such line for each line of a multi-line message. The
    /// app wrote the message: control characters other than tab are shown escaped
    /// (`\u{1b}`), never sent to the terminal.
    pub fn human(&self) -> String {
        let time = rfc3339_utc(self.micros / 1_000_000);
        let mut text = String::new();
        for line in self.message.split('\n') {
            text.push_str(&format!(
                "{time} {}: {}\n",
                self.source,
                escape_controls(line)
            ));
        }
        text
    }
}

/// Sends the app's journal and hook log lines to `sink`, merged in time order; with
/// `follow`, then the new ones as they come, until the sink wants no more.
pub fn logs(request: &LogsRequest, target: &Target, sink: &mut dyn LogSink) -> Result<()> {
    let (app, output, systemd) = (request.app.as_str(), target.progress(), &target.systemd);
    let installed = InstalledApp::load(&target.apps, app)?;
    let hook_log_path = installed.tree.lasting_dir("log").join(HOOK_LOG);
    if !hook_log_path.exists() {
        output.note(&format!(
            "`{}` does not exist: no hook has run",
            hook_log_path.display()
        ));
    }
    let mut hook_log = HookLog::new(hook_log_path.clone());
    let lines = match (request.lines, request.follow) {
        (Some(lines), _) => Some(lines),
        (None, true) => Some(FOLLOW_BACKLOG),
        (None, false) => None,
    };
    let since = request.since;
    let hook_lines = hook_log
        .read_new()?
        .into_iter()
        .filter(move |line| since.is_none_or(|since| line.micros >= since));

    if !systemd.is_running() {
        output.note(&format!(
            "systemd is not running here: only the hook log `{}`",
            hook_log_path.display()
        ));
        if !send_all(sink, tail(hook_lines, lines))? || !request.follow {
            return Ok(());
        }
        loop {
            std::thread::sleep(POLL);
            if !sink.wanted() || !send_all(sink, hook_log.read_new()?)? {
                return Ok(());
            }
        }
    }

    let mut units = units::unit_names(&installed.current.metadata);
    units.extend(systemd.installed_units(app)?);
    units.sort();
    units.dedup();
    let started = now_micros();
    let mut backlog_args = vec!["--quiet".to_owned()];
    match (since, lines) {
        // With both, some journalctl versions show the first N entries since: ask for
        // every entry since, and keep the last N here.
        (Some(since), _) => backlog_args.push(format!("--since=@{}", since / 1_000_000)),
        (None, Some(lines)) => backlog_args.push(format!("--lines={lines}")),
        (None, None) => {}
    }
    let mut journal = Journal::spawn(&units, &backlog_args)?;
    let merged = merge(hook_lines, &mut journal)
        .filter(|line| since.is_none_or(|since| line.micros >= since));
    let printed_all = match lines {
        Some(lines) => send_all(sink, tail(merged, Some(lines)))?,
        None => send_all(sink, merged)?,
    };
    if !printed_all {
        return Ok(());
    }
    let cursor = journal.finish()?;
    if !request.follow {
        return Ok(());
    }
    let mut follow_args = vec!["--follow".to_owned(), "--lines=all".to_owned()];
    follow_args.push(match cursor {
        Some(cursor) => format!("--after-cursor={cursor}"),
        // No entry so far: whatever comes from the moment the backlog was read is new.
        None => format!("--since=@{}", started.max(since.unwrap_or(0)) / 1_000_000),
    });
    follow(Journal::spawn(&units, &follow_args)?, hook_log, sink)
}

/// Sends what `journal` (following) and `hook_log` bring, in the order they come, until
/// the sink wants no more or journalctl stops.
fn follow(journal: Journal, mut hook_log: HookLog, sink: &mut dyn LogSink) -> Result<()> {
    enum Event {
        Line(LogLine),
        Ended(Result<Option<String>>),
    }
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut journal = journal;
        for line in journal.by_ref() {
            if sender.send(Event::Line(line)).is_err() {
                return;
            }
        }
        let _ = sender.send(Event::Ended(journal.finish()));
    });
    let mut next_poll = Instant::now() + POLL;
    loop {
        let wait = next_poll.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(wait) {
            Ok(Event::Line(line)) => {
                if !sink.line(&line)? {
                    return Ok(());
                }
            }
            Ok(Event::Ended(result)) => {
                result?;
                anyhow::bail!("journalctl stopped following the journal");
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                anyhow::bail!("journalctl stopped following the journal")
            }
        }
        if Instant::now() >= next_poll {
            if !sink.wanted() || !send_all(sink, hook_log.read_new()?)? {
                return Ok(());
            }
            next_poll = Instant::now() + POLL;
        }
    }
}

/// Sends every line; `false` when the sink wants no more.
fn send_all(sink: &mut dyn LogSink, lines: impl IntoIterator<Item = LogLine>) -> Result<bool> {
    for line in lines {
        if !sink.line(&line)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The last `count` items of `items` (all of them when `None`).
fn tail(items: impl Iterator<Item = LogLine>, count: Option<usize>) -> VecDeque<LogLine> {
    let mut kept = VecDeque::new();
    for item in items {
        kept.push_back(item);
        if count.is_some_and(|count| kept.len() > count) {
            kept.pop_front();
        }
    }
    kept
}

/// Two time-ordered streams as one: the earlier line first, `first`'s on a tie. Each
/// stream's own order is kept even where its times go back (a clock set back).
pub fn merge<A, B>(first: A, second: B) -> Merge<A, B>
where
    A: Iterator<Item = LogLine>,
    B: Iterator<Item = LogLine>,
{
    Merge {
        first: first.peekable(),
        second: second.peekable(),
    }
}

/// See [`merge`].
pub struct Merge<A: Iterator<Item = LogLine>, B: Iterator<Item = LogLine>> {
    first: Peekable<A>,
    second: Peekable<B>,
}

impl<A, B> Iterator for Merge<A, B>
where
    A: Iterator<Item = LogLine>,
    B: Iterator<Item = LogLine>,
{
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        let take_second = match (self.first.peek(), self.second.peek()) {
            (Some(first), Some(second)) => second.micros < first.micros,
            (None, _) => true,
            (Some(_), None) => false,
        };
        if take_second {
            self.second.next()
        } else {
            self.first.next()
        }
    }
}

/// The hook log, read incrementally: the whole file first, then what is appended.
struct HookLog {
    path: PathBuf,
    file: Option<File>,
    /// Device and inode of `file`: another file at `path` (the log was rotated or the app
    /// removed and installed again) is read from its start.
    identity: (u64, u64),
    offset: u64,
    /// The end of the file after its last newline: a line still being written.
    pending: Vec<u8>,
    lines: HookLogLines,
}

impl HookLog {
    fn new(path: PathBuf) -> HookLog {
        HookLog {
            path,
            file: None,
            identity: (0, 0),
            offset: 0,
            pending: Vec::new(),
            lines: HookLogLines::default(),
        }
    }

    /// The complete lines written since the last call (every line, the first time).
    fn read_new(&mut self) -> Result<Vec<LogLine>> {
        let mut lines = Vec::new();
        if self.file.is_some() {
            self.read_more(&mut lines)?;
        }
        let at_path = match std::fs::symlink_metadata(&self.path) {
            Ok(meta) => Some((meta.dev(), meta.ino())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(err) => {
                return Err(err)
                    .with_context(|| format!("failed to inspect `{}`", self.path.display()))
            }
        };
        if at_path.is_some() && (self.file.is_none() || at_path != Some(self.identity)) {
            if let Some(file) = open_log(&self.path)? {
                let meta = file
                    .metadata()
                    .with_context(|| format!("failed to inspect `{}`", self.path.display()))?;
                self.identity = (meta.dev(), meta.ino());
                self.file = Some(file);
                self.offset = 0;
                self.pending.clear();
                self.read_more(&mut lines)?;
            }
        }
        Ok(lines)
    }

    /// Reads `file` from `offset` to its end, adding the complete lines to `lines`; a file
    /// shorter than `offset` was truncated and is read from its start.
    fn read_more(&mut self, lines: &mut Vec<LogLine>) -> Result<()> {
        let Some(file) = self.file.as_mut() else {
            return Ok(());
        };
        let context = || format!("failed to read `{}`", self.path.display());
        let size = file.metadata().with_context(context)?.len();
        if size < self.offset {
            self.offset = 0;
            self.pending.clear();
        }
        file.seek(SeekFrom::Start(self.offset))
            .with_context(context)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).with_context(context)?;
        self.offset += bytes.len() as u64;
        self.pending.extend_from_slice(&bytes);
        while let Some(newline) = self.pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            lines.push(self.lines.line(&String::from_utf8_lossy(&line[..newline])));
        }
        Ok(())
    }
}

/// Opens the hook log to read it; `None` when it does not exist. The app user owns `log/`:
/// a link, anything but a regular file (a FIFO would block) or a file with other hard
/// links there is refused, as the hooks refuse to write to them.
fn open_log(path: &Path) -> Result<Option<File>> {
    let refuse = |what: &str| -> anyhow::Error {
        Refusal::new(format!("`{}` is {what}; not reading it", path.display()))
            .with_hint("move it away (it may have been planted); the next hook creates it again")
            .into()
    };
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) if err.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(refuse("a symbolic link"))
        }
        Err(err) => {
            return Err(err).with_context(|| format!("failed to open `{}`", path.display()))
        }
    };
    let meta = file
        .metadata()
        .with_context(|| format!("failed to inspect `{}`", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.nlink() != 1 {
        return Err(refuse("a file with other hard links"));
    }
    Ok(Some(file))
}

/// Turns hook log lines into [`LogLine`]s: a `=== TIME hook NAME: TEXT` line (a run's
/// start or end) sets the time and the hook of the output lines after it.
#[derive(Debug, Default)]
struct HookLogLines {
    hook: Option<String>,
    micros: u64,
}

impl HookLogLines {
    fn line(&mut self, text: &str) -> LogLine {
        if let Some((micros, hook, rest)) = parse_marker(text) {
            self.micros = micros;
            self.hook = Some(hook.to_owned());
            return LogLine {
                micros,
                source: format!("hook {hook}"),
                message: format!("=== {rest}"),
                priority: None,
            };
        }
        LogLine {
            micros: self.micros,
            source: self
                .hook
                .as_ref()
                .map_or_else(|| HOOK_LOG.to_owned(), |hook| format!("hook {hook}")),
            message: text.to_owned(),
            priority: None,
        }
    }
}

/// `=== 2026-11-21T15:15:30.123Z hook post-install: hello-migrate` as (its time, the hook,
/// the rest); `None` for any other line.
fn parse_marker(line: &str) -> Option<(u64, &str, &str)> {
    let rest = line.strip_prefix("=== ")?;
    let (time, rest) = rest.split_once(" hook ")?;
    let (hook, rest) = rest.split_once(": ")?;
    if hook.is_empty() || hook.contains(' ') {
        return None;
    }
    Some((parse_rfc3339_utc(time)?, hook, rest))
}

/// `journalctl -o json` of the app's units, read entry by entry.
struct Journal {
    child: Child,
    stdout: BufReader<ChildStdout>,
    units: Vec<String>,
    cursor: Option<String>,
    /// The first entry that could not be read: reported by [`Journal::finish`].
    error: Option<anyhow::Error>,
}

impl Journal {
    /// Starts `journalctl -o json -u UNIT… ARGS`.
    fn spawn(units: &[String], args: &[String]) -> Result<Journal> {
        let mut command = Command::new("journalctl");
        command.args([
            "--no-pager",
            "--output=json",
            "--all",
            &format!("--output-fields={JOURNAL_FIELDS}"),
        ]);
        for unit in units {
            command.arg(format!("--unit={unit}"));
        }
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut child = command.spawn().context("failed to run journalctl")?;
        let stdout = child
            .stdout
            .take()
            .context("journalctl's output was not captured")?;
        Ok(Journal {
            child,
            stdout: BufReader::new(stdout),
            units: units.to_vec(),
            cursor: None,
            error: None,
        })
    }

    /// Waits for journalctl to exit; the cursor of the last entry read, if any.
    fn finish(mut self) -> Result<Option<String>> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        let status = self.child.wait().context("failed to wait for journalctl")?;
        anyhow::ensure!(status.success(), "journalctl failed ({status})");
        Ok(self.cursor.take())
    }
}

impl Iterator for Journal {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        if self.error.is_some() {
            return None;
        }
        let mut text = Vec::new();
        loop {
            text.clear();
            match self.stdout.read_until(b'\n', &mut text) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(err) => {
                    self.error = Some(anyhow::Error::new(err).context("failed to read journalctl"));
                    return None;
                }
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return match journal_entry(&text, &self.units) {
                Ok((line, cursor)) => {
                    self.cursor = cursor.or(self.cursor.take());
                    Some(line)
                }
                Err(err) => {
                    self.error = Some(err);
                    None
                }
            };
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        // A journalctl still running (we stopped reading early) is not left behind.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `journalctl -o json` entry as a line, with its cursor. The source is the app's unit
/// that logged it with its pid (`hello-web.service[1234]`), else who did (`systemd[1]`:
/// the manager, about one of the app's units).
fn journal_entry(json: &[u8], units: &[String]) -> Result<(LogLine, Option<String>)> {
    let entry: Value = serde_json::from_slice(json).with_context(|| {
        format!(
            "journalctl printed what is not a JSON entry: {}",
            String::from_utf8_lossy(json).trim_end()
        )
    })?;
    let micros = field(&entry, "__REALTIME_TIMESTAMP")
        .and_then(|text| text.parse::<u64>().ok())
        .context("a journal entry has no __REALTIME_TIMESTAMP")?;
    let unit = field(&entry, "_SYSTEMD_UNIT").filter(|unit| units.contains(unit));
    let who = unit
        .or_else(|| field(&entry, "SYSLOG_IDENTIFIER"))
        .unwrap_or_else(|| "journal".to_owned());
    let source = match field(&entry, "_PID") {
        Some(pid) => format!("{who}[{pid}]"),
        None => who,
    };
    let line = LogLine {
        micros,
        source,
        message: field(&entry, "MESSAGE").unwrap_or_default(),
        priority: field(&entry, "PRIORITY").and_then(|text| text.parse().ok()),
    };
    Ok((line, field(&entry, "__CURSOR")))
}

/// A journal field's value: a JSON string, or an array of bytes (not UTF-8) read lossily;
/// `None` when absent (or null: too large, or several values).
fn field(entry: &Value, name: &str) -> Option<String> {
    match entry.get(name)? {
        Value::String(text) => Some(text.clone()),
        Value::Array(items) => {
            let bytes: Option<Vec<u8>> = items
                .iter()
                .map(|item| item.as_u64().and_then(|byte| u8::try_from(byte).ok()))
                .collect();
            bytes.map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

/// `--since WHEN`: an RFC 3339 UTC time (`2026-11-21T15:00:00Z`) or how long ago (`30s`,
/// `10m`, `2h`, `3d`), as microseconds since the epoch.
pub fn parse_since(text: &str) -> Result<u64, String> {
    if let Some(micros) = parse_rfc3339_utc(text) {
        return Ok(micros);
    }
    let unit_seconds = match text.chars().last() {
        Some('s') => 1,
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        _ => 0,
    };
    let amount = text
        .get(..text.len().saturating_sub(1))
        .and_then(|digits| digits.parse::<u64>().ok());
    match amount {
        Some(amount) if unit_seconds > 0 => Ok(now_micros()
            .saturating_sub(amount.saturating_mul(unit_seconds).saturating_mul(1_000_000))),
        _ => Err(format!(
            "`{text}` is neither a time like 2026-11-21T15:00:00Z (UTC) nor a duration like 30s, 10m, 2h, 3d"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Write;

    use super::*;

    fn line(micros: u64, source: &str, message: &str) -> LogLine {
        LogLine {
            micros,
            source: source.into(),
            message: message.into(),
            priority: None,
        }
    }

    #[test]
    fn hook_log_lines_take_the_time_of_their_run() {
        let log = "=== 2026-11-21T15:15:30.100Z hook post-install: /a/venv/bin/hello-migrate\n\
                   migrated to 1.0.0\n\
                   === 2026-11-21T15:15:30.900Z hook post-install: exit status 0 after 0.8 s\n\
                   === 2026-11-21T15:20:00Z hook pre-update: /bin/false\n\
                   === not a marker\n";
        let mut lines = HookLogLines::default();
        let parsed: Vec<LogLine> = log.lines().map(|text| lines.line(text)).collect();
        let start = 1_795_274_130_100_000;
        assert_eq!(
            parsed,
            [
                line(start, "hook post-install", "=== /a/venv/bin/hello-migrate"),
                line(start, "hook post-install", "migrated to 1.0.0"),
                line(
                    start + 800_000,
                    "hook post-install",
                    "=== exit status 0 after 0.8 s"
                ),
                line(1_795_274_400_000_000, "hook pre-update", "=== /bin/false"),
                line(1_795_274_400_000_000, "hook pre-update", "=== not a marker"),
            ]
        );
        // Output before any header (a damaged log) has no time of its own.
        assert_eq!(
            HookLogLines::default().line("stray"),
            line(0, "hooks.log", "stray")
        );
    }

    #[test]
    fn streams_merge_by_time_keeping_their_own_order_and_hooks_first_on_ties() {
        let hooks = vec![
            line(10, "hook post-install", "a"),
            line(10, "hook post-install", "b"),
            line(30, "hook post-update", "c"),
        ];
        let journal = vec![
            line(5, "systemd[1]", "1"),
            line(10, "web[2]", "2"),
            line(20, "web[2]", "3"),
            line(40, "web[2]", "4"),
        ];
        let merged: Vec<String> = merge(hooks.into_iter(), journal.into_iter())
            .map(|line| line.message)
            .collect();
        assert_eq!(merged, ["1", "a", "b", "2", "3", "c", "4"]);
        // A stream whose clock went back keeps its order.
        let back = vec![line(50, "h", "x"), line(1, "h", "y")];
        let merged: Vec<String> = merge(back.into_iter(), vec![line(20, "j", "z")].into_iter())
            .map(|line| line.message)
            .collect();
        assert_eq!(merged, ["z", "x", "y"]);
        let last: Vec<u64> = tail((0..10).map(|i| line(i, "s", "m")), Some(3))
            .into_iter()
            .map(|line| line.micros)
            .collect();
        assert_eq!(last, [7, 8, 9]);
        assert!(tail((0..10).map(|i| line(i, "s", "m")), Some(0)).is_empty());
    }

    #[test]
    fn journal_entries_name_the_unit_or_who_spoke_of_it() {
        let units = ["hello-web.service".to_owned()];
        let own = br#"{"__REALTIME_TIMESTAMP":"1795283351318896","_SYSTEMD_UNIT":"hello-web.service","SYSLOG_IDENTIFIER":"gunicorn","_PID":"38","MESSAGE":"Booting worker","__CURSOR":"s=1;i=26"}"#;
        let (entry, cursor) = journal_entry(own, &units).unwrap();
        assert_eq!(
            entry,
            line(
                1_795_283_351_318_896,
                "hello-web.service[38]",
                "Booting worker"
            )
        );
        assert_eq!(cursor.as_deref(), Some("s=1;i=26"));
        assert_eq!(
            entry.human(),
            "2026-11-21T17:49:11Z hello-web.service[38]: Booting worker\n"
        );
        assert_eq!(entry.precise_time(), "2026-11-21T17:49:11.318896Z");
        let manager = br#"{"__REALTIME_TIMESTAMP":"1795283351318763","_SYSTEMD_UNIT":"init.scope","SYSLOG_IDENTIFIER":"systemd","_PID":"1","MESSAGE":"Started hello-web.service - Hello web server.","__CURSOR":"c"}"#;
        assert_eq!(
            journal_entry(manager, &units).unwrap().0.source,
            "systemd[1]"
        );
        // Bytes that are not UTF-8 come as an array; a multi-line message, line by line.
        let binary = br#"{"__REALTIME_TIMESTAMP":"1795283351000000","MESSAGE":[111,107,10,255]}"#;
        let (entry, cursor) = journal_entry(binary, &units).unwrap();
        assert_eq!(entry.message, "ok\n\u{fffd}");
        assert_eq!(entry.source, "journal");
        assert_eq!(cursor, None);
        assert_eq!(
            entry.human(),
            "2026-11-21T17:49:11Z journal: ok\n2026-11-21T17:49:11Z journal: \u{fffd}\n"
        );
        let escape = br#"{"__REALTIME_TIMESTAMP":"1795283351000000","MESSAGE":"\u001b[2Jgone\tx"}"#;
        assert_eq!(
            journal_entry(escape, &units).unwrap().0.human(),
            "2026-11-21T17:49:11Z journal: \\u{1b}[2Jgone\tx\n"
        );
        assert!(journal_entry(b"-- No entries --", &units).is_err());
        assert!(journal_entry(br#"{"MESSAGE":"no time"}"#, &units).is_err());
    }

    #[test]
    fn the_hook_log_is_followed_across_appends_truncation_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(HOOK_LOG);
        let mut log = HookLog::new(path.clone());
        assert!(log.read_new().unwrap().is_empty());
        std::fs::write(
            &path,
            "=== 2026-11-21T15:15:30Z hook post-install: x\nfirst\npart",
        )
        .unwrap();
        let messages = |lines: Vec<LogLine>| -> Vec<String> {
            lines.into_iter().map(|line| line.message).collect()
        };
        assert_eq!(messages(log.read_new().unwrap()), ["=== x", "first"]);
        assert!(log.read_new().unwrap().is_empty());
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"ial\nsecond\n").unwrap();
        assert_eq!(messages(log.read_new().unwrap()), ["partial", "second"]);
        std::fs::write(&path, "short\n").unwrap();
        assert_eq!(messages(log.read_new().unwrap()), ["short"]);
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("new"), "replaced\n").unwrap();
        std::fs::rename(dir.path().join("new"), &path).unwrap();
        assert_eq!(messages(log.read_new().unwrap()), ["replaced"]);

        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let err = HookLog::new(path.clone()).read_new().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is a symbolic link; not reading it"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let err = HookLog::new(path.clone()).read_new().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is not a regular file; not reading it"),
            "{err}"
        );
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.path().join("other"), "x\n").unwrap();
        std::fs::hard_link(dir.path().join("other"), &path).unwrap();
        let err = HookLog::new(path).read_new().unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is a file with other hard links; not reading it"),
            "{err}"
        );
    }

    #[test]
    fn since_takes_a_utc_time_or_a_duration_ago() {
        assert_eq!(
            parse_since("2026-11-21T15:15:30Z"),
            Ok(1_795_274_130_000_000)
        );
        let before = now_micros();
        let ago = parse_since("2h").unwrap();
        let after = now_micros();
        assert!(ago >= before - 7_200_000_000 && ago <= after - 7_200_000_000);
        for bad in ["", "h", "2w", "yesterday", "-1h", "2026-11-21"] {
            assert!(parse_since(bad).is_err(), "{bad}");
        }
    }
}
