//! The reader against the simulated farm, once per driver: every value
//! verified, the exception path, timeouts (stalls), dropped connections,
//! garbage (malformed frames), an unreachable device, and a full ring with
//! a slow consumer (overruns counted, nothing lost, nothing torn).
#![cfg(not(millrace_loom))]

mod common;
mod reader_support;

use std::collections::HashMap;
use std::time::Duration;

use millrace::config::{Area, Backend, ModbusTag};
use millrace::farm::{self, Farm, FarmHandle, FarmOptions, FaultRates};
use millrace::reader::DeviceSpec;
use millrace::{Quality, Sample};
use reader_support::*;

/// Tags of farm device `i`: 125 holding registers, 40 input registers,
/// 24 coils, 24 discrete inputs, and one holding register past the farm's
/// end (answered with exception 02).
fn farm_tags(i: usize) -> Vec<ModbusTag> {
    let prefix = format!("d{i}");
    let mut all = tags(&prefix, Area::Holding, 0, 125);
    all.extend(tags(&prefix, Area::Input, 500, 40));
    all.extend(tags(&prefix, Area::Coil, 7, 24));
    all.extend(tags(&prefix, Area::Discrete, 100, 24));
    all.extend(tags(&format!("{prefix}.past"), Area::Holding, 20_000, 1));
    all
}

fn farm_specs(
    farm: &FarmHandle,
    count: usize,
    tune: impl Fn(&mut millrace::config::DeviceConfig),
) -> Vec<DeviceSpec> {
    let devices = (0..count)
        .map(|i| {
            let mut d = device(&format!("farm{i}"), farm.ports()[i], farm_tags(i));
            tune(&mut d);
            d
        })
        .collect();
    specs(devices)
}

#[derive(Default, Debug)]
struct Tally {
    good: usize,
    exception02: usize,
    by_quality: HashMap<Quality, usize>,
}

/// Checks every sample against the farm's value functions; the tag past
/// the farm's end must only ever be an exception 02 or a bad sample.
fn verify_all(specs: &[DeviceSpec], samples: &[Sample]) -> Tally {
    let table = tag_table(specs);
    let mut tally = Tally::default();
    for sample in samples {
        let (device, tag) = &table[sample.tag_id().0 as usize];
        assert!(sample.kind().is_some(), "a defined kind");
        *tally.by_quality.entry(sample.quality()).or_default() += 1;
        let quality = sample.quality();
        if tag.address == 20_000 {
            assert!(
                !quality.is_good(),
                "read past the farm's end gave a value: {sample:?}"
            );
            tally.exception02 += usize::from(quality == Quality::modbus_exception(2));
            continue;
        }
        if quality.is_good() {
            let raw = u16::try_from(sample.value).expect("a 16-bit raw value");
            assert!(
                farm::verify(tag.area, *device as u32, tag.address, raw),
                "device {device} {} {}: value {raw:#06x} is not one the farm served",
                tag.area.name(),
                tag.address
            );
            tally.good += 1;
        }
    }
    tally
}

fn start_farm(devices: u32, faults: FaultRates, stall: Duration) -> FarmHandle {
    Farm::start(FarmOptions {
        devices,
        faults,
        stall,
        seed: 7,
        ..Default::default()
    })
    .expect("start the farm")
}

#[test]
fn every_value_verifies_and_exceptions_come_through() {
    for backend in BACKENDS {
        let farm = start_farm(4, FaultRates::default(), Duration::from_secs(1));
        let specs = farm_specs(&farm, 4, |_| {});
        let cycle: usize = specs.iter().map(|s| s.config.tag_count()).sum();
        let run = run_until(backend, specs.clone(), RunOptions::default(), |c, s| {
            c.polls >= 40 && s.len() >= 10 * cycle
        });
        let tally = verify_all(&specs, &run.samples);
        assert!(tally.good >= 8 * (cycle - 4), "{backend:?}: {tally:?}");
        assert!(
            tally.exception02 >= 8,
            "{backend:?}: exception 02 not seen: {tally:?}"
        );
        let bad = run.samples.iter().filter(|s| !s.quality().is_good());
        assert_eq!(
            bad.count(),
            tally.exception02,
            "{backend:?}: bad samples beyond the expected exception: {tally:?}"
        );
        let c = run.counters;
        assert_eq!(c.samples as usize, run.samples.len(), "{backend:?}: {c:#?}");
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{backend:?}: {c:#?}"
        );
        assert_eq!(run.connected_at_end, 4, "{backend:?}");
        let counters = farm.stop().expect("farm stops");
        assert!(counters.data_responses > 0);
    }
}

#[test]
fn stalls_time_out_and_the_reader_recovers() {
    for backend in BACKENDS {
        let faults = FaultRates {
            stall: 0.05,
            ..Default::default()
        };
        let farm = start_farm(3, faults, Duration::from_millis(400));
        let specs = farm_specs(&farm, 3, |d| d.timeout = Duration::from_millis(100));
        let run = run_until(backend, specs.clone(), RunOptions::default(), |c, _| {
            c.timeouts >= 3 && c.reconnects >= 3 && c.responses >= 200
        });
        let tally = verify_all(&specs, &run.samples);
        let timeouts = tally
            .by_quality
            .get(&Quality::TIMEOUT)
            .copied()
            .unwrap_or(0);
        assert!(timeouts > 0, "{backend:?}: no Timeout samples: {tally:?}");
        assert!(tally.good > 0, "{backend:?}");
        assert_eq!(run.counters.samples as usize, run.samples.len());
    }
}

#[test]
fn dropped_connections_reconnect_with_no_connection_samples() {
    for backend in BACKENDS {
        let faults = FaultRates {
            drop_connection: 0.05,
            ..Default::default()
        };
        let farm = start_farm(3, faults, Duration::from_secs(1));
        let specs = farm_specs(&farm, 3, |_| {});
        let run = run_until(backend, specs.clone(), RunOptions::default(), |c, _| {
            c.disconnects >= 5 && c.reconnects >= 5 && c.responses >= 300
        });
        let tally = verify_all(&specs, &run.samples);
        let lost = tally
            .by_quality
            .get(&Quality::NO_CONNECTION)
            .copied()
            .unwrap_or(0);
        assert!(
            lost > 0,
            "{backend:?}: in-flight requests of a dropped link must go bad: {tally:?}"
        );
        assert!(tally.good > 0);
        assert_eq!(run.counters.samples as usize, run.samples.len());
        assert!(farm.stop().expect("farm stops").fault_drops >= 5);
    }
}

#[test]
fn garbage_disconnects_counts_and_backs_off() {
    for backend in BACKENDS {
        let faults = FaultRates {
            malformed: 0.05,
            ..Default::default()
        };
        let farm = start_farm(3, faults, Duration::from_secs(1));
        let specs = farm_specs(&farm, 3, |_| {});
        let run = run_until(backend, specs.clone(), RunOptions::default(), |c, _| {
            c.malformed >= 5 && c.reconnects >= 5 && c.responses >= 300
        });
        // A malformed frame is never taken for data: every good value verifies.
        let tally = verify_all(&specs, &run.samples);
        assert!(tally.good > 0);
        let c = run.counters;
        assert!(c.disconnects >= c.malformed, "{backend:?}: {c:#?}");
        assert_eq!(c.samples as usize, run.samples.len());
    }
}

#[test]
fn an_unreachable_device_reports_no_connection_once_per_interval() {
    for backend in BACKENDS {
        let farm = start_farm(1, FaultRates::default(), Duration::from_secs(1));
        let port = free_port(); // nothing listens here
        let mut dead = device("dead", port, tags("dead", Area::Holding, 0, 10));
        dead.poll_interval = Duration::from_millis(10);
        let live = device("live", farm.ports()[0], tags("live", Area::Holding, 0, 10));
        let specs = specs(vec![live, dead]);
        let run = run_until(backend, specs.clone(), RunOptions::default(), |c, _| {
            c.no_connection_samples >= 50 && c.connect_failures >= 3 && c.responses >= 20
        });
        let dead_samples: Vec<&Sample> =
            run.samples.iter().filter(|s| s.tag_id().0 >= 10).collect();
        assert!(dead_samples
            .iter()
            .all(|s| s.quality() == Quality::NO_CONNECTION));
        // One sample per tag per reported interval: the counts per tag agree.
        let mut per_tag = [0usize; 10];
        for s in &dead_samples {
            per_tag[s.tag_id().0 as usize - 10] += 1;
        }
        assert!(
            per_tag.iter().all(|&n| n == per_tag[0]),
            "{backend:?}: {per_tag:?}"
        );
        let live_good = run
            .samples
            .iter()
            .filter(|s| s.tag_id().0 < 10 && s.quality == 0)
            .count();
        assert!(
            live_good >= 20,
            "{backend:?}: the dead device held the live one back"
        );
    }
}

#[test]
fn a_full_ring_delays_polls_and_loses_nothing() {
    for backend in BACKENDS {
        let farm = start_farm(2, FaultRates::default(), Duration::from_secs(1));
        let specs = farm_specs(&farm, 2, |d| d.poll_interval = Duration::from_millis(1));
        let cycle = specs[0].config.tag_count();
        let options = RunOptions {
            ring_slots: 512,
            drain_pause: Duration::from_millis(30),
            deadline: Duration::from_secs(30),
        };
        let run = run_until(backend, specs.clone(), options, |c, s| {
            c.overruns >= 20 && s.len() >= 20 * cycle
        });
        let c = run.counters;
        assert_eq!(
            c.samples as usize,
            run.samples.len(),
            "{backend:?}: samples lost: {c:#?}"
        );
        assert_eq!((c.malformed, c.disconnects), (0, 0), "{backend:?}: {c:#?}");
        assert!(c.overruns >= 20, "{backend:?}: {c:#?}");
        // None torn: every value verifies. None lost: within a device every
        // tag has the same count, give or take the cycle cut by the stop.
        verify_all(&specs, &run.samples);
        let mut per_tag = vec![0usize; 2 * cycle];
        for s in &run.samples {
            per_tag[s.tag_id().0 as usize] += 1;
        }
        for device in per_tag.chunks(cycle) {
            let (min, max) = (device.iter().min().unwrap(), device.iter().max().unwrap());
            assert!(
                max - min <= 1,
                "{backend:?}: uneven per-tag counts {min}..{max}"
            );
        }
    }
}

#[allow(dead_code)]
fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Epoll => "epoll",
        Backend::IoUring => "io_uring",
        Backend::Auto => "auto",
    }
}
