//! `pyapp-install config APP` end to end, on `fixtures/hello` installed into a scratch
//! `--root`: the file is created from the spec's defaults on the first `--set`, read by the
//! app itself (PyYAML), shown with its secret masked, changed only by valid values, and a
//! link planted at its path is refused and never followed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use tempfile::TempDir;

use crate::harness::{
    bin, build_bundle, edit, fixture_copy, pyapp_build, pyapp_install_at, stderr,
};

/// The fixture's bundle, built once for every test here.
fn hello_bundle() -> &'static Path {
    static BUNDLE: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    let (_, bundle) = BUNDLE.get_or_init(|| {
        let project = fixture_copy("hello");
        let out = tempfile::tempdir().expect("temp out dir");
        let bundle = build_bundle(project.path(), out.path());
        (out, bundle)
    });
    bundle
}

/// What `config --set` says after a change when the units are written but systemd does not
/// run them (a `--root` tree).
const RESTART: &str =
    "systemd is not running on this root: restart hello-web.service for the change to apply\n";

/// `fixtures/hello` installed under a scratch root, as it is after an upgrade from a
/// release that had no configuration file: installed, then its config file taken away.
struct Installed {
    root: TempDir,
}

impl Installed {
    fn new() -> Self {
        let installed = Installed {
            root: tempfile::tempdir().expect("temp root"),
        };
        let output = installed.run(&[hello_bundle().to_str().expect("utf-8 path")]);
        assert!(output.status.success(), "install: {}", stderr(&output));
        let written = fs::read_to_string(installed.config_file()).expect("install wrote it");
        assert!(written.contains("greeting: Hello\n"), "{written}");
        fs::remove_file(installed.config_file()).expect("remove the config file");
        installed
    }

    /// Runs `pyapp-install --root ROOT ARGS...`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("pyapp-install"))
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .output()
            .expect("run pyapp-install")
    }

    fn root(&self) -> String {
        self.root.path().display().to_string()
    }

    fn config_file(&self) -> PathBuf {
        self.root
            .path()
            .join("applications/hello/config/config.yaml")
    }

    /// The app's `hello` console script, reading the config file (through the venv's
    /// python: under `--root` the shebang names the run-time path).
    fn greet(&self) -> String {
        let venv = self.root.path().join("applications/hello/current/venv/bin");
        let output = Command::new(venv.join("python"))
            .arg(venv.join("hello"))
            .arg("pyapp")
            .env("PYAPP_CONFIG_FILE", self.config_file())
            .output()
            .expect("run hello");
        assert!(output.status.success(), "hello: {}", stderr(&output));
        String::from_utf8(output.stdout).expect("utf-8 output")
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The config's `secret_key: …` value, without the quotes the writer puts around a value
/// YAML would otherwise read as another type (a random secret may start with `-`).
fn secret_key(text: &str) -> String {
    let written = text
        .lines()
        .find_map(|line| line.strip_prefix("secret_key: "))
        .expect("secret_key line");
    written
        .strip_prefix('"')
        .and_then(|value| value.strip_suffix('"'))
        .unwrap_or(written)
        .to_owned()
}

#[test]
fn set_creates_the_file_the_app_reads_and_show_masks_the_secret() {
    let app = Installed::new();
    let file = app.config_file();

    let shown = app.run(&["config", "hello"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(stdout(&shown), "");
    assert_eq!(
        stderr(&shown),
        format!(
            "hello has no configuration file yet (`{}`)\nhint: `pyapp-install config hello \
             --set KEY=VALUE` writes it from the defaults\n",
            file.display()
        )
    );

    let set = app.run(&[
        "config",
        "hello",
        "--set",
        "greeting=No",
        "--set",
        "workers=4",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert_eq!(
        stderr(&set),
        format!(
            "config: new file {0} from configuration.yaml\nconfig: greeting = \"No\" (was not \
             set)\nconfig: workers = 4 (was not set)\nconfig: secret_key = ******** \
             (generated)\n{RESTART}saved {0}\n",
            file.display()
        )
    );
    let meta = fs::symlink_metadata(&file).expect("config.yaml written");
    assert!(meta.is_file());
    assert_eq!(
        meta.permissions().mode() & 0o7777,
        0o600,
        "it holds a secret"
    );
    let text = fs::read_to_string(&file).expect("read config");
    let secret = secret_key(&text);
    assert_eq!(
        secret.len(),
        43,
        "32 random bytes, URL-safe base64: {secret}"
    );
    assert!(
        text.contains("\n# Number of gunicorn worker processes\nworkers: 4\n"),
        "{text}"
    );
    // PyYAML reads `No` unquoted as false: the writer quotes it, the app greets with it.
    assert_eq!(app.greet(), "No, pyapp!\n");

    let shown = app.run(&["config", "hello"]);
    assert!(shown.status.success(), "{}", stderr(&shown));
    assert_eq!(
        stdout(&shown),
        "greeting = \"No\"\nsite_url = \"http://localhost\"\nworkers = 4\nlog_level = \
         \"info\"\nsecret_key = ********\n"
    );
    assert!(!stdout(&shown).contains(&secret));
    let json = app.run(&["config", "hello", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "app": "hello",
            "file": file.display().to_string(),
            "exists": true,
            "values": {"greeting": "No", "site_url": "http://localhost", "workers": 4,
                       "log_level": "info", "secret_key": "********"},
            "not-set": [],
            "removed-keys": [],
        })
    );

    // Another change keeps the generated secret; the same value again writes nothing.
    let set = app.run(&["config", "hello", "--set", "greeting=Howdy", "--json"]);
    assert!(set.status.success(), "{}", stderr(&set));
    let report: serde_json::Value = serde_json::from_slice(&set.stdout).expect("JSON");
    assert_eq!(report["action"], "changed");
    assert_eq!(report["changed-keys"], serde_json::json!(["greeting"]));
    assert_eq!(app.greet(), "Howdy, pyapp!\n");
    let text = fs::read_to_string(&file).expect("read config");
    assert_eq!(secret_key(&text), secret);
    let again = app.run(&["config", "hello", "--set", "greeting=Howdy"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(stderr(&again), format!("unchanged: {}\n", file.display()));
    assert_eq!(fs::read_to_string(&file).expect("read config"), text);
}

#[test]
fn invalid_values_are_refused_naming_key_and_rule_and_change_nothing() {
    let app = Installed::new();
    let file = app.config_file();
    let set = app.run(&["config", "hello", "--set", "workers=2"]);
    assert!(set.status.success(), "{}", stderr(&set));
    let before = fs::read(&file).expect("read config");

    let values = app.root.path().join("values.yaml");
    fs::write(&values, "log_level: verbose\n").expect("write values");
    let cases: [(&[&str], String); 6] = [
        (
            &["--set", "workers=40"],
            "error: config: workers: 40 is above max 16\nhint: give a valid value with --set \
             workers=VALUE\n"
                .to_owned(),
        ),
        (
            &["--set", "workers=many"],
            "error: config: workers: expected an integer, found \"many\"\nhint: give a valid \
             value with --set workers=VALUE\n"
                .to_owned(),
        ),
        (
            &["--set", "greeting=<b>hi</b>"],
            "error: config: greeting: \"<b>hi</b>\" does not match regex \
             ^[A-Za-z][A-Za-z ,!]{0,39}$\nhint: give a valid value with --set greeting=VALUE\n"
                .to_owned(),
        ),
        (
            &["--set", "site_url=localhost"],
            "error: config: site_url: \"localhost\" is not an absolute http or https URL\nhint: \
             give a valid value with --set site_url=VALUE\n"
                .to_owned(),
        ),
        (
            &["--set", "colour=red"],
            "error: config: colour: not a configuration key of this app (known keys: \
             greeting, site_url, workers, log_level, secret_key)\n"
                .to_owned(),
        ),
        (
            &["--config", values.to_str().expect("utf-8 path")],
            format!(
                "error: config: log_level: \"verbose\" is not one of: debug, info, warning, \
                 error\nhint: fix log_level in `{}`, or give a valid value with --set \
                 log_level=VALUE\n",
                values.display()
            ),
        ),
    ];
    for (args, expected) in cases {
        let refused = app.run(&[&["config", "hello"], args].concat());
        assert_eq!(
            refused.status.code(),
            Some(1),
            "{args:?}: {}",
            stderr(&refused)
        );
        assert_eq!(stderr(&refused), expected, "{args:?}");
        assert_eq!(fs::read(&file).expect("read config"), before, "{args:?}");
    }

    // A value the file holds that the spec refuses is named with where it comes from.
    let text = String::from_utf8(before).expect("utf-8 config");
    fs::write(&file, text.replace("workers: 2\n", "workers: 99\n")).expect("edit config");
    let refused = app.run(&["config", "hello", "--set", "log_level=debug"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        format!(
            "error: config: workers: 99 is above max 16\nhint: the value comes from `{}`: give \
             a valid one with --set workers=VALUE\n",
            file.display()
        )
    );
    let fixed = app.run(&[
        "config",
        "hello",
        "--set",
        "log_level=debug",
        "--set",
        "workers=3",
    ]);
    assert!(fixed.status.success(), "{}", stderr(&fixed));
    assert!(
        stderr(&fixed).contains("config: workers = 3 (was 99)\n"),
        "{}",
        stderr(&fixed)
    );
}

#[test]
fn keys_no_longer_in_the_spec_are_kept_and_reported() {
    let app = Installed::new();
    let file = app.config_file();
    fs::write(&file, "greeting: Hi\nsecret_key: abc\nold_setting: 7\n").expect("write config");
    let set = app.run(&["config", "hello", "--set", "workers=5", "--json"]);
    assert!(set.status.success(), "{}", stderr(&set));
    assert_eq!(
        stderr(&set),
        format!(
            "config: new key site_url = \"http://localhost\" (its default)\nconfig: workers = 5 \
             (was not set)\nconfig: new key log_level = \"info\" (its default)\nconfig: \
             old_setting is no longer in the app's configuration.yaml: kept in the file, \
             unused\n{RESTART}saved {}\n",
            file.display()
        )
    );
    let report: serde_json::Value = serde_json::from_slice(&set.stdout).expect("JSON");
    assert_eq!(report["removed-keys"], serde_json::json!(["old_setting"]));
    let text = fs::read_to_string(&file).expect("read config");
    assert!(
        text.ends_with("unused by this release.\nold_setting: 7\n"),
        "{text}"
    );
    assert!(text.contains("\nsecret_key: abc\n"), "{text}");
    let shown = app.run(&["config", "hello"]);
    assert!(
        stdout(&shown).ends_with(
            "old_setting = ******** (not in this release's configuration.yaml: unused)\n"
        ),
        "{}",
        stdout(&shown)
    );
}

#[test]
fn a_link_planted_at_the_config_file_is_refused() {
    let app = Installed::new();
    let file = app.config_file();
    let target = app.root.path().join("shadow");
    fs::write(&target, "root:x:0:0\n").expect("write target");
    std::os::unix::fs::symlink(&target, &file).expect("plant link");
    for args in [
        &["config", "hello"][..],
        &["config", "hello", "--set", "workers=3"],
    ] {
        let refused = app.run(args);
        assert_eq!(refused.status.code(), Some(1), "{args:?}");
        assert_eq!(
            stderr(&refused),
            format!(
                "error: `{}` is a symbolic link; refusing to follow or read it\nhint: move it \
                 away (it may have been planted), then run pyapp-install again\n",
                file.display()
            )
        );
    }
    assert_eq!(
        fs::read_to_string(&target).expect("read target"),
        "root:x:0:0\n"
    );
    assert!(fs::symlink_metadata(&file).expect("link").is_symlink());
}

#[test]
fn an_app_that_is_not_installed_is_refused() {
    let app = Installed::new();
    let refused = app.run(&["config", "nope", "--set", "workers=3"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        format!(
            "error: nope is not installed in {}/applications\nhint: `pyapp-install list` \
             shows the installed apps\n",
            app.root()
        )
    );
}

/// `{config.KEY}` and `{mount}` in a service's command: the unit carries the configuration's
/// values, `config --set` rewrites it, and a secret or unknown key is refused at build time.
#[test]
fn commands_carry_configuration_values_and_config_set_rewrites_their_units() {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "metadata.yaml",
        "--workers, \"{workers}\",",
        "--workers, \"{config.workers}\", --log-level, \"{config.log_level}\", \
         --env, \"HELLO_MOUNT={mount}\",",
    );
    let out = tempfile::tempdir().expect("temp out dir");
    let bundle = build_bundle(project.path(), out.path());
    let root = tempfile::tempdir().expect("temp root");
    let unit = root.path().join("etc/systemd/system/hello-web.service");
    let install = pyapp_install_at(root.path(), &[bundle.to_str().expect("utf-8")]);
    assert!(install.status.success(), "install: {}", stderr(&install));
    let exec = |unit: &Path| {
        fs::read_to_string(unit)
            .expect("the unit")
            .lines()
            .find(|line| line.starts_with("ExecStart="))
            .expect("ExecStart")
            .to_owned()
    };
    let first = exec(&unit);
    assert!(
        first.ends_with(
            r#" "--workers" "2" "--log-level" "info" "--env" "HELLO_MOUNT=" "hello.web:app""#
        ),
        "{first}"
    );
    let set = pyapp_install_at(root.path(), &["config", "hello", "--set", "workers=5"]);
    assert!(set.status.success(), "config --set: {}", stderr(&set));
    let after = exec(&unit);
    assert!(
        after.contains(r#" "--workers" "5" "--log-level" "info" "#),
        "{after}"
    );

    for (command, problem) in [
        (
            "\"{config.secret_key}\"",
            "metadata.yaml: services[0].command: {config.secret_key} is a secret, which a \
             command line would show to every user (put it in the environment with \
             configuration.yaml's environment:)",
        ),
        (
            "\"{config.colour}\"",
            "metadata.yaml: services[0].command: {config.colour} names no field of \
             configuration.yaml (fields: greeting, site_url, workers, log_level, secret_key)",
        ),
    ] {
        let refused = fixture_copy("hello");
        edit(refused.path(), "metadata.yaml", "\"{workers}\"", command);
        let build = pyapp_build(refused.path(), out.path(), &[]);
        assert_eq!(build.status.code(), Some(1), "{}", stderr(&build));
        assert!(stderr(&build).contains(problem), "{}", stderr(&build));
    }
}

/// Under systemd: a change that leaves the units and the environment file as they are
/// (`log_level`, read from the file only) reloads gunicorn (`reload-signal: hup`: the same
/// main process, new workers) after the new configuration passed its check beside the
/// running one; a change of a variable the environment file carries (`greeting`) hands
/// over to a new main process.
#[test]
fn a_change_only_the_file_carries_reloads_and_one_the_environment_carries_hands_over() {
    let sandbox = crate::harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("work dir");
    let bundle = build_bundle(fixture_copy("hello").path(), work.path());
    let out = crate::harness::run_in_sandbox(
        &sandbox,
        work.path(),
        r#"
out=$1 installer=$2 bundle=$3
pid() { systemctl show -P MainPID hello-web.service; }
"$installer" --python /usr/bin/python3 "$bundle" > $out/install.log 2>&1
pid > $out/pid.before
"$installer" config hello --set log_level=debug --json > $out/reload.json 2> $out/reload.log
pid > $out/pid.reloaded
journalctl -u hello-web.service --no-pager | grep -c "Handling signal: hup" > $out/hups
"$installer" config hello --set greeting=Howdy --json > $out/handover.json 2> $out/handover.log
pid > $out/pid.handed-over
curl -s http://127.0.0.1:$(systemctl show -P Listen hello-web.socket | sed 's/.*://; s/ .*//')/ > $out/page
"#,
        [bin("pyapp-install").as_path(), bundle.as_path()],
    );
    let fact = |name: &str| crate::harness::fact(&out, name);
    let json = |name: &str| -> serde_json::Value {
        serde_json::from_str(&fact(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let reload = json("reload.json");
    assert_eq!(
        reload["reloaded"],
        serde_json::json!(["hello-web.service"]),
        "{reload}"
    );
    assert_eq!(reload["restarted"], serde_json::json!([]), "{reload}");
    assert_eq!(
        fact("pid.reloaded"),
        fact("pid.before"),
        "{}",
        fact("reload.log")
    );
    assert_ne!(
        fact("hups"),
        "0",
        "gunicorn got no SIGHUP: {}",
        fact("reload.log")
    );
    assert!(
        fact("reload.log").contains("health check: GET /health on unix:/applications/hello/.pyapp/check/web.sock answered 200")
            && fact("reload.log").contains("reloaded hello-web.service with the new configuration"),
        "{}",
        fact("reload.log")
    );
    let handover = json("handover.json");
    assert_eq!(
        handover["restarted"],
        serde_json::json!(["hello-web.service"]),
        "{handover}"
    );
    assert_eq!(handover["reloaded"], serde_json::json!([]), "{handover}");
    assert_ne!(fact("pid.handed-over"), fact("pid.before"));
    assert!(fact("page").contains("Howdy, world!"), "{}", fact("page"));
}
