//! The Apache httpd 2.4 snippet: server-level (or virtual-host) directives for one app
//! (mod_alias `Alias`/`RedirectMatch`, mod_proxy `ProxyPass` in `<Location>`, mod_proxy_http,
//! mod_headers `RequestHeader`). mod_proxy_http adds X-Forwarded-For and X-Forwarded-Host
//! itself.

use std::fmt::Write as _;

use super::{Backend, Linking, Site};

/// `--web apache`: Debian's layout, a configuration snippet enabled like `a2enconf` does,
/// included after the modules, for the main server and so every virtual host.
pub(super) const LINKING: Linking = Linking {
    name: "apache",
    package: "apache2",
    snippet: "apache.conf",
    config_dir: "etc/apache2",
    link_dir: "etc/apache2/pyapp.d",
    include_point: "etc/apache2/conf-available/pyapp.conf",
    include_text: INCLUDE_POINT,
    enabled_by: Some((
        "etc/apache2/conf-enabled/pyapp.conf",
        "../conf-available/pyapp.conf",
    )),
    check: &["apache2ctl", "-t"],
    unit: "apache2.service",
    usual_problem: "another app at the same mount, or a module that is missing",
};

/// `/etc/apache2/conf-available/pyapp.conf` as pyapp-install first writes it: the modules
/// the snippets need, unless `a2enmod` loaded them already, and the apps' snippets.
const INCLUDE_POINT: &str = "\
# Written by pyapp-install the first time it linked an app into Apache (spec/FORMAT.md
# section 11), and enabled (conf-enabled/pyapp.conf). It is yours now: pyapp-install never
# changes or removes an existing one. Each app linked with `pyapp-install --web apache` is a
# file of /etc/apache2/pyapp.d/; they apply to every virtual host. To serve them from one
# <VirtualHost> only, `a2disconf pyapp` and put these lines into it.
<IfModule !proxy_module>
    LoadModule proxy_module /usr/lib/apache2/modules/mod_proxy.so
</IfModule>
<IfModule !proxy_http_module>
    LoadModule proxy_http_module /usr/lib/apache2/modules/mod_proxy_http.so
</IfModule>
<IfModule !headers_module>
    LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
</IfModule>
<IfModule !alias_module>
    LoadModule alias_module /usr/lib/apache2/modules/mod_alias.so
</IfModule>
IncludeOptional /etc/apache2/pyapp.d/*.conf
";

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
    // The path after the address replaces the <Location>'s: the mount, or `/` to strip it.
    let upstream = site.upstream_root();
    let (target, reverse) = match &site.backend {
        Backend::Socket(path) => (
            format!("unix:{path}|http://localhost{upstream}"),
            format!("http://localhost{upstream}"),
        ),
        Backend::Port(port) => {
            let url = format!("http://127.0.0.1:{port}{upstream}");
            (url.clone(), url)
        }
    };
    let prefix_header = if site.strip_prefix {
        format!(
            "\n    RequestHeader set X-Forwarded-Prefix \"{}\"",
            site.prefix
        )
    } else {
        String::new()
    };
    let _ = writeln!(
        text,
        "<Location \"{mount}\">\n    \
         ProxyPass \"{target}\" connectiontimeout={connect} timeout={timeout}\n    \
         ProxyPassReverse \"{reverse}\"\n    \
         ProxyPreserveHost On\n    \
         RequestHeader set X-Forwarded-Proto \"expr=%{{REQUEST_SCHEME}}\"{prefix_header}\n    \
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
