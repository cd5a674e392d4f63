//! The app user, ownership and hooks on a real system: `fixtures/hello` is installed into
//! `/applications` inside `systemd-sandbox` (a throwaway container over a copy-on-write
//! view of this machine), where a real system user is created and hooks run as it. The
//! test binary runs itself in the sandbox (`inside_sandbox`), which writes what it saw to
//! a bound results directory; the other tests assert on it. Without root or the sandbox
//! the tests say so and pass without checking anything.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pyapp_bundle::command::Command;
use pyapp_bundle::names::WritableDirName;
use pyapp_cli::find_refusal;
use pyapp_install::app::tree::AppsDir;
use pyapp_install::output::Output;
use pyapp_install::system::app_user::ensure_app_user;
use pyapp_install::system::hooks::{run_hook, HookContext, HookName};
use pyapp_install::system::ownership::{check_release_tree, own_lasting_dirs};

use crate::harness::{bin, build_bundle, fixture_copy, workspace};

/// Set (to the results directory) when the test binary runs inside the sandbox.
const INSIDE: &str = "PYAPP_HOOKS_TEST_RESULTS";

/// A root-only file outside the app's tree that the app user tries to reach by links.
const SECRET: &str = "/root/pyapp-hooks-secret";

/// What the sandbox run saw: facts by name, and its stderr.
struct Run {
    facts: BTreeMap<String, String>,
    stderr: String,
}

enum Outcome {
    Failed(String),
    Ran(Run),
}

static OUTCOME: OnceLock<Outcome> = OnceLock::new();

/// The sandbox run's facts (one run for all the tests).
fn sandbox() -> &'static Run {
    match OUTCOME.get_or_init(run_sandbox) {
        Outcome::Failed(why) => panic!("{why}"),
        Outcome::Ran(run) => run,
    }
}

fn run_sandbox() -> Outcome {
    let tool = crate::harness::sandbox();
    let results = tempfile::Builder::new()
        .prefix("hooks-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("results dir");
    let project = fixture_copy("hello");
    let bundle = build_bundle(project.path(), results.path());
    let output = Process::new(&tool)
        .arg("--")
        .arg(std::env::current_exe().expect("test binary"))
        .args([
            "--ignored",
            "--exact",
            "hooks::inside_sandbox",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(INSIDE, results.path())
        .env("PYAPP_HOOKS_TEST_BUNDLE", &bundle)
        .env("PYAPP_INSTALL_BIN", bin("pyapp-install"))
        .env("SANDBOX_BIND", results.path())
        .current_dir(workspace())
        .output()
        .expect("run systemd-sandbox");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        return Outcome::Failed(format!(
            "the sandboxed run failed ({}):\n{}\n{stderr}",
            output.status,
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    let facts = match fs::read(results.path().join("facts.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).expect("facts.json"),
        Err(err) => return Outcome::Failed(format!("no facts.json ({err}):\n{stderr}")),
    };
    Outcome::Ran(Run { facts, stderr })
}

impl Run {
    fn fact(&self, name: &str) -> &str {
        self.facts
            .get(name)
            .unwrap_or_else(|| panic!("no fact {name:?} in {:#?}", self.facts))
    }
}

#[test]
fn pyapp_creates_a_system_user_without_login() {
    let run = sandbox();
    let passwd = run.fact("passwd");
    let uid = run.fact("uid");
    assert!(
        passwd.starts_with(&format!("hello:x:{uid}:"))
            && passwd.ends_with(":pyapp app hello:/applications/hello/data:/usr/sbin/nologin"),
        "{passwd}"
    );
    assert!(uid.parse::<u32>().unwrap() < 1000, "a system uid: {uid}");
    assert_eq!(run.fact("second ensure"), run.fact("uid"));
}

#[test]
fn a_hook_runs_as_the_app_user_with_only_its_group() {
    let run = sandbox();
    assert_eq!(run.fact("probe-uid"), run.fact("uid"));
    assert_eq!(run.fact("probe-groups"), run.fact("gid"));
}

#[test]
fn a_hook_runs_in_data_with_the_app_environment_only() {
    let run = sandbox();
    assert_eq!(run.fact("probe-cwd"), "/applications/hello/data");
    let env: BTreeMap<&str, &str> = run
        .fact("probe-env")
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let release = run.fact("release");
    let venv = format!("/applications/hello/releases/{release}/venv");
    assert_eq!(env["PYAPP_NAME"], "hello");
    assert_eq!(env["PYAPP_VERSION"], "1.0.0");
    assert_eq!(env["PYAPP_DATA_PATH"], "/applications/hello/data");
    assert_eq!(env["PYAPP_TMP_PATH"], "/applications/hello/tmp");
    assert_eq!(
        env["PYAPP_CONFIG_FILE"],
        "/applications/hello/config/config.yaml"
    );
    assert_eq!(env["VIRTUAL_ENV"], venv);
    assert!(
        env["PATH"].starts_with(&format!("{venv}/bin:")),
        "{}",
        env["PATH"]
    );
    // Nothing of the installer's own environment leaks in (the sandbox run sets INSIDE).
    assert!(!env.contains_key(INSIDE), "{env:?}");
    assert!(!env.contains_key("SANDBOX_BIND"), "{env:?}");
}

#[test]
fn a_hook_has_its_own_session_no_terminal_and_no_new_privileges() {
    let run = sandbox();
    // /proc/PID/stat: pid (comm) state ppid pgrp session tty_nr ...
    let stat = run.fact("probe-stat");
    let fields: Vec<&str> = stat.split(' ').collect();
    assert_eq!(fields[4], fields[0], "process group is its own: {stat}");
    assert_eq!(fields[5], fields[0], "session is its own: {stat}");
    assert_eq!(fields[6], "0", "no controlling terminal: {stat}");
    assert_eq!(run.fact("probe-nnp"), "NoNewPrivs:\t1");
}

#[test]
fn the_app_cannot_write_its_release_but_owns_data() {
    let run = sandbox();
    assert_ne!(
        run.fact("probe-touch-src"),
        "0",
        "touch in current/src succeeded"
    );
    assert_eq!(run.fact("probe-touch-data"), "0");
    assert_eq!(
        run.fact("data owner"),
        format!("{}:{}", run.fact("uid"), run.fact("gid"))
    );
    assert_eq!(run.fact("sessions owner"), run.fact("data owner"));
    assert_eq!(
        run.fact("config owner"),
        format!("0:{} 750", run.fact("gid"))
    );
    assert_eq!(run.fact("release check"), "ok");
}

#[test]
fn the_example_apps_post_install_hook_migrates_its_data() {
    let run = sandbox();
    assert_eq!(run.fact("migrate"), "Ok(Succeeded)");
    assert_eq!(run.fact("schema-version"), "1.0.0\n");
    assert_eq!(run.fact("schema-version owner"), run.fact("uid"));
    assert!(
        run.stderr.contains(
            "hook post-install: hello-migrate: data at /applications/hello/data migrated to 1.0.0"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn hook_output_is_logged_with_a_header_in_an_app_owned_log() {
    let run = sandbox();
    let log = run.fact("hooks.log");
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines[0].starts_with("=== 20"), "{log}");
    assert!(
        lines[0].ends_with(" hook post-install: hello-migrate"),
        "{log}"
    );
    assert_eq!(
        lines[1],
        "hello-migrate: data at /applications/hello/data migrated to 1.0.0"
    );
    assert!(
        lines[2].contains(" hook post-install: exit status 0 after "),
        "{log}"
    );
    assert!(log.contains("\nabout to fail\n"), "{log}");
    assert!(
        log.contains(" hook pre-update: failed (exit status 3) after "),
        "{log}"
    );
    assert_eq!(
        run.fact("hooks.log owner"),
        format!("{}:{} 640", run.fact("uid"), run.fact("gid"))
    );
}

#[test]
fn a_failing_hook_is_a_refusal_naming_it() {
    let run = sandbox();
    assert_eq!(run.fact("fail"), "hook pre-update failed (exit status 3)");
    assert_eq!(run.fact("fail is a refusal"), "true");
    assert!(
        run.stderr.contains("hook pre-update: about to fail"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_program_the_app_user_cannot_run_is_a_refusal() {
    let run = sandbox();
    assert_eq!(
        run.fact("denied"),
        "hook post-install: the app user hello cannot run `/root/pyapp-hooks-denied`: Permission denied (os error 13)"
    );
    assert_eq!(run.fact("denied is a refusal"), "true");
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout_even_if_it_ignores_sigterm() {
    let run = sandbox();
    assert_eq!(run.fact("hang"), "hook post-update timed out after 1 s");
    assert_eq!(run.fact("hang is a refusal"), "true");
    let seconds: f64 = run.fact("hang seconds").parse().unwrap();
    // 1 s of timeout, 5 s of grace after SIGTERM (ignored), then SIGKILL.
    assert!((5.5..20.0).contains(&seconds), "took {seconds} s");
    assert_eq!(run.fact("hang child alive"), "false");
}

#[test]
fn processes_a_hook_leaves_behind_are_killed() {
    let run = sandbox();
    assert_eq!(run.fact("leftover"), "Ok(Succeeded)");
    assert_eq!(run.fact("leftover alive"), "false");
    let seconds: f64 = run.fact("leftover seconds").parse().unwrap();
    assert!(
        seconds < 1.5,
        "waited {seconds} s for the leftover's output"
    );
}

#[test]
fn links_the_app_user_plants_are_refused_and_their_targets_untouched() {
    let run = sandbox();
    assert!(
        run.fact("planted log")
            .contains("hooks.log` is a symbolic link; refusing"),
        "{}",
        run.fact("planted log")
    );
    assert!(
        run.fact("planted sessions")
            .contains("data/sessions` is a symbolic link or not a directory"),
        "{}",
        run.fact("planted sessions")
    );
    assert_eq!(run.fact("secret after"), "0:0 600 secret\n");
    assert_eq!(run.fact("root dir owner"), "0");
}

/// Runs inside the sandbox, as root on a throwaway copy of this machine: installs the
/// example app, makes its user, runs hooks and writes what happened to `facts.json`.
#[test]
#[ignore = "run inside systemd-sandbox by the other tests of this module"]
fn inside_sandbox() {
    let Some(results) = std::env::var_os(INSIDE).map(PathBuf::from) else {
        eprintln!("{INSIDE} is not set: nothing to do outside the sandbox");
        return;
    };
    let mut facts = BTreeMap::new();
    let bundle = std::env::var_os("PYAPP_HOOKS_TEST_BUNDLE").expect("bundle");
    let installer = std::env::var_os("PYAPP_INSTALL_BIN").expect("pyapp-install");
    // The system Python: one under root's home (pyenv) is not reachable by the app user.
    let status = Process::new(installer)
        .args(["--python", "/usr/bin/python3"])
        .arg(bundle)
        .status()
        .expect("install");
    assert!(status.success(), "pyapp-install failed");

    let output = Output::new(pyapp_cli::Level::Normal, false);
    let tree = AppsDir::new(Path::new("/"), Path::new("/applications"))
        .app("hello")
        .unwrap();
    let user = ensure_app_user(Path::new("/"), &tree, None, &output)
        .unwrap()
        .expect("a user on a real system");
    facts.insert("uid", user.uid.to_string());
    facts.insert("gid", user.gid.to_string());
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd.lines().find(|l| l.starts_with("hello:")).unwrap();
    facts.insert("passwd", line.to_owned());
    let again = ensure_app_user(Path::new("/"), &tree, None, &output)
        .unwrap()
        .unwrap();
    facts.insert("second ensure", again.uid.to_string());
    let sessions = [WritableDirName::new("sessions").unwrap()];
    own_lasting_dirs(&tree, &user, &sessions, &[]).unwrap();
    let owner = |p: &Path| {
        let m = fs::symlink_metadata(p).unwrap();
        format!("{}:{}", m.uid(), m.gid())
    };
    let data = tree.lasting_dir("data");
    facts.insert("data owner", owner(&data));
    facts.insert("sessions owner", owner(&data.join("sessions")));
    let config = fs::metadata(tree.lasting_dir("config")).unwrap();
    facts.insert(
        "config owner",
        format!(
            "{}:{} {:o}",
            config.uid(),
            config.gid(),
            config.mode() & 0o7777
        ),
    );

    let release = fs::read_link(tree.current_link()).unwrap();
    let release = release.file_name().unwrap().to_str().unwrap().to_owned();
    facts.insert(
        "release check",
        match check_release_tree(&tree.release_dir(&release)) {
            Ok(()) => "ok".to_owned(),
            Err(err) => format!("{err:#}"),
        },
    );
    facts.insert("release", release.clone());
    let config_file = tree.runtime_dir().join("config/config.yaml");
    let ctx = HookContext::for_release(&tree, Some(&user), "1.0.0", &release, &config_file, 120);
    let hook = |name: HookName, args: &[&str], ctx: &HookContext| {
        let command = Command::from_args(args.iter().map(|a| a.to_string()).collect()).unwrap();
        run_hook(name, &command, ctx, &output)
    };

    let migrate = hook(HookName::PostInstall, &["hello-migrate"], &ctx);
    facts.insert("migrate", format!("{migrate:?}"));
    let schema = data.join("schema-version");
    let read = |path: &Path| fs::read_to_string(path).unwrap_or_else(|err| format!("{err}"));
    facts.insert("schema-version", read(&schema));
    facts.insert(
        "schema-version owner",
        fs::metadata(&schema).map_or(String::new(), |m| m.uid().to_string()),
    );

    let probe = "id -u > probe-uid; id -G > probe-groups; pwd > probe-cwd; env > probe-env; \
                 cat /proc/$$/stat > probe-stat; grep NoNewPrivs /proc/$$/status > probe-nnp; \
                 touch {src}/planted 2> /dev/null; echo $? > probe-touch-src; \
                 touch {data}/planted; echo $? > probe-touch-data";
    hook(HookName::PostUpdate, &["/bin/sh", "-c", probe], &ctx).unwrap();
    for name in [
        "probe-uid",
        "probe-groups",
        "probe-cwd",
        "probe-env",
        "probe-stat",
        "probe-nnp",
        "probe-touch-src",
        "probe-touch-data",
    ] {
        facts.insert(name, read(&data.join(name)).trim_end().to_owned());
    }

    let fail = hook(
        HookName::PreUpdate,
        &["/bin/sh", "-c", "echo about to fail; exit 3"],
        &ctx,
    )
    .unwrap_err();
    facts.insert("fail", fail.to_string());
    facts.insert(
        "fail is a refusal",
        find_refusal(&fail).is_some().to_string(),
    );

    let mut short = ctx.clone();
    short.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let hang = hook(
        HookName::PostUpdate,
        &[
            "/bin/sh",
            "-c",
            "trap '' TERM; sleep 1000 & echo $! > hang-pid; wait",
        ],
        &short,
    )
    .unwrap_err();
    facts.insert("hang seconds", started.elapsed().as_secs_f64().to_string());
    facts.insert("hang", hang.to_string());
    facts.insert(
        "hang is a refusal",
        find_refusal(&hang).is_some().to_string(),
    );
    facts.insert(
        "hang child alive",
        is_alive(&data.join("hang-pid")).to_string(),
    );

    let started = Instant::now();
    let leftover = hook(
        HookName::PostInstall,
        &["/bin/sh", "-c", "sleep 1000 & echo $! > bg-pid"],
        &ctx,
    );
    facts.insert(
        "leftover seconds",
        started.elapsed().as_secs_f64().to_string(),
    );
    facts.insert("leftover", format!("{leftover:?}"));
    facts.insert("leftover alive", is_alive(&data.join("bg-pid")).to_string());

    // A program the app user cannot reach (root's home is 0700).
    let denied = "/root/pyapp-hooks-denied";
    fs::write(denied, "#!/bin/sh\n").unwrap();
    fs::set_permissions(denied, fs::Permissions::from_mode(0o755)).unwrap();
    let denied = hook(HookName::PostInstall, &[denied], &ctx).unwrap_err();
    facts.insert("denied", denied.to_string());
    facts.insert(
        "denied is a refusal",
        find_refusal(&denied).is_some().to_string(),
    );

    let log_path = tree.lasting_dir("log").join("hooks.log");
    facts.insert("hooks.log", fs::read_to_string(&log_path).unwrap());
    let log_meta = fs::symlink_metadata(&log_path).unwrap();
    facts.insert(
        "hooks.log owner",
        format!(
            "{}:{} {:o}",
            log_meta.uid(),
            log_meta.gid(),
            log_meta.mode() & 0o7777
        ),
    );

    // The app user plants links in its own directories; root must not follow them.
    fs::write(SECRET, "secret\n").unwrap();
    fs::set_permissions(SECRET, fs::Permissions::from_mode(0o600)).unwrap();
    let plant = format!(
        "ln -sf {SECRET} {{log}}/hooks.log; rmdir {{data}}/sessions; ln -s /root {{data}}/sessions"
    );
    hook(HookName::PostUpdate, &["/bin/sh", "-c", &plant], &ctx).unwrap();
    let planted = hook(HookName::PostUpdate, &["/bin/true"], &ctx).unwrap_err();
    facts.insert("planted log", planted.to_string());
    let planted = own_lasting_dirs(&tree, &user, &sessions, &[]).unwrap_err();
    facts.insert("planted sessions", planted.to_string());
    let secret = fs::metadata(SECRET).unwrap();
    facts.insert(
        "secret after",
        format!(
            "{}:{} {:o} {}",
            secret.uid(),
            secret.gid(),
            secret.mode() & 0o7777,
            fs::read_to_string(SECRET).unwrap()
        ),
    );
    facts.insert(
        "root dir owner",
        fs::metadata("/root").unwrap().uid().to_string(),
    );

    fs::write(
        results.join("facts.json"),
        serde_json::to_vec_pretty(&facts).unwrap(),
    )
    .unwrap();
}

/// Whether the process whose pid is in `pid_file` still runs (a zombie does not count),
/// allowing a moment for it to be reaped.
fn is_alive(pid_file: &Path) -> bool {
    let pid = fs::read_to_string(pid_file).unwrap();
    let stat = PathBuf::from(format!("/proc/{}/stat", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match fs::read_to_string(&stat) {
            Err(_) => return false,
            Ok(text) if text.split(' ').nth(2) == Some("Z") => return false,
            Ok(_) if Instant::now() >= deadline => return true,
            Ok(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}
