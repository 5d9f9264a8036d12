//! What the log says about devices' connections: one line when a device's
//! state changes (first answer, lost, back after N failures over T), never a
//! line per failed poll, and a summary per window of what changed. A
//! flapping plant must not flood the log: each reader writes at most
//! `LINES_PER_WINDOW` device lines per window, and the changes past that are
//! told only by the window's summary. The counters in the metrics stay
//! exact either way.
//!
//! Pure bookkeeping: the shard reports changes with the monotonic time and
//! writes the lines this returns.

#![forbid(unsafe_code)]

use std::fmt;

/// Device lines a reader writes per window at most (the summary comes on
/// top): 1,000 devices dropping every few seconds still make this many
/// lines a minute, plus one.
pub const LINES_PER_WINDOW: u32 = 20;
/// The summary window.
pub const WINDOW_NS: u64 = 60_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not answered yet since start.
    New,
    Up,
    /// Failing since `since_ns`, `failures` times so far.
    Down {
        since_ns: u64,
        failures: u32,
    },
}

/// A line to write about one device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Its first answer since start.
    Up,
    /// It was answering and failed (`what` says how).
    Lost,
    /// It has not answered since start and failed (the first time).
    Unreachable,
    /// Answering again after `failures` failures over `down_ns`.
    Back { failures: u32, down_ns: u64 },
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Change::Up => f.write_str("answering"),
            Change::Lost => f.write_str("lost"),
            Change::Unreachable => f.write_str("not answering yet"),
            Change::Back { failures, down_ns } => write!(
                f,
                "back after {failures} failure{} over {}",
                if failures == 1 { "" } else { "s" },
                Seconds(down_ns)
            ),
        }
    }
}

/// Nanoseconds as seconds with one decimal (`12.3 s`).
struct Seconds(u64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} s", self.0 as f64 / 1e9)
    }
}

/// What changed in one window, for its summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub window_ns: u64,
    pub up: u32,
    pub lost: u32,
    pub back: u32,
    pub unreachable: u32,
    /// Device lines not written because the window's budget was spent.
    pub held_back: u32,
    /// Devices failing at the end of the window.
    pub down_now: u32,
    pub devices: u32,
}

impl Summary {
    fn is_quiet(&self) -> bool {
        self.up == 0 && self.lost == 0 && self.back == 0 && self.unreachable == 0
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "devices in the last {}: {} lost, {} back, {} answering for the first time, {} not \
             answering yet; {} of {} failing now",
            Seconds(self.window_ns),
            self.lost,
            self.back,
            self.up,
            self.unreachable,
            self.down_now,
            self.devices
        )?;
        if self.held_back > 0 {
            write!(
                f,
                " ({} device lines held back: at most {LINES_PER_WINDOW} per {})",
                self.held_back,
                Seconds(WINDOW_NS)
            )?;
        }
        Ok(())
    }
}

pub struct Health {
    states: Vec<State>,
    /// When the current window started: the first `summary_due` call.
    window_start_ns: Option<u64>,
    window: Summary,
}

impl Health {
    pub fn new(devices: usize) -> Health {
        Health {
            states: vec![State::New; devices],
            window_start_ns: None,
            window: Summary::default(),
        }
    }

    /// The device answered. Returns the line to write, if any.
    pub fn answered(&mut self, index: usize, now_ns: u64) -> Option<Change> {
        let state = self.states.get_mut(index)?;
        let change = match *state {
            State::Up => return None,
            State::New => {
                self.window.up += 1;
                Change::Up
            }
            State::Down { since_ns, failures } => {
                self.window.back += 1;
                Change::Back {
                    failures,
                    down_ns: now_ns.saturating_sub(since_ns),
                }
            }
        };
        *state = State::Up;
        self.spend(change)
    }

    /// The device failed (a connect that failed, a connection lost, a
    /// malformed answer, a failed handshake). Returns the line to write, if
    /// any: only the first failure of a streak has one.
    pub fn failed(&mut self, index: usize, now_ns: u64) -> Option<Change> {
        let state = self.states.get_mut(index)?;
        let change = match *state {
            State::Down {
                ref mut failures, ..
            } => {
                *failures = failures.saturating_add(1);
                return None;
            }
            State::Up => {
                self.window.lost += 1;
                Change::Lost
            }
            State::New => {
                self.window.unreachable += 1;
                Change::Unreachable
            }
        };
        *state = State::Down {
            since_ns: now_ns,
            failures: 1,
        };
        self.spend(change)
    }

    fn spend(&mut self, change: Change) -> Option<Change> {
        let written =
            self.window.up + self.window.lost + self.window.back + self.window.unreachable
                - self.window.held_back;
        if written > LINES_PER_WINDOW {
            self.window.held_back += 1;
            None
        } else {
            Some(change)
        }
    }

    /// The summary of the window that ended by `now_ns`, if it ended and
    /// anything changed in it; a new window starts.
    pub fn summary_due(&mut self, now_ns: u64) -> Option<Summary> {
        let start_ns = *self.window_start_ns.get_or_insert(now_ns);
        if now_ns.saturating_sub(start_ns) < WINDOW_NS {
            return None;
        }
        self.close_window(now_ns)
    }

    /// The summary of the window so far (at stop), if anything changed.
    pub fn close_window(&mut self, now_ns: u64) -> Option<Summary> {
        let mut summary = std::mem::take(&mut self.window);
        summary.window_ns = now_ns.saturating_sub(self.window_start_ns.unwrap_or(now_ns));
        summary.down_now = self
            .states
            .iter()
            .filter(|s| matches!(s, State::Down { .. }))
            .count() as u32;
        summary.devices = self.states.len() as u32;
        self.window_start_ns = Some(now_ns);
        (!summary.is_quiet()).then_some(summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn one_line_per_change_and_none_per_failure_of_a_streak() {
        let mut h = Health::new(2);
        assert_eq!(h.failed(0, S), Some(Change::Unreachable));
        assert_eq!(h.failed(0, 2 * S), None);
        assert_eq!(h.failed(0, 3 * S), None);
        assert_eq!(
            h.answered(0, 5 * S),
            Some(Change::Back {
                failures: 3,
                down_ns: 4 * S
            })
        );
        assert_eq!(h.answered(0, 6 * S), None);
        assert_eq!(h.answered(1, 6 * S), Some(Change::Up));
        assert_eq!(h.failed(1, 7 * S), Some(Change::Lost));
        assert_eq!(
            Change::Back {
                failures: 3,
                down_ns: 4 * S
            }
            .to_string(),
            "back after 3 failures over 4.0 s"
        );
    }

    #[test]
    fn a_flapping_plant_writes_the_budget_then_only_the_summary() {
        let devices = 1_000;
        let mut h = Health::new(devices);
        assert_eq!(h.summary_due(0), None, "the window starts");
        let mut lines = 0;
        // Every device answers, then drops and comes back ten times, all
        // inside one window.
        for round in 0..10u64 {
            for d in 0..devices {
                let t = round * S + d as u64;
                lines += usize::from(h.answered(d, t).is_some());
                lines += usize::from(h.failed(d, t + 1).is_some());
            }
        }
        assert_eq!(lines, LINES_PER_WINDOW as usize);
        assert_eq!(h.summary_due(WINDOW_NS - 1), None, "not yet a window");
        let summary = h.summary_due(WINDOW_NS).expect("a summary");
        assert_eq!(summary.up, 1_000);
        assert_eq!(summary.lost, 10_000);
        assert_eq!(summary.back, 9_000);
        assert_eq!(summary.down_now, 1_000);
        assert_eq!(
            summary.held_back as usize + lines,
            1_000 + 10_000 + 9_000,
            "every change is a line or counted as held back"
        );
        let text = summary.to_string();
        assert!(text.contains("10000 lost") && text.contains("1000 of 1000 failing"));
        assert!(text.contains("held back"), "{text}");
        // The next window has a fresh budget; a quiet one has no summary.
        assert!(h.answered(0, WINDOW_NS + 1).is_some());
        assert!(h.summary_due(2 * WINDOW_NS).is_some());
        assert_eq!(h.summary_due(3 * WINDOW_NS), None);
        assert_eq!(h.close_window(3 * WINDOW_NS + 1), None);
    }

    #[test]
    fn an_index_out_of_range_is_ignored() {
        let mut h = Health::new(1);
        assert_eq!(h.failed(5, 1), None);
        assert_eq!(h.answered(5, 1), None);
    }
}
