//! The web console: server-rendered pages (maud) over the same engine calls as the API,
//! with a little JavaScript of its own (`assets/console.js`: checks a form field as it is
//! typed, shows an upload's progress, follows the log). Nothing comes from elsewhere at
//! run time: the stylesheet and the script are compiled into the binary.

use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use maud::{html, Markup, DOCTYPE};
use pyapp_bundle::config_spec::{ConfigSpec, ConfigValue, Field, Widget};
use pyapp_fs::lock::WhenHeld;
use serde::Deserialize;

use super::access::{self, Caller};
use super::api::{self, blocking, Change, LogQuery};
use super::Server;
use crate::app::config_file::GivenValues;
use crate::app::installed::InstalledApp;
use crate::engine::config::{self, ConfigSetRequest, ConfigShown};
use crate::engine::notify::{self, Notification};
use crate::engine::rollback::{self, RollbackRequest};
use crate::engine::status::{self, AppStatus, UnitStatus};
use crate::engine::{list, Target};

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The console's routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/", get(index))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/upload", get(upload))
        .route("/apps/{app}", get(app_page))
        .route("/apps/{app}/rollback", post(rollback_form))
        .route("/apps/{app}/config", get(config_page).post(config_form))
        .route("/apps/{app}/logs", get(logs_page))
        .route("/notifications", get(notifications_page))
        .route("/assets/console.css", get(css))
        .route("/assets/console.js", get(js))
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

/// A whole page: the header with its links, `body`, the script.
fn page(title: &str, caller: Option<&Caller>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(csrf) = caller.and_then(|caller| caller.csrf.as_deref()) {
                    meta name="csrf-token" content=(csrf);
                }
                title { (title) " · pyapp" }
                link rel="stylesheet" href="/assets/console.css";
            }
            body {
                header {
                    a.brand href="/" { "pyapp" }
                    @if caller.is_some() {
                        nav {
                            a href="/" { "Apps" }
                            a href="/upload" { "Upload" }
                            a href="/notifications" { "Notifications" }
                            @if let Some(csrf) = caller.and_then(|caller| caller.csrf.as_deref()) {
                                form.inline method="post" action="/logout" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    button.link type="submit" { "Log out" }
                                }
                            }
                        }
                    }
                }
                main { (body) }
                script src="/assets/console.js" {}
            }
        }
    }
}

/// The page saying why an operation failed.
fn failure_page(caller: &Caller, err: anyhow::Error) -> Response {
    let report = pyapp_cli::FailureReport::of(err, None);
    let code = if report.status == 1 {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let body = html! {
        h1 { "Refused" }
        p.problem { (report.error) }
        @if let Some(hint) = &report.hint { p.hint { (hint) } }
        p { a href="/" { "Back to the apps" } }
    };
    (code, page("Refused", Some(caller), body)).into_response()
}

/// 404 for a page that is not there.
pub fn not_found_page() -> Response {
    let body = html! { h1 { "Not found" } p { a href="/" { "Back to the apps" } } };
    (StatusCode::NOT_FOUND, page("Not found", None, body)).into_response()
}

/// The login form, with why the last attempt failed.
pub fn login_page(problem: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            form.card method="post" action="/login" {
                label for="token" { "Token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                @if let Some(problem) = problem { span.error { (problem) } }
                p.help { "The token is in the server's state directory: "
                    code { "sudo cat /var/lib/pyapp/console/token" } }
                button type="submit" { "Log in" }
            }
        },
    )
}

async fn login_form() -> Markup {
    login_page(None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(server): State<Arc<Server>>, Form(form): Form<LoginForm>) -> Response {
    access::login(&server, &form.token).unwrap_or_else(api::error_response)
}

async fn logout(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    access::logout(&server, &headers)
}

/// An app's health in a word, from its services' states: `running`, `failed`,
/// `stopped`, `starting` or `unknown` (no systemd).
fn health(status: &AppStatus) -> &'static str {
    let states: Vec<Option<&str>> = status
        .services
        .iter()
        .map(|service| service.state.active_state.as_deref())
        .collect();
    if states.iter().any(Option::is_none) {
        "unknown"
    } else if states.contains(&Some("failed")) {
        "failed"
    } else if states.iter().all(|state| *state == Some("active")) {
        "running"
    } else if states.contains(&Some("activating")) {
        "starting"
    } else {
        "stopped"
    }
}

async fn index(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let result = blocking(server.target.clone(), |target: &Target| {
        let apps = list::list(target)?.apps;
        Ok(apps
            .into_iter()
            .map(|app| {
                let status = status::status(&app.name, target).ok();
                (app, status)
            })
            .collect::<Vec<_>>())
    })
    .await;
    let apps = match result {
        Ok(apps) => apps,
        Err(err) => return failure_page(&caller, err),
    };
    let body = html! {
        h1 { "Apps" }
        @if apps.is_empty() {
            p { "No app is installed. " a href="/upload" { "Upload a bundle" } "." }
        }
        ul.apps {
            @for (app, status) in &apps {
                @let state = status.as_ref().map_or("unknown", health);
                li {
                    a.app href={ "/apps/" (app.name) } {
                        span.name { (app.name) }
                        span.version { (app.version) }
                        span class={ "health " (state) } { (state) }
                    }
                }
            }
        }
    };
    page("Apps", Some(&caller), body).into_response()
}

/// A unit's state in a few words.
fn state_words(state: &UnitStatus) -> String {
    match (&state.active_state, &state.sub_state) {
        (Some(active), Some(sub)) => format!("{active} ({sub})"),
        (Some(active), None) => active.clone(),
        _ => "unknown".to_owned(),
    }
}

#[derive(Deserialize, Default)]
struct Flash {
    #[serde(default)]
    done: Option<String>,
}

async fn app_page(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let name = app.clone();
    let (status, recent) = match blocking(server.target.clone(), move |target| {
        let status = status::status(&name, target)?;
        let recent = notify::list(target, Some(&name), APP_NOTIFICATIONS)?;
        Ok((status, recent.notifications))
    })
    .await
    {
        Ok(found) => found,
        Err(err) => return failure_page(&caller, err),
    };
    let csrf = caller.csrf.clone().unwrap_or_default();
    let state = health(&status);
    let can_roll_back = status
        .releases
        .iter()
        .position(|release| release.current)
        .is_some_and(|at| at > 0);
    let body = html! {
        h1 { (status.name) " " span.version { (status.version) } " "
            span class={ "health " (state) } #health { (state) } }
        @if let Some(done) = &flash.done { p.done #flash { (done) } }
        nav.tabs {
            a href={ "/apps/" (app) "/config" } { "Configuration" }
            a href={ "/apps/" (app) "/logs" } { "Logs" }
        }
        section {
            h2 { "Units" }
            div.scroll { table {
                tr { th { "unit" } th { "state" } th { "since" } th { "port" } }
                @for service in &status.services {
                    tr.unit {
                        td { (service.state.unit) }
                        td class={ "state " (service.state.active_state.as_deref().unwrap_or("unknown")) } { (state_words(&service.state)) }
                        td { (service.state.since.as_deref().unwrap_or("")) }
                        td { @if let Some(port) = service.port { (port) } }
                    }
                }
                @for task in &status.tasks {
                    tr.unit {
                        td { (task.timer.state.unit) }
                        td { (state_words(&task.timer.state)) }
                        td { "next " (task.timer.next_elapse.as_deref().unwrap_or("never")) }
                        td {}
                    }
                }
            } }
        }
        section {
            h2 { "Releases" }
            div.scroll { table #releases {
                tr { th { "release" } th { "version" } th { "deployed" } th {} }
                @for release in status.releases.iter().rev() {
                    tr.current[release.current] {
                        td { (release.release) }
                        td { (release.version) }
                        td { (release.installed_at) }
                        td { @if release.current { "current" } }
                    }
                }
            } }
            @if can_roll_back {
                form method="post" action={ "/apps/" (app) "/rollback" } {
                    input type="hidden" name="csrf" value=(csrf);
                    button #rollback type="submit" { "Roll back to the previous release" }
                }
            }
        }
        section {
            h2 { "Hooks" }
            @if status.hooks.is_empty() { p { "No hook has run." } }
            div.scroll { table {
                @for (hook, result) in &status.hooks {
                    tr {
                        td { (hook) }
                        td class={ "hook " (format!("{:?}", result.result).to_lowercase()) } {
                            (format!("{:?}", result.result).to_lowercase())
                            @if let Some(code) = result.exit_status { " (exit " (code) ")" }
                        }
                        td { (result.started_at) }
                        td { (result.release) }
                    }
                }
            } }
        }
        section #notifications {
            h2 { "Notifications" }
            @if recent.is_empty() { p { "No failure was recorded." } }
            @else { (notifications_table(&recent, false)) }
        }
        section {
            h2 { "Disk" }
            p { (crate::engine::gc::human_bytes(status.disk_usage.bytes)) " in "
                code { (status.path.display()) } }
        }
    };
    page(&status.name, Some(&caller), body).into_response()
}

async fn rollback_form(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
) -> Response {
    let audit = Change::new(&caller, "rollback", Some(&app));
    let request = RollbackRequest {
        app: app.clone(),
        when_held: WhenHeld::Wait,
    };
    let result = blocking(server.target.clone(), move |target| {
        rollback::rollback(&request, target)
    })
    .await;
    audit.audit(&result);
    match result {
        Ok(report) => see_app(&app, &format!("rolled back to {}", report.version)),
        Err(err) => failure_page(&caller, err),
    }
}

/// Back to the app's page, saying what was done.
fn see_app(app: &str, done: &str) -> Response {
    let query = serde_urlencoded::to_string([("done", done)]).unwrap_or_default();
    Redirect::to(&format!("/apps/{app}?{query}")).into_response()
}

/// The current spec and values of `app`.
async fn spec_and_values(server: &Server, app: &str) -> anyhow::Result<(ConfigSpec, ConfigShown)> {
    let app = app.to_owned();
    blocking(server.target.clone(), move |target| {
        let spec = InstalledApp::load(&target.apps, &app)?.current.spec;
        let shown = config::show(&app, target)?;
        Ok((spec, shown))
    })
    .await
}

/// What a field's input shows: the value given (after a refusal) or the file's.
fn shown_value(field: &Field, given: Option<&str>, shown: &ConfigShown) -> String {
    if field.is_secret() {
        return String::new();
    }
    if let Some(given) = given {
        return given.to_owned();
    }
    match shown.values.get(field.key.as_str()) {
        Some(ConfigValue::String(text)) => text.clone(),
        Some(value) => value.to_string(),
        None => String::new(),
    }
}

/// The browser's check of `field`: the HTML attributes that say the same as its rules.
fn field_input(field: &Field, value: &str, is_set: bool) -> Markup {
    let key = field.key.as_str();
    let min = field.min.map(|min| min.to_string());
    let max = field.max.map(|max| max.to_string());
    let min_length = field.min_length.map(|min| min.to_string());
    let max_length = field.max_length.map(|max| max.to_string());
    let pattern = field.regex.clone();
    let required = field.required && !field.is_secret();
    match field.widget {
        Widget::Text => html! {
            textarea #(key) name=(key) rows="4" required[required]
                minlength=[min_length] maxlength=[max_length] { (value) }
        },
        Widget::Secret => html! {
            input #(key) type="password" name=(key) autocomplete="new-password"
                placeholder=(if is_set { "set: leave empty to keep it" } else { "not set" })
                pattern=[pattern] minlength=[min_length] maxlength=[max_length];
        },
        Widget::Boolean => html! {
            input type="hidden" name=(key) value="false";
            input #(key) type="checkbox" name=(key) value="true" checked[value == "true"];
        },
        Widget::Choice => html! {
            select #(key) name=(key) required[required] {
                @if !required { option value="" { "" } }
                @for choice in field.choices.iter().flatten() {
                    option value=(choice) selected[choice == value] { (choice) }
                }
            }
        },
        Widget::Integer | Widget::Port => {
            let (min, max) = if field.widget == Widget::Port {
                (
                    Some(min.unwrap_or_else(|| "1".to_owned())),
                    Some(max.unwrap_or_else(|| "65535".to_owned())),
                )
            } else {
                (min, max)
            };
            html! {
                input #(key) type="number" name=(key) value=(value) step="1"
                    min=[min] max=[max] required[required];
            }
        }
        Widget::Number => html! {
            input #(key) type="number" name=(key) value=(value) step="any"
                min=[min] max=[max] required[required];
        },
        Widget::Url | Widget::Email | Widget::Path | Widget::String | Widget::Duration => {
            let kind = match field.widget {
                Widget::Url => "url",
                Widget::Email => "email",
                _ => "text",
            };
            let pattern = match field.widget {
                Widget::Path => Some(
                    pattern
                        .map_or_else(|| "/.*".to_owned(), |pattern| format!("(?=/)(?:{pattern})")),
                ),
                Widget::Duration => Some("\\s*[0-9].*".to_owned()),
                _ => pattern,
            };
            let rule = field
                .regex
                .as_ref()
                .map(|regex| format!("must match regex {regex}"));
            html! {
                input #(key) type=(kind) name=(key) value=(value) required[required]
                    pattern=[pattern] minlength=[min_length] maxlength=[max_length]
                    data-rule=[rule];
            }
        }
    }
}

/// The configuration form: one row per field of the spec, each with its help and the
/// error found for it.
fn config_markup(
    app: &str,
    caller: &Caller,
    spec: &ConfigSpec,
    shown: &ConfigShown,
    given: &[(String, String)],
    problems: &std::collections::BTreeMap<String, String>,
    problem: Option<&str>,
) -> Markup {
    let csrf = caller.csrf.clone().unwrap_or_default();
    let given_value = |key: &str| {
        given
            .iter()
            .rev()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    html! {
        h1 { (app) ": configuration" }
        p { code { (shown.file) } }
        @if let Some(problem) = problem { p.problem #problem { (problem) } }
        form.card #config method="post" action={ "/apps/" (app) "/config" } novalidate data-validate {
            input type="hidden" name="csrf" value=(csrf);
            @for field in &spec.fields {
                @let key = field.key.as_str();
                @let is_set = shown.values.contains_key(key);
                div.field {
                    label for=(key) { (key) @if field.required { " *" } }
                    (field_input(field, &shown_value(field, given_value(key), shown), is_set))
                    span.error id={ "error-" (key) } { (problems.get(key).map(String::as_str).unwrap_or("")) }
                    @if let Some(help) = &field.help { span.help { (help) } }
                }
            }
            button #save type="submit" { "Save and restart" }
        }
    }
}

async fn config_page(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
) -> Response {
    match spec_and_values(&server, &app).await {
        Ok((spec, shown)) => page(
            &format!("{app}: configuration"),
            Some(&caller),
            config_markup(&app, &caller, &spec, &shown, &[], &Default::default(), None),
        )
        .into_response(),
        Err(err) => failure_page(&caller, err),
    }
}

async fn config_form(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let (spec, shown) = match spec_and_values(&server, &app).await {
        Ok(found) => found,
        Err(err) => return failure_page(&caller, err),
    };
    // The last value of each field (a checkbox follows its hidden `false`); an empty
    // secret keeps the one set.
    let mut values: Vec<(String, String)> = Vec::new();
    for (key, value) in &form {
        if key == "csrf" {
            continue;
        }
        values.retain(|(name, _)| name != key);
        values.push((key.clone(), value.clone()));
    }
    values.retain(|(key, value)| {
        !(value.is_empty() && spec.field(key).is_some_and(Field::is_secret))
    });
    let set: Vec<String> = values
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let refused = |problems, problem: Option<&str>| {
        let markup = config_markup(&app, &caller, &spec, &shown, &values, &problems, problem);
        (
            StatusCode::BAD_REQUEST,
            page(&format!("{app}: configuration"), Some(&caller), markup),
        )
            .into_response()
    };
    let problems = match GivenValues::parse(&spec, &set, None) {
        Ok(given) => given.problems(&spec),
        Err(err) => return refused(Default::default(), Some(&format!("{err:#}"))),
    };
    if !problems.is_empty() {
        return refused(
            problems,
            Some("Some values are not right: nothing was saved."),
        );
    }
    let audit = Change::new(&caller, "config", Some(&app));
    let request = ConfigSetRequest {
        app: app.clone(),
        set,
        file: None,
        when_held: WhenHeld::Wait,
    };
    let result = blocking(server.target.clone(), move |target| {
        config::set(&request, target)
    })
    .await;
    audit.audit(&result);
    match result {
        Ok(change) if change.written() => {
            let mut said = format!("saved {}", change.changed_keys.join(", "));
            for (verb, units) in [
                ("restarted", &change.restarted),
                ("reloaded", &change.reloaded),
            ] {
                if !units.is_empty() {
                    said.push_str(&format!(", {verb} {}", units.join(" ")));
                }
            }
            see_app(&app, &said)
        }
        Ok(_) => see_app(&app, "configuration unchanged"),
        Err(err) => refused(Default::default(), Some(&format!("{err:#}"))),
    }
}

async fn upload(Extension(caller): Extension<Caller>) -> Response {
    let body = html! {
        h1 { "Upload a bundle" }
        form.card #upload data-upload {
            input #bundle type="file" name="bundle" accept=".pyapp" required;
            button #send type="submit" { "Upload and install" }
        }
        div #upload-progress hidden {
            progress #bar max="100" value="0" {}
            p #phase {}
            ul #events {}
        }
    };
    page("Upload", Some(&caller), body).into_response()
}

async fn logs_page(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
    UrlPath(app): UrlPath<String>,
    Query(query): Query<LogQuery>,
) -> Response {
    let name = app.clone();
    let asked = query.clone();
    let result = blocking(server.target.clone(), move |target| {
        let status = status::status(&name, target)?;
        let report = api::query_logs(
            &name,
            &LogQuery {
                follow: false,
                ..asked
            },
            target,
        )?;
        Ok((status, report))
    })
    .await;
    let (status, report) = match result {
        Ok(found) => found,
        Err(err) => return failure_page(&caller, err),
    };
    let units: Vec<&str> = status
        .services
        .iter()
        .map(|service| service.state.unit.as_str())
        .chain(status.tasks.iter().map(|task| task.service.unit.as_str()))
        .collect();
    let unit = query.unit.clone().unwrap_or_default();
    let level = query.level.clone().unwrap_or_default();
    let body = html! {
        h1 { (app) ": logs" }
        form.card.filters #log-filter method="get" action={ "/apps/" (app) "/logs" } {
            select name="unit" aria-label="unit" {
                option value="" { "all units" }
                @for name in &units { option value=(name) selected[unit == *name] { (name) } }
                option value="hooks" selected[unit == "hooks"] { "hooks" }
            }
            select name="level" aria-label="level" {
                option value="" { "any level" }
                @for name in ["err", "warning", "notice", "info", "debug"] {
                    option value=(name) selected[level == name] { (name) " and worse" }
                }
            }
            input #search type="search" name="text" placeholder="search" value=(query.text.clone().unwrap_or_default());
            input type="text" name="regex" placeholder="regex" value=(query.regex.clone().unwrap_or_default());
            input type="text" name="since" placeholder="since (10m, 2h)" value=(query.since.clone().unwrap_or_default());
            label.check { input #follow type="checkbox" data-follow={ "/api/v1/apps/" (app) "/logs" }; " follow" }
            button #search-button type="submit" { "Search" }
        }
        div.scroll { table.log #log {
            @for line in &report.lines {
                tr {
                    td.time { (line["time"].as_str().unwrap_or("")) }
                    td.source { (line["source"].as_str().unwrap_or("")) }
                    td.message { (line["message"].as_str().unwrap_or("")) }
                }
            }
        } }
        @if report.lines.is_empty() { p #no-lines { "No line matches." } }
    };
    page(&format!("{app}: logs"), Some(&caller), body).into_response()
}

/// How many notifications an app's page shows.
const APP_NOTIFICATIONS: usize = 5;

/// A few words for how a channel's delivery stands: `delivered (2 tries)`.
fn delivery_words(item: &Notification) -> Vec<(String, String)> {
    item.deliveries
        .iter()
        .map(|delivery| {
            let value = |v: serde_json::Result<serde_json::Value>| {
                v.ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default()
            };
            let state = value(serde_json::to_value(delivery.state));
            let channel = value(serde_json::to_value(delivery.channel));
            let tries = match delivery.attempts {
                1 => " (1 try)".to_owned(),
                n => format!(" ({n} tries)"),
            };
            let error = delivery
                .last_error
                .as_deref()
                .map(|error| format!(": {error}"))
                .unwrap_or_default();
            (state.clone(), format!("{channel} {state}{tries}{error}"))
        })
        .collect()
}

/// The events of `items`, newest first; `with_app`: a column naming each one's app.
fn notifications_table(items: &[Notification], with_app: bool) -> Markup {
    html! {
        div.scroll { table.notifications {
            tr {
                th { "time" }
                @if with_app { th { "app" } }
                th { "what" } th { "message" } th { "delivery" }
            }
            @for item in items {
                @let kind = serde_json::to_value(item.event.kind).ok();
                tr.notification {
                    td.time { (item.event.time) }
                    @if with_app {
                        td { a href={ "/apps/" (item.event.app) } { (item.event.app) } }
                    }
                    td.kind { (kind.as_ref().and_then(|k| k.as_str()).unwrap_or(""))
                        @if let Some(unit) = &item.event.unit { br; code { (unit) } }
                        @if let Some(hook) = &item.event.hook { br; "hook " code { (hook) } } }
                    td.message { (item.event.message)
                        @if !item.event.log.is_empty() {
                            details { summary { "log" } pre { (item.event.log.join("\n")) } }
                        } }
                    td {
                        @let words = delivery_words(item);
                        @if words.is_empty() {
                            span class={ "delivery " (format!("{:?}", item.state).to_lowercase()) } {
                                @if matches!(item.state, notify::NotificationState::Pending) { "pending" }
                                @else { "not sent (no notify.yaml)" }
                            }
                        }
                        @for (state, text) in &words {
                            span class={ "delivery " (state) } { (text) } br;
                        }
                    }
                }
            }
        } }
    }
}

async fn notifications_page(
    State(server): State<Arc<Server>>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let result = blocking(server.target.clone(), |target: &Target| {
        notify::list(target, None, api::NOTIFICATIONS.0)
    })
    .await;
    let report = match result {
        Ok(report) => report,
        Err(err) => return failure_page(&caller, err),
    };
    let body = html! {
        h1 { "Notifications" }
        p.help { "Failed services, task runs, hooks, installs and rollbacks, newest first, and how \
            their delivery went (" code { "/etc/pyapp/notify.yaml" } ", FORMAT.md 13.1)." }
        @if report.notifications.is_empty() { p #no-notifications { "No failure was recorded." } }
        @else { (notifications_table(&report.notifications, true)) }
    };
    page("Notifications", Some(&caller), body).into_response()
}
