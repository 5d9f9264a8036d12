//! WAL benches, each side by side with the plain-file baseline in the same
//! run and the same directory (`MILLRACE_BENCH_DIR`, default target/):
//!
//! - `wal_append`: 96 MiB of 1000-sample frames (24,040 bytes each) with a
//!   10 ms group commit, millrace's WAL (64 MiB preallocated mmap segments,
//!   so one rollover) vs write(2) of the same frame bytes to a plain file with
//!   an fdatasync every 10 ms. Throughput in bytes; samples/s = bytes/24.04.
//! - `wal_recovery`: `Wal::open` over 256 MiB of full segments (page cache
//!   warm: dropping caches would disturb the other benches on this machine).
//! - commit latency (printed after criterion's report): alternating rounds
//!   of "append N bytes, commit" and "write(2) N bytes, fdatasync", HDR
//!   percentiles of the sync call alone, for 24 KB and 240 KB per commit.
//!
//! cargo bench --bench wal -- --measurement-time 3 --warm-up-time 1

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use hdrhistogram::Histogram;
use millrace::config::{SyncMode, WalConfig, WhenFull};
use millrace::wal::Wal;
use millrace::{Quality, Sample, TagId, ValueKind};

const BATCH: usize = 1000;
const FRAME_BYTES: usize = 40 + 24 * BATCH;
const APPEND_BYTES: u64 = 96 << 20;
const SEGMENT: u64 = 64 << 20;
const COMMIT_INTERVAL: Duration = Duration::from_millis(10);

fn bench_root() -> PathBuf {
    let root = std::env::var_os("MILLRACE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn cfg(dir: &Path) -> WalConfig {
    WalConfig {
        dir: dir.to_path_buf(),
        segment_size: SEGMENT,
        quota: 16 << 30,
        commit_interval: COMMIT_INTERVAL,
        commit_bytes: u64::MAX,
        when_full: WhenFull::Block,
        sync: SyncMode::Data,
    }
}

fn batch() -> Vec<Sample> {
    (0..BATCH as u64)
        .map(|i| {
            Sample::new(
                1_700_000_000_000_000_000 + i as i64,
                TagId(i as u32),
                Quality::GOOD,
                ValueKind::F64,
                i,
            )
        })
        .collect()
}

/// Appends APPEND_BYTES with group commit; returns the time taken.
fn run_wal(root: &Path, samples: &[Sample]) -> Duration {
    let tmp = tempfile::tempdir_in(root).unwrap();
    let (mut wal, _) = Wal::open(&cfg(tmp.path())).unwrap();
    let frames = APPEND_BYTES / FRAME_BYTES as u64;
    let start = Instant::now();
    for _ in 0..frames {
        wal.append(samples).unwrap();
        wal.poll_commit(Instant::now()).unwrap();
    }
    wal.commit().unwrap();
    let took = start.elapsed();
    assert_eq!(wal.durable_seq(), frames * BATCH as u64);
    took
}

/// The same frame bytes through write(2), fdatasync every 10 ms.
fn run_plain(root: &Path, frame: &[u8]) -> Duration {
    let tmp = tempfile::tempdir_in(root).unwrap();
    let mut file = File::create(tmp.path().join("plain.log")).unwrap();
    let frames = APPEND_BYTES / FRAME_BYTES as u64;
    let start = Instant::now();
    let mut last_sync = start;
    for _ in 0..frames {
        file.write_all(frame).unwrap();
        let now = Instant::now();
        if now.duration_since(last_sync) >= COMMIT_INTERVAL {
            file.sync_data().unwrap();
            last_sync = now;
        }
    }
    file.sync_data().unwrap();
    start.elapsed()
}

fn frame_bytes(samples: &[Sample]) -> Vec<u8> {
    let mut v = vec![0u8; 40];
    for s in samples {
        v.extend_from_slice(&s.to_bytes());
    }
    v
}

fn bench_append(c: &mut Criterion, root: &Path) {
    let samples = batch();
    let frame = frame_bytes(&samples);
    let mut g = c.benchmark_group("wal_append");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(
        APPEND_BYTES / FRAME_BYTES as u64 * FRAME_BYTES as u64,
    ));
    g.bench_function(BenchmarkId::new("millrace_wal", "10ms"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_wal(root, &samples)).sum())
    });
    g.bench_function(BenchmarkId::new("plain_write_fdatasync", "10ms"), |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_plain(root, &frame)).sum())
    });
    g.finish();
}

fn bench_recovery(c: &mut Criterion, root: &Path) {
    let tmp = tempfile::tempdir_in(root).unwrap();
    let samples = batch();
    let segments = 4u64;
    {
        let (mut wal, _) = Wal::open(&cfg(tmp.path())).unwrap();
        let per_segment = (SEGMENT as usize - 48) / FRAME_BYTES;
        for _ in 0..segments as usize * per_segment {
            wal.append(&samples).unwrap();
        }
        wal.commit().unwrap();
    }
    let mut g = c.benchmark_group("wal_recovery");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(segments * SEGMENT));
    g.bench_function("open_scan_256MiB", |b| {
        b.iter(|| {
            let (_wal, report) = Wal::open(&cfg(tmp.path())).unwrap();
            assert_eq!(report.bytes_scanned, segments * SEGMENT);
            report.frames_scanned
        })
    });
    g.finish();
}

/// HDR percentiles (µs) of the commit call for the WAL and of fdatasync for
/// a plain file, rounds alternating so both see the same disk.
fn commit_latency(root: &Path, bytes_per_commit: usize, rounds: usize) {
    let samples = batch();
    let frame = frame_bytes(&samples);
    let frames_per_commit = (bytes_per_commit / FRAME_BYTES).max(1);
    let tmp = tempfile::tempdir_in(root).unwrap();
    let (mut wal, _) = Wal::open(&cfg(&tmp.path().join("wal"))).unwrap();
    let mut plain = File::create(tmp.path().join("plain.log")).unwrap();
    let mut h_wal = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut h_plain = h_wal.clone();
    for _ in 0..rounds {
        for _ in 0..frames_per_commit {
            wal.append(&samples).unwrap();
        }
        let t = Instant::now();
        wal.commit().unwrap();
        h_wal.record(t.elapsed().as_micros().max(1) as u64).unwrap();
        for _ in 0..frames_per_commit {
            plain.write_all(&frame).unwrap();
        }
        let t = Instant::now();
        plain.sync_data().unwrap();
        h_plain
            .record(t.elapsed().as_micros().max(1) as u64)
            .unwrap();
    }
    for (name, h) in [
        ("millrace_wal_commit", &h_wal),
        ("bare_fdatasync", &h_plain),
    ] {
        println!(
            "commit_latency/{name}/{}KB: n={} p50={}us p90={}us p99={}us p99.9={}us max={}us",
            frames_per_commit * FRAME_BYTES / 1000,
            h.len(),
            h.value_at_quantile(0.50),
            h.value_at_quantile(0.90),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    }
}

/// ABAB pairs of the two append runs: on a machine shared with other
/// work, a neighbour's burst then hits both sides instead of one group.
fn paired_append(root: &Path, pairs: usize) {
    let samples = batch();
    let frame = frame_bytes(&samples);
    let mib = (APPEND_BYTES / FRAME_BYTES as u64 * FRAME_BYTES as u64) as f64 / (1u64 << 20) as f64;
    let (mut wal, mut plain, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..pairs {
        let (w, p) = if i % 2 == 0 {
            let w = run_wal(root, &samples);
            (w, run_plain(root, &frame))
        } else {
            let p = run_plain(root, &frame);
            (run_wal(root, &samples), p)
        };
        wal.push(mib / w.as_secs_f64());
        plain.push(mib / p.as_secs_f64());
        ratio.push(p.as_secs_f64() / w.as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "paired_append/{pairs} pairs: millrace_wal median {:.1} MiB/s ({:.2} M samples/s), \
         plain_write_fdatasync median {:.1} MiB/s, median per-pair ratio wal/plain {:.2}",
        median(&mut wal),
        median(&mut wal.clone()) * (1u64 << 20) as f64 / FRAME_BYTES as f64 * BATCH as f64 / 1e6,
        median(&mut plain),
        median(&mut ratio)
    );
}

fn main() {
    let root = bench_root();
    let mut c = Criterion::default().configure_from_args();
    bench_append(&mut c, &root);
    bench_recovery(&mut c, &root);
    c.final_summary();
    if !std::env::args().any(|a| a == "--list") {
        paired_append(&root, 9);
        commit_latency(&root, FRAME_BYTES, 400);
        commit_latency(&root, 10 * FRAME_BYTES, 300);
    }
}
