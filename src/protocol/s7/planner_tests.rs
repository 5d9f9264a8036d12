//! The planner on the farm's layout and on an oversize string: no tag that
//! fits one item is torn across two items, and an oversize tag's parts
//! tile it in consecutive requests. (The packing's minimality is checked
//! in tests/s7_planner_prop.rs.)
#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::config::{S7Area, S7Type};
use crate::farm::s7::layout::farm_tags;
use crate::sample::TagId;

use super::fuzz::s7_tag;
use super::planner::{item_bytes_max, plan, Limits, Plan, PlannedTag};

fn limits(pdu_bytes: usize) -> Limits {
    Limits {
        pdu_bytes,
        items_max: 79,
        records_max: usize::MAX,
    }
}

fn farm_planned(count: usize) -> Vec<PlannedTag> {
    farm_tags(count)
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut config = s7_tag(&format!("t{i}"), t.area, t.byte, t.bit, t.data_type);
            (config.scale, config.offset) = (t.scale, t.offset);
            PlannedTag::from_config(TagId(i as u32), &config)
        })
        .collect()
}

/// (request, piece) of every piece holding the tag whole.
fn whole_in(plan: &Plan, tag: u32) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for (r, request) in plan.requests.iter().enumerate() {
        for (p, piece) in request.pieces.iter().enumerate() {
            if piece.inside.iter().any(|&(t, _)| t == tag) {
                out.push((r, p));
            }
        }
    }
    out
}

#[test]
fn the_farms_lreal_at_936_is_read_from_one_answer() {
    // The 282nd tag of the farm's layout is an LREAL at DB1.DBB936: a cut
    // at a byte count (942 bytes from DB1.DBB0) put it half in one answer
    // and half in the next.
    let tags = farm_planned(1250);
    assert_eq!(tags[281].data_type, S7Type::LReal);
    assert_eq!((tags[281].area, tags[281].byte), (S7Area::Db(1), 936));
    let plan = plan(tags, 4, limits(960));
    assert!(plan.straddlers.is_empty());
    assert_eq!(whole_in(&plan, 281).len(), 1);
}

#[test]
fn every_farm_tag_that_fits_an_item_is_whole_in_one_piece() {
    let tags = farm_planned(1250);
    for pdu in [64, 120, 240, 480, 960] {
        for hole in [0, 8, 64] {
            let plan = plan(tags.clone(), hole, limits(pdu));
            let item_max = item_bytes_max(plan.limits);
            for (index, tag) in plan.tags.iter().enumerate() {
                let wholes = whole_in(&plan, index as u32).len();
                let fits = tag.size as usize <= item_max;
                assert_eq!(wholes, usize::from(fits), "pdu {pdu} tag {index}");
            }
            let oversize = plan.tags.iter().filter(|t| t.size as usize > item_max);
            assert_eq!(plan.straddlers.len(), oversize.count(), "pdu {pdu}");
            for r in &plan.requests {
                assert!(r.request_bytes() - 7 <= pdu && 14 + r.answer_item_bytes() <= pdu);
            }
        }
    }
}

#[test]
fn an_oversize_string_is_read_in_parts_of_consecutive_requests() {
    // At 64 bytes one item carries 46: a STRING[60] (62 bytes) cannot be
    // in one answer; the INTs around it are read whole.
    let db1 = S7Area::Db(1);
    let configs = [
        s7_tag("before", db1, 0, 0, S7Type::Int),
        s7_tag("s", db1, 2, 0, S7Type::String(60)),
        s7_tag("after", db1, 64, 0, S7Type::Int),
    ];
    let tags = configs
        .iter()
        .enumerate()
        .map(|(i, c)| PlannedTag::from_config(TagId(i as u32), c))
        .collect();
    let plan = plan(tags, 0, limits(64));
    assert_eq!(plan.straddlers.len(), 1);
    assert_eq!(plan.straddlers[0].tag, 1);
    assert_eq!(plan.scratch_bytes, 62);
    let mut parts = Vec::new();
    for (r, request) in plan.requests.iter().enumerate() {
        for piece in &request.pieces {
            for part in &piece.parts {
                assert_eq!((part.piece_offset, part.len), (0, piece.item.count));
                parts.push((r, part.tag_offset, part.len));
            }
        }
    }
    assert_eq!(parts.len(), usize::from(plan.straddlers[0].pieces));
    let mut at = 0;
    for (k, &(r, offset, len)) in parts.iter().enumerate() {
        assert_eq!(offset, at);
        at += len;
        assert!(k == 0 || r == parts[k - 1].0 + 1, "consecutive requests");
    }
    assert_eq!(at, 62);
    assert_eq!(whole_in(&plan, 0).len(), 1);
    assert_eq!(whole_in(&plan, 2).len(), 1);
}
