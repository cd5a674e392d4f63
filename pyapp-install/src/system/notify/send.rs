//! Sending one event on one channel, once: an HTTP/1.1 POST to the webhook (plain HTTP
//! over std's blocking sockets, no client library, no async runtime), or the command with
//! the event on its stdin, as its unprivileged user. The caller retries.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::config::{CommandChannel, Webhook};
use crate::system::privilege::spawn_as;

/// How often a running command is checked on.
const POLL: Duration = Duration::from_millis(20);

/// The most of a command's output kept for its error message.
const MAX_OUTPUT: u64 = 4096;

/// POSTs `body` (JSON) to `hook`; an answer other than 2xx, or none within `timeout`,
/// is an error saying what happened.
pub fn post(hook: &Webhook, body: &[u8], timeout: Duration) -> Result<()> {
    let addresses: Vec<_> = hook
        .address
        .to_socket_addrs()
        .with_context(|| format!("{}: cannot resolve {}", hook.url, hook.address))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for address in &addresses {
        match TcpStream::connect_timeout(address, timeout) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(err) => last = Some(err),
        }
    }
    let Some(mut stream) = stream else {
        let why = last.map_or_else(|| "no address".to_owned(), |err| err.to_string());
        bail!("{}: cannot connect: {why}", hook.url);
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: pyapp-install/{}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        hook.path,
        hook.host,
        env!("CARGO_PKG_VERSION"),
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .with_context(|| format!("{}: failed to send the event", hook.url))?;
    let mut answer = Vec::new();
    let mut limited = (&mut stream).take(MAX_OUTPUT);
    // The status line is all that counts; a server that keeps the connection open after
    // it is done is not waited for beyond the first read.
    let mut buffer = [0u8; 1024];
    while !answer.contains(&b'\n') {
        let read = limited
            .read(&mut buffer)
            .with_context(|| format!("{}: no answer", hook.url))?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or("").trim();
    let code = status_line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|code| code.parse::<u16>().ok());
    match code {
        Some(200..=299) => Ok(()),
        Some(_) => bail!("{} answered \"{status_line}\"", hook.url),
        None => bail!("{}: not an HTTP answer: \"{status_line}\"", hook.url),
    }
}

/// Runs `channel`'s command with `body` on its stdin, as its user, in `/`, with only
/// `PATH` and `LANG` set; killed at `timeout`. Exit status 0 delivers.
pub fn run(channel: &CommandChannel, body: &[u8], timeout: Duration) -> Result<()> {
    let (program, args) = channel
        .argv
        .split_first()
        .context("an empty notification command")?;
    let mut command = Command::new(program);
    command
        .args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    spawn_as(&mut command, (channel.user.uid, channel.user.gid));
    let mut child = command
        .spawn()
        .with_context(|| format!("failed to start `{program}` as {}", channel.user.name))?;
    let mut stdin = child.stdin.take().context("no stdin for the command")?;
    let body = body.to_vec();
    // Written from a thread: a command that reads nothing must not block us.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = output(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = output(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().context("failed to wait for the command")? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    let _ = writer.join();
    let said = [stderr, stdout]
        .into_iter()
        .filter_map(|reader| reader.join().ok())
        .map(|text| text.trim().to_owned())
        .find(|text| !text.is_empty())
        .map(|text| format!(": {}", text.lines().last().unwrap_or_default()))
        .unwrap_or_default();
    match status {
        None => bail!("`{program}` timed out after {} s", timeout.as_secs()),
        Some(status) if status.success() => Ok(()),
        Some(status) => bail!("`{program}` failed ({status}){said}"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn hook(address: &str) -> Webhook {
        Webhook {
            url: format!("http://{address}/in"),
            address: address.to_owned(),
            host: address.to_owned(),
            path: "/in".to_owned(),
        }
    }

    /// A server answering one request with `status`; returns what it received.
    fn serve_once(status: &'static str) -> (String, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let read = stream.read(&mut buffer).unwrap();
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= length {
                        break;
                    }
                }
            }
            stream
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
            String::from_utf8(request).unwrap()
        });
        (address, handle)
    }

    #[test]
    fn the_webhook_gets_one_post_and_a_refusal_is_an_error() {
        let (address, server) = serve_once("204 No Content");
        post(
            &hook(&address),
            b"{\"kind\":\"task-failed\"}",
            Duration::from_secs(5),
        )
        .unwrap();
        let request = server.join().unwrap();
        assert!(request.starts_with("POST /in HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("\r\nContent-Type: application/json\r\n"),
            "{request}"
        );
        assert!(
            request.ends_with("\r\n\r\n{\"kind\":\"task-failed\"}"),
            "{request}"
        );

        let (address, server) = serve_once("503 Service Unavailable");
        let err = post(&hook(&address), b"{}", Duration::from_secs(5)).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("answered \"HTTP/1.1 503 Service Unavailable\""),
            "{err}"
        );
        server.join().unwrap();

        let closed = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let err = post(&hook(&closed), b"{}", Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("cannot connect"), "{err}");
    }
}
