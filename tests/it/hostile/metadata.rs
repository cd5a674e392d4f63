//! metadata.yaml that parses as YAML but breaks the schema: names outside the allowlist,
//! unit-file injection in descriptions, commands and other values that reach unit files,
//! bad schedules, paths outside the app tree, and a dependency list that does not match
//! deps/. The manifest is recomputed, so the metadata rules are what refuses them.

use super::bundle::Draft;
use super::{derived, escaped, refused, Case};

/// The base bundle with `from` replaced by `to` in metadata.yaml.
fn metadata(from: &str, to: &str) -> Vec<u8> {
    derived(|draft| {
        draft.metadata(from, to);
    })
}

const APP_NAME: &str = "\nname: hello\n";
const SERVICE_NAME: &str = "- name: web\n";
const TASK_NAME: &str = "- name: cleanup\n";
const SERVICE_DESCRIPTION: &str = "description: Hello web server";
const SERVICE_LAST_ARGUMENT: &str = "  - hello.web:app\n";
const TASK_COMMAND: &str = "  - hello-cleanup\n";

pub fn cases() -> Vec<Case> {
    let mut cases = names();
    cases.extend(unit_injection());
    cases.extend(paths());
    cases.extend(dependencies());
    cases
}

fn names() -> Vec<Case> {
    let name_rule = "is not a valid name (expected [a-z][a-z0-9-]{0,31}";
    let long = "a".repeat(33);
    vec![
        // Units that would override the operating system's own (FORMAT.md 8.1): Debian's
        // apt-daily.timer (security updates) and systemd-journald.service.
        refused(
            "app-apt-task-daily",
            derived(|draft| {
                draft
                    .metadata(APP_NAME, "\nname: apt\n")
                    .metadata(TASK_NAME, "- name: daily\n");
            }),
            "apt-daily.service: unit names starting with `apt-` are reserved for the operating \
             system's own units; refusing to write it for apt",
        ),
        refused(
            "app-systemd-task-journald",
            derived(|draft| {
                draft
                    .metadata(APP_NAME, "\nname: systemd\n")
                    .metadata(TASK_NAME, "- name: journald\n");
            }),
            "unit names starting with `systemd-` are reserved for the operating system's own units",
        ),
        refused(
            "app-name-uppercase",
            metadata(APP_NAME, "\nname: Hello\n"),
            format!("name: \"Hello\" {name_rule}"),
        ),
        refused(
            "app-name-dotdot",
            metadata(APP_NAME, "\nname: ../hello\n"),
            format!("name: \"../hello\" {name_rule}"),
        ),
        refused(
            "app-name-into-a-sibling-app",
            metadata(APP_NAME, "\nname: hello/../hello-evil\n"),
            format!("name: \"hello/../hello-evil\" {name_rule}"),
        ),
        refused(
            "app-name-too-long",
            metadata(APP_NAME, &format!("\nname: {long}\n")),
            format!("name: \"{long}\" {name_rule}"),
        ),
        refused(
            "app-name-empty",
            metadata(APP_NAME, "\nname: \"\"\n"),
            format!("name: \"\" {name_rule}"),
        ),
        refused(
            "service-name-uppercase",
            metadata(SERVICE_NAME, "- name: Web\n"),
            format!("services[0].name: \"Web\" {name_rule}"),
        ),
        refused(
            "service-name-dotdot",
            metadata(SERVICE_NAME, "- name: ../web\n"),
            format!("services[0].name: \"../web\" {name_rule}"),
        ),
        refused(
            "service-name-with-a-unit-suffix",
            metadata(SERVICE_NAME, "- name: web.service\n"),
            format!("services[0].name: \"web.service\" {name_rule}"),
        ),
        refused(
            "task-name-double-dash",
            metadata(TASK_NAME, "- name: clean--up\n"),
            format!("tasks[0].name: \"clean--up\" {name_rule}"),
        ),
        refused(
            "task-name-too-long",
            metadata(TASK_NAME, &format!("- name: {long}\n")),
            format!("tasks[0].name: \"{long}\" {name_rule}"),
        ),
        refused(
            "task-named-like-a-service",
            metadata(TASK_NAME, "- name: web\n"),
            "tasks[0].name: web is already the name of a service or task",
        ),
    ]
}

fn unit_injection() -> Vec<Case> {
    let mut cases = vec![
        refused(
            "service-description-newline",
            metadata(
                SERVICE_DESCRIPTION,
                r#"description: "Hello\nExecStartPre=/bin/sh -c id""#,
            ),
            "services[0].description: must be one line without control characters",
        ),
        refused(
            "task-description-carriage-return",
            metadata(
                "description: Remove expired sessions",
                r#"description: "Remove\rUser=root""#,
            ),
            "tasks[0].description: must be one line without control characters",
        ),
        refused(
            "summary-newline",
            metadata(
                "summary: A small greeting web service, the example app of pyapp",
                r#"summary: "Hello\n[Service]\nUser=root""#,
            ),
            "summary: must be one line without control characters",
        ),
        refused(
            "service-command-newline",
            metadata(
                SERVICE_LAST_ARGUMENT,
                "  - \"hello.web:app\\nExecStartPre=/bin/sh -c id\"\n",
            ),
            "services[0].command[0]: argument 6 (\"hello.web:app\\nExecStartPre=/bin/sh -c id\") contains a control character",
        ),
        refused(
            "task-command-newline",
            metadata(TASK_COMMAND, "  - \"hello-cleanup\\nUser=root\"\n"),
            "tasks[0].command[0]: \"hello-cleanup\\nUser=root\" contains a control character",
        ),
        refused(
            "hook-command-newline",
            metadata(
                "  post-install:\n  - hello-migrate\n",
                "  post-install:\n  - \"hello-migrate\\nUser=root\"\n",
            ),
            "hooks.post-install[0]: \"hello-migrate\\nUser=root\" contains a control character",
        ),
        refused(
            "command-relative-program",
            metadata(TASK_COMMAND, "  - ./run.sh\n"),
            "tasks[0].command[0]: \"./run.sh\" is neither a program name",
        ),
        refused(
            "command-program-escapes-the-venv",
            metadata(TASK_COMMAND, "  - ../../../../bin/sh\n"),
            "tasks[0].command[0]: \"../../../../bin/sh\" is neither a program name",
        ),
        refused(
            "command-unknown-placeholder",
            metadata(SERVICE_LAST_ARGUMENT, "  - \"{home}/.ssh\"\n"),
            "services[0].command[0]: unknown placeholder \"{home}\"",
        ),
        refused(
            "command-empty",
            metadata("  command:\n  - hello-cleanup\n", "  command: []\n"),
            "tasks[0].command: command is empty",
        ),
        refused(
            "version-newline",
            metadata("version: \"1.0.0\"", r#"version: "1.0.0\nUser=root""#),
            "version: \"1.0.0\\nUser=root\" contains a control character",
        ),
        refused(
            "entry-point-injection",
            metadata(
                "entry-point: hello.web:app",
                "entry-point: \"hello.web:app; import os\"",
            ),
            "entry-point: \"hello.web:app; import os\" is not \"module:attr\" or \"module:factory()\"",
        ),
        refused(
            "health-check-http-newline",
            metadata("http: /health", r#"http: "/health\nUser=root""#),
            "update.health-check.http: \"/health\\nUser=root\" is not a URL path",
        ),
        refused(
            "schedule-invalid",
            metadata("schedule: \"*-*-* 03:00:00\"", "schedule: \"25:00\""),
            "tasks[0].schedule: \"25:00\" is not a valid calendar expression: hour 25 out of range 0..23",
        ),
        refused(
            "schedule-time-zone-with-empty-part",
            metadata(
                "schedule: \"*-*-* 03:00:00\"",
                "schedule: \"*-*-* 03:00:00 Europe//Berlin\"",
            ),
            "tasks[0].schedule: \"*-*-* 03:00:00 Europe//Berlin\" is not a valid calendar \
             expression: \"Europe//Berlin\" is not a time zone name",
        ),
        refused(
            "schedule-time-zone-not-tzif",
            metadata(
                "schedule: \"*-*-* 03:00:00\"",
                "schedule: \"*-*-* 03:00:00 leapseconds\"",
            ),
            "tasks[0].schedule: \"*-*-* 03:00:00 leapseconds\" is not a valid calendar \
             expression: \"leapseconds\" is not a time zone: /usr/share/zoneinfo/leapseconds \
             is not a TZif file",
        ),
        refused(
            "schedule-newline",
            metadata(
                "schedule: \"*-*-* 03:00:00\"",
                r#"schedule: "daily\nExecStart=/bin/sh""#,
            ),
            "tasks[0].schedule: \"daily\\nExecStart=/bin/sh\" contains a control character",
        ),
        refused(
            "debian-package-injection",
            metadata("  packages: []", "  packages: [\"libpq5; rm -rf /\"]"),
            "system.packages[0]: \"libpq5; rm -rf /\" is not a valid Debian package name",
        ),
        refused(
            "service-description-trailing-backslash",
            metadata(SERVICE_DESCRIPTION, "description: \"Hello \\\\\""),
            "services[0].description: must not end with `\\` (unit files read it as a line continuation)",
        ),
        refused(
            "system-module-path",
            metadata("  python-modules: []", "  python-modules: [\"../../etc\"]"),
            "system.python-modules[0]: \"../../etc\" is not a valid Python module name",
        ),
    ];
    // One line of printable text reaches unit files as it is: the unit writer escapes
    // these (systemd specifiers, variables, line continuations, command separators).
    for (case, value) in [
        (
            "service-description-percent-specifier",
            "Hello %n on %H 100%",
        ),
        ("service-description-dollar-variable", "Hello $HOME ${PATH}"),
        ("service-description-semicolon", "Hello ; /bin/sh -c id"),
    ] {
        cases.push(escaped(
            case,
            metadata(SERVICE_DESCRIPTION, &format!("description: \"{value}\"")),
            format!("description: \"{value}\""),
        ));
    }
    for (case, argument) in [
        ("service-command-percent-specifier", "%n%i%h"),
        ("service-command-dollar-variable", "$HOME"),
        ("service-command-trailing-backslash", "app\\\\"),
        ("service-command-semicolon", ";"),
    ] {
        cases.push(escaped(
            case,
            metadata(
                SERVICE_LAST_ARGUMENT,
                &format!("  - hello.web:app\n  - \"{argument}\"\n"),
            ),
            format!("  - \"{argument}\"\n"),
        ));
    }
    cases
}

fn paths() -> Vec<Case> {
    let static_path = "    path: src/hello/static";
    let inside_src = "is not a relative path inside src/ (no \"..\", no leading \"/\")";
    let writable = "  writable-dirs:\n  - sessions\n";
    let writable_dirs = |dirs: &str| format!("  writable-dirs: [{dirs}]\n");
    let dir_rule = "is not a valid directory name (expected [a-z0-9][a-z0-9._-]{0,63}";
    vec![
        refused(
            "static-path-dotdot",
            metadata(static_path, "    path: ../../etc"),
            format!("resources.static[0].path: \"../../etc\" {inside_src}"),
        ),
        refused(
            "static-path-absolute",
            metadata(static_path, "    path: /etc"),
            format!("resources.static[0].path: \"/etc\" {inside_src}"),
        ),
        refused(
            "static-path-into-a-sibling-app",
            metadata(static_path, "    path: src/../../../hello-evil"),
            format!("resources.static[0].path: \"src/../../../hello-evil\" {inside_src}"),
        ),
        refused(
            "static-path-only-a-prefix-of-a-directory",
            metadata(static_path, "    path: src/hello/sta"),
            "resources.static[0].path: src/hello/sta is not a directory of the app's source",
        ),
        refused(
            "static-url-dotdot",
            metadata("  - url: /static", "  - url: /static/../../etc"),
            "resources.static[0].url: \"/static/../../etc\" is not a URL path",
        ),
        refused(
            "writable-dir-dotdot",
            metadata(writable, &writable_dirs("\"..\"")),
            format!("resources.writable-dirs[0]: \"..\" {dir_rule}"),
        ),
        refused(
            "writable-dir-absolute",
            metadata(writable, &writable_dirs("/etc")),
            format!("resources.writable-dirs[0]: \"/etc\" {dir_rule}"),
        ),
        refused(
            "writable-dir-escaping",
            metadata(writable, &writable_dirs("sessions/../../../etc")),
            format!("resources.writable-dirs[0]: \"sessions/../../../etc\" {dir_rule}"),
        ),
    ]
}

/// metadata.yaml without the `dependencies` row of the wheel named `name`.
fn without_row(text: &str, name: &str) -> String {
    let start = text
        .find(&format!("- name: {name}\n"))
        .unwrap_or_else(|| panic!("no {name} row"));
    let end = start + 1 + text[start + 1..].find("- name: ").expect("a row after it");
    format!("{}{}", &text[..start], &text[end..])
}

fn dependencies() -> Vec<Case> {
    let wheel = Draft::base().wheel_name("blinker");
    let file = wheel.trim_start_matches("deps/").to_owned();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
        Draft::base().data(&wheel),
    ));
    let forged = "0".repeat(64);
    vec![
        refused(
            "dependency-not-listed",
            derived(|draft| {
                let text = String::from_utf8(draft.data("metadata.yaml").to_vec()).expect("utf-8");
                draft.entry("metadata.yaml").data = without_row(&text, "blinker").into_bytes();
            }),
            format!("dependencies: {wheel} is in the bundle but not listed"),
        ),
        refused(
            "dependency-missing-from-deps",
            derived(|draft| {
                draft.remove(&wheel);
            }),
            format!("{file} is listed but {wheel} is not in the bundle"),
        ),
        refused(
            "dependency-sha256-differs",
            metadata(&format!("sha256: {sha}"), &format!("sha256: {forged}")),
            format!("{wheel} has sha256 {sha}, but metadata.yaml lists {forged}"),
        ),
        refused(
            "dependency-name-differs-from-its-wheel",
            metadata("- name: blinker\n", "- name: flask-login\n"),
            format!("dependencies[1].wheel: {file} is blinker 1.9.0, not flask-login 1.9.0"),
        ),
        refused(
            "app-wheel-not-a-dependency",
            metadata(
                "app-wheel: hello-1.0.0-py3-none-any.whl",
                "app-wheel: evil-1.0.0-py3-none-any.whl",
            ),
            "app-wheel: evil-1.0.0-py3-none-any.whl is not among the dependencies",
        ),
    ]
}
