//! Response data -> samples, written in place into the caller's slice. No
//! allocation. Byte and word order follow `WordOrder`'s contract in
//! config/types.rs. Every read is a checked `get`: a plan that does not fit
//! the data (impossible after `check_response` with a planner-built plan)
//! yields a `DecodeError` sample, never a panic.

use crate::config::{Area, DataType, WordOrder};
use crate::sample::{Quality, Sample, TagId, ValueKind};

use super::planner::PlannedTag;

/// Decodes validated response data for `tags` into `out`, one sample per
/// tag, in plan order; returns the samples written (`min(tags, out)`).
pub fn decode_samples(
    area: Area,
    tags: &[PlannedTag],
    data: &[u8],
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    let count = tags.len().min(out.len());
    let pairs = out.iter_mut().zip(tags);
    if area.is_bit_area() {
        for (slot, tag) in pairs {
            *slot = bit_sample(tag, data, ts_ns);
        }
    } else {
        for (slot, tag) in pairs {
            *slot = register_sample(tag, data, ts_ns);
        }
    }
    count
}

/// One sample of `quality` per tag (no value): exceptions, timeouts, lost
/// connections.
pub fn write_bad(tags: &[PlannedTag], ts_ns: i64, quality: Quality, out: &mut [Sample]) -> usize {
    let count = tags.len().min(out.len());
    for (slot, tag) in out.iter_mut().zip(tags) {
        *slot = Sample::bad(ts_ns, tag.tag, quality);
    }
    count
}

fn good(ts_ns: i64, tag: TagId, kind: ValueKind, value: u64) -> Sample {
    Sample::new(ts_ns, tag, Quality::GOOD, kind, value)
}

fn bit_sample(tag: &PlannedTag, data: &[u8], ts_ns: i64) -> Sample {
    let index = usize::from(tag.offset);
    match data.get(index / 8) {
        Some(byte) => good(
            ts_ns,
            tag.tag,
            ValueKind::Bool,
            u64::from((byte >> (index % 8)) & 1),
        ),
        None => Sample::bad(ts_ns, tag.tag, Quality::DECODE_ERROR),
    }
}

#[inline]
fn register_sample(tag: &PlannedTag, data: &[u8], ts_ns: i64) -> Sample {
    let first = 2 * usize::from(tag.offset);
    let Some((kind, value)) = raw_value(tag, data, first) else {
        return Sample::bad(ts_ns, tag.tag, Quality::DECODE_ERROR);
    };
    if tag.scaled && !matches!(kind, ValueKind::Bool | ValueKind::Str8) {
        let scaled = as_f64(kind, value) * tag.scale + tag.value_offset;
        return good(ts_ns, tag.tag, ValueKind::F64, scaled.to_bits());
    }
    good(ts_ns, tag.tag, kind, value)
}

#[inline]
fn raw_value(tag: &PlannedTag, data: &[u8], first: usize) -> Option<(ValueKind, u64)> {
    let order = tag.order;
    Some(match tag.data_type {
        DataType::Uint16 => (ValueKind::U64, u64::from(word(data, first, order)?)),
        DataType::Int16 => (
            ValueKind::I64,
            i64::from(word(data, first, order)? as i16) as u64,
        ),
        DataType::Bool => {
            let w = word(data, first, order)?;
            let bit = match tag.bit {
                Some(bit) => (w >> (bit & 15)) & 1,
                None => u16::from(w != 0),
            };
            (ValueKind::Bool, u64::from(bit))
        }
        DataType::Uint32 => (ValueKind::U64, wide(data, first, 2, order)?),
        DataType::Int32 => (
            ValueKind::I64,
            i64::from(wide(data, first, 2, order)? as u32 as i32) as u64,
        ),
        DataType::Float32 => {
            let bits = wide(data, first, 2, order)? as u32;
            (ValueKind::F64, f64::from(f32::from_bits(bits)).to_bits())
        }
        DataType::Uint64 => (ValueKind::U64, wide(data, first, 4, order)?),
        DataType::Int64 => (ValueKind::I64, wide(data, first, 4, order)?),
        DataType::Float64 => (ValueKind::F64, wide(data, first, 4, order)?),
        DataType::String => (ValueKind::Str8, text(data, first, tag.length, order)?),
    })
}

fn as_f64(kind: ValueKind, value: u64) -> f64 {
    match kind {
        ValueKind::F64 => f64::from_bits(value),
        ValueKind::I64 => value as i64 as f64,
        ValueKind::U64 => value as f64,
        ValueKind::Bool | ValueKind::Str8 | ValueKind::Text | ValueKind::TextExt => f64::NAN,
    }
}

/// One register; 16-bit values only see the byte swap.
#[inline]
fn word(data: &[u8], first: usize, order: WordOrder) -> Option<u16> {
    let pair: [u8; 2] = data.get(first..first + 2)?.try_into().ok()?;
    Some(if order.swaps_bytes() {
        u16::from_le_bytes(pair)
    } else {
        u16::from_be_bytes(pair)
    })
}

/// `words` registers as one big-endian value: bytes swapped inside each
/// word for BADC/DCBA, word order reversed for CDAB/DCBA.
#[inline]
fn wide(data: &[u8], first: usize, words: usize, order: WordOrder) -> Option<u64> {
    let bytes = data.get(first..first + 2 * words)?;
    let swap = order.swaps_bytes();
    let join = |value: u64, pair: &[u8]| {
        let (hi, lo) = match pair {
            [a, b] if swap => (*b, *a),
            [a, b] => (*a, *b),
            _ => (0, 0),
        };
        (value << 16) | u64::from(u16::from_be_bytes([hi, lo]))
    };
    Some(if order.swaps_words() {
        bytes.rchunks_exact(2).fold(0, join)
    } else {
        bytes.chunks_exact(2).fold(0, join)
    })
}

/// Up to 8 characters, two per register, the first in the high byte unless
/// the order swaps bytes; packed first character least significant.
fn text(data: &[u8], first: usize, length: u16, order: WordOrder) -> Option<u64> {
    let length = usize::from(length.min(8));
    let bytes = data.get(first..first + 2 * length.div_ceil(2))?;
    let mut value = 0u64;
    let mut index = 0;
    for pair in bytes.chunks_exact(2) {
        let (a, b) = match pair {
            [hi, lo] if order.swaps_bytes() => (*lo, *hi),
            [hi, lo] => (*hi, *lo),
            _ => (0, 0),
        };
        for character in [a, b] {
            if index < length {
                value |= u64::from(character) << (8 * index);
                index += 1;
            }
        }
    }
    Some(value)
}
