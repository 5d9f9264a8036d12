//! What the bench reads about processes: CPU time and peak RSS from /proc,
//! SIGTERM, and a bounded wait for a child's exit.

use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

/// CPU seconds (user + system) of process `pid`, all its threads, from
/// `/proc/PID/stat`; `None` if it is gone or the line does not parse.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat_cpu_seconds(&text)
}

/// CPU seconds of this process (every thread, ended ones included: the
/// in-process stand-in, the driver, the baseline's publisher), from the
/// process CPU-time clock at nanosecond resolution. `/proc/self/stat` counts
/// 10 ms ticks: a small baseline run could read 0 and report an infinite
/// (JSON null) rate per CPU-second.
pub fn self_cpu_seconds() -> Option<f64> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Some(t.tv_sec as f64 + t.tv_nsec as f64 / 1e9)
}

/// utime + stime of a `/proc/PID/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after the last ')'.
fn stat_cpu_seconds(text: &str) -> Option<f64> {
    let (_, rest) = text.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3; utime is field 14, stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / clock_ticks_per_second())
}

/// /proc reports CPU time in USER_HZ ticks, which the kernel fixes at 100 on
/// every architecture it exports to user space (not the kernel's CONFIG_HZ);
/// a constant keeps `unsafe` (sysconf) out of this crate.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Peak resident set size (`VmHWM`) of `pid` in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// SIGTERM to a child we spawned and have not yet waited for (so its pid
/// cannot have been reused), through kill(1): no `unsafe` in this crate.
pub fn sigterm(child: &Child) -> std::io::Result<()> {
    signal(child, "TERM")
}

/// Signal `name` (as kill(1) spells it: TERM, USR1) to a child we spawned
/// and have not yet waited for.
pub fn signal(child: &Child, name: &str) -> std::io::Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{name} {}: {status}",
            child.id()
        )))
    }
}

/// Waits up to `deadline` for the child to exit; kills it past that.
pub fn wait_bounded(child: &mut Child, deadline: Duration) -> std::io::Result<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    child.wait()
}

/// A child killed when dropped (an early error must not leave a farm or a
/// gateway running).
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name_parses() {
        let line = "123 (a) b (c) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0 100";
        let ticks = clock_ticks_per_second();
        assert_eq!(stat_cpu_seconds(line), Some(300.0 / ticks));
        assert!(peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }

    #[test]
    fn own_cpu_time_has_sub_tick_resolution() {
        // A few microseconds of work, far less than /proc's 10 ms tick, must
        // still move the clock: the baseline's short runs depend on it.
        let before = self_cpu_seconds().expect("process CPU clock");
        let mut x = 0u64;
        for i in 0..20_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let after = self_cpu_seconds().expect("process CPU clock");
        assert!(before > 0.0 && after > before, "{before} -> {after} ({x})");
    }
}
