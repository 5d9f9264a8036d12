//! What the farm has done, counted per event loop without atomics (`Tally`)
//! and published into shared atomics once per loop iteration (`Counters`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::fault::Fault;

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// A snapshot of the farm's counters (all threads, since start).
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct FarmCounters {
            $($(#[$doc])* pub $name: u64,)*
        }

        #[derive(Default)]
        pub(super) struct Tally {
            $(pub $name: u64,)*
        }

        #[derive(Default)]
        pub(super) struct Counters {
            $($name: AtomicU64,)*
        }

        impl Counters {
            pub fn publish(&self, tally: &mut Tally) {
                $(if tally.$name != 0 {
                    self.$name.fetch_add(tally.$name, Ordering::Relaxed);
                    tally.$name = 0;
                })*
            }

            pub fn snapshot(&self) -> FarmCounters {
                FarmCounters { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Request ADUs parsed (every kind).
    requests,
    /// Reads answered with data (the values `verify_*` accept).
    data_responses,
    /// Modbus: spec exceptions for bad requests (01 function, 02 address,
    /// 03 value).
    protocol_exceptions,
    /// Modbus, several units per port: requests for a unit id no device
    /// behind the port answers to (exception 0x0B).
    unknown_unit_exceptions,
    /// S7: items answered with an error return code for their address
    /// (0x05 out of range, 0x06 type, 0x0A no such object).
    s7_item_errors,
    /// S7: jobs refused with a header error (0x8104 function not available
    /// or PUT/GET off, 0x8500 PDU size), faults not included.
    s7_header_errors,
    /// S7: connect requests refused (their called TSAP names another rack
    /// or slot).
    s7_connects_refused,
    /// Connections closed because the input could not be the device's
    /// protocol (Modbus TCP, TPKT/COTP/S7 in order, or EtherNet/IP: a
    /// length past the cap, a command out of turn, another connection).
    framing_errors,
    /// Faults injected: connections dropped instead of answering.
    fault_drops,
    /// Faults injected: answers held back for the stall time.
    fault_stalls,
    /// Faults injected: Modbus exception 04, an S7 item error 0x01, or a
    /// CIP status 0x02 for the first read of a request, instead of data.
    fault_exceptions,
    /// Faults injected: answers with lengths that disagree with the data.
    fault_malformed,
    /// Faults injected (S7): header error 0x8500 instead of data.
    fault_pdu_overflows,
    connections_accepted,
    /// Accepted and closed at once: the connection limit was reached.
    connections_rejected,
    /// CPU time of the event-loop threads, refreshed about once a second.
    cpu_ns,
}

impl Tally {
    pub fn count_fault(&mut self, fault: Fault) {
        match fault {
            Fault::None => {}
            Fault::DropConnection => self.fault_drops += 1,
            Fault::Stall => self.fault_stalls += 1,
            Fault::Exception => self.fault_exceptions += 1,
            Fault::MalformedCount | Fault::MalformedFrameLength => self.fault_malformed += 1,
            Fault::PduOverflow => self.fault_pdu_overflows += 1,
        }
    }
}

impl FarmCounters {
    pub fn faults(&self) -> u64 {
        self.fault_drops
            + self.fault_stalls
            + self.fault_exceptions
            + self.fault_malformed
            + self.fault_pdu_overflows
    }
}

/// CPU time of the calling thread from /proc (utime + stime, in clock ticks
/// of 10 ms: USER_HZ is 100 on Linux). `None` where /proc is not there.
pub(super) fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The command name may hold spaces; fields count from after its ')'.
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    let mut fields = rest.split(' ');
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 10_000_000)
}
