//! Latency histograms per pipeline stage (HdrHistogram, nanoseconds).
//!
//! Each stage is recorded by the thread that owns it into a thread-local
//! `StageRecorder` (no lock, no allocation per record) and merged into the
//! shared histogram every `FLUSH_EVERY` records, every `FLUSH_INTERVAL` or
//! on `flush()`, so the endpoint and the reports see recent data without
//! contention on the hot path.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// The stages of the data path, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Request sent to response complete, per request.
    PollRoundTrip,
    /// Decoding one response frame into samples.
    Decode,
    /// Response received to drained from the ring by the WAL writer.
    RingDwell,
    /// One group commit (fdatasync) of the WAL.
    WalCommit,
    /// Sample time stamp (its poll answer received) to acknowledged by kdb+
    /// (the sync chaser's reply read), one count per sample; the samples of
    /// one WAL frame share their frame's oldest time stamp.
    EndToEnd,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::PollRoundTrip,
        Stage::Decode,
        Stage::RingDwell,
        Stage::WalCommit,
        Stage::EndToEnd,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Stage::PollRoundTrip => "poll_round_trip",
            Stage::Decode => "decode",
            Stage::RingDwell => "ring_dwell",
            Stage::WalCommit => "wal_commit",
            Stage::EndToEnd => "end_to_end",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// 1 ns to 1 hour at 3 significant digits: a few tens of KiB per histogram.
const LATENCY_NS_MAX: u64 = 3_600_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;
const FLUSH_EVERY: usize = 4096;
/// Also merge at least this often, so slow stages (a commit every 10 ms)
/// show up in live percentiles.
const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, SIGNIFICANT_DIGITS)
        .expect("constant bounds are valid")
}

/// One stage's merged latencies.
struct Merged {
    histogram: Histogram<u64>,
    /// The exact sum of the values merged into `histogram` (an hour at
    /// most each, as the histogram holds them): Prometheus' `_sum`, which
    /// the histogram's own `mean` gives only by walking every bucket.
    sum_ns: u128,
}

impl Merged {
    fn new() -> Self {
        Merged {
            histogram: new_histogram(),
            sum_ns: 0,
        }
    }
}

/// The shared histograms, one per stage.
pub struct StageHistograms {
    stages: [Mutex<Merged>; 5],
}

impl std::fmt::Debug for StageHistograms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StageHistograms")
    }
}

impl Default for StageHistograms {
    fn default() -> Self {
        StageHistograms {
            stages: std::array::from_fn(|_| Mutex::new(Merged::new())),
        }
    }
}

impl StageHistograms {
    /// A copy of one stage's histogram so far.
    pub fn snapshot(&self, stage: Stage) -> Histogram<u64> {
        lock(&self.stages[stage.index()]).histogram.clone()
    }

    /// Calls `f` with one stage's histogram so far and the exact sum of its
    /// values in nanoseconds, under the stage's lock: for what a scrape
    /// reads (a few passes over the recorded range). A copy per scrape
    /// instead cost more than the reading (five 256 KiB arrays cleared and
    /// copied), and a recorder's merge waits no longer for this than for a
    /// copy.
    pub fn read<R>(&self, stage: Stage, f: impl FnOnce(&Histogram<u64>, u128) -> R) -> R {
        let merged = lock(&self.stages[stage.index()]);
        f(&merged.histogram, merged.sum_ns)
    }

    /// Empties every stage (a benchmark's window starts after warm-up).
    /// Values a thread has recorded but not merged yet land after the reset.
    pub fn reset(&self) {
        for stage in &self.stages {
            let mut merged = lock(stage);
            merged.histogram.reset();
            merged.sum_ns = 0;
        }
    }

    /// Records (latency, count) pairs, each latency within the bounds.
    fn merge(&self, stage: Stage, pending: &[(u64, u64)]) {
        let mut merged = lock(&self.stages[stage.index()]);
        for &(latency_ns, count) in pending {
            merged.histogram.saturating_record_n(latency_ns, count);
            let sum = u128::from(latency_ns) * u128::from(count);
            merged.sum_ns = merged.sum_ns.saturating_add(sum);
        }
    }
}

fn lock(m: &Mutex<Merged>) -> std::sync::MutexGuard<'_, Merged> {
    // A poisoned histogram is still a valid histogram.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A thread's private recorder for one stage: the values since the last
/// merge, as (latency, count) pairs in a buffer allocated once.
///
/// Why not a private histogram added into the shared one: `Histogram::add`
/// walks every bucket and `reset` clears them (a few hundred KiB), a cost
/// per merge that does not shrink with the values merged; at 100 K
/// samples/s, four merges a second per thread were about 3 % of the sink's
/// CPU (perf). A merge now costs one record per value pending.
pub struct StageRecorder {
    stage: Stage,
    shared: Arc<StageHistograms>,
    /// At most `FLUSH_EVERY` pairs: a merge empties it first.
    pending: Vec<(u64, u64)>,
    flushed_at: Instant,
}

impl StageRecorder {
    pub fn new(shared: &Arc<StageHistograms>, stage: Stage) -> Self {
        StageRecorder {
            stage,
            shared: Arc::clone(shared),
            pending: Vec::with_capacity(FLUSH_EVERY),
            flushed_at: Instant::now(),
        }
    }

    pub fn record_ns(&mut self, latency_ns: u64) {
        self.record_n_ns(latency_ns, 1);
    }

    /// Records `count` values of `latency_ns` at once (samples that share
    /// one time stamp and one acknowledgement).
    pub fn record_n_ns(&mut self, latency_ns: u64, count: u64) {
        if count == 0 {
            return;
        }
        let latency_ns = latency_ns.clamp(1, LATENCY_NS_MAX);
        // Merges are paced by calls, not by the count they carry.
        self.pending.push((latency_ns, count));
        if self.pending.len() >= FLUSH_EVERY || self.flushed_at.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// Merges what is pending if the last merge is `FLUSH_INTERVAL` old: for
    /// a thread going idle, so live percentiles stay current without a merge
    /// per idle turn.
    pub fn flush_if_due(&mut self) {
        if self.flushed_at.elapsed() >= FLUSH_INTERVAL {
            self.flush();
        }
    }

    /// How long until `flush_if_due` would merge what is pending (`None`:
    /// nothing is).
    pub fn flush_due_in(&self) -> Option<Duration> {
        (!self.pending.is_empty()).then(|| FLUSH_INTERVAL.saturating_sub(self.flushed_at.elapsed()))
    }

    pub fn flush(&mut self) {
        if !self.pending.is_empty() {
            self.shared.merge(self.stage, &self.pending);
            self.pending.clear();
            self.flushed_at = Instant::now();
        }
    }
}

impl Drop for StageRecorder {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The percentile distribution in HdrHistogram's text (`.hgrm`) format, in
/// milliseconds, as `HistogramLogProcessor` and the online plotter read it.
pub fn hgrm_text(h: &Histogram<u64>) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let value_ms = v.value_iterated_to() as f64 / 1e6;
        let count = v.count_since_last_iteration();
        let _ = count;
        let total = (q * h.len() as f64).round() as u64;
        if q < 1.0 {
            let _ = writeln!(
                out,
                "{value_ms:>12.3} {q:>14.12} {total:>10} {:>14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(out, "{value_ms:>12.3} {q:>14.12} {total:>10}");
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]\n#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.mean() / 1e6,
        h.stdev() / 1e6,
        h.max() as f64 / 1e6,
        h.len()
    );
    out
}

/// p50/p90/p99/p99.9/max of a histogram, in milliseconds, for reports.
pub fn summary_ms(h: &Histogram<u64>) -> [f64; 5] {
    let ms = |ns: u64| ns as f64 / 1e6;
    [
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_merges_into_shared() {
        let shared = Arc::new(StageHistograms::default());
        {
            let mut r = StageRecorder::new(&shared, Stage::WalCommit);
            for v in 1..=10_000u64 {
                r.record_ns(v * 1000);
            }
        }
        let h = shared.snapshot(Stage::WalCommit);
        assert_eq!(h.len(), 10_000);
        assert!(shared.snapshot(Stage::Decode).is_empty());
        let p50 = h.value_at_quantile(0.5);
        assert!((4_990_000..=5_010_000).contains(&p50), "{p50}");
    }

    /// A recorder merges by itself every `FLUSH_EVERY` calls, each call's
    /// count whole, and keeps the rest until a flush.
    #[test]
    fn recorder_merges_every_flush_every_calls() {
        let shared = Arc::new(StageHistograms::default());
        let mut r = StageRecorder::new(&shared, Stage::EndToEnd);
        for v in 0..FLUSH_EVERY as u64 + 10 {
            r.record_n_ns(1_000 + v, 2);
        }
        let merged = 2 * FLUSH_EVERY as u64;
        assert_eq!(shared.snapshot(Stage::EndToEnd).len(), merged);
        assert_eq!(r.pending.len(), 10);
        assert!(r.flush_due_in().is_some());
        r.flush();
        assert_eq!(shared.snapshot(Stage::EndToEnd).len(), merged + 20);
        assert_eq!(r.flush_due_in(), None);
        assert_eq!(r.pending.capacity(), FLUSH_EVERY, "never grown");
    }

    #[test]
    fn read_sees_the_merged_values_and_their_exact_sum() {
        let shared = Arc::new(StageHistograms::default());
        let record = |stage, values: std::ops::Range<u64>| {
            let mut r = StageRecorder::new(&shared, stage);
            for v in values {
                r.record_ns(v);
            }
            r.record_n_ns(1_000, 3);
            // Above the histogram's hour: held as an hour, summed as one.
            r.record_ns(LATENCY_NS_MAX + 1);
        };
        let hour = u128::from(LATENCY_NS_MAX);
        record(Stage::Decode, 1..101);
        shared.read(Stage::Decode, |h, sum_ns| {
            assert_eq!(h.len(), 104);
            assert_eq!(sum_ns, (1..101).sum::<u128>() + 3_000 + hour);
        });
        shared.read(Stage::EndToEnd, |h, sum_ns| {
            assert!(h.is_empty());
            assert_eq!(sum_ns, 0);
        });
        // A reset empties both.
        shared.reset();
        record(Stage::EndToEnd, 5..7);
        shared.read(Stage::Decode, |h, sum_ns| {
            assert_eq!((h.len(), sum_ns), (0, 0))
        });
        shared.read(Stage::EndToEnd, |h, sum_ns| {
            assert_eq!(h.len(), 6);
            assert_eq!(sum_ns, 11 + 3_000 + hour);
        });
    }

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000_000).unwrap();
        }
        let text = hgrm_text(&h);
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     =     1000."), "{text}");
        assert!(text.contains("Total count    =         1000]"));
    }
}
