//! Read requests, function codes 1-4 only. No type in this module can hold a
//! write function code: `ReadFunction` has exactly four variants and
//! `ReadRequest` is only built through `new`, which checks the quantity
//! limits of the specification.

use crate::config::Area;

use super::crc::crc16;
use super::error::RequestError;
use super::limits::{
    MBAP_PROTOCOL_ID, READ_BITS_MAX, READ_REGISTERS_MAX, RTU_REQUEST_BYTES, TCP_REQUEST_BYTES,
};

/// The four read function codes; the only codes millrace ever sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ReadFunction {
    ReadCoils = 1,
    ReadDiscreteInputs = 2,
    ReadHoldingRegisters = 3,
    ReadInputRegisters = 4,
}

impl ReadFunction {
    pub const fn for_area(area: Area) -> Self {
        match area {
            Area::Coil => ReadFunction::ReadCoils,
            Area::Discrete => ReadFunction::ReadDiscreteInputs,
            Area::Holding => ReadFunction::ReadHoldingRegisters,
            Area::Input => ReadFunction::ReadInputRegisters,
        }
    }
    pub const fn code(self) -> u8 {
        self as u8
    }
    pub const fn reads_bits(self) -> bool {
        matches!(
            self,
            ReadFunction::ReadCoils | ReadFunction::ReadDiscreteInputs
        )
    }
}

/// A validated read request: function 1-4, quantity within 1..=2000 bits or
/// 1..=125 registers, last address within 0..=65535.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    function: ReadFunction,
    start: u16,
    quantity: u16,
}

impl ReadRequest {
    pub fn new(area: Area, start: u16, quantity: u16) -> Result<Self, RequestError> {
        let function = ReadFunction::for_area(area);
        let max = if function.reads_bits() {
            READ_BITS_MAX
        } else {
            READ_REGISTERS_MAX
        };
        if quantity == 0 {
            return Err(RequestError::QuantityZero);
        }
        if quantity > max {
            return Err(RequestError::QuantityAboveMax { quantity, max });
        }
        if u32::from(start) + u32::from(quantity) > 65_536 {
            return Err(RequestError::AddressPastEnd { start, quantity });
        }
        Ok(ReadRequest {
            function,
            start,
            quantity,
        })
    }

    pub const fn function(&self) -> ReadFunction {
        self.function
    }
    pub const fn start(&self) -> u16 {
        self.start
    }
    pub const fn quantity(&self) -> u16 {
        self.quantity
    }

    /// Bytes of data the response must carry (its byte count field):
    /// ceil(quantity / 8) for bits, 2 * quantity for registers.
    pub const fn response_data_bytes(&self) -> usize {
        if self.function.reads_bits() {
            (self.quantity as usize).div_ceil(8)
        } else {
            2 * self.quantity as usize
        }
    }

    /// The request PDU: function code, start address, quantity (big-endian).
    pub fn pdu(&self) -> [u8; 5] {
        let [a_hi, a_lo] = self.start.to_be_bytes();
        let [q_hi, q_lo] = self.quantity.to_be_bytes();
        [self.function.code(), a_hi, a_lo, q_hi, q_lo]
    }

    /// The Modbus TCP ADU: MBAP header (length 6: unit id + 5 PDU bytes) + PDU.
    pub fn encode_tcp(&self, transaction_id: u16, unit_id: u8) -> [u8; TCP_REQUEST_BYTES] {
        let [t_hi, t_lo] = transaction_id.to_be_bytes();
        let [p_hi, p_lo] = MBAP_PROTOCOL_ID.to_be_bytes();
        let [f, a_hi, a_lo, q_hi, q_lo] = self.pdu();
        [
            t_hi, t_lo, p_hi, p_lo, 0, 6, unit_id, f, a_hi, a_lo, q_hi, q_lo,
        ]
    }

    /// The RTU ADU: unit id + PDU + CRC-16 (low byte first).
    pub fn encode_rtu(&self, unit_id: u8) -> [u8; RTU_REQUEST_BYTES] {
        let [f, a_hi, a_lo, q_hi, q_lo] = self.pdu();
        let body = [unit_id, f, a_hi, a_lo, q_hi, q_lo];
        let [c_lo, c_hi] = crc16(&body).to_le_bytes();
        [unit_id, f, a_hi, a_lo, q_hi, q_lo, c_lo, c_hi]
    }
}
