//! Reply layouts: a Multiple Service Packet request whose reads are all
//! plain values (scalars and arrays of numbers, no STRING, no bit),
//! compiled at plan time into the exact bytes its usual reply starts with
//! and where each read's values sit in it. The hot path then checks a
//! reply with one comparison of the offset table and one of each embedded
//! reply's head, and decodes the values from known offsets, instead of
//! walking the offsets, parsing each embedded reply and looking up its
//! read.
//!
//! The usual reply is every embedded Read Tag answered with success and
//! exactly the elements asked for, of the expected type, back to back:
//! what Logix controllers, cm-ethernetip and the farm send. Its item count
//! and offset table are then known bytes, and every embedded reply's head
//! (service 0xCC, reserved 0, general status 0, no extended status, type
//! code) is known bytes at a known offset, so "the data is exactly as long
//! as planned, its table is the planned one and every head is the planned
//! one" IS the validation the per-reply path (`MspReplies::parse`, then
//! `decode::scalar_reply` or `typed_data`, `element_width` and `decode`)
//! does, for that reply. Anything else (a tag in error, a padded or
//! reordered reply, another type, a short or long reply) fails a
//! comparison and takes the per-reply path, which gives it its qualities,
//! notices and errors exactly as before; nothing is written by the layout
//! then that the per-reply path does not overwrite. An array's values are
//! written by the per-reply path's own `decode::decode`.
//!
//! Must never: accept a reply the per-reply path would refuse, or write
//! other records than it would (`tests`); allocate per frame.

use crate::config::CipType;
use crate::sample::{Quality, Sample, TagId};

use super::decode::{self, expected_code, scalar_bits, READ_TAG_REPLY};
use super::planner::{Plan, PlannedRead, PlannedRequest, RequestKind, Shape};

/// Bytes of an embedded Read Tag reply's head: service, reserved, general
/// status, extended status size, type code.
const HEAD_BYTES: usize = 6;

/// One read of a compiled request: where its embedded reply sits.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Item {
    /// Offset of its embedded reply in the packet's reply data.
    at: u16,
    head: [u8; HEAD_BYTES],
    data_type: CipType,
    /// `(scale, offset)` when the tag scales.
    scaling: Option<(f64, f64)>,
    tag: TagId,
    /// Samples (elements) of the read: 1 for a scalar.
    samples: u16,
    /// Bytes of its values.
    value_bytes: u16,
}

/// The compiled all-success reply of one Multiple Service Packet request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MspLayout {
    /// The reply data's item count and offset table.
    table: Box<[u8]>,
    /// Bytes of the whole reply data.
    data_bytes: usize,
    items: Box<[Item]>,
}

/// Whether a read's usual reply is its values, one sample per element.
fn is_plain(read: &PlannedRead) -> bool {
    read.samples == u32::from(read.request_elements)
        && read.request_elements >= 1
        && read.shape == Shape::Values
        && read.data_type != CipType::String
}

impl MspLayout {
    /// Per request of `plan`: its layout, or `None` when it is not a
    /// Multiple Service Packet of plain reads (or would not fit the offsets
    /// of a reply).
    pub fn of_plan(plan: &Plan) -> Vec<Option<MspLayout>> {
        plan.requests
            .iter()
            .map(|request| Self::of_request(plan, request))
            .collect()
    }

    fn of_request(plan: &Plan, request: &PlannedRequest) -> Option<MspLayout> {
        if request.kind != RequestKind::Multiple {
            return None;
        }
        let reads = plan.reads.get(request.reads.clone())?;
        if reads.is_empty() || !reads.iter().all(is_plain) {
            return None;
        }
        let count = u16::try_from(reads.len()).ok()?;
        let mut table = Vec::with_capacity(2 + 2 * reads.len());
        table.extend_from_slice(&count.to_le_bytes());
        let mut items = Vec::with_capacity(reads.len());
        let mut at = 2 + 2 * reads.len();
        for read in reads {
            let offset = u16::try_from(at).ok()?;
            table.extend_from_slice(&offset.to_le_bytes());
            let [code_lo, code_hi] = expected_code(read.data_type).to_le_bytes();
            items.push(Item {
                at: offset,
                head: [READ_TAG_REPLY, 0, 0, 0, code_lo, code_hi],
                data_type: read.data_type,
                scaling: read.scaled.then_some((read.scale, read.value_offset)),
                tag: read.tag,
                samples: read.request_elements,
                value_bytes: u16::try_from(read.data_bytes()).ok()?,
            });
            at += HEAD_BYTES + read.data_bytes();
        }
        u16::try_from(at).ok()?;
        Some(MspLayout {
            table: table.into_boxed_slice(),
            data_bytes: at,
            items: items.into_boxed_slice(),
        })
    }

    /// Decodes `data` (the packet's reply data, after its status) into the
    /// samples of `reads` (the request's reads) at the front of `out`, when
    /// it is the compiled reply; `None` otherwise, and the per-reply path
    /// decodes it (what this wrote into `out` then is overwritten).
    pub fn decode(
        &self,
        reads: &[PlannedRead],
        data: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Option<usize> {
        let planned = reads.len() == self.items.len() && data.len() == self.data_bytes;
        if !planned || data.get(..self.table.len())? != &*self.table {
            return None;
        }
        let mut written = 0;
        for (item, read) in self.items.iter().zip(reads) {
            let reply = data.get(usize::from(item.at)..)?;
            let (head, values) = reply.split_first_chunk::<HEAD_BYTES>()?;
            if *head != item.head {
                return None;
            }
            if item.samples == 1 {
                let (kind, bits) = scalar_bits(item.data_type, item.scaling, values)?;
                *out.get_mut(written)? = Sample::new(ts_ns, item.tag, Quality::GOOD, kind, bits);
                written += 1;
                continue;
            }
            let values = values.get(..usize::from(item.value_bytes))?;
            let slot = out.get_mut(written..written + usize::from(item.samples))?;
            let width = usize::from(read.element_bytes);
            written += decode::decode(read, width, values, 0, 0, ts_ns, slot).records;
        }
        Some(written)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;
    use crate::protocol::enip::cip::MspReplies;
    use crate::protocol::enip::planner::element_bytes;

    const TYPES: [CipType; 11] = decode::NUMERIC_TYPES;

    fn read(index: usize, data_type: CipType, scaled: bool) -> PlannedRead {
        PlannedRead {
            tag: TagId(100 + index as u32),
            config_index: index as u32,
            data_type,
            shape: Shape::Values,
            samples: 1,
            request_elements: 1,
            element_bytes: element_bytes(data_type),
            path: 0..0,
            scale: if scaled { 0.25 } else { 1.0 },
            value_offset: if scaled { -7.0 } else { 0.0 },
            scaled,
        }
    }

    /// A plan of one Multiple Service Packet of every type, some scaled,
    /// and arrays of three.
    fn plan() -> Plan {
        let mut reads: Vec<PlannedRead> = TYPES
            .iter()
            .chain(TYPES.iter())
            .enumerate()
            .map(|(i, &t)| read(i, t, i >= TYPES.len() && t != CipType::Bool))
            .collect();
        for (i, &t) in TYPES.iter().enumerate() {
            let mut array = read(reads.len(), t, i % 2 == 1 && t != CipType::Bool);
            array.samples = 3;
            array.request_elements = 3;
            reads.push(array);
        }
        let requests = vec![PlannedRequest {
            kind: RequestKind::Multiple,
            reads: 0..reads.len(),
            request_bytes: 0,
            reply_bytes: 0,
            records: reads.iter().map(|r| r.samples as usize).sum(),
        }];
        Plan {
            reads,
            requests,
            paths: Vec::new(),
            message_bytes: 4000,
        }
    }

    /// The usual reply data to `plan`'s request, values counting up.
    fn usual_reply(plan: &Plan) -> Vec<u8> {
        let count = plan.reads.len();
        let mut data = (count as u16).to_le_bytes().to_vec();
        let mut replies = Vec::new();
        for (i, read) in plan.reads.iter().enumerate() {
            data.extend_from_slice(&((2 + 2 * count + replies.len()) as u16).to_le_bytes());
            replies.extend_from_slice(&[0xCC, 0, 0, 0]);
            replies.extend_from_slice(&expected_code(read.data_type).to_le_bytes());
            let bytes = read.data_bytes();
            replies.extend((0..bytes).map(|b| (i as u8).wrapping_mul(31) ^ b as u8));
        }
        data.extend_from_slice(&replies);
        data
    }

    /// The per-reply path's records when every embedded reply is a plain
    /// success (`scalar_reply` for a scalar, else the type check and
    /// `decode`), `None` when any reply is not or the packet is refused.
    fn per_reply(plan: &Plan, data: &[u8], out: &mut [Sample]) -> Option<usize> {
        let replies = MspReplies::parse(data, plan.reads.len() as u16).ok()?;
        let mut written = 0;
        for (i, read) in plan.reads.iter().enumerate() {
            let reply = replies.get(i as u16);
            let slot = &mut out[written..];
            if read.samples == 1 {
                written += decode::scalar_reply(read, reply, 5, slot)?;
                continue;
            }
            if reply.get(..4)? != [0xCC, 0, 0, 0] {
                return None;
            }
            let typed = decode::typed_data(reply.get(4..)?)?;
            let width = decode::element_width(read, &typed)?;
            let decoded = decode::decode(read, width, typed.data, 0, 0, 5, slot);
            if decoded.samples_done != read.samples {
                return None;
            }
            written += decoded.records;
        }
        Some(written)
    }

    #[test]
    fn only_packets_of_plain_values_compile() {
        let mut plan = plan();
        assert!(MspLayout::of_plan(&plan)[0].is_some());
        for change in 0..3 {
            let mut other = plan.clone();
            match change {
                0 => other.reads[3].samples = 2, // a BOOL array's DWORDs
                1 => other.reads[3].data_type = CipType::String,
                _ => other.requests[0].kind = RequestKind::Single,
            }
            assert_eq!(MspLayout::of_plan(&other), vec![None], "change {change}");
        }
        plan.reads[4].shape = Shape::BitOfInteger { bit: 3 };
        assert_eq!(MspLayout::of_plan(&plan), vec![None]);
    }

    #[test]
    fn the_usual_reply_decodes_as_the_per_reply_path_decodes_it() {
        let plan = plan();
        let layout = MspLayout::of_plan(&plan)[0].clone().unwrap();
        let data = usual_reply(&plan);
        let records = plan.records();
        let (mut fast, mut slow) = (vec![Sample::default(); 80], vec![Sample::default(); 80]);
        assert_eq!(
            layout.decode(&plan.reads, &data, 5, &mut fast),
            Some(records)
        );
        assert_eq!(per_reply(&plan, &data, &mut slow), Some(records));
        assert_eq!(fast, slow);
    }

    /// Every single-byte change of the usual reply, and every cut and
    /// extension: the layout either refuses it or writes exactly what the
    /// per-reply path writes (a changed value); it never accepts what the
    /// per-reply path would not take as plain successes.
    #[test]
    fn a_changed_reply_is_refused_or_decoded_the_same() {
        let plan = plan();
        let layout = MspLayout::of_plan(&plan)[0].clone().unwrap();
        let usual = usual_reply(&plan);
        let mut variants: Vec<Vec<u8>> = Vec::new();
        for at in 0..usual.len() {
            for xor in [0x01, 0x80, 0xFF] {
                let mut data = usual.clone();
                data[at] ^= xor;
                variants.push(data);
            }
            variants.push(usual[..at].to_vec());
        }
        variants.push([&usual[..], &[0]].concat());
        let mut accepted = 0;
        for data in &variants {
            let (mut fast, mut slow) = (vec![Sample::default(); 80], vec![Sample::default(); 80]);
            let Some(n) = layout.decode(&plan.reads, data, 5, &mut fast) else {
                continue;
            };
            accepted += 1;
            assert_eq!(per_reply(&plan, data, &mut slow), Some(n), "{data:02x?}");
            assert_eq!(fast[..n], slow[..n], "{data:02x?}");
        }
        // Value bytes changed: decoded; nothing else was.
        let value_bytes: usize = plan.reads.iter().map(PlannedRead::data_bytes).sum();
        assert_eq!(accepted, 3 * value_bytes);
    }
}

#[cfg(test)]
mod fuzz_reach {
    use super::*;
    use crate::protocol::enip::fuzz::{fuzz_device, fuzz_session_for};

    /// The session fuzz target reaches the layout and the per-reply path.
    #[test]
    fn the_fuzz_device_has_a_compiled_packet_and_one_that_is_not() {
        let session = fuzz_session_for(&fuzz_device());
        let layouts = MspLayout::of_plan(session.plan());
        assert!(layouts.iter().any(Option::is_some), "{layouts:?}");
        assert!(layouts.iter().any(Option::is_none), "{layouts:?}");
    }
}
