//! Packed runs: how a decoder hands the WAL writer a run of same-typed
//! values through the ring in a third of the records and stores.
//!
//! A response's values share a time, a quality and a kind, and count up
//! through consecutive tag ids. Written as samples, each costs a 24-byte
//! record: three 8-byte stores, the bound of a decode loop. Packed, the run
//! is one *head* record and then one *values* record per three members,
//! one 8-byte store a member:
//!
//! ```text
//! head:   ts_ns = the members' time
//!         value = members (bits 0-23) | member kind (24-31)
//!                 | values records that follow (32-63)
//!         tag_kind = first member's tag (bits 0-23) | PACKED_HEAD (24-31)
//!         quality = the members' quality
//! values: the record's three 8-byte words (ts_ns, value, then tag_kind
//!         and quality as one little-endian word) are members 3i, 3i+1
//!         and 3i+2's value bits (0 past the last)
//! ```
//!
//! The head keeps the count of records after it where a text head does
//! (bits 32-63 of `value`), so the writer's cut at whole samples
//! (`sample::whole_samples_len`, which steps from head to head) and its
//! staging across the ring's wrap treat both alike, with the same bound on
//! a head's span. A values record is bits only: nothing marks it, and only
//! its head says what it is.
//!
//! Packed runs live in the ring only. The writer stores a packed run as the
//! run block it would have made of its members (`wal/compact.rs`), or as
//! its members ([`unpack_into`]) in a version 2 segment, so what the WAL
//! holds, and every seq, is exactly what the unpacked records would give.
//! The session decides (`Session::pack_runs`); tools that read a decoder's
//! records one by one leave it off.

#![forbid(unsafe_code)]

use crate::sample::{Quality, RunTail, Sample, TagId, ValueKind, TEXT_EXT_RECORDS_MAX};

/// Kind byte of a packed run's head. Never a `ValueKind`: no WAL record
/// carries it.
pub const PACKED_HEAD: u8 = 0xF0;
/// Members one values record carries.
pub const MEMBERS_PER_RECORD: usize = 3;
/// Fewest members packed: the fewest that take fewer records packed.
pub const PACKED_RUN_MIN: usize = 3;
/// Values records one head may announce: as many as a text head's
/// extensions, so one bound covers the writer's staging of both.
pub const PACKED_VALUE_RECORDS_MAX: usize = TEXT_EXT_RECORDS_MAX;
/// Most members one head carries; a longer run takes several heads.
pub const PACKED_MEMBERS_MAX: usize = MEMBERS_PER_RECORD * PACKED_VALUE_RECORDS_MAX;
/// Members per ring record, at most (`n` members in `1 + ceil(n / 3)`
/// records): a writer that caps a frame's ring records at its record
/// limit over this never overruns it.
pub const UNPACKED_PER_RECORD_MAX: usize = MEMBERS_PER_RECORD;

const KIND_MASK: u64 = 0xFF << 24;

/// Ring records `members` values take packed (head included).
pub const fn packed_records(members: usize) -> usize {
    1 + members.div_ceil(MEMBERS_PER_RECORD)
}

/// Writes `values` (whole `N`-byte chunks, each through `value_of`) as the
/// members of `tail` stamped `ts_ns`: packed runs of at most
/// [`PACKED_MEMBERS_MAX`], a last piece shorter than [`PACKED_RUN_MIN`] as
/// plain records (`sample::fill_run`). Returns the records written and the
/// members they carry. `slot` must hold as many records as there are
/// members (the unpacked size, never less than the packed one); a shorter
/// one gets the whole pieces that fit.
#[inline(always)]
pub fn fill_run_packed<const N: usize>(
    values: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    value_of: impl Fn([u8; N]) -> u64 + Copy,
) -> (usize, usize) {
    let (mut records, mut members) = (0, 0);
    for piece in values.chunks(N * PACKED_MEMBERS_MAX) {
        let n = piece.len() / N;
        let rest = slot.get_mut(records..).unwrap_or_default();
        let piece_tail = tail.advanced(members as u32);
        if n < PACKED_RUN_MIN {
            let written = crate::sample::fill_run(piece, piece_tail, ts_ns, rest, value_of);
            records += written;
            members += written;
            continue;
        }
        let Some(out) = rest.get_mut(..packed_records(n)) else {
            break;
        };
        pack_piece(piece, piece_tail, ts_ns, out, value_of);
        records += out.len();
        members += n;
    }
    (records, members)
}

/// How a decode loop writes a run: plain records or packed. Decoders take
/// it as a type parameter, so each gets its own straight-line loop.
pub trait RunFill: Copy {
    /// Writes the run's values (`N`-byte chunks through `value_of`) into
    /// `slot`, which holds one record per value; returns the records
    /// written.
    fn fill<const N: usize>(
        self,
        values: &[u8],
        tail: RunTail,
        ts_ns: i64,
        slot: &mut [Sample],
        value_of: impl Fn([u8; N]) -> u64 + Copy,
    ) -> usize;
}

/// One record a value (`sample::fill_run`).
#[derive(Clone, Copy, Debug)]
pub struct Plain;

/// Packed runs ([`fill_run_packed`]).
#[derive(Clone, Copy, Debug)]
pub struct Packed;

impl RunFill for Plain {
    #[inline(always)]
    fn fill<const N: usize>(
        self,
        values: &[u8],
        tail: RunTail,
        ts_ns: i64,
        slot: &mut [Sample],
        value_of: impl Fn([u8; N]) -> u64 + Copy,
    ) -> usize {
        crate::sample::fill_run(values, tail, ts_ns, slot, value_of)
    }
}

impl RunFill for Packed {
    #[inline(always)]
    fn fill<const N: usize>(
        self,
        values: &[u8],
        tail: RunTail,
        ts_ns: i64,
        slot: &mut [Sample],
        value_of: impl Fn([u8; N]) -> u64 + Copy,
    ) -> usize {
        fill_run_packed(values, tail, ts_ns, slot, value_of).0
    }
}

/// A decoder's run into `slot` (one record a value): through `packed` when
/// `pack` and the values are `whole`, else through `plain`, every value
/// past the whole ones a `DECODE_ERROR` record (unreachable after a checked
/// answer; keeps a short one harmless). Returns the records written:
/// `slot.len()`, or fewer packed. Both closures are one decoder's
/// `fill_typed` with `Packed` or `Plain`.
#[inline(always)]
pub fn fill_run_records(
    pack: bool,
    whole: bool,
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    packed: impl FnOnce(&mut [Sample]) -> usize,
    plain: impl FnOnce(&mut [Sample]) -> usize,
) -> usize {
    if pack && whole {
        return packed(slot);
    }
    let written = plain(slot);
    for (index, sample) in slot.iter_mut().enumerate().skip(written) {
        *sample = Sample::bad(ts_ns, tail.tag(index as u32), Quality::DECODE_ERROR);
    }
    slot.len()
}

/// Members the ring records `records` carry, as their heads say: each
/// packed head counts its members and is stepped over with its values
/// records (unread: the writer checks them, `PackedRun::at`), any other
/// record counts one. For the reader's count of samples decoded, on the
/// records its session has just written.
pub fn members_in(records: &[Sample]) -> usize {
    let (mut at, mut members) = (0, 0);
    while let Some(head) = records.get(at) {
        if head.kind_byte() == PACKED_HEAD {
            members += (head.value & 0x00FF_FFFF) as usize;
            at += 1 + (head.value >> 32) as usize;
        } else {
            members += 1;
            at += 1;
        }
    }
    members
}

/// One packed run of `n = piece.len() / N` members (at most
/// `PACKED_MEMBERS_MAX`) into exactly `packed_records(n)` records.
#[inline(always)]
fn pack_piece<const N: usize>(
    piece: &[u8],
    tail: RunTail,
    ts_ns: i64,
    out: &mut [Sample],
    value_of: impl Fn([u8; N]) -> u64 + Copy,
) {
    let Some((head, values)) = out.split_first_mut() else {
        return;
    };
    let n = piece.len() / N;
    let (tag_kind, quality) = (tail.word() as u32, (tail.word() >> 32) as u32);
    let member_kind = tail.word() & KIND_MASK;
    *head = Sample {
        ts_ns,
        value: n as u64 | member_kind | (values.len() as u64) << 32,
        tag_kind: (tag_kind & TagId::MAX) | (PACKED_HEAD as u32) << 24,
        quality,
    };
    // chunks_exact yields N-byte pieces, so the conversions never fail
    // (and compile to nothing).
    let member = |c: &[u8]| value_of(<[u8; N]>::try_from(c).unwrap_or([0; N]));
    let whole = piece.chunks_exact(MEMBERS_PER_RECORD * N);
    let rest = whole.remainder();
    for (record, three) in values.iter_mut().zip(whole) {
        let (a, bc) = three.split_at(N);
        let (b, c) = bc.split_at(N);
        set_words(record, [member(a), member(b), member(c)]);
    }
    if !rest.is_empty() {
        let mut words = [0u64; MEMBERS_PER_RECORD];
        for (word, c) in words.iter_mut().zip(rest.chunks_exact(N)) {
            *word = member(c);
        }
        if let Some(record) = values.last_mut() {
            set_words(record, words);
        }
    }
}

/// A values record's three words (three 8-byte stores).
#[inline(always)]
fn set_words(record: &mut Sample, [a, b, c]: [u64; MEMBERS_PER_RECORD]) {
    record.ts_ns = a as i64;
    record.value = b;
    record.tag_kind = c as u32;
    record.quality = (c >> 32) as u32;
}

/// A values record's three words.
#[inline(always)]
fn words(record: &Sample) -> [u64; MEMBERS_PER_RECORD] {
    [
        record.ts_ns as u64,
        record.value,
        u64::from(record.tag_kind) | u64::from(record.quality) << 32,
    ]
}

/// A packed run read back from the ring's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackedRun<'a> {
    head: &'a Sample,
    /// The values records after the head.
    values: &'a [Sample],
}

impl<'a> PackedRun<'a> {
    /// The packed run at the front of `records`, if that is a head whose
    /// count, kind and tag ids hold together and whose values records are
    /// all there; `None` for any other record (a broken head is passed on
    /// as a record of an unknown kind, which the sink names where it reads
    /// it).
    pub fn at(records: &'a [Sample]) -> Option<PackedRun<'a>> {
        let head = records.first()?;
        if head.kind_byte() != PACKED_HEAD {
            return None;
        }
        let members = (head.value & 0x00FF_FFFF) as usize;
        let announced = (head.value >> 32) as usize;
        let kind = ValueKind::from_byte(((head.value & KIND_MASK) >> 24) as u8)?;
        let end_tag = u64::from(head.tag_id().0) + members as u64;
        let whole = (PACKED_RUN_MIN..=PACKED_MEMBERS_MAX).contains(&members)
            && announced == members.div_ceil(MEMBERS_PER_RECORD)
            && matches!(
                kind,
                ValueKind::F64 | ValueKind::I64 | ValueKind::U64 | ValueKind::Bool
            )
            && end_tag <= u64::from(TagId::MAX) + 1;
        let values = records.get(1..1 + announced).filter(|_| whole)?;
        Some(PackedRun { head, values })
    }

    /// Ring records the run takes, its head included.
    pub fn records(&self) -> usize {
        1 + self.values.len()
    }

    pub fn members(&self) -> usize {
        (self.head.value & 0x00FF_FFFF) as usize
    }

    /// The first member as a sample (value bits aside): time, tag, kind
    /// and quality of the run.
    pub fn first(&self) -> Sample {
        let kind_byte = ((self.head.value & KIND_MASK) >> 24) as u32;
        Sample {
            ts_ns: self.head.ts_ns,
            value: 0,
            tag_kind: self.head.tag_id().0 | kind_byte << 24,
            quality: self.head.quality,
        }
    }

    /// The members' value bits, in tag order.
    pub fn values(&self) -> impl Iterator<Item = u64> + 'a {
        self.values.iter().flat_map(words).take(self.members())
    }
}

impl PackedRun<'_> {
    /// The members' value bits as little-endian u64s into `out`, which is
    /// 8 bytes a member (a shorter one gets what fits): three at a time,
    /// as the values records hold them.
    pub fn write_values_le(&self, out: &mut [u8]) {
        let mut threes = out.chunks_exact_mut(MEMBERS_PER_RECORD * 8);
        for (three, record) in threes.by_ref().zip(self.values) {
            for (to, word) in three.chunks_exact_mut(8).zip(words(record)) {
                to.copy_from_slice(&word.to_le_bytes());
            }
        }
        let rest = threes.into_remainder();
        if let Some(last) = self.values.last() {
            for (to, word) in rest.chunks_exact_mut(8).zip(words(last)) {
                to.copy_from_slice(&word.to_le_bytes());
            }
        }
    }
}

/// Appends `records` to `out` with every packed run given back as its
/// members, exactly the records the decoder writes with packing off.
pub fn unpack_into(records: &[Sample], out: &mut Vec<Sample>) {
    let mut at = 0;
    while let Some(rest) = records.get(at..).filter(|r| !r.is_empty()) {
        match PackedRun::at(rest) {
            Some(run) => {
                let first = run.first();
                out.extend(run.values().zip(0u32..).map(|(value, index)| Sample {
                    value,
                    tag_kind: first.tag_kind + index,
                    ..first
                }));
                at += run.records();
            }
            None => {
                out.extend_from_slice(&rest[..1]);
                at += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{fill_run, whole_samples_len};

    fn be_u16(b: [u8; 2]) -> u64 {
        u64::from(u16::from_be_bytes(b))
    }

    fn plain_and_packed(n: usize, quality: Quality) -> (Vec<Sample>, Vec<Sample>, usize) {
        let values: Vec<u8> = (0..2 * n).map(|i| (i * 37 + 11) as u8).collect();
        let tail = RunTail::new(TagId(1000), quality, ValueKind::U64);
        let mut plain = vec![Sample::default(); n];
        assert_eq!(fill_run(&values, tail, 77, &mut plain, be_u16), n);
        let mut packed = vec![Sample::default(); n];
        let (records, members) = fill_run_packed(&values, tail, 77, &mut packed, be_u16);
        assert_eq!(members, n);
        packed.truncate(records);
        (plain, packed, records)
    }

    #[test]
    fn packed_runs_unpack_to_the_records_written_plain() {
        for n in (0..=3 * PACKED_MEMBERS_MAX + 7).chain([250, 125]) {
            let (plain, packed, records) = plain_and_packed(n, Quality::GOOD);
            let mut unpacked = Vec::new();
            unpack_into(&packed, &mut unpacked);
            assert_eq!(unpacked, plain, "{n} members");
            assert!(records <= n.max(1), "{n} members take {records} records");
            if n >= PACKED_RUN_MIN {
                assert_eq!(packed[0].kind_byte(), PACKED_HEAD, "{n}");
                assert!(records < n, "{n} members take {records} records");
            } else {
                assert_eq!(packed, plain, "{n}: too short to pack");
            }
        }
        let (plain, packed, _) = plain_and_packed(9, Quality::STALE);
        let mut unpacked = Vec::new();
        unpack_into(&packed, &mut unpacked);
        assert_eq!(unpacked, plain, "an uncertain run keeps its quality");
    }

    #[test]
    fn the_cut_at_whole_samples_never_splits_a_packed_run() {
        let (_, packed, records) = plain_and_packed(40, Quality::GOOD);
        assert_eq!(records, packed_records(40));
        assert_eq!(whole_samples_len(&packed), records);
        for cut in 1..records {
            assert_eq!(whole_samples_len(&packed[..cut]), 0, "cut at {cut}");
        }
        let mut two = packed.clone();
        two.extend_from_slice(&packed);
        for cut in records + 1..2 * records {
            assert_eq!(whole_samples_len(&two[..cut]), records, "cut at {cut}");
        }
    }

    #[test]
    fn a_broken_head_is_not_read_as_a_run() {
        let (_, packed, _) = plain_and_packed(10, Quality::GOOD);
        assert!(PackedRun::at(&packed).is_some());
        assert!(
            PackedRun::at(&packed[..packed.len() - 1]).is_none(),
            "short"
        );
        let mut wrong = packed.clone();
        wrong[0].value += 3;
        assert!(
            PackedRun::at(&wrong).is_none(),
            "count and records disagree"
        );
        let mut wrong = packed.clone();
        wrong[0].value = wrong[0].value & !KIND_MASK | u64::from(ValueKind::Text as u8) << 24;
        assert!(PackedRun::at(&wrong).is_none(), "text never packs");
        let mut empty = packed.clone();
        empty[0].tag_kind &= !TagId::MAX;
        empty[0].value &= !0x00FF_FFFF;
        assert!(PackedRun::at(&empty).is_none(), "no members, tag id 0");
        let mut wrong = packed;
        wrong[0].tag_kind |= TagId::MAX;
        assert!(PackedRun::at(&wrong).is_none(), "tag ids past 24 bits");
        let mut unpacked = Vec::new();
        unpack_into(&wrong, &mut unpacked);
        assert_eq!(unpacked, wrong, "a broken head passes on as records");
    }
}
