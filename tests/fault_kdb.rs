//! kdb+ misbehaving on the network, with `millrace run` as a real child
//! process, the farm as the plant and the tickerplant stand-in behind
//! [`FaultProxy`] (real sockets on 127.0.0.1):
//!
//! - a kdb+ that accepts and then stops reading (TCP backpressure): millrace
//!   stays up, keeps polling into the WAL, shows the stalled sink in its
//!   metrics, and delivers every durable seq once kdb+ reads again;
//! - SIGTERM while the sink is blocked on that kdb+: the process still exits
//!   by the stop deadline, and a restart delivers the rest;
//! - a kdb+ that resets connections (RST, mid-message too): reconnects with
//!   growing backoff, at-least-once delivery, complete after de-duplication
//!   by seq.
//!
//! Every delivered value is checked against the farm and against the WAL.

mod common;
mod fault_support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fault_support::proxy::FaultProxy;
use fault_support::*;
use millrace::farm::{Farm, FarmHandle, FarmOptions};
use millrace::kdb::{Tickerplant, TickerplantOptions};

const DEVICES: u32 = 20;
const TAGS: u32 = 50;
const SEQ_CAPACITY: u64 = 20_000_000;
/// `src/pipeline`: sinks keep delivering this long after a stop.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

fn farm() -> FarmHandle {
    Farm::start(FarmOptions {
        devices: DEVICES,
        register_count: 125,
        ..Default::default()
    })
    .expect("start the farm")
}

fn plant(dir: &Path, farm: &FarmHandle, sink: &str) -> std::path::PathBuf {
    write_plant(
        dir,
        farm.ports(),
        TAGS,
        sink,
        "20ms",
        &[("batch_rows = 10000", "batch_rows = 2000")],
    )
}

fn stand_in(delivered: &Arc<Mutex<Delivered>>) -> Tickerplant {
    let options = TickerplantOptions {
        recorder: Some(delivered.clone()),
        ..Default::default()
    };
    Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in")
}

/// Everything durable arrived, exactly once after de-duplication by seq,
/// with the farm's values and the WAL's qualities.
fn assert_complete(delivered: &Arc<Mutex<Delivered>>, wal: &Path) -> u64 {
    let durable = durable_seq(wal);
    assert!(durable > 0, "nothing became durable");
    let d = delivered.lock().unwrap();
    let v = &d.verifier;
    let lost = v.lost(durable);
    assert_eq!(
        lost, 0,
        "{lost} of {durable} durable seqs never reached kdb+"
    );
    assert_eq!(
        v.out_of_range_seqs(),
        0,
        "seqs beyond the durable end arrived"
    );
    assert_eq!(v.mismatches, 0, "values differ from what the farm served");
    assert_eq!(v.unparsed_syms, 0);
    assert_eq!(
        v.duplicates_after_dedup, 0,
        "an answer arrived under two seqs"
    );
    assert_eq!(d.conflicts, 0, "a seq arrived twice with different values");
    let check = check_wal(wal, &d, DEVICES, TAGS, &[]);
    assert_eq!(check.samples, durable);
    assert_eq!(check.undelivered, 0, "{check:?}");
    assert_eq!(
        check.value_mismatches, 0,
        "delivered values differ from the WAL"
    );
    eprintln!(
        "durable {durable}, rows {}, removed by seq {}",
        v.rows,
        v.duplicate_seqs()
    );
    durable
}

/// Waits until the sink is within a second of data of the durable end, so
/// that the stop's deliver deadline is never what decides completeness.
fn wait_caught_up(run: &RunChild) {
    wait_for("the sink to catch up", Duration::from_secs(90), || {
        lag(run) < 50_000.0
    });
}

fn acked(run: &RunChild) -> f64 {
    run.metric("millrace_sink_acked_samples_total{sink=\"tp\"}")
}

fn lag(run: &RunChild) -> f64 {
    run.metric("millrace_sink_lag_samples{sink=\"tp\"}")
}

fn durable_now(run: &RunChild) -> f64 {
    run.metric("millrace_wal_durable_seq")
}

/// Pauses the proxy and waits until millrace is pushed back: acknowledgements
/// stop while the WAL keeps growing. Returns (acked, durable) at that point.
fn stall(run: &RunChild, proxy: &FaultProxy) -> (f64, f64) {
    proxy.pause();
    let mut last = (acked(run), proxy.forwarded());
    let mut still = 0;
    // Acknowledged samples stop moving once the proxy holds the chaser.
    wait_for("acknowledgements to stop", Duration::from_secs(30), || {
        std::thread::sleep(Duration::from_millis(250));
        let now = (acked(run), proxy.forwarded());
        still = if now == last { still + 1 } else { 0 };
        last = now;
        still >= 4
    });
    (last.0, durable_now(run))
}

#[test]
fn stalled_kdb_pushes_back_and_every_durable_seq_arrives_after_it_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm();
    let delivered = Delivered::shared(DEVICES, TAGS, SEQ_CAPACITY);
    let tp = stand_in(&delivered);
    let proxy = FaultProxy::start(tp.local_addr());
    let config = plant(dir.path(), &farm, &proxy.addr().to_string());
    let mut run = RunChild::spawn(&config);
    wait_for("first delivery", Duration::from_secs(30), || {
        acked(&run) > 0.0
    });

    let (acked_stalled, durable_stalled) = stall(&run, &proxy);
    let lag_stalled = lag(&run);
    // kdb+ reads nothing: polling and the WAL carry on, the lag grows.
    wait_for(
        "the WAL to grow and the lag with it while kdb+ is stalled",
        Duration::from_secs(30),
        || durable_now(&run) > durable_stalled + 100_000.0 && lag(&run) > lag_stalled + 100_000.0,
    );
    assert_eq!(acked(&run), acked_stalled, "acknowledged while stalled");
    assert!(run.metric("millrace_frames_total") > 0.0);
    assert_eq!(run.metric("millrace_wal_full_waits_total"), 0.0);
    assert!(run.running(), "millrace exited while kdb+ was stalled");
    assert_eq!(run.metric("millrace_sink_connected{sink=\"tp\"}"), 1.0);
    assert!(run.metric("millrace_sink_stalled_seconds{sink=\"tp\"}") > 0.0);
    wait_for(
        "the stalled sink in the log",
        Duration::from_secs(30),
        || run.log_has("sink tp: STALLED"),
    );

    // kdb+ reads again: the backlog drains, the lag comes back down.
    proxy.resume();
    let lag_peak = lag(&run);
    wait_for("acks after resume", Duration::from_secs(30), || {
        acked(&run) > acked_stalled
    });
    assert!(lag_peak > 100_000.0, "lag at resume: {lag_peak}");
    wait_caught_up(&run);
    assert_eq!(
        run.metric("millrace_sink_stalled_seconds{sink=\"tp\"}"),
        0.0
    );
    let (status, _) = run.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    assert_complete(&delivered, &dir.path().join("wal"));
    drop(tp);
}

#[test]
fn sigterm_with_a_blocked_sink_exits_by_the_deadline_and_restart_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm();
    let delivered = Delivered::shared(DEVICES, TAGS, SEQ_CAPACITY);
    let tp = stand_in(&delivered);
    let proxy = FaultProxy::start(tp.local_addr());
    let config = plant(dir.path(), &farm, &proxy.addr().to_string());
    let mut run = RunChild::spawn(&config);
    wait_for("first delivery", Duration::from_secs(30), || {
        acked(&run) > 0.0
    });
    let (_, durable_stalled) = stall(&run, &proxy);
    wait_for("more durable samples", Duration::from_secs(30), || {
        durable_now(&run) > durable_stalled + 50_000.0
    });

    // The sink is blocked in a write to a kdb+ that reads nothing. The stop
    // must not wait for it beyond the deliver deadline (plus slack for the
    // readers, the WAL's last commit and two busy cores: a hang detector).
    let (status, took) = run.terminate(STOP_DEADLINE + Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    eprintln!("stopped {took:?} after SIGTERM with the sink blocked");
    assert!(
        run.log_has("stop deadline"),
        "the log does not say the sink was given up at the stop deadline"
    );
    let durable = durable_seq(&dir.path().join("wal"));
    assert!(durable as f64 >= durable_stalled);

    // Durability kept: a restart with kdb+ reading again delivers the rest.
    proxy.resume();
    let mut run = RunChild::spawn(&config);
    wait_caught_up(&run);
    let (status, _) = run.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    let after = assert_complete(&delivered, &dir.path().join("wal"));
    assert!(after >= durable);
    drop(tp);
}

#[test]
fn resetting_kdb_gets_reconnects_with_backoff_and_complete_delivery_after_dedup() {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm();
    let delivered = Delivered::shared(DEVICES, TAGS, SEQ_CAPACITY);
    let tp = stand_in(&delivered);
    let proxy = FaultProxy::start(tp.local_addr());
    // First a kdb+ that logs millrace in and resets in its first message,
    // every time: nothing is ever acknowledged. The delay before each retry
    // (logged by the sink) must grow, not spin at the base delay.
    proxy.reset_after(Some(0));
    let config = plant(dir.path(), &farm, &proxy.addr().to_string());
    let mut run = RunChild::spawn(&config);
    wait_for(
        "five retries without progress",
        Duration::from_secs(45),
        || retry_delays(&run.log_lines()).len() >= 5,
    );
    let delays = retry_delays(&run.log_lines());
    // Five failures in a row: the cap is 50 ms x 2^4, the delay at least half.
    assert!(
        delays[4] >= 0.4 && delays[4] > 2.0 * delays[0],
        "the retry delay did not grow: {delays:?}"
    );
    // Never shorter than half the one before (equal jitter on a doubling cap).
    assert!(delays.windows(2).all(|w| w[1] >= w[0] / 2.0), "{delays:?}");
    assert_eq!(
        acked(&run),
        0.0,
        "acknowledged through a reset first message"
    );

    // Then every connection forwards up to 1100 whole messages (a `.u.upd`
    // per WAL frame, often a few rows each, and a chaser per 2000 rows or
    // 1024 frames, so every batch can get through), then part of the next
    // one, then RST.
    proxy.reset_after(Some(1100));
    let resets_before = proxy.resets();
    wait_for(
        "10 more resets and some delivery",
        Duration::from_secs(60),
        || proxy.resets() >= resets_before + 10 && acked(&run) > 0.0,
    );
    assert!(run.running(), "millrace exited under connection resets");
    let reconnects = run.metric("millrace_sink_reconnects_total{sink=\"tp\"}");
    assert!(
        reconnects >= 10.0,
        "{reconnects} reconnects after 15 resets"
    );

    // kdb+ heals: everything durable arrives.
    proxy.reset_after(None);
    let acked_then = acked(&run);
    wait_for("delivery after healing", Duration::from_secs(60), || {
        acked(&run) > acked_then + 10_000.0
    });
    wait_caught_up(&run);
    let (status, _) = run.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    assert_complete(&delivered, &dir.path().join("wal"));
    let stats = tp.stats();
    assert!(stats.connections_accepted >= 10, "{stats:?}");
    drop(tp);
}

/// Seconds of each "retrying in D" the sink logged after a failed attempt
/// that made no progress (the consecutive-failure backoff).
fn retry_delays(lines: &[String]) -> Vec<f64> {
    lines
        .iter()
        .filter(|l| l.contains(" sink tp: "))
        .filter_map(|l| {
            // The delay is the word after "retrying in" (the line's fields
            // follow it).
            let d = l.rsplit_once("retrying in ")?.1.split_whitespace().next()?;
            parse_duration(d)
        })
        .collect()
}

/// `Duration`'s Debug form: `1.5s`, `250ms`, `900µs`.
fn parse_duration(text: &str) -> Option<f64> {
    for (unit, scale) in [("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9), ("s", 1.0)] {
        if let Some(n) = text.strip_suffix(unit) {
            return n.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    None
}
