//! `EnipSession`: one connection to a Logix controller, as a reader drives
//! it through the `Session` trait. It owns the handshake, the plans, the
//! in-flight table and the framer; the driver owns the socket, the clock
//! and every buffer.
//!
//! ```text
//!  on_connected ─► RegisterSession ─► Large Forward Open ─┬─► ready: SendUnitData
//!                                       refused: Forward Open (500) ─┘   requests
//!  poll_close (clean stop) ─► Forward Close + UnregisterSession
//! ```
//!
//! A cycle sends the plan's requests (see planner.rs). A read whose reply
//! says "partial transfer" (0x06) is continued with Read Tag Fragmented from
//! the first element it did not get, before any further planned request; a
//! continuation is part of the planned request it came from, so the
//! records of a cycle never change.

use std::collections::VecDeque;

use crate::config::{DeviceConfig, EnipDevice, RouteHop};
use crate::protocol::session::{ErrorClass, ReceiveError, Received, Session};
use crate::sample::{Quality, Sample, TagId};

use super::cip::{
    self, parse_forward_open_reply, parse_reply, MspReplies, Reply, Triad, FORWARD_OPEN,
    LARGE_FORWARD_OPEN, MULTIPLE_SERVICE_PACKET, READ_TAG, SERVICE_0X52,
};
use super::decode::{self, element_width, typed_data, write_bad};
use super::encap::{self, Frame, Framer, CONNECTED_OVERHEAD_BYTES, UNCONNECTED_OVERHEAD_BYTES};
use super::error::{EnipError, Step};
use super::layout::MspLayout;
use super::limits::{CONNECTION_SIZE_SMALL, ENCAP_HEADER_BYTES, INFLIGHT_MAX};
use super::notice::{EnipNotice, Notices, ShortText};
use super::planner::{plan_device, Plan, PlanError, PlannedRequest, RequestKind};
use super::wire::Writer;

/// The largest connection size a plain (16-bit) Forward Open can ask for.
const FORWARD_OPEN_SIZE_MAX: u16 = 511;
/// What the encapsulation sender context of our handshake messages says.
const CONTEXT: [u8; 8] = *b"millrace";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// A request (or handshake step) unanswered this long fails.
    pub timeout_ns: u64,
    /// Requests in flight at once (clamped to 1..=`INFLIGHT_MAX`).
    pub max_inflight: usize,
    /// Asked for in the (Large) Forward Open.
    pub connection_size: u16,
    pub route: Vec<RouteHop>,
    /// The originator serial of our connections' triad: unique per
    /// gateway and device, so two connections to one controller never
    /// collide (a collision is refused as a duplicate Forward Open).
    pub originator_serial: u32,
}

impl SessionConfig {
    pub fn from_device(device: &DeviceConfig, first_tag: TagId) -> Option<Self> {
        let enip = device.enip_part()?;
        Some(SessionConfig {
            timeout_ns: u64::try_from(device.timeout.as_nanos()).unwrap_or(u64::MAX),
            max_inflight: device.max_inflight as usize,
            connection_size: enip.connection_size,
            route: enip.route.clone(),
            originator_serial: std::process::id().rotate_left(16) ^ first_tag.0,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// No transport.
    Down,
    /// RegisterSession (sent or due).
    Register {
        sent: bool,
    },
    /// (Large) Forward Open (sent or due).
    Open {
        large: bool,
        sent: bool,
    },
    Ready,
    /// Forward Close and UnregisterSession went out: nothing more to send.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outstanding {
    /// A planned request (its index in the plan).
    Request(u32),
    /// The next fragment of a read (its index in the plan).
    Continuation(u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Inflight {
    sequence: u16,
    what: Outstanding,
    deadline_ns: u64,
}

/// How far a read of the current cycle got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Progress {
    /// Requested elements received.
    elements: u32,
    /// Samples written.
    samples: u32,
}

/// One device connection: requests out, samples in.
#[derive(Clone, Debug)]
pub struct EnipSession {
    config: SessionConfig,
    /// `plans[0]` for the size asked, `plans[1]` for the Forward Open
    /// fallback (the same plan when no fallback exists).
    plans: [Plan; 2],
    /// Each plan's requests encoded once (their CIP bytes never change):
    /// a cycle copies them behind the encapsulation and sequence count.
    encoded: [EncodedRequests; 2],
    /// Per plan, per request: its usual reply compiled (`layout`), for
    /// packets of plain scalars.
    layouts: [Vec<Option<MspLayout>>; 2],
    active: usize,
    samples_per_frame_max: usize,
    request_bytes_max: usize,
    /// A name and address per configured tag, for notices.
    labels: Vec<ShortText>,
    phase: Phase,
    /// The module refused a Large Forward Open once: ask small from then on.
    large_refused: bool,
    handshake_deadline_ns: Option<u64>,
    session_handle: u32,
    triad: Triad,
    ot_connection_id: u32,
    to_connection_id: u32,
    next_sequence: u16,
    /// Always `Some` between calls (see `next_message`).
    framer: Option<Framer>,
    /// Next planned request of the cycle to send.
    cursor: usize,
    inflight: Vec<Inflight>,
    /// Parallel to the active plan's reads.
    progress: Vec<Progress>,
    /// Reads waiting to send their next fragment.
    continuations: VecDeque<u32>,
    device_bad: u64,
    notices: Notices,
}

/// What `receive` returns on a protocol violation.
pub type EnipReceiveError = ReceiveError<EnipError>;

impl EnipSession {
    pub fn for_device(device: &DeviceConfig, first_tag: TagId) -> Result<Self, PlanError> {
        let (Some(config), Some(enip)) = (
            SessionConfig::from_device(device, first_tag),
            device.enip_part(),
        ) else {
            return Err(PlanError(
                "an EtherNet/IP session was asked for a device of another protocol".into(),
            ));
        };
        Self::new(config, enip, first_tag)
    }

    pub fn new(
        config: SessionConfig,
        device: &EnipDevice,
        first_tag: TagId,
    ) -> Result<Self, PlanError> {
        let asked = usize::from(config.connection_size);
        let large = plan_device(device, first_tag, asked)?;
        let small = if config.connection_size > FORWARD_OPEN_SIZE_MAX {
            plan_device(device, first_tag, CONNECTION_SIZE_SMALL.min(asked))?
        } else {
            large.clone()
        };
        let plans = [large, small];
        let encoded = [
            EncodedRequests::of(&plans[0]),
            EncodedRequests::of(&plans[1]),
        ];
        let layouts = [MspLayout::of_plan(&plans[0]), MspLayout::of_plan(&plans[1])];
        let samples_per_frame_max = plans
            .iter()
            .map(Plan::records_per_request_max)
            .max()
            .unwrap_or(0)
            .max(1);
        let reads_max = plans.iter().map(|p| p.reads.len()).max().unwrap_or(0);
        let labels = device
            .tags
            .iter()
            .map(|t| ShortText::new(&format!("`{}` ({})", t.name, t.address)))
            .collect();
        let max_inflight = config.max_inflight.clamp(1, INFLIGHT_MAX);
        let mut session = EnipSession {
            request_bytes_max: 0,
            plans,
            encoded,
            layouts,
            active: 0,
            samples_per_frame_max,
            labels,
            phase: Phase::Down,
            large_refused: false,
            handshake_deadline_ns: None,
            session_handle: 0,
            triad: Triad {
                connection_serial: (config.originator_serial as u16) ^ 0x5A5A,
                vendor_id: cip::VENDOR_ID,
                originator_serial: config.originator_serial,
            },
            ot_connection_id: 0,
            to_connection_id: 0,
            next_sequence: 1,
            framer: Some(Framer::new()),
            cursor: 0,
            inflight: Vec::with_capacity(max_inflight),
            progress: vec![Progress::default(); reads_max],
            continuations: VecDeque::with_capacity(reads_max),
            device_bad: 0,
            notices: Notices::default(),
            config: SessionConfig {
                max_inflight,
                ..config
            },
        };
        session.cursor = session.plan().requests.len();
        session.request_bytes_max = session.largest_message();
        Ok(session)
    }

    /// The plan in force (the fallback's after a refused Large Forward Open).
    pub fn plan(&self) -> &Plan {
        active_plan(&self.plans, self.active)
    }

    /// Every plan the session may use: the size asked for, the fallback.
    pub fn plans(&self) -> &[Plan; 2] {
        &self.plans
    }

    /// The connection size in force once connected.
    pub fn connection_size(&self) -> usize {
        self.plan().message_bytes + super::planner::SEQUENCE_BYTES
    }

    /// The longest message this session writes: a planned request or a
    /// continuation in a connected message, or a handshake step.
    fn largest_message(&self) -> usize {
        let connected = self
            .plans
            .iter()
            .map(|p| p.message_bytes)
            .max()
            .unwrap_or(0);
        let mut scratch = vec![0u8; 2048];
        let open = encap::send_rr_data(&mut scratch, 0, CONTEXT, |w| {
            cip::write_forward_open(w, true, self.triad, 0, 0, &self.config.route);
        });
        let close = self.write_close(&mut scratch);
        assert!(open > 0 && close > 0, "a handshake message fits 2 KiB");
        (ENCAP_HEADER_BYTES + CONNECTED_OVERHEAD_BYTES + connected)
            .max(open)
            .max(close)
            .max(ENCAP_HEADER_BYTES + UNCONNECTED_OVERHEAD_BYTES)
    }

    pub fn request_bytes_max(&self) -> usize {
        self.request_bytes_max
    }

    pub fn samples_per_frame_max(&self) -> usize {
        self.samples_per_frame_max
    }

    fn progress_of(&self, index: usize) -> Progress {
        self.progress.get(index).copied().unwrap_or_default()
    }

    fn handshake_step(&self) -> Option<Step> {
        match self.phase {
            Phase::Register { sent: true } => Some(Step::RegisterSession),
            Phase::Open {
                large: true,
                sent: true,
            } => Some(Step::LargeForwardOpen),
            Phase::Open {
                large: false,
                sent: true,
            } => Some(Step::ForwardOpen),
            _ => None,
        }
    }

    fn open_phase(&self) -> Phase {
        let large = self.config.connection_size > FORWARD_OPEN_SIZE_MAX && !self.large_refused;
        Phase::Open { large, sent: false }
    }

    // ---- sending ----

    fn transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        match self.phase {
            Phase::Register { sent: false } => {
                let n = encap::register_session(buf, CONTEXT);
                self.phase = Phase::Register { sent: true };
                self.handshake_deadline_ns = Some(now_ns.saturating_add(self.config.timeout_ns));
                (n > 0).then_some(n)
            }
            Phase::Open { large, sent: false } => {
                let n = self.write_open(large, buf);
                self.phase = Phase::Open { large, sent: true };
                self.handshake_deadline_ns = Some(now_ns.saturating_add(self.config.timeout_ns));
                (n > 0).then_some(n)
            }
            Phase::Ready => self.transmit_request(now_ns, buf),
            _ => None,
        }
    }

    fn write_open(&mut self, large: bool, buf: &mut [u8]) -> usize {
        // A fresh connection serial per attempt: a module still holding the
        // last connection would refuse the same triad as a duplicate.
        self.triad.connection_serial = self.triad.connection_serial.wrapping_add(1);
        self.to_connection_id = 0x4D52_0000 | u32::from(self.triad.connection_serial);
        let size = if large {
            self.config.connection_size
        } else {
            self.config
                .connection_size
                .min(CONNECTION_SIZE_SMALL as u16)
        };
        let (triad, to_id, session) = (self.triad, self.to_connection_id, self.session_handle);
        let route = &self.config.route;
        encap::send_rr_data(buf, session, CONTEXT, |w| {
            cip::write_forward_open(w, large, triad, to_id, size, route);
        })
    }

    fn write_close(&self, buf: &mut [u8]) -> usize {
        let close = encap::send_rr_data(buf, self.session_handle, CONTEXT, |w| {
            cip::write_forward_close(w, self.triad, &self.config.route);
        });
        let rest = buf.get_mut(close..).unwrap_or_default();
        let unregister = encap::unregister_session(rest, self.session_handle);
        if close == 0 || unregister == 0 {
            return 0;
        }
        close + unregister
    }

    /// The next continuation, else the cycle's next planned request, while
    /// fewer than `max_inflight` are outstanding.
    fn transmit_request(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        if self.inflight.len() >= self.config.max_inflight {
            return None;
        }
        let what = match self.continuations.front() {
            Some(&read) => Outstanding::Continuation(read),
            None if self.cursor < self.plan().requests.len() => {
                Outstanding::Request(self.cursor as u32)
            }
            None => return None,
        };
        let sequence = self.next_sequence;
        let n = self.write_connected(what, sequence, buf);
        if n == 0 {
            return None;
        }
        match what {
            Outstanding::Continuation(_) => {
                self.continuations.pop_front();
            }
            Outstanding::Request(_) => self.cursor += 1,
        }
        self.next_sequence = self.next_sequence.wrapping_add(1);
        self.inflight.push(Inflight {
            sequence,
            what,
            deadline_ns: now_ns.saturating_add(self.config.timeout_ns),
        });
        Some(n)
    }

    fn write_connected(&self, what: Outstanding, sequence: u16, buf: &mut [u8]) -> usize {
        let plan = self.plan();
        let (session, id) = (self.session_handle, self.ot_connection_id);
        match what {
            Outstanding::Continuation(index) => {
                let Some(read) = plan.reads.get(index as usize) else {
                    return 0;
                };
                let offset =
                    self.progress_of(index as usize).elements * u32::from(read.element_bytes);
                encap::send_unit_data(buf, session, id, sequence, |w| {
                    cip::write_read_fragmented(w, plan.path(read), read.request_elements, offset);
                })
            }
            Outstanding::Request(index) => {
                let encoded = active_plan(&self.encoded, self.active);
                let Some(cip) = encoded.get(index as usize) else {
                    return 0;
                };
                encap::send_unit_data(buf, session, id, sequence, |w| w.bytes(cip))
            }
        }
    }

    // ---- receiving ----

    fn receive_frames(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, EnipReceiveError> {
        let mut rest = chunk;
        let mut written = 0;
        // Each round consumes a message or ends: bounded by the chunk's length.
        for _ in 0..=chunk.len() {
            let room = out.len() - written;
            if room < self.samples_per_frame_max {
                if written == 0 && !rest.is_empty() {
                    let error = EnipError::SampleSliceTooSmall {
                        needed: self.samples_per_frame_max,
                        capacity: out.len(),
                    };
                    return Err(ReceiveError { error, samples: 0 });
                }
                break;
            }
            let slot = out.get_mut(written..).unwrap_or_default();
            match self.next_message(&mut rest, ts_ns, slot) {
                Ok(Some(count)) => written += count,
                Ok(None) => break,
                Err((error, failed)) => {
                    return Err(ReceiveError {
                        error,
                        samples: written + failed,
                    })
                }
            }
        }
        Ok(Received {
            consumed: chunk.len() - rest.len(),
            samples: written,
        })
    }

    /// Frames and handles one message; an error after a reply was matched
    /// to its request still ends that request in its records
    /// (`DECODE_ERROR`), counted in the error's second field.
    fn next_message(
        &mut self,
        rest: &mut &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Option<usize>, (EnipError, usize)> {
        // A frame may borrow the framer's buffer while the session handles
        // it: the framer is moved out for that (an Option take, no copy).
        let Some(mut framer) = self.framer.take() else {
            unreachable!("the framer is put back after every message");
        };
        let result = match framer.next_frame(rest) {
            Ok(Some(frame)) => self.handle_frame(&frame, ts_ns, out).map(Some),
            Ok(None) => Ok(None),
            Err(error) => Err((error, 0)),
        };
        self.framer = Some(framer);
        result
    }

    fn handle_frame(
        &mut self,
        frame: &Frame<'_>,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, (EnipError, usize)> {
        let unmatched = |error| (error, 0);
        match self.phase {
            Phase::Register { sent: true } => {
                self.session_handle = encap::register_reply(frame).map_err(unmatched)?;
                self.handshake_deadline_ns = None;
                self.phase = self.open_phase();
                Ok(0)
            }
            Phase::Open { large, sent: true } => {
                let cip = encap::unconnected_reply(frame, self.session_handle);
                self.forward_open_reply(large, cip.map_err(unmatched)?)
                    .map_err(unmatched)?;
                Ok(0)
            }
            Phase::Ready => {
                let connected = encap::connected_reply(frame, self.session_handle);
                let connected = connected.map_err(unmatched)?;
                let ours = [self.to_connection_id, self.ot_connection_id];
                if !ours.contains(&connected.connection_id) {
                    return Err(unmatched(EnipError::ConnectionId {
                        expected: self.to_connection_id,
                        found: connected.connection_id,
                    }));
                }
                let position = self
                    .inflight
                    .iter()
                    .position(|i| i.sequence == connected.sequence)
                    .ok_or(EnipError::SequenceUnknown {
                        found: connected.sequence,
                    })
                    .map_err(unmatched)?;
                let inflight = self.inflight.swap_remove(position);
                self.handle_reply(inflight.what, connected.cip, ts_ns, out)
            }
            _ => Err(unmatched(EnipError::Unsolicited {
                command: frame.header.command,
            })),
        }
    }

    fn forward_open_reply(&mut self, large: bool, cip: &[u8]) -> Result<(), EnipError> {
        let reply = parse_reply(cip)?;
        reply.expect(if large {
            LARGE_FORWARD_OPEN
        } else {
            FORWARD_OPEN
        })?;
        self.handshake_deadline_ns = None;
        if reply.general != cip::STATUS_SUCCESS {
            // A refusal of the route is not about the size: a Forward Open
            // along it would be refused the same, so it is not tried.
            if large && !is_route_refusal(reply.general, reply.extended) {
                self.large_refused = true;
                self.notices.raise(EnipNotice::LargeForwardOpenRefused {
                    general: reply.general,
                    extended: reply.extended,
                    size: self
                        .config
                        .connection_size
                        .min(CONNECTION_SIZE_SMALL as u16),
                });
                self.phase = self.open_phase();
                return Ok(());
            }
            return Err(EnipError::ForwardOpenRefused {
                step: if large {
                    Step::LargeForwardOpen
                } else {
                    Step::ForwardOpen
                },
                general: reply.general,
                extended: reply.extended,
            });
        }
        let opened = parse_forward_open_reply(reply.data, self.triad)?;
        self.ot_connection_id = opened.ot_connection_id;
        self.active = usize::from(!large && self.config.connection_size > FORWARD_OPEN_SIZE_MAX);
        self.next_sequence = 1;
        self.phase = Phase::Ready;
        // A cycle started before the handshake ended (nothing was sent of
        // it) starts over on the plan now in force.
        self.cursor = self.cursor.min(self.plan().requests.len());
        Ok(())
    }

    /// Handles the reply to one outstanding message: every read it covers
    /// ends in records, or waits for its next fragment.
    fn handle_reply(
        &mut self,
        what: Outstanding,
        cip: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, (EnipError, usize)> {
        let reads = self.reads_of(what);
        let parsed = parse_reply(cip).and_then(|reply| {
            let expected = match what {
                Outstanding::Continuation(_) => SERVICE_0X52,
                Outstanding::Request(index) => {
                    match self.plan().requests.get(index as usize).map(|r| r.kind) {
                        Some(RequestKind::Multiple) => MULTIPLE_SERVICE_PACKET,
                        Some(RequestKind::Fragmented) => SERVICE_0X52,
                        _ => READ_TAG,
                    }
                }
            };
            reply.expect(expected).map(|()| (reply, expected))
        });
        let (reply, service) = match parsed {
            Ok(parsed) => parsed,
            Err(error) => {
                return Err((
                    error,
                    self.fail_reads(reads, Quality::DECODE_ERROR, ts_ns, out),
                ))
            }
        };
        if service != MULTIPLE_SERVICE_PACKET {
            let index = reads.start;
            return Ok(self.read_reply(index, &reply, ts_ns, out));
        }
        match reply.general {
            cip::STATUS_SUCCESS | cip::STATUS_EMBEDDED_SERVICE_ERROR => {}
            general => {
                self.notices.raise(EnipNotice::RequestRefused {
                    general,
                    extended: reply.extended,
                });
                let quality = Quality::cip(general, reply.extended);
                let written = self.fail_reads(reads, quality, ts_ns, out);
                self.device_bad += written as u64;
                return Ok(written);
            }
        }
        if let Outstanding::Request(request) = what {
            let layouts = active_plan(&self.layouts, self.active);
            let compiled = layouts.get(request as usize).and_then(Option::as_ref);
            let planned = active_plan(&self.plans, self.active)
                .reads
                .get(reads.clone());
            if let (Some(layout), Some(planned)) = (compiled, planned) {
                if let Some(written) = layout.decode(planned, reply.data, ts_ns, out) {
                    let done = planned.iter().map(|r| Progress {
                        elements: u32::from(r.request_elements),
                        samples: r.samples,
                    });
                    if let Some(progress) = self.progress.get_mut(reads.clone()) {
                        for (p, done) in progress.iter_mut().zip(done) {
                            *p = done;
                        }
                    }
                    return Ok(written);
                }
            }
        }
        let count = reads.len() as u16;
        let replies = match MspReplies::parse(reply.data, count) {
            Ok(replies) => replies,
            Err(error) => {
                return Err((
                    error,
                    self.fail_reads(reads, Quality::DECODE_ERROR, ts_ns, out),
                ))
            }
        };
        // Every embedded reply is checked on its own: some servers answer
        // 0x00 overall while one inside failed.
        let mut written = 0;
        for (position, index) in reads.clone().enumerate() {
            let bytes = replies.get(position as u16);
            let slot = out.get_mut(written..).unwrap_or_default();
            if let (Some(read), Some(progress)) = (
                active_plan(&self.plans, self.active).reads.get(index),
                self.progress.get_mut(index),
            ) {
                if let Some(records) = decode::scalar_reply(read, bytes, ts_ns, slot) {
                    *progress = Progress {
                        elements: 1,
                        samples: read.samples,
                    };
                    written += records;
                    continue;
                }
            }
            let embedded = parse_reply(bytes).and_then(|r| r.expect(READ_TAG).map(|()| r));
            match embedded {
                Ok(embedded) => written += self.read_reply(index, &embedded, ts_ns, slot),
                Err(error) => {
                    let rest = index..reads.end;
                    let failed = self.fail_reads(rest, Quality::DECODE_ERROR, ts_ns, slot);
                    return Err((error, written + failed));
                }
            }
        }
        Ok(written)
    }

    /// The reads an outstanding message covers, as indices of the plan.
    fn reads_of(&self, what: Outstanding) -> std::ops::Range<usize> {
        match what {
            Outstanding::Continuation(read) => read as usize..read as usize + 1,
            Outstanding::Request(index) => self
                .plan()
                .requests
                .get(index as usize)
                .map_or(0..0, |r| r.reads.clone()),
        }
    }

    /// Writes `quality` records for what is left of each read; returns them.
    fn fail_reads(
        &mut self,
        reads: std::ops::Range<usize>,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let mut written = 0;
        for index in reads {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.finish_read(index, quality, ts_ns, slot);
        }
        written
    }

    /// Ends a read with `quality` records for its samples not written yet.
    fn finish_read(
        &mut self,
        index: usize,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let progress = self.progress_of(index);
        let Some(read) = active_plan(&self.plans, self.active).reads.get(index) else {
            return 0;
        };
        let written = write_bad(read, progress.samples, quality, ts_ns, out);
        if let Some(p) = self.progress.get_mut(index) {
            p.samples = read.samples;
        }
        written
    }

    /// One read's reply (bare, embedded or a fragment): its samples, a
    /// device-reported status, or a continuation queued.
    fn read_reply(
        &mut self,
        index: usize,
        reply: &Reply<'_>,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> usize {
        let Some(read) = active_plan(&self.plans, self.active).reads.get(index) else {
            return 0;
        };
        let label = self.labels.get(read.config_index as usize).copied();
        let label = label.unwrap_or_else(|| ShortText::new("?"));
        let partial = reply.general == cip::STATUS_PARTIAL_TRANSFER;
        if reply.general != cip::STATUS_SUCCESS && !partial {
            let notice = match reply.general {
                cip::STATUS_PATH_SEGMENT_ERROR | cip::STATUS_PATH_DESTINATION_UNKNOWN => {
                    EnipNotice::TagNotFound {
                        tag: label,
                        general: reply.general,
                        extended: reply.extended,
                    }
                }
                general => EnipNotice::TagRefused {
                    tag: label,
                    general,
                    extended: reply.extended,
                },
            };
            self.notices.raise(notice);
            let quality = Quality::cip(reply.general, reply.extended);
            let written = self.finish_read(index, quality, ts_ns, out);
            self.device_bad += written as u64;
            return written;
        }
        let Some(typed) = typed_data(reply.data) else {
            return self.finish_read(index, Quality::DECODE_ERROR, ts_ns, out);
        };
        let Some(width) = element_width(read, &typed) else {
            self.notices.raise(EnipNotice::TypeMismatch {
                tag: label,
                found: typed.type_code,
            });
            return self.finish_read(index, Quality::TYPE_MISMATCH, ts_ns, out);
        };
        let progress = self.progress_of(index);
        let decoded = decode::decode(
            read,
            width,
            typed.data,
            progress.elements,
            progress.samples,
            ts_ns,
            out,
        );
        let samples = read.samples;
        if let Some(p) = self.progress.get_mut(index) {
            p.elements += decoded.elements;
            p.samples = decoded.samples_done;
        }
        if decoded.samples_done >= samples {
            return decoded.records;
        }
        // Samples are missing: a partial transfer that made progress goes
        // on from where it stopped; anything else is an answer too short.
        let slot = out.get_mut(decoded.records..).unwrap_or_default();
        if partial && decoded.elements > 0 {
            self.continuations.push_back(index as u32);
            return decoded.records;
        }
        decoded.records + self.finish_read(index, Quality::DECODE_ERROR, ts_ns, slot)
    }

    // ---- failing ----

    /// Fails outstanding messages picked by `pick` with `quality`, one per
    /// round while `out` has a frame's room.
    fn fail_inflight(
        &mut self,
        quality: Quality,
        ts_ns: i64,
        out: &mut [Sample],
        pick: impl Fn(&Inflight) -> bool,
    ) -> usize {
        let mut written = 0;
        for _ in 0..INFLIGHT_MAX {
            if out.len() - written < self.samples_per_frame_max {
                break;
            }
            let Some(position) = self.inflight.iter().position(&pick) else {
                break;
            };
            let inflight = self.inflight.swap_remove(position);
            let reads = self.reads_of(inflight.what);
            let slot = out.get_mut(written..).unwrap_or_default();
            written += self.fail_reads(reads, quality, ts_ns, slot);
        }
        written
    }

    /// A clean stop: Forward Close and UnregisterSession, once, when the
    /// connection is up. The caller sends them and closes the socket.
    pub fn close_messages(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.phase != Phase::Ready {
            return None;
        }
        let n = self.write_close(buf);
        self.phase = Phase::Closed;
        (n > 0).then_some(n)
    }

    fn clear_framer(&mut self) {
        if let Some(framer) = &mut self.framer {
            framer.clear();
        }
    }

    pub fn notices_dropped(&self) -> u64 {
        self.notices.dropped
    }
}

/// Whether a Forward Open's refusal is about the route to the module
/// (CIP Vol 1 3-5.6: port, link address, segment, no answer along it; a
/// path that names nothing there), not about the connection asked for.
const fn is_route_refusal(general: u8, extended: u16) -> bool {
    matches!(
        (general, extended),
        (0x01, 0x0204 | 0x0311 | 0x0312 | 0x0315) | (0x04 | 0x05, _)
    )
}

/// `plans[active]`: 0 the size asked for, anything else the fallback. A
/// free function so that a caller may borrow the plan and another field of
/// the session at once.
fn active_plan<T>(plans: &[T; 2], active: usize) -> &T {
    let [asked, fallback] = plans;
    if active == 0 {
        asked
    } else {
        fallback
    }
}

/// A plan's requests as CIP bytes, back to back.
#[derive(Clone, Debug, Default)]
struct EncodedRequests {
    bytes: Vec<u8>,
    /// `None` for a request that did not fit its scratch buffer: never
    /// sent, as a request too long to write is not.
    spans: Vec<Option<std::ops::Range<usize>>>,
}

impl EncodedRequests {
    fn of(plan: &Plan) -> Self {
        let mut encoded = EncodedRequests::default();
        // A request fits its connection's message (the planner's rule);
        // twice that is room a miscount would show in, as a short request.
        let mut scratch = vec![0u8; 2 * plan.message_bytes.max(64)];
        for request in &plan.requests {
            let mut w = Writer::new(&mut scratch);
            write_planned(&mut w, plan, request);
            let (n, whole) = (w.len(), !w.overflowed());
            let start = encoded.bytes.len();
            encoded
                .bytes
                .extend_from_slice(scratch.get(..n).unwrap_or_default());
            encoded.spans.push(whole.then_some(start..start + n));
        }
        encoded
    }

    fn get(&self, request: usize) -> Option<&[u8]> {
        let span = self.spans.get(request)?.clone()?;
        self.bytes.get(span)
    }
}

/// The CIP request of a planned request.
fn write_planned(w: &mut Writer<'_>, plan: &Plan, request: &PlannedRequest) {
    let reads = plan.reads.get(request.reads.clone()).unwrap_or_default();
    match (request.kind, reads) {
        (RequestKind::Single, [read]) => {
            cip::write_read_tag(w, plan.path(read), read.request_elements)
        }
        (RequestKind::Fragmented, [read]) => {
            cip::write_read_fragmented(w, plan.path(read), read.request_elements, 0)
        }
        _ => cip::write_multiple(w, reads.len() as u16, |w, i| {
            if let Some(read) = reads.get(usize::from(i)) {
                cip::write_read_tag(w, plan.path(read), read.request_elements);
            }
        }),
    }
}

/// EtherNet/IP on the protocol seam: a RegisterSession and (Large) Forward
/// Open handshake, then connected requests matched by sequence count.
impl Session for EnipSession {
    type Error = EnipError;
    type Notice = EnipNotice;

    fn request_bytes_max(&self) -> usize {
        self.request_bytes_max
    }
    fn samples_per_frame_max(&self) -> usize {
        self.samples_per_frame_max
    }
    fn cycle_samples(&self) -> usize {
        self.plan().records()
    }
    fn requests_per_cycle(&self) -> usize {
        self.plan().requests.len()
    }
    fn on_connected(&mut self, _now_ns: u64) {
        self.clear_framer();
        self.phase = Phase::Register { sent: false };
        self.handshake_deadline_ns = None;
        self.session_handle = 0;
    }
    fn is_ready(&self) -> bool {
        self.phase == Phase::Ready
    }
    fn start_cycle(&mut self) {
        self.cursor = 0;
        self.continuations.clear();
        for p in &mut self.progress {
            *p = Progress::default();
        }
    }
    fn cycle_sent(&self) -> bool {
        self.cursor >= self.plan().requests.len() && self.continuations.is_empty()
    }
    fn inflight_count(&self) -> usize {
        match self.handshake_step() {
            Some(_) => 1,
            None => self.inflight.len(),
        }
    }
    fn unsent_samples(&self) -> usize {
        let plan = self.plan();
        let requests: usize = plan
            .requests
            .get(self.cursor..)
            .unwrap_or_default()
            .iter()
            .map(|r| r.records)
            .sum();
        let continuing: usize = self
            .continuations
            .iter()
            .filter_map(|&i| {
                let read = plan.reads.get(i as usize)?;
                let done = self.progress_of(i as usize).samples;
                Some((read.samples - done.min(read.samples)) as usize * read.records_per_sample())
            })
            .sum();
        requests + continuing
    }
    fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
        if out.len() < self.samples_per_frame_max {
            return 0;
        }
        if let Some(read) = self.continuations.pop_front() {
            let read = read as usize;
            return self.fail_reads(read..read + 1, quality, ts_ns, out);
        }
        let Some(request) = self.plan().requests.get(self.cursor) else {
            return 0;
        };
        let reads = request.reads.clone();
        self.cursor += 1;
        self.fail_reads(reads, quality, ts_ns, out)
    }
    fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let buf = buf.get_mut(..self.request_bytes_max)?;
        self.transmit(now_ns, buf)
    }
    fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, EnipReceiveError> {
        self.receive_frames(chunk, ts_ns, out)
    }
    fn next_deadline_ns(&self) -> Option<u64> {
        if self.handshake_step().is_some() {
            return self.handshake_deadline_ns;
        }
        self.inflight.iter().map(|i| i.deadline_ns).min()
    }
    fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, EnipError> {
        if let Some(step) = self.handshake_step() {
            if self.handshake_deadline_ns.is_some_and(|d| d <= now_ns) {
                return Err(EnipError::HandshakeTimeout { step });
            }
            return Ok(0);
        }
        Ok(self.fail_inflight(Quality::TIMEOUT, ts_ns, out, |i| i.deadline_ns <= now_ns))
    }
    fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        self.clear_framer();
        self.phase = Phase::Down;
        self.handshake_deadline_ns = None;
        self.fail_inflight(Quality::NO_CONNECTION, ts_ns, out, |_| true)
    }
    fn classify(&self, error: &EnipError) -> ErrorClass {
        match error {
            EnipError::ForwardOpenRefused { .. } | EnipError::HandshakeTimeout { .. } => {
                ErrorClass::Handshake
            }
            EnipError::EncapStatus { command, .. }
                if *command == encap::REGISTER_SESSION || *command == encap::SEND_RR_DATA =>
            {
                ErrorClass::Handshake
            }
            _ => ErrorClass::Malformed,
        }
    }
    fn device_bad_samples(&self) -> u64 {
        self.device_bad
    }
    fn poll_notice(&mut self) -> Option<EnipNotice> {
        self.notices.pop()
    }
    fn poll_close(&mut self, buf: &mut [u8]) -> Option<usize> {
        let buf = buf.get_mut(..self.request_bytes_max)?;
        self.close_messages(buf)
    }
}
