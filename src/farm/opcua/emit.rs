//! The OPC UA part of an emitted farm config: a `[[device]]` table per
//! device (subscribe, sampling and publishing at the change interval) and
//! its tags CSV (`name,address,type`). Tag `j` of device `d` is named
//! [`tag_name`]`(d, j)`, at NodeId `ns=2;i=j+1`, of type
//! `values::FarmType::of_tag(j)`, so a receiver knows each row's tag from
//! its name alone.

use std::fmt::Write as _;

use super::values::FarmType;
use super::NAMESPACE_INDEX;

pub fn tag_name(device: u32, index: u32) -> String {
    format!("d{device:05}.u{index:05}")
}

/// The tags CSV of device `device`.
pub(in crate::farm) fn tags_csv(device: u32, tags_per_device: u32, csv: &mut String) {
    csv.push_str("name,address,type\n");
    for index in 0..tags_per_device {
        let _ = writeln!(
            csv,
            "{},ns={NAMESPACE_INDEX};i={},{}",
            tag_name(device, index),
            index + 1,
            FarmType::of_tag(index).config_type()
        );
    }
}

/// The `[[device]]` table of an OPC UA farm device: a subscription whose
/// sampling and publishing intervals are the farm's change interval, with
/// room for the changes of ten publishing intervals per monitored item.
pub(in crate::farm) fn device_table(
    toml: &mut String,
    name: &str,
    port: u16,
    interval: &str,
    tags_csv: &str,
) {
    let _ = write!(
        toml,
        "\n[[device]]\nname = \"{name}\"\nprotocol = \"opcua\"\n\
         address = \"opc.tcp://127.0.0.1:{port}/\"\nmode = \"subscribe\"\n\
         sampling_interval = \"{interval}\"\npublishing_interval = \"{interval}\"\n\
         queue_size = 10\ntimeout = \"5s\"\ntags_csv = \"{tags_csv}\"\n",
    );
}
