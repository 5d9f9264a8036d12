//! What a reader thread did, as counters. The thread counts into plain
//! integers (`Counters`, one per device and one pending total) and publishes
//! the pending total into the shared atomics (`Stats`) once per event-loop
//! iteration, so the hot path never touches a shared cache line per frame.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Plain counters of one device, or a thread's not yet published total.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $($(#[$doc])* pub $name: u64,)*
        }

        /// A reader thread's totals since start, shared with whoever exports
        /// metrics. Relaxed loads: each counter is exact, the set is not a
        /// snapshot of one instant.
        #[derive(Debug, Default)]
        pub struct Stats {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Devices connected now (a gauge).
            pub connected: AtomicU64,
            /// Per device, in shard order (set once by the shard).
            pub devices: std::sync::OnceLock<Vec<DeviceStats>>,
        }

        impl Counters {
            pub fn add(&mut self, other: &Counters) {
                $(self.$name += other.$name;)*
            }
        }

        impl Stats {
            /// Adds `pending` to the totals and zeroes it.
            pub fn publish(&self, pending: &mut Counters) {
                $(if pending.$name != 0 {
                    self.$name.fetch_add(pending.$name, Ordering::Relaxed);
                })*
                *pending = Counters::default();
            }

            pub fn snapshot(&self) -> Counters {
                Counters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Request ADUs handed to the socket.
    requests,
    /// Responses decoded (data or Modbus exception).
    responses,
    /// Samples published into the ring, every quality.
    samples,
    /// Samples with an exception quality (the device said no).
    exception_samples,
    /// Requests that timed out (each gave `Timeout` samples).
    timeouts,
    /// Connection attempts after the first one of a device.
    reconnects,
    /// Connections that ended (peer closed, I/O error, protocol error, timeout).
    disconnects,
    /// Connection attempts that failed or timed out.
    connect_failures,
    /// Responses that broke the protocol (the connection was then closed).
    malformed,
    /// Polls delayed because the ring had no room for their samples.
    overruns,
    /// Poll cycles started.
    polls,
    /// Poll slots skipped: the previous cycle was still running, the device
    /// was connecting, or an overrun delayed the poll past its slot.
    polls_skipped,
    /// `NoConnection` samples written for devices that were not connected.
    no_connection_samples,
    /// Bytes received from devices.
    bytes_received,
    /// Times the thread came back from waiting for I/O or a timer (event-loop
    /// turns). Responses per wake-up is how well the driver batches.
    wakeups,
}

/// One device's totals for the metrics endpoint (`millrace_device_*`),
/// published about once a second (`DEVICES_PUBLISH_NS` in shard.rs), not
/// per event-loop turn: a plant has thousands of devices.
#[derive(Debug)]
pub struct DeviceStats {
    pub name: String,
    /// Requests that timed out, malformed answers, failed connects and
    /// exception samples.
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
}

impl DeviceStats {
    pub fn new(name: &str) -> DeviceStats {
        DeviceStats {
            name: name.to_string(),
            errors: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    /// Stores the running totals of a device on a connection it shares:
    /// its own timeouts and exception rows, and the connection's failed
    /// connects, malformed answers and reconnects (each hit every device).
    pub fn store_unit(&self, connection: &Counters, own: crate::protocol::UnitBad) {
        let errors = own.timeouts
            + own.exception_samples
            + connection.malformed
            + connection.connect_failures;
        self.errors.store(errors, Ordering::Relaxed);
        self.reconnects
            .store(connection.reconnects, Ordering::Relaxed);
    }

    /// Stores the running totals of a device with a connection of its own:
    /// the connection's troubles are all its own.
    pub fn store(&self, counters: &Counters) {
        let own = crate::protocol::UnitBad {
            timeouts: counters.timeouts,
            exception_samples: counters.exception_samples,
        };
        self.store_unit(counters, own);
    }
}

impl Stats {
    pub fn connected_now(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }
}
