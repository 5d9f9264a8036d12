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

/// CPU seconds of `pid`'s live threads at nanosecond resolution: the sum of
/// each thread's time on a CPU (`/proc/PID/task/TID/schedstat`, first
/// field). For a process whose threads live through the measurement, as
/// millrace's do (readers, WAL, sinks, metrics, main); a thread that ends
/// takes its time with it. `cpu_seconds` counts 10 ms ticks, too coarse for
/// an idle gateway's few milliseconds a second. `None` without schedstat
/// (a kernel built without CONFIG_SCHED_INFO).
pub fn live_threads_cpu_seconds(pid: u32) -> Option<f64> {
    let threads = threads(pid);
    if threads.is_empty() || threads.iter().any(|(_, t)| !t.fine) {
        return None;
    }
    Some(threads.iter().map(|(_, t)| t.cpu_s).sum())
}

/// Time on a CPU in seconds from a `schedstat` line.
fn schedstat_cpu_seconds(text: &str) -> Option<f64> {
    let ns: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
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

/// One thread's running totals: its name (`comm`), CPU seconds (user +
/// system) and context switches it made by waiting (`voluntary`: each is a
/// sleep that ended in a wake-up) and by being preempted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadTimes {
    pub name: String,
    pub cpu_s: f64,
    /// `cpu_s` is from `schedstat` (nanoseconds), not `stat` (10 ms ticks).
    pub fine: bool,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
}

/// Every thread of `pid` by thread id, from `/proc/PID/task/TID/{stat,status}`
/// and `schedstat` for CPU time at nanosecond resolution where the kernel
/// has it (a thread that ends between the listing and the reads is left
/// out).
pub fn threads(pid: u32) -> Vec<(u32, ThreadTimes)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let dir = task.path();
        let (Ok(stat), Ok(status)) = (
            std::fs::read_to_string(dir.join("stat")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        if let Some(mut times) = thread_times(&stat, &status) {
            let schedstat = std::fs::read_to_string(dir.join("schedstat")).ok();
            if let Some(cpu_s) = schedstat.as_deref().and_then(schedstat_cpu_seconds) {
                times.cpu_s = cpu_s;
                times.fine = true;
            }
            out.push((tid, times));
        }
    }
    out.sort_by_key(|(tid, _)| *tid);
    out
}

/// A thread's `stat` line and `status` text as `ThreadTimes`.
fn thread_times(stat: &str, status: &str) -> Option<ThreadTimes> {
    let name = stat.split_once('(')?.1.rsplit_once(')')?.0.to_string();
    let field = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(ThreadTimes {
        name,
        cpu_s: stat_cpu_seconds(stat)?,
        fine: false,
        voluntary_switches: field("voluntary_ctxt_switches:")?,
        involuntary_switches: field("nonvoluntary_ctxt_switches:")?,
    })
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
    fn thread_times_parse_and_this_process_has_threads() {
        let stat = "4242 (reader-0) S 1 2 3 4 5 6 7 8 9 10 150 25 0 0 20 0 3 0 100";
        let status = "Name:\treader-0\nvoluntary_ctxt_switches:\t1234\n\
                      nonvoluntary_ctxt_switches:\t56\n";
        let t = thread_times(stat, status).unwrap();
        assert_eq!(t.name, "reader-0");
        assert!((t.cpu_s - 1.75).abs() < 1e-9, "{t:?}");
        assert_eq!((t.voluntary_switches, t.involuntary_switches), (1234, 56));
        let own = threads(std::process::id());
        assert!(!own.is_empty());
        assert!(own.iter().all(|(_, t)| !t.name.is_empty()));
        assert_eq!(schedstat_cpu_seconds("1500000000 20 3\n"), Some(1.5));
        assert_eq!(schedstat_cpu_seconds(""), None);
    }

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
