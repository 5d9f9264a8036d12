//! Configuration: the TOML file of the design (readers, WAL, metrics, sinks,
//! devices, tags), tag lists imported from CSV, and validation that names the
//! file, line, column and key of every error.

mod types;

pub use types::*;
