//! The lighttpd 1.4 snippet: one chain of `$HTTP["url"]` conditions for one app (mod_alias
//! `alias.url`, mod_redirect `url.redirect`, mod_proxy `proxy.server`/`proxy.forwarded`).
//! The first matching branch applies: static directories, then the mount itself, then the
//! proxy.

use std::fmt::Write as _;

use super::{Backend, Linking, Site};

/// `--web lighttpd`: Debian's layout, a configuration file enabled like
/// `lighty-enable-mod` does (`conf-enabled/*.conf` is included by lighttpd.conf).
pub(super) const LINKING: Linking = Linking {
    name: "lighttpd",
    package: "lighttpd",
    snippet: "lighttpd.conf",
    config_dir: "etc/lighttpd",
    link_dir: "etc/lighttpd/pyapp.d",
    include_point: "etc/lighttpd/conf-available/50-pyapp.conf",
    include_text: INCLUDE_POINT,
    enabled_by: Some((
        "etc/lighttpd/conf-enabled/50-pyapp.conf",
        "../conf-available/50-pyapp.conf",
    )),
    check: &["lighttpd", "-tt", "-f", "/etc/lighttpd/lighttpd.conf"],
    unit: "lighttpd.service",
    usual_problem: "another app at the same mount",
};

/// `/etc/lighttpd/conf-available/50-pyapp.conf` as pyapp-install first writes it.
const INCLUDE_POINT: &str = "\
# Written by pyapp-install the first time it linked an app into lighttpd (spec/FORMAT.md
# section 11), and enabled (conf-enabled/50-pyapp.conf). It is yours now: pyapp-install
# never changes or removes an existing one. Each app linked with
# `pyapp-install --web lighttpd` is a file of /etc/lighttpd/pyapp.d/.
server.modules += ( \"mod_alias\", \"mod_redirect\", \"mod_setenv\", \"mod_proxy\" )
include \"/etc/lighttpd/pyapp.d/*.conf\"
";

/// The text of `APPS/APP/web/lighttpd.conf`.
pub fn snippet(site: &Site) -> String {
    let mut text = site.header(
        "lighttpd 1.4",
        "with mod_alias, mod_redirect, mod_setenv and mod_proxy in server.modules: include it in lighttpd.conf",
    );
    let mount = site.mount();
    let mut branch = "";
    for dir in &site.statics {
        // A directory the app writes: no link the app planted is followed.
        let links = if dir.no_links_below.is_some() {
            "\n    server.follow-symlink = \"disable\""
        } else {
            ""
        };
        let _ = writeln!(
            text,
            "{branch}$HTTP[\"url\"] =^ \"{url}\" {{\n    alias.url = ( \"{url}\" => \"{path}\" ){links}\n}}",
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
    // mod_proxy maps the mount to `/`; mod_setenv says what it was.
    let strip = if site.strip_prefix {
        format!(
            "\n    proxy.header = ( \"map-urlpath\" => ( \"{mount}\" => \"/\" ) )\n    \
             setenv.add-request-header = ( \"X-Forwarded-Prefix\" => \"{prefix}\" )",
            prefix = site.prefix
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        text,
        "{branch}$HTTP[\"url\"] =^ \"{mount}\" {{{strip}\n    \
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
