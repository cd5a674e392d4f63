//! Two installs of one app at once, and the lock of a killed holder.

use std::ffi::OsString;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};

use super::{
    bundle_bytes, check_complete, current_release, pyapp_install, run, scratch_dir, Version, APP,
    VERSIONS,
};
use crate::harness::stderr;

#[test]
fn two_installs_at_once_one_installs_the_other_fails_fast_or_waits() {
    let dir = scratch_dir();
    let versions: Vec<Version> = VERSIONS[..2]
        .iter()
        .zip(bundle_bytes())
        .map(|(version, bytes)| Version::new(dir.path(), version, bytes))
        .collect();
    let check_current = |root: &Path, expected: &Version| {
        let app = root.join(APP);
        assert_eq!(current_release(&app), Ok(Some(expected.release.clone())));
        check_complete(&app.join("releases").join(&expected.release), expected).expect("complete");
    };
    // Two installs of the same bundle started together, without --wait.
    let root = dir.path().join("fail-fast");
    let both = |root: &Path, wait: bool, version: &Version| -> Vec<Output> {
        let mut args: Vec<OsString> = vec!["--json".into()];
        if wait {
            args.push("--wait".into());
        }
        args.push(version.bundle.clone().into());
        let children: Vec<_> = (0..2)
            .map(|_| {
                pyapp_install(root, &args)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .expect("start pyapp-install")
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().expect("wait"))
            .collect()
    };
    let action = |output: &Output| -> String {
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("--json report");
        report["action"].as_str().expect("action").to_owned()
    };
    let outcomes = both(&root, false, &versions[0]);
    let installed: Vec<&Output> = outcomes
        .iter()
        .filter(|output| output.status.success() && action(output) == "installed")
        .collect();
    assert_eq!(installed.len(), 1, "{outcomes:?}");
    for output in &outcomes {
        let locked = output.status.code() == Some(1)
            && stderr(output).contains("error: hello is locked by process ")
            && stderr(output).contains("hint: wait for it to finish, or run again with --wait");
        let came_after = output.status.success();
        assert!(locked || came_after, "{}", stderr(output));
        if locked {
            eprintln!("the second install failed fast on the lock");
        }
    }
    check_current(&root, &versions[0]);

    // With --wait, two upgrades at once both succeed, the second finding it done.
    let outcomes = both(&root, true, &versions[1]);
    for output in &outcomes {
        assert!(output.status.success(), "{}", stderr(output));
    }
    let mut actions: Vec<String> = outcomes.iter().map(action).collect();
    actions.sort();
    assert_eq!(actions, ["unchanged", "upgraded"]);
    check_current(&root, &versions[1]);

    // The lock of a process killed while holding it holds its pid, and blocks no one.
    let root = dir.path().join("killed");
    let killed = pyapp_install(
        &root,
        &["--quiet".into(), versions[0].bundle.clone().into()],
    )
    .env("PYAPP_INSTALL_KILL_AT", "after-switch")
    .output()
    .expect("run pyapp-install");
    assert_eq!(killed.status.signal(), Some(9), "{}", stderr(&killed));
    let lock = root.join(APP).join(".pyapp/lock");
    let holder = fs::read_to_string(&lock).expect("read the lock file");
    assert!(holder.trim().parse::<u32>().is_ok(), "{holder:?}");
    let next = run(&root, &["--json".into(), versions[0].bundle.clone().into()]);
    assert!(next.status.success(), "{}", stderr(&next));
    assert_eq!(action(&next), "installed");
    check_current(&root, &versions[0]);
    assert_eq!(fs::read_to_string(&lock).expect("read the lock file"), "");
}
