//! A sink's read position in the WAL. It hands out frames in place from the
//! shared mappings, only up to what the writer has published (durable), and
//! persists how far the sink has delivered with `checkpoint`.
//!
//! Gaps are never crossed silently: when the samples at the position are
//! gone (a segment set aside by recovery, or dropped by `drop_oldest`), the
//! cursor jumps to the next sample that exists and adds the jump to
//! `skipped_samples`.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::error::WalError;
use super::format::{
    frame_records, parse_frame, records_in_place, Body, FrameError, FrameView,
    FRAME_OVERHEAD_BYTES, SEGMENT_BYTES_MAX, SEGMENT_HEADER_BYTES,
};
use super::segment::Segment;
use super::shared::{CursorState, Shared};
use crate::sample::{Sample, ValueKind};

/// Frames walked plus segments hopped in one `next`: a segment of the
/// largest size holds at most this many frames, and hops are few.
const STEPS_MAX: usize = (SEGMENT_BYTES_MAX as usize) / 64 + 1024;

/// Durable samples, viewed in place (version 2 segments) or expanded from
/// the frame's blocks into the cursor's buffer (version 3): sample `i` has
/// seq `first_seq + i`.
#[derive(Clone, Copy, Debug)]
pub struct FrameRef<'a> {
    pub first_seq: u64,
    pub samples: &'a [Sample],
    /// The frame's tag-table checksum (tag_history.rs).
    pub tags_crc: u32,
}

impl FrameRef<'_> {
    /// One past the seq of the last sample.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.samples.len() as u64
    }
}

pub struct Cursor {
    shared: Arc<Shared>,
    state: Arc<CursorState>,
    seg: Option<Arc<Segment>>,
    /// Offset in `seg` of the frame that starts at `frame_seq`.
    offset: usize,
    frame_seq: u64,
    /// The next seq `next` hands out.
    pos: u64,
    skipped: u64,
    error: Option<FrameError>,
    /// The durable seq the last `next` looked at (see `wait_durable`).
    seen_durable: u64,
    /// The records of the last version 3 frame handed out, at its front;
    /// grows to the largest frame and stays.
    expanded: Vec<Sample>,
}

impl Cursor {
    pub(crate) fn new(shared: Arc<Shared>, state: Arc<CursorState>) -> Cursor {
        let pos = state.checkpoint.load(Ordering::Acquire);
        Cursor {
            shared,
            state,
            seg: None,
            offset: 0,
            frame_seq: 0,
            pos,
            skipped: 0,
            error: None,
            seen_durable: 0,
            expanded: Vec::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// The next seq `next` will hand out.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The persisted checkpoint (it can be ahead of what this cursor wrote
    /// if `drop_oldest` moved it).
    pub fn checkpointed(&self) -> u64 {
        self.state.checkpoint.load(Ordering::Acquire)
    }

    /// Samples durable but not yet checkpointed.
    pub fn lag(&self) -> u64 {
        self.shared
            .durable
            .load(Ordering::Acquire)
            .saturating_sub(self.checkpointed())
    }

    /// Samples this cursor jumped over because they no longer exist.
    pub fn skipped_samples(&self) -> u64 {
        self.skipped
    }

    /// A frame that failed its checks in memory (should never happen: it
    /// was checked when written or recovered); the cursor stops there.
    pub fn error(&self) -> Option<FrameError> {
        self.error
    }

    /// The next durable frame (or the rest of one after a seek), or `None`
    /// when the cursor has caught up with the durable sequence number.
    // Not `Iterator::next`: each frame borrows the cursor (a lending
    // iterator), which the standard trait cannot express.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<FrameRef<'_>> {
        if self.error.is_some() {
            return None;
        }
        let checkpoint = self.checkpointed();
        if checkpoint > self.pos {
            self.skipped += checkpoint - self.pos;
            self.seek(checkpoint);
        }
        let durable = self.shared.durable.load(Ordering::Acquire);
        self.seen_durable = durable;
        if self.pos >= durable {
            return None;
        }
        // Each round moves past one frame.
        let (frame, skip) = loop {
            let (frame, skip) = self.advance()?;
            let seg = self.seg.as_ref()?;
            let records = match frame_records(seg.published(), &frame, &mut self.expanded) {
                Ok(records) => records,
                Err(e) => {
                    // parse_frame checked the same bytes: only a mapping
                    // changed under us gets here.
                    let at = frame.samples_offset - FRAME_OVERHEAD_BYTES;
                    log_failed(&self.state.name, at, seg.path(), &e);
                    self.error = Some(e);
                    return None;
                }
            };
            // Sought into a text sample (replay's --from-seq): its head is
            // before `pos`, so its extensions are not ours.
            let exts = records
                .get(skip..)
                .unwrap_or_default()
                .iter()
                .take_while(|r| r.kind_byte() == ValueKind::TextExt as u8)
                .count();
            if skip + exts < records.len() {
                break (frame, skip + exts);
            }
        };
        // The records again, without a second expansion: a version 3
        // frame's are in `expanded` already.
        let samples = match frame.body {
            Body::Records => records_in_place(self.seg.as_ref()?.published(), &frame)?,
            Body::Blocks => self.expanded.get(..frame.sample_count as usize)?,
        };
        let samples = samples.get(skip..)?;
        Some(FrameRef {
            first_seq: frame.first_seq + skip as u64,
            samples,
            tags_crc: frame.tags_crc,
        })
    }

    /// Sleeps until the durable seq is past what the last `next` saw, at
    /// most `timeout`: a caught-up sink wakes at the group commit, not on a
    /// timer. Waiting on what `next` saw (not on the position) keeps a
    /// cursor that cannot move (a frame failed) from spinning. May return
    /// early; `next` tells what is there.
    pub fn wait_durable(&self, timeout: Duration) {
        let shared = &self.shared;
        shared
            .durable_wait
            .wait(&shared.durable, self.seen_durable, timeout);
    }

    /// Persists that every sample below `next_seq` was delivered. Never
    /// moves the checkpoint backwards; cannot pass what was read.
    pub fn checkpoint(&mut self, next_seq: u64) -> Result<(), WalError> {
        if next_seq > self.pos {
            return Err(WalError::CheckpointAhead {
                requested: next_seq,
                position: self.pos,
            });
        }
        self.shared.persist(&self.state, next_seq)
    }

    /// Goes back to the checkpoint (a sink reconnecting re-sends from there).
    pub fn rewind(&mut self) {
        self.seek(self.checkpointed());
    }

    /// Positions the cursor at `seq` (the frame holding it is then handed
    /// out from that sample on).
    pub fn seek(&mut self, seq: u64) {
        self.pos = seq;
        self.seg = None;
    }

    /// Finds the frame holding `pos`; returns it and how many of its
    /// records come before `pos`, and moves past the frame.
    fn advance(&mut self) -> Option<(FrameView, usize)> {
        for _ in 0..STEPS_MAX {
            let seg = match &self.seg {
                Some(seg) => Arc::clone(seg),
                None => {
                    self.locate()?;
                    continue;
                }
            };
            let sealed = seg.is_sealed();
            let body = Body::of_segment(seg.published());
            match parse_frame(body, seg.published(), self.offset, self.frame_seq, true) {
                Ok(Some(frame)) => {
                    let end_seq = frame.end_seq();
                    self.offset += frame.frame_bytes;
                    self.frame_seq = end_seq;
                    if end_seq <= self.pos {
                        continue;
                    }
                    assert!(self.pos >= frame.first_seq);
                    let skip = (self.pos - frame.first_seq) as usize;
                    self.pos = end_seq;
                    return Some((frame, skip));
                }
                Ok(None) if sealed => self.move_past(&seg)?,
                Ok(None) => return None,
                Err(e) => {
                    log_failed(&self.state.name, self.offset, seg.path(), &e);
                    self.error = Some(e);
                    return None;
                }
            }
        }
        None
    }

    /// Positions at the start of the segment holding `pos`, jumping forward
    /// (counted) if `pos` is older than every segment.
    fn locate(&mut self) -> Option<()> {
        let segs = self.shared.segments();
        let seg = match segs.iter().rposition(|s| s.first_seq() <= self.pos) {
            Some(i) => Arc::clone(segs.get(i)?),
            None => {
                let front = Arc::clone(segs.front()?);
                self.skipped += front.first_seq() - self.pos;
                self.pos = front.first_seq();
                front
            }
        };
        drop(segs);
        self.enter(seg);
        Some(())
    }

    /// Leaves a sealed, fully read segment for the one after it.
    fn move_past(&mut self, current: &Arc<Segment>) -> Option<()> {
        let next = {
            let segs = self.shared.segments();
            Arc::clone(segs.iter().find(|s| s.first_seq() > current.first_seq())?)
        };
        if next.first_seq() <= self.pos {
            self.seg = None;
            return self.locate();
        }
        if self.pos < next.first_seq() {
            // Samples between the end of `current` and `next` do not exist
            // (a segment set aside by recovery).
            self.skipped += next.first_seq() - self.pos;
            self.pos = next.first_seq();
        }
        self.enter(next);
        Some(())
    }

    fn enter(&mut self, seg: Arc<Segment>) {
        self.offset = SEGMENT_HEADER_BYTES;
        self.frame_seq = seg.first_seq();
        self.seg = Some(seg);
    }
}

fn log_failed(cursor: &str, offset: usize, path: &std::path::Path, error: &FrameError) {
    tracing::error!(
        "wal: cursor {cursor}: frame at {offset} of {} failed in memory: {error}",
        path.display()
    );
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.state.open.store(false, Ordering::Release);
    }
}
