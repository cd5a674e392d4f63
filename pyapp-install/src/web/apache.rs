//! The Apache httpd 2.4 snippet: server-level (or virtual-host) directives for one app
//! (mod_alias `Alias`/`RedirectMatch`, mod_proxy `ProxyPass` in `<Location>`, mod_proxy_http,
//! mod_headers `RequestHeader`). mod_proxy_http adds X-Forwarded-For and X-Forwarded-Host
//! itself.

use std::fmt::Write as _;

use super::{Backend, Site};

/// The text of `APPS/APP/web/apache.conf`.
pub fn snippet(site: &Site) -> String {
    let mut text = site.header(
        "Apache httpd 2.4",
        "with mod_proxy, mod_proxy_http, mod_headers and mod_alias: Include it in the server or a <VirtualHost>",
    );
    let mount = site.mount();
    if !site.prefix.is_empty() {
        let _ = writeln!(
            text,
            "RedirectMatch 301 \"^{prefix}$\" \"{mount}\"",
            prefix = site.prefix
        );
    }
    // The address mod_proxy connects to, and the URL the app's redirects name.
    let (target, reverse) = match &site.backend {
        Backend::Socket(path) => (
            format!("unix:{path}|http://localhost{mount}"),
            format!("http://localhost{mount}"),
        ),
        Backend::Port(port) => {
            let url = format!("http://127.0.0.1:{port}{mount}");
            (url.clone(), url)
        }
    };
    let _ = writeln!(
        text,
        "<Location \"{mount}\">\n    \
         ProxyPass \"{target}\" connectiontimeout={connect} timeout={timeout}\n    \
         ProxyPassReverse \"{reverse}\"\n    \
         ProxyPreserveHost On\n    \
         RequestHeader set X-Forwarded-Proto \"expr=%{{REQUEST_SCHEME}}\"\n    \
         LimitRequestBody {body}\n\
         </Location>",
        connect = site.connect_timeout(),
        timeout = site.timeout,
        body = site.max_body_bytes,
    );
    // Static directories after the proxy: the later <Location> wins for its paths.
    for dir in &site.statics {
        let _ = writeln!(
            text,
            "Alias \"{url}\" \"{path}\"\n\
             <Directory \"{path}\">\n    \
             Options None\n    \
             AllowOverride None\n    \
             Require all granted\n\
             </Directory>\n\
             <Location \"{url}\">\n    \
             ProxyPass \"!\"\n\
             </Location>",
            url = dir.url,
            path = dir.dir
        );
    }
    text
}
