//! `baseline`: the poller a user would write instead of millrace, on the
//! tokio-modbus crate: a current-thread tokio runtime, one task and one
//! context per connection millrace opens (a device, or the units behind a
//! gateway port, which it polls one after another with `set_slave`), one
//! `read_holding_registers` per 125 registers per poll, one request in
//! flight per context. Rows go to a kdb+ stand-in through millrace's own
//! `.u.upd` publisher on a second thread (a batch every 5 ms or 10,000 rows,
//! each followed by a sync chaser), with no WAL in between.
//!
//! It reads the config `serve --emit-config` writes (tag j of a device is
//! holding register j) and prints one result line for `bench` to parse:
//! `baseline: seconds S responses R samples N published P cpu_s C peak_rss_kib K`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use millrace::config::{Config, DeviceConfig};
use millrace::kdb::{Publisher, PublisherOptions, SymbolTable};
use millrace::sample::{Quality, Sample, TagId, ValueKind};
use tokio_modbus::prelude::*;

use crate::bench::procs;

#[derive(Args, Debug)]
pub struct BaselineArgs {
    /// A config written by `serve --emit-config`.
    #[arg(long)]
    config: PathBuf,
    #[arg(long)]
    seconds: f64,
    /// The kdb+ stand-in, `host:port` (overrides the config's sink address).
    #[arg(long)]
    sink: String,
}

/// Registers per read: the Modbus limit for FC 3.
const REGISTERS_PER_READ_MAX: u16 = 125;
const BATCH_ROWS: usize = 10_000;
const BATCH_AGE: Duration = Duration::from_millis(5);

#[derive(Default)]
struct Counts {
    responses: AtomicU64,
    samples: AtomicU64,
    errors: AtomicU64,
}

pub fn run(args: &BaselineArgs) -> Result<(), String> {
    let config = millrace::config::load(&args.config).map_err(|e| e.to_string())?;
    let sink = config.sinks.first().ok_or("the config has no sink")?;
    let symbols = SymbolTable::from_config(&config).map_err(|e| e.to_string())?;
    let mut publisher = Publisher::connect(
        &args.sink,
        &sink.user,
        &sink.password,
        PublisherOptions::default(),
    )
    .map_err(|e| format!("stand-in {}: {e}", args.sink))?;
    let table = sink.table.clone();
    let (tx, rx) = mpsc::channel::<Vec<Sample>>();
    let publishing = std::thread::Builder::new()
        .name("baseline-publish".into())
        .spawn(move || publish_loop(&mut publisher, &table, &symbols, &rx))
        .map_err(|e| e.to_string())?;
    let counts = Arc::new(Counts::default());
    let started = Instant::now();
    let polling = poll_all(&config, args.seconds, &counts, tx);
    let elapsed = started.elapsed().as_secs_f64();
    let published = publishing
        .join()
        .map_err(|_| "the publisher thread panicked")??;
    polling?;
    let pid = std::process::id();
    println!(
        "baseline: seconds {elapsed:.3} responses {} samples {} published {published} \
         errors {} cpu_s {:.6} peak_rss_kib {}",
        counts.responses.load(Ordering::Relaxed),
        counts.samples.load(Ordering::Relaxed),
        counts.errors.load(Ordering::Relaxed),
        procs::self_cpu_seconds().unwrap_or(f64::NAN),
        procs::peak_rss_kib(pid).unwrap_or(0),
    );
    Ok(())
}

/// Runs one task per connection on a current-thread runtime for `seconds`.
fn poll_all(
    config: &Config,
    seconds: f64,
    counts: &Arc<Counts>,
    tx: mpsc::Sender<Vec<Sample>>,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let stop = Arc::new(AtomicBool::new(false));
    let jobs = connection_jobs(config)?;
    runtime.block_on(async {
        let mut tasks = Vec::with_capacity(jobs.len());
        for job in jobs {
            let (stop, counts, tx) = (Arc::clone(&stop), Arc::clone(counts), tx.clone());
            tasks.push(tokio::spawn(job.run(stop, counts, tx)));
        }
        drop(tx);
        tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            task.await.map_err(|e| e.to_string())??;
        }
        Ok::<(), String>(())
    })
}

/// The config's devices as millrace connects to them
/// (`Config::connections`): Modbus devices with the same address, protocol
/// and poll interval on one connection, the units of a gateway port; each
/// device in config order within it. Tag ids count over all devices in
/// config order, as the symbol table does.
fn connection_jobs(config: &Config) -> Result<Vec<ConnectionJob>, String> {
    let first_tags: Vec<u32> = config
        .devices
        .iter()
        .scan(0u32, |next, device| {
            let first = *next;
            *next += device.tag_count() as u32;
            Some(first)
        })
        .collect();
    let connections = config.connections();
    let device_count: usize = connections.iter().map(Vec::len).sum();
    if device_count != config.devices.len() {
        return Err("the tokio-modbus baseline polls Modbus devices only".into());
    }
    let mut jobs = Vec::with_capacity(connections.len());
    for connection in connections {
        let mut units = Vec::with_capacity(connection.len());
        for &index in &connection {
            let (Some(device), Some(&first_tag)) =
                (config.devices.get(index), first_tags.get(index))
            else {
                return Err(format!("no device {index}"));
            };
            units.push(UnitJob::new(device, first_tag)?);
        }
        let Some(first) = connection.first().and_then(|&i| config.devices.get(i)) else {
            continue;
        };
        jobs.push(ConnectionJob {
            addr: first
                .address
                .parse()
                .map_err(|e| format!("{}: {e}", first.address))?,
            interval: first.poll_interval,
            units,
        });
    }
    Ok(jobs)
}

/// One connection: a device of its own, or a gateway port's units.
struct ConnectionJob {
    addr: std::net::SocketAddr,
    interval: Duration,
    units: Vec<UnitJob>,
}

/// One device of a connection.
struct UnitJob {
    unit: u8,
    first_tag: u32,
    register_count: u16,
}

impl UnitJob {
    fn new(device: &DeviceConfig, first_tag: u32) -> Result<UnitJob, String> {
        let Some(modbus) = device.modbus_part() else {
            return Err(format!(
                "{}: the tokio-modbus baseline polls Modbus devices only",
                device.name
            ));
        };
        // The emitted farm config: tag j is holding register j.
        for (j, tag) in modbus.tags.iter().enumerate() {
            if usize::from(tag.address) != j {
                return Err(format!(
                    "{}: the baseline polls emitted farm configs only (tag {j} at {})",
                    device.name, tag.address
                ));
            }
        }
        Ok(UnitJob {
            unit: modbus.unit_id,
            first_tag,
            register_count: u16::try_from(modbus.tags.len()).map_err(|e| e.to_string())?,
        })
    }
}

impl ConnectionJob {
    /// Polls every unit once per interval, one after another, one request
    /// in flight (tokio-modbus's context does not pipeline).
    async fn run(
        self,
        stop: Arc<AtomicBool>,
        counts: Arc<Counts>,
        tx: mpsc::Sender<Vec<Sample>>,
    ) -> Result<(), String> {
        let first_unit = self.units.first().map_or(1, |u| u.unit);
        let mut ctx = tcp::connect_slave(self.addr, Slave(first_unit))
            .await
            .map_err(|e| format!("connect {}: {e}", self.addr))?;
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop.load(Ordering::Relaxed) {
            ticks.tick().await;
            for unit in &self.units {
                ctx.set_slave(Slave(unit.unit));
                unit.poll(&mut ctx, &counts, &tx).await?;
            }
        }
        Ok(())
    }
}

impl UnitJob {
    /// One poll of this unit: every register, 125 at a time.
    async fn poll(
        &self,
        ctx: &mut client::Context,
        counts: &Counts,
        tx: &mpsc::Sender<Vec<Sample>>,
    ) -> Result<(), String> {
        let mut start = 0u16;
        while start < self.register_count {
            let count = (self.register_count - start).min(REGISTERS_PER_READ_MAX);
            match ctx.read_holding_registers(start, count).await {
                Ok(Ok(registers)) => {
                    let ts_ns = now_ns();
                    let first = self.first_tag + u32::from(start);
                    let batch: Vec<Sample> = (first..)
                        .zip(&registers)
                        .map(|(tag, &r)| {
                            Sample::new(
                                ts_ns,
                                TagId(tag),
                                Quality::GOOD,
                                ValueKind::U64,
                                u64::from(r),
                            )
                        })
                        .collect();
                    counts.responses.fetch_add(1, Ordering::Relaxed);
                    counts
                        .samples
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    if tx.send(batch).is_err() {
                        return Err("the publisher stopped".into());
                    }
                }
                Ok(Err(_)) | Err(_) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            start += count;
        }
        Ok(())
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Publishes batches of up to `BATCH_ROWS` rows at most `BATCH_AGE` apart,
/// each acknowledged by a chaser, until every sender is gone; returns the
/// rows published (seqs `0..rows`).
fn publish_loop(
    publisher: &mut Publisher,
    table: &str,
    symbols: &SymbolTable,
    rx: &mpsc::Receiver<Vec<Sample>>,
) -> Result<u64, String> {
    let mut pending: Vec<Sample> = Vec::with_capacity(BATCH_ROWS * 2);
    let mut next_seq = 0u64;
    let mut open = true;
    while open || !pending.is_empty() {
        let deadline = Instant::now() + BATCH_AGE;
        while open && pending.len() < BATCH_ROWS {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(batch) => pending.extend_from_slice(&batch),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            }
        }
        if pending.is_empty() {
            continue;
        }
        publisher
            .publish(table, &pending, next_seq, symbols)
            .and_then(|()| publisher.chase())
            .map_err(|e| format!("publish: {e}"))?;
        next_seq += pending.len() as u64;
        pending.clear();
    }
    Ok(next_seq)
}
