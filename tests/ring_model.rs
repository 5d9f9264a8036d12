//! Model test: random sequences of reserve/commit/readable/release on a ring
//! with 2..=8 slots (so it wraps constantly), checked after every step
//! against a VecDeque. Single-threaded: it checks the index arithmetic and the
//! slice splitting; the threaded tests check the orderings.
#![cfg(not(millrace_loom))]

use std::collections::VecDeque;

use millrace::ring::{channel, RingFull};
use millrace::{Quality, Sample, TagId, ValueKind};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    /// Reserve `reserve` slots, write them, commit the first `commit`.
    Write {
        reserve: usize,
        commit: usize,
    },
    /// Look at the readable records and release `count` of them (clamped).
    Read {
        count: usize,
    },
    Free,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0usize..10, 0usize..10).prop_map(|(reserve, commit)| Op::Write { reserve, commit }),
        (0usize..10).prop_map(|count| Op::Read { count }),
        Just(Op::Free),
    ]
}

fn sample(i: u64) -> Sample {
    Sample::new(i as i64, TagId(i as u32), Quality::GOOD, ValueKind::U64, !i)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn ring_matches_a_queue(log2_slots in 1u32..4, ops in prop::collection::vec(op(), 1..200)) {
        let slots = 1usize << log2_slots;
        let (mut p, mut c) = channel(slots);
        let mut model: VecDeque<Sample> = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Write { reserve, commit } => {
                    let free = slots - model.len();
                    match p.reserve(reserve) {
                        Ok(mut r) => {
                            prop_assert!(reserve <= free);
                            prop_assert_eq!(r.len(), reserve);
                            let commit = commit.min(reserve);
                            for k in 0..reserve {
                                *r.slot(k).unwrap() = sample(next + k as u64);
                            }
                            p.commit(commit);
                            for k in 0..commit {
                                model.push_back(sample(next + k as u64));
                            }
                            next += commit as u64;
                        }
                        Err(e) => {
                            prop_assert!(reserve > free);
                            prop_assert_eq!(e, RingFull { wanted: reserve, free });
                        }
                    }
                }
                Op::Read { count } => {
                    let (a, b) = c.readable();
                    let seen: Vec<Sample> = a.iter().chain(b.iter()).copied().collect();
                    // Nothing readable that was not committed, in order.
                    prop_assert!(seen.len() <= model.len());
                    prop_assert!(seen.iter().eq(model.iter().take(seen.len())));
                    // The cached view refreshes when it is empty.
                    if !model.is_empty() {
                        prop_assert!(!seen.is_empty());
                    }
                    let count = count.min(seen.len());
                    c.release(count);
                    model.drain(..count);
                }
                Op::Free => {
                    prop_assert_eq!(p.free(), slots - model.len());
                    prop_assert_eq!(c.available(), model.len());
                }
            }
        }
    }
}
