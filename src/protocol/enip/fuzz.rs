//! Fuzz entry points, shared by the cargo-fuzz targets (fuzz/fuzz_targets/
//! enip_*.rs) and the corpus replay (tests/enip_fuzz_corpus.rs), so CI
//! replays exactly what the fuzzer ran. They panic only when an invariant
//! breaks, never because of the input.
//!
//! Also the in-memory `Responder` the unit tests and the corpus seeds use:
//! it answers the requests a session sends from a table of tags, with
//! knobs for the servers' quirks (refused Large Forward Open, replies cut
//! at a byte cap, status 0x00 over a failed embedded reply). It is a test
//! fixture for one module, not a server.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::{
    parse_enip_address, CipType, DeviceConfig, DriverConfig, EnipDevice, EnipTag, Protocol,
};
use crate::protocol::session::Session;
use crate::sample::{record_span, Sample, TagId};

use super::cip::{self, parse_request, type_code, MspReplies};
use super::encap::{self, Framer};
use super::limits::{ENCAP_FRAME_BYTES_MAX, STRING_STRUCT_HANDLE};
use super::session::EnipSession;
use super::wire::{Reader, Writer};

pub const FUZZ_TAG_FIRST: u32 = 1000;
/// The originator serial of the fuzz session (fixed: its triad and
/// connection ids are then known to the seeds).
pub const FUZZ_ORIGINATOR_SERIAL: u32 = 0x0BAD_F00D;

fn tag(name: &str, address: &str, data_type: CipType, count: u16) -> EnipTag {
    let Ok(address) = parse_enip_address(address) else {
        panic!("the fuzz device's addresses parse");
    };
    EnipTag {
        count,
        ..EnipTag::new(name, address, data_type)
    }
}

/// Plain DINT scalars at the end of the fuzz device.
const PLAIN_TAGS: usize = 48;

/// The device the session target polls: every type, every shape (bit of
/// an integer, BOOL array, STRING, scaled), an array too large for one
/// reply at its 500-byte connection, and after it a packet of plain values
/// only, which the session decodes through its compiled layout
/// (`layout.rs`) when the reply is the usual one.
pub fn fuzz_device() -> DeviceConfig {
    let mut tags = vec![
        tag("dint", "Counter", CipType::DInt, 1),
        tag("reals", "Program:Main.Temps", CipType::Real, 5),
        tag("flag", "Flags.5", CipType::Bool, 1),
        tag("alarms", "Alarms[3]", CipType::Bool, 40),
        tag("name", "Line.Name", CipType::String, 1),
        tag("lint", "Big", CipType::LInt, 1),
        tag("sint", "S", CipType::SInt, 1),
        tag("usint", "US", CipType::USInt, 2),
        tag("uint", "UI[2,1]", CipType::UInt, 1),
        tag("udint", "UD", CipType::UDInt, 1),
        tag("ulint", "UL", CipType::ULInt, 1),
        tag("lreal", "LR", CipType::LReal, 1),
        tag("bool", "Running", CipType::Bool, 1),
        tag("int", "I", CipType::Int, 3),
        tag("wave", "Wave", CipType::Real, 200),
        tag("zones", "Zones", CipType::DInt, 4),
    ];
    // Enough plain scalars that the last packet holds nothing else.
    tags.extend((0..PLAIN_TAGS).map(|i| tag(&format!("p{i}"), &format!("P{i}"), CipType::DInt, 1)));
    for t in &mut tags {
        if t.name == "lint" {
            (t.scale, t.offset) = (0.5, 1.0);
        }
    }
    DeviceConfig {
        name: "fuzz".into(),
        protocol: Protocol::EthernetIp,
        address: "127.0.0.1:44818".into(),
        poll_interval: Duration::from_millis(100),
        timeout: Duration::from_micros(100),
        max_inflight: 2,
        driver: DriverConfig::EthernetIp(EnipDevice {
            route: vec![],
            connection_size: 500,
            tags,
        }),
    }
}

/// The fuzz device's session (its triad fixed, see `FUZZ_ORIGINATOR_SERIAL`).
pub fn fuzz_session_for(device: &DeviceConfig) -> EnipSession {
    let Some(enip) = device.enip_part() else {
        panic!("the fuzz device is an EtherNet/IP device");
    };
    let config = super::SessionConfig {
        timeout_ns: u64::try_from(device.timeout.as_nanos()).unwrap_or(u64::MAX),
        max_inflight: device.max_inflight as usize,
        connection_size: enip.connection_size,
        route: enip.route.clone(),
        originator_serial: FUZZ_ORIGINATOR_SERIAL,
    };
    match EnipSession::new(config, enip, TagId(FUZZ_TAG_FIRST)) {
        Ok(session) => session,
        Err(e) => panic!("the fuzz device plans: {e}"),
    }
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
            max: usize::from(seed % 64) * 8 + 1,
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
    pub bad_samples: usize,
    pub errors: usize,
    pub cycles: usize,
}

/// The session over fuzz bytes as a device's answers. `data[0]` seeds the
/// chunking (bits 0..6) and the clock (bit 7 set: 50 µs pass per chunk, so
/// requests and handshakes time out; clear: 1 ns, so a transcript replays
/// whole however finely it is cut). The stream follows. As the reader does
/// with a poll interval of zero, a cycle starts as soon as the last one
/// ended, in the middle of a chunk too. Each poll cycle must end in exactly
/// its records, whatever the bytes did (answers, errors, a dropped
/// connection).
pub fn fuzz_session(data: &[u8]) -> SessionRun {
    let mut run = SessionRun::default();
    let Some((&seed, stream)) = data.split_first() else {
        return run;
    };
    let device = fuzz_device();
    let mut h = Harness::new(&device);
    let step_ns = if seed & 0x80 != 0 { 50_000 } else { 1 };
    let mut chunks = Chunks::new(seed & 0x7F);
    let mut rest = stream;
    let mut now_ns = 0u64;
    h.session.on_connected(now_ns);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(chunks.next_len().min(rest.len()));
        rest = tail;
        now_ns += step_ns;
        let mut input = chunk;
        // Each round consumes bytes or ends the connection: bounded by the
        // chunk's length.
        for _ in 0..=chunk.len() {
            h.start_and_send(now_ns, &mut run);
            if input.is_empty() {
                break;
            }
            match h.session.receive(input, 7, &mut h.out) {
                Ok(received) => {
                    h.count(received.samples, &mut run);
                    input = input.get(received.consumed..).unwrap_or_default();
                }
                Err(error) => {
                    run.errors += 1;
                    h.count(error.samples, &mut run);
                    h.reconnect(now_ns, &mut run);
                    break;
                }
            }
            h.end_cycle(&mut run);
        }
        if now_ns % 200_000 == 0 {
            match h.session.handle_timeout(now_ns, 7, &mut h.out) {
                Ok(written) => h.count(written, &mut run),
                // A handshake timed out: the reader drops the connection.
                Err(_) => h.reconnect(now_ns, &mut run),
            }
            h.end_cycle(&mut run);
        }
    }
    run
}

/// The fuzz session and what the reader would hold around it.
struct Harness {
    session: EnipSession,
    out: Vec<Sample>,
    request: Vec<u8>,
    tag_end: u32,
    per_cycle: usize,
    /// Records of the running cycle, if one runs.
    cycle: Option<usize>,
}

impl Harness {
    fn new(device: &DeviceConfig) -> Self {
        let session = fuzz_session_for(device);
        Harness {
            out: vec![Sample::default(); session.samples_per_frame_max().max(64)],
            request: vec![0u8; session.request_bytes_max()],
            tag_end: FUZZ_TAG_FIRST + device.tag_count() as u32,
            per_cycle: session.cycle_samples(),
            cycle: None,
            session,
        }
    }

    /// Starts a cycle when none runs and the session is ready, then sends
    /// what the session has (into the void: the stream is the answers).
    fn start_and_send(&mut self, now_ns: u64, run: &mut SessionRun) {
        self.end_cycle(run);
        if self.session.is_ready() && self.cycle.is_none() {
            self.session.start_cycle();
            self.cycle = Some(0);
        }
        while self
            .session
            .poll_transmit(now_ns, &mut self.request)
            .is_some()
        {}
    }

    /// The first `written` records of `out`: checked, counted, added to
    /// the cycle.
    fn count(&mut self, written: usize, run: &mut SessionRun) {
        run.count(check_records(self.out.get(..written), self.tag_end));
        add(&mut self.cycle, written);
    }

    /// As the reader does after an error: fail what is in flight, then
    /// what is unsent, then connect again.
    fn reconnect(&mut self, now_ns: u64, run: &mut SessionRun) {
        for _ in 0..1024 {
            let written = self.session.disconnect(7, &mut self.out);
            self.count(written, run);
            if written == 0 {
                break;
            }
        }
        for _ in 0..1024 {
            let written = self
                .session
                .fail_unsent(crate::Quality::NO_CONNECTION, 7, &mut self.out);
            self.count(written, run);
            if written == 0 {
                break;
            }
        }
        assert_eq!(self.session.inflight_count(), 0);
        self.end_cycle(run);
        self.session.on_connected(now_ns);
    }

    fn end_cycle(&mut self, run: &mut SessionRun) {
        end_cycle(&mut self.cycle, &self.session, self.per_cycle, run);
    }
}

fn add(cycle: &mut Option<usize>, written: usize) {
    if let Some(records) = cycle {
        *records += written;
    }
}

/// A cycle that has nothing unsent and nothing outstanding wrote exactly
/// its records.
fn end_cycle(
    cycle: &mut Option<usize>,
    session: &EnipSession,
    per_cycle: usize,
    run: &mut SessionRun,
) {
    let Some(records) = *cycle else {
        return;
    };
    let idle = session.cycle_sent() && (session.inflight_count() == 0 || !session.is_ready());
    if idle && session.unsent_samples() == 0 {
        assert_eq!(
            records, per_cycle,
            "a cycle ended in other than its records"
        );
        run.cycles += 1;
        *cycle = None;
    }
}

impl SessionRun {
    fn count(&mut self, records: &[Sample]) {
        for sample in records.iter().filter(|s| s.is_row()) {
            if sample.quality().is_good() {
                self.good_samples += 1;
            } else {
                self.bad_samples += 1;
            }
        }
    }
}

/// Records hold together (text heads with their extensions), carry fuzz
/// tag ids and the receive time.
fn check_records(records: Option<&[Sample]>, tag_end: u32) -> &[Sample] {
    let Some(records) = records else {
        panic!("more records reported than the slice holds");
    };
    let mut at = 0;
    while let Some(rest) = records.get(at..).filter(|r| !r.is_empty()) {
        let Ok(span) = record_span(rest) else {
            panic!("records that do not hold together at {at}");
        };
        let head = rest.first().map(|s| (s.tag_id().0, s.ts_ns));
        let Some((tag, ts)) = head else { break };
        assert!((FUZZ_TAG_FIRST..tag_end).contains(&tag) && ts == 7);
        at += span.max(1);
    }
    records
}

type Framed = (Vec<(u16, u32, Vec<u8>)>, Option<super::EnipError>);

fn frames(stream: &[u8], chunks: Option<&mut Chunks>) -> Framed {
    let mut framer = Framer::new();
    let mut found = Vec::new();
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
                    assert_eq!(f.data.len(), usize::from(f.header.length));
                    assert!(f.data.len() + 24 <= ENCAP_FRAME_BYTES_MAX);
                    // Whatever a message holds, its decoders fail in words.
                    let _ = encap::connected_reply(&f, f.header.session)
                        .map(|c| cip::parse_reply(c.cip).map(|r| MspReplies::parse(r.data, 2)));
                    found.push((f.header.command, f.header.session, f.data.to_vec()));
                }
                Ok(None) => break,
                Err(error) => return (found, Some(error)),
            }
        }
        assert!(input.is_empty());
    }
    (found, None)
}

/// The encapsulation framer alone: the messages and the first error of a
/// stream must not depend on how the stream is chunked. `data[0]` seeds
/// the chunking.
pub fn fuzz_framer(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = frames(stream, None);
    let chunked = frames(stream, Some(&mut Chunks::new(seed)));
    assert_eq!(whole, chunked);
}

/// A tag the `Responder` serves: its reply type code (a STRING: the
/// structure code, its data begun by the handle) and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub type_code: u16,
    /// Bytes of one element.
    pub element_bytes: usize,
    pub data: Vec<u8>,
}

/// Answers what a session sends, from a table of tags (see the module
/// documentation). Test fixture.
#[derive(Clone, Debug)]
pub struct Responder {
    pub tags: HashMap<String, Served>,
    /// Refuse a Large Forward Open with status 0x08.
    pub refuse_large: bool,
    /// Refuse every Forward Open as a module refuses a bad route: status
    /// 0x01, extended 0x0312 (link address not valid).
    pub refuse_route: bool,
    /// Data bytes a Read Tag reply carries at most before it says 0x06.
    pub reply_data_max: usize,
    /// Answer a Multiple Service Packet with 0x00 even when an embedded
    /// reply failed (cm-ethernetip does).
    pub msp_always_success: bool,
    session: u32,
    to_connection_id: u32,
    framer: Framer,
}

impl Responder {
    pub fn new() -> Self {
        Responder {
            tags: HashMap::new(),
            refuse_large: false,
            refuse_route: false,
            reply_data_max: 4000,
            msp_always_success: false,
            session: 0x1122_3344,
            to_connection_id: 0,
            framer: Framer::new(),
        }
    }

    /// Serves `values` (little-endian bytes of one element each) under
    /// `name` (names joined with `.`, element indices ignored).
    pub fn serve(&mut self, name: &str, type_code: u16, element_bytes: usize, data: Vec<u8>) {
        self.tags.insert(
            name.to_string(),
            Served {
                type_code,
                element_bytes,
                data,
            },
        );
    }

    /// Serves a Logix STRING.
    pub fn serve_string(&mut self, name: &str, text: &[u8]) {
        let mut data = (text.len() as u32).to_le_bytes().to_vec();
        data.extend_from_slice(text);
        data.resize(88, 0);
        self.serve(name, type_code::STRUCT, 88, data);
    }

    /// The replies to every whole message in `sent`.
    pub fn answer(&mut self, sent: &[u8]) -> Vec<u8> {
        let mut replies = Vec::new();
        let mut input = sent;
        while let Ok(Some(frame)) = self.framer.next_frame(&mut input) {
            let (command, data) = (frame.header.command, frame.data.to_vec());
            replies.extend(self.reply_to(command, &data));
        }
        replies
    }

    fn reply_to(&mut self, command: u16, data: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let n = match command {
            encap::REGISTER_SESSION => {
                let mut w = Writer::new(&mut buf);
                for b in [0x65u16.to_le_bytes(), 4u16.to_le_bytes()] {
                    w.bytes(&b);
                }
                w.u32(self.session);
                w.u32(0);
                w.bytes(b"millrace");
                w.u32(0);
                w.u32(1);
                w.len()
            }
            encap::SEND_RR_DATA => {
                // Interface handle, timeout, count, null address item, data
                // item header: 16 bytes before the CIP request.
                let cip = data.get(16..).unwrap_or_default();
                let reply = self.unconnected(cip);
                encap::send_rr_data(&mut buf, self.session, *b"millrace", |w| w.bytes(&reply))
            }
            encap::SEND_UNIT_DATA => {
                let mut r = Reader::new(data);
                let _ = r.take(12, super::Field::CpfItemHeader);
                let _connection = r.u32(super::Field::ConnectionId);
                let _ = r.take(4, super::Field::CpfItemHeader);
                let sequence = r.u16(super::Field::SequenceCount).unwrap_or(0);
                let reply = self.connected(r.rest());
                encap::send_unit_data(
                    &mut buf,
                    self.session,
                    self.to_connection_id,
                    sequence,
                    |w| w.bytes(&reply),
                )
            }
            _ => 0,
        };
        buf.truncate(n);
        buf
    }

    fn unconnected(&mut self, cip: &[u8]) -> Vec<u8> {
        let Ok(request) = parse_request(cip) else {
            return vec![];
        };
        match request.service {
            cip::LARGE_FORWARD_OPEN | cip::FORWARD_OPEN if self.refuse_route => {
                let mut v = vec![request.service | cip::REPLY_FLAG, 0, 0x01, 1];
                v.extend_from_slice(&0x0312u16.to_le_bytes());
                v
            }
            cip::LARGE_FORWARD_OPEN if self.refuse_large => reply_head(request.service, 0x08, &[]),
            cip::LARGE_FORWARD_OPEN | cip::FORWARD_OPEN => {
                let d = request.data;
                self.to_connection_id = le32(d.get(6..10)).unwrap_or(0);
                let mut data = Vec::new();
                // O->T id chosen here; the T->O id and the triad echoed.
                data.extend_from_slice(&0x0101_0101u32.to_le_bytes());
                data.extend_from_slice(d.get(6..10).unwrap_or_default());
                data.extend_from_slice(d.get(10..18).unwrap_or_default());
                data.extend_from_slice(&[0; 10]);
                reply_head(request.service, 0, &data)
            }
            cip::FORWARD_CLOSE => reply_head(request.service, 0, &[0; 10]),
            other => reply_head(other, 0x08, &[]),
        }
    }

    fn connected(&self, cip: &[u8]) -> Vec<u8> {
        let Ok(request) = parse_request(cip) else {
            return vec![];
        };
        if request.service != cip::MULTIPLE_SERVICE_PACKET {
            return self.read(&request);
        }
        let count = le16(request.data.get(..2)).unwrap_or(0);
        let mut replies = Vec::new();
        let mut failed = false;
        for i in 0..count {
            let at = 2 + 2 * usize::from(i);
            let offset = |at: usize| le16(request.data.get(at..at + 2)).map(usize::from);
            let start = offset(at).unwrap_or(0);
            let end = if i + 1 < count {
                offset(at + 2).unwrap_or(request.data.len())
            } else {
                request.data.len()
            };
            let embedded = request.data.get(start..end).unwrap_or_default();
            let reply = match parse_request(embedded) {
                Ok(r) => self.read(&r),
                Err(_) => reply_head(0, 0x04, &[]),
            };
            failed |= reply.get(2).is_some_and(|&s| s != 0);
            replies.push(reply);
        }
        let mut data = (count).to_le_bytes().to_vec();
        let mut offset = 2 + 2 * replies.len();
        for r in &replies {
            data.extend_from_slice(&(offset as u16).to_le_bytes());
            offset += r.len();
        }
        for r in replies {
            data.extend(r);
        }
        let general = if failed && !self.msp_always_success {
            cip::STATUS_EMBEDDED_SERVICE_ERROR
        } else {
            0
        };
        reply_head(cip::MULTIPLE_SERVICE_PACKET, general, &data)
    }

    fn read(&self, request: &cip::Request<'_>) -> Vec<u8> {
        let name = path_name(request.path);
        let Some(served) = self.tags.get(&name) else {
            return reply_head(request.service, 0x05, &[]);
        };
        let mut d = Reader::new(request.data);
        let count = usize::from(d.u16(super::Field::TagData).unwrap_or(1));
        let offset = if request.service == cip::SERVICE_0X52 {
            d.u32(super::Field::TagData).unwrap_or(0) as usize
        } else {
            0
        };
        let total = (count * served.element_bytes).min(served.data.len());
        let from = offset.min(total);
        let take = (total - from).min(self.reply_data_max);
        let mut data = served.type_code.to_le_bytes().to_vec();
        if served.type_code == type_code::STRUCT {
            data.extend_from_slice(&STRING_STRUCT_HANDLE.to_le_bytes());
        }
        data.extend_from_slice(served.data.get(from..from + take).unwrap_or_default());
        let general = if from + take < total { 0x06 } else { 0 };
        reply_head(request.service, general, &data)
    }
}

impl Default for Responder {
    fn default() -> Self {
        Self::new()
    }
}

fn reply_head(service: u8, general: u8, data: &[u8]) -> Vec<u8> {
    let mut v = vec![service | cip::REPLY_FLAG, 0, general, 0];
    v.extend_from_slice(data);
    v
}

fn le16(bytes: Option<&[u8]>) -> Option<u16> {
    bytes
        .and_then(|b| <[u8; 2]>::try_from(b).ok())
        .map(u16::from_le_bytes)
}

fn le32(bytes: Option<&[u8]>) -> Option<u32> {
    bytes
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
}

/// The symbolic names of a request path joined with `.` (elements dropped).
fn path_name(path: &[u8]) -> String {
    let mut names = Vec::new();
    let mut r = Reader::new(path);
    while let Ok(kind) = r.u8(super::Field::TagData) {
        match kind {
            0x91 => {
                let len = usize::from(r.u8(super::Field::TagData).unwrap_or(0));
                let name = r.take(len, super::Field::TagData).unwrap_or_default();
                names.push(String::from_utf8_lossy(name).into_owned());
                if len % 2 == 1 {
                    let _ = r.u8(super::Field::TagData);
                }
            }
            0x28 => {
                let _ = r.u8(super::Field::TagData);
            }
            0x29 => {
                let _ = r.take(3, super::Field::TagData);
            }
            0x2A => {
                let _ = r.take(5, super::Field::TagData);
            }
            _ => break,
        }
    }
    names.join(".")
}

/// The fuzz device served whole: every tag with known values.
pub fn fuzz_responder() -> Responder {
    let mut r = Responder::new();
    let le = |v: &[u32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    r.serve("Counter", type_code::DINT, 4, 42i32.to_le_bytes().to_vec());
    let temps: Vec<u8> = (0..5)
        .flat_map(|i| (i as f32 * 1.5).to_le_bytes())
        .collect();
    r.serve("Program:Main.Temps", type_code::REAL, 4, temps);
    r.serve("Flags", type_code::DINT, 4, 0x20i32.to_le_bytes().to_vec());
    r.serve(
        "Alarms",
        type_code::DWORD,
        4,
        le(&[0xAAAA_AAAA, 0x5555_5555]),
    );
    r.serve_string("Line.Name", b"pump 7");
    r.serve("Big", type_code::LINT, 8, (-4i64).to_le_bytes().to_vec());
    r.serve("S", type_code::SINT, 1, vec![0xFE]);
    r.serve("US", type_code::USINT, 1, vec![7, 8]);
    r.serve("UI", type_code::UINT, 2, 65535u16.to_le_bytes().to_vec());
    r.serve("UD", type_code::UDINT, 4, u32::MAX.to_le_bytes().to_vec());
    r.serve("UL", type_code::ULINT, 8, u64::MAX.to_le_bytes().to_vec());
    r.serve("LR", type_code::LREAL, 8, 2.25f64.to_le_bytes().to_vec());
    r.serve("Running", type_code::BOOL, 1, vec![0xFF]);
    r.serve(
        "I",
        type_code::INT,
        2,
        [1i16, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let wave: Vec<u8> = (0..200).flat_map(|i| (i as f32).to_le_bytes()).collect();
    r.serve("Wave", type_code::REAL, 4, wave);
    r.serve("Zones", type_code::DINT, 4, le(&[1, 2, 3, 4]));
    for i in 0..PLAIN_TAGS {
        r.serve(
            &format!("P{i}"),
            type_code::DINT,
            4,
            (3 * i as i32).to_le_bytes().to_vec(),
        );
    }
    r
}

/// A whole conversation for a corpus seed: the responder's answers to the
/// fuzz session through `cycles` poll cycles, as one stream.
pub fn transcript(mut responder: Responder, cycles: usize) -> Vec<u8> {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut out = vec![Sample::default(); session.samples_per_frame_max().max(64)];
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut stream = Vec::new();
    session.on_connected(0);
    let mut done = 0;
    for _ in 0..10_000 {
        if session.is_ready() && session.cycle_sent() && session.inflight_count() == 0 {
            if done == cycles {
                break;
            }
            session.start_cycle();
            done += 1;
        }
        let mut sent = Vec::new();
        while let Some(n) = session.poll_transmit(0, &mut buf) {
            sent.extend_from_slice(buf.get(..n).unwrap_or_default());
        }
        let replies = responder.answer(&sent);
        if replies.is_empty() && sent.is_empty() {
            break;
        }
        let mut rest = &replies[..];
        while !rest.is_empty() {
            match session.receive(rest, 7, &mut out) {
                Ok(r) => rest = rest.get(r.consumed..).unwrap_or_default(),
                Err(e) => panic!("the responder's answers are valid: {}", e.error),
            }
        }
        stream.extend(replies);
    }
    stream
}

/// What a discovery run over fuzzed bytes ended in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscoverRun {
    pub done: bool,
    pub symbols: usize,
    pub error: bool,
}

/// The `enip_discover` target: byte 0 picks the route (bit 0: `1,0`, so
/// requests go in an Unconnected Send) and the chunk size (the other
/// bits); the rest is the controller's side of the stream. Every request
/// the discovery writes fits its buffer; every symbol it keeps is sorted
/// without a panic, within the caps.
pub fn fuzz_discover(data: &[u8]) -> DiscoverRun {
    use super::discover::{Discovery, PAGES_MAX, REQUEST_BYTES_MAX, SYMBOLS_MAX};
    let Some((&first, stream)) = data.split_first() else {
        return DiscoverRun {
            done: false,
            symbols: 0,
            error: false,
        };
    };
    let route = if first & 1 == 1 {
        crate::config::parse_enip_route("1,0").unwrap_or_default()
    } else {
        Vec::new()
    };
    let chunk = usize::from(first >> 1).max(1);
    let mut discovery = Discovery::new(route);
    let mut framer = Framer::new();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut error = discovery.poll_request(&mut buf).is_none();
    'stream: for piece in stream.chunks(chunk) {
        let mut rest = piece;
        // Each round takes a whole message from `rest` or ends.
        for _ in 0..=piece.len() {
            match framer.next_frame(&mut rest) {
                Ok(Some(frame)) => {
                    if discovery.handle(&frame).is_err() {
                        error = true;
                        break 'stream;
                    }
                    if !discovery.is_done() && discovery.poll_request(&mut buf).is_none() {
                        panic!("a request of discovery does not fit REQUEST_BYTES_MAX");
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    error = true;
                    break 'stream;
                }
            }
        }
    }
    assert!(discovery.symbols().len() <= SYMBOLS_MAX);
    assert!(discovery.pages() <= PAGES_MAX);
    for symbol in discovery.symbols() {
        let _ = discovery.kind(symbol);
        let _ = symbol.elements();
    }
    DiscoverRun {
        done: discovery.is_done(),
        symbols: discovery.symbols().len(),
        error,
    }
}

/// A controller's answers to a discovery: RegisterSession, the tag list
/// in two pages (the second repeats the last symbol of the first, as a
/// Logix controller does), a STRING's template. `first_page_status` is the
/// first page's status (0x06: more follow; 0x08: no tag list). The same
/// answers serve a routed discovery: an Unconnected Send's reply is the
/// embedded one.
pub fn discover_transcript(first_page_status: u8) -> Vec<u8> {
    fn entry(instance: u32, name: &str, symbol_type: u16, dims: [u32; 3]) -> Vec<u8> {
        let mut v = instance.to_le_bytes().to_vec();
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&symbol_type.to_le_bytes());
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v
    }
    const SESSION: u32 = 0x1122_3344;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 2048];
    let n = encap::register_session(&mut buf, [0; 8]);
    if let Some(handle) = buf.get_mut(4..8) {
        handle.copy_from_slice(&SESSION.to_le_bytes());
    }
    out.extend_from_slice(buf.get(..n).unwrap_or_default());
    let mut answer = |cip: Vec<u8>| {
        let n = encap::send_rr_data(&mut buf, SESSION, [0; 8], |w| w.bytes(&cip));
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
    };
    let mut page = entry(1, "Temps", 0x20CA, [200, 0, 0]);
    page.extend(entry(3, "__Hidden", 0x00C4, [0; 3]));
    answer(reply_head(0x55, first_page_status, &page));
    let mut page = entry(3, "__Hidden", 0x00C4, [0; 3]);
    page.extend(entry(7, "Name", 0x8FCE, [0; 3]));
    page.extend(entry(9, "Alarms", 0x20D3, [2, 0, 0]));
    answer(reply_head(0x55, 0, &page));
    let attributes = [2, 0, 1, 0, 0, 0, 0xCE, 0x0F, 5, 0, 0, 0, 88, 0, 0, 0];
    answer(reply_head(0x03, 0, &attributes));
    out
}
