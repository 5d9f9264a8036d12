//! Which NotificationMessages of a subscription arrived, so that one lost
//! in flight (a Publish answer the dropped connection took with it) is
//! asked for again with Republish, and one that arrives twice (late, after
//! it was republished) is written once.
//!
//! The server numbers a subscription's data messages 1, 2, 3, ...; a
//! keep-alive carries no number of its own and is not fed here. A number
//! past the next expected one leaves a gap of missing numbers; a number
//! far below the last one means the numbering started again (the
//! subscription was created anew after a server restart: what the old one
//! held is gone). Sans-IO and bounded: at most `MISSING_MAX` numbers are
//! kept; a larger gap counts the rest as lost.

use std::collections::BTreeSet;

/// Missing message numbers kept for Republish. A subscription that lost
/// more than this many publishes in one gap has outlived the server's own
/// retransmission queue (a few times the keep-alive count) anyway.
pub const MISSING_MAX: usize = 1024;

/// What to do with an arriving data message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arrival {
    /// Write it (the next one, one past a gap, or one that fills a gap).
    Write,
    /// It was written already: skip it.
    Duplicate,
}

#[derive(Debug, Default)]
pub struct Sequence {
    last: Option<u32>,
    missing: BTreeSet<u32>,
    /// Messages known missing that can no longer be asked for.
    lost: u64,
}

impl Sequence {
    /// Data message `number` arrived through Publish or Republish.
    pub fn arrived(&mut self, number: u32) -> Arrival {
        let Some(last) = self.last else {
            self.last = Some(number);
            return Arrival::Write;
        };
        if number > last {
            let gap = number - last - 1;
            let room = MISSING_MAX.saturating_sub(self.missing.len()) as u32;
            self.missing.extend((last + 1..number).take(room as usize));
            self.lost += u64::from(gap.saturating_sub(room));
            self.last = Some(number);
            return Arrival::Write;
        }
        if self.missing.remove(&number) {
            return Arrival::Write;
        }
        if number.saturating_add(MISSING_MAX as u32) < last || number == 1 {
            // Numbering started again: a new subscription.
            self.lost += self.missing.len() as u64;
            self.missing.clear();
            self.last = Some(number);
            return Arrival::Write;
        }
        Arrival::Duplicate
    }

    /// The numbers to ask for again, oldest first (they stay missing until
    /// they arrive or are given up).
    pub fn missing(&self) -> Vec<u32> {
        self.missing.iter().copied().collect()
    }

    /// Whether any number is missing (no allocation: asked per message).
    pub fn has_missing(&self) -> bool {
        !self.missing.is_empty()
    }

    /// The server no longer holds `number`.
    pub fn give_up(&mut self, number: u32) {
        if self.missing.remove(&number) {
            self.lost += 1;
        }
    }

    /// Every missing number is given up (the subscription is gone).
    pub fn give_up_all(&mut self) {
        self.lost += self.missing.len() as u64;
        self.missing.clear();
    }

    pub fn lost(&self) -> u64 {
        self.lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_is_missing_until_it_arrives_once() {
        let mut s = Sequence::default();
        assert_eq!(s.arrived(1), Arrival::Write);
        assert_eq!(s.arrived(2), Arrival::Write);
        assert_eq!(s.arrived(5), Arrival::Write);
        assert_eq!(s.missing(), [3, 4]);
        assert_eq!(s.arrived(4), Arrival::Write, "republished");
        assert_eq!(s.arrived(4), Arrival::Duplicate, "and late through Publish");
        assert_eq!(s.arrived(5), Arrival::Duplicate);
        assert_eq!(s.missing(), [3]);
        s.give_up(3);
        assert!(s.missing().is_empty());
        assert!(!s.has_missing());
        assert_eq!(s.lost(), 1);
    }

    #[test]
    fn a_new_subscription_starts_over_and_what_the_old_one_held_is_lost() {
        let mut s = Sequence::default();
        s.arrived(7);
        s.arrived(10);
        assert_eq!(s.arrived(1), Arrival::Write);
        assert!(s.missing().is_empty());
        assert_eq!(s.lost(), 2);
        assert_eq!(s.arrived(2), Arrival::Write);
    }

    #[test]
    fn a_huge_gap_keeps_a_bounded_list() {
        let mut s = Sequence::default();
        s.arrived(1);
        s.arrived(u32::MAX);
        assert_eq!(s.missing().len(), MISSING_MAX);
        assert_eq!(s.lost(), u64::from(u32::MAX - 2) - MISSING_MAX as u64);
        s.give_up_all();
        assert_eq!(s.lost(), u64::from(u32::MAX - 2));
    }
}
