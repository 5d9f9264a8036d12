//! Walking the frames of one segment's bytes, with every check on. Used by
//! recovery (which then decides what to cut or set aside) and by `wal
//! inspect` (which only reports). Pure: bytes in, a summary out.

#![forbid(unsafe_code)]

use super::format::{parse_frame, Body, FrameError, SegmentHeader, SEGMENT_HEADER_BYTES};

/// How the walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStop {
    /// A zero length (the preallocated zeros) or the end of the segment.
    Clean,
    /// A frame failed a check at `offset`.
    Bad { offset: usize, reason: FrameError },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentScan {
    pub frames: u64,
    pub first_seq: u64,
    /// One past the last sample of the last valid frame.
    pub end_seq: u64,
    /// Offset just past the last valid frame.
    pub valid_end: usize,
    pub ts_min_ns: Option<i64>,
    pub ts_max_ns: Option<i64>,
    pub stop: ScanStop,
}

/// Walks the frames of `segment` from just after its header, expecting the
/// first one to start at `first_seq`. At most one frame per 64 bytes can
/// exist, so the loop is bounded by the segment's length.
pub fn scan_segment(segment: &[u8], first_seq: u64) -> SegmentScan {
    let mut scan = SegmentScan {
        frames: 0,
        first_seq,
        end_seq: first_seq,
        valid_end: SEGMENT_HEADER_BYTES,
        ts_min_ns: None,
        ts_max_ns: None,
        stop: ScanStop::Clean,
    };
    let frames_max = segment.len() / 64 + 1;
    for _ in 0..frames_max {
        match parse_frame(
            Body::of_segment(segment),
            segment,
            scan.valid_end,
            scan.end_seq,
            true,
        ) {
            Ok(None) => return scan,
            Ok(Some(frame)) => {
                scan.frames += 1;
                scan.end_seq = frame.end_seq();
                scan.valid_end += frame.frame_bytes;
                scan.ts_min_ns = Some(
                    scan.ts_min_ns
                        .map_or(frame.ts_min_ns, |t| t.min(frame.ts_min_ns)),
                );
                scan.ts_max_ns = Some(
                    scan.ts_max_ns
                        .map_or(frame.ts_max_ns, |t| t.max(frame.ts_max_ns)),
                );
            }
            Err(reason) => {
                scan.stop = ScanStop::Bad {
                    offset: scan.valid_end,
                    reason,
                };
                return scan;
            }
        }
    }
    scan
}

/// What lies past the valid frames: the offset one past the last non-zero
/// byte, and how many frame headers can be walked by their lengths from the
/// cut point (counted whether their CRC holds or not; at least one when
/// anything non-zero is there).
pub fn describe_tail(segment: &[u8], valid_end: usize) -> (usize, u64) {
    let tail = segment.get(valid_end..).unwrap_or_default();
    let last_nonzero = match tail.iter().rposition(|&b| b != 0) {
        Some(i) => valid_end + i + 1,
        None => return (valid_end, 0),
    };
    let mut frames = 0u64;
    let mut at = valid_end;
    for _ in 0..segment.len() / 64 + 1 {
        let len = segment
            .get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(|b: [u8; 4]| u32::from_le_bytes(b) as usize)
            .unwrap_or(0);
        // 64 = the smallest frame (overhead + one sample).
        if len < 64 || len % 8 != 0 || at + len > segment.len() {
            break;
        }
        frames += 1;
        at += len;
    }
    (last_nonzero, frames.max(1))
}

/// The summary of a whole segment file's bytes, for fuzzing and tests: the
/// header check and a frame walk, never a panic on any input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameCheck {
    pub header_ok: bool,
    pub scan: Option<SegmentScan>,
    pub tail_end: usize,
    pub tail_frames: u64,
}

pub fn check_frames(bytes: &[u8]) -> FrameCheck {
    let Ok(header) = SegmentHeader::decode(bytes) else {
        return FrameCheck {
            header_ok: false,
            scan: None,
            tail_end: 0,
            tail_frames: 0,
        };
    };
    let scan = scan_segment(bytes, header.first_seq);
    assert!(scan.valid_end <= bytes.len() && scan.end_seq >= scan.first_seq);
    let (tail_end, tail_frames) = describe_tail(bytes, scan.valid_end);
    assert!(tail_end >= scan.valid_end && tail_end <= bytes.len());
    FrameCheck {
        header_ok: true,
        scan: Some(scan),
        tail_end,
        tail_frames,
    }
}

/// Fuzz entry point (target `wal_frames`, replayed by tests/wal_fuzz_corpus.rs).
/// The first input byte says how much of the rest is repaired before the
/// walk, so the fuzzer also gets past the checksums: 0 as is, 1 with a valid
/// segment header, 2 with the header and every walkable frame's CRC fixed.
pub fn fuzz_segment(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut seg = rest.to_vec();
    if mode % 3 >= 1 {
        if let Some(head) = seg.get_mut(..SEGMENT_HEADER_BYTES) {
            let first_seq = super::format::u64_at(head, 16);
            let segment_bytes = rest.len() as u64;
            head.copy_from_slice(
                &SegmentHeader {
                    first_seq,
                    segment_bytes,
                }
                .encode(),
            );
        }
    }
    if mode % 3 == 2 {
        fix_frame_crcs(&mut seg);
    }
    let check = check_frames(&seg);
    let Some(scan) = check.scan else { return };
    // Every frame the walk counted parses again, back to back, in sequence.
    // A version 3 frame's records come out whole: blocks that passed the
    // check expand to exactly the frame's count. (A version 2 body is
    // viewed in place, which needs an 8-aligned buffer this copy may not be.)
    let (mut at, mut seq) = (SEGMENT_HEADER_BYTES, scan.first_seq);
    let mut expanded = Vec::new();
    for _ in 0..scan.frames {
        let frame = parse_frame(Body::of_segment(&seg), &seg, at, seq, true)
            .ok()
            .flatten()
            .expect("a counted frame");
        if frame.body == Body::Blocks {
            let records = super::format::frame_records(&seg, &frame, &mut expanded);
            let count = records.map(|r| r.len()).expect("a counted frame's records");
            assert_eq!(count, frame.sample_count as usize);
        }
        at += frame.frame_bytes;
        seq = frame.end_seq();
    }
    assert_eq!((at, seq), (scan.valid_end, scan.end_seq));
    if mode % 3 == 2 {
        let crc_failed = matches!(
            scan.stop,
            ScanStop::Bad {
                reason: FrameError::Crc,
                ..
            }
        );
        assert!(!crc_failed, "repaired CRCs still failed: {scan:?}");
    }
}

fn fix_frame_crcs(seg: &mut [u8]) {
    let Ok(header) = SegmentHeader::decode(seg) else {
        return;
    };
    let (mut at, mut seq) = (SEGMENT_HEADER_BYTES, header.first_seq);
    for _ in 0..seg.len() / 64 + 1 {
        let Ok(Some(frame)) = parse_frame(Body::of_segment(seg), seg, at, seq, false) else {
            return;
        };
        let end = at + frame.frame_bytes;
        let (Some(len), Some(body)) = (seg.get(at..at + 4), seg.get(at + 8..end)) else {
            return;
        };
        let crc = crc32c::crc32c_append(crc32c::crc32c(len), body);
        if let Some(slot) = seg.get_mut(at + 4..at + 8) {
            slot.copy_from_slice(&crc.to_le_bytes());
        }
        at = end;
        seq = frame.end_seq();
    }
}
