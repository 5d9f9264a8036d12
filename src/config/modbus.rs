//! A Modbus TCP or RTU-over-TCP device in the configuration: its keys, its
//! own settings, and `finish_tag`, the one place the rules of a Modbus tag
//! are written (for `[[device.tag]]` tables and CSV rows alike).

use super::device::Keys;
use super::error::ConfigError;
use super::suggest::one_of;
use super::tag::{description, name_and_origin, required, scaling, word, TagFields};
use super::tree::{required as required_key, Section};
use super::types::{Area, DataType, ModbusDevice, ModbusTag, WordOrder};
use super::validate::TagOrigin;

/// The keys of a Modbus device and of its tags (the tag keys are also the
/// CSV columns; the first `tag_required` are required).
pub const KEYS: Keys = Keys {
    device: &[
        "name",
        "protocol",
        "address",
        "poll_interval",
        "timeout",
        "max_inflight",
        "tags_csv",
        "tag",
        "unit_id",
        "max_registers",
        "max_bits",
        "max_hole",
    ],
    tag: &[
        "name",
        "area",
        "address",
        "type",
        "order",
        "scale",
        "offset",
        "bit",
        "length",
        "description",
    ],
    tag_required: 4,
    csv_example: "`name,area,address,type,order,scale,offset` (also `bit`, `length`, \
                  `description`)",
};

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

/// Longest string tag (the Modbus limit: one whole 125-register read, two
/// characters per register). Up to 8 bytes a text is one record, longer ones
/// a text head and its extension records (`sample::write_text`).
pub const STRING_BYTES_MAX: i64 = crate::protocol::modbus::STRING_BYTES_MAX as i64;
pub const BIT_MAX: i64 = 15;
pub const ADDRESS_MAX: i64 = 65535;

/// The device's own keys, with the defaults of docs/configuration.md; the
/// tags are added by the caller.
pub fn parse_device(section: &Section<'_>) -> Result<ModbusDevice, ConfigError> {
    let unit_id = required_key(
        section,
        "unit_id",
        "0..=255",
        section.integer("unit_id", 0..=255)?,
    )?;
    Ok(ModbusDevice {
        unit_id: unit_id.value as u8,
        max_registers: section
            .integer("max_registers", 1..=125)?
            .map_or(125, |n| n.value as u16),
        max_bits: section
            .integer("max_bits", 1..=2000)?
            .map_or(2000, |n| n.value as u16),
        max_hole: section
            .integer("max_hole", 0..=2000)?
            .map_or(0, |n| n.value as u16),
        tags: Vec::new(),
    })
}

/// Checks one tag on its own.
pub fn finish_tag(fields: &dyn TagFields) -> Result<(ModbusTag, TagOrigin), ConfigError> {
    let (name, origin) = name_and_origin(fields)?;
    let area_names: Vec<&str> = AREAS.iter().map(|(n, _)| *n).collect();
    let area = required(
        fields,
        "area",
        &one_of(&area_names),
        word(fields, "area", AREAS)?,
    )?
    .value;
    let address = required(
        fields,
        "address",
        "a zero-based address 0..=65535",
        fields.integer("address")?,
    )?;
    let type_names: Vec<&str> = TYPES.iter().map(|(n, _)| *n).collect();
    let data_type = required(
        fields,
        "type",
        &one_of(&type_names),
        word(fields, "type", TYPES)?,
    )?
    .value;
    description(fields)?;
    if !(0..=ADDRESS_MAX).contains(&address.value) {
        return Err(address
            .error(format!("{} is out of range", address.value))
            .expected("0..=65535"));
    }
    if area.is_bit_area() && data_type != DataType::Bool {
        let problem = format!(
            "type `{}` does not fit area `{}` (one bit per address)",
            data_type.name(),
            area.name()
        );
        return Err(ConfigError::new(fields.at("type"), problem).expected("bool"));
    }
    let order = word(fields, "order", ORDERS)?.map_or(WordOrder::Abcd, |o| o.value);
    let bit = check_bit(fields, area, data_type)?;
    let length = check_length(fields, data_type)?;
    let numeric = !matches!(data_type, DataType::Bool | DataType::String);
    let (scale, offset) = scaling(fields, numeric, data_type.name())?;
    let tag = ModbusTag {
        name,
        area,
        address: u16::try_from(address.value).unwrap_or(u16::MAX),
        data_type,
        order,
        bit,
        length,
        scale,
        offset,
    };
    let last = i64::from(tag.address) + i64::from(tag.register_count()) - 1;
    if last > ADDRESS_MAX {
        let problem = format!(
            "a {} at {} ends at register {last}, past the last register",
            data_type.name(),
            tag.address
        );
        let start_max = ADDRESS_MAX + 1 - i64::from(tag.register_count());
        return Err(address
            .error(problem)
            .expected(format!("an address at most {start_max}")));
    }
    Ok((tag, origin))
}

fn check_bit(
    fields: &dyn TagFields,
    area: Area,
    data_type: DataType,
) -> Result<Option<u8>, ConfigError> {
    let needs_bit = data_type == DataType::Bool && !area.is_bit_area();
    let Some(bit) = fields.integer("bit")? else {
        if needs_bit {
            let problem = format!("a bool in area `{}` needs `bit`", area.name());
            return Err(fields.missing("bit", "bit = 0..=15").with_problem(problem));
        }
        return Ok(None);
    };
    let problem = if data_type != DataType::Bool {
        format!(
            "`bit` is only for bool tags, this one is `{}`",
            data_type.name()
        )
    } else if area.is_bit_area() {
        format!(
            "`bit` selects a bit of a register; area `{}` is bits already",
            area.name()
        )
    } else if !(0..=BIT_MAX).contains(&bit.value) {
        format!("bit {} is out of range", bit.value)
    } else {
        return Ok(u8::try_from(bit.value).ok());
    };
    let expected = if needs_bit { "0..=15" } else { "no `bit`" };
    Err(bit.error(problem).expected(expected))
}

fn check_length(fields: &dyn TagFields, data_type: DataType) -> Result<u16, ConfigError> {
    let is_string = data_type == DataType::String;
    match (is_string, fields.integer("length")?) {
        (false, None) => Ok(0),
        (false, Some(n)) => {
            let problem = format!(
                "`length` is only for string tags, this one is `{}`",
                data_type.name()
            );
            Err(n.error(problem).expected("no `length`"))
        }
        (true, None) => Err(fields
            .missing(
                "length",
                &format!("length = 1..={STRING_BYTES_MAX} (bytes)"),
            )
            .with_problem("a string tag needs `length`")),
        (true, Some(n)) if (1..=STRING_BYTES_MAX).contains(&n.value) => Ok(n.value as u16),
        (true, Some(n)) => {
            let problem = format!(
                "length {} is out of range (one read holds 125 registers, \
                 {STRING_BYTES_MAX} bytes)",
                n.value
            );
            Err(n.error(problem).expected(format!("1..={STRING_BYTES_MAX}")))
        }
    }
}
