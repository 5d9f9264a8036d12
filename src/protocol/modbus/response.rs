//! Validation of a response PDU against the request it answers (spec
//! V1.1b3, 6.1-6.4 and 7): the function code is the request's or its
//! exception form; the byte count is exactly what the quantity implies; the
//! data is exactly that long. Nothing is read past the PDU.

use super::error::ModbusError;
use super::limits::EXCEPTION_FLAG;
use super::request::ReadRequest;

/// What a validated response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Payload<'a> {
    /// Exactly `request.response_data_bytes()` bytes: registers big-endian,
    /// or bits packed least significant first.
    Data(&'a [u8]),
    /// The device's exception code (spec 7: 1-4, 5, 6, 8, 0x0A, 0x0B).
    Exception(u8),
}

/// Checks `pdu` (function code onwards) against `request`.
pub fn check_response<'a>(
    request: &ReadRequest,
    pdu: &'a [u8],
) -> Result<Payload<'a>, ModbusError> {
    let expected_code = request.function().code();
    let Some((&function, rest)) = pdu.split_first() else {
        return Err(ModbusError::PduTruncated { length: 0 });
    };
    if function == expected_code | EXCEPTION_FLAG {
        return match rest {
            [code] => Ok(Payload::Exception(*code)),
            _ => Err(ModbusError::ExceptionPduLength { length: pdu.len() }),
        };
    }
    if function != expected_code {
        return Err(ModbusError::FunctionCodeMismatch {
            expected: expected_code,
            found: function,
        });
    }
    let Some((&byte_count, data)) = rest.split_first() else {
        return Err(ModbusError::PduTruncated { length: pdu.len() });
    };
    let expected = request.response_data_bytes();
    if usize::from(byte_count) != expected {
        return Err(ModbusError::ByteCountMismatch {
            expected,
            found: byte_count,
        });
    }
    if data.len() != expected {
        return Err(ModbusError::PduLengthMismatch {
            expected,
            found: data.len(),
        });
    }
    Ok(Payload::Data(data))
}
