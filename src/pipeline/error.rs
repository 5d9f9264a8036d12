//! Why the pipeline could not start. Each variant says what failed in words
//! and keeps the error underneath as its source.

use crate::tag_history::TagHistoryError;
use crate::wal::WalError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("the tag table: {source}")]
    TagHistory { source: TagHistoryError },
    #[error("sink {sink}: its WAL cursor: {source}")]
    Cursor { sink: String, source: WalError },
    #[error("cannot start the WAL writer thread: {source}")]
    WriterThread { source: std::io::Error },
    #[error("cannot start sink thread {sink}: {source}")]
    SinkThread {
        sink: String,
        source: std::io::Error,
    },
}

/// What went wrong while the pipeline stopped (it stops all the same).
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    #[error("wal writer: {source}")]
    Writer { source: WalError },
    #[error("wal writer thread panicked")]
    WriterPanicked,
    #[error("sink {sink}: {source}")]
    Sink {
        sink: String,
        source: crate::pipeline::SinkError,
    },
    #[error("sink {sink}: thread panicked")]
    SinkPanicked { sink: String },
}
