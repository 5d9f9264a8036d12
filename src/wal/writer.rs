//! The writer: appends batches as frames into the active segment's mapping,
//! rolls to a new segment when one is full, and commits in groups: one
//! fdatasync per commit interval or byte threshold, after which the durable
//! sequence number moves. A failed sync stops the writer for good.
//!
//! Time is an argument (`poll_commit(now)`), so the commit policy is tested
//! without sleeping. The pipeline's writer thread uses
//! `poll_commit_background`: the same policy, with the fdatasync on the
//! `wal-sync` thread (syncer.rs) while it goes on appending.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::compact;
use super::cursor::Cursor;
use super::error::WalError;
use super::format::{encode_frame_header, Body, FRAME_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES};
use super::reclaimer::Reclaimer;
use super::recovery::{self, capacity, RecoveryReport};
use super::segment::{sample_bytes, SegmentWriter};
use super::shared::{DurableSeq, Shared, WalHandle};
use super::syncer::{self, Syncer};
use crate::config::{SyncMode, WalConfig, WhenFull};
use crate::sample::Sample;

/// A frame body ready to write (`Wal::encode`).
#[derive(Clone, Copy)]
struct Encoded {
    form: Body,
    len: usize,
    /// Records in the frame: packed runs counted as their members.
    records: usize,
    ts_min: i64,
    ts_max: i64,
}

/// Where an append landed: its samples have seqs `first_seq..end_seq`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    pub first_seq: u64,
    pub end_seq: u64,
}

/// Counters for metrics and reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalStats {
    pub frames_appended: u64,
    pub bytes_appended: u64,
    pub commits: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Appends refused with `Full`.
    pub full_refusals: u64,
    /// Of those, refused because the file system had no room for the next
    /// segment (fallocate: ENOSPC or EDQUOT), not because of the quota.
    pub disk_full_refusals: u64,
}

/// Why the last `Full` was answered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FullCause {
    /// The segments reached `quota`.
    #[default]
    Quota,
    /// The file system refused to preallocate the next segment.
    Disk,
}

pub struct Wal {
    pub(crate) shared: Arc<Shared>,
    pub(crate) segment_bytes: u64,
    pub(crate) quota: u64,
    commit_interval: Duration,
    commit_bytes: u64,
    pub(crate) when_full: WhenFull,
    sync: SyncMode,
    active: Option<SegmentWriter>,
    write_offset: usize,
    next_seq: u64,
    pending_bytes: u64,
    last_commit_at: Instant,
    stopped: bool,
    pub(crate) stats: WalStats,
    pub(crate) full_cause: FullCause,
    /// Drops deleted segments off this thread (their blocks' free can block).
    pub(crate) reclaimer: Reclaimer,
    /// Background commits; started by the first `poll_commit_background`.
    syncer: Option<Syncer>,
    /// Stamped on every frame: the CRC32C of the tag table in force.
    tags_crc: u32,
    /// The body of the frame being appended, when the active segment's
    /// bodies are blocks; grows to the largest frame and stays.
    blocks: Vec<u8>,
    /// A version 2 body's records with packed runs given back as their
    /// members (`packed::unpack_into`); kept, like `blocks`.
    unpacked: Vec<Sample>,
}

impl Wal {
    /// Opens (creating if needed) and recovers the WAL in `cfg.dir`.
    pub fn open(cfg: &WalConfig) -> Result<(Wal, RecoveryReport), WalError> {
        let r = recovery::recover(cfg)?;
        let wal = Wal {
            shared: r.shared,
            segment_bytes: cfg.segment_size,
            quota: cfg.quota,
            commit_interval: cfg.commit_interval,
            commit_bytes: cfg.commit_bytes.max(1),
            when_full: cfg.when_full,
            sync: cfg.sync,
            active: r.active,
            write_offset: r.write_offset,
            next_seq: r.next_seq,
            pending_bytes: 0,
            last_commit_at: Instant::now(),
            stopped: false,
            stats: WalStats::default(),
            full_cause: FullCause::Quota,
            reclaimer: Reclaimer::start(),
            syncer: None,
            tags_crc: 0,
            blocks: Vec::new(),
            unpacked: Vec::new(),
        };
        Ok((wal, r.report))
    }

    pub fn handle(&self) -> WalHandle {
        WalHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Shorthand for `handle().open_cursor(name)`.
    pub fn open_cursor(&self, name: &str) -> Result<Cursor, WalError> {
        self.handle().open_cursor(name)
    }

    /// Every sample with a lower seq is durable.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    pub fn durable(&self) -> DurableSeq {
        DurableSeq(Arc::clone(&self.shared.durable))
    }

    /// The seq the next appended sample gets.
    /// Stamps frames appended from now on with `tags_crc`, the checksum of
    /// the tag table they are polled under (tag_history.rs); set it after
    /// the table is recorded and before the first of those samples.
    pub fn set_tags_crc(&mut self, tags_crc: u32) {
        self.tags_crc = tags_crc;
    }

    /// The first seq the WAL still holds (`next_seq` when it holds none).
    pub fn oldest_seq(&self) -> u64 {
        self.shared.oldest_seq().unwrap_or_else(|| self.next_seq())
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub fn stats(&self) -> WalStats {
        self.stats
    }

    /// Why the last append was refused with `Full`.
    pub fn full_cause(&self) -> FullCause {
        self.full_cause
    }

    /// Samples dropped by `drop_oldest` so far.
    pub fn dropped_samples(&self) -> u64 {
        self.shared.dropped_samples.load(Ordering::Relaxed)
    }

    /// The most records one append may carry (one frame in one segment),
    /// a packed run's members counted one by one.
    pub fn max_batch_samples(&self) -> usize {
        capacity(self.segment_bytes).min(u32::MAX as u64) as usize
    }

    /// Appends `samples` as one frame, each packed run (`packed.rs`) as its
    /// members: those have seqs of their own. Not durable until a commit.
    /// `Err(Full)` under `block` means nothing was written: retry later.
    pub fn append(&mut self, samples: &[Sample]) -> Result<Appended, WalError> {
        if self.stopped {
            return Err(WalError::Stopped);
        }
        let first_seq = self.next_seq;
        if samples.is_empty() {
            return Ok(Appended {
                first_seq,
                end_seq: first_seq,
            });
        }
        if samples.len() > self.max_batch_samples() {
            return Err(WalError::BatchTooLarge {
                samples: samples.len(),
                max: self.max_batch_samples(),
            });
        }
        // Encoded for the active segment's form, rolled if the actual frame
        // does not fit; encoded again only if the new segment's form differs
        // (once, after a version 2 segment). A batch of `max_batch_samples`
        // fits an empty segment in either form (`capacity`).
        let form_of = |w: &SegmentWriter| Body::of_segment(w.bytes());
        let mut encoded = None;
        if let Some(form) = self.active.as_ref().map(form_of) {
            encoded = Some(self.encode(form, samples));
        }
        self.check_batch(encoded)?;
        let fits_active = encoded.is_some_and(|e| {
            let end = self.write_offset + FRAME_OVERHEAD_BYTES + e.len;
            self.active
                .as_ref()
                .is_some_and(|w| end <= w.segment().len())
        });
        if !fits_active {
            self.roll()?;
            let form = self.active.as_ref().map(form_of).ok_or(WalError::Stopped)?;
            if encoded.is_none_or(|e| e.form != form) {
                encoded = Some(self.encode(form, samples));
                self.check_batch(encoded)?;
            }
        }
        let e = encoded.ok_or(WalError::Stopped)?;
        let offset = self.write_offset;
        let w = self.active.as_mut().ok_or(WalError::Stopped)?;
        let body = match e.form {
            Body::Records => sample_bytes(&self.unpacked),
            Body::Blocks => self.blocks.get(..e.len).unwrap_or_default(),
        };
        let (ts_min, ts_max) = (e.ts_min, e.ts_max);
        let need = FRAME_OVERHEAD_BYTES + body.len();
        assert!(offset + need <= w.segment().len() && offset % 8 == 0);
        let count = e.records as u32;
        let header = encode_frame_header(first_seq, count, body, ts_min, ts_max, self.tags_crc);
        // One write for the frame; a crash inside it leaves a torn frame
        // that the CRC rejects and recovery cuts.
        if let Err(source) = w.write_at(offset, &header, body) {
            self.stopped = true;
            let path = w.segment().path().to_path_buf();
            tracing::error!(
                "wal: write failed on {}: {source}; writer stopped",
                path.display()
            );
            return Err(WalError::io("pwritev", path, source));
        }
        self.write_offset = offset + need;
        self.next_seq = first_seq + e.records as u64;
        self.pending_bytes += need as u64;
        self.stats.frames_appended += 1;
        self.stats.bytes_appended += need as u64;
        if self.sync == SyncMode::None {
            self.publish_pending();
        }
        Ok(Appended {
            first_seq,
            end_seq: self.next_seq,
        })
    }

    /// A frame body of `samples` (ring records: packed runs allowed) in
    /// `form`, written into `self.blocks` or, unpacked, `self.unpacked`;
    /// its length, record count and time range.
    fn encode(&mut self, form: Body, samples: &[Sample]) -> Encoded {
        let (len, records, (ts_min, ts_max)) = match form {
            Body::Records => {
                self.unpacked.clear();
                crate::packed::unpack_into(samples, &mut self.unpacked);
                let records = &self.unpacked;
                (
                    sample_bytes(records).len(),
                    records.len(),
                    ts_range(records),
                )
            }
            Body::Blocks => {
                let body = compact::encode(samples, &mut self.blocks);
                let ts = body.ts.unwrap_or((i64::MAX, i64::MIN));
                (body.len, body.records, ts)
            }
        };
        Encoded {
            form,
            len,
            records,
            ts_min,
            ts_max,
        }
    }

    /// A frame of more records than `max_batch_samples` (ring records whose
    /// packed runs unpack past it) might fit no segment: refused whole.
    fn check_batch(&self, encoded: Option<Encoded>) -> Result<(), WalError> {
        match encoded {
            Some(e) if e.records > self.max_batch_samples() => Err(WalError::BatchTooLarge {
                samples: e.records,
                max: self.max_batch_samples(),
            }),
            _ => Ok(()),
        }
    }

    /// Commits if the interval since the last commit has passed or enough
    /// bytes are pending; returns the durable seq if it committed.
    pub fn poll_commit(&mut self, now: Instant) -> Result<Option<u64>, WalError> {
        if self.pending_bytes == 0 || self.stopped {
            return if self.stopped {
                Err(WalError::Stopped)
            } else {
                Ok(None)
            };
        }
        let due = self.pending_bytes >= self.commit_bytes
            || now.saturating_duration_since(self.last_commit_at) >= self.commit_interval;
        if !due {
            return Ok(None);
        }
        let durable = self.commit()?;
        self.last_commit_at = now;
        Ok(Some(durable))
    }

    /// `poll_commit` with the fdatasync on the `wal-sync` thread: when a
    /// commit is due and none is running, hands it over and returns at once;
    /// the durable seq moves when the sync returns. Returns how long the
    /// sync that ended since the last call took, if one did. A failed sync
    /// stops the writer here (`SyncFailed`), as an inline one does.
    pub fn poll_commit_background(&mut self, now: Instant) -> Result<Option<Duration>, WalError> {
        if self.stopped {
            return Err(WalError::Stopped);
        }
        if self.sync != SyncMode::Data {
            return self.poll_commit(now).map(|_| None);
        }
        if self.syncer.is_none() {
            self.syncer = Syncer::start(Arc::clone(&self.shared));
        }
        let Some(syncer) = self.syncer.as_ref() else {
            let started = Instant::now();
            return Ok(self.poll_commit(now)?.map(|_| started.elapsed()));
        };
        let (ended, busy) = syncer.poll();
        let synced = self.collect(ended)?;
        let due = self.pending_bytes >= self.commit_bytes
            || now.saturating_duration_since(self.last_commit_at) >= self.commit_interval;
        if self.pending_bytes == 0 || !due || busy {
            return Ok(synced);
        }
        let Some(w) = self.active.as_ref() else {
            return Ok(synced);
        };
        let job = syncer::Job {
            segment: Arc::clone(w.segment()),
            end: self.write_offset,
            durable: self.next_seq,
        };
        if let Some(syncer) = self.syncer.as_ref() {
            // Not busy and its outcome collected, both seen under one lock;
            // only this thread submits.
            syncer.submit(job);
        }
        self.pending_bytes = 0;
        self.last_commit_at = now;
        Ok(synced)
    }

    /// Waits for a background commit to end, if one is running.
    fn settle(&mut self) -> Result<(), WalError> {
        let ended = self.syncer.as_ref().and_then(Syncer::settle);
        self.collect(ended).map(|_| ())
    }

    /// Counts an ended background commit; a failed one stops the writer.
    fn collect(&mut self, ended: Option<syncer::Outcome>) -> Result<Option<Duration>, WalError> {
        match ended {
            None => Ok(None),
            Some(Ok(took)) => {
                self.stats.commits += 1;
                Ok(Some(took))
            }
            Some(Err((path, source))) => {
                self.stopped = true;
                tracing::error!(
                    "wal: fdatasync failed on {}: {source}; writer stopped",
                    path.display()
                );
                Err(WalError::SyncFailed { path, source })
            }
        }
    }

    /// When `poll_commit` will next want to commit, if anything is pending.
    pub fn commit_deadline(&self) -> Option<Instant> {
        (self.pending_bytes > 0).then(|| self.last_commit_at + self.commit_interval)
    }

    /// A commit handed to the `wal-sync` thread has not ended yet (its end
    /// unparks the thread that started it, this writer's).
    pub fn sync_running(&self) -> bool {
        self.syncer.as_ref().is_some_and(|s| s.poll_busy())
    }

    /// Bytes appended since the last commit.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Makes everything appended durable now; returns the durable seq.
    pub fn commit(&mut self) -> Result<u64, WalError> {
        if self.stopped {
            return Err(WalError::Stopped);
        }
        self.settle()?;
        if self.pending_bytes > 0 {
            self.sync_active()?;
        }
        Ok(self.durable_seq())
    }

    fn sync_active(&mut self) -> Result<(), WalError> {
        if let (SyncMode::Data, Some(w)) = (self.sync, self.active.as_ref()) {
            if let Err(source) = w.sync_data() {
                self.stopped = true;
                let path = w.segment().path().to_path_buf();
                tracing::error!(
                    "wal: fdatasync failed on {}: {source}; writer stopped",
                    path.display()
                );
                return Err(WalError::SyncFailed { path, source });
            }
        }
        self.stats.commits += 1;
        self.publish_pending();
        Ok(())
    }

    fn publish_pending(&mut self) {
        if let Some(w) = self.active.as_mut() {
            w.publish(self.write_offset);
        }
        self.pending_bytes = 0;
        self.shared.durable.store(self.next_seq, Ordering::Release);
        self.shared.durable_wait.notify();
    }

    /// Seals the active segment (synced first) and starts the next one at
    /// `next_seq`, making room under the quota or on the disk first.
    fn roll(&mut self) -> Result<(), WalError> {
        // A background sync may still publish into the active segment: it
        // must end before the segment is sealed.
        self.settle()?;
        if self.pending_bytes > 0 {
            self.sync_active()?;
        }
        let seg = match self.create_segment() {
            Ok(seg) => seg,
            Err(e) => {
                if matches!(e, WalError::Full) {
                    self.stats.full_refusals += 1;
                    if self.full_cause == FullCause::Disk {
                        self.stats.disk_full_refusals += 1;
                    }
                }
                return Err(e);
            }
        };
        let writer = seg.claim_writer().ok_or(WalError::Stopped)?;
        self.shared.segments().push_back(seg);
        if let Some(old) = self.active.take() {
            old.seal();
        }
        self.active = Some(writer);
        self.write_offset = SEGMENT_HEADER_BYTES;
        self.stats.segments_created += 1;
        Ok(())
    }
}

/// The smallest and largest time stamp of the rows (a text extension
/// record's `ts_ns` holds text, not a time: it counts as neither). Four
/// independent min/max chains: one chain's compare-and-move latency per
/// sample made this loop 2% of millrace's CPU in the end-to-end bench (perf
/// annotate of `append`); skipping an extension is a select, not a branch.
fn ts_range(samples: &[Sample]) -> (i64, i64) {
    let mut lo = [i64::MAX; 4];
    let mut hi = [i64::MIN; 4];
    let chunks = samples.chunks_exact(4);
    let rest = chunks.remainder();
    for chunk in chunks {
        for ((l, h), s) in lo.iter_mut().zip(hi.iter_mut()).zip(chunk) {
            let (ts_lo, ts_hi) = row_ts(s);
            *l = (*l).min(ts_lo);
            *h = (*h).max(ts_hi);
        }
    }
    let lo = lo.into_iter().min().unwrap_or(i64::MAX);
    let hi = hi.into_iter().max().unwrap_or(i64::MIN);
    rest.iter().fold((lo, hi), |(lo, hi), s| {
        let (ts_lo, ts_hi) = row_ts(s);
        (lo.min(ts_lo), hi.max(ts_hi))
    })
}

/// A record's time stamp for the min and for the max: the neutral values
/// for a text extension.
#[inline(always)]
fn row_ts(s: &Sample) -> (i64, i64) {
    if s.is_row() {
        (s.ts_ns, s.ts_ns)
    } else {
        (i64::MAX, i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::TagId;

    #[test]
    fn ts_range_matches_a_plain_fold_for_every_length_and_position() {
        let ts = [5i64, -3, 9, 9, i64::MIN, 0, i64::MAX, 7, -1];
        for len in 1..=ts.len() {
            for start in 0..len {
                // Rotate so the extremes land in every chunk lane and the tail.
                let samples: Vec<Sample> = (0..len)
                    .map(|i| Sample::f64(ts[(start + i) % len], TagId(0), 0.0))
                    .collect();
                let lo = samples.iter().map(|s| s.ts_ns).min().unwrap();
                let hi = samples.iter().map(|s| s.ts_ns).max().unwrap();
                assert_eq!(ts_range(&samples), (lo, hi), "len {len} start {start}");
            }
        }
        assert_eq!(ts_range(&[]), (i64::MAX, i64::MIN));
    }

    /// Text extension records carry text where a time stamp would be: the
    /// frame's range is that of its rows.
    #[test]
    fn ts_range_skips_text_extensions() {
        let mut records = vec![Sample::default(); crate::sample::text_records(100)];
        let text = [0xFFu8; 100]; // as an i64: -1, and i64::MIN-ish bytes
        crate::sample::write_text(&mut records, 50, TagId(1), crate::Quality::GOOD, &text, 100);
        for extra in 0..6 {
            let mut frame: Vec<Sample> = (0..extra)
                .map(|i| Sample::f64(60 + i, TagId(0), 0.0))
                .collect();
            frame.extend_from_slice(&records);
            let hi = if extra > 0 { 60 + extra - 1 } else { 50 };
            assert_eq!(ts_range(&frame), (50, hi), "{extra} rows before");
        }
    }
}
