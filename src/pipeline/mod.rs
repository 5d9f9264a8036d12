//! The wiring of the data path behind the readers: the WAL writer thread
//! that drains the readers' rings, and one kdb+ sink thread per `[[sink]]`,
//! each with its own WAL cursor (fan-out). Also the stage histograms and
//! counters that the metrics endpoint and the reports read.
//!
//! Shutdown order (each step waits for the one before): the readers stop
//! polling (the caller does that), the writer drains the rings and commits,
//! the sinks deliver everything durable up to their deadline and
//! checkpoint, then the threads are joined.
//!
//! A sink thread that ends before a stop was requested has failed (a WAL
//! error, or a frame that failed its checks): `failed_sink` names it and its
//! reason, so that the caller stops the process instead of running on with
//! nothing delivered. The pipeline never restarts a sink itself.

mod clock;
mod error;
mod inflight;
mod route;
mod sink;
pub mod stats;
mod wal_writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use clock::{elapsed_ns, unix_now_ns};
pub use error::{PipelineError, StopError};
pub use sink::SinkError;
pub use stats::{SinkStats, WriterStats};

use crate::config::{Config, SinkConfig};
use crate::kdb::Backoff;
use crate::metrics::StageHistograms;
use crate::ring::Consumer;
use crate::wal::{Wal, WalError, WalHandle};

pub struct PipelineOptions {
    /// How long sinks keep delivering after a stop before they give up (the
    /// rest stays in the WAL for the next start).
    pub stop_deadline: Duration,
    pub backoff: Backoff,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            stop_deadline: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }
}

/// Why a sink thread ended on its own, set once by that thread as it ends.
pub type SinkExit = Arc<OnceLock<String>>;

/// One running sink: its thread, and where the thread says why it ended.
struct SinkThread {
    name: String,
    thread: JoinHandle<Result<(), SinkError>>,
    exit: SinkExit,
}

/// What a finished pipeline hands back.
pub struct Finished {
    pub wal: Option<Wal>,
    pub errors: Vec<StopError>,
}

pub struct Pipeline {
    writer: Option<JoinHandle<Result<Wal, WalError>>>,
    sinks: Vec<SinkThread>,
    drain_and_stop: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    writer_done: Arc<AtomicBool>,
    pub writer_stats: Arc<WriterStats>,
    pub sink_stats: Vec<(String, Arc<SinkStats>)>,
    /// Per sink, in config order: the reason it failed, once it has.
    pub sink_exits: Vec<(String, SinkExit)>,
    pub histograms: Arc<StageHistograms>,
    wal: WalHandle,
    /// The readers ring it when they publish (`ReaderOptions::doorbell`).
    pub doorbell: Arc<crate::doorbell::Doorbell>,
    /// Nanoseconds, shared with every sink.
    stop_deadline: Arc<AtomicU64>,
}

/// How long after the sinks' stop deadline `finish` still waits for one.
const SINK_JOIN_GRACE: Duration = Duration::from_secs(2);
/// A sink thread that ended without recording why (a normal return before
/// any stop, which `sink::run` does not do).
const EXIT_UNKNOWN: &str = "the sink thread ended without a reason";

impl Pipeline {
    /// Starts the writer over `rings` and one thread per configured sink.
    pub fn start(
        config: &Config,
        mut wal: Wal,
        rings: Vec<Consumer>,
        histograms: Arc<StageHistograms>,
        options: PipelineOptions,
    ) -> Result<Pipeline, PipelineError> {
        // The names in force from the next seq on, durable before any
        // sample of this configuration is appended; tables no retained
        // sample needs any more go.
        let tags_crc = crate::tag_history::record(&config.wal.dir, config, wal.next_seq())
            .map_err(|source| PipelineError::TagHistory { source })?;
        wal.set_tags_crc(tags_crc);
        crate::tag_history::prune(&config.wal.dir, wal.oldest_seq())
            .map_err(|source| PipelineError::TagHistory { source })?;
        let handle = wal.handle();
        let drain_and_stop = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let stop_deadline = Arc::new(AtomicU64::new(
            u64::try_from(options.stop_deadline.as_nanos()).unwrap_or(u64::MAX),
        ));
        let writer_done = Arc::new(AtomicBool::new(false));
        let writer_stats = Arc::new(WriterStats::default());
        let mut sinks = Vec::new();
        let mut sink_stats = Vec::new();
        let mut sink_exits = Vec::new();
        for sink in &config.sinks {
            let cursor =
                handle
                    .open_cursor(&sink.name)
                    .map_err(|source| PipelineError::Cursor {
                        sink: sink.name.clone(),
                        source,
                    })?;
            let stats = Arc::new(SinkStats::default());
            sink_stats.push((sink.name.clone(), Arc::clone(&stats)));
            let ctx = sink::SinkContext {
                config: sink.clone(),
                gateway_id: config.gateway.id.clone(),
                wal_dir: config.wal.dir.clone(),
                stats,
                histograms: Arc::clone(&histograms),
                stop: Arc::clone(&stop),
                stop_deadline: Arc::clone(&stop_deadline),
                writer_done: Arc::clone(&writer_done),
                backoff: options.backoff,
                idle_wait: sink::IDLE_WAIT_MAX,
            };
            let exit = SinkExit::default();
            sink_exits.push((sink.name.clone(), Arc::clone(&exit)));
            let thread = spawn_sink(sink, cursor, ctx, Arc::clone(&exit))?;
            sinks.push(SinkThread {
                name: sink.name.clone(),
                thread,
                exit,
            });
        }
        let doorbell = Arc::new(crate::doorbell::Doorbell::default());
        let ctx = wal_writer::WriterContext {
            stats: Arc::clone(&writer_stats),
            histograms: Arc::clone(&histograms),
            drain_and_stop: Arc::clone(&drain_and_stop),
            idle_sleep: wal_writer::idle_sleep(config.wal.commit_interval),
            doorbell: Arc::clone(&doorbell),
        };
        let done = Arc::clone(&writer_done);
        let writer = std::thread::Builder::new()
            .name("wal-writer".into())
            .spawn(move || {
                let result = wal_writer::run(wal, rings, ctx);
                done.store(true, Ordering::Release);
                result
            })
            .map_err(|source| PipelineError::WriterThread { source })?;
        Ok(Pipeline {
            writer: Some(writer),
            sinks,
            drain_and_stop,
            stop,
            writer_done,
            writer_stats,
            sink_stats,
            sink_exits,
            histograms,
            wal: handle,
            stop_deadline,
            doorbell,
        })
    }

    pub fn wal(&self) -> &WalHandle {
        &self.wal
    }

    /// True once the writer thread has returned (stopped or failed).
    pub fn writer_finished(&self) -> bool {
        self.writer_done.load(Ordering::Acquire)
    }

    /// The first sink (in config order) whose thread has ended although no
    /// stop was requested, with why: it delivers nothing any more. `None`
    /// while every sink runs, and after a stop was requested.
    pub fn failed_sink(&self) -> Option<(&str, &str)> {
        if self.stop.load(Ordering::Acquire) {
            return None;
        }
        self.sinks
            .iter()
            .find(|sink| sink.thread.is_finished())
            .map(|sink| {
                let reason = sink.exit.get().map_or(EXIT_UNKNOWN, String::as_str);
                (sink.name.as_str(), reason)
            })
    }

    /// How long the sinks deliver after `finish` asks them to stop (a
    /// reload stops them sooner than an exit does).
    pub fn set_stop_deadline(&self, deadline: Duration) {
        let nanos = u64::try_from(deadline.as_nanos()).unwrap_or(u64::MAX);
        self.stop_deadline.store(nanos, Ordering::Release);
    }

    /// Call after the readers have stopped: drains the rings, commits,
    /// delivers what is durable (up to the deadline), checkpoints, joins.
    pub fn finish(mut self) -> Finished {
        let mut errors = Vec::new();
        self.drain_and_stop.store(true, Ordering::Release);
        self.doorbell.wake();
        let wal = match self.writer.take().map(|w| w.join()) {
            Some(Ok(Ok(wal))) => Some(wal),
            Some(Ok(Err(source))) => {
                errors.push(StopError::Writer { source });
                None
            }
            Some(Err(_)) => {
                errors.push(StopError::WriterPanicked);
                None
            }
            None => None,
        };
        self.writer_done.store(true, Ordering::Release);
        self.stop.store(true, Ordering::Release);
        self.wal.wake_cursors();
        // A sink blocked in kdb+ I/O (a kdb+ that stopped reading holds a
        // write for up to the socket timeout) cannot look at its deadline:
        // stop waiting for it shortly after. What it did not deliver is
        // durable in the WAL and goes out after the next start.
        let deadline = Duration::from_nanos(self.stop_deadline.load(Ordering::Acquire));
        let give_up_at = Instant::now() + deadline + SINK_JOIN_GRACE;
        for SinkThread { name, thread, .. } in self.sinks.drain(..) {
            while !thread.is_finished() && Instant::now() < give_up_at {
                std::thread::sleep(Duration::from_millis(10));
            }
            if !thread.is_finished() {
                tracing::warn!(
                    sink = %name,
                    "sink {name}: still blocked on kdb+ past the stop deadline; \
                     left behind, the rest stays in the WAL for the next start"
                );
                continue;
            }
            match thread.join() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => errors.push(StopError::Sink { sink: name, source }),
                Err(_) => errors.push(StopError::SinkPanicked { sink: name }),
            }
        }
        Finished { wal, errors }
    }
}

fn spawn_sink(
    sink: &SinkConfig,
    cursor: crate::wal::Cursor,
    ctx: sink::SinkContext,
    exit: SinkExit,
) -> Result<JoinHandle<Result<(), SinkError>>, PipelineError> {
    std::thread::Builder::new()
        .name(format!("sink-{}", sink.name))
        .spawn(move || {
            let guard = ExitGuard(exit);
            let result = sink::run(cursor, ctx);
            if let Err(e) = &result {
                let _ = guard.0.set(e.to_string());
            }
            drop(guard);
            result
        })
        .map_err(|source| PipelineError::SinkThread {
            sink: sink.name.clone(),
            source,
        })
}

/// Records a panic as the sink's exit reason while the thread unwinds.
struct ExitGuard(SinkExit);

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.set("the sink thread panicked".into());
        }
    }
}
