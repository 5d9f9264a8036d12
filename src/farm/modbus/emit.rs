//! The Modbus part of an emitted farm config: tag `j` of device `i` is
//! holding register `j` as `uint16`, named [`tag_name`]`(i, j)`, so a
//! receiver maps a row back to (device, address) with [`parse_tag_name`] and
//! checks it with `verify_register`.

use std::fmt::Write as _;

pub fn tag_name(device: u32, address: u16) -> String {
    format!("d{device:05}.hr{address:05}")
}

/// (device, address) of a name made by [`tag_name`].
pub fn parse_tag_name(name: &str) -> Option<(u32, u16)> {
    let (device, address) = name.strip_prefix('d')?.split_once(".hr")?;
    Some((device.parse().ok()?, address.parse().ok()?))
}

/// The tag CSV of device `device`: holding registers `0..tag_count`.
pub(in crate::farm) fn tags_csv(device: u32, tag_count: u32, csv: &mut String) {
    csv.push_str("name,area,address,type,order,scale,offset\n");
    for address in 0..tag_count {
        let address = address as u16;
        let _ = writeln!(
            csv,
            "{},holding,{address},uint16,ABCD,1,0",
            tag_name(device, address)
        );
    }
}

/// The `[[device]]` table of a Modbus farm device: unit `unit_id` behind
/// 127.0.0.1:`port`.
pub(in crate::farm) fn device_table(
    toml: &mut String,
    name: &str,
    (port, unit_id): (u16, u8),
    poll_interval: &str,
    tags_csv: &str,
) {
    let _ = write!(
        toml,
        "\n[[device]]\nname = \"{name}\"\nprotocol = \"modbus-tcp\"\n\
         address = \"127.0.0.1:{port}\"\nunit_id = {unit_id}\npoll_interval = \"{poll_interval}\"\n\
         timeout = \"1s\"\nmax_registers = 125\n\
         max_inflight = 1\ntags_csv = \"{tags_csv}\"\n",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_round_trip() {
        assert_eq!(parse_tag_name(&tag_name(1999, 124)), Some((1999, 124)));
        assert_eq!(
            parse_tag_name(&tag_name(123_456, 65535)),
            Some((123_456, 65535))
        );
        assert_eq!(parse_tag_name("d1.x2"), None);
    }
}
