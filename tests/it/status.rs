//! `pyapp-install status` and `logs` (FORMAT.md 9): under a real systemd
//! (`systemd-sandbox`), the example app installed, upgraded while `logs -f` follows it, and
//! upgraded to a release whose post-update hook fails: the unit states, the hook results,
//! the disk and store usage (checked against the files themselves), the merged journal and
//! hook log in time order. Under `--root`, where no systemd runs: unknown unit states, the
//! hook log alone, followed; unknown apps and planted logs refused.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use pyapp_bundle::metadata::{DependencyMode, Metadata};
use pyapp_install::app::receipt::parse_rfc3339_utc;
use serde_json::Value;

use crate::harness::{self, bin, stderr};
use crate::lifecycle::{bundle, Flaw};

/// Runs in the sandbox; what the test checks goes into files of $OUT.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4; BADHOOK=$5
A=/applications/hello
PY=/usr/bin/python3
step() { NAME=$1; shift; "$@" > $OUT/$NAME.out 2> $OUT/$NAME.err; echo $? > $OUT/$NAME.rc; }
files() { find "$@" -type f -printf '%D %i %s %p\n' 2> /dev/null; }
# Waits (60 s at most) until FILE has at least COUNT lines matching the regex PATTERN.
await() { for _ in $(seq 600); do [ "$(grep -cE "$2" "$1")" -ge "$3" ] && return 0; sleep 0.1; done; return 1; }

step install "$INSTALL" --python $PY "$V1"
step status "$INSTALL" status hello
step status-json "$INSTALL" --json status hello
files $A > $OUT/app.files
files /applications/.store/wheels > $OUT/store.files
for meta in $A/releases/*/metadata.yaml; do cp $meta $OUT/meta-$(basename $(dirname $meta)).yaml; done
step logs "$INSTALL" logs hello
step logs-json "$INSTALL" --json logs hello
step logs-full "$INSTALL" logs hello
step logs-tail "$INSTALL" logs -n 3 hello
step logs-since "$INSTALL" logs --since 1h -n 3 hello

"$INSTALL" logs -f hello > $OUT/follow.out 2> $OUT/follow.err &
FOLLOW=$!
await $OUT/follow.out . 1; echo $? > $OUT/follow.backlog
step upgrade "$INSTALL" --python $PY "$V2"
await $OUT/follow.out 'hook post-update: hello-migrate: .* migrated to 1\.1\.0' 1; echo $? > $OUT/follow.hook
WEB=$(systemctl show -p MainPID --value hello-web.service)
await $OUT/follow.out "hello-web\\.service\\[$WEB\\]: .*Listening at" 1; echo $? > $OUT/follow.journal
kill $FOLLOW; wait $FOLLOW 2> /dev/null
for _ in $(seq 100); do pgrep -f 'journalctl .*--follow' > /dev/null || break; sleep 0.1; done
pgrep -fa 'journalctl .*--follow' > $OUT/follow.left

step badhook "$INSTALL" --python $PY "$BADHOOK"
step status-after "$INSTALL" --json status hello
# A check instance left running, as a crash in the middle of a handover would leave it.
systemctl start hello-web.check.socket hello-web.check.service
step status-instance "$INSTALL" status hello
"#;

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        .trim_end()
        .to_string()
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `find -printf '%D %i %s %p'` lines as (device, inode, size, path).
fn files(listing: &str) -> Vec<((u64, u64), u64, PathBuf)> {
    listing
        .lines()
        .map(|line| {
            let mut fields = line.splitn(4, ' ');
            let mut number = || fields.next().unwrap().parse::<u64>().unwrap();
            let (device, inode, size) = (number(), number(), number());
            ((device, inode), size, PathBuf::from(fields.next().unwrap()))
        })
        .collect()
}

/// The time at the start of a `logs` line, in microseconds.
fn line_time(line: &str) -> u64 {
    let time = line.split(' ').next().unwrap();
    parse_rfc3339_utc(time).unwrap_or_else(|| panic!("no time at the start of {line:?}"))
}

#[test]
fn status_and_logs_of_the_running_example_under_systemd() {
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let v2 = bundle(work.path(), "1.1.0", Flaw::None);
    let bad_hook = bundle(work.path(), "1.2.0", Flaw::PostUpdate);
    let out = harness::run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [bin("pyapp-install"), v1, v2, bad_hook],
    );
    let step = |name: &str| {
        assert_eq!(
            read(&out, &format!("{name}.rc")),
            "0",
            "{name}: {}",
            read(&out, &format!("{name}.err"))
        );
        read(&out, &format!("{name}.out"))
    };
    step("install");

    // The human form: one aligned line per fact.
    let human = step("status");
    let line = |label: &str, start: &str| -> String {
        human
            .lines()
            .find(|line| line.starts_with(&format!("  {label:<9} {start}")))
            .unwrap_or_else(|| panic!("no `{label} {start}` line in:\n{human}"))
            .to_owned()
    };
    assert!(human.starts_with("hello 1.0.0, release 1.0.0-"), "{human}");
    assert_eq!(line("user", ""), "  user      hello");
    assert!(line("service", "hello-web.service").contains("  active (running) since 20"));
    // A socket whose service runs is `active (running)`; idle, `active (listening)`.
    assert!(line("socket", "hello-web.socket").contains("  active (running) since 20"));
    assert!(!human.contains("  instance "), "{human}");
    let timer = line("timer", "hello-cleanup.timer");
    assert!(
        timer.contains("active (waiting)") && timer.contains(", next 20"),
        "{timer}"
    );
    assert!(line("task", "hello-cleanup.service").contains("inactive (dead)"));
    assert!(line("hook", "post-install").contains("succeeded (exit status 0) at 20"));
    assert!(!human.contains("systemd   not running"), "{human}");

    let status = json(&step("status-json"));
    let release = status["release"].as_str().unwrap().to_owned();
    assert!(release.starts_with("1.0.0-"), "{status}");
    assert_eq!(status["name"], "hello");
    assert_eq!(status["version"], "1.0.0");
    assert_eq!(status["user"], "hello");
    assert_eq!(status["python"], "/usr/bin/python3");
    assert_eq!(
        status["config-file"],
        "/applications/hello/config/config.yaml"
    );
    assert_eq!(status["systemd"], "running");
    assert_eq!(status["releases"].as_array().unwrap().len(), 1);
    assert_eq!(status["releases"][0]["current"], true);
    let web = &status["services"][0];
    assert_eq!(web["unit"], "hello-web.service");
    assert_eq!(
        (&web["active-state"], &web["sub-state"], &web["load-state"]),
        (&"active".into(), &"running".into(), &"loaded".into())
    );
    assert_eq!(web["listen"], "port");
    assert_eq!(web["listener"]["unit"], "hello-web.socket", "{web}");
    assert_eq!(web["listener"]["active-state"], "active", "{web}");
    assert_eq!(web["instances"], serde_json::json!([]), "{web}");
    assert!(
        web["port"].as_u64().is_some_and(|port| port >= 8000),
        "{web}"
    );
    let installed_at = parse_rfc3339_utc(status["installed-at"].as_str().unwrap()).unwrap();
    let task = &status["tasks"][0];
    assert_eq!(task["schedule"], "*-*-* 03:00:00");
    assert_eq!(task["timer"]["unit"], "hello-cleanup.timer");
    assert_eq!(task["timer"]["active-state"], "active");
    assert_eq!(task["timer"]["sub-state"], "waiting");
    let next = task["timer"]["next-elapse"].as_str().unwrap();
    assert!(
        parse_rfc3339_utc(next).is_some_and(|next| next > installed_at),
        "next elapse {next}"
    );
    assert_eq!(task["timer"]["last-trigger"], Value::Null);
    assert_eq!(task["service"]["unit"], "hello-cleanup.service");
    assert_eq!(task["service"]["active-state"], "inactive");
    let hook = &status["hooks"]["post-install"];
    assert_eq!(
        (&hook["result"], &hook["exit-status"], &hook["signal"]),
        (&"succeeded".into(), &0.into(), &Value::Null)
    );
    assert_eq!(hook["release"], release.as_str());
    assert_eq!(hook["version"], "1.0.0");
    assert!(parse_rfc3339_utc(hook["started-at"].as_str().unwrap()).is_some());
    assert!(hook["duration-seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(
        status
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        [
            "config-file",
            "disk-usage",
            "hooks",
            "installed-at",
            "name",
            "path",
            "python",
            "python-version",
            "release",
            "releases",
            "services",
            "store-usage",
            "systemd",
            "tasks",
            "user",
            "version"
        ]
        .into_iter()
        .collect::<BTreeSet<_>>()
    );

    // Store usage: the store entries of the release's shared wheels, each inode once;
    // disk usage: the app's files, each inode once, without those.
    let metadata_path = out.join(format!("meta-{release}.yaml"));
    let metadata = Metadata::parse(
        &fs::read_to_string(&metadata_path).unwrap(),
        "metadata.yaml",
    )
    .unwrap();
    let shared: BTreeSet<&str> = metadata
        .dependencies
        .iter()
        .filter(|dependency| dependency.mode == DependencyMode::Shared)
        .map(|dependency| dependency.sha256.as_str())
        .collect();
    assert!(!shared.is_empty(), "the example has shared wheels");
    let store_dir = Path::new("/applications/.store/wheels");
    let mut store_inodes = HashSet::new();
    let mut store_bytes = 0;
    let mut entries = BTreeSet::new();
    for (inode, size, path) in files(&read(&out, "store.files")) {
        let sha256 = path
            .strip_prefix(store_dir)
            .unwrap()
            .components()
            .next()
            .unwrap();
        let sha256 = sha256.as_os_str().to_str().unwrap().to_owned();
        if shared.contains(sha256.as_str()) && store_inodes.insert(inode) {
            store_bytes += size;
            entries.insert(sha256);
        }
    }
    let store = &status["store-usage"];
    assert_eq!(store["path"], "/applications/.store/wheels");
    assert_eq!(store["shared-wheels"], shared.len());
    assert_eq!(store["entries"], entries.len());
    assert_eq!(store["bytes"], store_bytes);
    if !read(&out, "store.files").is_empty() {
        assert!(
            store_bytes > 0 && !entries.is_empty(),
            "the store has the app's wheels"
        );
    }
    let mut seen = store_inodes;
    let mut disk: BTreeMap<&str, u64> = BTreeMap::new();
    for (inode, size, path) in files(&read(&out, "app.files")) {
        if !seen.insert(inode) {
            continue;
        }
        *disk.entry("bytes").or_default() += size;
        let top = path.strip_prefix("/applications/hello").unwrap();
        for dir in ["releases", "data", "log"] {
            if top.starts_with(dir) {
                *disk.entry(dir).or_default() += size;
            }
        }
    }
    for key in ["bytes", "releases", "data", "log"] {
        assert_eq!(status["disk-usage"][key], disk[key], "disk-usage {key}");
    }
    // The wheels' files are the store's (hard links): what is left in releases/ is the
    // source, the launchers, RECORDs and the venv's own files.
    assert!(disk["releases"] > 0, "{disk:?}");
    assert!(
        store_bytes > 1 << 20,
        "the store holds the wheels: {store_bytes}"
    );

    // logs: the hook log and the units' journal in one stream, in time order.
    let logs = step("logs");
    let lines: Vec<&str> = logs.lines().collect();
    let position = |pattern: &str| {
        lines
            .iter()
            .position(|line| line.contains(pattern))
            .unwrap_or_else(|| panic!("no {pattern:?} in:\n{logs}"))
    };
    let hook_line = position(
        " hook post-install: hello-migrate: data at /applications/hello/data migrated to 1.0.0",
    );
    let started = position(" systemd[1]: Started hello-web.service");
    // gunicorn lists every socket it was passed, in no set order: the public one and its
    // private one (FORMAT.md 8.8).
    let public = format!("http://127.0.0.1:{}", web["port"]);
    let listening = lines
        .iter()
        .position(|line| {
            line.contains("Listening at: ")
                && line.contains(&public)
                && line.contains("unix:/applications/hello/.pyapp/check/web.main.sock")
        })
        .unwrap_or_else(|| panic!("no gunicorn listening at {public} in:\n{logs}"));
    // Type=notify (FORMAT.md 8.8): systemd says Started once gunicorn holds its socket.
    assert!(hook_line < started && hook_line < listening, "{logs}");
    assert!(
        lines[listening].contains(" hello-web.service["),
        "{}",
        lines[listening]
    );
    let times: Vec<u64> = lines.iter().map(|line| line_time(line)).collect();
    assert!(times.is_sorted(), "not in time order:\n{logs}");
    let json_lines: Vec<Value> = step("logs-json").lines().map(json).collect();
    assert_eq!(json_lines.len(), lines.len());
    for (object, line) in json_lines.iter().zip(&lines) {
        let expected = format!(
            "{}: {}",
            object["source"].as_str().unwrap(),
            object["message"].as_str().unwrap()
        );
        assert!(line.ends_with(&expected), "{line} vs {object}");
        let micros = parse_rfc3339_utc(object["time"].as_str().unwrap()).unwrap();
        assert_eq!(micros / 1_000_000, line_time(line) / 1_000_000);
    }
    let full = step("logs-full");
    let last_three: Vec<&str> = full.lines().rev().take(3).collect();
    let tail = step("logs-tail");
    assert_eq!(tail.lines().rev().collect::<Vec<_>>(), last_three);
    assert_eq!(
        step("logs-since"),
        tail,
        "--since with -n: the last lines since"
    );

    // logs -f: the backlog, then the upgrade's hook and the restarted service as they come;
    // killed, it leaves no journalctl behind.
    step("upgrade");
    let follow = read(&out, "follow.out");
    assert_eq!(read(&out, "follow.backlog"), "0", "{follow}");
    assert_eq!(read(&out, "follow.hook"), "0", "{follow}");
    assert_eq!(read(&out, "follow.journal"), "0", "{follow}");
    assert!(follow.lines().count() > 10, "{follow}");
    assert_eq!(read(&out, "follow.left"), "", "journalctl still follows");

    // A failed post-update hook is recorded with the release it ran with.
    assert_eq!(
        read(&out, "badhook.rc"),
        "1",
        "{}",
        read(&out, "badhook.err")
    );
    let after = json(&step("status-after"));
    assert_eq!(after["version"], "1.1.0", "rolled back to 1.1.0");
    assert_eq!(after["releases"].as_array().unwrap().len(), 2);
    let failed = &after["hooks"]["post-update"];
    assert_eq!(
        (
            &failed["result"],
            &failed["exit-status"],
            &failed["version"]
        ),
        (&"failed".into(), &3.into(), &"1.2.0".into())
    );
    assert!(failed["release"].as_str().unwrap().starts_with("1.2.0-"));
    assert_eq!(after["hooks"]["post-install"]["release"], release.as_str());
    assert_eq!(after["services"][0]["active-state"], "active");
    let left = step("status-instance");
    assert!(
        left.lines().any(
            |line| line.starts_with("  instance  hello-web.check.service")
                && line.contains("active (running)")
        ),
        "{left}"
    );
}

/// A child process killed (and reaped) when the test is done with it, or fails.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn status_and_logs_under_a_root_without_systemd() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("root");
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let installed = harness::pyapp_install_at(
        &root,
        &[
            "--quiet",
            "--python",
            "/usr/bin/python3",
            v1.to_str().unwrap(),
        ],
    );
    assert!(installed.status.success(), "{}", stderr(&installed));

    let shown = harness::pyapp_install_at(&root, &["status", "hello"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    let human = String::from_utf8(shown.stdout).unwrap();
    assert!(
        human.contains("\n  systemd   not running: unit states unknown\n"),
        "{human}"
    );
    assert!(
        human.contains("\n  service   hello-web.service      unknown, port "),
        "{human}"
    );
    assert!(human.contains("\n  hooks     none has run\n"), "{human}");
    let status = json(
        &String::from_utf8(harness::pyapp_install_at(&root, &["--json", "status", "hello"]).stdout)
            .unwrap(),
    );
    assert_eq!(status["systemd"], "not-running");
    assert_eq!(status["user"], Value::Null);
    assert_eq!(status["hooks"], serde_json::json!({}));
    assert_eq!(
        status["path"],
        root.join("applications/hello").to_str().unwrap()
    );
    for (unit, name) in [
        (&status["services"][0], "hello-web.service"),
        (&status["tasks"][0]["timer"], "hello-cleanup.timer"),
        (&status["tasks"][0]["service"], "hello-cleanup.service"),
    ] {
        assert_eq!(unit["unit"], name);
        assert_eq!(unit["active-state"], Value::Null, "{unit}");
        assert_eq!(unit["load-state"], Value::Null, "{unit}");
    }
    assert_eq!(status["tasks"][0]["timer"]["next-elapse"], Value::Null);

    // No hook ran under --root: nothing to show, and it says why.
    let logs = harness::pyapp_install_at(&root, &["logs", "hello"]);
    assert!(logs.status.success(), "{}", stderr(&logs));
    assert!(logs.stdout.is_empty());
    let notes = stderr(&logs);
    assert!(
        notes.contains("log/hooks.log` does not exist: no hook has run"),
        "{notes}"
    );
    assert!(
        notes.contains("systemd is not running here: only the hook log `"),
        "{notes}"
    );

    // The hook log alone, in the form hooks write it.
    let log_path = root.join("applications/hello/log/hooks.log");
    fs::write(
        &log_path,
        "=== 2026-11-21T15:15:30.100Z hook post-install: hello-migrate\n\
         migrated\n\
         === 2026-11-21T15:15:30.900Z hook post-install: exit status 0 after 0.8 s\n",
    )
    .unwrap();
    let logs = harness::pyapp_install_at(&root, &["--quiet", "logs", "hello"]);
    assert_eq!(
        String::from_utf8(logs.stdout).unwrap(),
        "2026-11-21T15:15:30Z hook post-install: === hello-migrate\n\
         2026-11-21T15:15:30Z hook post-install: migrated\n\
         2026-11-21T15:15:30Z hook post-install: === exit status 0 after 0.8 s\n"
    );
    let last = harness::pyapp_install_at(&root, &["--quiet", "logs", "-n", "1", "hello"]);
    assert_eq!(
        String::from_utf8(last.stdout).unwrap(),
        "2026-11-21T15:15:30Z hook post-install: === exit status 0 after 0.8 s\n"
    );
    let since = harness::pyapp_install_at(
        &root,
        &[
            "--quiet",
            "logs",
            "--since",
            "2026-11-21T15:15:31Z",
            "hello",
        ],
    );
    assert!(
        since.status.success() && since.stdout.is_empty(),
        "{}",
        stderr(&since)
    );

    // -f prints what a hook appends, as it comes.
    let mut follow = KilledOnDrop(
        Command::new(bin("pyapp-install"))
            .arg("--root")
            .arg(&root)
            .args(["--quiet", "logs", "-f", "hello"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let (sender, receiver) = mpsc::channel();
    let stdout = follow.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line.unwrap()).is_err() {
                return;
            }
        }
    });
    let next = || receiver.recv_timeout(Duration::from_secs(60));
    assert!(next().unwrap().ends_with("=== hello-migrate"));
    assert!(next().unwrap().ends_with(": migrated"));
    assert!(next().unwrap().ends_with("exit status 0 after 0.8 s"));
    let mut log = fs::OpenOptions::new().append(true).open(&log_path).unwrap();
    log.write_all(b"=== 2026-11-21T16:00:00.000Z hook pre-delete: /bin/true\n")
        .unwrap();
    assert_eq!(
        next().unwrap(),
        "2026-11-21T16:00:00Z hook pre-delete: === /bin/true"
    );
    drop(follow);

    // A link planted in the log's place is not followed.
    fs::remove_file(&log_path).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", &log_path).unwrap();
    let planted = harness::pyapp_install_at(&root, &["logs", "hello"]);
    assert_eq!(planted.status.code(), Some(1), "{}", stderr(&planted));
    assert!(
        stderr(&planted).contains("hooks.log` is a symbolic link; not reading it"),
        "{}",
        stderr(&planted)
    );
    assert!(planted.stdout.is_empty());

    for args in [["status", "nope"], ["logs", "nope"]] {
        let unknown = harness::pyapp_install_at(&root, &args);
        assert_eq!(unknown.status.code(), Some(1));
        assert_eq!(
            stderr(&unknown),
            format!(
                "error: nope is not installed in {}\nhint: `pyapp-install list` shows the installed apps\n",
                root.join("applications").display()
            )
        );
    }
    let bad_since = harness::pyapp_install_at(&root, &["logs", "--since", "yesterday", "hello"]);
    assert_eq!(bad_since.status.code(), Some(1));
    assert!(
        stderr(&bad_since).contains("`yesterday` is neither a time like"),
        "{}",
        stderr(&bad_since)
    );
}
