//! Shared by the process-level fault tests (fault_kill, fault_disk,
//! fault_wal_damage, fault_clock): a simulated farm and its config, a real
//! `millrace run` child with its log in a file, the tickerplant stand-in with
//! a recorder that checks every delivered row, and a seeded RNG whose seed
//! is printed and can be replayed with `MILLRACE_FAULT_SEED`.
//!
//! Every wait here is bounded; nothing asserts a timing.

#![allow(dead_code)] // each test file uses a different part

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::farm::verify::Verifier;
use millrace::farm::{self, EmitOptions, Farm, FarmHandle, FarmOptions};
use millrace::kdb::{Recorder, Tickerplant, TickerplantOptions};

/// A farm-backed plant: devices, their config, the WAL directory.
pub struct PlantSpec {
    pub devices: u32,
    pub tags: u32,
    pub poll_interval: &'static str,
    pub segment_size: &'static str,
    pub quota: &'static str,
    /// `None`: `<tempdir>/wal`.
    pub wal_dir: Option<PathBuf>,
    /// Serve metrics on a free port (read it from the log).
    pub metrics: bool,
    pub time_type: &'static str,
}

impl Default for PlantSpec {
    fn default() -> Self {
        PlantSpec {
            devices: 10,
            tags: 50,
            poll_interval: "20ms",
            segment_size: "1MiB",
            quota: "4GiB",
            wal_dir: None,
            metrics: false,
            time_type: "timespan",
        }
    }
}

pub struct Plant {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub wal: PathBuf,
    pub spec: PlantSpec,
    pub farm: FarmHandle,
}

impl Plant {
    pub fn start(sink_address: &str, spec: PlantSpec) -> Plant {
        let dir = tempfile::tempdir().unwrap();
        let farm = Farm::start(FarmOptions {
            devices: spec.devices,
            register_count: spec.tags,
            ..Default::default()
        })
        .unwrap();
        let config = dir.path().join("plant.toml");
        let wal = spec
            .wal_dir
            .clone()
            .unwrap_or_else(|| dir.path().join("wal"));
        let emit = EmitOptions {
            tags_per_device: spec.tags,
            wal_dir: wal.clone(),
            sink_address: sink_address.to_string(),
            poll_interval: spec.poll_interval.into(),
            reader_threads: 1,
        };
        farm::emit_config(&config, farm.ports(), &emit).unwrap();
        let listen = if spec.metrics { "127.0.0.1:0" } else { "off" };
        let text = std::fs::read_to_string(&config).unwrap();
        let edits = [
            (
                "listen = \"127.0.0.1:9187\"",
                format!("listen = \"{listen}\""),
            ),
            (
                "segment_size = \"64MiB\"",
                format!("segment_size = \"{}\"", spec.segment_size),
            ),
            ("quota = \"4GiB\"", format!("quota = \"{}\"", spec.quota)),
            ("batch_rows = 10000", "batch_rows = 2000".to_string()),
            (
                "time_type = \"timespan\"",
                format!("time_type = \"{}\"", spec.time_type),
            ),
        ];
        let mut text = text;
        for (from, to) in edits {
            assert!(text.contains(from), "emitted config lacks {from}");
            text = text.replacen(from, &to, 1);
        }
        std::fs::write(&config, text).unwrap();
        Plant {
            dir,
            config,
            wal,
            spec,
            farm,
        }
    }

    pub fn tag_count(&self) -> u32 {
        self.spec.devices * self.spec.tags
    }
}

/// One `millrace run` child; its stderr goes to `log` (appended).
pub struct Run {
    pub child: Child,
    pub log: PathBuf,
    log_start: u64,
}

impl Run {
    pub fn spawn(config: &Path, log: &Path, env: &[(&str, &str)]) -> Run {
        let file = File::options().create(true).append(true).open(log).unwrap();
        let log_start = file.metadata().unwrap().len();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_millrace"));
        cmd.args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start millrace run");
        Run {
            child,
            log: log.to_path_buf(),
            log_start,
        }
    }

    /// What this run has logged so far.
    pub fn log_text(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let from = (self.log_start as usize).min(text.len());
        String::from_utf8_lossy(&text[from..]).into_owned()
    }

    pub fn signal(&self, sig: i32) {
        signal(&self.child, sig);
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        wait_exit(&mut self.child, limit)
    }

    /// SIGTERM, then the exit status (a clean stop delivers the backlog).
    pub fn stop(mut self) -> (ExitStatus, String) {
        // A SIGTERM before the run has installed its handlers would end it
        // by the default action, not by a clean stop: wait for the line it
        // logs once they are in place (a test whose condition already holds
        // at spawn would otherwise race the start-up).
        self.wait_log("SIGINT or SIGTERM stops", Duration::from_secs(30));
        self.signal(15);
        let status = self.wait(Duration::from_secs(30));
        (status, self.log_text())
    }

    /// Waits until the log contains `needle`; false at the limit.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        wait_until(limit, || self.log_text().contains(needle))
    }

    /// The metrics address the run logged.
    pub fn metrics_addr(&self) -> String {
        let mut addr = None;
        wait_until(Duration::from_secs(10), || {
            addr = crate::common::metrics_addr_in(&self.log_text());
            addr.is_some()
        });
        addr.expect("the run logs its metrics address")
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::{durable_seq, inspect, metric, wait_exit, wait_until};

/// Sends `sig` to the child with kill(1).
pub fn signal(child: &Child, sig: i32) {
    crate::common::signal(child.id(), sig);
}

/// The seed for this run: `MILLRACE_FAULT_SEED` or fresh; printed so that a
/// failure can be replayed.
pub fn seed(test: &str) -> u64 {
    let seed = match std::env::var("MILLRACE_FAULT_SEED") {
        Ok(s) => s.parse().expect("MILLRACE_FAULT_SEED is a u64"),
        Err(_) => {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        }
    };
    eprintln!("{test}: MILLRACE_FAULT_SEED={seed}");
    seed
}

/// xorshift64: reproducible from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform-ish in `lo..hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        assert!(lo < hi);
        lo + self.next() % (hi - lo)
    }
}

/// Every delivered row, checked as it arrives: the value against the
/// farm's formula (`Verifier`), and a row whose seq came before against
/// the first delivery of that seq (same tag, same value bits).
pub struct Delivered {
    pub verifier: Verifier,
    /// Per seq: 0 = not seen, else (tag index + 1) and the value's bits.
    first: Vec<(u32, u64)>,
    tags_per_device: u32,
    /// Re-deliveries of a seq with another tag or value.
    pub conflicting_duplicates: u64,
    pub rows: u64,
}

impl Delivered {
    pub fn new(devices: u32, tags_per_device: u32, seq_capacity: u64) -> Self {
        Delivered {
            verifier: Verifier::new(devices, tags_per_device, seq_capacity),
            first: Vec::new(),
            tags_per_device,
            conflicting_duplicates: 0,
            rows: 0,
        }
    }

    pub fn shared(devices: u32, tags_per_device: u32) -> Arc<Mutex<Delivered>> {
        Arc::new(Mutex::new(Delivered::new(
            devices,
            tags_per_device,
            50_000_000,
        )))
    }

    /// Asserts what every fault test asserts about delivery: every seq
    /// below `durable` arrived, nothing beyond the WAL arrived, every value
    /// is the farm's, a repeated seq repeated its first delivery exactly.
    pub fn assert_complete(&self, durable: u64, what: &str) {
        let v = &self.verifier;
        assert!(durable > 0, "{what}: nothing became durable");
        let lost = v.lost(durable);
        assert_eq!(
            lost, 0,
            "{what}: {lost} of {durable} durable samples never reached kdb+"
        );
        assert_eq!(v.out_of_range_seqs(), 0, "{what}: seqs out of range");
        assert_eq!(v.mismatches, 0, "{what}: values off the farm formula");
        assert_eq!(v.unparsed_syms, 0, "{what}: rows with unknown syms");
        assert_eq!(
            self.conflicting_duplicates, 0,
            "{what}: a seq delivered again with another tag or value"
        );
    }

    /// Highest seq delivered, plus one.
    pub fn end(&self) -> u64 {
        self.first.len() as u64
    }
}

impl Recorder for Delivered {
    fn record(&mut self, table: &[u8], sym: &[u8], value: f64, seq: i64) {
        self.rows += 1;
        self.verifier.record(table, sym, value, seq);
        let (Ok(index), Some((device, address))) = (
            usize::try_from(seq),
            farm::emit::parse_tag_name(std::str::from_utf8(sym).unwrap_or("")),
        ) else {
            return;
        };
        let tag = device * self.tags_per_device + u32::from(address) + 1;
        if index >= self.first.len() {
            if index >= 50_000_000 {
                return;
            }
            self.first.resize(index + 1, (0, 0));
        }
        let entry = (tag, value.to_bits());
        match self.first[index] {
            (0, _) => self.first[index] = entry,
            seen if seen != entry => self.conflicting_duplicates += 1,
            _ => {}
        }
    }
}

/// The stand-in on `addr` feeding `recorder` (and a journal if given).
pub fn tickerplant(
    addr: &str,
    recorder: &Arc<Mutex<Delivered>>,
    journal: Option<PathBuf>,
) -> Tickerplant {
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        journal,
        ..Default::default()
    };
    Tickerplant::bind(addr, options).unwrap()
}

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::Tmpfs;
