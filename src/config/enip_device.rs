//! An EtherNet/IP device in the configuration (CIP to a Logix or Micro800
//! controller, TCP port 44818 unless given): its keys, its own settings
//! with their defaults, and `finish_tag`, the one place the rules of an
//! EtherNet/IP tag are written (for `[[device.tag]]` tables and CSV rows
//! alike). The address and route syntax is parsed in `enip.rs`.

use super::device::Keys;
use super::enip::{parse_enip_address, parse_enip_route};
use super::error::ConfigError;
use super::suggest::one_of;
use super::tag::TAG_NAME_BYTES_MAX;
use super::tag::{description, name_and_origin, required, scaling, word, TagFields};
use super::tree::Section;
use super::types::{CipType, EnipDevice, EnipTag};
use super::validate::TagOrigin;

/// The keys of an EtherNet/IP device and of its tags (the tag keys are
/// also the CSV columns; the first `tag_required` are required).
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
        "path",
        "connection_size",
    ],
    tag: &[
        "name",
        "address",
        "type",
        "count",
        "scale",
        "offset",
        "description",
    ],
    tag_required: 3,
    csv_example: "`name,address,type` (also `count`, `scale`, `offset`, `description`)",
};

/// What a Large Forward Open asks for unless given: the most a
/// ControlLogix EN2T/L8x or CompactLogix 5380 accepts. A module that
/// refuses it gets a plain Forward Open of 500 bytes instead.
pub const CONNECTION_SIZE_DEFAULT: u16 = EnipDevice::CONNECTION_SIZE_MAX;
/// Elements one tag may read: the Read Tag element count is 16 bits.
pub const COUNT_MAX: i64 = u16::MAX as i64;

pub const ADDRESS_EXPECTED: &str = "a Logix tag address such as \"Temps\", \
     \"Program:Main.Line[3].Speed\", \"Matrix[1,2]\" or \"Flags.5\"";
const PATH_EXPECTED: &str =
    "a route of port,slot pairs such as \"1,0\" (backplane, slot 0), or \"\" for none";

/// The device's own keys, with the defaults above; the tags are added by
/// the caller.
pub fn parse_device(section: &Section<'_>) -> Result<EnipDevice, ConfigError> {
    let route = match section.string("path", PATH_EXPECTED)? {
        None => Vec::new(),
        Some(text) => parse_enip_route(text.value)
            .map_err(|e| text.error(e.to_string()).expected(PATH_EXPECTED))?,
    };
    let min = i64::from(EnipDevice::CONNECTION_SIZE_MIN);
    let max = i64::from(EnipDevice::CONNECTION_SIZE_MAX);
    let connection_size = section
        .integer("connection_size", min..=max)?
        .map_or(CONNECTION_SIZE_DEFAULT, |c| c.value as u16);
    Ok(EnipDevice {
        route,
        connection_size,
        tags: Vec::new(),
    })
}

/// Checks one tag on its own: its name, address, type and count, and that
/// they fit together.
pub fn finish_tag(fields: &dyn TagFields) -> Result<(EnipTag, TagOrigin), ConfigError> {
    let (name, origin) = name_and_origin(fields)?;
    let address = required(
        fields,
        "address",
        ADDRESS_EXPECTED,
        fields.text("address", ADDRESS_EXPECTED)?,
    )?;
    let type_names: Vec<&str> = CipType::NAMES.iter().map(|(n, _)| *n).collect();
    let data_type = required(
        fields,
        "type",
        &one_of(&type_names),
        word(fields, "type", CipType::NAMES)?,
    )?
    .value;
    description(fields)?;
    let path = parse_enip_address(address.value).map_err(|e| {
        address
            .error(format!(
                "`{}` is not a Logix tag address: {e}",
                address.value
            ))
            .expected(ADDRESS_EXPECTED)
    })?;
    if path.bit.is_some() && data_type != CipType::Bool {
        let problem = format!(
            "`{}` names a bit of an integer, which is read as type bool, not {data_type}",
            address.value
        );
        return Err(ConfigError::new(fields.at("type"), problem).expected("type = \"bool\""));
    }
    let count = check_count(fields, data_type, path.bit.is_some(), &name)?;
    let numeric = !matches!(data_type, CipType::Bool | CipType::String);
    let (scale, offset) = scaling(fields, numeric, data_type.name())?;
    let tag = EnipTag {
        name,
        address: path,
        data_type,
        count,
        scale,
        offset,
    };
    Ok((tag, origin))
}

/// `count` (default 1): 1..=65535; one for a bit of an integer; and the
/// longest sample name, `NAME[count - 1]`, within the name limit.
fn check_count(
    fields: &dyn TagFields,
    data_type: CipType,
    is_bit: bool,
    name: &str,
) -> Result<u16, ConfigError> {
    let Some(count) = fields.integer("count")? else {
        return Ok(1);
    };
    let (problem, expected) = if !(1..=COUNT_MAX).contains(&count.value) {
        (
            format!("count {} is out of range", count.value),
            format!("1..={COUNT_MAX}"),
        )
    } else if is_bit && count.value != 1 {
        (
            "a bit of an integer (`.N`) is one sample".to_string(),
            "count = 1, or a BOOL array tag for several bits".to_string(),
        )
    } else if data_type == CipType::String && count.value != 1 {
        (
            "a string tag reads one STRING; an array of strings is not built yet".to_string(),
            "count = 1 (one tag per string)".to_string(),
        )
    } else {
        let longest = format!("{name}[{}]", count.value - 1);
        if count.value > 1 && longest.len() > TAG_NAME_BYTES_MAX {
            (
                format!(
                    "the sample name `{longest}` would be {} bytes, more than {TAG_NAME_BYTES_MAX}",
                    longest.len()
                ),
                "a shorter name or a smaller count".to_string(),
            )
        } else {
            return Ok(count.value as u16);
        }
    };
    Err(count.error(problem).expected(expected))
}
