//! The nginx snippet: `location` blocks for one app, included inside a `server` block
//! (ngx_http_core_module `location`/`alias`, ngx_http_proxy_module `proxy_*`).

use std::fmt::Write as _;

use super::{Backend, Site};

/// The text of `APPS/APP/web/nginx.conf`.
pub fn snippet(site: &Site) -> String {
    let mut text = site.header(
        "nginx",
        "inside a server block: include /etc/nginx/pyapp.d/*.conf;",
    );
    let mount = site.mount();
    if !site.prefix.is_empty() {
        // `/blog` itself: the app's pages are under `/blog/`.
        let _ = writeln!(
            text,
            "location = {prefix} {{\n    return 301 {mount};\n}}",
            prefix = site.prefix
        );
    }
    for dir in &site.statics {
        let _ = writeln!(
            text,
            "location ^~ {url} {{\n    alias \"{dir}\";\n}}",
            url = dir.url,
            dir = dir.dir
        );
    }
    // `^~` keeps the server's regex locations from taking the app's requests; at `/` a
    // plain prefix location leaves them their usual precedence.
    let modifier = if site.prefix.is_empty() { "" } else { "^~ " };
    let upstream = match &site.backend {
        Backend::Socket(path) => format!("http://unix:{path}:"),
        Backend::Port(port) => format!("http://127.0.0.1:{port}"),
    };
    let _ = writeln!(
        text,
        "location {modifier}{mount} {{\n    \
         proxy_pass \"{upstream}\";\n    \
         proxy_set_header Host $host;\n    \
         proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n    \
         proxy_set_header X-Forwarded-Proto $scheme;\n    \
         proxy_set_header X-Forwarded-Host $host;\n    \
         client_max_body_size {body};\n    \
         proxy_connect_timeout {connect}s;\n    \
         proxy_send_timeout {timeout}s;\n    \
         proxy_read_timeout {timeout}s;\n}}",
        body = site.max_body_bytes,
        connect = site.connect_timeout(),
        timeout = site.timeout,
    );
    text
}
