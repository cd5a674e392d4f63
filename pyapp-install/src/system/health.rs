//! The health check that decides whether an upgrade stays: an HTTP `GET` on a service's
//! socket or port, retried until the check's timeout while the service starts. (Command
//! checks run like hooks, see [`crate::system::hooks`].)
//!
//! The HTTP client is deliberately tiny: HTTP/1.0, one request, only the status line is
//! read. A health endpoint is the app's own, on loopback or a unix socket.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a service listens, as the health check reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket (a host path: under `--root` it is inside the root).
    Socket(PathBuf),
    /// A port on 127.0.0.1.
    Port(u16),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Socket(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Port(port) => write!(f, "127.0.0.1:{port}"),
        }
    }
}

/// How long one attempt may take, and the pause between attempts.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// `GET path` on `endpoint` until it answers 2xx or 3xx, `timeout` passes, or `hopeless`
/// (asked between attempts) says why waiting longer is pointless (the service crashed).
/// The error says what the last attempt saw, and why it stopped.
pub fn check_http(
    endpoint: &Endpoint,
    path: &str,
    timeout: Duration,
    hopeless: &mut dyn FnMut() -> Option<String>,
) -> Result<u16, String> {
    poll(
        endpoint,
        path,
        timeout,
        |status| (200..400).contains(&status),
        hopeless,
    )
}

/// `GET path` on `endpoint` until it answers at all (any HTTP status: the server's workers
/// have loaded the app and serve), `timeout` passes, or `hopeless` says why waiting longer
/// is pointless. The error says what the last attempt saw.
pub fn wait_answering(
    endpoint: &Endpoint,
    path: &str,
    timeout: Duration,
    hopeless: &mut dyn FnMut() -> Option<String>,
) -> Result<u16, String> {
    poll(endpoint, path, timeout, |_| true, hopeless)
}

fn poll(
    endpoint: &Endpoint,
    path: &str,
    timeout: Duration,
    accepted: impl Fn(u16) -> bool,
    hopeless: &mut dyn FnMut() -> Option<String>,
) -> Result<u16, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match get_status(endpoint, path) {
            Ok(status) if accepted(status) => return Ok(status),
            Ok(status) => format!("GET {path} on {endpoint} answered {status}"),
            Err(err) => format!("GET {path} on {endpoint} failed: {err}"),
        };
        if let Some(reason) = hopeless() {
            return Err(format!("{last} ({reason})"));
        }
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Err(format!("{last} (gave up after {} s)", timeout.as_secs()));
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// One request; the status code of the answer.
fn get_status(endpoint: &Endpoint, path: &str) -> std::io::Result<u16> {
    let request =
        format!("GET {path} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: pyapp-install\r\n\r\n");
    match endpoint {
        Endpoint::Socket(socket) => {
            let stream = connect_no_follow(socket)?;
            stream.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
            stream.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
            exchange(stream, &request)
        }
        Endpoint::Port(port) => {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], *port));
            let stream = TcpStream::connect_timeout(&address, ATTEMPT_TIMEOUT)?;
            stream.set_read_timeout(Some(ATTEMPT_TIMEOUT))?;
            stream.set_write_timeout(Some(ATTEMPT_TIMEOUT))?;
            exchange(stream, &request)
        }
    }
}

fn exchange(mut stream: impl Read + Write, request: &str) -> std::io::Result<u16> {
    stream.write_all(request.as_bytes())?;
    let mut status_line = String::new();
    BufReader::new(stream.take(1024)).read_line(&mut status_line)?;
    parse_status_line(&status_line).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not an HTTP answer: {:?}", status_line.trim_end()),
        )
    })
}

/// The code of `HTTP/1.x NNN reason`.
fn parse_status_line(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts
        .next()?
        .parse()
        .ok()
        .filter(|code| (100..600).contains(code))
}

/// Connects to the unix socket at `path` itself, never through a link: `run/` is the app
/// user's, who could plant `run/web.sock -> /run/some-root-only.sock` for root to talk to.
/// The socket is opened with `O_PATH|O_NOFOLLOW` (a link is then the link, not a socket)
/// and connected through that descriptor's `/proc/self/fd/N`, which is the inode opened.
fn connect_no_follow(path: &Path) -> std::io::Result<UnixStream> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    if !opened.metadata()?.file_type().is_socket() {
        return Err(std::io::Error::other(format!(
            "`{}` is not a socket (a link, or another kind of file)",
            path.display()
        )));
    }
    UnixStream::connect(format!("/proc/self/fd/{}", opened.as_raw_fd()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::unix::net::UnixListener;

    /// Answer each of `answers` to one connection, in order (answers first in the zip, so
    /// no further connection is awaited once they are used up).
    fn serve(
        listener: impl Iterator<Item = std::io::Result<impl Read + Write>>,
        answers: Vec<&'static str>,
    ) {
        for (answer, stream) in answers.into_iter().zip(listener) {
            let mut stream = stream.unwrap();
            let mut request = [0u8; 512];
            let _ = stream.read(&mut request).unwrap();
            stream.write_all(answer.as_bytes()).unwrap();
        }
    }

    #[test]
    fn healthy_when_the_port_answers_2xx_after_a_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            serve(
                listener.incoming(),
                vec!["HTTP/1.0 503 Starting\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"],
            )
        });
        assert_eq!(
            check_http(
                &Endpoint::Port(port),
                "/health",
                Duration::from_secs(10),
                &mut || None
            ),
            Ok(200)
        );
        server.join().unwrap();
    }

    #[test]
    fn unhealthy_answers_are_reported_with_the_last_status() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("web.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            serve(
                listener.incoming(),
                vec!["HTTP/1.0 500 Broken\r\n\r\n"; 100],
            )
        });
        let error = check_http(
            &Endpoint::Socket(socket.clone()),
            "/health",
            Duration::from_secs(1),
            &mut || None,
        )
        .unwrap_err();
        assert_eq!(
            error,
            format!(
                "GET /health on unix:{} answered 500 (gave up after 1 s)",
                socket.display()
            )
        );
    }

    #[test]
    fn any_answer_is_answering_but_a_closed_connection_is_not() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            serve(listener.incoming(), vec!["", "HTTP/1.1 500 Broken\r\n\r\n"])
        });
        assert_eq!(
            wait_answering(
                &Endpoint::Port(port),
                "/",
                Duration::from_secs(10),
                &mut || None
            ),
            Ok(500)
        );
        server.join().unwrap();
    }

    #[test]
    fn nothing_listening_is_a_failure_not_a_hang() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let error = check_http(
            &Endpoint::Port(port),
            "/",
            Duration::from_secs(1),
            &mut || None,
        )
        .unwrap_err();
        assert!(
            error.starts_with(&format!("GET / on 127.0.0.1:{port} failed:")),
            "{error}"
        );
    }

    #[test]
    fn a_crashed_service_stops_the_wait_at_once() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut asked = 0;
        let started = Instant::now();
        let error = check_http(
            &Endpoint::Port(port),
            "/",
            Duration::from_secs(600),
            &mut || {
                asked += 1;
                (asked == 2).then(|| "hello-web.service failed".to_owned())
            },
        )
        .unwrap_err();
        assert!(error.ends_with(" (hello-web.service failed)"), "{error}");
        assert_eq!(asked, 2);
        assert!(started.elapsed() < Duration::from_secs(600));
    }

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line("HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status_line("SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line("HTTP/1.0 99999\r\n"), None);
    }

    #[test]
    fn a_link_in_place_of_the_socket_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = dir.path().join("root-only.sock");
        let listener = UnixListener::bind(&elsewhere).unwrap();
        listener.set_nonblocking(true).unwrap();
        let planted = dir.path().join("web.sock");
        std::os::unix::fs::symlink(&elsewhere, &planted).unwrap();
        let error = check_http(
            &Endpoint::Socket(planted.clone()),
            "/",
            Duration::from_secs(1),
            &mut || None,
        )
        .unwrap_err();
        assert!(
            error.contains(&format!("`{}` is not a socket", planted.display())),
            "{error}"
        );
        assert!(listener.accept().is_err(), "the planted link was followed");
    }
}
