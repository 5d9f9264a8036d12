//! One EtherNet/IP connection's server state and the per-message step the
//! shared connection pump calls: RegisterSession, ListIdentity, then
//! SendRRData (Forward Open, Large Forward Open, Forward Close, Unconnected
//! Send, unconnected requests) and SendUnitData (connected requests on the
//! connection a Forward Open made), UnregisterSession to end.
//!
//! The encapsulation and CIP codec is millrace's own (`protocol::enip`:
//! the header, the common packet format, requests and Multiple Service
//! Packet tables are parsed by the same checked code the client uses);
//! the farm's independence lies in its values and its answers, which the
//! cross-checks with pylogix and pycomm3 hold against other codecs.
//!
//! | message | answer |
//! |---|---|
//! | RegisterSession, protocol version 1 | a session handle |
//! | Large Forward Open, the farm refusing it (its mode) | 0x08 service not supported |
//! | a Forward Open asking more than the farm's connection size | 0x01, extended 0x0109 |
//! | SendUnitData naming another connection, a session not registered | the connection closes |
//! | a length that disagrees with the bytes, another command | the connection closes |
//! | UnregisterSession | the connection closes |

use crate::farm::conn::{Behaviour, Device, Served};
use crate::farm::counters::Tally;
use crate::farm::fault::{self, Fault};
use crate::protocol::enip::cip::{self, RequestKind, Triad};
use crate::protocol::enip::encap::{
    self, Frame, Header, REGISTER_SESSION, SEND_RR_DATA, SEND_UNIT_DATA, UNREGISTER_SESSION,
};
use crate::protocol::enip::limits::{
    ENCAP_DATA_BYTES_MAX, ENCAP_FRAME_BYTES_MAX, ENCAP_HEADER_BYTES,
};
use crate::protocol::enip::wire::{Reader, Writer};
use crate::protocol::enip::Field;

use super::services::{self, reply_head, Answer};
use super::EnipBehaviour;

pub const LIST_IDENTITY: u16 = 0x0063;
/// The largest answer: one whole encapsulation message.
pub const ANSWER_SIZE_MAX: usize = ENCAP_FRAME_BYTES_MAX;
/// Reply room of an unconnected request (what a Logix controller allows
/// without a connection).
const UNCONNECTED_ROOM: usize = 504;
/// General status 0x01 (connection failure), extended 0x0109: the size
/// asked for is more than the module allows.
const STATUS_CONNECTION_FAILURE: u8 = 0x01;
const EXTENDED_INVALID_SIZE: u16 = 0x0109;
/// Where the data item's length is in a SendUnitData answer: header,
/// interface handle, timeout, item count, address item (8), data item type.
const DATA_ITEM_LENGTH_AT: usize = ENCAP_HEADER_BYTES + 4 + 2 + 2 + 8 + 2;

/// The connection a Forward Open made.
#[derive(Clone, Copy, Debug)]
struct Connection {
    /// The id the client sends on (the farm chose it).
    ot_id: u32,
    /// The id the farm answers on (the client chose it).
    to_id: u32,
    /// Bytes of a connected message, sequence count included.
    size: usize,
    triad: Triad,
}

/// One connection's EtherNet/IP state.
#[derive(Debug)]
pub(in crate::farm) struct EnipConn {
    /// 0 until RegisterSession.
    session: u32,
    connection: Option<Connection>,
}

/// What answering one message came to.
enum Step {
    /// `size` bytes written; the fault drawn for it.
    Reply(usize, Fault),
    Close,
}

/// One whole message at the front of `pending`, and its size; `Ok(None)`
/// until it is all there.
fn next_frame(pending: &[u8]) -> Result<Option<(Frame<'_>, usize)>, ()> {
    let Some(head) = pending.get(..ENCAP_HEADER_BYTES) else {
        return Ok(None);
    };
    let header = Header::parse(head).map_err(|_| ())?;
    let length = usize::from(header.length);
    if length > ENCAP_DATA_BYTES_MAX {
        return Err(());
    }
    let total = ENCAP_HEADER_BYTES + length;
    Ok(pending
        .get(ENCAP_HEADER_BYTES..total)
        .map(|data| (Frame { header, data }, total)))
}

impl EnipConn {
    pub fn new() -> Self {
        EnipConn {
            session: 0,
            connection: None,
        }
    }

    /// Answers the message at the front of `pending` (if it is whole).
    pub fn serve(
        &mut self,
        pending: &[u8],
        out: &mut Vec<u8>,
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Served {
        let (frame, consumed) = match next_frame(pending) {
            Ok(Some(next)) => next,
            Ok(None) => return Served::NeedMore,
            Err(()) => {
                tally.framing_errors += 1;
                return Served::Close;
            }
        };
        tally.requests += 1;
        let at = out.len();
        out.resize(at + ANSWER_SIZE_MAX, 0);
        let step = match out.get_mut(at..) {
            Some(buf) => self.step(&frame, buf, device, how, tally),
            None => Step::Close,
        };
        match step {
            Step::Reply(size, fault) => {
                out.truncate(at + size);
                malform(out.get_mut(at..).unwrap_or_default(), fault);
                Served::Answered {
                    consumed,
                    fault,
                    last: false,
                }
            }
            Step::Close => {
                out.truncate(at);
                Served::Close
            }
        }
    }

    fn step(
        &mut self,
        frame: &Frame<'_>,
        buf: &mut [u8],
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Step {
        let header = &frame.header;
        let registered = self.session != 0 && header.session == self.session;
        let reply = |size: usize| match size {
            0 => Step::Close,
            size => Step::Reply(size, Fault::None),
        };
        match header.command {
            REGISTER_SESSION if self.session == 0 => {
                let mut r = Reader::new(frame.data);
                let version = r.u16(Field::RegisterData);
                if version != Ok(1) || r.u16(Field::RegisterData).is_err() {
                    tally.framing_errors += 1;
                    return Step::Close;
                }
                self.session = 0x4D52_0000 | (device.index & 0xFFFF) | 1;
                reply(encap::message(
                    buf,
                    REGISTER_SESSION,
                    self.session,
                    header.context,
                    |w| {
                        w.u16(1);
                        w.u16(0);
                    },
                ))
            }
            LIST_IDENTITY => reply(encap::message(
                buf,
                LIST_IDENTITY,
                header.session,
                header.context,
                list_identity,
            )),
            UNREGISTER_SESSION => Step::Close,
            SEND_RR_DATA if registered => self.unconnected(frame, buf, device, how, tally),
            SEND_UNIT_DATA if registered => self.connected(frame, buf, device, how, tally),
            _ => {
                tally.framing_errors += 1;
                Step::Close
            }
        }
    }

    /// SendRRData: the Connection Manager's services, or an unconnected
    /// request (bare or in an Unconnected Send).
    fn unconnected(
        &mut self,
        frame: &Frame<'_>,
        buf: &mut [u8],
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Step {
        // A request's common packet has the reply's shape: the client's
        // parser checks it (command, session, null address, data item).
        let Ok(request) =
            encap::unconnected_reply(frame, self.session).and_then(cip::parse_request)
        else {
            tally.framing_errors += 1;
            return Step::Close;
        };
        let session = self.session;
        let context = frame.header.context;
        let mut fault = Fault::None;
        let size = encap::send_rr_data(buf, session, context, |w| {
            match cip::request_service(request.service, request.path) {
                RequestKind::ForwardOpen | RequestKind::LargeForwardOpen => {
                    self.forward_open(w, &request, &how.enip)
                }
                RequestKind::ForwardClose => self.forward_close(w, &request),
                RequestKind::UnconnectedSend => match embedded(request.data) {
                    Some(inner) => fault = answer(w, &inner, UNCONNECTED_ROOM, device, how, tally),
                    None => reply_head(w, request.service, 0x13, None),
                },
                _ => fault = answer(w, &request, UNCONNECTED_ROOM, device, how, tally),
            }
        });
        finish(size, fault)
    }

    /// SendUnitData on the connection a Forward Open made.
    fn connected(
        &mut self,
        frame: &Frame<'_>,
        buf: &mut [u8],
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Step {
        let parsed = encap::connected_reply(frame, self.session);
        let (Some(connection), Ok(message)) = (self.connection, parsed) else {
            tally.framing_errors += 1;
            return Step::Close;
        };
        let request = cip::parse_request(message.cip);
        let (true, Ok(request)) = (message.connection_id == connection.ot_id, request) else {
            tally.framing_errors += 1;
            return Step::Close;
        };
        let room = connection.size - 2;
        let mut fault = Fault::None;
        let size =
            encap::send_unit_data(buf, self.session, connection.to_id, message.sequence, |w| {
                fault = answer(w, &request, room, device, how, tally)
            });
        finish(size, fault)
    }

    /// Forward Open and Large Forward Open: a connection of the size asked
    /// for, up to the farm's; the large one refused in the farm's mode.
    fn forward_open(
        &mut self,
        w: &mut Writer<'_>,
        request: &cip::Request<'_>,
        how: &EnipBehaviour,
    ) {
        let large = request.service == cip::LARGE_FORWARD_OPEN;
        if large && !how.large_forward_open {
            return reply_head(w, request.service, cip::STATUS_SERVICE_NOT_SUPPORTED, None);
        }
        let Some(open) = parse_forward_open(request.data, large) else {
            return reply_head(w, request.service, 0x13, None);
        };
        if open.size > usize::from(how.connection_size) || open.size < 8 {
            return reply_head(
                w,
                request.service,
                STATUS_CONNECTION_FAILURE,
                Some(EXTENDED_INVALID_SIZE),
            );
        }
        let ot_id = 0x4D52_0000
            ^ open.triad.originator_serial.rotate_left(16)
            ^ u32::from(open.triad.connection_serial);
        self.connection = Some(Connection {
            ot_id,
            to_id: open.to_id,
            size: open.size,
            triad: open.triad,
        });
        reply_head(w, request.service, cip::STATUS_SUCCESS, None);
        w.u32(ot_id);
        w.u32(open.to_id);
        w.u16(open.triad.connection_serial);
        w.u16(open.triad.vendor_id);
        w.u32(open.triad.originator_serial);
        w.u32(open.rpi_us);
        w.u32(open.rpi_us);
        w.u8(0); // application reply size
        w.u8(0);
    }

    /// Forward Close of the connection (any triad: the farm has one).
    fn forward_close(&mut self, w: &mut Writer<'_>, request: &cip::Request<'_>) {
        let mut r = Reader::new(request.data);
        let f = Field::ForwardOpenReply;
        let triad = (|| {
            r.take(2, f).ok()?;
            Some(Triad {
                connection_serial: r.u16(f).ok()?,
                vendor_id: r.u16(f).ok()?,
                originator_serial: r.u32(f).ok()?,
            })
        })();
        let Some(triad) = triad else {
            return reply_head(w, request.service, 0x13, None);
        };
        if self.connection.is_some_and(|c| c.triad == triad) {
            self.connection = None;
        }
        reply_head(w, request.service, cip::STATUS_SUCCESS, None);
        w.u16(triad.connection_serial);
        w.u16(triad.vendor_id);
        w.u32(triad.originator_serial);
        w.u8(0);
        w.u8(0);
    }
}

/// The answer's size and fault as a step (0 bytes: it did not fit).
fn finish(size: usize, fault: Fault) -> Step {
    match (size, fault) {
        (0, _) | (_, Fault::DropConnection) => Step::Close,
        (size, fault) => Step::Reply(size, fault),
    }
}

/// Answers one request at the message router; a request that reads data
/// takes the device's next counter and draws a fault.
fn answer(
    w: &mut Writer<'_>,
    request: &cip::Request<'_>,
    room: usize,
    device: &mut Device,
    how: &Behaviour,
    tally: &mut Tally,
) -> Fault {
    let mut answer = Answer {
        device: device.index,
        counter: device.counter as u8,
        fail_first: false,
    };
    let mut fault = Fault::None;
    if services::reads_data(request) {
        fault = how.enip_plan.draw(&mut device.rng);
        tally.count_fault(fault);
        if fault == Fault::DropConnection {
            return fault;
        }
        answer.fail_first = fault == Fault::Exception;
        device.counter = device.counter.wrapping_add(1);
        tally.data_responses += 1;
    }
    services::route(w, request, room, &mut answer);
    fault
}

/// What a Forward Open asks for.
struct Open {
    to_id: u32,
    triad: Triad,
    rpi_us: u32,
    size: usize,
}

fn parse_forward_open(data: &[u8], large: bool) -> Option<Open> {
    let mut r = Reader::new(data);
    let f = Field::ForwardOpenReply;
    r.take(2, f).ok()?; // priority and time tick, timeout ticks
    let _ot_id = r.u32(f).ok()?;
    let to_id = r.u32(f).ok()?;
    let triad = Triad {
        connection_serial: r.u16(f).ok()?,
        vendor_id: r.u16(f).ok()?,
        originator_serial: r.u32(f).ok()?,
    };
    r.take(4, f).ok()?; // timeout multiplier, reserved
    let rpi_us = r.u32(f).ok()?;
    let size = if large {
        (r.u32(f).ok()? & 0xFFFF) as usize
    } else {
        usize::from(r.u16(f).ok()? & 0x01FF)
    };
    let _to_rpi = r.u32(f).ok()?;
    if large {
        r.u32(f).ok()?;
    } else {
        r.u16(f).ok()?;
    }
    let _transport = r.u8(f).ok()?;
    let words = r.u8(f).ok()?;
    r.take(2 * usize::from(words), f).ok()?;
    r.finish(f).ok()?;
    Some(Open {
        to_id,
        triad,
        rpi_us,
        size,
    })
}

/// The request an Unconnected Send carries (its route is not checked:
/// every farm device is the controller it names).
fn embedded(data: &[u8]) -> Option<cip::Request<'_>> {
    let mut r = Reader::new(data);
    let f = Field::TagData;
    r.take(2, f).ok()?; // priority and time tick, timeout ticks
    let size = r.u16(f).ok()?;
    let message = r.take(usize::from(size), f).ok()?;
    cip::parse_request(message).ok()
}

/// ListIdentity: one identity item (the encapsulation version, a socket
/// address, the Identity object's attributes, the state).
fn list_identity(w: &mut Writer<'_>) {
    w.u16(1); // item count
    w.u16(0x000C);
    let length_at = w.len();
    w.u16(0);
    w.u16(1); // encapsulation protocol version
    w.bytes(&[0, 2, 0xAF, 0x12, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]); // AF_INET, 44818
    services::write_identity(w);
    w.u8(3); // state: operational
    let length = w.len() - length_at - 2;
    w.patch_u16(length_at, length as u16);
}

/// Turns the well-formed answer in `answer` into the malformed kind: the
/// data item length 2 more than follows, or the encapsulation length 2
/// less than sent.
fn malform(answer: &mut [u8], fault: Fault) {
    match fault {
        Fault::MalformedCount => fault::add_to_u16_le(answer, DATA_ITEM_LENGTH_AT, 2),
        Fault::MalformedFrameLength => fault::add_to_u16_le(answer, 2, -2),
        _ => {}
    }
}
