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
