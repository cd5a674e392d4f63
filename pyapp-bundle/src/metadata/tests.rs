use super::*;

const FLASK_SHA: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const HELLO_SHA: &str = "2222222222222222222222222222222222222222222222222222222222222222";

/// The example of FORMAT.md 3.1.
const BUNDLE_METADATA: &str = r#"format: 1
name: hello
version: 1.2.0
summary: A small greeting service
requires-python: ">=3.9"
module: hello
entry-point: hello.web:app
interface: wsgi
source-commit: 3f2c
built-by: pyapp-build 0.1.0
app-wheel: hello-1.2.0-py3-none-any.whl
dependencies:
  - name: flask
    version: 3.0.3
    wheel: flask-3.0.3-py3-none-any.whl
    sha256: 1111111111111111111111111111111111111111111111111111111111111111
    mode: shared
  - name: hello
    version: 1.2.0
    wheel: hello-1.2.0-py3-none-any.whl
    sha256: 2222222222222222222222222222222222222222222222222222222222222222
    mode: local
system:
  packages: [libpq5]
  python-modules: [apt]
resources:
  writable-dirs: [sessions, cache]
  static:
    - url: /static
      path: hello/static
services:
  - name: web
    description: Hello web server
    command: [gunicorn, --bind, "{listen}", --workers, "{workers}", hello.web:app]
    listen: socket
    workers: 2
    threads: 4
    pid-file: false
    restart: on-failure
tasks:
  - name: cleanup
    description: Remove old sessions
    schedule: "*-*-* 03:00:00"
    command: hello-cleanup
hooks:
  post-install: hello-migrate
  pre-update: null
  post-update: hello-migrate
  pre-delete: null
  timeout: 300
update:
  policy: same-major
  keep-releases: 3
  health-check:
    service: web
    http: /health
    timeout: 30
isolation: none
web:
  mount: /hello
  service: web
  max-body-size: 10M
  timeout: 60
"#;

fn parsed(text: &str) -> Metadata {
    Metadata::parse(text, "metadata.yaml").unwrap_or_else(|error| panic!("{error}"))
}

fn refusal(text: &str) -> String {
    match Metadata::parse(text, "metadata.yaml") {
        Ok(_) => panic!("accepted"),
        Err(error) => error.to_string(),
    }
}

/// The example with `from` replaced by `to` (which must occur).
fn edited(from: &str, to: &str) -> String {
    assert!(BUNDLE_METADATA.contains(from), "{from}");
    BUNDLE_METADATA.replacen(from, to, 1)
}

#[test]
fn reads_the_spec_example() {
    let metadata = parsed(BUNDLE_METADATA);
    assert_eq!(metadata.name.as_str(), "hello");
    assert_eq!(metadata.version.to_string(), "1.2.0");
    assert_eq!(metadata.requires_python.to_string(), ">=3.9");
    assert_eq!(metadata.services[0].listen, Listen::Socket);
    assert_eq!(metadata.services[0].restart, Restart::OnFailure);
    assert_eq!(metadata.tasks[0].schedule.as_str(), "*-*-* 03:00:00");
    assert_eq!(metadata.hooks.pre_update, None);
    assert_eq!(metadata.dependencies[1].mode, DependencyMode::Local);
    assert_eq!(metadata.update.policy, Policy::SameMajor);
    assert_eq!(metadata.resources.static_paths[0].path, "hello/static");
}

#[test]
fn written_yaml_reads_back_the_same() {
    let metadata = parsed(BUNDLE_METADATA);
    let written = metadata.to_yaml().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(parsed(&written), metadata, "{written}");
    assert!(
        written.starts_with("format: 1\nname: hello\nversion: \"1.2.0\"\n"),
        "{written}"
    );
    let again = parsed(&written)
        .to_yaml()
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(again, written);
}

#[test]
fn defaults_apply() {
    let minimal = "format: 1\nname: x\nversion: '1.0'\nrequires-python: '>=3.9'\nmodule: x\n\
                       source-commit: null\nbuilt-by: pyapp-build 0.1.0\n\
                       app-wheel: x-1.0-py3-none-any.whl\ndependencies:\n  - name: x\n    \
                       version: '1.0'\n    wheel: x-1.0-py3-none-any.whl\n    \
                       sha256: 2222222222222222222222222222222222222222222222222222222222222222\n    \
                       mode: shared\n";
    let metadata = parsed(minimal);
    assert_eq!(metadata.interface, Interface::Wsgi);
    assert_eq!(metadata.hooks.timeout, 300);
    assert_eq!(metadata.update.keep_releases, 3);
    assert_eq!(metadata.isolation, Isolation::None);
    assert_eq!(metadata.source_commit, None);
}

#[test]
fn names_are_checked_with_their_line() {
    assert_eq!(
        refusal(&edited("  - name: web", "  - name: Web")),
        "metadata.yaml:32: services[0].name: \"Web\" is not a valid name (expected \
             [a-z][a-z0-9-]{0,31}, not ending in \"-\", without \"--\")"
    );
}

#[test]
fn schedule_is_checked() {
    assert_eq!(
        refusal(&edited("\"*-*-* 03:00:00\"", "\"25:00\"")),
        "metadata.yaml:43: tasks[0].schedule: \"25:00\" is not a valid calendar \
             expression: hour 25 out of range 0..23"
    );
}

#[test]
fn service_and_task_names_share_one_namespace() {
    assert_eq!(
        refusal(&edited("  - name: cleanup", "  - name: web")),
        "metadata.yaml:41: tasks[0].name: web is already the name of a service or task \
             (they share the unit names)"
    );
}

#[test]
fn placeholders_must_have_values() {
    assert_eq!(
        refusal(&edited("\"{listen}\"", "\"{port}\"")),
        "metadata.yaml:34: services[0].command: {port} needs listen: port"
    );
    assert_eq!(
        refusal(&edited("    workers: 2\n", "")),
        "metadata.yaml:34: services[0].command: {workers} needs workers to be set"
    );
    assert_eq!(
        refusal(&edited(
            "command: hello-cleanup",
            "command: [hello-cleanup, \"{listen}\"]"
        )),
        "metadata.yaml:44: tasks[0].command: {listen} is only available in services"
    );
}

#[test]
fn health_check_rules() {
    assert_eq!(
        refusal(&edited(
            "    http: /health\n",
            "    http: /health\n    command: [check]\n"
        )),
        "metadata.yaml:54: update.health-check: give exactly one of http and command"
    );
    assert_eq!(
        refusal(&edited("    listen: socket\n", "").replace("\"{listen}\"", "unix:/tmp/web.sock")),
        "metadata.yaml:54: update.health-check.service: web does not listen (set listen: \
             socket or port)"
    );
    assert_eq!(
        refusal(&edited("  keep-releases: 3", "  keep-releases: 1")),
        "metadata.yaml:53: update.keep-releases: 1 is below min 2"
    );
}

#[test]
fn web_settings_and_the_proxied_service() {
    let metadata = parsed(BUNDLE_METADATA);
    let web = metadata.web_settings();
    assert_eq!((web.prefix(), web.max_body_bytes()), ("/hello", 10 << 20));
    assert_eq!(
        metadata.proxied_service().map(|s| s.name.as_str()),
        Some("web")
    );
    // Without a web section: mounted at "/", the only listening service proxied.
    let plain = parsed(&edited(
        "web:\n  mount: /hello\n  service: web\n  max-body-size: 10M\n  timeout: 60\n",
        "",
    ));
    assert_eq!(plain.web, None);
    assert_eq!(plain.web_settings().prefix(), "");
    assert_eq!(plain.web_settings().timeout, 60);
    assert_eq!(
        plain.proxied_service().map(|s| s.name.as_str()),
        Some("web")
    );
    let sizes = [("512", 512), ("64K", 64 << 10), ("1G", 1 << 30)];
    for (text, bytes) in sizes {
        assert_eq!(parse_body_size(text), Some(bytes), "{text}");
    }
    for bad in [
        "",
        "0",
        "2G",
        "1.5M",
        "10m",
        "M",
        "-1",
        "10 M",
        "99999999999999",
    ] {
        assert_eq!(parse_body_size(bad), None, "{bad}");
    }
}

#[test]
fn web_rules() {
    let web = |from: &str, to: &str| refusal(&edited(from, to));
    let at_root = refusal(&edited(
        "  mount: /hello\n",
        "  mount: /\n  strip-prefix: true\n",
    ));
    assert!(
        at_root.ends_with(
            "web.strip-prefix: the app is served at \"/\": there is no mount to strip (set web.mount)"
        ),
        "{at_root}"
    );
    assert_eq!(
        web("  mount: /hello\n", "  mount: /hello/\n"),
        "metadata.yaml:60: web.mount: \"/hello/\" ends with \"/\" (write \"/hello\")"
    );
    assert_eq!(
        web("  mount: /hello\n", "  mount: /a b\n"),
        "metadata.yaml:60: web.mount: \"/a b\" is not a URL path (starts with \"/\"; \
             letters, digits, \"-_.~/\"; no \"..\" or \"//\")"
    );
    assert_eq!(
        web("  service: web\n  max", "  service: api\n  max"),
        "metadata.yaml:61: web.service: api is not one of the services"
    );
    assert_eq!(
        web("  max-body-size: 10M", "  max-body-size: 3G"),
        "metadata.yaml:62: web.max-body-size: \"3G\" is not a size from 1 to 1G (write N, \
             NK, NM or NG, e.g. 10M)"
    );
    assert_eq!(
        web("  timeout: 60", "  timeout: 0"),
        "metadata.yaml:63: web.timeout: 0 is below min 1"
    );
    assert_eq!(
        web("  - url: /static", "  - url: /"),
        "metadata.yaml:29: resources.static[0].url: \"/\" would hide the whole app behind \
             its static files (serve them under a path, e.g. /static)"
    );
    // A second listening service: web.service says which one is proxied, or is required.
    let two = BUNDLE_METADATA.replacen(
        "tasks:\n",
        "  - name: api\n    command: [api, \"{listen}\"]\n    listen: port\ntasks:\n",
        1,
    );
    assert_eq!(
        parsed(&two).proxied_service().map(|s| s.name.as_str()),
        Some("web")
    );
    let unnamed = two.replacen("  service: web\n  max", "  max", 1);
    assert!(refusal(&unnamed).ends_with(
        "web.service: required when several services listen (web, api): name the one \
             the web server proxies"
    ));
    let no_web = two.replacen(
        "web:\n  mount: /hello\n  service: web\n  max-body-size: 10M\n  timeout: 60\n",
        "",
        1,
    );
    assert_eq!(parsed(&no_web).proxied_service(), None);
    let quiet = BUNDLE_METADATA
        .replacen("    listen: socket\n", "", 1)
        .replace("\"{listen}\"", "unix:/tmp/web.sock")
        .replacen(
            "  health-check:\n    service: web\n    http: /health\n    timeout: 30\n",
            "",
            1,
        );
    assert_eq!(
        refusal(&quiet),
        "metadata.yaml:56: web.service: web does not listen (set listen: socket or port)"
    );
    assert!(
        refusal(&quiet.replacen("  service: web\n  max", "  max", 1)).ends_with(
            "web: no service listens (set listen: socket or port on the service the web \
             server proxies)"
        )
    );
}

#[test]
fn dependencies_are_checked() {
    assert_eq!(
        refusal(&edited("wheel: flask-3.0.3-py3", "wheel: flask-3.0.4-py3")),
        "metadata.yaml:15: dependencies[0].wheel: flask-3.0.4-py3-none-any.whl is flask \
             3.0.4, not flask 3.0.3"
    );
    assert_eq!(
        refusal(&edited("  - name: flask", "  - name: Flask")),
        "metadata.yaml:13: dependencies[0].name: \"Flask\" is not normalised (expected \
             \"flask\")"
    );
    assert_eq!(
        refusal(&edited("app-wheel: hello-1.2.0", "app-wheel: hello-1.2.1")),
        "metadata.yaml:11: app-wheel: hello-1.2.1-py3-none-any.whl is not among the \
             dependencies"
    );
    assert_eq!(
        refusal(&edited("    mode: shared", "    mode: global")),
        "metadata.yaml:17: dependencies[0].mode: \"global\" is not one of: shared, local"
    );
}

#[test]
fn versions_are_pep_440() {
    assert_eq!(
        refusal(&edited("version: 1.2.0\n", "version: 1.2.x\n")),
        "metadata.yaml:3: version: after parsing `1.2`, found `.x`, which is not part of a \
             valid version"
    );
    assert_eq!(
        refusal(&edited("\">=3.9\"", "\">=3.9,<<4\"")),
        "metadata.yaml:5: requires-python: Failed to parse version: no such comparison \
             operator \"<<\", must be one of ~= == != <= >= < > ===:"
    );
    // A line break in the value would cut the parser's message short.
    assert_eq!(
        refusal(&edited(
            "version: 1.2.0\n",
            "version: \"1.2.0\\nUser=root\"\n"
        )),
        "metadata.yaml:3: version: \"1.2.0\\nUser=root\" contains a control character"
    );
}

#[test]
fn dependencies_match_the_bundle() {
    let metadata = parsed(BUNDLE_METADATA);
    let flask = (
        "flask-3.0.3-py3-none-any.whl".to_owned(),
        FLASK_SHA.to_owned(),
    );
    let hello = (
        "hello-1.2.0-py3-none-any.whl".to_owned(),
        HELLO_SHA.to_owned(),
    );
    assert_eq!(
        metadata.check_dependencies(&[flask.clone(), hello.clone()]),
        Ok(())
    );
    let message = |files: &[(String, String)]| {
        metadata
            .check_dependencies(files)
            .map_err(|error| error.to_string())
            .err()
    };
    assert_eq!(
        message(std::slice::from_ref(&flask)).as_deref(),
        Some(
            "metadata.yaml: dependencies: hello-1.2.0-py3-none-any.whl is listed but \
                 deps/hello-1.2.0-py3-none-any.whl is not in the bundle"
        )
    );
    let extra = ("six-1.0-py3-none-any.whl".to_owned(), FLASK_SHA.to_owned());
    assert_eq!(
            message(&[flask.clone(), hello.clone(), extra]).as_deref(),
            Some("metadata.yaml: dependencies: deps/six-1.0-py3-none-any.whl is in the bundle but not listed")
        );
    let tampered = (flask.0.clone(), HELLO_SHA.to_owned());
    assert_eq!(
        message(&[tampered, hello]),
        Some(format!(
            "metadata.yaml: dependencies: deps/flask-3.0.3-py3-none-any.whl has sha256 \
                 {HELLO_SHA}, but metadata.yaml lists {FLASK_SHA}"
        ))
    );
}

#[test]
fn static_paths_must_exist() {
    let metadata = parsed(BUNDLE_METADATA);
    assert_eq!(
        metadata.check_static_paths(["src/hello/static/app.css", "src/hello/web.py"]),
        Ok(())
    );
    assert_eq!(
        metadata
            .check_static_paths(["src/hello/staticfile"])
            .map_err(|error| error.to_string()),
        Err(
            "metadata.yaml: resources.static[0].path: hello/static is not a directory of \
                 the app's source"
                .to_owned()
        )
    );
    assert_eq!(
        refusal(&edited("      path: hello/static", "      path: ../etc")),
        "metadata.yaml:30: resources.static[0].path: \"../etc\" is not a relative path \
             inside src/ (no \"..\", no leading \"/\")"
    );
}

const TEMPLATE: &str = "format: 1\nmodule: hello\nentry-point: hello.web:app\n\
                            local-dependencies: [Flask]\n\
                            services:\n  - name: web\n    command: gunicorn\n";

fn computed() -> Computed {
    Computed {
        name: "Hello".to_owned(),
        version: "1.2.0".to_owned(),
        summary: Some("A small greeting service".to_owned()),
        requires_python: Some(">=3.9".to_owned()),
        source_commit: None,
        built_by: "pyapp-build 0.1.0".to_owned(),
        app_wheel: "hello-1.2.0-py3-none-any.whl".to_owned(),
        wheels: vec![
            (
                "hello-1.2.0-py3-none-any.whl".to_owned(),
                HELLO_SHA.to_owned(),
            ),
            (
                "flask-3.0.3-py3-none-any.whl".to_owned(),
                FLASK_SHA.to_owned(),
            ),
        ],
    }
}

fn template(text: &str) -> ProjectMetadata {
    ProjectMetadata::parse(text, "metadata.yaml").unwrap_or_else(|error| panic!("{error}"))
}

#[test]
fn template_is_completed() {
    let metadata = template(TEMPLATE)
        .into_metadata(computed())
        .unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(metadata.name.as_str(), "hello");
    assert_eq!(
        metadata.summary.as_deref(),
        Some("A small greeting service")
    );
    let rows: Vec<(&str, DependencyMode)> = metadata
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.mode))
        .collect();
    assert_eq!(
        rows,
        [
            ("flask", DependencyMode::Local),
            ("hello", DependencyMode::Shared)
        ]
    );
    let written = metadata.to_yaml().unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(parsed(&written), metadata);
}

#[test]
fn the_fixture_template_is_valid() {
    let text = include_str!("../../../fixtures/hello/metadata.yaml");
    let metadata = template(text).into_metadata(computed());
    assert!(metadata.is_ok(), "{metadata:?}");
}

fn template_refusal(text: &str, computed: Computed) -> String {
    match ProjectMetadata::parse(text, "metadata.yaml") {
        Ok(template) => match template.into_metadata(computed) {
            Ok(metadata) => panic!("accepted: {metadata:?}"),
            Err(error) => error.to_string(),
        },
        Err(error) => error.to_string(),
    }
}

#[test]
fn template_must_agree_with_pyproject() {
    assert_eq!(
        template_refusal(&format!("{TEMPLATE}version: 1.3.0\n"), computed()),
        "metadata.yaml: version: metadata.yaml says \"1.3.0\" but pyproject.toml says \"1.2.0\""
    );
    assert_eq!(
        template_refusal(
            &format!("{TEMPLATE}requires-python: '>=3.11'\n"),
            computed()
        ),
        "metadata.yaml: requires-python: metadata.yaml says \">=3.11\" but pyproject.toml \
             says \">=3.9\""
    );
    let no_python = Computed {
        requires_python: None,
        ..computed()
    };
    assert_eq!(
        template_refusal(TEMPLATE, no_python),
        "metadata.yaml: requires-python: missing: set it in pyproject.toml or metadata.yaml"
    );
    let only_hello = Computed {
        wheels: vec![(
            "hello-1.2.0-py3-none-any.whl".to_owned(),
            HELLO_SHA.to_owned(),
        )],
        ..computed()
    };
    assert_eq!(
        template_refusal(TEMPLATE, only_hello),
        "metadata.yaml: local-dependencies[0]: Flask is not among the pinned distributions"
    );
}

#[test]
fn template_must_not_set_computed_fields() {
    assert_eq!(
        template_refusal(&format!("{TEMPLATE}app-wheel: x.whl\n"), computed()),
        "metadata.yaml:8: app-wheel: pyapp-build computes this field: remove it from the \
             project's metadata.yaml"
    );
    assert_eq!(
        template_refusal(&format!("{TEMPLATE}bogus: 1\n"), computed()),
        "metadata.yaml:8: bogus: unknown field (known fields: format, name, version, \
             summary, requires-python, module, entry-point, interface, local-dependencies, \
             system, resources, services, tasks, hooks, update, isolation, web, \
             source-commit, built-by, app-wheel, dependencies)"
    );
}

#[test]
fn socket_activation_reload_and_grace() {
    let web = |text: &str| parsed(text).services[0].clone();
    let plain = web(BUNDLE_METADATA);
    assert!(plain.takes_socket(), "gunicorn reads LISTEN_FDS");
    assert_eq!(
        (plain.reload_signal, plain.stop_grace),
        (None, DEFAULT_STOP_GRACE)
    );
    let tuned = web(&edited(
        "    workers: 2\n",
        "    workers: 2\n    reload-signal: hup\n    stop-grace: 5\n",
    ));
    assert_eq!(
        (tuned.reload_signal, tuned.stop_grace),
        (Some(ReloadSignal::Hup), 5)
    );
    let uvicorn = web(&edited(
        "command: [gunicorn, --bind, \"{listen}\", --workers, \"{workers}\", hello.web:app]",
        "command: [uvicorn, --fd, \"{fd}\", --workers, \"{workers}\", hello.web:app]",
    ));
    assert!(
        uvicorn.takes_socket(),
        "{{fd}} is the socket systemd passes"
    );
    let waitress = web(&edited(
        "command: [gunicorn, --bind, \"{listen}\", --workers, \"{workers}\", hello.web:app]",
        "command: [waitress-serve, --listen, \"{listen}\", --threads, \"{workers}\", hello.web:app]",
    ));
    assert!(!waitress.takes_socket(), "binds its own socket");
    assert!(refusal(&edited(
        "    workers: 2\n",
        "    workers: 2\n    stop-grace: 0\n"
    ))
    .contains("services[0].stop-grace: 0 is below min 1"));
    assert!(refusal(&edited(
        "command: hello-cleanup",
        "command: [hello-cleanup, \"{fd}\"]"
    ))
    .contains("tasks[0].command: {fd} is only available in services"));
}
