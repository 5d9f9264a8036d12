//! Starting the bench's child processes and reading what they print: the
//! farm (`millrace-loadgen serve`), the verifying stand-in
//! (`millrace-loadgen standin`), the gateway (`millrace run`) and the
//! baseline poller (`millrace-loadgen baseline`).

use std::io::{BufRead, BufReader, Lines, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::farm::{FarmProtocol, PortLayout};

use super::procs::Guard;
use crate::standin::Verdict;

/// Lines of a child's output kept for the report (the last ones).
const KEPT_LINE_COUNT_MAX: usize = 200;
/// Lines `serve` prints before `ready` at most (ports, farm, config).
const SERVE_PREAMBLE_LINES_MAX: usize = 16;

fn loadgen_exe() -> Result<std::path::PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("current_exe: {e}"))
}

/// `$MILLRACE_BIN`, or `millrace` next to this binary (same target dir and
/// profile).
pub fn millrace_exe() -> Result<std::path::PathBuf, String> {
    let path = match std::env::var_os("MILLRACE_BIN") {
        Some(path) => std::path::PathBuf::from(path),
        None => loadgen_exe()?.with_file_name("millrace"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} not found: build it first (cargo build --release --workspace) or set MILLRACE_BIN",
            path.display()
        ))
    }
}

/// What the farm child serves.
pub struct FarmArgs {
    pub protocol: FarmProtocol,
    /// The devices and how many share a port.
    pub layout: PortLayout,
    pub tags_per_device: u32,
    pub threads: usize,
    /// More `serve` options (the S7 devices' behaviour).
    pub extra: Vec<String>,
}

/// Starts the farm and waits for its `ready` line; returns it with its
/// ports, one per port index (as `FarmHandle::ports`). Its later rate lines
/// are read and dropped.
pub fn start_farm(farm: &FarmArgs) -> Result<(Guard, Vec<u16>), String> {
    let layout = farm.layout;
    let mut child = Command::new(loadgen_exe()?)
        .args(["serve", "--base-port", "0"])
        .args(["--protocol", farm.protocol.name()])
        .args(["--devices", &layout.devices().to_string()])
        .args(["--units-per-port", &layout.units_per_port().to_string()])
        .args(["--tags-per-device", &farm.tags_per_device.to_string()])
        .args(["--threads", &farm.threads.to_string()])
        .args(&farm.extra)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start the farm: {e}"))?;
    let stdout = child.stdout.take().ok_or("farm stdout")?;
    let guard = Guard(Some(child));
    let mut lines = BufReader::new(stdout).lines();
    let mut ports = Vec::new();
    let mut ready = false;
    for line in lines.by_ref().take(SERVE_PREAMBLE_LINES_MAX) {
        let line = line.map_err(|e| format!("farm output: {e}"))?;
        if let Some(rest) = line.strip_prefix("ports ") {
            ports = rest
                .split(' ')
                .map(|p| p.parse::<u16>().map_err(|e| format!("farm port {p}: {e}")))
                .collect::<Result<_, _>>()?;
        }
        if line == "ready" {
            ready = true;
            break;
        }
    }
    if !ready || ports.len() != layout.port_count() as usize {
        return Err(format!("the farm did not start ({} ports)", ports.len()));
    }
    std::thread::spawn(move || lines.for_each(drop));
    Ok((guard, ports))
}

/// The verifying stand-in child, driven over its stdin/stdout (standin.rs).
pub struct StandIn {
    guard: Guard,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    pub addr: SocketAddr,
}

impl StandIn {
    pub fn start(
        protocol: FarmProtocol,
        devices: u32,
        tags_per_device: u32,
        seq_capacity: u64,
    ) -> Result<StandIn, String> {
        let mut child = Command::new(loadgen_exe()?)
            .arg("standin")
            .args(["--protocol", protocol.name()])
            .args(["--devices", &devices.to_string()])
            .args(["--tags-per-device", &tags_per_device.to_string()])
            .args(["--seq-capacity", &seq_capacity.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start the stand-in: {e}"))?;
        let stdin = child.stdin.take().ok_or("stand-in stdin")?;
        let stdout = child.stdout.take().ok_or("stand-in stdout")?;
        let mut standin = StandIn {
            guard: Guard(Some(child)),
            stdin,
            lines: BufReader::new(stdout).lines(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        let line = standin.line()?;
        standin.addr = line
            .strip_prefix("standin listening ")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("the stand-in did not start: {line:?}"))?;
        Ok(standin)
    }

    pub fn pid(&mut self) -> u32 {
        self.guard.child().map_or(0, |c| c.id())
    }

    /// Rows received so far.
    pub fn rows(&mut self) -> Result<u64, String> {
        self.command("rows")?;
        let line = self.line()?;
        line.strip_prefix("rows ")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("stand-in: {line:?}"))
    }

    /// Stops it and returns its verification of seqs `0..end_seq`.
    pub fn finish(mut self, end_seq: u64, wait: Duration) -> Result<Verdict, String> {
        self.command(&format!("finish {end_seq}"))?;
        let line = self.line()?;
        let verdict = line
            .strip_prefix("verdict ")
            .and_then(Verdict::from_json)
            .ok_or_else(|| format!("stand-in: {line:?}"))?;
        if let Some(child) = self.guard.child() {
            let _ = super::procs::wait_bounded(child, wait);
        }
        Ok(verdict)
    }

    fn command(&mut self, text: &str) -> Result<(), String> {
        writeln!(self.stdin, "{text}")
            .and_then(|_| self.stdin.flush())
            .map_err(|e| format!("stand-in stdin: {e}"))
    }

    fn line(&mut self) -> Result<String, String> {
        match self.lines.next() {
            Some(Ok(line)) => Ok(line),
            Some(Err(e)) => Err(format!("stand-in stdout: {e}")),
            None => Err("the stand-in exited".into()),
        }
    }
}

/// `millrace run` with its stderr read on a thread: the metrics address is
/// sent once, every line is kept (the last few hundred).
pub struct Gateway {
    pub guard: Guard,
    pub metrics: SocketAddr,
    pub lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    pub fn start(config: &Path, hgrm_dir: &Path, wait: Duration) -> Result<Gateway, String> {
        let mut child = Command::new(millrace_exe()?)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--hgrm-dir")
            .arg(hgrm_dir)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start millrace: {e}"))?;
        let stderr = child.stderr.take().ok_or("millrace stderr")?;
        let guard = Guard(Some(child));
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = metrics_addr(&line) {
                    let _ = tx.send(addr);
                }
                let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
                if kept.len() >= KEPT_LINE_COUNT_MAX {
                    kept.remove(0);
                }
                kept.push(line);
            }
        });
        let metrics = rx.recv_timeout(wait).map_err(|_| {
            let kept = lines.lock().map(|l| l.join("\n")).unwrap_or_default();
            format!("millrace printed no metrics address within {wait:?}:\n{kept}")
        })?;
        Ok(Gateway {
            guard,
            metrics,
            lines,
            reader: Some(reader),
        })
    }

    pub fn pid(&mut self) -> u32 {
        self.guard.child().map_or(0, |c| c.id())
    }

    /// SIGUSR1: millrace empties its stage histograms; waits (bounded) until
    /// it says so, so the percentiles cover the window that follows.
    pub fn reset_histograms(&mut self, wait: Duration) -> Result<(), String> {
        let said = |lines: &Arc<Mutex<Vec<String>>>| {
            let lines = lines.lock().unwrap_or_else(|e| e.into_inner());
            lines
                .iter()
                .filter(|l| l.contains("histograms reset"))
                .count()
        };
        let before = said(&self.lines);
        let child = self.guard.child().ok_or("millrace already stopped")?;
        super::procs::signal(child, "USR1").map_err(|e| e.to_string())?;
        let started = std::time::Instant::now();
        while said(&self.lines) == before {
            if started.elapsed() >= wait {
                return Err(format!(
                    "millrace did not reset its histograms within {wait:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// SIGTERM, a bounded wait, then every line it printed.
    pub fn stop(&mut self, wait: Duration) -> Result<(Option<i32>, Vec<String>), String> {
        let child: &mut Child = self.guard.child().ok_or("millrace already stopped")?;
        super::procs::sigterm(child).map_err(|e| e.to_string())?;
        let status = super::procs::wait_bounded(child, wait).map_err(|e| e.to_string())?;
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let lines = self.lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok((status.code(), lines))
    }
}

fn metrics_addr(line: &str) -> Option<SocketAddr> {
    let rest = line.split_once("metrics on http://")?.1;
    rest.strip_suffix("/metrics")?.parse().ok()
}

/// `millrace: stopped: durable seq N, ...` -> N.
pub fn durable_seq(lines: &[String]) -> Option<u64> {
    lines.iter().rev().find_map(|line| {
        let rest = line.split_once("stopped: durable seq ")?.1;
        rest.split(',').next()?.trim().parse().ok()
    })
}

/// What `baseline` printed on its result line.
#[derive(Clone, Debug, Default)]
pub struct BaselineLine {
    pub seconds: f64,
    pub responses: u64,
    pub samples: u64,
    pub published: u64,
    pub errors: u64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

/// Runs the baseline for `seconds` against the stand-in at `sink`; waits for
/// it (bounded) and parses its result line.
pub fn run_baseline(config: &Path, seconds: f64, sink: SocketAddr) -> Result<BaselineLine, String> {
    let child = Command::new(loadgen_exe()?)
        .arg("baseline")
        .arg("--config")
        .arg(config)
        .args([
            "--seconds",
            &seconds.to_string(),
            "--sink",
            &sink.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start the baseline: {e}"))?;
    let mut guard = Guard(Some(child));
    let child = guard.child().ok_or("baseline child")?;
    let stdout = child.stdout.take().ok_or("baseline stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| parse_baseline(&l))
    });
    let wait = Duration::from_secs_f64(seconds + 60.0);
    let status = super::procs::wait_bounded(child, wait).map_err(|e| e.to_string())?;
    let parsed = reader.join().map_err(|_| "baseline reader panicked")?;
    match parsed {
        Some(line) if status.success() => Ok(line),
        _ => Err(format!("the baseline failed ({status})")),
    }
}

/// Runs `ua-count` for `seconds` against the OPC UA devices of `config`;
/// waits for it (bounded) and parses its line.
pub fn run_ua_count(config: &Path, seconds: f64) -> Result<super::report::UaCount, String> {
    let child = Command::new(loadgen_exe()?)
        .arg("ua-count")
        .arg("--config")
        .arg(config)
        .args(["--seconds", &seconds.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start ua-count: {e}"))?;
    let mut guard = Guard(Some(child));
    let child = guard.child().ok_or("ua-count child")?;
    let stdout = child.stdout.take().ok_or("ua-count stdout")?;
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| super::report::UaCount::parse(&l))
    });
    let wait = Duration::from_secs_f64(seconds + 60.0);
    let status = super::procs::wait_bounded(child, wait).map_err(|e| e.to_string())?;
    let parsed = reader.join().map_err(|_| "ua-count reader panicked")?;
    match parsed {
        Some(line) if status.success() => Ok(line),
        _ => Err(format!("ua-count failed ({status})")),
    }
}

fn parse_baseline(line: &str) -> Option<BaselineLine> {
    let rest = line.strip_prefix("baseline: ")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let field = |name: &str| -> Option<&str> {
        let at = words.iter().position(|w| *w == name)?;
        words.get(at + 1).copied()
    };
    Some(BaselineLine {
        seconds: field("seconds")?.parse().ok()?,
        responses: field("responses")?.parse().ok()?,
        samples: field("samples")?.parse().ok()?,
        published: field("published")?.parse().ok()?,
        errors: field("errors")?.parse().ok()?,
        cpu_s: field("cpu_s")?.parse().ok()?,
        peak_rss_kib: field("peak_rss_kib")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_millrace_and_the_baseline_print() {
        assert_eq!(
            metrics_addr("millrace: metrics on http://127.0.0.1:4567/metrics"),
            Some("127.0.0.1:4567".parse().unwrap())
        );
        let lines = vec![
            "millrace: stopping".to_string(),
            "millrace: stopped: durable seq 1234, acknowledged by every sink 1234, lag 0".into(),
        ];
        assert_eq!(durable_seq(&lines), Some(1234));
        let b = parse_baseline(
            "baseline: seconds 2.001 responses 10 samples 200 published 200 errors 0 \
             cpu_s 0.120 peak_rss_kib 9000",
        )
        .unwrap();
        assert_eq!(
            (b.responses, b.samples, b.published, b.peak_rss_kib),
            (10, 200, 200, 9000)
        );
        assert!(parse_baseline("baseline: seconds x").is_none());
    }
}
