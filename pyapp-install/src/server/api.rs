//! The JSON API, `/api/v1/…` (spec/openapi.json): each handler turns its request into the
//! engine's typed request, runs the engine function on a worker thread and answers its
//! report as the command line's `--json` prints it, or the `{error, hint, status}` object.
//! A change asked with `Accept: text/event-stream` answers a stream of progress events
//! ending in its `result` or `error` ([`super::events`]). Every change is audited.

use std::collections::BTreeMap;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures_util::StreamExt;
use pyapp_cli::{FailureReport, Refusal};
use pyapp_fs::lock::WhenHeld;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::access::{self, Caller};
use super::events::{self, EventProgress};
use super::{audit, console, in_root, Server};
use crate::app::policy::Rules;
use crate::engine::config::{self, ConfigSetRequest};
use crate::engine::gc::{self, GcRequest};
use crate::engine::install::{self, InstallRequest};
use crate::engine::logs::{self, LogLine, LogSink, LogsRequest};
use crate::engine::notify;
use crate::engine::remove::{self, RemoveRequest};
use crate::engine::rollback::{self, RollbackRequest};
use crate::engine::{list, status, Target};

/// The largest request body other than an upload: a form or a JSON document.
pub const FORM_LIMIT: usize = 64 * 1024;

/// The OpenAPI document of this API.
const OPENAPI: &str = include_str!("../../../spec/openapi.json");

/// The most log lines one query answers.
const MAX_LOG_LINES: usize = 10_000;

/// Every route of both listeners, behind [`access::guard`].
pub fn router(server: Arc<Server>) -> Router {
    Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/apps", get(apps).post(install))
        .route("/api/v1/apps/{app}", get(app_status).delete(remove))
        .route("/api/v1/apps/{app}/rollback", post(rollback))
        .route("/api/v1/apps/{app}/config", get(config_get).put(config_put))
        .route("/api/v1/apps/{app}/logs", get(logs))
        .route("/api/v1/gc", post(gc))
        .route("/api/v1/notifications", get(notifications))
        .merge(console::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::from_fn_with_state(
            server.clone(),
            access::guard,
        ))
        .with_state(server)
}

/// The `{error, hint, status}` object with this HTTP status (a refusal: status 1).
pub fn refusal_response(code: StatusCode, error: &str, hint: Option<&str>) -> Response {
    let report = FailureReport {
        error: error.to_owned(),
        hint: hint.map(str::to_owned),
        status: 1,
    };
    (code, Json(report)).into_response()
}

/// An operation's error as the `{error, hint, status}` object: 400 for a refusal (409 when
/// the app is locked by another operation), 500 for an unexpected failure.
pub fn error_response(err: anyhow::Error) -> Response {
    let locked = err.chain().any(|cause| {
        cause
            .downcast_ref::<pyapp_fs::FsError>()
            .is_some_and(|err| matches!(err, pyapp_fs::FsError::Locked { .. }))
    });
    let report = FailureReport::of(err, Some("the server's journal may say more"));
    let code = match (report.status, locked) {
        (_, true) => StatusCode::CONFLICT,
        (1, false) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (code, Json(report)).into_response()
}

async fn not_found(headers: HeaderMap, uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") || !wants_html(&headers) {
        return refusal_response(
            StatusCode::NOT_FOUND,
            &format!("no such resource: {}", uri.path()),
            Some("spec/openapi.json lists the API (GET /api/v1/openapi.json)"),
        );
    }
    console::not_found_page()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/html"))
}

/// Whether the client asked for a stream of progress events.
pub fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.contains("text/event-stream"))
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Runs the blocking `op` on a worker thread with `target` (silent progress).
pub async fn blocking<T: Send + 'static>(
    target: Target,
    op: impl FnOnce(&Target) -> Result<T> + Send + 'static,
) -> Result<T> {
    let target = Target {
        progress: events::silent(),
        ..target
    };
    tokio::task::spawn_blocking(move || op(&target))
        .await
        .context("the operation's thread failed")?
}

/// A read: `op`'s report as JSON.
async fn read<T: Serialize + Send + 'static>(
    server: &Server,
    op: impl FnOnce(&Target) -> Result<T> + Send + 'static,
) -> Response {
    match blocking(server.target.clone(), op).await {
        Ok(report) => Json(report).into_response(),
        Err(err) => error_response(err),
    }
}

/// What a change is, for its audit record.
pub struct Change {
    pub who: String,
    pub action: &'static str,
    pub app: Option<String>,
}

impl Change {
    pub fn new(caller: &Caller, action: &'static str, app: Option<&str>) -> Change {
        Change {
            who: caller.who.clone(),
            action,
            app: app.map(str::to_owned),
        }
    }

    /// Writes the audit record of how `result` ended (the app named by the report when
    /// the request did not say: an upload's).
    pub fn audit<T: Serialize>(&self, result: &Result<T>) {
        let (outcome, reported) = match result {
            Ok(report) => (
                "ok".to_owned(),
                serde_json::to_value(report)
                    .ok()
                    .and_then(|value| value["app"].as_str().map(str::to_owned)),
            ),
            Err(err) => (format!("failed: {err:#}"), None),
        };
        let app = self.app.clone().or(reported);
        audit::record(&self.who, self.action, app.as_deref(), &outcome);
    }
}

/// A change: `op` runs on a worker thread and is audited; the answer is its report as
/// JSON, or (`events`) the stream of its progress ending in `result` or `error`.
pub async fn change<T: Serialize + Send + 'static>(
    server: &Server,
    change: Change,
    events: bool,
    op: impl FnOnce(&Target) -> Result<T> + Send + 'static,
) -> Response {
    if !events {
        let result = blocking(server.target.clone(), op).await;
        change.audit(&result);
        return match result {
            Ok(report) => Json(report).into_response(),
            Err(err) => error_response(err),
        };
    }
    let (progress, receiver) = EventProgress::new();
    let target = Target {
        progress: Arc::new(progress.clone()),
        ..server.target.clone()
    };
    tokio::task::spawn_blocking(move || {
        let result = op(&target);
        change.audit(&result);
        match result {
            Ok(report) => progress.send("result", &report),
            Err(err) => progress.send("error", &FailureReport::of(err, None)),
        }
    });
    events::stream_response(receiver)
}

async fn apps(State(server): State<Arc<Server>>) -> Response {
    read(&server, list::list).await
}

async fn app_status(State(server): State<Arc<Server>>, UrlPath(app): UrlPath<String>) -> Response {
    read(&server, move |target| status::status(&app, target)).await
}

/// `?allow-downgrade=true&allow-major=true`, as `watch` takes them.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct InstallQuery {
    #[serde(default)]
    allow_downgrade: bool,
    #[serde(default)]
    allow_major: bool,
}

/// An uploaded bundle on disk while it is installed; removed when dropped.
struct Upload(PathBuf);

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Streams `body` into a new file of the state directory's `uploads/` (0600), refused
/// with 413 as soon as it passes `limit` bytes (before reading it when its length says so).
async fn receive(server: &Server, headers: &HeaderMap, body: Body) -> Result<Upload, Response> {
    let limit = server.request.max_upload;
    let too_large = || {
        refusal_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!("the bundle is larger than the server takes ({limit} bytes)"),
            Some("start the server with a larger --max-upload"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let dir = in_root(&server.target, &server.request.state_dir).join("uploads");
    let upload = open_upload(&dir).map_err(error_response)?;
    let mut file = tokio::fs::File::from_std(upload.1);
    let upload = upload.0;
    let mut received: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|err| {
            refusal_response(
                StatusCode::BAD_REQUEST,
                &format!("the upload broke off: {err}"),
                None,
            )
        })?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large());
        }
        file.write_all(&chunk)
            .await
            .with_context(|| format!("failed to write `{}`", upload.0.display()))
            .map_err(error_response)?;
    }
    file.sync_all()
        .await
        .with_context(|| format!("failed to write `{}`", upload.0.display()))
        .map_err(error_response)?;
    if received == 0 {
        return Err(refusal_response(
            StatusCode::BAD_REQUEST,
            "the request has no bundle",
            Some("send the .pyapp file as the body (curl --data-binary @FILE)"),
        ));
    }
    Ok(upload)
}

fn open_upload(dir: &Path) -> Result<(Upload, std::fs::File)> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("failed to create `{}`", dir.display()))?;
    let mut bytes = [0; 12];
    std::io::Read::read_exact(
        &mut std::fs::File::open("/dev/urandom").context("failed to open `/dev/urandom`")?,
        &mut bytes,
    )
    .context("failed to read `/dev/urandom`")?;
    let path = dir.join(format!("upload-{}.pyapp", hex::encode(bytes)));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("failed to create `{}`", path.display()))?;
    Ok((Upload(path), file))
}

/// `POST /api/v1/apps`: the body is a bundle, installed as `watch` would (the app's update
/// policy) once it has arrived whole and been verified.
async fn install(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<InstallQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_query(err),
    };
    let upload = match receive(&server, &headers, body).await {
        Ok(upload) => upload,
        Err(response) => return response,
    };
    let request = InstallRequest {
        bundle: upload.0.clone(),
        python: server.request.python.clone(),
        dry_run: false,
        when_held: WhenHeld::Wait,
        options: install::options(true, false),
        user: None,
        set: Vec::new(),
        config: None,
        trusted_keys: server.request.trusted_keys.clone(),
        rules: Rules {
            follow_policy: true,
            allow_major: query.allow_major,
            allow_downgrade: query.allow_downgrade,
            stage_only: false,
        },
        web: None,
        max_installed_size: install::DEFAULT_MAX_INSTALLED_SIZE,
    };
    let audit = Change::new(&caller, "install", None);
    let turn = server.clone();
    change(&server, audit, wants_events(&headers), move |target| {
        let _turn = match turn.installs.try_lock() {
            Ok(turn) => turn,
            Err(_) => {
                target
                    .progress()
                    .note("waiting for the install in progress to finish");
                turn.installs
                    .lock()
                    .map_err(|_| anyhow::anyhow!("an earlier install panicked"))?
            }
        };
        let report = install::install(&request, target);
        drop(upload);
        report
    })
    .await
}

fn bad_query(err: QueryRejection) -> Response {
    refusal_response(
        StatusCode::BAD_REQUEST,
        &format!("bad query: {}", err.body_text()),
        Some("spec/openapi.json lists each operation's parameters"),
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RemoveQuery {
    #[serde(default)]
    purge: bool,
}

async fn remove(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    query: Result<Query<RemoveQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_query(err),
    };
    let audit = Change::new(
        &caller,
        if query.purge { "purge" } else { "remove" },
        Some(&app),
    );
    let request = RemoveRequest {
        app,
        purge: query.purge,
        when_held: WhenHeld::Wait,
    };
    change(&server, audit, wants_events(&headers), move |target| {
        remove::remove(&request, target)
    })
    .await
}

async fn rollback(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let audit = Change::new(&caller, "rollback", Some(&app));
    let request = RollbackRequest {
        app,
        when_held: WhenHeld::Wait,
    };
    change(&server, audit, wants_events(&headers), move |target| {
        rollback::rollback(&request, target)
    })
    .await
}

async fn config_get(State(server): State<Arc<Server>>, UrlPath(app): UrlPath<String>) -> Response {
    read(&server, move |target| config::show(&app, target)).await
}

/// `PUT /api/v1/apps/{app}/config`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigBody {
    values: BTreeMap<String, serde_json::Value>,
}

/// `KEY=VALUE` as `config --set` takes it, from a JSON value (a string, number or boolean).
pub fn assignment(key: &str, value: &serde_json::Value) -> Result<String> {
    let text = match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        serde_json::Value::Bool(value) => value.to_string(),
        _ => {
            return Err(Refusal::new(format!(
                "config: {key}: expected a string, number or boolean"
            ))
            .into())
        }
    };
    Ok(format!("{key}={text}"))
}

async fn config_put(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(err) => return refusal_response(err.status(), &err.body_text(), None),
    };
    let body: ConfigBody = match serde_json::from_slice(&body) {
        Ok(body) => body,
        Err(err) => {
            return refusal_response(
                StatusCode::BAD_REQUEST,
                &format!("the body is not a configuration change: {err}"),
                Some(r#"send {"values": {"KEY": VALUE, ...}}"#),
            )
        }
    };
    let set: Result<Vec<String>> = body
        .values
        .iter()
        .map(|(key, value)| assignment(key, value))
        .collect();
    let set = match set {
        Ok(set) => set,
        Err(err) => return error_response(err),
    };
    let audit = Change::new(&caller, "config", Some(&app));
    let request = ConfigSetRequest {
        app,
        set,
        file: None,
        when_held: WhenHeld::Wait,
    };
    change(&server, audit, wants_events(&headers), move |target| {
        config::set(&request, target)
    })
    .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct GcQuery {
    #[serde(default)]
    dry_run: bool,
}

async fn gc(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<GcQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_query(err),
    };
    let audit = Change::new(&caller, "gc", None);
    let request = GcRequest {
        dry_run: query.dry_run,
        wait: true,
    };
    change(&server, audit, wants_events(&headers), move |target| {
        gc::gc(&request, target)
    })
    .await
}

/// `GET /api/v1/notifications?app=&limit=`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct NotificationsQuery {
    #[serde(default)]
    app: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// How many notifications one query answers without `limit`, and at most.
pub const NOTIFICATIONS: (usize, usize) = (50, 1000);

async fn notifications(
    State(server): State<Arc<Server>>,
    query: Result<Query<NotificationsQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_query(err),
    };
    let limit = query.limit.unwrap_or(NOTIFICATIONS.0).min(NOTIFICATIONS.1);
    read(&server, move |target| {
        notify::list(target, query.app.as_deref(), limit)
    })
    .await
}

/// A log query: `GET /api/v1/apps/{app}/logs?unit=&level=&since=&until=&text=&regex=&lines=&follow=`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct LogQuery {
    /// Only lines of this unit (`hello-web.service`), or `hooks` for the hook log.
    #[serde(default)]
    pub unit: Option<String>,
    /// Only lines of this priority or more urgent: `err`, `warning`, `notice`, `info`,
    /// `debug` (the hook log's lines count as `info`).
    #[serde(default)]
    pub level: Option<String>,
    /// From this time on: `2026-11-21T15:00:00Z` or a duration ago (`10m`).
    #[serde(default)]
    pub since: Option<String>,
    /// Up to this time, written the same way.
    #[serde(default)]
    pub until: Option<String>,
    /// Only lines whose message contains this, ignoring case.
    #[serde(default)]
    pub text: Option<String>,
    /// Only lines whose message matches this regular expression.
    #[serde(default)]
    pub regex: Option<String>,
    /// The last this many matching lines [default 200].
    #[serde(default)]
    pub lines: Option<usize>,
    /// Then keep sending new matching lines as events.
    #[serde(default)]
    pub follow: bool,
}

/// A [`LogQuery`] ready to match lines.
pub struct LogFilter {
    unit: Option<String>,
    level: u8,
    until: Option<u64>,
    text: Option<String>,
    regex: Option<regex::Regex>,
}

/// The syslog priorities by name.
const LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

impl LogQuery {
    /// The engine's request and the filter; a bad level, time or regex is refused.
    pub fn parse(&self, app: &str) -> Result<(LogsRequest, LogFilter)> {
        let time = |name: &str, text: &Option<String>| -> Result<Option<u64>> {
            text.as_deref()
                .filter(|text| !text.is_empty())
                .map(|text| {
                    logs::parse_since(text)
                        .map_err(|err| Refusal::new(format!("logs: {name}: {err}")).into())
                })
                .transpose()
        };
        let level = match self.level.as_deref().filter(|level| !level.is_empty()) {
            None => 7,
            Some(name) => LEVELS
                .iter()
                .position(|level| *level == name)
                .and_then(|level| u8::try_from(level).ok())
                .ok_or_else(|| {
                    Refusal::new(format!(
                        "logs: level: {name:?} is not one of {}",
                        LEVELS.join(", ")
                    ))
                })?,
        };
        let regex = match self.regex.as_deref().filter(|regex| !regex.is_empty()) {
            None => None,
            Some(pattern) => Some(
                regex::RegexBuilder::new(pattern)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|err| Refusal::new(format!("logs: regex: {err}")))?,
            ),
        };
        let request = LogsRequest {
            app: app.to_owned(),
            follow: self.follow,
            lines: None,
            since: time("since", &self.since)?,
        };
        let filter = LogFilter {
            unit: self.unit.clone().filter(|unit| !unit.is_empty()),
            level,
            until: time("until", &self.until)?,
            text: self
                .text
                .as_deref()
                .filter(|text| !text.is_empty())
                .map(str::to_lowercase),
            regex,
        };
        Ok((request, filter))
    }
}

impl LogFilter {
    /// Whether `line` is one the query asks for.
    pub fn matches(&self, line: &LogLine) -> bool {
        let unit = self.unit.as_deref().is_none_or(|unit| {
            if unit == "hooks" {
                line.source.starts_with("hook ")
            } else {
                line.source
                    .strip_prefix(unit)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('['))
            }
        });
        unit && line.priority.unwrap_or(6) <= self.level
            && self.until.is_none_or(|until| line.micros <= until)
            && self
                .text
                .as_deref()
                .is_none_or(|text| line.message.to_lowercase().contains(text))
            && self
                .regex
                .as_ref()
                .is_none_or(|regex| regex.is_match(&line.message))
    }
}

/// The matching lines, the last `lines` of them.
struct Collected {
    filter: LogFilter,
    lines: std::collections::VecDeque<LogLine>,
    keep: usize,
}

impl LogSink for Collected {
    fn line(&mut self, line: &LogLine) -> Result<bool> {
        if self.filter.matches(line) {
            self.lines.push_back(line.clone());
            if self.lines.len() > self.keep {
                self.lines.pop_front();
            }
        }
        Ok(true)
    }
}

/// The matching lines as `line` events, as they come, until the client goes.
struct Streamed {
    filter: LogFilter,
    events: EventProgress,
}

impl LogSink for Streamed {
    fn line(&mut self, line: &LogLine) -> Result<bool> {
        if self.filter.matches(line) {
            self.events.send("line", &line.entry());
        }
        Ok(!self.events.is_closed())
    }

    fn wanted(&self) -> bool {
        !self.events.is_closed()
    }
}

/// The answer of `GET …/logs` without `follow`.
#[derive(Serialize)]
pub struct LogReport {
    pub app: String,
    pub lines: Vec<serde_json::Value>,
}

/// The matching lines of `app`'s logs (the last `query.lines`).
pub fn query_logs(app: &str, query: &LogQuery, target: &Target) -> Result<LogReport> {
    let (request, filter) = query.parse(app)?;
    let mut sink = Collected {
        filter,
        lines: std::collections::VecDeque::new(),
        keep: query.lines.unwrap_or(200).min(MAX_LOG_LINES),
    };
    logs::logs(
        &LogsRequest {
            follow: false,
            ..request
        },
        target,
        &mut sink,
    )?;
    let lines = sink
        .lines
        .iter()
        .map(|line| serde_json::to_value(line.entry()))
        .collect::<Result<_, _>>()
        .context("failed to encode a log line")?;
    Ok(LogReport {
        app: app.to_owned(),
        lines,
    })
}

async fn logs(
    State(server): State<Arc<Server>>,
    UrlPath(app): UrlPath<String>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(err) => return bad_query(err),
    };
    if !query.follow {
        return read(&server, move |target| query_logs(&app, &query, target)).await;
    }
    let (request, filter) = match query.parse(&app) {
        Ok(parsed) => parsed,
        Err(err) => return error_response(err),
    };
    let (events, receiver) = EventProgress::new();
    let target = Target {
        progress: events::silent(),
        ..server.target.clone()
    };
    let backlog = query.lines.unwrap_or(10).min(MAX_LOG_LINES);
    tokio::task::spawn_blocking(move || {
        let mut sink = Streamed {
            filter,
            events: events.clone(),
        };
        let request = LogsRequest {
            lines: Some(backlog),
            ..request
        };
        if let Err(err) = logs::logs(&request, &target, &mut sink) {
            events.send("error", &FailureReport::of(err, None));
        }
    });
    events::stream_response(receiver)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn line(source: &str, message: &str, priority: Option<u8>) -> LogLine {
        LogLine {
            micros: 1_795_283_351_000_000,
            source: source.to_owned(),
            message: message.to_owned(),
            priority,
        }
    }

    fn filter(query: LogQuery) -> LogFilter {
        query.parse("hello").unwrap().1
    }

    #[test]
    fn a_log_query_filters_by_unit_level_text_and_regex() {
        let web = line("hello-web.service[812]", "[INFO] Listening at: x", Some(6));
        let error = line("hello-web.service[812]", "Traceback", Some(3));
        let other = line("hello-webx.service[9]", "Listening at: y", Some(6));
        let hook = line("hook post-install", "migrated to 1.0.0", None);
        let by_unit = filter(LogQuery {
            unit: Some("hello-web.service".into()),
            ..LogQuery::default()
        });
        assert!(by_unit.matches(&web) && !by_unit.matches(&other) && !by_unit.matches(&hook));
        let hooks = filter(LogQuery {
            unit: Some("hooks".into()),
            ..LogQuery::default()
        });
        assert!(hooks.matches(&hook) && !hooks.matches(&web));
        let errors = filter(LogQuery {
            level: Some("err".into()),
            ..LogQuery::default()
        });
        assert!(errors.matches(&error) && !errors.matches(&web) && !errors.matches(&hook));
        let text = filter(LogQuery {
            text: Some("LISTENING".into()),
            ..LogQuery::default()
        });
        assert!(text.matches(&web) && text.matches(&other) && !text.matches(&error));
        let regex = filter(LogQuery {
            regex: Some(r"migrated to 1\.\d".into()),
            ..LogQuery::default()
        });
        assert!(regex.matches(&hook) && !regex.matches(&web));
        let until = filter(LogQuery {
            until: Some("2020-01-01T00:00:00Z".into()),
            ..LogQuery::default()
        });
        assert!(!until.matches(&web));
    }

    #[test]
    fn bad_log_queries_are_refused_naming_the_parameter() {
        for (query, word) in [
            (
                LogQuery {
                    level: Some("loud".into()),
                    ..LogQuery::default()
                },
                "level",
            ),
            (
                LogQuery {
                    regex: Some("(".into()),
                    ..LogQuery::default()
                },
                "regex",
            ),
            (
                LogQuery {
                    since: Some("yesterday-ish".into()),
                    ..LogQuery::default()
                },
                "since",
            ),
        ] {
            let err = query.parse("hello").err().unwrap();
            assert!(format!("{err:#}").contains(word), "{err:#}");
            assert_eq!(pyapp_cli::classify(&err).status, 1);
        }
    }

    #[test]
    fn json_values_become_config_assignments() {
        assert_eq!(
            assignment("workers", &serde_json::json!(4)).unwrap(),
            "workers=4"
        );
        assert_eq!(
            assignment("debug", &serde_json::json!(true)).unwrap(),
            "debug=true"
        );
        assert_eq!(
            assignment("greeting", &serde_json::json!("Hi")).unwrap(),
            "greeting=Hi"
        );
        assert!(assignment("list", &serde_json::json!([1])).is_err());
    }
}
