//! The generated hardening against a real server that breaks under it: gunicorn 20.1.0 (from
//! PyPI, as its authors released it) calls `os.setuid` on its own user in every worker,
//! which `SystemCallFilter=~@privileged` refuses. Under a real systemd (`systemd-sandbox`)
//! the example built with it fails its health check, and the error shows the journal's
//! `PermissionError`; with `relax: [setuid]` on the service it runs, `status` says what is
//! relaxed, and `systemd-analyze security` scores the relaxed unit (FORMAT.md 8.4).

use std::path::Path;
use std::process::Command;

use crate::harness::{self, edit, fact, fixture_copy, hello_wheels, run_in_sandbox, workspace};
use crate::units::exposure;

const SCRIPT: &str = r#"set -u
OUT=$1; INSTALL=$2; STRICT=$3; RELAXED=$4
step() { NAME=$1; shift; timeout 300 "$@" > $OUT/$NAME.log 2>&1; echo $? > $OUT/$NAME.rc; }
step strict "$INSTALL" --python /usr/bin/python3 "$STRICT"
step relaxed "$INSTALL" --python /usr/bin/python3 "$RELAXED"
"$INSTALL" --json status hello > $OUT/status.json 2> $OUT/status.err
"$INSTALL" status hello > $OUT/status.txt 2>&1
systemd-analyze security --no-pager hello-web.service > $OUT/security 2>&1
exit 0
"#;

/// The example with gunicorn 20.1.0, its web service relaxing `relax`, built into `out`.
fn bundle(work: &Path, wheels: &Path, name: &str, relax: &str) -> std::path::PathBuf {
    let project = fixture_copy("hello");
    edit(
        project.path(),
        "pinned-requirements.txt",
        "gunicorn==23.0.0\n",
        "gunicorn==20.1.0\nsetuptools==69.5.1\n",
    );
    edit(
        project.path(),
        "pyproject.toml",
        "\"gunicorn>=22\"",
        "\"gunicorn>=20\"",
    );
    edit(
        project.path(),
        "metadata.yaml",
        "    restart: on-failure\n",
        &format!("    restart: on-failure\n{relax}"),
    );
    let out = work.join(name);
    let built = Command::new(harness::bin("pyapp-build"))
        .arg(project.path())
        .arg("-o")
        .arg(&out)
        .arg("--wheels")
        .arg(wheels)
        .arg("--wheels")
        .arg(harness::backend_wheels())
        .arg("--no-index")
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", harness::stderr(&built));
    std::path::PathBuf::from(String::from_utf8(built.stdout).unwrap().trim())
}

#[test]
fn an_old_gunicorn_needs_setuid_relaxed_and_says_so() {
    let sandbox = harness::sandbox();
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    // The example's wheels with gunicorn 20.1.0 (and the setuptools it requires) instead.
    let wheels = work.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let old = workspace().join("target/wheels/old-gunicorn");
    for dir in [hello_wheels(), old] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".whl") && !name.starts_with("gunicorn-23") {
                std::fs::copy(&path, wheels.join(&name)).unwrap();
            }
        }
    }
    let strict = bundle(work.path(), &wheels, "strict", "");
    let relaxed = bundle(work.path(), &wheels, "relaxed", "    relax: [setuid]\n");
    let out = run_in_sandbox(
        &sandbox,
        work.path(),
        SCRIPT,
        [harness::bin("pyapp-install"), strict, relaxed],
    );
    let read = |name: &str| fact(&out, name);

    assert_eq!(read("strict.rc"), "1", "{}", read("strict.log"));
    let strict_log = read("strict.log");
    assert!(
        strict_log.contains("health check failed")
            && strict_log.contains("os.setuid(uid)")
            && strict_log.contains("PermissionError: [Errno 1] Operation not permitted"),
        "{strict_log}"
    );

    assert_eq!(read("relaxed.rc"), "0", "{}", read("relaxed.log"));
    assert!(read("relaxed.log").contains("health check: GET /health on 127.0.0.1:"));
    let status: serde_json::Value = serde_json::from_str(&read("status.json")).unwrap();
    assert_eq!(
        status["services"][0]["relaxed"],
        serde_json::json!(["setuid"])
    );
    assert!(
        read("status.txt").contains("hardening relaxed: setuid"),
        "{}",
        read("status.txt")
    );
    let security = read("security");
    let score = exposure(&security);
    eprintln!("systemd-analyze security hello-web.service with relax: [setuid]: {score}");
    assert!(
        score <= 3.0,
        "relaxing setuid costs too much: {score}\n{security}"
    );
}
