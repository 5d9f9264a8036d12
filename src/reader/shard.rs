//! The driver-agnostic core of one reader thread: its devices, their timers,
//! the ring promise, and what happens on every event. A driver (epoll.rs,
//! uring.rs) owns the sockets and calls in here with bytes, connection
//! outcomes and the time; this calls back out through [`Transport`]. It is
//! protocol-blind too: each device's session (protocol/session.rs) turns
//! bytes into samples and says what to send.
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
use crate::protocol::{DeviceSession, ErrorClass, ProtocolError, Session};
use crate::ring::Producer;
use crate::sample::{Quality, TagId};

pub use super::clock::{Clock, Now};
use super::device::{Device, Link};
use super::health::Health;
use super::ring_out::RingOut;
use super::scheduler::{initial_phase_ns, next_poll_ns, DeviceIndex, Scheduler};
use super::stats::{Counters, Stats};

/// A device for a reader's shard: its configuration and the id of its
/// first tag in the run's tag table, and the devices that share its
/// connection (`Config::connections`).
#[derive(Clone, Debug)]
pub struct DeviceSpec {
    pub config: DeviceConfig,
    pub first_tag: TagId,
    /// Devices polled over this device's connection after its own requests
    /// (the other Modbus units behind one gateway address); usually none.
    /// The connection is logged as one device, named `<first
    /// device>+<others>` (`line1-a+9`); each device keeps its own metrics.
    pub shared_with: Vec<(DeviceConfig, TagId)>,
}

impl DeviceSpec {
    /// A device with a connection of its own.
    pub fn alone(config: DeviceConfig, first_tag: TagId) -> DeviceSpec {
        DeviceSpec {
            config,
            first_tag,
            shared_with: Vec::new(),
        }
    }

    /// Every device on the connection, in request order.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceConfig> {
        std::iter::once(&self.config).chain(self.shared_with.iter().map(|(c, _)| c))
    }

    /// The name the connection is logged under.
    pub fn name(&self) -> String {
        match self.shared_with.len() {
            0 => self.config.name.clone(),
            more => format!("{}+{more}", self.config.name),
        }
    }

    fn session(&self) -> Result<DeviceSession, crate::protocol::BuildError> {
        if self.shared_with.is_empty() {
            return DeviceSession::for_device(&self.config, self.first_tag);
        }
        let devices: Vec<(&DeviceConfig, TagId)> = std::iter::once((&self.config, self.first_tag))
            .chain(self.shared_with.iter().map(|(c, t)| (c, *t)))
            .collect();
        DeviceSession::for_connection(&devices)
    }
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
    /// Half-closes the connection (sends FIN) once the staged bytes are
    /// sent; the peer's answers can still be read.
    fn close_write(&mut self, device: DeviceIndex);
    /// Closes the device's socket; staged bytes are dropped.
    fn close(&mut self, device: DeviceIndex);
}

/// Longest an overrun delays a poll before it is tried again.
const OVERRUN_RETRY_NS_MAX: u64 = 10_000_000;
const OVERRUN_RETRY_NS_MIN: u64 = 100_000;
/// Not armed (the scheduler holds no wake-up for the device).
const UNARMED: u64 = u64::MAX;
/// The longest a clean stop waits for the peers it sent closing messages to
/// to close their end. The messages go out followed by a half-close, and the
/// driver reads (and drops) what comes back until the peer closes: closing
/// with its answers unread would reset the connection, and a reset can make
/// the peer drop the closing messages it has not read yet (an asyncio
/// server's reader raises the reset before returning buffered bytes).
pub const CLOSE_LINGER_MAX: std::time::Duration = std::time::Duration::from_secs(1);
/// Timer slack: a wake-up may come this much after its deadline, so that the
/// polls and timeouts falling inside one slack window run in one event-loop
/// turn (one submit, one wait) instead of one turn each. A tenth of the
/// shortest poll interval, at most 100 ms: 1,000 devices polled every second
/// go out in ~10 turns a second instead of ~1,000 (at 1 ms, an old bound:
/// one turn per device; at 20 ms, the next, ~50, each with its own group
/// commit and kdb+ batch), 1,000 devices at 10 ms in ~1,000 instead of
/// ~100,000, and no poll runs more than a tenth of its interval late. The
/// cadence does not drift: the next slot is computed from the scheduled one,
/// not from when it ran. A sample's time is when its answer was read, so
/// the slack moves when a PLC is asked, never what its row says.
const SLACK_NS_MAX: u64 = 100_000_000;
const SLACK_DIVISOR: u64 = 10;
/// Requests a device's send staging holds (Modbus: 16 x 12 bytes), within
/// `STAGING_BYTES_MAX` for protocols with large requests (one at least).
const STAGED_REQUESTS: usize = 16;
const STAGING_BYTES_MAX: usize = 16 * 1024;
/// Rounds of `disconnect`/`fail_unsent`/`handle_timeout` calls per event: a
/// session writes at least one request's samples per round, and a cycle has
/// at most this many requests (a backstop against a session that never
/// returns 0).
const FAIL_ROUNDS_MAX: usize = 1 << 16;

/// Send staging for a device whose longest request is `request_bytes_max`.
pub fn staging_bytes(request_bytes_max: usize) -> usize {
    (STAGED_REQUESTS * request_bytes_max)
        .clamp(request_bytes_max, STAGING_BYTES_MAX.max(request_bytes_max))
}

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
    /// A clean stop has begun (`close_politely`): no new connection starts.
    stopping: bool,
    /// Devices in `Link::Closing`.
    closing: usize,
    /// One request's bytes on their way to the staging (the longest
    /// `request_bytes_max` of the shard's devices).
    tx_buf: Vec<u8>,
    /// Per device: name, protocol and address, for log lines.
    labels: Vec<DeviceLabel>,
    /// What the log has said about each device's connection.
    health: Health,
    /// When the per-device totals were last published (`stats.devices`).
    devices_published_ns: u64,
    /// Rung at the end of a turn that published samples.
    pub doorbell: Option<Arc<crate::doorbell::Doorbell>>,
}

/// How often the per-device totals go to the metrics.
const DEVICES_PUBLISH_NS: u64 = 1_000_000_000;

/// What every log line about a device carries.
struct DeviceLabel {
    name: String,
    protocol: crate::config::Protocol,
    address: String,
    /// The names of the devices on a shared connection, in request order
    /// (empty for a connection of one device), so a notice about one of
    /// them names it.
    members: Vec<String>,
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
        let mut labels = Vec::with_capacity(specs.len());
        for (index, spec) in specs.iter().enumerate() {
            let config = &spec.config;
            let session = spec
                .session()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            let addr = resolve(&config.address)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", config.name)))?;
            let interval_ns = u64::try_from(config.poll_interval.as_nanos()).unwrap_or(u64::MAX);
            let timeout_ns = u64::try_from(config.timeout.as_nanos()).unwrap_or(u64::MAX);
            let index = DeviceIndex::try_from(index)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many devices"))?;
            let phase_ns = initial_phase_ns(index, interval_ns.max(1));
            let mut device = Device::new(session, addr, interval_ns.max(1), timeout_ns, phase_ns);
            // The ring's writer unpacks them (packed.rs).
            device.session.pack_runs();
            frame_samples_max = frame_samples_max
                .max(device.cycle_samples)
                .max(device.session.samples_per_frame_max());
            devices.push(device);
            let members = if spec.shared_with.is_empty() {
                Vec::new()
            } else {
                spec.devices().map(|d| d.name.clone()).collect()
            };
            labels.push(DeviceLabel {
                name: spec.name(),
                protocol: config.protocol,
                address: config.address.clone(),
                members,
            });
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
        let _ = stats.devices.set(
            specs
                .iter()
                .flat_map(DeviceSpec::devices)
                .map(|d| super::stats::DeviceStats::new(&d.name))
                .collect(),
        );
        let interval_min_ns = devices.iter().map(|d| d.interval_ns).min().unwrap_or(0);
        let request_bytes_max = devices
            .iter()
            .map(|d| d.session.request_bytes_max())
            .max()
            .unwrap_or(0);
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
            stopping: false,
            closing: 0,
            tx_buf: vec![0; request_bytes_max],
            labels,
            health: Health::new(count),
            devices_published_ns: 0,
            doorbell: None,
        })
    }

    /// Send staging bytes each device needs, by device index (drivers
    /// allocate them once).
    pub fn staging_sizes(&self) -> Vec<usize> {
        self.devices
            .iter()
            .map(|d| staging_bytes(d.session.request_bytes_max()))
            .collect()
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

    /// A clean stop: hands each connected device's closing messages
    /// (`Session::poll_close`: EtherNet/IP's Forward Close and
    /// UnregisterSession) to the transport, followed by a half-close, and
    /// marks the device `Closing`: what it sends from then on is read and
    /// dropped. Called once by the driver after its loop ends; the driver
    /// then keeps reading (without `run_due`) until `closing_count` is zero
    /// or `CLOSE_LINGER_MAX` has passed, and closes the sockets.
    pub fn close_politely(&mut self, t: &mut impl Transport) {
        self.stopping = true;
        let buf = &mut self.tx_buf;
        for (index, device) in self.devices.iter_mut().enumerate() {
            let index = index as DeviceIndex;
            if device.link != Link::Connected {
                continue;
            }
            let Some(n) = device.session.poll_close(buf) else {
                continue;
            };
            let Some(bytes) = buf.get(..n) else { continue };
            if t.tx_room(index) < n {
                continue;
            }
            t.queue(index, bytes);
            if t.flush(index).is_ok() {
                t.close_write(index);
                device.link = Link::Closing;
                self.closing += 1;
            }
        }
    }

    /// After `close_politely`: driver turns (`turn(shard, wait_ns)`) until
    /// every closing device's peer has closed its end, `CLOSE_LINGER_MAX`
    /// has passed, or a turn fails.
    pub fn linger(
        &mut self,
        clock: &Clock,
        mut turn: impl FnMut(&mut Self, u64) -> io::Result<()>,
    ) {
        let linger_ns = u64::try_from(CLOSE_LINGER_MAX.as_nanos()).unwrap_or(u64::MAX);
        let deadline_ns = clock.now().mono_ns.saturating_add(linger_ns);
        while self.closing > 0 {
            let Some(wait_ns) = deadline_ns.checked_sub(clock.now().mono_ns) else {
                break;
            };
            if turn(self, wait_ns).is_err() {
                break;
            }
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
        if self.out.take_published() {
            if let Some(doorbell) = &self.doorbell {
                doorbell.ring(|| self.out.filling());
            }
        }
        self.stats.publish(&mut self.pending);
    }

    /// A device stopped answering: the first failure of a streak is one
    /// log line (within the reader's budget, `health`), the others are
    /// counted only.
    fn link_failed(&mut self, index: DeviceIndex, now: Now, why: std::fmt::Arguments<'_>) {
        if let Some(change) = self.health.failed(index as usize, now.mono_ns) {
            let label = &self.labels[index as usize];
            tracing::warn!(
                device = %label.name,
                protocol = %label.protocol,
                address = %label.address,
                "device {}: {change}: {why} (failures are counted, not logged, until it \
                 answers again)",
                label.name
            );
        }
    }

    /// The summary of the devices' connections since the last one, once a
    /// window has passed (and at the end, `finish`).
    fn summarize(&mut self, now: Now, end: bool) {
        if end || now.mono_ns.saturating_sub(self.devices_published_ns) >= DEVICES_PUBLISH_NS {
            self.devices_published_ns = now.mono_ns;
            if let Some(stats) = self.stats.devices.get() {
                // One entry per device, the devices of a connection in a row.
                let mut next = 0;
                for device in &self.devices {
                    let units = device.session.unit_count();
                    let Some(unit_stats) = stats.get(next..next + units) else {
                        break;
                    };
                    next += units;
                    if let [only] = unit_stats {
                        only.store(&device.counters);
                        continue;
                    }
                    for (unit, stats) in unit_stats.iter().enumerate() {
                        let bad = device.session.unit_bad(unit).unwrap_or_default();
                        stats.store_unit(&device.counters, bad);
                    }
                }
            }
        }
        let summary = if end {
            self.health.close_window(now.mono_ns)
        } else {
            self.health.summary_due(now.mono_ns)
        };
        if let Some(summary) = summary {
            tracing::info!("{summary}");
        }
    }

    /// The driver's loop ended: the last summary.
    pub fn finish(&mut self, now: Now) {
        self.summarize(now, true);
    }

    /// Services every device whose wake-up is due.
    pub fn run_due(&mut self, now: Now, t: &mut impl Transport) {
        self.summarize(now, false);
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
                self.connect_failed(index, "the connect timed out", now, t);
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
        if let Err(e) = t.connect(index, addr) {
            self.connect_failed(index, &format!("cannot connect: {e}"), now, t);
        }
    }

    /// The driver saw the connect complete: the session starts its
    /// handshake (or is ready at once) and sends what it has.
    pub fn on_connected(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        if self.stopping {
            return;
        }
        let device = self.device(index);
        if !matches!(device.link, Link::Connecting { .. }) {
            return;
        }
        device.link = Link::Connected;
        device.ever_connected = true;
        device.session.on_connected(now.mono_ns);
        self.stats
            .connected
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.transmit(index, now, t);
        self.rearm(index);
    }

    /// The driver saw the connect fail.
    pub fn on_connect_failed(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        if matches!(self.device(index).link, Link::Connecting { .. }) {
            self.connect_failed(index, "the connect failed", now, t);
            self.rearm(index);
        }
    }

    fn connect_failed(&mut self, index: DeviceIndex, why: &str, now: Now, t: &mut impl Transport) {
        self.link_failed(index, now, format_args!("{why}"));
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
    /// what is in flight with `NO_CONNECTION` and back off.
    pub fn on_closed(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        if self.device(index).link == Link::Closing {
            // The peer closed its end after our closing messages.
            t.close(index);
            self.device(index).link = Link::Disconnected {
                retry_at_ns: u64::MAX,
            };
            self.stats
                .connected
                .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            self.closing -= 1;
            return;
        }
        if self.device(index).link == Link::Connected {
            self.link_failed(index, now, format_args!("the connection closed"));
            self.drop_connection(index, now, t);
            self.rearm(index);
        }
    }

    /// Ends the connection and the cycle with it: requests in flight and
    /// the cycle's unsent ones all yield `NO_CONNECTION` samples (their room
    /// was promised), so nothing of a cycle outlives its connection.
    fn drop_connection(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        t.close(index);
        self.stats
            .connected
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.count(index, |c| c.disconnects += 1);
        let in_flight = self.write_rounds(index, |s, out| s.disconnect(now.unix_ns, out));
        let unsent = self.write_rounds(index, |s, out| {
            s.fail_unsent(Quality::NO_CONNECTION, now.unix_ns, out)
        });
        self.count(index, |c| {
            c.samples += in_flight + unsent;
            c.no_connection_samples += unsent;
        });
        self.back_off(index, now);
    }

    /// Calls `write` with ring room for one frame until it writes nothing;
    /// returns the samples written.
    fn write_rounds(
        &mut self,
        index: DeviceIndex,
        mut write: impl FnMut(&mut DeviceSession, &mut [crate::Sample]) -> usize,
    ) -> u64 {
        let device = &mut self.devices[index as usize];
        let (session, out) = (&mut device.session, &mut self.out);
        let frame_max = session.samples_per_frame_max();
        let mut written_total = 0u64;
        for _ in 0..FAIL_ROUNDS_MAX {
            let written = out
                .write(frame_max, |slice| {
                    let n = write(session, slice);
                    (n, ())
                })
                .map_or(0, |((), samples)| samples);
            written_total += written as u64;
            if written == 0 {
                break;
            }
        }
        written_total
    }

    /// Retires requests past their deadline with `TIMEOUT` samples; the
    /// cycle then carries on with its next request. A handshake that did not
    /// finish in time drops the connection.
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
        let mut failed = None;
        let written = self.write_rounds(index, |s, out| {
            match s.handle_timeout(now.mono_ns, now.unix_ns, out) {
                Ok(n) => n,
                Err(e) => {
                    failed = Some(e);
                    0
                }
            }
        });
        let device = &self.devices[index as usize];
        let timed_out = before.saturating_sub(device.session.inflight_count()) as u64;
        self.count(index, |c| {
            c.timeouts += timed_out;
            c.samples += written;
        });
        self.log_notices(index);
        if let Some(error) = failed {
            self.protocol_failed(index, error, now, t);
        } else if self.device(index).link == Link::Connected {
            self.transmit(index, now, t);
        }
    }

    /// The session reported an error: count it, say it once in the log, and
    /// drop the connection (the session is reused after the reconnect).
    fn protocol_failed(
        &mut self,
        index: DeviceIndex,
        error: ProtocolError,
        now: Now,
        t: &mut impl Transport,
    ) {
        let class = self.devices[index as usize].session.classify(&error);
        match class {
            ErrorClass::Malformed => self.count(index, |c| c.malformed += 1),
            ErrorClass::Handshake => self.count(index, |c| c.connect_failures += 1),
        }
        let what = match class {
            ErrorClass::Malformed => "malformed answer",
            ErrorClass::Handshake => "handshake failed",
        };
        self.link_failed(
            index,
            now,
            format_args!("{what}, dropping the connection: {error}"),
        );
        if self.device(index).link == Link::Connected {
            self.drop_connection(index, now, t);
        }
    }

    fn poll(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let device = &self.devices[index as usize];
        let link = device.link;
        let (next_slot_ns, skipped) =
            next_poll_ns(device.poll_slot_ns, device.interval_ns, now.mono_ns);
        let busy = match link {
            Link::Connected => device.cycle_running() || !device.session.is_ready(),
            Link::Connecting { .. } | Link::Closing => true,
            Link::Disconnected { .. } => false,
        };
        if busy {
            // The previous cycle (or the connect, or the handshake) is still
            // running: this slot is lost; try again at the next one. A cycle
            // that stalled on send staging (nothing in flight) gets its
            // requests out now.
            self.advance_slot(index, next_slot_ns, skipped + 1);
            if link == Link::Connected && self.devices[index as usize].session.inflight_count() == 0
            {
                self.transmit(index, now, t);
            }
            return;
        }
        let device = &self.devices[index as usize];
        let unsent = device.session.unsent_samples();
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
        self.devices[index as usize].session.start_cycle();
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
    /// `NO_CONNECTION` sample per tag (their room was promised by `poll`).
    fn report_no_connection(&mut self, index: DeviceIndex, now: Now) {
        let written = self.write_rounds(index, |s, out| {
            s.fail_unsent(Quality::NO_CONNECTION, now.unix_ns, out)
        });
        self.count(index, |c| {
            c.samples += written;
            c.no_connection_samples += written;
        });
    }

    /// Sends what the session has due (handshake steps, or the cycle's next
    /// requests up to its in-flight limit), in rounds of what the driver's
    /// staging holds.
    fn transmit(&mut self, index: DeviceIndex, now: Now, t: &mut impl Transport) {
        let device = &mut self.devices[index as usize];
        let request_bytes_max = device.session.request_bytes_max();
        let request_count = device.session.requests_per_cycle();
        // Each round sends at least one message or ends; a cycle plus a
        // handshake is at most this many.
        for _ in 0..=request_count + 8 {
            let device = &mut self.devices[index as usize];
            let mut sent = 0u64;
            let mut requests = 0u64;
            while t.tx_room(index) >= request_bytes_max {
                let ready = device.session.is_ready();
                let Some(length) = device.session.poll_transmit(now.mono_ns, &mut self.tx_buf)
                else {
                    break;
                };
                t.queue(index, self.tx_buf.get(..length).unwrap_or_default());
                sent += 1;
                requests += u64::from(ready);
            }
            if sent == 0 {
                return;
            }
            self.count(index, |c| c.requests += requests);
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
    /// closes the connection (counted, logged) and backs off.
    pub fn on_recv(&mut self, index: DeviceIndex, chunk: &[u8], now: Now, t: &mut impl Transport) {
        if self.device(index).link != Link::Connected {
            return;
        }
        let bytes = chunk.len() as u64;
        let decode_started = self.timing.is_some().then(Instant::now);
        let device = &mut self.devices[index as usize];
        let inflight_before = device.session.inflight_count();
        let bad_before = device.session.device_bad_samples();
        let (session, out) = (&mut device.session, &mut self.out);
        let frame_max = session.samples_per_frame_max().max(1);
        let mut rest = chunk;
        let mut samples = 0u64;
        let mut failed: Option<Option<ProtocolError>> = None;
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
            let Some((result, members)) = result else {
                failed = Some(None); // the promise was broken: a bug; do not spin.
                break;
            };
            match result {
                Ok(r) => {
                    samples += members as u64;
                    if r.consumed == 0 && r.samples == 0 {
                        failed = Some(None);
                        break;
                    }
                    rest = rest.get(r.consumed..).unwrap_or_default();
                }
                Err(e) => {
                    samples += members as u64;
                    failed = Some(Some(e.error));
                    break;
                }
            }
        }
        let device = &mut self.devices[index as usize];
        let responses = inflight_before.saturating_sub(device.session.inflight_count()) as u64;
        let device_bad = device.session.device_bad_samples() - bad_before;
        // A handshake step answered is not a device that answers: one
        // that refuses the next step (a Forward Open along a wrong route)
        // would otherwise reset its back-off and be logged back and lost
        // on every retry.
        if responses > 0 && device.session.is_ready() {
            device.attempt = 0;
            if let Some(change) = self.health.answered(index as usize, now.mono_ns) {
                let label = &self.labels[index as usize];
                tracing::info!(
                    device = %label.name,
                    protocol = %label.protocol,
                    address = %label.address,
                    "device {}: {change}",
                    label.name
                );
            }
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
            c.exception_samples += device_bad;
        });
        self.log_notices(index);
        match failed {
            Some(Some(error)) => self.protocol_failed(index, error, now, t),
            Some(None) => {
                self.count(index, |c| c.malformed += 1);
                self.drop_connection(index, now, t);
            }
            None => self.transmit(index, now, t),
        }
        self.rearm(index);
    }

    /// Logs what the session had to say (once per notice it raises).
    fn log_notices(&mut self, index: DeviceIndex) {
        for _ in 0..8 {
            let Some(notice) = self.devices[index as usize].session.poll_notice() else {
                return;
            };
            let label = &self.labels[index as usize];
            let member = notice.device_position().and_then(|p| label.members.get(p));
            match member {
                Some(member) => tracing::warn!(
                    device = %member,
                    connection = %label.name,
                    protocol = %label.protocol,
                    address = %label.address,
                    "device {member} (on connection {}): {notice}",
                    label.name
                ),
                None => tracing::warn!(
                    device = %label.name,
                    protocol = %label.protocol,
                    address = %label.address,
                    "device {}: {notice}",
                    label.name
                ),
            }
        }
    }
}

fn resolve(address: &str) -> io::Result<SocketAddr> {
    address
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{address}: no address")))
}
