//! SIGKILL at every fault point (`PYAPP_INSTALL_KILL_AT`) of the commands that reach it.

use std::time::Instant;

use std::os::unix::process::ExitStatusExt;

use super::{crash_and_recover, on_two_threads, pyapp_install, run, scratch_dir, Kill, Lab, Op};
use crate::harness::stderr;

/// Which commands reach each fault point (`Op::Install` is a first install, which has no
/// old release to prune or revert to).
const POINTS: [(&str, &[Op]); 20] = [
    ("extracted", &[Op::Install, Op::Upgrade]),
    ("store-unpacked", &[Op::Install, Op::Upgrade]),
    ("mid-link", &[Op::Install, Op::Upgrade]),
    ("store-published", &[Op::Install, Op::Upgrade]),
    ("staged", &[Op::Install, Op::Upgrade]),
    ("after-staging", &[Op::Install, Op::Upgrade]),
    ("after-config", &[Op::Install, Op::Upgrade]),
    ("after-stop", &[Op::Install, Op::Upgrade]),
    ("after-switch", &[Op::Install, Op::Upgrade]),
    ("mid-prune", &[Op::Upgrade]),
    ("before-receipt", &[Op::Install, Op::Upgrade]),
    ("after-receipt", &[Op::Install, Op::Upgrade]),
    ("revert-after-stop", &[Op::Rollback]),
    ("revert-after-switch", &[Op::Rollback]),
    ("rollback-before-receipt", &[Op::Rollback]),
    ("remove-after-units", &[Op::Remove]),
    ("remove-after-current", &[Op::Remove]),
    ("mid-remove", &[Op::Remove]),
    ("remove-before-receipt", &[Op::Remove]),
    ("mid-gc", &[Op::Upgrade, Op::Remove]),
];

#[test]
fn a_kill_at_any_fault_point_loses_nothing_and_the_next_run_recovers() {
    let names: Vec<&str> = POINTS.iter().map(|(name, _)| *name).collect();
    assert_eq!(
        names,
        pyapp_fs::fault::POINTS,
        "a fault point is not tested"
    );
    let started = Instant::now();
    let lab = Lab::new();
    let cases: Vec<(&str, Op)> = POINTS
        .iter()
        .flat_map(|(point, ops)| ops.iter().map(move |op| (*point, *op)))
        .collect();
    let (failures, killed) = on_two_threads(
        &lab,
        &cases,
        |(point, op)| format!("{op:?} killed at {point}"),
        |(point, op), work| crash_and_recover(&lab, *op, Kill::At(point), work),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(killed, cases.len());
    eprintln!(
        "{} fault-point kills and recoveries in {:.1?}",
        cases.len(),
        started.elapsed()
    );
}

/// Issue 12: an upgrade (1.1.0 to 1.2.0) killed between its switch and its receipt, then
/// `rollback`: it goes back to 1.1.0, the receipt completed from 1.2.0's own record,
/// instead of refusing until the bundle is installed again.
#[test]
fn a_rollback_after_a_crash_between_switch_and_receipt_goes_back() {
    let lab = Lab::new();
    for point in ["after-switch", "before-receipt"] {
        let work = scratch_dir();
        let root = Op::Upgrade.prepare(&lab, work.path());
        let killed = pyapp_install(&root, &Op::Upgrade.args(&lab))
            .env("PYAPP_INSTALL_KILL_AT", point)
            .output()
            .expect("run pyapp-install");
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "{point}: {}",
            stderr(&killed)
        );
        let rolled = run(&root, &Op::Rollback.args(&lab));
        assert!(rolled.status.success(), "{point}: {}", stderr(&rolled));
        lab.check_recovered(&root, Some(lab.release(1)), Some(&lab.kept))
            .unwrap_or_else(|err| panic!("{point}: {err}"));
    }
}
