//! The WAL writer thread: drains every reader's ring into the WAL and
//! commits in groups. Ring slots are released only after their samples are
//! in the WAL's mapping, so a full WAL (policy `block`) leaves them in the
//! rings: the rings fill and the readers delay their polls (counted there).
//!
//! Each ring's readable run is appended as one frame (bounded by the WAL's
//! frame maximum), so frames grow with load and a quiet plant costs little.
//!
//! A frame never splits a text sample (a `Text` head and its `TextExt`
//! records, sample.rs): a run is cut at the last whole sample, and a text
//! sample that the ring's wrap cuts in two is gathered into a small staging
//! slice and appended as a frame of its own (one copy per trip around the
//! ring, of at most `TEXT_EXT_RECORDS_MAX + 1` records). A packed run
//! (`packed.rs`) is held together the same way: its head counts the
//! records after it as a text head does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::clock::{elapsed_ns, unix_now_ns};
use super::stats::{add, set, WriterStats};
use crate::doorbell::Doorbell;
use crate::metrics::{Stage, StageHistograms, StageRecorder};
use crate::ring::Consumer;
use crate::sample::{whole_samples_len, Sample, TEXT_EXT_RECORDS_MAX};
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
    /// Rung by the readers: with nothing to drain and nothing waiting for
    /// a commit, the writer sleeps on it instead of polling.
    pub doorbell: Arc<Doorbell>,
}

/// Longest sleep on the doorbell (a backstop: a reader's ring, the end of a
/// sync or the stop wakes the writer before it; at 100 ms it was 10 of an
/// idle gateway's few wake-ups a second).
const PARK_MAX: Duration = Duration::from_secs(1);

/// Runs until `drain_and_stop` and every ring is empty, or a fatal WAL error.
pub fn run(mut wal: Wal, mut rings: Vec<Consumer>, ctx: WriterContext) -> Result<Wal, WalError> {
    let mut dwell = StageRecorder::new(&ctx.histograms, Stage::RingDwell);
    let mut commit = StageRecorder::new(&ctx.histograms, Stage::WalCommit);
    // Ring records: a packed run unpacks into fewer than three times its
    // records.
    let frame_max = wal.max_batch_samples() / crate::packed::UNPACKED_PER_RECORD_MAX;
    let mut staging = Staging::new();
    let mut was_full = false;
    loop {
        let stopping = ctx.drain_and_stop.load(Ordering::Acquire);
        let mut drained = 0usize;
        let mut full = false;
        for ring in rings.iter_mut() {
            match drain_one(
                &mut wal,
                ring,
                frame_max,
                &mut staging,
                &mut dwell,
                &ctx.stats,
            ) {
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
            idle(&wal, &mut rings, &ctx);
        }
    }
}

/// Nothing was drained. While appended samples wait for their commit, a
/// nap (doorbell.rs) until the commit is due, or until the running sync
/// ends (the `wal-sync` thread unparks this one); the rings are drained
/// then, in one turn, and committed at once. With everything durable, a
/// deep sleep until a reader publishes.
fn idle(wal: &Wal, rings: &mut [Consumer], ctx: &WriterContext) {
    if wal.durable_seq() < wal.next_seq() {
        let now = Instant::now();
        let nap = match wal.commit_deadline() {
            Some(due) if due > now => due - now,
            // Due (or handed over) and the sync still runs: its end wakes us.
            _ if wal.sync_running() => PARK_MAX,
            _ => ctx.idle_sleep,
        };
        ctx.doorbell.announce_nap();
        ctx.doorbell.sleep(nap.max(IDLE_SLEEP_MIN));
        return;
    }
    ctx.doorbell.announce_sleep();
    let empty = rings.iter_mut().all(|ring| {
        let (first, second) = ring.readable();
        first.is_empty() && second.is_empty()
    });
    if empty && !ctx.drain_and_stop.load(Ordering::Acquire) {
        ctx.doorbell.sleep(PARK_MAX);
    } else {
        ctx.doorbell.stay_awake();
    }
}

/// Room to gather one text sample across the ring's wrap.
struct Staging(Vec<Sample>);

impl Staging {
    fn new() -> Self {
        Staging(Vec::with_capacity(TEXT_EXT_RECORDS_MAX + 1))
    }

    /// The text sample at the front of `first` (which it overruns) joined
    /// with the rest of it from `second`; `None` when the ring does not
    /// hold the rest (records broken at the source: never completed later,
    /// since a producer publishes whole samples).
    fn gather(&mut self, first: &[Sample], second: &[Sample]) -> Option<&[Sample]> {
        let head = first.first()?;
        let span = 1 + (head.value >> 32) as usize;
        let rest = span.checked_sub(first.len())?;
        if span > TEXT_EXT_RECORDS_MAX + 1 || rest > second.len() {
            return None;
        }
        self.0.clear();
        self.0.extend_from_slice(first);
        self.0.extend_from_slice(second.get(..rest)?);
        Some(&self.0)
    }
}

/// Appends the ring's first readable run, cut at its last whole sample (or
/// the one text sample the wrap splits); returns the records moved.
fn drain_one(
    wal: &mut Wal,
    ring: &mut Consumer,
    frame_max: usize,
    staging: &mut Staging,
    dwell: &mut StageRecorder,
    stats: &WriterStats,
) -> Result<usize, WalError> {
    let moved = {
        let (first, second) = ring.readable();
        let n = first.len().min(frame_max);
        if n == 0 {
            return Ok(0);
        }
        let run = &first[..n];
        let whole = whole_samples_len(run);
        let run = match whole {
            0 if n == first.len() => staging.gather(first, second).unwrap_or(run),
            // Cut by frame_max (far larger than a text sample) or broken.
            0 => run,
            whole => &run[..whole],
        };
        let appended = wal.append(run)?;
        let now = unix_now_ns();
        dwell.record_ns(elapsed_ns(run[0].ts_ns, now));
        add(
            &stats.samples_appended,
            appended.end_seq - appended.first_seq,
        );
        add(&stats.frames_appended, 1);
        run.len()
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
        tracing::warn!(
            "wal: full at durable seq {} ({cause}); not draining the rings: \
             readers delay their polls until a sink catches up and segments are retired",
            wal.durable_seq()
        );
    } else {
        tracing::info!("wal: room again; draining the rings");
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
    use crate::packed::fill_run_packed;
    use crate::sample::{record_span, text_records, write_text, RunTail, TagId};
    use crate::{Quality, Sample, ValueKind};

    /// A WAL in a temporary directory, by way of a configuration file.
    fn wal(dir: &std::path::Path) -> Wal {
        let text = "[wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"1MiB\"\n\n\
                    [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"127.0.0.1:1\"\n\
                    table = \"plc\"\n\n\
                    [[device]]\nname = \"d\"\nprotocol = \"modbus-tcp\"\n\
                    address = \"127.0.0.1:1\"\nunit_id = 1\npoll_interval = \"1s\"\n\n\
                    [[device.tag]]\nname = \"t\"\narea = \"holding\"\naddress = 0\n\
                    type = \"uint16\"\n";
        let path = dir.join("plant.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = crate::config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        Wal::open(&cfg.wal).unwrap().0
    }

    /// Every cut of a text sample by the ring's wrap: the frames the writer
    /// appends hold whole samples, and together every record in order.
    #[test]
    fn frames_never_split_a_text_sample_at_the_wrap() {
        let mut batch = vec![Sample::default(); text_records(60)]; // a head, 3 extensions
        write_text(&mut batch, 2, TagId(1), Quality::GOOD, &[b'w'; 60], 60);
        batch.push(Sample::f64(3, TagId(2), 7.0));
        drain_across_every_wrap(&batch);
    }

    /// The same for a packed run (a head and 3 values records): the WAL
    /// holds its members, with seqs of their own.
    #[test]
    fn frames_never_split_a_packed_run_at_the_wrap() {
        let values: Vec<u8> = (0..16).collect();
        let tail = RunTail::new(TagId(10), Quality::GOOD, ValueKind::U64);
        let mut batch = vec![Sample::default(); 8];
        let fill = fill_run_packed(&values, tail, 2, &mut batch, |b: [u8; 2]| {
            u64::from(u16::from_be_bytes(b))
        });
        assert_eq!(fill, (4, 8));
        batch.truncate(4);
        batch.push(Sample::f64(3, TagId(2), 7.0));
        drain_across_every_wrap(&batch);
    }

    /// Pushes `batch` (ring records) into a ring of 16 after 0 to 15
    /// numbers, so that it starts at every slot and crosses the wrap at
    /// every place, drains it into a WAL and reads it back unpacked.
    fn drain_across_every_wrap(batch: &[Sample]) {
        let stats = WriterStats::default();
        let histograms = Arc::new(StageHistograms::default());
        let mut dwell = StageRecorder::new(&histograms, Stage::RingDwell);
        let mut staging = Staging::new();
        let mut expected_batch = Vec::new();
        crate::packed::unpack_into(batch, &mut expected_batch);
        for before in 0..16 {
            let dir = tempfile::tempdir().unwrap();
            let mut wal = wal(dir.path());
            let mut cursor = wal.open_cursor("check").unwrap();
            let (mut producer, mut consumer) = crate::ring::channel(16);
            let numbers: Vec<Sample> = (0..before)
                .map(|i| Sample::f64(1, TagId(0), i as f64))
                .collect();
            producer.push_slice(&numbers).unwrap();
            let mut drain = |wal: &mut Wal, consumer: &mut crate::ring::Consumer| {
                let max = 1 << 20;
                drain_one(wal, consumer, max, &mut staging, &mut dwell, &stats).unwrap()
            };
            while drain(&mut wal, &mut consumer) > 0 {}
            producer.push_slice(batch).unwrap();
            let moved: usize = (0..4).map(|_| drain(&mut wal, &mut consumer)).sum();
            assert_eq!(moved, batch.len(), "before {before}");
            wal.commit().unwrap();
            let mut records = Vec::new();
            while let Some(frame) = cursor.next() {
                let mut at = 0;
                while at < frame.samples.len() {
                    at += record_span(&frame.samples[at..]).expect("a whole sample");
                }
                records.extend_from_slice(frame.samples);
            }
            let expected: Vec<Sample> = numbers.iter().chain(&expected_batch).copied().collect();
            assert_eq!(records, expected, "before {before}");
            let appended = stats.samples_appended.load(Ordering::Relaxed);
            assert!(appended >= expected.len() as u64, "seqs count the members");
        }
    }

    #[test]
    fn idle_sleep_is_an_eighth_of_the_commit_interval_within_bounds() {
        let ms = Duration::from_millis;
        assert_eq!(idle_sleep(ms(10)), ms(1));
        assert_eq!(idle_sleep(ms(2)), Duration::from_micros(250));
        assert_eq!(idle_sleep(Duration::from_micros(100)), IDLE_SLEEP_MIN);
        assert_eq!(idle_sleep(Duration::from_secs(1)), IDLE_SLEEP_MAX);
    }
}
