//! Ring throughput: records/s from a producer pinned to core 0 to a consumer
//! pinned to core 1, in batches, for millrace's ring beside rtrb 0.3 (the
//! same batched API shape) and crossbeam's ArrayQueue (per-record: it has no
//! batch API) in the same run. Every ring has 4096 slots; the consumer checks
//! every record's sequence number, so no ring gets away with not moving data.
//!
//! A second group runs producer and consumer alternately on one thread and
//! reports that thread's CPU time (from /proc/thread-self/schedstat): the
//! ring's own cost per record, which other load on a shared machine does not
//! inflate the way it inflates the wall time of two spinning threads.
//!
//! cargo bench --bench ring -- --measurement-time 3 --warm-up-time 1

use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;
use millrace::ring::{channel, pin_current_thread};
use millrace::{Quality, Sample, TagId, ValueKind};

const SLOTS: usize = 4096;
const PRODUCER_CORE: usize = 0;
const CONSUMER_CORE: usize = 1;

fn sample(i: u64) -> Sample {
    Sample::new(i as i64, TagId(i as u32), Quality::Good, ValueKind::U64, i)
}

fn pin(core: usize) {
    // Pinning may be refused in a restricted container; the figures then say so.
    if let Err(e) = pin_current_thread(core) {
        eprintln!("ring bench: cannot pin to core {core}: {e}");
    }
}

/// Moves `total` records through millrace's ring in batches of `batch`.
fn run_millrace(total: u64, batch: usize) -> Duration {
    let (mut p, mut c) = channel(SLOTS);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut expect = 0u64;
        while expect < total {
            let (a, b) = c.readable();
            let count = a.len() + b.len();
            for part in [a, b] {
                for s in part {
                    assert_eq!(s.value, expect);
                    expect += 1;
                }
            }
            c.release(count);
        }
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let Ok(r) = p.reserve(n) else { continue };
        // Two plain loops (not a chained iterator): the idiom for two slices.
        for part in [r.first, r.second] {
            for s in part.iter_mut() {
                *s = sample(next);
                next += 1;
            }
        }
        p.commit(n);
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn run_rtrb(total: u64, batch: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<Sample>::new(SLOTS);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut expect = 0u64;
        while expect < total {
            let Ok(chunk) = c.read_chunk(c.slots()) else {
                continue;
            };
            let (a, b) = chunk.as_slices();
            for part in [a, b] {
                for s in part {
                    assert_eq!(s.value, expect);
                    expect += 1;
                }
            }
            chunk.commit_all();
        }
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let Ok(chunk) = p.write_chunk_uninit(n) else {
            continue;
        };
        chunk.fill_from_iter((next..next + n as u64).map(sample));
        next += n as u64;
    }
    consumer.join().unwrap();
    start.elapsed()
}

fn run_array_queue(total: u64) -> Duration {
    let q = std::sync::Arc::new(ArrayQueue::<Sample>::new(SLOTS));
    let qc = std::sync::Arc::clone(&q);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut expect = 0u64;
        while expect < total {
            if let Some(s) = qc.pop() {
                assert_eq!(s.value, expect);
                expect += 1;
            }
        }
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        if q.push(sample(next)).is_ok() {
            next += 1;
        }
    }
    consumer.join().unwrap();
    start.elapsed()
}

/// CPU time of the calling thread, in ns resolution.
fn thread_cpu() -> Duration {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: u64 = text
        .split(' ')
        .next()
        .and_then(|f| f.parse().ok())
        .expect("schedstat field");
    Duration::from_nanos(ns)
}

/// One thread: write a batch, read it back, `total / batch` times; CPU time.
fn same_thread_millrace(total: u64, batch: usize) -> Duration {
    let (mut p, mut c) = channel(SLOTS);
    let start = thread_cpu();
    let mut next = 0u64;
    let mut expect = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let r = p.reserve(n).expect("drained every round");
        // Two plain loops (not a chained iterator): the idiom for two slices.
        for part in [r.first, r.second] {
            for s in part.iter_mut() {
                *s = sample(next);
                next += 1;
            }
        }
        p.commit(n);
        let (a, b) = c.readable();
        let count = a.len() + b.len();
        for part in [a, b] {
            for s in part {
                assert_eq!(s.value, expect);
                expect += 1;
            }
        }
        c.release(count);
    }
    thread_cpu() - start
}

fn same_thread_rtrb(total: u64, batch: usize) -> Duration {
    let (mut p, mut c) = rtrb::RingBuffer::<Sample>::new(SLOTS);
    let start = thread_cpu();
    let mut next = 0u64;
    let mut expect = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let chunk = p.write_chunk_uninit(n).expect("drained every round");
        chunk.fill_from_iter((next..next + n as u64).map(sample));
        next += n as u64;
        let chunk = c.read_chunk(c.slots()).expect("slots() are readable");
        let (a, b) = chunk.as_slices();
        for part in [a, b] {
            for s in part {
                assert_eq!(s.value, expect);
                expect += 1;
            }
        }
        chunk.commit_all();
    }
    thread_cpu() - start
}

fn ring_cpu_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring_same_thread_cpu");
    group.sample_size(10);
    for batch in [64usize, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("millrace", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| same_thread_millrace(iters * batch as u64, batch))
        });
        group.bench_with_input(BenchmarkId::new("rtrb", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| same_thread_rtrb(iters * batch as u64, batch))
        });
    }
    group.finish();
}

fn ring_throughput(c: &mut Criterion) {
    // One iteration moves one batch; criterion sizes the run so that each
    // measured call moves iters * batch records through one thread pair.
    let mut group = c.benchmark_group("ring_records");
    group.sample_size(10);
    for batch in [64usize, 256] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_with_input(BenchmarkId::new("millrace", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| run_millrace(iters * batch as u64, batch))
        });
        group.bench_with_input(BenchmarkId::new("rtrb", batch), &batch, |b, &batch| {
            b.iter_custom(|iters| run_rtrb(iters * batch as u64, batch))
        });
    }
    group.throughput(Throughput::Elements(1));
    group.bench_function("crossbeam_array_queue/1", |b| {
        b.iter_custom(run_array_queue)
    });
    group.finish();
}

criterion_group!(benches, ring_throughput, ring_cpu_cost);
criterion_main!(benches);
