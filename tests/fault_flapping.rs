//! 1,000 flapping devices: the farm drops connections, stalls answers past
//! the request timeout, answers with exceptions and with malformed frames,
//! at seeded rates, while a real `millrace run` polls all of them and
//! delivers to the tickerplant stand-in on 127.0.0.1.
//!
//! What must hold: the process stays up and stops cleanly on SIGTERM; every
//! good row delivered carries the farm's value; faults become bad-quality
//! rows (no connection, timeout, decode error, exception) and counted
//! reconnects, timeouts and malformed frames in the metrics; no device is
//! starved by the others' flapping (each delivers good rows in every window
//! of the run); no seq gap below the durable seq and nothing doubled once
//! de-duplicated by seq; and what kdb+ got is what the WAL holds, seq by seq.
//! And the log stays quiet: a device's state changes are one line each
//! within the reader's budget per minute (`reader::health`), the rest are in
//! the summary, never a line per failed poll; every device line names the
//! device, its protocol and its address.

mod common;
mod fault_support;

use std::time::{Duration, Instant};

use fault_support::*;
use millrace::farm::{Farm, FarmOptions, FaultRates};
use millrace::kdb::{Tickerplant, TickerplantOptions};
use millrace::reader::health::{LINES_PER_WINDOW, WINDOW_NS};
use millrace::Quality;

const DEVICES: u32 = 1_000;
const TAGS: u32 = 4;
const SEQ_CAPACITY: u64 = 8_000_000;
/// How long the plant flaps under millrace (the assertions need a few
/// seconds of steady state after start-up).
const RUN_TIME: Duration = Duration::from_secs(14);
/// Left out of the starvation windows after start-up is seen to be over
/// (half the devices connected, five polls' worth of samples): on a loaded
/// machine connecting 1,000 devices takes longer than any fixed guess.
const WARM_UP: Duration = Duration::from_secs(2);
const WINDOWS: i64 = 4;

#[test]
fn a_thousand_flapping_devices_deliver_verified_rows_and_bad_quality_for_faults() {
    // The farm's 1,000 listeners and connections live in this process; the
    // child's 1,000 device sockets in millrace.
    ensure_fd_limit(4 * DEVICES as u64 + 1_000);
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(FarmOptions {
        devices: DEVICES,
        register_count: 125,
        threads: 2,
        faults: FaultRates {
            // Per answered request; a device is polled 10 times a second,
            // so it loses its connection about every 2.5 s.
            drop_connection: 0.04,
            stall: 0.005,
            exception: 0.01,
            malformed: 0.02,
        },
        // Longer than the 300 ms request timeout below: a stall times out.
        stall: Duration::from_secs(1),
        seed: 0x5eed,
        ..Default::default()
    })
    .expect("start the farm");
    let delivered = Delivered::shared(DEVICES, TAGS, SEQ_CAPACITY);
    let options = TickerplantOptions {
        recorder: Some(delivered.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in");
    let config = write_plant(
        dir.path(),
        farm.ports(),
        TAGS,
        &tp.local_addr().to_string(),
        "100ms",
        &[("timeout = \"1s\"", "timeout = \"300ms\"")],
    );

    let spawned = Instant::now();
    let mut run = RunChild::spawn(&config);
    wait_for(
        "start-up: devices connected and polled",
        Duration::from_secs(90),
        || {
            let text = run.scrape_text();
            let value = |name| metric_in(&text, name).unwrap_or(0.0);
            value("millrace_devices_connected") >= f64::from(DEVICES / 2)
                && value("millrace_samples_total") >= f64::from(5 * DEVICES * TAGS)
        },
    );
    let started_ns = unix_now_ns();
    let step = Duration::from_millis(500);
    for _ in 0..RUN_TIME.as_millis() / step.as_millis() {
        std::thread::sleep(step);
        assert!(run.running(), "millrace exited under flapping devices");
    }
    let ended_ns = unix_now_ns();
    let metrics = run.scrape_text();
    let metric = |name: &str| {
        metric_in(&metrics, name).unwrap_or_else(|| panic!("{name} not in:\n{metrics}"))
    };
    let (status, _) = run.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status}");
    check_log(&run.log_lines(), spawned.elapsed());
    let counters = farm.counters();
    eprintln!("farm: {counters:?}");

    // The faults happened, and millrace counted them.
    assert!(
        counters.fault_drops > 100 && counters.fault_malformed > 100,
        "{counters:?}"
    );
    assert!(
        counters.fault_stalls > 10 && counters.fault_exceptions > 10,
        "{counters:?}"
    );
    assert!(metric("millrace_reconnects_total") >= 100.0);
    assert!(metric("millrace_disconnects_total") >= 100.0);
    assert!(metric("millrace_timeouts_total") >= 10.0);
    assert!(metric("millrace_malformed_frames_total") >= 100.0);
    assert!(metric("millrace_exception_samples_total") >= 10.0);

    let durable = durable_seq(&dir.path().join("wal"));
    let d = delivered.lock().unwrap();
    let v = &d.verifier;
    eprintln!(
        "durable {durable}, rows {}, bad {}, removed by seq {}",
        v.rows,
        v.bad_quality_rows,
        v.duplicate_seqs()
    );
    assert!(durable > 100_000, "only {durable} samples became durable");
    assert_eq!(v.lost(durable), 0, "seq gaps below the durable seq");
    assert_eq!(
        v.out_of_range_seqs(),
        0,
        "seqs beyond the durable end arrived"
    );
    assert_eq!(
        v.mismatches, 0,
        "good rows with values the farm never served"
    );
    assert_eq!(v.unparsed_syms, 0);
    assert_eq!(
        v.duplicates_after_dedup, 0,
        "an answer delivered under two seqs"
    );
    assert_eq!(
        d.conflicts, 0,
        "a seq delivered twice with different values"
    );

    let windows = starvation_windows(started_ns, ended_ns);
    let check = check_wal(&dir.path().join("wal"), &d, DEVICES, TAGS, &windows);
    let n = |q: Quality| check.by_quality.get(&q.bits()).copied().unwrap_or(0);
    eprintln!(
        "wal: {} samples: good {}, no connection {}, timeout {}, decode error {}, exception {}",
        check.samples,
        n(Quality::GOOD),
        n(Quality::NO_CONNECTION),
        n(Quality::TIMEOUT),
        n(Quality::DECODE_ERROR),
        n(Quality::modbus_exception(0))
    );
    assert_eq!(check.samples, durable);
    assert_eq!(check.undelivered, 0);
    assert_eq!(
        check.value_mismatches, 0,
        "kdb+ got other values than the WAL has"
    );
    // Every kind of fault shows up as its bad quality.
    assert!(n(Quality::NO_CONNECTION) > 0, "no `no connection` rows");
    assert!(n(Quality::TIMEOUT) > 0, "no `timeout` rows");
    assert!(n(Quality::DECODE_ERROR) > 0, "no `decode error` rows");
    assert!(n(Quality::modbus_exception(0)) > 0, "no exception rows");
    assert_eq!(
        v.rows - v.duplicate_seqs(),
        check.samples,
        "kdb+ rows after de-duplication differ from the WAL's samples"
    );
    // Nobody starved: every device delivered good rows in every window.
    for (w, counts) in check.good_per_window.iter().enumerate() {
        let starved: Vec<usize> = (0..counts.len()).filter(|&i| counts[i] == 0).collect();
        assert!(
            starved.is_empty(),
            "window {w}: {} devices without a good row, e.g. {:?}",
            starved.len(),
            &starved[..starved.len().min(10)]
        );
    }
    drop(d);
    drop(tp);
}

/// `WINDOWS` equal UNIX-time windows from the end of the warm-up to the end
/// of the run.
fn starvation_windows(started_ns: i64, ended_ns: i64) -> Vec<(i64, i64)> {
    let from = started_ns + WARM_UP.as_nanos() as i64;
    let width = (ended_ns - from) / WINDOWS;
    (0..WINDOWS)
        .map(|w| (from + w * width, from + (w + 1) * width))
        .collect()
}

/// The log of a run of `elapsed` under 1,000 flapping devices (one reader):
/// within the budget per window, the rest summarised.
fn check_log(lines: &[String], elapsed: Duration) {
    // Windows the run touched (a window boundary may cut it anywhere).
    let windows = (elapsed.as_nanos() as u64).div_ceil(WINDOW_NS) + 1;
    let device_lines: Vec<&String> = lines.iter().filter(|l| l.contains(" device=")).collect();
    let summaries: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("devices in the last"))
        .collect();
    let minutes = elapsed.as_secs_f64() / 60.0;
    eprintln!(
        "log: {} lines in {elapsed:?} ({:.0} per minute): {} about devices, {} summaries",
        lines.len(),
        lines.len() as f64 / minutes,
        device_lines.len(),
        summaries.len()
    );
    assert!(
        device_lines.len() as u64 <= windows * u64::from(LINES_PER_WINDOW),
        "{} device lines in {windows} windows:\n{}",
        device_lines.len(),
        device_lines
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    for line in &device_lines {
        assert!(
            line.contains(" protocol=modbus-tcp") && line.contains(" address=127.0.0.1:"),
            "a device line without its protocol and address: {line}"
        );
    }
    // Far more changes happened than lines were written: the summary at the
    // stop says so.
    let last = summaries
        .last()
        .expect("a summary of the devices at the stop");
    assert!(last.contains("held back"), "{last}");
    // Everything else is a fixed number of lines: start, a status line
    // every 10 s, stop.
    let other = lines.len() - device_lines.len() - summaries.len();
    let status_lines = elapsed.as_secs() / 10 + 1;
    assert!(
        other as u64 <= 20 + status_lines,
        "{other} lines that are neither device lines nor summaries:\n{}",
        lines.join("\n")
    );
}
