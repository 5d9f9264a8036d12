//! Typed errors: small `Copy` values that name the field that was wrong and
//! carry the values seen, printed in words (never Debug) so a log line says
//! what the PLC sent and what was expected.

use std::fmt;

/// A field of the wire format, for error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    TpktHeader,
    CotpHeader,
    CotpParameter,
    S7Header,
    S7Parameters,
    S7Data,
    SetupParameters,
    ReadItemCount,
    ReadItemHead,
    ReadItemData,
    ReadItemFill,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::TpktHeader => "TPKT header",
            Field::CotpHeader => "COTP header",
            Field::CotpParameter => "COTP parameter",
            Field::S7Header => "S7 header",
            Field::S7Parameters => "S7 parameters",
            Field::S7Data => "S7 data",
            Field::SetupParameters => "Setup Communication parameters",
            Field::ReadItemCount => "Read Var item count",
            Field::ReadItemHead => "Read Var item header",
            Field::ReadItemData => "Read Var item data",
            Field::ReadItemFill => "Read Var fill byte",
        })
    }
}

/// The handshake step that was waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// COTP connect request sent, connect confirm awaited.
    Connect,
    /// Setup Communication sent, its ack-data awaited.
    SetupCommunication,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Connect => "COTP connect confirm",
            Step::SetupCommunication => "Setup Communication answer",
        })
    }
}

/// Bytes from the PLC that break the protocol, or a handshake that failed.
/// After any of these the reader drops the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S7Error {
    /// A field ends before its declared or fixed length.
    Truncated {
        field: Field,
        needed: usize,
        available: usize,
    },
    /// Bytes left over after a field that must end the frame.
    TrailingBytes {
        field: Field,
        count: usize,
    },
    TpktVersion {
        found: u8,
    },
    /// TPKT length outside 6..=967 (the caps of limits.rs).
    TpktLength {
        length: u16,
    },
    /// The COTP length indicator points past the packet, or is too short
    /// for its TPDU code.
    CotpLengthIndicator {
        indicator: u8,
        packet_bytes: usize,
    },
    /// A COTP TPDU this session never expects here (code byte).
    CotpUnexpected {
        code: u8,
    },
    /// A data TPDU without the end-of-TSDU mark: a PDU segmented over
    /// several TPDUs, which a negotiated PDU below the TPDU size rules out.
    CotpSegmented,
    /// The PLC refused the connection (COTP disconnect request).
    ConnectRefused {
        reason: u8,
    },
    /// The PLC closed the connection (COTP disconnect request) after it
    /// was set up.
    Disconnected {
        reason: u8,
    },
    /// A COTP error TPDU (reject cause).
    CotpError {
        cause: u8,
    },
    ProtocolId {
        found: u8,
    },
    /// A ROSCTR (PDU type) other than ack (2) or ack-data (3).
    PduType {
        found: u8,
    },
    /// No outstanding request has this PDU reference.
    PduReferenceUnknown {
        found: u16,
    },
    /// The answer's function is not the request's.
    FunctionMismatch {
        expected: u8,
        found: u8,
    },
    /// More items answered than asked (fewer is `ItemsCapped`, not an error).
    ItemCount {
        requested: u8,
        found: u8,
    },
    /// An item's transport size is none of 3, 4, 5, 6, 7, 9.
    ItemTransportSize {
        index: u8,
        found: u8,
    },
    /// An item's data length is not the byte count asked for.
    ItemLength {
        index: u8,
        expected: usize,
        found: usize,
    },
    /// The Setup Communication answer carried an error class and code.
    SetupRefused {
        class: u8,
        code: u8,
    },
    /// The negotiated PDU is below `S7_PDU_BYTES_MIN`.
    PduTooSmall {
        granted: u16,
    },
    /// A handshake step unanswered within the device timeout.
    HandshakeTimeout {
        step: Step,
    },
    /// Bytes arrived while no handshake step or request was outstanding.
    Unsolicited,
    /// Caller error: the sample slice cannot hold one frame's samples.
    SampleSliceTooSmall {
        needed: usize,
        capacity: usize,
    },
}

impl S7Error {
    /// Whether the error is the handshake failing (counted as a connect
    /// failure) rather than a malformed answer.
    pub const fn is_handshake(&self) -> bool {
        matches!(
            self,
            S7Error::ConnectRefused { .. }
                | S7Error::SetupRefused { .. }
                | S7Error::PduTooSmall { .. }
                | S7Error::HandshakeTimeout { .. }
        )
    }
}

impl fmt::Display for S7Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            S7Error::Truncated {
                field,
                needed,
                available,
            } => write!(f, "{field} needs {needed} bytes, {available} left"),
            S7Error::TrailingBytes { field, count } => {
                write!(f, "{count} bytes after the {field}")
            }
            S7Error::TpktVersion { found } => write!(f, "TPKT version {found}, want 3"),
            S7Error::TpktLength { length } => write!(
                f,
                "TPKT length {length} outside {}..={}",
                super::limits::FRAME_BYTES_MIN,
                super::limits::FRAME_BYTES_MAX
            ),
            S7Error::CotpLengthIndicator {
                indicator,
                packet_bytes,
            } => write!(
                f,
                "COTP length indicator {indicator} does not fit a {packet_bytes}-byte packet"
            ),
            S7Error::CotpUnexpected { code } => {
                write!(f, "unexpected COTP TPDU code {code:#04x}")
            }
            S7Error::CotpSegmented => {
                f.write_str("a COTP data TPDU without end-of-TSDU (segmented PDU)")
            }
            S7Error::ConnectRefused { reason } => write!(
                f,
                "the PLC refused the ISO connection (disconnect reason {reason:#04x}): check \
                 rack, slot, connection type or the TSAPs"
            ),
            S7Error::Disconnected { reason } => write!(
                f,
                "the PLC sent a COTP disconnect request (reason {reason:#04x})"
            ),
            S7Error::CotpError { cause } => {
                write!(f, "the PLC sent a COTP error TPDU (cause {cause:#04x})")
            }
            S7Error::ProtocolId { found } => {
                write!(f, "S7 protocol id {found:#04x}, want 0x32")
            }
            S7Error::PduType { found } => {
                write!(f, "S7 PDU type {found}, want ack (2) or ack-data (3)")
            }
            S7Error::PduReferenceUnknown { found } => write!(
                f,
                "an answer with PDU reference {found}, which no outstanding request has"
            ),
            S7Error::FunctionMismatch { expected, found } => write!(
                f,
                "answer function {found:#04x}, the request's was {expected:#04x}"
            ),
            S7Error::ItemCount { requested, found } => write!(
                f,
                "Read Var answer has {found} items, the request asked {requested}"
            ),
            S7Error::ItemTransportSize { index, found } => write!(
                f,
                "Read Var item {index}: unknown transport size {found:#04x}"
            ),
            S7Error::ItemLength {
                index,
                expected,
                found,
            } => write!(
                f,
                "Read Var item {index}: {found} data bytes, the request asked {expected}"
            ),
            S7Error::SetupRefused { class, code } => write!(
                f,
                "the PLC refused Setup Communication with error class/code \
                 {class:#04x}{code:02x}"
            ),
            S7Error::PduTooSmall { granted } => write!(
                f,
                "the PLC granted a PDU of {granted} bytes, below the {} millrace needs",
                super::limits::S7_PDU_BYTES_MIN
            ),
            S7Error::HandshakeTimeout { step } => {
                write!(f, "no {step} within the device timeout")
            }
            S7Error::Unsolicited => f.write_str("bytes arrived while no request was outstanding"),
            S7Error::SampleSliceTooSmall { needed, capacity } => write!(
                f,
                "sample slice of {capacity} records, one frame needs {needed}"
            ),
        }
    }
}

impl std::error::Error for S7Error {}

/// Why an S7 device's session cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildError {
    /// The device is not an S7 device.
    NotS7,
    /// A tag lies past the 2^21 bytes an S7 address reaches.
    AddressPastEnd { tag: String, byte: u32 },
    /// The configured PDU is below what the session can plan with.
    PduTooSmall { pdu_size: u16 },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NotS7 => f.write_str("not an S7 device"),
            BuildError::AddressPastEnd { tag, byte } => write!(
                f,
                "tag `{tag}` at byte {byte} ends past the {} bytes an S7 address reaches",
                super::limits::ADDRESS_BYTES_MAX
            ),
            BuildError::PduTooSmall { pdu_size } => write!(
                f,
                "pdu_size {pdu_size} is below {}",
                super::limits::S7_PDU_BYTES_MIN
            ),
        }
    }
}

impl std::error::Error for BuildError {}
