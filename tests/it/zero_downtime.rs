//! Upgrades nobody notices (FORMAT.md 8.8): bench/zero_downtime.py's short run under
//! systemd-sandbox, one round of upgrade, rollback, `config --set` and an upgrade to a
//! release whose health check fails, under load. Not timed: it checks that no request
//! failed and that the failing release never answered one: the example on a port (with an
//! HTTP health check and with a health check command), and a Django app on a unix socket
//! behind nginx.

use std::process::Command;

use crate::harness;

/// One round of `app` with `listen` and health `check` (`http` or `command`); returns what
/// the refused upgrade said.
fn short_run(app: &str, listen: &str, check: &str) -> String {
    let sandbox = harness::sandbox();
    let installer = harness::bin("pyapp-install");
    harness::bin("pyapp-build");
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let results = work.path().join("results.json");
    let run = Command::new("python3")
        .arg(harness::workspace().join("bench/zero_downtime.py"))
        .args([
            "--app", app, "--rounds", "1", "--listen", listen, "--check", check,
        ])
        .arg("--json")
        .arg(&results)
        .arg("--sandbox")
        .arg(&sandbox)
        .arg("--bin-dir")
        .arg(installer.parent().unwrap())
        .arg("--wheels")
        .arg(harness::workspace().join("target/wheels"))
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&results).unwrap_or_default();
    assert!(
        run.status.success(),
        "{}\n{}\n{report}",
        String::from_utf8_lossy(&run.stdout),
        harness::stderr(&run)
    );
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    for phase in ["rest", "upgrade", "rollback", "config", "failing-upgrade"] {
        let row = &report[phase];
        assert!(row["sent"].as_u64().unwrap() > 0, "{phase}: {report}");
        assert_eq!(row["failed"], 0, "{phase}: {report}");
        assert!(row["releases"].get("1.2.0").is_none(), "{phase}: {report}");
    }
    // Both releases served: the upgrade and the rollback really moved the traffic.
    assert!(
        report["rollback"]["releases"].get("1.1.0").is_some(),
        "{report}"
    );
    assert!(
        report["config"]["releases"].get("1.0.0").is_some(),
        "{report}"
    );
    report["refused"].as_str().unwrap().to_owned()
}

#[test]
fn no_request_fails_through_upgrade_rollback_and_config_on_a_port() {
    short_run("hello", "port", "http");
}

/// A health check command runs before traffic moves, against the new release on its
/// private socket, as the app user: 1.2.0's `hello-check /missing` reached 1.2.0 there.
#[test]
fn a_health_check_command_checks_the_new_release_before_it_serves() {
    let refused = short_run("hello", "port", "command");
    assert!(
        refused.contains(
            "hello-check: GET /missing on unix:/applications/hello/.pyapp/check/web.sock: 404, \
             release 1.2.0"
        ) && refused.contains("hook health-check failed (exit status 1)"),
        "{refused}"
    );
}

/// The second app: the Django project of tests/it/real_apps.rs, on a unix socket behind
/// nginx, its static files served from data/ (whose group an upgrade must not take away
/// from the web server for a moment).
#[test]
fn no_request_fails_through_nginx_to_a_django_app_on_a_socket() {
    short_run("shopsite", "socket", "http");
}
