//! The lighttpd 1.4 snippet: one chain of `$HTTP["url"]` conditions for one app (mod_alias
//! `alias.url`, mod_redirect `url.redirect`, mod_proxy `proxy.server`/`proxy.forwarded`).
//! The first matching branch applies: static directories, then the mount itself, then the
//! proxy.

use std::fmt::Write as _;

use super::{Backend, Site};

/// The text of `APPS/APP/web/lighttpd.conf`.
pub fn snippet(site: &Site) -> String {
    let mut text = site.header(
        "lighttpd 1.4",
        "with mod_alias, mod_redirect and mod_proxy in server.modules: include it in lighttpd.conf",
    );
    let mount = site.mount();
    let mut branch = "";
    for dir in &site.statics {
        let _ = writeln!(
            text,
            "{branch}$HTTP[\"url\"] =^ \"{url}\" {{\n    alias.url = ( \"{url}\" => \"{path}\" )\n}}",
            url = dir.url,
            path = dir.dir
        );
        branch = "else ";
    }
    if !site.prefix.is_empty() {
        let _ = writeln!(
            text,
            "{branch}$HTTP[\"url\"] == \"{prefix}\" {{\n    url.redirect = ( \"\" => \"{mount}\" )\n}}",
            prefix = site.prefix
        );
        branch = "else ";
    }
    let host = match &site.backend {
        Backend::Socket(path) => format!("\"host\" => \"{path}\""),
        Backend::Port(port) => format!("\"host\" => \"127.0.0.1\", \"port\" => {port}"),
    };
    let _ = writeln!(
        text,
        "{branch}$HTTP[\"url\"] =^ \"{mount}\" {{\n    \
         server.max-request-size = {kib}\n    \
         proxy.server = ( \"\" => ( ( {host}, \"connect-timeout\" => {connect}, \
         \"write-timeout\" => {timeout}, \"read-timeout\" => {timeout} ) ) )\n    \
         proxy.forwarded = ( \"for\" => 1, \"proto\" => 1, \"host\" => 1 )\n}}",
        // lighttpd counts the request size in KiB.
        kib = site.max_body_bytes.div_ceil(1024),
        connect = site.connect_timeout(),
        timeout = site.timeout,
    );
    text
}
