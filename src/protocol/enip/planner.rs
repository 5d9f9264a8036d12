//! The request planner: from a device's tags, the Read Tag services of one
//! poll cycle packed into as few connected messages as the negotiated
//! connection size allows.
//!
//! Runs at start-up (once per connection size the session may negotiate:
//! the size asked for and the Forward Open fallback), never on the hot
//! path. Deterministic: the same tags always give the same requests.
//!
//! # What a request may hold
//!
//! Every tag is one *read*: a Read Tag service of `count` elements (a BOOL
//! array's DWORDs, the integer holding a bit). A read costs `r` request
//! bytes and `p` reply bytes (`4 + type + data`). A request is one of:
//!
//! - a Multiple Service Packet of reads `S`, valid when
//!   `H_r + Σ_S (2 + r) <= C` and `H_p + Σ_S (2 + p) <= C` (`C` the
//!   connection size less the 2-byte sequence count, `H_r = 8` and
//!   `H_p = 8` the packet's own header bytes, 2 bytes of offset per
//!   service);
//! - a single read sent bare, when it fits in `C` both ways;
//! - a read whose reply cannot fit at all (an array of more than `C`
//!   bytes): Read Tag Fragmented, alone, its fragments following one
//!   another as the replies come (continuations are not planned requests).
//!
//! Validity is monotone: a subset of a valid packet is valid. Packing is
//! two-dimensional bin packing (NP-hard in general), so the planner aims at
//! near-minimal, with bounds it can prove and a search that checks it.
//!
//! # The planner, and why its packing is near-minimal
//!
//! Reads that fit a packet on their own (`2 + r <= C - H_r` and
//! `2 + p <= C - H_p`) are *packable*; the others go alone (bare or
//! fragmented), as they must in every plan. Each packable read gets its
//! *share* `w = max((2 + r) / (C - H_r), (2 + p) / (C - H_p))`, the larger
//! fraction of a packet it fills. Sorted by share, largest first (ties by
//! tag order), each read goes into the first open packet it fits, else
//! opens a new one (first fit decreasing). A packet left with one read is
//! sent bare (it fits bare: a bare read is smaller than a packet of it).
//!
//! Claim 1 (lower bound): any plan needs at least
//! `L = max(⌈Σ(2 + r) / (C - H_r)⌉, ⌈Σ(2 + p) / (C - H_p)⌉)` requests for
//! the packable reads, and the planner uses no fewer (each request holds at
//! most one packet's worth in either dimension).
//!
//! Claim 2 (at most one half-empty packet): no two packets `A` (opened
//! first) and `B` both end with both loads at most half their capacity.
//! Else every read of `B` is at most half in both dimensions, and when the
//! first of them was placed `A` held at most its final load, at most half:
//! the read fitted `A`, and first fit would have put it there. So every
//! packet but one has a load above half in some dimension, hence above
//! half its share sum: `B <= ⌈2 W⌉` where `W` is the sum of the shares,
//! and `W <= 2 L' ` for the optimum `L'` (a packet's shares sum to at most
//! 2). When one dimension dominates every read (arrays: replies; scalars
//! with long names: requests), `W <= L <= L'` and the planner is within a
//! factor 2 of optimal, like first fit in one dimension.
//!
//! `tests/enip_planner_prop.rs` checks, on random devices at random
//! connection sizes, that every request fits both ways, every tag is read
//! once, the packets are at least `L` (claim 1) and at most one is half
//! empty both ways (claim 2). How far above the optimum the planner lands
//! on typical devices is not measured yet (no exhaustive search).

use std::ops::Range;

use crate::config::{CipType, EnipDevice, EnipTag, PathSegment, SymbolicPath};
use crate::sample::{text_records, TagId};

use super::cip::{
    read_fragmented_bytes, read_tag_bytes, symbolic_path_bytes, write_symbolic_path,
    MSP_OFFSET_BYTES, MSP_REPLY_HEAD_BYTES, MSP_REQUEST_HEAD_BYTES,
};
use super::limits::{PATH_BYTES_MAX, STRING_STRUCT_BYTES};
use super::wire::Writer;

/// Bytes of the 2-byte sequence count that a connected message's size
/// includes.
pub const SEQUENCE_BYTES: usize = 2;
/// A Read Tag reply's header: service, reserved, status, extended size.
pub const REPLY_HEAD_BYTES: usize = 4;

/// How a read's reply data turns into samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One value of the tag's type per element.
    Values,
    /// Bit `bit` of an integer of any width (one sample).
    BitOfInteger { bit: u8 },
    /// Bits of a BOOL array, read as DWORDs from element 0 (as pycomm3
    /// does): sample `i` is bit `first_bit + i` of the DWORDs.
    BoolArray { first_bit: u32 },
}

/// One Read Tag service and how its reply becomes samples.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedRead {
    /// The tag id of its first sample; the others count up from it.
    pub tag: TagId,
    /// Index of the tag in the device's configuration.
    pub config_index: u32,
    pub data_type: CipType,
    pub shape: Shape,
    /// Samples it yields (the tag's `count`).
    pub samples: u32,
    /// Elements the request asks for (DWORDs for a BOOL array).
    pub request_elements: u16,
    /// Bytes of one requested element in the reply.
    pub element_bytes: u16,
    /// Its request path in `Plan::paths`.
    pub path: Range<usize>,
    pub scale: f64,
    pub value_offset: f64,
    pub scaled: bool,
}

impl PlannedRead {
    /// Records one sample takes (a STRING: a text head and extensions).
    pub fn records_per_sample(&self) -> usize {
        if self.data_type.is_text() {
            text_records(CipType::STRING_CHARS)
        } else {
            1
        }
    }

    /// Records the read writes in all.
    pub fn records(&self) -> usize {
        self.samples as usize * self.records_per_sample()
    }

    /// The type code's bytes in its reply: a structure adds its handle.
    pub const fn type_bytes(&self) -> usize {
        match self.data_type {
            CipType::String => 4,
            _ => 2,
        }
    }

    /// Data bytes of the whole reply.
    pub fn data_bytes(&self) -> usize {
        usize::from(self.request_elements) * usize::from(self.element_bytes)
    }

    /// Bytes of its Read Tag request.
    pub fn request_bytes(&self) -> usize {
        read_tag_bytes(self.path.len())
    }

    /// Bytes of its whole Read Tag reply.
    pub fn reply_bytes(&self) -> usize {
        REPLY_HEAD_BYTES + self.type_bytes() + self.data_bytes()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    /// One read, sent bare.
    Single,
    /// A Multiple Service Packet of two or more reads.
    Multiple,
    /// One read of a reply too large for a message: Read Tag Fragmented.
    Fragmented,
}

/// One connected message of a poll cycle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRequest {
    pub kind: RequestKind,
    /// Its reads in `Plan::reads`.
    pub reads: Range<usize>,
    /// Bytes of the CIP request and of its whole reply (the first
    /// fragment's, for a fragmented read).
    pub request_bytes: usize,
    pub reply_bytes: usize,
    /// Records its reads write.
    pub records: usize,
}

/// Every request of one poll cycle at one connection size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Grouped by request: each request's reads are contiguous, in tag order.
    pub reads: Vec<PlannedRead>,
    pub requests: Vec<PlannedRequest>,
    /// Every read's encoded request path, back to back.
    pub paths: Vec<u8>,
    /// The CIP bytes a message may hold (connection size less the sequence
    /// count).
    pub message_bytes: usize,
}

impl Plan {
    pub fn path(&self, read: &PlannedRead) -> &[u8] {
        self.paths.get(read.path.clone()).unwrap_or_default()
    }

    /// Records one poll cycle writes.
    pub fn records(&self) -> usize {
        self.requests.iter().map(|r| r.records).sum()
    }

    /// The most records one reply writes.
    pub fn records_per_request_max(&self) -> usize {
        self.requests.iter().map(|r| r.records).max().unwrap_or(0)
    }
}

/// Why a device cannot be planned (validation refuses most of these first).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PlanError {}

/// Bytes of one element in a Read Tag reply.
pub const fn element_bytes(data_type: CipType) -> u16 {
    match data_type {
        CipType::Bool | CipType::SInt | CipType::USInt => 1,
        CipType::Int | CipType::UInt => 2,
        CipType::DInt | CipType::UDInt | CipType::Real => 4,
        CipType::LInt | CipType::ULInt | CipType::LReal => 8,
        CipType::String => STRING_STRUCT_BYTES as u16,
    }
}

/// The read of one tag: its shape, what it asks for, its path.
fn read_of(
    tag: &EnipTag,
    config_index: u32,
    first: TagId,
    paths: &mut Vec<u8>,
) -> Result<PlannedRead, PlanError> {
    let fail = |why: String| PlanError(format!("tag `{}` ({}): {why}", tag.name, tag.address));
    let mut address = tag.address.clone();
    let (shape, request_elements, element) = match (tag.data_type, address.bit) {
        (CipType::Bool, Some(bit)) => {
            address.bit = None;
            // The integer's width is only known from the reply: budget the widest.
            (Shape::BitOfInteger { bit }, 1, 8)
        }
        (CipType::Bool, None) if tag.count > 1 || address.last_index().is_some() => {
            let first_bit = match address.segments.last_mut() {
                Some(PathSegment::Index(indices)) => {
                    let [bit] = indices[..] else {
                        return Err(fail("a BOOL array has one dimension".into()));
                    };
                    *indices = vec![0];
                    bit
                }
                _ => 0,
            };
            let bits = u64::from(first_bit) + u64::from(tag.count);
            let dwords = u16::try_from(bits.div_ceil(32))
                .map_err(|_| fail("the bits read run past DWORD 65535 of the array".into()))?;
            (Shape::BoolArray { first_bit }, dwords, 4)
        }
        (CipType::Bool, None) => (Shape::Values, 1, 1),
        (data_type, Some(_)) => {
            return Err(fail(format!(
                "a bit (`.N`) is read as type bool, not {data_type}"
            )))
        }
        (data_type, None) => (Shape::Values, tag.count, element_bytes(data_type)),
    };
    let path_bytes = symbolic_path_bytes(&address);
    if path_bytes > PATH_BYTES_MAX {
        return Err(fail(format!(
            "its request path takes {path_bytes} bytes, more than {PATH_BYTES_MAX}"
        )));
    }
    let start = paths.len();
    paths.resize(start + path_bytes, 0);
    let mut w = Writer::new(paths.get_mut(start..).unwrap_or_default());
    write_symbolic_path(&mut w, &address);
    assert!(!w.overflowed() && w.len() == path_bytes);
    Ok(PlannedRead {
        tag: first,
        config_index,
        data_type: tag.data_type,
        shape,
        samples: u32::from(tag.count),
        request_elements,
        element_bytes: element,
        path: start..start + path_bytes,
        scale: tag.scale,
        value_offset: tag.offset,
        scaled: tag.is_scaled() && !matches!(tag.data_type, CipType::Bool | CipType::String),
    })
}

/// What a read may be sent as, at capacity `c`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fit {
    Packable,
    Bare,
    Fragmented,
}

fn fit(read: &PlannedRead, c: usize) -> Option<Fit> {
    let (r, p) = (read.request_bytes(), read.reply_bytes());
    if MSP_REQUEST_HEAD_BYTES + MSP_OFFSET_BYTES + r <= c
        && MSP_REPLY_HEAD_BYTES + MSP_OFFSET_BYTES + p <= c
    {
        return Some(Fit::Packable);
    }
    if r <= c && p <= c {
        return Some(Fit::Bare);
    }
    // A fragment must carry at least one whole element to make progress.
    let first = REPLY_HEAD_BYTES + read.type_bytes() + usize::from(read.element_bytes);
    let fragmentable = read_fragmented_bytes(read.path.len()) <= c && first <= c;
    fragmentable.then_some(Fit::Fragmented)
}

/// A packet being filled: its reads and its loads.
struct Bin {
    reads: Vec<usize>,
    request: usize,
    reply: usize,
}

/// Plans `device` for connected messages of `connection_size` bytes (the
/// sequence count included). Tag ids count from `first_tag` in tag order,
/// one per sample.
pub fn plan_device(
    device: &EnipDevice,
    first_tag: TagId,
    connection_size: usize,
) -> Result<Plan, PlanError> {
    let c = connection_size.saturating_sub(SEQUENCE_BYTES);
    let mut paths = Vec::new();
    let mut reads = Vec::with_capacity(device.tags.len());
    let mut next = first_tag.0;
    for (index, tag) in device.tags.iter().enumerate() {
        reads.push(read_of(tag, index as u32, TagId(next), &mut paths)?);
        next = next.saturating_add(u32::from(tag.count));
    }
    let mut alone: Vec<(usize, RequestKind)> = Vec::new();
    let mut packable = Vec::new();
    for (index, read) in reads.iter().enumerate() {
        match fit(read, c) {
            Some(Fit::Packable) => packable.push(index),
            Some(Fit::Bare) => alone.push((index, RequestKind::Single)),
            Some(Fit::Fragmented) => alone.push((index, RequestKind::Fragmented)),
            None => {
                let (name, address) = device
                    .tags
                    .get(index)
                    .map_or(("?".into(), String::new()), |t| {
                        (t.name.clone(), t.address.to_string())
                    });
                return Err(PlanError(format!(
                    "tag `{name}` ({address}): a request for it does not fit a connection \
                     of {connection_size} bytes"
                )));
            }
        }
    }
    let bins = first_fit_decreasing(&reads, &packable, c);
    let mut groups: Vec<(Vec<usize>, RequestKind)> = bins
        .into_iter()
        .map(|bin| {
            let kind = if bin.reads.len() == 1 {
                RequestKind::Single
            } else {
                RequestKind::Multiple
            };
            (bin.reads, kind)
        })
        .chain(alone.into_iter().map(|(i, kind)| (vec![i], kind)))
        .collect();
    for (group, _) in &mut groups {
        group.sort_unstable();
    }
    // Requests in the order of their first tag: the plan reads like the
    // configuration. First indices are unique (each read is in one group).
    groups.sort_unstable_by_key(|(group, _)| group.first().copied());
    Ok(assemble(reads, groups, paths, c))
}

/// First fit decreasing by share (see the module documentation).
fn first_fit_decreasing(reads: &[PlannedRead], packable: &[usize], c: usize) -> Vec<Bin> {
    let request_room = c.saturating_sub(MSP_REQUEST_HEAD_BYTES);
    let reply_room = c.saturating_sub(MSP_REPLY_HEAD_BYTES);
    // `packable` holds indices of `reads` only; a miss would cost too much
    // to ever fit and so is never placed.
    let cost = |i: usize| {
        reads
            .get(i)
            .map_or((usize::MAX / 2, usize::MAX / 2), |read| {
                (
                    MSP_OFFSET_BYTES + read.request_bytes(),
                    MSP_OFFSET_BYTES + read.reply_bytes(),
                )
            })
    };
    let mut order = packable.to_vec();
    // Share compared exactly: a / A > b / B  <=>  a * B > b * A.
    let share = |i: usize| {
        let (r, p) = cost(i);
        let (r, p) = (
            r as u128 * reply_room as u128,
            p as u128 * request_room as u128,
        );
        r.max(p)
    };
    order.sort_unstable_by(|&a, &b| share(b).cmp(&share(a)).then(a.cmp(&b)));
    let mut bins: Vec<Bin> = Vec::new();
    for i in order {
        let (r, p) = cost(i);
        let open = bins
            .iter_mut()
            .find(|bin| bin.request + r <= request_room && bin.reply + p <= reply_room);
        match open {
            Some(bin) => {
                bin.reads.push(i);
                bin.request += r;
                bin.reply += p;
            }
            None => bins.push(Bin {
                reads: vec![i],
                request: r,
                reply: p,
            }),
        }
    }
    bins
}

/// Lays the reads out request by request and sizes each request.
fn assemble(
    reads: Vec<PlannedRead>,
    groups: Vec<(Vec<usize>, RequestKind)>,
    paths: Vec<u8>,
    c: usize,
) -> Plan {
    let mut slots: Vec<Option<PlannedRead>> = reads.into_iter().map(Some).collect();
    let mut ordered = Vec::with_capacity(slots.len());
    let mut requests = Vec::with_capacity(groups.len());
    for (group, kind) in groups {
        let start = ordered.len();
        for i in group {
            if let Some(read) = slots.get_mut(i).and_then(Option::take) {
                ordered.push(read);
            }
        }
        let members = ordered.get(start..).unwrap_or_default();
        let records = members.iter().map(PlannedRead::records).sum();
        let (request_bytes, reply_bytes) = match (kind, members) {
            (RequestKind::Multiple, _) => (
                MSP_REQUEST_HEAD_BYTES
                    + members
                        .iter()
                        .map(|r| MSP_OFFSET_BYTES + r.request_bytes())
                        .sum::<usize>(),
                MSP_REPLY_HEAD_BYTES
                    + members
                        .iter()
                        .map(|r| MSP_OFFSET_BYTES + r.reply_bytes())
                        .sum::<usize>(),
            ),
            (RequestKind::Single, [read]) => (read.request_bytes(), read.reply_bytes()),
            (RequestKind::Fragmented, [read]) => (
                read_fragmented_bytes(read.path.len()),
                read.reply_bytes().min(c),
            ),
            _ => unreachable!("a single or fragmented request has one read"),
        };
        assert!(request_bytes <= c && reply_bytes <= c);
        requests.push(PlannedRequest {
            kind,
            reads: start..ordered.len(),
            request_bytes,
            reply_bytes,
            records,
        });
    }
    Plan {
        reads: ordered,
        requests,
        paths,
        message_bytes: c,
    }
}

/// A path of one name, for tests and benches.
pub fn simple_path(name: &str) -> SymbolicPath {
    SymbolicPath {
        segments: vec![PathSegment::Name(name.to_string())],
        bit: None,
    }
}
