//! Checking one delivered S7 value against the farm's memory
//! ([`super::memory`]), knowing only its tag (device, area, byte, type).
//!
//! What millrace is expected to deliver per type (the value column of a
//! row, or its text):
//!
//! | type | delivered |
//! |---|---|
//! | bool | 0 or 1 |
//! | byte word dword usint uint udint ulint sint int dint lint | the integer |
//! | real lreal | the float (a REAL widened exactly) |
//! | time | signed milliseconds |
//! | s5time | milliseconds (count x time base) |
//! | date_and_time dtl | nanoseconds since 1970-01-01, the PLC's clock read as UTC |
//! | char string[N] wstring[N] | text, UTF-8 (a WSTRING converted from UTF-16) |
//!
//! A scaled tag (scale != 1 or offset != 0) delivers raw * scale + offset;
//! it is compared within a relative 1e-12 (emitted configs scale integers
//! only, whose raw value comes back exactly by rounding). Everything else compares exactly
//! (a 64-bit integer or a date as the float the integer rounds to).
//!
//! The common cases take one pass: a numeric value read from numeric bytes
//! gives its counter back (the high nibbles of two bytes), a date, S5TIME
//! or text read from its own slot gives it from its offset from the slot's
//! base or from its two hex digits. Anything else (a WORD read across a
//! STRING header, say) is tried against all 256 counters.

use crate::config::{S7Area, S7Type};

use super::memory::{
    self, area_seed, counter_from_digits, dt_instant, dtl_instant, fill, page_kind, s5time_parts,
    slot_at, PageKind, SlotKind, DATE_STEP_S, S5TIME_BASE_MS,
};

/// One tag of an S7 farm device: where it is and how it is read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FarmTag {
    pub area: S7Area,
    pub byte: u32,
    /// For a bool: 0..=7; else 0.
    pub bit: u8,
    pub data_type: S7Type,
    pub scale: f64,
    pub offset: f64,
}

impl FarmTag {
    pub fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }
}

/// What checking one value found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// A value the farm served; with the counter of its answer when the
    /// value carries all of it (values of two bytes or more, dates, texts).
    Served(Option<u8>),
    Wrong,
}

/// Bytes of the largest numeric value (DTL).
const NUMBER_SIZE_MAX: usize = 12;

/// The value the tag reads when the device's counter is `counter`, as
/// millrace delivers it (see the module doc); `None` for text types and
/// for bytes that are not a valid value of the type (a STRING header read
/// as a DTL, say).
pub fn expected_number(device: u32, tag: &FarmTag, counter: u8) -> Option<f64> {
    let size = tag.data_type.byte_size() as usize;
    if tag.data_type.is_text() || size > NUMBER_SIZE_MAX {
        return None;
    }
    let mut bytes = [0u8; NUMBER_SIZE_MAX];
    fill(device, tag.area, tag.byte, counter, &mut bytes[..size]);
    let raw = decode_number(tag.data_type, tag.bit, &bytes[..size])?;
    Some(if tag.is_scaled() {
        raw * tag.scale + tag.offset
    } else {
        raw
    })
}

/// A number of type `data_type` from its big-endian bytes.
pub fn decode_number(data_type: S7Type, bit: u8, b: &[u8]) -> Option<f64> {
    let be = |n: usize| -> Option<u64> {
        let bytes = b.get(..n)?;
        Some(bytes.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
    };
    Some(match data_type {
        S7Type::Bool => f64::from(b.first()? >> (bit & 7) & 1),
        S7Type::Byte | S7Type::USInt => be(1)? as f64,
        S7Type::SInt => f64::from(be(1)? as u8 as i8),
        S7Type::Word | S7Type::UInt => be(2)? as f64,
        S7Type::Int => f64::from(be(2)? as u16 as i16),
        S7Type::DWord | S7Type::UDInt => be(4)? as f64,
        S7Type::DInt | S7Type::Time => f64::from(be(4)? as u32 as i32),
        S7Type::LInt => be(8)? as i64 as f64,
        S7Type::ULInt => be(8)? as f64,
        S7Type::Real => f64::from(f32::from_bits(be(4)? as u32)),
        S7Type::LReal => f64::from_bits(be(8)?),
        S7Type::S5Time => s5time_ms(be(2)? as u16)? as f64,
        S7Type::DateAndTime => date_and_time_ns(b)? as f64,
        S7Type::Dtl => dtl_ns(b)? as f64,
        S7Type::Char | S7Type::String(_) | S7Type::WString(_) => return None,
    })
}

/// Milliseconds of an S5TIME word (time base in bits 13-12, three BCD digits).
pub fn s5time_ms(word: u16) -> Option<u32> {
    let base = S5TIME_BASE_MS[usize::from(word >> 12 & 3)];
    let hundreds = memory::from_bcd((word >> 8 & 0xF) as u8)?;
    let rest = memory::from_bcd(word as u8)?;
    Some((hundreds * 100 + rest) * base)
}

/// Nanoseconds since the UNIX epoch of a DATE_AND_TIME (8 BCD bytes).
pub fn date_and_time_ns(b: &[u8]) -> Option<i64> {
    let [y, mo, d, h, mi, s, ms_high, ms_low_dow] = *b.first_chunk::<8>()?;
    let year = memory::from_bcd(y)?;
    let year = i64::from(if year >= 90 { 1900 + year } else { 2000 + year });
    let ms = memory::from_bcd(ms_high)? * 10 + memory::from_bcd(ms_low_dow >> 4)?;
    let seconds = civil_seconds(
        year,
        memory::from_bcd(mo)?,
        memory::from_bcd(d)?,
        (
            memory::from_bcd(h)?,
            memory::from_bcd(mi)?,
            memory::from_bcd(s)?,
        ),
    )?;
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(ms) * 1_000_000)
}

/// Nanoseconds since the UNIX epoch of a DTL (12 bytes).
pub fn dtl_ns(b: &[u8]) -> Option<i64> {
    let [y0, y1, mo, d, _weekday, h, mi, s, n0, n1, n2, n3] = *b.first_chunk::<12>()?;
    let ns = u32::from_be_bytes([n0, n1, n2, n3]);
    if ns >= 1_000_000_000 {
        return None;
    }
    let year = i64::from(u16::from_be_bytes([y0, y1]));
    let seconds = civil_seconds(year, mo.into(), d.into(), (h.into(), mi.into(), s.into()))?;
    seconds
        .checked_mul(1_000_000_000)?
        .checked_add(i64::from(ns))
}

fn civil_seconds(year: i64, month: u32, day: u32, (h, mi, s): (u32, u32, u32)) -> Option<i64> {
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let days = memory::days_from_civil(year, month, day);
    // 2024-02-31 would silently be March 2nd: refuse what does not exist.
    if memory::civil_from_days(days) != (year, month, day) {
        return None;
    }
    Some(days * 86_400 + i64::from(h * 3600 + mi * 60 + s))
}

fn same(tag: &FarmTag, expected: f64, value: f64) -> bool {
    if tag.is_scaled() {
        (expected - value).abs() <= 1e-12 * expected.abs().max(1.0)
    } else {
        expected == value
    }
}

fn matches_at(device: u32, tag: &FarmTag, counter: u8, value: f64) -> bool {
    expected_number(device, tag, counter).is_some_and(|e| same(tag, e, value))
}

/// Checks a delivered number (see the module doc for what is delivered).
pub fn check_number(device: u32, tag: &FarmTag, value: f64) -> Check {
    if tag.data_type.is_text() || !value.is_finite() {
        return Check::Wrong;
    }
    let size = tag.data_type.byte_size();
    if let Some(slot) = slot_at(tag.area, tag.byte) {
        if slot.start == tag.byte && slot_holds(slot.kind, tag.data_type) && !tag.is_scaled() {
            return check_slot_number(device, tag, slot.kind, value);
        }
    }
    let numeric = page_kind(tag.area, tag.byte) == PageKind::Numeric
        && page_kind(tag.area, tag.byte + size - 1) == PageKind::Numeric;
    if !numeric || matches!(tag.data_type, S7Type::S5Time) {
        return any_counter(device, tag, value);
    }
    let counter = match tag.data_type {
        // Bits 0-3 are fixed; bits 4-7 are counter bits: any 0 or 1 passes.
        S7Type::Bool if tag.bit >= 4 => {
            return if value == 0.0 || value == 1.0 {
                Check::Served(None)
            } else {
                Check::Wrong
            }
        }
        S7Type::Bool => 0,
        _ => match raw_bytes(tag, value) {
            Some(raw) => counter_in(tag.byte, &raw[..size as usize]),
            None => return Check::Wrong,
        },
    };
    if !matches_at(device, tag, counter, value) {
        return Check::Wrong;
    }
    Check::Served((size >= 2).then_some(counter))
}

/// The counter carried by numeric bytes read from `start` on (with only
/// one byte, its nibble in place and the other nibble 0).
fn counter_in(start: u32, raw: &[u8]) -> u8 {
    let mut counter = 0u8;
    for (offset, byte) in (start..).zip(raw.iter().take(2)) {
        let nibble = byte >> 4;
        counter |= if offset % 2 == 0 { nibble } else { nibble << 4 };
    }
    counter
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// The raw big-endian bytes behind a delivered number, for the types whose
/// bytes can be numeric bytes.
fn raw_bytes(tag: &FarmTag, value: f64) -> Option<[u8; 8]> {
    let raw = if tag.is_scaled() {
        (value - tag.offset) / tag.scale
    } else {
        value
    };
    let int = |min: f64, max: f64, size: usize| -> Option<[u8; 8]> {
        let r = raw.round();
        if !(min..=max).contains(&r) {
            return None;
        }
        let mut out = [0u8; 8];
        out[..size].copy_from_slice(&(r as i64).to_be_bytes()[8 - size..]);
        Some(out)
    };
    match tag.data_type {
        S7Type::Byte | S7Type::USInt => int(0.0, 255.0, 1),
        S7Type::SInt => int(-128.0, 127.0, 1),
        S7Type::Word | S7Type::UInt => int(0.0, 65535.0, 2),
        S7Type::Int => int(-32768.0, 32767.0, 2),
        S7Type::DWord | S7Type::UDInt => int(0.0, 4_294_967_295.0, 4),
        S7Type::DInt | S7Type::Time => int(-2_147_483_648.0, 2_147_483_647.0, 4),
        S7Type::LInt => (-TWO_POW_63..TWO_POW_63)
            .contains(&raw)
            .then(|| (raw as i64).to_be_bytes()),
        S7Type::ULInt => (0.0..2.0 * TWO_POW_63)
            .contains(&raw)
            .then(|| (raw as u64).to_be_bytes()),
        S7Type::Real => {
            let mut out = [0u8; 8];
            out[..4].copy_from_slice(&(raw as f32).to_be_bytes());
            Some(out)
        }
        S7Type::LReal => Some(raw.to_be_bytes()),
        _ => None,
    }
}

/// Whether a slot of `kind` is a value of `data_type` when read whole.
fn slot_holds(kind: SlotKind, data_type: S7Type) -> bool {
    matches!(
        (kind, data_type),
        (SlotKind::DateAndTime, S7Type::DateAndTime)
            | (SlotKind::Dtl, S7Type::Dtl)
            | (SlotKind::S5Time, S7Type::S5Time)
    ) || matches!((kind, data_type), (SlotKind::String(a), S7Type::String(b)) if a == b)
        || matches!((kind, data_type), (SlotKind::WString(a), S7Type::WString(b)) if a == b)
}

fn slot_seed(device: u32, tag: &FarmTag) -> u64 {
    memory::slot_seed(area_seed(device, tag.area), tag.byte)
}

/// A date or S5TIME read whole from its slot: the counter from the value's
/// distance to the slot's base.
fn check_slot_number(device: u32, tag: &FarmTag, kind: SlotKind, value: f64) -> Check {
    let seed = slot_seed(device, tag);
    let steps = |base_s: i64| ((value / 1e9 - base_s as f64) / DATE_STEP_S as f64).round();
    let counter = match kind {
        SlotKind::DateAndTime => steps(dt_instant(seed, 0).0),
        SlotKind::Dtl => steps(dtl_instant(seed, 0).0),
        SlotKind::S5Time => {
            let (base, count) = s5time_parts(seed, 0);
            let digits = value / f64::from(S5TIME_BASE_MS[usize::from(base)]);
            (digits - f64::from(count)).rem_euclid(1000.0)
        }
        SlotKind::String(_) | SlotKind::WString(_) => return Check::Wrong,
    };
    if !(0.0..=255.0).contains(&counter) || !matches_at(device, tag, counter as u8, value) {
        return Check::Wrong;
    }
    Check::Served(Some(counter as u8))
}

/// The slow path: the first counter whose value matches.
fn any_counter(device: u32, tag: &FarmTag, value: f64) -> Check {
    match (0..=255u8).find(|&c| matches_at(device, tag, c, value)) {
        Some(c) if tag.data_type.byte_size() >= 2 => Check::Served(Some(c)),
        Some(_) => Check::Served(None),
        None => Check::Wrong,
    }
}

/// Checks delivered text: a CHAR as its one byte, a STRING[N] or
/// WSTRING[N] read from a slot of that length as its first L characters
/// (UTF-8). Text tags elsewhere cannot have been served and are wrong.
pub fn check_text(device: u32, tag: &FarmTag, text: &[u8]) -> Check {
    match tag.data_type {
        S7Type::Char => check_char(device, tag, text),
        S7Type::String(_) | S7Type::WString(_) => {
            let aligned = slot_at(tag.area, tag.byte)
                .filter(|slot| slot.start == tag.byte && slot_holds(slot.kind, tag.data_type));
            let (Some(slot), Some(digits)) = (aligned, text.first_chunk::<2>()) else {
                return Check::Wrong;
            };
            let Some(counter) = counter_from_digits(*digits) else {
                return Check::Wrong;
            };
            let seed = slot_seed(device, tag);
            let same = match slot.kind {
                SlotKind::String(n) => same_string(seed, n, counter, text),
                SlotKind::WString(n) => same_wstring(seed, n, counter, text),
                _ => false,
            };
            if same {
                Check::Served(Some(counter))
            } else {
                Check::Wrong
            }
        }
        _ => Check::Wrong,
    }
}

fn check_char(device: u32, tag: &FarmTag, text: &[u8]) -> Check {
    let byte_at = |counter: u8| {
        let mut byte = [0u8];
        fill(device, tag.area, tag.byte, counter, &mut byte);
        byte[0]
    };
    let same = |byte: u8| match text {
        [] => byte == 0,
        [t] => *t == byte,
        _ => false,
    };
    // Inside a STRING slot past the counter digits the byte is fixed.
    let fixed = slot_at(tag.area, tag.byte)
        .is_some_and(|slot| matches!(slot.kind, SlotKind::String(_)) && tag.byte >= slot.start + 4);
    if fixed {
        return if same(byte_at(0)) {
            Check::Served(None)
        } else {
            Check::Wrong
        };
    }
    if (0..=255u8).any(|c| same(byte_at(c))) {
        Check::Served(None)
    } else {
        Check::Wrong
    }
}

fn same_string(seed: u64, n: u8, counter: u8, text: &[u8]) -> bool {
    let mut slot = [0u8; memory::SLOT_SIZE_MAX];
    memory::render_slot_seeded(seed, SlotKind::String(n), counter, &mut slot);
    let len = usize::from(slot[1]);
    slot.get(2..2 + len) == Some(text)
}

fn same_wstring(seed: u64, n: u16, counter: u8, text: &[u8]) -> bool {
    let len = memory::text_len(seed, u32::from(n), counter);
    let mut at = 0usize;
    for position in 0..len {
        let unit = memory::wstring_unit(seed, position, counter);
        let Some(c) = char::from_u32(u32::from(unit)) else {
            return false;
        };
        let mut utf8 = [0u8; 4];
        let encoded = c.encode_utf8(&mut utf8).as_bytes();
        if text.get(at..at + encoded.len()) != Some(encoded) {
            return false;
        }
        at += encoded.len();
    }
    at == text.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::s7::layout::farm_tags;

    /// What millrace would deliver for `tag` read under `counter`: the
    /// number, or the text.
    fn delivered(device: u32, tag: &FarmTag, counter: u8) -> Result<f64, Vec<u8>> {
        if !tag.data_type.is_text() {
            return Ok(expected_number(device, tag, counter).expect("a valid value"));
        }
        let size = tag.data_type.byte_size() as usize;
        let mut bytes = vec![0u8; size];
        fill(device, tag.area, tag.byte, counter, &mut bytes);
        Err(match tag.data_type {
            S7Type::Char => bytes,
            S7Type::String(_) => bytes[2..2 + usize::from(bytes[1])].to_vec(),
            S7Type::WString(_) => {
                let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
                let units: Vec<u16> = bytes[4..4 + 2 * len]
                    .chunks(2)
                    .map(|u| u16::from_be_bytes([u[0], u[1]]))
                    .collect();
                String::from_utf16(&units).unwrap().into_bytes()
            }
            _ => unreachable!(),
        })
    }

    fn check(device: u32, tag: &FarmTag, value: &Result<f64, Vec<u8>>) -> Check {
        match value {
            Ok(v) => check_number(device, tag, *v),
            Err(text) => check_text(device, tag, text),
        }
    }

    #[test]
    fn every_emitted_tag_checks_under_every_counter_and_carries_it() {
        let tags = farm_tags(800);
        for device in [0u32, 3, 99_999] {
            for tag in &tags {
                for counter in [0u8, 1, 0x0F, 0x10, 0x7E, 0xFF] {
                    let value = delivered(device, tag, counter);
                    let found = check(device, tag, &value);
                    let whole =
                        tag.data_type.byte_size() >= 2 && !matches!(tag.data_type, S7Type::Char);
                    let expected = Check::Served(whole.then_some(counter));
                    assert_eq!(found, expected, "{tag:?} counter {counter} {value:?}");
                }
            }
        }
    }

    #[test]
    fn wrong_devices_neighbours_and_flipped_values_are_caught() {
        let tags = farm_tags(800);
        let (mut wrong, mut total) = (0u32, 0u32);
        for tag in tags.iter().filter(|t| t.data_type.byte_size() >= 2) {
            let counter = 0x5A;
            let value = delivered(7, tag, counter);
            let mut neighbour = *tag;
            neighbour.byte += 2;
            let others = [(8, *tag), (7, neighbour)];
            for (device, other) in others {
                total += 1;
                wrong += u32::from(check(device, &other, &value) == Check::Wrong);
            }
            if let Ok(v) = value {
                let flipped = if v == 0.0 {
                    1.0
                } else {
                    v * (1.0 + 1e-6) + 1.0
                };
                assert_eq!(check_number(7, tag, flipped), Check::Wrong, "{tag:?}");
            }
        }
        // A wrong device or tag passes with probability about 1/225 or less.
        assert!(wrong * 100 >= total * 95, "{wrong} of {total} caught");
    }

    #[test]
    fn texts_dates_and_odd_values_are_refused() {
        let string = FarmTag {
            area: S7Area::Db(1),
            byte: 512,
            bit: 0,
            data_type: S7Type::String(30),
            scale: 1.0,
            offset: 0.0,
        };
        let Err(mut text) = delivered(1, &string, 9) else {
            unreachable!()
        };
        assert_eq!(&text[..2], b"09");
        assert_eq!(check_text(1, &string, &text), Check::Served(Some(9)));
        text.push(b'x');
        assert_eq!(check_text(1, &string, &text), Check::Wrong);
        assert_eq!(check_text(1, &string, b"0"), Check::Wrong);
        assert_eq!(check_text(1, &string, b"zz"), Check::Wrong);
        // Another length on the same slot cannot have been served.
        let short = FarmTag {
            data_type: S7Type::String(20),
            ..string
        };
        assert_eq!(check_text(1, &short, &text[..text.len() - 1]), Check::Wrong);
        let word = FarmTag {
            area: S7Area::Merker,
            byte: 0,
            data_type: S7Type::Word,
            ..string
        };
        for bad in [f64::NAN, f64::INFINITY, -1.0, 65536.0, 0.5] {
            assert_eq!(check_number(1, &word, bad), Check::Wrong, "{bad}");
        }
        // A STRING header read as a WORD is still a value the farm served.
        let header = FarmTag {
            area: S7Area::Db(1),
            byte: 512,
            data_type: S7Type::Word,
            ..string
        };
        let value = expected_number(1, &header, 0x33).unwrap();
        assert!(matches!(check_number(1, &header, value), Check::Served(_)));
    }

    #[test]
    fn decoders_follow_the_encodings() {
        // S5TIME 2 s as 200 x 10 ms and 2 x 1 s; an invalid digit.
        assert_eq!(s5time_ms(0x0200), Some(2000));
        assert_eq!(s5time_ms(0x2002), Some(2000));
        assert_eq!(s5time_ms(0x00A0), None);
        // 2024-02-29 13:45:07.123, Thursday; 1995 reads as 1995.
        let dt = [0x24, 0x02, 0x29, 0x13, 0x45, 0x07, 0x12, 0x35];
        let ns = date_and_time_ns(&dt).unwrap();
        let seconds = memory::days_from_civil(2024, 2, 29) * 86_400 + 13 * 3600 + 45 * 60 + 7;
        assert_eq!(ns, seconds * 1_000_000_000 + 123_000_000);
        let dt95 = [0x95, 0x01, 0x01, 0, 0, 0, 0, 0x01];
        let ns95 = date_and_time_ns(&dt95).unwrap();
        assert_eq!(
            ns95 / 1_000_000_000,
            memory::days_from_civil(1995, 1, 1) * 86_400
        );
        assert_eq!(date_and_time_ns(&[0x24, 0x02, 0x30, 0, 0, 0, 0, 0]), None);
        let mut dtl = [0x07, 0xE8, 2, 29, 5, 13, 45, 7, 0, 0, 0, 0];
        dtl[8..].copy_from_slice(&123_456_789u32.to_be_bytes());
        assert_eq!(dtl_ns(&dtl), Some(seconds * 1_000_000_000 + 123_456_789));
        dtl[8..].copy_from_slice(&1_000_000_000u32.to_be_bytes());
        assert_eq!(dtl_ns(&dtl), None);
        assert_eq!(decode_number(S7Type::Int, 0, &[0xFF, 0xFE]), Some(-2.0));
        assert_eq!(decode_number(S7Type::Bool, 3, &[0x08]), Some(1.0));
        assert_eq!(
            decode_number(S7Type::Real, 0, &1.5f32.to_be_bytes()),
            Some(1.5)
        );
    }
}
