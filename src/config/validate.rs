//! Rules between tags: names unique across the whole configuration, and no
//! two tags of a device reading the same register or bit (except bools that
//! take different bits of one register). Each error points at the later tag
//! in file order and names the earlier one's place.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::error::{ConfigError, Location};
use super::types::{Area, DeviceConfig, DriverConfig, ModbusTag};

/// Where a tag was written: its name and its address (TOML value or CSV cell).
#[derive(Clone, Debug)]
pub struct TagOrigin {
    pub name: Location,
    pub address: Location,
}

/// Rejects a tag name used twice anywhere in the configuration.
pub fn check_unique_names(devices: &[(DeviceConfig, Vec<TagOrigin>)]) -> Result<(), ConfigError> {
    let mut seen: HashMap<String, (&Location, &str)> = HashMap::new();
    for (device, origins) in devices {
        for (name, origin) in device.sample_names().into_iter().zip(origins) {
            if let Some((first, first_device)) = seen.get(name.as_ref()) {
                let problem = format!(
                    "duplicate tag name `{name}`, first defined at {} (device `{first_device}`)",
                    first.short()
                );
                return Err(ConfigError::new(origin.name.clone(), problem)
                    .expected("tag names unique across all devices"));
            }
            seen.insert(name.into_owned(), (&origin.name, &device.name));
        }
    }
    Ok(())
}

/// Who reads a register: one tag as a whole, or bools bit by bit.
enum Occupant {
    Whole(usize),
    /// Boxed: most registers hold one whole tag, and this is 16 words.
    Bits(Box<[Option<usize>; 16]>),
}

/// Rejects two tags of one Modbus device that read the same register or
/// bit. (Two S7 tags may read the same bytes, e.g. a DWORD and the REAL in
/// it: reads have no side effects and the planner merges them.)
pub fn check_overlaps(device: &DeviceConfig, origins: &[TagOrigin]) -> Result<(), ConfigError> {
    match &device.driver {
        DriverConfig::Modbus(m) => check_modbus_overlaps(&m.tags, origins),
        DriverConfig::S7(_) | DriverConfig::EthernetIp(_) | DriverConfig::Opcua(_) => Ok(()),
    }
}

/// Tags are placed in file order into a map of occupied registers (a tag
/// covers at most 4), so the first tag that lands on an occupied one is the
/// first conflict in file order, found in O(tags).
fn check_modbus_overlaps(tags: &[ModbusTag], origins: &[TagOrigin]) -> Result<(), ConfigError> {
    assert_eq!(tags.len(), origins.len(), "one origin per tag");
    let mut occupied: HashMap<(Area, u32), Occupant> = HashMap::with_capacity(tags.len());
    for (index, tag) in tags.iter().enumerate() {
        let (first, last) = registers(tag);
        for register in first..=last {
            let slot = occupied.entry((tag.area, register));
            let earlier = match (slot, tag.bit) {
                (Entry::Vacant(v), None) => {
                    v.insert(Occupant::Whole(index));
                    None
                }
                (Entry::Vacant(v), Some(bit)) => {
                    let mut owners = [None; 16];
                    if let Some(owner) = owners.get_mut(usize::from(bit)) {
                        *owner = Some(index);
                    }
                    v.insert(Occupant::Bits(Box::new(owners)));
                    None
                }
                (Entry::Occupied(o), bit) => match (o.into_mut(), bit) {
                    (Occupant::Whole(owner), _) => Some(*owner),
                    (Occupant::Bits(owners), None) => owners.iter().flatten().next().copied(),
                    (Occupant::Bits(owners), Some(bit)) => match owners.get_mut(usize::from(bit)) {
                        Some(Some(owner)) => Some(*owner),
                        Some(free) => {
                            *free = Some(index);
                            None
                        }
                        None => None,
                    },
                },
            };
            if let Some(earlier) = earlier {
                return Err(overlap_error(tags, origins, earlier, index));
            }
        }
    }
    Ok(())
}

fn overlap_error(
    tags: &[ModbusTag],
    origins: &[TagOrigin],
    earlier: usize,
    later: usize,
) -> ConfigError {
    let (first, second) = (&tags[earlier], &tags[later]);
    let problem = format!(
        "tag `{}` ({}) overlaps tag `{}` ({}) defined at {}",
        second.name,
        describe(second),
        first.name,
        describe(first),
        origins[earlier].address.short()
    );
    ConfigError::new(origins[later].address.clone(), problem).expected(
        "each register or bit read by one tag (bools may share a register at different bits)",
    )
}

/// First and last register (or bit address) a tag reads.
fn registers(tag: &ModbusTag) -> (u32, u32) {
    let first = u32::from(tag.address);
    (first, first + u32::from(tag.register_count().max(1)) - 1)
}

fn describe(tag: &ModbusTag) -> String {
    let (first, last) = registers(tag);
    let area = tag.area.name();
    match (tag.bit, first == last) {
        (Some(bit), _) => format!("{area} {first} bit {bit}"),
        (None, true) => format!("{area} {first}"),
        (None, false) => format!("{area} {first}..={last}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;
    use crate::config::error::Place;
    use crate::config::types::{DataType, Protocol, WordOrder};

    fn device(tags: Vec<ModbusTag>) -> (DeviceConfig, Vec<TagOrigin>) {
        let origins = (0..tags.len())
            .map(|i| {
                let place = Place::Csv {
                    line: i as u32 + 2,
                    column: Some("address".into()),
                };
                let at = Location::new(Path::new("t.csv"), place);
                TagOrigin {
                    name: at.clone(),
                    address: at,
                }
            })
            .collect();
        let device = DeviceConfig::modbus(
            "d",
            Protocol::ModbusTcp,
            "h:502",
            1,
            Duration::from_millis(100),
            tags,
        );
        (device, origins)
    }

    /// Do tags `a` and `b` read a common register or bit? The plain rule,
    /// pair by pair, as the model for `check_overlaps`.
    fn conflict(a: &ModbusTag, b: &ModbusTag) -> bool {
        if a.area != b.area {
            return false;
        }
        let (a0, b0) = (u32::from(a.address), u32::from(b.address));
        let (a1, b1) = (
            a0 + u32::from(a.register_count()) - 1,
            b0 + u32::from(b.register_count()) - 1,
        );
        if a1 < b0 || b1 < a0 {
            return false;
        }
        match (a.bit, b.bit) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
    }

    fn tag_strategy() -> impl Strategy<Value = ModbusTag> {
        let types = prop::sample::select(vec![
            DataType::Bool,
            DataType::Int16,
            DataType::Float32,
            DataType::Float64,
            DataType::String,
        ]);
        let areas = prop::sample::select(vec![Area::Coil, Area::Holding, Area::Input]);
        (areas, 0u16..24, types, 0u8..4, 1u16..=8).prop_map(|(area, address, t, bit, length)| {
            let data_type = if area.is_bit_area() {
                DataType::Bool
            } else {
                t
            };
            let bit = (data_type == DataType::Bool && !area.is_bit_area()).then_some(bit);
            let length = if data_type == DataType::String {
                length
            } else {
                0
            };
            ModbusTag {
                name: String::new(),
                area,
                address,
                data_type,
                order: WordOrder::Abcd,
                bit,
                length,
                scale: 1.0,
                offset: 0.0,
            }
        })
    }

    proptest! {
        #[test]
        fn finds_the_first_conflict_the_model_finds(
            tags in prop::collection::vec(tag_strategy(), 0..24)
        ) {
            let n = tags.len();
            let mut first: Option<usize> = None;
            for later in 0..n {
                if (0..later).any(|earlier| conflict(&tags[earlier], &tags[later])) {
                    first = Some(later);
                    break;
                }
            }
            let (device, origins) = device(tags);
            match (check_overlaps(&device, &origins), first) {
                (Ok(()), None) => {}
                (Err(e), Some(later)) => {
                    prop_assert_eq!(&e.location, &origins[later].address);
                }
                (got, want) => prop_assert!(false, "check {:?}, model {:?}", got, want),
            }
        }
    }
}
