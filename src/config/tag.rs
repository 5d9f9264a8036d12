//! The rules one tag must follow, shared by `[[device.tag]]` tables and CSV
//! rows: the words for areas, types and orders, and `finish_tag`, which turns
//! the parsed fields into a `ModbusTag` or names the field that is wrong.
//! Rules between tags (unique names, overlaps) live in `validate.rs`.

use super::error::{ConfigError, Location};
use super::types::{Area, DataType, ModbusTag, WordOrder};

pub const AREAS: &[(&str, Area)] = &[
    ("coil", Area::Coil),
    ("discrete", Area::Discrete),
    ("input", Area::Input),
    ("holding", Area::Holding),
];

pub const TYPES: &[(&str, DataType)] = &[
    ("bool", DataType::Bool),
    ("int16", DataType::Int16),
    ("uint16", DataType::Uint16),
    ("int32", DataType::Int32),
    ("uint32", DataType::Uint32),
    ("int64", DataType::Int64),
    ("uint64", DataType::Uint64),
    ("float32", DataType::Float32),
    ("float64", DataType::Float64),
    ("string", DataType::String),
];

pub const ORDERS: &[(&str, WordOrder)] = &[
    ("ABCD", WordOrder::Abcd),
    ("CDAB", WordOrder::Cdab),
    ("BADC", WordOrder::Badc),
    ("DCBA", WordOrder::Dcba),
];

/// Longest tag name: it becomes a kdb+ symbol and a metrics label.
pub const TAG_NAME_BYTES_MAX: usize = 128;
/// Longest string tag (the Modbus limit: one whole 125-register read, two
/// characters per register). Up to 8 bytes a text is one record, longer ones
/// a text head and its extension records (`sample::write_text`).
pub const STRING_BYTES_MAX: i64 = crate::protocol::modbus::STRING_BYTES_MAX as i64;
pub const BIT_MAX: i64 = 15;
pub const ADDRESS_MAX: i64 = 65535;

/// The fields of one tag as a table or a row wrote them.
#[derive(Clone, Debug)]
pub struct RawTag {
    pub name: String,
    pub area: Area,
    pub address: i64,
    pub data_type: DataType,
    pub order: Option<WordOrder>,
    pub bit: Option<i64>,
    pub length: Option<i64>,
    pub scale: Option<f64>,
    pub offset: Option<f64>,
}

/// The tag fields an error can point at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Name,
    Address,
    Type,
    Bit,
    Length,
    Scale,
    Offset,
}

impl Field {
    pub const fn key(self) -> &'static str {
        match self {
            Field::Name => "name",
            Field::Address => "address",
            Field::Type => "type",
            Field::Bit => "bit",
            Field::Length => "length",
            Field::Scale => "scale",
            Field::Offset => "offset",
        }
    }
}

/// Checks one tag on its own. `at` locates a field (its value, or where it
/// would go if it is absent).
pub fn finish_tag(raw: RawTag, at: &dyn Fn(Field) -> Location) -> Result<ModbusTag, ConfigError> {
    let fail = |field: Field, problem: String, expected: &str| {
        Err(ConfigError::new(at(field), problem).expected(expected.to_string()))
    };
    if let Err(problem) = check_name(&raw.name) {
        return fail(
            Field::Name,
            problem,
            "a non-empty name of printable characters",
        );
    }
    if !(0..=ADDRESS_MAX).contains(&raw.address) {
        return fail(
            Field::Address,
            format!("{} is out of range", raw.address),
            "0..=65535",
        );
    }
    let area = raw.area.name();
    let type_name = raw.data_type.name();
    if raw.area.is_bit_area() && raw.data_type != DataType::Bool {
        let problem =
            format!("type `{type_name}` does not fit area `{area}` (one bit per address)");
        return fail(Field::Type, problem, "bool");
    }
    let bit = check_bit(&raw, at)?;
    let length = check_length(&raw, at)?;
    check_scaling(&raw, at)?;
    let tag = ModbusTag {
        name: raw.name,
        area: raw.area,
        address: u16::try_from(raw.address).unwrap_or(u16::MAX),
        data_type: raw.data_type,
        order: raw.order.unwrap_or(WordOrder::Abcd),
        bit,
        length,
        scale: raw.scale.unwrap_or(1.0),
        offset: raw.offset.unwrap_or(0.0),
    };
    let last = i64::from(tag.address) + i64::from(tag.register_count()) - 1;
    if last > ADDRESS_MAX {
        let problem = format!(
            "a {} at {} ends at register {last}, past the last register",
            type_name, tag.address
        );
        let start_max = ADDRESS_MAX + 1 - i64::from(tag.register_count());
        return fail(
            Field::Address,
            problem,
            &format!("an address at most {start_max}"),
        );
    }
    Ok(tag)
}

fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.trim() != name {
        return Err(format!("the name `{name}` has spaces at an end"));
    }
    if name.chars().any(char::is_control) {
        return Err("the name has a control character".to_string());
    }
    if name.len() > TAG_NAME_BYTES_MAX {
        return Err(format!(
            "the name is {} bytes, more than {TAG_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    Ok(())
}

fn check_bit(raw: &RawTag, at: &dyn Fn(Field) -> Location) -> Result<Option<u8>, ConfigError> {
    let needs_bit = raw.data_type == DataType::Bool && !raw.area.is_bit_area();
    let Some(bit) = raw.bit else {
        if needs_bit {
            let problem = format!("a bool in area `{}` needs `bit`", raw.area.name());
            return Err(ConfigError::new(at(Field::Bit), problem).expected("bit = 0..=15"));
        }
        return Ok(None);
    };
    let problem = if raw.data_type != DataType::Bool {
        format!(
            "`bit` is only for bool tags, this one is `{}`",
            raw.data_type.name()
        )
    } else if raw.area.is_bit_area() {
        format!(
            "`bit` selects a bit of a register; area `{}` is bits already",
            raw.area.name()
        )
    } else if !(0..=BIT_MAX).contains(&bit) {
        format!("bit {bit} is out of range")
    } else {
        return Ok(u8::try_from(bit).ok());
    };
    let expected = if needs_bit { "0..=15" } else { "no `bit`" };
    Err(ConfigError::new(at(Field::Bit), problem).expected(expected))
}

fn check_length(raw: &RawTag, at: &dyn Fn(Field) -> Location) -> Result<u16, ConfigError> {
    let is_string = raw.data_type == DataType::String;
    match (is_string, raw.length) {
        (false, None) => Ok(0),
        (false, Some(_)) => {
            let problem = format!(
                "`length` is only for string tags, this one is `{}`",
                raw.data_type.name()
            );
            Err(ConfigError::new(at(Field::Length), problem).expected("no `length`"))
        }
        (true, None) => Err(
            ConfigError::new(at(Field::Length), "a string tag needs `length`")
                .expected(format!("length = 1..={STRING_BYTES_MAX} (bytes)")),
        ),
        (true, Some(n)) if (1..=STRING_BYTES_MAX).contains(&n) => Ok(n as u16),
        (true, Some(n)) => {
            let problem = format!(
                "length {n} is out of range (one read holds 125 registers, \
                 {STRING_BYTES_MAX} bytes)"
            );
            Err(ConfigError::new(at(Field::Length), problem)
                .expected(format!("1..={STRING_BYTES_MAX}")))
        }
    }
}

fn check_scaling(raw: &RawTag, at: &dyn Fn(Field) -> Location) -> Result<(), ConfigError> {
    let numeric = !matches!(raw.data_type, DataType::Bool | DataType::String);
    for (field, value, neutral) in [
        (Field::Scale, raw.scale, 1.0),
        (Field::Offset, raw.offset, 0.0),
    ] {
        let Some(v) = value else { continue };
        let (problem, expected) = if !v.is_finite() {
            (format!("{v} is not a finite number"), "a finite number")
        } else if field == Field::Scale && v == 0.0 {
            (
                "a scale of 0 makes every value 0".to_string(),
                "a finite non-zero number",
            )
        } else if !numeric && v != neutral {
            let type_name = raw.data_type.name();
            let problem = format!(
                "`{}` is only for numeric tags, this one is `{type_name}`",
                field.key()
            );
            (problem, "no scaling on a bool or string tag")
        } else {
            continue;
        };
        return Err(ConfigError::new(at(field), problem).expected(expected));
    }
    Ok(())
}
