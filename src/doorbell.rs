//! How a reader wakes the WAL writer: the writer sleeps (parks) only when
//! every ring is empty and everything appended is durable, so an idle
//! gateway's writer wakes when there is work, not on a timer; a reader rings
//! after an event-loop turn that published samples, and the ring costs a
//! fence and one load unless the writer is asleep.
//!
//! The handshake is Dekker's: the writer announces `sleeping`, then looks
//! at the rings; a reader publishes into its ring, then looks at
//! `sleeping`. With a SeqCst fence between each side's store and load, at
//! least one of them sees the other's store: either the writer sees the
//! samples and does not sleep, or the reader sees the writer asleep and
//! unparks it (an unpark before the park makes the park return at once).

#![forbid(unsafe_code)]

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::Thread;
use std::time::Duration;

#[derive(Debug, Default)]
pub struct Doorbell {
    sleeping: AtomicBool,
    writer: OnceLock<Thread>,
}

impl Doorbell {
    /// The writer is about to sleep: after this it must look at the rings
    /// once more, then `sleep` (nothing there) or `stay_awake`.
    pub fn announce_sleep(&self) {
        self.writer.get_or_init(std::thread::current);
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Sleeps until a reader rings, `wake` is called, or `limit` passes.
    pub fn sleep(&self, limit: Duration) {
        std::thread::park_timeout(limit);
        self.sleeping.store(false, Ordering::Relaxed);
    }

    pub fn stay_awake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    /// A reader published samples: wakes the writer if it sleeps.
    #[inline]
    pub fn ring(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) && self.sleeping.swap(false, Ordering::AcqRel) {
            self.wake();
        }
    }

    /// Wakes the writer whatever it is doing (a stop).
    pub fn wake(&self) {
        if let Some(writer) = self.writer.get() {
            writer.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;
    use std::time::Instant;

    /// A producer publishing now and then and a sleeper that sleeps only
    /// when it has seen everything: every publication is seen without
    /// waiting out the (long) limit.
    #[test]
    fn no_publication_waits_for_the_limit() {
        let bell = Arc::new(Doorbell::default());
        let published = Arc::new(AtomicU64::new(0));
        const ROUNDS: u64 = 2_000;
        let consumer = {
            let (bell, published) = (Arc::clone(&bell), Arc::clone(&published));
            std::thread::spawn(move || {
                let mut seen = 0;
                let mut long_sleeps = 0;
                while seen < ROUNDS {
                    let now = published.load(Ordering::Acquire);
                    if now > seen {
                        seen = now;
                        continue;
                    }
                    bell.announce_sleep();
                    if published.load(Ordering::Acquire) > seen {
                        bell.stay_awake();
                        continue;
                    }
                    let started = Instant::now();
                    bell.sleep(Duration::from_secs(30));
                    if started.elapsed() >= Duration::from_secs(30) {
                        long_sleeps += 1;
                    }
                }
                long_sleeps
            })
        };
        for _ in 0..ROUNDS {
            published.fetch_add(1, Ordering::Release);
            bell.ring();
            if published.load(Ordering::Relaxed) % 64 == 0 {
                std::thread::yield_now();
            }
        }
        assert_eq!(consumer.join().unwrap(), 0, "a publication was missed");
    }
}
