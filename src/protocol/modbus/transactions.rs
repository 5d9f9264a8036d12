//! The client-side transaction table: which planned request each
//! outstanding transaction id stands for, and when it times out. Capacity is
//! fixed at start-up (`max_inflight`); nothing allocates afterwards.

/// An outstanding request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inflight {
    pub transaction_id: u16,
    /// Index into the plan's requests.
    pub request_index: usize,
    /// Monotonic ns after which the request has timed out.
    pub deadline_ns: u64,
    /// Send order, for RTU (no transaction ids: answers come in order).
    sent_order: u64,
}

/// The most requests a connection may keep outstanding: far above what a
/// PLC accepts (often 1-16), far below the 65536 transaction ids.
pub const INFLIGHT_MAX: usize = 256;

#[derive(Clone, Debug)]
pub struct TransactionTable {
    slots: Vec<Option<Inflight>>,
    count: usize,
    sent_total: u64,
}

impl TransactionTable {
    /// `capacity` is clamped to 1..=INFLIGHT_MAX.
    pub fn new(capacity: usize) -> Self {
        TransactionTable {
            slots: vec![None; capacity.clamp(1, INFLIGHT_MAX)],
            count: 0,
            sent_total: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    pub fn len(&self) -> usize {
        self.count
    }
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    pub fn is_full(&self) -> bool {
        self.count == self.slots.len()
    }
    pub fn contains(&self, transaction_id: u16) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|s| s.transaction_id == transaction_id)
    }

    /// Records a sent request; false when the table is full.
    pub fn insert(&mut self, transaction_id: u16, request_index: usize, deadline_ns: u64) -> bool {
        assert!(!self.contains(transaction_id));
        let Some(slot) = self.slots.iter_mut().find(|s| s.is_none()) else {
            return false;
        };
        self.sent_total += 1;
        *slot = Some(Inflight {
            transaction_id,
            request_index,
            deadline_ns,
            sent_order: self.sent_total,
        });
        self.count += 1;
        true
    }

    /// Removes and returns the request with this transaction id.
    pub fn take(&mut self, transaction_id: u16) -> Option<Inflight> {
        self.take_where(|s| s.transaction_id == transaction_id)
    }

    /// Removes and returns the oldest outstanding request.
    pub fn take_oldest(&mut self) -> Option<Inflight> {
        let oldest = self.slots.iter().flatten().map(|s| s.sent_order).min()?;
        self.take_where(|s| s.sent_order == oldest)
    }

    /// Removes and returns one request whose deadline is at or before `now_ns`.
    pub fn take_expired(&mut self, now_ns: u64) -> Option<Inflight> {
        self.take_where(|s| s.deadline_ns <= now_ns)
    }

    /// Removes and returns any outstanding request (to fail them all).
    pub fn take_any(&mut self) -> Option<Inflight> {
        self.take_where(|_| true)
    }

    /// The earliest deadline of an outstanding request.
    pub fn next_deadline_ns(&self) -> Option<u64> {
        self.slots.iter().flatten().map(|s| s.deadline_ns).min()
    }

    fn take_where(&mut self, matches: impl Fn(&Inflight) -> bool) -> Option<Inflight> {
        let slot = self
            .slots
            .iter_mut()
            .find(|s| s.as_ref().is_some_and(&matches))?;
        let taken = slot.take();
        self.count -= 1;
        taken
    }
}
