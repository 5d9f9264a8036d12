//! Counters of the WAL writer and the sinks, shared with the metrics
//! endpoint and the reports. Relaxed atomics: they are statistics, not
//! synchronisation.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct WriterStats {
    pub samples_appended: AtomicU64,
    pub frames_appended: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub commits: AtomicU64,
    /// Drain attempts refused because the WAL was full (policy `block`).
    pub full_waits: AtomicU64,
    /// The durable sequence number (samples).
    pub durable_seq: AtomicU64,
    /// Samples dropped by `drop_oldest`.
    pub dropped_samples: AtomicU64,
}

#[derive(Default)]
pub struct SinkStats {
    /// Samples acknowledged by kdb+ (a sync chaser's reply).
    pub acked_samples: AtomicU64,
    pub messages: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    /// Durable samples not yet acknowledged.
    pub lag_samples: AtomicU64,
    /// 1 while connected and logged in.
    pub connected: AtomicU64,
    /// Every seq below this was acknowledged by kdb+. Set by the sink; read
    /// with the writer's durable seq, it gives the lag even while the sink
    /// thread is blocked on a kdb+ that stopped reading.
    pub acked_seq: AtomicU64,
    /// [`mono_ms`] of the last acknowledgement, or of the last moment the
    /// sink had nothing to deliver: how long it has been stalled.
    pub progress_at_ms: AtomicU64,
}

pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub fn set(counter: &AtomicU64, n: u64) {
    counter.store(n, Ordering::Relaxed);
}

pub fn get(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

/// Milliseconds on a monotonic clock shared by the process (immune to wall
/// clock jumps), for ages such as [`SinkStats::progress_at_ms`].
pub fn mono_ms() -> u64 {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let origin = ORIGIN.get_or_init(std::time::Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl SinkStats {
    /// Durable samples not yet acknowledged, from the sink's acknowledged
    /// position (live even while the sink thread is blocked in kdb+ I/O).
    pub fn lag(&self, durable_seq: u64) -> u64 {
        durable_seq.saturating_sub(get(&self.acked_seq))
    }

    /// Seconds since the sink last made progress while it had durable
    /// samples to deliver; zero when it is keeping up (acknowledged within
    /// `grace`) or has nothing to deliver.
    pub fn stalled_seconds(&self, durable_seq: u64, grace: std::time::Duration) -> f64 {
        if self.lag(durable_seq) == 0 {
            return 0.0;
        }
        let age_ms = mono_ms().saturating_sub(get(&self.progress_at_ms));
        if u128::from(age_ms) < grace.as_millis() {
            0.0
        } else {
            age_ms as f64 / 1000.0
        }
    }
}
