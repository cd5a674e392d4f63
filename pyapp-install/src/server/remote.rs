//! `pyapp-install --remote URL BUNDLE`: the client side of `POST /api/v1/apps`, for
//! deploying from CI. One plain HTTP/1.1 request over TCP (`http://HOST:PORT`, through an
//! SSH tunnel for another machine) or the unix socket (`unix:/run/pyapp/api.sock`), the
//! bundle streamed from its file; no async runtime, no TLS of its own.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::Path;

use anyhow::{bail, Context, Result};
use pyapp_cli::Refusal;
use serde_json::Value;

/// Where the server is.
enum Endpoint {
    Tcp { authority: String },
    Unix { path: String },
}

fn endpoint(url: &str) -> Result<Endpoint> {
    if let Some(path) = url.strip_prefix("unix:") {
        return Ok(Endpoint::Unix {
            path: path.to_owned(),
        });
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(Refusal::new(format!(
            "--remote {url}: expected http://HOST:PORT or unix:/PATH/TO/api.sock"
        ))
        .with_hint("for another machine, tunnel its port: ssh -L 8470:127.0.0.1:8470 SERVER")
        .into());
    };
    Ok(Endpoint::Tcp {
        authority: rest.trim_end_matches('/').to_owned(),
    })
}

/// Installs `bundle` on the server at `url`; its report (as `--json` prints it), or the
/// server's refusal as one.
pub fn install(
    url: &str,
    token: Option<&str>,
    bundle: &Path,
    allow_downgrade: bool,
) -> Result<Value> {
    let mut file =
        File::open(bundle).with_context(|| format!("failed to open `{}`", bundle.display()))?;
    let length = file
        .metadata()
        .with_context(|| format!("failed to read `{}`", bundle.display()))?
        .len();
    let query = if allow_downgrade {
        "?allow-downgrade=true"
    } else {
        ""
    };
    let (host, mut stream): (String, Box<dyn Stream>) = match endpoint(url)? {
        Endpoint::Tcp { authority } => {
            let stream = TcpStream::connect(&authority)
                .with_context(|| format!("failed to connect to {url}"))?;
            (authority, Box::new(stream))
        }
        Endpoint::Unix { path } => {
            let stream = UnixStream::connect(&path)
                .with_context(|| format!("failed to connect to `{path}`"))?;
            ("localhost".to_owned(), Box::new(stream))
        }
    };
    let authorization = token
        .map(|token| format!("Authorization: Bearer {}\r\n", token.trim()))
        .unwrap_or_default();
    let head = format!(
        "POST /api/v1/apps{query} HTTP/1.1\r\nHost: {host}\r\n{authorization}\
         Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\
         Accept: application/json\r\nConnection: close\r\n\r\n"
    );
    let sent = stream
        .write_all(head.as_bytes())
        .and_then(|()| io::copy(&mut file, &mut stream).map(drop))
        .and_then(|()| stream.flush());
    let mut answer = Vec::new();
    // A server that refuses early (too large, no token) answers and closes before the
    // whole body is sent: its answer is what counts.
    let read = stream.read_to_end(&mut answer);
    if answer.is_empty() {
        sent.with_context(|| format!("failed to send the bundle to {url}"))?;
        read.with_context(|| format!("failed to read the answer of {url}"))?;
        bail!("{url} closed the connection without answering");
    }
    let (code, body) =
        parse_response(&answer).with_context(|| format!("{url} answered what is not HTTP"))?;
    let value: Value = serde_json::from_slice(&body).with_context(|| {
        format!(
            "{url} answered {code} with what is not JSON: {}",
            String::from_utf8_lossy(&body)
        )
    })?;
    if code == 200 {
        return Ok(value);
    }
    let error = value["error"].as_str().unwrap_or("refused").to_owned();
    let message = format!("{url}: {error}");
    if value["status"] == 2 {
        bail!(message);
    }
    let mut refusal = Refusal::new(message);
    if let Some(hint) = value["hint"].as_str() {
        refusal = refusal.with_hint(hint);
    }
    Err(refusal.into())
}

/// A connection the request goes over.
trait Stream: Read + Write {}
impl Stream for TcpStream {}
impl Stream for UnixStream {}

/// The status code and the (de-chunked) body of an HTTP/1.1 response.
fn parse_response(answer: &[u8]) -> Result<(u16, Vec<u8>)> {
    let end = answer
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .context("no end of the headers")?;
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines = head.split("\r\n");
    let code: u16 = lines
        .next()
        .and_then(|status| status.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .context("no status line")?;
    let chunked = lines.any(|line| {
        line.to_ascii_lowercase()
            .replace(' ', "")
            .starts_with("transfer-encoding:chunked")
    });
    let mut body = &answer[end + 4..];
    if !chunked {
        return Ok((code, body.to_vec()));
    }
    let mut whole = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|window| window == b"\r\n")
            .context("a chunk without its size line")?;
        let size_text = String::from_utf8_lossy(&body[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .context("a chunk size that is not hex")?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok((code, whole));
        }
        let chunk = body.get(..size).context("a chunk cut short")?;
        whole.extend_from_slice(chunk);
        body = body.get(size + 2..).context("a chunk cut short")?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_read_whole_or_chunked() {
        let plain = b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_response(plain).unwrap(), (413, b"{}".to_vec()));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n";
        assert_eq!(
            parse_response(chunked).unwrap(),
            (200, b"{\"a\":1}".to_vec())
        );
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn only_plain_http_and_unix_sockets_are_taken() {
        assert!(matches!(
            endpoint("unix:/run/pyapp/api.sock").unwrap(),
            Endpoint::Unix { .. }
        ));
        assert!(
            matches!(endpoint("http://127.0.0.1:8470/").unwrap(), Endpoint::Tcp { authority } if authority == "127.0.0.1:8470")
        );
        assert!(endpoint("https://example.org").is_err());
    }
}
