//! One client connection to a simulated device: its buffers, and the pump
//! that reads requests, answers them and writes the answers back, without
//! blocking and without allocating after the connection was accepted. The
//! pump is protocol-neutral: each protocol's step (`modbus::serve`,
//! `s7::serve`) answers one request at the front of the input. A connection
//! reaches the devices behind its port: one, or (Modbus, a gateway) several
//! told apart by the unit id of each request (`ports.rs`).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::counters::Tally;
use super::enip::{self, serve::EnipConn, EnipBehaviour};
use super::fault::{Fault, FaultPlan, SplitMix64};
use super::modbus::{self, adu::ADU_SIZE_MAX, ModbusMemory};
use super::s7::{self, serve::S7Conn, S7Behaviour};
use super::DeviceProtocol;

/// Output buffer: answers waiting to be sent. When it is full we stop
/// parsing, then stop reading: TCP pushes back on a client that pipelines
/// faster than it reads.
const OUTPUT_SIZE: usize = 8192;
/// Answers held back (delay or stall) per connection.
const HELD_COUNT_MAX: usize = 256;
/// Rounds of read/answer/write per wake-up before other connections get a
/// turn; the connection is then queued to run again.
const PUMP_ROUNDS_MAX: usize = 16;

/// Input buffer per protocol: room for several pipelined requests and
/// always for one maximal frame after compaction.
const MODBUS_INPUT_SIZE: usize = 2048;
const S7_INPUT_SIZE: usize = 2 * s7::wire::TPKT_SIZE_MAX;
const ENIP_INPUT_SIZE: usize = 2 * enip::serve::ANSWER_SIZE_MAX;
/// An EtherNet/IP answer is up to a whole 4 KiB connected message: room
/// for four of them.
const ENIP_OUTPUT_SIZE: usize = 4 * enip::serve::ANSWER_SIZE_MAX;

const _: () = assert!(MODBUS_INPUT_SIZE >= 2 * ADU_SIZE_MAX);
const _: () = assert!(OUTPUT_SIZE >= 4 * ADU_SIZE_MAX);
const _: () = assert!(OUTPUT_SIZE >= 4 * s7::wire::ANSWER_SIZE_MAX);

/// What the farm knows of one device while it serves it.
pub(in crate::farm) struct Device {
    /// The device's index in the farm (what the value functions take).
    pub index: u32,
    pub protocol: DeviceProtocol,
    /// Advances per data answer; its low byte is carried in every value.
    pub counter: u32,
    pub rng: SplitMix64,
}

/// The devices behind one port: `devices[first..first + count]` of its
/// event loop, in unit id order.
#[derive(Clone, Copy, Debug)]
pub(in crate::farm) struct UnitSlots {
    pub first: usize,
    pub count: usize,
}

/// How every connection of one event loop answers.
#[derive(Clone, Copy, Debug)]
pub(in crate::farm) struct Behaviour {
    pub response_delay: Duration,
    pub stall: Duration,
    /// The farm's: 1 answers any unit id, more route by it (`ports.rs`).
    pub units_per_port: u32,
    pub modbus: ModbusMemory,
    pub modbus_plan: FaultPlan,
    pub s7: S7Behaviour,
    /// The Modbus plan plus the S7 PDU overflow rate.
    pub s7_plan: FaultPlan,
    pub enip: EnipBehaviour,
    pub enip_plan: FaultPlan,
}

/// What one protocol's step made of the input at the front of a connection.
pub(in crate::farm) enum Served {
    /// Not a whole request yet.
    NeedMore,
    /// `consumed` input bytes answered; the answer is at the end of the
    /// output. `last`: close once it is sent (a refused S7 connect).
    Answered {
        consumed: usize,
        fault: Fault,
        last: bool,
    },
    /// Close now (a framing error, a dropped-connection fault, a disconnect).
    Close,
}

/// The protocol state of one connection.
enum Wire {
    Modbus,
    S7(S7Conn),
    Enip(EnipConn),
}

impl Wire {
    fn answer_size_max(&self) -> usize {
        match self {
            Wire::Modbus => ADU_SIZE_MAX,
            Wire::S7(_) => s7::wire::ANSWER_SIZE_MAX,
            Wire::Enip(_) => enip::serve::ANSWER_SIZE_MAX,
        }
    }
}

pub(super) enum Pump {
    /// Nothing to do until the socket says so.
    Idle,
    /// Held answers: run again at this instant.
    WakeAt(Instant),
    /// Work left after our turn: run again soon.
    Again,
    Close,
}

pub(super) struct Conn {
    pub stream: TcpStream,
    /// The devices of its port in the loop's device table.
    pub units: UnitSlots,
    /// Distinguishes this connection from earlier ones in the same slot.
    pub generation: u32,
    /// The wake-up already queued for this connection, if any.
    pub timer_at: Option<Instant>,
    pub read_blocked: bool,
    pub write_blocked: bool,
    wire: Wire,
    /// The last answer is queued: send it, then close.
    closing: bool,
    input: Box<[u8]>,
    input_start: usize,
    input_end: usize,
    output: Vec<u8>,
    output_sent: usize,
    /// Bytes of `output` that may go out now.
    output_released: usize,
    /// (instant, end offset in `output`): later answers, in order.
    held: VecDeque<(Instant, usize)>,
}

impl Conn {
    pub fn new(
        stream: TcpStream,
        units: UnitSlots,
        generation: u32,
        protocol: DeviceProtocol,
    ) -> Self {
        let (wire, input_size, output_size) = match protocol {
            // OPC UA devices are async-opcua servers (opcua/serve.rs) and
            // never reach an event loop.
            DeviceProtocol::Modbus | DeviceProtocol::Opcua => {
                (Wire::Modbus, MODBUS_INPUT_SIZE, OUTPUT_SIZE)
            }
            DeviceProtocol::S7 => (Wire::S7(S7Conn::new()), S7_INPUT_SIZE, OUTPUT_SIZE),
            DeviceProtocol::EthernetIp => (
                Wire::Enip(EnipConn::new()),
                ENIP_INPUT_SIZE,
                ENIP_OUTPUT_SIZE,
            ),
        };
        Conn {
            stream,
            units,
            generation,
            timer_at: None,
            read_blocked: false,
            write_blocked: false,
            wire,
            closing: false,
            input: vec![0; input_size].into_boxed_slice(),
            input_start: 0,
            input_end: 0,
            output: Vec::with_capacity(output_size),
            output_sent: 0,
            output_released: 0,
            held: VecDeque::with_capacity(HELD_COUNT_MAX),
        }
    }

    /// Reads, answers and writes until the socket would block, the turn is
    /// over, or the connection must close. `units`: the devices of its port.
    pub fn pump(
        &mut self,
        units: &mut [Device],
        how: &Behaviour,
        tally: &mut Tally,
        now: Instant,
    ) -> Pump {
        for _ in 0..PUMP_ROUNDS_MAX {
            self.release_due(now);
            let Ok(read) = self.read_some() else {
                return Pump::Close;
            };
            let Ok(answered) = self.answer_all(units, how, tally, now) else {
                return Pump::Close;
            };
            let Ok(written) = self.flush() else {
                return Pump::Close;
            };
            if self.closing && self.output_sent == self.output.len() {
                return Pump::Close;
            }
            if read + answered + written == 0 {
                return match self.held.front() {
                    Some(&(at, _)) => Pump::WakeAt(at),
                    None => Pump::Idle,
                };
            }
        }
        Pump::Again
    }

    fn release_due(&mut self, now: Instant) {
        while let Some(&(at, end)) = self.held.front() {
            if at > now {
                break;
            }
            self.output_released = end;
            self.held.pop_front();
        }
    }

    /// Bytes read; `Err` when the peer closed or the socket failed.
    fn read_some(&mut self) -> Result<usize, ()> {
        if self.input_start == self.input_end {
            self.input_start = 0;
            self.input_end = 0;
        } else if self.input_start > self.input.len() / 2 {
            self.input.copy_within(self.input_start..self.input_end, 0);
            self.input_end -= self.input_start;
            self.input_start = 0;
        }
        let Some(space) = self.input.get_mut(self.input_end..) else {
            return Err(());
        };
        if self.read_blocked || self.closing || space.is_empty() {
            return Ok(0);
        }
        let space_size = space.len();
        match self.stream.read(space) {
            Ok(0) => Err(()),
            Ok(n) => {
                // Edge-triggered: a short read drained the socket, and new
                // data will raise a new readable event.
                self.read_blocked = n < space_size;
                self.input_end += n;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.read_blocked = true;
                Ok(0)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
            Err(_) => Err(()),
        }
    }

    fn has_room(&self) -> bool {
        self.output.capacity() - self.output.len() >= self.wire.answer_size_max()
            && self.held.len() < HELD_COUNT_MAX
    }

    /// Answers every complete request while there is room; `Err` closes.
    fn answer_all(
        &mut self,
        units: &mut [Device],
        how: &Behaviour,
        tally: &mut Tally,
        now: Instant,
    ) -> Result<usize, ()> {
        let mut answered = 0;
        while !self.closing && self.has_room() {
            let pending = self.input.get(self.input_start..self.input_end).ok_or(())?;
            let served = match &mut self.wire {
                Wire::Modbus => modbus::serve::serve(pending, &mut self.output, units, how, tally),
                // A port per S7 and EtherNet/IP device (validated).
                Wire::S7(conn) => {
                    let device = units.first_mut().ok_or(())?;
                    conn.serve(pending, &mut self.output, device, how, tally)
                }
                Wire::Enip(conn) => {
                    let device = units.first_mut().ok_or(())?;
                    conn.serve(pending, &mut self.output, device, how, tally)
                }
            };
            let (consumed, fault, last) = match served {
                Served::NeedMore => break,
                Served::Close => return Err(()),
                Served::Answered {
                    consumed,
                    fault,
                    last,
                } => (consumed, fault, last),
            };
            self.input_start += consumed;
            let mut at = now + how.response_delay;
            if fault == Fault::Stall {
                at += how.stall;
            }
            self.hold(at, now);
            self.closing = last;
            answered += 1;
        }
        Ok(answered)
    }

    /// Queues the answer just written (up to the end of `output`) for `at`.
    fn hold(&mut self, at: Instant, now: Instant) {
        let end = self.output.len();
        match self.held.back() {
            None if at <= now => self.output_released = end,
            // Answers leave in order: none before the one ahead of it.
            Some(&(last, _)) => self.held.push_back((at.max(last), end)),
            None => self.held.push_back((at, end)),
        }
    }

    /// Bytes written; `Err` when the socket failed.
    fn flush(&mut self) -> Result<usize, ()> {
        let mut written = 0;
        while !self.write_blocked && self.output_sent < self.output_released {
            let bytes = self
                .output
                .get(self.output_sent..self.output_released)
                .ok_or(())?;
            match self.stream.write(bytes) {
                Ok(0) => return Err(()),
                Ok(n) => {
                    self.write_blocked = n < bytes.len();
                    self.output_sent += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.write_blocked = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        self.compact_output();
        Ok(written)
    }

    fn compact_output(&mut self) {
        if self.output_sent == self.output.len() {
            debug_assert!(self.held.is_empty());
            self.output.clear();
            self.output_sent = 0;
            self.output_released = 0;
        } else if self.output_sent > 0 && !self.has_room() {
            let sent = self.output_sent;
            self.output.drain(..sent);
            self.output_sent = 0;
            self.output_released -= sent;
            for (_, end) in self.held.iter_mut() {
                *end -= sent;
            }
        }
    }
}
