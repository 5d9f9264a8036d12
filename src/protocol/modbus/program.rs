//! Decode programs: a planned request's tags compiled, once at start-up,
//! into runs the hot path decodes with one bounds check per run instead of
//! one dispatch per tag. A run is consecutive tags of one numeric type and
//! order, unscaled, with consecutive tag ids, packed back to back in the
//! registers (a PLC's block of uint16 or float32 values). Anything else is
//! decoded tag by tag by `decode_samples`. Both write the same samples, in
//! plan order; a test checks that for every type and order.

use crate::config::{Area, DataType, WordOrder};
use crate::packed::{fill_run_records, Packed, Plain, RunFill};
use crate::sample::{Quality, RunTail, Sample, ValueKind};

use super::decode::decode_samples;
use super::planner::PlannedTag;

/// Shortest group of tags worth a run of its own.
const RUN_TAGS_MIN: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RunType {
    U16,
    I16,
    U32,
    I32,
    F32,
}

impl RunType {
    fn of(tag: &PlannedTag) -> Option<Self> {
        if tag.scaled {
            return None;
        }
        Some(match tag.data_type {
            DataType::Uint16 => RunType::U16,
            DataType::Int16 => RunType::I16,
            DataType::Uint32 => RunType::U32,
            DataType::Int32 => RunType::I32,
            DataType::Float32 => RunType::F32,
            _ => return None,
        })
    }
    const fn registers(self) -> u16 {
        match self {
            RunType::U16 | RunType::I16 => 1,
            RunType::U32 | RunType::I32 | RunType::F32 => 2,
        }
    }
    const fn kind(self) -> ValueKind {
        match self {
            RunType::U16 | RunType::U32 => ValueKind::U64,
            RunType::I16 | RunType::I32 => ValueKind::I64,
            RunType::F32 => ValueKind::F64,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// `count` tags with ids from `tail`'s first on (good quality, the
    /// type's kind), values back to back from register `first_register` of
    /// the response. `tail` is built here, at compile time, so the hot loop
    /// writes it as one word it cannot constant-fold apart.
    Run {
        run_type: RunType,
        order: WordOrder,
        tail: RunTail,
        first_register: u16,
        count: u16,
    },
    /// Tags `start..end` of the plan, decoded one by one.
    Tags { start: u32, end: u32 },
}

/// The compiled form of one planned request (bit areas: one `Tags` segment).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DecodeProgram {
    segments: Vec<Segment>,
}

impl DecodeProgram {
    pub fn compile(area: Area, tags: &[PlannedTag]) -> Self {
        let mut segments: Vec<Segment> = Vec::new();
        let mut index = 0;
        // Each round consumes at least one tag. run_end scans past `index`
        // only while a run continues, so the whole pass is O(tags).
        while let Some(first) = tags.get(index) {
            let end = if area.is_bit_area() {
                index
            } else {
                run_end(tags, index)
            };
            if let (true, Some(run_type)) = (end - index >= RUN_TAGS_MIN, RunType::of(first)) {
                segments.push(Segment::Run {
                    run_type,
                    order: first.order,
                    tail: RunTail::new(first.tag, Quality::GOOD, run_type.kind()),
                    first_register: first.offset,
                    count: (end - index) as u16,
                });
                index = end;
                continue;
            }
            match segments.last_mut() {
                Some(Segment::Tags { end, .. }) if *end as usize == index => *end += 1,
                _ => segments.push(Segment::Tags {
                    start: index as u32,
                    end: index as u32 + 1,
                }),
            }
            index += 1;
        }
        DecodeProgram { segments }
    }

    /// Writes every tag's records into `out` (which holds at least the
    /// request's `record_count`), exactly as `decode_samples` would; returns
    /// the records written. String tags are never in a run: they go through
    /// `decode_samples`, whose text path leaves the runs' loops as they were.
    pub fn run(
        &self,
        area: Area,
        tags: &[PlannedTag],
        data: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
        pack: bool,
    ) -> usize {
        let mut written = 0;
        for segment in &self.segments {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += match *segment {
                Segment::Tags { start, end } => {
                    let part = tags.get(start as usize..end as usize).unwrap_or_default();
                    decode_samples(area, part, data, ts_ns, slot)
                }
                Segment::Run {
                    run_type,
                    order,
                    tail,
                    first_register,
                    count,
                } => {
                    let first = 2 * usize::from(first_register);
                    let bytes = usize::from(count) * 2 * usize::from(run_type.registers());
                    let values = data.get(first..first + bytes).unwrap_or_default();
                    let slot = slot.get_mut(..usize::from(count)).unwrap_or_default();
                    decode_run(run_type, order, values, tail, ts_ns, slot, pack)
                }
            };
        }
        written
    }
}

/// End (exclusive) of the run starting at `index`: same type and order,
/// next register, next tag id (never wrapping past `u32::MAX`, which
/// `Sample::set_run_member` relies on).
fn run_end(tags: &[PlannedTag], index: usize) -> usize {
    let Some(first) = tags.get(index) else {
        return index;
    };
    let Some(run_type) = RunType::of(first) else {
        return index;
    };
    let mut end = index + 1;
    let mut previous = first;
    while let Some(next) = tags.get(end) {
        let continues = RunType::of(next) == Some(run_type)
            && next.order == first.order
            && u32::from(next.offset)
                == u32::from(previous.offset) + u32::from(run_type.registers())
            && previous.tag.0.checked_add(1) == Some(next.tag.0);
        if !continues {
            break;
        }
        previous = next;
        end += 1;
    }
    end
}

/// The run's values are whole: `values` is exactly `slot.len()` values long
/// (else the missing ones become `DecodeError` samples). Returns the records
/// written: `slot.len()`, or fewer when `pack` and the run packs
/// (`packed.rs`). One arm per type and byte order, so each loop body is
/// straight-line: load, convert, store.
fn decode_run(
    run_type: RunType,
    order: WordOrder,
    values: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    pack: bool,
) -> usize {
    let whole = values.len() == slot.len() * 2 * usize::from(run_type.registers());
    fill_run_records(
        pack,
        whole,
        tail,
        ts_ns,
        slot,
        |s| fill_typed(Packed, run_type, order, values, tail, ts_ns, s),
        |s| fill_typed(Plain, run_type, order, values, tail, ts_ns, s),
    )
}

#[inline(always)]
fn fill_typed(
    fill: impl RunFill,
    run_type: RunType,
    order: WordOrder,
    values: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
) -> usize {
    let swap = order.swaps_bytes();
    match run_type {
        RunType::U16 if swap => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            u64::from(u16::from_le_bytes(b))
        }),
        RunType::U16 => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            u64::from(u16::from_be_bytes(b))
        }),
        RunType::I16 if swap => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            i64::from(i16::from_le_bytes(b)) as u64
        }),
        RunType::I16 => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            i64::from(i16::from_be_bytes(b)) as u64
        }),
        RunType::U32 => fill_by_order(fill, values, order, tail, ts_ns, slot, u64::from),
        RunType::I32 => fill_by_order(fill, values, order, tail, ts_ns, slot, |v| {
            i64::from(v as i32) as u64
        }),
        RunType::F32 => fill_by_order(fill, values, order, tail, ts_ns, slot, |v| {
            f64::from(f32::from_bits(v)).to_bits()
        }),
    }
}

/// 32-bit values: the word order is matched once, outside the loop.
#[inline(always)]
fn fill_by_order(
    fill: impl RunFill,
    values: &[u8],
    order: WordOrder,
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    value_of: impl Fn(u32) -> u64 + Copy,
) -> usize {
    match order {
        WordOrder::Abcd => fill.fill::<4>(values, tail, ts_ns, slot, |[w, x, y, z]| {
            value_of(u32::from_be_bytes([w, x, y, z]))
        }),
        WordOrder::Cdab => fill.fill::<4>(values, tail, ts_ns, slot, |[w, x, y, z]| {
            value_of(u32::from_be_bytes([y, z, w, x]))
        }),
        WordOrder::Badc => fill.fill::<4>(values, tail, ts_ns, slot, |[w, x, y, z]| {
            value_of(u32::from_be_bytes([x, w, z, y]))
        }),
        WordOrder::Dcba => fill.fill::<4>(values, tail, ts_ns, slot, |[w, x, y, z]| {
            value_of(u32::from_le_bytes([w, x, y, z]))
        }),
    }
}
