//! The bench's results: a table for people, JSON for machines.

use std::fmt::Write as _;
use std::path::PathBuf;

use millrace::farm::FarmProtocol;

use super::children::BaselineLine;
use super::procs::ThreadTimes;
use super::scrape::Scrape;
use super::Mark;
use crate::standin::Verdict;

pub const STAGES: [&str; 5] = [
    "poll_round_trip",
    "decode",
    "ring_dwell",
    "wal_commit",
    "end_to_end",
];
const QUANTILES: [&str; 4] = ["0.5", "0.9", "0.99", "0.999"];

/// Per stage: p50, p90, p99, p99.9 in ms and the count (NaN: not recorded).
#[derive(Clone, Debug, Default)]
pub struct StageQuantiles {
    pub rows: Vec<(&'static str, [f64; 4], u64)>,
}

impl StageQuantiles {
    pub fn from_scrape(s: &Scrape) -> Self {
        let rows = STAGES
            .iter()
            .map(|&stage| {
                let q = QUANTILES.map(|q| s.stage_ms(stage, q).unwrap_or(f64::NAN));
                (stage, q, s.stage_count(stage))
            })
            .collect();
        StageQuantiles { rows }
    }

    /// From the `.hgrm` files millrace writes on exit (complete: every
    /// thread's recorder is flushed by then, which a scrape does not see).
    /// `None` if any file is missing or unreadable.
    pub fn from_hgrm_dir(dir: &std::path::Path) -> Option<Self> {
        let mut rows = Vec::with_capacity(STAGES.len());
        for stage in STAGES {
            let text = std::fs::read_to_string(dir.join(format!("{stage}.hgrm"))).ok()?;
            let (points, count) = parse_hgrm(&text)?;
            let q = [0.5, 0.9, 0.99, 0.999].map(|q| {
                points
                    .iter()
                    .find(|(_, p)| *p >= q)
                    .map_or(f64::NAN, |(v, _)| *v)
            });
            rows.push((stage, if count == 0 { [f64::NAN; 4] } else { q }, count));
        }
        Some(StageQuantiles { rows })
    }

    fn p99(&self, stage: &str) -> f64 {
        self.rows
            .iter()
            .find(|(name, _, _)| *name == stage)
            .map_or(f64::NAN, |(_, q, _)| q[2])
    }
}

/// (value ms, percentile) rows and the total count of an `.hgrm` text.
pub fn parse_hgrm(text: &str) -> Option<(Vec<(f64, f64)>, u64)> {
    let mut points = Vec::new();
    let mut count = None;
    for line in text.lines() {
        if let Some(rest) = line.split_once("Total count").map(|(_, r)| r) {
            let digits = rest
                .trim_start_matches([' ', '='])
                .trim_end_matches([']', ' ']);
            count = digits.parse().ok();
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(v), Some(p)) = (words.next(), words.next()) else {
            continue;
        };
        if let (Ok(v), Ok(p)) = (v.parse(), p.parse()) {
            points.push((v, p));
        }
    }
    Some((points, count?))
}

#[derive(Clone, Debug, Default)]
pub struct BaselineResult {
    pub line: BaselineLine,
    pub rows: u64,
    pub lost: u64,
    pub duplicates_after_dedup: u64,
    pub mismatches: u64,
    pub farm_cpu_s: f64,
    pub standin_cpu_s: f64,
}

impl BaselineResult {
    pub fn new(line: &BaselineLine, v: &Verdict, farm_cpu_s: f64, standin_cpu_s: f64) -> Self {
        BaselineResult {
            line: line.clone(),
            rows: v.rows,
            lost: v.lost,
            duplicates_after_dedup: v.duplicates_after_dedup,
            mismatches: v.mismatches,
            farm_cpu_s,
            standin_cpu_s,
        }
    }

    fn samples_per_s(&self) -> f64 {
        self.rows as f64 / self.line.seconds.max(1e-9)
    }

    fn samples_per_cpu_s(&self) -> f64 {
        self.rows as f64 / self.line.cpu_s
    }
}

#[derive(Debug, Default)]
pub struct Report {
    protocol: FarmProtocol,
    devices: u32,
    tags_per_device: u32,
    poll_interval_ms: u64,
    window_s: f64,
    rows: u64,
    responses: u64,
    samples_polled: u64,
    millrace_cpu_s: f64,
    farm_cpu_s: f64,
    standin_cpu_s: f64,
    driver_cpu_s: f64,
    /// `[wal] commit_interval` and the sink's `batch_age` of the run.
    pub commit_interval: String,
    pub batch_age: String,
    /// `max_inflight` of every device.
    pub max_inflight: u32,
    /// Modbus devices behind each farm port (and so each connection).
    pub units_per_connection: u32,
    /// `[readers] backend` as configured.
    pub backend: String,
    pub millrace_peak_rss_kib: u64,
    pub farm_peak_rss_kib: u64,
    /// millrace's threads over the window, by name.
    threads: Vec<ThreadRate>,
    pub stages: StageQuantiles,
    pub reader_timeouts: u64,
    pub reader_reconnects: u64,
    pub millrace_exit_code: Option<i32>,
    pub durable_seq: Option<u64>,
    rows_total: u64,
    lost: u64,
    duplicate_seqs: u64,
    duplicates_after_dedup: u64,
    mismatches: u64,
    bad_quality_rows: u64,
    text_rows_unchecked: u64,
    /// OPC UA changes published between two delivered ones that never
    /// arrived.
    changes_missed: u64,
    /// OPC UA tags of which no change arrived.
    silent_tags: u64,
    /// The longest stretch of the window with no row delivered, from the
    /// bench's once-a-second marks (a second's precision).
    pub longest_quiet_s: f64,
    pub hgrm_dir: Option<PathBuf>,
    pub baseline: Option<BaselineResult>,
    /// Why there is no baseline, when there is none by design.
    pub baseline_absent: Option<String>,
    /// OPC UA: async-opcua's client alone against the same farm.
    pub ua_count: Option<UaCount>,
    pub notes: Vec<String>,
}

/// What `ua-count` printed: the stack's client alone.
#[derive(Clone, Debug, Default)]
pub struct UaCount {
    pub seconds: f64,
    pub values: u64,
    pub cpu_s: f64,
}

impl UaCount {
    /// `ua-count: seconds S values N cpu_s C`.
    pub fn parse(line: &str) -> Option<UaCount> {
        let words: Vec<&str> = line
            .strip_prefix("ua-count: ")?
            .split_whitespace()
            .collect();
        let field = |name: &str| -> Option<&str> {
            let at = words.iter().position(|w| *w == name)?;
            words.get(at + 1).copied()
        };
        Some(UaCount {
            seconds: field("seconds")?.parse().ok()?,
            values: field("values")?.parse().ok()?,
            cpu_s: field("cpu_s")?.parse().ok()?,
        })
    }

    pub fn cpu_us_per_value(&self) -> f64 {
        self.cpu_s * 1e6 / self.values as f64
    }
}

impl Report {
    pub fn new(
        protocol: FarmProtocol,
        devices: u32,
        tags_per_device: u32,
        poll_interval_ms: u64,
    ) -> Self {
        Report {
            protocol,
            devices,
            tags_per_device,
            poll_interval_ms,
            units_per_connection: 1,
            ..Report::default()
        }
    }

    pub fn window(&mut self, start: &Mark, end: &Mark) {
        self.window_s = end.at.duration_since(start.at).as_secs_f64();
        self.rows = end.rows.saturating_sub(start.rows);
        self.responses = end.responses.saturating_sub(start.responses);
        self.samples_polled = end.samples.saturating_sub(start.samples);
        self.millrace_cpu_s = end.millrace_cpu_s - start.millrace_cpu_s;
        self.farm_cpu_s = end.farm_cpu_s - start.farm_cpu_s;
        self.standin_cpu_s = end.standin_cpu_s - start.standin_cpu_s;
        self.driver_cpu_s = end.self_cpu_s - start.self_cpu_s;
        self.threads = thread_rates(
            &start.millrace_threads,
            &end.millrace_threads,
            self.window_s,
        );
    }

    /// After millrace stopped: the stand-in's verdict over `0..durable_seq`.
    pub fn verification(&mut self, v: &Verdict) {
        self.rows_total = v.rows;
        self.lost = v.lost;
        self.duplicate_seqs = v.duplicate_seqs;
        self.duplicates_after_dedup = v.duplicates_after_dedup;
        self.mismatches = v.mismatches;
        self.bad_quality_rows = v.bad_quality_rows;
        self.text_rows_unchecked = v.text_rows_unchecked;
        self.changes_missed = v.changes_missed;
        self.silent_tags = v.silent_tags;
    }

    pub fn passed(&self) -> bool {
        let baseline_ok = self
            .baseline
            .as_ref()
            .is_none_or(|b| b.lost == 0 && b.mismatches == 0);
        self.durable_seq.is_some_and(|d| d > 0)
            && self.millrace_exit_code == Some(0)
            && self.lost == 0
            && self.mismatches == 0
            && self.duplicates_after_dedup == 0
            && self.changes_missed == 0
            && self.silent_tags == 0
            && !self.stalled()
            && baseline_ok
    }

    /// Longest stretch without a delivered row that is not a stall: three
    /// poll intervals, at least 3 s (a run whose rows stop part-way, with
    /// everything it did deliver verified, is still a failure).
    fn stall_bound_s(&self) -> f64 {
        (3 * self.poll_interval_ms).max(3_000) as f64 / 1_000.0
    }

    fn stalled(&self) -> bool {
        self.longest_quiet_s > self.stall_bound_s()
    }

    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.window_s.max(1e-9)
    }

    /// millrace's CPU microseconds per row delivered over the window.
    fn millrace_cpu_us_per_value(&self) -> f64 {
        self.millrace_cpu_s * 1e6 / self.rows as f64
    }

    fn samples_per_cpu_s(&self) -> f64 {
        self.rows as f64 / self.millrace_cpu_s
    }

    pub fn print(&self) {
        print!("{}", self.text());
    }

    pub(super) fn text(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "\n== millrace-loadgen bench ==");
        let _ = writeln!(
            t,
            "{} {} devices x {} tags every {} ms, max_inflight {}, units_per_connection {}, \
             backend {}; commit_interval {}, batch_age {}; window {:.2} s",
            self.devices,
            self.protocol,
            self.tags_per_device,
            self.poll_interval_ms,
            self.max_inflight,
            self.units_per_connection,
            self.backend,
            self.commit_interval,
            self.batch_age,
            self.window_s
        );
        let baseline_name = match &self.baseline_absent {
            None => "tokio-modbus baseline",
            Some(_) => "(no baseline)",
        };
        let _ = writeln!(t, "                        millrace     {baseline_name}");
        let b = self.baseline.as_ref();
        let bf = |f: &dyn Fn(&BaselineResult) -> f64| b.map_or(f64::NAN, f);
        let rows: [(&str, f64, f64); 7] = [
            (
                "samples/s delivered",
                self.per_s(self.rows),
                bf(&|b| b.samples_per_s()),
            ),
            (
                "responses/s",
                self.per_s(self.responses),
                bf(&|b| b.line.responses as f64 / b.line.seconds),
            ),
            (
                "samples per CPU-s",
                self.samples_per_cpu_s(),
                bf(&|b| b.samples_per_cpu_s()),
            ),
            ("poller CPU s", self.millrace_cpu_s, bf(&|b| b.line.cpu_s)),
            ("farm CPU s", self.farm_cpu_s, bf(&|b| b.farm_cpu_s)),
            (
                "stand-in CPU s",
                self.standin_cpu_s,
                bf(&|b| b.standin_cpu_s),
            ),
            ("bench driver CPU s", self.driver_cpu_s, f64::NAN),
        ];
        for (name, m, base) in rows {
            let _ = writeln!(t, "{name:<22} {m:>12.2} {base:>14.2}");
        }
        let _ = writeln!(
            t,
            "peak RSS KiB: millrace {}, farm {}, baseline {}",
            self.millrace_peak_rss_kib,
            self.farm_peak_rss_kib,
            b.map_or(0, |b| b.line.peak_rss_kib)
        );
        let _ = writeln!(
            t,
            "\nmillrace threads           CPU % of a core   wake-ups/s   preempted/s"
        );
        for r in &self.threads {
            let name = match r.count {
                1 => r.name.clone(),
                n => format!("{} (x{n})", r.name),
            };
            let _ = writeln!(
                t,
                "{name:<26} {:>15.2} {:>12.0} {:>13.0}",
                r.cpu_percent, r.wakeups_per_s, r.preempted_per_s
            );
        }
        let _ = writeln!(
            t,
            "\nmillrace latency per stage (ms)   p50      p90      p99    p99.9    count"
        );
        for (stage, q, count) in &self.stages.rows {
            let _ = writeln!(
                t,
                "{stage:<30} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {count:>8}",
                q[0], q[1], q[2], q[3]
            );
        }
        let _ = writeln!(
            t,
            "\nverification: durable seq {:?}, rows {}, lost {}, duplicate seqs removed {}, \
             duplicates after dedup {}, mismatches {}, bad-quality rows {}, text rows unchecked \
             {}, value changes missed {}, silent tags {}, timeouts {}, reconnects {}, millrace exit {:?}",
            self.durable_seq,
            self.rows_total,
            self.lost,
            self.duplicate_seqs,
            self.duplicates_after_dedup,
            self.mismatches,
            self.bad_quality_rows,
            self.text_rows_unchecked,
            self.changes_missed,
            self.silent_tags,
            self.reader_timeouts,
            self.reader_reconnects,
            self.millrace_exit_code
        );
        if let Some(why) = &self.baseline_absent {
            let _ = writeln!(t, "{why}");
        }
        if let Some(ua) = &self.ua_count {
            let _ = writeln!(
                t,
                "CPU per value change: millrace {:.2} us (all of it: stack, ring, WAL, kdb+ \
                 sink), async-opcua's client alone {:.2} us ({:.0} values/s over {:.2} s, \
                 counting only)",
                self.millrace_cpu_us_per_value(),
                ua.cpu_us_per_value(),
                ua.values as f64 / ua.seconds,
                ua.seconds
            );
        }
        if let Some(b) = b {
            let _ = writeln!(
                t,
                "baseline verification: published {}, rows {}, lost {}, duplicates after dedup {}, \
                 mismatches {}, read errors {}",
                b.line.published,
                b.rows,
                b.lost,
                b.duplicates_after_dedup,
                b.mismatches,
                b.line.errors
            );
        }
        match &self.hgrm_dir {
            Some(dir) => {
                let _ = writeln!(t, "percentile files (.hgrm): {}", dir.display());
            }
            None => {
                let _ = writeln!(t, "percentile files: pass --dir to keep them");
            }
        }
        for note in &self.notes {
            let _ = writeln!(t, "note: {note}");
        }
        if self.stalled() {
            let _ = writeln!(
                t,
                "stalled: no row delivered for {:.0} s of the window (the bound is {:.0} s: \
                 three poll intervals, at least 3 s)",
                self.longest_quiet_s,
                self.stall_bound_s()
            );
        }
        let _ = writeln!(t, "result: {}", if self.passed() { "PASS" } else { "FAIL" });
        t
    }

    pub fn json(&self) -> String {
        let mut j = String::from("{\n");
        let mut field = |name: &str, value: String| {
            let _ = writeln!(j, "  \"{name}\": {value},");
        };
        field("protocol", format!("\"{}\"", self.protocol));
        field("devices", self.devices.to_string());
        field("tags_per_device", self.tags_per_device.to_string());
        field("poll_interval_ms", self.poll_interval_ms.to_string());
        field("commit_interval", format!("\"{}\"", self.commit_interval));
        field("batch_age", format!("\"{}\"", self.batch_age));
        field("max_inflight", self.max_inflight.to_string());
        field(
            "units_per_connection",
            self.units_per_connection.to_string(),
        );
        field("backend", format!("\"{}\"", self.backend));
        field("window_s", num(self.window_s));
        field("samples_per_s", num(self.per_s(self.rows)));
        field("polled_samples_per_s", num(self.per_s(self.samples_polled)));
        field("responses_per_s", num(self.per_s(self.responses)));
        field("samples_per_cpu_s", num(self.samples_per_cpu_s()));
        field("p99_end_to_end_ms", num(self.stages.p99("end_to_end")));
        field(
            "cpu_s",
            format!(
                "{{\"millrace\": {}, \"farm\": {}, \"standin\": {}, \"driver\": {}}}",
                num(self.millrace_cpu_s),
                num(self.farm_cpu_s),
                num(self.standin_cpu_s),
                num(self.driver_cpu_s)
            ),
        );
        field(
            "peak_rss_kib",
            format!(
                "{{\"millrace\": {}, \"farm\": {}}}",
                self.millrace_peak_rss_kib, self.farm_peak_rss_kib
            ),
        );
        field("stages_ms", self.stages_json());
        let threads: Vec<String> = self
            .threads
            .iter()
            .map(|r| {
                format!(
                    "{{\"name\": \"{}\", \"count\": {}, \"cpu_percent\": {}, \
                     \"wakeups_per_s\": {}, \"preempted_per_s\": {}}}",
                    r.name.replace(['"', '\\'], "_"),
                    r.count,
                    num(r.cpu_percent),
                    num(r.wakeups_per_s),
                    num(r.preempted_per_s)
                )
            })
            .collect();
        field("threads", format!("[{}]", threads.join(", ")));
        field(
            "durable_seq",
            self.durable_seq.map_or("null".into(), |d| d.to_string()),
        );
        field("rows_received", self.rows_total.to_string());
        field("lost", self.lost.to_string());
        field("duplicate_seqs_removed", self.duplicate_seqs.to_string());
        field(
            "duplicates_after_dedup",
            self.duplicates_after_dedup.to_string(),
        );
        field("mismatches", self.mismatches.to_string());
        field("bad_quality_rows", self.bad_quality_rows.to_string());
        field("text_rows_unchecked", self.text_rows_unchecked.to_string());
        field("changes_missed", self.changes_missed.to_string());
        field("silent_tags", self.silent_tags.to_string());
        field("longest_quiet_s", num(self.longest_quiet_s));
        if let Some(why) = &self.baseline_absent {
            field("baseline_absent", format!("\"{why}\""));
        }
        if let Some(ua) = &self.ua_count {
            field(
                "millrace_cpu_us_per_value",
                format!("{:.3}", self.millrace_cpu_us_per_value()),
            );
            field(
                "ua_client_values_per_s",
                format!("{:.0}", ua.values as f64 / ua.seconds),
            );
            field(
                "ua_client_cpu_us_per_value",
                format!("{:.3}", ua.cpu_us_per_value()),
            );
        }
        field(
            "millrace_exit_code",
            self.millrace_exit_code
                .map_or("null".into(), |c| c.to_string()),
        );
        field("passed", self.passed().to_string());
        let baseline = self.baseline.as_ref().map_or("null".into(), baseline_json);
        let _ = write!(j, "  \"baseline\": {baseline}\n}}\n");
        j
    }

    fn stages_json(&self) -> String {
        let parts: Vec<String> = self
            .stages
            .rows
            .iter()
            .map(|(stage, q, count)| {
                format!(
                    "\"{stage}\": {{\"p50\": {}, \"p90\": {}, \"p99\": {}, \"p999\": {}, \
                     \"count\": {count}}}",
                    num(q[0]),
                    num(q[1]),
                    num(q[2]),
                    num(q[3])
                )
            })
            .collect();
        format!("{{{}}}", parts.join(", "))
    }
}

fn baseline_json(b: &BaselineResult) -> String {
    format!(
        "{{\"samples_per_s\": {}, \"responses_per_s\": {}, \"samples_per_cpu_s\": {}, \
         \"seconds\": {}, \"cpu_s\": {}, \"farm_cpu_s\": {}, \"peak_rss_kib\": {}, \
         \"samples_polled\": {}, \"published\": {}, \"rows_received\": {}, \"lost\": {}, \
         \"duplicates_after_dedup\": {}, \
         \"mismatches\": {}, \"read_errors\": {}}}",
        num(b.samples_per_s()),
        num(b.line.responses as f64 / b.line.seconds.max(1e-9)),
        num(b.samples_per_cpu_s()),
        num(b.line.seconds),
        num(b.line.cpu_s),
        num(b.farm_cpu_s),
        b.line.peak_rss_kib,
        b.line.samples,
        b.line.published,
        b.rows,
        b.lost,
        b.duplicates_after_dedup,
        b.mismatches,
        b.line.errors
    )
}

/// A JSON number, or null for NaN and infinities (JSON has neither).
fn num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_quantiles_are_the_first_rows_at_or_past_them() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    2.000 0.000000000000 0 1.00\n\
                    3.000 0.500000000000 5 2.00\n\
                    9.000 0.900000000000 9 10.00\n\
                    12.000 1.000000000000 10\n\
                    #[Mean    = 4.000, StdDeviation   = 1.000]\n\
                    #[Max     = 12.000, Total count    =           10]\n";
        let (points, count) = parse_hgrm(text).unwrap();
        assert_eq!(count, 10);
        assert_eq!(points.len(), 4);
        let p99 = points.iter().find(|(_, p)| *p >= 0.99).unwrap().0;
        assert_eq!(p99, 12.0);
    }

    /// Rows that stop part-way fail the run even when all of them verify.
    #[test]
    fn a_window_whose_rows_stop_fails() {
        let mut report = Report::new(FarmProtocol::Modbus, 1, 10, 10);
        report.durable_seq = Some(100);
        report.millrace_exit_code = Some(0);
        report.longest_quiet_s = 3.0;
        assert!(report.passed(), "3 s quiet is within the bound");
        report.longest_quiet_s = 4.0;
        assert!(!report.passed());
        assert!(report.text().contains("stalled: no row delivered for 4 s"));
        let mut slow = Report::new(FarmProtocol::Modbus, 1, 10, 2_000);
        slow.durable_seq = Some(100);
        slow.millrace_exit_code = Some(0);
        slow.longest_quiet_s = 5.0;
        assert!(slow.passed(), "three 2 s poll intervals");
    }
}

/// One name's threads over the window: CPU as a percentage of one core,
/// wake-ups (voluntary context switches: sleeps that ended) and preemptions
/// (involuntary ones) per second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ThreadRate {
    pub name: String,
    /// Threads of this name alive at both ends of the window.
    pub count: u32,
    pub cpu_percent: f64,
    pub wakeups_per_s: f64,
    pub preempted_per_s: f64,
}

/// Per-thread differences between two readings, summed by thread name,
/// busiest first. Threads that started or ended inside the window are left
/// out (their share is in the process's CPU seconds).
pub fn thread_rates(
    start: &[(u32, ThreadTimes)],
    end: &[(u32, ThreadTimes)],
    window_s: f64,
) -> Vec<ThreadRate> {
    let mut by_name: Vec<ThreadRate> = Vec::new();
    for (tid, e) in end {
        let Some((_, s)) = start.iter().find(|(t, s)| t == tid && s.name == e.name) else {
            continue;
        };
        let i = match by_name.iter().position(|r| r.name == e.name) {
            Some(i) => i,
            None => {
                by_name.push(ThreadRate {
                    name: e.name.clone(),
                    ..ThreadRate::default()
                });
                by_name.len() - 1
            }
        };
        let r = &mut by_name[i];
        r.count += 1;
        r.cpu_percent += (e.cpu_s - s.cpu_s) / window_s * 100.0;
        r.wakeups_per_s +=
            e.voluntary_switches.saturating_sub(s.voluntary_switches) as f64 / window_s;
        r.preempted_per_s += e
            .involuntary_switches
            .saturating_sub(s.involuntary_switches) as f64
            / window_s;
    }
    by_name.sort_by(|a, b| b.cpu_percent.total_cmp(&a.cpu_percent));
    by_name
}

#[cfg(test)]
mod thread_tests {
    use super::*;

    fn times(name: &str, cpu_s: f64, voluntary: u64, involuntary: u64) -> ThreadTimes {
        ThreadTimes {
            name: name.into(),
            cpu_s,
            fine: true,
            voluntary_switches: voluntary,
            involuntary_switches: involuntary,
        }
    }

    #[test]
    fn rates_are_per_name_over_the_window_and_short_lived_threads_are_left_out() {
        let start = vec![
            (10, times("reader-0", 1.0, 100, 5)),
            (11, times("wal-writer", 2.0, 50, 0)),
            (12, times("metrics", 0.0, 0, 0)),
            (13, times("metrics", 0.5, 10, 0)),
            (14, times("gone", 9.0, 0, 0)),
        ];
        let end = vec![
            (10, times("reader-0", 1.5, 1100, 15)),
            (11, times("wal-writer", 2.1, 250, 0)),
            (12, times("metrics", 0.1, 20, 0)),
            (13, times("metrics", 0.6, 30, 0)),
            (15, times("new", 5.0, 5, 0)),
        ];
        let r = thread_rates(&start, &end, 10.0);
        let names: Vec<&str> = r.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["reader-0", "metrics", "wal-writer"]);
        assert!((r[0].cpu_percent - 5.0).abs() < 1e-9);
        assert!((r[0].wakeups_per_s - 100.0).abs() < 1e-9);
        assert!((r[0].preempted_per_s - 1.0).abs() < 1e-9);
        assert_eq!(r[1].count, 2);
        assert!((r[1].cpu_percent - 2.0).abs() < 1e-9);
        assert!((r[1].wakeups_per_s - 4.0).abs() < 1e-9);
    }
}
