//! The time a reader thread stamps on samples: UNIX nanoseconds, anchored to
//! the monotonic clock so that a wall-clock step never reorders samples.
//!
//! A stamp is `anchor_unix_ns + (mono_ns - anchor_mono_ns)`. The wall clock
//! is read every event-loop turn and compared with that prediction:
//!
//! | wall clock vs. prediction  | what the stamp does                          |
//! |----------------------------|----------------------------------------------|
//! | ahead (or equal)           | re-anchor: follow the wall clock forward     |
//! | behind, by no more than    | stay on the monotonic clock, silently        |
//! | the lag already known      |                                              |
//! | behind, by a new step      | stay on the monotonic clock; one warning     |
//! | of [`STEP_BACK_REPORT_NS`] | with the step's size, one count in           |
//! | or more                    | [`wall_steps_back_total`]                    |
//!
//! So after a backwards step the stamps run ahead of the wall clock by the
//! step until the wall clock steps forward again (or the process restarts);
//! they never go below a stamp already issued, so time per tag is
//! non-decreasing. [`WallAnchor`] is the sans-IO logic (time passed in);
//! [`Clock`] reads the two clocks and logs.
//!
//! Must never: issue a stamp below the previous one, block, or allocate.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A backwards step smaller than this is absorbed without a warning: reading
/// the two clocks is not atomic, and a tiny correction is not news.
pub const STEP_BACK_REPORT_NS: u64 = 1_000_000;

/// A wall-clock reading is compared with the prediction only when the
/// monotonic clock read just before and just after it are this close: a
/// thread preempted between the reads sees a wall clock that looks ahead by
/// the preemption, and following it would make the next, prompt reading look
/// like a step back of that size. Well under [`STEP_BACK_REPORT_NS`], so
/// reading jitter alone can never be reported as a step.
pub const READ_WINDOW_NS: u64 = 250_000;

/// Backwards steps of the wall clock seen by every reader thread of the
/// process (each thread reports the steps it sees).
static WALL_STEPS_BACK: AtomicU64 = AtomicU64::new(0);

/// How far sample stamps run ahead of the wall clock now (the lag of the
/// reader that saw the clock last change).
static WALL_LAG_NS: AtomicU64 = AtomicU64::new(0);

/// Backwards wall-clock steps reported so far (the metrics endpoint's
/// `millrace_wall_clock_steps_back_total`).
pub fn wall_steps_back_total() -> u64 {
    WALL_STEPS_BACK.load(Ordering::Relaxed)
}

/// How far sample stamps run ahead of the wall clock after backwards steps
/// (0 normally). Other threads add it to the wall clock so that latencies
/// measured against sample stamps stay meaningful after a step.
pub fn wall_lag_ns() -> u64 {
    WALL_LAG_NS.load(Ordering::Relaxed)
}

/// Monotonic ns for deadlines and UNIX ns for samples, read together once
/// per event-loop iteration.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    pub mono_ns: u64,
    pub unix_ns: i64,
}

/// A backwards step of the wall clock, as [`WallAnchor::stamp`] found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepBack {
    /// How far the wall clock went back (beyond any lag already known).
    pub step_ns: u64,
    /// How far the stamps now run ahead of the wall clock.
    pub lag_ns: u64,
}

/// The anchoring of UNIX time to the monotonic clock (sans-IO).
#[derive(Clone, Copy, Debug)]
pub struct WallAnchor {
    anchor_unix_ns: i64,
    anchor_mono_ns: u64,
    /// How far the stamps run ahead of the wall clock: the backwards steps
    /// absorbed and not yet undone by a forward step.
    lag_ns: u64,
    last_ns: i64,
}

impl WallAnchor {
    pub fn new(mono_ns: u64, wall_ns: i64) -> Self {
        WallAnchor {
            anchor_unix_ns: wall_ns,
            anchor_mono_ns: mono_ns,
            lag_ns: 0,
            last_ns: wall_ns,
        }
    }

    /// The stamp for this moment, and the backwards step found, if any.
    /// `wall_ns` was read between `mono_ns` and `mono_after_ns`; a reading
    /// whose window is wider than [`READ_WINDOW_NS`] is not compared (the
    /// stamp coasts on the monotonic clock). `mono_ns` must not go backwards
    /// between calls.
    pub fn stamp(
        &mut self,
        mono_ns: u64,
        wall_ns: i64,
        mono_after_ns: u64,
    ) -> (i64, Option<StepBack>) {
        assert!(mono_ns >= self.anchor_mono_ns, "monotonic clock went back");
        let since_anchor = i64::try_from(mono_ns - self.anchor_mono_ns).unwrap_or(i64::MAX);
        let predicted = self.anchor_unix_ns.saturating_add(since_anchor);
        let mut step = None;
        if mono_after_ns.saturating_sub(mono_ns) > READ_WINDOW_NS {
            // Not a trustworthy reading: keep anchor and lag as they are.
        } else if wall_ns >= predicted {
            self.anchor_unix_ns = wall_ns;
            self.anchor_mono_ns = mono_ns;
            self.lag_ns = 0;
        } else {
            let lag_ns = predicted.abs_diff(wall_ns);
            if lag_ns >= self.lag_ns.saturating_add(STEP_BACK_REPORT_NS) {
                step = Some(StepBack {
                    step_ns: lag_ns - self.lag_ns,
                    lag_ns,
                });
            }
            // A wall clock that stepped forward part of the way lowers the
            // lag without a report; a new step back raises it.
            self.lag_ns = lag_ns;
        }
        let stamp = predicted.max(self.anchor_unix_ns).max(self.last_ns);
        assert!(stamp >= self.last_ns);
        self.last_ns = stamp;
        (stamp, step)
    }

    /// How far the stamps run ahead of the wall clock now.
    pub fn lag_ns(&self) -> u64 {
        self.lag_ns
    }
}

/// One reader thread's clock (not shared between threads).
pub struct Clock {
    origin: Instant,
    anchor: Cell<WallAnchor>,
}

impl Clock {
    pub fn new() -> Self {
        Clock {
            origin: Instant::now(),
            anchor: Cell::new(WallAnchor::new(0, wall_now_ns())),
        }
    }

    pub fn now(&self) -> Now {
        // The wall clock read between two monotonic reads: the window bounds
        // how stale the wall reading can be (see READ_WINDOW_NS).
        let mono = || u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let mono_ns = mono();
        let wall_ns = wall_now_ns();
        let mono_after_ns = mono();
        let mut anchor = self.anchor.get();
        let lag_before = anchor.lag_ns();
        let (unix_ns, step) = anchor.stamp(mono_ns, wall_ns, mono_after_ns);
        self.anchor.set(anchor);
        if anchor.lag_ns() != lag_before {
            WALL_LAG_NS.store(anchor.lag_ns(), Ordering::Relaxed);
        }
        if let Some(step) = step {
            WALL_STEPS_BACK.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                "wall clock stepped back by {:.3} s; sample time \
                 stays on the monotonic clock, {:.3} s ahead of the wall clock",
                step.step_ns as f64 / 1e9,
                step.lag_ns as f64 / 1e9
            );
        }
        Now { mono_ns, unix_ns }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

fn wall_now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const T0: i64 = 1_700_000_000 * S;

    /// A reading whose wall clock was read at the same monotonic instant.
    fn prompt(a: &mut WallAnchor, mono_ns: u64, wall_ns: i64) -> (i64, Option<StepBack>) {
        a.stamp(mono_ns, wall_ns, mono_ns)
    }

    #[test]
    fn a_thread_preempted_between_the_reads_reports_no_step() {
        // The wall clock is steady; a reading is delayed 5 ms between the
        // monotonic and the wall read, so its wall clock looks 5 ms ahead.
        let ms = 1_000_000u64;
        let mut a = WallAnchor::new(0, T0);
        let (ts, step) = a.stamp(10 * ms, T0 + 15 * ms as i64, 15 * ms);
        assert_eq!((ts, step), (T0 + 10 * ms as i64, None), "coasts");
        let (ts, step) = prompt(&mut a, 16 * ms, T0 + 16 * ms as i64);
        assert_eq!((ts, step), (T0 + 16 * ms as i64, None));
        // The same after a real step back: the delayed reading must not
        // lower the lag that the next prompt one raises again.
        let (_, step) = prompt(&mut a, 20 * ms, T0 - 30 * S);
        assert!(step.is_some());
        let (_, step) = a.stamp(30 * ms, T0 - 30 * S + 15 * ms as i64, 35 * ms);
        assert_eq!(step, None);
        let (_, step) = prompt(&mut a, 36 * ms, T0 - 30 * S + 16 * ms as i64);
        assert_eq!(step, None, "no second report");
        assert_eq!(a.lag_ns(), 30 * S as u64 + 20 * ms);
    }

    #[test]
    fn follows_a_steady_wall_clock() {
        let mut a = WallAnchor::new(0, T0);
        for i in 1..100u64 {
            let (ts, step) = prompt(&mut a, i * 1_000_000, T0 + i as i64 * 1_000_000);
            assert_eq!(ts, T0 + i as i64 * 1_000_000);
            assert_eq!(step, None);
        }
    }

    #[test]
    fn a_step_back_is_reported_once_and_time_stays_monotonic() {
        let mut a = WallAnchor::new(0, T0);
        let (ts, _) = prompt(&mut a, S as u64, T0 + S);
        assert_eq!(ts, T0 + S);
        // The wall clock goes back 30 s at mono 2 s.
        let (ts, step) = prompt(&mut a, 2 * S as u64, T0 + 2 * S - 30 * S);
        assert_eq!(ts, T0 + 2 * S);
        let step = step.expect("the step is reported");
        assert_eq!(step.step_ns, 30 * S as u64);
        assert_eq!(step.lag_ns, 30 * S as u64);
        // Later turns: the wall clock runs on from its new value; no new report.
        for i in 3..50i64 {
            let (ts, step) = prompt(&mut a, (i * S) as u64, T0 + i * S - 30 * S);
            assert_eq!(ts, T0 + i * S, "stamps run on the monotonic clock");
            assert_eq!(step, None);
        }
        assert_eq!(a.lag_ns(), 30 * S as u64);
    }

    #[test]
    fn a_second_step_back_is_reported_with_its_own_size() {
        let mut a = WallAnchor::new(0, T0);
        prompt(&mut a, S as u64, T0 - 10 * S);
        let (ts, step) = prompt(&mut a, 2 * S as u64, T0 - 13 * S);
        assert_eq!(ts, T0 + 2 * S);
        assert_eq!(
            step,
            Some(StepBack {
                step_ns: 4 * S as u64,
                lag_ns: 15 * S as u64
            })
        );
    }

    #[test]
    fn a_forward_step_is_followed_and_ends_the_lag() {
        let mut a = WallAnchor::new(0, T0);
        prompt(&mut a, S as u64, T0 - 5 * S);
        // Part of the way forward: lag shrinks, stamps stay monotonic.
        let (ts, step) = prompt(&mut a, 2 * S as u64, T0);
        assert_eq!((ts, step), (T0 + 2 * S, None));
        assert_eq!(a.lag_ns(), 2 * S as u64);
        // Past the prediction: follow the wall clock.
        let (ts, step) = prompt(&mut a, 3 * S as u64, T0 + 60 * S);
        assert_eq!((ts, step), (T0 + 60 * S, None));
        assert_eq!(a.lag_ns(), 0);
        let (ts, _) = prompt(&mut a, 4 * S as u64, T0 + 61 * S);
        assert_eq!(ts, T0 + 61 * S);
    }

    #[test]
    fn small_backward_jitter_is_absorbed_silently() {
        let mut a = WallAnchor::new(0, T0);
        let (ts, step) = prompt(&mut a, 1000, T0 + 1000 - 500);
        assert_eq!((ts, step), (T0 + 1000, None));
        let (ts, step) = prompt(&mut a, 2000, T0 + 2000 + 7);
        assert_eq!((ts, step), (T0 + 2007, None));
    }

    #[test]
    fn stamps_never_decrease_under_random_steps() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut a = WallAnchor::new(0, T0);
        let (mut mono, mut wall, mut last) = (0u64, T0, T0);
        for _ in 0..10_000 {
            let dt = next() % 10_000_000;
            mono += dt;
            wall += dt as i64;
            match next() % 100 {
                0 => wall -= (next() % (100 * S as u64)) as i64,
                1 => wall += (next() % (100 * S as u64)) as i64,
                _ => {}
            }
            let (ts, _) = prompt(&mut a, mono, wall);
            assert!(ts >= last);
            assert!(ts >= wall, "a stamp is never behind the wall clock");
            last = ts;
        }
    }
}
