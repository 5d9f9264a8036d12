//! EtherNet/IP with CIP to Allen-Bradley Logix (ControlLogix, CompactLogix)
//! and Micro800 controllers: the encapsulation framer, CIP messages, the
//! request planner, reply decoding into samples, and the session the reader
//! drives. Sans-IO: no sockets, no clocks; bytes and times come in, request
//! bytes and samples go out. All little-endian; every length and count from
//! the wire is checked once, by `wire::Reader`.
//!
//! ```text
//! TCP 44818 ─ encapsulation (encap.rs) ─ common packet format ─ CIP (cip.rs)
//!   RegisterSession            -> session handle
//!   SendRRData: Large Forward Open 0x5B (4002) | Forward Open 0x54 (500)
//!   SendUnitData, sequence count: Multiple Service Packet 0x0A of Read Tag 0x4C,
//!                                 Read Tag 0x4C, Read Tag Fragmented 0x52
//!   SendRRData: Forward Close 0x4E; UnregisterSession (clean stop)
//! ```
//!
//! The parts: `planner` (tags to requests, near-minimal packing, argued
//! there), `decode` (reply data to samples in place), `layout` (a packet of
//! plain scalars compiled into its usual reply), `session` (the state
//! machine on the protocol seam), `notice` (one-line operator notices),
//! `symbols` (the tag list `millrace discover` reads), `discover` (the
//! requests and paging of that list), `fuzz` (entry points
//! of the cargo-fuzz targets and their corpus replay).
//!
//! Per-tag errors are qualities, never connection errors: a tag the
//! controller does not have comes back as `Quality::cip(0x05, ext)` samples
//! and one notice; every embedded reply of a Multiple Service Packet is
//! checked, whatever the packet's own status says.

pub mod cip;
pub mod decode;
pub mod discover;
pub mod encap;
mod error;
pub mod fuzz;
mod layout;
pub mod limits;
mod notice;
pub mod planner;
mod session;
pub mod symbols;
pub mod wire;

pub use error::{EnipError, Field, Step};
pub use notice::{EnipNotice, ShortText};
pub use planner::{plan_device, Plan, PlanError, PlannedRead, PlannedRequest, RequestKind, Shape};
pub use session::{EnipReceiveError, EnipSession, SessionConfig};

#[cfg(test)]
mod session_tests;
