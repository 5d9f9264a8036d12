//! The driver-agnostic core of one reader thread: its devices, their timers,
//! the ring promise, and what happens on every event. A driver (epoll.rs,
//! uring.rs) owns the sockets and calls in here with bytes, connection
//! outcomes and the time; this calls back out through [`Transport`].
//!
//! Backpressure rule: a poll starts only when the ring can take every sample
//! the cycle will produce on top of everything already promised to requests
//! in flight. Every request ends in exactly one sample per tag (data,
//! exception, timeout or no-connection), so a decode never finds the ring
//! full half-way and no sample is ever dropped. A poll that does not fit is
//! delayed and counted as an overrun.
//!
//! Must never: block, allocate per frame, or let one device delay another.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::Instant;

use crate::config::DeviceConfig;
use crate::kdb::backoff::{Backoff, Jitter};
use crate::metrics::{Stage, StageHistograms, StageRecorder};
use crate::protocol::modbus::{write_bad, ModbusSession, REQUEST_BYTES_MAX};
use crate::ring::Producer;
use crate::sample::{Quality, TagId};

pub use super::clock::{Clock, Now};
use super::device::{Device, Link};
use super::ring_out::RingOut;
use super::scheduler::{initial_phase_ns, next_poll_ns, DeviceIndex, Scheduler};
use super::stats::{Counters, Stats};

/// A device for a reader's shard: its configuration and the id of its
/// first tag in the run's tag table.
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    pub config: DeviceConfig,
    pub first_tag: TagId,
}

/// The I/O a driver offers the shard. Calls never block.
pub trait Transport {
    /// Starts a non-blocking connect; its outcome comes back through
    /// `Shard::on_connected` / `Shard::on_connect_failed`.
    fn connect(&mut self, device: DeviceIndex, addr: SocketAddr) -> io::Result<()>;
    /// Bytes the device's send staging takes now.
    fn tx_room(&self, device: DeviceIndex) -> usize;
    /// Appends request bytes (at most `tx_room`) to the device's staging.
    fn queue(&mut self, device: DeviceIndex, bytes: &[u8]);
    /// Hands the staged bytes to the kernel. `Err`: the connection is broken.
    fn flush(&mut self, device: DeviceIndex) -> io::Result<()>;
    /// Closes the device's socket; staged bytes are dropped.
    fn close(&mut self, device: DeviceIndex);
}

/// Longest an overrun delays a poll before it is tried again.
const OVERRUN_RETRY_NS_MAX: u64 = 10_000_000;
const OVERRUN_RETRY_NS_MIN: u64 = 100_000;
/// Not armed (the scheduler holds no wake-up for the device).
const UNARMED: u64 = u64::MAX;
/// Timer slack: a wake-up may come this much after its deadline, so that the
/// polls and timeouts falling inside one slack window run in one event-loop
/// turn (one submit, one wait) instead of one turn each. A tenth of the
/// shortest poll interval, at most 1 ms: 1,000 devices at 10 ms wake the
/// thread ~1,000 times a second instead of ~100,000, and no poll runs more
/// than a tenth of its interval late. The cadence does not drift: the next
/// slot is computed from the scheduled one, not from when it ran.
const SLACK_NS_MAX: u64 = 1_000_000;
const SLACK_DIVISOR: u64 = 10;

pub struct Shard {
    pub devices: Vec<Device>,
    scheduler: Scheduler,
    /// The wake-up the scheduler holds per device, to skip re-arming at the
    /// same time (one heap push per change, not per frame).
    armed_at_ns: Vec<u64>,
    pub out: RingOut,
    pending: Counters,
    stats: Arc<Stats>,
    backoff: Backoff,
    jitter: Jitter,
    timing: Option<Timing>,
    slack_ns: u64,
}

/// Latency recording for the poll-round-trip and decode stages, when the
/// pipeline asked for it (`set_histograms`).
struct Timing {
    round_trip: StageRecorder,
    decode: StageRecorder,
    /// Monotonic time each device's most recent request went out. The round
    /// trip is measured from it: exact at `max_inflight = 1` (the default),
    /// a lower bound with deeper pipelining.
    sent_ns: Vec<u64>,
}

impl Shard {
    /// Plans every device and resolves its address (start-up only).
    pub fn new(
        specs: &[DeviceSpec],
        producer: Producer,
        stats: Arc<Stats>,
        backoff: Backoff,
    ) -> io::Result<Shard> {
        let mut devices = Vec::with_capacity(specs.len());
        let mut frame_samples_max = 1;
        for (index, spec) in specs.iter().enumerate() {
            let config = &spec.config;
            let session = ModbusSession::for_device(config, spec.first_tag).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{}: {e:?}", config.name),
                )
            })?;
            let addr = resolve(&config.address)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.name)))?;
            let interval_ns = u64::try_from(config.poll_interval.as_nanos()).unwrap_or(u64::MAX);
            let index = DeviceIndex::try_from(index)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many devices"))?;
            let phase_ns = initial_phase_ns(index, interval_ns.max(1));
            let device = Device::new(session, addr, interval_ns.max(1), phase_ns);
            frame_samples_max = frame_samples_max.max(device.cycle_samples);
            devices.push(device);
        }
        if frame_samples_max > producer.capacity() {
            let message = format!(
                "a device's poll cycle has {frame_samples_max} samples, more than the ring's {} \
                 slots: raise ring_slots",
                producer.capacity()
            );
            return Err(io::Error::new(io::ErrorKind::InvalidInput, message));
        }
        let count = devices.len();
        let interval_min_ns = devices.iter().map(|d| d.interval_ns).min().unwrap_or(0);
        Ok(Shard {
            devices,
            scheduler: Scheduler::new(count),
            armed_at_ns: vec![UNARMED; count],
            out: RingOut::new(producer, frame_samples_max),
            pending: Counters::default(),
            stats,
            backoff,
            jitter: Jitter::from_entropy(),
            timing: None,
            slack_ns: (interval_min_ns / SLACK_DIVISOR).min(SLACK_NS_MAX),
        })
    }

    /// Records poll round trips and decode times into `histograms`.
    pub fn set_histograms(&mut self, histograms: &Arc<StageHistograms>) {
        self.timing = Some(Timing {
            round_trip: StageRecorder::new(histograms, Stage::PollRoundTrip),
            decode: StageRecorder::new(histograms, Stage::Decode),
            sent_ns: vec![0; self.devices.len()],
        });
    }

    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    pub fn is_connecting(&self, index: DeviceIndex) -> bool {
        self.devices
            .get(index as usize)
            .is_some_and(|d| matches!(d.link, Link::Connecting { .. }))
    }

    /// Arms every device: connects start on the first `run_due`.
    pub fn start(&mut self) {
        for index in 0..self.devices.len() {
            self.rearm(index as DeviceIndex);
        }
    }

    pub fn next_deadline_ns(&mut self) -> Option<u64> {
        self.scheduler.next_deadline_ns()
    }

    /// When the driver should wake at the latest: the next deadline plus the
    /// timer slack (see `SLACK_NS_MAX`).
    pub fn wake_at_ns(&mut self) -> Option<u64> {
        let slack_ns = self.slack_ns;
        self.next_deadline_ns().map(|d| d.saturating_add(slack_ns))
    }

    pub fn slack_ns(&self) -> u64 {
        self.slack_ns
    }

    /// The driver came back from its wait (one event-loop turn).
    pub fn count_wakeup(&mut self) {
        self.pending.wakeups += 1;
    }

    /// Publishes the counters gathered since the last call.
    pub fn publish(&mut self) {
        self.stats.publish(&mut self.pending);
    }

    /// Services every device whose wake-up is due.
    pub fn run_due(&mut self, now: Now, t: &mut impl Transport) {
        // Each device re-arms strictly after `now`; the bound is a backstop.
        for _ in 0..=2 * self.devices.len() {
            let Some(index) = self.scheduler.pop_due(now.mono_ns) else {
                break;
            };
            self.armed_at_ns[index as usize] = UNARMED;
            self.service(index, now, t);
            self.rearm(index);
        }
    }

    fn service(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let Some(device) = self.devices.get(index as usize) else {
            return;
        };
        match device.link {
            Link::Connecting { deadline_ns } if deadline_ns <= now.mono_ns => {
                self.connect_failed(index, now, t);
            }
            Link::Disconnected { retry_at_ns } if retry_at_ns <= now.mono_ns => {
                self.start_connect(index, now, t);
            }
            _ => {}
        }
        self.expire_requests(index, now, t);
        if self.device(index).poll_at_ns <= now.mono_ns {
            self.poll(index, now, t);
        }
    }

    fn device(&mut self, index: DeviceIndex) -> &mut Device {
        &mut self.devices[index as usize]
    }

    fn count(&mut self, index: DeviceIndex, bump: impl Fn(&mut Counters)) {
        bump(&mut self.devices[index as usize].counters);
        bump(&mut self.pending);
    }

    fn rearm(&mut self, index: DeviceIndex) {
        let at_ns = self.devices[index as usize].wake_at_ns();
        let slot = &mut self.armed_at_ns[index as usize];
        if *slot != at_ns {
            *slot = at_ns;
            self.scheduler.arm(index, at_ns);
        }
    }

    fn start_connect(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let device = self.device(index);
        let (addr, reconnect) = (device.addr, device.ever_connected || device.attempt > 0);
        device.link = Link::Connecting {
            deadline_ns: now.mono_ns.saturating_add(device.timeout_ns),
        };
        if reconnect {
            self.count(index, |c| c.reconnects += 1);
        }
        if t.connect(index, addr).is_err() {
            self.connect_failed(index, now, t);
        }
    }

    /// The driver saw the connect complete.
    pub fn on_connected(&mut self, index: DeviceIndex) {
        let device = self.device(index);
        if !matches!(device.link, Link::Connecting { .. }) {
            return;
        }
        device.link = Link::Connected;
        device.ever_connected = true;
        self.stats
            .connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.rearm(index);
    }

    /// The driver saw the connect fail.
    pub fn on_connect_failed(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        if matches!(self.device(index).link, Link::Connecting { .. }) {
            self.connect_failed(index, now, t);
            self.rearm(index);
        }
    }

    fn connect_failed(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        t.close(index);
        self.count(index, |c| c.connect_failures += 1);
        self.back_off(index, now);
    }

    fn back_off(&mut self, index: DeviceIndex, now: Now) {
        let random = self.jitter.next_u64();
        let device = &mut self.devices[index as usize];
        let delay = self.backoff.delay(device.attempt, random);
        let delay_ns = u64::try_from(delay.as_nanos()).unwrap_or(u64::MAX);
        device.attempt = device.attempt.saturating_add(1);
        device.link = Link::Disconnected {
            retry_at_ns: now.mono_ns.saturating_add(delay_ns),
        };
    }

    /// The connection ended (peer closed, I/O error, or our decision): fail
    /// what is in flight with `NoConnection` and back off.
    pub fn on_closed(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        if self.device(index).link == Link::Connected {
            self.drop_connection(index, now, t);
            self.rearm(index);
        }
    }

    fn drop_connection(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        t.close(index);
        self.stats
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.count(index, |c| c.disconnects += 1);
        let device = &mut self.devices[index as usize];
        let (session, out) = (&mut device.session, &mut self.out);
        let frame_max = session.samples_per_frame_max();
        let mut written_total = 0;
        for _ in 0..=crate::protocol::modbus::INFLIGHT_MAX {
            let written = out
                .write(frame_max, |slice| {
                    let n = session.disconnect(now.unix_ns, slice);
                    (n, n)
                })
                .unwrap_or(0);
            written_total += written;
            if written == 0 {
                break;
            }
        }
        let written_total = written_total as u64;
        self.count(index, |c| c.samples += written_total);
        self.back_off(index, now);
    }

    /// Retires requests past their deadline with `Timeout` samples; the
    /// cycle then carries on with its next request.
    fn expire_requests(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let device = &mut self.devices[index as usize];
        if device
            .session
            .next_deadline_ns()
            .is_none_or(|d| d > now.mono_ns)
        {
            return;
        }
        let before = device.session.inflight_count();
        let (session, out) = (&mut device.session, &mut self.out);
        let frame_max = session.samples_per_frame_max();
        let mut written_total = 0;
        for _ in 0..=crate::protocol::modbus::INFLIGHT_MAX {
            let written = out
                .write(frame_max, |slice| {
                    let n = session.handle_timeout(now.mono_ns, now.unix_ns, slice);
                    (n, n)
                })
                .unwrap_or(0);
            written_total += written;
            if written == 0 {
                break;
            }
        }
        let timed_out = (before - device.session.inflight_count()) as u64;
        let written_total = written_total as u64;
        self.count(index, |c| {
            c.timeouts += timed_out;
            c.samples += written_total;
        });
        if self.device(index).link == Link::Connected {
            self.transmit(index, now, t);
        }
    }

    fn poll(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let device = &self.devices[index as usize];
        let link = device.link;
        let (next_slot_ns, skipped) =
            next_poll_ns(device.poll_slot_ns, device.interval_ns, now.mono_ns);
        let busy = match link {
            Link::Connected => device.cycle_running(),
            Link::Connecting { .. } => true,
            Link::Disconnected { .. } => false,
        };
        if busy {
            // The previous cycle (or the connect) is still running: this
            // slot is lost; try again at the next one. A cycle that stalled
            // on send staging (nothing in flight) gets its requests out now.
            self.advance_slot(index, next_slot_ns, skipped + 1);
            if link == Link::Connected && self.devices[index as usize].session.inflight_count() == 0
            {
                self.transmit(index, now, t);
            }
            return;
        }
        let device = &self.devices[index as usize];
        let unsent = device.unsent_samples();
        let need = device.cycle_samples - unsent.min(device.cycle_samples);
        if !self.out.try_promise(need) {
            let device = self.device(index);
            let retry_ns =
                (device.interval_ns / 16).clamp(OVERRUN_RETRY_NS_MIN, OVERRUN_RETRY_NS_MAX);
            device.poll_at_ns = now.mono_ns.saturating_add(retry_ns);
            self.count(index, |c| c.overruns += 1);
            return;
        }
        self.advance_slot(index, next_slot_ns, skipped);
        self.count(index, |c| c.polls += 1);
        let device = &mut self.devices[index as usize];
        // The session's own count of unsent requests is not ours: after a
        // no-connection cycle its cursor sits at 0 while ours says "all sent".
        let _unsent_in_session = device.session.start_cycle();
        device.sent_in_cycle = 0;
        if link == Link::Connected {
            self.transmit(index, now, t);
        } else {
            self.report_no_connection(index, now);
        }
    }

    fn advance_slot(&mut self, index: DeviceIndex, next_slot_ns: u64, skipped: u64) {
        let device = self.device(index);
        device.poll_slot_ns = next_slot_ns;
        device.poll_at_ns = next_slot_ns;
        if skipped > 0 {
            self.count(index, |c| c.polls_skipped += skipped);
        }
    }

    /// A device that cannot connect still shows up once per interval: one
    /// `NoConnection` sample per tag (their room was promised by `poll`).
    fn report_no_connection(&mut self, index: DeviceIndex, now: Now) {
        let device = &mut self.devices[index as usize];
        let frame_max = device.session.samples_per_frame_max();
        let mut written_total = 0;
        for request in &device.session.plan().requests {
            written_total += self
                .out
                .write(frame_max, |slice| {
                    let n = write_bad(&request.tags, now.unix_ns, Quality::NoConnection, slice);
                    (n, n)
                })
                .unwrap_or(0);
        }
        device.sent_in_cycle = device.request_count();
        let written_total = written_total as u64;
        self.count(index, |c| {
            c.samples += written_total;
            c.no_connection_samples += written_total;
        });
    }

    /// Sends the cycle's next requests, up to `max_inflight` outstanding,
    /// in rounds of what the driver's staging holds.
    fn transmit(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let request_count = self.devices[index as usize].request_count();
        // Each round sends at least one request or ends.
        for _ in 0..=request_count {
            let device = &mut self.devices[index as usize];
            let mut sent = 0u64;
            while device.sent_in_cycle < request_count && t.tx_room(index) >= REQUEST_BYTES_MAX {
                let Some(length) = device.session.poll_transmit(now.mono_ns, &mut buf) else {
                    break;
                };
                t.queue(index, &buf[..length]);
                device.sent_in_cycle += 1;
                sent += 1;
            }
            if sent == 0 {
                return;
            }
            self.count(index, |c| c.requests += sent);
            if let Some(timing) = &mut self.timing {
                timing.sent_ns[index as usize] = now.mono_ns;
            }
            if t.flush(index).is_err() {
                self.drop_connection(index, now, t);
                return;
            }
        }
    }

    /// Bytes arrived on the device's connection: decode them in place into
    /// the ring, then send what the answers made room for. A protocol error
    /// closes the connection (counted as malformed) and backs off.
    pub fn on_recv(&mut self, index: DeviceIndex, chunk: &[u8], now: Now, t: &mut impl Transport) {
        if self.device(index).link != Link::Connected {
            return;
        }
        let bytes = chunk.len() as u64;
        let decode_started = self.timing.is_some().then(Instant::now);
        let device = &mut self.devices[index as usize];
        let inflight_before = device.session.inflight_count();
        let exceptions_before = device.session.exception_samples();
        let (session, out) = (&mut device.session, &mut self.out);
        let frame_max = session.samples_per_frame_max().max(1);
        let mut rest = chunk;
        let mut samples = 0u64;
        let mut failed = false;
        // Every round consumes at least one frame's bytes or ends.
        for _ in 0..=chunk.len() {
            if rest.is_empty() {
                break;
            }
            let result = out.write(frame_max, |slice| {
                let result = session.receive(rest, now.unix_ns, slice);
                let written = match result {
                    Ok(r) => r.samples,
                    Err(e) => e.samples,
                };
                (written, result)
            });
            let Some(result) = result else {
                failed = true; // the promise was broken: a bug; do not spin.
                break;
            };
            match result {
                Ok(r) => {
                    samples += r.samples as u64;
                    if r.consumed == 0 && r.samples == 0 {
                        failed = true;
                        break;
                    }
                    rest = rest.get(r.consumed..).unwrap_or_default();
                }
                Err(e) => {
                    samples += e.samples as u64;
                    failed = true;
                    break;
                }
            }
        }
        let responses = inflight_before.saturating_sub(device.session.inflight_count()) as u64;
        let exceptions = device.session.exception_samples() - exceptions_before;
        if responses > 0 {
            device.attempt = 0;
        }
        if let (Some(timing), Some(started), true) =
            (&mut self.timing, decode_started, responses > 0)
        {
            let per_frame_ns = started.elapsed().as_nanos() as u64 / responses;
            timing.decode.record_ns(per_frame_ns);
            let sent = timing.sent_ns[index as usize];
            timing
                .round_trip
                .record_ns(now.mono_ns.saturating_sub(sent));
        }
        self.count(index, |c| {
            c.bytes_received += bytes;
            c.responses += responses;
            c.samples += samples;
            c.exception_samples += exceptions;
            c.malformed += u64::from(failed);
        });
        if failed {
            self.drop_connection(index, now, t);
        } else {
            self.transmit(index, now, t);
        }
        self.rearm(index);
    }
}

fn resolve(address: &str) -> io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address")))
}
