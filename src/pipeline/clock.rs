//! Wall-clock time for latencies measured against sample stamps (ring
//! dwell, end to end). Sample stamps are UNIX nanoseconds anchored to the
//! monotonic clock (src/reader/clock.rs): after the wall clock steps back
//! they run ahead of it by the step, so "now" here adds that lag, or every
//! latency would read zero until a restart. A step shows as one odd
//! latency, never a negative one (differences saturate at zero).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_now_ns() -> i64 {
    let wall_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let lag_ns = i64::try_from(crate::reader::clock::wall_lag_ns()).unwrap_or(i64::MAX);
    wall_ns.saturating_add(lag_ns)
}

/// `later - earlier` in nanoseconds, 0 if the clock went backwards.
pub fn elapsed_ns(earlier_ns: i64, later_ns: i64) -> u64 {
    later_ns.saturating_sub(earlier_ns).max(0) as u64
}
