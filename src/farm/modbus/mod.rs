//! The Modbus TCP side of the farm: server-side framing and answers
//! ([`adu`]), the register and bit values a receiver can check ([`values`]),
//! the tag CSV rows of emitted configs ([`emit`]), and the per-request step
//! the shared connection pump calls ([`serve`]).

pub mod adu;
pub mod emit;
pub(super) mod serve;
pub mod values;

/// What a Modbus device holds: holding and input registers
/// `0..register_count`, coils and discrete inputs `0..bit_count`.
#[derive(Clone, Copy, Debug)]
pub struct ModbusMemory {
    pub register_count: u32,
    pub bit_count: u32,
}
