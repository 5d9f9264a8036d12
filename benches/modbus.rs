//! Decoding 125-register function-code-3 responses into samples, millrace
//! against tokio-modbus 0.17 on the same frames in the same run.
//!
//! - `millrace_codec`: MbapFramer + check_response + the request's compiled
//!   DecodeProgram over a buffer of 64 MBAP frames (what the session does
//!   per frame, minus the transaction table), writing one record a sample.
//! - `millrace_codec_packed`: the same, the runs packed (`packed.rs`): a third of
//!   the records, as the reader writes them into its ring.
//! - `millrace_session`: the driver-facing path per frame, as the reader
//!   runs it (runs packed): start_cycle, poll_transmit (request bytes),
//!   receive (framing, transaction match, validation, decoding into the
//!   sample slice).
//! - `tokio_modbus`: tokio-modbus's client codec is crate-private, so this
//!   runs the closest public path, the same steps its `ClientCodec::decode`
//!   takes: its MBAP split on a `BytesMut` (header check, `split_to`,
//!   `freeze`), then the public `Response::try_from(Bytes)` into a fresh
//!   `Vec<u16>`. The `BytesMut` fill is setup, outside the timing.
//!
//! Run: cargo bench --bench modbus -- --measurement-time 3 --warm-up-time 1

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;

use millrace::config::{Area, DataType, WordOrder};
use millrace::protocol::modbus::{
    check_response, DecodeProgram, DevicePlan, Framing, MbapFramer, ModbusSession, Payload,
    PlannedRequest, PlannedTag, ReadRequest, SessionConfig, REQUEST_BYTES_MAX,
};
use millrace::{Sample, TagId};
use tokio_modbus::bytes::{Buf, BytesMut};
use tokio_modbus::Response;

const REGISTERS: u16 = 125;
const FRAMES: usize = 64;
const FRAME_BYTES: usize = 7 + 2 + 2 * REGISTERS as usize;

fn tags(data_type: DataType) -> Vec<PlannedTag> {
    let width = data_type.register_count(0);
    (0..REGISTERS / width)
        .map(|i| PlannedTag {
            tag: TagId(i.into()),
            offset: i * width,
            data_type,
            order: WordOrder::Abcd,
            bit: None,
            length: 0,
            scale: 1.0,
            value_offset: 0.0,
            scaled: false,
        })
        .collect()
}

/// FRAMES responses of 125 registers, transaction ids 1..=FRAMES.
fn frames() -> Vec<u8> {
    let mut stream = Vec::with_capacity(FRAMES * FRAME_BYTES);
    for tid in 1..=FRAMES as u16 {
        stream.extend_from_slice(&tid.to_be_bytes());
        stream.extend_from_slice(&[0, 0]);
        stream.extend_from_slice(&(3 + 2 * REGISTERS).to_be_bytes());
        stream.extend_from_slice(&[1, 3, (2 * REGISTERS) as u8]);
        for r in 0..REGISTERS {
            // Registers of float32 pairs: 1.0 + r in ABCD, good values either way.
            stream.extend_from_slice(&(0x3F80u16 + r * 3 + tid).to_be_bytes());
        }
    }
    assert_eq!(stream.len(), FRAMES * FRAME_BYTES);
    stream
}

fn codec_path(
    stream: &[u8],
    program: &DecodeProgram,
    tags: &[PlannedTag],
    out: &mut [Sample],
    pack: bool,
) -> usize {
    let request = ReadRequest::new(Area::Holding, 0, REGISTERS).unwrap();
    let mut framer = MbapFramer::new();
    let mut input = stream;
    let mut samples = 0;
    while let Ok(Some(frame)) = framer.next_frame(&mut input) {
        let Ok(Payload::Data(data)) = check_response(&request, frame.pdu) else {
            panic!("bad frame")
        };
        let written = program.run(Area::Holding, tags, data, 1, out, pack);
        samples += if pack {
            millrace::packed::members_in(&out[..written])
        } else {
            written
        };
    }
    samples
}

/// tokio-modbus's AduDecoder steps (codec/tcp.rs), then its public PDU decoder.
fn tokio_path(buf: &mut BytesMut) -> usize {
    let mut registers = 0;
    while buf.len() >= 7 {
        let length = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
        assert!(length > 0 && buf.len() >= 6 + length);
        let header = buf.split_to(7);
        assert_eq!(u16::from_be_bytes([header[2], header[3]]), 0);
        let pdu = buf.split_to(length - 1).freeze();
        match Response::try_from(pdu).unwrap() {
            Response::ReadHoldingRegisters(values) => registers += black_box(values).len(),
            other => panic!("{other:?}"),
        }
    }
    assert!(!buf.has_remaining());
    registers
}

fn session_for(tags: Vec<PlannedTag>) -> ModbusSession {
    let request = PlannedRequest {
        area: Area::Holding,
        start: 0,
        quantity: REGISTERS,
        tags,
    };
    let config = SessionConfig {
        unit_id: 1,
        framing: Framing::Tcp,
        timeout_ns: u64::MAX,
        max_inflight: 1,
    };
    ModbusSession::new(
        config,
        DevicePlan {
            requests: vec![request],
        },
    )
    .unwrap()
}

fn bench_type(c: &mut Criterion, name: &str, data_type: DataType) {
    let stream = frames();
    let tags = tags(data_type);
    let mut out = vec![Sample::default(); tags.len()];
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(u64::from(REGISTERS) * FRAMES as u64));

    let program = DecodeProgram::compile(Area::Holding, &tags);
    for pack in [false, true] {
        assert_eq!(
            codec_path(&stream, &program, &tags, &mut out, pack),
            tags.len() * FRAMES
        );
    }
    group.bench_function("millrace_codec", |b| {
        b.iter(|| codec_path(black_box(&stream), &program, &tags, &mut out, false))
    });
    group.bench_function("millrace_codec_packed", |b| {
        b.iter(|| codec_path(black_box(&stream), &program, &tags, &mut out, true))
    });

    let mut session = session_for(tags.clone());
    millrace::protocol::Session::pack_runs(&mut session);
    let mut one = stream[..FRAME_BYTES].to_vec();
    let mut request = [0u8; REQUEST_BYTES_MAX];
    group.bench_function("millrace_session", |b| {
        b.iter(|| {
            let mut samples = 0;
            for _ in 0..FRAMES {
                session.start_cycle();
                let _ = session.poll_transmit(0, &mut request);
                // Answer with the transaction id just sent.
                one[..2].copy_from_slice(&request[..2]);
                let received = session.receive(black_box(&one), 1, &mut out).unwrap();
                samples += millrace::packed::members_in(&out[..received.samples]);
            }
            assert_eq!(samples, tags.len() * FRAMES);
            samples
        })
    });

    group.bench_function("tokio_modbus", |b| {
        b.iter_batched(
            || BytesMut::from(&stream[..]),
            |mut buf| tokio_path(&mut buf),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    bench_type(c, "fc3_125_uint16", DataType::Uint16);
    bench_type(c, "fc3_125_float32_abcd", DataType::Float32);
}

criterion_group!(benches, decode);
criterion_main!(benches);
