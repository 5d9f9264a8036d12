//! Model-based test: random sequences of append / commit / poll / read /
//! checkpoint / rewind / seek / reclaim / reopen against a model of plain
//! counters (every sample is a function of its seq, so the model needs no
//! copy of the data). Segments are one page (167 samples) and the quota
//! eight pages, so rollover, retention and `Full` happen in most cases.

mod wal_common;

use std::time::{Duration, Instant};

use millrace::config::WhenFull;
use millrace::wal::{Cursor, Wal, WalError};
use proptest::prelude::*;
use wal_common::*;

const SEG: u64 = 4096;
const QUOTA: u64 = 8 * SEG;

#[derive(Clone, Debug)]
enum Action {
    Append(usize),
    Commit,
    Poll(u64),
    Read(usize),
    Checkpoint,
    Rewind,
    Seek(u8),
    Reclaim,
    Reopen,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        6 => (1usize..=60).prop_map(Action::Append),
        2 => Just(Action::Commit),
        2 => (0u64..15).prop_map(Action::Poll),
        4 => (1usize..=4).prop_map(Action::Read),
        2 => Just(Action::Checkpoint),
        1 => Just(Action::Rewind),
        1 => any::<u8>().prop_map(Action::Seek),
        1 => Just(Action::Reclaim),
        1 => Just(Action::Reopen),
    ]
}

struct Model {
    next: u64,
    durable: u64,
    pos: u64,
    checkpoint: u64,
}

struct Real {
    wal: Wal,
    cursor: Cursor,
}

fn open(dir: &std::path::Path) -> Real {
    let (wal, _) = Wal::open(&config(dir, SEG, QUOTA, WhenFull::Block)).unwrap();
    let cursor = wal.open_cursor("a").unwrap();
    Real { wal, cursor }
}

fn step(
    slot: &mut Option<Real>,
    m: &mut Model,
    a: &Action,
    clock: &mut Instant,
    dir: &std::path::Path,
) {
    if let Action::Reopen = a {
        // Close first (the directory lock), then recover.
        *slot = None;
        let real = slot.insert(open(dir));
        // A clean close loses nothing: unsynced frames are still in the
        // page cache, intact, and recovery keeps them.
        assert_eq!(real.wal.next_seq(), m.next);
        m.durable = m.next;
        m.pos = m.checkpoint;
        assert_eq!(real.cursor.position(), m.checkpoint);
    }
    let real = slot.as_mut().expect("open");
    match *a {
        Action::Append(n) => {
            let before = m.next;
            match real.wal.append(&batch(m.next, n)) {
                Ok(got) => {
                    assert_eq!(got.first_seq, m.next);
                    m.next += n as u64;
                }
                Err(WalError::Full) => assert_eq!(real.wal.next_seq(), m.next),
                Err(e) => panic!("append: {e}"),
            }
            // Rolling to a new segment syncs the old one first: everything
            // before this append may have become durable.
            let durable = real.wal.durable_seq();
            assert!(durable == m.durable || durable == before, "{durable}");
            m.durable = durable;
        }
        Action::Commit => {
            assert_eq!(real.wal.commit().unwrap(), m.next);
            m.durable = m.next;
        }
        Action::Poll(ms) => {
            *clock += Duration::from_millis(ms);
            if let Some(d) = real.wal.poll_commit(*clock).unwrap() {
                assert_eq!(d, m.next);
                m.durable = m.next;
            }
        }
        Action::Read(k) => read(real, m, k),
        Action::Checkpoint => {
            real.cursor.checkpoint(m.pos).unwrap();
            m.checkpoint = m.checkpoint.max(m.pos);
        }
        Action::Rewind => {
            real.cursor.rewind();
            m.pos = m.checkpoint;
        }
        Action::Seek(f) => {
            // Anywhere from the checkpoint (still retained) to durable.
            let seq = m.checkpoint + (m.durable - m.checkpoint) * u64::from(f) / 255;
            real.cursor.seek(seq);
            m.pos = seq;
        }
        Action::Reclaim => {
            real.wal.reclaim().unwrap();
        }
        Action::Reopen => {}
    }
    assert_eq!(real.wal.durable_seq(), m.durable);
    let bytes: u64 = segment_files(dir)
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert!(bytes <= QUOTA, "{bytes} bytes on disk");
}

fn read(real: &mut Real, m: &mut Model, frames: usize) {
    for _ in 0..frames {
        match real.cursor.next() {
            Some(f) => {
                assert_eq!(f.first_seq, m.pos, "a frame starts where the cursor is");
                assert!(f.end_seq() <= m.durable, "read past durable");
                for (i, s) in f.samples.iter().enumerate() {
                    assert_eq!(*s, sample(f.first_seq + i as u64));
                }
                m.pos = f.end_seq();
            }
            None => {
                assert_eq!(m.pos, m.durable, "None only once caught up");
                break;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn wal_matches_the_model(actions in prop::collection::vec(action(), 1..120)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut slot = Some(open(tmp.path()));
        let mut m = Model { next: 0, durable: 0, pos: 0, checkpoint: 0 };
        let mut clock = Instant::now();
        for a in &actions {
            step(&mut slot, &mut m, a, &mut clock, tmp.path());
        }
        let real = slot.as_mut().expect("open");
        // Whatever happened, a final commit and a fresh cursor see it all
        // from the checkpoint on.
        real.wal.commit().unwrap();
        m.durable = m.next;
        real.cursor.rewind();
        m.pos = m.checkpoint;
        read(real, &mut m, usize::MAX);
        prop_assert_eq!(m.pos, m.next);
        prop_assert_eq!(real.cursor.skipped_samples(), 0);
    }
}
