//! OPC UA (issue #17) through the async-opcua stack: its encoding, secure
//! channel, session, subscriptions and reconnects, kept behind this module.
//!
//! Why not the protocol seam (protocol/session.rs): that seam is for
//! sans-IO byte protocols whose frames millrace decodes in place. OPC UA's
//! secure channel (chunking, signing, encryption), session keep-alive and
//! Publish loop are what the stack is for, and the stack owns its sockets.
//! So an OPC UA device gets its own reader thread (reader.rs) running the
//! stack on a current-thread tokio runtime, and that thread writes samples
//! into a ring of its own, which the WAL writer drains with the socket
//! readers' rings: the same ring, WAL and delivery path, the same sample
//! format, the same rule that a full ring stalls the reader rather than
//! dropping a value.
//!
//! What it costs: the stack decodes each notification into its own heap
//! values (a `DataValue` with a `Variant` per value) before convert.rs
//! writes the value's records straight into the ring; that allocation is
//! the stack's, per value, and is the price of not writing OPC UA's
//! cryptography ourselves.
//!
//! ```text
//! convert.rs  DataValue -> ring records (sans-IO, no panic on any value)
//! reader.rs   the thread: client, subscription or polling, ring writes
//! ```

pub mod convert;
pub mod reader;

pub use reader::{requests_per_cycle, OpcuaReader};
