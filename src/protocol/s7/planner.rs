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
//! byte read). Tags of one area (one DB) sorted by (start, index) are swept
//! into *ranges*: a tag joins the open range when it starts at most
//! `max_hole` bytes past its end. A range is then cut into *pieces*, each a
//! run of its consecutive tags read as one item from the first tag's start
//! to the furthest end of the run, and the pieces packed into requests. A
//! request of `n` pieces with lengths `l_i` costs
//!
//! ```text
//!   request:  10 (job header) + 2 + 12 n            <= PDU
//!   response: 12 (ack header) + 2 + sum(4 + l_i + fill_i) <= PDU
//! ```
//!
//! where `fill_i` is 1 for an odd `l_i` unless the item is the last (the
//! planner puts an odd piece last). `n` is also capped by the items limit
//! (a PLC that answered fewer items than asked) and the records of the tags
//! a request reads by `records_max` (a re-plan must not raise
//! `samples_per_frame_max`).
//!
//! # No torn reads
//!
//! A cut falls only between two tags, never inside one: every tag is read
//! whole from one item of one answer, so its bytes are of one instant of
//! the PLC. (A cut at a byte count put the farm's LREAL at DB1.DBB936 half
//! in one answer and half in the next under a 960-byte PDU.) Pieces may
//! overlap where tags overlap, and a cut skips the hole between its tags.
//! The one exception is an *oversize* tag, longer than one item carries
//! (`item_bytes_max`: the PDU less 18): no answer can hold it (two items
//! of one answer carry less than one), so it is read in parts, each as
//! long as the open request allows, in consecutive requests, put together
//! in the session's scratch and decoded when its last part is answered.
//! Its value may be torn. Today's types are oversize only under small
//! PDUs: a STRING[254] (256 bytes) below 274, a WSTRING[341] (686 bytes)
//! below 704; at 240, a STRING longer than 220 or a WSTRING longer than
//! 109 characters. At 960 none is.
//!
//! # Why the sweep gives the fewest requests (for the order it keeps)
//!
//! Lay the ranges' tags end to end in (area, start, index) order: a plan
//! that keeps this order and reads a range in one piece per request reads
//! each request as one window of that line, cut between tags (and at any
//! byte inside an oversize tag); a range boundary ends a piece. Validity
//! (both byte budgets, the items cap, the records cap) is *monotone*: a
//! window inside a valid window is valid (fewer pieces, each spanning no
//! more bytes, fewer tags; a shorter piece never costs more padded bytes,
//! and when it turns an odd piece even it saves the two bytes the lost
//! "odd last" byte would cost). The planner takes, from each window's
//! start, the furthest valid end. By induction its `k`-th window ends at or
//! after the `k`-th window of any such plan: if its `(k-1)`-th end `e` is
//! at or after the other plan's `e'`, the other plan's `k`-th window
//! `[e', f)` contains `[e, f)` when `e < f`, which is then valid, so the
//! planner reaches at least `f`. So no such plan has fewer requests.
//!
//! The price of not tearing, against a plan free to cut at any byte (the
//! old one, which tore): a request closed for bytes ends before the tag
//! that did not fit, so it wastes less than one tag and its item head and
//! fill (`s + 5` bytes for the longest tag `s`): at most 2% of the answer
//! of a 960-byte PDU for numeric tags (`s <= 12`), more for long strings.
//! For tags that do not overlap and all fit one item, the sweep never
//! needs more than twice the
//! requests of the best byte-cut plan in the same order (split each of its
//! windows before the tag it cuts, and read that tag alone); the skipped
//! holes often win it back. `tests/s7_planner_prop.rs` checks both the
//! exact claim and this bound.
//!
//! What is not claimed: a plan that reorders ranges can do better when many
//! tiny ranges (item-bound requests) and a few long ones (byte-bound
//! requests) sit in different areas, as each such request then wastes the
//! other budget; at worst the sweep needs about as many requests as the
//! item bound plus the byte bound, against the larger of the two. Exact
//! packing with reordering is bin packing (NP-hard); plans are small and
//! per connection, but a poll cycle of a real device is almost always one
//! of the two kinds. The property test checks that the best plan over
//! every reordering of the ranges never needs fewer than half the sweep's
//! requests on small random inputs (checked, not proven). Nor is it claimed
//! that splitting a range into two pieces of one request (to skip a hole
//! longer than an item head) never helps: `max_hole` is the user's choice.

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

/// A piece as the packing decides it: a run of a range's tags read as one
/// item, or a part of one oversize tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cut {
    pub range: usize,
    /// The piece's tags: positions `tag_first..tag_first + tag_count` in
    /// the range's `tags` (an oversize tag's part: that one tag).
    pub tag_first: u32,
    pub tag_count: u32,
    /// Bytes read: from the first tag's start to the furthest end of the
    /// run's tags, or the part's span inside its oversize tag.
    pub start: u32,
    pub end: u32,
}

/// Bytes one item carries at most: the whole answer of a one-item request.
/// A tag longer than this is *oversize* and the only kind read in parts.
pub const fn item_bytes_max(limits: Limits) -> usize {
    limits.answer_bytes() - READ_RESPONSE_ITEM_HEAD_BYTES
}

/// Running totals of the request being filled (its closed pieces).
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

    /// Whether one more piece of `len` bytes writing `records` fits.
    fn fits(&self, len: usize, records: usize, limits: Limits) -> bool {
        self.items < limits.items()
            && self.bytes_with(len) <= limits.answer_bytes()
            && self.records + records <= limits.records_max
    }

    fn add(&mut self, len: usize, records: usize) {
        self.even_bytes += READ_RESPONSE_ITEM_HEAD_BYTES + len.next_multiple_of(2);
        self.odd_pieces += len % 2;
        self.items += 1;
        self.records += records;
    }
}

/// The sweep's state: closed requests, the open one, and its growing piece.
struct Packer<'a> {
    tags: &'a [PlannedTag],
    limits: Limits,
    requests: Vec<Vec<Cut>>,
    open: Vec<Cut>,
    fill: Fill,
    /// The piece the next tag of the range may extend, with its records.
    growing: Option<(Cut, usize)>,
}

impl Packer<'_> {
    fn close_piece(&mut self) {
        if let Some((cut, records)) = self.growing.take() {
            self.fill.add((cut.end - cut.start) as usize, records);
            self.open.push(cut);
        }
    }

    fn close_request(&mut self) {
        self.close_piece();
        if !self.open.is_empty() {
            self.requests.push(std::mem::take(&mut self.open));
        }
        self.fill = Fill::default();
    }

    /// A tag that fits one item: it extends the growing piece when the
    /// request still has room, else it opens a new request. It is never cut.
    fn add_tag(&mut self, range: usize, position: u32, tag: &PlannedTag) {
        let alone = Cut {
            range,
            tag_first: position,
            tag_count: 1,
            start: tag.byte,
            end: tag.end(),
        };
        let candidate = match self.growing {
            Some((cut, records)) => {
                let end = cut.end.max(tag.end());
                let grown = Cut {
                    tag_count: cut.tag_count + 1,
                    end,
                    ..cut
                };
                (grown, records + tag.records as usize)
            }
            None => (alone, tag.records as usize),
        };
        let (cut, records) = candidate;
        if self
            .fill
            .fits((cut.end - cut.start) as usize, records, self.limits)
        {
            self.growing = Some(candidate);
            return;
        }
        // An empty request takes any tag that fits one item, unless the
        // records cap is below the tag's own records (a cap from a plan of
        // the same tags never is): then the tag is read alone regardless.
        self.close_request();
        self.growing = Some((alone, tag.records as usize));
    }

    /// An oversize tag: in parts, each as long as the open request allows,
    /// in consecutive requests (no answer can carry it whole).
    fn add_oversize(&mut self, range: usize, position: u32, tag: &PlannedTag) {
        self.close_piece();
        let records = tag.records as usize;
        let mut at = tag.byte;
        // Each round adds a part (`at` moves on) or closes a non-empty
        // request, which the next round fills: at most two rounds per part.
        while at < tag.end() {
            let rest = (tag.end() - at) as usize;
            let len = match self.part_bytes(rest, records) {
                Some(len) => len,
                None if self.open.is_empty() => rest.min(item_bytes_max(self.limits)),
                None => {
                    self.close_request();
                    continue;
                }
            };
            let end = at + len as u32;
            self.fill.add(len, records);
            self.open.push(Cut {
                range,
                tag_first: position,
                tag_count: 1,
                start: at,
                end,
            });
            at = end;
        }
    }

    /// The longest part of at most `rest` bytes the open request takes.
    /// `bytes_with` grows by at most one per byte, so from one past the
    /// free room it takes at most two steps down.
    fn part_bytes(&self, rest: usize, records: usize) -> Option<usize> {
        let used = self.fill.bytes_with(0);
        let room = self.limits.answer_bytes().checked_sub(used)?;
        let mut len = rest.min(room + 1);
        for _ in 0..3 {
            if len == 0 {
                return None;
            }
            if self.fill.fits(len, records, self.limits) {
                return Some(len);
            }
            len -= 1;
        }
        None
    }
}

/// Next-fit over the ranges in order, cutting only between tags (see the
/// module documentation). Returns the pieces of each request in stream
/// order.
pub fn pack(ranges: &[Range], tags: &[PlannedTag], limits: Limits) -> Vec<Vec<Cut>> {
    let mut packer = Packer {
        tags,
        limits,
        requests: Vec::new(),
        open: Vec::new(),
        fill: Fill::default(),
        growing: None,
    };
    let item_max = item_bytes_max(limits);
    for (index, range) in ranges.iter().enumerate() {
        for (position, &i) in range.tags.iter().enumerate() {
            let Some(tag) = packer.tags.get(i as usize) else {
                continue;
            };
            if tag.size as usize > item_max {
                packer.add_oversize(index, position as u32, tag);
            } else {
                packer.add_tag(index, position as u32, tag);
            }
        }
        packer.close_piece();
    }
    packer.close_request();
    packer.requests
}

/// The tag indices (into `Plan::tags`) of a cut's run.
fn run<'r>(range: &'r Range, cut: &Cut) -> &'r [u32] {
    let from = cut.tag_first as usize;
    range
        .tags
        .get(from..from + cut.tag_count as usize)
        .unwrap_or_default()
}

/// Decode lists, straddlers and wire items from the packing.
fn build(tags: Vec<PlannedTag>, ranges: &[Range], cuts: &[Vec<Cut>], limits: Limits) -> Plan {
    // A straddler is a tag no single piece holds whole: only an oversize
    // one. Every tag is read once: whole in one piece, or in parts that
    // tile its bytes (asserted: the decoder relies on it).
    let mut straddler_of: Vec<Option<u32>> = vec![None; tags.len()];
    let mut read_bytes: Vec<u32> = vec![0; tags.len()];
    let mut straddlers: Vec<Straddler> = Vec::new();
    let mut scratch_bytes = 0usize;
    for cut in cuts.iter().flatten() {
        let Some(range) = ranges.get(cut.range) else {
            continue;
        };
        for &i in run(range, cut) {
            let (Some(tag), Some(read), Some(slot)) = (
                tags.get(i as usize),
                read_bytes.get_mut(i as usize),
                straddler_of.get_mut(i as usize),
            ) else {
                continue;
            };
            let whole = tag.byte >= cut.start && tag.end() <= cut.end;
            *read += if whole { tag.size } else { cut.end - cut.start };
            if whole {
                continue;
            }
            assert!(tag.byte <= cut.start && cut.end <= tag.end());
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
    for ((tag, read), straddler) in tags.iter().zip(&read_bytes).zip(&straddler_of) {
        assert!(*read == tag.size, "a tag is read exactly once");
        assert!(straddler.is_none() || tag.size as usize > item_bytes_max(limits));
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
        for &i in run(range, cut) {
            let Some(tag) = tags.get(i as usize) else {
                continue;
            };
            records_max += tag.records as usize;
            match straddler_of.get(i as usize).copied().flatten() {
                None => piece.inside.push((i, (tag.byte - cut.start) as u16)),
                Some(s) => piece.parts.push(StraddlePart {
                    straddler: s,
                    piece_offset: 0,
                    tag_offset: (cut.start - tag.byte) as u16,
                    len: (cut.end - cut.start) as u16,
                }),
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
