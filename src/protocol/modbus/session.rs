//! `ModbusSession`: the per-connection state a reader drives. It owns the
//! plan, the transaction table and the framer; the driver owns the socket,
//! the clock and every buffer. See the module documentation in mod.rs.
//!
//! One connection may carry several devices (units): the Modbus devices of a
//! serial-to-TCP gateway sit behind one address and are told apart by the
//! unit id of each request. A shared session (`ModbusSession::shared`) holds
//! every unit's requests one unit after another, each request with its unit
//! id and its unit's timeout, and pipelines them by transaction id within
//! one `max_inflight` for the connection. Two rules keep one silent unit from
//! stalling the others:
//! - a unit whose request timed out is *silent* for the rest of the cycle:
//!   its unsent requests end in `TIMEOUT` without being sent (one timeout per
//!   cycle, not one per request), and it is asked again the next cycle;
//! - a late answer to a timed-out request (TCP) is dropped, not an error:
//!   the connection, which the other units need, stays up.

use crate::config::{DeviceConfig, Protocol};
use crate::protocol::session::{ErrorClass, Received, Session, UnitBad};
use crate::sample::{Quality, Sample, TagId};

use super::decode::write_bad;
use super::error::{ModbusError, RequestError};
use super::planner::{plan_device, DevicePlan, PlannedRequest};
use super::program::DecodeProgram;
use super::request::ReadRequest;
use super::response::{check_response, Payload};
use super::rtu_framer::RtuFramer;
use super::tcp_framer::MbapFramer;
use super::transactions::{Inflight, TransactionTable};

/// Bytes of the largest request `poll_transmit` writes (a TCP read request).
pub const REQUEST_BYTES_MAX: usize = super::limits::TCP_REQUEST_BYTES;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// MBAP header, responses matched by transaction id.
    Tcp,
    /// RTU ADU (unit, PDU, CRC-16) over a TCP stream, answered in order.
    RtuOverTcp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    pub unit_id: u8,
    pub framing: Framing,
    /// A request unanswered this long after it was sent times out.
    pub timeout_ns: u64,
    /// Requests outstanding at once (clamped to 1..=256).
    pub max_inflight: u32,
}

impl SessionConfig {
    /// `None` for a device of another protocol.
    pub fn from_device(device: &DeviceConfig) -> Option<Self> {
        let modbus = device.modbus_part()?;
        Some(SessionConfig {
            unit_id: modbus.unit_id,
            framing: match device.protocol {
                Protocol::ModbusRtuTcp => Framing::RtuOverTcp,
                _ => Framing::Tcp,
            },
            timeout_ns: u64::try_from(device.timeout.as_nanos()).unwrap_or(u64::MAX),
            max_inflight: device.max_inflight,
        })
    }
}

/// What `receive` returns on a protocol violation (see the seam's
/// `ReceiveError`).
pub type ReceiveError = crate::protocol::session::ReceiveError<ModbusError>;

/// One device on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Unit {
    unit_id: u8,
    timeout_ns: u64,
    /// A request of this unit timed out this cycle (shared sessions only).
    silent: bool,
    /// It has not answered since a request of it timed out (shared
    /// sessions only): its notice was raised, the next answer lifts it.
    quiet: bool,
    /// What went wrong for this unit alone since the session began.
    bad: UnitBad,
}

/// What a shared connection says about one of its units, once per change
/// (not per cycle): the reader logs it under the connection's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModbusNotice {
    /// A request to the unit timed out: until it answers, its requests end
    /// in TIMEOUT, one timeout a cycle.
    UnitSilent { unit_id: u8, position: u16 },
    /// The unit answered again.
    UnitAnswers { unit_id: u8, position: u16 },
}

impl ModbusNotice {
    /// The unit's position on the connection (0 for the first device, in
    /// request order), so the reader can name its device.
    pub fn position(self) -> u16 {
        match self {
            ModbusNotice::UnitSilent { position, .. }
            | ModbusNotice::UnitAnswers { position, .. } => position,
        }
    }
}

impl std::fmt::Display for ModbusNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            ModbusNotice::UnitSilent { unit_id, .. } => write!(
                f,
                "unit {unit_id} does not answer: its rows are TIMEOUT, one timeout a cycle, and \
                 the other units on this connection are asked on time"
            ),
            ModbusNotice::UnitAnswers { unit_id, .. } => write!(f, "unit {unit_id} answers again"),
        }
    }
}

/// Notices waiting for the reader, at most; more are dropped (the rows
/// still say it all).
const NOTICES_QUEUED_MAX: usize = 16;

/// Transaction ids of timed-out requests remembered per shared connection,
/// so that their late answers are dropped instead of breaking it.
const RETIRED_IDS: usize = 16;

/// One device connection: requests out, samples in.
#[derive(Clone, Debug)]
pub struct ModbusSession {
    config: SessionConfig,
    plan: DevicePlan,
    /// Parallel to `plan.requests`, validated once at construction.
    requests: Vec<ReadRequest>,
    /// Parallel to `plan.requests`: the compiled decoders.
    programs: Vec<DecodeProgram>,
    /// Runs of the decode programs packed (`packed.rs`): the reader's ring.
    pack_runs: bool,
    /// Parallel to `plan.requests`: the records each writes.
    record_counts: Vec<usize>,
    /// Parallel to `plan.requests`: the index of its unit in `units`.
    unit_of: Vec<u16>,
    /// The connection's devices, at least one, in request order.
    units: Vec<Unit>,
    /// Recently timed-out transaction ids (shared TCP sessions), a ring.
    retired: [Option<u16>; RETIRED_IDS],
    retired_next: usize,
    /// Unit notices for the reader (shared sessions), bounded.
    notices: std::collections::VecDeque<ModbusNotice>,
    samples_per_frame_max: usize,
    table: TransactionTable,
    next_transaction_id: u16,
    /// Next request of the current cycle to send; `requests.len()`: all sent.
    cursor: usize,
    tcp: MbapFramer,
    rtu: RtuFramer,
    /// Samples written with an exception quality since the session began,
    /// counted where the exception is decoded so drivers need not rescan.
    exception_samples: u64,
}

impl ModbusSession {
    /// Fails if a planned request breaks the protocol's limits (a plan made
    /// by `plan_device` never does).
    pub fn new(config: SessionConfig, plan: DevicePlan) -> Result<Self, RequestError> {
        Self::shared(config, vec![(config.unit_id, config.timeout_ns, plan)])
    }

    /// A session for the devices behind one connection, each given as its
    /// unit id, request timeout and plan (at least one; `config` gives the
    /// framing and the connection's `max_inflight`). Their requests go out
    /// in this order, each unit's after the previous one's.
    pub fn shared(
        config: SessionConfig,
        units: Vec<(u8, u64, DevicePlan)>,
    ) -> Result<Self, RequestError> {
        let unit_count = u16::try_from(units.len()).map_err(|_| RequestError::UnitCount)?;
        if unit_count == 0 {
            return Err(RequestError::UnitCount);
        }
        let mut plan = DevicePlan::default();
        let mut unit_of = Vec::new();
        let mut unit_list = Vec::with_capacity(units.len());
        for (index, (unit_id, timeout_ns, unit_plan)) in (0u16..).zip(units) {
            unit_of.extend(std::iter::repeat_n(index, unit_plan.requests.len()));
            plan.requests.extend(unit_plan.requests);
            unit_list.push(Unit {
                unit_id,
                timeout_ns,
                silent: false,
                quiet: false,
                bad: UnitBad::default(),
            });
        }
        let requests = plan
            .requests
            .iter()
            .map(|r| ReadRequest::new(r.area, r.start, r.quantity))
            .collect::<Result<Vec<_>, _>>()?;
        let programs = plan
            .requests
            .iter()
            .map(|r| DecodeProgram::compile(r.area, &r.tags))
            .collect();
        let record_counts = plan
            .requests
            .iter()
            .map(PlannedRequest::record_count)
            .collect();
        let samples_per_frame_max = plan.samples_per_request_max();
        let cursor = requests.len();
        Ok(ModbusSession {
            config,
            requests,
            programs,
            pack_runs: false,
            record_counts,
            unit_of,
            units: unit_list,
            retired: [None; RETIRED_IDS],
            retired_next: 0,
            notices: std::collections::VecDeque::with_capacity(NOTICES_QUEUED_MAX),
            samples_per_frame_max,
            table: TransactionTable::new(config.max_inflight as usize),
            next_transaction_id: 1,
            cursor,
            plan,
            tcp: MbapFramer::new(),
            rtu: RtuFramer::new(),
            exception_samples: 0,
        })
    }

    /// Devices (units) this connection polls.
    pub fn unit_count(&self) -> usize {
        self.units.len()
    }

    fn is_shared(&self) -> bool {
        self.units.len() > 1
    }

    /// Unit `unit`'s own timeouts and exception rows (units in the order
    /// the session was built with); `None` past the last.
    pub fn unit_bad(&self, unit: usize) -> Option<UnitBad> {
        self.units.get(unit).map(|u| u.bad)
    }

    /// The unit of request `index` (every index of the plan has one).
    fn unit(&self, index: usize) -> Option<&Unit> {
        let unit = *self.unit_of.get(index)?;
        self.units.get(unit as usize)
    }

    /// Samples written with `Quality::Exception` since the session began.
    pub fn exception_samples(&self) -> u64 {
        self.exception_samples
    }

    /// Plans the device and builds its session.
    pub fn for_device(device: &DeviceConfig, first_tag: TagId) -> Result<Self, RequestError> {
        Self::for_connection(&[(device, first_tag)])
    }

    /// Plans the devices that share one connection (the same address and
    /// framing, see `config::Config::connections`) and builds its session:
    /// the framing is the first device's, `max_inflight` the smallest of
    /// theirs (what the strictest says the gateway takes).
    pub fn for_connection(devices: &[(&DeviceConfig, TagId)]) -> Result<Self, RequestError> {
        let mut units = Vec::with_capacity(devices.len());
        let mut first: Option<SessionConfig> = None;
        for &(device, first_tag) in devices {
            let (Some(config), Some(modbus)) =
                (SessionConfig::from_device(device), device.modbus_part())
            else {
                return Err(RequestError::NotModbus);
            };
            let connection = first.get_or_insert(config);
            connection.max_inflight = connection.max_inflight.min(config.max_inflight);
            units.push((
                config.unit_id,
                config.timeout_ns,
                plan_device(modbus, first_tag),
            ));
        }
        Self::shared(first.ok_or(RequestError::UnitCount)?, units)
    }

    pub fn plan(&self) -> &DevicePlan {
        &self.plan
    }
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }
    /// The smallest sample slice `receive` and `handle_timeout` accept.
    pub fn samples_per_frame_max(&self) -> usize {
        self.samples_per_frame_max
    }
    pub fn inflight_count(&self) -> usize {
        self.table.len()
    }
    /// Every request of the cycle sent and answered (or timed out).
    pub fn cycle_done(&self) -> bool {
        self.cursor >= self.requests.len() && self.table.is_empty()
    }

    /// Every request of the cycle has been sent (answers may be pending).
    pub fn cycle_sent(&self) -> bool {
        self.cursor >= self.requests.len()
    }

    /// Starts a poll cycle: every planned request is due again. Returns how
    /// many requests of the previous cycle were never sent (an overrun).
    pub fn start_cycle(&mut self) -> usize {
        let unsent = self.requests.len().saturating_sub(self.cursor);
        self.cursor = 0;
        for unit in &mut self.units {
            unit.silent = false;
        }
        unsent
    }

    /// Writes the next due request into `buf` and returns its length, or
    /// `None` when the cycle is fully sent or `max_inflight` are outstanding.
    /// The request times out at `now_ns + timeout`.
    pub fn poll_transmit(
        &mut self,
        now_ns: u64,
        buf: &mut [u8; REQUEST_BYTES_MAX],
    ) -> Option<usize> {
        if self.table.is_full() {
            return None;
        }
        let request = *self.requests.get(self.cursor)?;
        let unit = *self.unit(self.cursor)?;
        if unit.silent {
            // `handle_timeout` ends it (`next_deadline_ns` says now).
            return None;
        }
        let transaction_id = self.allocate_transaction_id();
        let deadline_ns = now_ns.saturating_add(unit.timeout_ns);
        let inserted = self.table.insert(transaction_id, self.cursor, deadline_ns);
        assert!(inserted);
        self.cursor += 1;
        let unit_id = unit.unit_id;
        Some(match self.config.framing {
            Framing::Tcp => copy_into(buf, &request.encode_tcp(transaction_id, unit_id)),
            Framing::RtuOverTcp => copy_into(buf, &request.encode_rtu(unit_id)),
        })
    }

    /// A transaction id neither outstanding nor remembered as timed out
    /// (those hold at most 256 + 16 of the 65536, so this loop ends within
    /// 273 rounds).
    fn allocate_transaction_id(&mut self) -> u16 {
        for _ in 0..=self.table.capacity() + RETIRED_IDS {
            let candidate = self.next_transaction_id;
            self.next_transaction_id = self.next_transaction_id.wrapping_add(1);
            if !self.table.contains(candidate) && !self.retired.contains(&Some(candidate)) {
                return candidate;
            }
        }
        unreachable!("more transaction ids in flight than the table holds");
    }

    /// Feeds bytes received at `ts_ns` (UNIX ns); writes the records of each
    /// answered request's tags (one per tag, a string's text records) into
    /// `out`. Stops early when `out` has less room
    /// than `samples_per_frame_max()`: then `consumed < chunk.len()`.
    pub fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError> {
        let mut rest = chunk;
        let mut written = 0;
        // Each round consumes a frame or ends: bounded by the chunk's length.
        for _ in 0..=chunk.len() {
            let room = out.len() - written;
            if room < self.samples_per_frame_max {
                if written == 0 && !rest.is_empty() {
                    let error = ModbusError::SampleSliceTooSmall {
                        needed: self.samples_per_frame_max,
                        capacity: out.len(),
                    };
                    return Err(ReceiveError { error, samples: 0 });
                }
                break;
            }
            let slot = out.get_mut(written..).unwrap_or_default();
            match self.next_response(&mut rest, ts_ns, slot) {
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

    /// Frames, matches, validates and decodes one response. An error after
    /// the response was matched to its request still ends that request in
    /// one sample per tag: `DecodeError` samples, counted in the error's
    /// second field (the driver promised ring room for them; a request that
    /// ended in no sample at all leaked that room and left a silent hole).
    fn next_response(
        &mut self,
        rest: &mut &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Option<usize>, (ModbusError, usize)> {
        let unmatched = |error| (error, 0);
        let (inflight, unit_id, pdu) = match self.config.framing {
            Framing::Tcp => {
                let Some(frame) = self.tcp.next_frame(rest).map_err(unmatched)? else {
                    return Ok(None);
                };
                let inflight = match self.table.take(frame.transaction_id) {
                    Some(inflight) => inflight,
                    // A late answer: its request already ended in TIMEOUT.
                    None if forget_retired(&mut self.retired, frame.transaction_id) => {
                        return Ok(Some(0));
                    }
                    None => {
                        let found = frame.transaction_id;
                        return Err(unmatched(ModbusError::TransactionIdUnknown { found }));
                    }
                };
                (inflight, frame.unit_id, frame.pdu)
            }
            Framing::RtuOverTcp => {
                let Some(frame) = self.rtu.next_frame(rest).map_err(unmatched)? else {
                    return Ok(None);
                };
                let inflight = self.table.take_oldest();
                let inflight = inflight.ok_or(ModbusError::ResponseUnsolicited);
                (inflight.map_err(unmatched)?, frame.unit_id, frame.pdu)
            }
        };
        let index = inflight.request_index;
        let (Some(request), Some(planned), Some(program)) = (
            self.requests.get(index),
            self.plan.requests.get(index),
            self.programs.get(index),
        ) else {
            unreachable!("the table only holds indices of planned requests");
        };
        let position = self.unit_of.get(index).copied();
        let unit = position.and_then(|p| self.units.get_mut(usize::from(p)));
        let expected = unit.as_ref().map_or(0, |u| u.unit_id);
        if let Some(unit) = unit.filter(|u| u.quiet && u.unit_id == unit_id) {
            unit.quiet = false;
            let position = position.unwrap_or_default();
            notify(
                &mut self.notices,
                ModbusNotice::UnitAnswers { unit_id, position },
            );
        }
        let checked = if unit_id == expected {
            check_response(request, pdu)
        } else {
            Err(ModbusError::UnitIdMismatch {
                expected,
                found: unit_id,
            })
        };
        let payload = match checked {
            Ok(payload) => payload,
            Err(error) => {
                let written = write_bad(&planned.tags, ts_ns, Quality::DECODE_ERROR, out);
                return Err((error, written));
            }
        };
        Ok(Some(match payload {
            Payload::Data(data) => program.run(
                planned.area,
                &planned.tags,
                data,
                ts_ns,
                out,
                self.pack_runs,
            ),
            Payload::Exception(code) => {
                let written = write_bad(&planned.tags, ts_ns, Quality::modbus_exception(code), out);
                self.exception_samples += written as u64;
                let unit = self.unit_of.get(index).copied();
                if let Some(unit) = unit.and_then(|u| self.units.get_mut(u as usize)) {
                    unit.bad.exception_samples += written as u64;
                }
                written
            }
        }))
    }

    /// The earliest monotonic ns at which `handle_timeout` has work: now
    /// (0) when the next request to send is a silent unit's.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        if self.unit(self.cursor).is_some_and(|u| u.silent) {
            return Some(0);
        }
        self.table.next_deadline_ns()
    }

    /// Retires requests whose deadline passed, writing `Timeout` samples for
    /// their tags, then (shared sessions) the unsent requests of units that
    /// went silent. Returns the samples written; call again while it returns
    /// a non-zero count and more deadlines have passed. A late answer to a
    /// retired request is `TransactionIdUnknown` (TCP): reconnect then; on a
    /// shared connection it is dropped.
    pub fn handle_timeout(&mut self, now_ns: u64, ts_ns: i64, out: &mut [Sample]) -> usize {
        let mut written = self.fail_while(out, ts_ns, Quality::TIMEOUT, |session| {
            let inflight = session.table.take_expired(now_ns)?;
            if session.is_shared() {
                session.unit_timed_out(inflight);
            }
            Some(inflight)
        });
        if !self.is_shared() {
            return written;
        }
        // A silent unit's requests at the cursor end now, unsent.
        while self.unit(self.cursor).is_some_and(|u| u.silent)
            && out.len() - written >= self.samples_per_frame_max
        {
            let slot = out.get_mut(written..).unwrap_or_default();
            written += Session::fail_unsent(self, Quality::TIMEOUT, ts_ns, slot);
        }
        written
    }

    /// A shared connection's request timed out: remember its id (a late
    /// answer is dropped), silence its unit for the cycle, count it, and
    /// say so if the unit was answering.
    fn unit_timed_out(&mut self, inflight: Inflight) {
        if self.config.framing == Framing::Tcp {
            if let Some(slot) = self.retired.get_mut(self.retired_next % RETIRED_IDS) {
                *slot = Some(inflight.transaction_id);
            }
            self.retired_next = self.retired_next.wrapping_add(1);
        }
        let Some(position) = self.unit_of.get(inflight.request_index).copied() else {
            return;
        };
        let Some(unit) = self.units.get_mut(usize::from(position)) else {
            return;
        };
        unit.silent = true;
        unit.bad.timeouts += 1;
        if !unit.quiet {
            unit.quiet = true;
            let unit_id = unit.unit_id;
            notify(
                &mut self.notices,
                ModbusNotice::UnitSilent { unit_id, position },
            );
        }
    }

    /// The connection is gone: `NoConnection` samples for every outstanding
    /// request, partial frames dropped, the cycle's unsent requests kept.
    /// Returns the samples written; call again while it returns non-zero.
    pub fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        self.tcp.clear();
        self.rtu.clear();
        self.fail_while(out, ts_ns, Quality::NO_CONNECTION, |session| {
            session.table.take_any()
        })
    }

    fn fail_while(
        &mut self,
        out: &mut [Sample],
        ts_ns: i64,
        quality: Quality,
        mut next: impl FnMut(&mut Self) -> Option<Inflight>,
    ) -> usize {
        let mut written = 0;
        // At most one round per outstanding request.
        for _ in 0..self.table.capacity() {
            if out.len() - written < self.samples_per_frame_max {
                break;
            }
            let Some(inflight) = next(self) else {
                break;
            };
            let tags = self
                .planned(inflight.request_index)
                .map_or(&[][..], |r| &r.tags);
            let slot = out.get_mut(written..).unwrap_or_default();
            written += write_bad(tags, ts_ns, quality, slot);
        }
        written
    }

    fn planned(&self, index: usize) -> Option<&PlannedRequest> {
        self.plan.requests.get(index)
    }
}

/// Queues `notice` for the reader unless the queue is full.
fn notify(notices: &mut std::collections::VecDeque<ModbusNotice>, notice: ModbusNotice) {
    // The bound is the constant, not the capacity (a clone's may differ).
    if notices.len() < NOTICES_QUEUED_MAX {
        notices.push_back(notice);
    }
}

/// Takes a late answer's transaction id out of the retired ring: true when
/// it was there (the answer is to be dropped).
fn forget_retired(retired: &mut [Option<u16>; RETIRED_IDS], transaction_id: u16) -> bool {
    match retired.iter_mut().find(|r| **r == Some(transaction_id)) {
        Some(slot) => {
            *slot = None;
            true
        }
        None => false,
    }
}

fn copy_into(buf: &mut [u8; REQUEST_BYTES_MAX], bytes: &[u8]) -> usize {
    let target = buf.get_mut(..bytes.len()).unwrap_or_default();
    target.copy_from_slice(bytes);
    bytes.len()
}

/// Modbus on the protocol seam: no handshake (ready as soon as TCP is up),
/// one request per planned read, answers matched by transaction id (TCP) or
/// taken in order (RTU over TCP).
impl Session for ModbusSession {
    type Error = ModbusError;
    /// A shared connection's unit stopped or started answering (a device
    /// on a connection of its own says nothing outside its answers).
    type Notice = ModbusNotice;

    fn pack_runs(&mut self) {
        self.pack_runs = true;
    }
    fn request_bytes_max(&self) -> usize {
        REQUEST_BYTES_MAX
    }
    fn samples_per_frame_max(&self) -> usize {
        self.samples_per_frame_max
    }
    fn cycle_samples(&self) -> usize {
        self.plan.sample_count()
    }
    fn requests_per_cycle(&self) -> usize {
        self.requests.len()
    }
    fn on_connected(&mut self, _now_ns: u64) {}
    fn is_ready(&self) -> bool {
        true
    }
    fn start_cycle(&mut self) {
        ModbusSession::start_cycle(self);
    }
    fn cycle_sent(&self) -> bool {
        ModbusSession::cycle_sent(self)
    }
    fn inflight_count(&self) -> usize {
        self.table.len()
    }
    fn unsent_samples(&self) -> usize {
        let rest = self.record_counts.get(self.cursor..).unwrap_or_default();
        rest.iter().sum()
    }
    fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
        if out.len() < self.samples_per_frame_max {
            return 0;
        }
        let Some(request) = self.plan.requests.get(self.cursor) else {
            return 0;
        };
        self.cursor += 1;
        write_bad(&request.tags, ts_ns, quality, out)
    }
    fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        let buf = buf.get_mut(..REQUEST_BYTES_MAX)?;
        let buf = <&mut [u8; REQUEST_BYTES_MAX]>::try_from(buf).ok()?;
        ModbusSession::poll_transmit(self, now_ns, buf)
    }
    fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError> {
        ModbusSession::receive(self, chunk, ts_ns, out)
    }
    fn next_deadline_ns(&self) -> Option<u64> {
        ModbusSession::next_deadline_ns(self)
    }
    fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, ModbusError> {
        Ok(ModbusSession::handle_timeout(self, now_ns, ts_ns, out))
    }
    fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        ModbusSession::disconnect(self, ts_ns, out)
    }
    fn classify(&self, _error: &ModbusError) -> ErrorClass {
        ErrorClass::Malformed
    }
    fn device_bad_samples(&self) -> u64 {
        self.exception_samples
    }
    fn poll_notice(&mut self) -> Option<Self::Notice> {
        self.notices.pop_front()
    }
}
