//! Every cap of the Modbus protocol as a named constant with its reason.
//! These bound memory the peer controls: nothing from the wire is trusted
//! beyond them.

/// Registers one FC 3/4 request may ask for (spec V1.1b3 6.3/6.4: 1..=0x7D),
/// so that the response PDU (1 + 1 + 2*125 = 252 bytes) fits in 253.
pub const READ_REGISTERS_MAX: u16 = 125;
/// Bits one FC 1/2 request may ask for (spec 6.1/6.2: 1..=0x7D0).
pub const READ_BITS_MAX: u16 = 2000;
/// Largest PDU (function code + data): the RS-485 ADU limit of 256 bytes
/// minus address and CRC (spec 4.1).
pub const PDU_BYTES_MAX: usize = 253;
/// MBAP header: transaction id, protocol id, length, unit id.
pub const MBAP_HEADER_BYTES: usize = 7;
/// The MBAP length field counts the unit id plus the PDU: at least unit id +
/// function code + one byte (an exception's code, or a byte count).
pub const MBAP_LENGTH_MIN: u16 = 2;
/// Unit id + the largest PDU: 254 (Messaging on TCP/IP Implementation
/// Guide 3.1.3: the TCP ADU is at most 260 bytes).
pub const MBAP_LENGTH_MAX: u16 = 1 + PDU_BYTES_MAX as u16;
/// Largest TCP ADU: 6 header bytes before the length's scope plus 254.
pub const TCP_ADU_BYTES_MAX: usize = 6 + MBAP_LENGTH_MAX as usize;
/// Modbus TCP protocol id (MBAP field 2): always 0.
pub const MBAP_PROTOCOL_ID: u16 = 0;
/// A read request ADU over TCP: MBAP (7) + fc + address + quantity.
pub const TCP_REQUEST_BYTES: usize = MBAP_HEADER_BYTES + 5;
/// A read request ADU over RTU: unit + fc + address + quantity + CRC.
pub const RTU_REQUEST_BYTES: usize = 1 + 5 + 2;
/// Largest RTU ADU (spec 4.1: 256 bytes on a serial line).
pub const RTU_ADU_BYTES_MAX: usize = 1 + PDU_BYTES_MAX + 2;
/// The exception form of a function code sets this bit (spec 7).
pub const EXCEPTION_FLAG: u8 = 0x80;
/// Longest string tag in bytes: one whole read of registers, two characters
/// per register (a string is never split over requests).
pub const STRING_BYTES_MAX: usize = 2 * READ_REGISTERS_MAX as usize;

const _: () = assert!(2 + 2 * READ_REGISTERS_MAX as usize <= PDU_BYTES_MAX);
const _: () = assert!(2 + (READ_BITS_MAX as usize).div_ceil(8) <= PDU_BYTES_MAX);
const _: () = assert!(TCP_ADU_BYTES_MAX == 260);
const _: () = assert!(RTU_ADU_BYTES_MAX == 256);
const _: () = assert!(STRING_BYTES_MAX <= crate::sample::TEXT_BYTES_MAX);
