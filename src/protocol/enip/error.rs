//! Typed errors. Each is `Copy`, names the field that was wrong and carries
//! the values seen, so a log line says exactly what the peer sent.

use std::fmt;

/// The field a decoder was reading when the bytes ran out or were wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    EncapHeader,
    RegisterData,
    InterfaceHandle,
    CpfItemCount,
    CpfItemHeader,
    CpfItemData,
    ConnectionId,
    SequenceCount,
    ReplyHeader,
    ExtendedStatus,
    MspCount,
    MspOffsets,
    TagType,
    TagData,
    ForwardOpenReply,
    SymbolInstance,
    SymbolName,
    SymbolType,
    SymbolDimensions,
}

impl Field {
    pub const fn name(self) -> &'static str {
        match self {
            Field::EncapHeader => "the encapsulation header",
            Field::RegisterData => "the RegisterSession data",
            Field::InterfaceHandle => "the interface handle and timeout",
            Field::CpfItemCount => "the common packet item count",
            Field::CpfItemHeader => "a common packet item header",
            Field::CpfItemData => "a common packet item's data",
            Field::ConnectionId => "the connected address item",
            Field::SequenceCount => "the connected data's sequence count",
            Field::ReplyHeader => "a CIP reply header",
            Field::ExtendedStatus => "a CIP reply's extended status",
            Field::MspCount => "the Multiple Service Packet reply count",
            Field::MspOffsets => "the Multiple Service Packet reply offsets",
            Field::TagType => "a Read Tag reply's data type",
            Field::TagData => "a Read Tag reply's data",
            Field::ForwardOpenReply => "the Forward Open reply",
            Field::SymbolInstance => "a symbol's instance id",
            Field::SymbolName => "a symbol's name",
            Field::SymbolType => "a symbol's type",
            Field::SymbolDimensions => "a symbol's array dimensions",
        }
    }
}

/// The handshake step a failure belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    RegisterSession,
    LargeForwardOpen,
    ForwardOpen,
    ForwardClose,
}

impl Step {
    pub const fn name(self) -> &'static str {
        match self {
            Step::RegisterSession => "RegisterSession",
            Step::LargeForwardOpen => "Large Forward Open",
            Step::ForwardOpen => "Forward Open",
            Step::ForwardClose => "Forward Close",
        }
    }
}

/// Bytes from the device that break the protocol, or a handshake that did
/// not succeed. After any of these the driver drops the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnipError {
    /// The bytes end before `field` does.
    Truncated {
        field: Field,
        needed: usize,
        available: usize,
    },
    /// Bytes left over after `field`, which has a known length.
    TrailingBytes { field: Field, count: usize },
    /// The encapsulation length is above what this client accepts.
    EncapLengthAboveMax { length: u16, max: usize },
    /// A command this client never sent (or not the one it awaits).
    EncapCommand { expected: u16, found: u16 },
    /// The device answered with a non-zero encapsulation status.
    EncapStatus { command: u16, status: u32 },
    /// The session handle is not the one RegisterSession gave.
    SessionHandle { expected: u32, found: u32 },
    /// RegisterSession gave the handle 0, which names no session.
    SessionHandleZero,
    /// A common packet of more items than `CPF_ITEMS_MAX`, or without the
    /// address and data items the command needs.
    CpfItems { count: u16 },
    /// The connected reply names another connection.
    ConnectionId { expected: u32, found: u32 },
    /// The sequence count answers no request outstanding.
    SequenceUnknown { found: u16 },
    /// A reply arrived while nothing was outstanding.
    Unsolicited { command: u16 },
    /// The reply's service code is not the request's with bit 7 set.
    ReplyService { expected: u8, found: u8 },
    /// A reply claims more extended status words than a CIP reply carries.
    ExtendedStatusWords { words: u8 },
    /// The Multiple Service Packet reply counts other services than sent.
    MspCount { expected: u16, found: u16 },
    /// An offset of the Multiple Service Packet reply points outside it or
    /// before the previous one.
    MspOffset { index: u16, offset: u16 },
    /// The module refused the connection.
    ForwardOpenRefused {
        step: Step,
        general: u8,
        extended: u16,
    },
    /// A handshake step got no answer in time.
    HandshakeTimeout { step: Step },
    /// Caller error: the sample slice cannot hold one frame's samples.
    SampleSliceTooSmall { needed: usize, capacity: usize },
}

impl fmt::Display for EnipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use EnipError::*;
        match *self {
            Truncated {
                field,
                needed,
                available,
            } => write!(
                f,
                "{} needs {needed} bytes, only {available} are left",
                field.name()
            ),
            TrailingBytes { field, count } => {
                write!(
                    f,
                    "{count} bytes follow {}, which has none after it",
                    field.name()
                )
            }
            EncapLengthAboveMax { length, max } => write!(
                f,
                "the encapsulation length is {length}, above the {max} bytes this client accepts"
            ),
            EncapCommand { expected, found } => write!(
                f,
                "the encapsulation command is {found:#06x}, where {expected:#06x} was awaited"
            ),
            EncapStatus { command, status } => write!(
                f,
                "the device answered command {command:#06x} with encapsulation status \
                 {status:#010x} ({})",
                encap_status_words(status)
            ),
            SessionHandle { expected, found } => write!(
                f,
                "the session handle is {found:#010x}, but RegisterSession gave {expected:#010x}"
            ),
            SessionHandleZero => f.write_str("RegisterSession answered with session handle 0"),
            CpfItems { count } => write!(
                f,
                "a common packet of {count} items lacks the address or data item (or has more \
                 than 4)"
            ),
            ConnectionId { expected, found } => write!(
                f,
                "the connected reply is for connection {found:#010x}, not ours ({expected:#010x})"
            ),
            SequenceUnknown { found } => write!(
                f,
                "sequence count {found} answers no request outstanding on this connection"
            ),
            Unsolicited { command } => write!(
                f,
                "a message of command {command:#06x} arrived with nothing outstanding"
            ),
            ReplyService { expected, found } => write!(
                f,
                "the reply's service code is {found:#04x}, not the request's reply {expected:#04x}"
            ),
            ExtendedStatusWords { words } => write!(
                f,
                "a reply claims {words} extended status words, more than a CIP reply carries"
            ),
            MspCount { expected, found } => write!(
                f,
                "the Multiple Service Packet reply holds {found} replies for {expected} requests"
            ),
            MspOffset { index, offset } => write!(
                f,
                "reply {index} of the Multiple Service Packet starts at offset {offset}, outside \
                 the reply or before the reply ahead of it"
            ),
            ForwardOpenRefused {
                step,
                general,
                extended,
            } => write!(
                f,
                "the module refused the {} with CIP status {general:#04x}, extended \
                 {extended:#06x} ({})",
                step.name(),
                forward_open_words(general, extended)
            ),
            HandshakeTimeout { step } => {
                write!(f, "the {} got no answer in time", step.name())
            }
            SampleSliceTooSmall { needed, capacity } => write!(
                f,
                "a frame needs room for {needed} samples, the slice holds {capacity}"
            ),
        }
    }
}

impl std::error::Error for EnipError {}

fn encap_status_words(status: u32) -> &'static str {
    match status {
        0x0001 => "invalid or unsupported command",
        0x0002 => "insufficient memory in the target",
        0x0003 => "poorly formed data",
        0x0064 => "invalid session handle",
        0x0065 => "invalid length",
        0x0069 => "unsupported protocol version",
        _ => "an encapsulation error",
    }
}

/// Connection Manager extended status codes worth naming (CIP Vol 1 3-5.6).
fn forward_open_words(general: u8, extended: u16) -> &'static str {
    match (general, extended) {
        (0x01, 0x0100) => "connection in use or duplicate Forward Open",
        (0x01, 0x0106) => "ownership conflict",
        (0x01, 0x0109) => "invalid connection size",
        (0x01, 0x0113) => "out of connections",
        (0x01, 0x0114) => "vendor id or product code mismatch",
        (0x01, 0x0311) => "invalid port in the route path (check `path`)",
        (0x01, 0x0312) => "invalid link address in the route path (check `path`)",
        (0x01, 0x0315) => "invalid segment in the connection path (check `path`)",
        (0x01, 0x0204) => "the target did not answer in time (check `path`)",
        (0x08, _) => "service not supported",
        (0x04, _) | (0x05, _) => "the connection path names nothing there (check `path`)",
        _ => "a Connection Manager error",
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_sentence_with_its_values() {
        let cases: [(EnipError, &str); 5] = [
            (
                EnipError::Truncated {
                    field: Field::MspOffsets,
                    needed: 8,
                    available: 3,
                },
                "Multiple Service Packet reply offsets needs 8 bytes, only 3",
            ),
            (
                EnipError::EncapStatus {
                    command: 0x70,
                    status: 0x64,
                },
                "invalid session handle",
            ),
            (
                EnipError::ForwardOpenRefused {
                    step: Step::ForwardOpen,
                    general: 1,
                    extended: 0x0311,
                },
                "check `path`",
            ),
            (EnipError::SequenceUnknown { found: 9 }, "sequence count 9"),
            (
                EnipError::HandshakeTimeout {
                    step: Step::LargeForwardOpen,
                },
                "Large Forward Open got no answer",
            ),
        ];
        for (error, words) in cases {
            let text = error.to_string();
            assert!(text.contains(words), "{text}");
            assert!(!text.contains('{'), "Debug-looking: {text}");
        }
    }
}
