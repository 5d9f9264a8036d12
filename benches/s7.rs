//! Decoding S7 Read Var answers into samples, millrace against the
//! `snap7-client` crate (0.1.7) on the same frames in the same run. The
//! throughput is bytes of item data (the values the PLC sent, not the
//! headers) per second.
//!
//! - `millrace_session`: the driver-facing path per frame, as the reader
//!   runs it: start_cycle, poll_transmit (the Read Var request), the
//!   frame's PDU reference set to the request's, receive (TPKT/COTP
//!   framing, reference match, the whole answer checked, every tag decoded
//!   into the sample slice). The usual answer (every item good) goes
//!   through the request's decode program (src/protocol/s7/program.rs),
//!   its runs packed three values a record (src/packed.rs), as the reader's
//!   ring takes them.
//! - `millrace_session_plain`: the same with one record a sample (what a
//!   session writes unless told to pack).
//! - `millrace_per_item`: the same with the session made to decode every
//!   answer through the per-item path (`decode_per_item_only`), the path
//!   an answer with an item error or an unusual transport size takes.
//! - `snap7_client`: the steps its `S7Client::read_multi_vars` takes on an
//!   answer, through its public `proto` module: the TPKT payload into a
//!   `Bytes` (its client reads it into a fresh `Vec`), the COTP DT header,
//!   `S7Header::decode`, the function + count skipped, then
//!   `ReadVarResponse::decode` into `Vec<DataItem>`; then each tag's value
//!   taken from its item's bytes into an `f64` slot (what a caller of
//!   read_multi_vars has to do to get samples). No socket on either side.
//!
//! Cases: `pdu240_reals` (one item of 55 REALs: an S7-1200's 240-byte
//! PDU, full), `pdu960_mixed` (24 items of INT, DINT, REAL and WORD runs
//! in six DBs: an S7-1500's 960-byte PDU).
//!
//! Run: cargo bench --bench s7 -- --measurement-time 3 --warm-up-time 1

use bytes::{Buf, Bytes};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use millrace::config::{S7Area, S7Type};
use millrace::protocol::s7::fuzz::{s7_device, s7_tag, FakePlc};
use millrace::protocol::s7::S7Session;
use millrace::protocol::Session;
use millrace::{Sample, TagId};
use snap7_client::proto::s7::header::S7Header;
use snap7_client::proto::s7::read_var::ReadVarResponse;

struct Case {
    name: &'static str,
    session: S7Session,
    /// The same session writing one record a sample.
    plain: S7Session,
    /// The same session decoding through the per-item path.
    per_item: S7Session,
    frame: Vec<u8>,
    /// Per tag: (item index, offset in the item, type) for the baseline.
    layout: Vec<(usize, usize, S7Type)>,
    item_count: usize,
    item_bytes: usize,
}

fn case(name: &'static str, pdu: u16, runs: &[(u16, u32, S7Type, u32)]) -> Case {
    let mut tags = Vec::new();
    let mut areas: Vec<(u8, u16, Vec<u8>)> = Vec::new();
    for &(db, start, data_type, count) in runs {
        let size = data_type.byte_size();
        for i in 0..count {
            let name = format!("db{db}.{}", start + i * size);
            tags.push(s7_tag(
                &name,
                S7Area::Db(db),
                start + i * size,
                0,
                data_type,
            ));
        }
        // One area per DB, as long as its furthest run (a second area of
        // the same DB would never be reached: the PLC answers 0x05).
        let bytes = (start + count * size) as usize;
        match areas.iter_mut().find(|(_, n, _)| *n == db) {
            Some((_, _, data)) if data.len() >= bytes => {}
            Some((_, _, data)) => *data = (0..bytes).map(|b| (b * 13 + 5) as u8).collect(),
            None => areas.push((
                0x84,
                db,
                (0..bytes).map(|b| (b * 13 + 5) as u8).collect::<Vec<u8>>(),
            )),
        }
    }
    let device = s7_device(name, "127.0.0.1:102", pdu, tags);
    let mut session = S7Session::for_device(&device, TagId(0)).expect("plan");
    assert_eq!(
        session.requests_per_cycle(),
        1,
        "{name}: one request per cycle"
    );
    let plc = FakePlc::new(pdu, areas);
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    session.on_connected(0);
    while let Some(n) = session.poll_transmit(0, &mut buf) {
        let answer = plc.answer(&buf[..n]);
        session.receive(&answer, 1, &mut out).expect("handshake");
    }
    assert!(session.is_ready());
    session.start_cycle();
    let n = session.poll_transmit(0, &mut buf).unwrap();
    let frame = plc.answer(&buf[..n]);
    session.receive(&frame, 1, &mut out).expect("first answer");
    let request = &session.plan().requests[0];
    let mut layout = Vec::new();
    for (index, piece) in request.pieces.iter().enumerate() {
        for &(tag, offset) in &piece.inside {
            let t = &session.plan().tags[tag as usize];
            layout.push((index, usize::from(offset), t.data_type));
        }
    }
    let item_bytes = request
        .pieces
        .iter()
        .map(|p| usize::from(p.item.count))
        .sum();
    let mut per_item = session.clone();
    per_item.decode_per_item_only();
    let item_count = request.pieces.len();
    let plain = session.clone();
    session.pack_runs();
    Case {
        name,
        plain,
        per_item,
        item_count,
        session,
        frame,
        layout,
        item_bytes,
    }
}

fn millrace_frame(case: &mut Case, buf: &mut [u8], out: &mut [Sample]) -> usize {
    session_frame(&mut case.session, &mut case.frame, buf, out)
}

fn session_frame(
    session: &mut S7Session,
    frame: &mut [u8],
    buf: &mut [u8],
    out: &mut [Sample],
) -> usize {
    session.start_cycle();
    session.poll_transmit(0, buf).unwrap();
    // The request's PDU reference (S7 header bytes 4-5 after TPKT + COTP).
    frame[11..13].copy_from_slice(&buf[11..13]);
    let received = session.receive(frame, 1, out).unwrap();
    millrace::packed::members_in(&out[..received.samples])
}

fn snap7_value(data: &[u8], offset: usize, data_type: S7Type) -> f64 {
    match data_type {
        S7Type::Int => i16::from_be_bytes([data[offset], data[offset + 1]]) as f64,
        S7Type::Word => u16::from_be_bytes([data[offset], data[offset + 1]]) as f64,
        S7Type::DInt => i32::from_be_bytes(data[offset..offset + 4].try_into().unwrap()) as f64,
        S7Type::Real => f32::from_be_bytes(data[offset..offset + 4].try_into().unwrap()) as f64,
        _ => unreachable!(),
    }
}

fn snap7_frame(case: &Case, values: &mut [f64]) -> usize {
    // TPKT: the client reads the 4-byte header, then the payload into a
    // fresh Vec that becomes its Bytes.
    let mut b = Bytes::from(case.frame[4..].to_vec());
    let _li = b.get_u8();
    assert_eq!(b.get_u8(), 0xF0);
    b.advance(1);
    let header = S7Header::decode(&mut b).unwrap();
    assert_eq!(header.error_class, Some(0));
    b.advance(2);
    let response = ReadVarResponse::decode(&mut b, case.item_count).unwrap();
    let mut items: Vec<Bytes> = vec![Bytes::new(); case.item_count];
    for (slot, item) in items.iter_mut().zip(response.items) {
        assert_eq!(item.return_code, 0xFF);
        *slot = item.data;
    }
    for (value, &(item, offset, data_type)) in values.iter_mut().zip(&case.layout) {
        *value = snap7_value(&items[item], offset, data_type);
    }
    case.layout.len()
}

fn bench(c: &mut Criterion) {
    let cases = [
        case("pdu240_reals", 240, &[(1, 0, S7Type::Real, 55)]),
        case(
            "pdu960_mixed",
            960,
            &[
                (10, 0, S7Type::Int, 40),
                (10, 100, S7Type::Real, 20),
                (11, 0, S7Type::DInt, 30),
                (11, 200, S7Type::Word, 20),
                (12, 0, S7Type::Real, 40),
                (12, 400, S7Type::Int, 10),
                (13, 0, S7Type::Int, 30),
                (13, 80, S7Type::DInt, 10),
                (14, 0, S7Type::Word, 15),
                (14, 64, S7Type::Real, 15),
                (15, 0, S7Type::DInt, 10),
                (15, 50, S7Type::Int, 6),
            ],
        ),
    ];
    for mut case in cases {
        let mut group = c.benchmark_group(format!("s7_decode/{}", case.name));
        group.throughput(Throughput::Bytes(case.item_bytes as u64));
        let mut buf = vec![0u8; case.session.request_bytes_max()];
        let mut out = vec![Sample::default(); case.session.samples_per_frame_max()];
        let tags = case.layout.len();
        assert_eq!(millrace_frame(&mut case, &mut buf, &mut out), tags);
        let mut packed = out.clone();
        out.clear();
        millrace::packed::unpack_into(&packed, &mut out);
        out.truncate(tags);
        out.resize(packed.len(), Sample::default());
        let mut values = vec![0f64; tags];
        assert_eq!(snap7_frame(&case, &mut values), tags);
        // Both read the same values, and both of millrace's paths the same
        // records.
        for (sample, value) in out.iter().zip(&values) {
            assert_eq!(sample.value_f64(), *value, "{}", case.name);
        }
        let mut per_item_out = out.clone();
        let per_item = session_frame(
            &mut case.per_item,
            &mut case.frame,
            &mut buf,
            &mut per_item_out,
        );
        assert_eq!(per_item, tags);
        assert_eq!(per_item_out, out, "{}", case.name);
        let mut plain_out = out.clone();
        let plain = session_frame(&mut case.plain, &mut case.frame, &mut buf, &mut plain_out);
        assert_eq!((plain, &plain_out), (tags, &out), "{}", case.name);
        group.bench_function("millrace_session", |b| {
            b.iter(|| black_box(millrace_frame(&mut case, &mut buf, &mut packed)))
        });
        group.bench_function("millrace_session_plain", |b| {
            b.iter(|| {
                let (session, frame) = (&mut case.plain, &mut case.frame);
                black_box(session_frame(session, frame, &mut buf, &mut out))
            })
        });
        group.bench_function("millrace_per_item", |b| {
            b.iter(|| {
                let (session, frame) = (&mut case.per_item, &mut case.frame);
                black_box(session_frame(session, frame, &mut buf, &mut out))
            })
        });
        group.bench_function("snap7_client", |b| {
            b.iter(|| black_box(snap7_frame(&case, &mut values)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
