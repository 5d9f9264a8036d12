//! Retention and the quota. A segment is deleted only once every cursor's
//! persisted checkpoint is past it, and only after those checkpoints are on
//! disk, so a crash between the two steps loses nothing a sink still needs.
//! At the quota (or on a full disk) `block` refuses the append (`Full`) and
//! `drop_oldest` moves lagging cursors past the oldest segment - their
//! checkpoints persisted first - then deletes it, counting and logging what
//! no sink had delivered.

use std::fs;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::error::WalError;
use super::segment::{CreateError, Segment};
use super::shared::lock;
use super::writer::{FullCause, Wal};
use crate::config::WhenFull;

impl Wal {
    /// Makes room and creates the segment that starts at `next_seq`.
    /// Bounded: each retry follows the removal of one segment.
    pub(crate) fn create_segment(&mut self) -> Result<Arc<Segment>, WalError> {
        let segments_max = self.shared.segments().len() + 1;
        for _ in 0..=segments_max {
            self.reclaim()?;
            let used: u64 = self.shared.segments().iter().map(|s| s.len() as u64).sum();
            if used + self.segment_bytes > self.quota {
                self.full_cause = FullCause::Quota;
                self.when_full_step()?;
                continue;
            }
            let shared = &self.shared;
            match Segment::create(
                &shared.dir,
                &shared.dir_file,
                self.next_seq(),
                self.segment_bytes,
            ) {
                Ok(seg) => return Ok(seg),
                Err(CreateError::NoSpace) if self.reclaimer.pending() > 0 => {
                    // Deleted segments whose blocks are still being freed
                    // (reclaimer.rs): wait for them before dropping more.
                    self.reclaimer.wait_idle();
                }
                Err(CreateError::NoSpace) => {
                    self.full_cause = FullCause::Disk;
                    self.when_full_step()?;
                }
                Err(CreateError::Io(op, path, e)) => return Err(WalError::io(op, path, e)),
            }
        }
        Err(WalError::Full)
    }

    /// One step of the `when_full` policy: `Full` under `block` (or when
    /// nothing is left to drop), else the oldest sealed segment goes.
    fn when_full_step(&mut self) -> Result<(), WalError> {
        if self.when_full == WhenFull::DropOldest && self.drop_oldest()? {
            return Ok(());
        }
        Err(WalError::Full)
    }

    /// Deletes the oldest segments that every cursor has checkpointed past.
    /// Without any cursor nothing is deleted (no sink has had the data).
    pub fn reclaim(&mut self) -> Result<usize, WalError> {
        let Some(min) = self.shared.min_checkpoint() else {
            return Ok(0);
        };
        let mut deleted = 0;
        let segments_count = self.shared.segments().len();
        for _ in 0..segments_count {
            let front = {
                let mut segs = self.shared.segments();
                // A segment's end is the next one's first seq; the last
                // (active) segment is never deleted.
                match segs.get(1) {
                    Some(next) if next.first_seq() <= min => segs.pop_front(),
                    _ => None,
                }
            };
            let Some(front) = front else { break };
            self.unlink(front)?;
            deleted += 1;
        }
        if deleted > 0 {
            self.sync_dir()?;
        }
        Ok(deleted)
    }

    /// Drops the oldest sealed segment; `false` if there is none.
    fn drop_oldest(&mut self) -> Result<bool, WalError> {
        let (front, end) = {
            let segs = self.shared.segments();
            match (segs.front(), segs.get(1)) {
                (Some(front), Some(next)) => (Arc::clone(front), next.first_seq()),
                _ => return Ok(false),
            }
        };
        let cursors: Vec<_> = lock(&self.shared.cursors).values().cloned().collect();
        let delivered = cursors
            .iter()
            .map(|c| c.checkpoint.load(Ordering::Acquire))
            .min();
        for cursor in &cursors {
            self.shared.persist(cursor, end)?;
        }
        let from = delivered.unwrap_or(0).max(front.first_seq()).min(end);
        let dropped = end - from;
        self.shared
            .dropped_samples
            .fetch_add(dropped, Ordering::Relaxed);
        tracing::warn!(
            "wal: quota reached, dropped segment {} (seq {}..{}): {dropped} samples \
             not yet delivered to every sink",
            front.path().display(),
            front.first_seq(),
            end
        );
        let popped = {
            let mut segs = self.shared.segments();
            let same = segs.front().is_some_and(|s| Arc::ptr_eq(s, &front));
            if same {
                segs.pop_front()
            } else {
                None
            }
        };
        drop(front);
        if let Some(seg) = popped {
            self.unlink(seg)?;
            self.sync_dir()?;
        }
        Ok(true)
    }

    /// Removes the segment's name now; its blocks are freed when the last
    /// reference goes, on the reclaim thread (reclaimer.rs says why).
    fn unlink(&mut self, seg: Arc<Segment>) -> Result<(), WalError> {
        fs::remove_file(seg.path()).map_err(|e| WalError::io("remove", seg.path(), e))?;
        self.stats.segments_deleted += 1;
        self.reclaimer.retire(seg);
        Ok(())
    }

    fn sync_dir(&self) -> Result<(), WalError> {
        self.shared
            .dir_file
            .sync_all()
            .map_err(|e| WalError::io("fsync dir", &self.shared.dir, e))
    }
}
