//! `bench`: the end-to-end benchmark. Three child processes and this driver:
//!
//! ```text
//! millrace-loadgen serve (child)  --Modbus TCP-->  millrace run (child)
//!                                                     | .u.upd over kdb+ IPC
//!                                                     v
//!                  millrace-loadgen standin (child): the tickerplant stand-in
//!                  recording every row (seq once, value by the farm's formula)
//! then, against the same farm (Modbus only):
//! millrace-loadgen baseline (child, tokio-modbus) --> a second standin child
//! ```
//!
//! `--protocol s7` serves S7 devices instead (`mixed`: odd devices S7) and
//! verifies every S7 type the same way; there is no S7 baseline client in
//! the same run (the report says so plainly).
//!
//! `--units-per-connection U` (Modbus) serves the devices U to a port, as
//! behind serial-to-TCP gateways: the emitted config polls each as its unit
//! id at its port's address, and the baseline opens one connection per
//! port and polls its units one after another.
//!
//! The measurement window is the `--seconds` after millrace serves metrics
//! and a one-second warm-up (millrace's stage histograms are emptied with
//! SIGUSR1 when the window opens, so percentiles leave start-up out);
//! rates and CPU seconds are differences over that window (CPU from
//! /proc/PID/stat of each child, each process apart; the driver's own CPU
//! is reported too). Percentiles come from the `.hgrm` files millrace
//! writes on exit (from the reset on: the window and the final delivery of
//! what was durable at SIGTERM), kept in `<dir>/hgrm` with `--dir`.
//! Verification happens after millrace has stopped: every seq below its final
//! durable seq must have arrived, every value must check.

pub mod children;
mod plot;
pub mod procs;
mod report;
mod scrape;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use millrace::farm::{self, EmitOptions, FarmProtocol, PortLayout, S7EmitOptions};

use children::{FarmArgs, Gateway, StandIn};
use report::{BaselineResult, Report, StageQuantiles};
use scrape::Scrape;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What the farm's devices speak: modbus, s7, mixed (odd devices S7),
    /// ethernet-ip, or opcua (servers whose every variable changes once
    /// per poll interval; millrace subscribes at that interval).
    #[arg(long, default_value = "modbus", value_parser = crate::parse_protocol)]
    protocol: FarmProtocol,
    /// Seconds millrace is measured for (after it serves metrics and a
    /// one-second warm-up).
    #[arg(long)]
    seconds: u64,
    #[arg(long)]
    devices: u32,
    #[arg(long)]
    tags_per_device: u32,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value_t = 100)]
    poll_interval_ms: u64,
    /// Seconds the tokio-modbus baseline polls for (default: --seconds; 0 skips it).
    #[arg(long)]
    baseline_seconds: Option<f64>,
    /// Keep the config, WAL and .hgrm files here (default: a temporary dir,
    /// removed at the end).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Event-loop threads of the farm.
    #[arg(long, default_value_t = 1)]
    farm_threads: usize,
    /// The OPC UA farm's server (`--protocol opcua`): `lean` (default:
    /// subscriptions computed when sent, so the farm does not bound the
    /// run) or `stack` (async-opcua's server, 1.5-2 us of CPU per change).
    #[arg(long, default_value = "lean", value_parser = millrace::farm::OpcuaServerKind::parse)]
    opcua_server: millrace::farm::OpcuaServerKind,
    /// `[wal] commit_interval` of millrace's config (group commit).
    #[arg(long, default_value = "10ms")]
    commit_interval: String,
    /// `batch_age` of the kdb+ sink.
    #[arg(long, default_value = "5ms")]
    batch_age: String,
    /// `batch_rows` of the kdb+ sink.
    #[arg(long, default_value_t = 10_000)]
    batch_rows: u32,
    /// `max_inflight` of every device: requests of one poll cycle pipelined
    /// on its connection (a device of more than 125 tags needs several). The
    /// tokio-modbus baseline keeps one in flight: its client does not
    /// pipeline.
    #[arg(long, default_value_t = 1)]
    max_inflight: u32,
    /// Modbus devices behind each farm port, 1..=247, as behind a
    /// serial-to-TCP gateway: each is polled as its own unit id at its
    /// port's address (millrace shares one connection among the devices of
    /// an address; the tokio-modbus baseline opens one per port and polls
    /// its units one after another). 1: a port and a connection per device.
    #[arg(long, default_value_t = 1)]
    units_per_connection: u32,
    /// `[readers] backend` of millrace's config: auto, io_uring or epoll.
    #[arg(long, default_value = "auto", value_parser = ["auto", "io_uring", "epoll"])]
    backend: String,
    #[command(flatten)]
    s7: crate::S7Args,
    #[command(flatten)]
    enip: crate::EnipArgs,
}

/// How long millrace may take to start serving metrics, and to stop.
const START_WAIT: Duration = Duration::from_secs(60);
const STOP_WAIT: Duration = Duration::from_secs(60);
/// Polling before the window starts: connections to every device are set
/// up, then millrace's histograms are emptied (SIGUSR1) and the window opens.
const WARM_UP: Duration = Duration::from_secs(1);
const RESET_WAIT: Duration = Duration::from_secs(5);
/// Seconds of margin in the seq record beyond the expected samples.
const SEQ_MARGIN_SECONDS: f64 = 30.0;

/// Runs the bench; `Ok(true)` when nothing was lost and every value checked.
pub fn run(args: &BenchArgs) -> Result<bool, String> {
    if args.seconds == 0 || args.devices == 0 || args.tags_per_device == 0 {
        return Err("--seconds, --devices and --tags-per-device must be at least 1".into());
    }
    if args.poll_interval_ms == 0 {
        return Err("--poll-interval-ms must be at least 1".into());
    }
    let layout = layout(args)?;
    if args.protocol.has_s7() {
        args.s7.farm_options().validate()?;
    }
    if args.protocol.has_enip() {
        args.enip.farm_options().validate()?;
    }
    // OPC UA servers change every variable once per poll interval, and
    // millrace samples and publishes at it.
    let opcua_cli = if args.protocol.has_opcua() {
        vec![
            "--change-interval-ms".to_string(),
            args.poll_interval_ms.to_string(),
            "--opcua-server".to_string(),
            args.opcua_server.name().to_string(),
        ]
    } else {
        Vec::new()
    };
    let dir = WorkDir::new(args.dir.clone())?;
    let farm_args = FarmArgs {
        protocol: args.protocol,
        layout,
        tags_per_device: args.tags_per_device,
        threads: args.farm_threads,
        extra: [args.s7.to_cli(), args.enip.to_cli(), opcua_cli].concat(),
    };
    let (mut farm, ports) = children::start_farm(&farm_args)?;
    let farm_pid = farm.child().map_or(0, |c| c.id());
    println!(
        "bench: farm of {} {} devices x {} tags, {} per port (pid {farm_pid}), poll every {} \
         ms, dir {}",
        args.devices,
        args.protocol,
        args.tags_per_device,
        args.units_per_connection,
        args.poll_interval_ms,
        dir.path.display()
    );
    let mut report = Report::new(
        args.protocol,
        args.devices,
        args.tags_per_device,
        args.poll_interval_ms,
    );
    report.commit_interval = args.commit_interval.clone();
    report.batch_age = args.batch_age.clone();
    report.max_inflight = args.max_inflight;
    report.units_per_connection = args.units_per_connection;
    report.backend = args.backend.clone();
    measure_millrace(args, &dir.path, &ports, farm_pid, &mut report)?;
    let baseline_seconds = args.baseline_seconds.unwrap_or(args.seconds as f64);
    if args.protocol.has_opcua() && baseline_seconds > 0.0 {
        let why = "baseline: async-opcua's client alone (ua-count), counting values only";
        println!("bench: {why}");
        report.baseline_absent = Some(why.to_string());
        report.ua_count = Some(children::run_ua_count(
            &dir.path.join("bench.toml"),
            baseline_seconds,
        )?);
    } else if args.protocol != FarmProtocol::Modbus {
        // The S7 decode is benchmarked against snap7-client apart; no S7
        // client polls this farm beside millrace yet.
        let why = format!("baseline: none for {}", args.protocol);
        println!("bench: {why}");
        report.baseline_absent = Some(why);
    } else if baseline_seconds > 0.0 {
        report.baseline = Some(measure_baseline(
            args,
            &dir.path,
            baseline_seconds,
            farm_pid,
        )?);
    }
    if let Some(child) = farm.child() {
        let _ = procs::sigterm(child);
        let _ = procs::wait_bounded(child, STOP_WAIT);
    }
    report.print();
    if let Some(path) = &args.json {
        std::fs::write(path, report.json()).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("json {}", path.display());
    }
    Ok(report.passed())
}

/// Where the farm serves the devices: `--units-per-connection` to a port,
/// Modbus only.
fn layout(args: &BenchArgs) -> Result<PortLayout, String> {
    let units = args.units_per_connection;
    if units > 1 && args.protocol != FarmProtocol::Modbus {
        return Err(format!(
            "--units-per-connection {units}: several devices behind one connection are \
             Modbus only, not {}",
            args.protocol
        ));
    }
    PortLayout::new(args.devices, units).ok_or_else(|| {
        format!(
            "--units-per-connection must be in 1..={} (the Modbus unit ids), not {units}",
            farm::UNITS_PER_PORT_MAX
        )
    })
}

fn seq_capacity(args: &BenchArgs, seconds: f64) -> u64 {
    let per_s = f64::from(args.devices) * f64::from(args.tags_per_device) * 1000.0
        / args.poll_interval_ms as f64;
    ((per_s * (seconds + SEQ_MARGIN_SECONDS)) as u64).max(1 << 20)
}

/// Writes the farm's config with the stand-in as sink, the metrics endpoint
/// on a free port, and the commit interval and batching the bench was given.
fn write_config(
    args: &BenchArgs,
    dir: &Path,
    ports: &[u16],
    sink: SocketAddr,
) -> Result<PathBuf, String> {
    let path = dir.join("bench.toml");
    let wal = dir.join("wal");
    if wal.exists() {
        std::fs::remove_dir_all(&wal).map_err(|e| format!("{}: {e}", wal.display()))?;
    }
    let emit = EmitOptions {
        tags_per_device: args.tags_per_device,
        wal_dir: wal,
        sink_address: sink.to_string(),
        poll_interval: format!("{}ms", args.poll_interval_ms),
        reader_threads: 1,
    };
    let s7 = args.s7.farm_options();
    let s7_emit = S7EmitOptions {
        rack: s7.rack,
        slot: s7.slot,
        pdu_size: s7.pdu_size,
    };
    let enip_emit = args.enip.emit_options();
    let layout = layout(args)?;
    farm::emit_farm_config_layout(
        &path,
        ports,
        layout,
        args.protocol,
        &emit,
        &s7_emit,
        &enip_emit,
    )
    .map_err(|e| format!("emit config: {e}"))?;
    let mut text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
    // The metrics port: the emitted one is fixed, benches run side by side.
    let lines = [
        (
            "listen = \"127.0.0.1:9187\"",
            "listen = \"127.0.0.1:0\"".to_string(),
        ),
        (
            "commit_interval = \"10ms\"",
            format!("commit_interval = \"{}\"", args.commit_interval),
        ),
        (
            "batch_age = \"5ms\"",
            format!("batch_age = \"{}\"", args.batch_age),
        ),
        (
            "batch_rows = 10000",
            format!("batch_rows = {}", args.batch_rows),
        ),
        (
            "backend = \"auto\"",
            format!("backend = \"{}\"", args.backend),
        ),
    ];
    for (emitted, wanted) in lines {
        if !text.contains(emitted) {
            return Err(format!(
                "the emitted config has no `{emitted}` line to replace"
            ));
        }
        text = text.replacen(emitted, &wanted, 1);
    }
    // One per device.
    text = text.replace(
        "max_inflight = 1\n",
        &format!("max_inflight = {}\n", args.max_inflight),
    );
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    Ok(path)
}

/// One reading of everything the window's rates are differences of.
#[derive(Clone)]
struct Mark {
    at: Instant,
    rows: u64,
    responses: u64,
    samples: u64,
    millrace_cpu_s: f64,
    /// millrace's threads, by thread id.
    millrace_threads: Vec<(u32, procs::ThreadTimes)>,
    farm_cpu_s: f64,
    standin_cpu_s: f64,
    self_cpu_s: f64,
}

fn mark(
    gateway: &mut Gateway,
    farm_pid: u32,
    standin: &mut StandIn,
) -> Result<(Mark, Option<Scrape>), String> {
    let scrape = Scrape::fetch(gateway.metrics).ok();
    let counter = |name: &str| scrape.as_ref().map_or(0, |s| s.counter(name));
    let standin_pid = standin.pid();
    let mark = Mark {
        at: Instant::now(),
        rows: standin.rows()?,
        responses: counter("millrace_frames_total"),
        samples: counter("millrace_samples_total"),
        millrace_cpu_s: procs::live_threads_cpu_seconds(gateway.pid())
            .or_else(|| procs::cpu_seconds(gateway.pid()))
            .unwrap_or(f64::NAN),
        millrace_threads: procs::threads(gateway.pid()),
        farm_cpu_s: procs::cpu_seconds(farm_pid).unwrap_or(f64::NAN),
        standin_cpu_s: procs::cpu_seconds(standin_pid).unwrap_or(f64::NAN),
        self_cpu_s: procs::self_cpu_seconds().unwrap_or(f64::NAN),
    };
    Ok((mark, scrape))
}

fn measure_millrace(
    args: &BenchArgs,
    dir: &Path,
    ports: &[u16],
    farm_pid: u32,
    report: &mut Report,
) -> Result<(), String> {
    let capacity = seq_capacity(args, args.seconds as f64 + WARM_UP.as_secs_f64());
    let mut tp = StandIn::start(args.protocol, args.devices, args.tags_per_device, capacity)?;
    let config = write_config(args, dir, ports, tp.addr)?;
    let mut gateway = Gateway::start(&config, &dir.join("hgrm"), START_WAIT)?;
    println!(
        "bench: millrace pid {} metrics {}, stand-in pid {} on {}",
        gateway.pid(),
        gateway.metrics,
        tp.pid(),
        tp.addr
    );
    std::thread::sleep(WARM_UP);
    gateway.reset_histograms(RESET_WAIT)?;
    let (start, _) = mark(&mut gateway, farm_pid, &mut tp)?;
    let mut last = start.clone();
    // The last mark that saw new rows: a stall shows as a long quiet.
    let mut rows_seen = (start.at, start.rows);
    let mut quiet = |now: &Mark| {
        if now.rows > rows_seen.1 {
            rows_seen = (now.at, now.rows);
        }
        now.at.duration_since(rows_seen.0).as_secs_f64()
    };
    for second in 1..=args.seconds {
        let target = start.at + Duration::from_secs(second);
        std::thread::sleep(target.saturating_duration_since(Instant::now()));
        let (now, scrape) = mark(&mut gateway, farm_pid, &mut tp)?;
        progress(second, args.seconds, &last, &now, scrape.as_ref());
        report.longest_quiet_s = report.longest_quiet_s.max(quiet(&now));
        last = now;
    }
    let (end, scrape) = mark(&mut gateway, farm_pid, &mut tp)?;
    report.longest_quiet_s = report.longest_quiet_s.max(quiet(&end));
    let millrace_pid = gateway.pid();
    report.millrace_peak_rss_kib = procs::peak_rss_kib(millrace_pid).unwrap_or(0);
    report.farm_peak_rss_kib = procs::peak_rss_kib(farm_pid).unwrap_or(0);
    if let Some(s) = &scrape {
        report.stages = StageQuantiles::from_scrape(s);
        report.reader_timeouts = s.counter("millrace_timeouts_total");
        report.reader_reconnects = s.counter("millrace_reconnects_total");
    }
    let (code, lines) = gateway.stop(STOP_WAIT)?;
    report.millrace_exit_code = code;
    report.durable_seq = children::durable_seq(&lines);
    report.window(&start, &end);
    // Every acknowledged row has been recorded (the chaser's reply comes
    // after the stand-in processed the update); unacknowledged ones are lost.
    let verdict = tp.finish(report.durable_seq.unwrap_or(0), STOP_WAIT)?;
    report.verification(&verdict);
    if args.dir.is_some() {
        report.hgrm_dir = Some(dir.join("hgrm"));
        match plot::write_svg(&dir.join("hgrm"), &report::STAGES) {
            Ok(n) => println!(
                "bench: latency plot of {n} stages in {}",
                dir.join("hgrm/latency.svg").display()
            ),
            Err(e) => report.notes.push(format!("latency plot: {e}")),
        }
    }
    match StageQuantiles::from_hgrm_dir(&dir.join("hgrm")) {
        Some(stages) => report.stages = stages,
        None => report
            .notes
            .push("no .hgrm files: stage percentiles from the last scrape".into()),
    }
    if report.durable_seq.is_none() {
        report.notes.push(format!(
            "millrace did not print its durable seq:\n{}",
            lines.join("\n")
        ));
    }
    Ok(())
}

fn progress(second: u64, seconds: u64, last: &Mark, now: &Mark, scrape: Option<&Scrape>) {
    let dt = now.at.duration_since(last.at).as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / dt;
    let p99 = scrape
        .and_then(|s| s.stage_ms("end_to_end", "0.99"))
        .unwrap_or(f64::NAN);
    let cpu = (now.millrace_cpu_s - last.millrace_cpu_s) / dt * 100.0;
    let filled = (second * 20 / seconds.max(1)) as usize;
    println!(
        "[{:<20}] {second:>4}s polled {:>10.0}/s  responses {:>8.0}/s  delivered {:>10.0}/s  \
         e2e p99 {p99:>7.2} ms  millrace cpu {cpu:>4.0}%",
        "#".repeat(filled),
        rate(last.samples, now.samples),
        rate(last.responses, now.responses),
        rate(last.rows, now.rows),
    );
}

fn measure_baseline(
    args: &BenchArgs,
    dir: &Path,
    seconds: f64,
    farm_pid: u32,
) -> Result<BaselineResult, String> {
    let capacity = seq_capacity(args, seconds);
    let mut tp = StandIn::start(args.protocol, args.devices, args.tags_per_device, capacity)?;
    let standin_pid = tp.pid();
    println!(
        "bench: tokio-modbus baseline for {seconds} s, stand-in pid {standin_pid} on {}",
        tp.addr
    );
    let farm_cpu_before = procs::cpu_seconds(farm_pid).unwrap_or(f64::NAN);
    let standin_cpu_before = procs::cpu_seconds(standin_pid).unwrap_or(f64::NAN);
    let line = children::run_baseline(&dir.join("bench.toml"), seconds, tp.addr)?;
    let farm_cpu_s = procs::cpu_seconds(farm_pid).unwrap_or(f64::NAN) - farm_cpu_before;
    let standin_cpu_s = procs::cpu_seconds(standin_pid).unwrap_or(f64::NAN) - standin_cpu_before;
    let verdict = tp.finish(line.published, STOP_WAIT)?;
    Ok(BaselineResult::new(
        &line,
        &verdict,
        farm_cpu_s,
        standin_cpu_s,
    ))
}

/// The bench's directory: the given one, kept, or a temporary one removed
/// on drop.
struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    fn new(given: Option<PathBuf>) -> Result<WorkDir, String> {
        if let Some(path) = given {
            std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            return Ok(WorkDir {
                path,
                remove: false,
            });
        }
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let path = base.join(format!("millrace-bench-{}-{attempt}", std::process::id()));
            if std::fs::create_dir(&path).is_ok() {
                return Ok(WorkDir { path, remove: true });
            }
        }
        Err(format!("cannot create a directory in {}", base.display()))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn bench_args(more: &[&str]) -> BenchArgs {
        let base = [
            "millrace-loadgen",
            "bench",
            "--seconds",
            "1",
            "--devices",
            "7",
        ];
        let args = [&base[..], &["--tags-per-device", "10"], more].concat();
        match crate::Cli::try_parse_from(args) {
            Ok(crate::Cli {
                command: crate::Command::Bench(args),
            }) => args,
            Ok(_) => panic!("not bench"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn units_per_connection_lays_the_farm_out_and_is_modbus_only() {
        assert_eq!(layout(&bench_args(&[])).unwrap().port_count(), 7);
        let shared = layout(&bench_args(&["--units-per-connection", "3"])).unwrap();
        assert_eq!((shared.units_per_port(), shared.port_count()), (3, 3));
        let s7 = ["--protocol", "s7", "--units-per-connection", "2"];
        assert!(layout(&bench_args(&s7))
            .unwrap_err()
            .contains("Modbus only"));
        let too_many = ["--units-per-connection", "248"];
        assert!(layout(&bench_args(&too_many))
            .unwrap_err()
            .contains("1..=247"));
        let mut report = Report::new(FarmProtocol::Modbus, 7, 10, 100);
        assert!(report.json().contains("\"units_per_connection\": 1,"));
        report.units_per_connection = 3;
        assert!(report.json().contains("\"units_per_connection\": 3,"));
        assert!(report.text().contains("units_per_connection 3"));
    }
}
