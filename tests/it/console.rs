//! `pyapp-install serve` (FORMAT.md 13) under a real systemd (`systemd-sandbox`): every
//! endpoint of the JSON API on the unix socket and on HTTP, checked against
//! spec/openapi.json; the token refused when missing, wrong or rotated away; a session's
//! change refused without its CSRF token or from another origin; an oversized upload
//! refused with nothing left behind; two apps installed at once; progress streamed as
//! server-sent events; every change in the journal as an audit record. The server runs as
//! the Debian package's pyapp-console.service, hardening and all.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde_json::Value;

use crate::harness::{self, fact};
use crate::lifecycle::{bundle, Flaw};

/// Runs in the sandbox. `call NAME ARGS…` saves curl's status code and body as
/// NAME.code and NAME.body; the Rust side checks them against the OpenAPI document.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; V2=$4; OTHER=$5; UNIT=$6
S=/run/pyapp/api.sock
H=http://127.0.0.1:8470
STATE=/var/lib/pyapp/console
groupadd --system pyapp-admin
# The Debian package's unit, hardening and all, running this build.
cp $UNIT /etc/systemd/system/pyapp-console.service
mkdir -p /etc/systemd/system/pyapp-console.service.d
printf '[Service]\nExecStart=\nExecStart=%s serve --python /usr/bin/python3 --http 8470 --max-upload 20M --rate 20\n' \
  "$INSTALL" > /etc/systemd/system/pyapp-console.service.d/test.conf
systemctl daemon-reload
systemctl is-enabled pyapp-console > $OUT/enabled
systemctl start pyapp-console
for _ in $(seq 100); do [ -S $S ] && curl -s -o /dev/null $H/login && break; sleep 0.1; done
TOKEN=$(cat $STATE/token)
stat -c '%a %U %G' $S > $OUT/socket.stat
stat -c '%a %U' $STATE/token > $OUT/token.stat
call() { NAME=$1; shift; curl -s -o $OUT/$NAME.body -w '%{http_code}' "$@" > $OUT/$NAME.code; }
sock() { NAME=$1; P=$2; shift 2; call $NAME --unix-socket $S "http://localhost$P" "$@"; }
web() { NAME=$1; P=$2; shift 2; call $NAME -H "Authorization: Bearer $TOKEN" "$H$P" "$@"; }
BIN=(-H 'Content-Type: application/octet-stream')
SSE=(-H 'Accept: text/event-stream' -N)

call no-token $H/api/v1/apps
call wrong-token -H "Authorization: Bearer nope" $H/api/v1/apps
call console-no-token $H/

# Two apps at once: one on HTTP with its progress as events, one on the socket.
web install-hello /api/v1/apps "${BIN[@]}" "${SSE[@]}" --data-binary @$V1 &
A=$!
sock install-other /api/v1/apps "${BIN[@]}" --data-binary @$OTHER &
B=$!
wait $A $B
sock list /api/v1/apps
web status /api/v1/apps/hello
PORT=$(/usr/bin/python3 -c 'import json,sys; print([s["port"] for s in json.load(open(sys.argv[1]))["services"]][0])' $OUT/status.body)
curl -s http://127.0.0.1:$PORT/ > $OUT/page-before.html
web config-get /api/v1/apps/hello/config
cp /applications/hello/config/config.yaml $OUT/config-before.yaml
web config-bad /api/v1/apps/hello/config -X PUT -H 'Content-Type: application/json' \
  --data '{"values": {"workers": 99}}'
web config-not-json /api/v1/apps/hello/config -X PUT -H 'Content-Type: application/json' --data 'workers=3'
cp /applications/hello/config/config.yaml $OUT/config-after-bad.yaml
web config-set /api/v1/apps/hello/config -X PUT -H 'Content-Type: application/json' \
  --data '{"values": {"greeting": "Howdy", "secret_key": "a-new-secret-of-forty-characters-or-so"}}'
for _ in $(seq 100); do curl -s http://127.0.0.1:$PORT/ | grep -q Howdy && break; sleep 0.1; done
curl -s http://127.0.0.1:$PORT/ > $OUT/page-after.html
web config-get-after /api/v1/apps/hello/config

# Too large: refused before reading (Content-Length) and while streaming (chunked).
head -c 21M /dev/zero > /tmp/big.pyapp
head -c 100K /dev/zero | tr '\0' a > /tmp/form.txt
web too-large /api/v1/apps "${BIN[@]}" --data-binary @/tmp/big.pyapp
head -c 21M /dev/zero | web too-large-chunked /api/v1/apps "${BIN[@]}" -H 'Transfer-Encoding: chunked' --data-binary @-
ls -A $STATE/uploads > $OUT/uploads.left
web not-a-bundle /api/v1/apps "${BIN[@]}" --data-binary @/etc/hostname

web upgrade /api/v1/apps "${BIN[@]}" "${SSE[@]}" --data-binary @$V2
web rollback /api/v1/apps/hello/rollback -X POST
web rollback-unknown /api/v1/apps/nosuchapp/rollback -X POST
web logs /api/v1/apps/hello/logs -G --data-urlencode 'text=listening at' --data-urlencode 'unit=hello-web.service'
web logs-regex /api/v1/apps/hello/logs -G --data-urlencode 'regex=migrated to 1\.[01]\.0' --data-urlencode 'unit=hooks'
web logs-level /api/v1/apps/hello/logs -G --data-urlencode 'level=err'
web logs-bad-regex /api/v1/apps/hello/logs -G --data-urlencode 'regex=(unclosed'
web logs-bad-query /api/v1/apps/hello/logs -G --data-urlencode 'colour=red'
web logs-follow /api/v1/apps/hello/logs -G --data-urlencode 'follow=true' --data-urlencode 'lines=3' \
  "${SSE[@]}" --max-time 3
web gc /api/v1/gc -X POST -G --data-urlencode 'dry-run=true'
web openapi /api/v1/openapi.json
web unknown /api/v1/nothing

# A console session: the login form's cookie, then changes with and without the CSRF token.
call login-wrong -c $OUT/jar -d token=nope $H/login
call login -c $OUT/jar -d "token=$TOKEN" $H/login
call session-read -b $OUT/jar $H/api/v1/apps
call session-page -b $OUT/jar $H/apps/hello
CSRF=$(grep -o 'name="csrf-token" content="[0-9a-f]*"' $OUT/session-page.body | grep -o '[0-9a-f]\{64\}')
call csrf-missing -b $OUT/jar -X POST $H/api/v1/gc
call csrf-wrong -b $OUT/jar -X POST -H 'X-CSRF-Token: 00' $H/api/v1/gc
call csrf-origin -b $OUT/jar -X POST -H "X-CSRF-Token: $CSRF" -H 'Origin: http://evil.example' $H/api/v1/gc
call csrf-form-missing -b $OUT/jar -X POST -d 'x=1' $H/apps/hello/rollback
call csrf-ok -b $OUT/jar -X POST -H "X-CSRF-Token: $CSRF" -H "Origin: $H" $H/api/v1/gc?dry-run=true
call too-large-form -b $OUT/jar -X POST -H 'Content-Type: application/x-www-form-urlencoded' \
  --data-binary @/tmp/form.txt $H/apps/hello/config

sock remove-other /api/v1/apps/greeter -X DELETE
sock status-removed /api/v1/apps/greeter

# The client verb: through HTTP with the token, through the socket without; no token refused.
"$INSTALL" --json --remote $H --token-file $STATE/token $V2 > $OUT/remote.out 2> $OUT/remote.err
echo $? > $OUT/remote.rc
"$INSTALL" --remote $H $V2 > $OUT/remote-no-token.out 2> $OUT/remote-no-token.err
echo $? > $OUT/remote-no-token.rc
"$INSTALL" --json --remote unix:$S $V2 > $OUT/remote-socket.out 2> $OUT/remote-socket.err
echo $? > $OUT/remote-socket.rc

# Rotating the token ends the old one and its sessions.
"$INSTALL" serve --rotate-token > $OUT/rotate.out 2> $OUT/rotate.err
call old-token -H "Authorization: Bearer $TOKEN" $H/api/v1/apps
call old-session -b $OUT/jar $H/api/v1/apps
call new-token -H "Authorization: Bearer $(cat $STATE/token)" $H/api/v1/apps

# The rate limit: 150 requests at once on one connection, the burst is 100.
URLS=(); for _ in $(seq 150); do URLS+=(-o /dev/null "$H/login"); done
curl -s -w '%{http_code}\n' "${URLS[@]}" > $OUT/burst.codes

systemctl stop pyapp-console
systemctl show -p Result --value pyapp-console > $OUT/serve.result
journalctl -q -u pyapp-console > $OUT/serve.log
journalctl -q -t pyapp-console -o json --output-fields=MESSAGE,PYAPP_WHO,PYAPP_ACTION,PYAPP_APP,PYAPP_RESULT > $OUT/audit.json
test -e $S; echo $? > $OUT/socket.gone
exit 0
"#;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The OpenAPI document, and checks of bodies against its schemas.
pub(crate) struct Api {
    doc: Value,
}

impl Api {
    pub(crate) fn load() -> Api {
        let text = fs::read_to_string(harness::workspace().join("spec/openapi.json")).unwrap();
        Api { doc: json(&text) }
    }

    /// The schema the document gives for `method path`'s `code` answer.
    fn response_schema(&self, method: &str, path: &str, code: &str) -> &Value {
        let operation = &self.doc["paths"][path][method];
        assert!(operation.is_object(), "no {method} {path} in openapi.json");
        let response = &operation["responses"][code];
        assert!(
            response.is_object(),
            "openapi.json does not document {code} for {method} {path}"
        );
        &response["content"]["application/json"]["schema"]
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                let found = &self.doc["components"]["schemas"][name];
                assert!(found.is_object(), "no schema {name}");
                found
            }
            None => schema,
        }
    }

    /// Where `value` breaks `schema` (types, required keys, enums, items, properties).
    fn problems(&self, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(types) = schema.get("type") {
            let names: Vec<&str> = match types {
                Value::String(name) => vec![name.as_str()],
                Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            let is = |name: &str| match name {
                "object" => value.is_object(),
                "array" => value.is_array(),
                "string" => value.is_string(),
                "integer" => value.is_i64() || value.is_u64(),
                "number" => value.is_number(),
                "boolean" => value.is_boolean(),
                "null" => value.is_null(),
                _ => false,
            };
            if !names.iter().any(|name| is(name)) {
                found.push(format!("{at}: {value} is not {names:?}"));
                return;
            }
        }
        if let Some(choices) = schema["enum"].as_array() {
            if !choices.contains(value) {
                found.push(format!("{at}: {value} is not one of {choices:?}"));
            }
        }
        if let Some(required) = schema["required"].as_array() {
            for key in required.iter().filter_map(Value::as_str) {
                if value.get(key).is_none() {
                    found.push(format!("{at}: no {key}"));
                }
            }
        }
        if let (Some(properties), Some(object)) =
            (schema["properties"].as_object(), value.as_object())
        {
            for (key, property) in properties {
                if let Some(item) = object.get(key) {
                    self.problems(property, item, &format!("{at}.{key}"), found);
                }
            }
        }
        if let (Some(extra), Some(object)) = (
            schema.get("additionalProperties").filter(|s| s.is_object()),
            value.as_object(),
        ) {
            for (key, item) in object {
                self.problems(extra, item, &format!("{at}.{key}"), found);
            }
        }
        if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
            for (index, item) in array.iter().enumerate() {
                self.problems(items, item, &format!("{at}[{index}]"), found);
            }
        }
    }

    /// Asserts that `body` is what the document says `method path` answers with `code`.
    pub(crate) fn check(&self, method: &str, path: &str, code: &str, body: &Value) {
        let schema = self.response_schema(method, path, code);
        let mut found = Vec::new();
        self.problems(schema, body, "body", &mut found);
        assert!(
            found.is_empty(),
            "{method} {path} {code} does not fit openapi.json:\n{}\n{body}",
            found.join("\n")
        );
    }
}

/// The server-sent events of a body, as (event, JSON data).
fn events(text: &str) -> Vec<(String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut kind = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event:") {
                    kind = Some(rest.trim().to_owned());
                } else if let Some(rest) = line.strip_prefix("data:") {
                    data.push_str(rest.trim());
                }
            }
            Some((kind?, json(&data)))
        })
        .collect()
}

/// A recorded answer: its status code and body.
fn answer(out: &Path, name: &str) -> (String, String) {
    (
        fact(out, &format!("{name}.code")),
        fact(out, &format!("{name}.body")),
    )
}

#[test]
fn the_api_does_every_operation_and_refuses_what_it_must() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(harness::workspace().join("target")).unwrap();
    let v1 = bundle(work.path(), "1.0.0", Flaw::None);
    let v2 = bundle(work.path(), "1.1.0", Flaw::None);
    let other_project = harness::fixture_copy("hello");
    harness::edit(
        other_project.path(),
        "pyproject.toml",
        "name = \"hello\"",
        "name = \"greeter\"",
    );
    let other = harness::build_bundle(other_project.path(), &work.path().join("other"));
    let out = harness::run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [
            harness::bin("pyapp-install"),
            v1.clone(),
            v2,
            other,
            harness::workspace().join("packaging/pyapp-console.service"),
        ],
    );
    let api = Api::load();
    let check = |name: &str, method: &str, path: &str, code: &str| -> Value {
        let (got, body) = answer(&out, name);
        assert_eq!(got, code, "{name}: {method} {path} answered {got}: {body}");
        let body = json(&body);
        api.check(method, path, code, &body);
        body
    };
    // The socket is root's and the admin group's; the token root's alone.
    assert_eq!(fact(&out, "socket.stat"), "660 root pyapp-admin");
    assert_eq!(fact(&out, "token.stat"), "600 root");

    // No token, a wrong one: refused; the console sends the browser to its login form.
    let refused = check("no-token", "get", "/api/v1/apps", "401");
    assert!(
        refused["hint"].as_str().unwrap().contains("Bearer"),
        "{refused}"
    );
    check("wrong-token", "get", "/api/v1/apps", "401");
    assert_eq!(fact(&out, "console-no-token.code"), "303");

    // Two installs at once, one streaming its progress.
    let (code, body) = answer(&out, "install-hello");
    assert_eq!(code, "200", "{body}");
    let streamed = events(&body);
    let kinds: Vec<&str> = streamed.iter().map(|(kind, _)| kind.as_str()).collect();
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    let (last, result) = streamed.last().unwrap();
    assert_eq!(last, "result", "{body}");
    api.check("post", "/api/v1/apps", "200", result);
    assert_eq!(result["action"], "installed");
    let installed = check("install-other", "post", "/api/v1/apps", "200");
    assert_eq!(installed["app"], "greeter");
    let listed = check("list", "get", "/api/v1/apps", "200");
    let names: Vec<&str> = listed["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|app| app["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["greeter", "hello"]);
    let status = check("status", "get", "/api/v1/apps/{app}", "200");
    assert_eq!(status["services"][0]["active-state"], "active", "{status}");

    // Config: secrets never sent; a bad value refused with nothing written; a good one
    // written and the service restarted, which then greets with it.
    let shown = check("config-get", "get", "/api/v1/apps/{app}/config", "200");
    assert_eq!(shown["values"]["secret_key"], "********", "{shown}");
    assert_eq!(shown["values"]["greeting"], "Hello");
    let bad = check("config-bad", "put", "/api/v1/apps/{app}/config", "400");
    assert!(bad["error"].as_str().unwrap().contains("workers"), "{bad}");
    let not_json = check("config-not-json", "put", "/api/v1/apps/{app}/config", "400");
    assert!(
        not_json["hint"].as_str().unwrap().contains("values"),
        "{not_json}"
    );
    assert_eq!(
        fact(&out, "config-before.yaml"),
        fact(&out, "config-after-bad.yaml")
    );
    let change = check("config-set", "put", "/api/v1/apps/{app}/config", "200");
    assert_eq!(
        change["restarted"],
        serde_json::json!(["hello-web.service"])
    );
    assert!(fact(&out, "page-before.html").contains("Hello, world!"));
    assert!(fact(&out, "page-after.html").contains("Howdy, world!"));
    let after = check(
        "config-get-after",
        "get",
        "/api/v1/apps/{app}/config",
        "200",
    );
    assert_eq!(after["values"]["greeting"], "Howdy");
    assert_eq!(after["values"]["secret_key"], "********");
    assert!(!fact(&out, "config-get-after.body").contains("a-new-secret"));

    // Too large, however it is sent: 413, and no upload left behind.
    let large = check("too-large", "post", "/api/v1/apps", "413");
    assert!(
        large["error"].as_str().unwrap().contains("larger"),
        "{large}"
    );
    check("too-large-chunked", "post", "/api/v1/apps", "413");
    assert_eq!(fact(&out, "uploads.left"), "");
    let not_bundle = check("not-a-bundle", "post", "/api/v1/apps", "400");
    assert!(
        not_bundle["error"].as_str().unwrap().contains("zip"),
        "{not_bundle}"
    );

    // Upgrade (streamed), roll back, an unknown app refused.
    let (code, body) = answer(&out, "upgrade");
    assert_eq!(code, "200", "{body}");
    let (last, upgraded) = events(&body).pop().unwrap();
    assert_eq!(last, "result", "{body}");
    assert_eq!(upgraded["action"], "upgraded");
    assert_eq!(upgraded["version"], "1.1.0");
    let rolled = check("rollback", "post", "/api/v1/apps/{app}/rollback", "200");
    assert_eq!(rolled["version"], "1.0.0");
    check(
        "rollback-unknown",
        "post",
        "/api/v1/apps/{app}/rollback",
        "400",
    );

    // Logs by unit and text, by regex in the hook log, by level; bad queries refused.
    let logs = check("logs", "get", "/api/v1/apps/{app}/logs", "200");
    let lines = logs["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{logs}");
    for line in lines {
        assert!(line["source"]
            .as_str()
            .unwrap()
            .starts_with("hello-web.service["));
        let message = line["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains("listening at"), "{line}");
    }
    let hooks = check("logs-regex", "get", "/api/v1/apps/{app}/logs", "200");
    let migrated: Vec<&str> = hooks["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["message"].as_str().unwrap())
        .collect();
    assert!(
        migrated
            .iter()
            .any(|line| line.contains("migrated to 1.0.0"))
            && migrated
                .iter()
                .any(|line| line.contains("migrated to 1.1.0")),
        "{migrated:?}"
    );
    let errors = check("logs-level", "get", "/api/v1/apps/{app}/logs", "200");
    for line in errors["lines"].as_array().unwrap() {
        assert!(line["priority"].as_u64().unwrap() <= 3, "{line}");
    }
    let bad_regex = check("logs-bad-regex", "get", "/api/v1/apps/{app}/logs", "400");
    assert!(bad_regex["error"].as_str().unwrap().contains("regex"));
    check("logs-bad-query", "get", "/api/v1/apps/{app}/logs", "400");
    let followed = events(&fact(&out, "logs-follow.body"));
    assert!(
        !followed.is_empty() && followed.iter().all(|(kind, _)| kind == "line"),
        "{followed:?}"
    );
    for (_, line) in &followed {
        let mut found = Vec::new();
        api.problems(
            &serde_json::json!({"$ref": "#/components/schemas/LogLine"}),
            line,
            "line",
            &mut found,
        );
        assert!(found.is_empty(), "{found:?}");
    }

    let gc = check("gc", "post", "/api/v1/gc", "200");
    assert_eq!(gc["dry-run"], true);
    let doc = check("openapi", "get", "/api/v1/openapi.json", "200");
    assert_eq!(doc, api.doc, "the server serves spec/openapi.json");
    let (code, unknown) = answer(&out, "unknown");
    assert_eq!(code, "404");
    assert!(json(&unknown)["error"]
        .as_str()
        .unwrap()
        .contains("/api/v1/nothing"));

    // The session: reads pass; changes need the CSRF token and the server's own origin.
    assert_eq!(fact(&out, "login-wrong.code"), "401");
    assert_eq!(fact(&out, "login.code"), "303");
    let cookie = fact(&out, "jar");
    assert!(cookie.contains("#HttpOnly_127.0.0.1"), "{cookie}");
    check("session-read", "get", "/api/v1/apps", "200");
    for name in ["csrf-missing", "csrf-wrong", "csrf-origin"] {
        let refused = check(name, "post", "/api/v1/gc", "403");
        assert!(
            refused["error"].as_str().unwrap().contains("CSRF"),
            "{refused}"
        );
    }
    assert_eq!(fact(&out, "csrf-form-missing.code"), "403");
    check("csrf-ok", "post", "/api/v1/gc", "200");
    assert_eq!(fact(&out, "too-large-form.code"), "413");

    let removed = check("remove-other", "delete", "/api/v1/apps/{app}", "200");
    assert_eq!(removed["action"], "removed");
    check("status-removed", "get", "/api/v1/apps/{app}", "400");

    // `pyapp-install --remote`: upgraded through HTTP, then the same bundle through the
    // socket is unchanged; without a token, exit 1 with the server's words.
    assert_eq!(fact(&out, "remote.rc"), "0", "{}", fact(&out, "remote.err"));
    let remote = json(&fact(&out, "remote.out"));
    api.check("post", "/api/v1/apps", "200", &remote);
    assert_eq!(remote["action"], "upgraded");
    assert!(fact(&out, "remote.err").contains("upgraded hello 1.1.0"));
    assert_eq!(fact(&out, "remote-no-token.rc"), "1");
    assert!(fact(&out, "remote-no-token.err").contains("needs the server's token"));
    assert_eq!(
        fact(&out, "remote-socket.rc"),
        "0",
        "{}",
        fact(&out, "remote-socket.err")
    );
    assert_eq!(
        json(&fact(&out, "remote-socket.out"))["action"],
        "unchanged"
    );

    // Rotation.
    assert!(fact(&out, "rotate.out").ends_with("/var/lib/pyapp/console/token"));
    check("old-token", "get", "/api/v1/apps", "401");
    assert_eq!(fact(&out, "old-session.code"), "401");
    check("new-token", "get", "/api/v1/apps", "200");

    // The burst: the first 100 pass, then 429.
    let codes = fact(&out, "burst.codes");
    let mut counts = BTreeMap::new();
    for code in codes.lines() {
        *counts.entry(code).or_insert(0) += 1;
    }
    assert!(counts.get("429").copied().unwrap_or(0) >= 30, "{counts:?}");
    assert!(counts.get("200").copied().unwrap_or(0) >= 90, "{counts:?}");

    // Shipped disabled; stopped by SIGTERM cleanly, socket removed. Every change was
    // audited.
    assert_eq!(fact(&out, "enabled"), "disabled");
    assert_eq!(
        fact(&out, "serve.result"),
        "success",
        "{}",
        fact(&out, "serve.log")
    );
    assert_eq!(fact(&out, "socket.gone"), "1");
    let audit: Vec<Value> = fact(&out, "audit.json").lines().map(json).collect();
    let said = |action: &str, app: &str, result: &str| {
        audit.iter().any(|entry| {
            entry["PYAPP_ACTION"] == action
                && entry["PYAPP_APP"] == app
                && entry["PYAPP_RESULT"].as_str().unwrap().starts_with(result)
        })
    };
    assert!(said("install", "hello", "ok"), "{audit:?}");
    assert!(said("install", "greeter", "ok"), "{audit:?}");
    assert!(
        said("config", "hello", "failed: config: workers"),
        "{audit:?}"
    );
    assert!(said("config", "hello", "ok"), "{audit:?}");
    assert!(said("rollback", "hello", "ok"), "{audit:?}");
    assert!(said("remove", "greeter", "ok"), "{audit:?}");
    assert!(audit.iter().any(|entry| entry["PYAPP_WHO"]
        .as_str()
        .unwrap()
        .starts_with("uid 0 (socket)")));
    assert!(audit.iter().any(|entry| entry["PYAPP_WHO"]
        .as_str()
        .unwrap()
        .starts_with("token from 127.0.0.1")));
    assert!(audit.iter().any(|entry| entry["PYAPP_WHO"]
        .as_str()
        .unwrap()
        .starts_with("session from 127.0.0.1")));
}
