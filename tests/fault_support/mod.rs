//! Shared helpers of the network fault tests (fault_flapping.rs, fault_kdb.rs):
//! `millrace run` as a child process with its log and metrics endpoint, a
//! farm config, a recorder that keeps every delivered value by seq, a check
//! of the WAL against what kdb+ received, and [`proxy::FaultProxy`], a TCP
//! proxy that can stall or reset the path to kdb+ on demand.
//!
//! Every wait is bounded; nothing here asserts a timing.
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::farm::verify::Verifier;
use millrace::farm::{self, EmitOptions};
use millrace::kdb::Recorder;
use millrace::sample::Source;
use millrace::{Quality, Sample};

/// A millrace config for a running farm, edited for tests: metrics on a free
/// port, and whatever `edits` replace (pairs of exact text and replacement).
pub fn write_plant(
    dir: &Path,
    ports: &[u16],
    tags_per_device: u32,
    sink: &str,
    poll_interval: &str,
    edits: &[(&str, &str)],
) -> PathBuf {
    let config = dir.join("plant.toml");
    let emit = EmitOptions {
        tags_per_device,
        wal_dir: dir.join("wal"),
        sink_address: sink.to_string(),
        poll_interval: poll_interval.into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, ports, &emit).expect("emit the farm config");
    let mut text = std::fs::read_to_string(&config)
        .expect("read the emitted config")
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"127.0.0.1:0\"");
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the emitted config");
        text = text.replace(from, to);
    }
    std::fs::write(&config, text).expect("write the config");
    config
}

/// Makes sure this process (and so its children) may open `needed` files:
/// raises the soft RLIMIT_NOFILE with prlimit(1) when it is lower, and fails
/// loudly when the hard limit does not allow it.
pub fn ensure_fd_limit(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").expect("/proc/self/limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("an open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    let (soft, hard) = (numbers[0], numbers.get(1).copied().unwrap_or(u64::MAX));
    if soft >= needed {
        return;
    }
    assert!(
        hard >= needed,
        "this test needs {needed} open files; the hard RLIMIT_NOFILE is {hard} (ulimit -Hn)"
    );
    let status = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={needed}:{hard}"))
        .status()
        .expect("run prlimit(1) to raise RLIMIT_NOFILE");
    assert!(status.success(), "prlimit --nofile={needed} failed");
}

/// `millrace run` as a child: its metrics address (from its log) and every
/// log line it wrote (also echoed to the test's stderr). Killed on drop.
pub struct RunChild {
    child: Child,
    pub metrics: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl RunChild {
    pub fn spawn(config: &Path) -> RunChild {
        let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start millrace run");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                if let Some(rest) = line.split_once("metrics on http://").map(|(_, rest)| rest) {
                    let _ = tx.send(rest.trim_end_matches("/metrics").to_string());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let metrics = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("no metrics address in the log of millrace run");
            }
        };
        RunChild {
            child,
            metrics,
            log,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The whole exposition text.
    pub fn scrape_text(&self) -> String {
        scrape_text(&self.metrics)
    }

    /// One sample of the exposition (`name` with its labels, if any).
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.scrape_text();
        metric_in(&text, name).unwrap_or_else(|| panic!("{name} not in the exposition:\n{text}"))
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn log_has(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Still running (did not crash or exit)?
    pub fn running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }

    /// SIGTERM, then waits (bounded by `limit`, a hang detector) and returns
    /// the exit status with how long the stop took.
    pub fn terminate(&mut self, limit: Duration) -> (ExitStatus, Duration) {
        signal(self.child.id(), 15);
        let started = Instant::now();
        let deadline = started + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status, started.elapsed());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("millrace run did not exit within {limit:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::{metric_in, scrape as scrape_text, signal};

/// Polls `cond` every 50 ms until it holds; panics naming `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::durable_seq;

/// Never delivered, in [`Delivered::values`].
const NOT_DELIVERED: u64 = 0x7ff8_dead_beef_0001;

/// What kdb+ received: the farm verifier (values, seqs, repeated answers)
/// plus the value bits of every seq, to compare with the WAL afterwards.
pub struct Delivered {
    pub verifier: Verifier,
    values: Vec<u64>,
    /// A seq delivered twice with different values (must never happen).
    pub conflicts: u64,
}

impl Delivered {
    pub fn new(devices: u32, tags_per_device: u32, seq_capacity: u64) -> Self {
        Delivered {
            verifier: Verifier::new(devices, tags_per_device, seq_capacity),
            values: vec![NOT_DELIVERED; seq_capacity as usize],
            conflicts: 0,
        }
    }

    pub fn shared(devices: u32, tags: u32, seq_capacity: u64) -> Arc<Mutex<Delivered>> {
        Arc::new(Mutex::new(Delivered::new(devices, tags, seq_capacity)))
    }

    /// The delivered value of `seq`, if it arrived.
    pub fn value(&self, seq: u64) -> Option<f64> {
        let bits = *self.values.get(seq as usize)?;
        (bits != NOT_DELIVERED).then(|| f64::from_bits(bits))
    }
}

impl Recorder for Delivered {
    fn record(&mut self, table: &[u8], sym: &[u8], value: f64, seq: i64) {
        self.verifier.record(table, sym, value, seq);
        let Some(slot) = usize::try_from(seq)
            .ok()
            .and_then(|s| self.values.get_mut(s))
        else {
            return;
        };
        if *slot == NOT_DELIVERED {
            *slot = value.to_bits();
        } else if !(f64::from_bits(*slot).is_nan() && value.is_nan()) && *slot != value.to_bits() {
            self.conflicts += 1;
        }
    }
}

/// The WAL compared with what kdb+ received, seq by seq.
#[derive(Debug)]
pub struct WalCheck {
    /// Samples in the WAL (seqs `0..samples`).
    pub samples: u64,
    /// By quality bits; Modbus exceptions counted together under
    /// `Quality::modbus_exception(0)`.
    pub by_quality: std::collections::BTreeMap<u32, u64>,
    /// Seqs below the end that never reached kdb+.
    pub undelivered: u64,
    /// Delivered rows whose value differs from the WAL's sample (a good
    /// sample delivered with another value, or a bad one not as null).
    pub value_mismatches: u64,
    /// Good samples per device.
    pub good_per_device: Vec<u64>,
    /// Samples of each device in time windows: `[window][device]` good counts.
    pub good_per_window: Vec<Vec<u64>>,
}

/// Walks every frame of the WAL in `dir` and compares it with `delivered`.
/// `windows`: `(start_ns, end_ns)` UNIX ranges to count good samples per
/// device in. Tag `t` belongs to device `t / tags_per_device`.
pub fn check_wal(
    dir: &Path,
    delivered: &Delivered,
    devices: u32,
    tags_per_device: u32,
    windows: &[(i64, i64)],
) -> WalCheck {
    let mut check = WalCheck {
        samples: 0,
        by_quality: Default::default(),
        undelivered: 0,
        value_mismatches: 0,
        good_per_device: vec![0; devices as usize],
        good_per_window: vec![vec![0; devices as usize]; windows.len()],
    };
    let walked =
        millrace::wal::replay::for_each_frame(dir, 0, u64::MAX, |first_seq, samples, _| {
            for (seq, s) in (first_seq..).zip(samples) {
                note_sample(&mut check, delivered, seq, s, tags_per_device, windows);
            }
            true
        })
        .expect("walk the WAL");
    assert_eq!(
        walked.stopped_at, None,
        "the WAL has a corrupt sealed segment"
    );
    check.samples = walked.end_seq;
    check
}

fn note_sample(
    check: &mut WalCheck,
    delivered: &Delivered,
    seq: u64,
    s: &Sample,
    tags_per_device: u32,
    windows: &[(i64, i64)],
) {
    let q = match s.quality().foreign_code() {
        Some((Source::Modbus, _)) => Quality::modbus_exception(0),
        _ => s.quality(),
    };
    *check.by_quality.entry(q.bits()).or_default() += 1;
    let device = (s.tag_id().0 / tags_per_device) as usize;
    if s.quality() == Quality::GOOD {
        if let Some(n) = check.good_per_device.get_mut(device) {
            *n += 1;
        }
        for (w, &(start, end)) in windows.iter().enumerate() {
            if (start..end).contains(&s.ts_ns) {
                if let Some(n) = check.good_per_window[w].get_mut(device) {
                    *n += 1;
                }
            }
        }
    }
    match delivered.value(seq) {
        None => check.undelivered += 1,
        Some(v) => {
            let expected = s.value_f64();
            let same = (v.is_nan() && expected.is_nan()) || v == expected;
            if !same {
                check.value_mismatches += 1;
            }
        }
    }
}

pub fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
