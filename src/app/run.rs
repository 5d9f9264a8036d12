//! `millrace run --config FILE`: the gateway until SIGINT/SIGTERM, then a
//! clean stop (stop polling, drain the rings, commit, deliver up to the
//! deadline, checkpoint) and exit 0. A fatal WAL error (a failed fdatasync)
//! or a sink that stopped on its own (a WAL frame that failed its checks, a
//! checkpoint that cannot be persisted) stops everything with exit 1: a
//! restart recovers from the last durable point. SIGUSR1 empties the stage
//! histograms (a benchmark starts its window with it, so connection set-up
//! is not in the percentiles).
//!
//! SIGHUP (`systemctl reload millrace`) reloads the configuration file: a
//! new one that does not load is refused with its file:line:col error in the
//! log and the running one keeps going; one that loads replaces the running
//! data path in place. Polling stops, what the rings hold is committed, the
//! sinks finish what is in flight (what they have not sent is durable and
//! the new sinks send it from their checkpoints), and the new configuration
//! starts on the same WAL, its names recorded from the WAL's next seq on
//! (tag_history.rs): no sample is lost or named by the other configuration.
//! The `[wal]` section cannot change this way (it is the WAL itself).

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::runtime::{write_hgrm_files, Runtime, RuntimeOptions};
use crate::config::Config;
use crate::metrics::{Exposition, Latency, Stage, StageHistograms};
use crate::pipeline::stats::get;
use crate::pipeline::{SinkExit, SinkStats, WriterStats};
use crate::reader::Stats;

const STATUS_EVERY: Duration = Duration::from_secs(10);
/// The main thread's turn when no signal comes: it looks at the writer and
/// the sinks (a failure stops the process within this) and at stalls. A
/// signal ends the wait at once (a byte on `signal_pipe`), so a stop or a
/// reload is not delayed by it; it used to be 100 ms, 10 wake-ups a second
/// on an idle gateway.
const MAIN_TICK: Duration = Duration::from_secs(1);
/// A sink that has durable samples and no acknowledgement for this long is
/// stalled (a healthy one acknowledges every batch within milliseconds).
const STALL_GRACE: Duration = Duration::from_secs(1);
/// Stalled this long: say so in the log (once per stall).
const STALL_LOG_AFTER: Duration = Duration::from_secs(5);

pub struct RunArgs {
    pub config: PathBuf,
    pub hgrm_dir: Option<PathBuf>,
}

/// The main thread's wait: readable when one of run's signals arrived
/// (signal-hook writes a byte from the handler, after the handler that
/// sets the signal's flag), or after `MAIN_TICK`.
fn signal_pipe() -> std::io::Result<UnixStream> {
    let (wait, wake) = UnixStream::pair()?;
    wait.set_read_timeout(Some(MAIN_TICK))?;
    wake.set_nonblocking(true)?;
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGUSR1,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::low_level::pipe::register(signal, wake.try_clone()?)?;
    }
    Ok(wait)
}

/// Returns the process exit code.
pub fn run(args: &RunArgs) -> u8 {
    let mut config = match crate::config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("{e}");
            return 1;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            tracing::error!("cannot install the signal handler: {e}");
            return 1;
        }
    }
    let reset_histograms = Arc::new(AtomicBool::new(false));
    let reload = Arc::new(AtomicBool::new(false));
    for (signal, flag) in [
        (signal_hook::consts::SIGUSR1, &reset_histograms),
        (signal_hook::consts::SIGHUP, &reload),
    ] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(flag)) {
            tracing::error!("cannot install the signal handler: {e}");
            return 1;
        }
    }
    let mut signal_wait = match signal_pipe() {
        Ok(wait) => wait,
        Err(e) => {
            tracing::error!("cannot install the signal handler: {e}");
            return 1;
        }
    };
    let mut runtime = match Runtime::start(&config, RuntimeOptions::default()) {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return 1;
        }
    };
    tracing::info!("{}", describe_recovery(&runtime.recovery));
    if let Some(addr) = runtime.metrics_addr() {
        tracing::info!("metrics on http://{addr}/metrics");
    }
    tracing::info!(
        "running {} devices, {} tags; SIGINT or SIGTERM stops, SIGHUP reloads {}",
        config.devices.len(),
        config.tag_count(),
        args.config.display()
    );
    let mut fatal = false;
    let mut last_status = Instant::now();
    let mut stalled_logged = vec![false; runtime.sink_stats().len()];
    while !stop.load(Ordering::Relaxed) {
        // A signal's byte or the tick; either way the flags are looked at.
        let _ = signal_wait.read(&mut [0u8; 64]);
        log_stalls(&runtime, &mut stalled_logged);
        if reset_histograms.swap(false, Ordering::Relaxed) {
            runtime.histograms().reset();
            tracing::info!("stage histograms reset (SIGUSR1)");
        }
        if reload.swap(false, Ordering::Relaxed) {
            runtime = match reload_config(&args.config, &config, runtime) {
                Some((runtime, new_config)) => {
                    if let Some(new_config) = new_config {
                        config = new_config;
                    }
                    stalled_logged = vec![false; runtime.sink_stats().len()];
                    runtime
                }
                // Nothing runs: everything acknowledged is durable, and
                // the supervisor's restart recovers from it.
                None => return 1,
            };
        }
        if runtime.writer_failed() {
            tracing::error!("the WAL writer stopped on a fatal error; stopping");
            fatal = true;
            break;
        }
        if let Some((name, reason)) = runtime.failed_sink() {
            tracing::error!(sink = %name, "sink {name} stopped: {reason}; stopping");
            fatal = true;
            break;
        }
        if last_status.elapsed() >= STATUS_EVERY {
            last_status = Instant::now();
            let s = runtime.snapshot();
            tracing::info!(
                "durable {} acked {} lag {} timeouts {} reconnects {} overruns {}",
                s.durable_seq,
                s.acked_samples,
                s.lag_samples,
                s.readers.timeouts,
                s.readers.reconnects,
                s.readers.overruns
            );
        }
    }
    tracing::info!("stopping");
    let histograms = Arc::clone(runtime.histograms());
    let (snap, errors) = runtime.stop();
    let hgrm_dir = args
        .hgrm_dir
        .clone()
        .unwrap_or_else(|| default_hgrm_dir(&config.wal.dir));
    match write_hgrm_files(&hgrm_dir, &histograms) {
        Ok(_) => tracing::info!("percentile files in {}", hgrm_dir.display()),
        Err(e) => tracing::warn!(
            "cannot write percentile files to {}: {e}",
            hgrm_dir.display()
        ),
    }
    tracing::info!(
        "stopped: durable seq {}, acknowledged by every sink {}, lag {}",
        snap.durable_seq,
        snap.acked_samples,
        snap.lag_samples
    );
    for e in &errors {
        tracing::error!("{e}");
    }
    if fatal || !errors.is_empty() {
        1
    } else {
        0
    }
}

/// What a reload left running: the new configuration's runtime with the
/// configuration, or the old one's (refused or rolled back) with `None`;
/// `None` when nothing runs any more.
type Reloaded = Option<(Runtime, Option<Config>)>;

/// SIGHUP: loads `path` again and, if it loads and may be applied, stops
/// `runtime` and starts the new configuration in its place. A new
/// configuration that fails to start (an address that does not resolve, a
/// metrics port taken) gives way to the old one again.
fn reload_config(path: &Path, running: &Config, runtime: Runtime) -> Reloaded {
    let new = match crate::config::load(path) {
        Ok(new) => new,
        Err(e) => {
            tracing::error!("reload refused, the running configuration stays: {e}");
            return Some((runtime, None));
        }
    };
    if new.wal != running.wal {
        tracing::error!(
            "reload refused, the running configuration stays: {}: the [wal] section changed; \
             it is the WAL itself and changes only with a restart",
            path.display()
        );
        return Some((runtime, None));
    }
    let started = Instant::now();
    // The metrics endpoint keeps the address it has when its setting did
    // not change (a port chosen by the system stays the one scrapers know).
    let metrics_listen = match new.metrics.listen == running.metrics.listen {
        true => Some(runtime.metrics_addr()),
        false => None,
    };
    let (_, errors) = runtime.stop_within(Duration::ZERO);
    let stopped = started.elapsed();
    for e in &errors {
        tracing::error!("while stopping for the reload: {e}");
    }
    let options = RuntimeOptions {
        metrics_listen,
        ..RuntimeOptions::default()
    };
    match Runtime::start(&new, options) {
        Ok(runtime) => {
            tracing::info!(
                "reloaded {}: {}; {} devices, {} tags; polling paused {:.0} ms (stop {:.0} ms, \
                 start {:.0} ms)",
                path.display(),
                describe_changes(running, &new),
                new.devices.len(),
                new.tag_count(),
                started.elapsed().as_secs_f64() * 1e3,
                stopped.as_secs_f64() * 1e3,
                (started.elapsed() - stopped).as_secs_f64() * 1e3
            );
            Some((runtime, Some(new)))
        }
        Err(e) => {
            tracing::error!(
                "the reloaded configuration did not start: {e}; starting the previous one again"
            );
            let options = RuntimeOptions {
                metrics_listen,
                ..RuntimeOptions::default()
            };
            match Runtime::start(running, options) {
                Ok(runtime) => Some((runtime, None)),
                Err(e) => {
                    tracing::error!("the previous configuration did not start again: {e}");
                    None
                }
            }
        }
    }
}

/// Devices added, removed and kept (by name) from `old` to `new`.
fn describe_changes(old: &Config, new: &Config) -> String {
    let names = |c: &Config| -> std::collections::BTreeSet<String> {
        c.devices.iter().map(|d| d.name.clone()).collect()
    };
    let (before, after) = (names(old), names(new));
    format!(
        "{} devices added, {} removed, {} kept (their tags as the file now says)",
        after.difference(&before).count(),
        before.difference(&after).count(),
        after.intersection(&before).count()
    )
}

/// Logs a sink that stopped getting acknowledgements while behind (kdb+
/// down, or up but not reading), once per stall, and when it recovers.
fn log_stalls(runtime: &Runtime, logged: &mut [bool]) {
    let durable = runtime.snapshot().durable_seq;
    for ((name, stats), logged) in runtime.sink_stats().iter().zip(logged.iter_mut()) {
        let stalled = stats.stalled_seconds(durable, STALL_LOG_AFTER);
        if stalled > 0.0 && !*logged {
            *logged = true;
            tracing::warn!(
                sink = %name,
                "sink {name}: STALLED: no acknowledgement from kdb+ for {stalled:.1}s, \
                 {} durable samples waiting (connected {})",
                stats.lag(durable),
                get(&stats.connected)
            );
        } else if stalled == 0.0 && *logged && stats.stalled_seconds(durable, STALL_GRACE) == 0.0 {
            *logged = false;
            tracing::info!(sink = %name, "sink {name}: acknowledging again");
        }
    }
}

/// `<wal dir>.hgrm/` beside the WAL directory: not inside it (the WAL owns
/// its directory), and found without a flag.
fn default_hgrm_dir(wal_dir: &Path) -> PathBuf {
    let mut name = wal_dir
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".hgrm");
    wal_dir.with_file_name(name)
}

/// The Prometheus exposition of every counter and stage histogram.
pub fn render_metrics(
    e: &mut Exposition<'_>,
    readers: &[Arc<Stats>],
    writer: &WriterStats,
    sinks: &[(String, Arc<SinkStats>)],
    histograms: &StageHistograms,
) {
    let mut r = crate::reader::Counters::default();
    let mut connected = 0;
    for s in readers {
        r.add(&s.snapshot());
        connected += s.connected.load(Ordering::Relaxed);
    }
    e.counter(
        "millrace_requests_total",
        "Modbus read requests sent.",
        r.requests,
    );
    e.counter(
        "millrace_frames_total",
        "Responses decoded (data or exception).",
        r.responses,
    );
    e.counter(
        "millrace_samples_total",
        "Samples published into the rings.",
        r.samples,
    );
    e.counter(
        "millrace_exception_samples_total",
        "Samples with an exception quality.",
        r.exception_samples,
    );
    e.counter(
        "millrace_timeouts_total",
        "Requests that timed out.",
        r.timeouts,
    );
    e.counter(
        "millrace_reconnects_total",
        "Device reconnection attempts.",
        r.reconnects,
    );
    e.counter(
        "millrace_disconnects_total",
        "Device connections that ended.",
        r.disconnects,
    );
    e.counter(
        "millrace_malformed_frames_total",
        "Responses that broke the protocol.",
        r.malformed,
    );
    e.counter(
        "millrace_overruns_total",
        "Polls delayed because a ring was full.",
        r.overruns,
    );
    e.counter(
        "millrace_polls_skipped_total",
        "Poll slots skipped.",
        r.polls_skipped,
    );
    e.counter(
        "millrace_reader_wakeups_total",
        "Reader event-loop turns (responses per wake-up: how well polls and answers batch).",
        r.wakeups,
    );
    e.counter(
        "millrace_wall_clock_steps_back_total",
        "Backwards wall-clock steps (sample time stayed on the monotonic clock).",
        crate::reader::clock::wall_steps_back_total(),
    );
    e.gauge(
        "millrace_devices_connected",
        "Devices connected now.",
        connected,
    );
    // Per device (published by the readers about once a second): what the
    // dashboard's top-N panels rank.
    let per_device = |total: fn(&crate::reader::DeviceStats) -> u64| -> Vec<(&str, u64)> {
        readers
            .iter()
            .filter_map(|s| s.devices.get())
            .flatten()
            .map(|d| (d.name.as_str(), total(d)))
            .collect()
    };
    e.counter_family(
        "millrace_device_errors_total",
        "Per device: requests that timed out, malformed answers, failed connects and \
         exception samples.",
        "device",
        &per_device(|d| d.errors.load(Ordering::Relaxed)),
    );
    e.counter_family(
        "millrace_device_reconnects_total",
        "Per device: reconnection attempts.",
        "device",
        &per_device(|d| d.reconnects.load(Ordering::Relaxed)),
    );
    e.counter(
        "millrace_wal_samples_total",
        "Samples appended to the WAL.",
        get(&writer.samples_appended),
    );
    e.counter(
        "millrace_wal_bytes_total",
        "Bytes appended to the WAL.",
        get(&writer.wal_bytes),
    );
    e.counter(
        "millrace_wal_commits_total",
        "WAL group commits.",
        get(&writer.commits),
    );
    e.counter(
        "millrace_wal_full_waits_total",
        "Drains refused: WAL full (block).",
        get(&writer.full_waits),
    );
    e.counter(
        "millrace_wal_dropped_samples_total",
        "Samples dropped (drop_oldest).",
        get(&writer.dropped_samples),
    );
    e.gauge(
        "millrace_wal_durable_seq",
        "Durable sequence number.",
        get(&writer.durable_seq),
    );
    let durable = get(&writer.durable_seq);
    let per_sink_count = |f: &dyn Fn(&SinkStats) -> u64| -> Vec<(&str, u64)> {
        sinks.iter().map(|(n, s)| (n.as_str(), f(s))).collect()
    };
    let per_sink = |f: &dyn Fn(&SinkStats) -> f64| -> Vec<(&str, f64)> {
        sinks.iter().map(|(n, s)| (n.as_str(), f(s))).collect()
    };
    e.counter_family(
        "millrace_sink_acked_samples_total",
        "Samples acknowledged by kdb+.",
        "sink",
        &per_sink_count(&|s| get(&s.acked_samples)),
    );
    e.gauge_family(
        "millrace_sink_lag_samples",
        "Durable samples not yet acknowledged.",
        "sink",
        &per_sink(&|s| s.lag(durable) as f64),
    );
    e.gauge_family(
        "millrace_sink_stalled_seconds",
        "Seconds without an acknowledgement while behind (0: keeping up).",
        "sink",
        &per_sink(&|s| s.stalled_seconds(durable, STALL_GRACE)),
    );
    e.counter_family(
        "millrace_sink_reconnects_total",
        "Sink reconnects.",
        "sink",
        &per_sink_count(&|s| get(&s.reconnects)),
    );
    e.gauge_family(
        "millrace_sink_connected",
        "1 while connected to kdb+.",
        "sink",
        &per_sink(&|s| get(&s.connected) as f64),
    );
    let stages: Vec<Latency<'_>> = Stage::ALL
        .iter()
        .map(|&stage| histograms.read(stage, |h, sum_ns| Latency::of(stage.name(), h, sum_ns)))
        .collect();
    e.latency_histograms(
        "millrace_stage_latency_seconds",
        "Latency per pipeline stage.",
        "stage",
        &stages,
    );
    e.latency_quantiles(
        "millrace_stage_latency_quantile_seconds",
        "Exact latency quantiles per pipeline stage since start (or SIGUSR1).",
        "stage",
        &stages,
    );
}

/// `millrace_sink_failed`: 1 once a sink has stopped on its own. Separate
/// from `render_metrics`, whose inputs (counters) other reports share.
pub fn render_sink_failures(e: &mut Exposition<'_>, exits: &[(String, SinkExit)]) {
    let failed: Vec<(&str, f64)> = exits
        .iter()
        .map(|(name, exit)| (name.as_str(), if exit.get().is_some() { 1.0 } else { 0.0 }))
        .collect();
    e.gauge_family(
        "millrace_sink_failed",
        "1 once the sink has stopped on its own (the process then stops).",
        "sink",
        &failed,
    );
}

/// One paragraph on what recovery found and did, for the log.
pub fn describe_recovery(r: &crate::wal::RecoveryReport) -> String {
    let mut text = format!(
        "wal recovered: {} segments, {} frames scanned, next seq {}",
        r.segments, r.frames_scanned, r.next_seq
    );
    if let Some(cut) = &r.tail_cut {
        text.push_str(&format!(
            "; cut a torn tail of {} bytes ({} frames) at offset {} of {}",
            cut.bytes_cut,
            cut.frames_cut,
            cut.offset,
            cut.segment.display()
        ));
    }
    for aside in &r.set_aside {
        text.push_str(&format!(
            "; SET ASIDE {} -> {} (offset {}: {})",
            aside.path.display(),
            aside.moved_to.display(),
            aside.offset,
            aside.reason
        ));
    }
    for (name, seq) in &r.cursors {
        text.push_str(&format!("; cursor {name} at {seq}"));
    }
    text
}
