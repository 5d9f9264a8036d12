//! Siemens S7comm over ISO-on-TCP (RFC 1006): the COTP connection, Setup
//! Communication, and Read Var requests of many items, decoded in place
//! into samples. Sans-IO like every protocol here: bytes and times in,
//! request bytes and samples out. The client only ever reads: the wire
//! module has no builder for a write, a PLC control or a userdata job.
//!
//! ```text
//! limits.rs    every cap, with its reason
//! reader.rs    the one checked reader of the codec family
//! wire.rs      TPKT framing, COTP TPDUs, S7 headers, the three requests
//! planner.rs   tags -> ranges -> pieces -> requests (and why that is minimal)
//! decode.rs    item bytes -> samples, per S7 type
//! program.rs   a request compiled: its usual answer, runs of same-typed tags
//! notice.rs    what to change on the PLC, said once
//! session.rs   the handshake, the in-flight table, the `Session` impl
//! error.rs     errors in words
//! fuzz.rs      entry points shared by cargo-fuzz and the corpus replay
//! ```
//!
//! A poll cycle: the planner's requests go out up to the in-flight limit
//! (the device's `max_inflight`, capped by the AmQ the PLC granted); each
//! answer is matched by PDU reference, checked whole (item count, every
//! item's length and fill byte, nothing left over), then decoded: the
//! usual answer (every item good, as long as asked) by the request's
//! decode program, any other by the per-item path. Header
//! errors (PUT/GET off, ...) and item return codes become the tags'
//! qualities and one notice per condition; only a malformed answer drops
//! the connection.

mod decode;
pub mod error;
pub mod fuzz;
pub mod limits;
pub mod notice;
pub mod planner;
mod program;
mod reader;
mod session;
pub mod wire;

pub use decode::{write_bad_tag, write_tag};
pub use error::{BuildError, Field, S7Error, Step};
pub use notice::S7Notice;
pub use planner::{Limits, Plan, PlannedRequest, PlannedTag};
pub use session::{ReceiveError, S7Session, SessionConfig};

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod planner_tests;
#[cfg(test)]
mod program_tests;
#[cfg(test)]
mod session_tests;
