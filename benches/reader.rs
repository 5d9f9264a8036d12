//! Reader throughput against the farm: responses/s and samples/s on one
//! pinned reader core (core 1), the farm's event loop and the ring's
//! consumer on the other core, io_uring and epoll side by side in the same
//! run. Each response carries 125 registers (125 samples).
//!
//! `cargo bench --bench reader -- --measurement-time 3`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use millrace::config::{Area, Backend, DataType, DeviceConfig, Protocol, TagConfig, WordOrder};
use millrace::farm::{Farm, FarmOptions};
use millrace::reader::{DeviceSpec, Reader, ReaderOptions};
use millrace::{ring, TagId};

const DEVICES: u32 = 64;
const REQUESTS_PER_CYCLE: u16 = 8;
const REGISTERS: u16 = 125;
const RESPONSES_PER_ITER: u64 = 1_000;

fn device(port: u16) -> DeviceConfig {
    let tags = (0..REQUESTS_PER_CYCLE * REGISTERS)
        .map(|a| TagConfig {
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
    DeviceConfig {
        name: format!("bench{port}"),
        protocol: Protocol::ModbusTcp,
        address: format!("127.0.0.1:{port}"),
        unit_id: 1,
        poll_interval: Duration::from_micros(500),
        timeout: Duration::from_secs(5),
        max_registers: REGISTERS,
        max_bits: 2000,
        max_hole: 0,
        max_inflight: u32::from(REQUESTS_PER_CYCLE),
        tags,
    }
}

fn bench_backend(c: &mut Criterion, backend: Backend, name: &str) {
    let farm = Farm::start(FarmOptions {
        devices: DEVICES,
        register_count: 2000,
        ..Default::default()
    })
    .expect("farm");
    let specs: Vec<DeviceSpec> = (0..DEVICES as usize)
        .map(|i| DeviceSpec {
            config: device(farm.ports()[i]),
            first_tag: TagId(i as u32 * u32::from(REQUESTS_PER_CYCLE * REGISTERS)),
        })
        .collect();
    let (producer, mut consumer) = ring::channel(1 << 20);
    let stop = Arc::new(AtomicBool::new(false));
    let drain_stop = Arc::clone(&stop);
    let drain = std::thread::spawn(move || {
        let _ = ring::pin_current_thread(0);
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
        core: Some(1),
        name: format!("bench-{name}"),
        ..Default::default()
    };
    let reader = Reader::spawn(specs, producer, options).expect("reader");
    let stats = Arc::clone(reader.stats());
    // Warm up: every device connected and answering.
    let started = Instant::now();
    while stats.snapshot().responses < 10_000 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut group = c.benchmark_group("reader");
    group.throughput(Throughput::Elements(RESPONSES_PER_ITER));
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
    group.finish();
    let before = stats.snapshot();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let after = stats.snapshot();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "reader/{name}: {:.0} responses/s, {:.0} samples/s, {} overruns, {} skipped polls, \
         farm cpu {:?}",
        (after.responses - before.responses) as f64 / secs,
        (after.samples - before.samples) as f64 / secs,
        after.overruns - before.overruns,
        after.polls_skipped - before.polls_skipped,
        Duration::from_nanos(farm.counters().cpu_ns),
    );
    reader.stop().expect("reader stops");
    stop.store(true, Ordering::Relaxed);
    let _ = drain.join();
    drop(farm);
}

fn reader(c: &mut Criterion) {
    bench_backend(c, Backend::IoUring, "io_uring");
    bench_backend(c, Backend::Epoll, "epoll");
}

criterion_group!(benches, reader);
criterion_main!(benches);
