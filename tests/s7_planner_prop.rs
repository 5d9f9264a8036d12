//! The S7 planner's claims (src/protocol/s7/planner.rs), on random small
//! devices (several areas, holes, overlapping tags, strings wider than one
//! item of a small PDU, item and record caps):
//!
//! - No torn reads: every tag that fits one item (the PDU less 18 bytes) is
//!   read whole from exactly one item; only an oversize tag is read in
//!   parts, which tile its bytes and sit in consecutive requests.
//! - The sweep gives the fewest requests of any plan that keeps the tags in
//!   (area, address) order and cuts only between tags, against a dynamic
//!   program written here from the byte budgets alone: `best[p] = 1 + min
//!   best[q]` over every window `[p, q)` of the line of tags that fits the
//!   request (12 + 12 n bytes), the answer (14 + 4 n + data + fill bytes,
//!   one odd item last), the item cap and the record cap.
//! - The price of not tearing: for tags that do not overlap and fit one
//!   item, at most twice the requests of the best plan that cuts at any even
//!   byte (the planner before, which tore), by the same kind of program.
//! - Against plans that reorder the ranges (every permutation) the sweep is
//!   checked within the bound the planner's documentation states.

use millrace::config::{S7Area, S7Tag, S7Type};
use millrace::protocol::s7::planner::{
    item_bytes_max, pack, plan, ranges, Cut, Limits, PlannedTag, Range,
};
use millrace::TagId;
use proptest::prelude::*;

const AREAS: [S7Area; 3] = [S7Area::Db(1), S7Area::Db(2), S7Area::Merker];
const TYPES: [S7Type; 8] = [
    S7Type::Bool,
    S7Type::Byte,
    S7Type::Int,
    S7Type::Real,
    S7Type::LReal,
    S7Type::String(30),
    S7Type::Dtl,
    S7Type::String(60),
];

fn tag_strategy() -> impl Strategy<Value = (usize, u32, usize)> {
    (0..AREAS.len(), 0u32..48, 0..TYPES.len())
}

fn planned(raw: &[(usize, u32, usize)]) -> Vec<PlannedTag> {
    raw.iter()
        .enumerate()
        .map(|(i, &(area, byte, ty))| {
            let config = S7Tag {
                name: format!("t{i}"),
                area: AREAS[area],
                byte,
                bit: 0,
                data_type: TYPES[ty],
                scale: 1.0,
                offset: 0.0,
            };
            PlannedTag::from_config(TagId(i as u32), &config)
        })
        .collect()
}

/// A cut point of the line: (range, byte address).
type Point = (usize, u32);

/// Every allowed cut point, in line order: each range's start, its even
/// offsets, and the line's end.
fn byte_points(ranges: &[Range]) -> Vec<Point> {
    let mut out = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let mut at = r.start;
        while at < r.end {
            out.push((i, at));
            at += 2;
        }
    }
    out.push((ranges.len(), 0));
    out
}

/// The pieces of the window `[from, to)` of the line.
fn byte_window(ranges: &[Range], from: Point, to: Point) -> Vec<Cut> {
    let mut cuts = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        if i < from.0 || i > to.0 || (i == to.0 && to.1 <= r.start) {
            continue;
        }
        let start = if i == from.0 { from.1 } else { r.start };
        let end = if i == to.0 { to.1 } else { r.end };
        if start < end {
            cuts.push(Cut {
                range: i,
                tag_first: 0,
                tag_count: 0,
                start,
                end,
            });
        }
    }
    cuts
}

/// The byte budgets, straight from the PDU layout.
fn fits(ranges: &[Range], tags: &[PlannedTag], cuts: &[Cut], limits: Limits) -> bool {
    let n = cuts.len();
    let items_cap = ((limits.pdu_bytes - 12) / 12).min(limits.items_max).min(79);
    let lens: Vec<usize> = cuts.iter().map(|c| (c.end - c.start) as usize).collect();
    let odd = lens.iter().filter(|l| *l % 2 == 1).count();
    let answer = 14 + lens.iter().map(|l| 4 + l).sum::<usize>() + odd.saturating_sub(1);
    let records: usize = cuts
        .iter()
        .map(|c| {
            let range = &ranges[c.range];
            if c.tag_count == 0 {
                // A byte-cut piece: the tags it touches.
                range
                    .tags
                    .iter()
                    .map(|&t| &tags[t as usize])
                    .filter(|t| t.byte < c.end && t.byte + t.size > c.start)
                    .map(|t| t.records as usize)
                    .sum::<usize>()
            } else {
                run(range, c)
                    .iter()
                    .map(|&t| tags[t as usize].records as usize)
                    .sum::<usize>()
            }
        })
        .sum();
    n >= 1
        && n <= items_cap
        && 12 + 12 * n <= limits.pdu_bytes
        && answer <= limits.pdu_bytes
        && records <= limits.records_max
}

/// The fewest windows covering the line in this order.
fn best_byte_cut(ranges: &[Range], tags: &[PlannedTag], limits: Limits) -> usize {
    let pts = byte_points(ranges);
    let mut best = vec![usize::MAX; pts.len()];
    best[pts.len() - 1] = 0;
    for p in (0..pts.len() - 1).rev() {
        for q in p + 1..pts.len() {
            let cuts = byte_window(ranges, pts[p], pts[q]);
            if !fits(ranges, tags, &cuts, limits) {
                break; // monotone: a longer window fits no better
            }
            if best[q] != usize::MAX {
                best[p] = best[p].min(best[q] + 1);
            }
        }
    }
    best[0]
}

fn run<'r>(range: &'r Range, c: &Cut) -> &'r [u32] {
    &range.tags[c.tag_first as usize..(c.tag_first + c.tag_count) as usize]
}

/// A cut point of the line of tags: (range, position of the next tag).
type TagPoint = (usize, u32);

fn tag_points(ranges: &[Range]) -> Vec<TagPoint> {
    let mut out = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        out.extend((0..r.tags.len() as u32).map(|p| (i, p)));
    }
    out.push((ranges.len(), 0));
    out
}

/// The pieces of the window `[from, to)` of the line of tags: one run per
/// range touched, from its first tag's start to its furthest end.
fn tag_window(ranges: &[Range], tags: &[PlannedTag], from: TagPoint, to: TagPoint) -> Vec<Cut> {
    let mut cuts = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let first = if i == from.0 { from.1 } else { 0 };
        let last = if i == to.0 { to.1 } else { r.tags.len() as u32 };
        if i < from.0 || i > to.0 || first >= last {
            continue;
        }
        let members = &r.tags[first as usize..last as usize];
        let start = tags[members[0] as usize].byte;
        let end = members
            .iter()
            .map(|&t| tags[t as usize].end())
            .max()
            .unwrap();
        cuts.push(Cut {
            range: i,
            tag_first: first,
            tag_count: last - first,
            start,
            end,
        });
    }
    cuts
}

/// The fewest windows covering the line of tags in this order (no tag
/// oversize).
fn best_in_order(ranges: &[Range], tags: &[PlannedTag], limits: Limits) -> usize {
    let pts = tag_points(ranges);
    let mut best = vec![usize::MAX; pts.len()];
    best[pts.len() - 1] = 0;
    for p in (0..pts.len() - 1).rev() {
        for q in p + 1..pts.len() {
            let cuts = tag_window(ranges, tags, pts[p], pts[q]);
            if !fits(ranges, tags, &cuts, limits) {
                break; // monotone: a longer window fits no better
            }
            if best[q] != usize::MAX {
                best[p] = best[p].min(best[q] + 1);
            }
        }
    }
    best[0]
}

fn oversize(tags: &[PlannedTag], limits: Limits) -> bool {
    tags.iter()
        .any(|t| t.size as usize > item_bytes_max(limits))
}

fn overlap(tags: &[PlannedTag]) -> bool {
    tags.iter().enumerate().any(|(i, a)| {
        tags[i + 1..]
            .iter()
            .any(|b| a.area == b.area && a.byte < b.end() && b.byte < a.end())
    })
}

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for at in 0..=p.len() {
            let mut q = p.clone();
            q.insert(at, n - 1);
            out.push(q);
        }
    }
    out
}

/// Every request fits; every tag that fits one item is read whole from
/// exactly one piece whose run holds it; an oversize tag's parts tile its
/// bytes, in consecutive requests.
fn check_plan(ranges: &[Range], tags: &[PlannedTag], requests: &[Vec<Cut>], limits: Limits) {
    let mut whole = vec![0usize; tags.len()];
    let mut parts: Vec<Vec<(usize, u32, u32)>> = vec![Vec::new(); tags.len()];
    for (index, request) in requests.iter().enumerate() {
        assert!(
            fits(ranges, tags, request, limits),
            "invalid request {request:?}"
        );
        for c in request {
            assert!(c.start < c.end && c.tag_count >= 1);
            for &t in run(&ranges[c.range], c) {
                let tag = &tags[t as usize];
                if tag.byte >= c.start && tag.end() <= c.end {
                    whole[t as usize] += 1;
                } else {
                    assert_eq!(c.tag_count, 1, "a part is its own piece");
                    parts[t as usize].push((index, c.start, c.end));
                }
            }
        }
    }
    for (t, tag) in tags.iter().enumerate() {
        if tag.size as usize <= item_bytes_max(limits) {
            assert_eq!(
                (whole[t], parts[t].len()),
                (1, 0),
                "tag {t} torn or read twice"
            );
            continue;
        }
        assert_eq!(whole[t], 0);
        let mut at = tag.byte;
        for (k, &(request, start, end)) in parts[t].iter().enumerate() {
            assert_eq!(start, at, "parts tile the tag");
            at = end;
            if k > 0 {
                assert!(
                    request - parts[t][k - 1].0 <= 1,
                    "parts in consecutive requests"
                );
            }
        }
        assert_eq!(at, tag.end());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn the_sweep_is_the_fewest_in_order(
        raw in prop::collection::vec(tag_strategy(), 1..9),
        hole in 0u16..6,
        pdu in prop::sample::select(vec![64usize, 70, 80, 100, 240]),
        items_max in prop::sample::select(vec![1usize, 2, 3, 79]),
    ) {
        let tags = planned(&raw);
        let limits = Limits { pdu_bytes: pdu, items_max, records_max: usize::MAX };
        let ranges = ranges(&tags, hole);
        let requests = pack(&ranges, &tags, limits);
        check_plan(&ranges, &tags, &requests, limits);
        if !oversize(&tags, limits) {
            prop_assert_eq!(requests.len(), best_in_order(&ranges, &tags, limits));
        }
    }

    #[test]
    fn not_tearing_costs_at_most_twice_the_byte_cut_plan(
        raw in prop::collection::vec(tag_strategy(), 1..9),
        hole in 0u16..6,
        pdu in prop::sample::select(vec![64usize, 70, 80, 100, 240]),
        items_max in prop::sample::select(vec![1usize, 2, 3, 79]),
    ) {
        let tags = planned(&raw);
        let limits = Limits { pdu_bytes: pdu, items_max, records_max: usize::MAX };
        let ranges = ranges(&tags, hole);
        if !oversize(&tags, limits) && !overlap(&tags) {
            let swept = pack(&ranges, &tags, limits).len();
            let byte_cut = best_byte_cut(&ranges, &tags, limits);
            prop_assert!(swept <= 2 * byte_cut, "swept {} byte-cut {}", swept, byte_cut);
        }
    }

    #[test]
    fn a_replan_keeps_the_records_cap_and_stays_fewest(
        raw in prop::collection::vec(tag_strategy(), 1..9),
        hole in 0u16..6,
        smaller in prop::sample::select(vec![64usize, 72, 90]),
    ) {
        let tags = planned(&raw);
        let first = Limits { pdu_bytes: 240, items_max: 79, records_max: usize::MAX };
        let cap = plan(tags.clone(), hole, first).records_per_request_max();
        let limits = Limits { pdu_bytes: smaller, items_max: 79, records_max: cap };
        let ranges = ranges(&tags, hole);
        let requests = pack(&ranges, &tags, limits);
        check_plan(&ranges, &tags, &requests, limits);
        if !oversize(&tags, limits) {
            prop_assert_eq!(requests.len(), best_in_order(&ranges, &tags, limits));
        }
        let replanned = plan(tags.clone(), hole, limits);
        prop_assert!(replanned.records_per_request_max() <= cap);
        prop_assert_eq!(replanned.records(), tags.iter().map(|t| t.records as usize).sum::<usize>());
    }

    #[test]
    fn reordering_saves_at_most_half(
        raw in prop::collection::vec(tag_strategy(), 1..7),
        hole in 0u16..4,
        pdu in prop::sample::select(vec![64usize, 80, 240]),
        items_max in prop::sample::select(vec![1usize, 2, 79]),
    ) {
        let tags = planned(&raw);
        let limits = Limits { pdu_bytes: pdu, items_max, records_max: usize::MAX };
        prop_assume!(!oversize(&tags, limits));
        let ranges = ranges(&tags, hole);
        let swept = pack(&ranges, &tags, limits).len();
        let best_any = permutations(ranges.len())
            .into_iter()
            .map(|order| {
                let reordered: Vec<Range> = order.iter().map(|&i| ranges[i].clone()).collect();
                best_in_order(&reordered, &tags, limits)
            })
            .min()
            .unwrap();
        prop_assert!(swept <= 2 * best_any, "swept {} best {}", swept, best_any);
    }
}
