//! pyapp-install end to end: install `fixtures/hello` into a scratch `--root`, run its
//! console script, install again (a no-op), upgrade, roll back, remove; bad bundles and a
//! held lock are refused with exit status 1 and leave the tree exactly as it was.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::harness::{
    bin, build_bundle, edit, hello_at_version, listing, pyapp_install_at, stderr,
};

/// A scratch filesystem root and the bundles built for it.
struct Scratch {
    root: TempDir,
    out: TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            root: tempfile::tempdir().expect("temp root"),
            out: tempfile::tempdir().expect("temp out dir"),
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    /// `ROOT/applications/hello`.
    fn app(&self) -> PathBuf {
        self.root().join("applications/hello")
    }

    /// Builds `fixtures/hello` at `version` (the fixture's own is 1.0.0), with `tweak`
    /// applied to the project copy first.
    fn bundle(&self, version: &str, tweak: impl FnOnce(&Path)) -> PathBuf {
        let project = hello_at_version(version);
        tweak(project.path());
        let out = self.out.path().join(version);
        fs::create_dir_all(&out).expect("mkdir out");
        build_bundle(project.path(), &out)
    }

    /// Runs `pyapp-install --root ROOT ARGS...`.
    fn install(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pyapp-install")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("pyapp-install"));
        command.arg("--root").arg(self.root()).args(args);
        command
    }

    /// Runs an install that must succeed and returns its `--json` report.
    fn install_json(&self, bundle: &Path) -> serde_json::Value {
        let output = self.install(&["--json", path_str(bundle)]);
        assert!(
            output.status.success(),
            "install failed: {}",
            stderr(&output)
        );
        serde_json::from_slice(&output.stdout).expect("install --json prints JSON")
    }

    /// The release `current` points at, e.g. `releases/1.0.0-0123456789ab`.
    fn current(&self) -> PathBuf {
        fs::read_link(self.app().join("current")).expect("current is a link")
    }

    /// Runs a program of the current release's venv with the config file set. Under
    /// `--root` the scripts' shebangs name the run-time path (`/applications/...`, like
    /// DESTDIR), so from the host they are started through the venv's python.
    fn run_venv(&self, program: &str, args: &[&str], config: &Path) -> Output {
        let bin = self.app().join("current/venv/bin");
        let mut command = Command::new(bin.join("python"));
        if program != "python" {
            let script = bin.join(program);
            let text = fs::read_to_string(&script).expect("read a venv script");
            let release = self.current();
            let expected = format!(
                "#!/applications/hello/{}/venv/bin/python\n",
                release.display()
            );
            assert!(
                text.starts_with(&expected),
                "{program} starts with {:?}",
                text.lines().next()
            );
            command.arg(script);
        }
        command
            .args(args)
            .env("PYAPP_CONFIG_FILE", config)
            .env("PYAPP_DATA_PATH", self.app().join("data"))
            .output()
            .expect("run a venv program")
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn install_run_reinstall_upgrade_rollback_remove() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});

    let report = scratch.install_json(&v1);
    assert_eq!(report["action"], "installed");
    assert_eq!(report["app"], "hello");
    assert_eq!(report["version"], "1.0.0");
    let v1_release = report["release"].as_str().expect("release").to_owned();
    assert!(v1_release.starts_with("1.0.0-") && v1_release.len() == "1.0.0-".len() + 12);
    assert_eq!(scratch.current(), Path::new("releases").join(&v1_release));
    for dir in [
        "config",
        "data",
        "tmp",
        "run",
        "log",
        "data/sessions",
        "current/src",
    ] {
        assert!(scratch.app().join(dir).is_dir(), "{dir} is missing");
    }

    // The console script and the package work, reading the config file pyapp points at.
    // pyapp-install wrote the config from the spec's defaults (a generated secret
    // included); the user changes a value the way the README says.
    let config = scratch.app().join("config/config.yaml");
    let written = fs::read_to_string(&config).expect("install wrote config/config.yaml");
    assert!(written.contains("greeting: Hello"), "{written}");
    let set = scratch.install(&["config", "hello", "--set", "greeting=Howdy"]);
    assert!(set.status.success(), "{}", stderr(&set));
    let greeted = scratch.run_venv("hello", &["pyapp"], &config);
    assert!(
        greeted.status.success(),
        "hello failed: {}",
        stderr(&greeted)
    );
    assert_eq!(stdout(&greeted), "Howdy, pyapp!\n");
    let imported = scratch.run_venv(
        "python",
        &["-c", "import hello; print(hello.__version__)"],
        &config,
    );
    assert!(
        imported.status.success(),
        "import hello failed: {}",
        stderr(&imported)
    );
    assert_eq!(stdout(&imported), "1.0.0\n");

    // The same bundle again changes nothing.
    let before = listing(scratch.root());
    let again = scratch.install(&[path_str(&v1)]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stderr(&again).contains("unchanged"), "{}", stderr(&again));
    assert_eq!(scratch.install_json(&v1)["action"], "unchanged");
    // So is a copy: another file, the same content digest (verified whole first).
    let copy = v1.with_file_name("copied-hello-1.0.0.pyapp");
    fs::copy(&v1, &copy).expect("copy the bundle");
    assert_eq!(scratch.install_json(&copy)["action"], "unchanged");
    assert_eq!(listing(scratch.root()), before);

    // An upgrade keeps config/ and data/ byte for byte.
    fs::write(scratch.app().join("data/visits.txt"), "41").expect("write data");
    fs::write(scratch.app().join("data/sessions/abc"), "session").expect("write session");
    let kept_config = listing(&scratch.app().join("config"));
    let kept_data = listing(&scratch.app().join("data"));
    let v2 = scratch.bundle("1.1.0", |_| {});
    let report = scratch.install_json(&v2);
    assert_eq!(report["action"], "upgraded");
    assert_eq!(report["version"], "1.1.0");
    let v2_release = report["release"].as_str().expect("release").to_owned();
    assert_eq!(scratch.current(), Path::new("releases").join(&v2_release));
    assert_eq!(listing(&scratch.app().join("config")), kept_config);
    assert_eq!(listing(&scratch.app().join("data")), kept_data);
    let version = scratch.run_venv("hello", &["--version"], &config);
    assert_eq!(stdout(&version), "hello 1.1.0\n", "{}", stderr(&version));

    // list --json shows both releases, the new one current.
    let list = scratch.install(&["list", "--json"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let list: serde_json::Value =
        serde_json::from_slice(&list.stdout).expect("list --json prints JSON");
    let app = &list["apps"][0];
    assert_eq!(app["name"], "hello");
    assert_eq!(app["version"], "1.1.0");
    assert_eq!(app["release"], v2_release.as_str());
    let content = app["content-sha256"].as_str().expect("content-sha256");
    assert_eq!(content.len(), 64, "{content}");
    assert!(
        v2_release.ends_with(&content[..12]),
        "{v2_release} {content}"
    );
    assert!(app.get("bundle-sha256").is_none(), "{app}");
    let releases: Vec<(&str, bool)> = app["releases"]
        .as_array()
        .expect("releases")
        .iter()
        .map(|r| {
            (
                r["release"].as_str().expect("name"),
                r["current"].as_bool().expect("current"),
            )
        })
        .collect();
    assert_eq!(
        releases,
        [(v1_release.as_str(), false), (v2_release.as_str(), true)]
    );

    // Rollback returns to 1.0.0; a second one has nowhere to go.
    let rollback = scratch.install(&["rollback", "hello"]);
    assert!(rollback.status.success(), "{}", stderr(&rollback));
    assert_eq!(scratch.current(), Path::new("releases").join(&v1_release));
    let version = scratch.run_venv("hello", &["--version"], &config);
    assert_eq!(stdout(&version), "hello 1.0.0\n");
    let nowhere = scratch.install(&["rollback", "hello"]);
    assert_eq!(nowhere.status.code(), Some(1), "{}", stderr(&nowhere));
    assert!(
        stderr(&nowhere).starts_with("error: hello has no release older than"),
        "{}",
        stderr(&nowhere)
    );
    // Installing 1.1.0 again returns to its release without rebuilding it.
    assert_eq!(scratch.install_json(&v2)["release"], v2_release.as_str());
    assert_eq!(scratch.current(), Path::new("releases").join(&v2_release));

    // remove keeps config/ and data/; --purge takes the rest.
    let remove = scratch.install(&["remove", "hello"]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert!(!scratch.app().join("current").exists() && !scratch.app().join("releases").exists());
    assert_eq!(listing(&scratch.app().join("config")), kept_config);
    assert_eq!(listing(&scratch.app().join("data")), kept_data);
    let list = scratch.install(&["list", "--json"]);
    assert_eq!(stdout(&list).trim(), r#"{"apps":[]}"#);
    let purge = scratch.install(&["remove", "--purge", "hello"]);
    assert!(purge.status.success(), "{}", stderr(&purge));
    assert!(!scratch.app().exists());
}

/// A copy of `bundle` with `replace` applied to the content of the entry `name` (the
/// manifest is copied as it is, so the entry's sha256 no longer matches).
fn tamper(bundle: &Path, name: &str, replace: impl Fn(&mut Vec<u8>), out: &Path) {
    let mut archive =
        zip::ZipArchive::new(File::open(bundle).expect("open bundle")).expect("read bundle");
    let mut writer = zip::ZipWriter::new(File::create(out).expect("create tampered bundle"));
    let mut found = false;
    for index in 0..archive.len() {
        let mut entry = archive.by_index(index).expect("entry");
        let entry_name = entry.name().expect("entry name").into_owned();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).expect("read entry");
        if entry_name == name {
            replace(&mut bytes);
            found = true;
        }
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(entry.compression())
            .last_modified_time(entry.last_modified().unwrap_or_default())
            .unix_permissions(entry.unix_mode().unwrap_or(0o644));
        writer.start_file(entry_name, options).expect("start entry");
        writer.write_all(&bytes).expect("write entry");
    }
    writer.finish().expect("finish tampered bundle");
    assert!(found, "{name} is not in the bundle");
}

#[test]
fn bad_bundles_are_refused_and_change_nothing() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    let bad = scratch.out.path().join("bad");
    fs::create_dir_all(&bad).expect("mkdir");

    let flipped = bad.join("flipped.pyapp");
    tamper(
        &v1,
        "src/src/hello/cli.py",
        |bytes| bytes[10] ^= 0x20,
        &flipped,
    );
    let truncated = bad.join("truncated.pyapp");
    let bytes = fs::read(&v1).expect("read bundle");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).expect("write truncated");
    let not_zip = bad.join("not-a-zip.pyapp");
    fs::write(&not_zip, "this is not a zip archive\n").expect("write not a zip");
    let missing = bad.join("missing.pyapp");

    // Into an empty root, and over an installed release.
    for installed in [false, true] {
        if installed {
            scratch.install_json(&v1);
        }
        let before = listing(scratch.root());
        for bundle in [&flipped, &truncated, &not_zip, &missing] {
            let output = scratch.install(&[path_str(bundle)]);
            let message = stderr(&output);
            assert_eq!(
                output.status.code(),
                Some(1),
                "{}: {message}",
                bundle.display()
            );
            assert!(message.starts_with("error: "), "{message}");
            assert_eq!(
                message.lines().filter(|l| l.starts_with("error: ")).count(),
                1,
                "{message}"
            );
            assert_eq!(
                listing(scratch.root()),
                before,
                "{} changed the tree",
                bundle.display()
            );
        }
    }
}

/// A wheel the store already holds is linked, not read, and its sha256 is checked beside
/// the install (FORMAT.md 6.1.1): a bundle whose copy of it is not what its manifest says
/// is refused all the same, as a copy of the installed bundle, as an upgrade (its release
/// built, then thrown away) and in a dry run.
#[test]
fn a_wheel_the_store_holds_is_checked_before_anything_relies_on_it() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    let v2 = scratch.bundle("1.1.0", |_| {});
    scratch.install_json(&v1);
    // A dependency whose entry the store has (its directory is named by its sha256).
    let store = scratch.root().join("applications/.store/wheels");
    let mut archive = zip::ZipArchive::new(File::open(&v1).expect("open")).expect("zip");
    let wheel = (0..archive.len())
        .find_map(|index| {
            let mut entry = archive.by_index(index).expect("entry");
            let name = entry.name().expect("a UTF-8 name").into_owned();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read");
            let sha256 = hex::encode(Sha256::digest(&bytes));
            let shared = name.starts_with("deps/hello-") || !name.starts_with("deps/");
            (!shared && store.join(sha256).is_dir()).then_some(name)
        })
        .expect("a dependency the store holds");
    let flip = |bytes: &mut Vec<u8>| {
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
    };
    let bad = scratch.out.path().join("bad");
    fs::create_dir_all(&bad).expect("mkdir");
    let (copy, upgrade) = (bad.join("hello-1.0.0.pyapp"), bad.join("hello-1.1.0.pyapp"));
    tamper(&v1, &wheel, flip, &copy);
    tamper(&v2, &wheel, flip, &upgrade);
    let before = listing(scratch.root());
    for args in [
        vec![path_str(&copy)],
        vec![path_str(&upgrade)],
        vec!["--dry-run", path_str(&upgrade)],
    ] {
        let output = scratch.install(&args);
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {message}");
        let refused = format!("entry {wheel:?} fails its sha256 check");
        assert!(
            message
                .lines()
                .any(|line| line.starts_with("error: refusing the bundle: ")
                    && line.contains(&refused)),
            "{args:?}: {message}"
        );
        assert_eq!(listing(scratch.root()), before, "{args:?} changed the tree");
    }
    assert!(scratch.current().to_string_lossy().contains("1.0.0-"));
}

#[test]
fn a_held_lock_fails_fast_naming_the_holder_and_wait_queues() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    scratch.install_json(&v1);
    let v2 = scratch.bundle("1.1.0", |_| {});

    // This test plays the other pyapp-install: it holds the lock and says who it is.
    let mut lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(scratch.app().join(".pyapp/lock"))
        .expect("open the lock file");
    lock.lock().expect("take the lock");
    lock.set_len(0).expect("truncate");
    writeln!(lock, "4242").expect("write pid");

    let refused = scratch.install(&[path_str(&v2)]);
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("hello is locked by process 4242"),
        "{}",
        stderr(&refused)
    );
    assert!(stderr(&refused).contains("hint: "), "{}", stderr(&refused));
    assert!(scratch.current().to_string_lossy().contains("1.0.0-"));

    let mut waiting = scratch
        .command(&["--quiet", "--wait", path_str(&v2)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start a waiting install");
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        waiting.try_wait().expect("poll").is_none(),
        "--wait did not wait for the lock"
    );
    drop(lock);
    let waited = waiting.wait_with_output().expect("wait for install");
    assert!(waited.status.success(), "{}", stderr(&waited));
    assert!(scratch.current().to_string_lossy().contains("1.1.0-"));
}

#[test]
fn dry_run_writes_nothing_and_leftovers_of_a_killed_run_are_removed() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    let dry = scratch.install(&["--dry-run", path_str(&v1)]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert!(
        stderr(&dry).contains("would install hello 1.0.0"),
        "{}",
        stderr(&dry)
    );
    assert!(
        fs::read_dir(scratch.root())
            .expect("list root")
            .next()
            .is_none(),
        "--dry-run wrote something"
    );

    scratch.install_json(&v1);
    // What a SIGKILL in the middle of staging leaves behind.
    let stale = scratch
        .app()
        .join("releases/.staging-1.1.0-0123456789ab-99999");
    fs::create_dir_all(stale.join("venv/lib")).expect("plant a stale staging dir");
    let v2 = scratch.bundle("1.1.0", |_| {});
    assert_eq!(scratch.install_json(&v2)["action"], "upgraded");
    assert!(!stale.exists(), "the stale staging dir is still there");
}

#[test]
fn old_releases_are_pruned_to_keep_releases() {
    let scratch = Scratch::new();
    let keep_two = |project: &Path| {
        edit(
            project,
            "metadata.yaml",
            "keep-releases: 3",
            "keep-releases: 2",
        )
    };
    let mut releases = Vec::new();
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        let bundle = scratch.bundle(version, keep_two);
        releases.push(
            scratch.install_json(&bundle)["release"]
                .as_str()
                .expect("release")
                .to_owned(),
        );
    }
    let on_disk: Vec<String> = fs::read_dir(scratch.app().join("releases"))
        .expect("list releases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(on_disk, releases[1..]);
}

#[test]
fn a_link_planted_in_the_app_tree_is_not_followed() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    let elsewhere = scratch.out.path().join("elsewhere");
    fs::create_dir_all(&elsewhere).expect("mkdir");
    fs::create_dir_all(scratch.app()).expect("mkdir app");
    std::os::unix::fs::symlink(&elsewhere, scratch.app().join("data")).expect("plant link");

    let output = scratch.install(&[path_str(&v1)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("is a symbolic link; refusing to follow"),
        "{}",
        stderr(&output)
    );
    assert!(
        fs::read_dir(&elsewhere).expect("list").next().is_none(),
        "wrote through the link"
    );
    assert!(!scratch.app().join("current").exists());

    // One level down too: data/ is the app's, data/sessions (a writable-dir) a link.
    fs::remove_file(scratch.app().join("data")).expect("remove link");
    fs::create_dir(scratch.app().join("data")).expect("mkdir data");
    std::os::unix::fs::symlink(&elsewhere, scratch.app().join("data/sessions"))
        .expect("plant link");
    let output = scratch.install(&[path_str(&v1)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("data/sessions` is a symbolic link"),
        "{}",
        stderr(&output)
    );
    assert!(
        fs::read_dir(&elsewhere).expect("list").next().is_none(),
        "wrote through the link"
    );
}

#[test]
fn a_killed_install_leaves_the_old_release_running_and_the_next_run_completes() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    scratch.install_json(&v1);
    let kept = listing(&scratch.app().join("data"));
    let v2 = scratch.bundle("1.1.0", |_| {});

    // SIGKILL the upgrade while it builds the new release.
    let mut upgrade = scratch
        .command(&["--quiet", path_str(&v2)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the upgrade");
    let releases = scratch.app().join("releases");
    let staging_seen = (0..2000).any(|_| {
        std::thread::sleep(Duration::from_millis(5));
        fs::read_dir(&releases).expect("list releases").any(|e| {
            e.expect("entry")
                .file_name()
                .to_string_lossy()
                .starts_with(".staging-")
        })
    });
    upgrade.kill().expect("SIGKILL the upgrade");
    upgrade.wait().expect("reap the upgrade");
    assert!(staging_seen, "never saw the upgrade's staging directory");

    assert!(scratch.current().to_string_lossy().contains("1.0.0-"));
    let config = scratch.app().join("config/config.yaml");
    let version = scratch.run_venv("hello", &["--version"], &config);
    assert_eq!(stdout(&version), "hello 1.0.0\n", "{}", stderr(&version));
    assert_eq!(listing(&scratch.app().join("data")), kept);

    // The lock died with its holder; the next run clears the leftovers and completes.
    let report = scratch.install_json(&v2);
    assert_eq!(report["action"], "upgraded");
    let version = scratch.run_venv("hello", &["--version"], &config);
    assert_eq!(stdout(&version), "hello 1.1.0\n", "{}", stderr(&version));
    let names: Vec<String> = fs::read_dir(&releases)
        .expect("list releases")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with('.')),
        "leftovers: {names:?}"
    );
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn an_upgrade_whose_configuration_does_not_validate_is_refused_before_anything_changes() {
    let scratch = Scratch::new();
    let v1 = scratch.bundle("1.0.0", |_| {});
    let installed = scratch.install(&[path_str(&v1)]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let v2 = scratch.bundle("1.1.0", |_| {});
    let before = listing(scratch.root());

    let refused = scratch.install(&[path_str(&v2), "--set", "workers=100"]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: config: workers: 100 is above max 16\nhint: give a valid value with --set workers=VALUE\n"
    );
    assert_eq!(listing(scratch.root()), before, "nothing may change");

    // A spec the kept values break refuses the upgrade the same way.
    let v3 = scratch.bundle("1.2.0", |project| {
        edit(
            project,
            "configuration.yaml",
            "default: Hello",
            "default: hi",
        );
        let regex = r"regex: '^[A-Za-z][A-Za-z ,!]{0,39}$'";
        edit(project, "configuration.yaml", regex, "regex: '^[a-z]+$'");
    });
    let refused = scratch.install(&[path_str(&v3)]);
    assert_eq!(refused.status.code(), Some(1));
    let config = scratch.app().join("config/config.yaml");
    assert_eq!(
        stderr(&refused),
        format!(
            "error: config: greeting: \"Hello\" does not match regex ^[a-z]+$\nhint: the value \
             comes from `{}`: give a valid one with --set greeting=VALUE\n",
            config.display()
        )
    );
    assert_eq!(listing(scratch.root()), before, "nothing may change");
}

#[test]
fn what_the_app_needs_of_the_system_is_checked_before_anything_is_written() {
    let work = TempDir::new().unwrap();
    let root = work.path().join("root");
    fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
    fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: libc6\nStatus: install ok installed\n\n\
         Package: libpq5\nStatus: deinstall ok config-files\n",
    )
    .unwrap();
    let needs = |system: &str| {
        let project = hello_at_version("1.0.0");
        edit(
            project.path(),
            "metadata.yaml",
            "resources:\n",
            &format!("system:\n{system}resources:\n"),
        );
        let bundle = build_bundle(project.path(), &work.path().join(system.len().to_string()));
        (project, bundle)
    };

    let (_project, bundle) = needs("  packages: [libc6, libpq5, no-such-package-xyz]\n");
    let before = listing(&root);
    let output = pyapp_install_at(&root, &[path_str(&bundle)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: hello needs the Debian packages libpq5, no-such-package-xyz, not installed under {}\n\
             hint: apt-get install libpq5 no-such-package-xyz\n",
            root.display()
        )
    );
    assert_eq!(listing(&root), before, "a refused install wrote something");

    let (_project, bundle) = needs("  python-modules: [no_such_system_module]\n");
    let output = pyapp_install_at(&root, &[path_str(&bundle)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.starts_with(
            "error: hello cannot be installed: system Python module `no_such_system_module` is not in /usr/lib/python3/dist-packages"
        ) && message.contains("hint: install the Debian package that provides it"),
        "{message}"
    );
    assert_eq!(listing(&root), before, "a refused install wrote something");
}

#[test]
fn an_interpreter_the_app_user_cannot_run_is_skipped_or_refused() {
    use std::os::unix::fs::PermissionsExt;
    let work = TempDir::new().unwrap();
    // pyenv's layout: a python3.11 in root's 0700 home, first on PATH.
    let home = work.path().join("root-home");
    let bin_dir = home.join("bin");
    fs::create_dir_all(&bin_dir).unwrap();
    fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
    let private = bin_dir.join("python3.11");
    fs::copy("/usr/bin/python3.11", &private).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin_dir.display());
    let project = hello_at_version("1.0.0");
    let bundle = build_bundle(project.path(), &work.path().join("dist"));
    let root = work.path().join("root");

    let refused = Command::new(bin("pyapp-install"))
        .args([
            "--root",
            path_str(&root),
            "--python",
            path_str(&private),
            path_str(&bundle),
        ])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    assert!(
        stderr(&refused).starts_with(&format!(
            "error: `{}` cannot be run by an app's user: `{}` (mode 0700) is closed to other users\nhint: ",
            private.display(),
            home.display()
        )),
        "{}",
        stderr(&refused)
    );
    assert!(
        !root.join("applications").exists(),
        "a refused install wrote something"
    );

    let installed = Command::new(bin("pyapp-install"))
        .args(["--root", path_str(&root), "--json", path_str(&bundle)])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", stderr(&installed));
    let receipt = fs::read_to_string(root.join("applications/hello/.pyapp/receipt.json")).unwrap();
    assert!(
        receipt.contains("\"python\": \"/usr/bin/python3.11\""),
        "the private interpreter was used: {receipt}"
    );
}
