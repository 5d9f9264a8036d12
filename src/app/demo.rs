//! `millrace demo`: the main job on embedded defaults with no set-up. An
//! in-process simulated farm, the tickerplant stand-in on a free loopback
//! port, a WAL in a temporary directory, and the real pipeline between them.
//! While it runs it prints live progress; at the end a report with the
//! throughput, the per-stage percentiles, the rows the stand-in received,
//! and the verified loss: every durable sample checked by seq at the
//! stand-in, and every value checked against the farm's formula.
//! `--protocol s7` runs S7 devices (every S7 type, checked the same way),
//! `--protocol mixed` half Modbus, half S7, `--protocol ethernet-ip`
//! simulated Logix controllers (every CIP type, checked the same way),
//! `--protocol opcua` OPC UA servers whose every variable changes once per
//! poll interval, subscribed at that interval (every change checked, and
//! none missing between two delivered ones).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::error::{DemoError, StopError};
use super::runtime::{write_hgrm_files, Runtime, RuntimeOptions, Snapshot};
use crate::config::{CipType, S7Type};
use crate::farm::verify::Verifier;
use crate::farm::{self, EmitOptions, Farm, FarmOptions, FarmProtocol, S7EmitOptions};
use crate::kdb::{Tickerplant, TickerplantOptions};
use crate::metrics::{summary_ms, Stage, StageHistograms};

pub struct DemoArgs {
    pub protocol: FarmProtocol,
    pub seconds: u64,
    pub devices: u32,
    pub tags_per_device: u32,
    pub poll_interval: Duration,
    /// Keep the WAL and the percentile files here instead of a temporary dir.
    pub keep_dir: Option<PathBuf>,
}

/// Samples the seq record can hold: far above what the demo produces.
const SEQ_CAPACITY: u64 = 4_000_000_000;

pub fn run(args: &DemoArgs) -> Result<bool, DemoError> {
    let temp;
    let dir = match &args.keep_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempdir()?;
            temp.0.clone()
        }
    };
    let options = FarmOptions {
        devices: args.devices,
        protocol: args.protocol,
        register_count: args.tags_per_device.clamp(1, 65536),
        opcua: farm::OpcuaFarmOptions {
            change_interval: args.poll_interval,
            ..farm::OpcuaFarmOptions::default()
        },
        opcua_tags: args.tags_per_device,
        ..FarmOptions::default()
    };
    if args.protocol.has_s7() {
        options
            .s7
            .holds_layout(args.tags_per_device as usize)
            .map_err(|problem| DemoError::S7Layout { problem })?;
    }
    let farm = Farm::start(options.clone()).map_err(|source| DemoError::Farm { source })?;
    let capacity = expected_samples(args).clamp(1 << 20, SEQ_CAPACITY);
    let recorder = Arc::new(Mutex::new(Verifier::for_farm(
        args.protocol,
        args.devices,
        args.tags_per_device,
        capacity,
    )));
    let tp_options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", tp_options)
        .map_err(|source| DemoError::StandIn { source })?;
    let config_path = dir.join("demo.toml");
    let emit = EmitOptions {
        tags_per_device: args.tags_per_device,
        wal_dir: dir.join("wal"),
        sink_address: tp.local_addr().to_string(),
        poll_interval: crate::config::format_duration(args.poll_interval),
        reader_threads: 1,
    };
    let s7 = S7EmitOptions {
        rack: options.s7.rack,
        slot: options.s7.slot,
        pdu_size: options.s7.pdu_size,
    };
    farm::emit_farm_config(&config_path, farm.ports(), args.protocol, &emit, &s7)
        .map_err(|source| DemoError::EmitConfig { source })?;
    let config = crate::config::load(&config_path)?;
    println!(
        "millrace demo: {} {} devices x {} tags every {}, stand-in on {}, WAL in {}",
        args.devices,
        args.protocol,
        args.tags_per_device,
        crate::config::format_duration(args.poll_interval),
        tp.local_addr(),
        config.wal.dir.display()
    );
    let options = RuntimeOptions {
        metrics_listen: Some(None),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::start(&config, options)?;
    let started = Instant::now();
    let quiet_s = progress(&runtime, args.seconds, started);
    // Rows that stop once they flowed: three poll intervals, at least 3 s.
    let bound_s = (3.0 * args.poll_interval.as_secs_f64()).max(3.0);
    let stall = (quiet_s > bound_s).then_some((quiet_s, bound_s));
    let histograms = Arc::clone(runtime.histograms());
    let (snap, errors) = runtime.stop();
    let elapsed = started.elapsed();
    let rows = tp.stop();
    let _ = farm.stop();
    let recorder = recorder.lock().map_err(|_| DemoError::RecorderPoisoned)?;
    let hgrm = write_hgrm_files(&dir.join("hgrm"), &histograms).ok();
    let ok = report(
        &snap,
        &errors,
        elapsed,
        &rows,
        &recorder,
        &histograms,
        stall,
    );
    if let (Some(_), Some(files)) = (&args.keep_dir, hgrm) {
        println!("percentile files: {}", files.len());
    }
    Ok(ok)
}

fn expected_samples(args: &DemoArgs) -> u64 {
    let per_s =
        args.devices as f64 * args.tags_per_device as f64 / args.poll_interval.as_secs_f64();
    (per_s * (args.seconds as f64 + 5.0) * 1.5) as u64
}

/// Prints a line a second; returns the longest stretch, in seconds, with no
/// sample delivered after the first ones were.
fn progress(runtime: &Runtime, seconds: u64, started: Instant) -> f64 {
    let mut last = runtime.snapshot();
    let mut last_at = Instant::now();
    let mut delivered_at: Option<Instant> = None;
    let mut longest_quiet_s = 0f64;
    while started.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(seconds)));
        let now = runtime.snapshot();
        let dt = last_at.elapsed().as_secs_f64();
        let p99 = runtime
            .histograms()
            .snapshot(Stage::EndToEnd)
            .value_at_quantile(0.99) as f64
            / 1e6;
        println!(
            "[{:>4.0}s] polled {:>10.0} samples/s  delivered {:>10.0} samples/s  WAL lag {:>8}  \
             e2e p99 {:>7.2} ms  timeouts {}  reconnects {}",
            started.elapsed().as_secs_f64(),
            (now.readers.samples - last.readers.samples) as f64 / dt,
            (now.acked_samples - last.acked_samples) as f64 / dt,
            now.lag_samples,
            p99,
            now.readers.timeouts,
            now.readers.reconnects,
        );
        if now.acked_samples > last.acked_samples {
            delivered_at = Some(Instant::now());
        } else if let Some(at) = delivered_at {
            longest_quiet_s = longest_quiet_s.max(at.elapsed().as_secs_f64());
        }
        last = now;
        last_at = Instant::now();
        if runtime.writer_failed() {
            println!("the WAL writer stopped on a fatal error");
            return longest_quiet_s;
        }
        if let Some((name, reason)) = runtime.failed_sink() {
            println!("sink {name} stopped: {reason}");
            return longest_quiet_s;
        }
    }
    longest_quiet_s
}

fn report(
    snap: &Snapshot,
    errors: &[StopError],
    elapsed: Duration,
    rows: &[(String, u64)],
    recorder: &Verifier,
    histograms: &StageHistograms,
    stall: Option<(f64, f64)>,
) -> bool {
    let secs = elapsed.as_secs_f64();
    println!("\n== millrace demo report ==");
    println!("run time               {secs:.1} s");
    println!(
        "responses              {} ({:.0}/s)",
        snap.readers.responses,
        snap.readers.responses as f64 / secs
    );
    println!(
        "samples polled         {} ({:.0}/s)",
        snap.readers.samples,
        snap.readers.samples as f64 / secs
    );
    println!("samples durable (WAL)  {}", snap.durable_seq);
    println!(
        "samples acknowledged   {} ({:.0}/s)",
        snap.acked_samples,
        snap.acked_samples as f64 / secs
    );
    println!(
        "timeouts {}  reconnects {}  malformed {}  overruns {}",
        snap.readers.timeouts,
        snap.readers.reconnects,
        snap.readers.malformed,
        snap.readers.overruns
    );
    println!("\nlatency per stage (ms)     p50      p90      p99    p99.9      max    count");
    for stage in Stage::ALL {
        let h = histograms.snapshot(stage);
        if h.is_empty() {
            println!("{:<22} not recorded", stage.name());
            continue;
        }
        let [p50, p90, p99, p999, max] = summary_ms(&h);
        println!(
            "{:<22} {p50:>8.3} {p90:>8.3} {p99:>8.3} {p999:>8.3} {max:>8.3} {:>8}",
            stage.name(),
            h.len()
        );
    }
    println!("\nrows received by the stand-in:");
    for (table, n) in rows {
        println!("rows {table} {n}");
    }
    let lost = recorder.lost(snap.durable_seq);
    let beyond = recorder.out_of_range_seqs();
    println!("\nverification:");
    println!("  durable samples missing at the stand-in   {lost}");
    println!(
        "  duplicates (removed by seq)               {}",
        recorder.duplicate_seqs()
    );
    println!(
        "  same answer twice after dedup by seq      {}",
        recorder.duplicates_after_dedup
    );
    println!(
        "  value mismatches against the farm         {}",
        recorder.mismatches
    );
    println!(
        "  bad-quality rows (no value to check)      {}",
        recorder.bad_quality_rows
    );
    if recorder.text_rows_unchecked > 0 {
        println!(
            "  text rows without their text (unchecked)  {}",
            recorder.text_rows_unchecked
        );
    }
    print_s7_types(recorder);
    print_enip_types(recorder);
    print_opcua_types(recorder);
    for e in errors {
        println!("  error: {e}");
    }
    if let Some((quiet_s, bound_s)) = stall {
        println!(
            "  stalled: no sample delivered for {quiet_s:.0} s after the first ones \
             (the bound is {bound_s:.0} s: three poll intervals, at least 3 s)"
        );
    }
    let ok = lost == 0
        && stall.is_none()
        && beyond == 0
        && recorder.mismatches == 0
        && recorder.duplicates_after_dedup == 0
        && recorder.opcua_changes_missed == 0
        && recorder.opcua_silent_tags() == 0
        && recorder.unparsed_syms == 0
        && errors.is_empty();
    println!(
        "verified loss: {lost} {}",
        if ok { "(OK)" } else { "(FAILED)" }
    );
    ok
}

/// S7 values checked per type, when there were any.
fn print_s7_types(recorder: &Verifier) {
    if recorder.s7_checked_by_type.iter().all(|&n| n == 0) {
        return;
    }
    print!("  S7 values checked by type               ");
    for ((name, _), n) in S7Type::NAMES.iter().zip(recorder.s7_checked_by_type) {
        print!(" {name} {n}");
    }
    println!();
}

/// EtherNet/IP values checked per type, when there were any.
fn print_enip_types(recorder: &Verifier) {
    if recorder.enip_checked_by_type.iter().all(|&n| n == 0) {
        return;
    }
    print!("  CIP values checked by type              ");
    for ((name, _), n) in CipType::NAMES.iter().zip(recorder.enip_checked_by_type) {
        print!(" {name} {n}");
    }
    println!();
}

fn print_opcua_types(recorder: &Verifier) {
    if recorder.opcua_checked_by_type.iter().all(|&n| n == 0) {
        return;
    }
    println!(
        "  OPC UA changes missed between two rows   {}",
        recorder.opcua_changes_missed
    );
    println!(
        "  OPC UA tags of which nothing arrived     {}",
        recorder.opcua_silent_tags()
    );
    print!("  OPC UA values checked by type           ");
    for (t, n) in farm::opcua::values::TYPES
        .iter()
        .zip(recorder.opcua_checked_by_type)
    {
        print!(" {} {n}", t.config_type());
    }
    println!();
}

/// A temporary directory removed on drop (no extra dependency for one use).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tempdir() -> Result<TempDir, DemoError> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let path = base.join(format!("millrace-demo-{}-{attempt}", std::process::id()));
        if std::fs::create_dir(&path).is_ok() {
            return Ok(TempDir(path));
        }
    }
    Err(DemoError::TempDir { base })
}
