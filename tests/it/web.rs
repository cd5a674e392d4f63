//! Serving the example app through a web server (FORMAT.md 11): the snippets pyapp-install
//! writes pass the real servers' own configuration checks (`nginx -t`, `apache2 -t`,
//! `lighttpd -tt`) and a broken one fails them; `--web nginx` under `--root` links without
//! touching the host; and under a real systemd a real nginx serves hello under its mount,
//! static files from disk and pages from the app, over a port and over a socket.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::harness::{self, bin, build_bundle, edit, fixture_copy, stderr};

/// The `web` section the tests add to hello's metadata.
const MOUNTED: &str = "web:\n  mount: /hello\n  max-body-size: 1M\n  timeout: 30\n";

/// hello at `version`, with `listen` (`port`, the fixture's, or `socket`) and `web` added
/// to its metadata, built into `out`.
fn bundle(out: &Path, version: &str, listen: &str, web: &str) -> PathBuf {
    let project = crate::harness::hello_at_version(version);
    edit(
        project.path(),
        "metadata.yaml",
        "    listen: port\n",
        &format!("    listen: {listen}\n"),
    );
    let metadata = project.path().join("metadata.yaml");
    let text = fs::read_to_string(&metadata).unwrap();
    fs::write(&metadata, format!("{text}{web}")).unwrap();
    let dir = out.join(format!("{version}-{listen}"));
    fs::create_dir_all(&dir).unwrap();
    build_bundle(project.path(), &dir)
}

/// hello installed into a scratch root with `listen` and `web`; the root and its
/// `APPS/hello/web`.
fn installed(listen: &str, web: &str) -> (TempDir, PathBuf) {
    let out = tempfile::tempdir().unwrap();
    let bundle = bundle(out.path(), "1.0.0", listen, web);
    let root = tempfile::tempdir().unwrap();
    let output = harness::pyapp_install_at(root.path(), &[bundle.to_str().unwrap()]);
    assert!(output.status.success(), "{}", stderr(&output));
    let web = root.path().join("applications/hello/web");
    (root, web)
}

/// A web server's check of a main configuration that includes one snippet.
#[derive(Clone, Copy, Debug)]
enum Server {
    Nginx,
    Apache,
    Lighttpd,
}

impl Server {
    const ALL: [Server; 3] = [Server::Nginx, Server::Apache, Server::Lighttpd];

    fn snippet(self) -> &'static str {
        match self {
            Server::Nginx => "nginx.conf",
            Server::Apache => "apache.conf",
            Server::Lighttpd => "lighttpd.conf",
        }
    }

    /// Runs the real server's configuration check on a minimal main configuration in
    /// `dir` that includes `snippets` where that server's snippets go (a server block for
    /// nginx, the server config for the others). Ok only when the check passes and says
    /// nothing else (lighttpd merely warns about an unknown directive).
    fn check(self, dir: &Path, snippets: &[&Path]) -> Result<(), String> {
        let includes = |directive: &str, end: &str| -> String {
            snippets
                .iter()
                .map(|path| format!("{directive} \"{}\"{end}\n", path.display()))
                .collect()
        };
        let dir_text = dir.display();
        let (program, main, args): (&str, String, Vec<String>) = match self {
            Server::Nginx => (
                "nginx",
                format!(
                    "error_log stderr;\npid {dir_text}/nginx.pid;\nevents {{}}\nhttp {{\n\
                     client_body_temp_path {dir_text}/body;\nserver {{\nlisten 127.0.0.1:8480;\n\
                     {}}}\n}}\n",
                    includes("include", ";")
                ),
                vec!["-t".into(), "-q".into(), "-p".into(), format!("{dir_text}/")],
            ),
            Server::Apache => (
                "apache2",
                format!(
                    "ServerRoot \"{dir_text}\"\nServerName localhost\nListen 127.0.0.1:8481\n\
                     PidFile {dir_text}/httpd.pid\nDefaultRuntimeDir {dir_text}\nErrorLog /dev/stderr\n\
                     {}{}",
                    [
                        ("mpm_event", "mpm_event"),
                        ("authz_core", "authz_core"),
                        ("alias", "alias"),
                        ("headers", "headers"),
                        ("proxy", "proxy"),
                        ("proxy_http", "proxy_http"),
                    ]
                    .iter()
                    .map(|(module, file)| format!(
                        "LoadModule {module}_module /usr/lib/apache2/modules/mod_{file}.so\n"
                    ))
                    .collect::<String>(),
                    includes("Include", "")
                ),
                vec!["-t".into()],
            ),
            Server::Lighttpd => (
                "lighttpd",
                format!(
                    "server.document-root = \"{dir_text}\"\nserver.port = 8482\n\
                     server.modules = ( \"mod_alias\", \"mod_redirect\", \"mod_setenv\", \"mod_proxy\" )\n{}",
                    includes("include", "")
                ),
                vec!["-tt".into()],
            ),
        };
        let program_path = Path::new("/usr/sbin").join(program);
        assert!(
            program_path.exists(),
            "{} is missing: install {program} (.ci/run does)",
            program_path.display()
        );
        let main_path = dir.join(format!("main-{}", self.snippet()));
        fs::write(&main_path, main).unwrap();
        let flag = if matches!(self, Server::Nginx) {
            "-c"
        } else {
            "-f"
        };
        let output = Command::new(program_path)
            .args(&args)
            .arg(flag)
            .arg(&main_path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr).into_owned();
        let quiet = said
            .lines()
            .all(|line| line.trim().is_empty() || line.trim() == "Syntax OK");
        if output.status.success() && quiet {
            Ok(())
        } else {
            Err(format!("{self:?} ({}): {said}", output.status))
        }
    }
}

#[test]
fn every_snippet_passes_its_servers_check() {
    let scratch = tempfile::tempdir().unwrap();
    let stripped = format!("{MOUNTED}  strip-prefix: true\n");
    for (listen, web) in [
        ("port", MOUNTED),
        ("socket", MOUNTED),
        ("port", ""),
        ("socket", stripped.as_str()),
    ] {
        let (_root, dir) = installed(listen, web);
        for server in Server::ALL {
            let snippet = dir.join(server.snippet());
            let text = fs::read_to_string(&snippet).unwrap();
            assert!(text.contains("# pyapp-app: hello\n"), "{text}");
            // The proxy target and the static directory, as the app's run-time paths.
            let target = match listen {
                "socket" => "/applications/hello/run/web.sock",
                _ => "127.0.0.1",
            };
            assert!(text.contains(target), "{listen}: {text}");
            assert!(
                text.contains("/applications/hello/current/src/src/hello/static/"),
                "{text}"
            );
            let static_url = |url: &str| {
                text.contains(&format!(" {url}")) || text.contains(&format!("\"{url}\""))
            };
            assert_eq!(
                (static_url("/hello/static/"), static_url("/static/")),
                (!web.is_empty(), web.is_empty()),
                "the static URL is under the mount: {text}"
            );
            if let Err(problem) = server.check(scratch.path(), &[&snippet]) {
                panic!("{listen} {web:?}: {problem}\n---\n{text}");
            }
        }
    }
}

#[test]
fn a_broken_snippet_fails_its_servers_check() {
    let scratch = tempfile::tempdir().unwrap();
    let (_root, dir) = installed("port", MOUNTED);
    for (server, from, to) in [
        (Server::Nginx, "proxy_pass", "proxy_pas"),
        (
            Server::Nginx,
            "proxy_set_header Host $host;",
            "proxy_set_header Host;",
        ),
        (Server::Apache, "ProxyPass \"http", "ProxyPas \"http"),
        (Server::Apache, "</Location>", ""),
        (Server::Lighttpd, "proxy.server", "proxy.servers"),
        (Server::Lighttpd, "=^", "=="),
    ] {
        let text = fs::read_to_string(dir.join(server.snippet())).unwrap();
        assert!(text.contains(from), "{from}");
        let broken = scratch.path().join(format!("broken-{}", server.snippet()));
        fs::write(&broken, text.replacen(from, to, 1)).unwrap();
        let checked = server.check(scratch.path(), &[&broken]);
        if from == "=^" {
            // An exact match where a prefix was meant is valid lighttpd, if wrong: it
            // shows that the check reads the snippet, not that it catches everything.
            assert!(checked.is_ok(), "{checked:?}");
        } else {
            assert!(checked.is_err(), "{server:?} accepted {to:?} for {from:?}");
        }
    }
    // Two apps at the same mount in one server block: nginx refuses the second.
    let nginx = dir.join("nginx.conf");
    let twice = Server::Nginx.check(scratch.path(), &[&nginx, &nginx]);
    assert!(
        twice
            .as_ref()
            .is_err_and(|said| said.contains("duplicate location")),
        "{twice:?}"
    );
}

#[test]
fn linking_under_a_root_writes_the_include_and_remove_unlinks() {
    let out = tempfile::tempdir().unwrap();
    let bundle = bundle(out.path(), "1.0.0", "port", MOUNTED);
    let bundle = bundle.to_str().unwrap();
    let root = tempfile::tempdir().unwrap();
    let link = root.path().join("etc/nginx/pyapp.d/hello.conf");
    let include = root.path().join("etc/nginx/conf.d/pyapp.conf");

    let dry = harness::pyapp_install_at(root.path(), &["--dry-run", "--web", "nginx", bundle]);
    assert!(
        stderr(&dry).contains("would write the web server snippets of hello 1.0.0 to "),
        "{}",
        stderr(&dry)
    );
    assert!(
        fs::read_dir(root.path()).unwrap().next().is_none(),
        "--dry-run wrote"
    );
    let linked = harness::pyapp_install_at(root.path(), &["--json", "--web", "nginx", bundle]);
    assert!(linked.status.success(), "{}", stderr(&linked));
    let report: serde_json::Value = serde_json::from_slice(&linked.stdout).unwrap();
    assert_eq!(report["action"], "installed");
    assert_eq!(report["web"]["snippets"], "/applications/hello/web");
    let nginx = &report["web"]["linked"][0];
    assert_eq!(nginx["server"], "nginx");
    assert_eq!(nginx["link"], link.display().to_string());
    assert_eq!(
        (&nginx["changed"], &nginx["reloaded"]),
        (&true.into(), &false.into())
    );
    assert!(
        stderr(&linked).contains("check and reload nginx once this root runs"),
        "{}",
        stderr(&linked)
    );
    // A run-time link (the tree works once ROOT is /), and the server block including it.
    assert_eq!(
        fs::read_link(&link).unwrap(),
        Path::new("/applications/hello/web/nginx.conf")
    );
    let include_text = fs::read_to_string(&include).unwrap();
    assert!(
        include_text.contains("    include /etc/nginx/pyapp.d/*.conf;\n"),
        "{include_text}"
    );

    // The same bundle again: nothing changes, the link stays.
    let again = harness::pyapp_install_at(root.path(), &["--json", "--web", "nginx", bundle]);
    assert!(again.status.success(), "{}", stderr(&again));
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["action"], "unchanged");
    assert_eq!(report["web"]["linked"][0]["changed"], false);

    // Apache and lighttpd too, each in Debian's layout: an include point enabled by a link.
    for server in ["apache", "lighttpd"] {
        let linked = harness::pyapp_install_at(root.path(), &["--json", "--web", server, bundle]);
        assert!(linked.status.success(), "{}", stderr(&linked));
    }
    let report: serde_json::Value =
        serde_json::from_slice(&linked_again(root.path(), bundle)).unwrap();
    let servers: Vec<&str> = report["web"]["linked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|linked| linked["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, ["nginx", "apache", "lighttpd"]);
    for (link, target) in [
        (
            "etc/apache2/pyapp.d/hello.conf",
            "/applications/hello/web/apache.conf",
        ),
        (
            "etc/lighttpd/pyapp.d/hello.conf",
            "/applications/hello/web/lighttpd.conf",
        ),
        (
            "etc/apache2/conf-enabled/pyapp.conf",
            "../conf-available/pyapp.conf",
        ),
        (
            "etc/lighttpd/conf-enabled/50-pyapp.conf",
            "../conf-available/50-pyapp.conf",
        ),
    ] {
        assert_eq!(
            fs::read_link(root.path().join(link)).unwrap(),
            Path::new(target)
        );
    }
    let apache_include =
        fs::read_to_string(root.path().join("etc/apache2/conf-available/pyapp.conf")).unwrap();
    assert!(apache_include.ends_with("IncludeOptional /etc/apache2/pyapp.d/*.conf\n"));
    let lighttpd_include = fs::read_to_string(
        root.path()
            .join("etc/lighttpd/conf-available/50-pyapp.conf"),
    )
    .unwrap();
    assert!(lighttpd_include.ends_with("include \"/etc/lighttpd/pyapp.d/*.conf\"\n"));

    // Something else at the link's path is not replaced.
    let bundle_other = bundle_renamed(out.path(), "other");
    let admin_file = root.path().join("etc/nginx/pyapp.d/other.conf");
    fs::write(&admin_file, "# the admin's\n").unwrap();
    let refused = harness::pyapp_install_at(
        root.path(),
        &["--web", "nginx", bundle_other.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("other.conf` exists and is not pyapp-install's link"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(fs::read_to_string(&admin_file).unwrap(), "# the admin's\n");
    assert!(
        !root.path().join("applications/other/current").exists(),
        "refused before anything was installed"
    );

    // An app without a service to proxy cannot be linked: refused before it is installed.
    let project = fixture_copy("hello");
    for (from, to) in [
        ("format: 1\n", "format: 1\nname: worker\n"),
        ("    listen: port\n", ""),
        ("\"{listen}\"", "127.0.0.1:8999"),
        (
            "  health-check:\n    service: web\n    http: /health\n    timeout: 30\n",
            "",
        ),
    ] {
        edit(project.path(), "metadata.yaml", from, to);
    }
    let worker_dir = out.path().join("worker");
    fs::create_dir_all(&worker_dir).unwrap();
    let worker = build_bundle(project.path(), &worker_dir);
    let refused =
        harness::pyapp_install_at(root.path(), &["--web", "nginx", worker.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "error: --web nginx: worker has no service for a web server to proxy\nhint: "
        ),
        "{}",
        stderr(&refused)
    );
    assert!(!root.path().join("applications/worker").exists());

    let removed = harness::pyapp_install_at(root.path(), &["remove", "hello"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    for server in ["nginx", "apache2", "lighttpd"] {
        let link = root.path().join(format!("etc/{server}/pyapp.d/hello.conf"));
        assert!(
            fs::symlink_metadata(&link).is_err(),
            "{} is left",
            link.display()
        );
    }
    assert!(!root.path().join("applications/hello/web").exists());
    assert_eq!(
        fs::read_to_string(&include).unwrap(),
        include_text,
        "the include point stays"
    );
}

/// `--json` of installing `bundle` again with `--web nginx` (linked already): its report
/// lists every server the app is linked into.
fn linked_again(root: &Path, bundle: &str) -> Vec<u8> {
    let output = harness::pyapp_install_at(root, &["--json", "--web", "nginx", bundle]);
    assert!(output.status.success(), "{}", stderr(&output));
    output.stdout
}

/// hello built under another app name, `name`.
fn bundle_renamed(out: &Path, name: &str) -> PathBuf {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "metadata.yaml",
        "format: 1\n",
        &format!("format: 1\nname: {name}\n"),
    );
    let dir = out.join(name);
    fs::create_dir_all(&dir).unwrap();
    build_bundle(project.path(), &dir)
}

/// Runs in the sandbox; every fact the test checks goes into a file of $OUT.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4; SOCKET=$5; GET=$6
A=/applications/hello
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
get() { python3 $GET "$@"; }

systemctl start nginx.service
# Debian's default site is the default server on port 80: linking is refused, unlinked.
step refused "$INSTALL" --python $PY --web nginx $V1
systemctl is-active hello-web.service > $OUT/refused.web-active
systemctl is-active nginx.service > $OUT/refused.nginx-active
ls /etc/nginx/pyapp.d/ > $OUT/refused.links 2>&1
test -e /etc/nginx/conf.d/pyapp.conf; echo $? > $OUT/refused.include-exists
rm /etc/nginx/sites-enabled/default
"$INSTALL" --python $PY --web nginx --json $V1 > $OUT/link.json 2> $OUT/link.log; echo $? > $OUT/link.rc
get http://127.0.0.1/hello/static/style.css > $OUT/static.got
cat $A/current/src/src/hello/static/style.css > $OUT/static.disk
get http://127.0.0.1/hello/ > $OUT/index.got
get http://127.0.0.1/hello > $OUT/bare.got
# The socket too: systemd would start the service again on the next connection.
systemctl stop hello-web.socket hello-web.service
get http://127.0.0.1/hello/static/style.css > $OUT/static.stopped
get http://127.0.0.1/hello/ once > $OUT/index.stopped
systemctl start hello-web.socket hello-web.service
step upgrade "$INSTALL" --python $PY $V2
get http://127.0.0.1/hello/health > $OUT/upgraded.health
step rollback "$INSTALL" rollback hello
get http://127.0.0.1/hello/health > $OUT/rolled.health
step remove "$INSTALL" remove hello
ls /etc/nginx/pyapp.d/ > $OUT/removed.links 2>&1
ls $A > $OUT/removed.tree
get http://127.0.0.1/hello/ > $OUT/removed.index
# Over a socket: www-data (nginx) connects, nobody else.
step socket "$INSTALL" --python $PY --web nginx $SOCKET
get http://127.0.0.1/hello/ > $OUT/socket.index
stat -c '%U %G %a' $A/run > $OUT/socket.run
stat -c '%G %a' $A/run/web.sock > $OUT/socket.sock
connect='import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1]); print("connected")'
setpriv --reuid=www-data --regid=www-data --clear-groups $PY -c "$connect" $A/run/web.sock > $OUT/socket.www-data 2>&1
setpriv --reuid=nobody --regid=nogroup --clear-groups $PY -c "$connect" $A/run/web.sock > $OUT/socket.nobody 2>&1
step socket-remove "$INSTALL" remove hello
"#;

/// `python3 GET URL [once]`: the status, the Location header and the body of one request,
/// without following redirects; retried while the server or (without `once`) the app
/// starts.
const GET: &str = r#"import http.client, sys, time, urllib.parse
url = urllib.parse.urlsplit(sys.argv[1])
for attempt in range(100):
    try:
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=5)
        connection.request("GET", url.path)
        response = connection.getresponse()
        if response.status == 502 and sys.argv[2:] != ["once"] and attempt < 99:
            time.sleep(0.1)  # the app is starting
            continue
        print(response.status)
        print(response.getheader("Location", ""))
        sys.stdout.write(response.read().decode())
        break
    except OSError as error:
        last = error
        time.sleep(0.1)
else:
    print("unreachable:", last)
"#;

/// Runs `script` under the systemd sandbox as `bash script OUT PYAPP-INSTALL BUNDLES… GET`
/// (`work` is writable through to the host) and returns OUT, where it left its results.
fn run_in_sandbox(sandbox: &Path, work: &Path, script: &str, bundles: &[&Path]) -> PathBuf {
    let out = work.join("out");
    fs::create_dir(&out).unwrap();
    let script_path = work.join("script.sh");
    fs::write(&script_path, script).unwrap();
    let get = work.join("get.py");
    fs::write(&get, GET).unwrap();
    let run = Command::new(sandbox)
        .arg("--")
        .arg("bash")
        .arg(&script_path)
        .arg(&out)
        .arg(bin("pyapp-install"))
        .args(bundles)
        .arg(&get)
        .env("SANDBOX_BIND", work)
        .output()
        .unwrap();
    assert!(run.status.success(), "sandbox: {}", stderr(&run));
    out
}

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// (status, location, body) of a `GET` output.
fn answer(text: &str) -> (&str, &str, &str) {
    let mut parts = text.splitn(3, '\n');
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

#[test]
fn nginx_serves_hello_under_its_mount_under_systemd() {
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", "port", MOUNTED);
    let v2 = bundle(work.path(), "1.1.0", "port", MOUNTED);
    let socket = bundle(work.path(), "1.2.0", "socket", MOUNTED);
    let out = run_in_sandbox(&sandbox, work.path(), SCRIPT, &[&v1, &v2, &socket]);
    let log = |step: &str| read(&out, &format!("{step}.log"));

    // Refused: the app runs, nginx runs as it was, nothing of pyapp's is left in nginx.
    assert_eq!(read(&out, "refused.rc").trim(), "1", "{}", log("refused"));
    assert!(
        log("refused").contains("error: hello 1.0.0 is installed and running: nginx refused")
            && log("refused").contains("duplicate default server")
            && log("refused").contains("hint: "),
        "{}",
        log("refused")
    );
    assert_eq!(read(&out, "refused.web-active").trim(), "active");
    assert_eq!(read(&out, "refused.nginx-active").trim(), "active");
    assert_eq!(read(&out, "refused.links").trim(), "");
    assert_eq!(read(&out, "refused.include-exists").trim(), "1");

    // Linked: an unchanged install that changed nginx, reloaded.
    assert_eq!(read(&out, "link.rc").trim(), "0", "{}", log("link"));
    let report: serde_json::Value = serde_json::from_str(&read(&out, "link.json")).unwrap();
    assert_eq!(report["action"], "unchanged");
    assert_eq!(report["web"]["linked"][0]["changed"], true);
    assert_eq!(report["web"]["linked"][0]["reloaded"], true);

    // The static file is the one on disk, also while the app is stopped; pages come from
    // the app, with URLs under the mount.
    let static_got = read(&out, "static.got");
    assert_eq!(answer(&static_got).0, "200", "{static_got}");
    assert_eq!(answer(&static_got).2, read(&out, "static.disk"));
    assert_eq!(read(&out, "static.stopped"), static_got);
    let index = read(&out, "index.got");
    assert_eq!(answer(&index).0, "200", "{index}");
    assert!(
        answer(&index).2.contains("<h1>Hello, world!</h1>")
            && answer(&index)
                .2
                .contains("<link rel=\"stylesheet\" href=\"/hello/static/style.css\">"),
        "{index}"
    );
    let bare = read(&out, "bare.got");
    assert_eq!(answer(&bare).0, "301", "{bare}");
    assert!(answer(&bare).1.ends_with("/hello/"), "{bare}");
    assert_eq!(answer(&read(&out, "index.stopped")).0, "502");

    // An upgrade and a rollback keep it linked; the health check asked under the mount.
    assert_eq!(read(&out, "upgrade.rc").trim(), "0", "{}", log("upgrade"));
    assert!(
        log("upgrade").contains(
            "health check: GET /hello/health on unix:/applications/hello/.pyapp/check/web.sock"
        ),
        "{}",
        log("upgrade")
    );
    assert!(read(&out, "upgraded.health").contains("\"version\":\"1.1.0\""));
    assert_eq!(read(&out, "rollback.rc").trim(), "0", "{}", log("rollback"));
    assert!(read(&out, "rolled.health").contains("\"version\":\"1.0.0\""));

    // Removed: unlinked and reloaded.
    assert_eq!(read(&out, "remove.rc").trim(), "0", "{}", log("remove"));
    assert_eq!(read(&out, "removed.links").trim(), "");
    assert!(!read(&out, "removed.tree").contains("web"));
    assert_eq!(answer(&read(&out, "removed.index")).0, "404");

    // A socket only the app and the web server's group reach.
    assert_eq!(read(&out, "socket.rc").trim(), "0", "{}", log("socket"));
    assert!(
        answer(&read(&out, "socket.index"))
            .2
            .contains("hello 1.2.0"),
        "{}",
        read(&out, "socket.index")
    );
    assert_eq!(read(&out, "socket.run").trim(), "hello www-data 750");
    // systemd binds it (hello-web.socket, FORMAT.md 8.8) and never chowns it: run/ decides.
    assert_eq!(read(&out, "socket.sock").trim(), "root 666");
    assert_eq!(read(&out, "socket.www-data").trim(), "connected");
    assert!(
        read(&out, "socket.nobody").contains("PermissionError"),
        "{}",
        read(&out, "socket.nobody")
    );
    assert_eq!(read(&out, "socket-remove.rc").trim(), "0");
}

/// Runs in the sandbox: hello through each server of `SERVERS` in turn.
const SERVERS_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; GET=$4
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
get() { python3 $GET "$@"; }
# Debian's default site would be the default server on port 80 beside pyapp's.
rm -f /etc/nginx/sites-enabled/default
for server in SERVERS; do
  unit=$server; [ $server = apache ] && unit=apache2
  systemctl start $unit.service
  step $server "$INSTALL" --python $PY --web $server $V1
  get http://127.0.0.1/hello/static/style.css > $OUT/$server.static
  get http://127.0.0.1/hello/ > $OUT/$server.index
  get http://127.0.0.1/hello once > $OUT/$server.bare
  systemctl stop hello-web.service
  get http://127.0.0.1/hello/static/style.css > $OUT/$server.static-stopped
  step $server-remove "$INSTALL" remove hello
  get http://127.0.0.1/hello/ once > $OUT/$server.removed
  systemctl is-active $unit.service > $OUT/$server.active
  systemctl stop $unit.service
done
"#;

#[test]
fn apache_and_lighttpd_serve_hello_under_its_mount_under_systemd() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", "port", MOUNTED);
    let script = SERVERS_SCRIPT.replace("SERVERS", "apache lighttpd");
    let out = run_in_sandbox(&sandbox, work.path(), &script, &[&v1]);
    check_served(&out, &["apache", "lighttpd"], "/hello/health");
}

/// With `web.strip-prefix`, every server passes the app paths without the mount and names
/// it in `X-Forwarded-Prefix`: hello (no `SCRIPT_NAME` now) answers `/hello/` and builds
/// its links under the mount from the header; its health check is asked without it.
#[test]
fn every_server_strips_the_mount_when_asked_under_systemd() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let stripped = format!("{MOUNTED}  strip-prefix: true\n");
    let v1 = bundle(work.path(), "1.0.0", "socket", &stripped);
    let servers = ["nginx", "apache", "lighttpd"];
    let script = SERVERS_SCRIPT.replace("SERVERS", &servers.join(" "));
    let out = run_in_sandbox(&sandbox, work.path(), &script, &[&v1]);
    check_served(&out, &servers, "/health");
}

/// What [`SERVERS_SCRIPT`] left in `out` for each of `servers`: hello served under its
/// mount (static files from disk, pages from the app, links under the mount), its health
/// check asked at `health`, then removed.
fn check_served(out: &Path, servers: &[&str], health: &str) {
    let style =
        fs::read_to_string(harness::workspace().join("fixtures/hello/src/hello/static/style.css"))
            .unwrap();
    for &server in servers {
        let log = read(out, &format!("{server}.log"));
        assert_eq!(read(out, &format!("{server}.rc")).trim(), "0", "{log}");
        assert!(
            log.contains(&format!("reloaded {server} for hello"))
                && log.contains(&format!("health check: GET {health} on ")),
            "{log}"
        );
        let got = |name: &str| read(out, &format!("{server}.{name}"));
        let static_got = got("static");
        assert_eq!(answer(&static_got), ("200", "", style.as_str()), "{server}");
        assert_eq!(
            got("static-stopped"),
            static_got,
            "{server}: served from disk"
        );
        let index = got("index");
        assert!(
            answer(&index).0 == "200"
                && answer(&index)
                    .2
                    .contains("<link rel=\"stylesheet\" href=\"/hello/static/style.css\">"),
            "{server}: {index}"
        );
        let bare = got("bare");
        assert_eq!(answer(&bare).0, "301", "{server}: {bare}");
        assert!(answer(&bare).1.ends_with("/hello/"), "{server}: {bare}");
        assert_eq!(read(out, &format!("{server}-remove.rc")).trim(), "0");
        assert_eq!(answer(&got("removed")).0, "404", "{server}");
        assert_eq!(got("active").trim(), "active", "{server}");
    }
}

/// Runs in the sandbox: hello with a static directory of `data/` behind nginx, filled by
/// the app user as a hook would (collectstatic), and a link the app user planted there.
const DATA_STATIC_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; GET=$4
A=/applications/hello
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
get() { python3 $GET "$@"; }
rm -f /etc/nginx/sites-enabled/default
systemctl start nginx.service
step install "$INSTALL" --python /usr/bin/python3 --web nginx $V1
stat -c '%U %G %a' $A/data > $OUT/data.mode
stat -c '%U %G %a' $A/data/media > $OUT/media.mode
as_app() { setpriv --reuid=hello --regid=hello --init-groups sh -c "umask 027; $1"; }
as_app "mkdir -p $A/data/media/css && echo 'body{}' > $A/data/media/css/site.css"
as_app "ln -s /etc/passwd $A/data/media/passwd"
get http://127.0.0.1/hello/media/css/site.css once > $OUT/media.got
get http://127.0.0.1/hello/media/passwd once > $OUT/link.got
setpriv --reuid=nobody --regid=nogroup --clear-groups cat $A/data/media/css/site.css > $OUT/nobody.got 2>&1
step again "$INSTALL" --python /usr/bin/python3 --web nginx $V1
"#;

/// `resources.static` `from: data`: the directory is made for the app user with the web
/// server's group (setgid, so what the app writes there is the web server's to read),
/// `data/` lets only that group pass, nginx serves the files and follows no link the app
/// planted.
#[test]
fn nginx_serves_a_static_directory_of_data_and_follows_no_planted_link() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let project = crate::harness::hello_at_version("1.0.0");
    edit(
        project.path(),
        "metadata.yaml",
        "      path: src/hello/static\n",
        "      path: src/hello/static\n    - url: /media\n      path: media\n      from: data\n",
    );
    let metadata = project.path().join("metadata.yaml");
    let text = fs::read_to_string(&metadata).unwrap();
    fs::write(&metadata, format!("{text}{MOUNTED}")).unwrap();
    let v1 = build_bundle(project.path(), work.path());
    let out = run_in_sandbox(&sandbox, work.path(), DATA_STATIC_SCRIPT, &[&v1]);
    assert_eq!(
        read(&out, "install.rc").trim(),
        "0",
        "{}",
        read(&out, "install.log")
    );
    assert_eq!(read(&out, "data.mode").trim(), "hello www-data 710");
    assert_eq!(read(&out, "media.mode").trim(), "hello www-data 2750");
    let media = read(&out, "media.got");
    assert_eq!(answer(&media), ("200", "", "body{}\n"), "{media}");
    let link = read(&out, "link.got");
    assert_eq!(answer(&link).0, "403", "{link}");
    assert!(read(&out, "nobody.got").contains("Permission denied"));
    assert_eq!(
        read(&out, "again.rc").trim(),
        "0",
        "{}",
        read(&out, "again.log")
    );
}
