//! The S7 part of an emitted farm config: a `[[device]]` table per S7
//! device (rack, slot, the PDU size to request) and its tags CSV
//! (`name,address,type,scale,offset`), tag `j` at [`super::layout`]'s
//! `farm_tags()[j]`, named [`tag_name`]`(device, j)`.

use std::fmt::Write as _;

use crate::config::{S7Area, S7Type};

use super::check::FarmTag;

/// What the emitted S7 devices ask for.
#[derive(Clone, Copy, Debug)]
pub struct S7EmitOptions {
    /// The CPU's rack and slot (the farm's, so its TSAP check passes).
    pub rack: u8,
    pub slot: u8,
    /// PDU size requested in Setup Communication (the farm answers the
    /// smaller of this and its own).
    pub pdu_size: u16,
}

impl Default for S7EmitOptions {
    fn default() -> Self {
        S7EmitOptions {
            rack: 0,
            slot: 1,
            pdu_size: 960,
        }
    }
}

pub fn tag_name(device: u32, index: u32) -> String {
    format!("d{device:05}.s{index:05}")
}

/// (device, tag index) of a name made by [`tag_name`].
pub fn parse_tag_name(name: &str) -> Option<(u32, u32)> {
    let (device, index) = name.strip_prefix('d')?.split_once(".s")?;
    Some((device.parse().ok()?, index.parse().ok()?))
}

/// The Step 7 absolute address of a tag: `DB1.DBX0.3`, `DB1.DBW2`,
/// `MD4`, `I0.1`, `QW6`; values of 8 bytes and more (LINT, LREAL, dates,
/// strings) name their first byte (`DB1.DBB24`).
pub fn address(tag: &FarmTag) -> String {
    let width = match tag.data_type {
        S7Type::Bool => 'X',
        t => match t.byte_size() {
            2 => 'W',
            4 => 'D',
            _ => 'B',
        },
    };
    let prefix = match tag.area {
        S7Area::Db(n) => format!("DB{n}.DB"),
        S7Area::Merker => "M".to_string(),
        S7Area::Inputs => "I".to_string(),
        S7Area::Outputs => "Q".to_string(),
    };
    match (width, tag.area) {
        ('X', S7Area::Db(_)) => format!("{prefix}X{}.{}", tag.byte, tag.bit),
        ('X', _) => format!("{prefix}{}.{}", tag.byte, tag.bit),
        (w, _) => format!("{prefix}{w}{}", tag.byte),
    }
}

/// The tags CSV of S7 device `device`.
pub(in crate::farm) fn tags_csv(device: u32, tags: &[FarmTag], csv: &mut String) {
    csv.push_str("name,address,type,scale,offset\n");
    for (index, tag) in (0u32..).zip(tags) {
        let _ = writeln!(
            csv,
            "{},{},{},{},{}",
            tag_name(device, index),
            address(tag),
            tag.data_type,
            tag.scale,
            tag.offset
        );
    }
}

/// The `[[device]]` table of an S7 farm device.
pub(in crate::farm) fn device_table(
    toml: &mut String,
    name: &str,
    port: u16,
    poll_interval: &str,
    tags_csv: &str,
    options: &S7EmitOptions,
) {
    let _ = write!(
        toml,
        "\n[[device]]\nname = \"{name}\"\nprotocol = \"s7\"\n\
         address = \"127.0.0.1:{port}\"\nrack = {}\nslot = {}\npdu_size = {}\n\
         poll_interval = \"{poll_interval}\"\ntimeout = \"1s\"\n\
         max_inflight = 1\ntags_csv = \"{tags_csv}\"\n",
        options.rack, options.slot, options.pdu_size,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_read_like_step7() {
        assert_eq!(parse_tag_name(&tag_name(12, 34_567)), Some((12, 34_567)));
        assert_eq!(parse_tag_name("d00001.hr00002"), None);
        let t = |area, byte, bit, data_type| FarmTag {
            area,
            byte,
            bit,
            data_type,
            scale: 1.0,
            offset: 0.0,
        };
        let cases = [
            (t(S7Area::Db(1), 0, 3, S7Type::Bool), "DB1.DBX0.3"),
            (t(S7Area::Db(2), 2, 0, S7Type::Word), "DB2.DBW2"),
            (t(S7Area::Db(1), 20, 0, S7Type::Real), "DB1.DBD20"),
            (t(S7Area::Db(1), 24, 0, S7Type::LInt), "DB1.DBB24"),
            (t(S7Area::Db(1), 512, 0, S7Type::String(30)), "DB1.DBB512"),
            (t(S7Area::Merker, 4, 0, S7Type::Real), "MD4"),
            (t(S7Area::Merker, 8, 0, S7Type::Word), "MW8"),
            (t(S7Area::Inputs, 3, 1, S7Type::Bool), "I3.1"),
            (t(S7Area::Outputs, 6, 0, S7Type::UInt), "QW6"),
            (t(S7Area::Db(1), 49, 0, S7Type::USInt), "DB1.DBB49"),
        ];
        for (tag, text) in cases {
            assert_eq!(address(&tag), text);
        }
    }
}
