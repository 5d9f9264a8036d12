//! Typed errors of the kdb+ IPC code. Decoding errors are small `Copy` values
//! that name what was wrong, so a hostile peer costs no allocation to reject.

use std::fmt;

use crate::sample::TextError;

/// Why a message (or a compressed body) was rejected. Never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the field `what` needs.
    Truncated { what: &'static str },
    /// The 8-byte header is malformed (`what` says which byte).
    BadHeader { what: &'static str },
    /// The header's total length disagrees with the bytes given.
    LengthMismatch { declared: u64, actual: u64 },
    /// A declared length is larger than the configured maximum.
    TooLarge {
        what: &'static str,
        declared: u64,
        max: u64,
    },
    /// A count field is negative.
    NegativeCount { what: &'static str },
    /// A type byte this codec does not know (or will not accept).
    UnknownType { type_byte: i8 },
    /// Nesting deeper than the codec allows (a stack-exhaustion guard).
    TooDeep,
    /// More objects than the codec allows in one message (a memory guard).
    TooManyObjects,
    /// A symbol is not NUL-terminated inside the message.
    UnterminatedSymbol,
    /// Bytes left over after the object.
    TrailingBytes { count: u64 },
    /// A dictionary or table whose parts do not fit together.
    BadStructure { what: &'static str },
    /// The compressed stream refers outside of what it has produced, or runs
    /// past its input or its declared output.
    BadCompression { what: &'static str },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { what } => write!(f, "truncated: {what}"),
            DecodeError::BadHeader { what } => write!(f, "bad header: {what}"),
            DecodeError::LengthMismatch { declared, actual } => {
                write!(f, "header says {declared} bytes, message has {actual}")
            }
            DecodeError::TooLarge {
                what,
                declared,
                max,
            } => {
                write!(f, "{what}: {declared} bytes is over the maximum {max}")
            }
            DecodeError::NegativeCount { what } => write!(f, "negative count in {what}"),
            DecodeError::UnknownType { type_byte } => write!(f, "unknown type {type_byte}"),
            DecodeError::TooDeep => f.write_str("nesting too deep"),
            DecodeError::TooManyObjects => f.write_str("too many objects in one message"),
            DecodeError::UnterminatedSymbol => f.write_str("symbol without NUL"),
            DecodeError::TrailingBytes { count } => write!(f, "{count} trailing bytes"),
            DecodeError::BadStructure { what } => write!(f, "bad structure: {what}"),
            DecodeError::BadCompression { what } => write!(f, "bad compression: {what}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// Errors of the I/O-side code (publisher, handshake, stand-in).
#[derive(Debug)]
pub enum KdbError {
    /// The server closed the socket during the handshake: wrong user or
    /// password (kdb+ gives no other signal).
    AuthenticationRefused,
    /// The server answered a capability we did not offer.
    BadCapability {
        offered: u8,
        answered: u8,
    },
    /// The peer sent bytes we could not decode.
    Decode(DecodeError),
    /// The server answered a sync message with a kdb+ error (`'text`).
    Remote(String),
    /// A sample names a tag the symbol table does not have.
    UnknownTag {
        tag: u32,
    },
    /// Records of a batch that do not hold together as samples: a text head
    /// without its extension records, an extension without its head
    /// (`sample::record_span`); `record` is the index in the batch.
    BadRecords {
        record: usize,
        error: TextError,
    },
    /// A text sample for a sink whose columns have no `text`.
    NoTextColumn {
        tag: u32,
    },
    /// The message would be larger than the configured maximum.
    MessageTooLarge {
        bytes: u64,
        max: u64,
    },
    /// A name (table, user) that cannot be a kdb+ symbol (contains NUL or is
    /// too long).
    BadName {
        what: &'static str,
    },
    /// The peer closed the connection.
    Closed,
    /// No reply within the bounded number of messages or the timeout.
    NoReply,
    /// TLS could not be set up or the handshake failed (a certificate that
    /// does not verify, a missing client certificate, an unreadable PEM
    /// file); the text says which and what to check.
    Tls(String),
    Io(std::io::Error),
}

impl fmt::Display for KdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KdbError::AuthenticationRefused => {
                f.write_str("kdb+ authentication refused (server closed the connection)")
            }
            KdbError::BadCapability { offered, answered } => {
                write!(
                    f,
                    "offered capability {offered}, server answered {answered}"
                )
            }
            KdbError::Decode(e) => write!(f, "kdb+ decode: {e}"),
            KdbError::Remote(text) => write!(f, "kdb+ error: '{text}"),
            KdbError::UnknownTag { tag } => write!(f, "tag {tag} is not in the symbol table"),
            KdbError::BadRecords { record, error } => {
                write!(f, "record {record} of the batch: {error}")
            }
            KdbError::NoTextColumn { tag } => write!(
                f,
                "tag {tag} carries text and the sink's columns have no `text`: add \"text\" to \
                 the sink's columns and to the tickerplant's table schema"
            ),
            KdbError::MessageTooLarge { bytes, max } => {
                write!(f, "message of {bytes} bytes is over the maximum {max}")
            }
            KdbError::BadName { what } => write!(f, "{what} cannot be a kdb+ symbol"),
            KdbError::Closed => f.write_str("kdb+ peer closed the connection"),
            KdbError::NoReply => f.write_str("no reply from kdb+"),
            KdbError::Tls(text) => f.write_str(text),
            KdbError::Io(e) => write!(f, "kdb+ I/O: {e}"),
        }
    }
}

impl std::error::Error for KdbError {}

impl From<std::io::Error> for KdbError {
    fn from(e: std::io::Error) -> Self {
        KdbError::Io(e)
    }
}

impl From<DecodeError> for KdbError {
    fn from(e: DecodeError) -> Self {
        KdbError::Decode(e)
    }
}
