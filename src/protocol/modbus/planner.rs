//! The request planner: from a device's tags, the fewest read requests per
//! poll cycle, each with the decode plan of the tags it covers.
//!
//! Runs once at start-up (and in `check-config`), never on the hot path. It
//! owns the rule set of the issue: coalesce adjacent and overlapping addresses
//! up to the device's request size, bridge gaps of at most `max_hole` unused
//! registers (or bits), never mix areas. Deterministic: the same tags always
//! give the same requests in the same order. O(n log n) in tags (two sorts,
//! one sweep).
//!
//! # The rules, and why the sweep gives the fewest requests
//!
//! A tag is the interval `[address, address + width)` of one area; width is
//! 1 in bit areas, else its type's registers (1, 2, 4, or half a string's
//! length rounded up). `limit` is `max_registers` (`max_bits` in bit areas).
//! A request holds a set `G` of tags, each tag in exactly one request (tags
//! are never split), and reads `[min start, max end)` of `G`. `G` is *valid*
//! when all its tags share one area, no stretch of `[min start, max end)`
//! that no tag of `G` covers is longer than `max_hole`, and the span
//! `max end - min start` is at most `limit`, except that a single tag is
//! always valid (a tag wider than `limit`, a float64 under `max_registers`
//! < 4, is read alone, as wide as itself). Tags may overlap or nest and
//! widths may be mixed; validity is a property of the set, whatever order it
//! is looked at in.
//!
//! The planner: (1) every *wide* tag (width > `limit`) gets a request of its
//! own and takes no part in the sweep (any set of two or more tags holding
//! it spans more than `limit`, so every valid plan reads it alone); (2) the
//! other tags, sorted by (area, address, index), are swept once: a tag joins
//! the open request when it is in the same area, starts at most `max_hole`
//! past the request's end (the largest end so far) and the request would
//! still span at most `limit`; else the open request is closed and the tag
//! opens the next one. Joining is exactly "the open request plus this tag
//! is valid", so each request is the longest valid run of the sorted
//! sequence starting at its first tag.
//!
//! Claim: no valid plan, whatever sets it groups (runs of the sorted order or
//! not), has fewer requests. Call the tag that opens each swept request its
//! *starter*, `s_1, s_2, ...` in sweep order, and `R_j` the request `s_j`
//! opens. Then no valid set holds two starters `s_i`, `s_j` (`i < j`):
//!
//! - different areas: never valid together;
//! - `s_j` opened `R_j` because `R_(j-1)` plus `s_j` spans more than
//!   `limit`: then `end(s_j) > start(R_(j-1)) + limit >= start(s_i) + limit`
//!   (starts never decrease in sweep order), so any set holding both spans
//!   more than `limit`, and it has two tags;
//! - `s_j` opened `R_j` because it starts more than `max_hole` past the end
//!   of `R_(j-1)`: in one area, the end of each request is the largest end
//!   of every swept tag before its successor's starter (a request closed
//!   for its span is followed by a starter ending past `start + limit`, which
//!   is past every end in it; one closed for a gap, by a starter beginning
//!   past all of them). So `s_j` starts more than `max_hole` past the end of
//!   every swept tag sorted before it, in particular past every tag that
//!   starts before it. In a set holding `s_i` and `s_j`, `s_i` starts before
//!   `s_j` (it ends before it), and every tag of the set that starts before
//!   `s_j` ends more than `max_hole` before it: the stretch up to
//!   `start(s_j)` is uncovered and longer than `max_hole`. Not valid.
//!
//! Wide tags are excluded from this (they are read alone in every valid
//! plan, and no set of two or more holds one). So every valid plan needs a
//! request per starter plus one per wide tag: what the planner emits.
//! Equal addresses are ordered by tag index; nothing above depends on that
//! order, only on starts never decreasing. `tests/modbus_planner_prop.rs`
//! checks the claim against an exhaustive search of every set partition of
//! small random tag sets and against a dynamic program over sorted runs.

use crate::config::{Area, DataType, ModbusDevice, ModbusTag, WordOrder};
use crate::sample::{text_records, TagId};

use super::limits::{READ_BITS_MAX, READ_REGISTERS_MAX};
use super::request::ReadRequest;

/// How to turn the registers (or the bit) at `offset` into one sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedTag {
    /// The sample's tag id (`first_tag` + index of the tag in `device.tags`).
    pub tag: TagId,
    /// Registers (or bits, for coils and discrete inputs) from the request's
    /// start address to the tag's first register (or its bit).
    pub offset: u16,
    /// Ignored for coils and discrete inputs: those always decode as bool.
    pub data_type: DataType,
    pub order: WordOrder,
    /// For a bool in a register: the bit, 0 (least significant) to 15.
    pub bit: Option<u8>,
    /// For strings: text length in bytes, 1..=250.
    pub length: u16,
    /// value = raw * scale + value_offset, when `scaled` (the sample is a float).
    pub scale: f64,
    pub value_offset: f64,
    pub scaled: bool,
}

impl PlannedTag {
    fn from_config(tag: TagId, offset: u16, config: &ModbusTag) -> Self {
        PlannedTag {
            tag,
            offset,
            data_type: config.data_type,
            order: config.order,
            bit: config.bit,
            length: config.length,
            scale: config.scale,
            value_offset: config.offset,
            scaled: config.is_scaled(),
        }
    }

    /// Registers (or bits) this tag occupies in its request.
    pub const fn span(&self, area: Area) -> u16 {
        if area.is_bit_area() {
            1
        } else {
            self.data_type.register_count(self.length)
        }
    }

    /// Records one sample of this tag occupies: 1, or for a string
    /// `text_records(length)` (a text head and its extensions).
    pub const fn records(&self, area: Area) -> usize {
        if !area.is_bit_area() && matches!(self.data_type, DataType::String) {
            text_records(self.length as usize)
        } else {
            1
        }
    }
}

/// One read request of a poll cycle and the tags its response carries.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRequest {
    pub area: Area,
    /// Zero-based address of the first register (or bit) read.
    pub start: u16,
    /// Registers (or bits) read: 1..=125 (1..=2000 for bits).
    pub quantity: u16,
    /// The tags this request covers, ascending by offset (ties by tag id).
    pub tags: Vec<PlannedTag>,
}

impl PlannedRequest {
    /// Records one answer (or failure) of this request writes: one per tag,
    /// a string tag's text records.
    pub fn record_count(&self) -> usize {
        self.tags.iter().map(|t| t.records(self.area)).sum()
    }

    /// The read request to send for this plan entry.
    pub fn read_request(&self) -> ReadRequest {
        // The planner only ever builds quantities within the protocol limits
        // (asserted in `Open::close`), so this cannot fail.
        match ReadRequest::new(self.area, self.start, self.quantity) {
            Ok(request) => request,
            Err(error) => panic!("planner produced an invalid request: {error:?}"),
        }
    }
}

/// Every request one poll cycle of a device sends.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DevicePlan {
    pub requests: Vec<PlannedRequest>,
}

impl DevicePlan {
    /// Records one poll cycle produces (one per tag, a string tag's text
    /// records: see `PlannedTag::records`).
    pub fn sample_count(&self) -> usize {
        self.requests.iter().map(PlannedRequest::record_count).sum()
    }

    /// The most records a single response of this plan produces: the size a
    /// caller's sample slice needs for any one frame.
    pub fn samples_per_request_max(&self) -> usize {
        self.requests
            .iter()
            .map(PlannedRequest::record_count)
            .max()
            .unwrap_or(0)
    }
}

/// A request being grown by the sweep. Addresses as u32: a tag may end at
/// 65536 (its last register is 65535).
struct Open {
    area: Area,
    start: u32,
    end: u32,
    tags: Vec<PlannedTag>,
}

impl Open {
    fn close(self) -> PlannedRequest {
        let quantity = self.end - self.start;
        let limit = if self.area.is_bit_area() {
            READ_BITS_MAX
        } else {
            READ_REGISTERS_MAX
        };
        assert!(quantity >= 1 && quantity <= u32::from(limit));
        assert!(self.end <= 65_536);
        PlannedRequest {
            area: self.area,
            start: self.start as u16,
            quantity: quantity as u16,
            tags: self.tags,
        }
    }
}

/// Plans the requests of one device. Tag ids are `first_tag` + the index of
/// the tag in `device.tags`.
///
/// Tags are sorted by (area, address, index) and swept once: a tag joins the
/// open request when it is in the same area, starts at most `max_hole` past
/// the request's end, and the grown request still fits in `max_registers`
/// (`max_bits` for coils and discrete inputs). A tag wider than
/// `max_registers` (a float64 with `max_registers` < 4) gets a request of its
/// own, as wide as the tag (a float64 of 4 registers, or a string of up to
/// 125, within the protocol's 125), and does not break the sweep around it. The fewest requests for these
/// rules: see the module documentation. Requests come out sorted by (area,
/// start, first tag id).
pub fn plan_device(device: &ModbusDevice, first_tag: TagId) -> DevicePlan {
    let mut sorted: Vec<(Area, u16, u32, &ModbusTag)> = device
        .tags
        .iter()
        .enumerate()
        .map(|(index, tag)| (tag.area, tag.address, index as u32, tag))
        .collect();
    // Keys are unique (the index breaks ties), so the unstable sort is deterministic.
    sorted.sort_unstable_by_key(|&(area, address, index, _)| (area, address, index));

    let registers_max = u32::from(device.max_registers.clamp(1, READ_REGISTERS_MAX));
    let bits_max = u32::from(device.max_bits.clamp(1, READ_BITS_MAX));
    let hole_max = u32::from(device.max_hole);

    let mut requests = Vec::new();
    let mut open: Option<Open> = None;
    for (area, address, index, config) in sorted {
        let tag_id = TagId(first_tag.0.saturating_add(index));
        let start = u32::from(address);
        let end = start + u32::from(config.register_count().max(1));
        let limit = if area.is_bit_area() {
            bits_max
        } else {
            registers_max
        };
        if end - start > limit {
            let tags = vec![PlannedTag::from_config(tag_id, 0, config)];
            let alone = Open {
                area,
                start,
                end,
                tags,
            };
            requests.push(alone.close());
            continue;
        }
        if let Some(current) = open.as_mut() {
            let joins = current.area == area
                && start <= current.end + hole_max
                && end.max(current.end) - current.start <= limit;
            if joins {
                current.end = current.end.max(end);
                let offset = (start - current.start) as u16;
                current
                    .tags
                    .push(PlannedTag::from_config(tag_id, offset, config));
                continue;
            }
        }
        if let Some(done) = open.take() {
            requests.push(done.close());
        }
        let tags = vec![PlannedTag::from_config(tag_id, 0, config)];
        open = Some(Open {
            area,
            start,
            end,
            tags,
        });
    }
    if let Some(done) = open.take() {
        requests.push(done.close());
    }
    // Wide tags were pushed while a request was open. Keys are unique (tag
    // ids are), so the unstable sort is deterministic.
    requests.sort_unstable_by_key(|r| (r.area, r.start, r.tags.first().map(|t| t.tag)));
    DevicePlan { requests }
}
