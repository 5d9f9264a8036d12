//! A really full disk: the test mounts a 1 MiB tmpfs (the tests run as root,
//! here and in CI; if the mount fails the test fails, it never skips) and
//! fills it with a WAL whose quota is far larger than the disk. fallocate
//! then fails with ENOSPC before any page is mapped, which `block` turns
//! into backpressure and `drop_oldest` into dropping, never into SIGBUS or
//! a damaged frame.

mod common;
mod wal_common;

use std::path::Path;

use common::Tmpfs;
use millrace::config::WhenFull;
use millrace::wal::{Wal, WalError};
use wal_common::*;

const SEG: u64 = 64 * 1024;
const QUOTA: u64 = 1 << 30;
const N: usize = 100;

/// The tests in this file run one at a time: a fork for mount(8) in one test
/// would briefly share the other test's mappings and lock file (until its
/// exec), keeping a dropped segment's tmpfs pages allocated.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fill_until_refused(wal: &mut Wal) -> (usize, WalError) {
    for appended in 0..100_000 {
        let first = wal.next_seq();
        if let Err(e) = wal.append(&batch(first, N)) {
            return (appended, e);
        }
    }
    panic!("the disk never filled");
}

#[test]
fn block_gives_backpressure_on_a_full_disk_and_loses_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fs = Tmpfs::mount(1 << 20);
    let dir: &Path = &fs.path;
    let (mut wal, _) = Wal::open(&config(dir, SEG, QUOTA, WhenFull::Block)).unwrap();
    let mut cursor = wal.open_cursor("tp").unwrap();
    let (appended, refused) = fill_until_refused(&mut wal);
    assert!(matches!(refused, WalError::Full), "{refused}");
    assert!(appended > 0);
    let files = segment_files(dir).len();
    assert!(
        (10..16).contains(&files),
        "{files} segments of 64 KiB on a 1 MiB disk"
    );
    // The writer is still healthy: what it took commits, and reads back.
    let durable = wal.commit().unwrap();
    assert_eq!(durable, (appended * N) as u64);
    assert_eq!(drain(&mut cursor).1, durable);
    // Once the sink has delivered, its segments go and appends resume.
    cursor.checkpoint(durable).unwrap();
    append(&mut wal, N);
    wal.commit().unwrap();
    assert_eq!(drain(&mut cursor), (Some(durable), durable + N as u64, 1));
    drop(cursor);
    drop(wal);
    let (_, report) = Wal::open(&config(dir, SEG, QUOTA, WhenFull::Block)).unwrap();
    assert!(
        report.tail_cut.is_none() && report.set_aside.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.next_seq, durable + N as u64);
    assert!(!dir.read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .to_string_lossy()
        .ends_with(".tmp")));
}

#[test]
fn drop_oldest_keeps_going_on_a_full_disk() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let fs = Tmpfs::mount(1 << 20);
    let dir: &Path = &fs.path;
    let (mut wal, _) = Wal::open(&config(dir, SEG, QUOTA, WhenFull::DropOldest)).unwrap();
    let mut cursor = wal.open_cursor("tp").unwrap();
    let per_disk = 16 * (SEG as usize / (24 * N + 64));
    for _ in 0..3 * per_disk {
        append(&mut wal, N);
        wal.poll_commit(std::time::Instant::now()).unwrap();
    }
    let durable = wal.commit().unwrap();
    assert!(wal.dropped_samples() > 0);
    let (first, end, _) = drain(&mut cursor);
    assert_eq!(end, durable);
    assert_eq!(cursor.skipped_samples(), first.unwrap());
    assert_eq!(
        wal.dropped_samples(),
        first.unwrap(),
        "every dropped sample counted once"
    );
    drop(cursor);
    drop(wal);
    let (_, report) = Wal::open(&config(dir, SEG, QUOTA, WhenFull::DropOldest)).unwrap();
    assert!(
        report.tail_cut.is_none() && report.set_aside.is_empty(),
        "{report:?}"
    );
    assert_eq!(report.next_seq, durable);
}
