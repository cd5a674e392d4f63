//! Under systemd-sandbox: links the app user plants in its tree before an upgrade.

use super::{in_sandbox, sandbox_bundle};

/// Runs in systemd-sandbox: plants links and hard links in hello's tree, as its user where
/// it can and as root (standing for a user who got further) where it cannot, then upgrades
/// after each and records the outcome and the files outside the tree.
const PLANTED_SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4
A=/applications/hello
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
as_app() { setpriv --reuid=hello --regid=hello --init-groups "$@"; }
# Owner, group, mode, size and sha256 of everything outside (not the link count, which a
# hard link changes by itself).
outside() { find /srv/outside -printf '%p %u:%g %m %s\n' | sort; find /srv/outside -type f -exec sha256sum {} + | sort; }
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
# Upgrade (or downgrade) to the release that is not current; record what happened.
case_() {
  NAME=$1
  case $(readlink $A/current) in releases/1.0.0-*) B=$V2;; *) B=$V1;; esac
  step $NAME "$INSTALL" --python $PY --allow-downgrade "$B"
  outside > $OUT/$NAME.outside
  health > $OUT/$NAME.health
}

step install "$INSTALL" --python $PY "$V1"
mkdir -p /srv/outside/dir
echo secret > /srv/outside/secret; chmod 600 /srv/outside/secret
echo shared > /srv/outside/shared; chmod 666 /srv/outside/shared
echo inside > /srv/outside/dir/file; chmod 644 /srv/outside/dir/file
chmod 755 /srv/outside /srv/outside/dir
outside > $OUT/baseline.outside

# What the app user cannot do: replace config.yaml, data/ or log/ themselves.
as_app ln -sf /srv/outside/secret $A/config/config.yaml > /dev/null 2>&1; echo $? > $OUT/user-config.rc
as_app mv $A/data $A/data.moved > /dev/null 2>&1; echo $? > $OUT/user-data.rc
as_app mv $A/log $A/log.moved > /dev/null 2>&1; echo $? > $OUT/user-log.rc

# What it can: links inside data/ and log/.
as_app ln /srv/outside/shared $A/data/hardlink; echo $? > $OUT/user-hardlink.rc
case_ data-hardlink
as_app rm -f $A/data/hardlink
as_app rm -f $A/log/hooks.log; as_app ln -s /srv/outside/secret $A/log/hooks.log
case_ hooks-log-symlink
as_app rm -f $A/log/hooks.log; as_app ln /srv/outside/shared $A/log/hooks.log
case_ hooks-log-hardlink
as_app rm -f $A/log/hooks.log
as_app ln /srv/outside/shared $A/log/hardlink
case_ log-hardlink
as_app rm -f $A/log/hardlink
as_app rm -rf $A/data/sessions; as_app ln -s /srv/outside/dir $A/data/sessions
case_ sessions-symlink
as_app rm -f $A/data/sessions; as_app mkdir -m 750 $A/data/sessions

# As root: the links the app user cannot make, in case it ever could.
mv $A/config/config.yaml $A/config.yaml.real; ln -s /srv/outside/secret $A/config/config.yaml
case_ config-symlink
rm $A/config/config.yaml; ln /srv/outside/secret $A/config/config.yaml
case_ config-hardlink
rm $A/config/config.yaml; mv $A/config.yaml.real $A/config/config.yaml
mv $A/data $A/data.real; ln -s /srv/outside/dir $A/data
case_ data-symlink
rm $A/data; mv $A/data.real $A/data
mv $A/log $A/log.real; ln -s /srv/outside/dir $A/log
case_ log-symlink
rm $A/log; mv $A/log.real $A/log
case_ after
"#;

#[test]
fn links_the_app_user_plants_change_nothing_outside_the_tree() {
    // Not under /tmp: the sandbox mounts its own.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let v1 = sandbox_bundle(work.path(), "1.0.0", &[]);
    let v2 = sandbox_bundle(work.path(), "1.1.0", &[]);
    let facts = in_sandbox(PLANTED_SCRIPT, &[&v1, &v2], work.path());
    let fact = |name: &str| -> &str {
        facts
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {facts:#?}"))
    };
    assert_eq!(fact("install.rc"), "0", "{}", fact("install.log"));
    for step in ["user-config", "user-data", "user-log"] {
        assert_ne!(
            fact(&format!("{step}.rc")),
            "0",
            "the app user could {step}"
        );
    }
    let baseline = fact("baseline.outside");
    assert!(
        baseline.contains("/srv/outside/secret root:root 600 7"),
        "{baseline}"
    );
    // (case, what the upgrade must say: it is refused, or it succeeds).
    let cases = [
        ("data-hardlink", None),
        (
            "hooks-log-symlink",
            Some("hooks.log` is a symbolic link; refusing to write to it"),
        ),
        (
            "hooks-log-hardlink",
            Some("hooks.log` is a file with other hard links; refusing to write to it"),
        ),
        ("log-hardlink", None),
        (
            "sessions-symlink",
            Some("data/sessions` is a symbolic link; refusing to follow or replace it"),
        ),
        (
            "config-symlink",
            Some("config/config.yaml` is a symbolic link; refusing to follow or read it"),
        ),
        (
            "config-hardlink",
            Some("error: /applications/hello/config/config.yaml:1: "),
        ),
        (
            "data-symlink",
            Some("/applications/hello/data` is a symbolic link; refusing to follow or replace it"),
        ),
        (
            "log-symlink",
            Some("/applications/hello/log` is a symbolic link; refusing to follow or replace it"),
        ),
        ("after", None),
    ];
    let mut failures = Vec::new();
    for (case, refusal) in cases {
        let rc = fact(&format!("{case}.rc"));
        let log = fact(&format!("{case}.log"));
        eprintln!(
            "{case}: exit {rc}: {}",
            log.lines().next().unwrap_or_default()
        );
        let outcome_ok = match refusal {
            Some(text) => rc == "1" && log.contains(text),
            None => rc == "0",
        };
        if !outcome_ok {
            failures.push(format!("{case}: exit {rc}: {log}"));
        }
        if fact(&format!("{case}.outside")) != baseline {
            failures.push(format!(
                "{case}: outside changed:\n{}\nwas\n{baseline}",
                fact(&format!("{case}.outside"))
            ));
        }
        if !fact(&format!("{case}.health")).contains("\"version\":\"1.") {
            failures.push(format!(
                "{case}: the app does not answer: {}",
                fact(&format!("{case}.health"))
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
