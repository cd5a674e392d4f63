//! SIGKILL at every fault point (`PYAPP_INSTALL_KILL_AT`) of the commands that reach it.

use std::time::Instant;

use super::{crash_and_recover, on_two_threads, Kill, Lab, Op};

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
