//! `millrace-loadgen`: the simulated Modbus TCP farm (`serve`), a capacity
//! probe of that farm (`capacity`), the end-to-end benchmark driver
//! (`bench`), its tokio-modbus baseline poller (`baseline`) and its
//! verifying kdb+ stand-in (`standin`).

#![forbid(unsafe_code)]

mod baseline;
mod bench;
mod capacity;
mod serve;
mod standin;

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
    /// Serve a farm of simulated Modbus TCP devices on 127.0.0.1 until
    /// SIGINT/SIGTERM, printing the ports and a rate line every second.
    Serve(ServeArgs),
    /// Measure the farm's capacity: an in-process farm on one event loop and
    /// a raw client on another thread; prints responses/s and responses per
    /// farm CPU-second.
    Capacity(capacity::CapacityArgs),
    /// Run the farm, the verifying stand-in and `millrace run` as child
    /// processes, then the tokio-modbus baseline against the same farm; report throughput, CPU, latency and verified delivery. Exits 1
    /// if anything was lost or a value did not check.
    Bench(bench::BenchArgs),
    /// The tokio-modbus poller `bench` compares against (run by `bench`).
    Baseline(baseline::BaselineArgs),
    /// The verifying kdb+ stand-in `bench` delivers to, in its own process
    /// (run by `bench`; commands on stdin).
    Standin(standin::StandinArgs),
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    #[arg(long)]
    devices: u32,
    /// Holding registers each device exposes to the emitted config (the
    /// device answers reads of up to `max(tags, 125)` registers).
    #[arg(long)]
    tags_per_device: u32,
    /// Device i listens on base_port + i; 0 picks free ports and prints them.
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("millrace-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
