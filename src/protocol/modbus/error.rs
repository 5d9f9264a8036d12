//! Typed errors. Each is `Copy`, names the field that was wrong and carries
//! the values seen, so a log line says exactly what the peer sent.

/// A read request that cannot be built (never sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestError {
    QuantityZero,
    /// Above 125 registers or 2000 bits.
    QuantityAboveMax {
        quantity: u16,
        max: u16,
    },
    /// The last address would be past 65535.
    AddressPastEnd {
        start: u16,
        quantity: u16,
    },
    /// A Modbus session was asked for a device of another protocol.
    NotModbus,
}

/// Bytes from the device that break the protocol. After any of these the
/// driver drops the connection: the stream can no longer be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModbusError {
    /// MBAP protocol id is not 0.
    MbapProtocolId { found: u16 },
    /// MBAP length below 2 (unit id + function code + at least one byte).
    MbapLengthBelowMin { length: u16 },
    /// MBAP length above 254 (unit id + the 253-byte PDU cap).
    MbapLengthAboveMax { length: u16 },
    /// No outstanding request has this transaction id.
    TransactionIdUnknown { found: u16 },
    /// A response arrived while no request was outstanding (RTU framing).
    ResponseUnsolicited,
    /// The unit id is not the one the request went to.
    UnitIdMismatch { expected: u8, found: u8 },
    /// The function code is neither the request's nor its exception form.
    FunctionCodeMismatch { expected: u8, found: u8 },
    /// The PDU ends before its byte count (or its exception code).
    PduTruncated { length: usize },
    /// An exception PDU is exactly function code + exception code.
    ExceptionPduLength { length: usize },
    /// The byte count is not what the request's quantity implies.
    ByteCountMismatch { expected: usize, found: u8 },
    /// PDU bytes after the byte count differ from the byte count (MBAP
    /// length inconsistent with the PDU).
    PduLengthMismatch { expected: usize, found: usize },
    /// RTU: the function code is not a read (1-4) or its exception form, so
    /// the frame's length cannot be known.
    RtuFunctionCode { found: u8 },
    /// RTU: byte count above 250 (2 * 125 registers, 2000 bits / 8).
    RtuByteCountAboveMax { found: u8 },
    /// RTU: CRC-16 over unit id and PDU does not match the trailer.
    RtuCrc { computed: u16, found: u16 },
    /// Caller error: the sample slice cannot hold one frame's samples.
    SampleSliceTooSmall { needed: usize, capacity: usize },
}

impl std::fmt::Display for ModbusError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for ModbusError {}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for RequestError {}
