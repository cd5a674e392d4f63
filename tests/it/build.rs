//! pyapp-build on the example app: the bundle's layout and manifest, reproducibility, the
//! JSON report, and one refusal per validation rule with the message a user sees.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::harness::{build_bundle, edit, fixture_copy, pyapp_build, stderr, workspace};

/// Every entry of a zip: name -> (compression method, unix mode, content).
fn entries(bundle: &Path) -> Vec<(String, zip::CompressionMethod, Option<u32>, Vec<u8>)> {
    let mut archive =
        zip::ZipArchive::new(std::fs::File::open(bundle).expect("open bundle")).expect("zip");
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read entry");
            (
                entry.name().expect("entry name").into_owned(),
                entry.compression(),
                entry.unix_mode(),
                content,
            )
        })
        .collect()
}

#[test]
fn bundle_has_the_specified_layout_and_a_true_manifest() {
    let out = tempfile::tempdir().unwrap();
    let bundle = build_bundle(&workspace().join("fixtures/hello"), out.path());
    assert_eq!(bundle.file_name().unwrap(), "hello-1.0.0.pyapp");

    let entries = entries(&bundle);
    let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names[0], "manifest.json", "manifest first");
    let mut sorted = names[1..].to_vec();
    sorted.sort();
    assert_eq!(
        names[1..],
        sorted[..],
        "entries after the manifest are sorted"
    );
    for expected in [
        "configuration.yaml",
        "metadata.yaml",
        "deps/hello-1.0.0-py3-none-any.whl",
        "deps/flask-3.0.3-py3-none-any.whl",
        "deps/PyYAML-6.0.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "src/pyproject.toml",
        "src/src/hello/web.py",
        "src/src/hello/static/style.css",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| n.starts_with("deps/")).count(),
        11,
        "10 pins + the app's wheel"
    );
    assert!(!names.iter().any(|n| n.contains("__pycache__")));
    let app_wheel = &entries
        .iter()
        .find(|e| e.0 == "deps/hello-1.0.0-py3-none-any.whl")
        .unwrap()
        .3;
    assert!(
        wheel_files(app_wheel).contains_key("hello/static/style.css"),
        "setuptools packs the package data pyproject.toml names"
    );

    for (name, method, mode, _) in &entries {
        let expected = if name.ends_with(".whl") {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        assert_eq!(*method, expected, "{name}");
        assert_eq!(mode.map(|m| m & 0o7777), Some(0o644), "{name}");
    }

    let manifest: serde_json::Value =
        serde_json::from_slice(&entries[0].3).expect("manifest.json is JSON");
    assert_eq!(manifest["format"], 1);
    let listed: BTreeMap<String, (String, u64)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_string(),
                (
                    f["sha256"].as_str().unwrap().to_string(),
                    f["size"].as_u64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(
        listed.len(),
        entries.len() - 1,
        "every entry but the manifest is listed"
    );
    for (name, _, _, content) in &entries[1..] {
        let (sha, size) = &listed[name];
        assert_eq!(*size, content.len() as u64, "{name} size");
        assert_eq!(*sha, hex::encode(Sha256::digest(content)), "{name} sha256");
    }

    let metadata = String::from_utf8(
        entries
            .iter()
            .find(|e| e.0 == "metadata.yaml")
            .unwrap()
            .3
            .clone(),
    )
    .unwrap();
    assert!(metadata.contains("name: hello"), "{metadata}");
    assert!(
        metadata.contains("app-wheel: hello-1.0.0-py3-none-any.whl"),
        "{metadata}"
    );
    let flask_sha = &listed["deps/flask-3.0.3-py3-none-any.whl"].0;
    assert!(
        metadata.contains(flask_sha.as_str()),
        "metadata lists each wheel's sha256"
    );
}

#[test]
fn rebuilds_are_byte_identical_and_follow_source_date_epoch() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let project = workspace().join("fixtures/hello");
    let a = std::fs::read(build_bundle(&project, first.path())).unwrap();
    let b = std::fs::read(build_bundle(&project, second.path())).unwrap();
    assert!(a == b, "two builds of the same inputs differ");

    let third = tempfile::tempdir().unwrap();
    let output = crate::harness::pyapp_build_command(&project, third.path())
        .arg("--no-index")
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let c = std::fs::read(third.path().join("hello-1.0.0.pyapp")).unwrap();
    assert!(a != c, "SOURCE_DATE_EPOCH must change the timestamps");
}

#[test]
fn json_report_describes_the_bundle() {
    let out = tempfile::tempdir().unwrap();
    let output = pyapp_build(&workspace().join("fixtures/hello"), out.path(), &["--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).expect("stdout is JSON");
    assert_eq!(report["name"], "hello");
    assert_eq!(report["version"], "1.0.0");
    assert_eq!(report["build-backend"], "setuptools.build_meta");
    assert_eq!(
        report["build-wheels"],
        serde_json::json!(["setuptools-84.2.1-py3-none-any.whl"])
    );
    assert_eq!(report["dependencies"].as_array().unwrap().len(), 11);
    let bundle = std::fs::read(report["bundle"].as_str().unwrap()).unwrap();
    assert_eq!(report["sha256"], hex::encode(Sha256::digest(&bundle)));
    assert_eq!(report["unused-pins"].as_array().unwrap().len(), 0);
}

/// Build a modified copy of the fixture and return (exit code, stderr); no bundle may appear.
fn refused(modify: impl FnOnce(&Path), extra: &[&str]) -> (i32, String) {
    let project = fixture_copy("hello");
    modify(project.path());
    let out = tempfile::tempdir().unwrap();
    let output = pyapp_build(project.path(), out.path(), extra);
    let leftovers: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "a refused build left {leftovers:?}");
    (
        output.status.code().unwrap_or(-1),
        stderr(&output).trim_end().to_string(),
    )
}

#[test]
fn refuses_bad_yaml() {
    let (code, message) = refused(
        |p| edit(p, "metadata.yaml", "module: hello", "module: [hello"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(message.starts_with("error: metadata.yaml:"), "{message}");
    assert_eq!(message.lines().count(), 1, "{message}");
}

#[test]
fn refuses_unknown_field_naming_it_and_its_line() {
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "metadata.yaml",
                "interface: wsgi",
                "interface: wsgi\nservces: []",
            )
        },
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        message.starts_with(
            "error: metadata.yaml:7: servces: unknown field (known fields: format, name, version,"
        ),
        "{message}"
    );
}

#[test]
fn refuses_bad_service_name() {
    let (code, message) = refused(
        |p| edit(p, "metadata.yaml", "- name: web", "- name: Web"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(message.contains("services[0].name"), "{message}");
    assert!(message.contains("\"Web\""), "{message}");
}

#[test]
fn refuses_bad_schedule() {
    let (code, message) = refused(
        |p| edit(p, "metadata.yaml", "*-*-* 03:00:00", "*-*-* 25:00:00"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(message.contains("tasks[0].schedule"), "{message}");
    assert!(message.contains("25"), "{message}");
}

/// Time zones as systemd's `verify_timezone()` judges them: `Europe//Berlin` is not a
/// normalised name, `leapseconds` is a file under zoneinfo but not a TZif file.
#[test]
fn refuses_time_zones_systemd_refuses() {
    for (zone, reason) in [
        ("Europe//Berlin", "\"Europe//Berlin\" is not a time zone name"),
        (
            "leapseconds",
            "\"leapseconds\" is not a time zone: /usr/share/zoneinfo/leapseconds is not a TZif file",
        ),
    ] {
        let schedule = format!("*-*-* 03:00:00 {zone}");
        let (code, message) = refused(
            |p| edit(p, "metadata.yaml", "*-*-* 03:00:00", &schedule),
            &[],
        );
        assert_eq!(code, 1, "{message}");
        assert_eq!(message.lines().count(), 1, "{message}");
        assert!(
            message.starts_with("error: metadata.yaml:")
                && message.contains(&format!("tasks[0].schedule: \"{schedule}\""))
                && message.contains(reason),
            "{message}"
        );
    }
}

/// Where `systemd-analyze` is installed it has the last word on every schedule: one it
/// refuses is refused in its words, though the native check accepts it.
#[test]
fn systemd_analyze_has_the_last_word_on_schedules() {
    let project = fixture_copy("hello");
    let tools = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = crate::harness::pyapp_build_command(project.path(), out.path())
        .arg("--no-index")
        .env(
            "PATH",
            crate::harness::path_with_refusing_systemd_analyze(tools.path()),
        )
        .output()
        .unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    assert_eq!(
        message.trim_end(),
        "error: metadata.yaml: tasks[0].schedule: \"*-*-* 03:00:00\" is refused by \
         `systemd-analyze calendar` (exit status: 1): Failed to parse calendar specification \
         '*-*-* 03:00:00': refused by this test"
    );
    assert_eq!(
        std::fs::read_to_string(tools.path().join("systemd-analyze.log")).unwrap(),
        "calendar -- *-*-* 03:00:00\n"
    );
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        0,
        "no bundle"
    );
}

#[test]
fn refuses_bad_config_spec() {
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "configuration.yaml",
                "default: 2\n    min: 1",
                "default: 20\n    min: 1",
            )
        },
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (
            1,
            "error: configuration.yaml:17: fields[2].default: 20 is above max 16"
        )
    );
}

#[test]
fn refuses_a_command_no_wheel_provides() {
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "metadata.yaml",
                "command: hello-cleanup",
                "command: hello-cleanpu",
            )
        },
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: metadata.yaml: tasks[0].command: program `hello-cleanpu` is not installed by any wheel of the bundle (nor python, nor an absolute path)\nhint: pin the distribution whose console script it is, or fix the command's spelling")
    );
}

#[test]
fn refuses_a_pin_without_a_wheel() {
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "pinned-requirements.txt",
                "werkzeug==3.1.9",
                "werkzeug==3.1.9\nsix==1.16.0",
            )
        },
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: no wheel in the --wheels directories for six==1.16.0 (pinned-requirements.txt:12) (and --no-index forbids downloading)\nhint: add the wheels to a --wheels directory (pip download --only-binary=:all: -d DIR ...), or drop --no-index")
    );
}

#[test]
fn refuses_an_incomplete_closure() {
    let (code, message) = refused(
        |p| edit(p, "pinned-requirements.txt", "click==8.5.1\n", ""),
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: the pinned dependencies are incomplete: flask-3.0.3-py3-none-any.whl requires `click>=8.1.3`, which is not pinned\nhint: pin the whole closure: uv pip compile pyproject.toml -o pinned-requirements.txt")
    );
}

#[test]
fn refuses_a_pin_the_closure_contradicts() {
    let (code, message) = refused(
        |p| edit(p, "pyproject.toml", "\"flask>=3.0\"", "\"flask>=3.1\""),
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: the pinned dependencies are incomplete: hello-1.0.0-py3-none-any.whl requires `flask>=3.1`, but flask==3.0.3 is pinned\nhint: pin the whole closure: uv pip compile pyproject.toml -o pinned-requirements.txt")
    );
}

#[test]
fn refuses_wheels_that_do_not_fit_the_target() {
    let (code, message) = refused(
        |_| {},
        &[
            "--python-version",
            "3.12",
            "--platform",
            "manylinux_2_28_x86_64",
        ],
    );
    assert_eq!(code, 1, "{message}");
    assert!(
        message.starts_with("error: markupsafe==3.0.4: no wheel fits the target Python cp312-cp312-manylinux_2_28_x86_64: found markupsafe-3.0.4-cp311-"),
        "{message}"
    );
}

#[test]
fn refuses_a_hash_mismatch() {
    let digest = "0".repeat(64);
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "pinned-requirements.txt",
                "blinker==1.9.0",
                &format!("blinker==1.9.0 --hash=sha256:{digest}"),
            )
        },
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: blinker==1.9.0: no wheel matches the --hash values at pinned-requirements.txt:2 (tried blinker-1.9.0-py3-none-any.whl)")
    );
}

#[test]
fn refuses_a_loose_pin() {
    let (code, message) = refused(
        |p| edit(p, "pinned-requirements.txt", "flask==3.0.3", "flask>=3.0"),
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        message.ends_with(
            "pinned-requirements.txt:4: `flask>=3.0` is not an exact pin (write name==version)"
        ),
        "{message}"
    );
}

/// pip's rules for requirement files: `#` starts a comment at the start of a line or after
/// any whitespace, and `-r` names a file relative to the one that includes it.
#[test]
fn reads_pins_with_comments_and_includes_as_pip_does() {
    let project = fixture_copy("hello");
    let pins = project.path().join("pinned-requirements.txt");
    let text = std::fs::read_to_string(&pins).unwrap();
    let (first, rest) = text.split_once("flask==3.0.3\n").unwrap();
    std::fs::create_dir(project.path().join("pins")).unwrap();
    std::fs::write(
        project.path().join("pins/web.txt"),
        "flask==3.0.3\t# the web framework\n-r more.txt\n",
    )
    .unwrap();
    std::fs::write(project.path().join("pins/more.txt"), rest).unwrap();
    std::fs::write(
        &pins,
        format!("# a #b\n{first}-r pins/web.txt  # and the rest\n"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let bundle = build_bundle(project.path(), out.path());
    let deps = entries(&bundle)
        .iter()
        .filter(|e| e.0.starts_with("deps/"))
        .count();
    assert_eq!(deps, 11, "10 pins + the app's wheel");
}

#[test]
fn refuses_an_option_pyapp_does_not_support_naming_it() {
    let (code, message) = refused(
        |p| {
            edit(
                p,
                "pinned-requirements.txt",
                "flask==3.0.3\n",
                "flask==3.0.3\n-e ./vendor/six\n",
            )
        },
        &[],
    );
    assert_eq!(
        (code, message.as_str()),
        (1, "error: pinned-requirements.txt:5: option -e is not supported in a pinned requirements file: pin the distribution as name==version and give its wheel")
    );
}

/// The files of a wheel (name -> content), read from `bytes`.
fn wheel_files(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("wheel zip");
    (0..archive.len())
        .map(|index| {
            let mut entry = archive.by_index(index).expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read entry");
            (entry.name().expect("entry name").into_owned(), content)
        })
        .collect()
}

/// Build fixtures/backends/NAME offline; returns the JSON report and the app wheel's files.
fn build_backend_fixture(name: &str, out: &Path) -> (serde_json::Value, BTreeMap<String, Vec<u8>>) {
    let output = std::process::Command::new(crate::harness::bin("pyapp-build"))
        .arg(workspace().join("fixtures/backends").join(name))
        .arg("-o")
        .arg(out)
        .arg("--wheels")
        .arg(crate::harness::backend_wheels())
        .args(["--no-index", "--json"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .unwrap();
    assert!(output.status.success(), "{name}: {}", stderr(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let app_wheel = format!("deps/{}", report["app-wheel"].as_str().unwrap());
    let bundle = Path::new(report["bundle"].as_str().unwrap());
    let (_, _, _, content) = entries(bundle)
        .into_iter()
        .find(|entry| entry.0 == app_wheel)
        .expect("the app's wheel is in the bundle");
    (report, wheel_files(&content))
}

/// The app's wheel is what the project's own build backend makes, for each backend's way
/// of saying what goes in: the same files, byte for byte, as `pip wheel` builds (build
/// isolation, the same backend wheels, offline), and every package, data file and script.
#[test]
fn app_wheel_is_what_pip_builds_with_the_projects_backend() {
    let expected: &[(&str, &str, &[&str], &str)] = &[
        (
            "poetry",
            "poetry.core.masonry.api",
            &["alpha/templates/index.html", "beta/worker.py"],
            "beta-worker = beta.worker:main",
        ),
        (
            "setuptools",
            "setuptools.build_meta",
            &["alpha/data/table.json", "beta/worker.py"],
            "st-worker = beta.worker:main",
        ),
        (
            "setup-cfg",
            "setuptools.build_meta:__legacy__",
            &["alpha/__init__.py", "beta/worker.py"],
            "cfg-worker = beta.worker:main",
        ),
        (
            "hatchling",
            "hatchling.build",
            &["alpha/static/style.css", "beta/worker.py"],
            "hatch-worker = beta.worker:main",
        ),
        (
            "flit",
            "flit_core.buildapi",
            &["flit_app/templates/page.html"],
            "flit-worker = flit_app:main",
        ),
        (
            "pdm",
            "pdm.backend",
            &["alpha/assets/logo.txt", "beta/worker.py"],
            "pdm-worker = beta.worker:main",
        ),
    ];
    for (name, backend, files, script) in expected {
        let out = tempfile::tempdir().unwrap();
        let (report, ours) = build_backend_fixture(name, out.path());
        assert_eq!(report["build-backend"], *backend, "{name}");
        for file in *files {
            assert!(
                ours.contains_key(*file),
                "{name}: {file} not in {:?}",
                ours.keys()
            );
        }
        let entry_points = ours
            .iter()
            .find(|(path, _)| path.ends_with(".dist-info/entry_points.txt"))
            .map(|(_, text)| String::from_utf8_lossy(text).into_owned())
            .unwrap_or_default();
        assert!(
            entry_points
                .replace(' ', "")
                .contains(&script.replace(' ', "")),
            "{name}: {entry_points}"
        );

        // The same project through pip (a copy: setuptools writes build/ into the tree).
        let project = tempfile::tempdir().unwrap();
        let source = workspace().join("fixtures/backends").join(name);
        for entry in walkdir::WalkDir::new(&source) {
            let entry = entry.unwrap();
            let target = project
                .path()
                .join(entry.path().strip_prefix(&source).unwrap());
            if entry.file_type().is_dir() {
                std::fs::create_dir_all(&target).unwrap();
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
        let pip_out = tempfile::tempdir().unwrap();
        let pip = std::process::Command::new("python3")
            .args(["-m", "pip", "wheel", "--no-deps", "--no-index", "--quiet"])
            .arg("--find-links")
            .arg(crate::harness::backend_wheels())
            .arg("--wheel-dir")
            .arg(pip_out.path())
            .arg(project.path())
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .env_remove("PIP_FIND_LINKS")
            .output()
            .unwrap();
        assert!(pip.status.success(), "{name}: pip wheel: {}", stderr(&pip));
        let pip_wheel = std::fs::read_dir(pip_out.path())
            .unwrap()
            .flatten()
            .find(|entry| entry.file_name().to_string_lossy().ends_with(".whl"))
            .expect("pip built a wheel");
        assert_eq!(
            pip_wheel.file_name().to_string_lossy(),
            report["app-wheel"].as_str().unwrap(),
            "{name}"
        );
        let theirs = wheel_files(&std::fs::read(pip_wheel.path()).unwrap());
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the wheels' files differ"
        );
        for (path, content) in &ours {
            assert!(
                content == &theirs[path],
                "{name}: {path} differs from pip's"
            );
        }
    }
}

/// The bug of issue 13: a poetry project with two top-level packages installs both, and
/// its `[tool.poetry.scripts]` program runs code from both.
#[test]
fn poetry_project_with_two_packages_installs_and_runs() {
    let out = tempfile::tempdir().unwrap();
    let (report, _) = build_backend_fixture("poetry", out.path());
    assert_eq!(report["name"], "two-packages");
    assert_eq!(report["version"], "1.2.0");
    let root = tempfile::tempdir().unwrap();
    let installed =
        crate::harness::pyapp_install_at(root.path(), &[report["bundle"].as_str().unwrap()]);
    assert!(installed.status.success(), "{}", stderr(&installed));
    let python = root
        .path()
        .join("applications/two-packages/current/venv/bin/python");
    let run = std::process::Command::new(&python)
        .args(["-c", "import beta.worker; beta.worker.main()"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(String::from_utf8_lossy(&run.stdout), "alpha beta\n");
}

/// fixtures/hello with `lock` (from fixtures/locks) in place of pinned-requirements.txt.
fn hello_locked_with(lock: &str) -> tempfile::TempDir {
    let project = fixture_copy("hello");
    std::fs::remove_file(project.path().join("pinned-requirements.txt")).unwrap();
    std::fs::copy(
        workspace().join("fixtures/locks").join(lock),
        project.path().join(lock),
    )
    .unwrap();
    project
}

/// uv.lock, poetry.lock and pylock.toml are read as they are: the bundle gets the wheels
/// pinned-requirements.txt would give it, each checked against the lock's sha256.
#[test]
fn uv_lock_poetry_lock_and_pylock_pin_the_bundle() {
    let dependencies = |report: &serde_json::Value| -> Vec<String> {
        report["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["wheel"].as_str().unwrap().to_string())
            .collect()
    };
    let out = tempfile::tempdir().unwrap();
    let output = pyapp_build(&workspace().join("fixtures/hello"), out.path(), &["--json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let from_requirements: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(from_requirements["pins-from"], "pinned-requirements.txt");
    for lock in ["uv.lock", "poetry.lock", "pylock.toml"] {
        let project = hello_locked_with(lock);
        let out = tempfile::tempdir().unwrap();
        let output = pyapp_build(project.path(), out.path(), &["--json"]);
        assert!(output.status.success(), "{lock}: {}", stderr(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["pins-from"], lock);
        assert_eq!(
            dependencies(&report),
            dependencies(&from_requirements),
            "{lock}"
        );
    }

    let (code, message) = {
        let project = hello_locked_with("uv.lock");
        edit(
            project.path(),
            "uv.lock",
            "sha256:ba0efaa9080b619ff2f3459d1d500c57bddea4a6b424b60a91141db6fd2f08bc",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        );
        let out = tempfile::tempdir().unwrap();
        let output = pyapp_build(project.path(), out.path(), &[]);
        (output.status.code(), stderr(&output))
    };
    assert_eq!(code, Some(1), "{message}");
    assert!(
        message
            .starts_with("error: blinker==1.9.0: no wheel matches the --hash values at uv.lock:"),
        "{message}"
    );
}

/// A pin nothing requires is named in a warning and the report, and left out of the bundle
/// unless --keep-unused-pins.
#[test]
fn pins_nothing_requires_are_reported_and_left_out() {
    let project = fixture_copy("hello");
    let pins = project.path().join("pinned-requirements.txt");
    let mut text = std::fs::read_to_string(&pins).unwrap();
    text.push_str("pluggy==1.7.0\n");
    std::fs::write(&pins, text).unwrap();
    for (extra, packed) in [(&[][..], false), (&["--keep-unused-pins"][..], true)] {
        let out = tempfile::tempdir().unwrap();
        let mut args = vec!["--json"];
        args.extend_from_slice(extra);
        let output = pyapp_build(project.path(), out.path(), &args);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["unused-pins"], serde_json::json!(["pluggy"]));
        let verb = if packed { "packed" } else { "left out" };
        assert!(
            stderr(&output).contains(&format!(
                "warning: {verb} 1 pin(s) nothing requires: pluggy"
            )),
            "{}",
            stderr(&output)
        );
        let names: Vec<String> = entries(Path::new(report["bundle"].as_str().unwrap()))
            .into_iter()
            .map(|entry| entry.0)
            .collect();
        assert_eq!(
            names.contains(&"deps/pluggy-1.7.0-py3-none-any.whl".to_string()),
            packed,
            "{names:?}"
        );
    }
}

/// When pip cannot fetch some pins, the message names those, not all of them.
#[test]
fn a_missing_wheel_names_the_pins_without_one() {
    let project = fixture_copy("hello");
    let pins = project.path().join("pinned-requirements.txt");
    let mut text = std::fs::read_to_string(&pins).unwrap();
    text.push_str("no-such-dist-xyz==1.0\nalso-missing-xyz==2.0\n");
    std::fs::write(&pins, text).unwrap();
    let out = tempfile::tempdir().unwrap();
    // pip, offline: the fixture's wheels are its only "index".
    let output = std::process::Command::new(crate::harness::bin("pyapp-build"))
        .arg(project.path())
        .arg("-o")
        .arg(out.path())
        .arg("--wheels")
        .arg(crate::harness::backend_wheels())
        .env("PIP_NO_INDEX", "1")
        .env("PIP_FIND_LINKS", crate::harness::hello_wheels())
        .output()
        .unwrap();
    let message = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{message}");
    let error = message
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default();
    assert_eq!(
        error,
        "error: no wheel for 2 of 12 pin(s): pinned-requirements.txt:12: no-such-dist-xyz==1.0: pip download found neither a wheel nor an sdist; pinned-requirements.txt:13: also-missing-xyz==2.0: pip download found neither a wheel nor an sdist"
    );
}

/// --python-version takes the server's full version: a `python_full_version` marker is
/// decided for it (Debian 12's 3.11.2), not for the Python that builds.
#[test]
fn python_full_version_markers_are_decided_for_the_server() {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "pinned-requirements.txt",
        "flask==3.0.3",
        "flask==3.0.3 ; python_full_version >= '3.11.3'",
    );
    let out = tempfile::tempdir().unwrap();
    let newer = pyapp_build(project.path(), out.path(), &["--python-version", "3.11.7"]);
    assert!(newer.status.success(), "{}", stderr(&newer));
    let out = tempfile::tempdir().unwrap();
    let debian = pyapp_build(project.path(), out.path(), &["--python-version", "3.11.2"]);
    assert_eq!(debian.status.code(), Some(1), "{}", stderr(&debian));
    assert!(
        stderr(&debian).starts_with(
            "error: the pinned dependencies are incomplete: hello-1.0.0-py3-none-any.whl requires `flask>=3.0`, which is not pinned"
        ),
        "{}",
        stderr(&debian)
    );
}

/// A pin that has only an sdist (docopt 0.6.2, setup.py only) is built into a wheel by its
/// own backend, checked against its --hash, cached, bundled and named in the report; the
/// next build takes the cached wheel without the index.
#[test]
fn a_pin_with_only_an_sdist_is_built_cached_and_bundled() {
    const DOCOPT_SHA256: &str = "49b3a825280bd66b3aa83585ef59c4a8c82f2c8a522dbe754a8bc8d08c85c491";
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "pyproject.toml",
        "\"pyyaml>=6\",",
        "\"pyyaml>=6\",\n    \"docopt>=0.6\",",
    );
    let pins = project.path().join("pinned-requirements.txt");
    let mut text = std::fs::read_to_string(&pins).unwrap();
    text.push_str(&format!("docopt==0.6.2 --hash=sha256:{DOCOPT_SHA256}\n"));
    std::fs::write(&pins, text).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let build = |extra: &[&str]| {
        let out = tempfile::tempdir().unwrap();
        let output = crate::harness::pyapp_build_command(project.path(), out.path())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--json"])
            .args(extra)
            // pip, offline: the sdists and, for preparing their metadata, the build
            // backends are its only "index".
            .env("PIP_NO_INDEX", "1")
            .env(
                "PIP_FIND_LINKS",
                format!(
                    "{} {}",
                    workspace().join("target/wheels/sdists").display(),
                    crate::harness::backend_wheels().display()
                ),
            )
            .output()
            .unwrap();
        (out, output)
    };
    let (_first_out, first) = build(&[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let report: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(
        report["built-from-sdist"],
        serde_json::json!(["docopt-0.6.2-py2.py3-none-any.whl"])
    );
    let bundle = Path::new(report["bundle"].as_str().unwrap());
    assert!(entries(bundle)
        .iter()
        .any(|entry| entry.0 == "deps/docopt-0.6.2-py2.py3-none-any.whl"));
    assert!(cache
        .path()
        .join("built")
        .join(DOCOPT_SHA256)
        .join("docopt-0.6.2-py2.py3-none-any.whl")
        .is_file());

    let (_second_out, second) = build(&["--no-index"]);
    assert!(second.status.success(), "{}", stderr(&second));
    let again: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(
        again["sha256"], report["sha256"],
        "the cached wheel is the one built"
    );

    let mut text = std::fs::read_to_string(&pins).unwrap();
    text = text.replace(DOCOPT_SHA256, &"0".repeat(64));
    std::fs::write(&pins, text).unwrap();
    let (_third_out, third) = build(&["--no-index"]);
    assert_eq!(third.status.code(), Some(1), "{}", stderr(&third));
    assert!(
        stderr(&third).starts_with(
            "error: no wheel for 1 of 11 pin(s): pinned-requirements.txt:12: docopt==0.6.2: its sdist docopt-0.6.2.tar.gz matches none of the --hash values"
        ),
        "{}",
        stderr(&third)
    );
}

/// The app's wheel is taken from the cache only for the same inputs: a changed source file
/// builds a new wheel with the change, and the unchanged tree the same bundle as before.
#[test]
fn the_cached_app_wheel_is_used_only_for_the_same_sources() {
    let project = fixture_copy("hello");
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap().to_string();
    let app_file = |out: &Path| -> String {
        let output = pyapp_build(project.path(), out, &["--json", "--cache-dir", &cache_arg]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let app_wheel = format!("deps/{}", report["app-wheel"].as_str().unwrap());
        let (_, _, _, wheel) = entries(Path::new(report["bundle"].as_str().unwrap()))
            .into_iter()
            .find(|entry| entry.0 == app_wheel)
            .unwrap();
        String::from_utf8(wheel_files(&wheel)["hello/web.py"].clone()).unwrap()
    };
    let first = tempfile::tempdir().unwrap();
    let before = app_file(first.path());
    let entries_in_cache = || {
        std::fs::read_dir(cache.path().join("app-builds"))
            .unwrap()
            .count()
    };
    assert_eq!(entries_in_cache(), 1);
    let again = tempfile::tempdir().unwrap();
    assert_eq!(app_file(again.path()), before);
    assert_eq!(entries_in_cache(), 1, "the same inputs are not built again");
    assert!(
        std::fs::read(first.path().join("hello-1.0.0.pyapp")).unwrap()
            == std::fs::read(again.path().join("hello-1.0.0.pyapp")).unwrap()
    );

    let web = project.path().join("src/hello/web.py");
    let mut text = std::fs::read_to_string(&web).unwrap();
    text.push_str("\nCHANGED = True\n");
    std::fs::write(&web, text).unwrap();
    let changed = tempfile::tempdir().unwrap();
    assert!(app_file(changed.path()).ends_with("\nCHANGED = True\n"));
    assert_eq!(entries_in_cache(), 2);
}
