//! Read-only walk over a WAL directory's frames, for `millrace replay`: no
//! lock taken, nothing written, so it works beside a running writer. Every
//! frame's CRC is checked; a frame that fails in the newest segment is the
//! tail (being written now, or torn by a crash: recovery cuts it) and ends
//! the walk quietly, while one that fails in a sealed segment is corruption
//! and is reported. Frames are handed out from read-only mappings (in place
//! for version 2 segments, expanded from their blocks for version 3),
//! clipped to the requested seq range.

#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use super::error::WalError;
use super::format::{
    frame_records, parse_frame, Body, HeaderError, SegmentHeader, FORMAT_VERSION,
    SEGMENT_HEADER_BYTES,
};
use super::recovery::segment_seq;
use super::segment::Segment;
use crate::sample::Sample;

/// How a walk ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Walked {
    pub frames: u64,
    pub samples: u64,
    /// One past the last seq found on disk.
    pub end_seq: u64,
    /// A frame in a sealed segment that failed its checks, and where: the
    /// walk stopped there.
    pub stopped_at: Option<String>,
    /// The newest segment ended in a frame that failed its checks (a tail
    /// being written, or torn): not an error, said for the record.
    pub partial_tail: Option<String>,
}

/// Calls `f(first_seq, samples, tags_crc)` for every frame overlapping `from..to`, in
/// seq order, with the samples clipped to that range. `f` returns `false`
/// to stop early.
pub fn for_each_frame<F>(dir: &Path, from: u64, to: u64, mut f: F) -> Result<Walked, WalError>
where
    F: FnMut(u64, &[Sample], u32) -> bool,
{
    let mut segments: Vec<(u64, String)> = fs::read_dir(dir)
        .map_err(|e| WalError::io("read dir", dir, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|name| Some((segment_seq(&name)?, name)))
        .collect();
    segments.sort();
    let mut walked = Walked::default();
    let mut expanded = Vec::new();
    for (index, (first_seq, name)) in segments.iter().enumerate() {
        let next_first = segments.get(index + 1).map(|s| s.0);
        if next_first.is_some_and(|n| n <= from) || *first_seq >= to {
            continue;
        }
        let path = dir.join(name);
        let seg =
            Segment::open(&path, *first_seq, false).map_err(|e| WalError::io("open", &path, e))?;
        let bytes = seg.published();
        match SegmentHeader::decode(bytes) {
            Ok(h) if h.first_seq == *first_seq => {}
            Ok(_) => {
                walked.stopped_at = Some(format!("{name}: bad segment header"));
                return Ok(walked);
            }
            Err(HeaderError::Version(found)) => {
                return Err(WalError::FormatVersion {
                    path,
                    found,
                    supported: FORMAT_VERSION,
                })
            }
            Err(e) => {
                walked.stopped_at = Some(format!("{name}: bad segment header: {e}"));
                return Ok(walked);
            }
        }
        let mut offset = SEGMENT_HEADER_BYTES;
        let mut seq = *first_seq;
        let body = Body::of_segment(bytes);
        // At most one frame per 64 bytes: the loop is bounded by the file.
        for _ in 0..bytes.len() / 64 + 1 {
            let frame = match parse_frame(body, bytes, offset, seq, true) {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => {
                    let place = format!("{name} offset {offset}: {e}");
                    if next_first.is_some() {
                        walked.stopped_at = Some(place);
                    } else {
                        walked.partial_tail = Some(place);
                    }
                    return Ok(walked);
                }
            };
            offset += frame.frame_bytes;
            seq = frame.end_seq();
            walked.end_seq = seq;
            let samples = match frame_records(bytes, &frame, &mut expanded) {
                Ok(samples) => samples,
                Err(e) => {
                    walked.stopped_at = Some(format!("{name} offset {offset}: {e}"));
                    return Ok(walked);
                }
            };
            let lo = from.max(frame.first_seq);
            let hi = to.min(frame.end_seq());
            if lo >= hi {
                continue;
            }
            let (start, end) = whole_rows(
                samples,
                (lo - frame.first_seq) as usize,
                (hi - frame.first_seq) as usize,
            );
            let Some(clipped) = samples.get(start..end).filter(|c| !c.is_empty()) else {
                continue;
            };
            walked.frames += 1;
            walked.samples += clipped.len() as u64;
            if !f(frame.first_seq + start as u64, clipped, frame.tags_crc) {
                return Ok(walked);
            }
        }
    }
    Ok(walked)
}

/// `start..end` of a frame's records moved to whole samples: a text sample
/// belongs to the range its head's seq is in, so extensions at `start` (of
/// a head before it) are left out and those at `end` (of a head inside) are
/// taken in. A frame holds whole samples, so both stay in the frame.
fn whole_rows(samples: &[Sample], mut start: usize, mut end: usize) -> (usize, usize) {
    let is_ext = |i: usize| samples.get(i).is_some_and(|s| !s.is_row());
    while start < end && is_ext(start) {
        start += 1;
    }
    while start < end && is_ext(end) {
        end += 1;
    }
    (start, end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{text_records, write_text, TagId};
    use crate::Quality;

    #[test]
    fn ranges_take_text_samples_by_their_head() {
        // [0 number][1 head][2 ext][3 ext][4 number]
        let mut samples = vec![Sample::f64(0, TagId(0), 0.0)];
        let mut text = vec![Sample::default(); text_records(40)];
        write_text(&mut text, 0, TagId(1), Quality::GOOD, b"t", 40);
        samples.extend(text);
        samples.push(Sample::f64(0, TagId(2), 0.0));
        for ((start, end), whole) in [
            ((0, 5), (0, 5)),
            ((0, 2), (0, 4)),
            ((1, 2), (1, 4)),
            ((2, 5), (4, 5)),
            ((3, 4), (4, 4)),
            ((0, 1), (0, 1)),
            ((2, 3), (3, 3)),
        ] {
            assert_eq!(whole_rows(&samples, start, end), whole, "{start}..{end}");
        }
    }
}
