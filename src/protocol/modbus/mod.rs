//! Modbus TCP (and RTU over TCP): read requests, MBAP framing, response
//! decoding into samples, and the request planner. Sans-IO: no sockets, no
//! clocks; bytes and times come in, request bytes and samples go out. Only
//! read function codes 1-4 can be built (`ReadFunction` has no other value).
//!
//! # Driver API (what a reader thread calls)
//!
//! ```text
//! let mut session = ModbusSession::for_device(&device, first_tag)?;  // once, at start-up
//! let mut out = vec![Sample::default(); 4096];       // or a ring slot: >= samples_per_frame_max()
//!
//! // every poll_interval:
//! session.start_cycle();                             // returns requests never sent (overrun)
//! let mut req = [0u8; REQUEST_BYTES_MAX];
//! while let Some(n) = session.poll_transmit(now_ns, &mut req) {
//!     socket.send(&req[..n]);                        // stops at max_inflight outstanding
//! }
//!
//! // on every received chunk (any split of the stream):
//! let mut chunk = &bytes[..];
//! while !chunk.is_empty() {
//!     match session.receive(chunk, ts_ns, &mut out) {
//!         Ok(r) => { publish(&out[..r.samples]); chunk = &chunk[r.consumed..]; }
//!         Err(e) => {
//!             publish(&out[..e.samples]);                 // good samples before the bad frame
//!             close_socket();
//!             let n = session.disconnect(ts_ns, &mut out); // NoConnection samples
//!             publish(&out[..n]);
//!             break;
//!         }
//!     }
//!     // then poll_transmit again: an answer frees an in-flight slot
//! }
//!
//! // timers: wake at session.next_deadline_ns()
//! let n = session.handle_timeout(now_ns, ts_ns, &mut out);   // Quality::TIMEOUT samples
//! ```
//!
//! - `now_ns` is monotonic time (deadlines), `ts_ns` the UNIX time stamped
//!   on samples; both come from the driver.
//! - `receive` returns `consumed < chunk.len()` only when `out` has less room
//!   than `samples_per_frame_max()`: drain `out`, call again with the rest.
//! - Any `ReceiveError` means the peer broke the protocol (`ModbusError`
//!   names the field); its `samples` are the good ones decoded before, plus
//!   `DecodeError` samples for the tags of the request whose response broke
//!   (when it could be matched): every request still ends in exactly one
//!   sample per tag. Close the socket, call
//!   `disconnect` (writes `NoConnection` samples for outstanding requests,
//!   drops partial frames), reconnect, carry on with the same session.
//! - Exception responses are not errors: they yield `Quality::modbus_exception(code)`
//!   samples for the request's tags.
//! - A late answer to a timed-out request (TCP) is `TransactionIdUnknown`:
//!   reconnect, as for any error; on a connection shared by several units
//!   (`ModbusSession::shared`, a gateway's) it is dropped instead.
//! - Nothing allocates after `for_device`/`new`. A frame lying whole in a
//!   chunk is decoded in place; one that straddles two chunks is copied once
//!   into a fixed 260-byte buffer of the session.
//!
//! The parts, for tests and other drivers: `plan_device` (planner),
//! `ReadRequest` (encoding), `MbapFramer`/`RtuFramer` (framing),
//! `check_response` (validation), `decode_samples` (decoding),
//! `TransactionTable`.

mod crc;
mod decode;
mod error;
pub mod fuzz;
mod limits;
mod planner;
mod program;
mod request;
mod response;
mod rtu_framer;
mod session;
mod tcp_framer;
mod transactions;

pub use crate::protocol::session::Received;
pub use crc::crc16;
pub use decode::{decode_samples, write_bad};
pub use error::{ModbusError, RequestError};
pub use limits::*;
pub use planner::{plan_device, DevicePlan, PlannedRequest, PlannedTag};
pub use program::DecodeProgram;
pub use request::{ReadFunction, ReadRequest};
pub use response::{check_response, Payload};
pub use rtu_framer::{RtuFrame, RtuFramer};
pub use session::{
    Framing, ModbusNotice, ModbusSession, ReceiveError, SessionConfig, REQUEST_BYTES_MAX,
};
pub use tcp_framer::{MbapFramer, TcpFrame};
pub use transactions::{Inflight, TransactionTable, INFLIGHT_MAX};

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod planner_tests;
