//! Starts and stops the whole data path for one configuration: the WAL
//! (recovered), one ring and one reader thread per `[readers] threads`, one
//! ring and one thread per OPC UA device (src/opcua/), the WAL writer, one sink per `[[sink]]`, and the metrics endpoint.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::error::{StartError, StopError};
use crate::config::Config;
use crate::metrics::{hgrm_text, Exposition, MetricsEndpoint, Stage, StageHistograms};
use crate::opcua::OpcuaReader;
use crate::pipeline::{Pipeline, PipelineOptions};
use crate::reader::{opcua_devices, shard_devices, Counters, Reader, ReaderOptions, Stats};
use crate::ring;
use crate::wal::{RecoveryReport, Wal};

pub struct RuntimeOptions {
    /// Serve metrics here (overrides the config; `None` keeps the config's).
    pub metrics_listen: Option<Option<std::net::SocketAddr>>,
    pub stop_deadline: Duration,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            metrics_listen: None,
            stop_deadline: Duration::from_secs(10),
        }
    }
}

pub struct Runtime {
    readers: Vec<Reader>,
    /// One per OPC UA device, after the socket readers in the rings' order.
    opcua_readers: Vec<OpcuaReader>,
    pipeline: Pipeline,
    endpoint: Option<MetricsEndpoint>,
    pub recovery: RecoveryReport,
}

/// Totals at one instant, for progress lines and reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Snapshot {
    pub readers: Counters,
    pub durable_seq: u64,
    pub appended_samples: u64,
    pub acked_samples: u64,
    pub lag_samples: u64,
    pub wal_full_waits: u64,
    pub dropped_samples: u64,
    pub sink_reconnects: u64,
}

impl Runtime {
    pub fn start(config: &Config, options: RuntimeOptions) -> Result<Runtime, StartError> {
        let (wal, recovery) = Wal::open(&config.wal)?;
        let threads = config.readers.threads.max(1);
        let opcua_specs = opcua_devices(config);
        let rings = threads + opcua_specs.len();
        let mut producers = Vec::with_capacity(rings);
        let mut consumers = Vec::with_capacity(rings);
        for _ in 0..rings {
            let (p, c) = ring::channel(config.readers.ring_slots);
            producers.push(p);
            consumers.push(c);
        }
        let histograms = Arc::new(StageHistograms::default());
        let pipeline_options = PipelineOptions {
            stop_deadline: options.stop_deadline,
            ..PipelineOptions::default()
        };
        let pipeline = Pipeline::start(
            config,
            wal,
            consumers,
            Arc::clone(&histograms),
            pipeline_options,
        )?;
        let mut readers = Vec::with_capacity(threads);
        let opcua_producers = producers.split_off(threads);
        let mut opcua_readers = Vec::with_capacity(opcua_specs.len());
        for (index, (spec, producer)) in opcua_specs.into_iter().zip(opcua_producers).enumerate() {
            let name = format!("opcua-{index}");
            let doorbell = Some(Arc::clone(&pipeline.doorbell));
            let reader = OpcuaReader::spawn(spec, producer, name, doorbell).map_err(|source| {
                StartError::Reader {
                    index: threads + index,
                    source,
                }
            })?;
            opcua_readers.push(reader);
        }
        let shards = shard_devices(config, threads);
        for (index, (shard, producer)) in shards.into_iter().zip(producers).enumerate() {
            let reader_options = ReaderOptions {
                backend: config.readers.backend,
                core: config.readers.cores.get(index).copied(),
                name: format!("reader-{index}"),
                histograms: Some(Arc::clone(&histograms)),
                doorbell: Some(Arc::clone(&pipeline.doorbell)),
                ..ReaderOptions::default()
            };
            let reader = Reader::spawn(shard, producer, reader_options)
                .map_err(|source| StartError::Reader { index, source })?;
            readers.push(reader);
        }
        let listen = options.metrics_listen.unwrap_or(config.metrics.listen);
        let mut runtime = Runtime {
            readers,
            opcua_readers,
            pipeline,
            endpoint: None,
            recovery,
        };
        if let Some(addr) = listen {
            let render = runtime.renderer();
            let endpoint = MetricsEndpoint::start(addr, render)
                .map_err(|source| StartError::Metrics { addr, source })?;
            runtime.endpoint = Some(endpoint);
        }
        Ok(runtime)
    }

    /// Every reader thread's counters: the socket readers', then the OPC UA
    /// readers'.
    fn reader_stats(&self) -> Vec<Arc<Stats>> {
        let sockets = self.readers.iter().map(|r| Arc::clone(r.stats()));
        let opcua = self.opcua_readers.iter().map(|r| Arc::clone(r.stats()));
        sockets.chain(opcua).collect()
    }

    pub fn metrics_addr(&self) -> Option<std::net::SocketAddr> {
        self.endpoint.as_ref().map(|e| e.local_addr())
    }

    pub fn histograms(&self) -> &Arc<StageHistograms> {
        &self.pipeline.histograms
    }

    /// Each sink's name and counters.
    pub fn sink_stats(&self) -> &[(String, Arc<crate::pipeline::SinkStats>)] {
        &self.pipeline.sink_stats
    }

    /// The WAL writer has stopped on its own: a fatal WAL error.
    pub fn writer_failed(&self) -> bool {
        self.pipeline.writer_finished()
    }

    /// A sink has stopped on its own (it delivers nothing any more): its
    /// name and why. The caller stops the process; restarting is the
    /// supervisor's job, and recovery checks the WAL at the next start.
    pub fn failed_sink(&self) -> Option<(&str, &str)> {
        self.pipeline.failed_sink()
    }

    pub fn snapshot(&self) -> Snapshot {
        let stats = self.reader_stats();
        snapshot(&stats, &self.pipeline)
    }

    /// `stop`, with the sinks given `deadline` to deliver instead of the
    /// one the runtime started with (a reload: what they leave is durable
    /// and the next sinks send it).
    pub fn stop_within(self, deadline: Duration) -> (Snapshot, Vec<StopError>) {
        self.pipeline.set_stop_deadline(deadline);
        self.stop()
    }

    /// Stops polling, drains and commits, delivers up to the deadline,
    /// checkpoints. Returns the final snapshot and any errors.
    pub fn stop(mut self) -> (Snapshot, Vec<StopError>) {
        let mut errors = Vec::new();
        let stats = self.reader_stats();
        let socket_readers = self.readers.len();
        for (index, reader) in self.readers.drain(..).enumerate() {
            if let Err(source) = reader.stop() {
                errors.push(StopError::Reader { index, source });
            }
        }
        for (index, reader) in self.opcua_readers.drain(..).enumerate() {
            if let Err(source) = reader.stop() {
                let index = socket_readers + index;
                errors.push(StopError::Reader { index, source });
            }
        }
        tracing::debug!("stop: the readers have stopped");
        self.endpoint = None;
        tracing::debug!("stop: the metrics endpoint has stopped");
        let writer_stats = Arc::clone(&self.pipeline.writer_stats);
        let sink_stats = self.pipeline.sink_stats.clone();
        let finished = self.pipeline.finish();
        tracing::debug!("stop: the WAL writer and the sinks have finished");
        errors.extend(finished.errors.into_iter().map(StopError::from));
        let mut snap = Snapshot::default();
        for s in &stats {
            snap.readers.add(&s.snapshot());
        }
        fill_pipeline(&mut snap, &writer_stats, &sink_stats);
        (snap, errors)
    }

    fn renderer(&self) -> impl Fn(&mut Exposition<'_>) + Send + Sync + 'static {
        let stats = self.reader_stats();
        let writer = Arc::clone(&self.pipeline.writer_stats);
        let sinks = self.pipeline.sink_stats.clone();
        let exits = self.pipeline.sink_exits.clone();
        let histograms = Arc::clone(&self.pipeline.histograms);
        move |e: &mut Exposition<'_>| {
            super::run::render_metrics(e, &stats, &writer, &sinks, &histograms);
            super::run::render_sink_failures(e, &exits);
        }
    }
}

fn snapshot(stats: &[Arc<Stats>], pipeline: &Pipeline) -> Snapshot {
    let mut snap = Snapshot::default();
    for s in stats {
        snap.readers.add(&s.snapshot());
    }
    fill_pipeline(&mut snap, &pipeline.writer_stats, &pipeline.sink_stats);
    snap
}

fn fill_pipeline(
    snap: &mut Snapshot,
    writer: &crate::pipeline::WriterStats,
    sinks: &[(String, Arc<crate::pipeline::SinkStats>)],
) {
    use crate::pipeline::stats::get;
    snap.durable_seq = get(&writer.durable_seq);
    snap.appended_samples = get(&writer.samples_appended);
    snap.wal_full_waits = get(&writer.full_waits);
    snap.dropped_samples = get(&writer.dropped_samples);
    // With several sinks, progress is the slowest one's.
    snap.acked_samples = sinks
        .iter()
        .map(|(_, s)| get(&s.acked_samples))
        .min()
        .unwrap_or(0);
    snap.lag_samples = sinks
        .iter()
        .map(|(_, s)| s.lag(snap.durable_seq))
        .max()
        .unwrap_or(0);
    snap.sink_reconnects = sinks.iter().map(|(_, s)| get(&s.reconnects)).sum();
}

/// Writes one `.hgrm` percentile file per stage into `dir`.
pub fn write_hgrm_files(dir: &Path, histograms: &StageHistograms) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for stage in Stage::ALL {
        let h = histograms.snapshot(stage);
        let path = dir.join(format!("{}.hgrm", stage.name()));
        std::fs::write(&path, hgrm_text(&h))?;
        written.push(path);
    }
    Ok(written)
}
