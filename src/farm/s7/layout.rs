//! Where the tags of an emitted S7 farm config are: a fixed sequence every
//! device shares, so tag `j` is the same (area, byte, type) on every S7
//! device and a receiver knows it from `j` alone ([`farm_tags`]).
//!
//! Data blocks are filled in cycles of 8 pages (2 KiB, see
//! [`super::memory::PAGE_CYCLE`]), 32 cycles (64 KiB) per DB from DB1 on.
//! A cycle gives:
//!
//! - per numeric page, four 64-byte records of 20 tags: bools at bits 0-3
//!   of byte 0, then byte, word, int, uint, dword, dint, udint, real, lint,
//!   ulint, lreal, sint, usint, a scaled int (x 0.1), time, real and a
//!   scaled dint (x 0.001 + 100), at their natural offsets;
//! - per numeric page, five tags outside the DBs: bools `In.0`, `In.1`,
//!   `MWm`, a real at `MDm+4` and `QWq` (their cursors wrap at the sizes in
//!   [`LAYOUT_INPUT_SIZE`] and friends);
//! - every STRING[30] slot (with a CHAR at its third character on two of
//!   them), every DATE_AND_TIME, DTL and S5TIME slot, both WSTRING[62]
//!   slots and the STRING[254].
//!
//! The tags of a cycle are dealt out round-robin by kind (a numeric record,
//! the outside-DB group, a string, a date group, a wstring, the long
//! string, then the next of each), so even a device of 40 tags holds every
//! type.

use std::collections::VecDeque;

use crate::config::{S7Area, S7Type};

use super::check::FarmTag;
use super::memory::{page_kind, PageKind, CYCLE_SIZE, PAGE_SIZE};

/// Bytes of every DB an emitted config uses (the farm's DBs must be at
/// least this long).
pub const LAYOUT_DB_SIZE: u32 = 64 * 1024;
/// Where the outside-DB cursors wrap: the emitted tags stay below these,
/// so the farm's areas must be at least this long.
pub const LAYOUT_INPUT_SIZE: u32 = 256;
pub const LAYOUT_OUTPUT_SIZE: u32 = 256;
pub const LAYOUT_MERKER_SIZE: u32 = 8192;

const CYCLES_PER_DB: u32 = LAYOUT_DB_SIZE / CYCLE_SIZE;
const _: () = assert!(LAYOUT_DB_SIZE % CYCLE_SIZE == 0);

fn tag(area: S7Area, byte: u32, data_type: S7Type) -> FarmTag {
    FarmTag {
        area,
        byte,
        bit: 0,
        data_type,
        scale: 1.0,
        offset: 0.0,
    }
}

/// The 20 tags of a 64-byte numeric record at `base`.
fn numeric_record(area: S7Area, base: u32) -> Vec<FarmTag> {
    let mut tags: Vec<FarmTag> = (0..4)
        .map(|bit| FarmTag {
            bit,
            ..tag(area, base, S7Type::Bool)
        })
        .collect();
    let fields = [
        (1, S7Type::Byte),
        (2, S7Type::Word),
        (4, S7Type::Int),
        (6, S7Type::UInt),
        (8, S7Type::DWord),
        (12, S7Type::DInt),
        (16, S7Type::UDInt),
        (20, S7Type::Real),
        (24, S7Type::LInt),
        (32, S7Type::ULInt),
        (40, S7Type::LReal),
        (48, S7Type::SInt),
        (49, S7Type::USInt),
        (50, S7Type::Int),
        (52, S7Type::Time),
        (56, S7Type::Real),
        (60, S7Type::DInt),
    ];
    for (at, data_type) in fields {
        tags.push(tag(area, base + at, data_type));
    }
    // A temperature in tenths, and a counter in thousandths with an
    // offset. (Integers only: a scaled value is compared within a relative
    // 1e-12, and an integer's raw value comes back exactly by rounding.)
    if let Some(t) = tags.iter_mut().find(|t| t.byte == base + 50) {
        t.scale = 0.1;
    }
    if let Some(t) = tags.iter_mut().find(|t| t.byte == base + 60) {
        (t.scale, t.offset) = (0.001, 100.0);
    }
    tags
}

/// The five outside-DB tags of the `n`-th numeric page.
fn outside_group(n: u32) -> Vec<FarmTag> {
    let input = n % LAYOUT_INPUT_SIZE;
    let merker = 8 * n % LAYOUT_MERKER_SIZE;
    let output = 2 * n % LAYOUT_OUTPUT_SIZE;
    vec![
        FarmTag {
            bit: 0,
            ..tag(S7Area::Inputs, input, S7Type::Bool)
        },
        FarmTag {
            bit: 1,
            ..tag(S7Area::Inputs, input, S7Type::Bool)
        },
        tag(S7Area::Merker, merker, S7Type::Word),
        tag(S7Area::Merker, merker + 4, S7Type::Real),
        tag(S7Area::Outputs, output, S7Type::UInt),
    ]
}

/// Kinds of tag groups, in the order a cycle deals them out.
const KINDS: usize = 6;

/// The groups of one cycle starting at `start` of `db`; `numeric_pages`
/// counts numeric pages before it (the outside-DB cursors).
fn cycle_groups(
    db: S7Area,
    start: u32,
    numeric_pages: &mut u32,
) -> [VecDeque<Vec<FarmTag>>; KINDS] {
    let mut groups: [VecDeque<Vec<FarmTag>>; KINDS] = Default::default();
    let [numeric, outside, strings, dates, wstrings, long] = &mut groups;
    let mut date_groups: Vec<Vec<FarmTag>> = (0..16).map(|_| Vec::new()).collect();
    for page in 0..CYCLE_SIZE / PAGE_SIZE {
        let base = start + page * PAGE_SIZE;
        match page_kind(db, base) {
            PageKind::Numeric => {
                for record in 0..4 {
                    numeric.push_back(numeric_record(db, base + 64 * record));
                }
                outside.push_back(outside_group(*numeric_pages));
                *numeric_pages += 1;
            }
            PageKind::Strings => {
                for slot in 0..8 {
                    let at = base + 32 * slot;
                    let mut group = vec![tag(db, at, S7Type::String(30))];
                    if slot % 4 == 0 {
                        group.push(tag(db, at + 4, S7Type::Char));
                    }
                    strings.push_back(group);
                }
            }
            PageKind::Dates => {
                for (i, group) in date_groups.iter_mut().enumerate() {
                    let i = i as u32;
                    group.push(tag(db, base + 8 * i, S7Type::DateAndTime));
                    if i < 10 {
                        group.push(tag(db, base + 128 + 12 * i, S7Type::Dtl));
                    }
                    if i < 4 {
                        group.push(tag(db, base + 248 + 2 * i, S7Type::S5Time));
                    }
                }
            }
            PageKind::WStrings => {
                for slot in 0..2 {
                    wstrings.push_back(vec![tag(db, base + 128 * slot, S7Type::WString(62))]);
                }
            }
            PageKind::LongString => long.push_back(vec![tag(db, base, S7Type::String(254))]),
        }
    }
    dates.extend(date_groups);
    groups
}

/// The first `count` tags of every S7 device of an emitted farm config.
pub fn farm_tags(count: usize) -> Vec<FarmTag> {
    let mut tags = Vec::with_capacity(count);
    let mut numeric_pages = 0u32;
    for cycle in 0u32.. {
        if tags.len() >= count {
            break;
        }
        let db = S7Area::Db(1 + (cycle / CYCLES_PER_DB) as u16);
        let start = cycle % CYCLES_PER_DB * CYCLE_SIZE;
        let mut groups = cycle_groups(db, start, &mut numeric_pages);
        while groups.iter().any(|g| !g.is_empty()) {
            for group in groups.iter_mut() {
                if let Some(next) = group.pop_front() {
                    tags.extend(next);
                }
            }
        }
    }
    tags.truncate(count);
    tags
}

/// The DBs `farm_tags(count)` uses: DB1 up to this one.
pub fn db_count_for(count: usize) -> u16 {
    farm_tags(count)
        .iter()
        .map(|t| t.area.db_number())
        .max()
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::S7Type;

    #[test]
    fn a_small_device_holds_every_type() {
        let tags = farm_tags(40);
        assert_eq!(tags.len(), 40);
        for (_, data_type) in S7Type::NAMES {
            let found = tags
                .iter()
                .any(|t| std::mem::discriminant(&t.data_type) == std::mem::discriminant(data_type));
            assert!(found, "no {data_type} among 40 tags");
        }
        assert!(tags.iter().any(|t| t.area == S7Area::Merker));
        assert!(tags.iter().any(|t| t.area == S7Area::Inputs));
        assert!(tags.iter().any(|t| t.area == S7Area::Outputs));
        assert!(tags.iter().any(|t| t.is_scaled()));
    }

    #[test]
    fn tags_stay_inside_the_layout_and_a_prefix_is_stable() {
        let many = farm_tags(30_000);
        assert_eq!(farm_tags(1_000)[..], many[..1_000]);
        for t in &many {
            let end = t.byte + t.data_type.byte_size();
            let size = match t.area {
                S7Area::Db(_) => LAYOUT_DB_SIZE,
                S7Area::Merker => LAYOUT_MERKER_SIZE,
                S7Area::Inputs => LAYOUT_INPUT_SIZE,
                S7Area::Outputs => LAYOUT_OUTPUT_SIZE,
            };
            assert!(end <= size, "{t:?}");
            assert!(t.data_type != S7Type::Bool || t.bit < 4, "{t:?}");
        }
        assert!(db_count_for(30_000) >= 2);
        assert_eq!(db_count_for(10), 1);
    }
}
