//! The group commit's fdatasync, off the writer's thread.
//!
//! With the sync on the writer's thread, nothing drained the readers' rings
//! while the disk wrote: a 6-10 ms fdatasync per 10 ms commit at 9 M
//! samples/s is more than a 65,536-slot ring holds (5 ms at 12.5 M/s), so the
//! readers overran and skipped polls while the CPU idled (docs/benchmarks.md,
//! "pipelined group commit"). Now the writer hands a commit to the
//! `wal-sync` thread and goes on appending; the thread syncs the segment and
//! only then publishes the frames to cursors and moves the durable seq.
//!
//! Why this is as safe as the inline sync: a job covers the bytes the writer
//! wrote (pwritev returned) before it handed the job over, and fdatasync
//! writes every page dirty at the time of the call, so when it returns those
//! bytes are on disk; bytes written meanwhile may be synced too, which only
//! makes them durable earlier than announced. The durable seq never moves
//! past the job's own end. A failed sync is kept and ends the writer at its
//! next call (never retried: the kernel may have dropped the pages).
//!
//! One job at a time. The writer waits for it (`settle`) before it syncs
//! inline (a roll to the next segment, an explicit `commit`), so the durable
//! seq and the published mark only ever grow.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::segment::Segment;
use super::shared::Shared;

/// What the writer hands over: sync `segment`, then publish it up to `end`
/// and make every seq below `durable` durable.
pub(crate) struct Job {
    pub segment: Arc<Segment>,
    pub end: usize,
    pub durable: u64,
}

/// How a job ended: the time the fdatasync took, or why it failed.
pub(crate) type Outcome = Result<Duration, (PathBuf, io::Error)>;

#[derive(Default)]
struct State {
    job: Option<Job>,
    /// A job was taken and has not ended yet.
    running: bool,
    /// Ended jobs not yet collected by the writer (at most one).
    outcome: Option<Outcome>,
    quit: bool,
}

pub(crate) struct Syncer {
    state: Arc<(Mutex<State>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Syncer {
    /// Starts the `wal-sync` thread; `None` if it could not start (the
    /// writer then syncs inline, as before). The calling thread (the
    /// writer) is unparked at the end of every job: it naps while a sync
    /// runs (pipeline/wal_writer.rs).
    pub(crate) fn start(shared: Arc<Shared>) -> Option<Syncer> {
        let state = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let theirs = Arc::clone(&state);
        let writer = std::thread::current();
        let spawned = std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || run(&theirs, &shared, &writer));
        match spawned {
            Ok(thread) => Some(Syncer {
                state,
                thread: Some(thread),
            }),
            Err(e) => {
                tracing::warn!("wal: no sync thread ({e}); commits sync inline");
                None
            }
        }
    }

    /// Under one lock: the outcome of the job that ended since the last
    /// collection, if any, and whether a job is still queued or running.
    /// (Two separate calls could see no outcome, then the job end, then
    /// "not busy": a submit would then overwrite an uncollected outcome.)
    pub(crate) fn poll(&self) -> (Option<Outcome>, bool) {
        let mut state = self.lock();
        let busy = state.job.is_some() || state.running;
        (state.outcome.take(), busy)
    }

    /// Whether a job is queued or running (the outcome left uncollected).
    pub(crate) fn poll_busy(&self) -> bool {
        let state = self.lock();
        state.job.is_some() || state.running
    }

    /// Hands over a job; the caller saw `poll()` report it not busy.
    pub(crate) fn submit(&self, job: Job) {
        let mut state = self.lock();
        assert!(
            state.job.is_none() && !state.running,
            "one sync job at a time"
        );
        // An uncollected outcome (an error among them) would be overwritten.
        assert!(
            state.outcome.is_none(),
            "the last outcome was not collected"
        );
        state.job = Some(job);
        self.state.1.notify_all();
    }

    /// Waits until no job is queued or running; returns its outcome if one
    /// ended since the last collection.
    pub(crate) fn settle(&self) -> Option<Outcome> {
        let mut state = self.lock();
        while state.job.is_some() || state.running {
            state = self
                .state
                .1
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        state.outcome.take()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state.0)
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        {
            let mut state = self.lock();
            state.quit = true;
            self.state.1.notify_all();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The lock is held only to move a job or an outcome, never across a panic
/// point; a poisoned lock still holds consistent data.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn run(state: &(Mutex<State>, Condvar), shared: &Shared, writer: &std::thread::Thread) {
    let (mutex, wake) = state;
    loop {
        let job = {
            let mut s = lock(mutex);
            loop {
                if let Some(job) = s.job.take() {
                    s.running = true;
                    break job;
                }
                if s.quit {
                    return;
                }
                s = wake
                    .wait(s)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let started = Instant::now();
        let outcome = match job.segment.sync_data() {
            Ok(()) => {
                // Frames first, then the seq that lets cursors read them.
                job.segment.publish_synced(job.end);
                shared.durable.fetch_max(job.durable, Ordering::AcqRel);
                shared.durable_wait.notify();
                Ok(started.elapsed())
            }
            Err(e) => Err((job.segment.path().to_path_buf(), e)),
        };
        drop(job);
        let mut s = lock(mutex);
        s.running = false;
        s.outcome = Some(outcome);
        wake.notify_all();
        drop(s);
        writer.unpark();
    }
}
