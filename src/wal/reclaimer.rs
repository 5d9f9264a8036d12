//! Frees the storage of deleted segments off the writer's thread, a little
//! at a time.
//!
//! Retention unlinks a segment on the writer's thread (the name goes at once,
//! in the crash-safe order `retention.rs` keeps), but the file's blocks are
//! freed only when its last reference goes: the final `close`/`munmap` evicts
//! the inode and ext4 frees the extents of 64 MiB of written data. On a file
//! system mounted with `discard` (this project's machines: ext4 without a
//! journal, `-o discard`) that free issues a synchronous discard of the whole
//! 64 MiB: 50-100 ms, during which the writer made no commit and every sample
//! behind it waited. That was the 80-110 ms stall that set the end-to-end p99
//! at 1 M samples/s (docs/benchmarks.md). Moved to another thread whole, the
//! discard still held the disk and the writer's next fdatasync waited 66 ms
//! behind it.
//!
//! So the writer hands each unlinked segment to the `wal-reclaim` thread,
//! which waits until it is the only holder (a cursor may still read it), then
//! shrinks the file `SHRINK_STEP` at a time with `SHRINK_PAUSE` between steps
//! (each step's discard takes a few ms, so a commit waits behind at most one
//! of them), and drops it when it is empty. With more than one segment
//! waiting, or a writer waiting for space (`wait_idle`), it skips the pauses.
//!
//! Bounded: at most `QUEUE` segments wait in the channel; when it is full or
//! the thread could not start, the writer drops the segment itself (the old
//! behaviour: slow, never wrong).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::segment::Segment;

/// Segments the channel holds at most (one arrives per segment's worth of
/// data; more than a few waiting means the disk is far behind).
const QUEUE: usize = 16;
/// Bytes freed per step: one discard of this size took ~3 ms here.
const SHRINK_STEP: u64 = 1 << 20;
/// Pause between steps when only one segment is waiting: a 64 MiB segment
/// is freed in about a second, well inside the ~2.8 s a segment takes to
/// fill at 1 M samples/s.
const SHRINK_PAUSE: Duration = Duration::from_millis(10);
/// How long `wait_idle` waits at most.
const IDLE_WAIT_MAX: Duration = Duration::from_secs(5);

pub(crate) struct Reclaimer {
    tx: Option<SyncSender<Arc<Segment>>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Segments handed over and not yet dropped.
    pending: AtomicUsize,
    /// A writer is waiting for space: free without pauses.
    hurry: AtomicBool,
}

impl Reclaimer {
    /// Starts the `wal-reclaim` thread; without it (spawn failed) every
    /// segment is dropped by the caller of `retire`.
    pub(crate) fn start() -> Reclaimer {
        let (tx, rx) = mpsc::sync_channel::<Arc<Segment>>(QUEUE);
        let shared = Arc::new(State::default());
        let state = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("wal-reclaim".into())
            .spawn(move || run(&rx, &state));
        match spawned {
            Ok(thread) => Reclaimer {
                tx: Some(tx),
                thread: Some(thread),
                shared,
            },
            Err(e) => {
                tracing::warn!("wal: no reclaim thread ({e}); segments are freed inline");
                Reclaimer {
                    tx: None,
                    thread: None,
                    shared,
                }
            }
        }
    }

    /// Hands an unlinked segment over, to be freed on the reclaim thread.
    pub(crate) fn retire(&self, seg: Arc<Segment>) {
        let Some(tx) = &self.tx else {
            drop(seg);
            return;
        };
        self.shared.pending.fetch_add(1, Ordering::AcqRel);
        if let Err(TrySendError::Full(seg) | TrySendError::Disconnected(seg)) = tx.try_send(seg) {
            self.shared.pending.fetch_sub(1, Ordering::AcqRel);
            drop(seg);
        }
    }

    /// Segments handed over and not yet dropped.
    pub(crate) fn pending(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Waits (bounded) until every handed-over segment has been freed, for a
    /// writer that found the disk full. A segment a cursor still holds keeps
    /// its blocks until the cursor lets go, so this can return with some
    /// still pending.
    pub(crate) fn wait_idle(&self) {
        self.shared.hurry.store(true, Ordering::Release);
        let deadline = Instant::now() + IDLE_WAIT_MAX;
        while self.pending() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.shared.hurry.store(false, Ordering::Release);
    }
}

impl Drop for Reclaimer {
    fn drop(&mut self) {
        // Disconnects the channel: the thread frees what it holds and ends.
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A segment on its way out and the length its file still has.
struct Held {
    seg: Arc<Segment>,
    remaining: u64,
}

fn run(rx: &Receiver<Arc<Segment>>, state: &State) {
    // Bounded by the channel's size plus the segments that cursors still
    // hold (retention has let go of them: they are behind every checkpoint).
    let mut held: Vec<Held> = Vec::with_capacity(QUEUE);
    let mut open = true;
    // Whether the last step found a segment to work on; if not, wait before
    // looking again (the segments left are still held by cursors).
    let mut worked = false;
    while open || !held.is_empty() {
        let hurry = worked && (!open || held.len() > 1 || state.hurry.load(Ordering::Acquire));
        let next = if !open {
            Err(RecvTimeoutError::Disconnected)
        } else if held.is_empty() {
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else if hurry {
            rx.try_recv().map_err(|e| match e {
                TryRecvError::Empty => RecvTimeoutError::Timeout,
                TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            })
        } else {
            rx.recv_timeout(SHRINK_PAUSE)
        };
        match next {
            Ok(seg) => {
                let remaining = seg.len() as u64;
                held.push(Held { seg, remaining });
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        worked = step(&mut held, state, open);
    }
}

/// One step on the first segment nobody else holds: shrink it by
/// `SHRINK_STEP`, or drop it once empty (or when shrinking fails: then the
/// drop frees the rest at once). After disconnection, segments still held
/// elsewhere are let go (their last holder frees them). `false`: nothing
/// to work on.
fn step(held: &mut Vec<Held>, state: &State, open: bool) -> bool {
    let Some(i) = held
        .iter()
        .position(|h| !open || Arc::strong_count(&h.seg) == 1)
    else {
        return false;
    };
    let h = &mut held[i];
    let shrunk = match Arc::get_mut(&mut h.seg) {
        Some(seg) if h.remaining > 0 => {
            let len = h.remaining.saturating_sub(SHRINK_STEP);
            seg.shrink_unlinked(len).map(|()| h.remaining = len).is_ok()
        }
        _ => false,
    };
    if !shrunk {
        // Empty, shrinking failed, or still shared at shutdown: the last
        // reference frees whatever is left.
        drop(held.swap_remove(i));
        state.pending.fetch_sub(1, Ordering::AcqRel);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::format::SEGMENT_HEADER_BYTES;
    use std::fs::File;

    fn segment(dir: &std::path::Path, first_seq: u64) -> Arc<Segment> {
        let dir_file = File::open(dir).unwrap();
        let Ok(seg) = Segment::create(dir, &dir_file, first_seq, 4 << 20) else {
            panic!("cannot create a segment in {}", dir.display());
        };
        std::fs::remove_file(seg.path()).unwrap();
        seg
    }

    fn wait_until(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_segment_a_cursor_holds_stays_readable_until_it_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment(dir.path(), 0);
        let cursor = Arc::clone(&seg);
        let r = Reclaimer::start();
        r.retire(seg);
        assert_eq!(r.pending(), 1);
        // Several recheck periods: the reclaimer must neither shrink nor drop it.
        std::thread::sleep(SHRINK_PAUSE * 5);
        assert_eq!(r.pending(), 1);
        let header = cursor.published();
        assert_eq!(header.len(), SEGMENT_HEADER_BYTES);
        assert!(
            header.iter().any(|&b| b != 0),
            "the header is still readable"
        );
        drop(cursor);
        wait_until("the segment is freed", || r.pending() == 0);
    }

    #[test]
    fn several_segments_are_all_freed_and_wait_idle_returns() {
        let dir = tempfile::tempdir().unwrap();
        let r = Reclaimer::start();
        for i in 0..4 {
            r.retire(segment(dir.path(), i * 1000));
        }
        r.wait_idle();
        assert_eq!(r.pending(), 0);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn dropping_the_reclaimer_lets_go_of_a_segment_still_held() {
        let dir = tempfile::tempdir().unwrap();
        let seg = segment(dir.path(), 0);
        let cursor = Arc::clone(&seg);
        let r = Reclaimer::start();
        r.retire(seg);
        drop(r); // joins the thread: must not wait for the cursor
        assert_eq!(Arc::strong_count(&cursor), 1);
        assert_eq!(cursor.published().len(), SEGMENT_HEADER_BYTES);
    }
}
