//! Decoding EtherNet/IP Multiple Service Packet replies into samples,
//! millrace against the decoding of the `rust-ethernet-ip` client (1.2.1)
//! on the same frames in the same run. The throughput is tag values per
//! second (one DINT or REAL scalar tag per embedded Read Tag reply: the
//! case where per-reply work, not value copying, dominates).
//!
//! - `millrace_session`: the driver-facing path per frame: start_cycle,
//!   poll_transmit (the connected Multiple Service Packet request), the
//!   frame's sequence count set to the request's, receive (encapsulation
//!   framing, session handle, connection id and sequence matched, the
//!   packet's status, every embedded reply's service, status and type
//!   checked, every value decoded into the sample slice).
//! - `rust_ethernet_ip`: the steps its client takes on a Multiple Service
//!   Packet reply (`EipClient::read_tags_batch`), on the same bytes:
//!   `EncapsulationHeader::decode`, `SendDataRequest::decode` (the common
//!   packet format, each item copied into a `Vec`), the data item found by
//!   type and its CIP bytes copied out (as its `extract_cip_from_response`
//!   does, after the connected item's sequence count), then its
//!   `parse_multiple_service_response` and `parse_individual_reply` (crate-
//!   private, so repeated here step for step with their checks: header,
//!   reply count, offsets into a `Vec`, per reply service status, type
//!   word) and `values::decode_payload` (public) into a `PlcValue` per
//!   tag, then each value into an `f64` slot (what a caller has to do to
//!   get samples). Its client logs each step at trace level; the tracing
//!   calls are left out here, which only favours it. No socket on either
//!   side. Its public decoders are in `rust-ethernet-ip-protocol`, the
//!   crate of its workspace that `rust-ethernet-ip` re-exports only inside
//!   itself.
//!
//! Cases: `c4002_scalars` (as many scalar tags, DINT and REAL in turn, as
//! one Multiple Service Packet holds on a 4002-byte Large Forward Open
//! connection), `c500_scalars` (the same on a 500-byte Forward Open
//! connection, as a controller that refuses the large one gives).
//!
//! Run: cargo bench --bench enip -- --measurement-time 3 --warm-up-time 1

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

use millrace::config::{
    parse_enip_address, CipType, DeviceConfig, DriverConfig, EnipDevice, EnipTag, Protocol,
};
use millrace::protocol::enip::cip::type_code;
use millrace::protocol::enip::fuzz::{fuzz_session_for, Responder};
use millrace::protocol::enip::EnipSession;
use millrace::protocol::Session;
use millrace::Sample;
use rust_ethernet_ip_protocol::cip::SendDataRequest;
use rust_ethernet_ip_protocol::encap::EncapsulationHeader;
use rust_ethernet_ip_protocol::values::decode_payload;
use rust_ethernet_ip_protocol::Decode;
use rust_ethernet_ip_types::PlcValue;

/// Where a connected reply's sequence count sits: encapsulation header
/// (24), interface handle and timeout (6), item count (2), the connected
/// address item (8), the data item's type and length (4).
const SEQUENCE_AT: usize = 44;

struct Case {
    name: &'static str,
    session: EnipSession,
    frame: Vec<u8>,
    tags: usize,
}

fn device(connection_size: u16, tags: usize) -> DeviceConfig {
    let tags = (0..tags)
        .map(|i| {
            let name = format!("T{i}");
            let Ok(address) = parse_enip_address(&name) else {
                panic!("{name} parses as an address");
            };
            let data_type = if i % 2 == 0 {
                CipType::DInt
            } else {
                CipType::Real
            };
            EnipTag::new(&name, address, data_type)
        })
        .collect();
    DeviceConfig {
        name: "bench".into(),
        protocol: Protocol::EthernetIp,
        address: "127.0.0.1:44818".into(),
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        max_inflight: 1,
        driver: DriverConfig::EthernetIp(EnipDevice {
            route: vec![],
            connection_size,
            tags,
        }),
    }
}

/// The most tags one Multiple Service Packet carries at `connection_size`.
fn tags_in_one_request(connection_size: u16) -> usize {
    let mut tags = 2;
    while fuzz_session_for(&device(connection_size, tags + 1)).requests_per_cycle() == 1 {
        tags += 1;
    }
    tags
}

fn responder(tags: usize) -> Responder {
    let mut r = Responder::new();
    for i in 0..tags {
        let name = format!("T{i}");
        if i % 2 == 0 {
            let value = (i as i32 * 1_000_003).wrapping_sub(7);
            r.serve(&name, type_code::DINT, 4, value.to_le_bytes().to_vec());
        } else {
            let value = i as f32 * 0.25 - 3.0;
            r.serve(&name, type_code::REAL, 4, value.to_le_bytes().to_vec());
        }
    }
    r
}

fn case(name: &'static str, connection_size: u16) -> Case {
    let tags = tags_in_one_request(connection_size);
    let mut session = fuzz_session_for(&device(connection_size, tags));
    assert_eq!(session.requests_per_cycle(), 1, "{name}: one request");
    let mut plc = responder(tags);
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    session.on_connected(0);
    while let Some(n) = session.poll_transmit(0, &mut buf) {
        let answer = plc.answer(&buf[..n]);
        session.receive(&answer, 1, &mut out).expect("handshake");
    }
    assert!(session.is_ready(), "{name}: connected");
    assert_eq!(session.connection_size(), usize::from(connection_size));
    session.start_cycle();
    let n = session.poll_transmit(0, &mut buf).expect("the request");
    let frame = plc.answer(&buf[..n]);
    assert!(frame.len() <= 24 + 22 + usize::from(connection_size));
    let received = session.receive(&frame, 1, &mut out).expect("first answer");
    assert_eq!(received.samples, tags);
    Case {
        name,
        session,
        frame,
        tags,
    }
}

fn millrace_frame(case: &mut Case, buf: &mut [u8], out: &mut [Sample]) -> usize {
    let session = &mut case.session;
    session.start_cycle();
    session.poll_transmit(0, buf).unwrap();
    let sequence = SEQUENCE_AT..SEQUENCE_AT + 2;
    case.frame[sequence.clone()].copy_from_slice(&buf[sequence]);
    let received = session.receive(&case.frame, 1, out).unwrap();
    received.samples
}

/// `EipClient::parse_multiple_service_response` and
/// `parse_individual_reply` of rust-ethernet-ip 1.2.1, their checks and
/// allocations kept, their trace logging left out.
fn crate_msp(cip_data: &[u8], expected: usize) -> Vec<Result<PlcValue, &'static str>> {
    assert!(cip_data.len() >= 6, "short Multiple Service Packet");
    let general_status = cip_data[2];
    let num_replies = u16::from_le_bytes([cip_data[4], cip_data[5]]) as usize;
    assert_eq!(general_status, 0, "packet status");
    assert_eq!(num_replies, expected, "reply count");
    let mut reply_offsets = Vec::new();
    let mut offset = 6;
    for _ in 0..num_replies {
        assert!(offset + 2 <= cip_data.len(), "offsets cut");
        let reply_offset = u16::from_le_bytes([cip_data[offset], cip_data[offset + 1]]);
        reply_offsets.push(reply_offset as usize);
        offset += 2;
    }
    let mut results = Vec::new();
    for (i, &reply_offset) in reply_offsets.iter().enumerate() {
        let reply_start = 4 + reply_offset;
        if reply_start >= cip_data.len() {
            results.push(Err("reply offset beyond CIP data"));
            continue;
        }
        let reply_end = if i + 1 < reply_offsets.len() {
            4 + reply_offsets[i + 1]
        } else {
            cip_data.len()
        };
        if reply_end > cip_data.len() || reply_start >= reply_end {
            results.push(Err("invalid reply boundaries"));
            continue;
        }
        results.push(crate_reply(&cip_data[reply_start..reply_end]));
    }
    results
}

fn crate_reply(reply_data: &[u8]) -> Result<PlcValue, &'static str> {
    if reply_data.len() < 4 {
        return Err("reply too short");
    }
    if reply_data[2] != 0 {
        return Err("CIP error");
    }
    if reply_data.len() < 6 {
        return Err("read reply too short for data");
    }
    let data = &reply_data[4..];
    let data_type = u16::from_le_bytes([data[0], data[1]]);
    decode_payload(data_type, &data[2..]).map_err(|_| "payload")
}

fn crate_frame(case: &Case, values: &mut [f64]) -> usize {
    let mut bytes = &case.frame[..];
    let header = EncapsulationHeader::decode(&mut bytes).unwrap();
    assert_eq!(header.status, 0);
    assert_eq!(usize::from(header.length), bytes.len());
    let send_data = SendDataRequest::decode(&mut bytes).unwrap();
    let item = send_data
        .items
        .into_iter()
        .find(|item| item.type_id == 0x00B1)
        .expect("connected data item");
    // After the sequence count, copied out as `extract_cip_from_response`
    // copies the CIP bytes it returns.
    let cip_data = item.data[2..].to_vec();
    let results = crate_msp(&cip_data, case.tags);
    for (slot, result) in values.iter_mut().zip(results) {
        *slot = match result.unwrap() {
            PlcValue::Dint(v) => f64::from(v),
            PlcValue::Real(v) => f64::from(v),
            _ => unreachable!("the bench serves DINT and REAL tags"),
        };
    }
    case.tags
}

fn bench(c: &mut Criterion) {
    let cases = [case("c4002_scalars", 4002), case("c500_scalars", 500)];
    for mut case in cases {
        let mut group = c.benchmark_group(format!("enip_decode/{}", case.name));
        group.throughput(Throughput::Elements(case.tags as u64));
        let mut buf = vec![0u8; case.session.request_bytes_max()];
        let mut out = vec![Sample::default(); case.session.samples_per_frame_max()];
        let tags = case.tags;
        assert_eq!(millrace_frame(&mut case, &mut buf, &mut out), tags);
        let mut values = vec![0f64; tags];
        assert_eq!(crate_frame(&case, &mut values), tags);
        // Both read the same values from the same bytes.
        for (sample, value) in out.iter().zip(&values) {
            assert_eq!(sample.quality(), millrace::Quality::GOOD, "{}", case.name);
            assert_eq!(sample.value_f64(), *value, "{}", case.name);
        }
        eprintln!(
            "enip_decode/{}: {tags} tags, reply frame {} bytes",
            case.name,
            case.frame.len()
        );
        group.bench_function("millrace_session", |b| {
            b.iter(|| black_box(millrace_frame(&mut case, &mut buf, &mut out)))
        });
        group.bench_function("rust_ethernet_ip", |b| {
            b.iter(|| black_box(crate_frame(&case, &mut values)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
