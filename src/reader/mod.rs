//! Reader runtime: the threads that own PLC connections. Each reader thread,
//! pinned to its core when cores are configured, owns a shard of the
//! devices, polls them on schedule, decodes responses in place and publishes
//! samples into its SPSC ring. This is the only layer (with the WAL and kdb+
//! sinks) that does I/O.
//!
//! ```text
//! scheduler.rs  per-device timer heap, phase spread, fixed cadence (sans-IO)
//! device.rs     one device: session, connection state, cadence, counters
//! shard.rs      the driver-agnostic core: events in, requests and samples out
//! ring_out.rs   decoding straight into ring slots (scratch only at the wrap)
//! stats.rs      counters, published as shared atomics once per loop turn
//! epoll.rs      the mio driver
//! uring.rs      the io_uring driver (the only unsafe code here)
//! ```
//!
//! Use: `Reader::spawn(devices, producer, options)`, read `reader.stats()`
//! while it runs, `reader.stop()` to end it. `shard_devices` deals a
//! config's devices out to `threads` readers.

pub mod clock;
pub mod device;
pub mod epoll;
pub mod health;
pub mod ring_out;
pub mod scheduler;
pub mod shard;
pub mod stats;
pub mod uring;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::config::{Backend, Config};
use crate::kdb::backoff::Backoff;
use crate::ring::Producer;

pub use shard::{DeviceSpec, Shard, Transport};
pub use stats::{Counters, DeviceStats, Stats};

/// The one receive buffer of a thread (epoll): a few dozen maximal Modbus
/// frames, more than one of any protocol's largest answer.
pub const RX_BUFFER_BYTES: usize = 16 * 1024;

/// The driver a reader runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    IoUring,
    Epoll,
}

#[derive(Clone, Debug)]
pub struct ReaderOptions {
    pub backend: Backend,
    /// Pin the thread to this core.
    pub core: Option<usize>,
    /// Thread name.
    pub name: String,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// Record poll round trips and decode times here.
    pub histograms: Option<Arc<crate::metrics::StageHistograms>>,
    /// Rung after a turn that published samples (wakes the WAL writer).
    pub doorbell: Option<Arc<crate::doorbell::Doorbell>>,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            backend: Backend::Auto,
            core: None,
            name: "reader-0".into(),
            backoff: Backoff::default(),
            histograms: None,
            doorbell: None,
        }
    }
}

/// How `stop` wakes a reader thread asleep in its driver's wait, so the
/// wait needs no short bound for the stop flag's sake.
enum Waker {
    Epoll(Arc<mio::Waker>),
    /// One end of a socket pair whose other end the io_uring driver polls.
    Uring(std::os::unix::net::UnixStream),
}

impl Waker {
    fn wake(&self) -> io::Result<()> {
        match self {
            Waker::Epoll(waker) => waker.wake(),
            Waker::Uring(stream) => io::Write::write_all(&mut &*stream, &[1]),
        }
    }
}

/// A running reader thread.
pub struct Reader {
    stop: Arc<AtomicBool>,
    waker: Waker,
    stats: Arc<Stats>,
    driver: Driver,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Reader {
    /// Plans and resolves every device, sets up the driver (probing io_uring
    /// for `Backend::Auto`, falling back to epoll and saying so on stderr),
    /// then starts the thread. Errors here are configuration or set-up
    /// errors; the thread itself never gives up on a device.
    pub fn spawn(
        devices: Vec<DeviceSpec>,
        producer: Producer,
        options: ReaderOptions,
    ) -> io::Result<Reader> {
        let stats = Arc::new(Stats::default());
        let mut shard = Shard::new(&devices, producer, Arc::clone(&stats), options.backoff)?;
        if let Some(histograms) = &options.histograms {
            shard.set_histograms(histograms);
        }
        shard.doorbell = options.doorbell.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let driver = choose_driver(options.backend, &options.name)?;
        let builder = std::thread::Builder::new().name(options.name.clone());
        let core = options.core;
        let thread_stop = Arc::clone(&stop);
        let (waker, thread) = match driver {
            Driver::Epoll => {
                let epoll = epoll::EpollDriver::new(&shard.staging_sizes())?;
                let waker = epoll.waker();
                let thread = builder.spawn(move || {
                    pin(core)?;
                    epoll.run(shard, &thread_stop)
                })?;
                (Waker::Epoll(waker), thread)
            }
            Driver::IoUring => {
                let uring = uring::UringDriver::new(&shard.staging_sizes())?;
                let waker = uring.waker()?;
                let thread = builder.spawn(move || {
                    pin(core)?;
                    uring.run(shard, &thread_stop)
                })?;
                (Waker::Uring(waker), thread)
            }
        };
        Ok(Reader {
            stop,
            waker,
            stats,
            driver,
            thread: Some(thread),
        })
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    pub fn driver(&self) -> Driver {
        self.driver
    }

    /// Whether the thread has ended (by itself only on an error).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Ends the thread (closing every connection) and returns its outcome.
    pub fn stop(mut self) -> io::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        // A thread that has ended already has nothing to wake (its end of
        // the socket pair is gone): the join says how it ended.
        let _ = self.waker.wake();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("reader thread panicked"))),
            None => Ok(()),
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn pin(core: Option<usize>) -> io::Result<()> {
    match core {
        Some(core) => crate::ring::pin_current_thread(core),
        None => Ok(()),
    }
}

/// `Auto` takes io_uring when the kernel lets us set a ring up (seccomp
/// profiles such as Docker's default block `io_uring_setup`).
pub fn choose_driver(backend: Backend, name: &str) -> io::Result<Driver> {
    match backend {
        Backend::Epoll => Ok(Driver::Epoll),
        Backend::IoUring => {
            uring::probe()?;
            Ok(Driver::IoUring)
        }
        Backend::Auto => match uring::probe() {
            Ok(()) => {
                tracing::info!("{name}: backend io_uring");
                Ok(Driver::IoUring)
            }
            Err(e) => {
                tracing::warn!("{name}: io_uring unavailable ({e}); backend epoll");
                Ok(Driver::Epoll)
            }
        },
    }
}

/// Deals the config's socket devices out to `threads` shards, one
/// connection at a time (`Config::connections`: the Modbus units behind one
/// gateway address share one), round-robin, each device with its first tag
/// id. OPC UA devices are not among them: each has a reader thread of its
/// own (`opcua_devices`).
pub fn shard_devices(config: &Config, threads: usize) -> Vec<Vec<DeviceSpec>> {
    let threads = threads.max(1);
    let mut shards: Vec<Vec<DeviceSpec>> = (0..threads).map(|_| Vec::new()).collect();
    let first_tags = config.first_tags();
    let device = |index: usize| {
        let config = config.devices.get(index).cloned();
        let first_tag = first_tags.get(index).copied().unwrap_or_default();
        config.map(|c| (c, first_tag))
    };
    for (dealt, connection) in config.connections().into_iter().enumerate() {
        let mut devices = connection.into_iter().filter_map(device);
        let Some((config, first_tag)) = devices.next() else {
            continue;
        };
        let spec = DeviceSpec {
            config,
            first_tag,
            shared_with: devices.collect(),
        };
        shards[dealt % threads].push(spec);
    }
    shards
}

/// The config's OPC UA devices, each with its first tag id: one OPC UA
/// reader thread each (src/opcua/).
pub fn opcua_devices(config: &Config) -> Vec<DeviceSpec> {
    config
        .devices
        .iter()
        .enumerate()
        .filter(|(_, d)| d.protocol == crate::config::Protocol::Opcua)
        .map(|(index, device)| DeviceSpec::alone(device.clone(), config.first_tag(index)))
        .collect()
}
