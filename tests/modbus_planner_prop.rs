//! The planner emits the fewest requests the rules allow (the argument is in
//! src/protocol/modbus/planner.rs). Checked on random small devices (mixed
//! widths, overlapping and nested tags, several areas, holes, small request
//! sizes, tags wider than a request) against two searches written here from
//! the rules alone:
//!
//! - every set partition of the tags (any grouping, not only runs of the
//!   sorted order), for up to 7 tags;
//! - a dynamic program over the tags sorted by (area, address), for up to 14
//!   tags: `best[j] = min over i < j of best[i] + 1` where tags `i..j` form a
//!   valid request, with each tag wider than the request size counted alone
//!   (any request holding it and another tag is too wide).
//!
//! Validity is computed from a coverage map of the request's registers, not
//! by the planner's sweep. Every plan is also checked to be valid itself:
//! each tag once, inside its request, one area, span and holes within limits.

use millrace::config::{Area, DataType, ModbusDevice, ModbusTag, WordOrder};
use millrace::protocol::modbus::{plan_device, DevicePlan};
use millrace::TagId;
use proptest::prelude::*;

const AREAS: [Area; 4] = [Area::Holding, Area::Input, Area::Coil, Area::Discrete];
const TYPES: [DataType; 6] = [
    DataType::Uint16,
    DataType::Bool,
    DataType::Float32,
    DataType::Int64,
    DataType::String,
    DataType::Float64,
];

/// Registers (bits) a tag occupies, from the Modbus data model, not from the
/// crate's helpers.
fn width(tag: &ModbusTag) -> u32 {
    if matches!(tag.area, Area::Coil | Area::Discrete) {
        return 1;
    }
    match tag.data_type {
        DataType::Bool | DataType::Int16 | DataType::Uint16 => 1,
        DataType::Int32 | DataType::Uint32 | DataType::Float32 => 2,
        DataType::Int64 | DataType::Uint64 | DataType::Float64 => 4,
        DataType::String => u32::from(tag.length).div_ceil(2),
    }
}

fn limit(device: &ModbusDevice, area: Area) -> u32 {
    if matches!(area, Area::Coil | Area::Discrete) {
        u32::from(device.max_bits)
    } else {
        u32::from(device.max_registers)
    }
}

/// Can these tags (indices into `device.tags`) be one request?
fn valid(device: &ModbusDevice, group: &[usize]) -> bool {
    let tags: Vec<&ModbusTag> = group.iter().map(|&i| &device.tags[i]).collect();
    let Some(first) = tags.first() else {
        return false;
    };
    if tags.len() == 1 {
        return true;
    }
    if tags.iter().any(|t| t.area != first.area) {
        return false;
    }
    let start = tags.iter().map(|t| u32::from(t.address)).min().unwrap();
    let end = tags
        .iter()
        .map(|t| u32::from(t.address) + width(t))
        .max()
        .unwrap();
    if end - start > limit(device, first.area) {
        return false;
    }
    let mut covered = vec![false; (end - start) as usize];
    for t in &tags {
        let a = (u32::from(t.address) - start) as usize;
        covered[a..a + width(t) as usize].fill(true);
    }
    let mut hole = 0u32;
    for &c in &covered {
        hole = if c { 0 } else { hole + 1 };
        if hole > u32::from(device.max_hole) {
            return false;
        }
    }
    true
}

/// Fewest valid groups over every set partition (exponential: small n only).
fn optimal_any_partition(device: &ModbusDevice) -> usize {
    fn search(device: &ModbusDevice, next: usize, groups: &mut Vec<Vec<usize>>, best: &mut usize) {
        if groups.len() >= *best {
            return;
        }
        if next == device.tags.len() {
            if groups.iter().all(|g| valid(device, g)) {
                *best = groups.len();
            }
            return;
        }
        for g in 0..groups.len() {
            groups[g].push(next);
            search(device, next + 1, groups, best);
            groups[g].pop();
        }
        groups.push(vec![next]);
        search(device, next + 1, groups, best);
        groups.pop();
    }
    let mut best = device.tags.len();
    search(device, 0, &mut Vec::new(), &mut best);
    best
}

/// Fewest requests as runs of the (area, address)-sorted tags, wide tags
/// alone: O(n^2) validity checks.
fn optimal_sorted_runs(device: &ModbusDevice) -> usize {
    let is_wide = |t: &ModbusTag| width(t) > limit(device, t.area);
    let wide = device.tags.iter().filter(|t| is_wide(t)).count();
    let mut order: Vec<usize> = (0..device.tags.len())
        .filter(|&i| !is_wide(&device.tags[i]))
        .collect();
    order.sort_by_key(|&i| (device.tags[i].area, device.tags[i].address, i));
    let mut best = vec![usize::MAX; order.len() + 1];
    best[0] = 0;
    for j in 1..=order.len() {
        for i in 0..j {
            if best[i] != usize::MAX && valid(device, &order[i..j]) {
                best[j] = best[j].min(best[i] + 1);
            }
        }
    }
    best[order.len()] + wide
}

/// The plan reads every tag exactly once, inside a valid request.
fn check_plan(device: &ModbusDevice, plan: &DevicePlan, first_tag: u32) {
    let mut seen = vec![false; device.tags.len()];
    for request in &plan.requests {
        let group: Vec<usize> = request
            .tags
            .iter()
            .map(|t| (t.tag.0 - first_tag) as usize)
            .collect();
        assert!(valid(device, &group), "{request:?}");
        let mut end = 0;
        for (&i, planned) in group.iter().zip(&request.tags) {
            let config = &device.tags[i];
            assert!(!seen[i], "tag {i} planned twice");
            seen[i] = true;
            assert_eq!(config.area, request.area);
            assert_eq!(
                u32::from(request.start) + u32::from(planned.offset),
                u32::from(config.address)
            );
            end = end.max(u32::from(config.address) + width(config));
        }
        let start = group.iter().map(|&i| device.tags[i].address).min();
        assert_eq!(
            Some(request.start),
            start,
            "request starts at its first tag"
        );
        assert_eq!(
            u32::from(request.start) + u32::from(request.quantity),
            end,
            "request ends at its last tag"
        );
    }
    assert!(seen.iter().all(|&s| s), "a tag was not planned");
}

/// (area index, address, type index, string length)
type Spec = (usize, u16, usize, u16);

fn device(
    specs: &[Spec],
    max_registers: u16,
    max_bits: u16,
    max_hole: u16,
    base: u16,
) -> ModbusDevice {
    let tags = specs
        .iter()
        .enumerate()
        .map(|(i, &(area, address, data_type, length))| {
            let data_type = TYPES[data_type];
            ModbusTag {
                name: format!("t{i}"),
                area: AREAS[area],
                address: base + address,
                data_type,
                order: WordOrder::Abcd,
                bit: None,
                length: if data_type == DataType::String {
                    length
                } else {
                    0
                },
                scale: 1.0,
                offset: 0.0,
            }
        })
        .collect();
    ModbusDevice {
        unit_id: 1,
        max_registers,
        max_bits,
        max_hole,
        tags,
    }
}

fn spec(areas: usize) -> impl Strategy<Value = Spec> {
    (0..areas, 0u16..24, 0..TYPES.len(), 1u16..=8)
}

/// Small request sizes and holes so that every rule bites; the base puts
/// some devices at the top of the address space (tags end at 65536).
fn limits() -> impl Strategy<Value = (u16, u16, u16, u16)> {
    (
        1u16..=9,
        1u16..=9,
        0u16..=4,
        prop_oneof![Just(0u16), Just(u16::MAX - 27)],
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn plan_is_as_small_as_any_partition(
        specs in prop::collection::vec(spec(2), 1..=7),
        (max_registers, max_bits, max_hole, base) in limits(),
    ) {
        let device = device(&specs, max_registers, max_bits, max_hole, base);
        let plan = plan_device(&device, TagId(1000));
        check_plan(&device, &plan, 1000);
        prop_assert_eq!(plan.requests.len(), optimal_any_partition(&device));
    }

    #[test]
    fn plan_is_as_small_as_the_best_sorted_runs(
        specs in prop::collection::vec(spec(4), 1..=14),
        (max_registers, max_bits, max_hole, base) in limits(),
    ) {
        let device = device(&specs, max_registers, max_bits, max_hole, base);
        let plan = plan_device(&device, TagId(7));
        check_plan(&device, &plan, 7);
        prop_assert_eq!(plan.requests.len(), optimal_sorted_runs(&device));
    }

    /// Same tags, same plan; the tags in another order, as few requests
    /// (which of two tags at one address goes where may differ).
    #[test]
    fn plan_is_deterministic_and_its_size_independent_of_tag_order(
        specs in prop::collection::vec(spec(3), 1..=14),
        (max_registers, max_bits, max_hole, base) in limits(),
        rotate in 0usize..14,
    ) {
        let a = device(&specs, max_registers, max_bits, max_hole, base);
        let mut shuffled = specs.clone();
        shuffled.reverse();
        let by = rotate % shuffled.len();
        shuffled.rotate_left(by);
        let b = device(&shuffled, max_registers, max_bits, max_hole, base);
        let plan_a = plan_device(&a, TagId(0));
        prop_assert_eq!(&plan_a, &plan_device(&a, TagId(0)));
        let plan_b = plan_device(&b, TagId(0));
        check_plan(&b, &plan_b, 0);
        prop_assert_eq!(plan_a.requests.len(), plan_b.requests.len());
    }
}

/// The case that broke the first planner: a float64 wider than the request
/// size sat between two uint16 tags that fit one request together, and the
/// sweep closed the request at the wide tag. Five requests are enough.
#[test]
fn a_wide_tag_does_not_split_the_tags_around_it() {
    let specs: Vec<Spec> = vec![
        (0, 10, 3, 0), // holding int64 [10, 14): wider than 2, alone
        (1, 8, 2, 0),  // input float32 [8, 10)
        (0, 9, 2, 0),  // holding float32 [9, 11)
        (1, 10, 0, 0), // input uint16 [10, 11)
        (0, 1, 3, 0),  // holding int64 [1, 5): alone
        (0, 10, 0, 0), // holding uint16 [10, 11): fits with [9, 11)
    ];
    let device = device(&specs, 2, 2000, 2, 0);
    let plan = plan_device(&device, TagId(0));
    check_plan(&device, &plan, 0);
    assert_eq!(plan.requests.len(), optimal_any_partition(&device));
    assert_eq!(plan.requests.len(), 5);
}
