//! Fuzz entry points, shared by the cargo-fuzz targets (fuzz/fuzz_targets/
//! s7_*.rs) and the corpus replay (tests/s7_fuzz_corpus.rs), plus the small
//! in-memory PLC (`FakePlc`) that made the seeds and that the session
//! tests and the bench answer requests with. They panic only when an
//! invariant breaks, never because of the input.

use std::time::Duration;

use crate::config::{
    DeviceConfig, DriverConfig, Protocol, S7Area, S7ConnectionType, S7Device, S7Tag, S7Type,
};
use crate::protocol::session::{Received, Session};
use crate::sample::{record_span, Quality, Sample, Source, TagId};

use super::error::S7Error;
use super::session::{ReceiveError, S7Session};
use super::wire::{self, Tpdu};

pub const FUZZ_TAG_FIRST: u32 = 1000;

/// An S7 tag with no scaling.
pub fn s7_tag(name: &str, area: S7Area, byte: u32, bit: u8, data_type: S7Type) -> S7Tag {
    S7Tag {
        name: name.to_string(),
        area,
        byte,
        bit,
        data_type,
        scale: 1.0,
        offset: 0.0,
    }
}

/// An S7 device at `address` with rack 0 slot 1 (S7-1200/1500), one
/// request in flight, no holes.
pub fn s7_device(name: &str, address: &str, pdu_size: u16, tags: Vec<S7Tag>) -> DeviceConfig {
    DeviceConfig {
        name: name.to_string(),
        protocol: Protocol::S7,
        address: address.to_string(),
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_secs(1),
        max_inflight: 1,
        driver: DriverConfig::S7(S7Device {
            rack: 0,
            slot: 1,
            connection_type: S7ConnectionType::Pg,
            pdu_size,
            local_tsap: 0x0100,
            remote_tsap: None,
            max_hole: 0,
            tags,
        }),
    }
}

/// The fuzz device: every type, in DB1 (contiguous 0..=70 with a
/// STRING[40] and a WSTRING[10]), bools in M, an INT in I and Q, and DB2
/// far apart. Planned for a 240-byte PDU; a smaller grant cuts the DB1 run
/// between tags (every tag fits the 46 bytes one item carries at 64, so
/// none is torn; an oversize tag is exercised in session_tests.rs). Two
/// requests in flight.
pub fn fuzz_device() -> DeviceConfig {
    use S7Type::*;
    let db1 = S7Area::Db(1);
    let mut tags = vec![
        s7_tag("b", db1, 0, 0, Byte),
        s7_tag("x3", db1, 1, 3, Bool),
        s7_tag("w", db1, 2, 0, Word),
        s7_tag("i", db1, 4, 0, Int),
        s7_tag("di", db1, 6, 0, DInt),
        s7_tag("r", db1, 10, 0, Real),
        s7_tag("lr", db1, 14, 0, LReal),
        s7_tag("dt", db1, 22, 0, DateAndTime),
        s7_tag("dtl", db1, 30, 0, Dtl),
        s7_tag("s", db1, 42, 0, String(40)),
        s7_tag("ws", db1, 84, 0, WString(10)),
        s7_tag("s5", db1, 108, 0, S5Time),
        s7_tag("t", db1, 110, 0, Time),
        s7_tag("c", db1, 114, 0, Char),
        s7_tag("si", db1, 115, 0, SInt),
        s7_tag("ui", db1, 116, 0, UInt),
        s7_tag("udi", db1, 118, 0, UDInt),
        s7_tag("li", db1, 122, 0, LInt),
        s7_tag("uli", db1, 130, 0, ULInt),
        s7_tag("dw", db1, 138, 0, DWord),
        s7_tag("us", db1, 142, 0, USInt),
        s7_tag("m0", S7Area::Merker, 0, 0, Bool),
        s7_tag("m7", S7Area::Merker, 0, 7, Bool),
        s7_tag("in", S7Area::Inputs, 2, 0, Int),
        s7_tag("out", S7Area::Outputs, 4, 0, Int),
        s7_tag("far", S7Area::Db(2), 500, 0, Real),
    ];
    if let Some(t) = tags.iter_mut().find(|t| t.name == "r") {
        (t.scale, t.offset) = (2.0, 1.0);
    }
    let mut device = s7_device("fuzz", "127.0.0.1:102", 240, tags);
    device.max_inflight = 2;
    device.timeout = Duration::from_millis(1);
    device
}

/// A small in-memory S7 server: answers a connect request, Setup
/// Communication and Read Var from its areas, the way a CPU does (error
/// items `rc 00 0000`, fill bytes between odd items). For tests, seeds and
/// benches; the independent peers are python-snap7 2.1.0 and 3.3.0.
#[derive(Clone, Debug, Default)]
pub struct FakePlc {
    /// PDU granted at most.
    pub pdu: u16,
    /// Parallel jobs granted.
    pub amq: u16,
    /// (area code, DB number, bytes from 0).
    pub areas: Vec<(u8, u16, Vec<u8>)>,
    /// Answer only this many items of a request (Snap7 truncates to 20).
    pub items_cap: Option<usize>,
    /// Answer every read with this header error class and code.
    pub header_error: Option<(u8, u8)>,
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([
        bytes.get(at).copied().unwrap_or(0),
        bytes.get(at + 1).copied().unwrap_or(0),
    ])
}

fn packet(s7: &[u8]) -> Vec<u8> {
    let mut out = vec![3, 0];
    out.extend_from_slice(&((s7.len() + 7) as u16).to_be_bytes());
    out.extend_from_slice(&[2, 0xF0, 0x80]);
    out.extend_from_slice(s7);
    out
}

fn ack_data(pdu_ref: u16, class_code: (u8, u8), params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut s7 = vec![0x32, 3, 0, 0];
    s7.extend_from_slice(&pdu_ref.to_be_bytes());
    s7.extend_from_slice(&(params.len() as u16).to_be_bytes());
    s7.extend_from_slice(&(data.len() as u16).to_be_bytes());
    s7.extend_from_slice(&[class_code.0, class_code.1]);
    s7.extend_from_slice(params);
    s7.extend_from_slice(data);
    packet(&s7)
}

impl FakePlc {
    /// A PLC granting `pdu` and one job, with these areas.
    pub fn new(pdu: u16, areas: Vec<(u8, u16, Vec<u8>)>) -> Self {
        FakePlc {
            pdu,
            amq: 1,
            areas,
            ..FakePlc::default()
        }
    }

    /// The answer to one request packet (empty when it expects none).
    pub fn answer(&self, request: &[u8]) -> Vec<u8> {
        match request.get(5) {
            Some(0xE0) => {
                let mut cc = vec![3, 0, 0, 22, 17, 0xD0, 0, 1, 0, 2, 0, 0xC0, 1, 0x0A];
                cc.extend_from_slice(&[0xC1, 2, 1, 0, 0xC2, 2, 1, 1]);
                return cc;
            }
            Some(0xF0) => {}
            _ => return Vec::new(),
        }
        let s7 = request.get(7..).unwrap_or_default();
        let pdu_ref = be16(s7, 4);
        let params = s7.get(10..).unwrap_or_default();
        match params.first() {
            Some(0xF0) => {
                let asked = be16(params, 6);
                let mut p = vec![0xF0, 0];
                p.extend_from_slice(&self.amq.to_be_bytes());
                p.extend_from_slice(&self.amq.to_be_bytes());
                p.extend_from_slice(&asked.min(self.pdu).to_be_bytes());
                ack_data(pdu_ref, (0, 0), &p, &[])
            }
            Some(0x04) => self.read_var(pdu_ref, params),
            _ => Vec::new(),
        }
    }

    fn read_var(&self, pdu_ref: u16, params: &[u8]) -> Vec<u8> {
        if let Some(error) = self.header_error {
            let mut s7 = vec![0x32, 2, 0, 0];
            s7.extend_from_slice(&pdu_ref.to_be_bytes());
            s7.extend_from_slice(&[0, 0, 0, 0, error.0, error.1]);
            return packet(&s7);
        }
        let asked = usize::from(params.get(1).copied().unwrap_or(0));
        let count = self.items_cap.map_or(asked, |cap| asked.min(cap));
        let mut data = Vec::new();
        for index in 0..count {
            let item = params
                .get(2 + 12 * index..14 + 12 * index)
                .unwrap_or_default();
            let bytes = usize::from(be16(item, 4));
            let db = be16(item, 6);
            let area = item.get(8).copied().unwrap_or(0);
            let address = u32::from_be_bytes([
                0,
                item.get(9).copied().unwrap_or(0),
                item.get(10).copied().unwrap_or(0),
                item.get(11).copied().unwrap_or(0),
            ]);
            let start = (address >> 3) as usize;
            let found = self
                .areas
                .iter()
                .find(|(a, d, _)| *a == area && (*d == db || area != 0x84));
            match found.map(|(_, _, m)| m.get(start..start + bytes)) {
                Some(Some(value)) => {
                    data.extend_from_slice(&[0xFF, 4]);
                    data.extend_from_slice(&((bytes * 8) as u16).to_be_bytes());
                    data.extend_from_slice(value);
                    if bytes % 2 == 1 && index + 1 < count {
                        data.push(0);
                    }
                }
                Some(None) => data.extend_from_slice(&[0x05, 0, 0, 0]),
                None => data.extend_from_slice(&[0x0A, 0, 0, 0]),
            }
        }
        ack_data(pdu_ref, (0, 0), &[0x04, count as u8], &data)
    }
}

/// The memory of the fuzz device's areas, with valid text and dates.
pub fn fuzz_areas() -> Vec<(u8, u16, Vec<u8>)> {
    let mut db1: Vec<u8> = (0..150u32).map(|i| (i * 7 + 1) as u8).collect();
    let mut put = |at: usize, bytes: &[u8]| {
        if let Some(target) = db1.get_mut(at..at + bytes.len()) {
            target.copy_from_slice(bytes);
        }
    };
    put(22, &[0x24, 0x03, 0x15, 0x13, 0x45, 0x30, 0x12, 0x35]);
    put(30, &[0x07, 0xE8, 3, 15, 5, 13, 45, 30, 0, 0, 0x30, 0x39]);
    let mut s = vec![40, 11];
    s.extend_from_slice(b"hello world");
    put(42, &s);
    let mut ws = vec![0, 10, 0, 3, 0, b'a', 0x00, 0xE9, 0x4E, 0x2D];
    ws.truncate(10);
    put(84, &ws);
    put(108, &[0x21, 0x23]);
    let mut db2 = vec![0u8; 504];
    if let Some(t) = db2.get_mut(500..504) {
        t.copy_from_slice(&1.5f32.to_be_bytes());
    }
    vec![
        (0x84, 1, db1),
        (0x84, 2, db2),
        (0x83, 0, vec![0b1000_0001; 4]),
        (0x81, 0, vec![0, 0, 0x12, 0x34]),
        (0x82, 0, vec![0, 0, 0, 0, 0xFF, 0xFE]),
    ]
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
    pub ready: usize,
    pub good_samples: usize,
    pub device_samples: usize,
    pub errors: usize,
    pub cycles: usize,
}

/// A session and its reference twin, which decodes every answer through
/// the per-item path (`S7Session::decode_per_item_only`), driven in
/// lockstep: every call must give both the same result and the same
/// records, so a decode program that differs from the per-item path in
/// any record, quality, error or notice panics here. A third twin packs
/// its runs (`packed.rs`, as the reader's sessions do): its records must
/// unpack to the session's, with the same outcome of every call.
#[derive(Clone, Debug)]
pub struct Lockstep {
    pub session: S7Session,
    reference: S7Session,
    /// The reference's sample slice, as long as the caller's.
    reference_out: Vec<Sample>,
    packed: S7Session,
    packed_out: Vec<Sample>,
}

impl Lockstep {
    pub fn new(session: S7Session) -> Self {
        let mut reference = session.clone();
        reference.decode_per_item_only();
        let mut packed = session.clone();
        packed.pack_runs();
        Lockstep {
            session,
            reference,
            reference_out: Vec::new(),
            packed,
            packed_out: Vec::new(),
        }
    }

    /// Runs `call` on the packing twin with a slice as long as `out`; its
    /// records (the first `written(&result)`) must unpack to `out`'s first
    /// `expected`.
    fn packed_twin<R>(
        &mut self,
        out: &[Sample],
        expected: usize,
        call: impl FnOnce(&mut S7Session, &mut [Sample]) -> R,
        written: impl FnOnce(&R) -> usize,
    ) -> R {
        let packed_out = sized(&mut self.packed_out, out.len());
        let result = call(&mut self.packed, packed_out);
        let mut unpacked = Vec::new();
        let records = packed_out.get(..written(&result)).unwrap_or_default();
        crate::packed::unpack_into(records, &mut unpacked);
        assert_eq!(
            Some(&unpacked[..]),
            out.get(..expected),
            "the packed records do not unpack to the plain ones"
        );
        result
    }

    fn same_records(&self, out: &[Sample], written: usize) {
        assert_eq!(
            out.get(..written),
            self.reference_out.get(..written),
            "the decode program and the per-item path wrote different records"
        );
        assert_eq!(self.session.is_ready(), self.reference.is_ready());
        assert_eq!(self.session.cycle_sent(), self.reference.cycle_sent());
        assert_eq!(
            self.session.inflight_count(),
            self.reference.inflight_count()
        );
        assert_eq!(
            self.session.device_bad_samples(),
            self.reference.device_bad_samples()
        );
    }

    pub fn on_connected(&mut self, now_ns: u64) {
        self.session.on_connected(now_ns);
        self.reference.on_connected(now_ns);
        self.packed.on_connected(now_ns);
    }

    pub fn start_cycle(&mut self) {
        self.session.start_cycle();
        self.reference.start_cycle();
        self.packed.start_cycle();
    }

    /// Both must send the same bytes.
    pub fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let sent = self.session.poll_transmit(now_ns, buf);
        let mut reference_buf = vec![0u8; buf.len()];
        let reference_sent = self.reference.poll_transmit(now_ns, &mut reference_buf);
        assert_eq!(sent, reference_sent);
        assert_eq!(self.packed.poll_transmit(now_ns, &mut reference_buf), sent);
        let len = sent.unwrap_or(0);
        assert_eq!(
            buf.get(..len),
            reference_buf.get(..len),
            "different requests"
        );
        sent
    }

    pub fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError> {
        let got = self.session.receive(chunk, ts_ns, out);
        let reference_out = sized(&mut self.reference_out, out.len());
        let want = self.reference.receive(chunk, ts_ns, reference_out);
        assert_eq!(
            got, want,
            "the decode program and the per-item path disagree"
        );
        let written = match got {
            Ok(received) => received.samples,
            Err(error) => error.samples,
        };
        self.same_records(out, written);
        let packed = self.packed_twin(
            out,
            written,
            |s, o| s.receive(chunk, ts_ns, o),
            |r| r.map_or_else(|e| e.samples, |r| r.samples),
        );
        let outcome =
            |r: Result<Received, ReceiveError>| r.map(|r| r.consumed).map_err(|e| e.error);
        assert_eq!(outcome(packed), outcome(got), "the packed twin disagrees");
        got
    }

    pub fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, S7Error> {
        let got = self.session.handle_timeout(now_ns, ts_ns, out);
        let reference_out = sized(&mut self.reference_out, out.len());
        let want = self.reference.handle_timeout(now_ns, ts_ns, reference_out);
        assert_eq!(got, want);
        let written = got.unwrap_or(0);
        self.same_records(out, written);
        let packed = self.packed_twin(
            out,
            written,
            |s, o| s.handle_timeout(now_ns, ts_ns, o),
            |r| r.unwrap_or(0),
        );
        assert_eq!(packed, got);
        got
    }

    pub fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        let written = self.session.disconnect(ts_ns, out);
        let reference_out = sized(&mut self.reference_out, out.len());
        assert_eq!(written, self.reference.disconnect(ts_ns, reference_out));
        self.same_records(out, written);
        let packed = self.packed_twin(out, written, |s, o| s.disconnect(ts_ns, o), |&n| n);
        assert_eq!(packed, written);
        written
    }

    pub fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
        let written = self.session.fail_unsent(quality, ts_ns, out);
        let reference_out = sized(&mut self.reference_out, out.len());
        let want = self.reference.fail_unsent(quality, ts_ns, reference_out);
        assert_eq!(written, want);
        self.same_records(out, written);
        let packed = self.packed_twin(
            out,
            written,
            |s, o| s.fail_unsent(quality, ts_ns, o),
            |&n| n,
        );
        assert_eq!(packed, written);
        written
    }

    /// Both raised the same notices, in the same order.
    pub fn same_notices(&mut self) {
        // Each round pops a notice from a queue of at most NOTICES_QUEUED_MAX.
        for _ in 0..=super::limits::NOTICES_QUEUED_MAX {
            let notice = self.session.poll_notice();
            assert_eq!(notice, self.reference.poll_notice());
            assert_eq!(notice, self.packed.poll_notice());
            if notice.is_none() {
                break;
            }
        }
    }
}

/// The reference's slice for a call on a slice of `len`.
fn sized(samples: &mut Vec<Sample>, len: usize) -> &mut [Sample] {
    samples.resize(len, Sample::default());
    samples
}

/// The session over fuzz bytes as the PLC's side of the stream. `data[0]`
/// seeds the chunking; the stream follows. The session runs as the reader
/// drives it: handshake, cycles when nothing is in flight, a timeout now
/// and then, a disconnect and reconnect after every error. Checks: every
/// record belongs to the device, text records hold together, every cycle
/// ends in exactly `cycle_samples` records, and the decode programs write
/// what the per-item path writes (`Lockstep`).
pub fn fuzz_session(data: &[u8]) -> SessionRun {
    let mut run = SessionRun::default();
    let Some((&seed, stream)) = data.split_first() else {
        return run;
    };
    let device = fuzz_device();
    let tag_count = device.tag_count() as u32;
    let Ok(session) = S7Session::for_device(&device, TagId(FUZZ_TAG_FIRST)) else {
        panic!("the fuzz device plans");
    };
    let cycle = session.cycle_samples();
    let mut out = vec![Sample::default(); 4 * session.samples_per_frame_max()];
    let mut request = vec![0u8; session.request_bytes_max()];
    let mut session = Lockstep::new(session);
    let mut chunks = Chunks::new(seed);
    let mut rest = stream;
    let mut now_ns = 0u64;
    let mut cycle_records = 0usize;
    let mut in_cycle = false;
    session.on_connected(now_ns);
    while !rest.is_empty() {
        while let Some(len) = session.poll_transmit(now_ns, &mut request) {
            assert!(len <= session.session.request_bytes_max());
            check_request(request.get(..len).unwrap_or_default());
        }
        let ready = &session.session;
        if ready.is_ready() && ready.cycle_sent() && ready.inflight_count() == 0 {
            if in_cycle {
                assert_eq!(
                    cycle_records, cycle,
                    "a cycle ended in the wrong record count"
                );
                run.cycles += 1;
            }
            session.start_cycle();
            (cycle_records, in_cycle) = (0, true);
            continue;
        }
        let (chunk, tail) = rest.split_at(chunks.next_len().min(rest.len()));
        rest = tail;
        now_ns += 1_000;
        let mut input = chunk;
        // Each round consumes bytes or ends with an error.
        for _ in 0..=chunk.len() {
            if input.is_empty() {
                break;
            }
            match session.receive(input, 7, &mut out) {
                Ok(received) => {
                    cycle_records += run.count(&out, received.samples, tag_count);
                    input = input.get(received.consumed..).unwrap_or_default();
                    if session.session.is_ready() && run.ready == 0 {
                        run.ready = 1;
                    }
                }
                Err(error) => {
                    run.errors += 1;
                    cycle_records += run.count(&out, error.samples, tag_count);
                    cycle_records += end_connection(&mut session, &mut out, tag_count, &mut run);
                    if in_cycle {
                        assert_eq!(cycle_records, cycle, "a dropped cycle lost records");
                        in_cycle = false;
                    }
                    session.on_connected(now_ns);
                    break;
                }
            }
        }
        if now_ns % 64_000 == 0 {
            match session.handle_timeout(now_ns, 7, &mut out) {
                Ok(written) => cycle_records += run.count(&out, written, tag_count),
                Err(_) => {
                    run.errors += 1;
                    cycle_records += end_connection(&mut session, &mut out, tag_count, &mut run);
                    if in_cycle {
                        assert_eq!(cycle_records, cycle);
                        in_cycle = false;
                    }
                    session.on_connected(now_ns);
                }
            }
        }
        session.same_notices();
    }
    run
}

/// As the reader does after an error: `disconnect` and `fail_unsent` until
/// they write nothing.
fn end_connection(
    session: &mut Lockstep,
    out: &mut [Sample],
    tags: u32,
    run: &mut SessionRun,
) -> usize {
    let mut records = 0;
    for _ in 0..1024 {
        let written = session.disconnect(7, out);
        records += run.count(out, written, tags);
        if written == 0 {
            break;
        }
    }
    for _ in 0..1024 {
        let written = session.fail_unsent(Quality::NO_CONNECTION, 7, out);
        records += run.count(out, written, tags);
        if written == 0 {
            break;
        }
    }
    assert_eq!(session.session.inflight_count(), 0);
    records
}

/// A request must be one of the three messages the client may send.
fn check_request(bytes: &[u8]) {
    match wire::parse_tpdu(bytes) {
        Ok(Tpdu::Data(s7)) => {
            assert_eq!(s7.get(..2), Some(&[0x32, 1][..]), "a job");
            let function = s7.get(10).copied();
            assert!(matches!(function, Some(0xF0 | 0x04)), "setup or read var");
        }
        _ => assert_eq!(bytes.get(5), Some(&0xE0), "a connect request"),
    }
}

impl SessionRun {
    fn count(&mut self, out: &[Sample], written: usize, tags: u32) -> usize {
        let Some(samples) = out.get(..written) else {
            panic!("more samples reported than the slice holds");
        };
        let mut at = 0;
        while let Some(rest) = samples.get(at..) {
            let Some(sample) = rest.first() else {
                break;
            };
            let tag = sample.tag_id().0;
            assert!(tag >= FUZZ_TAG_FIRST && tag < FUZZ_TAG_FIRST + tags);
            assert_eq!(sample.ts_ns, 7);
            let span = record_span(rest).unwrap_or_else(|e| panic!("broken text records: {e}"));
            let quality = sample.quality();
            if quality == Quality::GOOD {
                self.good_samples += 1;
            } else if matches!(quality.foreign_code(), Some((Source::S7, _))) {
                self.device_samples += 1;
            }
            at += span.max(1);
        }
        written
    }
}

/// Framing and parsing alone: the packets and first error of a stream must
/// not depend on how it is chunked, and parsing a packet never panics.
pub fn fuzz_framers(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = packets(stream, None);
    let chunked = packets(stream, Some(&mut Chunks::new(seed)));
    assert_eq!(whole, chunked);
    for packet in &whole.0 {
        if let Ok(Tpdu::Data(pdu)) = wire::parse_tpdu(packet) {
            if let Ok(ack) = wire::parse_ack(pdu) {
                assert_eq!(
                    ack.params.len() + ack.data.len() + super::limits::S7_ACK_HEADER_BYTES,
                    pdu.len()
                );
                let _ = wire::parse_setup(&ack);
                if let Ok(count) = wire::read_var_count(ack.params, 79) {
                    let mut r = super::reader::Reader::new(ack.data);
                    for index in 0..count {
                        if wire::next_item(&mut r, index, count, 4).is_err() {
                            break;
                        }
                    }
                }
            }
        }
    }
}

type Packets = (Vec<Vec<u8>>, Option<super::S7Error>);

fn packets(stream: &[u8], mut chunks: Option<&mut Chunks>) -> Packets {
    let mut framer = wire::TpktFramer::new();
    let mut out = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let len = chunks
            .as_mut()
            .map_or(rest.len(), |c| c.next_len())
            .min(rest.len());
        let (chunk, tail) = rest.split_at(len);
        rest = tail;
        let mut input = chunk;
        loop {
            match framer.next_packet(&mut input) {
                Ok(Some(p)) => {
                    assert!(p.len() <= super::limits::FRAME_BYTES_MAX);
                    out.push(p.to_vec());
                }
                Ok(None) => break,
                Err(error) => return (out, Some(error)),
            }
        }
        assert!(input.is_empty());
    }
    (out, None)
}

/// The stream a `FakePlc` sends a fresh session of the fuzz device over
/// `cycles` poll cycles (the seeds' source): handshake answers, then every
/// read answered in order. `tweak` may change the PLC.
pub fn seed_stream(plc: &FakePlc, cycles: usize) -> Vec<u8> {
    let device = fuzz_device();
    let Ok(mut session) = S7Session::for_device(&device, TagId(FUZZ_TAG_FIRST)) else {
        panic!("the fuzz device plans");
    };
    let mut out = vec![Sample::default(); 4 * session.samples_per_frame_max()];
    let mut request = vec![0u8; session.request_bytes_max()];
    let mut stream = Vec::new();
    session.on_connected(0);
    let mut done = 0;
    for _ in 0..10_000 {
        if session.is_ready() && session.cycle_sent() && session.inflight_count() == 0 {
            if done == cycles {
                break;
            }
            done += 1;
            session.start_cycle();
        }
        let Some(len) = session.poll_transmit(0, &mut request) else {
            break;
        };
        let answer = plc.answer(request.get(..len).unwrap_or_default());
        stream.extend_from_slice(&answer);
        if session.receive(&answer, 7, &mut out).is_err() {
            break;
        }
    }
    stream
}
