//! MBAP framing of Modbus TCP (Messaging on TCP/IP Implementation Guide
//! V1.0b, 3.1.3): transaction id, protocol id 0, length of what follows
//! (unit id + PDU), unit id, then the PDU. The header is validated before the
//! length is used; nothing past the declared length is read.

use super::error::ModbusError;
use super::limits::{
    MBAP_HEADER_BYTES, MBAP_LENGTH_MAX, MBAP_LENGTH_MIN, MBAP_PROTOCOL_ID, TCP_ADU_BYTES_MAX,
};
use crate::protocol::assemble::{Assembler, Measure};

/// One Modbus TCP ADU, borrowed from the caller's buffer or the framer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpFrame<'a> {
    pub transaction_id: u16,
    pub unit_id: u8,
    /// Function code and data: 1..=253 bytes.
    pub pdu: &'a [u8],
}

/// Splits a TCP byte stream into MBAP frames across arbitrary chunk
/// boundaries. Holds at most one partial frame (260 bytes).
#[derive(Clone, Debug)]
pub struct MbapFramer {
    assembler: Assembler<TCP_ADU_BYTES_MAX>,
}

impl Default for MbapFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl MbapFramer {
    pub const fn new() -> Self {
        MbapFramer {
            assembler: Assembler::new(),
        }
    }

    /// Forgets a partial frame (after a reconnect).
    pub fn clear(&mut self) {
        self.assembler.clear();
    }

    /// Bytes of an incomplete frame held from earlier chunks.
    pub const fn pending_len(&self) -> usize {
        self.assembler.pending_len()
    }

    /// The next whole frame of the stream, consuming its bytes from `input`.
    /// `Ok(None)`: `input` is used up and any tail is kept for the next call.
    pub fn next_frame<'r, 'f: 'r, 'i: 'r>(
        &'f mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<TcpFrame<'r>>, ModbusError> {
        let Some(adu) = self.assembler.next(input, measure)? else {
            return Ok(None);
        };
        let (header, pdu) = adu.split_at_checked(MBAP_HEADER_BYTES).unwrap_or_default();
        let header = parse_header(header)?;
        assert!(pdu.len() + 1 == usize::from(header.length));
        Ok(Some(TcpFrame {
            transaction_id: header.transaction_id,
            unit_id: header.unit_id,
            pdu,
        }))
    }
}

struct Header {
    transaction_id: u16,
    length: u16,
    unit_id: u8,
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    let pair = bytes.get(at..at + 2)?;
    Some(u16::from_be_bytes(pair.try_into().ok()?))
}

/// Validates an MBAP header; the caller passes at least its 7 bytes.
fn parse_header(bytes: &[u8]) -> Result<Header, ModbusError> {
    let (Some(transaction_id), Some(protocol_id), Some(length), Some(&unit_id)) =
        (be16(bytes, 0), be16(bytes, 2), be16(bytes, 4), bytes.get(6))
    else {
        unreachable!("parse_header is only called on a whole header");
    };
    if protocol_id != MBAP_PROTOCOL_ID {
        return Err(ModbusError::MbapProtocolId { found: protocol_id });
    }
    if length < MBAP_LENGTH_MIN {
        return Err(ModbusError::MbapLengthBelowMin { length });
    }
    if length > MBAP_LENGTH_MAX {
        return Err(ModbusError::MbapLengthAboveMax { length });
    }
    Ok(Header {
        transaction_id,
        length,
        unit_id,
    })
}

fn measure(prefix: &[u8]) -> Result<Measure, ModbusError> {
    if prefix.len() < MBAP_HEADER_BYTES {
        return Ok(Measure::AtLeast(MBAP_HEADER_BYTES));
    }
    let header = parse_header(prefix)?;
    // 6 bytes precede the length's scope (tid, protocol id, length).
    let total = 6 + usize::from(header.length);
    assert!(total <= TCP_ADU_BYTES_MAX);
    Ok(Measure::Total(total))
}
