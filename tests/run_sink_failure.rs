//! A sink that can no longer deliver stops `millrace run`, instead of the
//! process running on while nothing reaches kdb+. A real `millrace run`
//! writes with kdb+ down (the sink keeps retrying its connect, so it has not
//! read a frame yet); a few bytes inside the samples of the first frame of
//! the first segment are then overwritten through a file handle of the
//! test's own (the run's mapping shares the page cache, so the running
//! process sees the damage). When kdb+ comes up, the sink's cursor meets
//! the frame, which fails its CRC32C in memory. Asserted: the run exits by
//! itself with a non-zero status, its log names the sink and the failed
//! frame, no damaged sample reached kdb+; and a restart (what a supervisor
//! does) recovers over the damage, sets the segment aside and delivers.

mod common;
mod fault_proc_support;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fault_proc_support::*;

const SEGMENT_HEADER_BYTES: u64 = 48;
const FRAME_OVERHEAD_BYTES: u64 = 40;
const SEGMENT_SIZE: &str = "256KiB";

fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

/// The first frame's (offset, bytes, first_seq, record count), read from
/// the file independently of the crate's parser (frame header: length,
/// first seq at 8, the record count at 16).
fn first_frame(segment: &Path) -> (u64, u64, u64, u64) {
    let file = std::fs::File::open(segment).unwrap();
    let mut head = [0u8; 16];
    file.read_exact_at(&mut head, SEGMENT_HEADER_BYTES).unwrap();
    let bytes = u64::from(u32::from_le_bytes(head[0..4].try_into().unwrap()));
    let first_seq = u64::from_le_bytes(head[8..16].try_into().unwrap());
    assert!(
        bytes > FRAME_OVERHEAD_BYTES,
        "no first frame in {segment:?}"
    );
    let mut counted = [0u8; 4];
    file.read_exact_at(&mut counted, SEGMENT_HEADER_BYTES + 16)
        .unwrap();
    let count = u64::from(u32::from_le_bytes(counted));
    (SEGMENT_HEADER_BYTES, bytes, first_seq, count)
}

/// Inverts 8 bytes in the middle of the frame's body (its samples), in
/// place.
fn damage_samples(segment: &Path, frame_offset: u64, frame_bytes: u64) {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment)
        .unwrap();
    let body = frame_bytes - FRAME_OVERHEAD_BYTES;
    assert!(body >= 16, "a body of {body} bytes");
    let at = frame_offset + FRAME_OVERHEAD_BYTES + body / 2 - 4;
    let mut bytes = [0u8; 8];
    file.read_exact_at(&mut bytes, at).unwrap();
    for b in &mut bytes {
        *b = !*b;
    }
    file.write_all_at(&bytes, at).unwrap();
}

#[test]
fn a_sink_stopped_by_a_bad_frame_stops_the_run_and_a_restart_recovers() {
    let spec = PlantSpec {
        devices: 5,
        tags: 100,
        segment_size: SEGMENT_SIZE,
        metrics: true,
        ..Default::default()
    };
    let recorder = Delivered::shared(spec.devices, spec.tags);
    // kdb+'s address, with nothing listening there yet.
    let addr = common::free_address();
    let plant = Plant::start(&addr, spec);
    let log = plant.dir.path().join("run.log");
    let mut run = Run::spawn(&plant.config, &log, &[]);
    let metrics = run.metrics_addr();
    // Two sealed segments, so the damaged one is not the one being written
    // (counted on disk: how many samples fill one depends on how they pack).
    assert!(
        wait_until(Duration::from_secs(60), || segments(&plant.wal).len() >= 3),
        "the WAL never reached three segments:\n{}",
        run.log_text()
    );
    assert_eq!(
        metric(&metrics, "millrace_sink_failed"),
        Some(0.0),
        "a healthy (if unconnected) sink shows 0"
    );
    let segs = segments(&plant.wal);
    assert!(segs.len() >= 3, "{segs:?}");
    let (offset, bytes, first_seq, count) = first_frame(&segs[0]);
    damage_samples(&segs[0], offset, bytes);
    eprintln!(
        "damaged the frame of {count} samples from seq {first_seq} ({bytes} bytes) at \
         offset {offset} of {}",
        segs[0].display()
    );

    let tp = tickerplant(&addr, &recorder, None);
    // The sink's connect backoff is at most 10 s; then it meets the frame.
    let status = run.wait(Duration::from_secs(60));
    let text = run.log_text();
    assert!(
        !status.success(),
        "a run whose sink stopped exited {status}:\n{text}"
    );
    assert!(
        text.contains("sink tp stopped:") && text.contains("; stopping"),
        "the run does not say which sink stopped it:\n{text}"
    );
    assert!(
        text.contains("failed in memory") && text.contains("CRC32C mismatch"),
        "the log does not name the failed frame:\n{text}"
    );
    assert!(
        text.contains(&format!("cursor stopped at seq {first_seq}")),
        "the log does not name the seq of the failed frame:\n{text}"
    );
    {
        let r = recorder.lock().unwrap();
        assert_eq!(r.verifier.mismatches, 0, "a damaged value was delivered");
        // The damaged frame is the very first the sink reads: nothing before it.
        assert_eq!(r.rows, 0, "rows delivered from the damaged frame on");
    }
    drop(run);

    // What a supervisor does next: start it again. Recovery checks the WAL.
    let run = Run::spawn(&plant.config, &log, &[]);
    assert!(
        run.wait_log("running", Duration::from_secs(30)),
        "millrace did not start over the damage:\n{}",
        run.log_text()
    );
    let text = run.log_text();
    assert!(text.contains("SET ASIDE"), "{text}");
    let metrics = run.metrics_addr();
    assert!(
        wait_until(Duration::from_secs(60), || {
            metric(&metrics, "millrace_sink_acked_samples_total").unwrap_or(0.0) > 0.0
        }),
        "nothing delivered after the restart:\n{}",
        run.log_text()
    );
    assert_eq!(metric(&metrics, "millrace_sink_failed"), Some(0.0));
    let (status, text) = run.stop();
    assert!(status.success(), "clean stop exit status {status}:\n{text}");
    tp.stop();
    let r = recorder.lock().unwrap();
    assert_eq!(r.verifier.mismatches, 0, "a damaged value was delivered");
    assert_eq!(r.conflicting_duplicates, 0);
    assert!(r.rows > 0);
}
