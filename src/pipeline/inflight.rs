//! The kdb+ sink's window of batches in flight. A batch is the `.u.upd`
//! messages of one or more WAL frames followed by one sync chaser; up to
//! `window` chased batches wait for their replies while the sink keeps
//! publishing. kdb+ answers one connection's messages in order, so the
//! replies arrive in the order of the chasers and each one acknowledges its
//! batch and every batch before it.
//!
//! This file owns only bookkeeping: no socket, no clock (time is passed in).
//! It never acknowledges a seq whose chaser has not been answered, so a
//! reconnect rewinding to the acknowledged position keeps delivery
//! at-least-once. Both queues are allocated once at start: nothing here
//! allocates per batch or per frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::clock::elapsed_ns;
use crate::metrics::StageRecorder;

/// One WAL frame of a batch: its oldest sample time and its sample count,
/// for the end-to-end histogram (each sample is counted with its frame's
/// oldest time stamp: an upper bound by at most the frame's time span).
#[derive(Clone, Copy, Debug)]
struct FrameStamp {
    oldest_ts_ns: i64,
    samples: u64,
}

#[derive(Clone, Copy, Debug)]
struct Chased {
    /// One past the last seq of the batch.
    end_seq: u64,
    rows: u64,
    /// Frame stamps of this batch at the front of `frames`.
    frame_count: usize,
}

/// The batch being published, not yet chased.
#[derive(Clone, Copy, Debug, Default)]
struct Open {
    end_seq: u64,
    rows: u64,
    frame_count: usize,
    started: Option<Instant>,
}

/// What the reply to the oldest chaser acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acknowledged {
    /// Every seq below this is acknowledged by kdb+.
    pub end_seq: u64,
    pub rows: u64,
}

pub struct Inflight {
    chased: VecDeque<Chased>,
    frames: VecDeque<FrameStamp>,
    open: Open,
    window: usize,
    frames_per_batch_max: usize,
}

impl Inflight {
    pub fn new(window: usize, frames_per_batch_max: usize) -> Inflight {
        assert!(window >= 1);
        assert!(frames_per_batch_max >= 1);
        Inflight {
            chased: VecDeque::with_capacity(window),
            // The open batch's frames sit behind the chased ones.
            frames: VecDeque::with_capacity((window + 1) * frames_per_batch_max),
            open: Open::default(),
            window,
            frames_per_batch_max,
        }
    }

    /// A frame `[end_seq - samples, end_seq)` was published into the open batch.
    pub fn add_frame(&mut self, end_seq: u64, samples: u64, oldest_ts_ns: i64, now: Instant) {
        assert!(samples > 0);
        assert!(!self.open_full_of_frames());
        assert!(self.open.rows == 0 || end_seq - samples >= self.open.end_seq);
        let capacity = self.frames.capacity();
        self.frames.push_back(FrameStamp {
            oldest_ts_ns,
            samples,
        });
        // Bounded by construction: no reallocation on the hot path.
        debug_assert_eq!(self.frames.capacity(), capacity);
        self.open.end_seq = end_seq;
        self.open.rows += samples;
        self.open.frame_count += 1;
        self.open.started.get_or_insert(now);
    }

    pub fn open_rows(&self) -> u64 {
        self.open.rows
    }

    /// The open batch has as many frames as one batch may carry.
    pub fn open_full_of_frames(&self) -> bool {
        self.open.frame_count >= self.frames_per_batch_max
    }

    /// The open batch's first frame was published at least `age` ago.
    pub fn open_older_than(&self, age: Duration, now: Instant) -> bool {
        self.open
            .started
            .is_some_and(|t| now.saturating_duration_since(t) >= age)
    }

    /// No more chasers may be sent until a reply arrives.
    pub fn window_full(&self) -> bool {
        self.chased.len() >= self.window
    }

    /// Chasers sent and not yet answered.
    pub fn outstanding(&self) -> usize {
        self.chased.len()
    }

    /// A chaser was sent after the open batch: it now waits for its reply.
    pub fn chase_open(&mut self) {
        assert!(self.open.rows > 0);
        assert!(!self.window_full());
        self.chased.push_back(Chased {
            end_seq: self.open.end_seq,
            rows: self.open.rows,
            frame_count: self.open.frame_count,
        });
        self.open = Open::default();
    }

    /// The reply to the oldest chaser arrived at `now_ns` (UNIX ns): returns
    /// what it acknowledged and records each of its samples' end-to-end time.
    pub fn acknowledge_oldest(
        &mut self,
        now_ns: i64,
        end_to_end: &mut StageRecorder,
    ) -> Option<Acknowledged> {
        let batch = self.chased.pop_front()?;
        for _ in 0..batch.frame_count {
            let frame = self.frames.pop_front()?;
            end_to_end.record_n_ns(elapsed_ns(frame.oldest_ts_ns, now_ns), frame.samples);
        }
        Some(Acknowledged {
            end_seq: batch.end_seq,
            rows: batch.rows,
        })
    }

    /// A frame ending at `end_seq` holds no row for this sink (routing):
    /// the next reply to arrive acknowledges it too, since nothing of it
    /// was sent. Returns false when nothing is open or in flight: the
    /// caller then counts it acknowledged at once.
    pub fn skip_frame(&mut self, end_seq: u64) -> bool {
        if self.open.rows > 0 {
            assert!(end_seq >= self.open.end_seq);
            self.open.end_seq = end_seq;
            return true;
        }
        match self.chased.back_mut() {
            Some(newest) => {
                assert!(end_seq >= newest.end_seq);
                newest.end_seq = end_seq;
                true
            }
            None => false,
        }
    }

    /// The connection is gone: nothing in flight will be acknowledged.
    pub fn clear(&mut self) {
        self.chased.clear();
        self.frames.clear();
        self.open = Open::default();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::metrics::{Stage, StageHistograms};

    #[test]
    fn replies_acknowledge_batches_in_order_and_count_every_sample() {
        let shared = Arc::new(StageHistograms::default());
        let mut e2e = StageRecorder::new(&shared, Stage::EndToEnd);
        let mut w = Inflight::new(2, 3);
        let t = Instant::now();
        w.add_frame(10, 10, 1_000, t);
        w.add_frame(15, 5, 2_000, t);
        w.chase_open();
        w.add_frame(40, 25, 3_000, t);
        assert!(!w.window_full());
        w.chase_open();
        assert!(w.window_full());
        w.add_frame(41, 1, 4_000, t);
        assert_eq!(w.open_rows(), 1);
        let first = w.acknowledge_oldest(11_000, &mut e2e).unwrap();
        assert_eq!(
            first,
            Acknowledged {
                end_seq: 15,
                rows: 15
            }
        );
        let second = w.acknowledge_oldest(11_000, &mut e2e).unwrap();
        assert_eq!(
            second,
            Acknowledged {
                end_seq: 40,
                rows: 25
            }
        );
        assert!(w.acknowledge_oldest(11_000, &mut e2e).is_none());
        assert_eq!(w.open_rows(), 1, "the open batch is still there");
        e2e.flush();
        let h = shared.snapshot(Stage::EndToEnd);
        assert_eq!(h.len(), 40, "one count per acknowledged sample");
        assert_eq!(h.max(), h.highest_equivalent(10_000));
        w.clear();
        assert_eq!((w.outstanding(), w.open_rows()), (0, 0));
    }

    #[test]
    fn a_skipped_frame_rides_on_the_next_reply() {
        let shared = Arc::new(StageHistograms::default());
        let mut e2e = StageRecorder::new(&shared, Stage::EndToEnd);
        let mut w = Inflight::new(2, 4);
        let t = Instant::now();
        assert!(
            !w.skip_frame(5),
            "nothing in flight: the caller acknowledges it"
        );
        w.add_frame(10, 3, 0, t);
        assert!(w.skip_frame(20));
        w.chase_open();
        assert!(w.skip_frame(30), "rides on the chased batch");
        w.add_frame(40, 2, 0, t);
        let first = w.acknowledge_oldest(1, &mut e2e).unwrap();
        assert_eq!(
            first,
            Acknowledged {
                end_seq: 30,
                rows: 3
            }
        );
        assert_eq!(w.open_rows(), 2);
    }

    #[test]
    fn a_batch_carries_at_most_its_frame_limit_and_ages() {
        let mut w = Inflight::new(1, 2);
        let t = Instant::now();
        assert!(!w.open_older_than(Duration::ZERO, t));
        w.add_frame(1, 1, 0, t);
        w.add_frame(2, 1, 0, t);
        assert!(w.open_full_of_frames());
        assert!(w.open_older_than(Duration::from_millis(5), t + Duration::from_millis(5)));
        assert!(!w.open_older_than(Duration::from_millis(5), t + Duration::from_millis(4)));
        w.chase_open();
        assert!(!w.open_full_of_frames());
        assert_eq!(w.outstanding(), 1);
    }
}
