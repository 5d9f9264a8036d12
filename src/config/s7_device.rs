//! An S7 device in the configuration (S7comm over ISO-on-TCP, port 102
//! unless given): its keys, its own settings with their defaults, and
//! `finish_tag`, the one place the rules of an S7 tag are written (for
//! `[[device.tag]]` tables and CSV rows alike). The address and type words
//! themselves are parsed in `s7.rs`.

use super::device::Keys;
use super::error::ConfigError;
use super::s7::{check_fit, is_numeric, parse_address, parse_tsap, parse_type, FitError};
use super::s7::{size_for, TYPE_EXPECTED};
use super::tag::{description, name_and_origin, required, scaling, TagFields};
use super::tree::{Section, Spanned};
use super::types::{S7ConnectionType, S7Device, S7Tag};
use super::validate::TagOrigin;

/// The keys of an S7 device and of its tags (the tag keys are also the CSV
/// columns; the first `tag_required` are required).
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
        "rack",
        "slot",
        "connection_type",
        "pdu_size",
        "local_tsap",
        "remote_tsap",
        "max_hole",
    ],
    tag: &["name", "address", "type", "scale", "offset", "description"],
    tag_required: 3,
    csv_example: "`name,address,type` (also `scale`, `offset`, `description`)",
};

pub const CONNECTION_TYPES: &[(&str, S7ConnectionType)] = &[
    ("pg", S7ConnectionType::Pg),
    ("op", S7ConnectionType::Op),
    ("basic", S7ConnectionType::Basic),
];

/// Slot 1 unless given: the CPU's slot on S7-1200, S7-1500 and ET 200SP
/// CPUs. On an S7-300 or S7-400 slot 1 holds the power supply, so there
/// this default fails loudly at connect (the PLC refuses the COTP
/// connection) rather than reading another CPU of a multi-CPU rack.
pub const SLOT_DEFAULT: u8 = 1;
/// The largest PDU of any S7 CPU (S7-1500); the PLC answers with its own,
/// and the smaller of the two wins.
pub const PDU_SIZE_DEFAULT: u16 = 960;
pub const PDU_SIZE_MIN: i64 = 240;
pub const PDU_SIZE_MAX: i64 = 960;
/// The TSAP most clients use for themselves (Snap7, python-snap7, nodeS7).
pub const LOCAL_TSAP_DEFAULT: u16 = 0x0100;
/// Unused bytes the planner may read to join two ranges, unless given. A
/// second Read Var item costs 12 request bytes and 4 (plus a fill byte)
/// reply bytes and one of the ~19 items a 240-byte PDU carries; a hole of
/// up to 4 bytes costs no more reply bytes than that and saves the rest.
/// Reading it has no side effect, and it bridges the fill byte that Step
/// 7's standard DB layout puts before every word after a bool or a byte.
pub const HOLE_BYTES_DEFAULT: u16 = 4;
/// A hole is never worth more than one whole PDU.
pub const HOLE_BYTES_MAX: i64 = 960;

const TSAP_EXPECTED: &str = "a TSAP such as 0x0100 (an integer), \"0x0100\" or \"01.00\"";
pub const ADDRESS_EXPECTED: &str =
    "a Step 7 address such as \"DB10.DBD20\", \"DB10.DBX4.3\", \"MW2\", \"I0.0\" or \"QB1\"";

/// The device's own keys, with the defaults above; the tags are added by
/// the caller.
pub fn parse_device(section: &Section<'_>) -> Result<S7Device, ConfigError> {
    let rack = section.integer("rack", 0..=7)?;
    let slot = section.integer("slot", 0..=31)?;
    let connection_type = section.word("connection_type", CONNECTION_TYPES)?;
    let remote_tsap = tsap(section, "remote_tsap")?;
    if remote_tsap.is_some() {
        // With the remote TSAP given, these would be ignored: say so rather
        // than connect somewhere the file does not seem to say.
        for key in ["rack", "slot", "connection_type"] {
            if section.has(key) {
                let problem = format!("`{key}` has no effect when `remote_tsap` is set");
                return Err(ConfigError::new(section.location(key), problem).expected(
                    "either `remote_tsap`, or `rack`, `slot` and `connection_type` (the \
                     remote TSAP is then connection_type << 8 | rack * 32 + slot)",
                ));
            }
        }
    }
    Ok(S7Device {
        rack: rack.map_or(0, |r| r.value as u8),
        slot: slot.map_or(SLOT_DEFAULT, |s| s.value as u8),
        connection_type: connection_type.map_or(S7ConnectionType::Pg, |c| c.value),
        pdu_size: section
            .integer("pdu_size", PDU_SIZE_MIN..=PDU_SIZE_MAX)?
            .map_or(PDU_SIZE_DEFAULT, |p| p.value as u16),
        local_tsap: tsap(section, "local_tsap")?.map_or(LOCAL_TSAP_DEFAULT, |t| t.value),
        remote_tsap: remote_tsap.map(|t| t.value),
        max_hole: section
            .integer("max_hole", 0..=HOLE_BYTES_MAX)?
            .map_or(HOLE_BYTES_DEFAULT, |h| h.value as u16),
        tags: Vec::new(),
    })
}

/// A TSAP written as an integer (`0x0100`, `256`) or as text (`"0x0100"`,
/// `"01.00"`).
fn tsap(section: &Section<'_>, key: &str) -> Result<Option<Spanned<u16>>, ConfigError> {
    if !section.is_string(key) {
        let value = section.integer(key, 0..=0xFFFF)?;
        return Ok(value.map(|v| Spanned {
            value: v.value as u16,
            at: v.at,
        }));
    }
    let Some(text) = section.string(key, TSAP_EXPECTED)? else {
        return Ok(None);
    };
    match parse_tsap(text.value) {
        Ok(value) => Ok(Some(Spanned { value, at: text.at })),
        Err(e) => Err(text
            .error(format!("`{}` is not a TSAP: {e}", text.value))
            .expected(TSAP_EXPECTED)),
    }
}

/// Checks one tag on its own: its name, its type, its address and that the
/// address's size letter fits the type.
pub fn finish_tag(fields: &dyn TagFields) -> Result<(S7Tag, TagOrigin), ConfigError> {
    let (name, origin) = name_and_origin(fields)?;
    let address = required(
        fields,
        "address",
        ADDRESS_EXPECTED,
        fields.text("address", ADDRESS_EXPECTED)?,
    )?;
    let type_word = required(
        fields,
        "type",
        TYPE_EXPECTED,
        fields.text("type", TYPE_EXPECTED)?,
    )?;
    description(fields)?;
    let data_type = parse_type(type_word.value)
        .map_err(|e| type_word.error(e.to_string()).expected(TYPE_EXPECTED))?;
    let parsed = parse_address(address.value).map_err(|e| {
        address
            .error(format!("`{}` is not an S7 address: {e}", address.value))
            .expected(ADDRESS_EXPECTED)
    })?;
    if let Err(e) = check_fit(parsed, data_type) {
        let expected = match e {
            FitError::Size { .. } => {
                format!("a {} address for `{data_type}`", size_for(data_type).name())
            }
            FitError::PastTop { .. } => "a value that ends by byte 2097151".to_string(),
        };
        return Err(address.error(e.to_string()).expected(expected));
    }
    let type_name = data_type.to_string();
    let (scale, offset) = scaling(fields, is_numeric(data_type), &type_name)?;
    let tag = S7Tag {
        name,
        area: parsed.area,
        byte: parsed.byte,
        bit: parsed.bit,
        data_type,
        scale,
        offset,
    };
    Ok((tag, origin))
}
