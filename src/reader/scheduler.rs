//! The poll scheduler of one reader thread: one timer per device, in a heap.
//!
//! Sans-IO: time is a monotonic `now_ns` passed in by the driver. A device has
//! exactly one pending wake-up at a time (the earliest of its next poll, its
//! oldest request's deadline and its reconnect time); re-arming a device
//! supersedes the previous wake-up, which stays in the heap as a stale entry
//! and is skipped by generation number when it surfaces. The heap is bounded:
//! stale entries are compacted away once they outnumber live ones.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Index of a device within one reader's shard.
pub type DeviceIndex = u32;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at_ns: u64,
    device: DeviceIndex,
    generation: u32,
}

pub struct Scheduler {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Current generation per device; an entry with another generation is stale.
    generation: Vec<u32>,
    /// Whether the device has a live entry in the heap.
    armed: Vec<bool>,
    armed_count: usize,
}

impl Scheduler {
    pub fn new(device_count: usize) -> Self {
        Scheduler {
            heap: BinaryHeap::with_capacity(device_count * 2),
            generation: vec![0; device_count],
            armed: vec![false; device_count],
            armed_count: 0,
        }
    }

    pub fn device_count(&self) -> usize {
        self.generation.len()
    }

    /// Wake `device` at `at_ns`, replacing any earlier arming.
    pub fn arm(&mut self, device: DeviceIndex, at_ns: u64) {
        let slot = device as usize;
        assert!(
            slot < self.generation.len(),
            "device {device} outside the shard"
        );
        self.generation[slot] = self.generation[slot].wrapping_add(1);
        if !self.armed[slot] {
            self.armed[slot] = true;
            self.armed_count += 1;
        }
        self.heap.push(Reverse(Entry {
            at_ns,
            device,
            generation: self.generation[slot],
        }));
        if self.heap.len() > 2 * self.armed_count + 64 {
            self.compact();
        }
    }

    /// Cancel the device's wake-up, if any.
    pub fn disarm(&mut self, device: DeviceIndex) {
        let slot = device as usize;
        if self.armed[slot] {
            self.armed[slot] = false;
            self.armed_count -= 1;
            self.generation[slot] = self.generation[slot].wrapping_add(1);
        }
    }

    /// The earliest live wake-up time, dropping stale entries on the way.
    pub fn next_deadline_ns(&mut self) -> Option<u64> {
        while let Some(Reverse(top)) = self.heap.peek().copied() {
            if self.is_live(&top) {
                return Some(top.at_ns);
            }
            self.heap.pop();
        }
        None
    }

    /// Pops one device whose wake-up is due at `now_ns`. The device is then
    /// unarmed: the driver re-arms it after handling it.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<DeviceIndex> {
        let deadline = self.next_deadline_ns()?;
        if deadline > now_ns {
            return None;
        }
        let Reverse(entry) = self.heap.pop()?;
        let slot = entry.device as usize;
        self.armed[slot] = false;
        self.armed_count -= 1;
        Some(entry.device)
    }

    fn is_live(&self, entry: &Entry) -> bool {
        let slot = entry.device as usize;
        self.armed[slot] && self.generation[slot] == entry.generation
    }

    fn compact(&mut self) {
        let entries = std::mem::take(&mut self.heap).into_vec();
        let mut live: Vec<_> = entries
            .into_iter()
            .filter(|Reverse(e)| self.is_live(e))
            .collect();
        live.shrink_to(self.generation.len() * 2);
        self.heap = BinaryHeap::from(live);
        debug_assert_eq!(self.heap.len(), self.armed_count);
    }
}

/// The first poll of a device, spread over one interval so that thousands of
/// devices with the same interval do not fire at once. Deterministic: device
/// `i` lands at the fractional part of `i * φ` of the interval (a low-
/// discrepancy sequence, evenly spread for any device count).
pub fn initial_phase_ns(device: DeviceIndex, interval_ns: u64) -> u64 {
    const PHI_FRACTION: u64 = 0x9E37_79B9_7F4A_7C15; // 2^64 / φ
    let fraction = (device as u64).wrapping_mul(PHI_FRACTION);
    ((fraction as u128 * interval_ns as u128) >> 64) as u64
}

/// The next poll after one scheduled at `scheduled_ns`, keeping the cadence
/// fixed to the schedule (no drift by processing time). If polls were missed
/// (the device was slow or the ring was full), skip to the next slot after
/// `now_ns` and return how many slots were skipped, so the driver can count
/// them.
pub fn next_poll_ns(scheduled_ns: u64, interval_ns: u64, now_ns: u64) -> (u64, u64) {
    assert!(interval_ns > 0);
    let next = scheduled_ns.saturating_add(interval_ns);
    if next > now_ns {
        return (next, 0);
    }
    let behind = now_ns - next;
    let skipped = behind / interval_ns + 1;
    (next + skipped * interval_ns, skipped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn pops_in_deadline_order_and_rearming_supersedes() {
        let mut s = Scheduler::new(3);
        s.arm(0, 30);
        s.arm(1, 10);
        s.arm(2, 20);
        s.arm(1, 40); // supersedes 10
        assert_eq!(s.next_deadline_ns(), Some(20));
        assert_eq!(s.pop_due(25), Some(2));
        assert_eq!(s.pop_due(25), None);
        assert_eq!(s.pop_due(100), Some(0));
        assert_eq!(s.pop_due(100), Some(1));
        assert_eq!(s.pop_due(100), None);
        assert_eq!(s.next_deadline_ns(), None);
    }

    #[test]
    fn disarm_cancels() {
        let mut s = Scheduler::new(2);
        s.arm(0, 5);
        s.arm(1, 6);
        s.disarm(0);
        assert_eq!(s.pop_due(10), Some(1));
        assert_eq!(s.pop_due(10), None);
    }

    #[test]
    fn heap_stays_bounded_under_rearming() {
        let mut s = Scheduler::new(10);
        for round in 0..10_000u64 {
            s.arm((round % 10) as u32, round);
        }
        assert!(s.heap.len() <= 2 * 10 + 64, "{}", s.heap.len());
    }

    #[test]
    fn phases_spread_over_the_interval() {
        let interval = 100_000_000;
        let mut buckets = [0u32; 10];
        for d in 0..10_000 {
            let phase = initial_phase_ns(d, interval);
            assert!(phase < interval);
            buckets[(phase / (interval / 10)) as usize] += 1;
        }
        for b in buckets {
            assert!((900..=1100).contains(&b), "{buckets:?}");
        }
    }

    #[test]
    fn next_poll_keeps_cadence_and_counts_skips() {
        assert_eq!(next_poll_ns(100, 10, 105), (110, 0));
        assert_eq!(next_poll_ns(100, 10, 110), (120, 1));
        assert_eq!(next_poll_ns(100, 10, 135), (140, 3));
    }

    proptest! {
        #[test]
        fn matches_a_model(
            ops in prop::collection::vec((0u32..8, 0u64..1000, any::<bool>()), 1..200)
        ) {
            let mut s = Scheduler::new(8);
            let mut model: [Option<u64>; 8] = [None; 8];
            for (device, at, disarm) in ops {
                if disarm {
                    s.disarm(device);
                    model[device as usize] = None;
                } else {
                    s.arm(device, at);
                    model[device as usize] = Some(at);
                }
            }
            let expect = model.iter().flatten().min().copied();
            prop_assert_eq!(s.next_deadline_ns(), expect);
            let mut popped = Vec::new();
            while let Some(d) = s.pop_due(u64::MAX) {
                popped.push(d);
            }
            let mut want: Vec<(u64, u32)> = model
                .iter()
                .enumerate()
                .filter_map(|(d, at)| at.map(|at| (at, d as u32)))
                .collect();
            want.sort();
            let mut got_sorted = popped.clone();
            got_sorted.sort();
            let mut want_devices: Vec<u32> = want.iter().map(|w| w.1).collect();
            want_devices.sort();
            prop_assert_eq!(got_sorted, want_devices);
        }
    }
}
