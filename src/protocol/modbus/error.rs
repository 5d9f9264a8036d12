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
    /// A connection's session needs 1..=65535 devices.
    UnitCount,
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
        use ModbusError::*;
        match *self {
            MbapProtocolId { found } => {
                write!(f, "MBAP protocol id is {found}, not 0 (not Modbus TCP)")
            }
            MbapLengthBelowMin { length } => write!(
                f,
                "MBAP length is {length}, below 2 (a unit id and a function code at least)"
            ),
            MbapLengthAboveMax { length } => write!(
                f,
                "MBAP length is {length}, above 254 (a unit id and a 253-byte PDU at most)"
            ),
            TransactionIdUnknown { found } => write!(
                f,
                "transaction id {found} answers no request outstanding on this connection"
            ),
            ResponseUnsolicited => f.write_str("a response arrived with no request outstanding"),
            UnitIdMismatch { expected, found } => write!(
                f,
                "unit id is {found}, but the request went to unit {expected}"
            ),
            FunctionCodeMismatch { expected, found } => write!(
                f,
                "function code is {found}, neither the request's {expected} nor its exception \
                 {}",
                expected | 0x80
            ),
            PduTruncated { length } => write!(
                f,
                "the PDU of {length} bytes ends before its byte count (or exception code)"
            ),
            ExceptionPduLength { length } => write!(
                f,
                "an exception PDU is {length} bytes, not 2 (function code and exception code)"
            ),
            ByteCountMismatch { expected, found } => write!(
                f,
                "byte count is {found}, but the request's quantity needs {expected}"
            ),
            PduLengthMismatch { expected, found } => write!(
                f,
                "{found} data bytes follow the byte count, which says {expected}"
            ),
            RtuFunctionCode { found } => write!(
                f,
                "RTU function code is {found}, not a read (1-4) or its exception (129-132): the \
                 frame's length cannot be known"
            ),
            RtuByteCountAboveMax { found } => {
                write!(f, "RTU byte count is {found}, above 250")
            }
            RtuCrc { computed, found } => write!(
                f,
                "RTU CRC-16 is {found:#06x}, but the frame's bytes give {computed:#06x}"
            ),
            SampleSliceTooSmall { needed, capacity } => write!(
                f,
                "a frame needs room for {needed} samples, the slice holds {capacity}"
            ),
        }
    }
}

impl std::error::Error for ModbusError {}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RequestError::QuantityZero => f.write_str("a read of quantity 0 (at least 1)"),
            RequestError::QuantityAboveMax { quantity, max } => {
                write!(f, "a read of quantity {quantity}, above the maximum {max}")
            }
            RequestError::AddressPastEnd { start, quantity } => write!(
                f,
                "a read of {quantity} from address {start} runs past address 65535"
            ),
            RequestError::NotModbus => {
                f.write_str("a Modbus session was asked for a device of another protocol")
            }
            RequestError::UnitCount => f.write_str("a Modbus connection serves 1 to 65535 devices"),
        }
    }
}

impl std::error::Error for RequestError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_is_a_sentence_with_its_values() {
        let cases: [(&dyn std::fmt::Display, &str); 5] = [
            (
                &ModbusError::MbapLengthAboveMax { length: 300 },
                "MBAP length is 300",
            ),
            (
                &ModbusError::UnitIdMismatch {
                    expected: 1,
                    found: 7,
                },
                "unit id is 7, but the request went to unit 1",
            ),
            (
                &ModbusError::RtuCrc {
                    computed: 0x1234,
                    found: 0xbeef,
                },
                "0xbeef",
            ),
            (
                &RequestError::QuantityAboveMax {
                    quantity: 126,
                    max: 125,
                },
                "quantity 126, above the maximum 125",
            ),
            (
                &RequestError::AddressPastEnd {
                    start: 65535,
                    quantity: 2,
                },
                "from address 65535",
            ),
        ];
        for (error, words) in cases {
            let text = error.to_string();
            assert!(text.contains(words), "{text}");
            assert!(!text.contains('{'), "Debug-looking: {text}");
        }
    }
}
