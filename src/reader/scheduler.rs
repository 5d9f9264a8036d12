//! The poll scheduler of one reader thread: one timer per device, kept in a
//! few sorted FIFO lanes.
//!
//! Sans-IO: time is a monotonic `now_ns` passed in by the driver. A device has
//! exactly one pending wake-up at a time (the earliest of its next poll, its
//! oldest request's deadline and its reconnect time); re-arming a device
//! supersedes the previous wake-up, which stays queued as a stale entry and is
//! skipped by generation number when it surfaces.
//!
//! Why lanes and not a heap: devices that share a poll interval re-arm at
//! "the slot just served + interval", in the order their slots come due, so
//! their wake-ups arrive already sorted. A lane is a FIFO whose deadlines never
//! decrease: arming appends to the lane whose last deadline is the latest one
//! not after the new deadline (so each cadence keeps to one lane), and the next
//! wake-up is the least of the lanes' fronts. Arming and popping cost
//! O(`LANES_MAX`) comparisons and touch no more than the lanes' ends, against
//! O(log n) cache-missing sift steps in a heap of 10,000 devices. A wake-up
//! that fits no lane (more than `LANES_MAX` interleaved cadences: jittered
//! reconnects, overrun retries) goes to a small heap, so the order stays exact
//! whatever the pattern. Both are bounded: stale entries are compacted away
//! once they outnumber live ones (compaction sorts the live entries into one
//! lane).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// Index of a device within one reader's shard.
pub type DeviceIndex = u32;

/// Sorted lanes kept at most; a handful of distinct cadences per reader is
/// the common case (poll intervals, request timeouts).
const LANES_MAX: usize = 8;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at_ns: u64,
    device: DeviceIndex,
    generation: u32,
}

/// Where the earliest entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Source {
    Lane(usize),
    Heap,
}

pub struct Scheduler {
    /// Each lane's deadlines never decrease from front to back.
    lanes: Vec<VecDeque<Entry>>,
    /// Wake-ups that fit no lane.
    overflow: BinaryHeap<Reverse<Entry>>,
    /// Entries queued in lanes and heap, live and stale.
    queued: usize,
    /// Current generation per device; an entry with another generation is stale.
    generation: Vec<u32>,
    /// Whether the device has a live entry queued.
    armed: Vec<bool>,
    armed_count: usize,
}

impl Scheduler {
    pub fn new(device_count: usize) -> Self {
        let mut lanes = Vec::with_capacity(LANES_MAX);
        lanes.push(VecDeque::with_capacity(device_count + 64));
        Scheduler {
            lanes,
            overflow: BinaryHeap::new(),
            queued: 0,
            generation: vec![0; device_count],
            armed: vec![false; device_count],
            armed_count: 0,
        }
    }

    pub fn device_count(&self) -> usize {
        self.generation.len()
    }

    /// Entries queued, live and stale (bounded by `2 * armed + 64`).
    pub fn queued(&self) -> usize {
        self.queued
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
        let entry = Entry {
            at_ns,
            device,
            generation: self.generation[slot],
        };
        self.enqueue(entry);
        if self.queued > 2 * self.armed_count + 64 {
            self.compact();
        }
    }

    fn enqueue(&mut self, entry: Entry) {
        self.queued += 1;
        // The lane whose last deadline is the latest not after this one (an
        // empty lane fits anything, as a last resort).
        let mut best: Option<(usize, u64)> = None;
        let mut empty = None;
        for (index, lane) in self.lanes.iter().enumerate() {
            match lane.back() {
                Some(last) if last.at_ns <= entry.at_ns => {
                    if best.is_none_or(|(_, at)| last.at_ns > at) {
                        best = Some((index, last.at_ns));
                    }
                }
                Some(_) => {}
                None => empty = empty.or(Some(index)),
            }
        }
        let lane = match (best, empty) {
            (Some((index, _)), _) => index,
            (None, Some(index)) => index,
            (None, None) if self.lanes.len() < LANES_MAX => {
                self.lanes.push(VecDeque::new());
                self.lanes.len() - 1
            }
            (None, None) => {
                self.overflow.push(Reverse(entry));
                return;
            }
        };
        self.lanes[lane].push_back(entry);
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

    /// The earliest live entry and where it is, dropping stale fronts.
    fn earliest(&mut self) -> Option<(Source, u64)> {
        let mut best: Option<(Source, u64)> = None;
        for index in 0..self.lanes.len() {
            let lane = &mut self.lanes[index];
            while let Some(front) = lane.front().copied() {
                let slot = front.device as usize;
                if self.armed[slot] && self.generation[slot] == front.generation {
                    if best.is_none_or(|(_, at)| front.at_ns < at) {
                        best = Some((Source::Lane(index), front.at_ns));
                    }
                    break;
                }
                lane.pop_front();
                self.queued -= 1;
            }
        }
        while let Some(Reverse(top)) = self.overflow.peek().copied() {
            if self.is_live(&top) {
                if best.is_none_or(|(_, at)| top.at_ns < at) {
                    best = Some((Source::Heap, top.at_ns));
                }
                break;
            }
            self.overflow.pop();
            self.queued -= 1;
        }
        best
    }

    /// The earliest live wake-up time, dropping stale entries on the way.
    pub fn next_deadline_ns(&mut self) -> Option<u64> {
        self.earliest().map(|(_, at_ns)| at_ns)
    }

    /// Pops one device whose wake-up is due at `now_ns`. The device is then
    /// unarmed: the driver re-arms it after handling it.
    pub fn pop_due(&mut self, now_ns: u64) -> Option<DeviceIndex> {
        let (source, at_ns) = self.earliest()?;
        if at_ns > now_ns {
            return None;
        }
        let entry = match source {
            Source::Lane(index) => self.lanes[index].pop_front(),
            Source::Heap => self.overflow.pop().map(|Reverse(e)| e),
        }?;
        self.queued -= 1;
        let slot = entry.device as usize;
        self.armed[slot] = false;
        self.armed_count -= 1;
        Some(entry.device)
    }

    fn is_live(&self, entry: &Entry) -> bool {
        let slot = entry.device as usize;
        self.armed[slot] && self.generation[slot] == entry.generation
    }

    /// Keeps only live entries, sorted into the first lane (the other lanes
    /// and the heap end empty but keep their memory).
    fn compact(&mut self) {
        let mut live: Vec<Entry> = Vec::with_capacity(self.armed_count);
        for lane in &mut self.lanes {
            live.extend(lane.drain(..));
        }
        live.extend(self.overflow.drain().map(|Reverse(e)| e));
        live.retain(|e| self.is_live(e));
        live.sort_unstable();
        self.queued = live.len();
        debug_assert_eq!(self.queued, self.armed_count);
        self.lanes[0].extend(live);
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
        assert!(s.queued() <= 2 * 10 + 64, "{}", s.queued());
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

    #[test]
    fn shared_cadence_keeps_to_one_lane() {
        let interval = 1_000;
        let devices = 1_000u32;
        let mut s = Scheduler::new(devices as usize);
        for d in 0..devices {
            s.arm(d, initial_phase_ns(d, interval));
        }
        let mut last = 0;
        for now in (0..50 * interval).step_by(7) {
            while let Some(d) = s.pop_due(now) {
                last += 1;
                // Served late by up to one step; the cadence stays on the grid.
                let phase = initial_phase_ns(d, interval);
                let slot = phase + (now - phase) / interval * interval;
                s.arm(d, slot + interval);
            }
        }
        assert!(last > 40 * devices as usize);
        assert!(s.overflow.is_empty());
        assert!(s.lanes.iter().filter(|l| !l.is_empty()).count() <= 2);
    }

    proptest! {
        /// Interleaved arms, disarms and pops at an advancing clock, with
        /// more distinct deadlines than lanes (so the heap is used): every
        /// pop is the earliest armed device, and it is due.
        #[test]
        fn pops_exactly_in_deadline_order(
            ops in prop::collection::vec((0u32..32, 0u64..2000, 0u8..4), 1..400)
        ) {
            let mut s = Scheduler::new(32);
            let mut model: [Option<u64>; 32] = [None; 32];
            let mut now = 0u64;
            for (device, delta, op) in ops {
                match op {
                    0 => {
                        s.disarm(device);
                        model[device as usize] = None;
                    }
                    1 => {
                        now += delta / 4;
                        while let Some(d) = s.pop_due(now) {
                            let at = model[d as usize].take();
                            prop_assert!(at.is_some_and(|at| at <= now));
                            let min = model.iter().flatten().chain(at.iter()).min().copied();
                            prop_assert_eq!(at, min);
                        }
                        let min = model.iter().flatten().min().copied();
                        prop_assert!(min.is_none_or(|m| m > now));
                    }
                    _ => {
                        s.arm(device, now + delta);
                        model[device as usize] = Some(now + delta);
                    }
                }
                prop_assert_eq!(s.next_deadline_ns(), model.iter().flatten().min().copied());
                prop_assert!(s.queued() <= 2 * 32 + 64);
            }
        }

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
