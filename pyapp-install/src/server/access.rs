//! Who may do what. On the unix socket, whoever the socket's mode lets connect (root and
//! the `pyapp-admin` group). On HTTP: the token (made at first start, 0600, rotated with
//! `serve --rotate-token`) as `Authorization: Bearer TOKEN`, or a session cookie the login
//! form gives for it (HttpOnly, SameSite=Strict). A change made with a session also needs
//! the session's CSRF token (`X-CSRF-Token` header or `csrf` form field) and, when the
//! browser sends one, an `Origin` that is the server itself. Requests are rate limited per
//! listener and failed logins more strictly.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};

use super::api::{refusal_response, FORM_LIMIT};
use super::listen::Peer;
use super::Server;

/// The session cookie's name.
const COOKIE: &str = "pyapp_session";

/// How long a session lasts.
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Failed token checks allowed in a burst, and how many come back per minute.
const FAILED_LOGINS: f64 = 10.0;

/// The file name of the token in the state directory.
const TOKEN_FILE: &str = "token";

/// Who made a request, as the handlers and the audit record see it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `uid 0 (socket)`, `token from 127.0.0.1:5000 (http)`, `session from …`.
    pub who: String,
    /// The session's CSRF token, for the forms of the console (none on the socket or with
    /// a bearer token: no form needs one there).
    pub csrf: Option<String>,
}

/// The HTTP access state: where the token is, the sessions, the rate limits.
pub struct Access {
    token_path: PathBuf,
    sessions: Mutex<HashMap<String, Session>>,
    requests: Mutex<Bucket>,
    failures: Mutex<Bucket>,
}

struct Session {
    csrf: String,
    /// The digest of the token it was opened with: rotating the token ends it.
    token: [u8; 32],
    expires: Instant,
}

/// A token bucket: `burst` requests at once, `rate` more per second.
struct Bucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(burst: f64, rate: f64) -> Bucket {
        Bucket {
            tokens: burst,
            burst,
            rate,
            last: Instant::now(),
        }
    }

    /// Takes one token; `false` when there is none left.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refill = now.duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Access {
    /// The access state of the server whose state directory is `dir` (made 0700), with a
    /// token made there now when it has none.
    pub fn open(dir: &Path, rate: u32) -> Result<Access> {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("failed to create `{}`", dir.display()))?;
        let token_path = dir.join(TOKEN_FILE);
        if !token_path.exists() {
            write_token(&token_path)?;
        }
        let rate = f64::from(rate.max(1));
        Ok(Access {
            token_path,
            sessions: Mutex::new(HashMap::new()),
            requests: Mutex::new(Bucket::new(rate * 5.0, rate)),
            failures: Mutex::new(Bucket::new(FAILED_LOGINS, FAILED_LOGINS / 60.0)),
        })
    }

    /// Where the token is.
    pub fn token_path(&self) -> &Path {
        &self.token_path
    }

    /// The digest of the current token (read again each time: a rotation applies at once).
    fn token_digest(&self) -> Result<[u8; 32]> {
        let token = read_token(&self.token_path)?;
        Ok(Sha256::digest(token.as_bytes()).into())
    }

    /// Whether `given` is the token; a wrong one uses up a failed attempt.
    fn check_token(&self, given: &str) -> Result<bool> {
        let right = self.token_digest()? == <[u8; 32]>::from(Sha256::digest(given.as_bytes()));
        Ok(right)
    }

    fn failed_attempt_allowed(&self) -> bool {
        self.failures
            .lock()
            .map(|mut bucket| bucket.take())
            .unwrap_or(false)
    }

    /// A new session for the current token: (its id, its CSRF token).
    fn open_session(&self) -> Result<(String, String)> {
        let id = random_hex()?;
        let csrf = random_hex()?;
        let token = self.token_digest()?;
        let mut sessions = self
            .sessions
            .lock()
            .map_err(|_| anyhow::anyhow!("the session table is poisoned"))?;
        let now = Instant::now();
        sessions.retain(|_, session| session.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                csrf: csrf.clone(),
                token,
                expires: now + SESSION_LIFETIME,
            },
        );
        Ok((id, csrf))
    }

    /// The CSRF token of the live session `id`, opened with the current token.
    fn session(&self, id: &str) -> Result<Option<String>> {
        let token = self.token_digest()?;
        let sessions = self
            .sessions
            .lock()
            .map_err(|_| anyhow::anyhow!("the session table is poisoned"))?;
        Ok(sessions
            .get(id)
            .filter(|session| session.expires > Instant::now() && session.token == token)
            .map(|session| session.csrf.clone()))
    }

    fn close_session(&self, id: &str) {
        if let Ok(mut sessions) = self.sessions.lock() {
            sessions.remove(id);
        }
    }
}

/// Writes a new token to `path` (0600), replacing any: sessions opened with the old one end.
pub fn rotate_token(state_dir: &Path) -> Result<PathBuf> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .with_context(|| format!("failed to create `{}`", state_dir.display()))?;
    let path = state_dir.join(TOKEN_FILE);
    write_token(&path)?;
    Ok(path)
}

fn write_token(path: &Path) -> Result<()> {
    let token = random_hex()?;
    pyapp_fs::write_atomic(path, format!("{token}\n").as_bytes(), 0o600)?;
    Ok(())
}

fn read_token(path: &Path) -> Result<String> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("failed to read the token `{}`", path.display()))?;
    Ok(text.trim().to_owned())
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> Result<String> {
    let mut bytes = [0; 32];
    File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("failed to read `/dev/urandom`")?;
    Ok(hex::encode(bytes))
}

/// Paths anyone may fetch on HTTP: the login form and the console's own assets.
fn is_open(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}

/// The middleware of both listeners: puts the [`Caller`] into the request, or refuses it.
pub async fn guard(
    State(server): State<Arc<Server>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    mut request: Request,
    next: Next,
) -> Response {
    let addr = match peer {
        Peer::Socket { .. } => {
            request.extensions_mut().insert(Caller {
                who: peer.describe(),
                csrf: None,
            });
            return next.run(request).await;
        }
        Peer::Http(addr) => addr,
    };
    let access = &server.access;
    let allowed = access
        .requests
        .lock()
        .map(|mut bucket| bucket.take())
        .unwrap_or(false);
    if !allowed {
        return refusal_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too many requests",
            Some("wait a moment, then try again"),
        );
    }
    let path = request.uri().path().to_owned();
    if is_open(&path) {
        request.extensions_mut().insert(Caller {
            who: format!("{addr} (http)"),
            csrf: None,
        });
        return next.run(request).await;
    }
    match authenticate(access, request.headers()) {
        Ok(Auth::Token) => {
            request.extensions_mut().insert(Caller {
                who: format!("token from {addr} (http)"),
                csrf: None,
            });
            next.run(request).await
        }
        Ok(Auth::Session(csrf)) => {
            let request = match check_csrf(request, &csrf).await {
                Ok(mut request) => {
                    request.extensions_mut().insert(Caller {
                        who: format!("session from {addr} (http)"),
                        csrf: Some(csrf),
                    });
                    request
                }
                Err(response) => return response,
            };
            next.run(request).await
        }
        Ok(Auth::None) if !path.starts_with("/api/") => Redirect::to("/login").into_response(),
        Ok(Auth::None) => refusal_response(
            StatusCode::UNAUTHORIZED,
            "this needs the server's token",
            Some("send `Authorization: Bearer TOKEN` (the token is in the server's state directory, root only)"),
        ),
        Ok(Auth::WrongToken) => refusal_response(
            StatusCode::UNAUTHORIZED,
            "wrong token",
            Some("the token may have been rotated: read it again"),
        ),
        Ok(Auth::TooMany) => refusal_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts",
            Some("wait a minute, then try again"),
        ),
        Err(err) => super::api::error_response(err),
    }
}

enum Auth {
    Token,
    Session(String),
    None,
    WrongToken,
    TooMany,
}

fn authenticate(access: &Access, headers: &HeaderMap) -> Result<Auth> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let given = value
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .unwrap_or("");
        if access.check_token(given.trim())? {
            return Ok(Auth::Token);
        }
        return Ok(if access.failed_attempt_allowed() {
            Auth::WrongToken
        } else {
            Auth::TooMany
        });
    }
    if let Some(id) = session_cookie(headers) {
        if let Some(csrf) = access.session(&id)? {
            return Ok(Auth::Session(csrf));
        }
    }
    Ok(Auth::None)
}

/// The session id of the `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_owned())
        })
}

/// Whether the method changes something (every method but GET, HEAD and OPTIONS).
fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A change made with a session must carry its CSRF token, in the `X-CSRF-Token` header or
/// (a form) the `csrf` field, and come from a page of this server when the browser says
/// where from. Returns the request (its form body read and put back) or the refusal.
async fn check_csrf(request: Request, csrf: &str) -> Result<Request, Response> {
    if !is_change(request.method()) {
        return Ok(request);
    }
    let refused = || {
        refusal_response(
            StatusCode::FORBIDDEN,
            "the request has no valid CSRF token",
            Some("reload the page and try again"),
        )
    };
    let headers = request.headers();
    if let (Some(origin), Some(host)) = (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        let same = origin
            .to_str()
            .ok()
            .zip(host.to_str().ok())
            .is_some_and(|(origin, host)| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
                    == Some(host)
            });
        if !same {
            return Err(refused());
        }
    }
    if let Some(given) = headers.get("x-csrf-token") {
        return if given.as_bytes() == csrf.as_bytes() {
            Ok(request)
        } else {
            Err(refused())
        };
    }
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(refused());
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT).await.map_err(|_| {
        refusal_response(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large", None)
    })?;
    let given = form_urlencoded_field(&bytes, "csrf");
    if given.as_deref() != Some(csrf) {
        return Err(refused());
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_urlencoded_field(body: &[u8], name: &str) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .find_map(|(key, value)| (key == name).then_some(value))
}

/// The login form's answer: with the right token a session cookie and the app list;
/// otherwise the form again with why (a failed attempt, counted).
pub fn login(server: &Server, token: &str) -> Result<Response> {
    let access = &server.access;
    if !access.failed_attempt_allowed_peek() {
        return Ok(refusal_response(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed attempts",
            Some("wait a minute, then try again"),
        ));
    }
    if !access.check_token(token.trim())? {
        let allowed = access.failed_attempt_allowed();
        let status = if allowed {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        return Ok((status, super::console::login_page(Some("wrong token"))).into_response());
    }
    let (id, _csrf) = access.open_session()?;
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFETIME.as_secs()
    );
    Ok((
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/".to_owned()),
        ],
    )
        .into_response())
}

/// Ends the request's session (the cookie is cleared too).
pub fn logout(server: &Server, headers: &HeaderMap) -> Response {
    if let Some(id) = session_cookie(headers) {
        server.access.close_session(&id);
    }
    let cookie = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0");
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, cookie),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response()
}

impl Access {
    /// Whether a failed attempt would still be allowed now (without using one up).
    fn failed_attempt_allowed_peek(&self) -> bool {
        self.failures
            .lock()
            .map(|bucket| {
                let refill = bucket.last.elapsed().as_secs_f64() * bucket.rate;
                (bucket.tokens + refill).min(bucket.burst) >= 1.0
            })
            .unwrap_or(false)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses() {
        let mut bucket = Bucket::new(3.0, 0.001);
        assert!(bucket.take() && bucket.take() && bucket.take());
        assert!(!bucket.take());
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; pyapp_session=abc; b=2".parse().unwrap(),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("abc"));
    }

    #[test]
    fn a_rotated_token_ends_the_sessions_of_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::open(dir.path(), 10).unwrap();
        let token = read_token(access.token_path()).unwrap();
        assert!(access.check_token(&token).unwrap());
        assert!(!access.check_token("nope").unwrap());
        let (id, csrf) = access.open_session().unwrap();
        assert_eq!(access.session(&id).unwrap(), Some(csrf));
        rotate_token(dir.path()).unwrap();
        assert_eq!(access.session(&id).unwrap(), None);
        assert!(!access.check_token(&token).unwrap());
        let mode = fs::metadata(access.token_path()).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            0o600
        );
    }
}
