//! millrace: an industrial edge ingest gateway. PLCs are polled over Modbus
//! TCP, every sample is made durable in a write-ahead log, and batches go to
//! kdb+ over its IPC protocol. See docs/architecture.md.

// `unsafe` only in the files docs/security.md inventories (each says
// `#![allow(unsafe_code)]`; tests/unsafe_inventory.rs keeps the list true),
// and forbidden outright in every parser of bytes from outside.
#![deny(unsafe_code)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod civil;
pub mod config;
pub mod doorbell;
pub mod farm;
pub mod files;
pub mod kdb;
pub mod logging;
pub mod metrics;
pub mod opcua;
pub mod packed;
pub mod pipeline;
pub mod protocol;
pub mod reader;
pub mod ring;
pub mod sample;
pub mod tag_history;
pub mod wal;

pub use sample::{Quality, Sample, TagId, ValueKind};
