//! Model check of the ring's memory orderings with loom: every interleaving
//! (up to a preemption bound) and every value a weakly ordered load may
//! return. The ring reports each slot access to loom's cell tracker, so a
//! slot read not ordered after its write, or a slot rewritten while it may
//! still be read, fails the run; so does a record arriving wrong.
//!
//! Only built with the cfg (the atomics are switched by `src/ring.rs`):
//!
//! ```text
//! RUSTFLAGS="--cfg millrace_loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --profile loom --test ring_loom
//! ```
//!
//! (A separate target dir, so the flag does not invalidate the shared one.)
//! Without the cfg this file compiles to one test that says how to run it.
#![cfg_attr(not(millrace_loom), allow(dead_code))]

#[cfg(millrace_loom)]
mod model {
    use loom::thread;
    use millrace::ring::channel;
    use millrace::{Quality, Sample, TagId, ValueKind};

    fn sample(i: u64) -> Sample {
        Sample::new(i as i64, TagId(i as u32), Quality::GOOD, ValueKind::U64, i)
    }

    fn builder() -> loom::model::Builder {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b
    }

    /// Producer writes `total` records in batches of `batch` through a ring of
    /// `slots`; the consumer drains them with `readable`/`release`.
    fn run(slots: usize, total: u64, batch: u64) {
        builder().check(move || {
            let (mut p, mut c) = channel(slots);
            let producer = thread::spawn(move || {
                let mut next = 0u64;
                let mut spins = 0;
                while next < total {
                    let n = batch.min(total - next) as usize;
                    match p.reserve(n) {
                        Ok(mut r) => {
                            for k in 0..n {
                                *r.slot(k).unwrap() = sample(next + k as u64);
                            }
                            p.commit(n);
                            next += n as u64;
                        }
                        Err(_) => {
                            spins += 1;
                            assert!(spins < 1000);
                            thread::yield_now();
                        }
                    }
                }
            });
            let mut expect = 0u64;
            let mut spins = 0;
            while expect < total {
                let (a, b) = c.readable();
                let count = a.len() + b.len();
                for s in a.iter().chain(b.iter()) {
                    assert_eq!(*s, sample(expect));
                    expect += 1;
                }
                if count == 0 {
                    spins += 1;
                    assert!(spins < 1000);
                    thread::yield_now();
                } else {
                    c.release(count);
                }
            }
            producer.join().unwrap();
        });
    }

    #[test]
    fn single_records_wrap_twice() {
        run(2, 5, 1);
    }

    #[test]
    fn batches_wrap_split() {
        run(4, 7, 3);
    }

    #[test]
    fn full_ring_batches() {
        run(2, 4, 2);
    }
}

#[cfg(not(millrace_loom))]
#[test]
fn loom_model_needs_its_cfg() {
    // Not a skip: this target's real tests exist only under the cfg. CI runs
    // them with the command in the header; this line keeps the plain build honest.
    let (mut p, mut c) = millrace::ring::channel(2);
    p.push_slice(&[millrace::Sample::default()]).unwrap();
    assert_eq!(c.available(), 1);
}
