//! Read Tag reply data into samples, in place: little-endian values are
//! read straight from the reply's bytes (in the caller's receive buffer,
//! or the framer's when a message straddled two reads) into the sample
//! slots. One type dispatch per read, then a loop per element.
//!
//! A read's reply may come in fragments (status 0x06, then Read Tag
//! Fragmented): each call decodes the whole elements of one fragment and
//! says how many it used; a partial element at a fragment's end is asked
//! for again by the next fragment (no carry buffer).

use crate::config::CipType;
use crate::sample::{write_text, Quality, RunTail, Sample, TagId, ValueKind};

use super::cip::type_code;
use super::error::Field;
use super::limits::STRING_STRUCT_HANDLE;
use super::planner::{PlannedRead, Shape};
use super::wire::Reader;

/// What one fragment of a read gave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Records written at the front of `out`.
    pub records: usize,
    /// Requested elements consumed from the data.
    pub elements: u32,
    /// Samples of the read now complete (in all, not just this fragment).
    pub samples_done: u32,
}

/// The data type header of a Read Tag reply and the data after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypedData<'a> {
    pub type_code: u16,
    /// A structure's handle (after `0x02A0`).
    pub handle: u16,
    pub data: &'a [u8],
}

/// Splits reply data into its type and values; `None` if it is shorter
/// than its type header.
pub fn typed_data(data: &[u8]) -> Option<TypedData<'_>> {
    let mut r = Reader::new(data);
    let type_code = r.u16(Field::TagType).ok()?;
    let handle = if type_code == type_code::STRUCT {
        r.u16(Field::TagType).ok()?
    } else {
        0
    };
    Some(TypedData {
        type_code,
        handle,
        data: r.rest(),
    })
}

/// Bytes of an integer type's value; `None` for anything else.
const fn integer_bytes(code: u16) -> Option<usize> {
    match code {
        type_code::SINT | type_code::USINT => Some(1),
        type_code::INT | type_code::UINT => Some(2),
        type_code::DINT | type_code::UDINT | type_code::DWORD => Some(4),
        type_code::LINT | type_code::ULINT => Some(8),
        _ => None,
    }
}

/// The type code a read of `data_type` must come back with.
pub const fn expected_code(data_type: CipType) -> u16 {
    match data_type {
        CipType::Bool => type_code::BOOL,
        CipType::SInt => type_code::SINT,
        CipType::Int => type_code::INT,
        CipType::DInt => type_code::DINT,
        CipType::LInt => type_code::LINT,
        CipType::USInt => type_code::USINT,
        CipType::UInt => type_code::UINT,
        CipType::UDInt => type_code::UDINT,
        CipType::ULInt => type_code::ULINT,
        CipType::Real => type_code::REAL,
        CipType::LReal => type_code::LREAL,
        CipType::String => type_code::STRUCT,
    }
}

/// Whether the reply's type is what the read expects; the element width
/// to decode with when it is.
pub fn element_width(read: &PlannedRead, typed: &TypedData<'_>) -> Option<usize> {
    match read.shape {
        Shape::BitOfInteger { bit } => {
            integer_bytes(typed.type_code).filter(|bytes| usize::from(bit) < 8 * bytes)
        }
        Shape::BoolArray { .. } => (typed.type_code == type_code::DWORD).then_some(4),
        Shape::Values => {
            let code_ok = typed.type_code == expected_code(read.data_type);
            let handle_ok =
                read.data_type != CipType::String || typed.handle == STRING_STRUCT_HANDLE;
            (code_ok && handle_ok).then_some(usize::from(read.element_bytes))
        }
    }
}

/// Decodes the whole elements of `data` (values of `width` bytes, starting
/// at requested element `first_element`) into samples of `read` after the
/// `samples_done` already written. `out` must hold the read's remaining
/// records.
pub fn decode(
    read: &PlannedRead,
    width: usize,
    data: &[u8],
    first_element: u32,
    samples_done: u32,
    ts_ns: i64,
    out: &mut [Sample],
) -> Decoded {
    let elements_left = u32::from(read.request_elements).saturating_sub(first_element);
    let elements = ((data.len() / width.max(1)) as u32).min(elements_left);
    let data = data.get(..elements as usize * width).unwrap_or_default();
    let done_after = match read.shape {
        Shape::Values => first_element + elements,
        Shape::BitOfInteger { .. } => elements.min(1),
        Shape::BoolArray { first_bit } => {
            (32 * (first_element + elements)).saturating_sub(first_bit)
        }
    }
    .clamp(samples_done, read.samples);
    let count = (done_after - samples_done) as usize;
    let records = match read.shape {
        Shape::Values => values(read, data, count, samples_done, ts_ns, out),
        Shape::BitOfInteger { bit } => bit_of_integer(read, bit, data, count, ts_ns, out),
        Shape::BoolArray { first_bit } => {
            let first = first_bit + samples_done - 32 * first_element;
            bool_bits(read, data, first, count, samples_done, ts_ns, out)
        }
    };
    Decoded {
        records,
        elements,
        samples_done: done_after,
    }
}

/// An embedded Read Tag reply (its 4-byte header, type code, value) for
/// a read of one sample of one element, when it is the plain success the
/// read expects: service 0xCC, general status 0, no extended status, the
/// read's type code and at least its value's bytes. Writes the sample and
/// returns its records; `None` for anything else, which the general path
/// then decodes (and reports).
pub fn scalar_reply(
    read: &PlannedRead,
    reply: &[u8],
    ts_ns: i64,
    out: &mut [Sample],
) -> Option<usize> {
    let simple = read.samples == 1
        && read.request_elements == 1
        && read.shape == Shape::Values
        && read.data_type != CipType::String;
    let [service, _reserved, 0, 0, code_lo, code_hi, value @ ..] = reply else {
        return None;
    };
    let ok = simple
        && *service == READ_TAG_REPLY
        && u16::from_le_bytes([*code_lo, *code_hi]) == expected_code(read.data_type)
        && value.len() >= usize::from(read.element_bytes);
    if !ok {
        return None;
    }
    let scaling = read.scaled.then_some((read.scale, read.value_offset));
    let (kind, bits) = scalar_bits(read.data_type, scaling, value)?;
    let slot = out.first_mut()?;
    *slot = Sample::new(ts_ns, read.tag, Quality::GOOD, kind, bits);
    Some(1)
}

/// One value of `data_type` from the front of `v`, as `values` writes it
/// (scaled to F64 with `scaling`'s `(scale, offset)` when the tag scales).
#[inline]
pub(super) fn scalar_bits(
    data_type: CipType,
    scaling: Option<(f64, f64)>,
    v: &[u8],
) -> Option<(ValueKind, u64)> {
    fn le<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
        v.get(..N).and_then(|b| <[u8; N]>::try_from(b).ok())
    }
    enum Raw {
        I(i64),
        U(u64),
        F(f64),
    }
    let raw = match data_type {
        CipType::Bool => return Some((ValueKind::Bool, u64::from(*v.first()? != 0))),
        CipType::SInt => Raw::I(i64::from(*v.first()? as i8)),
        CipType::Int => Raw::I(i64::from(i16::from_le_bytes(le(v)?))),
        CipType::DInt => Raw::I(i64::from(i32::from_le_bytes(le(v)?))),
        CipType::LInt => Raw::I(i64::from_le_bytes(le(v)?)),
        CipType::USInt => Raw::U(u64::from(*v.first()?)),
        CipType::UInt => Raw::U(u64::from(u16::from_le_bytes(le(v)?))),
        CipType::UDInt => Raw::U(u64::from(u32::from_le_bytes(le(v)?))),
        CipType::ULInt => Raw::U(u64::from_le_bytes(le(v)?)),
        CipType::Real => Raw::F(f64::from(f32::from_le_bytes(le(v)?))),
        CipType::LReal => Raw::F(f64::from_le_bytes(le(v)?)),
        CipType::String => return None,
    };
    if let Some((scale, offset)) = scaling {
        let raw = match raw {
            Raw::I(i) => i as f64,
            Raw::U(u) => u as f64,
            Raw::F(f) => f,
        };
        return Some((ValueKind::F64, (raw * scale + offset).to_bits()));
    }
    Some(match raw {
        Raw::I(i) => (ValueKind::I64, i as u64),
        Raw::U(u) => (ValueKind::U64, u),
        Raw::F(f) => (ValueKind::F64, f.to_bits()),
    })
}

/// The service byte of a Read Tag reply.
pub(super) const READ_TAG_REPLY: u8 = super::cip::READ_TAG | 0x80;

fn tag_of(read: &PlannedRead, sample: u32) -> TagId {
    TagId(read.tag.0.saturating_add(sample))
}

/// `count` values from the start of `data`, samples `first..` of the read.
fn values(
    read: &PlannedRead,
    data: &[u8],
    count: usize,
    first: u32,
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    if read.data_type == CipType::String {
        return strings(read, data, count, first, ts_ns, out);
    }
    let Some(slot) = out.get_mut(..count) else {
        return 0;
    };
    let tag = tag_of(read, first);
    if read.scaled {
        let (scale, offset) = (read.scale, read.value_offset);
        let tail = RunTail::new(tag, Quality::GOOD, ValueKind::F64);
        let scaled = |raw: f64| (raw * scale + offset).to_bits();
        return match read.data_type {
            CipType::SInt => fill::<1>(data, tail, ts_ns, slot, |b| scaled(f64::from(b[0] as i8))),
            CipType::Int => fill::<2>(data, tail, ts_ns, slot, |b| {
                scaled(f64::from(i16::from_le_bytes(b)))
            }),
            CipType::DInt => fill::<4>(data, tail, ts_ns, slot, |b| {
                scaled(f64::from(i32::from_le_bytes(b)))
            }),
            CipType::LInt => fill::<8>(data, tail, ts_ns, slot, |b| {
                scaled(i64::from_le_bytes(b) as f64)
            }),
            CipType::USInt => fill::<1>(data, tail, ts_ns, slot, |b| scaled(f64::from(b[0]))),
            CipType::UInt => fill::<2>(data, tail, ts_ns, slot, |b| {
                scaled(f64::from(u16::from_le_bytes(b)))
            }),
            CipType::UDInt => fill::<4>(data, tail, ts_ns, slot, |b| {
                scaled(f64::from(u32::from_le_bytes(b)))
            }),
            CipType::ULInt => fill::<8>(data, tail, ts_ns, slot, |b| {
                scaled(u64::from_le_bytes(b) as f64)
            }),
            CipType::Real => fill::<4>(data, tail, ts_ns, slot, |b| {
                scaled(f64::from(f32::from_le_bytes(b)))
            }),
            CipType::LReal => fill::<8>(data, tail, ts_ns, slot, |b| scaled(f64::from_le_bytes(b))),
            CipType::Bool | CipType::String => 0,
        };
    }
    let run = |kind| RunTail::new(tag, Quality::GOOD, kind);
    match read.data_type {
        CipType::Bool => fill::<1>(data, run(ValueKind::Bool), ts_ns, slot, |b| {
            u64::from(b[0] != 0)
        }),
        CipType::SInt => fill::<1>(data, run(ValueKind::I64), ts_ns, slot, |b| {
            i64::from(b[0] as i8) as u64
        }),
        CipType::Int => fill::<2>(data, run(ValueKind::I64), ts_ns, slot, |b| {
            i64::from(i16::from_le_bytes(b)) as u64
        }),
        CipType::DInt => fill::<4>(data, run(ValueKind::I64), ts_ns, slot, |b| {
            i64::from(i32::from_le_bytes(b)) as u64
        }),
        CipType::LInt => fill::<8>(data, run(ValueKind::I64), ts_ns, slot, u64::from_le_bytes),
        CipType::USInt => fill::<1>(data, run(ValueKind::U64), ts_ns, slot, |b| u64::from(b[0])),
        CipType::UInt => fill::<2>(data, run(ValueKind::U64), ts_ns, slot, |b| {
            u64::from(u16::from_le_bytes(b))
        }),
        CipType::UDInt => fill::<4>(data, run(ValueKind::U64), ts_ns, slot, |b| {
            u64::from(u32::from_le_bytes(b))
        }),
        CipType::ULInt => fill::<8>(data, run(ValueKind::U64), ts_ns, slot, u64::from_le_bytes),
        CipType::Real => fill::<4>(data, run(ValueKind::F64), ts_ns, slot, |b| {
            f64::from(f32::from_le_bytes(b)).to_bits()
        }),
        CipType::LReal => fill::<8>(data, run(ValueKind::F64), ts_ns, slot, u64::from_le_bytes),
        CipType::String => 0,
    }
}

/// One sample per `N` bytes, as many as `slot` holds (the caller sized
/// `data` to exactly that many).
#[inline(always)]
fn fill<const N: usize>(
    data: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    value_of: impl Fn([u8; N]) -> u64,
) -> usize {
    let chunks = data
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N]));
    let mut written = 0;
    // No bounds check and no branch per sample: the zip ends the loop.
    for ((sample, chunk), index) in slot.iter_mut().zip(chunks).zip(0u32..) {
        sample.set_run_member(ts_ns, value_of(chunk), tail, index);
        written += 1;
    }
    written
}

/// Logix STRING structures: DINT LEN, then the characters (LEN clamped to
/// 0..=82: a LEN the structure cannot hold is not trusted past it).
fn strings(
    read: &PlannedRead,
    data: &[u8],
    count: usize,
    first: u32,
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    let capacity = CipType::STRING_CHARS;
    let mut written = 0;
    for (index, element) in data
        .chunks_exact(usize::from(read.element_bytes))
        .take(count)
        .enumerate()
    {
        let mut r = Reader::new(element);
        let len = r.u32(Field::TagData).map_or(0, |l| l as i32);
        let len = len.clamp(0, capacity as i32) as usize;
        let chars = r.rest();
        let text = chars.get(..len).unwrap_or(chars);
        let tag = tag_of(read, first + index as u32);
        let slot = out.get_mut(written..).unwrap_or_default();
        written += write_text(slot, ts_ns, tag, Quality::GOOD, text, capacity);
    }
    written
}

fn bit_of_integer(
    read: &PlannedRead,
    bit: u8,
    data: &[u8],
    count: usize,
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    let (Some(slot), 1) = (out.first_mut(), count) else {
        return 0;
    };
    let mut bytes = [0u8; 8];
    for (b, d) in bytes.iter_mut().zip(data) {
        *b = *d;
    }
    let value = (u64::from_le_bytes(bytes) >> bit) & 1;
    *slot = Sample::new(ts_ns, read.tag, Quality::GOOD, ValueKind::Bool, value);
    1
}

/// `count` bits of DWORD `data`, from bit `first_bit` of it, as samples
/// `first..` of the read.
fn bool_bits(
    read: &PlannedRead,
    data: &[u8],
    first_bit: u32,
    count: usize,
    first: u32,
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    let Some(slot) = out.get_mut(..count) else {
        return 0;
    };
    let tail = RunTail::new(tag_of(read, first), Quality::GOOD, ValueKind::Bool);
    for (sample, index) in slot.iter_mut().zip(0u32..) {
        let bit = first_bit + index;
        let at = (bit / 32) as usize * 4;
        let word = data
            .get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map_or(0, u32::from_le_bytes);
        let value = u64::from((word >> (bit % 32)) & 1);
        sample.set_run_member(ts_ns, value, tail, index);
    }
    count
}

/// Writes `quality` records for samples `from..` of the read (text samples
/// their full record count); returns the records written.
pub fn write_bad(
    read: &PlannedRead,
    from: u32,
    quality: Quality,
    ts_ns: i64,
    out: &mut [Sample],
) -> usize {
    let mut written = 0;
    for sample in from..read.samples {
        let tag = tag_of(read, sample);
        let slot = out.get_mut(written..).unwrap_or_default();
        written += if read.data_type.is_text() {
            write_text(slot, ts_ns, tag, quality, &[], CipType::STRING_CHARS)
        } else {
            match slot.first_mut() {
                Some(s) => {
                    *s = Sample::bad(ts_ns, tag, quality);
                    1
                }
                None => 0,
            }
        };
    }
    written
}

/// Every type but STRING: what the tests of the value paths go through.
#[cfg(test)]
pub(super) const NUMERIC_TYPES: [CipType; 11] = [
    CipType::Bool,
    CipType::SInt,
    CipType::Int,
    CipType::DInt,
    CipType::LInt,
    CipType::USInt,
    CipType::UInt,
    CipType::UDInt,
    CipType::ULInt,
    CipType::Real,
    CipType::LReal,
];

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;

    fn read(data_type: CipType, scaled: bool) -> PlannedRead {
        PlannedRead {
            tag: TagId(40),
            config_index: 0,
            data_type,
            shape: Shape::Values,
            samples: 1,
            request_elements: 1,
            element_bytes: crate::protocol::enip::planner::element_bytes(data_type),
            path: 0..0,
            scale: if scaled { 0.5 } else { 1.0 },
            value_offset: if scaled { 3.0 } else { 0.0 },
            scaled,
        }
    }

    /// The general path: type header, type check, decode.
    fn general(read: &PlannedRead, reply: &[u8], out: &mut [Sample]) -> Option<usize> {
        let typed = typed_data(reply.get(4..)?)?;
        let width = element_width(read, &typed)?;
        Some(decode(read, width, typed.data, 0, 0, 9, out).records)
    }

    #[test]
    fn the_scalar_fast_path_writes_what_the_general_path_writes() {
        for data_type in NUMERIC_TYPES {
            for scaled in [false, true] {
                if scaled && data_type == CipType::Bool {
                    continue;
                }
                let read = read(data_type, scaled);
                let mut reply = vec![0xCC, 0, 0, 0];
                reply.extend_from_slice(&expected_code(data_type).to_le_bytes());
                reply.extend((0..read.element_bytes).map(|i| 0x81 + i as u8));
                let (mut fast, mut slow) = ([Sample::default(); 2], [Sample::default(); 2]);
                assert_eq!(scalar_reply(&read, &reply, 9, &mut fast), Some(1));
                assert_eq!(general(&read, &reply, &mut slow), Some(1));
                assert_eq!(fast, slow, "{data_type:?} scaled {scaled}");
            }
        }
    }

    #[test]
    fn anything_but_the_plain_success_is_left_to_the_general_path() {
        let dint = read(CipType::DInt, false);
        let good = [0xCC, 0, 0, 0, 0xC4, 0, 1, 2, 3, 4];
        let mut out = [Sample::default(); 2];
        assert_eq!(scalar_reply(&dint, &good, 9, &mut out), Some(1));
        let mut refused = good;
        refused[2] = 0x05;
        let mut extended = good;
        extended[3] = 1;
        let mut other_service = good;
        other_service[0] = 0xD2;
        let mut real = good;
        real[4] = 0xCA;
        for reply in [
            &refused[..],
            &extended,
            &other_service,
            &real,
            &good[..9],
            &good[..5],
        ] {
            assert_eq!(scalar_reply(&dint, reply, 9, &mut out), None, "{reply:?}");
        }
        let array = PlannedRead {
            samples: 2,
            request_elements: 2,
            ..dint.clone()
        };
        assert_eq!(scalar_reply(&array, &good, 9, &mut out), None);
        let text = read(CipType::String, false);
        assert_eq!(scalar_reply(&text, &good, 9, &mut out), None);
    }
}
