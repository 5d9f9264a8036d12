//! Two real threads push many records through a small ring in batches of
//! varying size; every record must arrive exactly once and in order.
#![cfg(not(millrace_loom))]

use std::thread;
use std::time::{Duration, Instant};

use millrace::ring::channel;
use millrace::{Quality, Sample, TagId, ValueKind};

fn sample(i: u64) -> Sample {
    Sample::new(
        i as i64,
        TagId(i as u32),
        Quality::GOOD,
        ValueKind::U64,
        i.wrapping_mul(31),
    )
}

/// Runs `total` records through a ring of `slots`; the producer's batch sizes
/// cycle through 1..=max_batch, the consumer releases at most `max_release`.
fn stress(slots: usize, total: u64, max_batch: usize, max_release: usize) {
    // A hang guard, not a timing: generous because the 8-slot case yields
    // the CPU on every full/empty ring, which on a saturated shared machine
    // took over 60 s once (it takes ~2 s when the machine is idle).
    let deadline = Instant::now() + Duration::from_secs(300);
    let (mut p, mut c) = channel(slots);
    let producer = thread::spawn(move || {
        let mut next = 0u64;
        let mut batch = 1;
        while next < total {
            assert!(Instant::now() < deadline, "producer stuck at {next}");
            let n = batch.min((total - next) as usize);
            let Ok(mut r) = p.reserve(n) else {
                std::hint::spin_loop();
                thread::yield_now();
                continue;
            };
            for k in 0..n {
                *r.slot(k).unwrap() = sample(next + k as u64);
            }
            p.commit(n);
            next += n as u64;
            batch = batch % max_batch + 1;
        }
    });
    let mut expect = 0u64;
    while expect < total {
        assert!(Instant::now() < deadline, "consumer stuck at {expect}");
        let (a, b) = c.readable();
        let mut count = 0;
        for s in a.iter().chain(b.iter()).take(max_release) {
            assert_eq!(*s, sample(expect), "record {expect}");
            expect += 1;
            count += 1;
        }
        if count == 0 {
            thread::yield_now();
        }
        c.release(count);
    }
    producer.join().unwrap();
    assert_eq!(c.available(), 0, "records beyond the total arrived");
}

#[test]
fn tiny_ring_single_records() {
    stress(2, 200_000, 1, 1);
}

#[test]
fn small_ring_batches_wrap() {
    stress(8, 2_000_000, 7, 5);
}

#[test]
fn large_batches_reader_ring_size() {
    stress(4096, 20_000_000, 512, 1000);
}

#[test]
fn handles_move_between_threads() {
    let (mut p, mut c) = channel(4);
    let t = thread::spawn(move || {
        p.push_slice(&[sample(1), sample(2)]).unwrap();
        p
    });
    let mut p = t.join().unwrap();
    let t = thread::spawn(move || {
        let mut out = [Sample::default(); 4];
        assert_eq!(c.pop_into(&mut out), 2);
        assert_eq!(&out[..2], &[sample(1), sample(2)]);
        c
    });
    let mut c = t.join().unwrap();
    p.push_slice(&[sample(3)]).unwrap();
    assert_eq!(c.readable().0, &[sample(3)]);
}
