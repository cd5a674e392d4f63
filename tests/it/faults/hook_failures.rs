//! Under systemd-sandbox: upgrades whose hooks fail or hang.

use super::{in_sandbox, sandbox_bundle};

/// Runs in systemd-sandbox: installs hello 1.0.0, then tries upgrades whose hooks fail or
/// hang, recording for each the exit status, the units, `current`, the releases on disk,
/// the running version and any hook process left behind.
const HOOKS_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3
declare -A BUNDLE=([fails]=$4 [hangs]=$5 [stubborn]=$6 [pre-hangs]=$7)
A=/applications/hello
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
health() {
  python3 - "$(python3 -c "import json; print(json.load(open('$A/.pyapp/ports.json'))['ports']['web'])")" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/health", timeout=2).read().decode()); break
    except Exception as error:
        last = error; time.sleep(0.1)
else:
    print("unreachable:", last)
PY
}
units() { cat /etc/systemd/system/hello-* | sha256sum; }
pid() { systemctl show -p MainPID --value hello-web.service; }

step install "$INSTALL" --python $PY "$V1"
for NAME in fails hangs stubborn pre-hangs; do
  units > $OUT/$NAME.units.before
  readlink $A/current > $OUT/$NAME.current.before
  pid > $OUT/$NAME.pid.before
  START=$(date +%s)
  step $NAME "$INSTALL" --python $PY "${BUNDLE[$NAME]}"
  echo $(( $(date +%s) - START )) > $OUT/$NAME.seconds
  units > $OUT/$NAME.units.after
  readlink $A/current > $OUT/$NAME.current.after
  pid > $OUT/$NAME.pid.after
  ls $A/releases > $OUT/$NAME.releases
  health > $OUT/$NAME.health
  systemctl is-active hello-web.service > $OUT/$NAME.active
  pgrep -f 'time.sleep[(]60' > $OUT/$NAME.leftover || true
done
"#;

#[test]
fn hooks_that_fail_or_hang_roll_the_upgrade_back_with_the_old_units() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let post_update = |code: &str| format!("post-update: [python, -c, \"{code}\"]");
    let v1 = sandbox_bundle(work.path(), "1.0.0", &[]);
    let fails = sandbox_bundle(
        work.path(),
        "1.1.0",
        &[(
            "post-update: hello-migrate",
            &post_update("raise SystemExit(3)"),
        )],
    );
    let short = ("timeout: 120", "timeout: 2");
    let hangs = sandbox_bundle(
        work.path(),
        "1.2.0",
        &[
            (
                "post-update: hello-migrate",
                &post_update("import time; time.sleep(601)"),
            ),
            short,
        ],
    );
    // Ignores SIGTERM: killed 5 s after it.
    let stubborn = sandbox_bundle(
        work.path(),
        "1.3.0",
        &[
            (
                "post-update: hello-migrate",
                &post_update(
                    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(602)",
                ),
            ),
            short,
        ],
    );
    let pre_hangs = sandbox_bundle(
        work.path(),
        "1.4.0",
        &[
            (
                "post-update: hello-migrate",
                "pre-update: [python, -c, \"import time; time.sleep(603)\"]\n  post-update: hello-migrate",
            ),
            short,
        ],
    );
    let facts = in_sandbox(
        HOOKS_SCRIPT,
        &[&v1, &fails, &hangs, &stubborn, &pre_hangs],
        work.path(),
    );
    let fact = |name: &str| -> &str {
        facts
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {facts:#?}"))
    };
    assert_eq!(fact("install.rc"), "0", "{}", fact("install.log"));
    let cases = [
        (
            "fails",
            "1.1.0",
            "hook post-update failed (exit status 3)",
            "was rolled back, version 1.0.0 (release 1.0.0-",
        ),
        (
            "hangs",
            "1.2.0",
            "hook post-update timed out after 2 s",
            "was rolled back, version 1.0.0 (release 1.0.0-",
        ),
        (
            "stubborn",
            "1.3.0",
            "hook post-update timed out after 2 s",
            "was rolled back, version 1.0.0 (release 1.0.0-",
        ),
        (
            "pre-hangs",
            "1.4.0",
            "hook pre-update timed out after 2 s",
            "not installed, version 1.0.0 (release 1.0.0-",
        ),
    ];
    let mut failures = Vec::new();
    for (case, version, cause, outcome) in cases {
        let fact = |what: &str| fact(&format!("{case}.{what}"));
        let log = fact("log");
        let mut check = |good: bool, what: &str| {
            if !good {
                failures.push(format!("{case}: {what}\n{log}"));
            }
        };
        check(fact("rc") == "1", &format!("exit {}", fact("rc")));
        check(log.contains(cause), "no cause");
        check(
            log.contains(&format!("error: hello {version} {outcome}")),
            "no outcome",
        );
        check(fact("units.after") == fact("units.before"), "units changed");
        check(
            fact("current.after") == fact("current.before"),
            "current moved",
        );
        check(
            !fact("releases").contains(version),
            "the failed release is on disk",
        );
        check(
            fact("health").contains("\"version\":\"1.0.0\""),
            &format!("1.0.0 does not answer: {}", fact("health")),
        );
        check(fact("active") == "active", "hello-web is not active");
        check(
            fact("leftover").is_empty(),
            &format!("hook processes left: {}", fact("leftover")),
        );
    }
    // SIGKILL 5 s after the SIGTERM it ignored, not later.
    let seconds: u64 = fact("stubborn.seconds").parse().expect("seconds");
    assert!(
        (7..60).contains(&seconds),
        "the stubborn hook took {seconds} s"
    );
    // A pre-update hook runs before anything is stopped: the old service never stopped.
    assert_ne!(
        fact("pre-hangs.pid.before"),
        "0",
        "hello-web was not running"
    );
    assert_eq!(fact("pre-hangs.pid.after"), fact("pre-hangs.pid.before"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Runs in systemd-sandbox: installs hello 1.0.0, starts an upgrade whose `pre-update`
/// hook sleeps, kills pyapp-install with SIGKILL while the hook runs, and records whether
/// the hook was running before and is still running after.
const KILLED_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4
PY=/usr/bin/python3
"$INSTALL" --python $PY "$V1" > $OUT/install.log 2>&1; echo $? > $OUT/install.rc
"$INSTALL" --python $PY "$V2" > $OUT/upgrade.log 2>&1 &
INSTALLER=$!
for _ in $(seq 200); do pgrep -f 'sleep 605' > $OUT/child.before && break; sleep 0.1; done
pgrep -f 'time.sleep[(]604' > $OUT/before
kill -KILL $INSTALLER
wait $INSTALLER; echo $? > $OUT/upgrade.rc
sleep 1
pgrep -f 'time.sleep[(]604' > $OUT/after || true
pgrep -f 'sleep 605' > $OUT/child.after || true
"#;

/// Issue 12: a killed pyapp-install leaves no hook running (`PR_SET_PDEATHSIG`), nor the
/// processes the hook started (the guard of its process group).
#[test]
fn a_killed_install_takes_its_running_hook_with_it() {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let v1 = sandbox_bundle(work.path(), "1.0.0", &[]);
    let v2 = sandbox_bundle(
        work.path(),
        "1.1.0",
        &[(
            "post-update: hello-migrate",
            "pre-update: [python, -c, \"import subprocess, time; subprocess.Popen(['sleep', '605']); time.sleep(604)\"]\n  post-update: hello-migrate",
        )],
    );
    let facts = in_sandbox(KILLED_SCRIPT, &[&v1, &v2], work.path());
    let fact = |name: &str| -> &str {
        facts
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {facts:#?}"))
    };
    assert_eq!(fact("install.rc"), "0", "{}", fact("install.log"));
    assert!(
        !fact("before").is_empty(),
        "the hook never ran: {}",
        fact("upgrade.log")
    );
    assert_eq!(fact("upgrade.rc"), "137", "{}", fact("upgrade.log"));
    assert!(
        !fact("child.before").is_empty(),
        "the hook's child never ran"
    );
    assert_eq!(fact("after"), "", "the hook outlived pyapp-install");
    assert_eq!(
        fact("child.after"),
        "",
        "the hook's child outlived pyapp-install"
    );
}
