//! Fuzz entry points, shared by the cargo-fuzz targets (fuzz/fuzz_targets/
//! modbus_*.rs) and the corpus-replay test (tests/modbus_fuzz_corpus.rs),
//! so CI replays exactly what the fuzzer ran. They panic only when an
//! invariant breaks, never because of the input.

use std::time::Duration;

use crate::config::{Area, DataType, DeviceConfig, ModbusTag, Protocol, WordOrder};
use crate::sample::{Quality, Sample, Source, TagId, ValueKind};

use super::error::ModbusError;
use super::planner::plan_device;
use super::rtu_framer::RtuFramer;
use super::session::{ModbusSession, SessionConfig, REQUEST_BYTES_MAX};
use super::tcp_framer::MbapFramer;

const FUZZ_TAG_FIRST: u32 = 1000;

fn fuzz_tag(
    name: &str,
    area: Area,
    address: u16,
    data_type: DataType,
    order: WordOrder,
) -> ModbusTag {
    ModbusTag {
        name: name.to_string(),
        area,
        address,
        data_type,
        order,
        bit: None,
        length: 0,
        scale: 1.0,
        offset: 0.0,
    }
}

/// The device the session target polls: every area, every type, one of
/// each order. Requests (and the transaction ids of the first cycle):
/// coils 0..10 (1), discrete 3 (2), input 0..4 (3), holding 0..14 (4). Two
/// cycles are kept in flight (8), so the next cycle's ids are 5..8, and so on.
pub fn fuzz_device(protocol: Protocol) -> DeviceConfig {
    use DataType::*;
    use WordOrder::*;
    let mut tags = vec![
        fuzz_tag("h_u16", Area::Holding, 0, Uint16, Abcd),
        fuzz_tag("h_i16", Area::Holding, 1, Int16, Badc),
        fuzz_tag("h_f32", Area::Holding, 2, Float32, Cdab),
        fuzz_tag("h_i64", Area::Holding, 4, Int64, Dcba),
        fuzz_tag("h_str", Area::Holding, 8, String, Badc),
        fuzz_tag("h_bit", Area::Holding, 11, Bool, Abcd),
        fuzz_tag("h_u32", Area::Holding, 12, Uint32, Abcd),
        fuzz_tag("d_3", Area::Discrete, 3, Bool, Abcd),
        fuzz_tag("i_f64", Area::Input, 0, Float64, Abcd),
    ];
    tags.extend((0..10).map(|i| fuzz_tag(&format!("c{i}"), Area::Coil, i, Bool, Abcd)));
    // Runs the decode program compiles into its tight loops (4 same-typed
    // tags with consecutive ids, back to back), overlapping the tags above
    // so that the requests stay as they were: holding 4..8 byte-swapped
    // uint16, input 0..4 int16.
    tags.extend((0..4).map(|i| fuzz_tag(&format!("hr{i}"), Area::Holding, 4 + i, Uint16, Badc)));
    tags.extend((0..4).map(|i| fuzz_tag(&format!("ir{i}"), Area::Input, i, Int16, Abcd)));
    for tag in &mut tags {
        match tag.name.as_str() {
            "h_str" => tag.length = 5,
            "h_bit" => tag.bit = Some(3),
            "h_u32" => (tag.scale, tag.offset) = (0.5, -1.0),
            _ => {}
        }
    }
    let mut device = DeviceConfig::modbus(
        "fuzz",
        protocol,
        "127.0.0.1:502",
        1,
        Duration::from_millis(100),
        tags,
    );
    device.timeout = Duration::from_micros(100);
    device.max_inflight = 8;
    device
}

/// Chunk sizes from a seed: xorshift, 1..=max.
struct Chunks {
    state: u32,
    max: usize,
}

impl Chunks {
    fn new(seed: u8) -> Self {
        Chunks {
            state: u32::from(seed) | 0x100,
            max: usize::from(seed % 64) + 1,
        }
    }
    fn next_len(&mut self) -> usize {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        (self.state as usize % self.max) + 1
    }
}

/// What a session run saw, so the corpus replay can check that its seeds
/// reach the decoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionRun {
    pub good_samples: usize,
    pub exception_samples: usize,
    pub errors: usize,
}

/// Session over fuzz bytes. `data[0]`: bit 0 picks TCP or RTU framing, bit
/// 1 a connection shared by two units (a gateway's), bit 2 runs packed as
/// the reader has them (`packed.rs`; checked unpacked), the rest seeds the
/// chunking; the stream follows.
pub fn fuzz_session(data: &[u8]) -> SessionRun {
    let mut run = SessionRun::default();
    let Some((&mode, stream)) = data.split_first() else {
        return run;
    };
    let protocol = if mode & 1 == 0 {
        Protocol::ModbusTcp
    } else {
        Protocol::ModbusRtuTcp
    };
    let device = fuzz_device(protocol);
    let tag_count = device.tag_count() as u32;
    let (Some(config), Some(modbus)) = (SessionConfig::from_device(&device), device.modbus_part())
    else {
        panic!("the fuzz device is a Modbus device");
    };
    let plan = || plan_device(modbus, TagId(FUZZ_TAG_FIRST));
    let mut units = vec![(config.unit_id, config.timeout_ns, plan())];
    if mode & 2 != 0 {
        // A gateway's connection: a second unit (the same tags) behind it.
        units.push((
            config.unit_id.wrapping_add(1),
            config.timeout_ns / 2,
            plan(),
        ));
    }
    let Ok(mut session) = ModbusSession::shared(config, units) else {
        panic!("the fuzz device plans valid requests");
    };
    if mode & 4 != 0 {
        crate::protocol::Session::pack_runs(&mut session);
    }
    let mut out = [Sample::default(); 64];
    let mut unpacked = Vec::new();
    let mut check = |samples: Option<&[Sample]>, decode_errors| {
        unpacked.clear();
        crate::packed::unpack_into(
            samples.unwrap_or_else(|| panic!("more samples reported than the slice holds")),
            &mut unpacked,
        );
        check_samples(Some(&unpacked), tag_count, decode_errors);
        let mut run = SessionRun::default();
        run.count(&unpacked);
        run
    };
    let mut request = [0u8; REQUEST_BYTES_MAX];
    let mut chunks = Chunks::new(mode >> 1);
    let mut rest = stream;
    let mut now_ns = 0u64;
    while !rest.is_empty() {
        for _ in 0..2 {
            while let Some(len) = session.poll_transmit(now_ns, &mut request) {
                assert!(len == 12 || len == 8);
            }
            if session.cycle_sent() {
                session.start_cycle();
            }
        }
        let (chunk, tail) = rest.split_at(chunks.next_len().min(rest.len()));
        rest = tail;
        now_ns += 100;
        match session.receive(chunk, 7, &mut out) {
            Ok(received) => {
                assert_eq!(received.consumed, chunk.len());
                run.add(check(out.get(..received.samples), false));
            }
            Err(error) => {
                run.errors += 1;
                // The request whose response broke ends in DecodeError samples.
                run.add(check(out.get(..error.samples), true));
                // As the reader does: `disconnect` writes what fits in `out`
                // and is called again until every request has ended.
                for _ in 0..=super::INFLIGHT_MAX {
                    let written = session.disconnect(7, &mut out);
                    check(out.get(..written), false);
                    if written == 0 {
                        break;
                    }
                }
                assert_eq!(session.inflight_count(), 0);
            }
        }
        if now_ns % 6_400 == 0 {
            let written = session.handle_timeout(now_ns, 7, &mut out);
            check(out.get(..written), false);
        }
    }
    run
}

impl SessionRun {
    fn add(&mut self, other: SessionRun) {
        self.good_samples += other.good_samples;
        self.exception_samples += other.exception_samples;
        self.errors += other.errors;
    }

    fn count(&mut self, samples: &[Sample]) {
        for sample in samples {
            let quality = sample.quality();
            if quality == Quality::GOOD {
                self.good_samples += 1;
            } else if matches!(quality.foreign_code(), Some((Source::Modbus, _))) {
                self.exception_samples += 1;
            }
        }
    }
}

fn check_samples(samples: Option<&[Sample]>, tag_count: u32, decode_errors: bool) -> &[Sample] {
    let Some(samples) = samples else {
        panic!("more samples reported than the slice holds");
    };
    for sample in samples {
        let tag = sample.tag_id().0;
        assert!(tag >= FUZZ_TAG_FIRST && tag < FUZZ_TAG_FIRST + tag_count);
        assert_eq!(sample.ts_ns, 7);
        assert!(sample.kind().is_some_and(|k| k != ValueKind::TextExt));
        assert!(decode_errors || sample.quality() != Quality::DECODE_ERROR);
    }
    samples
}

type Framed = (Vec<(u16, u8, Vec<u8>)>, Option<ModbusError>);

fn frames_tcp(stream: &[u8], chunks: Option<&mut Chunks>) -> Framed {
    let mut framer = MbapFramer::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut chunks = chunks;
    while !rest.is_empty() {
        let len = chunks
            .as_mut()
            .map_or(rest.len(), |c| c.next_len())
            .min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let mut input = chunk;
        loop {
            match framer.next_frame(&mut input) {
                Ok(Some(f)) => {
                    assert!(!f.pdu.is_empty() && f.pdu.len() <= super::limits::PDU_BYTES_MAX);
                    frames.push((f.transaction_id, f.unit_id, f.pdu.to_vec()));
                }
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
        assert!(input.is_empty());
    }
    (frames, None)
}

fn frames_rtu(stream: &[u8], chunks: Option<&mut Chunks>) -> Framed {
    let mut framer = RtuFramer::new();
    let mut frames = Vec::new();
    let mut rest = stream;
    let mut chunks = chunks;
    while !rest.is_empty() {
        let len = chunks
            .as_mut()
            .map_or(rest.len(), |c| c.next_len())
            .min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let mut input = chunk;
        loop {
            match framer.next_frame(&mut input) {
                Ok(Some(f)) => frames.push((0, f.unit_id, f.pdu.to_vec())),
                Ok(None) => break,
                Err(error) => return (frames, Some(error)),
            }
        }
        assert!(input.is_empty());
    }
    (frames, None)
}

/// Framers alone: the frames and the first error of a stream must not
/// depend on how the stream is chunked. `data[0]` seeds the chunking.
pub fn fuzz_framers(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = frames_tcp(stream, None);
    let chunked = frames_tcp(stream, Some(&mut Chunks::new(seed)));
    assert_eq!(whole, chunked);
    let whole = frames_rtu(stream, None);
    let chunked = frames_rtu(stream, Some(&mut Chunks::new(seed)));
    assert_eq!(whole, chunked);
}
