//! One event-loop thread of the farm: a mio `Poll` over its share of the
//! device listeners and their connections. No thread per device, no
//! allocation per request; timers for held answers in one binary heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token};

use super::conn::{Behaviour, Conn, Device, Pump, UnitSlots};
use super::counters::{thread_cpu_ns, Tally};
use super::FarmShared;

pub(super) const WAKER_TOKEN: Token = Token(0);
const EVENT_CAPACITY: usize = 1024;
/// How often the loop refreshes its CPU-time counter.
const CPU_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

pub(super) struct EventLoop {
    pub poll: Poll,
    /// (listener, the devices of its port in `devices`).
    pub listeners: Vec<(TcpListener, UnitSlots)>,
    pub devices: Vec<Device>,
    pub behaviour: Behaviour,
    /// Connection slots; the bound on open connections of this loop.
    pub connection_count_max: usize,
}

struct State {
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    generation: u32,
    timers: BinaryHeap<Reverse<(Instant, usize, u32)>>,
    again: Vec<usize>,
    tally: Tally,
}

impl EventLoop {
    fn conn_token_base(&self) -> usize {
        1 + self.listeners.len()
    }

    pub fn run(mut self, shared: Arc<FarmShared>) -> io::Result<()> {
        for (i, (listener, _)) in self.listeners.iter_mut().enumerate() {
            self.poll
                .registry()
                .register(listener, Token(1 + i), Interest::READABLE)?;
        }
        let mut state = State {
            conns: (0..self.connection_count_max).map(|_| None).collect(),
            free: (0..self.connection_count_max).rev().collect(),
            generation: 0,
            timers: BinaryHeap::with_capacity(self.connection_count_max),
            again: Vec::with_capacity(self.connection_count_max),
            tally: Tally::default(),
        };
        let mut events = Events::with_capacity(EVENT_CAPACITY);
        let mut cpu_ns_last = thread_cpu_ns().unwrap_or(0);
        let mut cpu_sampled_at = Instant::now();
        while !shared.stop.load(Ordering::Acquire) {
            let timeout = self.timeout(&state, Instant::now());
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let now = Instant::now();
            for event in events.iter() {
                self.dispatch(&mut state, event, now);
            }
            self.run_timers_and_again(&mut state, Instant::now());
            if now.duration_since(cpu_sampled_at) >= CPU_SAMPLE_INTERVAL {
                cpu_sampled_at = now;
                let cpu_ns = thread_cpu_ns().unwrap_or(cpu_ns_last);
                state.tally.cpu_ns += cpu_ns.saturating_sub(cpu_ns_last);
                cpu_ns_last = cpu_ns;
            }
            shared.counters.publish(&mut state.tally);
        }
        let cpu_ns = thread_cpu_ns().unwrap_or(cpu_ns_last);
        state.tally.cpu_ns += cpu_ns.saturating_sub(cpu_ns_last);
        shared.counters.publish(&mut state.tally);
        Ok(())
    }

    fn timeout(&self, state: &State, now: Instant) -> Option<Duration> {
        if !state.again.is_empty() {
            return Some(Duration::ZERO);
        }
        state
            .timers
            .peek()
            .map(|Reverse((at, _, _))| at.saturating_duration_since(now))
    }

    fn dispatch(&mut self, state: &mut State, event: &mio::event::Event, now: Instant) {
        let token = event.token().0;
        if token == WAKER_TOKEN.0 {
            return;
        }
        if token < self.conn_token_base() {
            self.accept_all(state, token - 1, now);
            return;
        }
        let slot = token - self.conn_token_base();
        let Some(Some(conn)) = state.conns.get_mut(slot) else {
            return;
        };
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            conn.read_blocked = false;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            conn.write_blocked = false;
        }
        self.pump(state, slot, now);
    }

    fn accept_all(&mut self, state: &mut State, listener_index: usize, now: Instant) {
        loop {
            let Some(&(ref listener, units)) = self.listeners.get(listener_index) else {
                return;
            };
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // WouldBlock: drained. Anything else (EMFILE, ECONNABORTED):
                // give up this round; a later connection wakes us again.
                Err(_) => return,
            };
            let Some(slot) = state.free.pop() else {
                state.tally.connections_rejected += 1;
                continue;
            };
            let token = Token(self.conn_token_base() + slot);
            let registered = stream.set_nodelay(true).and_then(|()| {
                self.poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )
            });
            if registered.is_err() {
                state.free.push(slot);
                state.tally.connections_rejected += 1;
                continue;
            }
            state.generation = state.generation.wrapping_add(1);
            let protocol = match self.devices.get(units.first) {
                Some(device) => device.protocol,
                None => return,
            };
            if let Some(entry) = state.conns.get_mut(slot) {
                *entry = Some(Conn::new(stream, units, state.generation, protocol));
            }
            state.tally.connections_accepted += 1;
            self.pump(state, slot, now);
        }
    }

    fn pump(&mut self, state: &mut State, slot: usize, now: Instant) {
        let Some(Some(conn)) = state.conns.get_mut(slot) else {
            return;
        };
        let (first, count) = (conn.units.first, conn.units.count);
        let Some(units) = self.devices.get_mut(first..first + count) else {
            return;
        };
        match conn.pump(units, &self.behaviour, &mut state.tally, now) {
            Pump::Idle => {}
            Pump::Again => state.again.push(slot),
            Pump::WakeAt(at) => {
                if conn.timer_at.is_none_or(|armed| at < armed) {
                    conn.timer_at = Some(at);
                    state.timers.push(Reverse((at, slot, conn.generation)));
                }
            }
            Pump::Close => {
                if let Some(Some(mut conn)) = state.conns.get_mut(slot).map(Option::take) {
                    // Dropping the stream closes it (and so removes it from the
                    // poll); deregistering first keeps mio's bookkeeping exact.
                    let _ = self.poll.registry().deregister(&mut conn.stream);
                }
                state.free.push(slot);
            }
        }
    }

    fn run_timers_and_again(&mut self, state: &mut State, now: Instant) {
        while let Some(&Reverse((at, slot, generation))) = state.timers.peek() {
            if at > now {
                break;
            }
            state.timers.pop();
            let Some(Some(conn)) = state.conns.get_mut(slot) else {
                continue;
            };
            if conn.generation != generation {
                continue;
            }
            if conn.timer_at == Some(at) {
                conn.timer_at = None;
            }
            self.pump(state, slot, now);
        }
        let again_count = state.again.len();
        for i in 0..again_count {
            if let Some(&slot) = state.again.get(i) {
                self.pump(state, slot, now);
            }
        }
        state.again.drain(..again_count);
    }
}
