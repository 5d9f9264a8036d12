//! The Siemens S7comm side of the farm: an independent server written from
//! the wire facts (it shares no code with `protocol::s7`, so that a
//! misunderstanding of the protocol cannot hide in both).
//!
//! ```text
//! wire.rs    TPKT/COTP framing, S7 headers, items, answers (sans-IO)
//! serve.rs   one connection's state: connect, setup, Read Var, faults
//! memory.rs  what every byte of every area holds (the value functions)
//! check.rs   checking a delivered value against memory, knowing its tag
//! layout.rs  where the tags of an emitted config are
//! emit.rs    the S7 devices' tables and tag CSVs of an emitted config
//! ```
//!
//! A device serves DB1..DBn, M, I and Q; it answers Setup Communication
//! with the smaller of the client's PDU size and its own (960 as an
//! S7-1500, 240 or 480 to stand in for an S7-300/400), refuses anything that
//! would exceed it with 0x8500, and can refuse every read with 0x8104 as an
//! S7-1200/1500 does with PUT/GET access off.

pub mod check;
pub mod emit;
pub mod layout;
pub mod memory;
pub(super) mod serve;
pub mod wire;

pub use check::{check_number, check_text, expected_number, Check, FarmTag};
pub use emit::S7EmitOptions;

/// The byte offsets an S7 item can name: 24 bits of bit address.
pub const AREA_SIZE_MAX: u32 = 1 << 21;
/// Parallel jobs a device offers at most in Setup Communication.
pub const AMQ_MAX: u16 = 64;

/// How the S7 devices of a farm behave.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct S7FarmOptions {
    /// The device's PDU size, 240..=960: Setup Communication gets the
    /// smaller of this and what the client asks for.
    pub pdu_size: u16,
    /// Parallel jobs (max AmQ) offered, 1..=64.
    pub max_amq: u16,
    /// The CPU's rack (0..=7) and slot (0..=31): a connect request whose
    /// called TSAP names another is refused.
    pub rack: u8,
    pub slot: u8,
    /// Data blocks DB1..=DB`db_count`, each `db_size` bytes.
    pub db_count: u16,
    pub db_size: u32,
    /// Bytes of the M, I and Q areas.
    pub merker_size: u32,
    pub input_size: u32,
    pub output_size: u32,
    /// Answer every Read Var with header error 0x8104, as an S7-1200/1500
    /// whose "permit access with PUT/GET" is off.
    pub put_get_off: bool,
    /// Fault rate of header error 0x8500 instead of data (with the farm's
    /// `FaultRates`, the rates sum to at most 1).
    pub pdu_overflow: f64,
}

impl Default for S7FarmOptions {
    fn default() -> Self {
        S7FarmOptions {
            pdu_size: wire::PDU_SIZE_MAX,
            max_amq: 8,
            rack: 0,
            slot: 1,
            db_count: 16,
            db_size: layout::LAYOUT_DB_SIZE,
            merker_size: 16 * 1024,
            input_size: 1024,
            output_size: 1024,
            put_get_off: false,
            pdu_overflow: 0.0,
        }
    }
}

impl S7FarmOptions {
    pub fn validate(&self) -> Result<(), String> {
        if !(wire::PDU_SIZE_MIN..=wire::PDU_SIZE_MAX).contains(&self.pdu_size) {
            return Err(format!(
                "the S7 PDU size is {}: it must be in {}..={}",
                self.pdu_size,
                wire::PDU_SIZE_MIN,
                wire::PDU_SIZE_MAX
            ));
        }
        if !(1..=AMQ_MAX).contains(&self.max_amq) {
            return Err(format!(
                "max AmQ is {}: it must be in 1..={AMQ_MAX}",
                self.max_amq
            ));
        }
        if self.rack > 7 || self.slot > 31 {
            return Err(format!(
                "rack {} slot {}: the rack is 0..=7 and the slot 0..=31",
                self.rack, self.slot
            ));
        }
        if self.db_count == 0 {
            return Err("an S7 device needs at least one data block".into());
        }
        let sizes = [
            ("db_size", self.db_size),
            ("merker_size", self.merker_size),
            ("input_size", self.input_size),
            ("output_size", self.output_size),
        ];
        if let Some((name, size)) = sizes.iter().find(|(_, s)| !(1..=AREA_SIZE_MAX).contains(s)) {
            return Err(format!(
                "{name} is {size}: it must be in 1..={AREA_SIZE_MAX}"
            ));
        }
        if !(0.0..=1.0).contains(&self.pdu_overflow) {
            return Err(format!(
                "the PDU overflow rate is {}: it must be in 0..=1",
                self.pdu_overflow
            ));
        }
        Ok(())
    }

    /// Whether the tags of an emitted config of `tags_per_device` tags fit.
    pub fn holds_layout(&self, tags_per_device: usize) -> Result<(), String> {
        let dbs = layout::db_count_for(tags_per_device);
        let fits = self.db_count >= dbs
            && self.db_size >= layout::LAYOUT_DB_SIZE
            && self.merker_size >= layout::LAYOUT_MERKER_SIZE
            && self.input_size >= layout::LAYOUT_INPUT_SIZE
            && self.output_size >= layout::LAYOUT_OUTPUT_SIZE;
        if fits {
            return Ok(());
        }
        Err(format!(
            "{tags_per_device} S7 tags per device need DB1..DB{dbs} of {} bytes, M {} bytes, \
             I and Q {} bytes; the farm has {} DBs of {} bytes, M {}, I {}, Q {}",
            layout::LAYOUT_DB_SIZE,
            layout::LAYOUT_MERKER_SIZE,
            layout::LAYOUT_INPUT_SIZE,
            self.db_count,
            self.db_size,
            self.merker_size,
            self.input_size,
            self.output_size
        ))
    }

    pub(super) fn behaviour(&self) -> S7Behaviour {
        S7Behaviour {
            rack: self.rack,
            slot: self.slot,
            pdu_size: self.pdu_size,
            max_amq: self.max_amq,
            db_count: self.db_count,
            db_size: self.db_size,
            merker_size: self.merker_size,
            input_size: self.input_size,
            output_size: self.output_size,
            put_get_off: self.put_get_off,
        }
    }
}

/// What the connections of an event loop need of the S7 options.
#[derive(Clone, Copy, Debug)]
pub(super) struct S7Behaviour {
    pub rack: u8,
    pub slot: u8,
    pub pdu_size: u16,
    pub max_amq: u16,
    pub db_count: u16,
    pub db_size: u32,
    pub merker_size: u32,
    pub input_size: u32,
    pub output_size: u32,
    pub put_get_off: bool,
}
