//! Helpers shared by the tests/wal_*.rs files: a small configuration and
//! samples whose every field is a function of their seq, so any sample read
//! back can be checked without keeping a copy.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use millrace::config::{SyncMode, WalConfig, WhenFull};
use millrace::wal::{Cursor, Wal};
use millrace::{Quality, Sample, TagId, ValueKind};

pub fn config(dir: &Path, segment_size: u64, quota: u64, when_full: WhenFull) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_size,
        quota,
        commit_interval: Duration::from_millis(10),
        commit_bytes: 1 << 20,
        when_full,
        sync: SyncMode::Data,
    }
}

/// The sample the tests store at `seq`.
pub fn sample(seq: u64) -> Sample {
    let quality = if seq % 7 == 3 {
        Quality::TIMEOUT
    } else {
        Quality::GOOD
    };
    Sample::new(
        seq as i64 * 1_000 + 17,
        TagId((seq % 1009) as u32),
        quality,
        ValueKind::U64,
        seq ^ 0x5EED,
    )
}

pub fn batch(first_seq: u64, count: usize) -> Vec<Sample> {
    (first_seq..first_seq + count as u64).map(sample).collect()
}

/// Appends `count` samples in one frame at the WAL's next seq.
pub fn append(wal: &mut Wal, count: usize) -> u64 {
    let first = wal.next_seq();
    let got = wal.append(&batch(first, count)).expect("append");
    assert_eq!(got.first_seq, first);
    assert_eq!(got.end_seq, first + count as u64);
    first
}

/// Reads everything the cursor can see, checking each sample against its
/// seq and that seqs are contiguous; returns (first seq, end seq, frames).
pub fn drain(cursor: &mut Cursor) -> (Option<u64>, u64, usize) {
    let mut first = None;
    let mut end = cursor.position();
    let mut frames = 0;
    for _ in 0..10_000_000 {
        let Some(frame) = cursor.next() else { break };
        if first.is_none() {
            first = Some(frame.first_seq);
        } else {
            assert_eq!(frame.first_seq, end, "frames are contiguous");
        }
        for (i, s) in frame.samples.iter().enumerate() {
            assert_eq!(
                *s,
                sample(frame.first_seq + i as u64),
                "sample at seq {}",
                frame.first_seq + i as u64
            );
        }
        end = frame.end_seq();
        frames += 1;
    }
    (first, end, frames)
}

/// Segment files of a WAL directory, oldest first.
pub fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}
