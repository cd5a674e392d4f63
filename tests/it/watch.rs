//! `pyapp-install watch DIR`: bundles of `fixtures/hello` dropped into an inbox are
//! installed into a scratch `--root` following the installed app's update policy, and
//! filed into done/ or failed/ with their JSON records; plain installs refuse downgrades;
//! two runs never take the same bundle; and, under a real systemd, the generated `.path`
//! unit passes `systemd-analyze verify` and installs what is dropped, by itself.

use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tempfile::TempDir;

use crate::harness::{self, bin, build_bundle, edit, fixture_copy, listing, stderr};

/// A scratch root, an inbox, and the bundles built for them.
struct Lab {
    root: TempDir,
    out: TempDir,
    inbox_parent: TempDir,
    /// Bundles dropped so far, to give each an older modification time than the next.
    dropped: std::cell::Cell<u64>,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab {
            root: tempfile::tempdir().unwrap(),
            out: tempfile::tempdir().unwrap(),
            inbox_parent: tempfile::tempdir().unwrap(),
            dropped: std::cell::Cell::new(0),
        };
        fs::create_dir(lab.inbox()).unwrap();
        fs::set_permissions(lab.inbox(), fs::Permissions::from_mode(0o2770)).unwrap();
        lab
    }

    /// The inbox, with a space in its path.
    fn inbox(&self) -> PathBuf {
        self.inbox_parent.path().join("pyapp inbox")
    }

    fn app(&self) -> PathBuf {
        self.root.path().join("applications/hello")
    }

    /// `fixtures/hello` at `version` with `policy` as its update policy, built once.
    fn bundle(&self, version: &str, policy: &str) -> PathBuf {
        let project = crate::harness::hello_at_version(version);
        edit(
            project.path(),
            "metadata.yaml",
            "policy: same-major",
            &format!("policy: {policy}"),
        );
        let out = self.out.path().join(format!("{version}-{policy}"));
        fs::create_dir_all(&out).unwrap();
        build_bundle(project.path(), &out)
    }

    /// Copies `bundle` into the inbox as `name` the way uploaders must (a dotfile renamed
    /// into place), older than a second and than every bundle dropped after it.
    fn drop_as(&self, bundle: &Path, name: &str) {
        let part = self.inbox().join(format!(".{name}.part"));
        fs::copy(bundle, &part).unwrap();
        let order = self.dropped.get();
        self.dropped.set(order + 1);
        let modified = SystemTime::now() - Duration::from_secs(1000) + Duration::from_secs(order);
        File::options()
            .write(true)
            .open(&part)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        fs::rename(&part, self.inbox().join(name)).unwrap();
    }

    /// A file that is not a bundle.
    fn junk(&self) -> PathBuf {
        let junk = self.out.path().join("junk");
        fs::write(&junk, "not a bundle\n").unwrap();
        junk
    }

    fn drop(&self, bundle: &Path) {
        self.drop_as(bundle, bundle.file_name().unwrap().to_str().unwrap());
    }

    /// `pyapp-install --root ROOT ARGS...`.
    fn run(&self, args: &[&str]) -> Output {
        Command::new(bin("pyapp-install"))
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// `pyapp-install --root ROOT watch INBOX --python /usr/bin/python3 --json EXTRA...`:
    /// its exit status and the records it printed, one per bundle.
    fn watch(&self, extra: &[&str]) -> (Option<i32>, Vec<Value>, String) {
        let output = Command::new(bin("pyapp-install"))
            .arg("--root")
            .arg(self.root.path())
            .arg("watch")
            .arg(self.inbox())
            .args(["--python", "/usr/bin/python3", "--json"])
            .args(extra)
            .output()
            .unwrap();
        let mut records: Vec<Value> = String::from_utf8(output.stdout.clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        // A failed run ends with the failure object every --json command prints.
        if output.status.code() != Some(0) {
            let failure = records.pop().expect("the failure object");
            assert_eq!(
                failure["status"],
                output.status.code().unwrap(),
                "{failure}"
            );
            assert!(
                failure["error"].as_str().unwrap().contains("failed"),
                "{failure}"
            );
        }
        (output.status.code(), records, stderr(&output))
    }

    /// The record file beside a filed bundle, e.g. `done/hello-1.0.0.pyapp`.
    fn record(&self, filed: &str) -> Value {
        let path = self.inbox().join(format!("{filed}.json"));
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// The release `current` points at.
    fn current(&self) -> String {
        let link = fs::read_link(self.app().join("current")).unwrap();
        link.strip_prefix("releases").unwrap().display().to_string()
    }

    fn receipt(&self) -> Value {
        let text = fs::read_to_string(self.app().join(".pyapp/receipt.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// What is in the inbox itself (not in done/ or failed/).
    fn waiting(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.inbox())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name != "done" && name != "failed")
            .collect();
        names.sort();
        names
    }
}

/// The fields of a record that do not depend on the run.
fn summary(record: &Value) -> (String, String, String, String) {
    let text = |key: &str| record[key].as_str().unwrap_or("null").to_owned();
    (
        text("bundle"),
        text("result"),
        text("action"),
        text("version"),
    )
}

fn expect(
    bundle: &str,
    result: &str,
    action: &str,
    version: &str,
) -> (String, String, String, String) {
    (
        bundle.to_owned(),
        result.to_owned(),
        action.to_owned(),
        version.to_owned(),
    )
}

#[test]
fn watch_installs_upgrades_and_refuses_by_the_installed_policy() {
    let lab = Lab::new();
    let v1 = lab.bundle("1.0.0", "same-major");
    let v11 = lab.bundle("1.1.0", "same-major");
    let v2 = lab.bundle("2.0.0", "same-major");
    // A new bundle cannot widen the policy the installed release was accepted under.
    let v2_latest = lab.bundle("2.0.0", "always-latest");

    // A broken bundle fails with its one-line error; the good one after it is installed.
    // Dotfiles and *.part files (uploads in progress) are left alone.
    lab.drop_as(&lab.junk(), "junk.pyapp");
    lab.drop(&v1);
    fs::write(lab.inbox().join(".upload.pyapp"), "partial").unwrap();
    fs::write(lab.inbox().join("next.pyapp.part"), "partial").unwrap();
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [
            expect("junk.pyapp", "failed", "refused", "null"),
            expect("hello-1.0.0.pyapp", "done", "installed", "1.0.0"),
        ]
    );
    let junk = lab.record("failed/junk.pyapp");
    assert_eq!(junk, records[0], "the record file is what --json printed");
    let error = junk["error"].as_str().unwrap();
    assert!(
        error.starts_with("refusing the bundle: ")
            && error.ends_with("junk.pyapp: is not a zip archive (shorter than an end record)")
            && !error.contains('\n'),
        "{error}"
    );
    assert_eq!(
        junk["hint"],
        "rebuild it with pyapp-build, or copy it again if it was damaged"
    );
    assert_eq!(
        junk["moved-to"].as_str().unwrap(),
        lab.inbox().join("failed/junk.pyapp").to_str().unwrap()
    );
    assert!(
        err.contains("error: junk.pyapp: refusing the bundle: "),
        "{err}"
    );
    assert!(
        err.trim_end().ends_with(&format!(
            "error: 1 of 2 bundles dropped into {} failed; they are in {}/failed with their reasons",
            lab.inbox().display(),
            lab.inbox().display()
        )),
        "{err}"
    );
    let installed = lab.record("done/hello-1.0.0.pyapp");
    assert_eq!(installed["app"], "hello");
    let v1_release = installed["release"].as_str().unwrap().to_owned();
    assert_eq!(lab.current(), v1_release);
    assert_eq!(lab.waiting(), [".upload.pyapp", "next.pyapp.part"]);
    assert!(lab.inbox().join("failed/junk.pyapp").is_file());
    assert!(lab.inbox().join("done/hello-1.0.0.pyapp").is_file());

    // Nothing to do: exit 0, nothing printed.
    let (code, records, err) = lab.watch(&[]);
    assert_eq!((code, records.len()), (Some(0), 0), "{err}");
    assert!(err.contains("no bundles in "), "{err}");

    // Same major: upgraded.
    lab.drop(&v11);
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-1.1.0.pyapp", "done", "upgraded", "1.1.0")]
    );
    let v11_release = records[0]["release"].as_str().unwrap().to_owned();
    assert_eq!(lab.current(), v11_release);

    // A new major version is refused, whatever the new bundle's own policy says, and the
    // app is left exactly as it was.
    let before = listing(lab.root.path());
    lab.drop(&v2);
    lab.drop_as(&v2_latest, "hello-2.0.0-always-latest.pyapp");
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [
            expect("hello-2.0.0.pyapp", "failed", "refused", "null"),
            expect(
                "hello-2.0.0-always-latest.pyapp",
                "failed",
                "refused",
                "null"
            ),
        ]
    );
    for record in &records {
        assert_eq!(
            record["error"],
            "refusing to upgrade hello from 1.1.0 to 2.0.0: a new major version, and hello's \
             update policy is same-major"
        );
        assert_eq!(
            record["hint"],
            "install it by hand with `pyapp-install BUNDLE`, or let watch take major upgrades \
             with --allow-major"
        );
    }
    assert_eq!(
        listing(lab.root.path()),
        before,
        "a refused bundle changed the root"
    );
    assert_eq!(lab.current(), v11_release);

    // Dropped again, it lands beside the first under a free name; --allow-major takes it.
    lab.drop(&v2);
    let (code, records, _) = lab.watch(&[]);
    assert_eq!(code, Some(1));
    assert_eq!(
        records[0]["moved-to"].as_str().unwrap(),
        lab.inbox()
            .join("failed/hello-2.0.0~2.pyapp")
            .to_str()
            .unwrap()
    );
    lab.drop(&v2);
    let (code, records, err) = lab.watch(&["--allow-major"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-2.0.0.pyapp", "done", "upgraded", "2.0.0")]
    );
    assert!(lab.current().starts_with("2.0.0-"));

    // A downgrade is refused; --allow-downgrade takes it (its release is still on disk).
    lab.drop(&v11);
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(1), "{err}");
    assert_eq!(
        records[0]["error"],
        "refusing to downgrade hello from 2.0.0 to 1.1.0"
    );
    assert_eq!(
        records[0]["hint"],
        "`pyapp-install rollback hello` returns to the previous release; to install this older \
         bundle anyway, add --allow-downgrade"
    );
    assert!(lab.current().starts_with("2.0.0-"));
    lab.drop(&v11);
    let (code, records, err) = lab.watch(&["--allow-downgrade"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-1.1.0.pyapp", "done", "upgraded", "1.1.0")]
    );
    assert_eq!(
        records[0]["moved-to"].as_str().unwrap(),
        lab.inbox()
            .join("done/hello-1.1.0~2.pyapp")
            .to_str()
            .unwrap()
    );
    assert_eq!(lab.current(), v11_release);

    // The bundle that is current again: unchanged.
    lab.drop(&v11);
    let (code, records, _) = lab.watch(&[]);
    assert_eq!(code, Some(0));
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-1.1.0.pyapp", "done", "unchanged", "1.1.0")]
    );
    assert_eq!(lab.waiting(), [".upload.pyapp", "next.pyapp.part"]);
}

#[test]
fn manual_policy_only_stages_and_installing_the_bundle_switches() {
    let lab = Lab::new();
    let v1 = lab.bundle("1.0.0", "manual");
    let v11 = lab.bundle("1.1.0", "same-major");
    let v12 = lab.bundle("1.2.0", "manual");
    let v13 = lab.bundle("1.3.0", "manual");

    // --stage-only needs an installed app; the first bundle is installed by watch
    // whatever its policy (nothing runs yet that the policy could keep).
    let refused = lab.run(&[
        "--python",
        "/usr/bin/python3",
        "--stage-only",
        v1.to_str().unwrap(),
    ]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(
        stderr(&refused),
        "error: hello is not installed: --stage-only stages a release beside a current one\n\
         hint: install its first bundle without --stage-only\n"
    );
    assert!(!lab.root.path().join("applications").exists());
    lab.drop(&v1);
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-1.0.0.pyapp", "done", "installed", "1.0.0")]
    );
    let v1_release = lab.current();

    // Under the installed release's manual policy, a newer bundle is only staged: built,
    // not switched to, nothing else touched.
    let units = lab.root.path().join("etc/systemd/system");
    let outside_releases = |lab: &Lab| {
        let mut all = listing(&lab.app());
        all.retain(|path, _| !path.starts_with("releases") && !path.starts_with(".pyapp"));
        all.extend(listing(&units));
        all
    };
    let before = outside_releases(&lab);
    lab.drop(&v11);
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [expect("hello-1.1.0.pyapp", "done", "staged", "1.1.0")]
    );
    let staged = records[0]["release"].as_str().unwrap().to_owned();
    let filed = lab.inbox().join("done/hello-1.1.0.pyapp");
    assert_eq!(
        records[0]["hint"].as_str().unwrap(),
        format!(
            "staged, not running: switch to it with `pyapp-install '{}'`",
            filed.display()
        )
    );
    assert!(lab
        .app()
        .join("releases")
        .join(&staged)
        .join("venv/bin/python")
        .exists());
    assert_eq!(lab.current(), v1_release);
    assert_eq!(
        outside_releases(&lab),
        before,
        "staging touched more than releases/"
    );
    let receipt = lab.receipt();
    assert_eq!(receipt["release"], v1_release.as_str());
    assert_eq!(receipt["staged"]["release"], staged.as_str());
    assert_eq!(receipt["releases"].as_array().unwrap().len(), 1);
    let list = lab.run(&["list", "--json"]);
    let list: Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list["apps"][0]["staged"], staged.as_str());

    // A later bundle replaces the staged one.
    lab.drop(&v12);
    lab.drop(&v13);
    let (code, records, err) = lab.watch(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        records.iter().map(summary).collect::<Vec<_>>(),
        [
            expect("hello-1.2.0.pyapp", "done", "staged", "1.2.0"),
            expect("hello-1.3.0.pyapp", "done", "staged", "1.3.0"),
        ]
    );
    let v12_release = records[0]["release"].as_str().unwrap();
    let v13_release = records[1]["release"].as_str().unwrap().to_owned();
    assert!(err.contains(&format!(
        "removed release {staged}, staged earlier and never switched to"
    )));
    assert!(err.contains(&format!(
        "removed release {v12_release}, staged earlier and never switched to"
    )));
    let mut releases: Vec<String> = fs::read_dir(lab.app().join("releases"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    releases.sort();
    assert_eq!(releases, [v1_release.clone(), v13_release.clone()]);

    // Installing the staged bundle by hand switches to it without building it again.
    let switched = lab.run(&[
        "--python",
        "/usr/bin/python3",
        "--json",
        lab.inbox().join("done/hello-1.3.0.pyapp").to_str().unwrap(),
    ]);
    assert!(switched.status.success(), "{}", stderr(&switched));
    assert!(
        stderr(&switched).contains(&format!(
            "release {v13_release} is already on disk; switching to it"
        )),
        "{}",
        stderr(&switched)
    );
    let report: Value = serde_json::from_slice(&switched.stdout).unwrap();
    assert_eq!(report["action"], "upgraded");
    assert_eq!(lab.current(), v13_release);
    assert!(lab.receipt().get("staged").is_none());
    assert_eq!(lab.receipt()["releases"][0]["release"], v1_release.as_str());

    // A plain install refuses a downgrade too; rollback is the way back.
    let down = lab.run(&["--python", "/usr/bin/python3", v1.to_str().unwrap()]);
    assert_eq!(down.status.code(), Some(1));
    assert_eq!(
        stderr(&down),
        "error: refusing to downgrade hello from 1.3.0 to 1.0.0\nhint: `pyapp-install \
         rollback hello` returns to the previous release; to install this older bundle \
         anyway, add --allow-downgrade\n"
    );
    let down = lab.run(&[
        "--python",
        "/usr/bin/python3",
        "--allow-downgrade",
        v1.to_str().unwrap(),
    ]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(lab.current(), v1_release);
}

#[test]
fn a_second_watch_waits_for_the_first_and_never_takes_its_bundles() {
    let lab = Lab::new();
    lab.drop_as(&lab.junk(), "a.pyapp");
    // This test holds the inbox's lock, as a running watch would.
    let held = File::open(lab.inbox()).unwrap();
    held.lock().unwrap();
    let mut second = Command::new(bin("pyapp-install"))
        .arg("--root")
        .arg(lab.root.path())
        .arg("watch")
        .arg(lab.inbox())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(second.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        format!(
            "another pyapp-install watch is processing {}: waiting for it",
            lab.inbox().display()
        )
    );
    assert_eq!(lab.waiting(), ["a.pyapp"], "taken while the lock was held");
    drop(held);
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    let status = second.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{rest:?}");
    assert!(lab.waiting().is_empty());
    assert_eq!(lab.record("failed/a.pyapp")["action"], "refused");
}

#[test]
fn inbox_units_are_refused_for_a_world_writable_inbox_and_written_under_root() {
    let lab = Lab::new();
    fs::set_permissions(lab.inbox(), fs::Permissions::from_mode(0o777)).unwrap();
    let refused = lab.run(&["watch", lab.inbox().to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused)
            .contains("is writable by every user: anyone could install apps through it"),
        "{}",
        stderr(&refused)
    );

    // Under --root the units are written, not enabled; the inbox is made inside the root.
    let install_units = || {
        lab.run(&[
            "--json",
            "watch",
            "--install-units",
            "/srv/pyapp inbox",
            "--allow-major",
            "--python",
            "/usr/bin/python3",
        ])
    };
    let written = install_units();
    assert!(written.status.success(), "{}", stderr(&written));
    let report: Value = serde_json::from_slice(&written.stdout).unwrap();
    assert_eq!(report["action"], "written");
    assert_eq!(report["enabled"], false);
    let program = bin("pyapp-install");
    assert_eq!(
        report["command"],
        serde_json::json!([
            program.to_str().unwrap(),
            "watch",
            "/srv/pyapp inbox",
            "--allow-major",
            "--python",
            "/usr/bin/python3"
        ])
    );
    let unit_dir = lab.root.path().join("etc/systemd/system");
    let service = fs::read_to_string(unit_dir.join("pyapp-inbox.service")).unwrap();
    assert!(
        service.ends_with(&format!(
            "ExecStart=\"{}\" \"watch\" \"/srv/pyapp inbox\" \"--allow-major\" \"--python\" \
             \"/usr/bin/python3\"\n",
            program.display()
        )),
        "{service}"
    );
    let path = fs::read_to_string(unit_dir.join("pyapp-inbox.path")).unwrap();
    assert!(
        path.contains("\nPathExistsGlob=/srv/pyapp inbox/*.pyapp\n"),
        "{path}"
    );
    assert!(lab.root.path().join("srv/pyapp inbox").is_dir());
    assert!(
        stderr(&written)
            .contains("systemctl daemon-reload && systemctl enable --now pyapp-inbox.path"),
        "{}",
        stderr(&written)
    );
    let report: Value = serde_json::from_slice(&install_units().stdout).unwrap();
    assert_eq!(report["action"], "unchanged");
}

/// Runs in the sandbox; every fact the test checks goes into a file of $OUT.
const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; V1=$3; JUNK=$4
INBOX="/srv/pyapp inbox"
step() { NAME=$1; shift; "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
drop() { cp "$1" "$INBOX/.$2.part" && mv "$INBOX/.$2.part" "$INBOX/$2"; }
# Waits for a file to appear, for at most 5 minutes (a guard against hanging, not a timing).
wait_for() { for _ in $(seq 3000); do [ -e "$1" ] && return 0; sleep 0.1; done; return 1; }

"$INSTALL" --json watch --install-units "$INBOX" --python /usr/bin/python3 > $OUT/units.json 2> $OUT/units.log
echo $? > $OUT/units.rc
(cd /etc/systemd/system && systemd-analyze verify pyapp-inbox.path pyapp-inbox.service) > $OUT/verify.out 2> $OUT/verify.err
systemctl is-enabled pyapp-inbox.path > $OUT/path.enabled
systemctl is-active pyapp-inbox.path > $OUT/path.active
drop "$JUNK" junk.pyapp
wait_for "$INBOX/failed/junk.pyapp.json"; echo $? > $OUT/junk.waited
drop "$V1" hello-1.0.0.pyapp
wait_for "$INBOX/done/hello-1.0.0.pyapp.json"; echo $? > $OUT/v1.waited
systemctl is-active hello-web.service > $OUT/web.active
cp "$INBOX/failed/junk.pyapp.json" "$INBOX/done/hello-1.0.0.pyapp.json" $OUT/
ls -A "$INBOX" > $OUT/inbox.after
journalctl --no-pager -u pyapp-inbox.service > $OUT/journal 2>&1
"#;

fn read(dir: &Path, name: &str) -> String {
    fs::read_to_string(dir.join(name))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
        .trim_end()
        .to_owned()
}

#[test]
fn the_path_unit_installs_dropped_bundles_under_systemd() {
    let sandbox = harness::sandbox();
    // Not under /tmp: the sandbox mounts its own /tmp.
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let project = fixture_copy("hello");
    let v1 = build_bundle(project.path(), work.path());
    let junk = work.path().join("junk.pyapp");
    fs::write(&junk, "not a bundle\n").unwrap();
    let out = harness::run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [bin("pyapp-install"), v1, junk],
    );

    let journal = read(&out, "journal");
    assert_eq!(read(&out, "units.rc"), "0", "{}", read(&out, "units.log"));
    let report: Value = serde_json::from_str(&read(&out, "units.json")).unwrap();
    assert_eq!(report["enabled"], true);
    assert_eq!(
        read(&out, "verify.err"),
        "",
        "systemd-analyze verify complained"
    );
    assert_eq!(read(&out, "path.enabled"), "enabled");
    assert_eq!(read(&out, "path.active"), "active");

    // The broken bundle failed (the service with it); the next drop was still taken.
    assert_eq!(read(&out, "junk.waited"), "0", "{journal}");
    let junk: Value = serde_json::from_str(&read(&out, "junk.pyapp.json")).unwrap();
    assert_eq!(junk["action"], "refused");
    assert_eq!(junk["moved-to"], "/srv/pyapp inbox/failed/junk.pyapp");
    assert_eq!(read(&out, "v1.waited"), "0", "{journal}");
    let installed: Value = serde_json::from_str(&read(&out, "hello-1.0.0.pyapp.json")).unwrap();
    assert_eq!(installed["action"], "installed", "{journal}");
    assert_eq!(read(&out, "web.active"), "active", "{journal}");
    assert_eq!(
        read(&out, "inbox.after").lines().collect::<Vec<_>>(),
        ["done", "failed"]
    );
    assert!(
        journal.contains("installed hello 1.0.0 (release 1.0.0-"),
        "{journal}"
    );
}
