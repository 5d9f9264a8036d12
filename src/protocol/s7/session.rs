//! `S7Session`: one ISO-on-TCP connection to an S7 CPU, sans-IO. It owns
//! the handshake state, the plan, the table of requests in flight (matched
//! by PDU reference), the TPKT framer and the scratch where straddling
//! tags are put together; the reader owns the socket, the clock and every
//! sample buffer.
//!
//! ```text
//!   on_connected ─► ConnectDue ─send CR─► ConnectSent ─CC─► SetupDue
//!     ─send Setup Communication─► SetupSent ─ack-data─► Ready (re-plan if
//!     the PLC granted a smaller PDU; in-flight cap = min(max_inflight, AmQ))
//!   a step unanswered within the device timeout: Err(HandshakeTimeout)
//!   disconnect: back to Closed; in-flight requests end as NO_CONNECTION
//! ```
//!
//! Must never: send anything but a COTP connect request, Setup
//! Communication or Read Var; allocate per frame; drop the connection for a
//! per-item error or a header error of a read (those are qualities).

use crate::config::{DeviceConfig, S7Area};
use crate::protocol::session::{ErrorClass, Received, Session};
use crate::sample::{Quality, Sample, TagId};

use super::decode::{write_bad_tag, write_tag};
use super::error::{BuildError, S7Error, Step};
use super::limits::*;
use super::notice::{Notices, S7Notice};
use super::planner::{plan, planned_tags, Limits, Piece, Plan, PlannedRequest, PlannedTag};
use super::program::{self, decode_run, DecodeProgram};
use super::reader::Reader;
use super::wire::{self, Ack, ReadItem, Tpdu, TpktFramer, ITEM_OK};

/// What a session needs from the device's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_tsap: u16,
    pub remote_tsap: u16,
    /// Asked in Setup Communication; the PLC's answer wins.
    pub pdu_size: u16,
    pub timeout_ns: u64,
    /// Requests in flight at most (also capped by the PLC's AmQ).
    pub max_inflight: u32,
    pub max_hole: u16,
}

impl SessionConfig {
    /// `None` for a device of another protocol.
    pub fn from_device(device: &DeviceConfig) -> Option<Self> {
        let s7 = device.s7_part()?;
        Some(SessionConfig {
            local_tsap: s7.local_tsap,
            remote_tsap: s7.remote_tsap(),
            pdu_size: s7.pdu_size,
            timeout_ns: u64::try_from(device.timeout.as_nanos()).unwrap_or(u64::MAX),
            max_inflight: device.max_inflight,
            max_hole: s7.max_hole,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Handshake {
    Closed,
    ConnectDue,
    ConnectSent { deadline_ns: u64 },
    SetupDue,
    SetupSent { deadline_ns: u64, pdu_ref: u16 },
    Ready,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inflight {
    pdu_ref: u16,
    request_index: usize,
    deadline_ns: u64,
}

/// Progress of a straddling tag in the current cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StraddleState {
    /// Pieces not answered (or failed) yet.
    remaining: u16,
    /// The first bad quality one of its pieces met, or GOOD.
    quality: Quality,
}

/// What `receive` returns on a protocol violation.
pub type ReceiveError = crate::protocol::session::ReceiveError<S7Error>;

/// One device connection: handshake, requests out, samples in.
#[derive(Clone, Debug)]
pub struct S7Session {
    /// Apart from the rest so that a packet borrowed from its buffer can be
    /// handled by `Core`'s `&mut self` methods.
    framer: TpktFramer,
    core: Core,
}

/// Everything of the session but the framer.
#[derive(Clone, Debug)]
struct Core {
    config: SessionConfig,
    /// The tags as first planned, kept to re-plan after a negotiation.
    tags: Vec<PlannedTag>,
    plan: Plan,
    /// One per request of the plan, compiled with it.
    programs: Vec<DecodeProgram>,
    /// Every answer through the per-item path (see `decode_per_item_only`).
    per_item_only: bool,
    /// Runs of the decode programs packed (`packed.rs`): the reader's ring.
    pack_runs: bool,
    /// The PDU the plan was first made for (the configured one).
    pdu_configured: usize,
    samples_per_frame_max: usize,
    request_bytes_max: usize,
    cycle_records: usize,
    handshake: Handshake,
    /// The PDU asked in Setup Communication (the configured one, or less
    /// when the connect confirm chose a small TPDU).
    pdu_requested: u16,
    slots: Vec<Option<Inflight>>,
    inflight: usize,
    /// Requests in flight at most on this connection (after AmQ).
    inflight_limit: usize,
    next_pdu_ref: u16,
    /// Next request of the cycle; `plan.requests.len()`: all sent.
    cursor: usize,
    scratch: Vec<u8>,
    straddle: Vec<StraddleState>,
    /// Items per request the PLC was seen to answer at most.
    items_cap: usize,
    replan_due: bool,
    notices: Notices,
    device_bad: u64,
}

impl S7Session {
    /// Plans the device for its configured PDU and builds its session.
    pub fn for_device(device: &DeviceConfig, first_tag: TagId) -> Result<Self, BuildError> {
        let (Some(config), Some(s7)) = (SessionConfig::from_device(device), device.s7_part())
        else {
            return Err(BuildError::NotS7);
        };
        Self::new(config, planned_tags(s7, first_tag)?)
    }

    pub fn new(config: SessionConfig, tags: Vec<PlannedTag>) -> Result<Self, BuildError> {
        Ok(S7Session {
            framer: TpktFramer::new(),
            core: Core::new(config, tags)?,
        })
    }

    pub fn plan(&self) -> &Plan {
        &self.core.plan
    }

    pub fn config(&self) -> &SessionConfig {
        &self.core.config
    }

    /// Requests in flight at most on this connection.
    pub fn inflight_limit(&self) -> usize {
        self.core.inflight_limit
    }

    /// Decodes every answer through the per-item path, never through the
    /// requests' decode programs: the reference the tests and the fuzz
    /// target check the programs against (both must write the same
    /// records). Not for production use: it is only slower.
    #[doc(hidden)]
    pub fn decode_per_item_only(&mut self) {
        self.core.per_item_only = true;
    }
}

impl Core {
    fn new(config: SessionConfig, tags: Vec<PlannedTag>) -> Result<Self, BuildError> {
        let pdu = usize::from(config.pdu_size).min(S7_PDU_BYTES_MAX);
        if pdu < S7_PDU_BYTES_MIN {
            return Err(BuildError::PduTooSmall {
                pdu_size: config.pdu_size,
            });
        }
        let limits = Limits {
            pdu_bytes: pdu,
            items_max: READ_ITEMS_MAX,
            records_max: usize::MAX,
        };
        let plan = plan(tags.clone(), config.max_hole, limits);
        let request_bytes_max = wire::read_request_bytes(limits.items())
            .max(CONNECT_REQUEST_BYTES)
            .max(SETUP_REQUEST_BYTES);
        let slots = vec![None; (config.max_inflight as usize).clamp(1, INFLIGHT_MAX)];
        let mut session = Core {
            config,
            tags,
            samples_per_frame_max: plan.records_per_request_max().max(1),
            cycle_records: plan.records(),
            request_bytes_max,
            pdu_configured: pdu,
            handshake: Handshake::Closed,
            pdu_requested: pdu as u16,
            inflight_limit: slots.len(),
            slots,
            inflight: 0,
            next_pdu_ref: 1,
            cursor: plan.requests.len(),
            scratch: Vec::new(),
            straddle: Vec::new(),
            items_cap: READ_ITEMS_MAX,
            replan_due: false,
            notices: Notices::default(),
            device_bad: 0,
            programs: Vec::new(),
            per_item_only: false,
            pack_runs: false,
            plan,
        };
        session.size_scratch();
        session.compile();
        Ok(session)
    }

    fn size_scratch(&mut self) {
        self.scratch.clear();
        self.scratch.resize(self.plan.scratch_bytes, 0);
        self.straddle.clear();
        let fresh = self.plan.straddlers.iter().map(|s| StraddleState {
            remaining: s.pieces,
            quality: Quality::GOOD,
        });
        self.straddle.extend(fresh);
    }

    fn compile(&mut self) {
        let tags = &self.plan.tags;
        self.programs = (self.plan.requests.iter())
            .map(|request| DecodeProgram::compile(tags, request))
            .collect();
    }

    /// Rebuilds the plan for the PDU in force and the items cap; the
    /// records per request stay within `samples_per_frame_max` (the plan
    /// of the same tags at a larger PDU bounds every 2-byte window, see
    /// planner.rs), so the reader's slices stay big enough.
    fn replan(&mut self, pdu_bytes: usize) {
        let limits = Limits {
            pdu_bytes,
            items_max: self.items_cap,
            records_max: self.samples_per_frame_max,
        };
        let planned = self.plan.limits;
        if (limits.pdu_bytes, limits.items_max) == (planned.pdu_bytes, planned.items_max) {
            return;
        }
        self.plan = plan(self.tags.clone(), self.config.max_hole, limits);
        assert!(self.plan.records_per_request_max() <= self.samples_per_frame_max);
        assert!(self.plan.records() == self.cycle_records);
        self.cursor = self.plan.requests.len();
        self.size_scratch();
        self.compile();
        self.replan_due = false;
    }

    fn allocate_pdu_ref(&mut self) -> u16 {
        // At most INFLIGHT_MAX + 1 references are taken, so this ends
        // within INFLIGHT_MAX + 2 rounds.
        for _ in 0..INFLIGHT_MAX + 2 {
            let candidate = self.next_pdu_ref;
            self.next_pdu_ref = self.next_pdu_ref.wrapping_add(1);
            let taken = self.slots.iter().flatten().any(|s| s.pdu_ref == candidate)
                || matches!(self.handshake, Handshake::SetupSent { pdu_ref, .. } if pdu_ref == candidate);
            if !taken {
                return candidate;
            }
        }
        unreachable!("more PDU references in flight than slots");
    }

    fn take_inflight(&mut self, matches: impl Fn(&Inflight) -> bool) -> Option<Inflight> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(&matches))?;
        self.inflight -= 1;
        slot.take()
    }

    fn start_cycle(&mut self) {
        if self.replan_due && self.inflight == 0 {
            self.replan(self.plan.limits.pdu_bytes);
        }
        for (state, straddler) in self.straddle.iter_mut().zip(&self.plan.straddlers) {
            *state = StraddleState {
                remaining: straddler.pieces,
                quality: Quality::GOOD,
            };
        }
        self.cursor = 0;
    }

    fn transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let buf = buf.get_mut(..self.request_bytes_max)?;
        let deadline_ns = now_ns.saturating_add(self.config.timeout_ns);
        match self.handshake {
            Handshake::ConnectDue => {
                self.handshake = Handshake::ConnectSent { deadline_ns };
                let (local, remote) = (self.config.local_tsap, self.config.remote_tsap);
                Some(wire::encode_connect_request(local, remote, buf))
            }
            Handshake::SetupDue => {
                let pdu_ref = self.allocate_pdu_ref();
                self.handshake = Handshake::SetupSent {
                    deadline_ns,
                    pdu_ref,
                };
                let amq = u16::try_from(self.slots.len()).unwrap_or(u16::MAX);
                Some(wire::encode_setup(pdu_ref, amq, self.pdu_requested, buf))
            }
            Handshake::Ready => self.transmit_read(deadline_ns, buf),
            _ => None,
        }
    }

    fn transmit_read(&mut self, deadline_ns: u64, buf: &mut [u8]) -> Option<usize> {
        if self.inflight >= self.inflight_limit {
            return None;
        }
        let request_index = self.cursor;
        self.programs.get(request_index)?;
        let pdu_ref = self.allocate_pdu_ref();
        let slot = self.slots.iter_mut().find(|s| s.is_none())?;
        *slot = Some(Inflight {
            pdu_ref,
            request_index,
            deadline_ns,
        });
        self.inflight += 1;
        self.cursor += 1;
        self.programs.get(request_index)?.send(pdu_ref, buf)
    }
}

/// Writes the records of one request's end: `quality` for the tags wholly
/// inside its pieces, and for each straddler part a finished piece (the
/// straddler's records when it was the last). Free of `self` so the
/// caller can split its borrows.
struct Ender<'s> {
    tags: &'s [PlannedTag],
    plan: &'s Plan,
    scratch: &'s mut [u8],
    straddle: &'s mut [StraddleState],
    device_bad: &'s mut u64,
}

impl Ender<'_> {
    fn write_bad(
        &mut self,
        tag: &PlannedTag,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let written = write_bad_tag(tag, quality, ts_ns, out);
        if quality.is_device_reported() {
            *self.device_bad += written as u64;
        }
        written
    }

    /// One piece of a straddler ended with `quality`; writes its records
    /// when it was the last piece.
    fn finish_part(
        &mut self,
        straddler: u32,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let (Some(state), Some(info)) = (
            self.straddle.get_mut(straddler as usize),
            self.plan.straddlers.get(straddler as usize),
        ) else {
            return 0;
        };
        state.remaining = state.remaining.saturating_sub(1);
        if !quality.is_good() && state.quality.is_good() {
            state.quality = quality;
        }
        if state.remaining > 0 {
            return 0;
        }
        let quality = state.quality;
        let Some(tag) = self.tags.get(info.tag as usize) else {
            return 0;
        };
        if !quality.is_good() {
            return self.write_bad(tag, quality, ts_ns, out);
        }
        let from = info.scratch_offset as usize;
        let bytes = self
            .scratch
            .get(from..from + tag.size as usize)
            .unwrap_or_default();
        write_tag(tag, bytes, ts_ns, out)
    }

    /// Every record a failed request ends in: `quality` throughout.
    fn fail(
        &mut self,
        request: &PlannedRequest,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut written = 0;
        for piece in &request.pieces {
            written += self.fail_piece(
                piece,
                quality,
                ts_ns,
                out.get_mut(written..).unwrap_or_default(),
            );
        }
        written
    }

    fn fail_piece(
        &mut self,
        piece: &Piece,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut written = 0;
        for &(tag, _) in &piece.inside {
            if let Some(tag) = self.tags.get(tag as usize) {
                let slot = out.get_mut(written..).unwrap_or_default();
                written += self.write_bad(tag, quality, ts_ns, slot);
            }
        }
        for part in &piece.parts {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.finish_part(part.straddler, quality, ts_ns, slot);
        }
        written
    }

    /// A good item: the tags inside decode in place, straddler parts go
    /// to the scratch.
    fn decode_piece(
        &mut self,
        piece: &Piece,
        data: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut written = 0;
        for &(tag, offset) in &piece.inside {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.decode_tag(tag, data, usize::from(offset), ts_ns, slot);
        }
        let slot = out.get_mut(written..).unwrap_or_default();
        written + self.decode_parts(piece, data, ts_ns, slot)
    }

    /// Tag `tag` of the plan from its bytes at `from` of `data`.
    #[inline]
    fn decode_tag(
        &self,
        tag: u32,
        data: &[u8],
        from: usize,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let Some(tag) = self.tags.get(tag as usize) else {
            return 0;
        };
        let bytes = data.get(from..from + tag.size as usize).unwrap_or_default();
        write_tag(tag, bytes, ts_ns, out)
    }

    /// A good item's straddler parts (`data`: the item's bytes).
    fn decode_parts(
        &mut self,
        piece: &Piece,
        data: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut written = 0;
        for part in &piece.parts {
            if let Some(info) = self.plan.straddlers.get(part.straddler as usize) {
                let from = usize::from(part.piece_offset);
                let source = data.get(from..from + usize::from(part.len));
                let to = info.scratch_offset as usize + usize::from(part.tag_offset);
                let target = self.scratch.get_mut(to..to + usize::from(part.len));
                if let (Some(source), Some(target)) = (source, target) {
                    target.copy_from_slice(source);
                }
            }
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.finish_part(part.straddler, Quality::GOOD, ts_ns, slot);
        }
        written
    }

    /// The usual answer (`DecodeProgram::is_usual`) of `request` through
    /// its program: the records `decode_piece` writes for each item, in
    /// the same order. `data` is the answer's whole data part.
    fn run_program(
        &mut self,
        program: &DecodeProgram,
        request: &PlannedRequest,
        data: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
        pack: bool,
    ) -> usize {
        let mut written = 0;
        for step in &program.steps {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += match *step {
                program::Step::Run {
                    run_type,
                    tail,
                    from,
                    count,
                } => {
                    let slot = slot.get_mut(..usize::from(count)).unwrap_or_default();
                    decode_run(run_type, tail, data, usize::from(from), ts_ns, slot, pack)
                }
                program::Step::Tag { tag, from } => {
                    self.decode_tag(tag, data, usize::from(from), ts_ns, slot)
                }
                program::Step::Parts { piece, from } => {
                    let Some(piece) = request.pieces.get(usize::from(piece)) else {
                        continue;
                    };
                    let from = usize::from(from);
                    let item = data.get(from..from + usize::from(piece.item.count));
                    self.decode_parts(piece, item.unwrap_or_default(), ts_ns, slot)
                }
            };
        }
        written
    }
}

impl Core {
    fn ender(&mut self) -> Ender<'_> {
        self.ender_and_programs().0
    }

    /// The ender and the decode programs, borrowed apart: the plan (and its
    /// requests) stays readable beside them, so a request needs no take and
    /// put back.
    fn ender_and_programs(&mut self) -> (Ender<'_>, &[DecodeProgram]) {
        let ender = Ender {
            tags: &self.plan.tags,
            plan: &self.plan,
            scratch: &mut self.scratch,
            straddle: &mut self.straddle,
            device_bad: &mut self.device_bad,
        };
        (ender, &self.programs)
    }

    fn fail_request(
        &mut self,
        index: usize,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut ender = self.ender();
        let plan = ender.plan;
        match plan.requests.get(index) {
            Some(request) => ender.fail(request, quality, ts_ns, out),
            None => 0,
        }
    }

    /// Handles one TPDU; returns the records written.
    fn handle(
        &mut self,
        tpdu: Tpdu<'_>,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, (S7Error, usize)> {
        let unmatched = |error| (error, 0);
        match (self.handshake, tpdu) {
            (Handshake::ConnectSent { .. }, Tpdu::ConnectConfirm { tpdu_bytes }) => {
                if let Some(tpdu_bytes) = tpdu_bytes {
                    let room = tpdu_bytes.saturating_sub(COTP_DT_HEADER_BYTES);
                    self.pdu_requested = self
                        .pdu_requested
                        .min(room.min(usize::from(u16::MAX)) as u16);
                }
                self.handshake = Handshake::SetupDue;
                Ok(0)
            }
            (
                Handshake::ConnectSent { .. } | Handshake::SetupSent { .. },
                Tpdu::DisconnectRequest { reason },
            ) => Err(unmatched(S7Error::ConnectRefused { reason })),
            (_, Tpdu::DisconnectRequest { reason }) => {
                Err(unmatched(S7Error::Disconnected { reason }))
            }
            (_, Tpdu::Error { cause }) => Err(unmatched(S7Error::CotpError { cause })),
            (Handshake::SetupSent { pdu_ref, .. }, Tpdu::Data(pdu)) => {
                let ack = wire::parse_ack(pdu).map_err(unmatched)?;
                if ack.pdu_ref != pdu_ref {
                    return Err(unmatched(S7Error::PduReferenceUnknown {
                        found: ack.pdu_ref,
                    }));
                }
                let granted = wire::parse_setup(&ack).map_err(unmatched)?;
                self.negotiated(granted).map_err(unmatched)?;
                Ok(0)
            }
            (Handshake::Ready, Tpdu::Data(pdu)) => {
                let ack = wire::parse_ack(pdu).map_err(unmatched)?;
                let Some(inflight) = self.take_inflight(|s| s.pdu_ref == ack.pdu_ref) else {
                    return Err(unmatched(S7Error::PduReferenceUnknown {
                        found: ack.pdu_ref,
                    }));
                };
                self.answer(inflight.request_index, &ack, ts_ns, out)
            }
            (
                Handshake::ConnectSent { .. } | Handshake::SetupSent { .. } | Handshake::Ready,
                Tpdu::Data(_) | Tpdu::ConnectConfirm { .. },
            ) => {
                let code = match tpdu {
                    Tpdu::Data(_) => 0xF0,
                    _ => 0xD0,
                };
                Err(unmatched(S7Error::CotpUnexpected { code }))
            }
            (_, Tpdu::Data(_) | Tpdu::ConnectConfirm { .. }) => {
                Err(unmatched(S7Error::Unsolicited))
            }
        }
    }

    fn negotiated(&mut self, granted: wire::Granted) -> Result<(), S7Error> {
        let pdu = granted.pdu_bytes.min(self.pdu_requested);
        if usize::from(pdu) < S7_PDU_BYTES_MIN {
            return Err(S7Error::PduTooSmall {
                granted: granted.pdu_bytes,
            });
        }
        let amq = usize::from(granted.amq_calling.max(1));
        self.inflight_limit = self.slots.len().min(amq);
        if usize::from(pdu) < self.pdu_configured {
            self.notices.raise(S7Notice::PduNegotiated {
                requested: self.pdu_configured as u16,
                granted: pdu,
            });
        }
        self.replan(usize::from(pdu));
        self.handshake = Handshake::Ready;
        Ok(())
    }

    /// A Read Var answer to request `index`: the usual answer (every item
    /// good and as long as asked) through the request's decode program;
    /// any other through the per-item path, where header errors and item
    /// errors become qualities and a malformed answer ends the request in
    /// `DECODE_ERROR` records and is an error.
    fn answer(
        &mut self,
        index: usize,
        ack: &Ack<'_>,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, (S7Error, usize)> {
        if ack.error_class != 0 || ack.error_code != 0 {
            self.notices.raise(match (ack.error_class, ack.error_code) {
                (0x81, 0x04) => S7Notice::PutGetOff,
                (0x85, 0x00) => S7Notice::PduSizeError,
                (class, code) => S7Notice::HeaderError { class, code },
            });
            let quality = Quality::s7_header(ack.error_class, ack.error_code);
            return Ok(self.fail_request(index, quality, ts_ns, out));
        }
        let (per_item_only, pack) = (self.per_item_only, self.pack_runs);
        let (mut ender, programs) = self.ender_and_programs();
        let plan = ender.plan;
        if let (Some(request), Some(program)) = (plan.requests.get(index), programs.get(index)) {
            if !per_item_only && program.is_usual(ack.params, ack.data, out.len()) {
                return Ok(ender.run_program(program, request, ack.data, ts_ns, out, pack));
            }
        }
        // The per-item path also raises notices and may re-plan.
        let requests = std::mem::take(&mut self.plan.requests);
        let result = match requests.get(index) {
            Some(request) => self.answer_items(request, ack, ts_ns, out),
            None => Ok(0),
        };
        self.plan.requests = requests;
        result
    }

    fn answer_items(
        &mut self,
        request: &PlannedRequest,
        ack: &Ack<'_>,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, (S7Error, usize)> {
        let asked = request.pieces.len();
        let checked = wire::read_var_count(ack.params, asked).and_then(|count| {
            let mut r = Reader::new(ack.data);
            for (index, piece) in request.pieces.iter().take(count).enumerate() {
                wire::next_item(&mut r, index, count, usize::from(piece.item.count))?;
            }
            r.finish(super::error::Field::S7Data).map(|()| count)
        });
        let count = match checked {
            Ok(count) => count,
            Err(error) => {
                let written = self
                    .ender()
                    .fail(request, Quality::DECODE_ERROR, ts_ns, out);
                return Err((error, written));
            }
        };
        if count < asked {
            self.notices.raise(S7Notice::ItemsCapped {
                asked: asked as u8,
                answered: count as u8,
            });
            self.items_cap = self.items_cap.min(count);
            self.replan_due = true;
        }
        let mut r = Reader::new(ack.data);
        let mut written = 0;
        for (index, piece) in request.pieces.iter().enumerate() {
            let slot = out.get_mut(written..).unwrap_or_default();
            let expected = usize::from(piece.item.count);
            let item =
                match (index < count).then(|| wire::next_item(&mut r, index, count, expected)) {
                    Some(Ok(item)) => item,
                    // Unanswered (a PLC capping items), or impossible after the
                    // check above.
                    _ => {
                        written +=
                            self.ender()
                                .fail_piece(piece, Quality::DECODE_ERROR, ts_ns, slot);
                        continue;
                    }
                };
            if item.return_code == ITEM_OK {
                written += self.ender().decode_piece(piece, item.data, ts_ns, slot);
            } else {
                self.item_refused(piece.item, item.return_code);
                let quality = Quality::s7_item(item.return_code);
                written += self.ender().fail_piece(piece, quality, ts_ns, slot);
            }
        }
        Ok(written)
    }

    fn item_refused(&mut self, item: ReadItem, code: u8) {
        let area = match item.area_code {
            0x81 => S7Area::Inputs,
            0x82 => S7Area::Outputs,
            0x83 => S7Area::Merker,
            _ => S7Area::Db(item.db_number),
        };
        self.notices.raise(match (area, code) {
            (S7Area::Db(db), 0x03 | 0x05 | 0x0A) => S7Notice::DbRefused { db, code },
            (area, code) => S7Notice::AreaRefused { area, code },
        });
    }

    /// Fails in-flight requests picked by `next` with `quality`, one
    /// request per round while `out` has room for one.
    fn fail_inflight(
        &mut self,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
        next: impl Fn(&Inflight) -> bool,
    ) -> usize {
        let mut written = 0;
        for _ in 0..self.slots.len() {
            if out.len() - written < self.samples_per_frame_max {
                break;
            }
            let Some(inflight) = self.take_inflight(&next) else {
                break;
            };
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.fail_request(inflight.request_index, quality, ts_ns, slot);
        }
        written
    }

    fn handshake_deadline(&self) -> Option<(u64, Step)> {
        match self.handshake {
            Handshake::ConnectSent { deadline_ns } => Some((deadline_ns, Step::Connect)),
            Handshake::SetupSent { deadline_ns, .. } => {
                Some((deadline_ns, Step::SetupCommunication))
            }
            _ => None,
        }
    }
}

/// S7 on the protocol seam: a two-step handshake, then Read Var requests
/// matched by PDU reference.
impl Session for S7Session {
    type Error = S7Error;
    type Notice = S7Notice;

    fn pack_runs(&mut self) {
        self.core.pack_runs = true;
    }
    fn request_bytes_max(&self) -> usize {
        self.core.request_bytes_max
    }
    fn samples_per_frame_max(&self) -> usize {
        self.core.samples_per_frame_max
    }
    fn cycle_samples(&self) -> usize {
        self.core.cycle_records
    }
    fn requests_per_cycle(&self) -> usize {
        self.core.plan.requests.len()
    }
    fn on_connected(&mut self, _now_ns: u64) {
        self.framer.clear();
        let core = &mut self.core;
        core.pdu_requested = core.pdu_configured as u16;
        core.handshake = Handshake::ConnectDue;
    }
    fn is_ready(&self) -> bool {
        self.core.handshake == Handshake::Ready
    }
    fn start_cycle(&mut self) {
        self.core.start_cycle();
    }
    fn cycle_sent(&self) -> bool {
        self.core.cursor >= self.core.plan.requests.len()
    }
    fn inflight_count(&self) -> usize {
        self.core.inflight + usize::from(self.core.handshake_deadline().is_some())
    }
    fn unsent_samples(&self) -> usize {
        self.core.unsent_records()
    }
    fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
        let core = &mut self.core;
        if out.len() < core.samples_per_frame_max || core.cursor >= core.plan.requests.len() {
            return 0;
        }
        let index = core.cursor;
        core.cursor += 1;
        core.fail_request(index, quality, ts_ns, out)
    }
    fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        self.core.transmit(now_ns, buf)
    }
    fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError> {
        let frame_max = self.core.samples_per_frame_max;
        let mut rest = chunk;
        let mut written = 0;
        // Each round consumes a packet or ends: bounded by the chunk.
        for _ in 0..=chunk.len() {
            if rest.is_empty() {
                break;
            }
            if out.len() - written < frame_max {
                if written == 0 {
                    let error = S7Error::SampleSliceTooSmall {
                        needed: frame_max,
                        capacity: out.len(),
                    };
                    return Err(ReceiveError { error, samples: 0 });
                }
                break;
            }
            let fail = |error, samples| ReceiveError { error, samples };
            let packet = match self.framer.next_packet(&mut rest) {
                Ok(Some(packet)) => packet,
                Ok(None) => break,
                Err(error) => return Err(fail(error, written)),
            };
            let tpdu = wire::parse_tpdu(packet).map_err(|error| fail(error, written))?;
            let slot = out.get_mut(written..).unwrap_or_default();
            match self.core.handle(tpdu, ts_ns, slot) {
                Ok(count) => written += count,
                Err((error, failed)) => return Err(fail(error, written + failed)),
            }
        }
        Ok(Received {
            consumed: chunk.len() - rest.len(),
            samples: written,
        })
    }
    fn next_deadline_ns(&self) -> Option<u64> {
        if let Some((deadline_ns, _)) = self.core.handshake_deadline() {
            return Some(deadline_ns);
        }
        self.core
            .slots
            .iter()
            .flatten()
            .map(|s| s.deadline_ns)
            .min()
    }
    fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, S7Error> {
        if let Some((deadline_ns, step)) = self.core.handshake_deadline() {
            if deadline_ns <= now_ns {
                return Err(S7Error::HandshakeTimeout { step });
            }
            return Ok(0);
        }
        Ok(self
            .core
            .fail_inflight(Quality::TIMEOUT, ts_ns, out, |s| s.deadline_ns <= now_ns))
    }
    fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        self.framer.clear();
        self.core.handshake = Handshake::Closed;
        self.core
            .fail_inflight(Quality::NO_CONNECTION, ts_ns, out, |_| true)
    }
    fn classify(&self, error: &S7Error) -> ErrorClass {
        if error.is_handshake() {
            ErrorClass::Handshake
        } else {
            ErrorClass::Malformed
        }
    }
    fn device_bad_samples(&self) -> u64 {
        self.core.device_bad
    }
    fn poll_notice(&mut self) -> Option<S7Notice> {
        self.core.notices.pop()
    }
}

impl Core {
    /// Records the unsent rest of the cycle writes: the tags wholly inside
    /// its pieces, plus each straddler all of whose unfinished pieces are
    /// unsent (its records come with its last piece).
    fn unsent_records(&self) -> usize {
        let rest = self.plan.requests.get(self.cursor..).unwrap_or_default();
        let pieces = || rest.iter().flat_map(|r| &r.pieces);
        let mut records: usize = pieces()
            .flat_map(|p| &p.inside)
            .filter_map(|&(t, _)| self.plan.tags.get(t as usize))
            .map(|t| t.records as usize)
            .sum();
        for (index, (state, info)) in self.straddle.iter().zip(&self.plan.straddlers).enumerate() {
            let unsent_parts = pieces()
                .flat_map(|p| &p.parts)
                .filter(|part| part.straddler as usize == index)
                .count();
            if unsent_parts > 0 && unsent_parts == usize::from(state.remaining) {
                let tag = self.plan.tags.get(info.tag as usize);
                records += tag.map_or(0, |t| t.records as usize);
            }
        }
        records
    }
}
