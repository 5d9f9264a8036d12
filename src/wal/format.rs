//! Byte layout of segment headers and frames (drawn in `mod.rs`), encoding,
//! and the checked parse of one frame. No I/O here: bytes in, views out.
//! Every length read from disk is checked against the bytes that exist
//! before it is used; nothing in this file can panic on any input.

#![forbid(unsafe_code)]

use super::compact::{self, BlockError, BLOCK_HEADER_BYTES};
use super::segment::samples_from_bytes;
use crate::sample::{Sample, TextError, SAMPLE_SIZE};

pub const SEGMENT_MAGIC: [u8; 8] = *b"MLRCWAL\0";
/// The version new segments get. 3: frame bodies are blocks, runs of
/// samples stored once with their values packed (`compact.rs`). 2: bodies
/// are the 24-byte records themselves (32-bit quality, tag id and kind
/// sharing a word, text records: `sample.rs`); still read, and appended to
/// when recovery hands a version 2 segment back to the writer. 1: one-byte
/// quality and kind, 32-bit tag id; refused.
pub const FORMAT_VERSION: u16 = 3;
/// The oldest version this millrace reads.
pub const FORMAT_VERSION_MIN: u16 = 2;
pub const SEGMENT_HEADER_BYTES: usize = 48;
/// Frame header (16) + batch header (24) in front of the samples.
pub const FRAME_OVERHEAD_BYTES: usize = 40;
const FRAME_HEADER_BYTES: usize = 16;
/// Smallest segment: one page. Largest: 1 GiB, so a frame length fits a u32
/// with room to spare and one mapping stays a modest share of address space.
pub const SEGMENT_BYTES_MIN: u64 = 4096;
pub const SEGMENT_BYTES_MAX: u64 = 1 << 30;

const _: () = assert!(SEGMENT_HEADER_BYTES % 8 == 0);
const _: () = assert!(FRAME_OVERHEAD_BYTES % 8 == 0);
const _: () = assert!(SAMPLE_SIZE % 8 == 0);
const _: () = assert!(SEGMENT_BYTES_MAX <= u32::MAX as u64);
const _: () = assert!(FRAME_HEADER_BYTES + 24 == FRAME_OVERHEAD_BYTES);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SegmentHeader {
    pub first_seq: u64,
    pub segment_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    TooShort,
    Magic,
    Version(u16),
    HeaderBytes(u16),
    Crc,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::TooShort => f.write_str("shorter than a segment header"),
            HeaderError::Magic => f.write_str("no millrace WAL magic"),
            HeaderError::Version(v) => write!(
                f,
                "format version {v}, this millrace reads versions \
                 {FORMAT_VERSION_MIN} to {FORMAT_VERSION}"
            ),
            HeaderError::HeaderBytes(n) => {
                write!(f, "header size {n} is not {SEGMENT_HEADER_BYTES}")
            }
            HeaderError::Crc => f.write_str("header CRC32C mismatch"),
        }
    }
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_BYTES] {
        let mut out = [0u8; SEGMENT_HEADER_BYTES];
        out[0..8].copy_from_slice(&SEGMENT_MAGIC);
        out[8..10].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out[10..12].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
        out[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        out[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..44]);
        out[44..48].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// Checks in a fixed order: length, magic, version, header size, CRC.
    pub fn decode(bytes: &[u8]) -> Result<SegmentHeader, HeaderError> {
        let h = bytes
            .get(..SEGMENT_HEADER_BYTES)
            .ok_or(HeaderError::TooShort)?;
        if h.get(0..8) != Some(&SEGMENT_MAGIC[..]) {
            return Err(HeaderError::Magic);
        }
        let version = u16_at(h, 8);
        if !(FORMAT_VERSION_MIN..=FORMAT_VERSION).contains(&version) {
            return Err(HeaderError::Version(version));
        }
        let header_bytes = u16_at(h, 10);
        if header_bytes as usize != SEGMENT_HEADER_BYTES {
            return Err(HeaderError::HeaderBytes(header_bytes));
        }
        if crc32c::crc32c(h.get(0..44).unwrap_or_default()) != u32_at(h, 44) {
            return Err(HeaderError::Crc);
        }
        Ok(SegmentHeader {
            first_seq: u64_at(h, 16),
            segment_bytes: u64_at(h, 24),
        })
    }
}

/// Why a frame was not accepted, in the order the checks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The frame header runs past the end of the segment.
    HeaderTruncated,
    /// frame_bytes is not 8-aligned, too small, or runs past the segment.
    Length(u32),
    /// sample_count is zero or disagrees with frame_bytes.
    Count(u32),
    /// The sequence number is not the one that must come next.
    Seq { expected: u64, found: u64 },
    /// The CRC32C does not match the bytes.
    Crc,
    /// The CRC holds but the blocks of a version 3 body do not hold
    /// together, or hold another number of records than the header says.
    Blocks(BlockError),
    /// The CRC holds but the samples do not: a text head without its
    /// extension records, or an extension without its head. The writer
    /// never cuts a text sample (see pipeline/wal_writer.rs); found by the
    /// reader that walks the samples (the kdb+ encoder).
    Records(TextError),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::HeaderTruncated => write!(f, "frame header truncated"),
            FrameError::Length(n) => write!(f, "bad frame length {n}"),
            FrameError::Count(n) => write!(f, "bad sample count {n}"),
            FrameError::Seq { expected, found } => {
                write!(f, "sequence {found} where {expected} was due")
            }
            FrameError::Crc => write!(f, "CRC32C mismatch"),
            FrameError::Blocks(e) => write!(f, "blocks do not hold together: {e}"),
            FrameError::Records(e) => write!(f, "samples do not hold together: {e}"),
        }
    }
}

/// How a segment's frame bodies hold their records (by its version).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Version 2: the records themselves, 24 bytes each.
    Records,
    /// Version 3: blocks (`compact.rs`).
    Blocks,
}

impl Body {
    /// The body form of the segment whose bytes start with `segment`'s
    /// header (checked when the segment was opened or recovered).
    pub fn of_segment(segment: &[u8]) -> Body {
        if u16_at(segment, 8) == FORMAT_VERSION_MIN {
            Body::Records
        } else {
            Body::Blocks
        }
    }
}

/// A validated frame inside a segment's bytes.
#[derive(Clone, Copy, Debug)]
pub struct FrameView {
    pub first_seq: u64,
    pub sample_count: u32,
    pub ts_min_ns: i64,
    pub ts_max_ns: i64,
    /// CRC32C of the tag table the samples were polled under (0: written
    /// outside a pipeline, no table; see tag_history.rs).
    pub tags_crc: u32,
    /// The whole frame's length in bytes.
    pub frame_bytes: usize,
    /// Where the body starts, as an offset into the segment.
    pub samples_offset: usize,
    pub body: Body,
}

impl FrameView {
    pub fn end_seq(&self) -> u64 {
        self.first_seq + u64::from(self.sample_count)
    }

    /// The body's bytes in `segment`.
    pub fn body<'s>(&self, segment: &'s [u8]) -> Option<&'s [u8]> {
        let end = self.samples_offset + self.frame_bytes - FRAME_OVERHEAD_BYTES;
        segment.get(self.samples_offset..end)
    }
}

/// The records of `frame` in `segment`: in place for a version 2 body, else
/// expanded into the front of `scratch` (grown to the record count if it is
/// shorter, and kept for the next frame).
pub fn frame_records<'a>(
    segment: &'a [u8],
    frame: &FrameView,
    scratch: &'a mut Vec<Sample>,
) -> Result<&'a [Sample], FrameError> {
    let length = FrameError::Length(frame.frame_bytes as u32);
    let bytes = frame.body(segment).ok_or(length)?;
    match frame.body {
        Body::Records => records_in_place(segment, frame).ok_or(length),
        Body::Blocks => {
            let count = frame.sample_count as usize;
            // Grown, never shrunk: filled with defaults only when it grows.
            if scratch.len() < count {
                scratch.resize(count, Sample::default());
            }
            let records = scratch.get_mut(..count).ok_or(length)?;
            compact::expand(bytes, records).map_err(FrameError::Blocks)?;
            Ok(records)
        }
    }
}

/// The records of a version 2 `frame`, in place; `None` for a version 3
/// frame (its records need expanding: `frame_records`).
pub fn records_in_place<'a>(segment: &'a [u8], frame: &FrameView) -> Option<&'a [Sample]> {
    match frame.body {
        Body::Records => samples_from_bytes(frame.body(segment)?),
        Body::Blocks => None,
    }
}

/// Bytes a version 2 frame of `count` samples occupies.
pub const fn frame_bytes(count: usize) -> usize {
    FRAME_OVERHEAD_BYTES + count * SAMPLE_SIZE
}

/// Parses the frame at `offset` of `segment`, whose bodies are `body`.
/// `Ok(None)` means no frame starts there: the length is zero (the
/// preallocated zeros) or fewer than 4 bytes are left. With `verify_crc`
/// false only the header's structure is checked (for seeks over frames
/// that were checked when they were recovered or written); with it, a
/// version 3 body's blocks are walked too, after the CRC (one header per
/// block), so damage reads as a CRC failure first.
pub fn parse_frame(
    body: Body,
    segment: &[u8],
    offset: usize,
    expected_seq: u64,
    verify_crc: bool,
) -> Result<Option<FrameView>, FrameError> {
    let rest = match segment.get(offset..) {
        Some(rest) if rest.len() >= 4 => rest,
        _ => return Ok(None),
    };
    let len = u32_at(rest, 0);
    if len == 0 {
        return Ok(None);
    }
    let header = rest
        .get(..FRAME_OVERHEAD_BYTES)
        .ok_or(FrameError::HeaderTruncated)?;
    let len_usize = len as usize;
    // The smallest body: one record, or one block of one value.
    let body_min = match body {
        Body::Records => SAMPLE_SIZE,
        Body::Blocks => BLOCK_HEADER_BYTES + 8,
    };
    if len_usize % 8 != 0 || len_usize < FRAME_OVERHEAD_BYTES + body_min || len_usize > rest.len() {
        return Err(FrameError::Length(len));
    }
    let count = u32_at(header, 16);
    let first_seq = u64_at(header, 8);
    // The writer never numbers a sample past u64::MAX: a frame whose samples
    // would is damage, and `end_seq` must not wrap (nor panic in debug).
    let ends_in_range = first_seq.checked_add(u64::from(count)).is_some();
    let fits = match body {
        Body::Records => frame_bytes(count as usize) == len_usize,
        // Every record takes at least a packed value's 8 bytes.
        Body::Blocks => (count as usize) <= (len_usize - FRAME_OVERHEAD_BYTES) / 8,
    };
    if count == 0 || !fits || !ends_in_range {
        return Err(FrameError::Count(count));
    }
    if first_seq != expected_seq {
        return Err(FrameError::Seq {
            expected: expected_seq,
            found: first_seq,
        });
    }
    if verify_crc {
        let body = rest.get(8..len_usize).ok_or(FrameError::Length(len))?;
        let crc = crc32c::crc32c_append(crc32c::crc32c(rest.get(0..4).unwrap_or_default()), body);
        if crc != u32_at(header, 4) {
            return Err(FrameError::Crc);
        }
    }
    if verify_crc && body == Body::Blocks {
        let bytes = rest
            .get(FRAME_OVERHEAD_BYTES..len_usize)
            .ok_or(FrameError::Length(len))?;
        compact::check(bytes, count).map_err(FrameError::Blocks)?;
    }
    Ok(Some(FrameView {
        first_seq,
        sample_count: count,
        ts_min_ns: u64_at(header, 24) as i64,
        ts_max_ns: u64_at(header, 32) as i64,
        tags_crc: u32_at(header, 20),
        frame_bytes: len_usize,
        samples_offset: offset + FRAME_OVERHEAD_BYTES,
        body,
    }))
}

/// The 40 header bytes of a frame of `count` records over `body_bytes`
/// (the records themselves, or their blocks), CRC included.
pub fn encode_frame_header(
    first_seq: u64,
    count: u32,
    body_bytes: &[u8],
    ts_min_ns: i64,
    ts_max_ns: i64,
    tags_crc: u32,
) -> [u8; FRAME_OVERHEAD_BYTES] {
    debug_assert!(body_bytes.len() % 8 == 0 && !body_bytes.is_empty() && count > 0);
    let len = (FRAME_OVERHEAD_BYTES + body_bytes.len()) as u32;
    let mut h = [0u8; FRAME_OVERHEAD_BYTES];
    h[0..4].copy_from_slice(&len.to_le_bytes());
    h[8..16].copy_from_slice(&first_seq.to_le_bytes());
    h[16..20].copy_from_slice(&count.to_le_bytes());
    h[20..24].copy_from_slice(&tags_crc.to_le_bytes());
    h[24..32].copy_from_slice(&ts_min_ns.to_le_bytes());
    h[32..40].copy_from_slice(&ts_max_ns.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[0..4]), &h[8..]);
    let crc = crc32c::crc32c_append(crc, body_bytes);
    h[4..8].copy_from_slice(&crc.to_le_bytes());
    h
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_each_check() {
        let h = SegmentHeader {
            first_seq: 77,
            segment_bytes: 8192,
        };
        let mut b = h.encode();
        assert_eq!(SegmentHeader::decode(&b), Ok(h));
        assert_eq!(SegmentHeader::decode(&b[..47]), Err(HeaderError::TooShort));
        b[20] ^= 1;
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Crc));
        b[0] = b'X';
        assert_eq!(SegmentHeader::decode(&b), Err(HeaderError::Magic));
    }

    #[test]
    fn frame_round_trip_and_rejections() {
        let samples = [7u8; 48];
        let mut seg = vec![0u8; 256];
        let h = encode_frame_header(10, 2, &samples, -1, 5, 0xC0FF_EE00);
        seg[8..48].copy_from_slice(&h);
        seg[48..96].copy_from_slice(&samples);
        let v = parse_frame(Body::Records, &seg, 8, 10, true)
            .unwrap()
            .unwrap();
        assert_eq!((v.first_seq, v.sample_count, v.end_seq()), (10, 2, 12));
        assert_eq!(
            (v.ts_min_ns, v.ts_max_ns, v.frame_bytes, v.samples_offset),
            (-1, 5, 88, 48)
        );
        assert_eq!(
            parse_frame(Body::Records, &seg, 8, 11, true).unwrap_err(),
            FrameError::Seq {
                expected: 11,
                found: 10
            }
        );
        assert!(parse_frame(Body::Records, &seg, 96, 12, true)
            .unwrap()
            .is_none());
        let mut bad = seg.clone();
        bad[60] ^= 0x10;
        assert_eq!(
            parse_frame(Body::Records, &bad, 8, 10, true).unwrap_err(),
            FrameError::Crc
        );
        assert!(parse_frame(Body::Records, &bad, 8, 10, false).is_ok());
        assert_eq!(
            parse_frame(Body::Records, &seg[..90], 8, 10, true).unwrap_err(),
            FrameError::Length(88)
        );
        assert_eq!(
            parse_frame(Body::Records, &seg[..20], 8, 10, true).unwrap_err(),
            FrameError::HeaderTruncated
        );
        let mut huge = seg.clone();
        huge[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            parse_frame(Body::Records, &huge, 8, 10, true),
            Err(FrameError::Length(_))
        ));
    }

    #[test]
    fn frame_whose_samples_pass_the_last_seq_is_refused() {
        let samples = [7u8; 48];
        let mut seg = vec![0u8; 96];
        for (first, ok) in [
            (u64::MAX - 2, true),
            (u64::MAX - 1, false),
            (u64::MAX, false),
        ] {
            seg[..40].copy_from_slice(&encode_frame_header(first, 2, &samples, 0, 0, 0));
            seg[40..88].copy_from_slice(&samples);
            let parsed = parse_frame(Body::Records, &seg, 0, first, true);
            if ok {
                assert_eq!(parsed.unwrap().unwrap().end_seq(), u64::MAX);
            } else {
                assert_eq!(parsed.unwrap_err(), FrameError::Count(2), "first {first}");
            }
        }
    }
}
