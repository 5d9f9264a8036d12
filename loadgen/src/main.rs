//! `millrace-loadgen`: the simulated PLC farm, Modbus TCP, S7,
//! EtherNet/IP and OPC UA (`serve`),
//! a capacity probe of that farm (`capacity`), the end-to-end benchmark
//! driver (`bench`), its tokio-modbus baseline poller (`baseline`) and its
//! verifying kdb+ stand-in (`standin`).

#![forbid(unsafe_code)]

mod baseline;
mod bench;
mod capacity;
mod serve;
mod standin;
mod uacount;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "millrace-loadgen",
    version,
    about = "Load generator for millrace"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a farm of simulated Modbus TCP or S7 devices on 127.0.0.1 until
    /// SIGINT/SIGTERM, printing the ports and a rate line every second.
    Serve(ServeArgs),
    /// Measure the farm's capacity: an in-process farm on one event loop and
    /// a raw client on another thread; prints responses/s and responses per
    /// farm CPU-second.
    Capacity(capacity::CapacityArgs),
    /// Run the farm, the verifying stand-in and `millrace run` as child
    /// processes, then (Modbus) the tokio-modbus baseline against the same
    /// farm; report throughput, CPU, latency and verified delivery. Exits 1
    /// if anything was lost or a value did not check.
    Bench(bench::BenchArgs),
    /// The tokio-modbus poller `bench` compares against (run by `bench`).
    Baseline(baseline::BaselineArgs),
    /// The verifying kdb+ stand-in `bench` delivers to, in its own process
    /// (run by `bench`; commands on stdin).
    Standin(standin::StandinArgs),
    /// async-opcua's client alone, subscribing to a config's OPC UA devices
    /// as millrace does and only counting values (`bench --protocol opcua`
    /// compares millrace's CPU per notification with it).
    UaCount(uacount::UaCountArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// What the devices speak: modbus, s7, mixed (odd devices S7),
    /// ethernet-ip (simulated Logix controllers) or opcua (OPC UA servers).
    #[arg(long, default_value = "modbus", value_parser = parse_protocol)]
    protocol: millrace::farm::FarmProtocol,
    #[arg(long)]
    devices: u32,
    /// Modbus devices behind each port, 1..=247, as behind a serial-to-TCP
    /// gateway: device i answers as unit id i % U + 1 on port index i / U,
    /// other unit ids get exception 0x0B; the emitted config gives each
    /// device its port's address and its unit id. 1: a port per device,
    /// answering any unit id.
    #[arg(long, default_value_t = 1)]
    units_per_port: u32,
    /// Tags of each device in the emitted config: Modbus holding registers
    /// (the device answers reads of up to `max(tags, 125)` registers), or
    /// S7 tags of every type laid out over DB1.., M, I and Q.
    #[arg(long)]
    tags_per_device: u32,
    /// Port index k listens on base_port + k (device i on base_port + i with
    /// a port per device); 0 picks free ports and prints them.
    #[arg(long)]
    base_port: u16,
    /// Write the matching millrace config here (and its tag CSVs beside it).
    #[arg(long)]
    emit_config: Option<PathBuf>,
    /// `[wal] dir` of the emitted config.
    #[arg(long, default_value = "millrace-wal")]
    wal_dir: PathBuf,
    /// `poll_interval` of the emitted devices.
    #[arg(long, default_value = "100ms")]
    poll_interval: String,
    /// Event-loop threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Response delay in milliseconds (scan-cycle emulation).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Fault rates per answered read, 0..=1 each.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    stall_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    exception_rate: f64,
    #[arg(long, default_value_t = 0.0)]
    malformed_rate: f64,
    /// How long a stalled answer is held back, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    stall_ms: u64,
    /// Seed of the fault generators (a run with the same seed and the same
    /// requests injects the same faults).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[command(flatten)]
    s7: S7Args,
    #[command(flatten)]
    enip: EnipArgs,
    #[command(flatten)]
    opcua: OpcuaArgs,
}

/// How the OPC UA devices behave (`--protocol opcua`).
#[derive(Args, Debug, Clone)]
pub struct OpcuaArgs {
    /// Every variable of every OPC UA device changes once per this many
    /// milliseconds (the emitted config samples and publishes at it).
    #[arg(long, default_value_t = 100)]
    change_interval_ms: u64,
    /// The server: `stack` (async-opcua's: Browse, its sampling engine) or
    /// `lean` (subscriptions and reads only, a fraction of the CPU per
    /// change: what a bench at 1 M changes/s needs).
    #[arg(long, default_value = "stack", value_parser = millrace::farm::OpcuaServerKind::parse)]
    opcua_server: millrace::farm::OpcuaServerKind,
}

impl OpcuaArgs {
    pub fn farm_options(&self) -> millrace::farm::OpcuaFarmOptions {
        millrace::farm::OpcuaFarmOptions {
            change_interval: std::time::Duration::from_millis(self.change_interval_ms),
            server: self.opcua_server,
        }
    }
}

/// How the EtherNet/IP devices behave (`--protocol ethernet-ip`).
#[derive(Args, Debug, Clone)]
pub struct EnipArgs {
    /// The largest connection a Forward Open is granted: 4002 as a
    /// ControlLogix L8x or CompactLogix 5380, 500 for an older module.
    #[arg(long, default_value_t = 4002)]
    connection_size: u16,
    /// Refuse the Large Forward Open (0x5B) as a module that has none, so
    /// that clients fall back to the plain Forward Open (0x54).
    #[arg(long)]
    refuse_large_forward_open: bool,
}

impl EnipArgs {
    /// The same options as `serve` arguments (the bench's farm child).
    pub fn to_cli(&self) -> Vec<String> {
        let mut args = vec![
            "--connection-size".to_string(),
            self.connection_size.to_string(),
        ];
        if self.refuse_large_forward_open {
            args.push("--refuse-large-forward-open".into());
        }
        args
    }

    pub fn farm_options(&self) -> millrace::farm::EnipFarmOptions {
        millrace::farm::EnipFarmOptions {
            connection_size: self.connection_size,
            large_forward_open: !self.refuse_large_forward_open,
        }
    }

    /// What the emitted devices ask for: a plain Forward Open's size when
    /// the farm refuses the large one (the session would fall back to 500).
    pub fn emit_options(&self) -> millrace::farm::EnipEmitOptions {
        let size = if self.refuse_large_forward_open {
            self.connection_size.min(500)
        } else {
            self.connection_size
        };
        millrace::farm::EnipEmitOptions {
            connection_size: size,
        }
    }
}

/// How the S7 devices behave (`--protocol s7` or `mixed`).
#[derive(Args, Debug, Clone)]
pub struct S7Args {
    /// The S7 devices' PDU size: 960 as an S7-1500, 480 as an S7-400, 240
    /// as an S7-300/1200 (Setup Communication gets the smaller of this and
    /// the client's).
    #[arg(long, default_value_t = 960)]
    pdu_size: u16,
    /// Parallel jobs (max AmQ) the S7 devices offer.
    #[arg(long, default_value_t = 8)]
    max_amq: u16,
    /// The S7 CPU's rack and slot: a connect whose TSAP names another is
    /// refused.
    #[arg(long, default_value_t = 0)]
    rack: u8,
    #[arg(long, default_value_t = 1)]
    slot: u8,
    /// Data blocks DB1..DBn of each S7 device (64 KiB each).
    #[arg(long, default_value_t = 16)]
    db_count: u16,
    /// Refuse every S7 read with 0x8104, as an S7-1200/1500 with PUT/GET
    /// access off.
    #[arg(long)]
    put_get_off: bool,
    /// Rate of S7 header error 0x8500 (PDU size) instead of data.
    #[arg(long, default_value_t = 0.0)]
    pdu_overflow_rate: f64,
}

impl S7Args {
    /// The same options as `serve` arguments (the bench's farm child).
    pub fn to_cli(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            ("--pdu-size", self.pdu_size.to_string()),
            ("--max-amq", self.max_amq.to_string()),
            ("--rack", self.rack.to_string()),
            ("--slot", self.slot.to_string()),
            ("--db-count", self.db_count.to_string()),
            ("--pdu-overflow-rate", self.pdu_overflow_rate.to_string()),
        ]
        .into_iter()
        .flat_map(|(name, value)| [name.to_string(), value])
        .collect();
        if self.put_get_off {
            args.push("--put-get-off".into());
        }
        args
    }

    pub fn farm_options(&self) -> millrace::farm::S7FarmOptions {
        millrace::farm::S7FarmOptions {
            pdu_size: self.pdu_size,
            max_amq: self.max_amq,
            rack: self.rack,
            slot: self.slot,
            db_count: self.db_count,
            put_get_off: self.put_get_off,
            pdu_overflow: self.pdu_overflow_rate,
            ..millrace::farm::S7FarmOptions::default()
        }
    }
}

pub fn parse_protocol(word: &str) -> Result<millrace::farm::FarmProtocol, String> {
    millrace::farm::FarmProtocol::parse(word)
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve::run(&args),
        Command::Capacity(args) => capacity::run(&args),
        Command::Bench(args) => match bench::run(&args) {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::FAILURE,
            Err(e) => Err(std::io::Error::other(e)),
        },
        Command::Baseline(args) => baseline::run(&args).map_err(std::io::Error::other),
        Command::Standin(args) => standin::run(&args),
        Command::UaCount(args) => uacount::run(&args).map_err(std::io::Error::other),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_units_per_port_and_defaults_to_a_port_per_device() {
        let parse = |more: &[&str]| {
            let base = ["millrace-loadgen", "serve", "--devices", "6"];
            let tail = ["--tags-per-device", "10", "--base-port", "0"];
            match Cli::try_parse_from([&base[..], &tail[..], more].concat()) {
                Ok(Cli {
                    command: Command::Serve(args),
                }) => args.units_per_port,
                Ok(_) => panic!("not serve"),
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(parse(&[]), 1);
        assert_eq!(parse(&["--units-per-port", "3"]), 3);
    }
}
