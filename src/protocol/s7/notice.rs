//! One-line notices for the operator: what the PLC's answers say about its
//! own configuration, in the words of the setting to change. Each distinct
//! condition is raised once per session, not per poll.

use std::fmt;

use crate::config::S7Area;

use super::limits::NOTICES_QUEUED_MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S7Notice {
    /// Header error 0x8104 on a read: S7-1200/1500 with PUT/GET access off.
    PutGetOff,
    /// Header error 0x8500: the PLC found a PDU size error in the request.
    PduSizeError,
    /// Any other header error class/code on a read.
    HeaderError { class: u8, code: u8 },
    /// Item return code 0x03, 0x05 or 0x0A on a data block: typically an
    /// optimized DB (or one that does not exist, or is too short).
    DbRefused { db: u16, code: u8 },
    /// An item return code on an area other than a DB.
    AreaRefused { area: S7Area, code: u8 },
    /// The PLC granted a smaller PDU than requested; the plan was rebuilt.
    PduNegotiated { requested: u16, granted: u16 },
    /// The PLC answered only the first `answered` items of `asked`: it caps
    /// items per request; later plans send at most that many.
    ItemsCapped { asked: u8, answered: u8 },
}

fn item_code_words(code: u8) -> &'static str {
    match code {
        0x01 => "hardware fault",
        0x03 => "access to the object not allowed",
        0x05 => "address out of range",
        0x06 => "data type not supported",
        0x07 => "data type inconsistent",
        0x0A => "object does not exist",
        _ => "item error",
    }
}

impl fmt::Display for S7Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            S7Notice::PutGetOff => f.write_str(
                "the PLC refuses reads (error 0x8104): PUT/GET access is off: enable \
                 'Permit access with PUT/GET communication from remote partner' in the CPU's \
                 protection settings",
            ),
            S7Notice::PduSizeError => f.write_str(
                "the PLC reports a PDU size error (0x8500) for a read: lower pdu_size for this \
                 device",
            ),
            S7Notice::HeaderError { class, code } => write!(
                f,
                "the PLC refuses reads with error class/code {class:#04x}{code:02x}"
            ),
            S7Notice::DbRefused { db, code } => write!(
                f,
                "DB{db}: {} (item code {code:#04x}): the DB may be optimized: turn off \
                 'Optimized block access' in the DB's attributes (or check that DB{db} exists \
                 and is long enough)",
                item_code_words(code)
            ),
            S7Notice::AreaRefused { area, code } => write!(
                f,
                "area {area}: {} (item code {code:#04x})",
                item_code_words(code)
            ),
            S7Notice::PduNegotiated { requested, granted } => write!(
                f,
                "the PLC granted a PDU of {granted} bytes (asked {requested}); reads are \
                 planned for {granted}"
            ),
            S7Notice::ItemsCapped { asked, answered } => write!(
                f,
                "the PLC answered only {answered} of {asked} items in one request: later \
                 requests carry at most {answered} items"
            ),
        }
    }
}

/// Notices raised so far and those waiting for the reader; both bounded
/// and allocated at start-up.
#[derive(Clone, Debug)]
pub struct Notices {
    raised: Vec<S7Notice>,
    queue: std::collections::VecDeque<S7Notice>,
    /// Distinct conditions past what `raised` holds (not announced).
    pub dropped: u64,
}

/// Distinct conditions remembered: a few per DB of a large device.
const RAISED_MAX: usize = 256;

impl Default for Notices {
    fn default() -> Self {
        Notices {
            raised: Vec::with_capacity(RAISED_MAX),
            queue: std::collections::VecDeque::with_capacity(NOTICES_QUEUED_MAX),
            dropped: 0,
        }
    }
}

impl Notices {
    /// Queues `notice` unless it was raised before.
    pub fn raise(&mut self, notice: S7Notice) {
        if self.raised.contains(&notice) {
            return;
        }
        // The queue's bound is the constant, not its capacity: a clone of
        // the session (a VecDeque clones with the capacity of its length)
        // would otherwise drop every notice.
        if self.raised.len() >= RAISED_MAX || self.queue.len() >= NOTICES_QUEUED_MAX {
            self.dropped += 1;
            return;
        }
        self.raised.push(notice);
        self.queue.push_back(notice);
    }

    pub fn pop(&mut self) -> Option<S7Notice> {
        self.queue.pop_front()
    }
}
