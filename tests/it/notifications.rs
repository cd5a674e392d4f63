//! Notifications (FORMAT.md 13.1) under a real systemd (`systemd-sandbox`): a task whose
//! run fails starts `pyapp-notify@hello-cleanup.service.service` through its `OnFailure=`,
//! which records the event; `pyapp-notify.path` starts the deliverer, which posts it to a
//! webhook that refuses the first two tries (so it is retried, then delivered) and pipes
//! it to a command that runs as `nobody`; an upgrade whose health check fails, one whose
//! post-update hook fails, a `config --set` whose handover fails its health check, a
//! service killed for good (`restart: no`) and a `remove` whose pre-delete hook fails are
//! recorded and delivered too; `GET /api/v1/notifications` and the console list them. A unit that is
//! not an app's, and a configuration that is refused, exit 1 with one line.

use serde_json::Value;

use crate::console::Api;
use crate::harness::{self, fact};
use crate::lifecycle::{bundle, Flaw};

const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; BROKEN=$4; BADHOOK=$5
PY=/usr/bin/python3
SENT=/var/lib/pyapp/notify/sent
# Waits (at most two minutes: the machine is shared) until sent/ holds $1 events.
sent() { for _ in $(seq 1200); do [ "$(ls $SENT 2>/dev/null | wc -l)" -ge "$1" ] && return; sleep 0.1; done; }

# The webhook: answers 503 to the first two requests, then 200; keeps every request.
cat > /tmp/receiver.py <<'PY'
import http.server, json, sys
out, refused = sys.argv[1], int(sys.argv[2])
seen = 0
class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        seen += 1
        body = self.rfile.read(int(self.headers["Content-Length"]))
        code = 503 if seen <= refused else 200
        with open(out, "a") as f:
            f.write(json.dumps({"try": seen, "code": code, "path": self.path,
                                "type": self.headers["Content-Type"],
                                "event": json.loads(body)}) + "\n")
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", 9470), Receiver).serve_forever()
PY
$PY /tmp/receiver.py $OUT/received.jsonl 2 &
# The command: who it runs as, then the event it was given on stdin.
mkdir -m 1777 /var/tmp/notified
printf '#!/bin/sh\nf=/var/tmp/notified/$(date +%%s%%N)\n{ id -u; id -g; id -G; env | sort | tr "\\n" " "; echo; cat; } > $f.part && mv $f.part $f.json\n' > /usr/local/bin/notify-cmd
chmod 755 /usr/local/bin/notify-cmd
mkdir -p /etc/pyapp
cat > /etc/pyapp/notify.yaml <<'YAML'
webhook: http://127.0.0.1:9470/pyapp/events
command: [/usr/local/bin/notify-cmd]
attempts: 4
retry-delay: 1
timeout: 20
YAML

"$INSTALL" --json notify --install-units > $OUT/units.json 2> $OUT/units.err; echo $? > $OUT/units.rc
systemctl is-enabled pyapp-notify.path > $OUT/path.enabled
"$INSTALL" --python $PY "$V1" > $OUT/install.out 2>&1; echo $? > $OUT/install.rc
grep '^OnFailure=' /etc/systemd/system/hello-cleanup.service /etc/systemd/system/hello-web.service \
  /etc/systemd/system/hello-web.check.service > $OUT/onfailure 2>&1
(cd /etc/systemd/system && systemd-analyze verify hello-cleanup.service hello-web.service \
  pyapp-notify.service pyapp-notify.path pyapp-notify@hello-cleanup.service.service) \
  > $OUT/verify.out 2> $OUT/verify.err; echo $? > $OUT/verify.rc

systemctl start hello-cleanup.service; echo $? > $OUT/task.rc
sent 1
"$INSTALL" --python $PY "$BROKEN" > $OUT/broken.out 2>&1; echo $? > $OUT/broken.rc
sent 2
"$INSTALL" --python $PY "$BADHOOK" > $OUT/badhook.out 2>&1; echo $? > $OUT/badhook.rc
sent 3
# A configuration the running release does not take: an administrator's drop-in makes every
# new check instance fail, so the handover of `config --set` fails its health check.
mkdir -p /etc/systemd/system/hello-web.check.service.d
printf '[Service]\nExecStartPre=/bin/false\n' > /etc/systemd/system/hello-web.check.service.d/broken.conf
systemctl daemon-reload
"$INSTALL" config hello --set greeting=Unseen > $OUT/config.out 2>&1; echo $? > $OUT/config.rc
rm -r /etc/systemd/system/hello-web.check.service.d
systemctl daemon-reload
sent 4
# A service that fails for good (restart: no) and is not restarted.
systemctl is-active hello-web.service > $OUT/web.before
systemctl kill -s KILL --kill-whom=main hello-web.service
sent 5
systemctl is-failed hello-web.service > $OUT/web.after
# A removal whose pre-delete hook fails: refused, the app left as it was.
"$INSTALL" remove hello > $OUT/remove.out 2>&1; echo $? > $OUT/remove.rc
test -L /applications/hello/current; echo $? > $OUT/current.after-remove
sent 6
ls $SENT > $OUT/sent.list
ls /var/lib/pyapp/notify/pending > $OUT/pending.list
for f in $SENT/*.json; do cat $f; echo; done > $OUT/sent.records
stat -c '%a %U' /var/lib/pyapp/notify > $OUT/spool.stat
cat /var/tmp/notified/*.json > $OUT/command.log 2>&1
journalctl -q -u pyapp-notify.service -o cat > $OUT/deliverer.log
journalctl -q -u pyapp-notify@hello-cleanup.service.service -o cat > $OUT/recorder.log

"$INSTALL" --json notify --app hello > $OUT/cli.json 2> $OUT/cli.err
"$INSTALL" notify > $OUT/cli.txt 2> $OUT/cli-text.err
"$INSTALL" notify --unit sshd.service > $OUT/foreign.out 2> $OUT/foreign.err; echo $? > $OUT/foreign.rc
"$INSTALL" notify --unit 'hello-x;rm.service' > $OUT/hostile.out 2> $OUT/hostile.err; echo $? > $OUT/hostile.rc

"$INSTALL" serve --socket /run/pyapp/api.sock > $OUT/serve.log 2>&1 &
for _ in $(seq 100); do [ -S /run/pyapp/api.sock ] && break; sleep 0.1; done
call() { NAME=$1; shift; curl -s -o $OUT/$NAME.body -w '%{http_code}' --unix-socket /run/pyapp/api.sock "$@" > $OUT/$NAME.code; }
call api http://localhost/api/v1/notifications
call api-one 'http://localhost/api/v1/notifications?app=hello&limit=1'
call api-bad 'http://localhost/api/v1/notifications?colour=red'
call api-not-an-app 'http://localhost/api/v1/notifications?app=Not..An.App'
call page -H 'Accept: text/html' http://localhost/notifications
call app-page -H 'Accept: text/html' http://localhost/apps/hello

# A refused configuration: one line naming the field, exit 1, the spool left alone.
printf 'webhook: https://hooks.example/x\n' > /etc/pyapp/notify.yaml
"$INSTALL" notify --deliver > $OUT/bad-config.out 2> $OUT/bad-config.err; echo $? > $OUT/bad-config.rc
exit 0
"#;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Checks `event`'s kind, hook (when given) and version, and that its message contains
/// `message`.
fn assert_event(event: &Value, (kind, hook, version): (&str, Option<&str>, &str), message: &str) {
    assert_eq!(event["kind"], kind, "{event}");
    if let Some(hook) = hook {
        assert_eq!(event["hook"], hook);
    }
    assert_eq!(event["version"], version);
    assert!(
        event["message"].as_str().unwrap().contains(message),
        "{event}"
    );
}

#[test]
fn failures_are_recorded_delivered_with_retries_and_listed() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(harness::workspace().join("target")).unwrap();
    let project = harness::hello_at_version("1.0.0");
    harness::edit(
        project.path(),
        "metadata.yaml",
        "command: hello-cleanup",
        "command: [python, -c, \"raise SystemExit(4)\"]",
    );
    harness::edit(
        project.path(),
        "metadata.yaml",
        "restart: on-failure",
        "restart: \"no\"",
    );
    harness::edit(
        project.path(),
        "metadata.yaml",
        "  timeout: 120",
        "  pre-delete: [python, -c, \"raise SystemExit(5)\"]\n  timeout: 120",
    );
    let v1 = harness::build_bundle(project.path(), &work.path().join("1.0.0"));
    let broken = bundle(work.path(), "1.2.0", Flaw::HealthCheck);
    let badhook = bundle(work.path(), "1.3.0", Flaw::PostUpdate);
    let out = harness::run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [harness::bin("pyapp-install"), v1, broken, badhook],
    );

    // The units: written, the path unit enabled; the app's main and task units notify,
    // the check instance (an upgrade's own) does not; all verify.
    assert_eq!(fact(&out, "units.rc"), "0", "{}", fact(&out, "units.err"));
    assert_eq!(fact(&out, "path.enabled"), "enabled");
    assert_eq!(
        fact(&out, "install.rc"),
        "0",
        "{}",
        fact(&out, "install.out")
    );
    assert_eq!(
        fact(&out, "onfailure"),
        "/etc/systemd/system/hello-cleanup.service:OnFailure=pyapp-notify@%n.service\n\
         /etc/systemd/system/hello-web.service:OnFailure=pyapp-notify@%n.service"
    );
    assert_eq!(
        fact(&out, "verify.err"),
        "",
        "systemd-analyze verify wrote to stderr"
    );
    assert_eq!(fact(&out, "verify.rc"), "0");

    assert_ne!(fact(&out, "task.rc"), "0", "the task's run fails");
    assert_eq!(fact(&out, "broken.rc"), "1", "{}", fact(&out, "broken.out"));
    assert_eq!(
        fact(&out, "badhook.rc"),
        "1",
        "{}",
        fact(&out, "badhook.out")
    );
    assert_eq!(fact(&out, "config.rc"), "1", "{}", fact(&out, "config.out"));
    assert_eq!(fact(&out, "remove.rc"), "1", "{}", fact(&out, "remove.out"));
    assert_eq!(fact(&out, "current.after-remove"), "0");
    assert_eq!(fact(&out, "pending.list"), "", "everything was delivered");
    assert_eq!(
        fact(&out, "sent.list").lines().count(),
        6,
        "{}",
        fact(&out, "deliverer.log")
    );
    assert_eq!(fact(&out, "web.before"), "active");
    assert_eq!(fact(&out, "web.after"), "failed");
    assert_eq!(fact(&out, "spool.stat"), "700 root");
    assert!(
        fact(&out, "recorder.log").contains("recorded: hello-cleanup.service failed"),
        "{}",
        fact(&out, "recorder.log")
    );

    // The webhook: two refused tries, then each event once, in order, as FORMAT.md says.
    let received: Vec<Value> = fact(&out, "received.jsonl").lines().map(json).collect();
    let codes: Vec<u64> = received
        .iter()
        .map(|r| r["code"].as_u64().unwrap())
        .collect();
    assert_eq!(
        codes,
        [503, 503, 200, 200, 200, 200, 200, 200],
        "{received:?}"
    );
    for request in &received {
        assert_eq!(request["path"], "/pyapp/events");
        assert_eq!(request["type"], "application/json");
    }
    let task = &received[2]["event"];
    assert_eq!(
        received[0]["event"], *task,
        "the retries send the same event"
    );
    let fields: Vec<&str> = task
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = [
        "id", "time", "host", "kind", "app", "unit", "hook", "version", "release", "message", "log",
    ];
    expected.sort_unstable();
    let mut sorted = fields.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected, "{task}");
    assert_eq!(task["kind"], "task-failed");
    assert_eq!(task["app"], "hello");
    assert_eq!(task["unit"], "hello-cleanup.service");
    assert_eq!(task["version"], "1.0.0");
    assert!(
        task["release"].as_str().unwrap().starts_with("1.0.0-"),
        "{task}"
    );
    assert_eq!(
        task["message"],
        "hello-cleanup.service failed (exit-code: exit status 4)"
    );
    assert!(task["log"].is_array(), "{task}");
    let upgrade = &received[3]["event"];
    assert_eq!(upgrade["kind"], "upgrade-failed", "{upgrade}");
    assert_eq!(upgrade["version"], "1.2.0");
    assert_eq!(upgrade["unit"], Value::Null);
    let message = upgrade["message"].as_str().unwrap();
    assert!(
        message.starts_with("hello 1.2.0 was rolled back, version 1.0.0")
            && message.contains("/missing"),
        "{message}"
    );
    assert_event(
        &received[4]["event"],
        ("hook-failed", Some("post-update"), "1.3.0"),
        "hook post-update failed (exit status 3)",
    );
    assert_event(
        &received[5]["event"],
        ("config-failed", None, "1.0.0"),
        "the new configuration of hello is saved",
    );

    let service = &received[6]["event"];
    assert_eq!(service["kind"], "service-failed", "{service}");
    assert_eq!(service["unit"], "hello-web.service");
    assert_eq!(
        service["message"],
        "hello-web.service failed (signal: killed by signal 9)"
    );

    assert_event(
        &received[7]["event"],
        ("hook-failed", Some("pre-delete"), "1.0.0"),
        "hook pre-delete failed (exit status 5)",
    );

    // The command: run as nobody (uid, gid and groups), nearly no environment, the event
    // on its stdin.
    let log = fact(&out, "command.log");
    let runs: Vec<&str> = log.split("65534\n65534\n65534\n").skip(1).collect();
    assert_eq!(runs.len(), 6, "{log}");
    let (env, event) = runs[0].split_once('\n').unwrap();
    assert_eq!(env.trim(), "LANG=C.UTF-8 PATH=/usr/bin:/bin PWD=/", "{env}");
    assert_eq!(json(event.trim()), *task);

    // The spool's records: the webhook took three tries, the command one.
    let text = fact(&out, "sent.records");
    let records: Vec<Value> = serde_json::Deserializer::from_str(&text)
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(records.len(), 6);
    let first = &records[0];
    assert_eq!(first["notification-format"], 1);
    assert_eq!(first["deliveries"][0]["channel"], "webhook");
    assert_eq!(first["deliveries"][0]["state"], "delivered");
    assert_eq!(first["deliveries"][0]["attempts"], 3);
    assert_eq!(first["deliveries"][1]["channel"], "command");
    assert_eq!(first["deliveries"][1]["attempts"], 1);

    // Listed: by the command line, the API (as openapi.json says) and the console.
    let cli = json(&fact(&out, "cli.json"));
    let kinds = |report: &Value| -> Vec<String> {
        report["notifications"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["event"]["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        kinds(&cli),
        [
            "hook-failed",
            "service-failed",
            "config-failed",
            "hook-failed",
            "upgrade-failed",
            "task-failed"
        ]
    );
    assert!(
        fact(&out, "cli.txt").contains(" task-failed "),
        "{}",
        fact(&out, "cli.txt")
    );
    let api = Api::load();
    assert_eq!(fact(&out, "api.code"), "200");
    let listed = json(&fact(&out, "api.body"));
    api.check("get", "/api/v1/notifications", "200", &listed);
    assert_eq!(
        kinds(&listed),
        [
            "hook-failed",
            "service-failed",
            "config-failed",
            "hook-failed",
            "upgrade-failed",
            "task-failed"
        ]
    );
    assert!(listed["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .all(|n| n["state"] == "delivered"));
    assert_eq!(fact(&out, "api-one.code"), "200");
    assert_eq!(kinds(&json(&fact(&out, "api-one.body"))), ["hook-failed"]);
    for bad in ["api-bad", "api-not-an-app"] {
        assert_eq!(fact(&out, &format!("{bad}.code")), "400");
        api.check(
            "get",
            "/api/v1/notifications",
            "400",
            &json(&fact(&out, &format!("{bad}.body"))),
        );
    }
    let page = fact(&out, "page.body");
    for text in [
        "task-failed",
        "upgrade-failed",
        "hook-failed",
        "webhook delivered (3 tries)",
        "hello-cleanup.service",
    ] {
        assert!(
            page.contains(text),
            "the notifications page lacks {text}: {page}"
        );
    }
    let app_page = fact(&out, "app-page.body");
    assert!(app_page.contains("id=\"notifications\""), "{app_page}");
    assert!(app_page.contains("exit status 5"), "{app_page}");

    // Refused: a unit that is not an app's, a name no app unit has, a bad configuration.
    assert_eq!(fact(&out, "foreign.rc"), "1");
    assert!(
        fact(&out, "foreign.err")
            .contains("sshd.service: not a unit pyapp-install wrote for an app"),
        "{}",
        fact(&out, "foreign.err")
    );
    assert_eq!(fact(&out, "hostile.rc"), "1");
    assert_eq!(fact(&out, "bad-config.rc"), "1");
    let err = fact(&out, "bad-config.err");
    let first_line = err.lines().next().unwrap();
    assert!(
        first_line.starts_with("error: /etc/pyapp/notify.yaml:1: webhook: \"https://hooks.example/x\": only http:// URLs are sent"),
        "{err}"
    );
}
