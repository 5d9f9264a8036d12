//! Checking one delivered EtherNet/IP value against the farm's table
//! ([`super::table`]), knowing only its tag (symbol, element, bit).
//!
//! What millrace delivers per type: integers and BOOLs as the integer,
//! REAL and LREAL as the float, a STRING as its text. Values of two bytes
//! or more, and texts, carry the whole counter of their answer (their low
//! byte, a float's fraction, a text's two hex digits): the counter is read
//! back and every bit recomputed. One-byte values carry a nibble and a
//! 4-bit check; BOOLs are a fixed bit, except those the table flips with
//! the counter, which are only checked to be 0 or 1.

use crate::config::CipType;

use super::table::{
    counter_of_text, element_bits, element_of, resolve, string_chars, Shape, Symbol,
};
use crate::config::{parse_enip_address, PathSegment};
use crate::farm::s7::Check;

/// One sample of a farm tag: which element (of a BOOL array: which bit),
/// and for a bit of an integer, which bit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FarmTag {
    pub symbol: Symbol,
    pub element: u32,
    pub bit: Option<u8>,
}

impl FarmTag {
    /// The farm tag a config address names (its first sample), listed in
    /// the tag list or not; `None` when the farm has no such tag.
    pub fn of_address(address: &str) -> Option<FarmTag> {
        let path = parse_enip_address(address).ok()?;
        let mut names = Vec::new();
        let mut indices = Vec::new();
        for segment in &path.segments {
            match segment {
                PathSegment::Name(name) => names.push(name.as_bytes()),
                PathSegment::Index(index) => indices.extend_from_slice(index),
            }
        }
        let symbol = resolve(&names)?;
        let element = element_of(&symbol, &indices)?;
        Some(FarmTag {
            symbol,
            element,
            bit: path.bit,
        })
    }

    /// The type the sample is read as.
    pub const fn data_type(&self) -> CipType {
        match (self.symbol.shape, self.bit) {
            (Shape::Bits, _) | (_, Some(_)) => CipType::Bool,
            _ => self.symbol.data_type,
        }
    }
}

/// Bytes of an integer type's value; 0 for others.
const fn width(data_type: CipType) -> u32 {
    match data_type {
        CipType::SInt | CipType::USInt | CipType::Bool => 1,
        CipType::Int | CipType::UInt => 2,
        CipType::DInt | CipType::UDInt | CipType::Real => 4,
        CipType::LInt | CipType::ULInt | CipType::LReal => 8,
        CipType::String => 0,
    }
}

fn is_bit(value: f64) -> bool {
    value == 0.0 || value == 1.0
}

fn bit_check(value: f64, expected: u64) -> Check {
    if value == expected as f64 {
        Check::Served(None)
    } else {
        Check::Wrong
    }
}

/// The delivered integer as the two's-complement bits of its width, if it
/// is an integer of its type's range.
fn integer_bits(data_type: CipType, value: f64) -> Option<u64> {
    if value.fract() != 0.0 {
        return None;
    }
    let bits = 8 * width(data_type);
    let signed = matches!(
        data_type,
        CipType::SInt | CipType::Int | CipType::DInt | CipType::LInt
    );
    let (min, max) = if signed {
        (
            -(2f64.powi(bits as i32 - 1)),
            2f64.powi(bits as i32 - 1) - 1.0,
        )
    } else {
        (0.0, 2f64.powi(bits as i32) - 1.0)
    };
    if value < min || value > max {
        return None;
    }
    let raw = if signed {
        value as i64 as u64
    } else {
        value as u64
    };
    Some(if bits == 64 {
        raw
    } else {
        raw & ((1u64 << bits) - 1)
    })
}

/// Checks a delivered number (see the module doc).
pub fn check_number(device: u32, tag: &FarmTag, value: f64) -> Check {
    let symbol = &tag.symbol;
    if !value.is_finite() {
        return Check::Wrong;
    }
    if symbol.shape == Shape::Bits {
        let bit = tag.element % 32;
        if !is_bit(value) {
            return Check::Wrong;
        }
        if (16..24).contains(&bit) {
            return Check::Served(None); // a counter bit
        }
        return bit_check(
            value,
            element_bits(device, symbol, tag.element / 32, 0) >> bit & 1,
        );
    }
    if let Some(bit) = tag.bit {
        if !is_bit(value) || u32::from(bit) >= 8 * width(symbol.data_type) {
            return Check::Wrong;
        }
        if bit < 8 || symbol.data_type.is_text() {
            return Check::Served(None);
        }
        return bit_check(
            value,
            element_bits(device, symbol, tag.element, 0) >> bit & 1,
        );
    }
    match symbol.data_type {
        CipType::Bool if !is_bit(value) => Check::Wrong,
        CipType::Bool if symbol.number % 2 == 1 => Check::Served(None),
        CipType::Bool => bit_check(value, element_bits(device, symbol, tag.element, 0)),
        CipType::SInt | CipType::USInt => {
            let Some(bits) = integer_bits(symbol.data_type, value) else {
                return Check::Wrong;
            };
            let fixed = element_bits(device, symbol, tag.element, 0) & 0xF;
            if bits & 0xF == fixed {
                Check::Served(None)
            } else {
                Check::Wrong
            }
        }
        CipType::Real => {
            let single = value as f32;
            if f64::from(single) != value {
                return Check::Wrong;
            }
            let counter = (single.abs().fract() * 256.0) as u8;
            let expected = element_bits(device, symbol, tag.element, counter);
            served_if(u64::from(single.to_bits()) == expected, counter)
        }
        CipType::LReal => {
            let counter = (value.abs().fract() * 256.0) as u8;
            let expected = element_bits(device, symbol, tag.element, counter);
            served_if(value.to_bits() == expected, counter)
        }
        CipType::String => Check::Wrong,
        integer => {
            let Some(bits) = integer_bits(integer, value) else {
                return Check::Wrong;
            };
            let counter = bits as u8;
            served_if(
                element_bits(device, symbol, tag.element, counter) == bits,
                counter,
            )
        }
    }
}

fn served_if(right: bool, counter: u8) -> Check {
    if right {
        Check::Served(Some(counter))
    } else {
        Check::Wrong
    }
}

/// Checks a delivered STRING's text.
pub fn check_text(device: u32, tag: &FarmTag, text: &[u8]) -> Check {
    if tag.symbol.data_type != CipType::String || tag.symbol.shape == Shape::Bits {
        return Check::Wrong;
    }
    let Some(counter) = counter_of_text(text) else {
        return Check::Wrong;
    };
    let mut chars = [0u8; CipType::STRING_CHARS];
    let len = string_chars(device, &tag.symbol, tag.element, counter, &mut chars);
    served_if(chars.get(..len) == Some(text), counter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::enip::table::{symbol_at, write_element, SYMBOL_COUNT};

    /// Every element of every symbol, read as the reply carries it and
    /// decoded as millrace delivers it, checks; a value off by one does not.
    #[test]
    fn what_the_table_serves_checks_and_neighbours_do_not() {
        for instance in 1..=SYMBOL_COUNT {
            let Some(symbol) = symbol_at(instance) else {
                continue;
            };
            for element in [0u32, 1, 2, 7] {
                if element >= symbol.element_count() {
                    continue;
                }
                for counter in [0u8, 0x12, 0xFF] {
                    let mut bytes = [0u8; 88];
                    let n = write_element(5, &symbol, element, counter, &mut bytes);
                    let bytes = &bytes[..n];
                    if symbol.shape == Shape::Bits {
                        let word = u32::from_le_bytes(bytes.try_into().unwrap());
                        for bit in 0..32 {
                            let tag = FarmTag {
                                symbol,
                                element: 32 * element + bit,
                                bit: None,
                            };
                            let v = f64::from(word >> bit & 1);
                            assert_eq!(check_number(5, &tag, v), Check::Served(None));
                        }
                        continue;
                    }
                    let tag = FarmTag {
                        symbol,
                        element,
                        bit: None,
                    };
                    let le = |n: usize| {
                        let mut b = [0u8; 8];
                        b[..n].copy_from_slice(&bytes[..n]);
                        u64::from_le_bytes(b)
                    };
                    let value = match symbol.data_type {
                        CipType::Bool | CipType::USInt => le(1) as f64,
                        CipType::SInt => f64::from(le(1) as u8 as i8),
                        CipType::Int => f64::from(le(2) as u16 as i16),
                        CipType::UInt => le(2) as f64,
                        CipType::DInt => f64::from(le(4) as u32 as i32),
                        CipType::UDInt => le(4) as f64,
                        CipType::LInt => le(8) as i64 as f64,
                        CipType::ULInt => le(8) as f64,
                        CipType::Real => f64::from(f32::from_bits(le(4) as u32)),
                        CipType::LReal => f64::from_bits(le(8)),
                        CipType::String => {
                            let len = le(4) as usize;
                            let text = &bytes[4..4 + len];
                            assert_eq!(check_text(5, &tag, text), Check::Served(Some(counter)));
                            assert_eq!(check_text(6, &tag, text), Check::Wrong);
                            continue;
                        }
                    };
                    let check = check_number(5, &tag, value);
                    assert!(
                        matches!(check, Check::Served(_)),
                        "{symbol:?} {element} {value}"
                    );
                    if width(symbol.data_type) >= 2 {
                        assert_eq!(check, Check::Served(Some(counter)), "{symbol:?}");
                        assert_eq!(check_number(5, &tag, value + 256.0), Check::Wrong);
                        assert_eq!(check_number(4, &tag, value), Check::Wrong, "{symbol:?}");
                    }
                }
            }
        }
    }
}
