//! Why a top-level job failed, in words: each variant names what was being
//! done and to what, and keeps the error underneath as its source.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::config::ConfigError;
use crate::kdb::KdbError;
use crate::pipeline::PipelineError;
use crate::tag_history::TagHistoryError;
use crate::wal::WalError;

/// Starting the data path for a configuration.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("reader {index}: {source}")]
    Reader {
        index: usize,
        source: std::io::Error,
    },
    #[error("metrics endpoint {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What went wrong while the data path stopped (it stops all the same).
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("reader {index}: {source}")]
    Reader {
        index: usize,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pipeline(#[from] crate::pipeline::StopError),
}

/// `millrace replay`.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    TagHistory(#[from] TagHistoryError),
    #[error("TLS: {source}")]
    Tls { source: KdbError },
    #[error("{to}: {source}")]
    Connect { to: String, source: KdbError },
    #[error("{source}; rows up to {acked} were acknowledged")]
    Publish {
        source: Box<ReplayError>,
        acked: u64,
    },
    #[error("{0}")]
    Kdb(#[from] KdbError),
    #[error(
        "the WAL holds text samples (tag id {tag}) and --columns has no `text`: add it \
         (and a `text` column to the table)"
    )]
    NoTextColumn { tag: u32 },
    #[error("final acknowledgement failed: {source}")]
    FinalChase { source: KdbError },
    #[error(transparent)]
    Wal(#[from] WalError),
    #[error("the WAL has a corrupt frame in the range")]
    CorruptFrame,
}

/// `millrace demo`.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot create a temporary directory in {}", .base.display())]
    TempDir { base: PathBuf },
    #[error("farm: {source}")]
    Farm { source: std::io::Error },
    #[error("stand-in: {source}")]
    StandIn { source: std::io::Error },
    #[error("emit config: {source}")]
    EmitConfig { source: std::io::Error },
    #[error("the S7 tags do not fit the farm: {problem}")]
    S7Layout { problem: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the stand-in's recorder was poisoned by a panic")]
    RecorderPoisoned,
}
