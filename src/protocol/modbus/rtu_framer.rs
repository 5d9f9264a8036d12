//! Modbus RTU carried over TCP (no MBAP header): unit id, PDU, CRC-16 low
//! byte first. RTU has no length field, so the frame's length comes from the
//! PDU itself; millrace only sends reads, so a response is either a read
//! response (fc 1-4, byte count, data) or an exception (fc | 0x80, code).

use super::crc::crc16;
use super::error::ModbusError;
use super::limits::{EXCEPTION_FLAG, RTU_ADU_BYTES_MAX};
use crate::protocol::assemble::{Assembler, Measure};

/// The largest byte count of a read response: 2 * 125 registers, and
/// ceil(2000 / 8) bits; also keeps the frame within the 256-byte RTU ADU.
const RTU_BYTE_COUNT_MAX: u8 = 250;
const _: () = assert!(3 + RTU_BYTE_COUNT_MAX as usize + 2 <= RTU_ADU_BYTES_MAX);

/// One RTU ADU with a good CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtuFrame<'a> {
    pub unit_id: u8,
    /// Function code and data, CRC removed.
    pub pdu: &'a [u8],
}

/// Splits a TCP byte stream carrying RTU frames, across arbitrary chunk
/// boundaries. Holds at most one partial frame (256 bytes).
#[derive(Clone, Debug)]
pub struct RtuFramer {
    assembler: Assembler<RTU_ADU_BYTES_MAX>,
}

impl Default for RtuFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl RtuFramer {
    pub const fn new() -> Self {
        RtuFramer {
            assembler: Assembler::new(),
        }
    }

    pub fn clear(&mut self) {
        self.assembler.clear();
    }

    pub const fn pending_len(&self) -> usize {
        self.assembler.pending_len()
    }

    /// The next whole frame with a valid CRC, consuming its bytes from `input`.
    pub fn next_frame<'r, 'f: 'r, 'i: 'r>(
        &'f mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<RtuFrame<'r>>, ModbusError> {
        let Some(adu) = self.assembler.next(input, measure)? else {
            return Ok(None);
        };
        let Some((body, trailer)) = adu.split_at_checked(adu.len().saturating_sub(2)) else {
            unreachable!("measure never yields a frame under 5 bytes");
        };
        let found = u16::from_le_bytes(trailer.try_into().unwrap_or_default());
        let computed = crc16(body);
        if computed != found {
            return Err(ModbusError::RtuCrc { computed, found });
        }
        let Some((&unit_id, pdu)) = body.split_first() else {
            unreachable!("measure never yields a frame under 5 bytes");
        };
        Ok(Some(RtuFrame { unit_id, pdu }))
    }
}

fn measure(prefix: &[u8]) -> Result<Measure, ModbusError> {
    let Some(&function) = prefix.get(1) else {
        return Ok(Measure::AtLeast(2));
    };
    if function & EXCEPTION_FLAG != 0 {
        // unit, fc | 0x80, exception code, CRC.
        return Ok(Measure::Total(5));
    }
    if !(1..=4).contains(&function) {
        return Err(ModbusError::RtuFunctionCode { found: function });
    }
    let Some(&byte_count) = prefix.get(2) else {
        return Ok(Measure::AtLeast(3));
    };
    if byte_count > RTU_BYTE_COUNT_MAX {
        return Err(ModbusError::RtuByteCountAboveMax { found: byte_count });
    }
    Ok(Measure::Total(3 + usize::from(byte_count) + 2))
}
