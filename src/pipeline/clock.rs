//! Wall-clock time for sample stamps and end-to-end latency. Sample time
//! stamps are UNIX nanoseconds (what kdb+ gets); latency between two threads
//! is measured on the same clock, so a clock step shows as one odd latency,
//! never as a negative one (differences saturate at zero).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// `later - earlier` in nanoseconds, 0 if the clock went backwards.
pub fn elapsed_ns(earlier_ns: i64, later_ns: i64) -> u64 {
    later_ns.saturating_sub(earlier_ns).max(0) as u64
}
