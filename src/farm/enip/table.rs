//! What a simulated Logix controller holds: a fixed symbol table (the same
//! on every device) and the value of every element of every tag as a
//! function of (device, symbol, element, counter), so that any value read
//! can be checked knowing only which tag and element it is.
//!
//! ```text
//! symbols, instance id = position + 1:
//!   T_0 .. T_63   a scalar of type T      T: Bool Sint Int Dint Lint Usint Uint
//!   TArr          T[4096]                    Udint Ulint Real Lreal Str
//!   Bits_0 .. Bits_63   BOOL[64] (two DWORDs, as Logix stores a BOOL array)
//! ```
//!
//! (`BoolArr` is not a symbol: a Logix BOOL array is `Bits_N`.)
//!
//! Beside the listed table, a controller answers reads of the other
//! shapes a Logix path can name (not in its tag list, so that clients that
//! walk the list see the table above only):
//!
//! ```text
//!   TGrid                    T[64,64] (all but BOOL): `DintGrid[3,7]`, row-major
//!   Motor_0 .. Motor_63      a structure: Speed REAL, Starts DINT, Load LREAL
//!                            (`Motor_5.Speed`, `Motor_5.Starts.9`)
//!   Program:Main.X           every X above in the program `Main`, values of its own
//! ```
//!
//! The counter is the device's count of answered data requests (its low
//! byte): every read of one answer sees the same counter, the next answer
//! the next one. Per element a 64-bit hash `h` of (device, symbol,
//! element) fixes what does not change:
//!
//! | type | value |
//! |---|---|
//! | INT DINT UINT UDINT | low byte the counter, the other bytes from `h` |
//! | LINT ULINT | the same in the low 52 bits (LINT sign-extended from bit 52 when `h` says so): exact as a float |
//! | SINT USINT | high nibble one nibble of the counter, low nibble `h mod 15` |
//! | REAL LREAL | `±(h mod 10^4 or 10^9) + counter / 256`, exact |
//! | BOOL scalar | even N: bit 0 of `h` (fixed); odd N: that bit xor the counter's |
//! | BOOL array (DWORD) | bits 16-23 the counter, the others from `h` |
//! | STRING | LEN 2..=61, the counter as two hex digits, then letters from `h` |

use crate::config::CipType;
use crate::protocol::enip::cip::type_code;
use crate::protocol::enip::limits::{STRING_STRUCT_BYTES, STRING_STRUCT_HANDLE};

/// Scalars of each type, and BOOL arrays: `T_0 .. T_63`, `Bits_0 .. Bits_63`.
pub const SCALAR_COUNT: u32 = 64;
/// Elements of every `TArr`.
pub const ARRAY_LEN: u32 = 4096;
/// Bits of every `Bits_N` (two DWORDs).
pub const BITS_LEN: u32 = 64;
/// The characters a farm STRING holds at most (of the 82 Logix allows).
pub const STRING_LEN_MAX: u32 = 61;

/// The types of the table, in symbol order; their names in symbols.
pub const TYPES: [(CipType, &str); 12] = [
    (CipType::Bool, "Bool"),
    (CipType::SInt, "Sint"),
    (CipType::Int, "Int"),
    (CipType::DInt, "Dint"),
    (CipType::LInt, "Lint"),
    (CipType::USInt, "Usint"),
    (CipType::UInt, "Uint"),
    (CipType::UDInt, "Udint"),
    (CipType::ULInt, "Ulint"),
    (CipType::Real, "Real"),
    (CipType::LReal, "Lreal"),
    (CipType::String, "Str"),
];

/// Symbols per type: the scalars and (all but BOOL) the array.
const PER_TYPE: u32 = SCALAR_COUNT + 1;
/// Instances of the table: the typed symbols, then the BOOL arrays.
pub const SYMBOL_COUNT: u32 = TYPES.len() as u32 * PER_TYPE + SCALAR_COUNT;

/// The program whose scope holds a copy of every symbol.
pub const PROGRAM_SCOPE: &[u8] = b"Program:Main";
/// Rows and columns of every `TGrid`.
pub const GRID_DIMS: [u32; 2] = [64, 64];
const _: () = assert!(GRID_DIMS[0] * GRID_DIMS[1] == ARRAY_LEN);
/// The members of every `Motor_N`, in order.
pub const MOTOR_MEMBERS: [(&str, CipType); 3] = [
    ("Speed", CipType::Real),
    ("Starts", CipType::DInt),
    ("Load", CipType::LReal),
];
/// Instance ids of the unlisted symbols, above the listed table's (their
/// values hash from the id, so each has values of its own): a grid, a
/// member, and the program-scoped copy of any symbol.
const GRID_INSTANCES: u32 = 0x0001_0000;
const MEMBER_INSTANCES: u32 = 0x0002_0000;
const PROGRAM_INSTANCES: u32 = 0x0100_0000;
const _: () = assert!(SYMBOL_COUNT < GRID_INSTANCES);
const _: () = assert!(GRID_INSTANCES + TYPES.len() as u32 <= MEMBER_INSTANCES);
const _: () = assert!(MEMBER_INSTANCES + 4 * SCALAR_COUNT < PROGRAM_INSTANCES);
/// Names a Read Tag path may chain: `Program:Main.Motor_1.Speed`.
pub const PATH_NAMES_MAX: usize = 3;

/// What a symbol is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Scalar,
    Array,
    /// A BOOL array, read as DWORDs.
    Bits,
    /// A two-dimensional array (`GRID_DIMS`), elements in row-major order.
    Grid,
}

/// One symbol of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Its instance id in the Symbol class (1-based).
    pub instance: u32,
    pub data_type: CipType,
    pub shape: Shape,
    /// N of `T_N` and `Bits_N`; 0 for an array.
    pub number: u32,
}

impl Symbol {
    /// Elements a Read Tag may ask for (DWORDs of a BOOL array).
    pub const fn element_count(&self) -> u32 {
        match self.shape {
            Shape::Scalar => 1,
            Shape::Array | Shape::Grid => ARRAY_LEN,
            Shape::Bits => BITS_LEN / 32,
        }
    }

    /// Bytes of one element in a reply.
    pub const fn element_bytes(&self) -> usize {
        match (self.shape, self.data_type) {
            (Shape::Bits, _) => 4,
            (_, t) => crate::protocol::enip::planner::element_bytes(t) as usize,
        }
    }

    /// The reply's type code (and structure handle, for a STRING).
    pub const fn reply_type(&self) -> (u16, Option<u16>) {
        match (self.shape, self.data_type) {
            (Shape::Bits, _) => (type_code::DWORD, None),
            (_, CipType::String) => (type_code::STRUCT, Some(STRING_STRUCT_HANDLE)),
            (_, t) => (crate::protocol::enip::decode::expected_code(t), None),
        }
    }

    /// The symbol type of the tag list (attribute 2): bit 15 structure,
    /// 14-13 dimensions, 11-0 the type code or template instance.
    pub const fn symbol_type(&self) -> u16 {
        let dims = match self.shape {
            Shape::Scalar => 0,
            Shape::Array | Shape::Bits => 0x2000,
            Shape::Grid => 0x4000,
        };
        let code = match (self.shape, self.data_type) {
            (Shape::Bits, _) => type_code::DWORD,
            (_, CipType::String) => 0x8000 | STRING_STRUCT_HANDLE,
            (_, t) => crate::protocol::enip::decode::expected_code(t),
        };
        dims | code
    }

    /// Its name, written into `out` (no allocation); returns the length.
    pub fn write_name(&self, out: &mut [u8; 16]) -> usize {
        use std::io::Write as _;
        let mut cursor = std::io::Cursor::new(&mut out[..]);
        let type_name = type_name(self.data_type);
        let _ = match self.shape {
            Shape::Scalar => write!(cursor, "{type_name}_{}", self.number),
            Shape::Array => write!(cursor, "{type_name}Arr"),
            Shape::Bits => write!(cursor, "Bits_{}", self.number),
            Shape::Grid => write!(cursor, "{type_name}Grid"),
        };
        cursor.position() as usize
    }
}

pub fn type_name(data_type: CipType) -> &'static str {
    TYPES
        .iter()
        .find(|(t, _)| *t == data_type)
        .map_or("?", |(_, name)| name)
}

/// The symbol with instance id `instance`, if there is one.
pub fn symbol_at(instance: u32) -> Option<Symbol> {
    let index = instance.checked_sub(1)?;
    let typed = TYPES.len() as u32 * PER_TYPE;
    if index >= typed {
        let number = index - typed;
        return (number < SCALAR_COUNT).then_some(Symbol {
            instance,
            data_type: CipType::Bool,
            shape: Shape::Bits,
            number,
        });
    }
    let (data_type, _) = *TYPES.get((index / PER_TYPE) as usize)?;
    let number = index % PER_TYPE;
    if number == SCALAR_COUNT && data_type == CipType::Bool {
        return None; // no BoolArr: a BOOL array is Bits_N
    }
    Some(Symbol {
        instance,
        data_type,
        shape: if number < SCALAR_COUNT {
            Shape::Scalar
        } else {
            Shape::Array
        },
        number: number % SCALAR_COUNT,
    })
}

/// The symbol named `name` (as a Read Tag path spells it), if any.
pub fn lookup(name: &[u8]) -> Option<Symbol> {
    let text = std::str::from_utf8(name).ok()?;
    if let Some(number) = text.strip_prefix("Bits_") {
        let number = small_number(number)?;
        let typed = TYPES.len() as u32 * PER_TYPE;
        return symbol_at(typed + number + 1);
    }
    let (position, shape, number) = if let Some(type_name) = text.strip_suffix("Arr") {
        (type_position(type_name)?, Shape::Array, SCALAR_COUNT)
    } else {
        let (type_name, number) = text.split_once('_')?;
        let number = small_number(number)?;
        (type_position(type_name)?, Shape::Scalar, number)
    };
    let symbol = symbol_at(position * PER_TYPE + number + 1)?;
    (symbol.shape == shape).then_some(symbol)
}

/// The symbol a Read Tag path's names (its symbolic segments, in order)
/// name, listed or not.
pub fn resolve(names: &[&[u8]]) -> Option<Symbol> {
    match names {
        [scope, rest @ ..] if *scope == PROGRAM_SCOPE => {
            let symbol = resolve_in_scope(rest)?;
            Some(Symbol {
                instance: symbol.instance + PROGRAM_INSTANCES,
                ..symbol
            })
        }
        _ => resolve_in_scope(names),
    }
}

/// The names after the scope (the controller's, or the program's).
fn resolve_in_scope(names: &[&[u8]]) -> Option<Symbol> {
    match names {
        [name] => lookup(name).or_else(|| grid(name)),
        [motor, member] => motor_member(motor, member),
        _ => None,
    }
}

fn grid(name: &[u8]) -> Option<Symbol> {
    let type_name = std::str::from_utf8(name).ok()?.strip_suffix("Grid")?;
    let position = type_position(type_name)?;
    let (data_type, _) = *TYPES.get(position as usize)?;
    (data_type != CipType::Bool).then_some(Symbol {
        instance: GRID_INSTANCES + position,
        data_type,
        shape: Shape::Grid,
        number: 0,
    })
}

fn motor_member(motor: &[u8], member: &[u8]) -> Option<Symbol> {
    let number = std::str::from_utf8(motor).ok()?.strip_prefix("Motor_")?;
    let number = small_number(number)?;
    let position = MOTOR_MEMBERS
        .iter()
        .position(|(name, _)| name.as_bytes() == member)?;
    let (_, data_type) = *MOTOR_MEMBERS.get(position)?;
    Some(Symbol {
        instance: MEMBER_INSTANCES + 4 * number + position as u32,
        data_type,
        shape: Shape::Scalar,
        number,
    })
}

/// The element that a path's indices name in `symbol`: none is element 0;
/// a grid takes two (row, column), any other array one. `None` when the
/// count of indices does not fit the symbol; an index past the end is
/// left to the caller's range check (as element `u32::MAX`).
pub fn element_of(symbol: &Symbol, indices: &[u32]) -> Option<u32> {
    match (symbol.shape, indices) {
        (_, []) => Some(0),
        (Shape::Grid, [row, column]) => {
            let [rows, columns] = GRID_DIMS;
            let inside = *row < rows && *column < columns;
            Some(if inside {
                row * columns + column
            } else {
                u32::MAX
            })
        }
        (Shape::Grid, _) => None,
        (_, [index]) => Some(*index),
        _ => None,
    }
}

fn type_position(name: &str) -> Option<u32> {
    TYPES.iter().position(|(_, n)| *n == name).map(|p| p as u32)
}

/// `0..SCALAR_COUNT` in plain decimal (no sign, no leading zero).
fn small_number(text: &str) -> Option<u32> {
    let plain = !text.is_empty()
        && text.len() <= 3
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    let number: u32 = text.parse().ok().filter(|_| plain)?;
    (number < SCALAR_COUNT).then_some(number)
}

/// MurmurHash3's 64-bit finaliser (the S7 memory's, shared).
use crate::farm::s7::memory::fmix64;

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The fixed part of element `element` of `symbol` on `device`.
pub fn element_hash(device: u32, symbol: &Symbol, element: u32) -> u64 {
    let seed = fmix64(u64::from(device) << 32 | u64::from(symbol.instance));
    fmix64(seed ^ u64::from(element + 1).wrapping_mul(GOLDEN))
}

/// Low 52 bits of a 64-bit integer value, above the counter byte.
const LONG_MASK: u64 = 0x000F_FFFF_FFFF_FF00;
const LONG_SIGN: u64 = 0xFFF0_0000_0000_0000;

/// The bits of a numeric element (little-endian in a reply, `width`
/// bytes), as in the module doc. Not for STRING.
pub fn element_bits(device: u32, symbol: &Symbol, element: u32, counter: u8) -> u64 {
    let h = element_hash(device, symbol, element);
    let c = u64::from(counter);
    if symbol.shape == Shape::Bits {
        return (h & 0xFF00_FFFF) | c << 16;
    }
    match symbol.data_type {
        CipType::Bool => {
            let flip = if symbol.number % 2 == 1 { c & 1 } else { 0 };
            (h & 1) ^ flip
        }
        CipType::SInt | CipType::USInt => {
            let nibble = if element % 2 == 0 { c & 0xF } else { c >> 4 };
            (nibble << 4) | (h % 15)
        }
        CipType::Int | CipType::UInt => (h << 8 | c) & 0xFFFF,
        CipType::DInt | CipType::UDInt => (h << 8 | c) & 0xFFFF_FFFF,
        CipType::LInt if h >> 63 == 1 => (h & LONG_MASK) | c | LONG_SIGN,
        CipType::LInt | CipType::ULInt => (h & LONG_MASK) | c,
        CipType::Real => {
            let magnitude = (h % 10_000) as f32 + f32::from(counter) / 256.0;
            let value = if h >> 63 == 1 { -magnitude } else { magnitude };
            u64::from(value.to_bits())
        }
        CipType::LReal => {
            let magnitude = (h % 1_000_000_000) as f64 + f64::from(counter) / 256.0;
            let value = if h >> 63 == 1 { -magnitude } else { magnitude };
            value.to_bits()
        }
        CipType::String => 0,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";
const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.:/#+";

/// The characters of a STRING element (`out` holds its 82 DATA bytes);
/// returns LEN.
pub fn string_chars(
    device: u32,
    symbol: &Symbol,
    element: u32,
    counter: u8,
    out: &mut [u8],
) -> usize {
    let h = element_hash(device, symbol, element);
    let len = 2
        + ((h % u64::from(STRING_LEN_MAX - 1)) as u32 + u32::from(counter)) % (STRING_LEN_MAX - 1);
    for (position, byte) in out.iter_mut().enumerate() {
        *byte = match position {
            0 => HEX[usize::from(counter >> 4)],
            1 => HEX[usize::from(counter & 0xF)],
            p if p < len as usize => {
                let x = fmix64(h ^ (p as u64).wrapping_mul(GOLDEN));
                CHARSET[(x % CHARSET.len() as u64) as usize]
            }
            _ => 0,
        };
    }
    len as usize
}

/// The counter a STRING's first two characters carry.
pub fn counter_of_text(text: &[u8]) -> Option<u8> {
    let digit = |d: &u8| HEX.iter().position(|h| h == d);
    match text {
        [high, low, ..] => Some((digit(high)? << 4 | digit(low)?) as u8),
        _ => None,
    }
}

/// Writes element `element` of `symbol` as a reply carries it into the
/// front of `out` (at least `symbol.element_bytes()` long); returns its
/// length.
pub fn write_element(
    device: u32,
    symbol: &Symbol,
    element: u32,
    counter: u8,
    out: &mut [u8],
) -> usize {
    let width = symbol.element_bytes();
    let Some(out) = out.get_mut(..width) else {
        return 0;
    };
    if symbol.shape != Shape::Bits && symbol.data_type == CipType::String {
        let (len, rest) = out.split_at_mut(4);
        let (chars, pad) = rest.split_at_mut(CipType::STRING_CHARS);
        let n = string_chars(device, symbol, element, counter, chars);
        len.copy_from_slice(&(n as u32).to_le_bytes());
        pad.fill(0);
        return STRING_STRUCT_BYTES;
    }
    let bits = element_bits(device, symbol, element, counter).to_le_bytes();
    out.copy_from_slice(bits.get(..width).unwrap_or_default());
    width
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_instance_has_a_name_that_looks_it_up() {
        let mut found = 0;
        for instance in 1..=SYMBOL_COUNT + 2 {
            let Some(symbol) = symbol_at(instance) else {
                continue;
            };
            found += 1;
            let mut name = [0u8; 16];
            let n = symbol.write_name(&mut name);
            assert_eq!(lookup(&name[..n]), Some(symbol), "{:?}", &name[..n]);
        }
        assert_eq!(found, SYMBOL_COUNT - 1); // no BoolArr
        for bad in [
            &b"BoolArr"[..],
            b"Dint_64",
            b"Dint_07",
            b"Dint_",
            b"Bits_x",
            b"dint_1",
            b"",
        ] {
            assert_eq!(lookup(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn values_carry_the_counter_and_floats_are_exact() {
        for (data_type, _) in TYPES {
            let symbol = Symbol {
                instance: 7,
                data_type,
                shape: Shape::Array,
                number: 0,
            };
            for counter in [0u8, 1, 0x7F, 0xFF] {
                let bits = element_bits(3, &symbol, 11, counter);
                match data_type {
                    CipType::Int
                    | CipType::DInt
                    | CipType::LInt
                    | CipType::UInt
                    | CipType::UDInt
                    | CipType::ULInt => assert_eq!(bits & 0xFF, u64::from(counter)),
                    CipType::LReal => {
                        let v = f64::from_bits(bits).abs();
                        assert_eq!(((v - v.floor()) * 256.0) as u8, counter);
                    }
                    _ => {}
                }
            }
        }
        let mut chars = [0u8; 82];
        let symbol = symbol_at(12 * PER_TYPE - 1).unwrap();
        assert_eq!(symbol.data_type, CipType::String);
        let n = string_chars(1, &symbol, 0, 0xA5, &mut chars);
        assert!((2..=STRING_LEN_MAX as usize).contains(&n));
        assert_eq!(counter_of_text(&chars[..n]), Some(0xA5));
    }
}
