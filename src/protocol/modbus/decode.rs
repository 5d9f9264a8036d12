//! Response data -> samples, written in place into the caller's slice. No
//! allocation. Byte and word order follow `WordOrder`'s contract in
//! config/types.rs. Every read is a checked `get`: a plan that does not fit
//! the data (impossible after `check_response` with a planner-built plan)
//! yields a `DecodeError` sample, never a panic.
//!
//! A tag is one record, except a string tag: `text_records(length)` records
//! (a `Str8` for up to 8 bytes, else a text head and its extensions, see
//! `sample::write_text`), whatever the PLC's text holds, so a poll cycle's
//! record count is fixed by the configuration.

use crate::config::{Area, DataType, WordOrder};
use crate::sample::{write_text, Quality, Sample, TagId, ValueKind};

use super::limits::STRING_BYTES_MAX;
use super::planner::PlannedTag;

/// Decodes validated response data for `tags` into `out`, in plan order;
/// returns the records written. Stops at the first tag whose records do
/// not fit (a caller sizes `out` by `PlannedRequest::record_count`).
pub fn decode_samples(
    area: Area,
    tags: &[PlannedTag],
    data: &[u8],
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    if area.is_bit_area() {
        let count = tags.len().min(out.len());
        for (slot, tag) in out.iter_mut().zip(tags) {
            *slot = bit_sample(tag, data, ts_ns);
        }
        return count;
    }
    let mut written = 0;
    for tag in tags {
        let slot = out.get_mut(written..).unwrap_or_default();
        let records = if tag.data_type == DataType::String {
            text_sample(tag, data, ts_ns, slot)
        } else if let Some(first) = slot.first_mut() {
            *first = register_sample(tag, data, ts_ns);
            1
        } else {
            0
        };
        if records == 0 {
            break;
        }
        written += records;
    }
    written
}

/// The records of `quality` for each tag (no value, empty text):
/// exceptions, timeouts, lost connections. Returns the records written.
pub fn write_bad(tags: &[PlannedTag], ts_ns: i64, quality: Quality, out: &mut [Sample]) -> usize {
    let mut written = 0;
    for tag in tags {
        let slot = out.get_mut(written..).unwrap_or_default();
        let records = if tag.data_type == DataType::String {
            write_text(slot, ts_ns, tag.tag, quality, &[], usize::from(tag.length))
        } else if let Some(first) = slot.first_mut() {
            *first = Sample::bad(ts_ns, tag.tag, quality);
            1
        } else {
            0
        };
        if records == 0 {
            break;
        }
        written += records;
    }
    written
}

/// A string tag: `length` bytes, two per register, the first in the high
/// byte unless the order swaps bytes; the text ends at its first NUL (PLC
/// strings are NUL-padded). Written with `write_text` (`Str8` up to 8
/// bytes); missing registers give an empty `DecodeError` text.
fn text_sample(tag: &PlannedTag, data: &[u8], ts_ns: i64, out: &mut [Sample]) -> usize {
    let capacity = usize::from(tag.length).min(STRING_BYTES_MAX);
    let first = 2 * usize::from(tag.offset);
    let Some(registers) = data.get(first..first + 2 * capacity.div_ceil(2)) else {
        return write_text(out, ts_ns, tag.tag, Quality::DECODE_ERROR, &[], capacity);
    };
    let mut text = [0u8; STRING_BYTES_MAX + 1];
    for (pair, chars) in registers.chunks_exact(2).zip(text.chunks_exact_mut(2)) {
        if let ([hi, lo], [a, b]) = (pair, chars) {
            (*a, *b) = if tag.order.swaps_bytes() {
                (*lo, *hi)
            } else {
                (*hi, *lo)
            };
        }
    }
    let text = text.get(..capacity).unwrap_or_default();
    let len = text.iter().position(|&b| b == 0).unwrap_or(text.len());
    let text = text.get(..len).unwrap_or_default();
    write_text(out, ts_ns, tag.tag, Quality::GOOD, text, capacity)
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
    if tag.scaled && kind != ValueKind::Bool {
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
        // Strings take `text_sample` (they may need more than one record).
        DataType::String => return None,
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
