//! The nginx snippet: `location` blocks for one app, included inside a `server` block
//! (ngx_http_core_module `location`/`alias`, ngx_http_proxy_module `proxy_*`).

use std::fmt::Write as _;

use super::{Backend, Linking, Site};

/// `--web nginx`: a server block of `conf.d/` (included in `http` by Debian's and nginx.org's
/// nginx.conf) includes every app's locations.
pub(super) const LINKING: Linking = Linking {
    name: "nginx",
    package: "nginx",
    snippet: "nginx.conf",
    config_dir: "etc/nginx",
    link_dir: "etc/nginx/pyapp.d",
    include_point: "etc/nginx/conf.d/pyapp.conf",
    include_text: INCLUDE_POINT,
    enabled_by: None,
    check: &["nginx", "-t", "-q"],
    unit: "nginx.service",
    usual_problem: "a default server already on port 80, e.g. /etc/nginx/sites-enabled/default, \
                    or another app at the same mount",
};

/// `/etc/nginx/conf.d/pyapp.conf` as pyapp-install first writes it.
const INCLUDE_POINT: &str = "\
# Written by pyapp-install the first time it linked an app into nginx (spec/FORMAT.md
# section 11). It is yours now: pyapp-install never changes or removes an existing one.
# Each app linked with `pyapp-install --web nginx` is a file of /etc/nginx/pyapp.d/ with
# its location blocks. To serve the apps from your own server block instead (TLS, a
# server_name), move the include line there and leave this file empty.
server {
    listen 80 default_server;
    listen [::]:80 default_server;
    server_name _;
    include /etc/nginx/pyapp.d/*.conf;
}
";

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
        let links = match &dir.no_links_below {
            Some(below) => format!("\n    disable_symlinks on from={below};"),
            None => String::new(),
        };
        let _ = writeln!(
            text,
            "location ^~ {url} {{\n    alias \"{dir}\";{links}\n}}",
            url = dir.url,
            dir = dir.dir
        );
    }
    // `^~` keeps the server's regex locations from taking the app's requests; at `/` a
    // plain prefix location leaves them their usual precedence.
    let modifier = if site.prefix.is_empty() { "" } else { "^~ " };
    // With a URI after the address, nginx replaces the location's prefix by it.
    let path = if site.strip_prefix { "/" } else { "" };
    let upstream = match &site.backend {
        Backend::Socket(socket) => format!("http://unix:{socket}:{path}"),
        Backend::Port(port) => format!("http://127.0.0.1:{port}{path}"),
    };
    let prefix_header = if site.strip_prefix {
        format!("\n    proxy_set_header X-Forwarded-Prefix {};", site.prefix)
    } else {
        String::new()
    };
    let _ = writeln!(
        text,
        "location {modifier}{mount} {{\n    \
         proxy_pass \"{upstream}\";{prefix_header}\n    \
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
