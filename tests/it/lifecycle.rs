//! The example app's whole life on a real server, under a real systemd
//! (`systemd-sandbox`): install (user, config, units, hook, health check), its service
//! answering HTTP with its config and its timer scheduled, an upgrade, a rollback (the old
//! version answers again), an upgrade whose health check fails (rolled back by itself),
//! `run`, and remove. Everything goes through the real pyapp-install binary.

use std::path::Path;
use std::process::Command;

use crate::harness::{self, build_bundle, edit};

/// Runs in the sandbox; every fact the test checks goes into a file of $OUT.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4; BROKEN=$5; BADHOOK=$6; CRASH=$7
A=/applications/hello
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
fetch() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request, urllib.error
for _ in range(100):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
    except urllib.error.HTTPError as error:
        print("HTTP", error.code); break
    except Exception as error:
        last = error; time.sleep(0.1)
else:
    print("unreachable:", last)
PY
}
port() { python3 -c "import json; print(json.load(open('$A/.pyapp/ports.json'))['ports']['web'])"; }

step install "$INSTALL" --python $PY --set greeting=Howdy "$V1"
systemctl is-active hello-web.service > $OUT/web.active
systemctl is-enabled hello-cleanup.timer > $OUT/timer.enabled
systemctl is-active hello-cleanup.timer > $OUT/timer.active
fetch http://127.0.0.1:$(port)/ > $OUT/v1.index
fetch http://127.0.0.1:$(port)/health > $OUT/v1.health
stat -c '%U %a' $A/data/schema-version > $OUT/hook.owner
cat $A/data/schema-version > $OUT/hook.version
stat -c '%U %G %a' $A/config/config.yaml > $OUT/config.owner
stat -c '%U %a' $A/data > $OUT/data.owner
stat -c '%U %a' $A/current/src/pyproject.toml > $OUT/release.owner
setpriv --reuid=hello --regid=hello --init-groups touch $A/current/src/planted > /dev/null 2>&1; echo $? > $OUT/release.write.rc
getent passwd hello | cut -d: -f6,7 > $OUT/user
web_env() { tr '\0' '\n' < /proc/$(systemctl show -p MainPID --value hello-web.service)/environ; }
web_env | grep '^HELLO_GREETING=' > $OUT/env.greeting
web_env | grep -c '^HELLO_SECRET_KEY=.' > $OUT/env.secret
stat -c '%U %a' $A/.pyapp/environment > $OUT/env.file
grep -c 'HELLO_SECRET_KEY\|EnvironmentFile=/applications/hello/.pyapp/environment' /etc/systemd/system/hello-web.service > $OUT/env.unit
grep -c "$(sed -n 's/^HELLO_SECRET_KEY=//p' $A/.pyapp/environment | tr -d '"')" /etc/systemd/system/hello-web.service > $OUT/env.secret-in-unit
step upgrade "$INSTALL" --python $PY "$V2"
fetch http://127.0.0.1:$(port)/health > $OUT/v2.health
cat $A/data/schema-version > $OUT/v2.hook.version
step rollback "$INSTALL" rollback hello
fetch http://127.0.0.1:$(port)/health > $OUT/rolled.health
step broken "$INSTALL" --python $PY "$BROKEN"
fetch http://127.0.0.1:$(port)/health > $OUT/after-broken.health
readlink $A/current > $OUT/after-broken.current
cat /etc/systemd/system/hello-* | sha256sum > $OUT/units.before-badhook
step badhook "$INSTALL" --python $PY "$BADHOOK"
fetch http://127.0.0.1:$(port)/health > $OUT/after-badhook.health
cat /etc/systemd/system/hello-* | sha256sum > $OUT/units.after-badhook
ls $A/releases > $OUT/releases.after-badhook
step crash "$INSTALL" --python $PY "$CRASH"
fetch http://127.0.0.1:$(port)/health > $OUT/after-crash.health
# The socket too: systemd would start the service again on the next connection.
systemctl stop hello-web.socket hello-web.service
timeout 20 "$INSTALL" run hello web > $OUT/run.log 2>&1 &
fetch http://127.0.0.1:$(port)/health > $OUT/run.health
kill %1 2>/dev/null; wait
step remove "$INSTALL" remove hello
ls /etc/systemd/system | grep -c '^hello-' > $OUT/units.after
systemctl is-active hello-web.service > $OUT/web.after
ls $A > $OUT/kept.after
"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        .trim_end()
        .to_string()
}

/// How a test bundle differs from the example, besides its version.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Flaw {
    None,
    /// Its health check asks for a page the app does not have.
    HealthCheck,
    /// Its post-update hook exits with status 3.
    PostUpdate,
    /// Its web service dies at start (the app raises on import), with a long health check.
    Crash,
}

/// A copy of the example at `version`, with `flaw`.
pub(crate) fn bundle(out: &Path, version: &str, flaw: Flaw) -> std::path::PathBuf {
    let project = harness::hello_at_version(version);
    match flaw {
        Flaw::None => {}
        Flaw::HealthCheck => edit(
            project.path(),
            "metadata.yaml",
            "http: /health",
            "http: /missing",
        ),
        Flaw::PostUpdate => edit(
            project.path(),
            "metadata.yaml",
            "post-update: hello-migrate",
            "post-update: [python, -c, \"raise SystemExit(3)\"]",
        ),
        Flaw::Crash => {
            let web = project.path().join("src/hello/web.py");
            let code = std::fs::read_to_string(&web).unwrap();
            std::fs::write(
                &web,
                format!("raise RuntimeError(\"hello crashes on purpose\")\n{code}"),
            )
            .unwrap();
            edit(
                project.path(),
                "metadata.yaml",
                "timeout: 30",
                "timeout: 600",
            );
        }
    }
    let dir = out.join(version);
    std::fs::create_dir_all(&dir).unwrap();
    build_bundle(project.path(), &dir)
}

#[test]
fn install_upgrade_rollback_auto_rollback_run_remove_under_systemd() {
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let v2 = bundle(work.path(), "1.1.0", Flaw::None);
    let broken = bundle(work.path(), "1.2.0", Flaw::HealthCheck);
    let bad_hook = bundle(work.path(), "1.3.0", Flaw::PostUpdate);
    let crash = bundle(work.path(), "1.4.0", Flaw::Crash);
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let script = work.path().join("script.sh");
    std::fs::write(&script, SCRIPT).unwrap();
    let run = Command::new(sandbox)
        .arg("--")
        .arg("bash")
        .arg(&script)
        .arg(&out)
        .arg(harness::bin("pyapp-install"))
        .args([&v1, &v2, &broken, &bad_hook, &crash])
        .env("SANDBOX_BIND", work.path())
        .output()
        .unwrap();
    assert!(run.status.success(), "sandbox: {}", harness::stderr(&run));

    let log = |step: &str| read(&out, &format!("{step}.log"));
    assert_eq!(read(&out, "install.rc"), "0", "{}", log("install"));
    assert_eq!(read(&out, "web.active"), "active", "{}", log("install"));
    assert_eq!(read(&out, "timer.enabled"), "enabled");
    assert_eq!(read(&out, "timer.active"), "active");
    assert!(
        read(&out, "v1.index").contains("<h1>Howdy, world!</h1>"),
        "{}",
        read(&out, "v1.index")
    );
    assert!(
        read(&out, "v1.health").contains("\"version\":\"1.0.0\""),
        "{}",
        read(&out, "v1.health")
    );
    assert!(
        log("install").contains(
            "hook post-install: hello-migrate: data at /applications/hello/data migrated to 1.0.0"
        ),
        "{}",
        log("install")
    );
    assert!(
        log("install").contains("health check: GET /health on 127.0.0.1:"),
        "{}",
        log("install")
    );

    // The hook ran as the app user; the user, config and release have their owners.
    assert_eq!(read(&out, "hook.owner"), "hello 644");
    assert_eq!(read(&out, "hook.version"), "1.0.0");
    assert_eq!(
        read(&out, "user"),
        "/applications/hello/data:/usr/sbin/nologin"
    );
    assert_eq!(
        read(&out, "config.owner"),
        "hello hello 600",
        "the config holds a secret"
    );
    assert_eq!(read(&out, "data.owner"), "hello 750");
    assert_eq!(read(&out, "release.owner"), "root 644");
    // configuration.yaml's environment reaches the service through a root-only file; the
    // secret is not in the unit.
    assert_eq!(read(&out, "env.greeting"), "HELLO_GREETING=Howdy");
    assert_eq!(read(&out, "env.secret"), "1");
    assert_eq!(read(&out, "env.file"), "root 600");
    assert_eq!(
        read(&out, "env.unit"),
        "1",
        "only the EnvironmentFile= line"
    );
    assert_eq!(read(&out, "env.secret-in-unit"), "0");
    assert_ne!(
        read(&out, "release.write.rc"),
        "0",
        "the app user wrote into its release"
    );

    assert_eq!(read(&out, "upgrade.rc"), "0", "{}", log("upgrade"));
    // gunicorn is ready before its workers load the app: each instance that starts answers
    // on its private socket before the one beside it stops (FORMAT.md 8.8).
    for (unit, socket) in [
        ("next.service", "web.next.sock"),
        ("service", "web.main.sock"),
    ] {
        assert!(
            log("upgrade").contains(&format!(
                "hello-web.{unit} answers: GET /health on \
                 unix:/applications/hello/.pyapp/check/{socket} answered 200 after "
            )),
            "{}",
            log("upgrade")
        );
    }
    assert!(
        read(&out, "v2.health").contains("\"version\":\"1.1.0\""),
        "{}",
        read(&out, "v2.health")
    );
    assert_eq!(read(&out, "v2.hook.version"), "1.1.0", "post-update ran");

    assert_eq!(read(&out, "rollback.rc"), "0", "{}", log("rollback"));
    assert!(
        read(&out, "rolled.health").contains("\"version\":\"1.0.0\""),
        "{}",
        read(&out, "rolled.health")
    );

    // A release whose health check fails is rolled back by itself, and says so.
    assert_eq!(read(&out, "broken.rc"), "1", "{}", log("broken"));
    let broken_error = log("broken");
    assert!(
        broken_error.contains("error: hello 1.2.0 was rolled back, version 1.0.0 (release 1.0.0-")
            // Checked beside the running release, on its private socket (FORMAT.md 8.8).
            && broken_error.contains(
                "health check failed: GET /missing on unix:/applications/hello/.pyapp/check/web.sock"
            )
            && broken_error.contains("answered 404"),
        "{broken_error}"
    );
    assert!(read(&out, "after-broken.health").contains("\"version\":\"1.0.0\""));
    assert!(read(&out, "after-broken.current").starts_with("releases/1.0.0-"));

    // So is one whose post-update hook fails, with the old release's units back.
    assert_eq!(read(&out, "badhook.rc"), "1", "{}", log("badhook"));
    assert!(
        log("badhook")
            .contains("error: hello 1.3.0 was rolled back, version 1.0.0 (release 1.0.0-")
            && log("badhook").contains("hook post-update failed (exit status 3)"),
        "{}",
        log("badhook")
    );
    assert!(read(&out, "after-badhook.health").contains("\"version\":\"1.0.0\""));
    assert_eq!(
        read(&out, "units.after-badhook"),
        read(&out, "units.before-badhook")
    );
    assert!(
        !read(&out, "releases.after-badhook").contains("1.3.0"),
        "the failed release is removed"
    );

    // A release that crashes at start is given up on as soon as systemd sees it crash, not
    // after its 600 s timeout, and its last journal lines show why.
    assert_eq!(read(&out, "crash.rc"), "1", "{}", log("crash"));
    let crash_log = log("crash");
    assert!(
        crash_log.contains("error: hello 1.4.0 was rolled back, version 1.0.0 (release 1.0.0-")
            // The new release crashed as its check instance (FORMAT.md 8.8), not restarted.
            && crash_log.contains("hello-web.check.service failed: ")
            && !crash_log.contains("gave up after")
            && crash_log.contains("the last lines of hello-web.check.service:")
            // The journal's last lines are the traceback, or gunicorn's halt after it.
            && (crash_log.contains("RuntimeError: hello crashes on purpose")
                || crash_log.contains("Worker failed to boot"))
            && crash_log.contains("hint: `pyapp-install logs hello` shows the whole log"),
        "{crash_log}"
    );
    assert!(read(&out, "after-crash.health").contains("\"version\":\"1.0.0\""));

    // `run` starts the service in the foreground as its unit would.
    assert!(
        read(&out, "run.health").contains("\"version\":\"1.0.0\""),
        "{}",
        read(&out, "run.log")
    );
    assert!(read(&out, "run.log").starts_with("running hello web as hello: /applications/hello/current/venv/bin/gunicorn --bind 127.0.0.1:"), "{}", read(&out, "run.log"));

    assert_eq!(read(&out, "remove.rc"), "0", "{}", log("remove"));
    assert_eq!(read(&out, "units.after"), "0", "units left behind");
    assert_ne!(read(&out, "web.after"), "active");
    assert_eq!(
        read(&out, "kept.after")
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["config", "data", "log"]
    );
}
