//! The body of a version 3 frame: the frame's records as *blocks*, so that
//! the samples of one response, which share a time stamp, a quality and a
//! kind and count up through consecutive tag ids, are stored once with
//! their values packed, about 8 bytes a sample instead of 24.
//!
//! ```text
//! struct Block {                  // 8-aligned, back to back to the frame's end
//!     count_form: u32,            // bits 0-23: records (>= 1), 24-31: form
//!     quality: u32,               // run: every member's Quality; records: 0
//!     tag_kind: u32,              // run: the first member's tag and kind; records: 0
//!     reserved: u32,              // 0
//!     ts_ns: i64,                 // run: every member's time; records: 0
//!     // form 1, run:     values: [u64; count], member i is tag first + i
//!     // form 2, records: records: [Sample; count], 24 bytes each, as in version 2
//! }
//! ```
//!
//! The writer takes a run of [`RUN_MIN`] or more records, else records
//! blocks, so a body is never more than one block header longer than the
//! version 2 body of the same records ([`body_bytes_max`]). Text records
//! (a head and its extensions, `sample.rs`) always go in records blocks.
//! Records keep their order, and record `i` of a frame still has seq
//! `first_seq + i`: everything that counts in seqs is unchanged.
//!
//! Reading checks every block against the bytes and the frame's record
//! count before a value is used ([`check`]); [`expand`] gives back the
//! records exactly as they were appended. Nothing here can panic on any
//! input.

#![forbid(unsafe_code)]

use crate::packed::{PackedRun, PACKED_HEAD};
use crate::sample::{Sample, TagId, ValueKind, SAMPLE_SIZE};

pub const BLOCK_HEADER_BYTES: usize = 24;
/// Shortest run stored as a run: at 3 a run block (24 + 3 * 8 bytes) is
/// smaller than the records it replaces plus the records block header a
/// neighbour might need, so no mix of runs and records grows a body.
pub const RUN_MIN: usize = 3;
/// Most records one block holds (24 bits); longer stretches take several.
pub const BLOCK_RECORDS_MAX: usize = (1 << 24) - 1;

const FORM_RUN: u8 = 1;
const FORM_RECORDS: u8 = 2;
const VALUE_BYTES: usize = 8;

/// Why a body's blocks were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The block at `offset` (in the body) runs past the body's end.
    Truncated { offset: usize },
    /// The block at `offset` has a form other than run or records, a zero
    /// count or nonzero reserved bytes.
    Header { offset: usize },
    /// The run at `offset` holds text, or its tag ids would pass 24 bits.
    Run { offset: usize },
    /// The blocks hold `found` records where the frame says `expected`.
    Count { expected: u32, found: u64 },
}

impl std::fmt::Display for BlockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlockError::Truncated { offset } => {
                write!(f, "block at body offset {offset} runs past the frame")
            }
            BlockError::Header { offset } => {
                write!(f, "block at body offset {offset} has a bad header")
            }
            BlockError::Run { offset } => write!(
                f,
                "run at body offset {offset} holds text or passes the last tag id"
            ),
            BlockError::Count { expected, found } => write!(
                f,
                "blocks hold {found} records where the frame says {expected}"
            ),
        }
    }
}

/// The longest body `records` records can take: all in one records block.
pub const fn body_bytes_max(records: usize) -> usize {
    BLOCK_HEADER_BYTES * records.div_ceil(BLOCK_RECORDS_MAX) + SAMPLE_SIZE * records
}

/// A body [`encode`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Encoded {
    /// Bytes at the front of the buffer.
    pub len: usize,
    /// The records the body holds: the ring records given, with every
    /// packed run counted as its members. The frame's record count.
    pub records: usize,
    /// The smallest and largest time stamp of a row, `None` if no row.
    pub ts: Option<(i64, i64)>,
}

/// Writes the blocks of `records` at the front of `out`, growing it to
/// `body_bytes_max` of the most records they can unpack to if it is
/// shorter (the caller keeps it: it grows to the largest frame and is never
/// zero-filled again). The row time stamps are
/// `Sample::ts_ns` of every record but text extensions, which hold text
/// there.
///
/// `records` are ring records: a packed run (`packed.rs`) is stored as the
/// run block of its members, and consecutive packed runs that continue
/// one another (a run longer than one head carries) as one block. The body
/// is never longer than `body_bytes_max` of the records it holds: a packed
/// run of `n >= 3` members saves more than the block header it may cost a
/// neighbour.
pub fn encode(records: &[Sample], out: &mut Vec<u8>) -> Encoded {
    let max = body_bytes_max(records.len() * crate::packed::UNPACKED_PER_RECORD_MAX);
    if out.len() < max {
        out.resize(max, 0);
    }
    let mut w = Writer { out, at: 0 };
    let mut ts: Option<(i64, i64)> = None;
    let mut note_ts = |t: i64| {
        ts = Some(ts.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t))));
    };
    let mut count = records.len();
    // Records not yet written, waiting for a records block.
    let mut loose = 0..0;
    let mut at = 0;
    while let Some(first) = records.get(at) {
        if first.kind_byte() == PACKED_HEAD {
            if let Some((end, members)) = w.packed(records, at, loose.clone()) {
                note_ts(first.ts_ns);
                count = count - (end - at) + members;
                loose = end..end;
                at = end;
                continue;
            }
        }
        let end = run_end(records, at);
        if end - at >= RUN_MIN {
            w.records(records.get(loose.clone()).unwrap_or_default());
            w.run(records.get(at..end).unwrap_or_default());
            note_ts(first.ts_ns);
            loose = end..end;
        } else {
            for r in records.get(at..end).unwrap_or_default() {
                if r.is_row() {
                    note_ts(r.ts_ns);
                }
            }
            loose.end = end;
        }
        at = end;
    }
    w.records(records.get(loose).unwrap_or_default());
    Encoded {
        len: w.at,
        records: count,
        ts,
    }
}

/// End (exclusive) of the run starting at `records[at]`: the same time,
/// quality and kind, tag ids counting up by one, no text, at most
/// `BLOCK_RECORDS_MAX` records. At least `at + 1`.
fn run_end(records: &[Sample], at: usize) -> usize {
    let Some(first) = records.get(at) else {
        return at;
    };
    if !may_run(first) {
        return at + 1;
    }
    let limit = records.len().min(at.saturating_add(BLOCK_RECORDS_MAX));
    let mut previous = first;
    let mut end = at + 1;
    while let Some(next) = records.get(end).filter(|_| end < limit) {
        let continues = next.ts_ns == first.ts_ns
            && next.quality == first.quality
            && next.kind_byte() == first.kind_byte()
            && previous.tag_id().0 < TagId::MAX
            && next.tag_kind == previous.tag_kind + 1;
        if !continues {
            break;
        }
        previous = next;
        end += 1;
    }
    end
}

/// Whether a record may be a run's member: a number or a short text, not a
/// text head or extension (their bytes are not a value).
fn may_run(record: &Sample) -> bool {
    matches!(
        record.kind(),
        Some(ValueKind::F64 | ValueKind::I64 | ValueKind::U64 | ValueKind::Bool | ValueKind::Str8)
    )
}

/// Writes blocks into a buffer of `body_bytes_max` bytes for the records
/// they come from, so no write can fall outside it.
struct Writer<'o> {
    out: &'o mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn header(&mut self, count: usize, form: u8, run: Option<&Sample>) {
        let count_form = count as u32 | u32::from(form) << 24;
        let (quality, tag_kind, ts_ns) =
            run.map_or((0, 0, 0), |s| (s.quality, s.tag_kind, s.ts_ns));
        let mut header = [0u8; BLOCK_HEADER_BYTES];
        header[0..4].copy_from_slice(&count_form.to_le_bytes());
        header[4..8].copy_from_slice(&quality.to_le_bytes());
        header[8..12].copy_from_slice(&tag_kind.to_le_bytes());
        header[16..24].copy_from_slice(&ts_ns.to_le_bytes());
        self.put(&header);
    }

    fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        if let Some(slot) = self.out.get_mut(self.at..end) {
            slot.copy_from_slice(bytes);
        }
        self.at = end;
    }

    fn run(&mut self, run: &[Sample]) {
        self.header(run.len(), FORM_RUN, run.first());
        let end = self.at + run.len() * VALUE_BYTES;
        if let Some(values) = self.out.get_mut(self.at..end) {
            for (slot, member) in values.chunks_exact_mut(VALUE_BYTES).zip(run) {
                slot.copy_from_slice(&member.value.to_le_bytes());
            }
        }
        self.at = end;
    }

    /// If `records[at]` heads a whole packed run: the loose records before
    /// it, then one run block of it and of the packed runs after it that
    /// continue it; returns the end of those and their members.
    fn packed(
        &mut self,
        records: &[Sample],
        at: usize,
        loose: std::ops::Range<usize>,
    ) -> Option<(usize, usize)> {
        let first = PackedRun::at(records.get(at..)?)?;
        let head = first.first();
        self.records(records.get(loose).unwrap_or_default());
        // The values first, each head read once; the header, whose count
        // is known then, goes in front of them.
        let header_at = self.at;
        self.at += BLOCK_HEADER_BYTES;
        let (mut end, mut members) = (at, 0);
        let mut run = Some(first);
        while let Some(r) = run {
            let values_end = self.at + r.members() * VALUE_BYTES;
            if let Some(slots) = self.out.get_mut(self.at..values_end) {
                r.write_values_le(slots);
            }
            self.at = values_end;
            end += r.records();
            members += r.members();
            run = records.get(end..).and_then(PackedRun::at).filter(|next| {
                let n = next.first();
                n.ts_ns == head.ts_ns
                    && n.quality == head.quality
                    && n.kind_byte() == head.kind_byte()
                    && n.tag_id().0 == head.tag_id().0 + members as u32
                    && members + next.members() <= BLOCK_RECORDS_MAX
            });
        }
        let values_end = self.at;
        self.at = header_at;
        self.header(members, FORM_RUN, Some(&head));
        self.at = values_end;
        Some((end, members))
    }

    fn records(&mut self, records: &[Sample]) {
        for chunk in records.chunks(BLOCK_RECORDS_MAX) {
            self.header(chunk.len(), FORM_RECORDS, None);
            let end = self.at + chunk.len() * SAMPLE_SIZE;
            if let Some(slots) = self.out.get_mut(self.at..end) {
                for (slot, record) in slots.chunks_exact_mut(SAMPLE_SIZE).zip(chunk) {
                    slot.copy_from_slice(&record.to_bytes());
                }
            }
            self.at = end;
        }
    }
}

/// One block, checked against the body.
#[derive(Clone, Copy, Debug)]
enum Block<'a> {
    Run { head: Sample, values: &'a [u8] },
    Records { bytes: &'a [u8] },
}

impl Block<'_> {
    fn count(&self) -> usize {
        match self {
            Block::Run { values, .. } => values.len() / VALUE_BYTES,
            Block::Records { bytes } => bytes.len() / SAMPLE_SIZE,
        }
    }
}

/// The blocks of a body, each checked before it is handed out; stops at the
/// first error, which it keeps.
struct Blocks<'a> {
    body: &'a [u8],
    offset: usize,
}

impl<'a> Blocks<'a> {
    fn next_block(&mut self) -> Option<Result<Block<'a>, BlockError>> {
        let offset = self.offset;
        let rest = self.body.get(offset..).filter(|r| !r.is_empty())?;
        let Some(header) = rest.first_chunk::<BLOCK_HEADER_BYTES>() else {
            self.offset = self.body.len();
            return Some(Err(BlockError::Truncated { offset }));
        };
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let count_form = word(0);
        let count = (count_form & 0x00FF_FFFF) as usize;
        let form = (count_form >> 24) as u8;
        let unit = match form {
            FORM_RUN => VALUE_BYTES,
            FORM_RECORDS => SAMPLE_SIZE,
            _ => 0,
        };
        if unit == 0 || count == 0 || word(12) != 0 {
            self.offset = self.body.len();
            return Some(Err(BlockError::Header { offset }));
        }
        let end = BLOCK_HEADER_BYTES + count * unit;
        let Some(payload) = rest.get(BLOCK_HEADER_BYTES..end) else {
            self.offset = self.body.len();
            return Some(Err(BlockError::Truncated { offset }));
        };
        self.offset = offset + end;
        if form == FORM_RECORDS {
            return Some(Ok(Block::Records { bytes: payload }));
        }
        let mut ts = [0u8; 8];
        ts.copy_from_slice(header.get(16..24).unwrap_or(&[0; 8]));
        let head = Sample {
            ts_ns: i64::from_le_bytes(ts),
            value: 0,
            tag_kind: word(8),
            quality: word(4),
        };
        let last_tag = u64::from(head.tag_id().0) + count as u64 - 1;
        if !may_run(&head) || last_tag > u64::from(TagId::MAX) {
            self.offset = self.body.len();
            return Some(Err(BlockError::Run { offset }));
        }
        Some(Ok(Block::Run {
            head,
            values: payload,
        }))
    }
}

/// Checks that `body` is whole blocks holding exactly `count` records.
pub fn check(body: &[u8], count: u32) -> Result<(), BlockError> {
    let mut blocks = Blocks { body, offset: 0 };
    let mut found = 0u64;
    // Each round consumes at least one header's bytes or ends the walk.
    for _ in 0..=body.len() / BLOCK_HEADER_BYTES {
        match blocks.next_block() {
            None => break,
            Some(block) => found += block?.count() as u64,
        }
    }
    if found != u64::from(count) {
        return Err(BlockError::Count {
            expected: count,
            found,
        });
    }
    Ok(())
}

/// Writes the records of `body` into `out`, which must be exactly the
/// frame's record count long (`check` passed): every record of `out` is
/// written. Returns the error of the first bad block, or a count mismatch,
/// in which case `out`'s contents are unspecified.
pub fn expand(body: &[u8], out: &mut [Sample]) -> Result<(), BlockError> {
    let expected = out.len();
    let mut blocks = Blocks { body, offset: 0 };
    let mut at = 0usize;
    for _ in 0..=body.len() / BLOCK_HEADER_BYTES {
        let Some(block) = blocks.next_block() else {
            break;
        };
        let block = block?;
        let Some(slot) = out.get_mut(at..at + block.count()) else {
            return Err(BlockError::Count {
                expected: expected as u32,
                found: (at + block.count()) as u64,
            });
        };
        match block {
            Block::Run { head, values } => {
                for (i, (record, value)) in slot
                    .iter_mut()
                    .zip(values.chunks_exact(VALUE_BYTES))
                    .enumerate()
                {
                    let mut bits = [0u8; VALUE_BYTES];
                    bits.copy_from_slice(value);
                    *record = Sample {
                        value: u64::from_le_bytes(bits),
                        tag_kind: head.tag_kind + i as u32,
                        ..head
                    };
                }
            }
            Block::Records { bytes } => {
                for (record, raw) in slot.iter_mut().zip(bytes.chunks_exact(SAMPLE_SIZE)) {
                    let mut one = [0u8; SAMPLE_SIZE];
                    one.copy_from_slice(raw);
                    *record = Sample::from_bytes(&one);
                }
            }
        }
        at += slot.len();
    }
    if at != expected {
        return Err(BlockError::Count {
            expected: expected as u32,
            found: at as u64,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{text_records, write_text, Quality, RunTail};

    fn run(ts: i64, first: u32, n: u32, quality: Quality) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                Sample::new(
                    ts,
                    TagId(first + i),
                    quality,
                    ValueKind::U64,
                    u64::from(i) * 7,
                )
            })
            .collect()
    }

    fn round_trip(records: &[Sample]) -> Vec<u8> {
        let mut body = vec![0xEE; 7]; // a buffer kept from a longer frame
        let len = encode(records, &mut body).len;
        body.truncate(len);
        assert_eq!(body.len() % 8, 0);
        assert!(body.len() <= body_bytes_max(records.len()));
        check(&body, records.len() as u32).unwrap();
        let mut back = vec![Sample::default(); records.len()];
        expand(&body, &mut back).unwrap();
        assert_eq!(back, records);
        body
    }

    #[test]
    fn a_response_of_100_values_takes_about_8_bytes_a_sample() {
        let records = run(5, 1000, 100, Quality::GOOD);
        let body = round_trip(&records);
        assert_eq!(body.len(), BLOCK_HEADER_BYTES + 100 * 8);
    }

    /// Ring records with packed runs (packed.rs) give the body their
    /// members would: the same records back, counted one by one, and no
    /// longer than `body_bytes_max` of the ring records.
    #[test]
    fn packed_runs_store_their_members() {
        use crate::packed::{fill_run_packed, unpack_into, PACKED_MEMBERS_MAX};
        let u16_of = |b: [u8; 2]| u64::from(u16::from_be_bytes(b));
        for n in [5, 6, 7, 104, 108, 125, 3 * PACKED_MEMBERS_MAX + 1] {
            for (before, after) in [(0, 0), (1, 2), (4, 0)] {
                let mut ring = run(3, 1, before, Quality::GOOD);
                let values: Vec<u8> = (0..2 * n).map(|i| (i * 7) as u8).collect();
                let tail = RunTail::new(TagId(500), Quality::STALE, ValueKind::U64);
                let mut slot = vec![Sample::default(); n];
                let (records, _) = fill_run_packed(&values, tail, 9, &mut slot, u16_of);
                ring.extend_from_slice(&slot[..records]);
                ring.extend(run(4, 9000, after, Quality::GOOD));
                let mut members = Vec::new();
                unpack_into(&ring, &mut members);
                let mut body = Vec::new();
                let encoded = encode(&ring, &mut body);
                assert_eq!(encoded.records, members.len(), "{n}");
                assert!(encoded.len <= body_bytes_max(members.len()), "{n}");
                let ts = members.iter().map(|s| s.ts_ns);
                assert_eq!(encoded.ts, ts.clone().min().zip(ts.max()), "{n}");
                check(&body[..encoded.len], members.len() as u32).unwrap();
                let mut back = vec![Sample::default(); members.len()];
                expand(&body[..encoded.len], &mut back).unwrap();
                assert_eq!(back, members, "{n} members, {before} before, {after} after");
            }
        }
    }

    #[test]
    fn mixed_records_round_trip_and_never_grow_past_one_header() {
        let mut records = run(1, 10, 5, Quality::GOOD);
        records.extend(run(1, 15, 2, Quality::GOOD)); // continues the run above
        records.extend(run(2, 17, 2, Quality::GOOD)); // a new time: 2 loose
        records.extend(run(2, 30, 4, Quality::TIMEOUT));
        let mut text = vec![Sample::default(); text_records(60)];
        write_text(&mut text, 3, TagId(40), Quality::GOOD, &[b'x'; 60], 60);
        records.extend(text);
        records.push(Sample::f64(4, TagId(41), 1.5));
        records.extend(run(5, TagId::MAX - 1, 2, Quality::GOOD));
        let body = round_trip(&records);
        assert!(body.len() <= records.len() * SAMPLE_SIZE + BLOCK_HEADER_BYTES);
    }

    #[test]
    fn alternating_short_runs_never_cost_more_than_records() {
        for pattern in [[2usize, 1], [3, 1], [1, 1], [2, 2]] {
            let mut records = Vec::new();
            let mut tag = 0;
            for round in 0..20 {
                let n = pattern[round % 2];
                records.extend(run(round as i64, tag, n as u32, Quality::GOOD));
                tag += n as u32 + 1;
            }
            let body = round_trip(&records);
            assert!(
                body.len() <= records.len() * SAMPLE_SIZE + BLOCK_HEADER_BYTES,
                "{pattern:?}: {} bytes for {} records",
                body.len(),
                records.len()
            );
        }
    }

    #[test]
    fn the_time_range_skips_text_extensions() {
        let mut records = vec![Sample::default(); text_records(100)];
        write_text(&mut records, 50, TagId(1), Quality::GOOD, &[0xFF; 100], 100);
        records.extend(run(40, 9, 4, Quality::GOOD));
        let mut body = Vec::new();
        assert_eq!(encode(&records, &mut body).ts, Some((40, 50)));
        let nothing = Encoded {
            len: 0,
            records: 0,
            ts: None,
        };
        assert_eq!(encode(&[], &mut Vec::new()), nothing);
    }

    #[test]
    fn damaged_bodies_are_refused_never_misread() {
        let records = run(1, 0, 10, Quality::GOOD);
        let body = round_trip(&records);
        let mut out = vec![Sample::default(); 10];
        assert_eq!(
            check(&body, 11),
            Err(BlockError::Count {
                expected: 11,
                found: 10
            })
        );
        assert!(check(&body[..body.len() - 8], 10).is_err());
        assert!(expand(&body[..body.len() - 8], &mut out).is_err());
        assert!(expand(&body, &mut out[..9]).is_err());
        let mut bad_form = body.clone();
        bad_form[3] = 9;
        assert_eq!(check(&bad_form, 10), Err(BlockError::Header { offset: 0 }));
        let mut past_max = body.clone();
        past_max[8..12].copy_from_slice(&(TagId::MAX - 3).to_le_bytes());
        assert_eq!(check(&past_max, 10), Err(BlockError::Run { offset: 0 }));
        let mut text_run = body.clone();
        text_run[11] = ValueKind::Text as u8;
        assert_eq!(check(&text_run, 10), Err(BlockError::Run { offset: 0 }));
        let mut zero = body;
        zero[0..4].copy_from_slice(&0u32.to_le_bytes());
        assert!(check(&zero, 10).is_err());
    }

    #[test]
    fn every_prefix_and_flipped_byte_is_checked_without_panic() {
        let mut records = run(1, 0, 6, Quality::GOOD);
        records.push(Sample::f64(2, TagId(100), 0.5));
        let body = round_trip(&records);
        let mut out = vec![Sample::default(); records.len()];
        for len in 0..body.len() {
            let _ = check(&body[..len], records.len() as u32);
            let _ = expand(&body[..len], &mut out);
        }
        for at in 0..body.len() {
            let mut b = body.clone();
            b[at] ^= 0xA5;
            if check(&b, records.len() as u32).is_ok() {
                expand(&b, &mut out).unwrap();
            }
        }
    }
}
