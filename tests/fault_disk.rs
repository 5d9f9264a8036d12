//! A full disk while the WAL grows, at process level: `millrace run` with
//! its WAL on a 2 MiB tmpfs and no kdb+ yet, so nothing can be retired.
//! fallocate of the next segment fails with ENOSPC; the writer stops
//! draining the rings (policy `block`), the readers delay their polls, and
//! the state shows in the log and on the metrics endpoint. Then the rest of
//! the disk is filled by someone else (down to the last page), and kdb+
//! comes: the backlog drains, checkpoints are written, sealed segments are
//! retired, polling resumes, and every durable sample is delivered.

mod common;
mod fault_proc_support;

use std::io::Write;
use std::time::Duration;

use fault_proc_support::*;

const DISK_BYTES: u64 = 2 << 20;

/// Appends pages until the file system refuses; returns the bytes written.
fn fill(path: &std::path::Path) -> u64 {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the filler");
    let page = [0xA5u8; 4096];
    let mut written = 0u64;
    for _ in 0..(DISK_BYTES / 4096 + 1) {
        match file.write_all(&page).and_then(|()| file.sync_all()) {
            Ok(()) => written += 4096,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filler: {e}");
                return written;
            }
        }
    }
    panic!("a {DISK_BYTES}-byte tmpfs took more than its size");
}

#[test]
fn a_full_disk_blocks_polling_then_drains_when_kdb_returns() {
    let fs = Tmpfs::mount(DISK_BYTES);
    let spec = PlantSpec {
        devices: 5,
        tags: 100,
        segment_size: "256KiB",
        quota: "1GiB",
        wal_dir: Some(fs.path.join("wal")),
        metrics: true,
        ..Default::default()
    };
    let recorder = Delivered::shared(spec.devices, spec.tags);
    // The stand-in's address, with nothing listening there yet.
    let addr = common::free_address();
    let logs = tempfile::tempdir().unwrap();
    let plant = Plant::start(&addr, spec);
    let log = logs.path().join("run.log");
    let mut run = Run::spawn(&plant.config, &log, &[]);
    let metrics = run.metrics_addr();
    assert!(
        run.wait_log("full at durable seq", Duration::from_secs(60)),
        "the WAL never reported the full disk:\n{}",
        run.log_text()
    );
    assert!(run.log_text().contains("disk full"), "{}", run.log_text());
    // Someone else takes the last pages too.
    // The WAL may still hold pages of a segment it could not finish and let
    // them go a moment later: top the filler up until the disk is full.
    let mut filler = 0;
    assert!(
        wait_until(Duration::from_secs(30), || {
            filler += fill(&fs.path.join("filler"));
            fs.free_bytes() < 4096
        }),
        "free {}",
        fs.free_bytes()
    );
    let m = |name: &str| metric(&metrics, name).unwrap_or(-1.0);
    assert!(
        wait_until(Duration::from_secs(30), || {
            m("millrace_overruns_total") > 0.0 && m("millrace_wal_full_waits_total") > 0.0
        }),
        "readers never reported backing off: overruns {}, full waits {}",
        m("millrace_overruns_total"),
        m("millrace_wal_full_waits_total")
    );
    assert!(run.is_running(), "millrace exited on a full disk");
    let durable_full = m("millrace_wal_durable_seq") as u64;
    assert!(durable_full > 0);

    let tp = tickerplant(&addr, &recorder, None);
    assert!(
        wait_until(Duration::from_secs(60), || {
            recorder.lock().unwrap().verifier.lost(durable_full) == 0
        }),
        "the backlog up to {durable_full} was not delivered:\n{}",
        run.log_text()
    );
    assert!(
        run.wait_log("room again", Duration::from_secs(30)),
        "segments were never retired:\n{}",
        run.log_text()
    );
    // Polling resumed: new samples past the backlog become durable.
    assert!(
        wait_until(Duration::from_secs(30), || {
            m("millrace_wal_durable_seq") as u64 > durable_full + 10_000
        }),
        "no new samples after the disk had room again"
    );
    assert!(run.is_running());
    let (status, text) = run.stop();
    assert!(status.success(), "clean stop exit status {status}:\n{text}");
    let durable = durable_seq(&plant.wal);
    recorder
        .lock()
        .unwrap()
        .assert_complete(durable, "after a full disk");
    assert!(tp.rows("plc") >= durable);
    eprintln!("fault_disk: full at {durable_full}, filler {filler} B, durable {durable}");
}
