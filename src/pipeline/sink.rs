//! A kdb+ sink thread: reads durable frames through its own WAL cursor,
//! publishes each as an async `.u.upd`, and after a batch (batch_rows, or
//! batch_age, or caught up) sends the sync chaser. The chaser's reply
//! acknowledges everything before it (kdb+ handles one socket's messages in
//! order), and only then does the cursor's checkpoint move.
//!
//! Any error (connection lost, a kdb+ error reply) rewinds to the checkpoint
//! and reconnects with jittered exponential backoff: delivery is
//! at-least-once, and the `seq` column removes the duplicates exactly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{elapsed_ns, unix_now_ns};
use super::stats::{add, set, SinkStats};
use crate::config::SinkConfig;
use crate::kdb::backoff::Jitter;
use crate::kdb::{Backoff, KdbError, Publisher, PublisherOptions, SymbolTable};
use crate::metrics::{Stage, StageHistograms, StageRecorder};
use crate::wal::{Cursor, WalError};

/// Frames published before a chaser, at most, whatever their size: bounds
/// the end-to-end bookkeeping below.
const FRAMES_PER_BATCH_MAX: usize = 1024;
const IDLE_SLEEP: Duration = Duration::from_micros(500);
/// Persist the acknowledged position at most this often. A checkpoint costs
/// two fsyncs (file and directory); one per batch capped a sink at a few
/// hundred batches per second. A crash re-sends at most this much, which
/// at-least-once delivery and the `seq` column already allow for.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

pub struct SinkContext {
    pub config: SinkConfig,
    pub symbols: Arc<SymbolTable>,
    pub stats: Arc<SinkStats>,
    pub histograms: Arc<StageHistograms>,
    /// Stop requested: deliver what is durable up to `stop_deadline`, then return.
    pub stop: Arc<AtomicBool>,
    pub stop_deadline: Duration,
    /// Set when the WAL writer has finished: nothing more will become durable.
    pub writer_done: Arc<AtomicBool>,
    pub backoff: Backoff,
}

#[derive(Debug)]
pub enum SinkError {
    Wal(WalError),
}

/// A batch in flight: published, not yet acknowledged.
struct Batch {
    rows: usize,
    end_seq: u64,
    started: Option<Instant>,
    /// Oldest sample time of each frame, for the end-to-end histogram.
    frame_ts_ns: Vec<i64>,
}

impl Batch {
    fn new() -> Self {
        Batch {
            rows: 0,
            end_seq: 0,
            started: None,
            frame_ts_ns: Vec::with_capacity(FRAMES_PER_BATCH_MAX),
        }
    }
    fn clear(&mut self) {
        self.rows = 0;
        self.started = None;
        self.frame_ts_ns.clear();
    }
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
    let mut end_to_end = StageRecorder::new(&ctx.histograms, Stage::EndToEnd);
    let mut jitter = Jitter::from_entropy();
    let mut attempt = 0u32;
    let mut stop_at: Option<Instant> = None;
    let mut batch = Batch::new();
    let mut acked = Acked {
        end_seq: cursor.checkpointed(),
        checkpointed_at: Instant::now(),
    };
    loop {
        if stopping(&ctx, &mut stop_at) && (all_delivered(&cursor, &acked, &ctx) || past(stop_at)) {
            acked
                .checkpoint(&mut cursor, true)
                .map_err(SinkError::Wal)?;
            return Ok(());
        }
        let mut publisher = match connect(&ctx) {
            Ok(p) => {
                attempt = 0;
                set(&ctx.stats.connected, 1);
                p
            }
            Err(e) => {
                add(&ctx.stats.errors, 1);
                let delay = ctx.backoff.delay(attempt, jitter.next_u64());
                eprintln!(
                    "millrace sink {}: {e}; retrying in {delay:?}",
                    ctx.config.name
                );
                attempt = attempt.saturating_add(1);
                sleep_unless_stopped(&ctx, delay);
                continue;
            }
        };
        match deliver(
            &mut publisher,
            &mut cursor,
            &ctx,
            &mut batch,
            &mut acked,
            &mut end_to_end,
            &mut stop_at,
        ) {
            Ok(()) => return Ok(()),
            Err(DeliverError::Wal(e)) => return Err(SinkError::Wal(e)),
            Err(DeliverError::Kdb(e)) => {
                // What kdb+ acknowledged stays acknowledged: persist it, so
                // the resend starts after it.
                acked
                    .checkpoint(&mut cursor, true)
                    .map_err(SinkError::Wal)?;
                set(&ctx.stats.connected, 0);
                add(&ctx.stats.errors, 1);
                add(&ctx.stats.reconnects, 1);
                eprintln!(
                    "millrace sink {}: {e}; resending from seq {}",
                    ctx.config.name,
                    cursor.checkpointed()
                );
                cursor.rewind();
                batch.clear();
                let delay = ctx.backoff.delay(attempt, jitter.next_u64());
                attempt = attempt.saturating_add(1);
                sleep_unless_stopped(&ctx, delay);
            }
        }
    }
}

enum DeliverError {
    Kdb(KdbError),
    Wal(WalError),
}

/// Publishes and acknowledges until stopped (Ok) or an error.
fn deliver(
    publisher: &mut Publisher,
    cursor: &mut Cursor,
    ctx: &SinkContext,
    batch: &mut Batch,
    acked: &mut Acked,
    end_to_end: &mut StageRecorder,
    stop_at: &mut Option<Instant>,
) -> Result<(), DeliverError> {
    let batch_rows = ctx.config.batch_rows;
    loop {
        let mut caught_up = false;
        while batch.rows < batch_rows && batch.frame_ts_ns.len() < FRAMES_PER_BATCH_MAX {
            let Some(frame) = cursor.next() else {
                caught_up = true;
                break;
            };
            let (first_seq, end_seq) = (frame.first_seq, frame.end_seq());
            publisher
                .publish(&ctx.config.table, frame.samples, first_seq, &ctx.symbols)
                .map_err(DeliverError::Kdb)?;
            // A frame is one ring run in decode order: its first sample is its oldest.
            batch
                .frame_ts_ns
                .push(frame.samples.first().map_or(0, |s| s.ts_ns));
            batch.rows += (end_seq - first_seq) as usize;
            batch.end_seq = end_seq;
            batch.started.get_or_insert_with(Instant::now);
            add(&ctx.stats.messages, 1);
        }
        let aged = batch
            .started
            .is_some_and(|t| t.elapsed() >= ctx.config.batch_age);
        if batch.rows > 0
            && (caught_up
                || aged
                || batch.rows >= batch_rows
                || batch.frame_ts_ns.len() >= FRAMES_PER_BATCH_MAX)
        {
            publisher.chase().map_err(DeliverError::Kdb)?;
            acked.end_seq = batch.end_seq;
            let due = acked.interval_passed();
            acked.checkpoint(cursor, due).map_err(DeliverError::Wal)?;
            let now = unix_now_ns();
            for &ts in &batch.frame_ts_ns {
                end_to_end.record_ns(elapsed_ns(ts, now));
            }
            add(&ctx.stats.acked_samples, batch.rows as u64);
            batch.clear();
        }
        set(&ctx.stats.lag_samples, acked.unacked(cursor));
        if stopping(ctx, stop_at)
            && batch.rows == 0
            && (all_delivered(cursor, acked, ctx) || past(*stop_at))
        {
            end_to_end.flush();
            acked.checkpoint(cursor, true).map_err(DeliverError::Wal)?;
            return Ok(());
        }
        if caught_up && batch.rows == 0 {
            end_to_end.flush();
            let due = acked.interval_passed();
            acked.checkpoint(cursor, due).map_err(DeliverError::Wal)?;
            std::thread::sleep(IDLE_SLEEP);
        }
    }
}

fn connect(ctx: &SinkContext) -> Result<Publisher, KdbError> {
    // TLS files are read at each connection: a renewed certificate needs no restart.
    let tls = ctx.config.tls.as_ref();
    let tls = tls.map(crate::kdb::TlsClient::from_sink).transpose()?;
    let options = PublisherOptions {
        time_type: ctx.config.time_type,
        tls,
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
        stop_at.get_or_insert_with(|| Instant::now() + ctx.stop_deadline);
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
