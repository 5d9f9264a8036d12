//! Reader throughput against the farm: responses/s and samples/s on one
//! pinned reader core (core 1), the farm's event loop (pinned to core 0 with
//! `taskset` once it runs) and the ring's consumer on the other core,
//! io_uring and epoll side by side in the same run. Each response carries
//! 125 registers (125 samples).
//!
//! After criterion's figure, a steady window of `WINDOW` prints what the
//! issue asks for: responses/s and samples/s (wall), the reader thread's CPU
//! time over the window (from /proc/self/task/TID/schedstat), and responses
//! per reader CPU-second, which a noisy shared machine does not inflate the
//! way it inflates wall time, and responses per wake-up (how well a driver
//! batches). Two workloads: `SATURATED` (the reader never idle; criterion
//! measures this one) and `PLANT` (1,000 devices at 10 ms, the reader mostly
//! waiting: its CPU per response is what an end-to-end run pays). The
//! summaries at the end compare the drivers per workload.
//!
//! `cargo bench --bench reader -- --measurement-time 3 --warm-up-time 1`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use millrace::config::{Area, Backend, DataType, DeviceConfig, ModbusTag, Protocol, WordOrder};
use millrace::farm::{Farm, FarmOptions};
use millrace::reader::{DeviceSpec, Reader, ReaderOptions};
use millrace::{ring, TagId};

/// What the reader is asked to do.
#[derive(Clone, Copy)]
struct Workload {
    devices: u32,
    /// Read requests of `REGISTERS` registers per poll cycle, all in flight.
    requests_per_cycle: u16,
    poll_interval: Duration,
}

/// Saturation: 8 requests in flight per device and a 500 us cycle, so the
/// reader is never idle (the responses/s per reader core).
const SATURATED: Workload = Workload {
    devices: 64,
    requests_per_cycle: 8,
    poll_interval: Duration::from_micros(500),
};

/// A plant: 1,000 devices, one 125-register request each every 10 ms
/// (100,000 responses/s offered, the end-to-end bench's heaviest case). The
/// reader is mostly waiting; what counts is its CPU per response.
const PLANT: Workload = Workload {
    devices: 1_000,
    requests_per_cycle: 1,
    poll_interval: Duration::from_millis(10),
};
const REGISTERS: u16 = 125;
const RESPONSES_PER_ITER: u64 = 1_000;
const WINDOW: Duration = Duration::from_secs(3);
const READER_CORE: usize = 1;
const FARM_CORE: usize = 0;

/// The thread id of this process's thread named `name` (as /proc shows it:
/// at most 15 bytes).
fn thread_id(name: &str) -> Option<String> {
    let name = &name[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .find_map(|entry| {
            let entry = entry.ok()?;
            let comm = std::fs::read_to_string(entry.path().join("comm")).ok()?;
            (comm.trim_end() == name).then(|| entry.file_name().to_string_lossy().into_owned())
        })
}

/// CPU time a thread of this process has run (ns resolution).
fn thread_cpu(tid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat")).ok()?;
    let ns = text.split(' ').next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Pins another thread of this process with taskset (no `unsafe` here).
fn pin_thread(tid: &str, core: usize) {
    let status = std::process::Command::new("taskset")
        .args(["-pc", &core.to_string(), tid])
        .stdout(std::process::Stdio::null())
        .status();
    if !status.as_ref().is_ok_and(|s| s.success()) {
        eprintln!("reader bench: could not pin thread {tid} to core {core}: {status:?}");
    }
}

/// Kernel events the reader thread counts over the steady window, with
/// `MILLRACE_READER_PERF=1` (needs `perf` and tracepoint access): system
/// calls, io_uring completions, context switches.
const PERF_EVENTS: &str =
    "raw_syscalls:sys_enter,io_uring:io_uring_complete,sched:sched_switch,cpu-clock";

fn perf_stat(tid: &str) -> Option<std::process::Child> {
    if std::env::var("MILLRACE_READER_PERF").ok().as_deref() != Some("1") {
        return None;
    }
    let seconds = format!("{}", WINDOW.as_secs_f64());
    std::process::Command::new("perf")
        .args([
            "stat",
            "-x",
            ",",
            "-e",
            PERF_EVENTS,
            "-t",
            tid,
            "--",
            "sleep",
            &seconds,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| eprintln!("reader bench: perf stat: {e}"))
        .ok()
}

/// Prints each event per response (`perf stat -x ,`: value,unit,event,...).
fn report_perf(perf: std::process::Child, responses: f64) {
    let Ok(output) = perf.wait_with_output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stderr).lines() {
        let fields: Vec<&str> = line.split(',').collect();
        if let [value, unit, event, ..] = fields[..] {
            if let Ok(value) = value.parse::<f64>() {
                let per = value / responses.max(1.0);
                println!("    perf: {event}: {value:.0} {unit} = {per:.3} per response");
            }
        }
    }
}

/// What one driver did over the steady window.
struct Figures {
    name: String,
    responses_per_s: f64,
    samples_per_s: f64,
    reader_busy: f64,
    responses_per_cpu_s: f64,
    responses_per_wakeup: f64,
}

fn device(port: u16, w: Workload) -> DeviceConfig {
    let tags = (0..w.requests_per_cycle * REGISTERS)
        .map(|a| ModbusTag {
            name: format!("t{a}"),
            area: Area::Holding,
            address: a,
            data_type: DataType::Uint16,
            order: WordOrder::Abcd,
            bit: None,
            length: 0,
            scale: 1.0,
            offset: 0.0,
        })
        .collect();
    {
        let mut d = DeviceConfig::modbus(
            &format!("bench{port}"),
            Protocol::ModbusTcp,
            &format!("127.0.0.1:{port}"),
            1,
            w.poll_interval,
            tags,
        );
        d.timeout = Duration::from_secs(5);
        d.max_inflight = u32::from(w.requests_per_cycle);
        let m = d.modbus_part_mut().expect("a Modbus device");
        m.max_registers = REGISTERS;
        m.max_bits = 2000;
        m.max_hole = 0;
        d
    }
}

/// Runs `w` on one driver; criterion measures only the saturated workload.
fn bench_backend(c: &mut Criterion, backend: Backend, name: &str, w: Workload) -> Figures {
    let farm = Farm::start(FarmOptions {
        devices: w.devices,
        register_count: 2000,
        ..Default::default()
    })
    .expect("farm");
    let specs: Vec<DeviceSpec> = (0..w.devices as usize)
        .map(|i| {
            DeviceSpec::alone(
                device(farm.ports()[i], w),
                TagId(i as u32 * u32::from(w.requests_per_cycle * REGISTERS)),
            )
        })
        .collect();
    let (producer, mut consumer) = ring::channel(1 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let drain_stop = Arc::clone(&stop);
    let drain = std::thread::spawn(move || {
        let _ = ring::pin_current_thread(FARM_CORE);
        while !drain_stop.load(Ordering::Relaxed) {
            let (a, b) = consumer.readable();
            let n = a.len() + b.len();
            consumer.release(n);
            if n == 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
    });
    let options = ReaderOptions {
        backend,
        core: Some(READER_CORE),
        name: format!("bench-{name}"),
        ..Default::default()
    };
    let reader = Reader::spawn(specs, producer, options).expect("reader");
    let stats = Arc::clone(reader.stats());
    // The farm's event loop must not share the reader's core.
    match thread_id("farm-0") {
        Some(tid) => pin_thread(&tid, FARM_CORE),
        None => eprintln!("reader bench: no farm-0 thread found to pin"),
    }
    let reader_tid = thread_id(&format!("bench-{name}")).expect("reader thread");
    // Warm up: every device connected and answering.
    let started = Instant::now();
    while stats.snapshot().responses < 10_000 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let label = format!("{name}, {} devices @ {:?}", w.devices, w.poll_interval);
    let saturated = w.requests_per_cycle == SATURATED.requests_per_cycle;
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Elements(RESPONSES_PER_ITER));
    if saturated {
        group.bench_function(format!("{name}/responses"), |b| {
            b.iter_custom(|iters| {
                let target = RESPONSES_PER_ITER * iters;
                let from = stats.snapshot().responses;
                let start = Instant::now();
                while stats.snapshot().responses - from < target {
                    std::hint::spin_loop();
                    std::thread::sleep(Duration::from_micros(100));
                }
                let elapsed = start.elapsed();
                let got = stats.snapshot().responses - from;
                // Scale to exactly `target` responses.
                elapsed.mul_f64(target as f64 / got as f64)
            })
        });
    }
    group.finish();
    let before = stats.snapshot();
    let cpu_before = thread_cpu(&reader_tid).unwrap_or_default();
    let farm_before = farm.counters().cpu_ns;
    let t0 = Instant::now();
    let perf = perf_stat(&reader_tid);
    std::thread::sleep(WINDOW);
    let after = stats.snapshot();
    let cpu = thread_cpu(&reader_tid).unwrap_or_default() - cpu_before;
    let farm_cpu = Duration::from_nanos(farm.counters().cpu_ns - farm_before);
    let secs = t0.elapsed().as_secs_f64();
    let responses = (after.responses - before.responses) as f64;
    let figures = Figures {
        name: label,
        responses_per_s: responses / secs,
        samples_per_s: (after.samples - before.samples) as f64 / secs,
        reader_busy: cpu.as_secs_f64() / secs,
        responses_per_cpu_s: responses / cpu.as_secs_f64().max(1e-9),
        responses_per_wakeup: responses / (after.wakeups - before.wakeups).max(1) as f64,
    };
    println!(
        "reader/{}: {:.0} responses/s, {:.0} samples/s (wall, {secs:.1} s window); reader \
         thread on CPU {:.0}% of it: {:.0} responses per reader CPU-second; {:.1} responses per \
         wake-up; {} overruns, {} skipped polls, farm event loop cpu {farm_cpu:.2?}",
        figures.name,
        figures.responses_per_s,
        figures.samples_per_s,
        figures.reader_busy * 100.0,
        figures.responses_per_cpu_s,
        figures.responses_per_wakeup,
        after.overruns - before.overruns,
        after.polls_skipped - before.polls_skipped,
    );
    if let Some(perf) = perf {
        report_perf(perf, responses);
    }
    reader.stop().expect("reader stops");
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    drop(farm);
    figures
}

fn summary(w: Workload, uring: &Figures, epoll: &Figures) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nreader summary ({} devices x {} requests of {REGISTERS} registers in flight every \
         {:?}; reader core {READER_CORE}, farm core {FARM_CORE}; load average {}):",
        w.devices,
        w.requests_per_cycle,
        w.poll_interval,
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:>36} {:>12} {:>12} {:>12} {:>22} {:>18}",
        "driver",
        "responses/s",
        "samples/s",
        "reader busy",
        "responses/reader-cpu-s",
        "responses/wake-up"
    );
    for f in [uring, epoll] {
        println!(
            "{:>36} {:>12.0} {:>12.0} {:>11.0}% {:>22.0} {:>18.1}",
            f.name,
            f.responses_per_s,
            f.samples_per_s,
            f.reader_busy * 100.0,
            f.responses_per_cpu_s,
            f.responses_per_wakeup
        );
    }
    println!(
        "io_uring / epoll: {:.2}x responses/s (wall), {:.2}x responses per reader CPU-second",
        uring.responses_per_s / epoll.responses_per_s.max(1.0),
        uring.responses_per_cpu_s / epoll.responses_per_cpu_s.max(1.0)
    );
}

/// `MILLRACE_READER_WORKLOAD=saturated` or `plant` runs only that one (to
/// attach `perf` to one workload); both by default.
fn reader(c: &mut Criterion) {
    let only = std::env::var("MILLRACE_READER_WORKLOAD").unwrap_or_default();
    for (name, w) in [("saturated", SATURATED), ("plant", PLANT)] {
        if !only.is_empty() && only != name {
            continue;
        }
        let uring = bench_backend(c, Backend::IoUring, "io_uring", w);
        let epoll = bench_backend(c, Backend::Epoll, "epoll", w);
        summary(w, &uring, &epoll);
    }
}

criterion_group!(benches, reader);
criterion_main!(benches);
