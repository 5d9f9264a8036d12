//! The Read Var planner: from a device's tags, the fewest Read Var requests
//! per poll cycle that fit the negotiated PDU, each with the decode plan of
//! its items. Runs at start-up and after a handshake that negotiated less
//! than the plan assumed; never per frame. Deterministic: the same tags and
//! limits give the same requests.
//!
//! # The model
//!
//! A tag occupies the bytes `[byte, byte + size)` of its area (a bool the
//! byte of its bit: bits are extracted in the decoder, so every item is a
//! byte read). Tags of one area (one DB) sorted by start are swept into
//! *ranges*: a tag joins the open range when it starts at most `max_hole`
//! bytes past its end. Ranges are then cut into *pieces* and the pieces
//! packed into requests. A request of `n` pieces with lengths `l_i` costs
//!
//! ```text
//!   request:  10 (job header) + 2 + 12 n            <= PDU
//!   response: 12 (ack header) + 2 + sum(4 + l_i + fill_i) <= PDU
//! ```
//!
//! where `fill_i` is 1 for an odd `l_i` unless the item is the last (the
//! planner puts an odd piece last). `n` is also capped by the items limit
//! (a PLC that answered fewer items than asked) and the records of the tags
//! a request touches by `records_max` (a re-plan must not raise
//! `samples_per_frame_max`). A range is cut only at even offsets from its
//! start, so every piece but a range's last is even. A tag cut by a piece
//! boundary (a *straddler*, e.g. a STRING[254] under a 240-byte PDU) is put
//! together in the session's scratch from its pieces and decoded when the
//! last of them is answered.
//!
//! # Why the sweep gives the fewest requests (for the order it keeps)
//!
//! Lay the ranges end to end in (area, start) order: a plan that keeps this
//! order reads each request as one window `[a, b)` of that line, cut at
//! allowed points (range boundaries, even offsets inside a range). Validity
//! (both byte budgets, the items cap, the records cap) is *monotone*: a
//! window inside a valid window is valid (fewer pieces, fewer bytes, fewer
//! touched tags; a sub-window's pieces are sub-pieces, and a fill byte never
//! appears where the larger window had none because cuts stay even). The
//! planner takes, from each window's start, the furthest valid end. By
//! induction its `k`-th window ends at or after the `k`-th window of any
//! order-keeping plan: if its `(k-1)`-th end `e` is at or after the other
//! plan's `e'`, the other plan's `k`-th window `[e', f)` contains `[e, f)`
//! when `e < f`, which is then valid, so the planner reaches at least `f`.
//! So no order-keeping plan has fewer requests.
//!
//! What is not claimed: a plan that reorders ranges can do better when many
//! tiny ranges (item-bound requests) and a few long ones (byte-bound
//! requests) sit in different areas, as each such request then wastes the
//! other budget; at worst the sweep needs about as many requests as the
//! item bound plus the byte bound, against the larger of the two. Exact
//! packing with reordering is bin packing (NP-hard); plans are small and
//! per connection, but a poll cycle of a real device is almost always one
//! of the two kinds. `tests/s7_planner_prop.rs` checks the claim against an
//! exhaustive search of every order-keeping plan on small random inputs,
//! and that the best plan over every reordering of the ranges never needs
//! fewer than half the sweep's requests there (checked, not proven).

use crate::config::{S7Area, S7Device, S7Tag, S7Type};
use crate::sample::{text_records, TagId, TEXT_BYTES_MAX};

use super::error::BuildError;
use super::limits::*;
use super::wire::{read_request_bytes, ReadItem};

/// A tag as the planner and the decoder see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedTag {
    pub tag: TagId,
    pub area: S7Area,
    pub byte: u32,
    pub bit: u8,
    pub data_type: S7Type,
    /// Bytes read for it (a bool: 1).
    pub size: u32,
    /// Records it writes: 1, or a text head and its extensions.
    pub records: u32,
    /// Text bytes its records hold (text types only).
    pub text_capacity: u32,
    pub scale: f64,
    pub value_offset: f64,
    pub scaled: bool,
}

impl PlannedTag {
    pub fn from_config(tag: TagId, config: &S7Tag) -> Self {
        let text_capacity = text_capacity(config.data_type);
        PlannedTag {
            tag,
            area: config.area,
            byte: config.byte,
            bit: config.bit,
            data_type: config.data_type,
            size: config.data_type.byte_size(),
            records: if config.data_type.is_text() {
                text_records(text_capacity as usize) as u32
            } else {
                1
            },
            text_capacity,
            scale: config.scale,
            value_offset: config.offset,
            scaled: config.scale != 1.0 || config.offset != 0.0,
        }
    }

    pub const fn end(&self) -> u32 {
        self.byte + self.size
    }
}

/// Text bytes a text type's records hold: a CHAR 1, a STRING[N] N, a
/// WSTRING[N] the UTF-8 of N UTF-16 units (at most 3 bytes each), all
/// within `TEXT_BYTES_MAX`.
pub const fn text_capacity(data_type: S7Type) -> u32 {
    let bytes = match data_type {
        S7Type::Char => 1,
        S7Type::String(n) => n as usize,
        S7Type::WString(n) => 3 * n as usize,
        _ => 0,
    };
    if bytes > TEXT_BYTES_MAX {
        TEXT_BYTES_MAX as u32
    } else {
        bytes as u32
    }
}

/// What a plan must fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The negotiated (or, before the handshake, requested) PDU size.
    pub pdu_bytes: usize,
    /// Items per request (the PDU's own limit applies too).
    pub items_max: usize,
    /// Records one request's answer may write (`usize::MAX`: no cap).
    pub records_max: usize,
}

impl Limits {
    /// Items the PDU allows in a request (and the one-byte count).
    pub const fn items(&self) -> usize {
        let by_pdu = (self.pdu_bytes - S7_JOB_HEADER_BYTES - READ_PARAM_HEAD_BYTES)
            / READ_REQUEST_ITEM_BYTES;
        let cap = if self.items_max < READ_ITEMS_MAX {
            self.items_max
        } else {
            READ_ITEMS_MAX
        };
        if by_pdu < cap {
            by_pdu
        } else {
            cap
        }
    }
    /// Bytes the answer's items may take: the PDU less the ack header and
    /// the function + count.
    pub const fn answer_bytes(&self) -> usize {
        self.pdu_bytes - S7_ACK_HEADER_BYTES - READ_PARAM_HEAD_BYTES
    }
}

/// One item of a request: a piece of a range.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub item: ReadItem,
    /// Tags wholly inside the piece: (index into `Plan::tags`, byte offset
    /// in the piece), ascending by offset.
    pub inside: Vec<(u32, u16)>,
    /// Straddlers this piece carries part of: (straddler index, offset in
    /// the piece, offset in the straddler's bytes, bytes).
    pub parts: Vec<StraddlePart>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StraddlePart {
    pub straddler: u32,
    pub piece_offset: u16,
    pub tag_offset: u16,
    pub len: u16,
}

/// A tag cut by piece boundaries, put together in the scratch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Straddler {
    /// Index into `Plan::tags`.
    pub tag: u32,
    /// Where its bytes go in the session's scratch.
    pub scratch_offset: u32,
    /// Pieces it is cut into (answers to wait for).
    pub pieces: u16,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRequest {
    /// In wire order: an odd piece, if any, last (it needs no fill byte).
    pub pieces: Vec<Piece>,
    /// Records of every tag the request touches: the most its answer (or
    /// its failure) writes.
    pub records_max: usize,
}

impl PlannedRequest {
    pub fn request_bytes(&self) -> usize {
        read_request_bytes(self.pieces.len())
    }
    /// Bytes of the answer's items part, fill bytes included.
    pub fn answer_item_bytes(&self) -> usize {
        let count = self.pieces.len();
        self.pieces
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let len = usize::from(p.item.count);
                4 + len + usize::from(len % 2 == 1 && i + 1 < count)
            })
            .sum()
    }
}

/// Every request of a poll cycle.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub limits: Limits,
    pub tags: Vec<PlannedTag>,
    pub requests: Vec<PlannedRequest>,
    pub straddlers: Vec<Straddler>,
    /// Bytes of scratch the straddlers need.
    pub scratch_bytes: usize,
}

impl Plan {
    /// Records one poll cycle writes.
    pub fn records(&self) -> usize {
        self.tags.iter().map(|t| t.records as usize).sum()
    }
    pub fn records_per_request_max(&self) -> usize {
        self.requests
            .iter()
            .map(|r| r.records_max)
            .max()
            .unwrap_or(0)
    }
}

/// The device's tags with their ids, checked against the address space.
pub fn planned_tags(device: &S7Device, first_tag: TagId) -> Result<Vec<PlannedTag>, BuildError> {
    device
        .tags
        .iter()
        .enumerate()
        .map(|(index, config)| {
            let id = TagId(first_tag.0.saturating_add(index as u32));
            let tag = PlannedTag::from_config(id, config);
            if u64::from(tag.byte) + u64::from(tag.size) > u64::from(ADDRESS_BYTES_MAX) {
                return Err(BuildError::AddressPastEnd {
                    tag: config.name.clone(),
                    byte: config.byte,
                });
            }
            Ok(tag)
        })
        .collect()
}

/// A run of tags of one area read as one stretch of bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    pub area: S7Area,
    pub start: u32,
    pub end: u32,
    /// Indices into the tag list, ascending by (start, index).
    pub tags: Vec<u32>,
}

/// The sweep into ranges: sorted by (area, start, index), a tag joins the
/// open range when it is in the same area and starts at most `max_hole`
/// bytes past the range's end.
pub fn ranges(tags: &[PlannedTag], max_hole: u16) -> Vec<Range> {
    let mut order: Vec<u32> = (0..tags.len() as u32).collect();
    order.sort_unstable_by_key(|&i| {
        let t = tags.get(i as usize).map(|t| (t.area, t.byte));
        (t, i)
    });
    let mut out: Vec<Range> = Vec::new();
    for index in order {
        let Some(tag) = tags.get(index as usize) else {
            continue;
        };
        if let Some(open) = out.last_mut() {
            if open.area == tag.area && tag.byte <= open.end.saturating_add(u32::from(max_hole)) {
                open.end = open.end.max(tag.end());
                open.tags.push(index);
                continue;
            }
        }
        out.push(Range {
            area: tag.area,
            start: tag.byte,
            end: tag.end(),
            tags: vec![index],
        });
    }
    out
}

/// Plans the requests for `tags` under `limits`.
pub fn plan(tags: Vec<PlannedTag>, max_hole: u16, limits: Limits) -> Plan {
    assert!(limits.pdu_bytes >= S7_PDU_BYTES_MIN && limits.pdu_bytes <= S7_PDU_BYTES_MAX);
    let ranges = ranges(&tags, max_hole);
    let cuts = pack(&ranges, &tags, limits);
    build(tags, &ranges, &cuts, limits)
}

/// A piece as the packing decides it: range index and byte span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub range: usize,
    pub start: u32,
    pub end: u32,
}

/// Running totals of the request being filled.
#[derive(Clone, Copy, Debug, Default)]
struct Fill {
    items: usize,
    /// Answer bytes with every piece padded to even.
    even_bytes: usize,
    odd_pieces: usize,
    records: usize,
}

impl Fill {
    /// Answer bytes if a piece of `len` bytes joins (one odd piece goes last
    /// and needs no fill).
    fn bytes_with(&self, len: usize) -> usize {
        let odd = self.odd_pieces + len % 2;
        self.even_bytes + READ_RESPONSE_ITEM_HEAD_BYTES + len.next_multiple_of(2)
            - usize::from(odd > 0)
    }
}

/// Records of the range's tags that touch `[start, end)`.
fn touched_records(range: &Range, tags: &[PlannedTag], start: u32, end: u32) -> usize {
    range
        .tags
        .iter()
        .filter_map(|&i| tags.get(i as usize))
        .filter(|t| t.byte < end && t.end() > start)
        .map(|t| t.records as usize)
        .sum()
}

/// The furthest end (an even offset from the range start, or the range's
/// end) of a piece from `start` that joins `fill` within `limits`; `None`
/// when not even a 2-byte piece fits.
fn furthest_end(
    range: &Range,
    tags: &[PlannedTag],
    start: u32,
    fill: &Fill,
    limits: Limits,
) -> Option<u32> {
    if fill.items >= limits.items() {
        return None;
    }
    let fits = |end: u32| {
        let len = (end - start) as usize;
        fill.bytes_with(len) <= limits.answer_bytes()
            && fill.records + touched_records(range, tags, start, end) <= limits.records_max
    };
    if fits(range.end) {
        return Some(range.end);
    }
    // Largest even offset from the range start below the range's end that
    // fits: validity is monotone in the end, so bisect over the even ends.
    let first = start + 2;
    if first >= range.end || !fits(first) {
        return None;
    }
    let (mut good, mut bad) = (
        (first - range.start) / 2,
        (range.end - range.start).div_ceil(2),
    );
    // Invariant: end `range.start + 2 good` fits, `range.start + 2 bad` does
    // not (or is past the end). At most 32 rounds for 32-bit offsets.
    while bad - good > 1 {
        let mid = good + (bad - good) / 2;
        if range.start + 2 * mid < range.end && fits(range.start + 2 * mid) {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Some(range.start + 2 * good)
}

/// Next-fit with cutting over the ranges in order: each request takes the
/// longest prefix of what is left that fits (see the module documentation).
/// Returns the pieces of each request in stream order.
pub fn pack(ranges: &[Range], tags: &[PlannedTag], limits: Limits) -> Vec<Vec<Cut>> {
    let mut requests = Vec::new();
    let mut open: Vec<Cut> = Vec::new();
    let mut fill = Fill::default();
    for (index, range) in ranges.iter().enumerate() {
        let mut start = range.start;
        // Each round adds a piece (start moves on) or closes a non-empty
        // request; a closed request is followed by a piece, so the loop
        // ends within two rounds per byte of the range.
        while start < range.end {
            let end = match furthest_end(range, tags, start, &fill, limits) {
                Some(end) => end,
                None if open.is_empty() => {
                    // Not even 2 bytes fit an empty request: only a records
                    // cap below one tag's records can do this (a cap from a
                    // plan of the same tags never is). Read the minimum.
                    (start + 2).min(range.end)
                }
                None => {
                    requests.push(std::mem::take(&mut open));
                    fill = Fill::default();
                    continue;
                }
            };
            let len = (end - start) as usize;
            fill.even_bytes += READ_RESPONSE_ITEM_HEAD_BYTES + len.next_multiple_of(2);
            fill.odd_pieces += len % 2;
            fill.items += 1;
            fill.records += touched_records(range, tags, start, end);
            open.push(Cut {
                range: index,
                start,
                end,
            });
            start = end;
        }
    }
    if !open.is_empty() {
        requests.push(open);
    }
    requests
}

/// Decode lists, straddlers and wire items from the packing.
fn build(tags: Vec<PlannedTag>, ranges: &[Range], cuts: &[Vec<Cut>], limits: Limits) -> Plan {
    // A tag is a straddler when no single piece holds it whole.
    let mut straddler_of: Vec<Option<u32>> = vec![None; tags.len()];
    let mut straddlers: Vec<Straddler> = Vec::new();
    let mut scratch_bytes = 0usize;
    let all_cuts = || cuts.iter().flatten();
    for cut in all_cuts() {
        let Some(range) = ranges.get(cut.range) else {
            continue;
        };
        for &i in &range.tags {
            let Some(tag) = tags.get(i as usize) else {
                continue;
            };
            let touches = tag.byte < cut.end && tag.end() > cut.start;
            let whole = tag.byte >= cut.start && tag.end() <= cut.end;
            if !touches || whole {
                continue;
            }
            let slot = straddler_of.get_mut(i as usize);
            if let Some(slot) = slot {
                match slot {
                    Some(s) => {
                        if let Some(st) = straddlers.get_mut(*s as usize) {
                            st.pieces += 1;
                        }
                    }
                    None => {
                        *slot = Some(straddlers.len() as u32);
                        straddlers.push(Straddler {
                            tag: i,
                            scratch_offset: scratch_bytes as u32,
                            pieces: 1,
                        });
                        scratch_bytes += tag.size as usize;
                    }
                }
            }
        }
    }
    let requests = cuts
        .iter()
        .map(|request| build_request(&tags, ranges, request, &straddler_of))
        .collect();
    Plan {
        limits,
        tags,
        requests,
        straddlers,
        scratch_bytes,
    }
}

fn build_request(
    tags: &[PlannedTag],
    ranges: &[Range],
    cuts: &[Cut],
    straddler_of: &[Option<u32>],
) -> PlannedRequest {
    let mut pieces = Vec::with_capacity(cuts.len());
    let mut records_max = 0;
    for cut in cuts {
        let Some(range) = ranges.get(cut.range) else {
            continue;
        };
        let mut piece = Piece {
            item: ReadItem {
                area_code: range.area.code(),
                db_number: range.area.db_number(),
                start: cut.start,
                count: (cut.end - cut.start) as u16,
            },
            inside: Vec::new(),
            parts: Vec::new(),
        };
        for &i in &range.tags {
            let Some(tag) = tags.get(i as usize) else {
                continue;
            };
            if tag.byte >= cut.end || tag.end() <= cut.start {
                continue;
            }
            records_max += tag.records as usize;
            match straddler_of.get(i as usize).copied().flatten() {
                None => piece.inside.push((i, (tag.byte - cut.start) as u16)),
                Some(s) => {
                    let from = tag.byte.max(cut.start);
                    let to = tag.end().min(cut.end);
                    piece.parts.push(StraddlePart {
                        straddler: s,
                        piece_offset: (from - cut.start) as u16,
                        tag_offset: (from - tag.byte) as u16,
                        len: (to - from) as u16,
                    });
                }
            }
        }
        pieces.push(piece);
    }
    // One odd piece last: it then needs no fill byte (the packing counted
    // it so).
    if let Some(odd) = pieces.iter().position(|p| p.item.count % 2 == 1) {
        let piece = pieces.remove(odd);
        pieces.push(piece);
    }
    PlannedRequest {
        pieces,
        records_max,
    }
}
