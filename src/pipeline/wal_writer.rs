//! The WAL writer thread: drains every reader's ring into the WAL and
//! commits in groups. Ring slots are released only after their samples are
//! in the WAL's mapping, so a full WAL (policy `block`) leaves them in the
//! rings: the rings fill and the readers delay their polls (counted there).
//!
//! Each ring's readable run is appended as one frame (bounded by the WAL's
//! frame maximum), so frames grow with load and a quiet plant costs little.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{elapsed_ns, unix_now_ns};
use super::stats::{add, set, WriterStats};
use crate::metrics::{Stage, StageHistograms, StageRecorder};
use crate::ring::Consumer;
use crate::wal::{FullCause, Wal, WalError};

/// Sleep when nothing was drained: an eighth of the commit interval (a
/// drain or a commit is late by at most that), within these bounds. Each
/// idle wake-up costs a context switch; at 200 µs they were a third of
/// millrace's CPU on a lightly loaded plant.
const IDLE_SLEEP_MIN: Duration = Duration::from_micros(100);
const IDLE_SLEEP_MAX: Duration = Duration::from_millis(1);
const IDLE_SLEEP_COMMIT_FRACTION: u32 = 8;

/// How long the writer sleeps when it finds nothing to do.
pub fn idle_sleep(commit_interval: Duration) -> Duration {
    (commit_interval / IDLE_SLEEP_COMMIT_FRACTION).clamp(IDLE_SLEEP_MIN, IDLE_SLEEP_MAX)
}
/// Back-off while the WAL is full under `block`.
const FULL_SLEEP: Duration = Duration::from_millis(2);

pub struct WriterContext {
    pub stats: Arc<WriterStats>,
    pub histograms: Arc<StageHistograms>,
    /// Set by the pipeline once the readers have stopped producing: drain
    /// what is left, commit, and return.
    pub drain_and_stop: Arc<AtomicBool>,
    /// See [`idle_sleep`].
    pub idle_sleep: Duration,
}

/// Runs until `drain_and_stop` and every ring is empty, or a fatal WAL error.
pub fn run(mut wal: Wal, mut rings: Vec<Consumer>, ctx: WriterContext) -> Result<Wal, WalError> {
    let mut dwell = StageRecorder::new(&ctx.histograms, Stage::RingDwell);
    let mut commit = StageRecorder::new(&ctx.histograms, Stage::WalCommit);
    let frame_max = wal.max_batch_samples();
    let mut was_full = false;
    loop {
        let stopping = ctx.drain_and_stop.load(Ordering::Acquire);
        let mut drained = 0usize;
        let mut full = false;
        for ring in rings.iter_mut() {
            match drain_one(&mut wal, ring, frame_max, &mut dwell, &ctx.stats) {
                Ok(n) => drained += n,
                Err(WalError::Full) => {
                    full = true;
                    add(&ctx.stats.full_waits, 1);
                }
                Err(e) => return Err(e),
            }
        }
        // The sync runs on the WAL's `wal-sync` thread; this one goes on
        // draining the rings meanwhile.
        if let Some(took) = wal.poll_commit_background(Instant::now())? {
            commit.record_ns(took.as_nanos() as u64);
        }
        publish(&wal, &ctx.stats);
        if stopping && drained == 0 && !full {
            let started = Instant::now();
            wal.commit()?;
            commit.record_ns(started.elapsed().as_nanos() as u64);
            publish(&wal, &ctx.stats);
            return Ok(wal);
        }
        if full != was_full {
            was_full = full;
            log_full_state(full, &wal);
        }
        if full {
            // Make what is pending durable so sinks can move and free space.
            wal.commit()?;
            publish(&wal, &ctx.stats);
            std::thread::sleep(FULL_SLEEP);
        } else if drained == 0 {
            std::thread::sleep(ctx.idle_sleep);
        }
    }
}

/// Appends the ring's first readable run; returns the samples moved.
fn drain_one(
    wal: &mut Wal,
    ring: &mut Consumer,
    frame_max: usize,
    dwell: &mut StageRecorder,
    stats: &WriterStats,
) -> Result<usize, WalError> {
    let moved = {
        let (first, _) = ring.readable();
        let n = first.len().min(frame_max);
        if n == 0 {
            return Ok(0);
        }
        let run = &first[..n];
        let appended = wal.append(run)?;
        let now = unix_now_ns();
        dwell.record_ns(elapsed_ns(run[0].ts_ns, now));
        add(
            &stats.samples_appended,
            appended.end_seq - appended.first_seq,
        );
        add(&stats.frames_appended, 1);
        n
    };
    ring.release(moved);
    Ok(moved)
}

/// One line when the WAL fills (policy `block`) and one when it has room
/// again: an operator sees the state change, not a line per refusal.
fn log_full_state(full: bool, wal: &Wal) {
    if full {
        let cause = match wal.full_cause() {
            FullCause::Quota => "quota reached",
            FullCause::Disk => "disk full: no space to preallocate the next segment",
        };
        eprintln!(
            "millrace wal: full at durable seq {} ({cause}); not draining the rings: \
             readers delay their polls until a sink catches up and segments are retired",
            wal.durable_seq()
        );
    } else {
        eprintln!("millrace wal: room again; draining the rings");
    }
}

fn publish(wal: &Wal, stats: &WriterStats) {
    let s = wal.stats();
    set(&stats.durable_seq, wal.durable_seq());
    set(&stats.wal_bytes, s.bytes_appended);
    set(&stats.commits, s.commits);
    set(&stats.dropped_samples, wal.dropped_samples());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_sleep_is_an_eighth_of_the_commit_interval_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(idle_sleep(ms(10)), ms(1));
        assert_eq!(idle_sleep(ms(2)), Duration::from_micros(250));
        assert_eq!(idle_sleep(Duration::from_micros(100)), IDLE_SLEEP_MIN);
        assert_eq!(idle_sleep(Duration::from_secs(1)), IDLE_SLEEP_MAX);
    }
}
