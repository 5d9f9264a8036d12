//! One device as its reader thread sees it: its session (any protocol, see
//! protocol/session.rs), the state of the connection, the poll cadence and
//! the device's counters. Sans-IO: the shard (shard.rs) decides, a driver
//! (epoll.rs, uring.rs) does the I/O.
//!
//! ```text
//!   Disconnected{retry_at} --retry_at--> Connecting{deadline} --ok--> Connected
//!        ^                                   |  fail/deadline            |
//!        +-----------------------------------+---------------------------+
//!                       close, error, malformed answer: back off
//! ```
//!
//! `Connected` covers the protocol's handshake too: the session says when it
//! is ready for polls (`Session::is_ready`).

use std::net::SocketAddr;

use crate::protocol::{DeviceSession, Session};

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
    /// A clean stop sent the closing messages and a half-close; what the
    /// peer still sends is dropped until it closes too.
    Closing,
}

pub struct Device {
    pub session: DeviceSession,
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
    /// Records of one whole poll cycle.
    pub cycle_samples: usize,
    pub counters: Counters,
}

impl Device {
    pub fn new(
        session: DeviceSession,
        addr: SocketAddr,
        interval_ns: u64,
        timeout_ns: u64,
        phase_ns: u64,
    ) -> Self {
        assert!(interval_ns > 0);
        let cycle_samples = session.cycle_samples();
        Device {
            timeout_ns: timeout_ns.max(1),
            session,
            addr,
            link: Link::Disconnected { retry_at_ns: 0 },
            interval_ns,
            poll_slot_ns: phase_ns,
            poll_at_ns: phase_ns,
            attempt: 0,
            ever_connected: false,
            cycle_samples,
            counters: Counters::default(),
        }
    }

    /// A cycle is under way: requests unsent or unanswered.
    pub fn cycle_running(&self) -> bool {
        self.session.inflight_count() > 0 || !self.session.cycle_sent()
    }

    /// The one wake-up the scheduler keeps for this device.
    pub fn wake_at_ns(&self) -> u64 {
        let link_ns = match self.link {
            Link::Disconnected { retry_at_ns } => retry_at_ns,
            Link::Connecting { deadline_ns } => deadline_ns,
            Link::Connected | Link::Closing => u64::MAX,
        };
        let request_ns = self.session.next_deadline_ns().unwrap_or(u64::MAX);
        self.poll_at_ns.min(link_ns).min(request_ns)
    }
}
