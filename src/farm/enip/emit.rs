//! The EtherNet/IP part of an emitted farm config: a `[[device]]` table per
//! device (its connection size) and its tags CSV (`name,address,type,count`).
//! The tags are the same on every device ([`farm_tags`]): config tag `j` is
//! named [`tag_name`]`(device, j)`, its samples `NAME[i]` when it has more
//! than one, so a receiver knows each sample's symbol and element from its
//! name alone.
//!
//! The tags come in groups of 159 samples, so that a device of 40 holds
//! every type: a scalar of each of the 12 types (`T_g`), a bit of a DINT
//! (`Dint_g.b`, a fixed bit), eight elements of each numeric array and two
//! STRINGs of the STRING array, one tag each (`TArr[base]`, read in
//! Multiple Service Packets), and a BOOL
//! array of 64 (`Bits_g[0]`, read as two DWORDs).

use std::fmt::Write as _;

use crate::config::CipType;

use super::check::FarmTag;
use super::table::{self, lookup, Shape, ARRAY_LEN, SCALAR_COUNT, TYPES};

/// What the emitted EtherNet/IP devices ask for.
#[derive(Clone, Copy, Debug)]
pub struct EnipEmitOptions {
    /// The connection size of the Large Forward Open (the farm's, so that
    /// it is granted).
    pub connection_size: u16,
}

impl Default for EnipEmitOptions {
    fn default() -> Self {
        EnipEmitOptions {
            connection_size: crate::config::EnipDevice::CONNECTION_SIZE_MAX,
        }
    }
}

/// One config tag of the layout.
#[derive(Clone, Debug, PartialEq)]
pub struct EmitTag {
    pub address: String,
    pub data_type: CipType,
    pub count: u16,
    /// Its first sample (the others: the next elements or bits).
    pub first: FarmTag,
}

impl EmitTag {
    /// Sample `i` of the tag.
    pub fn sample(&self, i: u32) -> FarmTag {
        FarmTag {
            element: self.first.element + i,
            ..self.first
        }
    }
}

/// Elements of each numeric array per group, and of the STRING array.
const ARRAY_SAMPLES: u32 = 8;
const STRING_SAMPLES: u32 = 2;
const BITS_SAMPLES: u32 = 64;

fn symbol(name: &str) -> table::Symbol {
    lookup(name.as_bytes()).unwrap_or_else(|| panic!("`{name}` is a farm symbol"))
}

/// The config tags of one group `g`.
fn group(g: u32, tags: &mut Vec<EmitTag>) {
    let n = g % SCALAR_COUNT;
    for (data_type, type_name) in TYPES {
        let name = format!("{type_name}_{n}");
        let first = FarmTag {
            symbol: symbol(&name),
            element: 0,
            bit: None,
        };
        tags.push(EmitTag {
            address: name,
            data_type,
            count: 1,
            first,
        });
    }
    let bit = 8 + (g % 24) as u8;
    let dint = format!("Dint_{n}");
    tags.push(EmitTag {
        address: format!("{dint}.{bit}"),
        data_type: CipType::Bool,
        count: 1,
        first: FarmTag {
            symbol: symbol(&dint),
            element: 0,
            bit: Some(bit),
        },
    });
    for (data_type, type_name) in TYPES.into_iter().skip(1) {
        let samples = if data_type.is_text() {
            STRING_SAMPLES
        } else {
            ARRAY_SAMPLES
        };
        let base = (g * samples) % (ARRAY_LEN - samples);
        let name = format!("{type_name}Arr");
        // A STRING tag reads one STRING (the config takes no arrays of
        // them): one tag per element.
        let (tag_count, count) = if data_type.is_text() {
            (samples, 1)
        } else {
            (1, samples)
        };
        for k in 0..tag_count {
            let element = base + k * count;
            let first = FarmTag {
                symbol: symbol(&name),
                element,
                bit: None,
            };
            tags.push(EmitTag {
                address: format!("{name}[{element}]"),
                data_type,
                count: count as u16,
                first,
            });
        }
    }
    let bits = format!("Bits_{n}");
    let first = FarmTag {
        symbol: symbol(&bits),
        element: 0,
        bit: None,
    };
    tags.push(EmitTag {
        address: format!("{bits}[0]"),
        data_type: CipType::Bool,
        count: BITS_SAMPLES as u16,
        first,
    });
}

/// The config tags of a device of `samples` samples (the last cut short).
pub fn farm_tags(samples: usize) -> Vec<EmitTag> {
    let mut tags = Vec::new();
    let mut total = 0usize;
    let mut g = 0;
    while total < samples {
        let mut chunk = Vec::new();
        group(g, &mut chunk);
        for mut tag in chunk {
            if total >= samples {
                break;
            }
            let count = usize::from(tag.count).min(samples - total);
            tag.count = count as u16;
            total += count;
            tags.push(tag);
        }
        g += 1;
    }
    debug_assert!(tags
        .iter()
        .all(|t| t.first.symbol.shape != Shape::Bits || t.address.ends_with("[0]")));
    tags
}

pub fn tag_name(device: u32, index: u32) -> String {
    format!("d{device:05}.e{index:05}")
}

/// The tags CSV of device `device`.
pub(in crate::farm) fn tags_csv(device: u32, tags: &[EmitTag], csv: &mut String) {
    csv.push_str("name,address,type,count\n");
    for (index, tag) in (0u32..).zip(tags) {
        let _ = writeln!(
            csv,
            "{},{},{},{}",
            tag_name(device, index),
            tag.address,
            tag.data_type,
            tag.count
        );
    }
}

/// The `[[device]]` table of an EtherNet/IP farm device.
pub(in crate::farm) fn device_table(
    toml: &mut String,
    name: &str,
    port: u16,
    poll_interval: &str,
    tags_csv: &str,
    options: &EnipEmitOptions,
) {
    let _ = write!(
        toml,
        "\n[[device]]\nname = \"{name}\"\nprotocol = \"ethernet-ip\"\n\
         address = \"127.0.0.1:{port}\"\npath = \"\"\nconnection_size = {}\n\
         poll_interval = \"{poll_interval}\"\ntimeout = \"1s\"\n\
         max_inflight = 1\ntags_csv = \"{tags_csv}\"\n",
        options.connection_size,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forty_samples_hold_every_type_and_counts_add_up() {
        for samples in [1, 12, 40, 159, 160, 1000] {
            let tags = farm_tags(samples);
            let total: usize = tags.iter().map(|t| usize::from(t.count)).sum();
            assert_eq!(total, samples);
        }
        let tags = farm_tags(40);
        for (data_type, _) in TYPES {
            assert!(tags.iter().any(|t| t.data_type == data_type), "{data_type}");
        }
        for tag in farm_tags(2000) {
            assert!(
                tag.count == 1 || !tag.data_type.is_text(),
                "{}",
                tag.address
            );
            let path = crate::config::parse_enip_address(&tag.address).unwrap();
            assert!(!path.segments.is_empty(), "{}", tag.address);
            let last = tag.first.element + u32::from(tag.count) - 1;
            assert!(
                last < 64 * tag.first.symbol.element_count(),
                "{}",
                tag.address
            );
        }
    }
}
