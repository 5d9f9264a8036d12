//! A kdb+ sink thread: reads durable frames through its own WAL cursor,
//! publishes each as an async `.u.upd`, and after a batch (batch_rows, or
//! batch_age, or caught up) sends a sync chaser without waiting for it: up to
//! `WINDOW_BATCHES` chased batches are in flight at once (inflight.rs). A
//! chaser's reply acknowledges everything before it (kdb+ handles one
//! socket's messages in order), and only then does the acknowledged
//! position, and later the cursor's checkpoint, move.
//!
//! Any error (connection lost, a kdb+ error reply) forgets what was in
//! flight, rewinds to the acknowledged position and reconnects with
//! jittered exponential backoff: delivery is at-least-once, and the `seq`
//! column removes the duplicates exactly.
//!
//! A sink with `devices` patterns publishes only its devices' rows of each
//! frame (route.rs), each run with its own seqs; a frame with none of them
//! is acknowledged with the batch around it, so a quiet route never holds
//! the WAL back.
//!
//! A frame that fails its checks in memory (the cursor stops there, see
//! `Cursor::error`) is not "caught up": the sink settles what it sent before
//! it, checkpoints what kdb+ acknowledged and ends with `SinkError::Frame`,
//! so that the process stops instead of idling while the WAL fills. A restart
//! lets recovery check the WAL; the sink never skips the frame itself.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::unix_now_ns;
use super::inflight::Inflight;
use super::route::Route;
use super::stats::{add, mono_ms, set, SinkStats};
use crate::config::SinkConfig;
use crate::kdb::backoff::Jitter;
use crate::kdb::{Backoff, KdbError, Publisher, PublisherOptions};
use crate::metrics::{Stage, StageHistograms, StageRecorder};
use crate::tag_history::{TagHistory, TagHistoryError};
use crate::wal::{Cursor, FrameError, WalError};

/// Frames published before a chaser, at most, whatever their size: bounds
/// the end-to-end bookkeeping below.
const FRAMES_PER_BATCH_MAX: usize = 1024;
/// Chased batches waiting for their replies, at most. One chaser in flight
/// made a sink's rate batch size / round trip; a few keep kdb+ busy while
/// the sink encodes the next batch. Bounded so that what a reconnect
/// re-sends stays small.
const WINDOW_BATCHES: usize = 8;
/// A sink that is behind grows its batches up to this multiple of
/// `batch_rows`: fewer chasers and replies per sample while it catches up.
const BATCH_GROWTH_MAX: usize = 8;
/// Persist the acknowledged position at most this often. A checkpoint cost
/// two fsyncs (file and directory) and a rename, now a pwrite and an
/// fdatasync (checkpoint.rs); one per batch capped a sink at a few hundred
/// batches per second, and ten a second were 8 % of the CPU of a gateway
/// delivering 100 K samples/s (perf). A crash re-sends at most
/// this much, which at-least-once delivery and the `seq` column already
/// allow for.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// A caught-up sink waits for the durable seq to move (the `wal-sync`
/// thread's commit wakes it, and so does a stop), at most this long, or
/// less while an acknowledged position waits for its checkpoint or latency
/// samples for their merge (`idle_wait`). It used to wake every 10 ms: 100
/// empty wake-ups a second on an idle gateway.
pub const IDLE_WAIT_MAX: Duration = Duration::from_secs(1);

pub struct SinkContext {
    pub config: SinkConfig,
    /// `[gateway] id`: the `gateway` column's symbol.
    pub gateway_id: String,
    /// The WAL directory, whose tag tables name each frame's rows as they
    /// were named when polled (tag_history.rs).
    pub wal_dir: std::path::PathBuf,
    pub stats: Arc<SinkStats>,
    pub histograms: Arc<StageHistograms>,
    /// Stop requested: deliver what is durable up to `stop_deadline`, then return.
    pub stop: Arc<AtomicBool>,
    /// Nanoseconds; shared so that a reload can stop the sinks sooner than
    /// an exit does (`Pipeline::set_stop_deadline`).
    pub stop_deadline: Arc<AtomicU64>,
    /// Set when the WAL writer has finished: nothing more will become durable.
    pub writer_done: Arc<AtomicBool>,
    pub backoff: Backoff,
    /// Longest sleep when caught up; the sink wakes earlier when the WAL
    /// writer's group commit makes new samples durable (`IDLE_WAIT_MAX`).
    pub idle_wait: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Wal(WalError),
    /// The names of a frame's rows cannot be known (its tag table is gone
    /// or unreadable): the sink stops rather than guess.
    #[error("{0}; the sink stopped before sending rows it cannot name (nothing was skipped)")]
    Tags(TagHistoryError),
    /// The cursor stopped at `seq`: the WAL frame there failed its checks in
    /// memory (or its samples did not hold together when encoded). Every
    /// seq below `acked_seq` was acknowledged by kdb+ and is checkpointed.
    #[error(
        "WAL frame failed in memory ({error}): the cursor stopped at seq {seq}; \
         delivered and checkpointed up to seq {acked_seq}, the rest stays in the WAL \
         (a restart lets recovery check it)"
    )]
    Frame {
        seq: u64,
        error: FrameError,
        acked_seq: u64,
    },
    /// The frame at `seq` can never be sent as this sink is configured (a
    /// tag the tag table lacks, text and no `text` column): retrying would
    /// loop, so the sink stops after settling what came before it.
    #[error(
        "the frame at seq {seq} cannot be sent: {error}; delivered and checkpointed up \
         to seq {acked_seq}, the rest stays in the WAL"
    )]
    Undeliverable {
        seq: u64,
        error: KdbError,
        acked_seq: u64,
    },
}

/// What names a frame's rows (the tag table in force when they were
/// polled) and which of them this sink takes.
struct Naming {
    tags: TagHistory,
    route: Route,
}

/// What kdb+ has acknowledged and what of it is persisted.
struct Acked {
    /// Every seq below this was acknowledged by kdb+.
    end_seq: u64,
    checkpointed_at: Instant,
}

impl Acked {
    /// Persists the acknowledged position if it moved and `due` says so.
    fn checkpoint(&mut self, cursor: &mut Cursor, due: bool) -> Result<(), WalError> {
        if self.end_seq > cursor.checkpointed() && due {
            cursor.checkpoint(self.end_seq)?;
            self.checkpointed_at = Instant::now();
        }
        Ok(())
    }

    /// Shows the acknowledged position to the metrics (lag, stall age).
    fn publish(&self, stats: &SinkStats) {
        set(&stats.acked_seq, self.end_seq);
        set(&stats.progress_at_ms, mono_ms());
    }

    fn interval_passed(&self) -> bool {
        self.checkpointed_at.elapsed() >= CHECKPOINT_INTERVAL
    }

    /// Durable samples kdb+ has not acknowledged yet.
    fn unacked(&self, cursor: &Cursor) -> u64 {
        let acked_not_persisted = self.end_seq.saturating_sub(cursor.checkpointed());
        cursor.lag().saturating_sub(acked_not_persisted)
    }
}

pub fn run(mut cursor: Cursor, ctx: SinkContext) -> Result<(), SinkError> {
    let mut naming = Naming {
        tags: TagHistory::open(&ctx.wal_dir).map_err(SinkError::Tags)?,
        route: Route::new(&ctx.config),
    };
    let mut end_to_end = StageRecorder::new(&ctx.histograms, Stage::EndToEnd);
    let mut jitter = Jitter::from_entropy();
    let mut attempt = 0u32;
    let mut stop_at: Option<Instant> = None;
    let mut inflight = Inflight::new(WINDOW_BATCHES, FRAMES_PER_BATCH_MAX);
    let mut acked = Acked {
        end_seq: cursor.checkpointed(),
        checkpointed_at: Instant::now(),
    };
    acked.publish(&ctx.stats);
    loop {
        if stopping(&ctx, &mut stop_at) && (all_delivered(&cursor, &acked, &ctx) || past(stop_at)) {
            acked
                .checkpoint(&mut cursor, true)
                .map_err(SinkError::Wal)?;
            return Ok(());
        }
        let mut publisher = match connect(&ctx) {
            Ok(p) => {
                set(&ctx.stats.connected, 1);
                p
            }
            Err(e) => {
                add(&ctx.stats.errors, 1);
                let delay = ctx.backoff.delay(attempt, jitter.next_u64());
                tracing::warn!(
                    sink = %ctx.config.name,
                    "sink {}: {e}; retrying in {delay:?}",
                    ctx.config.name
                );
                attempt = attempt.saturating_add(1);
                sleep_unless_stopped(&ctx, delay);
                continue;
            }
        };
        let acked_before = acked.end_seq;
        let outcome = deliver(
            &mut publisher,
            &mut cursor,
            &mut naming,
            &ctx,
            &mut inflight,
            &mut acked,
            &mut end_to_end,
            &mut stop_at,
        );
        // Back off from scratch only after kdb+ acknowledged something: a
        // kdb+ that accepts and then drops every connection gets growing
        // delays, not a reconnect every base delay.
        if acked.end_seq > acked_before {
            attempt = 0;
        }
        match outcome {
            Ok(()) => return Ok(()),
            Err(DeliverError::Wal(e)) => return Err(SinkError::Wal(e)),
            Err(DeliverError::Tags(e)) => {
                acked
                    .checkpoint(&mut cursor, true)
                    .map_err(SinkError::Wal)?;
                set(&ctx.stats.connected, 0);
                add(&ctx.stats.errors, 1);
                let failure = SinkError::Tags(e);
                tracing::error!(sink = %ctx.config.name, "sink {}: STOPPED: {failure}", ctx.config.name);
                return Err(failure);
            }
            Err(DeliverError::Frame(error)) => {
                let failure = SinkError::Frame {
                    seq: cursor.position(),
                    error,
                    acked_seq: cursor.checkpointed(),
                };
                return Err(stopped(&ctx, failure));
            }
            Err(DeliverError::Batch { seq, error }) => {
                let acked_seq = cursor.checkpointed();
                let failure = match error {
                    KdbError::BadRecords { error, .. } => SinkError::Frame {
                        seq,
                        error: FrameError::Records(error),
                        acked_seq,
                    },
                    error => SinkError::Undeliverable {
                        seq,
                        error,
                        acked_seq,
                    },
                };
                return Err(stopped(&ctx, failure));
            }
            Err(DeliverError::Kdb(e)) => {
                // What kdb+ acknowledged stays acknowledged: persist it, so
                // the resend starts after it.
                acked
                    .checkpoint(&mut cursor, true)
                    .map_err(SinkError::Wal)?;
                set(&ctx.stats.connected, 0);
                add(&ctx.stats.errors, 1);
                add(&ctx.stats.reconnects, 1);
                let delay = ctx.backoff.delay(attempt, jitter.next_u64());
                tracing::warn!(
                    sink = %ctx.config.name,
                    "sink {}: {e}; resending from seq {}, retrying in {delay:?}",
                    ctx.config.name,
                    cursor.checkpointed()
                );
                cursor.rewind();
                inflight.clear();
                attempt = attempt.saturating_add(1);
                sleep_unless_stopped(&ctx, delay);
            }
        }
    }
}

enum DeliverError {
    Kdb(KdbError),
    Wal(WalError),
    Tags(TagHistoryError),
    /// The cursor stopped at a frame that failed its checks; what came
    /// before it is acknowledged and checkpointed.
    Frame(FrameError),
    /// The frame at `seq` cannot be encoded (`is_batch_error`); what came
    /// before it is acknowledged and checkpointed.
    Batch {
        seq: u64,
        error: KdbError,
    },
}

/// Counts and prints a sink that stops for good.
fn stopped(ctx: &SinkContext, failure: SinkError) -> SinkError {
    set(&ctx.stats.connected, 0);
    add(&ctx.stats.errors, 1);
    tracing::error!(sink = %ctx.config.name, "sink {}: STOPPED: {failure}", ctx.config.name);
    failure
}

/// Errors about a batch itself, not the connection: sending it again can
/// never succeed.
fn is_batch_error(error: &KdbError) -> bool {
    matches!(
        error,
        KdbError::BadRecords { .. } | KdbError::NoTextColumn { .. } | KdbError::UnknownTag { .. }
    )
}

/// Publishes and acknowledges until stopped (Ok) or an error.
#[allow(clippy::too_many_arguments)]
fn deliver(
    publisher: &mut Publisher,
    cursor: &mut Cursor,
    naming: &mut Naming,
    ctx: &SinkContext,
    inflight: &mut Inflight,
    acked: &mut Acked,
    end_to_end: &mut StageRecorder,
    stop_at: &mut Option<Instant>,
) -> Result<(), DeliverError> {
    loop {
        if inflight.window_full() {
            take_ack(publisher, cursor, ctx, inflight, acked, end_to_end)?;
        }
        let target = batch_target(ctx.config.batch_rows, unsent(cursor));
        let caught_up = match fill(publisher, cursor, naming, ctx, inflight, acked, target) {
            Err(batch @ DeliverError::Batch { .. }) => {
                // Nothing of this frame was sent: settle what was before it.
                settle(publisher, cursor, ctx, inflight, acked, end_to_end)?;
                return Err(batch);
            }
            other => other?,
        };
        let rows = inflight.open_rows();
        if rows > 0
            && (caught_up
                || rows >= target as u64
                || inflight.open_full_of_frames()
                || inflight.open_older_than(ctx.config.batch_age, Instant::now()))
        {
            publisher.send_chaser().map_err(DeliverError::Kdb)?;
            inflight.chase_open();
        }
        set(&ctx.stats.lag_samples, acked.unacked(cursor));
        if let Some(error) = cursor.error() {
            // The cursor cannot move past this frame: settle what was sent
            // before it, then fail (never idle as if caught up).
            settle(publisher, cursor, ctx, inflight, acked, end_to_end)?;
            return Err(DeliverError::Frame(error));
        }
        if stopping(ctx, stop_at) && (all_delivered(cursor, acked, ctx) || past(*stop_at)) {
            // Past the deadline: wait for what is in flight, send nothing new.
            settle(publisher, cursor, ctx, inflight, acked, end_to_end)?;
            return Ok(());
        }
        if caught_up && inflight.open_rows() == 0 {
            if inflight.outstanding() > 0 {
                take_ack(publisher, cursor, ctx, inflight, acked, end_to_end)?;
                continue;
            }
            end_to_end.flush_if_due();
            let due = acked.interval_passed();
            acked.checkpoint(cursor, due).map_err(DeliverError::Wal)?;
            // Nothing to deliver is not a stall.
            set(&ctx.stats.progress_at_ms, mono_ms());
            cursor.wait_durable(idle_wait(ctx, acked, cursor, end_to_end));
        }
    }
}

/// How long a caught-up sink may sleep: `ctx.idle_wait`, or until the
/// acknowledged position's checkpoint or the latency merge is due.
fn idle_wait(ctx: &SinkContext, acked: &Acked, cursor: &Cursor, e2e: &StageRecorder) -> Duration {
    let mut wait = ctx.idle_wait;
    if acked.end_seq > cursor.checkpointed() {
        wait = wait.min(CHECKPOINT_INTERVAL.saturating_sub(acked.checkpointed_at.elapsed()));
    }
    if let Some(due) = e2e.flush_due_in() {
        wait = wait.min(due);
    }
    wait.max(Duration::from_millis(1))
}

/// Chases the open batch, waits for every reply and checkpoints what kdb+
/// acknowledged; sends no new frame.
fn settle(
    publisher: &mut Publisher,
    cursor: &mut Cursor,
    ctx: &SinkContext,
    inflight: &mut Inflight,
    acked: &mut Acked,
    end_to_end: &mut StageRecorder,
) -> Result<(), DeliverError> {
    if inflight.open_rows() > 0 {
        publisher.send_chaser().map_err(DeliverError::Kdb)?;
        inflight.chase_open();
    }
    while inflight.outstanding() > 0 {
        take_ack(publisher, cursor, ctx, inflight, acked, end_to_end)?;
    }
    end_to_end.flush();
    acked.checkpoint(cursor, true).map_err(DeliverError::Wal)
}

/// Publishes frames (the rows of them `route` takes) into the open batch
/// until it holds `target` rows or its frame limit; returns true if the
/// cursor caught up with the durable seq.
#[allow(clippy::too_many_arguments)]
fn fill(
    publisher: &mut Publisher,
    cursor: &mut Cursor,
    naming: &mut Naming,
    ctx: &SinkContext,
    inflight: &mut Inflight,
    acked: &mut Acked,
    target: usize,
) -> Result<bool, DeliverError> {
    let Naming { tags, route } = naming;
    while inflight.open_rows() < target as u64 && !inflight.open_full_of_frames() {
        let Some(frame) = cursor.next() else {
            return Ok(true);
        };
        let (first_seq, end_seq) = (frame.first_seq, frame.end_seq());
        let symbols = tags
            .table_for(first_seq, end_seq, frame.tags_crc)
            .map_err(DeliverError::Tags)?;
        route.use_table(&symbols);
        let mut records = 0u64;
        let mut oldest_ts_ns = None;
        // One message per run this sink takes: the whole frame when it
        // takes every device.
        for (offset, run) in route.runs(frame.samples) {
            let run_seq = first_seq + offset as u64;
            let published = publisher.publish(&ctx.config.table, run, run_seq, &symbols);
            match published {
                Ok(()) => {}
                Err(error) if is_batch_error(&error) => {
                    let seq = match error {
                        KdbError::BadRecords { record, .. } => run_seq + record as u64,
                        _ => run_seq,
                    };
                    return Err(DeliverError::Batch { seq, error });
                }
                Err(e) => return Err(DeliverError::Kdb(e)),
            }
            // A frame is one ring run in decode order: its first sample is its oldest.
            oldest_ts_ns.get_or_insert(run.first().map_or(0, |s| s.ts_ns));
            records += run.len() as u64;
            add(&ctx.stats.messages, 1);
        }
        match oldest_ts_ns {
            Some(oldest) => inflight.add_frame(end_seq, records, oldest, Instant::now()),
            // Nothing for this sink: acknowledged with what was sent before
            // it, or at once when nothing is in flight, so a sink whose
            // devices are quiet never holds the WAL back.
            None if inflight.skip_frame(end_seq) => {}
            None => {
                assert!(end_seq >= acked.end_seq);
                acked.end_seq = end_seq;
                acked.publish(&ctx.stats);
            }
        }
    }
    Ok(false)
}

/// Waits for the reply to the oldest chaser and moves the acknowledged
/// position (and, at most every `CHECKPOINT_INTERVAL`, the checkpoint).
fn take_ack(
    publisher: &mut Publisher,
    cursor: &mut Cursor,
    ctx: &SinkContext,
    inflight: &mut Inflight,
    acked: &mut Acked,
    end_to_end: &mut StageRecorder,
) -> Result<(), DeliverError> {
    debug_assert!(inflight.outstanding() > 0);
    publisher.read_ack().map_err(DeliverError::Kdb)?;
    let Some(done) = inflight.acknowledge_oldest(unix_now_ns(), end_to_end) else {
        return Ok(());
    };
    assert!(done.end_seq >= acked.end_seq && done.end_seq <= cursor.position());
    acked.end_seq = done.end_seq;
    acked.publish(&ctx.stats);
    add(&ctx.stats.acked_samples, done.rows);
    let due = acked.interval_passed();
    acked.checkpoint(cursor, due).map_err(DeliverError::Wal)
}

/// Durable samples the cursor has not handed out yet.
fn unsent(cursor: &Cursor) -> u64 {
    let read_not_checkpointed = cursor.position().saturating_sub(cursor.checkpointed());
    cursor.lag().saturating_sub(read_not_checkpointed)
}

/// `batch_rows`, or more (up to `BATCH_GROWTH_MAX` times) while behind.
fn batch_target(batch_rows: usize, unsent: u64) -> usize {
    let cap = batch_rows.saturating_mul(BATCH_GROWTH_MAX);
    usize::try_from(unsent)
        .unwrap_or(usize::MAX)
        .clamp(batch_rows, cap)
}

fn connect(ctx: &SinkContext) -> Result<Publisher, KdbError> {
    // TLS files are read at each connection: a renewed certificate needs no restart.
    let tls = ctx.config.tls.as_ref();
    let tls = tls.map(crate::kdb::TlsClient::from_sink).transpose()?;
    let options = PublisherOptions {
        time_type: ctx.config.time_type,
        columns: ctx.config.columns,
        tls,
        gateway: ctx.gateway_id.clone(),
        ..PublisherOptions::default()
    };
    Publisher::connect(
        &ctx.config.address,
        &ctx.config.user,
        &ctx.config.password,
        options,
    )
}

/// True once stop was requested; fixes the deadline the first time.
fn stopping(ctx: &SinkContext, stop_at: &mut Option<Instant>) -> bool {
    if ctx.stop.load(Ordering::Acquire) {
        stop_at.get_or_insert_with(|| {
            Instant::now() + Duration::from_nanos(ctx.stop_deadline.load(Ordering::Acquire))
        });
        true
    } else {
        false
    }
}

fn past(stop_at: Option<Instant>) -> bool {
    stop_at.is_some_and(|t| Instant::now() >= t)
}

/// Everything the WAL will ever make durable has been acknowledged.
fn all_delivered(cursor: &Cursor, acked: &Acked, ctx: &SinkContext) -> bool {
    ctx.writer_done.load(Ordering::Acquire) && acked.unacked(cursor) == 0
}

fn sleep_unless_stopped(ctx: &SinkContext, delay: Duration) {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if ctx.stop.load(Ordering::Acquire) && ctx.writer_done.load(Ordering::Acquire) {
            // Still retry until the deadline, but in short steps.
            std::thread::sleep(Duration::from_millis(10).min(delay));
            return;
        }
        std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::sync::Mutex;

    use super::*;
    use crate::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
    use crate::wal::{Wal, SEGMENT_HEADER_BYTES};
    use crate::{Sample, TagId};

    const TAGS: u32 = 4;
    const FRAME_SAMPLES: u64 = 10;

    fn config(dir: &std::path::Path, tp_addr: &str) -> crate::config::Config {
        let mut text = format!(
            "[wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\n\
             [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp_addr}\"\n\
             user = \"feed\"\ntable = \"plc\"\nbatch_rows = 5\nbatch_age = \"1ms\"\n\n\
             [[device]]\nname = \"dev0\"\nprotocol = \"modbus-tcp\"\n\
             address = \"127.0.0.1:1\"\nunit_id = 1\npoll_interval = \"100ms\"\n"
        );
        for t in 0..TAGS {
            text.push_str(&format!(
                "\n[[device.tag]]\nname = \"t{t}\"\narea = \"holding\"\naddress = {t}\n\
                 type = \"uint16\"\n"
            ));
        }
        let path = dir.join("plant.toml");
        std::fs::write(&path, text).unwrap();
        crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Three frames; value = seq, so a delivered row names its own seq.
    fn write_frames(wal: &mut Wal) {
        for frame in 0..3u64 {
            let samples: Vec<Sample> = (0..FRAME_SAMPLES)
                .map(|i| {
                    let seq = frame * FRAME_SAMPLES + i;
                    Sample::f64(1, TagId((seq % u64::from(TAGS)) as u32), seq as f64)
                })
                .collect();
            wal.append(&samples).unwrap();
        }
        wal.commit().unwrap();
        assert_eq!(wal.durable_seq(), 3 * FRAME_SAMPLES);
    }

    /// The second frame of the first segment gets a flipped byte in its
    /// samples, through a file handle of its own (the mapping shares the
    /// page cache, as with damage on a running gateway).
    fn damage_second_frame(wal_dir: &std::path::Path) {
        let segment = wal_dir.join(format!("{:020}.wal", 0));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&segment)
            .unwrap();
        let frame_bytes = crate::wal::FRAME_OVERHEAD_BYTES as u64 + FRAME_SAMPLES * 24;
        let at = SEGMENT_HEADER_BYTES as u64 + frame_bytes + 40 + 7;
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        file.write_all_at(&[b[0] ^ 0x10], at).unwrap();
    }

    /// What a sink run ended with, the rows kdb+ got, the checkpoint left.
    type SinkRun = (Result<(), SinkError>, Vec<(String, String, f64, i64)>, u64);

    /// Runs a sink over the WAL `prepare` wrote (three frames), until it ends
    /// (bounded); returns what it returned, the rows kdb+ got, and the
    /// checkpoint it left.
    fn run_sink(prepare: impl FnOnce(&mut Wal, &std::path::Path)) -> SinkRun {
        let dir = tempfile::tempdir().unwrap();
        let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000)));
        let options = TickerplantOptions {
            recorder: Some(recorder.clone()),
            ..Default::default()
        };
        let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
        let cfg = config(dir.path(), &tp.local_addr().to_string());
        let (mut wal, _) = Wal::open(&cfg.wal).unwrap();
        crate::tag_history::record(&cfg.wal.dir, &cfg, wal.next_seq()).unwrap();
        let cursor = wal.handle().open_cursor("tp").unwrap();
        prepare(&mut wal, &cfg.wal.dir);

        let stop = Arc::new(AtomicBool::new(false));
        let writer_done = Arc::new(AtomicBool::new(false));
        let ctx = SinkContext {
            config: cfg.sinks[0].clone(),
            gateway_id: cfg.gateway.id.clone(),
            wal_dir: cfg.wal.dir.clone(),
            stats: Arc::new(SinkStats::default()),
            histograms: Arc::new(StageHistograms::default()),
            stop: Arc::clone(&stop),
            stop_deadline: Arc::new(AtomicU64::new(1_000_000_000)),
            writer_done: Arc::clone(&writer_done),
            backoff: Backoff::default(),
            idle_wait: IDLE_WAIT_MAX,
        };
        let thread = std::thread::spawn(move || run(cursor, ctx));
        let deadline = Instant::now() + Duration::from_secs(30);
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Bounded: a sink that idles at the frame is stopped here, and the
        // assertion below says what it returned.
        let stopped_by_us = !thread.is_finished();
        stop.store(true, Ordering::Release);
        writer_done.store(true, Ordering::Release);
        let result = thread.join().unwrap();
        assert!(
            !stopped_by_us,
            "the sink idled at the bad frame: {result:?}"
        );
        // The checkpoint was persisted: the sink's cursor, opened again,
        // starts where it says.
        let checkpoint = wal.handle().open_cursor("tp").unwrap().checkpointed();
        let rows = recorder.lock().unwrap().rows.clone();
        tp.stop();
        (result, rows, checkpoint)
    }

    /// Exactly the intact first frame is delivered, values = seqs.
    fn assert_first_frame_only(rows: &[(String, String, f64, i64)]) {
        let mut seqs: Vec<i64> = rows.iter().map(|r| r.3).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let first_frame: Vec<i64> = (0..FRAME_SAMPLES as i64).collect();
        assert_eq!(
            seqs, first_frame,
            "exactly the intact first frame is delivered"
        );
        assert!(
            rows.iter().all(|r| r.2 == r.3 as f64),
            "values are their seqs"
        );
    }

    /// A frame that fails its checks ends the sink with an error after what
    /// came before it was acknowledged and checkpointed; nothing of the
    /// frame or after it reaches kdb+.
    #[test]
    fn a_frame_that_fails_in_memory_ends_the_sink_after_checkpointing() {
        let (result, rows, checkpoint) = run_sink(|wal, dir| {
            write_frames(wal);
            damage_second_frame(dir);
        });
        match result {
            Err(SinkError::Frame {
                seq,
                error,
                acked_seq,
            }) => {
                assert_eq!((seq, acked_seq), (FRAME_SAMPLES, FRAME_SAMPLES));
                assert_eq!(error, FrameError::Crc);
            }
            other => panic!("expected a frame error, got {other:?}"),
        }
        assert_eq!(checkpoint, FRAME_SAMPLES);
        assert_first_frame_only(&rows);
    }

    /// A frame whose CRC holds but whose text head lacks its extension
    /// records is a damaged frame, as one that fails its CRC: the sink
    /// settles what came before it and stops, naming the record.
    #[test]
    fn a_text_head_without_its_extensions_is_a_damaged_frame() {
        let (result, rows, checkpoint) = run_sink(|wal, _| {
            write_frames(wal);
            let mut text = vec![Sample::default(); crate::sample::text_records(40)];
            let quality = crate::Quality::GOOD;
            crate::sample::write_text(&mut text, 1, TagId(1), quality, b"forty", 40);
            // The head and one of its two extensions, then a number: broken.
            let broken = [
                Sample::f64(1, TagId(0), 30.0),
                text[0],
                text[1],
                Sample::f64(1, TagId(2), 0.0),
            ];
            wal.append(&broken).unwrap();
            wal.commit().unwrap();
        });
        match result {
            Err(SinkError::Frame {
                seq,
                error,
                acked_seq,
            }) => {
                let record = 3 * FRAME_SAMPLES + 1;
                assert_eq!((seq, acked_seq), (record, 3 * FRAME_SAMPLES));
                let mismatch = crate::sample::TextError::ExtensionMismatch { index: 2 };
                assert_eq!(error, FrameError::Records(mismatch));
            }
            other => panic!("expected a frame error, got {other:?}"),
        }
        assert_eq!(checkpoint, 3 * FRAME_SAMPLES);
        assert_eq!(rows.len() as u64, 3 * FRAME_SAMPLES);
    }

    /// Text for a sink whose columns have no `text` (a WAL written under
    /// another configuration) can never be sent: the sink stops, saying so,
    /// instead of reconnecting forever.
    #[test]
    fn text_and_no_text_column_stops_the_sink() {
        let (result, rows, checkpoint) = run_sink(|wal, _| {
            write_frames(wal);
            let mut text = vec![Sample::default(); 1];
            crate::sample::write_text(&mut text, 1, TagId(3), crate::Quality::GOOD, b"abc", 8);
            wal.append(&text).unwrap();
            wal.commit().unwrap();
        });
        match result {
            Err(SinkError::Undeliverable {
                seq,
                error: KdbError::NoTextColumn { tag: 3 },
                acked_seq,
            }) => assert_eq!((seq, acked_seq), (3 * FRAME_SAMPLES, 3 * FRAME_SAMPLES)),
            other => panic!("expected an undeliverable batch, got {other:?}"),
        }
        assert_eq!(checkpoint, 3 * FRAME_SAMPLES);
        assert_eq!(rows.len() as u64, 3 * FRAME_SAMPLES);
    }
}
