//! Reconnect policy: jittered exponential backoff, sans-IO. The caller owns
//! the clock and the random source; this only computes the next delay.

#![forbid(unsafe_code)]

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Delay cap of the first retry (attempt 0).
    pub base: Duration,
    /// The cap never grows beyond this.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), given one random
    /// draw. "Equal jitter": half the cap plus a uniform part of the other
    /// half, so retries never stampede and never spin at zero delay.
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let base_ns = self.base.as_nanos().min(u64::MAX as u128) as u64;
        let max_ns = self.max.as_nanos().min(u64::MAX as u128) as u64;
        let factor = 1u64.checked_shl(attempt.min(63)).unwrap_or(u64::MAX);
        let cap_ns = base_ns.saturating_mul(factor).min(max_ns).max(1);
        let half = cap_ns / 2;
        let jitter = random % (cap_ns - half + 1);
        Duration::from_nanos(half + jitter)
    }
}

/// A small xorshift64 generator for the jitter (not for anything secret).
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Self {
        Jitter(seed | 1)
    }

    /// Seeded from the clock and the process id: distinct per process.
    pub fn from_entropy() -> Self {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter::new(t ^ ((std::process::id() as u64) << 32))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_within_cap_and_jitter() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let mut rng = Jitter::new(42);
        for attempt in 0..80 {
            let cap = (100u64 << attempt.min(20)).min(2000);
            for _ in 0..20 {
                let d = b.delay(attempt, rng.next_u64()).as_millis() as u64;
                assert!(
                    d >= cap / 2 && d <= cap,
                    "attempt {attempt}: {d} vs cap {cap}"
                );
            }
        }
        assert_eq!(b.delay(0, 0), Duration::from_millis(50));
        assert_eq!(b.delay(0, 50_000_000), Duration::from_millis(100));
        assert_ne!(b.delay(3, 1), b.delay(3, 7_777_777));
    }
}
