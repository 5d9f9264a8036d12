//! The epoll driver (mio 1.x): for kernels and containers where io_uring is
//! missing or blocked. One thread, one `Poll`, one receive buffer; every
//! chunk read is decoded in place by the shard straight into the ring.
//!
//! mio is edge-triggered: a readable socket is read until `WouldBlock`. To
//! keep one chatty device from starving the others, a socket gets at most
//! `READS_PER_EVENT_MAX` reads per turn and is then queued to go again.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::scheduler::DeviceIndex;
use super::shard::{Clock, Now, Shard, Transport};
use super::RX_BUFFER_BYTES;

const WAKER_TOKEN: Token = Token(usize::MAX);
const READS_PER_EVENT_MAX: usize = 16;
const EVENTS_CAPACITY: usize = 1024;
/// The longest the loop sleeps without looking at the stop flag: a
/// backstop, as a stop wakes the loop at once through the waker.
const WAIT_NS_MAX: u64 = 1_000_000_000;

struct Staging {
    /// Sized once per device (`Shard::staging_sizes`).
    bytes: Box<[u8]>,
    start: usize,
    end: usize,
}

pub struct EpollTransport {
    poll: Poll,
    streams: Vec<Option<TcpStream>>,
    staging: Vec<Staging>,
    /// Per device: half-close once the staging is sent (`close_write`).
    close_write: Vec<bool>,
}

impl EpollTransport {
    fn stream(&mut self, device: DeviceIndex) -> Option<&mut TcpStream> {
        self.streams.get_mut(device as usize)?.as_mut()
    }
}

impl Transport for EpollTransport {
    fn connect(&mut self, device: DeviceIndex, addr: SocketAddr) -> io::Result<()> {
        self.close(device);
        let mut stream = TcpStream::connect(addr)?;
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll
            .registry()
            .register(&mut stream, Token(device as usize), interest)?;
        stream.set_nodelay(true)?;
        self.streams[device as usize] = Some(stream);
        Ok(())
    }

    fn tx_room(&self, device: DeviceIndex) -> usize {
        let staging = &self.staging[device as usize];
        staging.bytes.len() - staging.end
    }

    fn queue(&mut self, device: DeviceIndex, bytes: &[u8]) {
        let staging = &mut self.staging[device as usize];
        let end = staging.end + bytes.len();
        assert!(end <= staging.bytes.len(), "queue past tx_room");
        staging.bytes[staging.end..end].copy_from_slice(bytes);
        staging.end = end;
    }

    fn flush(&mut self, device: DeviceIndex) -> io::Result<()> {
        let index = device as usize;
        let Some(stream) = self.streams.get_mut(index).and_then(Option::as_mut) else {
            return Err(io::ErrorKind::NotConnected.into());
        };
        let staging = &mut self.staging[index];
        // Bounded: each round writes at least one byte or ends.
        for _ in 0..staging.bytes.len() {
            if staging.start == staging.end {
                break;
            }
            match stream.write(&staging.bytes[staging.start..staging.end]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => staging.start += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if staging.start == staging.end {
            staging.start = 0;
            staging.end = 0;
            if std::mem::take(&mut self.close_write[index]) {
                stream.shutdown(std::net::Shutdown::Write)?;
            }
        }
        Ok(())
    }

    fn close_write(&mut self, device: DeviceIndex) {
        self.close_write[device as usize] = true;
        let _ = self.flush(device);
    }

    fn close(&mut self, device: DeviceIndex) {
        self.close_write[device as usize] = false;
        if let Some(mut stream) = self.streams[device as usize].take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        let staging = &mut self.staging[device as usize];
        staging.start = 0;
        staging.end = 0;
    }
}

/// What one event-loop turn works with, allocated once per run.
struct Turn {
    events: Events,
    rx: Vec<u8>,
    /// Sockets cut off by the per-turn read bound: read again next turn.
    again: Vec<DeviceIndex>,
    again_next: Vec<DeviceIndex>,
}

impl Turn {
    fn new(device_count: usize) -> Self {
        Turn {
            events: Events::with_capacity(EVENTS_CAPACITY),
            rx: vec![0u8; RX_BUFFER_BYTES],
            again: Vec::with_capacity(device_count),
            again_next: Vec::with_capacity(device_count),
        }
    }
}

pub struct EpollDriver {
    transport: EpollTransport,
    waker: Arc<Waker>,
}

impl EpollDriver {
    /// `staging_sizes`: each device's send staging bytes, by device index.
    pub fn new(staging_sizes: &[usize]) -> io::Result<Self> {
        let device_count = staging_sizes.len();
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER_TOKEN)?);
        let staging = staging_sizes
            .iter()
            .map(|&bytes| Staging {
                bytes: vec![0; bytes].into_boxed_slice(),
                start: 0,
                end: 0,
            })
            .collect();
        let streams = (0..device_count).map(|_| None).collect();
        Ok(EpollDriver {
            transport: EpollTransport {
                poll,
                streams,
                staging,
                close_write: vec![false; device_count],
            },
            waker,
        })
    }

    pub fn waker(&self) -> Arc<Waker> {
        Arc::clone(&self.waker)
    }

    pub fn run(mut self, mut shard: Shard, stop: &AtomicBool) -> io::Result<()> {
        let clock = Clock::new();
        let mut turn = Turn::new(shard.device_count());
        shard.start();
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            shard.run_due(now, &mut self.transport);
            let wait_ns = shard
                .wake_at_ns()
                .map_or(WAIT_NS_MAX, |d| d.saturating_sub(now.mono_ns));
            self.turn(&mut shard, &mut turn, wait_ns, &clock)?;
        }
        // A clean stop: closing messages out, then read until the peers
        // close their end (see `CLOSE_LINGER_MAX`).
        shard.close_politely(&mut self.transport);
        shard.linger(&clock, |shard, wait_ns| {
            self.turn(shard, &mut turn, wait_ns, &clock)
        });
        shard.finish(clock.now());
        shard.publish();
        Ok(())
    }

    /// One wait for events (at most `wait_ns`, none when a socket was cut
    /// off last turn) and the reads and writes they call for.
    fn turn(
        &mut self,
        shard: &mut Shard,
        turn: &mut Turn,
        wait_ns: u64,
        clock: &Clock,
    ) -> io::Result<()> {
        let wait_ns = if turn.again.is_empty() { wait_ns } else { 0 };
        let wait = Duration::from_nanos(wait_ns.min(WAIT_NS_MAX));
        match self.transport.poll.poll(&mut turn.events, Some(wait)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e),
        }
        shard.count_wakeup();
        let now = clock.now();
        for event in turn.events.iter() {
            if event.token() == WAKER_TOKEN {
                continue;
            }
            let Ok(device) = DeviceIndex::try_from(event.token().0) else {
                continue;
            };
            if self.on_event(shard, device, event, now, &mut turn.rx) {
                turn.again_next.push(device);
            }
        }
        for index in 0..turn.again.len() {
            let device = turn.again[index];
            if self.read_ready(shard, device, now, &mut turn.rx) {
                turn.again_next.push(device);
            }
        }
        turn.again.clear();
        std::mem::swap(&mut turn.again, &mut turn.again_next);
        turn.again.sort_unstable();
        turn.again.dedup();
        shard.publish();
        Ok(())
    }

    /// Returns whether the device has more to read (it was cut off).
    fn on_event(
        &mut self,
        shard: &mut Shard,
        device: DeviceIndex,
        event: &mio::event::Event,
        now: Now,
        rx: &mut [u8],
    ) -> bool {
        let t = &mut self.transport;
        if shard.is_connecting(device) {
            let Some(stream) = t.stream(device) else {
                return false;
            };
            match (stream.take_error(), stream.peer_addr()) {
                (Ok(None), Ok(_)) => shard.on_connected(device, now, t),
                (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => {
                    if !(event.is_error() || event.is_write_closed()) {
                        return false; // still connecting
                    }
                    shard.on_connect_failed(device, now, t);
                    return false;
                }
                _ => {
                    shard.on_connect_failed(device, now, t);
                    return false;
                }
            }
        }
        if event.is_writable() && t.flush(device).is_err() {
            shard.on_closed(device, now, t);
            return false;
        }
        self.read_ready(shard, device, now, rx)
    }

    /// Reads until `WouldBlock` (or the per-turn bound); true when cut off.
    fn read_ready(
        &mut self,
        shard: &mut Shard,
        device: DeviceIndex,
        now: Now,
        rx: &mut [u8],
    ) -> bool {
        let t = &mut self.transport;
        for _ in 0..READS_PER_EVENT_MAX {
            let Some(stream) = t.stream(device) else {
                return false;
            };
            match stream.read(rx) {
                Ok(0) => {
                    shard.on_closed(device, now, t);
                    return false;
                }
                Ok(n) => shard.on_recv(device, &rx[..n], now, t),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    shard.on_closed(device, now, t);
                    return false;
                }
            }
        }
        true
    }
}
