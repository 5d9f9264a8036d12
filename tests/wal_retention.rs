//! Group commit by time and bytes, retention behind cursors, the quota under
//! `block` and `drop_oldest`, cursors on other threads, and `wal inspect`.

mod wal_common;

use std::time::{Duration, Instant};

use millrace::config::WhenFull;
use millrace::wal::{
    Wal, WalError, BLOCK_HEADER_BYTES, FRAME_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES,
};
use wal_common::*;

const SEG: u64 = 8 * 1024;
const N: usize = 20;
/// These tests' samples each have their own time, so they never form runs:
/// a frame's body is one records block of 24-byte records.
const FRAME: usize = FRAME_OVERHEAD_BYTES + BLOCK_HEADER_BYTES + 24 * N;
const PER_SEG: usize = (SEG as usize - SEGMENT_HEADER_BYTES) / FRAME;

#[test]
fn commit_follows_the_interval_and_the_byte_threshold() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), SEG, 16 * SEG, WhenFull::Block);
    cfg.commit_interval = Duration::from_millis(10);
    cfg.commit_bytes = 3 * FRAME as u64;
    let (mut wal, _) = Wal::open(&cfg).unwrap();
    let t0 = Instant::now();
    assert_eq!(wal.poll_commit(t0).unwrap(), None, "nothing pending");
    assert_eq!(wal.commit_deadline(), None);
    append(&mut wal, N);
    let deadline = wal.commit_deadline().expect("pending");
    assert_eq!(
        wal.poll_commit(deadline - Duration::from_millis(1))
            .unwrap(),
        None
    );
    assert_eq!(wal.durable_seq(), 0);
    assert_eq!(wal.poll_commit(deadline).unwrap(), Some(N as u64));
    // Bytes: the third frame reaches commit_bytes before the interval ends.
    append(&mut wal, N);
    append(&mut wal, N);
    assert_eq!(
        wal.poll_commit(deadline + Duration::from_millis(1))
            .unwrap(),
        None
    );
    append(&mut wal, N);
    assert_eq!(
        wal.poll_commit(deadline + Duration::from_millis(1))
            .unwrap(),
        Some(4 * N as u64)
    );
    assert_eq!(wal.stats().commits, 2);
    assert_eq!(wal.pending_bytes(), 0);
}

#[test]
fn background_commits_publish_every_frame_in_order_across_rolls() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path(), SEG, 64 * SEG, WhenFull::Block);
    cfg.commit_interval = Duration::ZERO; // every poll finds a commit due
    let (mut wal, _) = Wal::open(&cfg).unwrap();
    let mut cursor = wal.open_cursor("a").unwrap();
    let mut read_to = 0u64;
    for _ in 0..3 * PER_SEG {
        append(&mut wal, N);
        wal.poll_commit_background(Instant::now()).unwrap();
        let durable = wal.durable_seq();
        assert!(durable <= wal.next_seq());
        // Whatever a cursor sees is durable, and it sees it in order.
        let (first, end, _) = drain(&mut cursor);
        if let Some(first) = first {
            assert_eq!(first, read_to);
        }
        assert!(
            end <= wal.durable_seq(),
            "read {end} past durable {durable}"
        );
        read_to = end;
    }
    // The last job ends on its own; polling collects it.
    let give_up = Instant::now() + Duration::from_secs(60);
    while wal.durable_seq() < wal.next_seq() && Instant::now() < give_up {
        wal.poll_commit_background(Instant::now()).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(wal.durable_seq(), wal.next_seq());
    assert_eq!(wal.commit().unwrap(), wal.next_seq());
    let (_, end, _) = drain(&mut cursor);
    assert_eq!(end.max(read_to), 3 * PER_SEG as u64 * N as u64);
    assert!(wal.stats().commits > 0);
    assert!(wal.stats().segments_created >= 3);
}

#[test]
fn background_commits_of_microsecond_syncs_stay_in_order() {
    // On a memory file system a sync ends within microseconds: 20,000
    // commits back to back, each poll meeting a job just ended or running.
    // (The race of a job ending between "no outcome yet" and "not busy" is
    // closed by construction, `Syncer::poll` reads both under one lock; a
    // window of nanoseconds is not something a test hits reliably.)
    let shm = std::path::Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut cfg = config(tmp.path(), 1 << 20, 64 << 20, WhenFull::Block);
    cfg.commit_interval = Duration::ZERO;
    let (mut wal, _) = Wal::open(&cfg).unwrap();
    let mut durable = 0;
    for _ in 0..20_000 {
        append(&mut wal, 1);
        wal.poll_commit_background(Instant::now()).unwrap();
        assert!(wal.durable_seq() >= durable, "the durable seq went back");
        durable = wal.durable_seq();
    }
    assert_eq!(wal.commit().unwrap(), 20_000);
    assert!(wal.stats().commits > 0);
}

#[test]
fn segments_go_only_when_every_cursor_is_past_them() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 64 * SEG, WhenFull::Block)).unwrap();
    let mut a = wal.open_cursor("a").unwrap();
    let mut b = wal.open_cursor("b").unwrap();
    for _ in 0..4 * PER_SEG {
        append(&mut wal, N);
    }
    wal.commit().unwrap();
    assert_eq!(segment_files(tmp.path()).len(), 4);
    assert_eq!(drain(&mut a).1, (4 * PER_SEG * N) as u64);
    a.checkpoint(a.position()).unwrap();
    assert_eq!(wal.reclaim().unwrap(), 0, "b has not moved");
    assert_eq!(drain(&mut b).1, (4 * PER_SEG * N) as u64);
    b.checkpoint((2 * PER_SEG * N) as u64).unwrap();
    assert_eq!(wal.reclaim().unwrap(), 2);
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with(format!("{:020}.wal", 2 * PER_SEG * N)));
    // b re-reads from its checkpoint after a rewind: still all there.
    b.rewind();
    assert_eq!(
        drain(&mut b),
        (
            Some((2 * PER_SEG * N) as u64),
            (4 * PER_SEG * N) as u64,
            2 * PER_SEG
        )
    );
}

#[test]
fn block_refuses_at_the_quota_until_cursors_move() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 3 * SEG, WhenFull::Block)).unwrap();
    let mut c = wal.open_cursor("tp").unwrap();
    let mut appended = 0usize;
    let refused = loop {
        assert!(appended < 10 * PER_SEG, "the quota never applied");
        let first = wal.next_seq();
        match wal.append(&batch(first, N)) {
            Ok(_) => appended += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, WalError::Full), "{refused}");
    assert!(!refused.is_fatal());
    assert_eq!(appended, 3 * PER_SEG);
    assert_eq!(wal.stats().full_refusals, 1);
    assert_eq!(segment_files(tmp.path()).len(), 3);
    // Refused means not written: the sequence did not move.
    assert_eq!(wal.next_seq(), (appended * N) as u64);
    wal.commit().unwrap();
    assert_eq!(drain(&mut c).1, (appended * N) as u64);
    c.checkpoint(c.position()).unwrap();
    append(&mut wal, N);
    wal.commit().unwrap();
    assert_eq!(
        drain(&mut c),
        (Some((appended * N) as u64), ((appended + 1) * N) as u64, 1)
    );
    assert_eq!(wal.dropped_samples(), 0);
}

#[test]
fn drop_oldest_moves_lagging_cursors_and_counts() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 3 * SEG, WhenFull::DropOldest)).unwrap();
    let mut c = wal.open_cursor("slow").unwrap();
    for _ in 0..3 * PER_SEG + 1 {
        append(&mut wal, N);
    }
    wal.commit().unwrap();
    let seg_samples = (PER_SEG * N) as u64;
    assert_eq!(wal.dropped_samples(), seg_samples);
    assert_eq!(segment_files(tmp.path()).len(), 3);
    // The checkpoint moved on disk before the segment went.
    assert_eq!(c.checkpointed(), seg_samples);
    let (first, end, _) = drain(&mut c);
    assert_eq!(first, Some(seg_samples));
    assert_eq!(end, ((3 * PER_SEG + 1) * N) as u64);
    assert_eq!(c.skipped_samples(), seg_samples);
    drop(c);
    drop(wal);
    let (_, report) = Wal::open(&config(tmp.path(), SEG, 3 * SEG, WhenFull::DropOldest)).unwrap();
    assert_eq!(report.cursors, vec![("slow".to_string(), seg_samples)]);
}

#[test]
fn a_cursor_on_another_thread_reads_what_becomes_durable() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 64 * SEG, WhenFull::Block)).unwrap();
    let handle = wal.handle();
    let total = (5 * PER_SEG * N) as u64;
    let reader = std::thread::spawn(move || {
        let mut c = handle.open_cursor("t").unwrap();
        let mut next = 0u64;
        for _ in 0..50_000_000u64 {
            if next == total {
                break;
            }
            match c.next() {
                Some(f) => {
                    assert_eq!(f.first_seq, next);
                    assert!(f.end_seq() <= handle.durable_seq(), "read past durable");
                    for (i, s) in f.samples.iter().enumerate() {
                        assert_eq!(*s, sample(next + i as u64));
                    }
                    next = f.end_seq();
                    c.checkpoint(next).unwrap();
                }
                None => std::thread::yield_now(),
            }
        }
        next
    });
    for i in 0..5 * PER_SEG {
        append(&mut wal, N);
        if i % 3 == 0 {
            wal.commit().unwrap();
        }
    }
    wal.commit().unwrap();
    assert_eq!(reader.join().unwrap(), total);
}

#[test]
fn empty_and_oversized_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 4 * SEG, WhenFull::Block)).unwrap();
    let got = wal.append(&[]).unwrap();
    assert_eq!((got.first_seq, got.end_seq), (0, 0));
    let max = wal.max_batch_samples();
    assert_eq!(
        max,
        (SEG as usize - SEGMENT_HEADER_BYTES - FRAME_OVERHEAD_BYTES - BLOCK_HEADER_BYTES) / 24
    );
    assert!(matches!(
        wal.append(&batch(0, max + 1)),
        Err(WalError::BatchTooLarge { .. })
    ));
    append(&mut wal, 1);
    append(&mut wal, max); // rolls to a fresh segment and fills it exactly
    wal.commit().unwrap();
    assert_eq!(drain(&mut wal.open_cursor("c").unwrap()).1, 1 + max as u64);
}

#[test]
fn inspect_reports_segments_cursors_and_lag() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(&config(tmp.path(), SEG, 64 * SEG, WhenFull::Block)).unwrap();
        let mut c = wal.open_cursor("tp").unwrap();
        for _ in 0..PER_SEG + 2 {
            append(&mut wal, N);
        }
        wal.commit().unwrap();
        drain(&mut c);
        c.checkpoint(N as u64).unwrap();
    }
    let i = millrace::wal::inspect(tmp.path()).unwrap();
    let total = ((PER_SEG + 2) * N) as u64;
    assert_eq!(i.segments.len(), 2);
    assert_eq!(
        (i.oldest_seq, i.durable_seq, i.frames),
        (Some(0), total, (PER_SEG + 2) as u64)
    );
    assert_eq!(i.segments[1].first_seq, (PER_SEG * N) as u64);
    assert_eq!(i.segments[0].ts_min_ns, Some(sample(0).ts_ns));
    assert_eq!(i.cursors.len(), 1);
    assert_eq!(
        (i.cursors[0].checkpoint, i.cursors[0].lag),
        (Some(N as u64), Some(total - N as u64))
    );
    assert!(i.anomalies.is_empty(), "{:?}", i.anomalies);
    let text = millrace::wal::render_text(&i);
    assert!(
        text.contains("cursor tp") && text.contains("anomalies: none"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::to_value(&i).unwrap();
    assert_eq!(json["durable_seq"], total);
    // A torn tail shows as an anomaly, and inspect changed nothing.
    let last = segment_files(tmp.path()).pop().unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xEE; 3], (SEGMENT_HEADER_BYTES + 50) as u64)
        .unwrap();
    let i = millrace::wal::inspect(tmp.path()).unwrap();
    assert_eq!(i.anomalies.len(), 1, "{:?}", i.anomalies);
    assert_eq!(i.anomalies[0].kind, "torn tail");
    assert_eq!(i.anomalies[0].offset, Some(SEGMENT_HEADER_BYTES as u64));
    assert_eq!(
        millrace::wal::inspect(tmp.path()).unwrap().anomalies.len(),
        1
    );
}
