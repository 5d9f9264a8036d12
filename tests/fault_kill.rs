//! `kill -9` of a real `millrace run` at random moments, 24 times in a row,
//! against the simulated farm and the tickerplant stand-in (both running
//! throughout). The delays (50 ms to 1.5 s, seeded; the seed is printed and
//! `MILLRACE_FAULT_SEED` replays it) put kills into start-up, WAL recovery,
//! group commits, deliveries and checkpoints.
//!
//! After every kill the WAL's durable end is read; a durable sample can
//! never become undurable, so it must only grow. At the end every sample
//! that was durable reached the stand-in (no gap in seq), a seq that came
//! twice came with the same tag and value (re-delivery after a restart,
//! which kdb+ removes by seq), and every value is the farm's.

mod common;
mod fault_proc_support;

use std::time::Duration;

use fault_proc_support::*;

const KILLS: usize = 24;

#[test]
fn kill_9_at_random_moments_loses_no_durable_sample() {
    let mut rng = Rng::new(seed("fault_kill"));
    let spec = PlantSpec::default();
    let recorder = Delivered::shared(spec.devices, spec.tags);
    let tp = tickerplant("127.0.0.1:0", &recorder, None);
    let plant = Plant::start(&tp.local_addr().to_string(), spec);
    let log = plant.dir.path().join("run.log");
    let mut durable_after_kill = Vec::with_capacity(KILLS);
    for round in 0..KILLS {
        let mut run = Run::spawn(&plant.config, &log, &[]);
        let delay_ms = rng.range(50, 1500);
        std::thread::sleep(Duration::from_millis(delay_ms));
        run.signal(9);
        let status = run.wait(Duration::from_secs(10));
        assert!(
            !status.success(),
            "round {round}: a SIGKILLed process cannot exit 0"
        );
        let durable = durable_seq(&plant.wal);
        if let Some(&before) = durable_after_kill.last() {
            assert!(
                durable >= before,
                "round {round} (kill after {delay_ms} ms): durable end went back \
                 from {before} to {durable}"
            );
        }
        durable_after_kill.push(durable);
    }
    // A last run recovers, delivers the backlog and stops cleanly.
    let run = Run::spawn(&plant.config, &log, &[]);
    let last_kill = *durable_after_kill.last().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || {
            recorder.lock().unwrap().verifier.lost(last_kill) == 0
        }),
        "the backlog durable at the last kill (seq {last_kill}) was not delivered"
    );
    let (status, text) = run.stop();
    assert!(status.success(), "clean stop exit status {status}:\n{text}");
    let durable = durable_seq(&plant.wal);
    assert!(durable >= last_kill);
    let r = recorder.lock().unwrap();
    r.assert_complete(durable, "after 24 kills and a clean stop");
    assert_eq!(
        r.verifier.duplicates_after_dedup, 0,
        "a device answer was delivered under two seqs"
    );
    // The kills did land while samples flowed, not only before start-up.
    let distinct = durable_after_kill
        .windows(2)
        .filter(|w| w[1] > w[0])
        .count();
    assert!(
        distinct >= KILLS / 4,
        "the WAL grew in only {distinct} of {KILLS} rounds: {durable_after_kill:?}"
    );
    eprintln!(
        "fault_kill: {KILLS} kills, durable {durable}, rows {}, duplicate seqs {}",
        r.rows,
        r.verifier.duplicate_seqs()
    );
}
