//! Rules between tags: names unique across the whole configuration, and no
//! two tags of a device reading the same register or bit (except bools that
//! take different bits of one register). Each error points at the later tag
//! in file order and names the earlier one's place.

use std::collections::HashMap;

use super::error::{ConfigError, Location};
use super::types::{Area, DeviceConfig, TagConfig};

/// Where a tag was written: its name and its address (TOML value or CSV cell).
#[derive(Clone, Debug)]
pub struct TagOrigin {
    pub name: Location,
    pub address: Location,
}

/// Rejects a tag name used twice anywhere in the configuration.
pub fn check_unique_names(devices: &[(DeviceConfig, Vec<TagOrigin>)]) -> Result<(), ConfigError> {
    let mut seen: HashMap<&str, (&Location, &str)> = HashMap::new();
    for (device, origins) in devices {
        for (tag, origin) in device.tags.iter().zip(origins) {
            if let Some((first, first_device)) = seen.get(tag.name.as_str()) {
                let problem = format!(
                    "duplicate tag name `{}`, first defined at {} (device `{first_device}`)",
                    tag.name,
                    first.short()
                );
                return Err(ConfigError::new(origin.name.clone(), problem)
                    .expected("tag names unique across all devices"));
            }
            seen.insert(&tag.name, (&origin.name, &device.name));
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
struct Span {
    area: Area,
    first: u32,
    last: u32,
    bit: Option<u8>,
    index: usize,
}

/// Rejects two tags of one device that read the same register or bit.
pub fn check_overlaps(device: &DeviceConfig, origins: &[TagOrigin]) -> Result<(), ConfigError> {
    let spans: Vec<Span> = device
        .tags
        .iter()
        .enumerate()
        .map(|(index, tag)| span_of(tag, index))
        .collect();
    let mut conflicts: Vec<(usize, usize)> = Vec::new();
    for area in [Area::Coil, Area::Discrete, Area::Input, Area::Holding] {
        let mut whole: Vec<Span> = spans
            .iter()
            .copied()
            .filter(|s| s.area == area && s.bit.is_none())
            .collect();
        let mut bits: Vec<Span> = spans
            .iter()
            .copied()
            .filter(|s| s.area == area && s.bit.is_some())
            .collect();
        whole.sort_by_key(|s| (s.first, s.index));
        bits.sort_by_key(|s| (s.first, s.bit, s.index));
        // Sweep in address order keeping the span that reaches furthest: any
        // overlap shows up as a span starting at or before that reach.
        // `reach_upto[i]` is that span after `whole[i]`, for the bit tags below.
        let mut reach_upto: Vec<Span> = Vec::with_capacity(whole.len());
        for s in &whole {
            match reach_upto.last() {
                Some(r) if r.last >= s.first => conflicts.push((r.index, s.index)),
                _ => {}
            }
            let reach = match reach_upto.last() {
                Some(r) if r.last >= s.last => *r,
                _ => *s,
            };
            reach_upto.push(reach);
        }
        for pair in bits.windows(2) {
            if let [a, b] = pair {
                if a.first == b.first && a.bit == b.bit {
                    conflicts.push((a.index, b.index));
                }
            }
        }
        for b in &bits {
            let before = whole.partition_point(|w| w.first <= b.first);
            let reach = before.checked_sub(1).and_then(|i| reach_upto.get(i));
            if let Some(r) = reach.filter(|r| r.last >= b.first) {
                conflicts.push((r.index, b.index));
            }
        }
    }
    let Some(&(a, b)) = conflicts
        .iter()
        .min_by_key(|(a, b)| ((*a).max(*b), (*a).min(*b)))
    else {
        return Ok(());
    };
    let (earlier, later) = (a.min(b), a.max(b));
    let (Some(first), Some(second)) = (device.tags.get(earlier), device.tags.get(later)) else {
        return Ok(());
    };
    let (Some(first_origin), Some(second_origin)) = (origins.get(earlier), origins.get(later))
    else {
        return Ok(());
    };
    let problem = format!(
        "tag `{}` ({}) overlaps tag `{}` ({}) defined at {}",
        second.name,
        describe(second),
        first.name,
        describe(first),
        first_origin.address.short()
    );
    Err(
        ConfigError::new(second_origin.address.clone(), problem).expected(
            "each register or bit read by one tag (bools may share a register at different bits)",
        ),
    )
}

fn span_of(tag: &TagConfig, index: usize) -> Span {
    let first = u32::from(tag.address);
    let last = first + u32::from(tag.register_count().max(1)) - 1;
    Span {
        area: tag.area,
        first,
        last,
        bit: tag.bit,
        index,
    }
}

fn describe(tag: &TagConfig) -> String {
    let span = span_of(tag, 0);
    let area = tag.area.name();
    match (tag.bit, span.first == span.last) {
        (Some(bit), _) => format!("{area} {} bit {bit}", span.first),
        (None, true) => format!("{area} {}", span.first),
        (None, false) => format!("{area} {}..={}", span.first, span.last),
    }
}
