//! One client connection to a simulated device: its buffers, and the pump
//! that reads requests, answers them and writes the answers back, without
//! blocking and without allocating after the connection was accepted.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use mio::net::TcpStream;

use super::adu::{self, Answer, ADU_SIZE_MAX, EXCEPTION_DEVICE_FAILURE};
use super::counters::Tally;
use super::fault::{self, Fault, FaultPlan, SplitMix64};

/// Input buffer: room for several pipelined requests (12 bytes each) and
/// always for one maximal ADU after compaction.
const INPUT_SIZE: usize = 2048;
/// Output buffer: answers waiting to be sent. When it is full we stop
/// parsing, then stop reading: TCP pushes back on a client that pipelines
/// faster than it reads.
const OUTPUT_SIZE: usize = 8192;
/// Answers held back (delay or stall) per connection.
const HELD_COUNT_MAX: usize = 256;
/// Rounds of read/answer/write per wake-up before other connections get a
/// turn; the connection is then queued to run again.
const PUMP_ROUNDS_MAX: usize = 16;

const _: () = assert!(INPUT_SIZE >= 2 * ADU_SIZE_MAX);
const _: () = assert!(OUTPUT_SIZE >= 4 * ADU_SIZE_MAX);

/// What the farm knows of one device while it serves it.
pub(super) struct Device {
    /// The device's index in the farm (what `verify_*` take).
    pub index: u32,
    /// Advances per data answer; its low byte is carried in every register.
    pub counter: u32,
    pub rng: SplitMix64,
}

/// How every connection of one event loop answers.
#[derive(Clone, Copy, Debug)]
pub(super) struct Behaviour {
    pub register_count: u32,
    pub bit_count: u32,
    pub response_delay: Duration,
    pub plan: FaultPlan,
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
    /// Index of the device in the loop's device table.
    pub device_slot: usize,
    /// Distinguishes this connection from earlier ones in the same slot.
    pub generation: u32,
    /// The wake-up already queued for this connection, if any.
    pub timer_at: Option<Instant>,
    pub read_blocked: bool,
    pub write_blocked: bool,
    input: Box<[u8; INPUT_SIZE]>,
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
    pub fn new(stream: TcpStream, device_slot: usize, generation: u32) -> Self {
        Conn {
            stream,
            device_slot,
            generation,
            timer_at: None,
            read_blocked: false,
            write_blocked: false,
            input: Box::new([0; INPUT_SIZE]),
            input_start: 0,
            input_end: 0,
            output: Vec::with_capacity(OUTPUT_SIZE),
            output_sent: 0,
            output_released: 0,
            held: VecDeque::with_capacity(HELD_COUNT_MAX),
        }
    }

    /// Reads, answers and writes until the socket would block, the turn is
    /// over, or the connection must close.
    pub fn pump(
        &mut self,
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
        now: Instant,
    ) -> Pump {
        for _ in 0..PUMP_ROUNDS_MAX {
            self.release_due(now);
            let Ok(read) = self.read_some() else {
                return Pump::Close;
            };
            let Ok(answered) = self.answer_all(device, how, tally, now) else {
                return Pump::Close;
            };
            let Ok(written) = self.flush() else {
                return Pump::Close;
            };
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
        } else if self.input_start > INPUT_SIZE / 2 {
            self.input.copy_within(self.input_start..self.input_end, 0);
            self.input_end -= self.input_start;
            self.input_start = 0;
        }
        let Some(space) = self.input.get_mut(self.input_end..) else {
            return Err(());
        };
        if self.read_blocked || space.is_empty() {
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
        self.output.capacity() - self.output.len() >= ADU_SIZE_MAX
            && self.held.len() < HELD_COUNT_MAX
    }

    /// Answers every complete request while there is room; `Err` closes.
    fn answer_all(
        &mut self,
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
        now: Instant,
    ) -> Result<usize, ()> {
        let mut answered = 0;
        while self.has_room() {
            let pending = self.input.get(self.input_start..self.input_end).ok_or(())?;
            let request = match adu::next_request(pending) {
                Ok(Some(request)) => request,
                Ok(None) => break,
                Err(_) => {
                    tally.framing_errors += 1;
                    return Err(());
                }
            };
            tally.requests += 1;
            let size_before = self.output.len();
            let mut fault = Fault::None;
            match adu::classify(
                request.function,
                request.data,
                how.register_count,
                how.bit_count,
            ) {
                Answer::Exception(code) => {
                    tally.protocol_exceptions += 1;
                    adu::write_exception(
                        &mut self.output,
                        request.transaction,
                        request.unit,
                        request.function,
                        code,
                    );
                }
                Answer::Read {
                    area,
                    start,
                    quantity,
                } => {
                    fault = how.plan.draw(&mut device.rng);
                    tally.count_fault(fault);
                    match fault {
                        Fault::DropConnection => return Err(()),
                        Fault::Exception => adu::write_exception(
                            &mut self.output,
                            request.transaction,
                            request.unit,
                            request.function,
                            EXCEPTION_DEVICE_FAILURE,
                        ),
                        _ => {
                            let counter = device.counter as u8;
                            device.counter = device.counter.wrapping_add(1);
                            tally.data_responses += 1;
                            let what = (area, start, quantity);
                            adu::write_read_response(
                                &mut self.output,
                                &request,
                                what,
                                device.index,
                                counter,
                            );
                        }
                    }
                }
            }
            if let Some(answer) = self.output.get_mut(size_before..) {
                fault::malform(answer, fault);
            }
            self.input_start += request.adu_size;
            let mut at = now + how.response_delay;
            if fault == Fault::Stall {
                at += how.plan.stall;
            }
            self.hold(at, now);
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
