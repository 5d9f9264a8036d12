//! One device as its reader thread sees it: the Modbus session, the state of
//! the connection, the poll cadence and the device's counters. Sans-IO: the
//! shard (shard.rs) decides, a driver (epoll.rs, uring.rs) does the I/O.
//!
//! ```text
//!   Disconnected{retry_at} --retry_at--> Connecting{deadline} --ok--> Connected
//!        ^                                   |  fail/deadline            |
//!        +-----------------------------------+---------------------------+
//!                       close, error, malformed answer: back off
//! ```

use std::net::SocketAddr;

use crate::protocol::modbus::ModbusSession;

use super::stats::Counters;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// No socket; try again at `retry_at_ns` (monotonic).
    Disconnected {
        retry_at_ns: u64,
    },
    /// A non-blocking connect is under way; give up at `deadline_ns`.
    Connecting {
        deadline_ns: u64,
    },
    Connected,
}

pub struct Device {
    pub session: ModbusSession,
    pub addr: SocketAddr,
    pub link: Link,
    pub interval_ns: u64,
    /// The connect timeout: the device's request timeout.
    pub timeout_ns: u64,
    /// The cadence slot of the next poll (fixed grid: phase + k * interval).
    pub poll_slot_ns: u64,
    /// When to try that poll: the slot, or later after an overrun.
    pub poll_at_ns: u64,
    /// Failed connections since the last good answer (the backoff attempt).
    pub attempt: u32,
    /// Whether the device has connected at least once (later tries are
    /// reconnects).
    pub ever_connected: bool,
    /// Requests of the current cycle handed to the socket, in plan order.
    pub sent_in_cycle: usize,
    /// One sample per tag, every cycle.
    pub cycle_samples: usize,
    pub counters: Counters,
}

impl Device {
    pub fn new(session: ModbusSession, addr: SocketAddr, interval_ns: u64, phase_ns: u64) -> Self {
        assert!(interval_ns > 0);
        let cycle_samples = session.plan().sample_count();
        let request_count = session.plan().requests.len();
        Device {
            timeout_ns: session.config().timeout_ns.max(1),
            session,
            addr,
            link: Link::Disconnected { retry_at_ns: 0 },
            interval_ns,
            poll_slot_ns: phase_ns,
            poll_at_ns: phase_ns,
            attempt: 0,
            ever_connected: false,
            sent_in_cycle: request_count,
            cycle_samples,
            counters: Counters::default(),
        }
    }

    pub fn request_count(&self) -> usize {
        self.session.plan().requests.len()
    }

    /// Samples the unsent rest of the current cycle will produce.
    pub fn unsent_samples(&self) -> usize {
        let requests = &self.session.plan().requests;
        requests
            .get(self.sent_in_cycle..)
            .map_or(0, |rest| rest.iter().map(|r| r.tags.len()).sum())
    }

    /// Every request of the cycle sent and answered (or failed).
    pub fn cycle_running(&self) -> bool {
        self.session.inflight_count() > 0 || self.sent_in_cycle < self.request_count()
    }

    /// The one wake-up the scheduler keeps for this device.
    pub fn wake_at_ns(&self) -> u64 {
        let link_ns = match self.link {
            Link::Disconnected { retry_at_ns } => retry_at_ns,
            Link::Connecting { deadline_ns } => deadline_ns,
            Link::Connected => u64::MAX,
        };
        let request_ns = self.session.next_deadline_ns().unwrap_or(u64::MAX);
        self.poll_at_ns.min(link_ns).min(request_ns)
    }
}
