//! The generated hardening against a real server that breaks under it: gunicorn 20.1.0 (from
//! PyPI, as its authors released it) calls `os.setuid` on its own user in every worker,
//! which `SystemCallFilter=~@privileged` refuses. Under a real systemd (`systemd-sandbox`)
//! the example built with it fails its health check, and the error shows the journal's
//! `PermissionError`; with `relax: [setuid]` on the service it runs, `status` says what is
//! relaxed, and `systemd-analyze security` scores the relaxed unit (FORMAT.md 8.4). And the
//! servers apps usually run on — uvicorn, hypercorn, daphne, waitress, gunicorn and a celery
//! worker, as released on PyPI — run under the default hardening: each answers, the worker
//! runs a task.

use std::path::Path;
use std::process::Command;

use crate::harness::{self, edit, fact, fixture_copy, hello_wheels, run_in_sandbox, workspace};
use crate::units::exposure;

const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; STRICT=$3; RELAXED=$4
step() { NAME=$1; shift; timeout 300 "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
step strict "$INSTALL" --python /usr/bin/python3 "$STRICT"
step relaxed "$INSTALL" --python /usr/bin/python3 "$RELAXED"
"$INSTALL" --json status hello > $OUT/status.json 2> $OUT/status.err
"$INSTALL" status hello > $OUT/status.txt 2>&1
systemd-analyze security --no-pager hello-web.service > $OUT/security 2>&1
exit 0
"#;

/// The example with gunicorn 20.1.0, its web service relaxing `relax`, built into `out`.
fn bundle(work: &Path, wheels: &Path, name: &str, relax: &str) -> std::path::PathBuf {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "pinned-requirements.txt",
        "gunicorn==23.0.0\n",
        "gunicorn==20.1.0\nsetuptools==69.5.1\n",
    );
    edit(
        project.path(),
        "pyproject.toml",
        "\"gunicorn>=22\"",
        "\"gunicorn>=20\"",
    );
    edit(
        project.path(),
        "metadata.yaml",
        "    restart: on-failure\n",
        &format!("    restart: on-failure\n{relax}"),
    );
    build(project.path(), &work.join(name), wheels)
}

/// `project` built offline into `out` with `wheels` and the build backends'; the bundle.
fn build(project: &Path, out: &Path, wheels: &Path) -> std::path::PathBuf {
    let built = Command::new(harness::bin("pyapp-build"))
        .arg(project)
        .arg("-o")
        .arg(out)
        .arg("--wheels")
        .arg(wheels)
        .arg("--wheels")
        .arg(harness::backend_wheels())
        .arg("--no-index")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", harness::stderr(&built));
    std::path::PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
}

#[test]
fn an_old_gunicorn_needs_setuid_relaxed_and_says_so() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The example's wheels with gunicorn 20.1.0 (and the setuptools it requires) instead.
    let wheels = work.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let old = workspace().join("target/wheels/old-gunicorn");
    for dir in [hello_wheels(), old] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".whl") && !name.starts_with("gunicorn-23") {
                std::fs::copy(&path, wheels.join(&name)).unwrap();
            }
        }
    }
    let strict = bundle(work.path(), &wheels, "strict", "");
    let relaxed = bundle(work.path(), &wheels, "relaxed", "    relax: [setuid]\n");
    let out = run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [harness::bin("pyapp-install"), strict, relaxed],
    );
    let read = |name: &str| fact(&out, name);

    assert_eq!(read("strict.rc"), "1", "{}", read("strict.log"));
    let strict_log = read("strict.log");
    assert!(
        strict_log.contains("health check failed")
            && strict_log.contains("os.setuid(uid)")
            && strict_log.contains("PermissionError: [Errno 1] Operation not permitted"),
        "{strict_log}"
    );

    assert_eq!(read("relaxed.rc"), "0", "{}", read("relaxed.log"));
    assert!(read("relaxed.log").contains("health check: GET /health on 127.0.0.1:"));
    let status: serde_json::Value = serde_json::from_str(&read("status.json")).unwrap();
    assert_eq!(
        status["services"][0]["relaxed"],
        serde_json::json!(["setuid"])
    );
    assert!(
        read("status.txt").contains("hardening relaxed: setuid"),
        "{}",
        read("status.txt")
    );
    let security = read("security");
    let score = exposure(&security);
    eprintln!("systemd-analyze security hello-web.service with relax: [setuid]: {score}");
    assert!(
        score <= 3.0,
        "relaxing setuid costs too much: {score}\n{security}"
    );
}

const SERVERS_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; BUNDLE=$3
A=/applications/probe
timeout 300 "$INSTALL" --python /usr/bin/python3 "$BUNDLE" > $OUT/install.log 2>&1
echo $? > $OUT/install.rc
"$INSTALL" --json status probe > $OUT/status.json 2>&1
# A task through the worker: queued by the app user, run by the worker within 60 s.
setpriv --reuid=probe --regid=probe --init-groups env PYAPP_DATA_PATH=$A/data \
  $A/current/venv/bin/python -c 'from probe.tasks import ping; print(ping.delay().id)' \
  > $OUT/task.id 2> $OUT/task.err
for attempt in $(seq 60); do
  journalctl -u probe-celery.service --no-pager | grep -q "Task probe.tasks.ping\[$(cat $OUT/task.id)\] succeeded" && break
  sleep 1
done
for s in uvicorn hypercorn daphne waitress gunicorn celery; do
  echo "$s $(systemctl is-active probe-$s.service) $(systemctl show -p NRestarts --value probe-$s.service)"
done > $OUT/states
python3 - $OUT > $OUT/answers <<'PY'
import json, sys, time, urllib.request
status = json.load(open(sys.argv[1] + "/status.json"))
for service in status["services"]:
    if not service.get("port"):
        continue
    for attempt in range(100):
        try:
            url = f"http://127.0.0.1:{service['port']}/"
            print(service["name"], urllib.request.urlopen(url, timeout=5).read().decode().strip())
            break
        except OSError as error:
            last = error
            time.sleep(0.1)
    else:
        print(service["name"], "unreachable:", last)
PY
journalctl -u 'probe-*' --no-pager > $OUT/journal
exit 0
"#;

#[test]
fn common_servers_run_under_the_default_hardening() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let bundle = build(
        &workspace().join("fixtures/servers"),
        &work.path().join("bundle"),
        &workspace().join("target/wheels/servers"),
    );
    let out = run_in_sandbox(
        &sandbox,
        work.path(),
        SERVERS_SCRIPT,
        [harness::bin("pyapp-install"), bundle],
    );
    let read = |name: &str| fact(&out, name);
    assert_eq!(read("install.rc"), "0", "{}", read("install.log"));
    assert_eq!(
        read("states"),
        "uvicorn active 0\nhypercorn active 0\ndaphne active 0\nwaitress active 0\n\
         gunicorn active 0\ncelery active 0",
        "{}",
        read("journal")
    );
    assert_eq!(
        read("answers"),
        "uvicorn ok\nhypercorn ok\ndaphne ok\nwaitress ok\ngunicorn ok",
        "{}",
        read("journal")
    );
    let journal = read("journal");
    assert!(
        journal.contains(&format!(
            "Task probe.tasks.ping[{}] succeeded",
            read("task.id")
        )),
        "task: {}\n{journal}",
        read("task.err")
    );
}
