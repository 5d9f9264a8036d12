//! What a simulated S7 device holds: every byte of every area is a function
//! of (device, area, byte offset, counter), so that any value read anywhere
//! can be checked knowing only its tag (device, area, byte, type).
//!
//! The counter is the device's count of answered Read Var jobs (its low
//! byte): every item of one answer sees the same counter, and the next
//! answer the next one, so values change from poll to poll.
//!
//! ## Numeric bytes (M, I, Q, and the numeric pages of every DB)
//!
//! ```text
//! bit    7 6 5 4   3 2 1 0
//!        nibble    check4(device, area, offset)   in 0..=14, never 0xF
//! nibble = counter & 0xF at an even offset, counter >> 4 at an odd one
//! ```
//!
//! - Any value of two bytes or more carries the whole counter (one low and
//!   one high nibble), so it is checked by reading the counter out of it and
//!   recomputing every byte: a wrong device, area, offset, byte order or a
//!   flipped bit passes with probability about 1/15 per byte.
//! - A byte carries one nibble of the counter and a 4-bit check (1/15).
//! - A bool at bits 0-3 is a fixed bit of the check (it never changes); bits
//!   4-7 are counter bits and cannot be checked (emitted configs use 0-3).
//! - No byte ends in 0xF, so no byte is 0x7F or 0xFF: a REAL or LREAL read
//!   anywhere is never NaN or infinite (its exponent would need one), and a
//!   64-bit integer rounded to a float keeps its top two bytes exact (a
//!   carry out of the low bytes stops at the first byte that is not 0xFF).
//!
//! ## Text and date pages (data blocks only)
//!
//! A DB is a sequence of 256-byte pages whose kind repeats every eight pages
//! ([`PAGE_CYCLE`]): numeric pages as above, and pages of fixed *slots*
//! holding values that only make sense whole:
//!
//! | page kind    | slots (offset in the page)                                    |
//! |--------------|---------------------------------------------------------------|
//! | `Strings`    | 8 x STRING[30] at 32 i                                        |
//! | `Dates`      | 16 x DATE_AND_TIME at 8 i, 10 x DTL at 128 + 12 i, 4 x S5TIME at 248 + 2 i |
//! | `WStrings`   | 2 x WSTRING[62] at 128 i                                      |
//! | `LongString` | 1 x STRING[254] at 0                                          |
//!
//! - STRING[N]: max-length byte N, actual length L = 2 + (seed + counter)
//!   mod (N - 1), then N characters: the counter as two upper-case hex
//!   digits, then fixed printable ASCII (the characters past L stay in
//!   memory, as in a PLC). A CHAR read at position 2 or later of a slot is
//!   such a fixed character.
//! - WSTRING[N]: the same with u16 lengths and UTF-16BE code units; the
//!   fixed characters include Latin-1, Greek and Cyrillic letters (all below
//!   U+0800, two UTF-8 bytes at most).
//! - DATE_AND_TIME (BCD, 2020-2023) and DTL (2024-2027): a per-slot instant
//!   plus 61 s per counter step, milliseconds (DT) or nanoseconds (DTL)
//!   stepping too, with the right weekday (1 = Sunday).
//! - S5TIME: a per-slot time base and three BCD digits (seed + counter) mod
//!   1000.
//!
//! Every slot's contents are valid for its type, and carry the counter in a
//! form that can be read back ([`super::check`]).

use crate::config::S7Area;

/// Bytes per page of a data block.
pub const PAGE_SIZE: u32 = 256;
/// The bytes of the largest slot (a STRING[254]).
pub const SLOT_SIZE_MAX: usize = 256;

/// What a 256-byte page of a data block holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageKind {
    Numeric,
    Strings,
    Dates,
    WStrings,
    LongString,
}

/// Page kinds of a DB by page index modulo 8: half the bytes numeric.
pub const PAGE_CYCLE: [PageKind; 8] = [
    PageKind::Numeric,
    PageKind::Numeric,
    PageKind::Strings,
    PageKind::Numeric,
    PageKind::Dates,
    PageKind::Numeric,
    PageKind::WStrings,
    PageKind::LongString,
];

/// Bytes of one cycle of page kinds.
pub const CYCLE_SIZE: u32 = PAGE_SIZE * PAGE_CYCLE.len() as u32;

/// The value a slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotKind {
    String(u8),
    WString(u16),
    DateAndTime,
    Dtl,
    S5Time,
}

impl SlotKind {
    pub const fn size(self) -> u32 {
        match self {
            SlotKind::String(n) => n as u32 + 2,
            SlotKind::WString(n) => 2 * n as u32 + 4,
            SlotKind::DateAndTime => 8,
            SlotKind::Dtl => 12,
            SlotKind::S5Time => 2,
        }
    }
}

/// One slot: where it starts in its area, and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub start: u32,
    pub kind: SlotKind,
}

const STRINGS_SLOT: SlotKind = SlotKind::String(30);
const WSTRINGS_SLOT: SlotKind = SlotKind::WString(62);
const LONG_STRING_SLOT: SlotKind = SlotKind::String(254);
/// Where the DTL and S5TIME slots of a dates page begin.
const DATES_DTL_START: u32 = 128;
const DATES_S5TIME_START: u32 = 248;

const _: () = assert!(8 * STRINGS_SLOT.size() == PAGE_SIZE);
const _: () = assert!(2 * WSTRINGS_SLOT.size() == PAGE_SIZE);
const _: () = assert!(LONG_STRING_SLOT.size() == PAGE_SIZE);
const _: () = assert!(16 * SlotKind::DateAndTime.size() == DATES_DTL_START);
const _: () = assert!(DATES_DTL_START + 10 * SlotKind::Dtl.size() == DATES_S5TIME_START);
const _: () = assert!(DATES_S5TIME_START + 4 * SlotKind::S5Time.size() == PAGE_SIZE);
const _: () = assert!(LONG_STRING_SLOT.size() as usize == SLOT_SIZE_MAX);

pub const fn page_kind(area: S7Area, offset: u32) -> PageKind {
    match area {
        S7Area::Db(_) => PAGE_CYCLE[((offset / PAGE_SIZE) % PAGE_CYCLE.len() as u32) as usize],
        _ => PageKind::Numeric,
    }
}

/// The slot holding byte `offset` of `area`; `None` for a numeric byte.
pub const fn slot_at(area: S7Area, offset: u32) -> Option<Slot> {
    let page_start = offset - offset % PAGE_SIZE;
    let at = offset % PAGE_SIZE;
    let (start, kind) = match page_kind(area, offset) {
        PageKind::Numeric => return None,
        PageKind::Strings => (at - at % STRINGS_SLOT.size(), STRINGS_SLOT),
        PageKind::WStrings => (at - at % WSTRINGS_SLOT.size(), WSTRINGS_SLOT),
        PageKind::LongString => (0, LONG_STRING_SLOT),
        PageKind::Dates if at < DATES_DTL_START => (at - at % 8, SlotKind::DateAndTime),
        PageKind::Dates if at < DATES_S5TIME_START => {
            let rel = at - DATES_DTL_START;
            (DATES_DTL_START + rel - rel % 12, SlotKind::Dtl)
        }
        PageKind::Dates => (at - at % 2, SlotKind::S5Time),
    };
    Some(Slot {
        start: page_start + start,
        kind,
    })
}

/// MurmurHash3's 64-bit finaliser: a bijective, well-mixing step.
pub(crate) const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX: u64 = 0xd6e8_feb8_6659_fd93;

/// One full mix per (device, area): the per-byte work is a multiply or two.
pub const fn area_seed(device: u32, area: S7Area) -> u64 {
    fmix64((device as u64) << 32 | (area.code() as u64) << 16 | area.db_number() as u64)
}

/// `x` reduced to `0..n` (Lemire's multiply-shift on its high half).
const fn reduce(x: u64, n: u32) -> u32 {
    (((x >> 32) * n as u64) >> 32) as u32
}

/// The fixed low nibble of a numeric byte: 0..=14.
pub const fn check4(seed: u64, offset: u32) -> u8 {
    let x = (seed ^ (offset as u64).wrapping_mul(GOLDEN)).wrapping_mul(MIX);
    reduce(x, 15) as u8
}

/// The numeric byte at `offset` under an `area_seed`.
pub const fn numeric_byte(seed: u64, offset: u32, counter: u8) -> u8 {
    let nibble = if offset % 2 == 0 {
        counter & 0x0F
    } else {
        counter >> 4
    };
    nibble << 4 | check4(seed, offset)
}

/// The seed of the slot starting at `start` of the area with `seed`.
pub(super) const fn slot_seed(seed: u64, start: u32) -> u64 {
    fmix64(seed ^ (start as u64 + 1).wrapping_mul(GOLDEN))
}

/// Characters of STRING slots past the counter digits.
const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.:/#+";
/// Characters of WSTRING slots past the counter digits (all below U+0800).
const WCHARSET: &[char] = &[
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'K', 'M', 'N', 'P', 'R', 'S', 'T', 'W', 'a', 'e', 'i',
    'o', 'u', 'x', 'y', 'z', '0', '1', '2', '3', '5', '7', ' ', '-', 'Ä', 'Ö', 'Ü', 'ä', 'ö', 'ü',
    'ß', 'é', 'è', 'à', 'ç', 'ñ', '°', 'µ', 'Δ', 'Θ', 'Λ', 'Π', 'Σ', 'Φ', 'Ψ', 'Ω', 'α', 'β', 'γ',
    'δ', 'λ', 'π', 'σ', 'ω', 'Ж', 'З', 'И', 'Л', 'П', 'Ф', 'Ц', 'Ч', 'Ш', 'Я', 'ж', 'и', 'л', 'ф',
    'ч', 'я',
];
const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The counter as two upper-case hex digits.
pub const fn counter_digits(counter: u8) -> [u8; 2] {
    [HEX[(counter >> 4) as usize], HEX[(counter & 0xF) as usize]]
}

/// The counter back from two upper-case hex digits.
pub fn counter_from_digits(digits: [u8; 2]) -> Option<u8> {
    let value = |d: u8| HEX.iter().position(|&h| h == d);
    Some((value(digits[0])? << 4 | value(digits[1])?) as u8)
}

const fn text_char_index(seed: u64, position: u32, len: usize) -> usize {
    let x = (seed ^ (position as u64 + 1).wrapping_mul(GOLDEN)).wrapping_mul(MIX);
    reduce(x, len as u32) as usize
}

/// Actual length of a text slot of capacity `n` (at least 2) under `counter`.
pub(super) const fn text_len(seed: u64, n: u32, counter: u8) -> u32 {
    2 + (seed as u32 % (n - 1) + counter as u32) % (n - 1)
}

/// Character `position` (0-based) of a STRING slot.
const fn string_char(seed: u64, position: u32, counter: u8) -> u8 {
    match position {
        0 => counter_digits(counter)[0],
        1 => counter_digits(counter)[1],
        _ => CHARSET[text_char_index(seed, position, CHARSET.len())],
    }
}

/// Code unit `position` of a WSTRING slot.
pub(super) fn wstring_unit(seed: u64, position: u32, counter: u8) -> u16 {
    match position {
        0 | 1 => u16::from(counter_digits(counter)[position as usize]),
        _ => WCHARSET[text_char_index(seed, position, WCHARSET.len())] as u16,
    }
}

/// 2020-01-01T00:00:00Z and 2024-01-01T00:00:00Z.
const DT_BASE_S: i64 = 1_577_836_800;
const DTL_BASE_S: i64 = 1_704_067_200;
/// Slots start within four years of their base.
const DATE_SPAN_S: u64 = 4 * 365 * 86_400;
/// Seconds a date moves per counter step (minutes and seconds both change).
pub const DATE_STEP_S: i64 = 61;

/// DATE_AND_TIME of a slot: (seconds since the UNIX epoch, milliseconds).
pub const fn dt_instant(seed: u64, counter: u8) -> (i64, u32) {
    let base = DT_BASE_S + (seed % DATE_SPAN_S) as i64;
    let ms = ((seed >> 40) as u32 % 1000 + counter as u32 * 7) % 1000;
    (base + counter as i64 * DATE_STEP_S, ms)
}

/// DTL of a slot: (seconds since the UNIX epoch, nanoseconds).
pub const fn dtl_instant(seed: u64, counter: u8) -> (i64, u32) {
    let base = DTL_BASE_S + (seed % DATE_SPAN_S) as i64;
    let ns = ((seed >> 32) as u32 % 1_000_000_000 + counter as u32 * 1_000_003) % 1_000_000_000;
    (base + counter as i64 * DATE_STEP_S, ns)
}

/// The time bases of S5TIME (bits 13-12) in milliseconds.
pub const S5TIME_BASE_MS: [u32; 4] = [10, 100, 1_000, 10_000];

/// S5TIME of a slot: (time base code, three-digit count).
pub const fn s5time_parts(seed: u64, counter: u8) -> (u8, u16) {
    let base = (seed & 3) as u8;
    let count = ((seed >> 8) % 1000 + counter as u64) % 1000;
    (base, count as u16)
}

pub const fn bcd(value: u32) -> u8 {
    (((value / 10 % 10) << 4) | (value % 10)) as u8
}

pub fn from_bcd(byte: u8) -> Option<u32> {
    let (high, low) = (byte >> 4, byte & 0xF);
    (high <= 9 && low <= 9).then_some(u32::from(high) * 10 + u32::from(low))
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic
/// Gregorian; Howard Hinnant's `civil_from_days`).
pub const fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (Hinnant's `days_from_civil`).
pub const fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (if month > 2 { month - 3 } else { month + 9 }) as i64;
    let doy = (153 * mp + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Siemens weekday of a day count: 1 = Sunday .. 7 = Saturday.
pub const fn weekday(days: i64) -> u8 {
    ((days + 4).rem_euclid(7) + 1) as u8
}

/// Calendar fields of an instant: (year, month, day, weekday, hour, minute,
/// second).
pub const fn calendar(seconds: i64) -> (i64, u32, u32, u8, u32, u32, u32) {
    let days = seconds.div_euclid(86_400);
    let in_day = seconds.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    (
        year,
        month,
        day,
        weekday(days),
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
    )
}

/// Writes slot `slot` of the area with seed `seed` as it is under `counter`
/// into `out`; returns its size.
pub fn render_slot(seed: u64, slot: Slot, counter: u8, out: &mut [u8; SLOT_SIZE_MAX]) -> usize {
    render_slot_seeded(slot_seed(seed, slot.start), slot.kind, counter, out)
}

/// [`render_slot`] under the slot's own seed (`slot_seed`).
pub fn render_slot_seeded(
    s: u64,
    kind: SlotKind,
    counter: u8,
    out: &mut [u8; SLOT_SIZE_MAX],
) -> usize {
    let size = kind.size() as usize;
    match kind {
        SlotKind::String(n) => {
            out[0] = n;
            out[1] = text_len(s, u32::from(n), counter) as u8;
            for (position, byte) in (0u32..).zip(&mut out[2..size]) {
                *byte = string_char(s, position, counter);
            }
        }
        SlotKind::WString(n) => {
            out[0..2].copy_from_slice(&n.to_be_bytes());
            let len = text_len(s, u32::from(n), counter) as u16;
            out[2..4].copy_from_slice(&len.to_be_bytes());
            for (position, unit) in (0u32..).zip(out[4..size].chunks_exact_mut(2)) {
                unit.copy_from_slice(&wstring_unit(s, position, counter).to_be_bytes());
            }
        }
        SlotKind::DateAndTime => {
            let (seconds, ms) = dt_instant(s, counter);
            let (year, month, day, weekday, hour, minute, second) = calendar(seconds);
            out[..8].copy_from_slice(&[
                bcd(year.rem_euclid(100) as u32),
                bcd(month),
                bcd(day),
                bcd(hour),
                bcd(minute),
                bcd(second),
                bcd(ms / 10),
                bcd(ms % 10) << 4 | weekday,
            ]);
        }
        SlotKind::Dtl => {
            let (seconds, ns) = dtl_instant(s, counter);
            let (year, month, day, weekday, hour, minute, second) = calendar(seconds);
            out[0..2].copy_from_slice(&(year as u16).to_be_bytes());
            out[2..8].copy_from_slice(&[
                month as u8,
                day as u8,
                weekday,
                hour as u8,
                minute as u8,
                second as u8,
            ]);
            out[8..12].copy_from_slice(&ns.to_be_bytes());
        }
        SlotKind::S5Time => {
            let (base, count) = s5time_parts(s, counter);
            let bcd3 = (u16::from(bcd(u32::from(count) / 10)) << 4) | (count % 10);
            out[0..2].copy_from_slice(&(u16::from(base) << 12 | bcd3).to_be_bytes());
        }
    }
    size
}

/// Fills `out` with the bytes of `area` of `device` from byte `start` on,
/// as they are when the device's counter is `counter`. The caller checked
/// that the range is inside the area.
pub fn fill(device: u32, area: S7Area, start: u32, counter: u8, out: &mut [u8]) {
    let seed = area_seed(device, area);
    let mut slot_bytes = [0u8; SLOT_SIZE_MAX];
    let mut at = 0usize;
    while at < out.len() {
        let offset = start + at as u32;
        let Some(slot) = slot_at(area, offset) else {
            // The rest of this numeric page (or all of it for M, I, Q).
            let page_end = match area {
                S7Area::Db(_) => (offset / PAGE_SIZE + 1) * PAGE_SIZE,
                _ => u32::MAX,
            };
            let run = ((page_end - offset) as usize).min(out.len() - at);
            for (i, byte) in out[at..at + run].iter_mut().enumerate() {
                *byte = numeric_byte(seed, offset + i as u32, counter);
            }
            at += run;
            continue;
        };
        let size = render_slot(seed, slot, counter, &mut slot_bytes);
        let from = (offset - slot.start) as usize;
        let run = (size - from).min(out.len() - at);
        out[at..at + run].copy_from_slice(&slot_bytes[from..from + run]);
        at += run;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_bytes_never_end_in_f_and_spread_their_checks() {
        let seed = area_seed(7, S7Area::Merker);
        let mut seen = [0u32; 16];
        for offset in 0..15_000 {
            for counter in [0u8, 0x5A, 0xFF] {
                let byte = numeric_byte(seed, offset, counter);
                assert_ne!(byte & 0xF, 0xF);
                let nibble = if offset % 2 == 0 {
                    counter & 0xF
                } else {
                    counter >> 4
                };
                assert_eq!(byte >> 4, nibble);
            }
            seen[usize::from(check4(seed, offset))] += 1;
        }
        assert_eq!(seen[15], 0);
        assert!(
            seen[..15].iter().all(|&n| (800..1200).contains(&n)),
            "{seen:?}"
        );
    }

    #[test]
    fn pages_cycle_and_slots_cover_their_pages() {
        let db = S7Area::Db(3);
        assert_eq!(page_kind(db, 0), PageKind::Numeric);
        assert_eq!(page_kind(db, 512), PageKind::Strings);
        assert_eq!(page_kind(db, 512 + CYCLE_SIZE), PageKind::Strings);
        assert_eq!(page_kind(S7Area::Merker, 512), PageKind::Numeric);
        assert_eq!(slot_at(db, 10), None);
        let string = slot_at(db, 512 + 33).unwrap();
        assert_eq!((string.start, string.kind), (544, SlotKind::String(30)));
        assert_eq!(slot_at(db, 1024 + 7).unwrap().kind, SlotKind::DateAndTime);
        let dtl = slot_at(db, 1024 + 128 + 13).unwrap();
        assert_eq!((dtl.start, dtl.kind), (1024 + 140, SlotKind::Dtl));
        let s5 = slot_at(db, 1024 + 255).unwrap();
        assert_eq!((s5.start, s5.kind), (1024 + 254, SlotKind::S5Time));
        assert_eq!(slot_at(db, 1536 + 200).unwrap().start, 1536 + 128);
        assert_eq!(slot_at(db, 1792 + 255).unwrap().start, 1792);
        // Every non-numeric page is tiled by its slots, without gaps.
        for page in 0..8u32 {
            let mut offset = page * PAGE_SIZE;
            while offset < (page + 1) * PAGE_SIZE {
                match slot_at(db, offset) {
                    None => offset += 1,
                    Some(slot) => {
                        assert_eq!(slot.start, offset, "page {page}");
                        offset += slot.kind.size();
                    }
                }
            }
            assert_eq!(offset, (page + 1) * PAGE_SIZE);
        }
    }

    #[test]
    fn calendar_round_trips_and_knows_its_weekdays() {
        // 2024-02-29 was a Thursday; 1970-01-01 too; 2000-01-02 a Sunday.
        let leap = days_from_civil(2024, 2, 29);
        assert_eq!(civil_from_days(leap), (2024, 2, 29));
        assert_eq!(weekday(leap), 5);
        assert_eq!(weekday(0), 5);
        assert_eq!(weekday(days_from_civil(2000, 1, 2)), 1);
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(calendar(1_704_067_200 + 3661), (2024, 1, 1, 2, 1, 1, 1));
    }

    #[test]
    fn slots_are_valid_for_their_types() {
        let seed = area_seed(1, S7Area::Db(1));
        let mut out = [0u8; SLOT_SIZE_MAX];
        for counter in [0u8, 1, 0x7F, 0xFF] {
            let slot = Slot {
                start: 512,
                kind: SlotKind::String(30),
            };
            assert_eq!(render_slot(seed, slot, counter, &mut out), 32);
            assert_eq!(out[0], 30);
            assert!((2..=30).contains(&out[1]));
            assert_eq!(counter_from_digits([out[2], out[3]]), Some(counter));
            assert!(out[2..32]
                .iter()
                .all(|b| b.is_ascii_graphic() || *b == b' '));
            let slot = Slot {
                start: 1024,
                kind: SlotKind::DateAndTime,
            };
            render_slot(seed, slot, counter, &mut out);
            assert!(out[..7].iter().all(|&b| from_bcd(b).is_some()));
            assert!((1..=7).contains(&(out[7] & 0xF)) && out[7] >> 4 <= 9);
            let slot = Slot {
                start: 1152,
                kind: SlotKind::Dtl,
            };
            render_slot(seed, slot, counter, &mut out);
            let year = u16::from_be_bytes([out[0], out[1]]);
            assert!((2024..=2028).contains(&year), "{year}");
            let (month, day, weekday) = (out[2], out[3], out[4]);
            assert!((1..=12).contains(&month) && (1..=31).contains(&day));
            let days = days_from_civil(year.into(), month.into(), day.into());
            assert_eq!(weekday, super::weekday(days));
            assert!(u32::from_be_bytes([out[8], out[9], out[10], out[11]]) < 1_000_000_000);
        }
    }

    #[test]
    fn fill_joins_numeric_bytes_and_slots_across_pages() {
        let area = S7Area::Db(2);
        let mut whole = vec![0u8; 3 * PAGE_SIZE as usize];
        fill(9, area, 0, 0x42, &mut whole);
        // Any sub-range is the same bytes.
        for (start, len) in [(0usize, 1usize), (255, 2), (500, 100), (530, 40), (700, 68)] {
            let mut part = vec![0u8; len];
            fill(9, area, start as u32, 0x42, &mut part);
            assert_eq!(part, whole[start..start + len], "{start}+{len}");
        }
        assert_eq!(whole[512], 30, "STRING[30] max length at the strings page");
    }
}
