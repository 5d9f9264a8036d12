//! The product's top-level jobs: `run` (readers + WAL + sinks + metrics for
//! a configuration, until a signal), `discover` (a controller's tag list as
//! a tag CSV), `demo` (the same on a simulated farm
//! and the in-process tickerplant stand-in, with a report), and the shared
//! runtime both start.

pub mod demo;
pub mod discover;
mod error;
pub mod opcua_cert;
pub mod plan;
pub mod replay;
pub mod run;
mod runtime;

pub use error::{DemoError, ReplayError, StartError, StopError};
pub use runtime::{Runtime, RuntimeOptions, Snapshot};
