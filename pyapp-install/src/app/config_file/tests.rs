//! The configuration file's merge, rendering and checks.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::app::tree::AppsDir;
use pyapp_cli::find_refusal;

/// Every widget and rule the merge has to apply.
const SPEC: &str = r#"format: 1
fields:
  - key: greeting
    widget: string
    default: Hello
    required: true
    regex: '^[A-Za-z][A-Za-z ,!]{0,39}$'
    help: The word the front page greets visitors with
  - key: workers
    widget: integer
    default: 2
    min: 1
    max: 16
  - key: ratio
    widget: number
    max: 1.5
  - key: debug
    widget: boolean
    default: false
  - key: log_level
    widget: choice
    choices: [debug, info, warning, error]
    default: info
  - key: secret_key
    widget: secret
    required: true
    generate: true
  - key: api_token
    widget: secret
    min-length: 16
  - key: admin_email
    widget: email
    required: true
"#;

fn spec(text: &str) -> ConfigSpec {
    ConfigSpec::parse(text, "configuration.yaml").unwrap()
}

fn ini_spec() -> ConfigSpec {
    spec(&SPEC.replace(
        "format: 1\n",
        "format: 1\nfile-format: ini\nini-section: hello\n",
    ))
}

/// A scratch apps directory with the app `hello` and its config/ directory.
fn scratch(spec: &ConfigSpec) -> (tempfile::TempDir, ConfigFile) {
    let root = tempfile::tempdir().unwrap();
    let tree = AppsDir::new(root.path(), Path::new("/applications"))
        .app("hello")
        .unwrap();
    std::fs::create_dir_all(tree.lasting_dir("config")).unwrap();
    let file = ConfigFile::new(&tree, spec);
    (root, file)
}

fn given(spec: &ConfigSpec, set: &[&str]) -> Result<GivenValues> {
    let set: Vec<String> = set.iter().map(|s| (*s).to_owned()).collect();
    GivenValues::parse(spec, &set, None)
}

fn plan(
    file: &ConfigFile,
    spec: &ConfigSpec,
    existing: Option<&ExistingConfig>,
    set: &[&str],
) -> Result<ConfigPlan> {
    let given = given(spec, set)?;
    let mut counter = 0;
    file.plan_with(spec, existing, &given, &mut || {
        counter += 1;
        Ok(format!("generated-{counter}"))
    })
}

/// The refusal's message and hint.
fn refusal(result: Result<impl std::fmt::Debug>) -> (String, String) {
    let err = result.unwrap_err();
    let hint = find_refusal(&err)
        .and_then(|refusal| refusal.hint())
        .unwrap_or_default()
        .to_owned();
    (err.to_string(), hint)
}

/// The file of `file` as if it held `values`.
fn existing(file: &ConfigFile, values: &[(&str, ConfigValue)]) -> ExistingConfig {
    ExistingConfig {
        path: file.path(),
        values: values
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.clone()))
            .collect(),
        owner: (0, 0),
        mode: 0o600,
    }
}

fn string(text: &str) -> ConfigValue {
    ConfigValue::String(text.to_owned())
}

#[test]
fn first_install_writes_defaults_generated_secrets_and_given_values() {
    let spec = spec(SPEC);
    let (_root, file) = scratch(&spec);
    let plan = plan(
        &file,
        &spec,
        None,
        &["admin_email=ops@example.com", "workers=4"],
    )
    .unwrap();
    assert_eq!(
        plan.contents,
        "# The configuration of hello, written by pyapp-install from the app's \
             configuration.yaml.\n# Change it with: pyapp-install config hello --set \
             KEY=VALUE\n\
             \n# The word the front page greets visitors with\ngreeting: Hello\n\
             \nworkers: 4\n\n# ratio:\n\ndebug: false\n\nlog_level: info\n\
             \nsecret_key: generated-1\n\napi_token: \"\"\n\nadmin_email: ops@example.com\n"
    );
    assert_eq!(plan.mode(), 0o600);
    assert!(plan.changed());
    assert_eq!(
        plan.notes(),
        [
            format!(
                "config: new file {} from configuration.yaml",
                file.path().display()
            ),
            "config: workers = 4 (was not set)".to_owned(),
            "config: secret_key = ******** (generated)".to_owned(),
            "config: admin_email = \"ops@example.com\" (was not set)".to_owned(),
        ]
    );
    assert!(file.runtime_path().ends_with("config/config.yaml"));
    assert!(file
        .runtime_path()
        .starts_with("/applications/hello/config"));
}

#[test]
fn set_values_are_typed_by_widget() {
    let spec = spec(SPEC);
    let given = given(
        &spec,
        &[
            "workers=4",
            "ratio=1.25",
            "debug=true",
            "greeting=12",
            "ratio=1",
        ],
    )
    .unwrap();
    let values: Vec<_> = given.values.values().map(|(value, _)| value).collect();
    assert_eq!(
        values,
        [
            &ConfigValue::Boolean(true),
            &string("12"),
            &ConfigValue::Integer(1),
            &ConfigValue::Integer(4),
        ]
    );
}

#[test]
fn every_rule_is_refused_with_key_and_rule() {
    let spec = spec(SPEC);
    let (_root, file) = scratch(&spec);
    let email = "admin_email=ops@example.com";
    let cases: [(&[&str], &str); 11] = [
        (
            &[email, "workers=four"],
            "config: workers: expected an integer, found \"four\"",
        ),
        (&[email, "workers=0"], "config: workers: 0 is below min 1"),
        (
            &[email, "workers=17"],
            "config: workers: 17 is above max 16",
        ),
        (&[email, "ratio=2.5"], "config: ratio: 2.5 is above max 1.5"),
        (
            &[email, "ratio=inf"],
            "config: ratio: expected a number, found \"inf\"",
        ),
        (
            &[email, "debug=yes"],
            "config: debug: expected true or false, found \"yes\"",
        ),
        (
            &[email, "log_level=verbose"],
            "config: log_level: \"verbose\" is not one of: debug, info, warning, error",
        ),
        (
            &[email, "greeting=<b>"],
            "config: greeting: \"<b>\" does not match regex ^[A-Za-z][A-Za-z ,!]{0,39}$",
        ),
        (
            &[email, "api_token=short"],
            "config: api_token: ******** is shorter than min-length 16",
        ),
        (
            &["admin_email=ops"],
            "config: admin_email: \"ops\" is not an email address (local@domain)",
        ),
        (&[], "config: admin_email: required but not set"),
    ];
    for (set, expected) in cases {
        let (message, hint) = refusal(plan(&file, &spec, None, set));
        assert_eq!(message, expected, "{set:?}");
        assert!(hint.contains("--set"), "{hint}");
    }
    assert_eq!(
        refusal(given(&spec, &["colour=red"])),
        (
            "config: colour: not a configuration key of this app (known keys: greeting, \
                 workers, ratio, debug, log_level, secret_key, api_token, admin_email)"
                .to_owned(),
            String::new()
        )
    );
    assert_eq!(
        refusal(given(&spec, &["workers"])),
        (
            "config: --set \"workers\": expected KEY=VALUE".to_owned(),
            "e.g. --set workers=4".to_owned()
        )
    );
}

#[test]
fn upgrade_keeps_values_adds_fields_and_keeps_removed_keys() {
    let spec = spec(SPEC);
    let (_root, file) = scratch(&spec);
    let old = existing(
        &file,
        &[
            ("greeting", string("Howdy")),
            ("workers", ConfigValue::Integer(8)),
            ("secret_key", string("kept-secret")),
            ("admin_email", string("ops@example.com")),
            ("old_setting", string("x")),
        ],
    );
    let plan = file
        .plan_with(&spec, Some(&old), &GivenValues::default(), &mut || {
            panic!("an existing secret is never generated again")
        })
        .unwrap();
    assert_eq!(plan.values()["greeting"], string("Howdy"));
    assert_eq!(plan.values()["workers"], ConfigValue::Integer(8));
    assert_eq!(plan.values()["secret_key"], string("kept-secret"));
    assert_eq!(plan.values()["log_level"], string("info"));
    assert_eq!(plan.removed_keys(), ["old_setting"]);
    assert!(plan.changed());
    assert_eq!(
        plan.notes(),
        [
            "config: new key debug = false (its default)",
            "config: new key log_level = \"info\" (its default)",
            "config: new key api_token = \"\" (an optional secret: empty until set)",
            "config: old_setting is no longer in the app's configuration.yaml: kept in \
                 the file, unused",
        ]
    );
    assert!(plan.contents.ends_with(
        "\n# Not in this release's configuration.yaml: kept (for a rollback), unused by \
             this release.\nold_setting: x\n"
    ));
}

#[test]
fn upgrade_is_refused_when_a_kept_value_breaks_the_new_spec() {
    let spec = spec(SPEC);
    let (_root, file) = scratch(&spec);
    let old = existing(
        &file,
        &[
            ("greeting", string("Hello")),
            ("workers", ConfigValue::Integer(32)),
            ("secret_key", string("kept-secret")),
            ("admin_email", string("ops@example.com")),
        ],
    );
    assert_eq!(
        refusal(plan(&file, &spec, Some(&old), &[])),
        (
            "config: workers: 32 is above max 16".to_owned(),
            format!(
                "the value comes from `{}`: give a valid one with --set workers=VALUE",
                file.path().display()
            )
        )
    );
    let fixed = plan(&file, &spec, Some(&old), &["workers=16"]).unwrap();
    assert_eq!(
        fixed.notes(),
        [
            "config: workers = 16 (was 32)",
            "config: new key debug = false (its default)",
            "config: new key log_level = \"info\" (its default)",
            "config: new key api_token = \"\" (an optional secret: empty until set)"
        ]
    );
}

#[test]
fn a_value_set_again_changes_nothing() {
    let spec = spec(SPEC);
    let (_root, file) = scratch(&spec);
    let first = plan(&file, &spec, None, &["admin_email=ops@example.com"]).unwrap();
    let old = existing(
        &file,
        &first
            .values()
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone()))
            .collect::<Vec<_>>(),
    );
    let again = plan(&file, &spec, Some(&old), &["workers=2"]).unwrap();
    assert!(!again.changed());
    assert!(again.notes().is_empty());
    let changed = plan(&file, &spec, Some(&old), &["workers=3"]).unwrap();
    assert!(changed.changed());
}

#[test]
fn generated_secret_survives_a_rewrite_on_disk() {
    for spec in [spec(SPEC), ini_spec()] {
        let (_root, file) = scratch(&spec);
        let first = file
            .plan(
                &spec,
                None,
                &given(&spec, &["admin_email=ops@example.com"]).unwrap(),
            )
            .unwrap();
        assert!(first.write(None).unwrap());
        let generated = first.values()["secret_key"].clone();
        let ConfigValue::String(text) = &generated else {
            panic!("{generated:?}")
        };
        assert_eq!(text.len(), 43, "{text}");
        let read = file.read(&spec).unwrap().unwrap();
        assert_eq!(&read.values, first.values());
        assert_eq!(read.mode, 0o600);
        let second = file
            .plan(&spec, Some(&read), &given(&spec, &["workers=3"]).unwrap())
            .unwrap();
        assert_eq!(second.values()["secret_key"], generated);
        assert!(second.write(None).unwrap());
        let unchanged = file
            .plan(
                &spec,
                file.read(&spec).unwrap().as_ref(),
                &GivenValues::default(),
            )
            .unwrap();
        assert!(!unchanged.write(None).unwrap());
    }
}

#[test]
fn ini_round_trips_every_widget() {
    let spec = ini_spec();
    let (_root, file) = scratch(&spec);
    let set = [
        "admin_email=ops@example.com",
        "ratio=0.5",
        "debug=true",
        "greeting=Hi, there!",
        "api_token=0123456789abcdef#;",
    ];
    let plan = plan(&file, &spec, None, &set).unwrap();
    assert!(plan.contents.contains("\n[hello]\n\n# The word the front page greets visitors with\ngreeting = Hi, there!\n\nworkers = 2\n\nratio = 0.5\n"), "{}", plan.contents);
    plan.write(None).unwrap();
    assert!(file.path().ends_with("config/config.ini"));
    let read = file.read(&spec).unwrap().unwrap();
    assert_eq!(&read.values, plan.values());
}

#[test]
fn ini_refuses_what_it_cannot_hold() {
    let text = SPEC.replace("format: 1\n", "format: 1\nfile-format: ini\n")
        + "  - key: motd\n    widget: text\n";
    let spec = spec(&text);
    let (_root, file) = scratch(&spec);
    let email = "admin_email=ops@example.com";
    assert!(plan(&file, &spec, None, &[email, "motd=two\nlines"]).is_ok());
    assert_eq!(
        refusal(plan(&file, &spec, None, &[email, "motd= padded"])).0,
        "config: motd: \" padded\" cannot be written to an INI file unchanged (spaces \
             around a line, an empty line, or a line starting with # or ;)"
    );
}

#[test]
fn yaml_strings_are_quoted_only_when_needed() {
    for (text, written) in [
        ("Hello", "Hello"),
        ("12", "\"12\""),
        ("true", "\"true\""),
        ("", "\"\""),
        ("a: b", "\"a: b\""),
        ("x # y", "\"x # y\""),
        ("*alias", "\"*alias\""),
        ("two\nlines", "\"two\\nlines\""),
        ("http://localhost", "http://localhost"),
        ("No", "\"No\""),
        ("off", "\"off\""),
        ("~", "\"~\""),
        ("0777", "\"0777\""),
        ("2001-12-14", "\"2001-12-14\""),
        ("-x", "\"-x\""),
        (".5", "\".5\""),
    ] {
        assert_eq!(yaml_scalar(&string(text)), written, "{text:?}");
        let read = parse_yaml_values(&format!("k: {written}\n"), "t").unwrap();
        assert_eq!(read["k"], string(text));
    }
    for (number, written) in [
        (2.0, "2.0"),
        (1e16, "1.0e+16"),
        (1.5e-7, "1.5e-7"),
        (-0.25, "-0.25"),
    ] {
        assert_eq!(yaml_scalar(&ConfigValue::Number(number)), written);
        let read = parse_yaml_values(&format!("k: {written}\n"), "t").unwrap();
        assert_eq!(read["k"], ConfigValue::Number(number));
    }
    assert_eq!(
        parse_yaml_values("# only a comment\n", "t").unwrap(),
        ConfigValues::new()
    );
}

#[test]
fn a_planted_link_is_refused_when_read_and_replaced_when_written() {
    let spec = spec(SPEC);
    let (root, file) = scratch(&spec);
    let target = root.path().join("shadow");
    std::fs::write(&target, "root:x:0:\n").unwrap();
    std::os::unix::fs::symlink(&target, file.path()).unwrap();
    let (message, _) = refusal(file.read(&spec));
    assert_eq!(
        message,
        format!(
            "`{}` is a symbolic link; refusing to follow or read it",
            file.path().display()
        )
    );
    let plan = plan(&file, &spec, None, &["admin_email=ops@example.com"]).unwrap();
    assert!(plan.write(None).unwrap());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "root:x:0:\n");
    assert!(std::fs::symlink_metadata(file.path()).unwrap().is_file());
}

#[test]
fn a_config_file_given_with_config_is_checked_too() {
    let spec = spec(SPEC);
    let dir = tempfile::tempdir().unwrap();
    let values = dir.path().join("values.yaml");
    std::fs::write(&values, "workers: \"2\"\nadmin_email: ops@example.com\n").unwrap();
    let given = GivenValues::parse(&spec, &["greeting=Hi".to_owned()], Some(&values)).unwrap();
    let (_root, file) = scratch(&spec);
    let (message, hint) = refusal(file.plan(&spec, None, &given));
    assert_eq!(message, "config: workers: expected an integer, found \"2\"");
    assert_eq!(
        hint,
        format!(
            "fix workers in `{}`, or give a valid value with --set workers=VALUE",
            values.display()
        )
    );
    std::fs::write(&values, "colour: red\n").unwrap();
    let (message, hint) = refusal(GivenValues::parse(&spec, &[], Some(&values)));
    assert!(message.starts_with("config: colour: not a configuration key of this app"));
    assert_eq!(hint, format!("the key comes from `{}`", values.display()));
}

#[test]
fn json_toml_and_env_round_trip_every_widget() {
    let set = [
        "admin_email=ops@example.com",
        "ratio=0.5",
        "debug=true",
        "greeting=Hi, there!",
        "api_token=0123456789abcdef$HOME\"",
    ];
    for (format, name, expected) in [
        (
            "json",
            "config.json",
            "{\n  \"greeting\": \"Hi, there!\",\n  \"workers\": 2,\n  \"ratio\": 0.5,\n  \"debug\": true,\n",
        ),
        (
            "toml",
            "config.toml",
            "# The word the front page greets visitors with\ngreeting = \"Hi, there!\"\n\nworkers = 2\n\nratio = 0.5\n\ndebug = true\n",
        ),
        (
            "env",
            "config.env",
            "# The word the front page greets visitors with\nGREETING='Hi, there!'\n\nWORKERS=2\n\nRATIO=0.5\n\nDEBUG=true\n",
        ),
    ] {
        let spec = spec(&SPEC.replace("format: 1\n", &format!("format: 1\nfile-format: {format}\n")));
        let (_root, file) = scratch(&spec);
        let plan = plan(&file, &spec, None, &set).unwrap();
        assert!(plan.contents.contains(expected), "{format}: {}", plan.contents);
        plan.write(None).unwrap();
        assert!(file.path().ends_with(format!("config/{name}")));
        let read = file.read(&spec).unwrap().unwrap();
        assert_eq!(&read.values, plan.values(), "{format}");
    }
}

#[test]
fn keys_keep_their_case_and_optional_secrets_are_empty_in_every_format() {
    const CASED: &str = "format: 1
fields:
  - key: SECRET_KEY
    widget: secret
    generate: true
  - key: Debug
    widget: boolean
    default: false
  - key: EMAIL_HOST_PASSWORD
    widget: secret
    min-length: 12
  - key: site_title
    widget: string
    default: Shop
";
    for (format, expected) in [
        ("yaml", "SECRET_KEY: generated-1\n\nDebug: false\n\nEMAIL_HOST_PASSWORD: \"\"\n"),
        ("ini", "SECRET_KEY = generated-1\n\nDebug = false\n\nEMAIL_HOST_PASSWORD = \n"),
        ("json", "\"SECRET_KEY\": \"generated-1\",\n  \"Debug\": false,\n  \"EMAIL_HOST_PASSWORD\": \"\""),
        ("toml", "SECRET_KEY = \"generated-1\"\n\nDebug = false\n\nEMAIL_HOST_PASSWORD = \"\"\n"),
        ("env", "SECRET_KEY='generated-1'\n\nDEBUG=false\n\nEMAIL_HOST_PASSWORD=''\n"),
    ] {
        let spec = spec(&CASED.replace("format: 1\n", &format!("format: 1\nfile-format: {format}\n")));
        let (_root, file) = scratch(&spec);
        let plan = plan(&file, &spec, None, &[]).unwrap();
        assert!(plan.contents.contains(expected), "{format}: {}", plan.contents);
        plan.write(None).unwrap();
        let read = file.read(&spec).unwrap().unwrap();
        assert_eq!(&read.values, plan.values(), "{format}");
        assert_eq!(
            read.values.keys().collect::<Vec<_>>(),
            ["Debug", "EMAIL_HOST_PASSWORD", "SECRET_KEY", "site_title"],
            "{format}"
        );
        let again = plan_again(&file, &spec, &read, &["EMAIL_HOST_PASSWORD="]);
        assert!(!again.changed(), "{format}: {}", again.contents);
        let (message, _) = refusal(plan_with_existing(&file, &spec, &read, &["EMAIL_HOST_PASSWORD=short"]));
        assert_eq!(
            message,
            "config: EMAIL_HOST_PASSWORD: ******** is shorter than min-length 12",
            "{format}"
        );
    }
}

fn plan_with_existing(
    file: &ConfigFile,
    spec: &ConfigSpec,
    existing: &ExistingConfig,
    set: &[&str],
) -> Result<ConfigPlan> {
    plan(file, spec, Some(existing), set)
}

fn plan_again(
    file: &ConfigFile,
    spec: &ConfigSpec,
    existing: &ExistingConfig,
    set: &[&str],
) -> ConfigPlan {
    plan_with_existing(file, spec, existing, set).unwrap()
}

#[test]
fn a_file_of_another_format_is_read_when_the_spec_changes_format() {
    let yaml = spec(SPEC);
    let (root, file) = scratch(&yaml);
    plan(
        &file,
        &yaml,
        None,
        &["admin_email=ops@example.com", "workers=7"],
    )
    .unwrap()
    .write(None)
    .unwrap();
    let toml = spec(&SPEC.replace("format: 1\n", "format: 1\nfile-format: toml\n"));
    let tree = AppsDir::new(root.path(), Path::new("/applications"))
        .app("hello")
        .unwrap();
    let read = ConfigFile::new(&tree, &toml).read(&toml).unwrap().unwrap();
    assert!(read.path.ends_with("config/config.yaml"));
    assert_eq!(read.values["workers"], ConfigValue::Integer(7));
}

#[test]
fn env_files_refuse_what_they_cannot_hold() {
    let spec = spec(&SPEC.replace("format: 1\n", "format: 1\nfile-format: env\n"));
    let (_root, file) = scratch(&spec);
    assert_eq!(
        refusal(plan(
            &file,
            &spec,
            None,
            &["admin_email=ops@example.com", "api_token=0123456789abcdef'"]
        ))
        .0,
        "config: api_token: ******** cannot be written to a .env file unchanged (a ' or a line break)"
    );
}
