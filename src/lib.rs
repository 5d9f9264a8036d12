//! millrace: an industrial edge ingest gateway. PLCs are polled over Modbus
//! TCP, every sample is made durable in a write-ahead log, and batches go to
//! kdb+ over its IPC protocol. See docs/architecture.md.

#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod civil;
pub mod config;
pub mod farm;
pub mod files;
pub mod kdb;
pub mod metrics;
pub mod pipeline;
pub mod protocol;
pub mod reader;
pub mod ring;
pub mod sample;
pub mod wal;

pub use sample::{Quality, Sample, TagId, ValueKind};
