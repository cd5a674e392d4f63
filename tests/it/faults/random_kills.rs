//! SIGKILL at seeded random moments of an install, an upgrade, a rollback and a remove.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use super::{crash_and_recover, on_two_threads, run, Kill, Lab, Op, SplitMix};
use crate::harness::stderr;

/// Random kills: the same seed (`PYAPP_FAULT_SEED` to replay one) kills at the same delays.
#[test]
fn fifty_random_kills_lose_nothing_and_the_next_run_recovers() {
    const RUNS: usize = 52;
    let seed = std::env::var("PYAPP_FAULT_SEED")
        .ok()
        .and_then(|seed| seed.parse().ok())
        .unwrap_or(0x5eed_f417);
    let started = Instant::now();
    let lab = Lab::new();
    // How long the process takes to start, and each command here and now (the fastest of
    // two runs): the delays fall between the start and the end of the command's work.
    let fastest = |args: &[OsString], op: Option<Op>| {
        (0..2)
            .map(|_| {
                let scratch = tempfile::tempdir_in(lab.dir.path()).expect("temp dir");
                let root = op.map_or(scratch.path().to_owned(), |op| {
                    op.prepare(&lab, scratch.path())
                });
                let begun = Instant::now();
                let output = run(&root, args);
                assert!(output.status.success(), "{args:?}: {}", stderr(&output));
                begun.elapsed()
            })
            .min()
            .expect("two runs")
    };
    let start = fastest(&["--version".into()], None);
    let lengths: Vec<Duration> = Op::ALL
        .iter()
        .map(|op| fastest(&op.args(&lab), Some(*op)))
        .collect();
    let mut rng = SplitMix(seed);
    let runs: Vec<(Op, Duration)> = (0..RUNS)
        .map(|index| {
            let which = index % Op::ALL.len();
            let work = lengths[which].saturating_sub(start).as_micros() as u64;
            let delay = start + Duration::from_micros(rng.below(work));
            (Op::ALL[which], delay)
        })
        .collect();
    let (failures, killed) = on_two_threads(
        &lab,
        &runs,
        |(op, delay)| format!("{op:?} killed after {delay:?} (seed {seed})"),
        |(op, delay), work| crash_and_recover(&lab, *op, Kill::After(*delay), work),
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Delays scaled to the commands' lengths kill many runs part-way, not after the end
    // (installs take ~100 ms now, so the machine's load moves this share: a third is sure).
    assert!(
        killed >= RUNS / 3,
        "only {killed} of {RUNS} runs were killed"
    );
    eprintln!(
        "{RUNS} random kills ({killed} part-way; start {start:?}, commands {lengths:?}) in {:.1?}",
        started.elapsed()
    );
}
