//! `serve`: the farm until SIGINT/SIGTERM, with a rate line every second.
//! With `--emit-config`, the matching millrace config (S7 devices request
//! the farm's PDU size and name its rack and slot; OPC UA devices sample
//! and publish at the farm's change interval; Modbus devices behind a
//! shared port, `--units-per-port`, are polled there by their unit ids).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use millrace::farm::{
    self, EmitOptions, Farm, FarmCounters, FarmOptions, FaultRates, PortLayout, S7EmitOptions,
};

use crate::ServeArgs;

/// Registers a device answers for at least: a full 125-register read from 0.
const REGISTER_COUNT_MIN: u32 = 125;

pub fn run(args: &ServeArgs) -> io::Result<()> {
    let options = FarmOptions {
        devices: args.devices,
        units_per_port: args.units_per_port,
        protocol: args.protocol,
        base_port: args.base_port,
        register_count: args.tags_per_device.max(REGISTER_COUNT_MIN),
        bit_count: args.tags_per_device.max(REGISTER_COUNT_MIN),
        threads: args.threads,
        response_delay: Duration::from_millis(args.delay_ms),
        faults: FaultRates {
            drop_connection: args.drop_rate,
            stall: args.stall_rate,
            exception: args.exception_rate,
            malformed: args.malformed_rate,
        },
        stall: Duration::from_millis(args.stall_ms),
        seed: args.seed,
        connection_count_max: 0,
        s7: args.s7.farm_options(),
        enip: args.enip.farm_options(),
        opcua: args.opcua.farm_options(),
        opcua_tags: args.tags_per_device,
    };
    if args.emit_config.is_some() && args.protocol.has_s7() {
        options
            .s7
            .holds_layout(args.tags_per_device as usize)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    let handle = Farm::start(options.clone())?;
    print_ports(handle.ports(), handle.layout(), args.protocol)?;
    if let Some(path) = &args.emit_config {
        // OPC UA devices sample at the farm's change interval.
        let poll_interval = if args.protocol.has_opcua() {
            format!("{}ms", options.opcua.change_interval.as_millis())
        } else {
            args.poll_interval.clone()
        };
        let emit = EmitOptions {
            tags_per_device: args.tags_per_device,
            wal_dir: args.wal_dir.clone(),
            poll_interval,
            ..EmitOptions::default()
        };
        let s7 = S7EmitOptions {
            rack: options.s7.rack,
            slot: options.s7.slot,
            pdu_size: options.s7.pdu_size,
        };
        let enip = args.enip.emit_options();
        let (ports, layout) = (handle.ports(), handle.layout());
        farm::emit_farm_config_layout(path, ports, layout, args.protocol, &emit, &s7, &enip)?;
        println!("config {}", path.display());
    }
    println!("ready");
    io::stdout().flush()?;
    let mut last = handle.counters();
    let mut last_at = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if last_at.elapsed() >= Duration::from_secs(1) {
            let now = handle.counters();
            print_rate(&last, &now, last_at.elapsed());
            last = now;
            last_at = Instant::now();
        }
    }
    let total = handle.stop()?;
    println!(
        "stopped: {} requests, {} data responses, {} faults, {} connections",
        total.requests,
        total.data_responses,
        total.faults(),
        total.connections_accepted
    );
    Ok(())
}

/// One line a script can read: `ports P0 P1 ...` (port index k on the k-th:
/// device i on the i-th with a port per device, else on the (i / U)-th).
fn print_ports(ports: &[u16], layout: PortLayout, protocol: farm::FarmProtocol) -> io::Result<()> {
    let mut out = io::stdout().lock();
    write!(out, "ports")?;
    for port in ports {
        write!(out, " {port}")?;
    }
    writeln!(out)?;
    if let (Some(first), Some(last)) = (ports.first(), ports.last()) {
        let devices = layout.devices();
        match layout.units_per_port() {
            1 => writeln!(
                out,
                "farm: {devices} {protocol} devices on 127.0.0.1, ports {first}..={last}"
            )?,
            units => writeln!(
                out,
                "farm: {devices} {protocol} devices on 127.0.0.1, {units} unit ids behind each \
                 of {} ports {first}..={last}",
                ports.len()
            )?,
        }
    }
    Ok(())
}

fn print_rate(before: &FarmCounters, now: &FarmCounters, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let rate = |a: u64, b: u64| (b.saturating_sub(a)) as f64 / seconds;
    println!(
        "rate: {:.0} req/s, {:.0} data/s, faults {:.0}/s \
         (drop {} stall {} exception {} malformed {} pdu-overflow {}), connections {}, cpu {:.0}%",
        rate(before.requests, now.requests),
        rate(before.data_responses, now.data_responses),
        rate(before.faults(), now.faults()),
        now.fault_drops,
        now.fault_stalls,
        now.fault_exceptions,
        now.fault_malformed,
        now.fault_pdu_overflows,
        now.connections_accepted,
        rate(before.cpu_ns, now.cpu_ns) / 1e7,
    );
}
