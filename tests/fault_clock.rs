//! The wall clock of the millrace process jumping backwards mid-run, without
//! touching the machine's clock: libfaketime (LD_PRELOAD) re-reads a
//! timestamp file once a second (FAKETIME_CACHE_DURATION) and leaves the
//! monotonic clock alone. Not on every call (FAKETIME_NO_CACHE): libfaketime
//! re-parses the file without a lock, so a thread of a multi-threaded process
//! now and then reads the unfaked clock while another parses, a flicker of
//! the wall clock that the process rightly reports as a further step. Rust's SystemTime::now goes through libc's
//! clock_gettime, so the step reaches the readers' sample stamps.
//!
//! The run's wall clock steps back 30 s, then another 60 s. Asserted on the
//! rows the stand-in journaled (time as a kdb+ timestamp): per tag, times
//! never decrease across the steps; every time lies within the test's own
//! (unfaked) wall-clock window; nothing durable was lost; the process said
//! so once per step and counted the steps on its metrics endpoint.

mod common;
mod fault_proc_support;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fault_proc_support::*;
use millrace::kdb::decode::decode_prefix;
use millrace::kdb::journal::JOURNAL_HEADER_SIZE;
use millrace::kdb::upd::parse_update;
use millrace::kdb::{Data, DecodeLimits, K};

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
/// kdb+'s epoch (2000.01.01) in UNIX ns.
const KDB_EPOCH_UNIX_NS: i64 = 10_957 * 86_400 * 1_000_000_000;

fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Sets the faked offset atomically (libfaketime re-opens the file).
fn set_offset(file: &Path, spec: &str) {
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, format!("{spec}\n")).unwrap();
    std::fs::rename(&tmp, file).unwrap();
}

/// (seq, sym, UNIX ns) of every journaled row.
fn journal_rows(path: &Path) -> Vec<(i64, String, i64)> {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(bytes.get(..2), Some(&[0xff, 0x01][..]), "journal magic");
    let limits = DecodeLimits {
        message_bytes_max: 64 << 20,
        ..DecodeLimits::default()
    };
    let mut rows = Vec::new();
    // Entries follow the file header (whatever its size in this version).
    let mut at = JOURNAL_HEADER_SIZE;
    while at < bytes.len() {
        let (k, used) = decode_prefix(&bytes[at..], true, &limits).expect("journal entry");
        at += used;
        let update = parse_update(&k).unwrap().expect("an upd entry");
        let column = |i: usize| match update.columns.get(i) {
            Some(K::Vector { data, .. }) => data,
            other => panic!("column {i}: {other:?}"),
        };
        let (Data::Longs(time), Data::Symbols(sym), Data::Longs(seq)) =
            (column(0), column(1), column(5))
        else {
            panic!("unexpected column types")
        };
        for ((t, s), q) in time.iter().zip(sym.iter()).zip(seq) {
            let sym = String::from_utf8_lossy(s).into_owned();
            rows.push((*q, sym, t + KDB_EPOCH_UNIX_NS));
        }
    }
    rows
}

#[test]
fn wall_clock_steps_back_keep_sample_time_sane_and_ordered() {
    assert!(
        Path::new(LIBFAKETIME).exists(),
        "{LIBFAKETIME} is missing: apt-get install faketime (scripts/test.sh does)"
    );
    let spec = PlantSpec {
        devices: 5,
        tags: 20,
        metrics: true,
        time_type: "timestamp",
        ..Default::default()
    };
    let recorder = Delivered::shared(spec.devices, spec.tags);
    let work = tempfile::tempdir().unwrap();
    let journal = work.path().join("tp.log");
    let tp = tickerplant("127.0.0.1:0", &recorder, Some(journal.clone()));
    let plant = Plant::start(&tp.local_addr().to_string(), spec);
    let offset = work.path().join("faketime");
    set_offset(&offset, "+0");
    let offset_text = offset.to_string_lossy().into_owned();
    let env = [
        ("LD_PRELOAD", LIBFAKETIME),
        ("FAKETIME_TIMESTAMP_FILE", offset_text.as_str()),
        ("FAKETIME_CACHE_DURATION", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let started_ns = unix_now_ns();
    let run = Run::spawn(&plant.config, &work.path().join("run.log"), &env);
    let metrics = run.metrics_addr();
    let rows_now = || recorder.lock().unwrap().rows;
    let delivers_more = |label: &str| {
        let from = rows_now();
        assert!(
            wait_until(Duration::from_secs(30), || rows_now() > from + 2_000),
            "{label}: delivery stopped:\n{}",
            run.log_text()
        );
    };
    delivers_more("before the steps");
    for (step, spec) in [(1, "-30"), (2, "-90")] {
        set_offset(&offset, spec);
        let needle_count = |t: &str| t.matches("wall clock stepped back").count();
        assert!(
            wait_until(Duration::from_secs(30), || needle_count(&run.log_text())
                >= step),
            "step {step} ({spec} s) was not reported:\n{}",
            run.log_text()
        );
        delivers_more(&format!("after step {step}"));
    }
    let steps = metric(&metrics, "millrace_wall_clock_steps_back_total");
    assert_eq!(
        steps,
        Some(2.0),
        "steps counted on the metrics endpoint:\n{}",
        run.log_text()
    );
    let (status, text) = run.stop();
    assert!(status.success(), "clean stop exit status {status}:\n{text}");
    assert!(text.contains("stepped back by 30.0"), "{text}");
    assert!(text.contains("stepped back by 60.0"), "{text}");
    let ended_ns = unix_now_ns();
    let durable = durable_seq(&plant.wal);
    tp.stop();
    recorder
        .lock()
        .unwrap()
        .assert_complete(durable, "across wall clock steps");

    let mut rows = journal_rows(&journal);
    rows.sort_by_key(|r| r.0);
    rows.dedup_by_key(|r| r.0);
    assert_eq!(rows.len() as u64, durable, "journal rows, one per seq");
    let slack_ns = 5_000_000_000;
    let mut last_per_tag: HashMap<&str, (i64, i64)> = HashMap::new();
    for (seq, sym, ts) in &rows {
        assert!(
            (started_ns - slack_ns..=ended_ns + slack_ns).contains(ts),
            "seq {seq} {sym}: time {ts} outside the run [{started_ns}, {ended_ns}]"
        );
        if let Some((prev_seq, prev_ts)) = last_per_tag.insert(sym, (*seq, *ts)) {
            assert!(
                *ts >= prev_ts,
                "{sym}: seq {seq} at {ts} is before seq {prev_seq} at {prev_ts}"
            );
        }
    }
}
