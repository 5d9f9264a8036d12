//! The EtherNet/IP planner's claims (src/protocol/enip/planner.rs), checked
//! on random devices (scalars with names of every length, arrays from one
//! element to more than a message holds, bits of integers, BOOL arrays,
//! STRINGs) at random connection sizes:
//!
//! - every request fits the message both ways, by the planner's own byte
//!   sums recomputed here from the reads it holds;
//! - every tag is read exactly once, and a cycle writes one record per
//!   sample (a STRING its text records);
//! - claim 1: the packets of packable reads are at least the lower bound
//!   `L`, and a read goes alone (bare or fragmented) only when it cannot
//!   share a packet;
//! - claim 2: at most one packet ends with both its loads at most half
//!   their room.

use millrace::config::{parse_enip_address, CipType, EnipDevice, EnipTag};
use millrace::protocol::enip::cip::{
    MSP_OFFSET_BYTES, MSP_REPLY_HEAD_BYTES, MSP_REQUEST_HEAD_BYTES,
};
use millrace::protocol::enip::planner::SEQUENCE_BYTES;
use millrace::protocol::enip::{plan_device, PlannedRead, RequestKind};
use millrace::sample::text_records;
use millrace::TagId;
use proptest::prelude::*;

const TYPES: [CipType; 6] = [
    CipType::DInt,
    CipType::Real,
    CipType::LInt,
    CipType::SInt,
    CipType::Bool,
    CipType::String,
];

/// (name length, type, count, shape): shape 0 plain, 1 a bit of an
/// integer, 2 an element index.
fn tag_strategy() -> impl Strategy<Value = (usize, usize, u16, u8)> {
    (1usize..36, 0..TYPES.len(), 1u16..400, 0u8..3)
}

fn device(raw: &[(usize, usize, u16, u8)], connection_size: u16) -> EnipDevice {
    let tags = raw
        .iter()
        .enumerate()
        .map(|(i, &(name_len, ty, count, shape))| {
            let name = format!("T{i}{}", "x".repeat(name_len));
            let data_type = TYPES[ty];
            let (address, count) = match (data_type, shape) {
                (CipType::String, _) => (name, 1),
                (CipType::Bool, 1) => (format!("{name}.{}", count % 32), 1),
                (_, 2) => (format!("{name}[{}]", count % 7), count),
                _ => (name, count),
            };
            let address = parse_enip_address(&address).expect("a valid address");
            EnipTag {
                count,
                ..EnipTag::new(&format!("t{i}"), address, data_type)
            }
        })
        .collect();
    EnipDevice {
        route: vec![],
        connection_size,
        tags,
    }
}

fn packed_costs(read: &PlannedRead) -> (usize, usize) {
    (
        MSP_OFFSET_BYTES + read.request_bytes(),
        MSP_OFFSET_BYTES + read.reply_bytes(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn plans_fit_read_everything_once_and_keep_the_bounds(
        raw in prop::collection::vec(tag_strategy(), 1..40),
        connection_size in 200u16..=4002,
    ) {
        let device = device(&raw, connection_size);
        let plan = plan_device(&device, TagId(0), usize::from(connection_size))
            .expect("a plannable device");
        let c = usize::from(connection_size) - SEQUENCE_BYTES;
        prop_assert_eq!(plan.message_bytes, c);
        let (request_room, reply_room) = (c - MSP_REQUEST_HEAD_BYTES, c - MSP_REPLY_HEAD_BYTES);
        let packable = |read: &PlannedRead| {
            let (r, p) = packed_costs(read);
            r <= request_room && p <= reply_room
        };
        // Every tag once, every request within the message.
        let mut seen: Vec<u32> = plan.reads.iter().map(|r| r.config_index).collect();
        seen.sort_unstable();
        prop_assert_eq!(seen, (0..device.tags.len() as u32).collect::<Vec<_>>());
        let mut records = 0;
        let mut packets = 0;
        let mut half_empty = 0;
        let (mut request_sum, mut reply_sum) = (0, 0);
        for request in &plan.requests {
            let reads = &plan.reads[request.reads.clone()];
            prop_assert!(request.request_bytes <= c && request.reply_bytes <= c);
            records += request.records;
            let want: usize = reads.iter().map(|r| {
                let per = if r.data_type == CipType::String { text_records(82) } else { 1 };
                r.samples as usize * per
            }).sum();
            prop_assert_eq!(request.records, want);
            match request.kind {
                RequestKind::Multiple => {
                    prop_assert!(reads.len() >= 2);
                    let r: usize = reads.iter().map(|x| packed_costs(x).0).sum();
                    let p: usize = reads.iter().map(|x| packed_costs(x).1).sum();
                    prop_assert_eq!(request.request_bytes, MSP_REQUEST_HEAD_BYTES + r);
                    prop_assert_eq!(request.reply_bytes, MSP_REPLY_HEAD_BYTES + p);
                    packets += 1;
                    request_sum += r;
                    reply_sum += p;
                    if 2 * r <= request_room && 2 * p <= reply_room {
                        half_empty += 1;
                    }
                }
                RequestKind::Single | RequestKind::Fragmented => {
                    prop_assert_eq!(reads.len(), 1);
                    let read = &reads[0];
                    if packable(read) {
                        // A packet of one read sent bare: it is a packet of
                        // the plan for the bounds.
                        prop_assert_eq!(request.kind, RequestKind::Single);
                        let (r, p) = packed_costs(read);
                        packets += 1;
                        request_sum += r;
                        reply_sum += p;
                        if 2 * r <= request_room && 2 * p <= reply_room {
                            half_empty += 1;
                        }
                    } else if request.kind == RequestKind::Single {
                        prop_assert!(read.request_bytes() <= c && read.reply_bytes() <= c);
                    }
                }
            }
        }
        prop_assert_eq!(records, plan.records());
        prop_assert_eq!(records, device.tags.iter().map(|t| {
            let per = if t.data_type == CipType::String { text_records(82) } else { 1 };
            t.count as usize * per
        }).sum::<usize>());
        // Claim 1: no plan packs the packable reads into fewer packets.
        let lower = request_sum.div_ceil(request_room).max(reply_sum.div_ceil(reply_room));
        prop_assert!(packets >= lower);
        // Claim 2: at most one packet at most half full both ways.
        prop_assert!(half_empty <= 1, "{half_empty} half-empty packets");
    }
}
