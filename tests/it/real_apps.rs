//! Real public apps nobody here wrote, as their authors published them on PyPI (wheels
//! pinned with hashes in fixtures/apps/NAME/pinned-requirements.txt, downloaded by
//! tests/fetch-wheels.sh), each deployed by a small project of ours under fixtures/apps/:
//! built with pyapp-build, installed with pyapp-install under a real systemd
//! (`systemd-sandbox`) with `--web nginx`, answering through a real nginx under its mount,
//! then upgraded and rolled back, still answering.
//!
//! - taskboard: a poetry project with two top-level packages, a Flask front end and a huey
//!   worker, a second long-running service that runs the jobs the front end queues;
//! - shopsite: a Django project whose hooks migrate and collect the static files into
//!   data/static, which nginx serves;
//! - databrowser: datasette, an ASGI app on its own uvicorn, on a unix socket under /data;
//! - pkgindex: pypiserver, a package index, under waitress at /pypi, which pip installs from.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{self, bin, edit, fact, fixture_copy, stderr, workspace};
use crate::units::exposure;

/// The wheels tests/fetch-wheels.sh downloaded for `fixtures/apps/NAME`.
fn app_wheels(name: &str) -> PathBuf {
    let dir = workspace().join("target/wheels/apps").join(name);
    assert!(
        dir.is_dir(),
        "{} is missing: tests/fetch-wheels.sh downloads the real apps' wheels first",
        dir.display()
    );
    dir
}

/// `fixtures/apps/NAME` at `version`, built offline into `work`: 1.0.0 is the project as
/// committed but with the older releases its previous-requirements.txt pins, if it has one
/// (so that the upgrade to 1.1.0 is also one of those apps' own).
fn bundle(work: &Path, name: &str, version: &str) -> PathBuf {
    let project = fixture_copy(&format!("apps/{name}"));
    if version == "1.0.0" {
        pin_previous(project.path());
    } else {
        edit(
            project.path(),
            "pyproject.toml",
            "version = \"1.0.0\"",
            &format!("version = \"{version}\""),
        );
    }
    let out = work.join(format!("{name}-{version}"));
    let built = Command::new(bin("pyapp-build"))
        .arg(project.path())
        .arg("-o")
        .arg(&out)
        .arg("--wheels")
        .arg(app_wheels(name))
        .arg("--wheels")
        .arg(harness::backend_wheels())
        .arg("--no-index")
        .arg("--python-version")
        .arg("3.11.2")
        .output()
        .unwrap();
    assert!(built.status.success(), "{name}: {}", stderr(&built));
    PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
}

/// Each pin of `project`'s previous-requirements.txt (if any) replaces its name's pin,
/// hashes and all, in pinned-requirements.txt, and its `NAME==VERSION` in pyproject.toml.
fn pin_previous(project: &Path) {
    let Ok(previous) = fs::read_to_string(project.join("previous-requirements.txt")) else {
        return;
    };
    // Requirement files' logical lines (continuations joined), without comments.
    let entries = |text: &str| -> Vec<String> {
        text.replace("\\\n", "")
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    let pinned_path = project.join("pinned-requirements.txt");
    let mut pinned = entries(&fs::read_to_string(&pinned_path).unwrap());
    for entry in entries(&previous) {
        let pin = entry.split_whitespace().next().unwrap();
        let name = pin.split("==").next().unwrap();
        let old = pinned
            .iter_mut()
            .find(|old| old.starts_with(&format!("{name}==")))
            .unwrap_or_else(|| panic!("{name} is not pinned"));
        let old_pin = old.split_whitespace().next().unwrap().to_owned();
        edit(project, "pyproject.toml", &old_pin, pin);
        old.clone_from(&entry);
    }
    fs::write(&pinned_path, pinned.join("\n") + "\n").unwrap();
}

/// The part of every app's sandbox script around its `check PHASE VERSION` function: nginx
/// without Debian's default site, then install 1.0.0 linked into nginx, upgrade to 1.1.0,
/// roll back, each followed by the app's checks; `status --json` after each.
const FRAME: &str = r#"
step() { NAME=$1; shift; timeout 600 "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
http() { python3 $HTTP "$@" 2>> $OUT/http.err; }
phase() { "$INSTALL" --json status $APP > $OUT/$1.status 2>&1; check "$@"; }
rm -f /etc/nginx/sites-enabled/default
systemctl start nginx.service
step install "$INSTALL" --python $PY --web nginx $V1
phase installed 1.0.0
for unit in $(systemctl list-unit-files --no-legend "$APP-*.service" | awk '{print $1}'); do
  systemd-analyze security --no-pager $unit > $OUT/security.$unit 2>&1
done
step upgrade "$INSTALL" --python $PY --web nginx $V2
phase upgraded 1.1.0
step rollback "$INSTALL" rollback $APP
phase rolled 1.0.0
journalctl --no-pager -n 300 > $OUT/journal 2>&1
exit 0
"#;

/// `python3 request.py METHOD URL [--until TEXT | --once]`: the status line and body of one
/// request (nginx's `502` while the app starts is retried, for up to 30 s; with `--until`,
/// any answer whose body lacks TEXT is too).
const HTTP: &str = r#"import http.client, sys, time, urllib.parse
method, url = sys.argv[1], urllib.parse.urlsplit(sys.argv[2])
until = sys.argv[4] if sys.argv[3:4] == ["--until"] else None
once = sys.argv[3:] == ["--once"]
target = url.path + ("?" + url.query if url.query else "")
deadline = time.monotonic() + 30
while True:
    try:
        connection = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        connection.request(method, target)
        response = connection.getresponse()
        status, body = response.status, response.read().decode("utf-8", "replace")
        waiting = (status == 502 and not once) or (until is not None and until not in body)
    except OSError as error:
        status, body, waiting = "unreachable", str(error), not once
    if not waiting or time.monotonic() > deadline:
        break
    time.sleep(0.2)
print(status)
sys.stdout.write(body)
"#;

/// Runs the sandbox script for `app` (`check` is its `check PHASE VERSION` function, `extra`
/// more arguments, $6 on) with both bundles, and returns the directory of its facts.
fn run(work: &Path, app: &str, check: &str, bundles: [&Path; 2], extra: &[&Path]) -> PathBuf {
    let http = work.join("request.py");
    fs::write(&http, HTTP).unwrap();
    let script = format!(
        "set -u\nOUT=$1; INSTALL=$2; V1=$3; V2=$4; HTTP=$5\nAPP={app}; A=/applications/{app}; \
         PY=/usr/bin/python3\n{check}{FRAME}"
    );
    let mut args = vec![
        bin("pyapp-install"),
        bundles[0].into(),
        bundles[1].into(),
        http,
    ];
    args.extend(extra.iter().map(|path| path.to_path_buf()));
    harness::run_in_sandbox(&harness::sandbox(), work, &script, args)
}

/// Builds `fixtures/apps/APP` at 1.0.0 and 1.1.0 and runs its sandbox script (see [`run`]);
/// asserts its lifecycle with [`assert_lifecycle`]. The scratch directory (keep it while
/// reading the facts) and the facts' directory.
fn deployed(
    app: &str,
    check: &str,
    services: &[&str],
    extra: &[&Path],
) -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), app, "1.0.0");
    let v2 = bundle(work.path(), app, "1.1.0");
    let out = run(work.path(), app, check, [&v1, &v2], extra);
    assert_lifecycle(&out, services);
    (work, out)
}

/// Asserts that the upgrade's health check asked for `path`: under the mount, or (with
/// `web.strip-prefix`) as the app sees it.
fn assert_health_check(out: &Path, path: &str) {
    let log = fact(out, "upgrade.log");
    assert!(
        log.contains(&format!("health check: GET {path} on ")),
        "{log}"
    );
}

/// (status, body) of an `http` answer the script left in `out/name`.
fn answer(out: &Path, name: &str) -> (String, String) {
    let text = fs::read_to_string(out.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", out.join(name).display()));
    let (status, body) = text.split_once('\n').unwrap_or((&text, ""));
    assert!(
        !status.is_empty(),
        "{name}: no answer: {}",
        fs::read_to_string(out.join("http.err")).unwrap_or_default()
    );
    (status.to_owned(), body.to_owned())
}

/// The body of an `http` answer in `out/name`, which must be `200 OK`.
fn ok(out: &Path, name: &str) -> String {
    let (status, body) = answer(out, name);
    assert_eq!(status, "200", "{name}: {body}");
    body
}

/// Asserts that install, upgrade and rollback succeeded, that `status` reported the
/// version each left current, and that `systemd-analyze security` scores each of the app's
/// services (the real servers run under the default hardening, nothing relaxed) at 3.0 or
/// less.
fn assert_lifecycle(out: &Path, services: &[&str]) {
    for step in ["install", "upgrade", "rollback"] {
        assert_eq!(
            fact(out, &format!("{step}.rc")),
            "0",
            "{step}: {}\n--- journal:\n{}",
            fact(out, &format!("{step}.log")),
            fs::read_to_string(out.join("journal")).unwrap_or_default()
        );
    }
    for (phase, version) in [
        ("installed", "1.0.0"),
        ("upgraded", "1.1.0"),
        ("rolled", "1.0.0"),
    ] {
        let status: serde_json::Value =
            serde_json::from_str(&fact(out, &format!("{phase}.status")))
                .unwrap_or_else(|e| panic!("{phase}.status: {e}"));
        assert_eq!(status["version"], version, "{phase}: {status}");
    }
    let app = out
        .read_dir()
        .unwrap()
        .filter_map(|entry| {
            let name = entry.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("security.")?
                .strip_suffix(".service")
                .map(str::to_owned)
        })
        .collect::<std::collections::BTreeSet<_>>();
    assert!(
        services.iter().all(|service| app
            .iter()
            .any(|unit| unit.ends_with(&format!("-{service}")))),
        "scored {app:?}, expected {services:?}"
    );
    for unit in &app {
        let score = exposure(&fact(out, &format!("security.{unit}.service")));
        eprintln!("systemd-analyze security {unit}.service: {score}");
        assert!(score <= 3.0, "{unit}.service scores {score}");
    }
}

/// Checks of taskboard: both services active; a job queued through nginx is run by the
/// worker of the version that is current.
const TASKBOARD_CHECK: &str = r#"
check() {
  systemctl is-active taskboard-web.service taskboard-worker.service > $OUT/$1.active
  http POST "http://127.0.0.1/tasks/jobs?note=$1" > $OUT/$1.queued
  http GET http://127.0.0.1/tasks/jobs --until "$1 (worker $2)" > $OUT/$1.done
}
"#;

#[test]
fn a_poetry_app_with_two_packages_and_a_worker_runs_its_jobs() {
    let (_work, out) = deployed("taskboard", TASKBOARD_CHECK, &["web", "worker"], &[]);
    assert_health_check(&out, "/tasks/health");
    for (phase, version) in [
        ("installed", "1.0.0"),
        ("upgraded", "1.1.0"),
        ("rolled", "1.0.0"),
    ] {
        assert_eq!(fact(&out, &format!("{phase}.active")), "active\nactive");
        let (status, body) = answer(&out, &format!("{phase}.queued"));
        assert_eq!(status, "202", "{phase}: {body}");
        let body = ok(&out, &format!("{phase}.done"));
        assert!(
            body.contains(&format!("{phase} (worker {version})")),
            "{phase}: the worker of {version} did not run the job: {body}"
        );
    }
}

/// Checks of shopsite: Django's admin login page through nginx with its links under the
/// mount, and the admin's stylesheet, collected into data/static by the hook, served by
/// nginx from there (also while the app and its socket are stopped).
const SHOPSITE_CHECK: &str = r#"
check() {
  http GET http://127.0.0.1/shop/admin/login/ > $OUT/$1.login
  http GET http://127.0.0.1/shop/static/admin/css/base.css > $OUT/$1.css
  cat $A/data/static/admin/css/base.css > $OUT/$1.css-disk
  if [ $1 = installed ]; then
    # The socket unit would start the service again on the next connection.
    systemctl stop shopsite-web.socket shopsite-web.service
    http GET http://127.0.0.1/shop/static/admin/css/base.css --once > $OUT/stopped.css
    http GET http://127.0.0.1/shop/admin/login/ --once > $OUT/stopped.login
    systemctl start shopsite-web.socket shopsite-web.service
    systemctl start shopsite-clearsessions.service; echo $? > $OUT/task.rc
    cat $A/config/config.env > $OUT/config 2>&1
  fi
  cp $A/log/hooks.log $OUT/hooks.log
}
"#;

#[test]
fn a_django_project_migrates_collects_static_and_nginx_serves_it() {
    let (_work, out) = deployed("shopsite", SHOPSITE_CHECK, &["web"], &[]);
    assert_health_check(&out, "/shop/admin/login/");
    for phase in ["installed", "upgraded", "rolled"] {
        let body = ok(&out, &format!("{phase}.login"));
        assert!(
            body.contains("Django administration")
                && body.contains("action=\"/shop/admin/login/\"")
                && body.contains("href=\"/shop/static/admin/css/base.css\""),
            "{phase}: {body}"
        );
        let css = ok(&out, &format!("{phase}.css"));
        assert_eq!(css, fact(&out, &format!("{phase}.css-disk")) + "\n");
    }
    assert_eq!(answer(&out, "stopped.css"), answer(&out, "installed.css"));
    assert_eq!(answer(&out, "stopped.login").0, "502");
    assert_eq!(fact(&out, "task.rc"), "0");
    // The hooks ran Django's migrate and collectstatic: first applying the migrations, then
    // (upgrade, rollback) finding none to apply.
    let hooks = fact(&out, "hooks.log");
    assert!(
        hooks.contains("Applying auth.0001_initial... OK")
            && hooks.contains("No migrations to apply.")
            && hooks.contains("static files copied to '/applications/shopsite/data/static'"),
        "{hooks}"
    );
    // Keys in the case Django names them; the secret was generated.
    let config = fact(&out, "config");
    assert!(
        config.contains("ALLOWED_HOSTS='127.0.0.1 localhost'") && config.contains("SECRET_KEY='"),
        "{config}"
    );
}

/// Checks of databrowser: datasette's JSON API under /data, its pages linking under the
/// mount, over the unix socket nginx proxies to.
const DATABROWSER_CHECK: &str = r#"
check() {
  http GET http://127.0.0.1/data/-/versions.json > $OUT/$1.versions
  http GET "http://127.0.0.1/data/catalog/releases.json?_shape=array" > $OUT/$1.rows
  http GET http://127.0.0.1/data/ > $OUT/$1.index
  stat -c '%F %a' $A/run/web.sock > $OUT/$1.socket
  http GET http://127.0.0.1/data/-/settings.json > $OUT/$1.settings
  if [ $1 = rolled ]; then
    "$INSTALL" config $APP --set sql_time_limit_ms=2500 > $OUT/config.log 2>&1
    echo $? > $OUT/config.rc
    http GET http://127.0.0.1/data/-/settings.json --until '"sql_time_limit_ms": 2500' > $OUT/changed.settings
  fi
}
"#;

#[test]
fn datasette_answers_under_a_sub_path_on_a_unix_socket() {
    let (_work, out) = deployed("databrowser", DATABROWSER_CHECK, &["web"], &[]);
    assert_health_check(&out, "/-/versions.json");
    // databrowser 1.0.0 pins datasette 0.65.4 (previous-requirements.txt), 1.1.0 0.65.5.
    for (phase, datasette) in [
        ("installed", "0.65.4"),
        ("upgraded", "0.65.5"),
        ("rolled", "0.65.4"),
    ] {
        let body = ok(&out, &format!("{phase}.versions"));
        let versions: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            versions["datasette"]["version"], datasette,
            "{phase}: {body}"
        );
        let body = ok(&out, &format!("{phase}.rows"));
        let rows: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            rows,
            serde_json::json!([
                {"codename": "bookworm", "name": "Debian 12", "year": 2023},
                {"codename": "trixie", "name": "Debian 13", "year": 2025}
            ]),
            "{phase}: the seed hook ran once per release, adding nothing twice"
        );
        let body = ok(&out, &format!("{phase}.index"));
        assert!(body.contains("href=\"/data/catalog\""), "{phase}: {body}");
        assert_eq!(fact(&out, &format!("{phase}.socket")), "socket 666");
        let settings: serde_json::Value =
            serde_json::from_str(&ok(&out, &format!("{phase}.settings"))).unwrap();
        assert_eq!(settings["sql_time_limit_ms"], 1000, "{phase}: {settings}");
    }
    // `config --set` rewrites the unit whose command takes {config.sql_time_limit_ms} and
    // restarts it: datasette runs with the new value.
    assert_eq!(fact(&out, "config.rc"), "0", "{}", fact(&out, "config.log"));
    let settings: serde_json::Value = serde_json::from_str(&ok(&out, "changed.settings")).unwrap();
    assert_eq!(settings["sql_time_limit_ms"], 2500, "{settings}");
}

/// Checks of pkgindex: a wheel put into data/packages is listed by pypiserver's simple
/// index under /pypi, and pip downloads it through nginx, byte for byte.
const PKGINDEX_CHECK: &str = r#"
WHEEL=$6
check() {
  [ $1 = installed ] && install -m 0644 $WHEEL $A/data/packages/
  http GET http://127.0.0.1/pypi/simple/ > $OUT/$1.simple
  http GET http://127.0.0.1/pypi/simple/defusedxml/ > $OUT/$1.project
  python3 -m pip download --no-cache-dir --no-deps --disable-pip-version-check \
    --index-url http://127.0.0.1/pypi/simple/ -d $OUT/$1.download defusedxml > $OUT/$1.pip 2>&1
  echo $? > $OUT/$1.pip-rc
}
"#;

#[test]
fn pypiserver_serves_a_package_index_pip_downloads_from() {
    let name = "defusedxml-0.7.1-py2.py3-none-any.whl";
    let wheel = app_wheels("pkgindex").join(name);
    let (_work, out) = deployed("pkgindex", PKGINDEX_CHECK, &["web"], &[&wheel]);
    assert_health_check(&out, "/pypi/health");
    let published = fs::read(&wheel).unwrap();
    for phase in ["installed", "upgraded", "rolled"] {
        let body = ok(&out, &format!("{phase}.simple"));
        assert!(body.contains("defusedxml"), "{phase}: {body}");
        let body = ok(&out, &format!("{phase}.project"));
        assert!(
            body.contains(&format!("/pypi/packages/{name}")),
            "{phase}: links under the mount: {body}"
        );
        assert_eq!(
            fact(&out, &format!("{phase}.pip-rc")),
            "0",
            "{}",
            fact(&out, &format!("{phase}.pip"))
        );
        let downloaded = fs::read(out.join(format!("{phase}.download")).join(name)).unwrap();
        assert!(downloaded == published, "{phase}: pip got another file");
    }
}
