//! The S7 words of a configuration: Step 7 absolute addresses (`DB10.DBX4.3`,
//! `MW2`, `IB0`, German `EB0`, `AD8`), the type words (`real`,
//! `string[20]`), which address width fits which type, and TSAPs. Pure
//! functions over text; the caller (`s7_device.rs`) puts the place in the
//! file around their errors.
//!
//! An address is a memory area, a byte offset, a size letter and, for a
//! bit, the bit:
//!
//! | form | area | size |
//! |---|---|---|
//! | `DB10.DBX4.3` | data block 10 | bit 3 of byte 4 |
//! | `DB10.DBB4`, `DB10.DBW4`, `DB10.DBD4` | data block 10 | byte, word, double word at byte 4 |
//! | `M0.1`, `MB2`, `MW2`, `MD4` | bit memory | bit, byte, word, double word |
//! | `I0.0` / `E0.0`, `IB0` / `EB0`, `IW4` / `EW4`, `ID0` / `ED0` | inputs | as above |
//! | `Q0.1` / `A0.1`, `QB0` / `AB0`, `QW0` / `AW0`, `QD8` / `AD8` | outputs | as above |
//!
//! Strict on purpose: one spelling per address (no spaces, no `DB10,X4.3`
//! or `MX0.1` short forms), so an address in a tag list reads and greps the
//! way it does in the PLC program's cross-reference. Two things are
//! relaxed: letters in any case, and a leading `%`, which is how TIA Portal
//! writes absolute addresses (`%DB10.DBX4.3`) and so what gets copied from it.

use std::fmt;

use super::suggest::did_you_mean;
use super::types::{S7Area, S7Type};
use crate::sample::TEXT_BYTES_MAX;

/// The last byte a Read Var item can address: its address field is 24 bits,
/// `byte << 3 | bit`.
pub const BYTE_MAX: u32 = 0x1F_FFFF;
/// Step 7's longest STRING: its length bytes are u8, and 255 is not allowed.
pub const STRING_CHARS_MAX: u16 = 254;
/// Step 7 allows WSTRING[16382], but a sample's text holds `TEXT_BYTES_MAX`
/// bytes of UTF-8 and one UTF-16 unit can take 3 of them (a surrogate pair
/// takes 4 for 2 units), so 341 units always fit and 342 may not.
pub const WSTRING_CHARS_MAX: u16 = (TEXT_BYTES_MAX / 3) as u16;
const _: () = assert!(WSTRING_CHARS_MAX as usize * 3 <= TEXT_BYTES_MAX);
const _: () = assert!((WSTRING_CHARS_MAX as usize + 1) * 3 > TEXT_BYTES_MAX);
/// Digits read for a byte or DB number before it is too big anyway; keeps
/// the arithmetic far inside u64.
const DIGITS_MAX: usize = 10;

/// The width an address names: its size letter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S7Size {
    Bit,
    Byte,
    Word,
    DWord,
}

impl S7Size {
    pub const fn bytes(self) -> u32 {
        match self {
            S7Size::Bit | S7Size::Byte => 1,
            S7Size::Word => 2,
            S7Size::DWord => 4,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            S7Size::Bit => "bit",
            S7Size::Byte => "byte",
            S7Size::Word => "word",
            S7Size::DWord => "double word",
        }
    }

    const fn letter(self) -> char {
        match self {
            S7Size::Bit => 'X',
            S7Size::Byte => 'B',
            S7Size::Word => 'W',
            S7Size::DWord => 'D',
        }
    }

    fn from_letter(letter: u8) -> Option<S7Size> {
        match letter {
            b'X' => Some(S7Size::Bit),
            b'B' => Some(S7Size::Byte),
            b'W' => Some(S7Size::Word),
            b'D' => Some(S7Size::DWord),
            _ => None,
        }
    }
}

/// A parsed Step 7 absolute address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct S7Address {
    pub area: S7Area,
    pub size: S7Size,
    /// 0..=`BYTE_MAX`.
    pub byte: u32,
    /// 0..=7 for a bit address, else 0.
    pub bit: u8,
    /// Written with the German mnemonics (`E`, `A`): messages answer in kind.
    pub german: bool,
}

impl fmt::Display for S7Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.area {
            S7Area::Db(n) => write!(f, "DB{n}.DB{}{}", self.size.letter(), self.byte)?,
            area => {
                let letter = match (area, self.german) {
                    (S7Area::Inputs, false) => 'I',
                    (S7Area::Inputs, true) => 'E',
                    (S7Area::Outputs, false) => 'Q',
                    (S7Area::Outputs, true) => 'A',
                    _ => 'M',
                };
                match self.size {
                    S7Size::Bit => write!(f, "{letter}{}", self.byte)?,
                    size => write!(f, "{letter}{}{}", size.letter(), self.byte)?,
                }
            }
        }
        if self.size == S7Size::Bit {
            write!(f, ".{}", self.bit)?;
        }
        Ok(())
    }
}

/// Why a text is not an address (the caller quotes the text).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    Empty,
    Spaces,
    TimersCounters,
    Peripheral,
    UnknownArea,
    DbNumberMissing,
    DbZero,
    DbTooBig,
    DbSizeMissing,
    DbSizeLetter,
    AreaSizeLetter,
    ByteMissing,
    ByteTooBig,
    BitMissing,
    BitNotAllowed(S7Size),
    BitRange,
    Trailing,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            AddressError::Empty => "it is empty",
            AddressError::Spaces => "an address has no spaces",
            AddressError::TimersCounters => "timers and counters (T, C, Z) are not read",
            AddressError::Peripheral => {
                "peripheral I/O (PI, PQ, PE, PA) is not read: read the process image \
                 (`IW256`, not `PIW256`)"
            }
            AddressError::UnknownArea => {
                "it does not start with an area: `DBn.`, `M`, `I` (`E`) or `Q` (`A`)"
            }
            AddressError::DbNumberMissing => "`DB` is not followed by a data block number",
            AddressError::DbZero => "data blocks number from 1 (there is no DB0)",
            AddressError::DbTooBig => "DB numbers are 1..=65535",
            AddressError::DbSizeMissing => {
                "after the DB number comes `.DBX`, `.DBB`, `.DBW` or `.DBD` \
                 (Step 7's form: `DB10.DBD4`)"
            }
            AddressError::DbSizeLetter => {
                "the size letter after `.DB` is X (bit), B (byte), W (word) or D (double word)"
            }
            AddressError::AreaSizeLetter => {
                "after the area comes a byte number (a bit: `M0.1`) or B, W, D \
                 (`MB2`, `MW2`, `MD4`)"
            }
            AddressError::ByteMissing => "no byte number",
            AddressError::ByteTooBig => {
                "the byte number is past 2097151, the last an S7 address carries \
                 (24 bits: byte << 3 | bit)"
            }
            AddressError::BitMissing => "a bit address needs its bit, `.0` to `.7`",
            AddressError::BitNotAllowed(size) => {
                return write!(f, "a {} address has no bit", size.name())
            }
            AddressError::BitRange => "the bit is 0..=7",
            AddressError::Trailing => "unexpected text after the address",
        };
        f.write_str(text)
    }
}

/// Parses a Step 7 absolute address (see the module comment).
pub fn parse_address(text: &str) -> Result<S7Address, AddressError> {
    if text.chars().any(char::is_whitespace) {
        return Err(AddressError::Spaces);
    }
    let upper = text.to_ascii_uppercase();
    let s = upper.strip_prefix('%').unwrap_or(&upper).as_bytes();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    if let Some(rest) = s.strip_prefix(b"DB") {
        return parse_db(rest);
    }
    let (area, german) = match s.first() {
        Some(b'M') => (S7Area::Merker, false),
        Some(b'I') => (S7Area::Inputs, false),
        Some(b'E') => (S7Area::Inputs, true),
        Some(b'Q') => (S7Area::Outputs, false),
        Some(b'A') => (S7Area::Outputs, true),
        Some(b'T' | b'C' | b'Z') => return Err(AddressError::TimersCounters),
        Some(b'P') => return Err(AddressError::Peripheral),
        _ => return Err(AddressError::UnknownArea),
    };
    let rest = s.get(1..).unwrap_or_default();
    let (size, rest) = match rest.first() {
        Some(c) if c.is_ascii_digit() => (S7Size::Bit, rest),
        Some(b'B') => (S7Size::Byte, rest.get(1..).unwrap_or_default()),
        Some(b'W') => (S7Size::Word, rest.get(1..).unwrap_or_default()),
        Some(b'D') => (S7Size::DWord, rest.get(1..).unwrap_or_default()),
        None => return Err(AddressError::ByteMissing),
        Some(_) => return Err(AddressError::AreaSizeLetter),
    };
    finish(area, size, rest, german)
}

/// `rest` follows `DB`: the number, `.DB`, the size letter, byte and bit.
fn parse_db(rest: &[u8]) -> Result<S7Address, AddressError> {
    let (number, rest) = digits(rest).ok_or(AddressError::DbNumberMissing)?;
    let number = match u16::try_from(number) {
        Ok(0) => return Err(AddressError::DbZero),
        Ok(n) => n,
        Err(_) => return Err(AddressError::DbTooBig),
    };
    let rest = rest
        .strip_prefix(b".DB")
        .ok_or(AddressError::DbSizeMissing)?;
    let (letter, rest) = rest.split_first().ok_or(AddressError::DbSizeLetter)?;
    let size = S7Size::from_letter(*letter).ok_or(AddressError::DbSizeLetter)?;
    finish(S7Area::Db(number), size, rest, false)
}

/// `rest` is the byte number and, for a bit address, `.bit`.
fn finish(
    area: S7Area,
    size: S7Size,
    rest: &[u8],
    german: bool,
) -> Result<S7Address, AddressError> {
    let (byte, rest) = digits(rest).ok_or(AddressError::ByteMissing)?;
    let byte = u32::try_from(byte)
        .ok()
        .filter(|b| *b <= BYTE_MAX)
        .ok_or(AddressError::ByteTooBig)?;
    let bit = match (size, rest) {
        (S7Size::Bit, []) => return Err(AddressError::BitMissing),
        (S7Size::Bit, [b'.', digit]) if (b'0'..=b'7').contains(digit) => digit - b'0',
        (S7Size::Bit, [b'.', ..]) => return Err(AddressError::BitRange),
        (S7Size::Bit, _) => return Err(AddressError::Trailing),
        (_, []) => 0,
        (_, [b'.', ..]) => return Err(AddressError::BitNotAllowed(size)),
        (_, _) => return Err(AddressError::Trailing),
    };
    Ok(S7Address {
        area,
        size,
        byte,
        bit,
        german,
    })
}

/// The decimal number at the start of `s` (saturating past `DIGITS_MAX`
/// digits) and what follows it; `None` if `s` does not start with a digit.
fn digits(s: &[u8]) -> Option<(u64, &[u8])> {
    let end = s
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(s.len());
    let (number, rest) = s.split_at(end);
    if number.is_empty() {
        return None;
    }
    if number.len() > DIGITS_MAX {
        return Some((u64::MAX, rest));
    }
    let value = number
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some((value, rest))
}

/// Why a type word is not an S7 type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeError {
    Unknown {
        word: String,
        near: Option<&'static str>,
    },
    Length {
        text: String,
    },
    StringRange(u64),
    WStringRange(u64),
}

impl fmt::Display for TypeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeError::Unknown { word, near: None } => write!(f, "unknown type `{word}`"),
            TypeError::Unknown {
                word,
                near: Some(near),
            } => write!(f, "unknown type `{word}` (did you mean `{near}`?)"),
            TypeError::Length { text } => {
                write!(f, "`{text}` is not `string[N]` or `wstring[N]`")
            }
            TypeError::StringRange(n) => write!(
                f,
                "string[{n}]: an S7 STRING holds 1..={STRING_CHARS_MAX} characters"
            ),
            TypeError::WStringRange(n) => write!(
                f,
                "wstring[{n}]: at most {WSTRING_CHARS_MAX} characters here (Step 7 allows \
                 16382, but a sample's text is at most {TEXT_BYTES_MAX} bytes of UTF-8 and one \
                 WSTRING character can take 3)"
            ),
        }
    }
}

/// What a type word may be, for an "expected" clause.
pub const TYPE_EXPECTED: &str = "an S7 type: bool, byte, word, dword, sint, usint, int, uint, \
     dint, udint, lint, ulint, real, lreal, char, string[N] (N 1..=254), wstring[N] \
     (N 1..=341), date_and_time, dtl, s5time, time";

/// Parses a type word: one of `S7Type::NAMES`, `string[N]` or `wstring[N]`,
/// in any case.
pub fn parse_type(text: &str) -> Result<S7Type, TypeError> {
    if let Some((_, t)) = S7Type::NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(*t);
    }
    let lower = text.to_ascii_lowercase();
    let (wide, rest) = match (lower.strip_prefix("wstring"), lower.strip_prefix("string")) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        (None, None) => {
            let names: Vec<&str> = S7Type::NAMES.iter().map(|(n, _)| *n).collect();
            return Err(TypeError::Unknown {
                word: text.to_string(),
                near: did_you_mean(text, &names),
            });
        }
    };
    let length_error = || TypeError::Length {
        text: text.to_string(),
    };
    let inner = rest
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .ok_or_else(length_error)?;
    let (n, after) = digits(inner.as_bytes()).ok_or_else(length_error)?;
    if !after.is_empty() {
        return Err(length_error());
    }
    match (wide, u16::try_from(n)) {
        (false, Ok(n @ 1..=STRING_CHARS_MAX)) => Ok(S7Type::String(n as u8)),
        (false, _) => Err(TypeError::StringRange(n)),
        (true, Ok(n @ 1..=WSTRING_CHARS_MAX)) => Ok(S7Type::WString(n)),
        (true, _) => Err(TypeError::WStringRange(n)),
    }
}

/// Types `scale` and `offset` apply to: numbers and bit strings.
pub const fn is_numeric(data_type: S7Type) -> bool {
    matches!(
        data_type,
        S7Type::Byte
            | S7Type::Word
            | S7Type::DWord
            | S7Type::SInt
            | S7Type::USInt
            | S7Type::Int
            | S7Type::UInt
            | S7Type::DInt
            | S7Type::UDInt
            | S7Type::LInt
            | S7Type::ULInt
            | S7Type::Real
            | S7Type::LReal
    )
}

/// The size letter a type is read with: bool a bit; the scalars of 1, 2 and
/// 4 bytes the byte, word or double word of their width; wider values and
/// text (a `string[2]` is 4 bytes but no double word) their first byte.
pub const fn size_for(data_type: S7Type) -> S7Size {
    match data_type {
        S7Type::Bool => S7Size::Bit,
        S7Type::Byte | S7Type::SInt | S7Type::USInt | S7Type::Char => S7Size::Byte,
        S7Type::Word | S7Type::Int | S7Type::UInt | S7Type::S5Time => S7Size::Word,
        S7Type::DWord | S7Type::DInt | S7Type::UDInt | S7Type::Real | S7Type::Time => S7Size::DWord,
        S7Type::LInt
        | S7Type::ULInt
        | S7Type::LReal
        | S7Type::DateAndTime
        | S7Type::Dtl
        | S7Type::String(_)
        | S7Type::WString(_) => S7Size::Byte,
    }
}

/// Why an address does not fit its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FitError {
    /// The size letter is not the one the type wants; `write` is the
    /// address that would be.
    Size {
        address: S7Address,
        data_type: S7Type,
        write: S7Address,
    },
    /// The value's last byte is past `BYTE_MAX`.
    PastTop {
        address: S7Address,
        data_type: S7Type,
    },
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FitError::Size {
                address,
                data_type,
                write,
            } => {
                let is = match address.size {
                    S7Size::Bit => "a bit".to_string(),
                    S7Size::Byte => "a byte".to_string(),
                    size => format!("a {} ({} bytes)", size.name(), size.bytes()),
                };
                let wants = match (data_type, data_type.byte_size()) {
                    (S7Type::Bool, _) => "one bit".to_string(),
                    (_, 1) => "1 byte".to_string(),
                    (_, n) => format!("{n} bytes"),
                };
                let first = if size_for(data_type) == S7Size::Byte && data_type.byte_size() > 1 {
                    "its first byte, "
                } else {
                    ""
                };
                write!(
                    f,
                    "`{address}` is {is} but `{data_type}` is {wants}: write {first}`{write}`"
                )
            }
            FitError::PastTop { address, data_type } => {
                let last = u64::from(address.byte) + u64::from(data_type.byte_size()) - 1;
                write!(
                    f,
                    "`{data_type}` at `{address}` ends at byte {last}, past {BYTE_MAX}, the last \
                     byte an S7 address carries"
                )
            }
        }
    }
}

/// Checks that `address` reads `data_type`: its size letter, and that the
/// value's last byte is addressable.
pub fn check_fit(address: S7Address, data_type: S7Type) -> Result<(), FitError> {
    let wanted = size_for(data_type);
    if address.size != wanted {
        let write = S7Address {
            size: wanted,
            bit: 0,
            ..address
        };
        return Err(FitError::Size {
            address,
            data_type,
            write,
        });
    }
    let last = u64::from(address.byte) + u64::from(data_type.byte_size()) - 1;
    if last > u64::from(BYTE_MAX) {
        return Err(FitError::PastTop { address, data_type });
    }
    Ok(())
}

/// Why a TSAP text is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TsapError;

impl fmt::Display for TsapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a TSAP is `0x` and up to 4 hex digits, or two hex bytes as `03.01`")
    }
}

/// A TSAP written as text: `0x0100`, or two hex bytes `01.00` the way TIA
/// Portal and LOGO!Soft Comfort show them.
pub fn parse_tsap(text: &str) -> Result<u16, TsapError> {
    let hex_byte = |s: &str| {
        (!s.is_empty() && s.len() <= 2 && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| u8::from_str_radix(s, 16).ok())
            .flatten()
    };
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if (1..=4).contains(&hex.len()) && hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return u16::from_str_radix(hex, 16).map_err(|_| TsapError);
        }
        return Err(TsapError);
    }
    let (high, low) = text.split_once('.').ok_or(TsapError)?;
    match (hex_byte(high), hex_byte(low)) {
        (Some(h), Some(l)) => Ok(u16::from_be_bytes([h, l])),
        _ => Err(TsapError),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(area: S7Area, size: S7Size, byte: u32, bit: u8) -> S7Address {
        S7Address {
            area,
            size,
            byte,
            bit,
            german: false,
        }
    }

    #[test]
    fn every_form_parses() {
        use S7Area::*;
        use S7Size::*;
        let db = Db(10);
        let cases = [
            ("DB10.DBX4.3", addr(db, Bit, 4, 3)),
            ("DB10.DBB4", addr(db, Byte, 4, 0)),
            ("DB10.DBW4", addr(db, Word, 4, 0)),
            ("DB10.DBD4", addr(db, DWord, 4, 0)),
            ("DB7.DBB100", addr(Db(7), Byte, 100, 0)),
            ("DB65535.DBB0", addr(Db(65535), Byte, 0, 0)),
            ("M0.1", addr(Merker, Bit, 0, 1)),
            ("MB2", addr(Merker, Byte, 2, 0)),
            ("MW2", addr(Merker, Word, 2, 0)),
            ("MD4", addr(Merker, DWord, 4, 0)),
            ("MB10", addr(Merker, Byte, 10, 0)),
            ("I0.0", addr(Inputs, Bit, 0, 0)),
            ("IB0", addr(Inputs, Byte, 0, 0)),
            ("IW4", addr(Inputs, Word, 4, 0)),
            ("ID0", addr(Inputs, DWord, 0, 0)),
            ("Q0.1", addr(Outputs, Bit, 0, 1)),
            ("QB0", addr(Outputs, Byte, 0, 0)),
            ("QW2", addr(Outputs, Word, 2, 0)),
            ("QD8", addr(Outputs, DWord, 8, 0)),
            ("MB2097151", addr(Merker, Byte, BYTE_MAX, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address(text), Ok(want), "{text}");
            assert_eq!(want.to_string(), text, "display of {text}");
        }
    }

    #[test]
    fn german_mnemonics_case_and_the_tia_percent() {
        let german = |area, size, byte, bit| S7Address {
            german: true,
            ..addr(area, size, byte, bit)
        };
        let cases = [
            ("E0.0", german(S7Area::Inputs, S7Size::Bit, 0, 0)),
            ("EB0", german(S7Area::Inputs, S7Size::Byte, 0, 0)),
            ("EW4", german(S7Area::Inputs, S7Size::Word, 4, 0)),
            ("ED4", german(S7Area::Inputs, S7Size::DWord, 4, 0)),
            ("A0.1", german(S7Area::Outputs, S7Size::Bit, 0, 1)),
            ("AB3", german(S7Area::Outputs, S7Size::Byte, 3, 0)),
            ("AW6", german(S7Area::Outputs, S7Size::Word, 6, 0)),
            ("AD8", german(S7Area::Outputs, S7Size::DWord, 8, 0)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address(text), Ok(want), "{text}");
            assert_eq!(want.to_string(), text);
        }
        let bit = addr(S7Area::Db(10), S7Size::Bit, 4, 3);
        assert_eq!(parse_address("db10.dbx4.3"), Ok(bit));
        assert_eq!(parse_address("%DB10.DBX4.3"), Ok(bit));
        assert_eq!(
            parse_address("%mw2"),
            Ok(addr(S7Area::Merker, S7Size::Word, 2, 0))
        );
    }

    #[test]
    fn every_address_error() {
        use AddressError::*;
        let cases = [
            ("", Empty),
            ("%", Empty),
            ("DB10. DBX4.3", Spaces),
            (" MW2", Spaces),
            ("T5", TimersCounters),
            ("C3", TimersCounters),
            ("Z3", TimersCounters),
            ("PIW256", Peripheral),
            ("X0.0", UnknownArea),
            ("10.0", UnknownArea),
            ("DB.DBX4.3", DbNumberMissing),
            ("DB0.DBW2", DbZero),
            ("DB65536.DBW2", DbTooBig),
            ("DB99999999999.DBW2", DbTooBig),
            ("DB10,X4.3", DbSizeMissing),
            ("DB10.X4.3", DbSizeMissing),
            ("DB10", DbSizeMissing),
            ("DB10.DB", DbSizeLetter),
            ("DB10.DBQ4", DbSizeLetter),
            ("MX0.1", AreaSizeLetter),
            ("M", ByteMissing),
            ("MW", ByteMissing),
            ("DB10.DBW", ByteMissing),
            ("DB10.DBX.3", ByteMissing),
            ("MB2097152", ByteTooBig),
            ("DB1.DBB99999999999999", ByteTooBig),
            ("DB10.DBX4", BitMissing),
            ("M0", BitMissing),
            ("DB10.DBW4.1", BitNotAllowed(S7Size::Word)),
            ("MB2.0", BitNotAllowed(S7Size::Byte)),
            ("QD8.7", BitNotAllowed(S7Size::DWord)),
            ("M0.8", BitRange),
            ("DB10.DBX4.", BitRange),
            ("DB10.DBX4.12", BitRange),
            ("M0.1x", BitRange),
            ("MW2x", Trailing),
            ("M0x", Trailing),
            ("DB10.DBD4;", Trailing),
        ];
        for (text, want) in cases {
            assert_eq!(parse_address(text), Err(want), "{text:?}");
            assert!(!want.to_string().is_empty());
        }
        assert_eq!(
            BitNotAllowed(S7Size::Word).to_string(),
            "a word address has no bit"
        );
    }

    #[test]
    fn type_words() {
        assert_eq!(parse_type("REAL"), Ok(S7Type::Real));
        assert_eq!(parse_type("date_and_time"), Ok(S7Type::DateAndTime));
        assert_eq!(parse_type("string"), Ok(S7Type::String(254)));
        assert_eq!(parse_type("String[20]"), Ok(S7Type::String(20)));
        assert_eq!(parse_type("string[1]"), Ok(S7Type::String(1)));
        assert_eq!(parse_type("string[254]"), Ok(S7Type::String(254)));
        assert_eq!(parse_type("WSTRING[341]"), Ok(S7Type::WString(341)));
        assert_eq!(parse_type("wstring[1]"), Ok(S7Type::WString(1)));
        for (name, t) in S7Type::NAMES {
            assert_eq!(parse_type(name), Ok(*t));
            assert_eq!(parse_type(&t.to_string()), Ok(*t), "{t} reads back");
        }
        assert_eq!(parse_type("string[0]"), Err(TypeError::StringRange(0)));
        assert_eq!(parse_type("string[255]"), Err(TypeError::StringRange(255)));
        assert_eq!(parse_type("wstring[0]"), Err(TypeError::WStringRange(0)));
        assert_eq!(
            parse_type("wstring[342]"),
            Err(TypeError::WStringRange(342))
        );
        assert_eq!(
            parse_type("wstring[16382]"),
            Err(TypeError::WStringRange(16382))
        );
        for bad in [
            "string[]",
            "string[x]",
            "string(20)",
            "string[20",
            "string[ 20]",
        ] {
            let want = TypeError::Length {
                text: bad.to_string(),
            };
            assert_eq!(parse_type(bad), Err(want), "{bad}");
        }
        let e = parse_type("flaot").unwrap_err();
        assert_eq!(e.to_string(), "unknown type `flaot`");
        let e = parse_type("reel").unwrap_err();
        assert_eq!(e.to_string(), "unknown type `reel` (did you mean `real`?)");
        assert!(TypeError::WStringRange(400)
            .to_string()
            .contains("at most 341"));
    }

    fn fit(address: &str, data_type: &str) -> Result<(), String> {
        let a = parse_address(address).map_err(|e| e.to_string())?;
        let t = parse_type(data_type).map_err(|e| e.to_string())?;
        check_fit(a, t).map_err(|e| e.to_string())
    }

    #[test]
    fn sizes_that_fit() {
        for (address, data_type) in [
            ("DB10.DBX4.3", "bool"),
            ("M0.1", "bool"),
            ("DB10.DBB4", "byte"),
            ("MB2", "sint"),
            ("IB0", "usint"),
            ("QB1", "char"),
            ("DB10.DBW4", "int"),
            ("MW2", "word"),
            ("EW4", "uint"),
            ("AW4", "s5time"),
            ("DB10.DBD4", "real"),
            ("MD4", "dint"),
            ("ID0", "udint"),
            ("QD8", "dword"),
            ("AD8", "time"),
            ("DB7.DBB100", "lreal"),
            ("DB7.DBB100", "lint"),
            ("MB10", "ulint"),
            ("DB7.DBB100", "date_and_time"),
            ("DB7.DBB100", "dtl"),
            ("DB7.DBB100", "string[20]"),
            ("DB7.DBB100", "string[2]"),
            ("DB7.DBB100", "wstring[10]"),
            ("DB1.DBD2097148", "real"),
            ("DB1.DBB2097144", "lreal"),
        ] {
            assert_eq!(fit(address, data_type), Ok(()), "{address} {data_type}");
        }
    }

    #[test]
    fn sizes_that_do_not_fit_say_what_to_write() {
        let cases = [
            (
                "DB10.DBW20",
                "real",
                "`DB10.DBW20` is a word (2 bytes) but `real` is 4 bytes: write `DB10.DBD20`",
            ),
            (
                "DB10.DBB4",
                "bool",
                "`DB10.DBB4` is a byte but `bool` is one bit: write `DB10.DBX4.0`",
            ),
            (
                "M0.1",
                "int",
                "`M0.1` is a bit but `int` is 2 bytes: write `MW0`",
            ),
            (
                "DB7.DBD100",
                "lreal",
                "`DB7.DBD100` is a double word (4 bytes) but `lreal` is 8 bytes: write its first \
                 byte, `DB7.DBB100`",
            ),
            (
                "DB7.DBD100",
                "string[2]",
                "`DB7.DBD100` is a double word (4 bytes) but `string[2]` is 4 bytes: write its \
                 first byte, `DB7.DBB100`",
            ),
            (
                "EW4",
                "dint",
                "`EW4` is a word (2 bytes) but `dint` is 4 bytes: write `ED4`",
            ),
            (
                "QD8",
                "byte",
                "`QD8` is a double word (4 bytes) but `byte` is 1 byte: write `QB8`",
            ),
        ];
        for (address, data_type, message) in cases {
            assert_eq!(fit(address, data_type), Err(message.to_string()));
        }
    }

    #[test]
    fn the_last_byte_must_be_addressable() {
        let e = fit("DB1.DBD2097150", "real").unwrap_err();
        assert_eq!(
            e,
            "`real` at `DB1.DBD2097150` ends at byte 2097153, past 2097151, the last byte an S7 \
             address carries"
        );
        assert!(fit("MB2097151", "byte").is_ok());
        assert!(fit("MB2097150", "string[1]").is_err());
        assert!(fit("DB1.DBB2097145", "lreal").is_err());
    }

    #[test]
    fn tsaps() {
        assert_eq!(parse_tsap("0x0100"), Ok(0x0100));
        assert_eq!(parse_tsap("0X4D57"), Ok(0x4d57));
        assert_eq!(parse_tsap("0x1"), Ok(1));
        assert_eq!(parse_tsap("03.01"), Ok(0x0301));
        assert_eq!(parse_tsap("4d.57"), Ok(0x4d57));
        assert_eq!(parse_tsap("2.0"), Ok(0x0200));
        for bad in [
            "", "0x", "0x10000", "256", "03.001", "03:01", ".01", "0g.00", "0x+1",
        ] {
            assert_eq!(parse_tsap(bad), Err(TsapError), "{bad}");
        }
    }
}
