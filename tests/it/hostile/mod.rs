//! The adversarial bundle corpus (spec/SECURITY.md, "Bad input", "The adversarial
//! corpus"): every malicious bundle is derived from the real bundle of `fixtures/hello`
//! (see [`bundle`]) and installed with the real pyapp-install, into an empty `--root` and
//! over an installed hello 1.0.0. Each must exit 1 with one `error:` line (and at most one
//! `hint:`) naming the entry or field and the rule, leave the whole root byte-identical,
//! and keep 1.0.0 current and running.

mod bundle;
mod container;
mod manifest;
mod metadata;
mod wheels;
mod yaml;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::{bin, listing, stderr};
use bundle::{base, Draft};

/// One hostile bundle and what pyapp-install must do with it.
pub struct Case {
    /// Unique, kebab-case: it names the bundle file and the failure.
    pub name: String,
    pub bundle: Vec<u8>,
    pub expect: Expect,
}

/// The verdict a case expects.
pub enum Expect {
    /// Exit 1; the error line contains this text (the entry or field, and the rule).
    Refused(String),
    /// Not refused, because the unit writer escapes the value instead: the install
    /// succeeds and the release's metadata.yaml holds this text for the unit writer to
    /// escape (the unit-file snapshot tests cover what it makes of it).
    Escaped(String),
}

/// A case whose bundle must be refused with a message containing `expected`.
pub fn refused(name: impl Into<String>, bundle: Vec<u8>, expected: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        bundle,
        expect: Expect::Refused(expected.into()),
    }
}

/// A case for a value the unit writer escapes (see [`Expect::Escaped`]).
pub fn escaped(name: impl Into<String>, bundle: Vec<u8>, kept: impl Into<String>) -> Case {
    Case {
        name: name.into(),
        bundle,
        expect: Expect::Escaped(kept.into()),
    }
}

/// A draft of the base bundle changed by `change`, assembled.
pub fn derived(change: impl FnOnce(&mut Draft)) -> Vec<u8> {
    let mut draft = Draft::base();
    change(&mut draft);
    draft.to_bytes()
}

#[test]
fn the_generator_reassembles_the_real_bundle_byte_for_byte() {
    // Every case differs from a bundle pyapp-build really writes by its trick alone.
    assert!(
        Draft::base().to_bytes() == base().bytes,
        "the reassembled base bundle differs from pyapp-build's"
    );
}

#[test]
fn container_tricks_are_refused_and_change_nothing() {
    run_corpus(container::cases());
}

#[test]
fn manifest_lies_are_refused_and_change_nothing() {
    run_corpus(manifest::cases());
}

#[test]
fn yaml_tricks_are_refused_and_change_nothing() {
    run_corpus(yaml::cases());
}

#[test]
fn bad_metadata_is_refused_and_changes_nothing() {
    run_corpus(metadata::cases());
}

#[test]
fn bad_wheels_are_refused_and_change_nothing() {
    run_corpus(wheels::cases());
}

/// A unit anywhere on systemd's search path under the root keeps its name: installing an
/// app whose unit would override it (`hello-cleanup.timer` here) is refused like a hostile
/// bundle, naming the file, and changes nothing (FORMAT.md 8.1).
#[test]
fn units_of_the_system_are_never_overridden() {
    let work = tempfile::tempdir().expect("temp dir");
    let bundle = work.path().join("hello-1.0.0.pyapp");
    fs::write(&bundle, &base().bytes).expect("write the base bundle");
    let mut failures = Vec::new();
    for dir in [
        "usr/lib/systemd/system",
        "lib/systemd/system",
        "usr/local/lib/systemd/system",
        "run/systemd/system",
        "run/systemd/transient",
        "etc/systemd/system.control",
    ] {
        let root = work.path().join(dir.replace('/', "-"));
        let vendor = root.join(dir).join("hello-cleanup.timer");
        fs::create_dir_all(vendor.parent().expect("a parent")).expect("mkdir");
        fs::write(&vendor, "[Timer]\nOnCalendar=weekly\n").expect("write a vendor unit");
        let expected = format!(
            "`{}` exists: hello-cleanup.timer is a unit of this system, which a unit of hello \
             would override; refusing to write it",
            vendor.display()
        );
        if let Err(problem) = check_refused(&root, &listing(&root), &bundle, &expected, None) {
            failures.push(format!("{dir}: {problem}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Where `systemd-analyze` is installed it has the last word on every schedule at install
/// too: one it refuses refuses the install before anything is done, and changes nothing.
#[test]
fn systemd_analyze_has_the_last_word_on_schedules() {
    let work = tempfile::tempdir().expect("temp dir");
    let bundle = work.path().join("hello-1.0.0.pyapp");
    fs::write(&bundle, &base().bytes).expect("write the base bundle");
    let root = work.path().join("root");
    let installed = work.path().join("installed");
    let release = install_v1(&installed, &bundle);
    let tools = work.path().join("tools");
    fs::create_dir_all(&root).expect("mkdir");
    fs::create_dir_all(&tools).expect("mkdir");
    let path = crate::harness::path_with_refusing_systemd_analyze(&tools);
    for (root, release) in [(&root, None), (&installed, Some(release.as_path()))] {
        // An upgrade: the same bundle again would be found unchanged and not regenerated.
        let target = if release.is_some() {
            let v2 = work.path().join("hello-1.0.1.pyapp");
            fs::write(
                &v2,
                derived(|draft| {
                    draft.metadata("\nversion: \"1.0.0\"\n", "\nversion: \"1.0.1\"\n");
                }),
            )
            .expect("write 1.0.1");
            v2
        } else {
            bundle.clone()
        };
        let before = listing(root);
        let output = Command::new(bin("pyapp-install"))
            .arg("--root")
            .arg(root)
            .arg(&target)
            .env("PATH", &path)
            .output()
            .expect("run pyapp-install");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(1), "{message}");
        assert!(
            message.starts_with(
                "error: metadata.yaml: tasks[0].schedule: \"*-*-* 03:00:00\" is refused by \
                 `systemd-analyze calendar` (exit status: 1): Failed to parse calendar \
                 specification '*-*-* 03:00:00': refused by this test\n"
            ),
            "{message}"
        );
        assert_eq!(listing(root), before, "{}", root.display());
        if let Some(release) = release {
            assert_eq!(
                fs::read_link(app(root).join("current")).ok().as_deref(),
                Some(release)
            );
        }
    }
    check_v1_runs(&installed).expect("1.0.0 still runs");
}

/// Runs every case into an empty root and over an installed 1.0.0 and reports all the
/// cases that went wrong at once.
fn run_corpus(cases: Vec<Case>) {
    let work = tempfile::tempdir().expect("temp dir");
    let v1 = work.path().join("hello-1.0.0.pyapp");
    fs::write(&v1, &base().bytes).expect("write the base bundle");
    let empty = work.path().join("empty-root");
    fs::create_dir(&empty).expect("mkdir");
    let installed = work.path().join("installed-root");
    let release = install_v1(&installed, &v1);

    // Each root's listing is taken once: a case that leaves it unchanged leaves the
    // listing for the next one, a case that changes it is reported and the root rebuilt.
    let mut empty_listing = listing(&empty);
    let mut installed_listing = listing(&installed);
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    for case in &cases {
        assert!(
            seen.insert(&case.name),
            "two cases are called {}",
            case.name
        );
        let path = work.path().join(format!("{}.pyapp", case.name));
        fs::write(&path, &case.bundle).expect("write a hostile bundle");
        match &case.expect {
            Expect::Refused(expected) => {
                if let Err(problem) = check_refused(&empty, &empty_listing, &path, expected, None) {
                    failures.push(format!("{} (empty root): {problem}", case.name));
                    fs::remove_dir_all(&empty).expect("clean the empty root");
                    fs::create_dir(&empty).expect("mkdir");
                    empty_listing = listing(&empty);
                }
                let over_v1 = Some(release.as_path());
                if let Err(problem) =
                    check_refused(&installed, &installed_listing, &path, expected, over_v1)
                {
                    failures.push(format!("{} (over 1.0.0): {problem}", case.name));
                    fs::remove_dir_all(&installed).expect("clean the installed root");
                    assert_eq!(install_v1(&installed, &v1), release);
                    installed_listing = listing(&installed);
                }
            }
            Expect::Escaped(kept) => {
                let root = work.path().join(format!("{}-root", case.name));
                if let Err(problem) = check_escaped(&root, &path, kept) {
                    failures.push(format!("{} (escaped, not refused): {problem}", case.name));
                }
            }
        }
    }
    // Every case left the installed tree byte-identical (or was reported): 1.0.0 still
    // runs after all of them.
    if let Err(problem) = check_v1_runs(&installed) {
        failures.push(format!("after all cases: {problem}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} hostile bundles were not handled as they must be:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn install(root: &Path, bundle: &Path) -> Output {
    Command::new(bin("pyapp-install"))
        .arg("--root")
        .arg(root)
        .arg(bundle)
        .output()
        .expect("run pyapp-install")
}

/// `ROOT/applications/hello`.
fn app(root: &Path) -> PathBuf {
    root.join("applications/hello")
}

/// Installs the base bundle into `root` and returns what `current` points at.
fn install_v1(root: &Path, v1: &Path) -> PathBuf {
    fs::create_dir_all(root).expect("mkdir root");
    let output = install(root, v1);
    assert!(output.status.success(), "1.0.0: {}", stderr(&output));
    let release = fs::read_link(app(root).join("current")).expect("current is a link");
    check_v1_runs(root).expect("the installed 1.0.0 runs");
    release
}

/// The installed release's console script, run through the venv's python (under `--root`
/// the shebang names the run-time path).
fn check_v1_runs(root: &Path) -> Result<(), String> {
    let bin = app(root).join("current/venv/bin");
    let output = Command::new(bin.join("python"))
        .arg(bin.join("hello"))
        .arg("--version")
        .output()
        .map_err(|err| format!("cannot run the 1.0.0 console script: {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.success() && stdout == "hello 1.0.0\n" {
        Ok(())
    } else {
        Err(format!(
            "`hello --version` printed {stdout:?}, stderr {:?}",
            stderr(&output)
        ))
    }
}

/// Installs `bundle` into `root`, listed as `before`, which must be refused as the module
/// documentation says; `release` is what `current` points at when 1.0.0 is installed
/// there.
fn check_refused(
    root: &Path,
    before: &BTreeMap<PathBuf, String>,
    bundle: &Path,
    expected: &str,
    release: Option<&Path>,
) -> Result<(), String> {
    let output = install(root, bundle);
    let message = stderr(&output);
    let mut problems = Vec::new();
    if output.status.code() != Some(1) {
        problems.push(format!("exit status {:?}, not 1", output.status.code()));
    }
    let lines: Vec<&str> = message.lines().collect();
    let one_error = match lines.as_slice() {
        [error] => error.starts_with("error: "),
        [error, hint] => error.starts_with("error: ") && hint.starts_with("hint: "),
        _ => false,
    };
    if !one_error {
        problems.push("stderr is not one error line and at most one hint".to_owned());
    }
    if !lines.first().is_some_and(|line| line.contains(expected)) {
        problems.push(format!("the error does not say {expected:?}"));
    }
    let after = listing(root);
    if after != *before {
        problems.push(format!("the root changed: {}", differences(before, &after)));
    }
    if let Some(release) = release {
        match fs::read_link(app(root).join("current")) {
            Ok(current) if current == release => {}
            other => problems.push(format!("current is now {other:?}")),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("{}; stderr: {message:?}", problems.join("; ")))
    }
}

/// Installs `bundle` into a new `root`: it must succeed, and the release keeps `kept`
/// in its metadata.yaml for the unit writer.
fn check_escaped(root: &Path, bundle: &Path, kept: &str) -> Result<(), String> {
    fs::create_dir_all(root).expect("mkdir root");
    let output = install(root, bundle);
    if !output.status.success() {
        return Err(format!(
            "exit status {:?}: {:?}",
            output.status.code(),
            stderr(&output)
        ));
    }
    let metadata = fs::read_to_string(app(root).join("current/metadata.yaml"))
        .map_err(|err| format!("no metadata.yaml in the release: {err}"))?;
    if !metadata.contains(kept) {
        return Err(format!("the release's metadata.yaml lacks {kept:?}"));
    }
    Ok(())
}

/// The paths added, removed or changed between two listings (the first few).
fn differences(before: &BTreeMap<PathBuf, String>, after: &BTreeMap<PathBuf, String>) -> String {
    let paths: BTreeSet<&PathBuf> = before.keys().chain(after.keys()).collect();
    let changed: Vec<String> = paths
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| match (before.get(path), after.get(path)) {
            (None, _) => format!("+{}", path.display()),
            (_, None) => format!("-{}", path.display()),
            _ => format!("~{}", path.display()),
        })
        .collect();
    let shown = changed
        .iter()
        .take(6)
        .cloned()
        .collect::<Vec<_>>()
        .join(" ");
    if changed.len() > 6 {
        format!("{shown} and {} more", changed.len() - 6)
    } else {
        shown
    }
}
