//! Ring throughput: records/s from a producer pinned to core 0 to a consumer
//! pinned to core 1, in batches, for millrace's ring beside rtrb 0.3 (the
//! same batched API shape: `write_chunk_uninit` / `read_chunk`) and
//! crossbeam's ArrayQueue (per-record API, driven in the same batches) in the
//! same run. Batches of 64 to 4096 records (the reader publishes once per
//! frame or per event-loop turn, 125-1000 records); rings of 4096 slots
//! (96 KiB) and 16384 slots (384 KiB, inside Zen 1's 512 KiB L2). The
//! consumer checks every record's sequence number (light, realistic work), so
//! no ring gets away with not moving data.
//!
//! Besides criterion's wall-clock medians, a summary pass prints for every
//! ring and batch the wall rate and the rate over 100 us windows (median and
//! 90th percentile): on a shared 2-vCPU VM a window measures the ring while
//! both threads are actually running, which the wall time of two spinning
//! threads does not. A second criterion group runs producer and consumer
//! alternately on one thread and reports that thread's CPU time: the ring's
//! own cost per record.
//!
//! cargo bench --bench ring -- --measurement-time 3 --warm-up-time 1

use std::thread;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;
use millrace::ring::{channel, pin_current_thread};
use millrace::{Quality, Sample, TagId, ValueKind};

const SLOTS: usize = 4096;
const SLOTS_L2: usize = 16384;
const PRODUCER_CORE: usize = 0;
const CONSUMER_CORE: usize = 1;
const BATCHES: [usize; 4] = [64, 256, 1024, 4096];
/// Records per summary run (a tenth for the per-record ArrayQueue), and runs
/// per configuration (median reported).
const SUMMARY_RECORDS: u64 = 20_000_000;
const SUMMARY_RUNS: usize = 3;
/// Window length for the co-scheduled rate.
const WINDOW_NS: u64 = 100_000;

fn sample(i: u64) -> Sample {
    Sample::new(i as i64, TagId(i as u32), Quality::GOOD, ValueKind::U64, i)
}

fn pin(core: usize) {
    // Pinning may be refused in a restricted container; the figures then say so.
    if let Err(e) = pin_current_thread(core) {
        eprintln!("ring bench: cannot pin to core {core}: {e}");
    }
}

/// The consumer's progress: (ns since start, records consumed), noted at
/// most every `PROGRESS_STEP` records, to compute rates over short windows.
struct Progress {
    start: Instant,
    last: u64,
    points: Vec<(u64, u64)>,
}

const PROGRESS_STEP: u64 = 4096;
const PROGRESS_POINTS_MAX: usize = 1 << 16;

impl Progress {
    fn new() -> Self {
        Progress {
            start: Instant::now(),
            last: 0,
            points: Vec::with_capacity(PROGRESS_POINTS_MAX),
        }
    }

    #[inline]
    fn note(&mut self, consumed: u64) {
        if consumed - self.last >= PROGRESS_STEP && self.points.len() < PROGRESS_POINTS_MAX {
            self.last = consumed;
            let ns = self.start.elapsed().as_nanos() as u64;
            self.points.push((ns, consumed));
        }
    }

    /// Rates (records/s) over consecutive windows of at least `WINDOW_NS`.
    fn window_rates(&self) -> Vec<f64> {
        let mut rates = Vec::new();
        let mut from = 0;
        for to in 1..self.points.len() {
            let ns = self.points[to].0 - self.points[from].0;
            if ns >= WINDOW_NS {
                let records = self.points[to].1 - self.points[from].1;
                rates.push(records as f64 * 1e9 / ns as f64);
                from = to;
            }
        }
        rates
    }
}

/// One run: the wall time for `total` records, and the consumer's progress.
type Run = (Duration, Progress);

/// Moves `total` records through millrace's ring in batches of `batch`.
fn run_millrace(total: u64, batch: usize, slots: usize) -> Run {
    let (mut p, mut c) = channel(slots);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut progress = Progress::new();
        let mut expect = 0u64;
        while expect < total {
            progress.note(expect);
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
        progress
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let Ok(r) = p.reserve(n) else {
            std::hint::spin_loop();
            continue;
        };
        // Two plain loops (not a chained iterator): the idiom for two slices.
        for part in [r.first, r.second] {
            for s in part.iter_mut() {
                *s = sample(next);
                next += 1;
            }
        }
        p.commit(n);
    }
    let progress = consumer.join().unwrap();
    (start.elapsed(), progress)
}

fn run_rtrb(total: u64, batch: usize, slots: usize) -> Run {
    let (mut p, mut c) = rtrb::RingBuffer::<Sample>::new(slots);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut progress = Progress::new();
        let mut expect = 0u64;
        while expect < total {
            progress.note(expect);
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
        progress
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let n = batch.min((total - next) as usize);
        let Ok(chunk) = p.write_chunk_uninit(n) else {
            std::hint::spin_loop();
            continue;
        };
        chunk.fill_from_iter((next..next + n as u64).map(sample));
        next += n as u64;
    }
    let progress = consumer.join().unwrap();
    (start.elapsed(), progress)
}

/// ArrayQueue has no batch API: the producer pushes a batch record by record
/// (waiting while full), the consumer pops everything there is.
fn run_array_queue(total: u64, batch: usize, slots: usize) -> Run {
    let q = std::sync::Arc::new(ArrayQueue::<Sample>::new(slots));
    let qc = std::sync::Arc::clone(&q);
    let consumer = thread::spawn(move || {
        pin(CONSUMER_CORE);
        let mut progress = Progress::new();
        let mut expect = 0u64;
        while expect < total {
            progress.note(expect);
            while let Some(s) = qc.pop() {
                assert_eq!(s.value, expect);
                expect += 1;
            }
        }
        progress
    });
    pin(PRODUCER_CORE);
    let start = Instant::now();
    let mut next = 0u64;
    while next < total {
        let end = next + batch.min((total - next) as usize) as u64;
        while next < end {
            if q.push(sample(next)).is_ok() {
                next += 1;
            } else {
                std::hint::spin_loop();
            }
        }
    }
    let progress = consumer.join().unwrap();
    (start.elapsed(), progress)
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
    for batch in [64usize, 256, 1024] {
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

type Runner = fn(u64, usize, usize) -> Run;

const RINGS: [(&str, Runner); 3] = [
    ("millrace", run_millrace),
    ("rtrb", run_rtrb),
    ("crossbeam_array_queue", run_array_queue),
];

fn ring_throughput(c: &mut Criterion) {
    // One iteration moves one batch; criterion sizes the run so that each
    // measured call moves iters * batch records through one thread pair.
    for (group_name, slots) in [
        ("ring_records", SLOTS),
        ("ring_records_16k_slots", SLOTS_L2),
    ] {
        let mut group = c.benchmark_group(group_name);
        group.sample_size(10);
        for batch in BATCHES {
            if slots == SLOTS_L2 && batch < 1024 {
                continue;
            }
            group.throughput(Throughput::Elements(batch as u64));
            for (name, run) in RINGS {
                group.bench_with_input(BenchmarkId::new(name, batch), &batch, |b, &batch| {
                    b.iter_custom(|iters| run(iters * batch as u64, batch, slots).0)
                });
            }
        }
        group.finish();
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn percentile(values: &mut [f64], fraction: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let index = ((values.len() as f64 * fraction) as usize).min(values.len().saturating_sub(1));
    values.get(index).copied().unwrap_or(0.0)
}

/// The figures the issue asks for, one line per ring and batch, in M records/s.
fn ring_summary(_: &mut Criterion) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nring summary: {SUMMARY_RUNS} runs of {} M records each (ArrayQueue a tenth), \
         producer core {PRODUCER_CORE}, consumer core {CONSUMER_CORE}; load average {}",
        SUMMARY_RECORDS / 1_000_000,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:>6} {:>6} {:>22} {:>12} {:>16} {:>16}",
        "slots", "batch", "ring", "wall M/s", "100us-win p50", "100us-win p90"
    );
    for (slots, batches) in [(SLOTS, &BATCHES[..]), (SLOTS_L2, &BATCHES[2..])] {
        for &batch in batches {
            for (name, run) in RINGS {
                let records = if name == "crossbeam_array_queue" {
                    SUMMARY_RECORDS / 10
                } else {
                    SUMMARY_RECORDS
                };
                let mut walls = Vec::new();
                let mut windows = Vec::new();
                for _ in 0..SUMMARY_RUNS {
                    let (elapsed, progress) = run(records, batch, slots);
                    walls.push(records as f64 / elapsed.as_secs_f64() / 1e6);
                    windows.extend(progress.window_rates().iter().map(|r| r / 1e6));
                }
                println!(
                    "{slots:>6} {batch:>6} {name:>22} {:>12.1} {:>16.1} {:>16.1}",
                    median(&mut walls),
                    percentile(&mut windows, 0.5),
                    percentile(&mut windows, 0.9),
                );
            }
        }
    }
}

criterion_group!(benches, ring_throughput, ring_cpu_cost, ring_summary);
criterion_main!(benches);
