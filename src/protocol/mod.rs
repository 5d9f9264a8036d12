//! Sans-IO protocol codecs: bytes and `now` in, samples and requests out. No
//! sockets, no clocks, no threads, no `unsafe`.
//!
//! ```text
//! session.rs   the seam: the `Session` trait every protocol implements
//! device.rs    `DeviceSession`, the enum dispatch over the protocols, and
//!              the per-protocol plan summary check-config prints
//! assemble.rs  stream reassembly shared by the framers (a frame whole in
//!              the caller's buffer is borrowed; one that straddles is copied)
//! modbus/      Modbus TCP and RTU over TCP
//! s7/          Siemens S7comm over ISO-on-TCP (RFC 1006)
//! enip/        EtherNet/IP CIP to Logix and Micro800 controllers
//! ```

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub(crate) mod assemble;
pub mod checked;
pub mod device;
pub mod enip;
pub mod modbus;
pub mod s7;
pub mod session;

pub use device::{BuildError, DeviceSession, ProtocolError, ProtocolNotice};
pub use session::{ErrorClass, ReceiveError, Received, Session, UnitBad};
