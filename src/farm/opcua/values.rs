//! What the simulated OPC UA servers publish: the `k`-th change of every
//! variable is a value a receiver recomputes knowing only the device, the
//! tag and that value.
//!
//! Tag `j` of a device has type `TYPES[j % 8]`. Its `k`-th value carries a
//! counter, `k` modulo `2^width` of its type, and a check byte
//! `check8(device, j, counter)`:
//!
//! ```text
//! double   counter + check/256            width 44 (exact in an f64)
//! float    counter + check/256            width 15 (exact in an f32)
//! int16    counter * 256 + check          width 7  (non-negative)
//! int32    counter * 256 + check          width 23 (non-negative)
//! uint32   counter * 256 + check          width 24
//! int64    counter * 256 + check          width 44 (exact in an f64)
//! boolean  (counter + j) % 2              width 1, no check byte
//! string   "{counter:06x}{check:02x}"     width 24 (8 bytes: one record)
//! ```
//!
//! Every change of a variable advances its counter by one, so between two
//! changes of one tag delivered in order the counter moves by exactly one:
//! a step of more than one is a change lost on the way, a step of zero the
//! same change delivered twice ([`Counter::step`]). A boolean's counter is
//! its parity: a lost change shows as a repeat.

use crate::config::OpcuaType;

/// The types of the farm's tags, tag `j` of any device has `TYPES[j % 8]`.
pub const TYPES: [FarmType; 8] = [
    FarmType::Double,
    FarmType::Int32,
    FarmType::Boolean,
    FarmType::String,
    FarmType::Float,
    FarmType::UInt32,
    FarmType::Int64,
    FarmType::Int16,
];

/// Bytes of a farm string: 6 hex digits of counter, 2 of check; a `Str8`
/// sample, one ring record.
pub const STRING_BYTES: u16 = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FarmType {
    Double,
    Float,
    Int16,
    Int32,
    UInt32,
    Int64,
    Boolean,
    String,
}

impl FarmType {
    pub const fn of_tag(index: u32) -> FarmType {
        TYPES[index as usize % TYPES.len()]
    }

    /// Bits of `k` the value carries.
    pub const fn width(self) -> u32 {
        match self {
            FarmType::Double | FarmType::Int64 => 44,
            FarmType::Float => 15,
            FarmType::Int16 => 7,
            FarmType::Int32 => 23,
            FarmType::UInt32 | FarmType::String => 24,
            FarmType::Boolean => 1,
        }
    }

    pub const fn mask(self) -> u64 {
        (1u64 << self.width()) - 1
    }

    /// The config type the emitted tag reads it as.
    pub const fn config_type(self) -> OpcuaType {
        match self {
            FarmType::Double => OpcuaType::Double,
            FarmType::Float => OpcuaType::Float,
            FarmType::Int16 => OpcuaType::Int16,
            FarmType::Int32 => OpcuaType::Int32,
            FarmType::UInt32 => OpcuaType::UInt32,
            FarmType::Int64 => OpcuaType::Int64,
            FarmType::Boolean => OpcuaType::Boolean,
            FarmType::String => OpcuaType::String(STRING_BYTES),
        }
    }
}

/// MurmurHash3's 64-bit finaliser.
const fn fmix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The check byte of tag `index` of `device` at `counter`.
pub const fn check8(device: u32, index: u32, counter: u64) -> u8 {
    let x =
        fmix64((device as u64) << 32 ^ index as u64 ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    (x >> 56) as u8
}

/// The `k`-th value of a tag, as the farm publishes it.
#[derive(Clone, Debug, PartialEq)]
pub enum FarmValue {
    Double(f64),
    Float(f32),
    Int16(i16),
    Int32(i32),
    UInt32(u32),
    Int64(i64),
    Boolean(bool),
    /// Eight ASCII hex digits.
    String([u8; STRING_BYTES as usize]),
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The `k`-th value of tag `index` of `device`.
pub fn value(device: u32, index: u32, k: u64) -> FarmValue {
    let data_type = FarmType::of_tag(index);
    let counter = k & data_type.mask();
    let check = check8(device, index, counter);
    let scaled = counter << 8 | u64::from(check);
    match data_type {
        FarmType::Double => FarmValue::Double(counter as f64 + f64::from(check) / 256.0),
        FarmType::Float => FarmValue::Float(counter as f32 + f32::from(check) / 256.0),
        FarmType::Int16 => FarmValue::Int16(scaled as i16),
        FarmType::Int32 => FarmValue::Int32(scaled as i32),
        FarmType::UInt32 => FarmValue::UInt32(scaled as u32),
        FarmType::Int64 => FarmValue::Int64(scaled as i64),
        FarmType::Boolean => FarmValue::Boolean((counter + u64::from(index)) % 2 == 1),
        FarmType::String => {
            let mut text = [0u8; STRING_BYTES as usize];
            for (i, byte) in text.iter_mut().enumerate() {
                let nibble = (scaled >> (4 * (7 - i))) & 0xF;
                *byte = HEX[nibble as usize];
            }
            FarmValue::String(text)
        }
    }
}

/// What a delivered value says: the counter it carries, or that it is not
/// a value the farm publishes for that tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    Served(u64),
    Wrong,
}

fn served_if(right: bool, counter: u64) -> Check {
    if right {
        Check::Served(counter)
    } else {
        Check::Wrong
    }
}

/// A number as millrace delivers it (the `value` column: every numeric
/// type as a float, a boolean as 0 or 1).
pub fn check_number(device: u32, index: u32, value: f64) -> Check {
    let data_type = FarmType::of_tag(index);
    if !value.is_finite() || value < 0.0 {
        return Check::Wrong;
    }
    match data_type {
        FarmType::Double | FarmType::Float => {
            if data_type == FarmType::Float && f64::from(value as f32) != value {
                return Check::Wrong;
            }
            let counter = value.trunc();
            let scaled = value.fract() * 256.0;
            if scaled.fract() != 0.0 || counter > data_type.mask() as f64 {
                return Check::Wrong;
            }
            let counter = counter as u64;
            served_if(check8(device, index, counter) == scaled as u8, counter)
        }
        FarmType::Boolean => {
            if value != 0.0 && value != 1.0 {
                return Check::Wrong;
            }
            Check::Served((value as u64 + u64::from(index)) % 2)
        }
        FarmType::String => Check::Wrong,
        FarmType::Int16 | FarmType::Int32 | FarmType::UInt32 | FarmType::Int64 => {
            if value.fract() != 0.0 || value >= 2f64.powi(8 + data_type.width() as i32) {
                return Check::Wrong;
            }
            let scaled = value as u64;
            let counter = scaled >> 8;
            served_if(check8(device, index, counter) == scaled as u8, counter)
        }
    }
}

/// A string tag's delivered text.
pub fn check_text(device: u32, index: u32, text: &[u8]) -> Check {
    if FarmType::of_tag(index) != FarmType::String || text.len() != usize::from(STRING_BYTES) {
        return Check::Wrong;
    }
    let mut scaled = 0u64;
    for &b in text {
        let Some(nibble) = HEX.iter().position(|&h| h == b) else {
            return Check::Wrong;
        };
        scaled = scaled << 4 | nibble as u64;
    }
    let counter = scaled >> 8;
    served_if(check8(device, index, counter) == scaled as u8, counter)
}

/// The last counter seen of one tag, and how the next one moved from it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// `counter + 1`; 0 before the first.
    last_plus_one: u64,
}

/// How a tag's counter moved between two delivered changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The first change seen of the tag.
    First,
    /// The next change, as published.
    Next,
    /// The same change again (delivered twice under two seqs).
    Repeat,
    /// This many changes were published in between and never arrived.
    Missed(u64),
}

impl Counter {
    pub fn step(&mut self, counter: u64, data_type: FarmType) -> Step {
        let mask = data_type.mask();
        let last = self.last_plus_one;
        self.last_plus_one = counter + 1;
        if last == 0 {
            return Step::First;
        }
        match counter.wrapping_sub(last - 1) & mask {
            0 => Step::Repeat,
            1 => Step::Next,
            // A boolean's parity cannot tell a lost change from a repeat
            // (width 1: a step is 0 or 1).
            n => Step::Missed(n - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(v: &FarmValue) -> Result<f64, Vec<u8>> {
        match v {
            FarmValue::Double(x) => Ok(*x),
            FarmValue::Float(x) => Ok(f64::from(*x)),
            FarmValue::Int16(x) => Ok(f64::from(*x)),
            FarmValue::Int32(x) => Ok(f64::from(*x)),
            FarmValue::UInt32(x) => Ok(f64::from(*x)),
            FarmValue::Int64(x) => Ok(*x as f64),
            FarmValue::Boolean(x) => Ok(f64::from(u8::from(*x))),
            FarmValue::String(t) => Err(t.to_vec()),
        }
    }

    /// Every type, past each width's wrap: what the farm publishes checks
    /// with its counter; the neighbour tag's and a nudged value do not.
    #[test]
    fn what_the_farm_publishes_checks_and_nothing_near_it_does() {
        let ks = [
            0u64,
            1,
            2,
            127,
            128,
            255,
            1 << 15,
            (1 << 23) + 5,
            (1 << 24) + 7,
            1 << 40,
        ];
        for index in 0..16u32 {
            let t = FarmType::of_tag(index);
            for k in ks {
                let v = value(7, index, k);
                let expected = Check::Served(k & t.mask());
                match delivered(&v) {
                    Ok(x) => {
                        assert_eq!(check_number(7, index, x), expected, "{t:?} {k}");
                        if t != FarmType::Boolean {
                            let nudged = if t == FarmType::Double || t == FarmType::Float {
                                x + 1.0 / 256.0
                            } else {
                                x + 1.0
                            };
                            assert_eq!(check_number(7, index, nudged), Check::Wrong, "{t:?}");
                            assert_eq!(check_number(7, index, -x - 1.0), Check::Wrong);
                        }
                    }
                    Err(text) => {
                        assert_eq!(check_text(7, index, &text), expected, "{k}");
                        let mut wrong = text.clone();
                        wrong[7] = if wrong[7] == b'0' { b'1' } else { b'0' };
                        assert_eq!(check_text(7, index, &wrong), Check::Wrong);
                        assert_eq!(check_text(7, index, b"nonsense"), Check::Wrong);
                        assert_eq!(check_number(7, index, 1.0), Check::Wrong);
                    }
                }
            }
        }
    }

    #[test]
    fn counters_step_by_one_wrap_and_count_what_was_missed() {
        let mut c = Counter::default();
        let t = FarmType::Int16; // width 7
        assert_eq!(c.step(126, t), Step::First);
        assert_eq!(c.step(127, t), Step::Next);
        assert_eq!(c.step(0, t), Step::Next);
        assert_eq!(c.step(0, t), Step::Repeat);
        assert_eq!(c.step(4, t), Step::Missed(3));
        let mut b = Counter::default();
        assert_eq!(b.step(1, FarmType::Boolean), Step::First);
        assert_eq!(b.step(0, FarmType::Boolean), Step::Next);
        assert_eq!(b.step(0, FarmType::Boolean), Step::Repeat);
    }
}
