//! The lock-free single-producer single-consumer ring of Sample records
//! between a reader thread and the WAL writer.
//!
//! All slots are allocated (zeroed) by [`channel`]; nothing allocates after
//! that. The producer reserves `n` slots, gets them as at most two `&mut
//! [Sample]` (two when the range wraps), decodes straight into them and
//! publishes them with one store. The consumer sees everything published as at
//! most two `&[Sample]` and hands slots back with one store. The ring never
//! blocks: a full ring is an `Err`, an empty one an empty slice.
//!
//! # Indices
//!
//! `head` (next slot to read, written only by the consumer) and `tail` (next
//! slot to write, written only by the producer) are free-running `usize`
//! counters; slot `i` lives at `i & mask`. `tail - head` (wrapping) is the
//! number of readable records and never exceeds the capacity. Each sits on its
//! own cache line (`CachePadded`), and each side keeps a private copy of the
//! other side's index, refreshed only when that copy says "full" (producer)
//! or "empty" (consumer): in steady state a batch costs one shared-line load
//! at most, not one per record.
//!
//! # Memory orderings
//!
//! - Producer: writes the slots, then `tail.store(Release)`. Consumer:
//!   `tail.load(Acquire)`, then reads the slots. The acquire load that sees a
//!   tail synchronises with the release store that wrote it, so every slot
//!   write before the commit happens-before every read after the load.
//! - Consumer: reads the slots, then `head.store(Release)`. Producer:
//!   `head.load(Acquire)`, then overwrites slots. So a slot is never rewritten
//!   while the consumer may still be reading it (the write-after-read edge).
//! - Each side reads its own index from its private copy: no load at all.
//!
//! `tests/ring_loom.rs` checks exactly these two edges with loom (slot
//! accesses are reported to loom's cell tracker, which fails on any access
//! pair not ordered by happens-before); the command is in the test's header
//! (its own target dir keeps the shared one warm).

#![allow(unsafe_code)]

use std::cell::UnsafeCell;

use crossbeam_utils::CachePadded;

use crate::sample::Sample;

use self::sync::{Arc, AtomicUsize, Ordering, SlotTracker};

/// Slot count limit: keeps `tail - head` far from wrapping ambiguity and the
/// allocation (24 bytes a slot) under 24 GiB.
pub const RING_SLOT_COUNT_MAX: usize = 1 << 30;

/// The ring could not take the requested records; nothing was reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingFull {
    /// Records asked for.
    pub wanted: usize,
    /// Free slots at the time of the call.
    pub free: usize,
}

struct Shared {
    /// Next slot the consumer reads. Written by the consumer only.
    head: CachePadded<AtomicUsize>,
    /// Next slot the producer writes. Written by the producer only.
    tail: CachePadded<AtomicUsize>,
    /// `UnsafeCell<Sample>` has the layout of `Sample`, so the slots are one
    /// contiguous `[Sample]` that both sides view through raw pointers.
    slots: Box<[UnsafeCell<Sample>]>,
    mask: usize,
    /// Reports slot accesses to loom; empty and free outside loom runs.
    tracker: SlotTracker,
}

impl Shared {
    fn capacity(&self) -> usize {
        self.slots.len()
    }

    fn base(&self) -> *mut Sample {
        // `UnsafeCell<T>` is `repr(transparent)`: the slice of cells is a
        // slice of samples, and mutation through it is what UnsafeCell allows.
        self.slots.as_ptr().cast::<Sample>().cast_mut()
    }

    /// The ranges of slots `[pos, pos + count)` before and after the wrap,
    /// as (start index, length) pairs.
    fn split(&self, pos: usize, count: usize) -> ((usize, usize), (usize, usize)) {
        assert!(count <= self.capacity());
        let start = pos & self.mask;
        let first = count.min(self.capacity() - start);
        ((start, first), (0, count - first))
    }
}

/// The writing side; one per ring, owned by one thread at a time.
pub struct Producer {
    shared: Arc<Shared>,
    /// Our own index: the authoritative value, `shared.tail` lags it only
    /// between a reservation and its commit.
    tail: usize,
    /// Last value of `shared.head` we loaded.
    head_cached: usize,
    /// Slots handed out by the last `reserve` and not yet committed.
    reserved: usize,
    _not_sync: NotSync,
}

/// The reading side; one per ring, owned by one thread at a time.
pub struct Consumer {
    shared: Arc<Shared>,
    head: usize,
    /// Last value of `shared.tail` we loaded.
    tail_cached: usize,
    _not_sync: NotSync,
}

// SAFETY: the two ends share `Shared`, and only through the protocol above:
// the producer writes slots in [tail, head + capacity) only, which the
// consumer does not read until the Release store of `tail` publishes them; the
// consumer reads slots in [head, tail) only, which the producer does not write
// again until the Release store of `head` returns them (see "Memory
// orderings"). There is exactly one `Producer` and one `Consumer` (neither is
// Clone, and each is !Sync through `NotSync`), so no two threads act as the
// same side at once.
unsafe impl Sync for Shared {}
// SAFETY: `Shared` owns plain data (`Sample` is Copy, no pointers) and
// atomics; which thread frees it does not matter.
unsafe impl Send for Shared {}

/// Makes a handle `!Sync` (`Cell` is Send and !Sync) so that one side of the
/// ring is never driven from two threads through shared references.
type NotSync = std::marker::PhantomData<std::cell::Cell<()>>;

/// A new ring of `slot_count` zeroed records, split into its two ends.
///
/// Panics unless `slot_count` is a power of two in 2..=[`RING_SLOT_COUNT_MAX`]
/// (a configuration error, checked by config validation before this).
pub fn channel(slot_count: usize) -> (Producer, Consumer) {
    assert!(
        slot_count.is_power_of_two(),
        "ring slot count {slot_count} is not a power of two"
    );
    assert!((2..=RING_SLOT_COUNT_MAX).contains(&slot_count));
    let slots: Box<[UnsafeCell<Sample>]> = (0..slot_count)
        .map(|_| UnsafeCell::new(Sample::default()))
        .collect();
    let shared = Arc::new(Shared {
        head: CachePadded::new(AtomicUsize::new(0)),
        tail: CachePadded::new(AtomicUsize::new(0)),
        slots,
        mask: slot_count - 1,
        tracker: SlotTracker::new(slot_count),
    });
    let producer = Producer {
        shared: Arc::clone(&shared),
        tail: 0,
        head_cached: 0,
        reserved: 0,
        _not_sync: NotSync::default(),
    };
    let consumer = Consumer {
        shared,
        head: 0,
        tail_cached: 0,
        _not_sync: NotSync::default(),
    };
    (producer, consumer)
}

/// Slots reserved for writing: fill them, then commit (all or a prefix).
/// Records are written in order `first` then `second`.
#[derive(Debug)]
pub struct Reservation<'a> {
    /// Slots from the reservation's start to the end of the buffer (or fewer).
    pub first: &'a mut [Sample],
    /// Slots after the wrap; empty unless the range wraps.
    pub second: &'a mut [Sample],
}

impl Reservation<'_> {
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot for the reservation's `index`-th record.
    pub fn slot(&mut self, index: usize) -> Option<&mut Sample> {
        let first_count = self.first.len();
        if index < first_count {
            self.first.get_mut(index)
        } else {
            self.second.get_mut(index - first_count)
        }
    }
}

impl Producer {
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Free slots now (reloads the consumer's index).
    pub fn free(&mut self) -> usize {
        self.head_cached = self.shared.head.load(Ordering::Acquire);
        self.free_cached()
    }

    /// Free slots, reloading the consumer's index only when the cached copy
    /// shows fewer than `wanted`: a producer that needs room for one frame
    /// then touches the consumer's cache line once per trip around the
    /// ring's free space, not once per frame. The count may be stale (low),
    /// never too high.
    pub fn free_at_least(&mut self, wanted: usize) -> usize {
        let free = self.free_cached();
        if free >= wanted {
            free
        } else {
            self.free()
        }
    }

    fn free_cached(&self) -> usize {
        let used = self.tail.wrapping_sub(self.head_cached);
        assert!(used <= self.capacity(), "ring indices corrupt: {used} used");
        self.capacity() - used
    }

    /// Reserves exactly `count` slots, or none (`Err`) if fewer are free.
    /// A new reservation replaces an uncommitted earlier one.
    pub fn reserve(&mut self, count: usize) -> Result<Reservation<'_>, RingFull> {
        if self.free_cached() < count && self.free() < count {
            self.reserved = 0;
            return Err(RingFull {
                wanted: count,
                free: self.free_cached(),
            });
        }
        self.reserved = count;
        let ((start_a, count_a), (start_b, count_b)) = self.shared.split(self.tail, count);
        for i in 0..count {
            self.shared
                .tracker
                .write(self.tail.wrapping_add(i) & self.shared.mask);
        }
        let base = self.shared.base();
        // SAFETY: both ranges lie inside the slot buffer (`split`), do not
        // overlap (together they are `count <= capacity` consecutive slots),
        // and are free: the Acquire load of `head` in `free()` (or an earlier
        // one, head only grows) ordered the consumer's last reads of them
        // before us. The consumer will not read them before our `commit`. The
        // borrows are tied to `&mut self`, so no second reservation aliases.
        let (first, second) = unsafe {
            (
                std::slice::from_raw_parts_mut(base.add(start_a), count_a),
                std::slice::from_raw_parts_mut(base.add(start_b), count_b),
            )
        };
        Ok(Reservation { first, second })
    }

    /// Publishes the first `count` records of the last reservation.
    /// Panics if `count` exceeds what was reserved (a caller bug).
    pub fn commit(&mut self, count: usize) {
        assert!(
            count <= self.reserved,
            "commit {count} > reserved {}",
            self.reserved
        );
        if count == 0 {
            return;
        }
        for i in 0..count {
            self.shared
                .tracker
                .write(self.tail.wrapping_add(i) & self.shared.mask);
        }
        self.tail = self.tail.wrapping_add(count);
        self.reserved = 0;
        self.shared.tail.store(self.tail, Ordering::Release);
    }

    /// Copies `samples` in and commits them, all or nothing.
    pub fn push_slice(&mut self, samples: &[Sample]) -> Result<(), RingFull> {
        let reservation = self.reserve(samples.len())?;
        let (head, rest) = samples.split_at(reservation.first.len());
        reservation.first.copy_from_slice(head);
        reservation.second.copy_from_slice(rest);
        self.commit(samples.len());
        Ok(())
    }
}

impl Consumer {
    pub fn capacity(&self) -> usize {
        self.shared.capacity()
    }

    /// Readable records; reloads the producer's index only when the cached
    /// copy says the ring is empty, so a batch may be smaller than what is
    /// published by now (call again after `release`).
    pub fn readable(&mut self) -> (&[Sample], &[Sample]) {
        if self.tail_cached == self.head {
            self.tail_cached = self.shared.tail.load(Ordering::Acquire);
        }
        self.slices()
    }

    /// Records published now (reloads the producer's index).
    pub fn available(&mut self) -> usize {
        self.tail_cached = self.shared.tail.load(Ordering::Acquire);
        self.available_cached()
    }

    fn available_cached(&self) -> usize {
        let count = self.tail_cached.wrapping_sub(self.head);
        assert!(
            count <= self.capacity(),
            "ring indices corrupt: {count} readable"
        );
        count
    }

    fn slices(&self) -> (&[Sample], &[Sample]) {
        let count = self.available_cached();
        let ((start_a, count_a), (start_b, count_b)) = self.shared.split(self.head, count);
        for i in 0..count {
            self.shared
                .tracker
                .read(self.head.wrapping_add(i) & self.shared.mask);
        }
        let base = self.shared.base();
        // SAFETY: the ranges are inside the buffer (`split`) and hold records
        // the producer published: our Acquire load of `tail` ordered its
        // writes before these reads, and it will not write them again before
        // our `release` stores `head`. The borrows are tied to `&self`, and
        // `release` needs `&mut self`, so no slice outlives its release.
        unsafe {
            (
                std::slice::from_raw_parts(base.add(start_a), count_a),
                std::slice::from_raw_parts(base.add(start_b), count_b),
            )
        }
    }

    /// Hands the first `count` readable records back to the producer.
    /// Panics if fewer are readable (a caller bug).
    pub fn release(&mut self, count: usize) {
        assert!(
            count <= self.available_cached(),
            "release {count} > readable"
        );
        if count == 0 {
            return;
        }
        for i in 0..count {
            self.shared
                .tracker
                .read(self.head.wrapping_add(i) & self.shared.mask);
        }
        self.head = self.head.wrapping_add(count);
        self.shared.head.store(self.head, Ordering::Release);
    }

    /// Copies up to `out.len()` records out and releases them; returns the count.
    pub fn pop_into(&mut self, out: &mut [Sample]) -> usize {
        let (first, second) = self.readable();
        let count_a = first.len().min(out.len());
        let count_b = second.len().min(out.len() - count_a);
        let (out_a, out_b) = out.split_at_mut(count_a);
        out_a.copy_from_slice(&first[..count_a]);
        out_b[..count_b].copy_from_slice(&second[..count_b]);
        self.release(count_a + count_b);
        count_a + count_b
    }
}

/// Pins the calling thread to CPU `core` (Linux `sched_setaffinity`). The
/// ring's two ends are meant to live on pinned threads (reader, WAL writer);
/// the ring bench pins its producer and consumer with this.
pub fn pin_current_thread(core: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data for which all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if core >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "core out of range",
        ));
    }
    // SAFETY: `core` < CPU_SETSIZE was checked, so CPU_SET stays inside `set`.
    unsafe { libc::CPU_SET(core, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the
    // size passed, read by the kernel only during the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The atomics the ring uses, switched to loom's under `--cfg millrace_loom`
/// so that loom can explore every interleaving and memory-order outcome.
mod sync {
    #[cfg(not(millrace_loom))]
    pub(super) use std::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(not(millrace_loom))]
    pub(super) use std::sync::Arc;

    #[cfg(millrace_loom)]
    pub(super) use loom::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(millrace_loom)]
    pub(super) use loom::sync::Arc;

    /// Outside loom: nothing to report.
    #[cfg(not(millrace_loom))]
    pub(super) struct SlotTracker;

    #[cfg(not(millrace_loom))]
    impl SlotTracker {
        pub(super) fn new(_slot_count: usize) -> Self {
            SlotTracker
        }
        #[inline(always)]
        pub(super) fn write(&self, _slot_index: usize) {}
        #[inline(always)]
        pub(super) fn read(&self, _slot_index: usize) {}
    }

    /// Under loom: one loom cell per slot, touched where the ring hands a slot
    /// out and where it takes it back, so loom's causality checker sees every
    /// access the real code allows and fails on any pair that is not ordered.
    #[cfg(millrace_loom)]
    pub(super) struct SlotTracker(Box<[loom::cell::UnsafeCell<()>]>);

    #[cfg(millrace_loom)]
    impl SlotTracker {
        pub(super) fn new(slot_count: usize) -> Self {
            SlotTracker(
                (0..slot_count)
                    .map(|_| loom::cell::UnsafeCell::new(()))
                    .collect(),
            )
        }
        pub(super) fn write(&self, slot_index: usize) {
            if let Some(cell) = self.0.get(slot_index) {
                cell.with_mut(|_| ());
            }
        }
        pub(super) fn read(&self, slot_index: usize) {
            if let Some(cell) = self.0.get(slot_index) {
                cell.with(|_| ());
            }
        }
    }
}

#[cfg(all(test, not(millrace_loom)))]
mod tests {
    use super::*;
    use crate::sample::TagId;

    fn sample(i: u64) -> Sample {
        Sample::new(
            i as i64,
            TagId(i as u32),
            crate::Quality::GOOD,
            crate::ValueKind::U64,
            i,
        )
    }

    #[test]
    fn wraps_and_splits() {
        let (mut p, mut c) = channel(4);
        p.push_slice(&[sample(0), sample(1), sample(2)]).unwrap();
        assert_eq!(c.pop_into(&mut [Sample::default(); 2]), 2);
        let r = p.reserve(3).unwrap();
        assert_eq!((r.first.len(), r.second.len()), (1, 2));
        r.first[0] = sample(3);
        r.second[0] = sample(4);
        r.second[1] = sample(5);
        p.commit(3);
        assert_eq!(p.reserve(1).unwrap_err(), RingFull { wanted: 1, free: 0 });
        // The cached tail (3) still has a record: no reload yet.
        assert_eq!(c.readable(), (&[sample(2)][..], &[][..]));
        c.release(1);
        let (a, b) = c.readable();
        assert_eq!(a, &[sample(3)]);
        assert_eq!(b, &[sample(4), sample(5)]);
    }

    #[test]
    fn free_at_least_reloads_only_when_short() {
        let (mut p, mut c) = channel(4);
        p.push_slice(&[sample(0), sample(1), sample(2)]).unwrap();
        assert_eq!(c.pop_into(&mut [Sample::default(); 3]), 3);
        // The cached copy of head is still 0: one slot free in that view.
        assert_eq!(p.free_at_least(1), 1);
        assert_eq!(p.free_at_least(2), 4);
        assert_eq!(p.free_at_least(4), 4);
    }

    #[test]
    fn ends_are_send() {
        fn send<T: Send>() {}
        send::<Producer>();
        send::<Consumer>();
    }

    #[test]
    #[should_panic(expected = "commit")]
    fn commit_more_than_reserved_panics() {
        let (mut p, _c) = channel(4);
        let _ = p.reserve(1).unwrap();
        p.commit(2);
    }
}
