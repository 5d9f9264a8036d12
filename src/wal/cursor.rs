//! A sink's read position in the WAL. It hands out frames in place from the
//! shared mappings, only up to what the writer has published (durable), and
//! persists how far the sink has delivered with `checkpoint`.
//!
//! Gaps are never crossed silently: when the samples at the position are
//! gone (a segment set aside by recovery, or dropped by `drop_oldest`), the
//! cursor jumps to the next sample that exists and adds the jump to
//! `skipped_samples`.

#![forbid(unsafe_code)]

use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::error::WalError;
use super::format::{parse_frame, FrameError, FrameView, SEGMENT_BYTES_MAX, SEGMENT_HEADER_BYTES};
use super::segment::{samples_from_bytes, Segment};
use super::shared::{CursorState, Shared};
use crate::sample::{Sample, ValueKind, SAMPLE_SIZE};

/// Frames walked plus segments hopped in one `next`: a segment of the
/// largest size holds at most this many frames, and hops are few.
const STEPS_MAX: usize = (SEGMENT_BYTES_MAX as usize) / 64 + 1024;

/// Durable samples viewed in place: sample `i` has seq `first_seq + i`.
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
        let (first_seq, range, tags_crc) = self.advance()?;
        let bytes = self.seg.as_ref()?.published().get(range)?;
        let samples = samples_from_bytes(bytes)?;
        debug_assert!(!samples.is_empty());
        Some(FrameRef {
            first_seq,
            samples,
            tags_crc,
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

    /// Finds the frame holding `pos`; returns its first handed-out seq and
    /// the byte range of the samples, and moves past the frame.
    fn advance(&mut self) -> Option<(u64, Range<usize>, u32)> {
        for _ in 0..STEPS_MAX {
            let seg = match &self.seg {
                Some(seg) => Arc::clone(seg),
                None => {
                    self.locate()?;
                    continue;
                }
            };
            let sealed = seg.is_sealed();
            match parse_frame(seg.published(), self.offset, self.frame_seq, true) {
                Ok(Some(frame)) => {
                    let end_seq = frame.end_seq();
                    self.offset += frame.frame_bytes;
                    self.frame_seq = end_seq;
                    if end_seq <= self.pos {
                        continue;
                    }
                    assert!(self.pos >= frame.first_seq);
                    let count = frame.sample_count as usize;
                    let mut skip = (self.pos - frame.first_seq) as usize;
                    // Sought into a text sample (replay's --from-seq): its
                    // head is before `pos`, so its extensions are not ours.
                    while skip < count && is_extension(seg.published(), &frame, skip) {
                        skip += 1;
                    }
                    self.pos = end_seq;
                    if skip == count {
                        continue;
                    }
                    let start = frame.samples_offset + skip * SAMPLE_SIZE;
                    let end = frame.samples_offset + count * SAMPLE_SIZE;
                    return Some((frame.first_seq + skip as u64, start..end, frame.tags_crc));
                }
                Ok(None) if sealed => self.move_past(&seg)?,
                Ok(None) => return None,
                Err(e) => {
                    tracing::error!(
                        "wal: cursor {}: frame at {} of {} failed in memory: {e}",
                        self.state.name,
                        self.offset,
                        seg.path().display()
                    );
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

/// Whether record `index` of `frame` is a text extension record (its kind
/// byte is the last byte of its tag word, `sample.rs`).
fn is_extension(segment: &[u8], frame: &FrameView, index: usize) -> bool {
    const KIND_BYTE_OFFSET: usize = 19;
    let at = frame.samples_offset + index * SAMPLE_SIZE + KIND_BYTE_OFFSET;
    segment.get(at) == Some(&(ValueKind::TextExt as u8))
}

impl Drop for Cursor {
    fn drop(&mut self) {
        self.state.open.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::TagId;

    #[test]
    fn the_kind_byte_is_where_is_extension_looks() {
        let ext = Sample::text_ext(TagId(0x00AB_CDEF), &[0xFF; 20]);
        let mut segment = vec![0u8; 64];
        segment[40..64].copy_from_slice(&ext.to_bytes());
        let frame = FrameView {
            first_seq: 0,
            sample_count: 1,
            ts_min_ns: 0,
            ts_max_ns: 0,
            tags_crc: 0,
            frame_bytes: 64,
            samples_offset: 40,
        };
        assert!(is_extension(&segment, &frame, 0));
        segment[40..64].copy_from_slice(&Sample::f64(-1, TagId(0x00FF_FFFF), 0.0).to_bytes());
        assert!(!is_extension(&segment, &frame, 0));
        assert!(!is_extension(&segment, &frame, 1), "past the end");
    }
}
