//! kdb+ IPC: the codec, compression, the handshake, the columnar publisher and
//! the tickerplant stand-in.
//!
//! Owns: the wire format (header, object encoding, compression), the login
//! handshake, the `.u.upd` publisher the kdb+ sink calls, and `millrace
//! tickerplant`. Must never: panic on bytes from a peer, allocate before a
//! length is checked against the bytes present and the configured maximum,
//! or allocate per row on the publish path.
//!
//! ```text
//! codec (sans-IO, no unsafe, no indexing):
//!   reader.rs   checked Reader over &[u8] (byte order carried along)
//!   header.rs   8-byte header
//!   types.rs    K: atoms and vectors of types 1..=19, lists, dicts, tables,
//!               errors, (::)
//!   decode.rs   bytes -> K under DecodeLimits;  encode.rs  K -> bytes
//!   compress.rs kdb+'s IPC compression, both ways
//!   handshake.rs, symbols.rs (TagId -> names), columns.rs (.u.upd encoder)
//! I/O:
//!   receive.rs     one kdb+ message off a stream, memory bounded by what
//!                  arrived (every reader of kdb+ messages goes through it)
//!   publisher.rs   blocking Publisher (TCP or TLS): async upd + sync chaser
//!   tls.rs         rustls client and server configs from PEM files, handshakes
//!   tls_pin.rs     the server certificate check: a chain to tls_ca_file, or
//!                  an exact pin of a certificate in it
//!   backoff.rs     jittered exponential backoff (sans-IO)
//!   upd.rs         tick.q-style checks of an update (sans-IO)
//!   journal.rs     tick.q log file writer (replayable with -11!)
//!   tickerplant.rs the stand-in server
//! ```

#![forbid(unsafe_code)]

pub mod backoff;
pub mod cli;
pub mod columns;
pub mod compress;
pub mod decode;
pub mod encode;
pub mod error;
pub mod fuzz;
pub mod handshake;
pub mod header;
pub mod journal;
pub mod publisher;
pub mod reader;
pub mod receive;
pub mod record;
pub mod schema;
pub mod symbols;
pub mod tickerplant;
pub mod tls;
pub mod tls_pin;
pub mod types;
pub mod upd;
pub mod upd_view;

pub use backoff::Backoff;
pub use columns::{encode_upd, encode_upd_with, kdb_time, UpdFormat, COLUMN_NAMES};
pub use compress::{compress, decompress};
pub use decode::{decode_body, decode_message, DecodeLimits};
pub use encode::{encode_body, encode_message};
pub use error::{DecodeError, KdbError};
pub use header::{Header, MsgType};
pub use publisher::{Compression, Publisher, PublisherOptions};
pub use record::{Recorder, RowRecorder, SeqRecorder};
pub use schema::{Column, Schema, SchemaError};
pub use symbols::SymbolTable;
pub use tickerplant::{Tickerplant, TickerplantOptions};
pub use tls::{ServerTlsFiles, TlsClient};
pub use types::{Atom, Data, Symbols, K};
