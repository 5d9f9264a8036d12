//! Item bytes -> samples, in place, big-endian as the PLC stores them. One
//! function per concern: numbers, text (STRING, WSTRING, CHAR), and the
//! date and time types. A value that cannot be what its type says (a
//! STRING whose length exceeds its maximum, a BCD digit above 9, a DTL
//! month 13) is that tag's `DECODE_ERROR`, never an error of the
//! connection. No allocation: WSTRING is transcoded through a stack buffer.

use crate::config::S7Type;
use crate::sample::{write_text, Quality, Sample, ValueKind, TEXT_BYTES_MAX};

use super::planner::PlannedTag;

/// Writes the tag's records (1, or a text head and its extensions) decoded
/// from `bytes` (exactly the tag's bytes) into `out`; returns the count, 0
/// when `out` is too short.
#[inline]
pub fn write_tag(tag: &PlannedTag, bytes: &[u8], ts_ns: i64, out: &mut [Sample]) -> usize {
    if tag.data_type.is_text() {
        return write_text_tag(tag, bytes, ts_ns, out);
    }
    let Some(slot) = out.first_mut() else {
        return 0;
    };
    *slot = match number(tag, bytes) {
        Some((kind, value)) if tag.scaled && kind != ValueKind::Bool => {
            let scaled = as_f64(kind, value) * tag.scale + tag.value_offset;
            Sample::new(
                ts_ns,
                tag.tag,
                Quality::GOOD,
                ValueKind::F64,
                scaled.to_bits(),
            )
        }
        Some((kind, value)) => Sample::new(ts_ns, tag.tag, Quality::GOOD, kind, value),
        None => Sample::bad(ts_ns, tag.tag, Quality::DECODE_ERROR),
    };
    1
}

/// The tag's records with `quality` and no value (text: an empty text, so
/// the record count stays the tag's).
pub fn write_bad_tag(tag: &PlannedTag, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
    if tag.data_type.is_text() {
        return write_text(
            out,
            ts_ns,
            tag.tag,
            quality,
            &[],
            tag.text_capacity as usize,
        );
    }
    match out.first_mut() {
        Some(slot) => {
            *slot = Sample::bad(ts_ns, tag.tag, quality);
            1
        }
        None => 0,
    }
}

fn as_f64(kind: ValueKind, value: u64) -> f64 {
    match kind {
        ValueKind::F64 => f64::from_bits(value),
        ValueKind::I64 => value as i64 as f64,
        ValueKind::U64 => value as f64,
        _ => f64::NAN,
    }
}

fn be<const N: usize>(bytes: &[u8]) -> Option<[u8; N]> {
    bytes.first_chunk::<N>().copied()
}

/// A numeric, boolean or time tag's kind and value bits; `None` when the
/// bytes are short or not a valid value of the type.
#[inline]
fn number(tag: &PlannedTag, bytes: &[u8]) -> Option<(ValueKind, u64)> {
    use ValueKind::*;
    Some(match tag.data_type {
        S7Type::Bool => (Bool, u64::from((bytes.first()? >> (tag.bit & 7)) & 1)),
        S7Type::Byte | S7Type::USInt => (U64, u64::from(*bytes.first()?)),
        S7Type::SInt => (I64, i64::from(*bytes.first()? as i8) as u64),
        S7Type::Word | S7Type::UInt => (U64, u64::from(u16::from_be_bytes(be(bytes)?))),
        S7Type::Int => (I64, i64::from(i16::from_be_bytes(be(bytes)?)) as u64),
        S7Type::DWord | S7Type::UDInt => (U64, u64::from(u32::from_be_bytes(be(bytes)?))),
        S7Type::DInt => (I64, i64::from(i32::from_be_bytes(be(bytes)?)) as u64),
        S7Type::LInt => (I64, i64::from_be_bytes(be(bytes)?) as u64),
        S7Type::ULInt => (U64, u64::from_be_bytes(be(bytes)?)),
        S7Type::Real => {
            let v = f32::from_be_bytes(be(bytes)?);
            (F64, f64::from(v).to_bits())
        }
        S7Type::LReal => (F64, u64::from_be_bytes(be(bytes)?)),
        S7Type::Time => (I64, i64::from(i32::from_be_bytes(be(bytes)?)) as u64),
        S7Type::S5Time => (I64, s5time_ms(be(bytes)?)? as u64),
        S7Type::DateAndTime => (I64, date_and_time_ns(be(bytes)?)? as u64),
        S7Type::Dtl => (I64, dtl_ns(be(bytes)?)? as u64),
        S7Type::Char | S7Type::String(_) | S7Type::WString(_) => return None,
    })
}

fn write_text_tag(tag: &PlannedTag, bytes: &[u8], ts_ns: i64, out: &mut [Sample]) -> usize {
    let capacity = tag.text_capacity as usize;
    let write = |out: &mut [Sample], text: Option<&[u8]>| match text {
        Some(text) => write_text(out, ts_ns, tag.tag, Quality::GOOD, text, capacity),
        None => write_text(out, ts_ns, tag.tag, Quality::DECODE_ERROR, &[], capacity),
    };
    match tag.data_type {
        S7Type::Char => write(out, bytes.get(..1)),
        S7Type::String(max) => write(out, string_chars(bytes, max)),
        S7Type::WString(max) => {
            // Only a WSTRING needs the buffer (zeroing 1 KiB per STRING was
            // a visible share of the reader's decode).
            let mut utf8 = [0u8; TEXT_BYTES_MAX];
            write(out, wstring_utf8(bytes, max, &mut utf8, capacity))
        }
        _ => write(out, None),
    }
}

/// STRING[N]: max-length byte, actual-length byte, then N characters. The
/// actual length may not exceed the PLC's maximum nor the declared N.
fn string_chars(bytes: &[u8], declared: u8) -> Option<&[u8]> {
    let (&[max, actual], chars) = bytes.split_first_chunk::<2>()?;
    if actual > max || actual > declared {
        return None;
    }
    chars.get(..usize::from(actual))
}

/// WSTRING[N]: max16, actual16, then N UTF-16BE units, as UTF-8 in `buf`
/// (cut at a character boundary within `capacity`). Unpaired surrogates
/// are a decode error.
fn wstring_utf8<'b>(
    bytes: &[u8],
    declared: u16,
    buf: &'b mut [u8; TEXT_BYTES_MAX],
    capacity: usize,
) -> Option<&'b [u8]> {
    let (&[m0, m1, a0, a1], units) = bytes.split_first_chunk::<4>()?;
    let (max, actual) = (u16::from_be_bytes([m0, m1]), u16::from_be_bytes([a0, a1]));
    if actual > max || actual > declared {
        return None;
    }
    let units = units.get(..2 * usize::from(actual))?;
    let code_units = units
        .chunks_exact(2)
        .map(|pair| u16::from_be_bytes([pair.first().copied()?, pair.get(1).copied()?]).into())
        .map(|unit: Option<u16>| unit.unwrap_or(0xFFFF));
    let mut len = 0;
    for c in char::decode_utf16(code_units) {
        let c = c.ok()?;
        let width = c.len_utf8();
        if len + width > capacity.min(TEXT_BYTES_MAX) {
            break;
        }
        let target = buf.get_mut(len..len + width)?;
        c.encode_utf8(target);
        len += width;
    }
    buf.get(..len)
}

/// Two BCD digits; `None` if either is above 9.
fn bcd(byte: u8) -> Option<u32> {
    let (hi, lo) = (byte >> 4, byte & 0x0F);
    (hi <= 9 && lo <= 9).then_some(u32::from(hi) * 10 + u32::from(lo))
}

/// S5TIME: bits 13-12 the time base (10 ms, 100 ms, 1 s, 10 s), bits 11-0
/// three BCD digits. In milliseconds.
fn s5time_ms(bytes: [u8; 2]) -> Option<i64> {
    let [hi, lo] = bytes;
    let base_ms = match (hi >> 4) & 0x3 {
        0 => 10,
        1 => 100,
        2 => 1_000,
        _ => 10_000,
    };
    let hundreds = hi & 0x0F;
    if hundreds > 9 {
        return None;
    }
    let count = u32::from(hundreds) * 100 + bcd(lo)?;
    Some(i64::from(count) * base_ms)
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian; Howard
/// Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(month) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// UNIX ns of a checked civil time; `None` when a field is out of range.
fn unix_ns(civil: [u32; 6], year: i64, nanos: u32) -> Option<i64> {
    let [month, day, hour, minute, second, _] = civil;
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour <= 23
        && minute <= 59
        && second <= 59
        && nanos <= 999_999_999;
    if !valid {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(nanos))
}

/// DATE_AND_TIME: 8 BCD bytes: year (90-99: 19xx, 00-89: 20xx), month,
/// day, hour, minute, second, then milliseconds (3 digits) and the weekday
/// digit (not checked: PLCs write 0 as often as 1-7).
fn date_and_time_ns(bytes: [u8; 8]) -> Option<i64> {
    let [y, mo, d, h, mi, s, ms_hi, ms_lo] = bytes;
    let yy = bcd(y)?;
    let year = i64::from(if yy >= 90 { 1900 + yy } else { 2000 + yy });
    let ms_low_digit = ms_lo >> 4;
    if ms_low_digit > 9 {
        return None;
    }
    let ms = bcd(ms_hi)? * 10 + u32::from(ms_low_digit);
    let civil = [bcd(mo)?, bcd(d)?, bcd(h)?, bcd(mi)?, bcd(s)?, 0];
    unix_ns(civil, year, ms * 1_000_000)
}

/// DTL: year16, month, day, weekday, hour, minute, second (binary), then
/// nanoseconds32. Years 1970-2262 (the range of UNIX ns in an i64).
fn dtl_ns(bytes: [u8; 12]) -> Option<i64> {
    let [y0, y1, mo, d, _weekday, h, mi, s, n0, n1, n2, n3] = bytes;
    let year = i64::from(u16::from_be_bytes([y0, y1]));
    if !(1970..=2262).contains(&year) {
        return None;
    }
    let nanos = u32::from_be_bytes([n0, n1, n2, n3]);
    let civil = [mo, d, h, mi, s, 0].map(u32::from);
    unix_ns(civil, year, nanos)
}
