//! Planner rules, one test each, on hand-built devices.

#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::config::{Area, DataType, ModbusDevice, ModbusTag, WordOrder};
use crate::sample::TagId;

use super::{plan_device, DevicePlan};

fn tag(name: &str, area: Area, address: u16, data_type: DataType) -> ModbusTag {
    ModbusTag {
        name: name.to_string(),
        area,
        address,
        data_type,
        order: WordOrder::Abcd,
        bit: None,
        length: if data_type == DataType::String { 8 } else { 0 },
        scale: 1.0,
        offset: 0.0,
    }
}

fn device(tags: Vec<ModbusTag>, max_registers: u16, max_hole: u16) -> ModbusDevice {
    ModbusDevice {
        unit_id: 1,
        max_registers,
        max_bits: 2000,
        max_hole,
        tags,
    }
}

/// (area, start, quantity, [(tag id, offset)]) per request.
type Shape = Vec<(Area, u16, u16, Vec<(u32, u16)>)>;

fn shape(plan: &DevicePlan) -> Shape {
    plan.requests
        .iter()
        .map(|r| {
            (
                r.area,
                r.start,
                r.quantity,
                r.tags.iter().map(|t| (t.tag.0, t.offset)).collect(),
            )
        })
        .collect()
}

#[test]
fn adjacent_tags_coalesce_into_one_request() {
    let tags = vec![
        tag("a", Area::Holding, 10, DataType::Uint16),
        tag("b", Area::Holding, 11, DataType::Float32),
        tag("c", Area::Holding, 13, DataType::Float64),
    ];
    let plan = plan_device(&device(tags, 125, 0), TagId(100));
    assert_eq!(
        shape(&plan),
        vec![(Area::Holding, 10, 7, vec![(100, 0), (101, 1), (102, 3)])]
    );
}

#[test]
fn overlapping_tags_share_registers() {
    let tags = vec![
        tag("whole", Area::Input, 0, DataType::Uint64),
        tag("low", Area::Input, 2, DataType::Uint32),
        tag("inner", Area::Input, 1, DataType::Uint16),
    ];
    let plan = plan_device(&device(tags, 125, 0), TagId(0));
    assert_eq!(
        shape(&plan),
        vec![(Area::Input, 0, 4, vec![(0, 0), (2, 1), (1, 2)])]
    );
}

#[test]
fn gaps_up_to_max_hole_are_filled_and_larger_gaps_split() {
    let tags = vec![
        tag("a", Area::Holding, 0, DataType::Uint16),
        tag("b", Area::Holding, 4, DataType::Uint16), // gap of 3 unused registers
        tag("c", Area::Holding, 9, DataType::Uint16), // gap of 4
    ];
    let plan = plan_device(&device(tags.clone(), 125, 3), TagId(0));
    assert_eq!(
        shape(&plan),
        vec![
            (Area::Holding, 0, 5, vec![(0, 0), (1, 4)]),
            (Area::Holding, 9, 1, vec![(2, 0)])
        ]
    );
    let plan = plan_device(&device(tags.clone(), 125, 4), TagId(0));
    assert_eq!(plan.requests.len(), 1);
    let plan = plan_device(&device(tags, 125, 0), TagId(0));
    assert_eq!(plan.requests.len(), 3);
}

#[test]
fn requests_never_exceed_max_registers() {
    let tags: Vec<_> = (0..300u16)
        .map(|i| tag(&format!("t{i}"), Area::Holding, i, DataType::Uint16))
        .collect();
    let plan = plan_device(&device(tags, 125, 0), TagId(0));
    let quantities: Vec<u16> = plan.requests.iter().map(|r| r.quantity).collect();
    assert_eq!(quantities, vec![125, 125, 50]);
    assert_eq!(plan.sample_count(), 300);
    let plan = plan_device(
        &device(
            (0..10u16)
                .map(|i| tag(&format!("f{i}"), Area::Holding, 2 * i, DataType::Float32))
                .collect(),
            7,
            0,
        ),
        TagId(0),
    );
    // A float32 never straddles two requests: 3 per request of at most 7 registers.
    let quantities: Vec<u16> = plan.requests.iter().map(|r| r.quantity).collect();
    assert_eq!(quantities, vec![6, 6, 6, 2]);
}

#[test]
fn bit_areas_use_max_bits_and_areas_never_mix() {
    let mut tags: Vec<_> = (0..2100u16)
        .map(|i| tag(&format!("c{i}"), Area::Coil, i, DataType::Bool))
        .collect();
    tags.push(tag("d", Area::Discrete, 0, DataType::Bool));
    tags.push(tag("h", Area::Holding, 0, DataType::Uint16));
    tags.push(tag("i", Area::Input, 1, DataType::Uint16));
    let plan = plan_device(&device(tags, 125, 100), TagId(0));
    let summary: Vec<(Area, u16, u16)> = plan
        .requests
        .iter()
        .map(|r| (r.area, r.start, r.quantity))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Area::Coil, 0, 2000),
            (Area::Coil, 2000, 100),
            (Area::Discrete, 0, 1),
            (Area::Input, 1, 1),
            (Area::Holding, 0, 1),
        ]
    );
}

#[test]
fn tag_wider_than_max_registers_gets_its_own_request() {
    let tags = vec![
        tag("a", Area::Holding, 0, DataType::Uint16),
        tag("wide", Area::Holding, 1, DataType::Float64),
        tag("b", Area::Holding, 5, DataType::Uint16),
    ];
    let plan = plan_device(&device(tags, 2, 0), TagId(0));
    let summary: Vec<(u16, u16)> = plan
        .requests
        .iter()
        .map(|r| (r.start, r.quantity))
        .collect();
    assert_eq!(summary, vec![(0, 1), (1, 4), (5, 1)]);
}

#[test]
fn tags_at_the_top_of_the_address_space() {
    let tags = vec![
        tag("last", Area::Holding, 65_535, DataType::Uint16),
        tag("f", Area::Holding, 65_532, DataType::Float32),
    ];
    // One unused register (65534) between them: bridged with max_hole 1.
    let plan = plan_device(&device(tags.clone(), 125, 1), TagId(0));
    assert_eq!(
        shape(&plan),
        vec![(Area::Holding, 65_532, 4, vec![(1, 0), (0, 3)])]
    );
    assert_eq!(
        plan_device(&device(tags, 125, 0), TagId(0)).requests.len(),
        2
    );
    let request = plan.requests[0].read_request();
    assert_eq!(request.pdu(), [3, 0xFF, 0xFC, 0, 4]);
}

#[test]
fn plan_is_deterministic_and_independent_of_tag_order() {
    let mut tags: Vec<_> = (0..500u16)
        .map(|i| {
            tag(
                &format!("t{i}"),
                Area::Holding,
                ((u32::from(i) * 7919) % 1000) as u16,
                DataType::Uint16,
            )
        })
        .collect();
    let a = plan_device(&device(tags.clone(), 125, 2), TagId(0));
    let b = plan_device(&device(tags.clone(), 125, 2), TagId(0));
    assert_eq!(a, b);
    tags.reverse();
    let c = plan_device(&device(tags, 125, 2), TagId(0));
    let ranges = |p: &DevicePlan| -> Vec<(u16, u16)> {
        p.requests.iter().map(|r| (r.start, r.quantity)).collect()
    };
    assert_eq!(ranges(&a), ranges(&c));
}

#[test]
fn every_tag_is_planned_exactly_once_inside_its_request() {
    let tags: Vec<_> = (0..400u16)
        .map(|i| {
            let t = [
                DataType::Uint16,
                DataType::Float32,
                DataType::Int64,
                DataType::String,
            ];
            tag(
                &format!("t{i}"),
                Area::Holding,
                ((u32::from(i) * 37) % 2000) as u16,
                t[usize::from(i % 4)],
            )
        })
        .collect();
    let plan = plan_device(&device(tags.clone(), 60, 5), TagId(10));
    let mut seen = vec![false; tags.len()];
    for request in &plan.requests {
        assert!(request.quantity >= 1 && request.quantity <= 60);
        for planned in &request.tags {
            let index = (planned.tag.0 - 10) as usize;
            assert!(!seen[index]);
            seen[index] = true;
            let config = &tags[index];
            assert_eq!(request.start + planned.offset, config.address);
            assert!(planned.offset + planned.span(request.area) <= request.quantity);
        }
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn empty_device_has_no_requests() {
    let plan = plan_device(&device(Vec::new(), 125, 0), TagId(0));
    assert!(plan.requests.is_empty());
    assert_eq!(plan.samples_per_request_max(), 0);
}
