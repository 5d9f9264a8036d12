//! Writing samples straight into ring slots. A decoder needs one contiguous
//! slice with room for a whole frame; the ring hands out at most two (the
//! range wraps at the end of its buffer). When the part before the wrap is
//! too short, the frame is decoded into a small scratch slice and copied
//! across the wrap: one copy per trip around the ring, never per frame.
//!
//! Room is the caller's promise (see `budget` in shard.rs): a write that
//! finds less room than asked is a bug in that accounting, reported as `None`
//! so the caller can count it instead of panicking on a live plant.

use crate::packed::members_in;
use crate::ring::Producer;
use crate::sample::Sample;

pub struct RingOut {
    pub producer: Producer,
    scratch: Vec<Sample>,
    /// Samples the ring must keep room for: promised to requests in flight
    /// and to the unsent rest of running cycles (every one of them ends in
    /// exactly one sample per tag: data, exception, timeout or no-connection).
    reserved_count: usize,
    /// Samples were published since `take_published` last looked.
    published: bool,
}

impl RingOut {
    /// `frame_samples_max`: the most samples one call writes.
    pub fn new(producer: Producer, frame_samples_max: usize) -> Self {
        assert!(
            frame_samples_max <= producer.capacity(),
            "a frame must fit in the ring"
        );
        RingOut {
            producer,
            scratch: vec![Sample::default(); frame_samples_max],
            reserved_count: 0,
            published: false,
        }
    }

    pub fn reserved_count(&self) -> usize {
        self.reserved_count
    }

    /// Promises room for `count` more samples if the ring has it now.
    pub fn try_promise(&mut self, count: usize) -> bool {
        let free = self.producer.free_at_least(self.reserved_count + count);
        assert!(
            free >= self.reserved_count,
            "ring promised more than it has"
        );
        if free - self.reserved_count < count {
            return false;
        }
        self.reserved_count += count;
        true
    }

    /// Returns a promise that will not be written (requests dropped unsent).
    pub fn unpromise(&mut self, count: usize) {
        assert!(
            count <= self.reserved_count,
            "unpromise {count} > {}",
            self.reserved_count
        );
        self.reserved_count -= count;
    }

    /// Lets `write` fill a slice of at least `min` slots, publishes what it
    /// wrote (its returned count of records) and settles the promised
    /// samples those carry (a packed run, packed.rs, carries its members);
    /// returns `write`'s result and that count of samples.
    /// `min` is the most one frame can produce; the ring may have fewer free
    /// slots than that and still hold the promise (the frame at hand may be
    /// smaller): then the frame is decoded aside and copied in. `None`: the
    /// decode wrote more than the ring holds, a broken promise; the excess
    /// is not published (counted by the caller, never a panic).
    pub fn write<R>(
        &mut self,
        min: usize,
        write: impl FnOnce(&mut [Sample]) -> (usize, R),
    ) -> Option<(R, usize)> {
        assert!(min <= self.scratch.len(), "write of {min} > scratch");
        // The consumer's index is reloaded only when the cached free count
        // is short of one frame (a shared cache line miss per frame otherwise).
        let free = self.producer.free_at_least(min);
        let reservation = self.producer.reserve(free).ok()?;
        if reservation.first.len() >= min {
            let (count, result) = write(reservation.first);
            let samples = members_in(reservation.first.get(..count).unwrap_or_default());
            self.settle(count, samples);
            return Some((result, samples));
        }
        // Short of `min` before the wrap (or in all): decode aside.
        let scratch = &mut self.scratch[..min];
        let (count, result) = write(scratch);
        let fits = count.min(free);
        let split = fits.min(reservation.first.len());
        reservation.first[..split].copy_from_slice(&scratch[..split]);
        reservation.second[..fits - split].copy_from_slice(&scratch[split..fits]);
        let samples = members_in(&scratch[..fits]);
        self.settle(fits, samples);
        (fits == count).then_some((result, samples))
    }

    /// Whether the ring is at least a quarter full: a napping WAL writer
    /// is woken for it (doorbell.rs). Reloads the writer's index.
    pub fn filling(&mut self) -> bool {
        let capacity = self.producer.capacity();
        capacity - self.producer.free() >= capacity / 4
    }

    /// Whether samples were published since the last call.
    pub fn take_published(&mut self) -> bool {
        std::mem::take(&mut self.published)
    }

    fn settle(&mut self, records: usize, samples: usize) {
        self.published |= records > 0;
        self.producer.commit(records);
        self.reserved_count = self.reserved_count.saturating_sub(samples);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::fill_run_packed;
    use crate::sample::{RunTail, TagId};
    use crate::{Quality, ValueKind};

    /// A poll promises one sample a tag; its answer packed takes fewer
    /// records, and the promise is settled by the samples they carry, or
    /// the reader would stop polling with a ring that is in fact empty.
    #[test]
    fn a_packed_answer_settles_the_samples_it_carries() {
        let (producer, mut consumer) = crate::ring::channel(64);
        let mut out = RingOut::new(producer, 16);
        let values: Vec<u8> = (0..32).collect();
        let tail = RunTail::new(TagId(0), Quality::GOOD, ValueKind::U64);
        for _ in 0..20 {
            assert!(out.try_promise(16));
            let got = out.write(16, |slice| {
                let (records, _) = fill_run_packed(&values, tail, 1, slice, |b: [u8; 2]| {
                    u64::from(u16::from_be_bytes(b))
                });
                (records, records)
            });
            assert_eq!(got, Some((7, 16)), "16 members in a head and 6 records");
            assert_eq!(out.reserved_count(), 0, "the promise is settled whole");
            let (first, second) = consumer.readable();
            let n = first.len() + second.len();
            assert_eq!(n, 7);
            consumer.release(n);
        }
    }
}
