//! State shared by the writer thread and the cursor threads: the segment
//! list, the durable sequence number, and each cursor's persisted
//! checkpoint. Locks here are held for list edits and checkpoint writes
//! only, never across an fdatasync of a segment.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{fence, AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::checkpoint::{self, CheckpointFile};
use super::cursor::Cursor;
use super::error::WalError;
use super::segment::Segment;

pub(crate) struct Shared {
    pub dir: PathBuf,
    pub dir_file: File,
    /// Held open for its `flock`; released when the last handle goes.
    pub _lock_file: File,
    pub durable: Arc<AtomicU64>,
    /// Oldest first; the last one is the writer's active segment.
    pub segments: Mutex<VecDeque<Arc<Segment>>>,
    pub cursors: Mutex<BTreeMap<String, Arc<CursorState>>>,
    /// Samples removed by `drop_oldest` before every cursor had them.
    pub dropped_samples: AtomicU64,
    /// Lets a caught-up cursor sleep until `durable` moves.
    pub durable_wait: DurableWait,
}

/// A caught-up sink sleeping in short fixed steps woke ~10 times per group
/// commit for nothing; this wakes it when the durable seq moves. The writer
/// pays a lock and a futex wake only when a cursor is waiting.
#[derive(Default)]
pub(crate) struct DurableWait {
    waiters: AtomicU32,
    lock: Mutex<()>,
    moved: Condvar,
}

impl DurableWait {
    /// Call after storing a new durable seq.
    pub(crate) fn notify(&self) {
        // Pairs with the fence in `wait`: either this sees the waiter, or
        // the waiter sees the new durable seq (no lost wake-up).
        fence(Ordering::SeqCst);
        if self.waiters.load(Ordering::Relaxed) > 0 {
            let _guard = lock(&self.lock);
            self.moved.notify_all();
        }
    }

    /// Sleeps until `durable` is above `seen` or `timeout` passed (a spurious
    /// early return is harmless: the caller loops).
    pub(crate) fn wait(&self, durable: &AtomicU64, seen: u64, timeout: Duration) {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        let guard = lock(&self.lock);
        if durable.load(Ordering::Acquire) <= seen {
            // The writer notifies under the lock, so a store after the
            // check above cannot slip between it and the wait.
            let _ = self.moved.wait_timeout(guard, timeout);
        }
        self.waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

pub(crate) struct CursorState {
    pub name: String,
    /// The persisted checkpoint: what retention may rely on.
    pub checkpoint: AtomicU64,
    /// The checkpoint file, once written in this process; its lock
    /// serialises the writes (the cursor's thread and, under `drop_oldest`,
    /// the writer's).
    pub file: Mutex<CheckpointFile>,
    /// One open `Cursor` per name in a process.
    pub open: AtomicBool,
}

/// Poison only means another thread panicked mid-edit; the data under these
/// locks stays consistent (single assignments), so carry on with it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn segments(&self) -> MutexGuard<'_, VecDeque<Arc<Segment>>> {
        lock(&self.segments)
    }

    /// The smallest persisted checkpoint, `None` without any cursor.
    pub(crate) fn min_checkpoint(&self) -> Option<u64> {
        lock(&self.cursors)
            .values()
            .map(|c| c.checkpoint.load(Ordering::Acquire))
            .min()
    }

    /// Raises the checkpoint of `state` to `next_seq` (never lowers it),
    /// persisting it before the in-memory value moves.
    pub(crate) fn persist(&self, state: &CursorState, next_seq: u64) -> Result<(), WalError> {
        let mut file = lock(&state.file);
        if next_seq <= state.checkpoint.load(Ordering::Acquire) {
            return Ok(());
        }
        checkpoint::write(&self.dir, &self.dir_file, &state.name, next_seq, &mut file)?;
        state.checkpoint.store(next_seq, Ordering::Release);
        Ok(())
    }

    pub(crate) fn oldest_seq(&self) -> Option<u64> {
        self.segments().front().map(|s| s.first_seq())
    }
}

/// A cheap, clonable, `Send` handle for other threads: opens cursors and
/// reads the durable sequence number.
#[derive(Clone)]
pub struct WalHandle {
    pub(crate) shared: Arc<Shared>,
}

/// Reads the durable sequence number from any thread: every sample with a
/// lower `seq` has been fdatasync'ed (or written, under `sync = none`).
#[derive(Clone, Debug)]
pub struct DurableSeq(pub(crate) Arc<AtomicU64>);

impl DurableSeq {
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

impl WalHandle {
    /// Wakes every cursor waiting for the durable seq to move (a stop:
    /// sinks then look at their stop flag without waiting out their idle
    /// wait).
    pub fn wake_cursors(&self) {
        self.shared.durable_wait.notify();
    }

    pub fn durable_seq(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    pub fn durable(&self) -> DurableSeq {
        DurableSeq(Arc::clone(&self.shared.durable))
    }

    /// Samples dropped so far by `when_full = drop_oldest`.
    pub fn dropped_samples(&self) -> u64 {
        self.shared.dropped_samples.load(Ordering::Relaxed)
    }

    /// Opens the cursor `name` at its checkpoint. A name seen for the first
    /// time (or whose checkpoint is missing) starts at the oldest retained
    /// sample, and its checkpoint is written at once so that retention waits
    /// for it from now on, across restarts too.
    pub fn open_cursor(&self, name: &str) -> Result<Cursor, WalError> {
        checkpoint::validate_name(name)?;
        let state = {
            let mut cursors = lock(&self.shared.cursors);
            match cursors.get(name) {
                Some(state) => Arc::clone(state),
                None => {
                    let start = self
                        .shared
                        .oldest_seq()
                        .unwrap_or_else(|| self.durable_seq());
                    let mut file = CheckpointFile::default();
                    let (dir, dir_file) = (&self.shared.dir, &self.shared.dir_file);
                    checkpoint::write(dir, dir_file, name, start, &mut file)?;
                    let state = Arc::new(CursorState {
                        name: name.to_string(),
                        checkpoint: AtomicU64::new(start),
                        file: Mutex::new(file),
                        open: AtomicBool::new(false),
                    });
                    cursors.insert(name.to_string(), Arc::clone(&state));
                    state
                }
            }
        };
        if state.open.swap(true, Ordering::AcqRel) {
            return Err(WalError::CursorBusy(name.to_string()));
        }
        Ok(Cursor::new(Arc::clone(&self.shared), state))
    }
}
