//! The generated systemd units against a real systemd (FORMAT.md 8): the example app's
//! units pass `systemd-analyze verify` with nothing on stderr, run (the web service answers,
//! the task succeeds, the timer loads), score at most 3.0 with `systemd-analyze security`,
//! also in `isolation: chroot`; hostile strings reach the process literally; every
//! `OnCalendar=` passes `systemd-analyze calendar`.
//!
//! systemd runs in `systemd-sandbox` (shared/tools), a throwaway container: these tests
//! need root, `systemd-analyze` and that tool, and say why they skip without them.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use pyapp_bundle::calendar::Schedule;
use pyapp_bundle::command::{Command as AppCommand, PlaceholderValues};
use pyapp_bundle::metadata::{Isolation, Metadata, Task};
use pyapp_bundle::names::UnitName;
use pyapp_bundle::reader::{Bundle, Limits};
use pyapp_install::app::env::AppEnvironment;
use pyapp_install::app::tree::AppsDir;
use pyapp_install::system::units::{self, UnitContext, UnitFile};
use pyapp_venv::interpreter::Interpreter;

use crate::harness;

/// The highest `systemd-analyze security` exposure the example's web service may have.
const MAX_EXPOSURE: f64 = 3.0;

/// The port the example's web service gets in the sandbox (its network is private).
const PORT: u16 = 8000;

/// The example's metadata.yaml as pyapp-build wrote it into the bundle.
fn bundle_metadata(bundle: &Path) -> Metadata {
    let mut bundle = Bundle::open(bundle, &Limits::default()).unwrap();
    let bytes = bundle.read_small("metadata.yaml", 1 << 20).unwrap();
    Metadata::parse(&String::from_utf8(bytes).unwrap(), "metadata.yaml").unwrap()
}

/// The units pyapp-install generates for `metadata` installed at `/applications`.
fn generate(
    metadata: &Metadata,
    python: &Path,
    environment: Option<AppEnvironment>,
) -> Vec<UnitFile> {
    let apps = AppsDir::new(Path::new("/"), Path::new("/applications"));
    let tree = apps.app(metadata.name.as_str()).unwrap();
    let config = tree.runtime_dir().join("config/config.yaml");
    let environment = environment.unwrap_or_else(|| {
        AppEnvironment::new(
            &tree,
            &metadata.version.to_string(),
            &tree.runtime_dir().join("current/venv"),
            &config,
        )
    });
    let ports = BTreeMap::from([("web".to_owned(), PORT)]);
    let context = UnitContext {
        tree: &tree,
        user: "hello",
        group: "hello",
        config_file: &config,
        environment: &environment,
        ports: &ports,
        environment_file: Some(Path::new("/applications/hello/.pyapp/environment")),
        python,
        app_values: &PlaceholderValues::new(),
    };
    units::generate(metadata, &context).unwrap()
}

fn write_units(dir: &Path, units: &[UnitFile]) {
    std::fs::create_dir_all(dir).unwrap();
    for unit in units {
        std::fs::write(dir.join(&unit.name), &unit.text).unwrap();
    }
}

/// A task whose command and description carry every unit-file injection attempt; its
/// program dumps the arguments and `PYAPP_VERSION` it received into data/inject.json.
fn hostile_task() -> Task {
    let dump = "import json, os, sys; open(os.environ['PYAPP_DATA_PATH'] + '/inject.json', 'w')\
                .write(json.dumps(dict(argv=sys.argv[1:], version=os.environ['PYAPP_VERSION'])))";
    let args = [
        "python3",
        "-c",
        dump,
        "$HOME",
        "${{PATH}}",
        "%n",
        "%%",
        ";",
        "a ; b",
        "back\\",
        "q\"uote",
        "it's",
        "\\;",
        "{data}",
        "{{literal}}",
    ];
    Task {
        name: UnitName::new("inject").unwrap(),
        description: Some("100% %n $HOME ; \"q\" \\o/ ExecStartPre=/bin/false".to_owned()),
        schedule: Schedule::new("hourly").unwrap(),
        command: AppCommand::from_args(args.map(String::from).to_vec()).unwrap(),
    }
}

/// What the hostile task's process must have received.
const HOSTILE_ARGV: &str = r#"["$HOME", "${PATH}", "%n", "%%", ";", "a ; b", "back\\", "q\"uote", "it's", "\\;", "/applications/hello/data", "{literal}"]"#;
const HOSTILE_VERSION: &str = "1.0.0 \"x\" %n $HOME back\\";

/// Runs in the sandbox: install the bundle, then for each variant of the units (plain,
/// chroot) verify, start, probe and score them; then the hostile task.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; PY=$3; BUNDLE=$4; CHROOT_BUNDLE=$5
A=/applications/hello
# pyapp-install makes the user, the config and the owners, and starts its own units: stop
# them, and run each variant of the units generated here instead.
install() {
  "$INSTALL" --python "$PY" "$1" >> $OUT/install.log 2>&1 || { echo "install of $1 failed" >> $OUT/install.log; exit 3; }
  systemctl stop hello-web.service hello-cleanup.timer
}
install "$BUNDLE"
fetch() {
  python3 - "$1" <<'PY'
import sys, time, urllib.request
for _ in range(150):
    try:
        print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode()); break
    except Exception as error:
        last = error; time.sleep(0.1)
else:
    print("unreachable:", last)
PY
}
variant() {
  V=$1
  cp $OUT/units/$V/* /etc/systemd/system/
  systemctl daemon-reload
  (cd /etc/systemd/system && systemd-analyze verify $(ls $OUT/units/$V)) > $OUT/$V.verify.out 2> $OUT/$V.verify.err
  echo $? > $OUT/$V.verify.rc
  systemctl start hello-web.service
  fetch http://127.0.0.1:PORT/health > $OUT/$V.health
  fetch http://127.0.0.1:PORT/ > $OUT/$V.index
  # /etc/shadow as the service sees it: there on the host, absent in the chroot.
  test -e /proc/$(systemctl show -p MainPID --value hello-web.service)/root/etc/shadow && echo shadow-visible > $OUT/$V.root || echo shadow-absent > $OUT/$V.root
  systemd-analyze security --no-pager hello-web.service > $OUT/$V.security 2>&1
  systemctl start hello-cleanup.service; echo $? > $OUT/$V.cleanup.rc
  systemctl enable --now hello-cleanup.timer > /dev/null 2>&1
  systemctl is-active hello-cleanup.timer > $OUT/$V.timer
  systemctl disable --now hello-cleanup.timer > /dev/null 2>&1
  systemctl stop hello-web.service
  journalctl --no-pager -u hello-web.service -u hello-cleanup.service > $OUT/$V.journal
}
variant plain
# The chroot's units see the release, not the store: its venv must be one installed for them.
install "$CHROOT_BUNDLE"
variant chroot
cp $OUT/units/inject/hello-inject.service /etc/systemd/system/
systemctl daemon-reload
(cd /etc/systemd/system && systemd-analyze verify hello-inject.service) > $OUT/inject.verify.out 2> $OUT/inject.verify.err
systemctl start hello-inject.service; echo $? > $OUT/inject.rc
cp $A/data/inject.json $OUT/inject.json
systemctl show -p Description --value hello-inject.service > $OUT/inject.description
journalctl --no-pager -u hello-inject.service > $OUT/inject.journal
"#;

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// The score in `→ Overall exposure level for UNIT: 1.1 OK 🙂`.
pub(crate) fn exposure(security: &str) -> f64 {
    let line = security
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    let after = line.rsplit_once(": ").unwrap().1;
    after.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn generated_units_verify_run_and_score_under_a_real_systemd() {
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let project = harness::fixture_copy("hello");
    let bundle = harness::build_bundle(project.path(), work.path());
    let metadata = bundle_metadata(&bundle);
    let metadata_file = project.path().join("metadata.yaml");
    let mut text = std::fs::read_to_string(&metadata_file).unwrap();
    text.push_str("isolation: chroot\n");
    std::fs::write(&metadata_file, text).unwrap();
    let chroot_dir = work.path().join("chroot");
    std::fs::create_dir(&chroot_dir).unwrap();
    let chroot_bundle = harness::build_bundle(project.path(), &chroot_dir);
    let chrooted = bundle_metadata(&chroot_bundle);
    assert_eq!(chrooted.isolation, Isolation::Chroot);
    // Debian's interpreter: the app user must reach it to run the post-install hook
    // (pyenv's, under root's 0700 home, is reachable only through the units' binds).
    let python = Interpreter::find(
        Some(Path::new("/usr/bin/python3")),
        &metadata.requires_python,
    )
    .unwrap();
    let base = &python.base_executable;

    let plain = generate(&metadata, base, None);
    write_units(&work.path().join("units/plain"), &plain);
    write_units(
        &work.path().join("units/chroot"),
        &generate(&chrooted, base, None),
    );
    let mut hostile = metadata.clone();
    hostile.tasks = vec![hostile_task()];
    let apps = AppsDir::new(Path::new("/"), Path::new("/applications"));
    let tree = apps.app("hello").unwrap();
    let mut environment = AppEnvironment::new(
        &tree,
        "1.0.0",
        Path::new("/applications/hello/current/venv"),
        Path::new("/applications/hello/config/config.yaml"),
    );
    environment.set("PYAPP_VERSION", HOSTILE_VERSION);
    let inject: Vec<UnitFile> = generate(&hostile, base, Some(environment))
        .into_iter()
        .filter(|unit| unit.name == "hello-inject.service")
        .collect();
    write_units(&work.path().join("units/inject"), &inject);

    // Every OnCalendar= as systemd reads it (specifiers resolved) is a valid calendar.
    for timer in plain.iter().filter(|unit| unit.name.ends_with(".timer")) {
        let value = timer
            .text
            .lines()
            .find_map(|line| line.strip_prefix("OnCalendar="))
            .unwrap()
            .replace("%%", "%");
        let output = Command::new("systemd-analyze")
            .args(["calendar", &value])
            .output()
            .unwrap();
        assert!(
            output.status.success() && output.stderr.is_empty(),
            "{}: systemd-analyze calendar {value:?}: {}",
            timer.name,
            harness::stderr(&output)
        );
    }

    let script = work.path().join("script.sh");
    std::fs::write(&script, SCRIPT.replace("PORT", &PORT.to_string())).unwrap();
    let run = Command::new(sandbox)
        .arg("--")
        .arg("bash")
        .arg(&script)
        .arg(work.path())
        .arg(harness::bin("pyapp-install"))
        .arg(base)
        .arg(&bundle)
        .arg(&chroot_bundle)
        .env("SANDBOX_BIND", work.path())
        .output()
        .unwrap();
    let out = work.path();
    assert!(
        run.status.success(),
        "sandbox run failed ({}): {}\n{}",
        run.status,
        harness::stderr(&run),
        std::fs::read_to_string(out.join("install.log")).unwrap_or_default()
    );

    // The chroot sees the same data/ (a bind): its visit is the second.
    for (variant, visit) in [("plain", 1), ("chroot", 2)] {
        let journal = read(out, &format!("{variant}.journal"));
        assert_eq!(
            read(out, &format!("{variant}.verify.err")),
            "",
            "{variant}: systemd-analyze verify wrote to stderr"
        );
        assert_eq!(read(out, &format!("{variant}.verify.rc")).trim(), "0");
        assert!(
            read(out, &format!("{variant}.health")).contains("\"status\":\"ok\""),
            "{variant}: /health did not answer:\n{journal}"
        );
        // The page reads the config file and writes its counter into data/.
        let index = read(out, &format!("{variant}.index"));
        assert!(index.contains(", world!"), "{variant}: {index}\n{journal}");
        assert!(
            index.contains(&format!("visit {visit}<")),
            "{variant}: {index}\n{journal}"
        );
        assert_eq!(
            read(out, &format!("{variant}.cleanup.rc")).trim(),
            "0",
            "{journal}"
        );
        assert_eq!(read(out, &format!("{variant}.timer")).trim(), "active");
        let score = exposure(&read(out, &format!("{variant}.security")));
        eprintln!("systemd-analyze security hello-web.service ({variant}): {score}");
        assert!(
            score <= MAX_EXPOSURE,
            "{variant}: exposure {score} > {MAX_EXPOSURE}"
        );
    }
    assert_eq!(read(out, "plain.root").trim(), "shadow-visible");
    assert_eq!(read(out, "chroot.root").trim(), "shadow-absent");

    let journal = read(out, "inject.journal");
    assert_eq!(read(out, "inject.verify.err"), "");
    assert_eq!(read(out, "inject.rc").trim(), "0", "{journal}");
    let received: serde_json::Value = serde_json::from_str(&read(out, "inject.json")).unwrap();
    let expected: serde_json::Value = serde_json::from_str(HOSTILE_ARGV).unwrap();
    assert_eq!(received["argv"], expected);
    assert_eq!(received["version"], HOSTILE_VERSION);
    assert_eq!(
        read(out, "inject.description").trim_end_matches('\n'),
        "100% %n $HOME ; \"q\" \\o/ ExecStartPre=/bin/false"
    );
}

/// Set inside the sandbox when this test binary runs itself there.
const IN_SANDBOX: &str = "PYAPP_UNITS_TEST_IN_SANDBOX";

/// metadata.yaml of a small app whose services just sleep.
fn demo_metadata(services: &[&str]) -> Metadata {
    let mut text = String::from(
        "format: 1\nname: demo\nversion: 1.0.0\nrequires-python: \">=3.9\"\nmodule: demo\n\
         source-commit: null\nbuilt-by: test\napp-wheel: demo-1.0.0-py3-none-any.whl\n\
         dependencies:\n  - {name: demo, version: 1.0.0, wheel: demo-1.0.0-py3-none-any.whl, \
         sha256: 0000000000000000000000000000000000000000000000000000000000000000, mode: local}\n\
         tasks:\n  - {name: tick, schedule: hourly, command: /usr/bin/true}\nservices:\n",
    );
    for name in services {
        text.push_str(&format!(
            "  - {{name: {name}, command: [/usr/bin/sleep, infinity]}}\n"
        ));
    }
    Metadata::parse(&text, "metadata.yaml").unwrap()
}

fn demo_units(services: &[&str]) -> Vec<UnitFile> {
    let apps = AppsDir::new(Path::new("/"), Path::new("/applications"));
    let tree = apps.app("demo").unwrap();
    let config = tree.runtime_dir().join("config/config.yaml");
    let venv = tree.runtime_dir().join("current/venv");
    let environment = AppEnvironment::new(&tree, "1.0.0", &venv, &config);
    let ports = BTreeMap::new();
    let context = UnitContext {
        tree: &tree,
        user: "demo",
        group: "demo",
        config_file: &config,
        environment: &environment,
        ports: &ports,
        environment_file: None,
        python: Path::new("/usr/bin/python3"),
        app_values: &PlaceholderValues::new(),
    };
    units::generate(&demo_metadata(services), &context).unwrap()
}

fn enabled(units: &[UnitFile]) -> Vec<String> {
    units
        .iter()
        .filter(|unit| unit.is_enabled())
        .map(|unit| unit.name.clone())
        .collect()
}

/// `Systemd` against a running systemd: this test runs itself inside the sandbox and
/// installs, upgrades (a service dropped) and removes a small app's units there.
#[test]
fn systemd_registers_upgrades_and_removes_units() {
    if std::env::var_os(IN_SANDBOX).is_none() {
        let sandbox = harness::sandbox();
        let run = Command::new(sandbox)
            .arg("--")
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "units::systemd_registers_upgrades_and_removes_units",
                "--nocapture",
            ])
            .env(IN_SANDBOX, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(
            run.status.success() && stdout.contains("1 passed"),
            "in the sandbox:\n{stdout}\n{}",
            harness::stderr(&run)
        );
        return;
    }

    use pyapp_install::system::systemd::Systemd;
    let useradd = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            "demo",
        ])
        .status()
        .unwrap();
    assert!(useradd.success());
    for dir in ["data", "tmp", "run", "log", "config"] {
        std::fs::create_dir_all(Path::new("/applications/demo").join(dir)).unwrap();
    }
    let systemd = Systemd::detect(Path::new("/"));
    assert!(systemd.is_running());
    assert_eq!(systemd.manual_steps(&demo_units(&["a"])), None);

    // The system's units keep their names: an app `apt` cannot replace Debian's
    // apt-daily.timer (security updates), nor an app any unit the system has.
    use pyapp_install::system::systemd::MARKER_PREFIX;
    let ours = |app: &str, name: &str, body: &str| UnitFile {
        name: name.to_owned(),
        text: format!("{MARKER_PREFIX}{app}\n{body}"),
    };
    let apt_daily = ours("apt", "apt-daily.timer", "[Timer]\nOnCalendar=yearly\n");
    let refused = systemd.write_units("apt", &[apt_daily]).unwrap_err();
    assert!(refused.to_string().contains("are reserved"), "{refused}");
    let vendor = Path::new("/usr/local/lib/systemd/system/demo-vendor.service");
    std::fs::create_dir_all(vendor.parent().unwrap()).unwrap();
    std::fs::write(vendor, "[Service]\nExecStart=/usr/bin/true\n").unwrap();
    let shadow = ours(
        "demo",
        "demo-vendor.service",
        "[Service]\nExecStart=/usr/bin/false\n",
    );
    let refused = systemd.write_units("demo", &[shadow]).unwrap_err();
    assert!(
        refused
            .to_string()
            .starts_with("`/usr/local/lib/systemd/system/demo-vendor.service` exists: "),
        "{refused}"
    );
    systemd.daemon_reload().unwrap();
    let names = [
        "apt-daily.timer".to_owned(),
        "demo-vendor.service".to_owned(),
    ];
    let shown = systemd
        .show(&names, &["Id", "FragmentPath"])
        .unwrap()
        .unwrap();
    assert!(
        shown["apt-daily.timer"]["FragmentPath"].ends_with("lib/systemd/system/apt-daily.timer"),
        "{shown:?}"
    );
    assert_eq!(
        shown["demo-vendor.service"]["FragmentPath"],
        vendor.display().to_string()
    );
    std::fs::remove_file(vendor).unwrap();

    // Install: write, reload, enable --now.
    let v1 = demo_units(&["a", "b"]);
    let changes = systemd.write_units("demo", &v1).unwrap();
    assert_eq!(changes.written.len(), 4);
    systemd.daemon_reload().unwrap();
    systemd.enable_now(&enabled(&v1)).unwrap();
    for unit in ["demo-a.service", "demo-b.service", "demo-tick.timer"] {
        assert!(systemd.is_active(unit).unwrap(), "{unit} is not active");
    }

    // Upgrade without b: stop the installed units, write, reload, enable --now.
    let installed = systemd.installed_units("demo").unwrap();
    assert_eq!(
        installed,
        [
            "demo-a.service",
            "demo-b.service",
            "demo-tick.service",
            "demo-tick.timer"
        ]
    );
    systemd.stop(&installed).unwrap();
    assert!(!systemd.is_active("demo-a.service").unwrap());
    let v2 = demo_units(&["a"]);
    let changes = systemd.write_units("demo", &v2).unwrap();
    assert_eq!(changes.removed, ["demo-b.service"]);
    systemd.daemon_reload().unwrap();
    systemd.enable_now(&enabled(&v2)).unwrap();
    assert!(systemd.is_active("demo-a.service").unwrap());
    assert!(!systemd.is_active("demo-b.service").unwrap());
    assert!(!Path::new("/etc/systemd/system/multi-user.target.wants/demo-b.service").exists());
    systemd.try_restart(&["demo-a.service".to_owned()]).unwrap();

    // systemctl's own words reach the user.
    let error = systemd
        .stop(&["demo-nothing.service".to_owned()])
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("`systemctl stop demo-nothing.service` failed (exit status: 5): ")
            && error.contains("demo-nothing.service not loaded"),
        "{error}"
    );

    // Remove: disable --now, delete, reload.
    let installed = systemd.installed_units("demo").unwrap();
    systemd.disable_now(&enabled(&v2)).unwrap();
    systemd.stop(&installed).unwrap();
    assert_eq!(systemd.remove_units("demo").unwrap(), installed);
    systemd.daemon_reload().unwrap();
    assert!(!systemd.is_active("demo-a.service").unwrap());
    assert!(systemd.installed_units("demo").unwrap().is_empty());
}
