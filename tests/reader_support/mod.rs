//! Shared by the reader tests: device and tag builders, running a reader
//! over a shard until a condition holds (draining its ring in the test
//! thread), and the peer Python. Every wait is bounded.
#![allow(dead_code)]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use millrace::config::{Area, Backend, DataType, DeviceConfig, ModbusTag, Protocol, WordOrder};
use millrace::kdb::backoff::Backoff;
use millrace::reader::{Counters, DeviceSpec, Reader, ReaderOptions};
use millrace::ring;
use millrace::{Sample, TagId};

/// Both drivers; every behaviour test runs once per driver. io_uring is
/// not optional here: if it cannot be set up, its run fails.
pub const BACKENDS: [Backend; 2] = [Backend::Epoll, Backend::IoUring];

pub fn tag(name: &str, area: Area, address: u16, data_type: DataType) -> ModbusTag {
    ModbusTag {
        name: name.to_string(),
        area,
        address,
        data_type,
        order: WordOrder::Abcd,
        bit: None,
        length: 0,
        scale: 1.0,
        offset: 0.0,
    }
}

/// `count` tags of one area from `start`: uint16 registers or bools.
pub fn tags(prefix: &str, area: Area, start: u16, count: u16) -> Vec<ModbusTag> {
    let data_type = if area.is_bit_area() {
        DataType::Bool
    } else {
        DataType::Uint16
    };
    (0..count)
        .map(|i| {
            tag(
                &format!("{prefix}.{}.{}", area.name(), start + i),
                area,
                start + i,
                data_type,
            )
        })
        .collect()
}

pub fn device(name: &str, port: u16, tags: Vec<ModbusTag>) -> DeviceConfig {
    {
        let mut d = DeviceConfig::modbus(
            name,
            Protocol::ModbusTcp,
            &format!("127.0.0.1:{port}"),
            1,
            Duration::from_millis(20),
            tags,
        );
        d.timeout = Duration::from_millis(500);
        d.max_inflight = 1;
        let m = d.modbus_part_mut().expect("a Modbus device");
        m.max_registers = 125;
        m.max_bits = 2000;
        m.max_hole = 0;
        d
    }
}

/// Specs with consecutive tag ids, as a config would number them.
pub fn specs(devices: Vec<DeviceConfig>) -> Vec<DeviceSpec> {
    let mut first = 0u32;
    devices
        .into_iter()
        .map(|config| {
            let spec = DeviceSpec::alone(config, TagId(first));
            first += spec.config.tag_count() as u32;
            spec
        })
        .collect()
}

/// The (device index, tag) of every tag id of `specs`.
pub fn tag_table(specs: &[DeviceSpec]) -> Vec<(usize, ModbusTag)> {
    specs
        .iter()
        .enumerate()
        .flat_map(|(d, s)| {
            s.config
                .modbus_part()
                .unwrap()
                .tags
                .iter()
                .map(move |t| (d, t.clone()))
        })
        .collect()
}

pub fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(10),
        max: Duration::from_millis(200),
    }
}

pub struct Run {
    pub samples: Vec<Sample>,
    pub counters: Counters,
    pub connected_at_end: u64,
    /// Per device at the end: name, errors, reconnects (the metrics'
    /// `millrace_device_*`).
    pub devices: Vec<(String, u64, u64)>,
}

pub struct RunOptions {
    pub ring_slots: usize,
    /// Pause between drains of the ring (a slow consumer).
    pub drain_pause: Duration,
    pub deadline: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            ring_slots: 1 << 16,
            drain_pause: Duration::from_millis(2),
            deadline: Duration::from_secs(30),
        }
    }
}

/// Runs a reader over `specs` until `done(counters, samples)` holds, then
/// stops it and drains what is left. Panics (with the counters) if the
/// condition does not hold before the deadline.
pub fn run_until(
    backend: Backend,
    specs: Vec<DeviceSpec>,
    options: RunOptions,
    mut done: impl FnMut(&Counters, &[Sample]) -> bool,
) -> Run {
    let (producer, mut consumer) = ring::channel(options.ring_slots);
    let reader_options = ReaderOptions {
        backend,
        core: None,
        name: format!("test-reader-{backend:?}"),
        backoff: fast_backoff(),
        // Record stages as `millrace run` does, so the tests cover that path.
        histograms: Some(std::sync::Arc::new(
            millrace::metrics::StageHistograms::default(),
        )),
        // The test drains the ring itself, on its own schedule.
        doorbell: None,
    };
    let reader = Reader::spawn(specs, producer, reader_options)
        .unwrap_or_else(|e| panic!("spawn a reader with {backend:?}: {e}"));
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut met = false;
    while started.elapsed() < options.deadline {
        drain(&mut consumer, &mut samples);
        let counters = reader.stats().snapshot();
        if done(&counters, &samples) {
            met = true;
            break;
        }
        assert!(!reader.is_finished(), "the reader thread ended early");
        std::thread::sleep(options.drain_pause);
    }
    let connected_at_end = reader.stats().connected.load(Ordering::Relaxed);
    let stats = std::sync::Arc::clone(reader.stats());
    reader.stop().expect("reader thread ends cleanly");
    drain(&mut consumer, &mut samples);
    let counters = stats.snapshot();
    let devices = stats.devices.get().map_or_else(Vec::new, |devices| {
        devices
            .iter()
            .map(|d| {
                let (errors, reconnects) = (&d.errors, &d.reconnects);
                let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
                (d.name.clone(), load(errors), load(reconnects))
            })
            .collect()
    });
    assert!(
        met,
        "{backend:?}: condition not met before the deadline: {counters:#?}"
    );
    Run {
        samples,
        counters,
        connected_at_end,
        devices,
    }
}

pub fn drain(consumer: &mut ring::Consumer, into: &mut Vec<Sample>) {
    for _ in 0..4 {
        let (first, second) = consumer.readable();
        let count = first.len() + second.len();
        if count == 0 {
            break;
        }
        // The reader packs runs (packed.rs); a run may straddle the wrap.
        let mut records = first.to_vec();
        records.extend_from_slice(second);
        millrace::packed::unpack_into(&records, into);
        consumer.release(count);
    }
}

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::{free_port, peer_python};
