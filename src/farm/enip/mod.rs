//! The EtherNet/IP side of the farm: simulated Logix controllers answering
//! CIP explicit messaging as a ControlLogix does (RegisterSession, Large
//! Forward Open or Forward Open, connected Read Tag, Multiple Service
//! Packet, Read Tag Fragmented, the tag list), from a symbol table whose
//! every value can be checked knowing only its tag.
//!
//! ```text
//! table.rs     the symbols and what every element holds (the value functions)
//! serve.rs     one connection's state: session, Forward Open/Close, faults
//! services.rs  the message router: reads, packets, the tag list, identity
//! template.rs  the Logix STRING's template (for clients that read the tag list)
//! check.rs     checking a delivered value against the table, knowing its tag
//! emit.rs      the devices' tables and tag CSVs of an emitted config
//! ```
//!
//! A device grants a connection of up to its connection size (4002 as a
//! ControlLogix L8x, 500 to stand in for an older module) and refuses a
//! larger one with 0x01/0x0109; in its `large_forward_open = false` mode it
//! refuses the Large Forward Open with 0x08, as a module that has none,
//! so that a client falls back to the plain Forward Open.

pub mod check;
pub mod emit;
pub(super) mod serve;
mod services;
pub mod table;
mod template;

pub use check::{check_number, check_text, FarmTag};
pub use emit::EnipEmitOptions;

/// The smallest connection size a device may be given: a Read Tag of one
/// STRING and its reply fit in it.
pub const CONNECTION_SIZE_MIN: u16 = 200;

/// How the EtherNet/IP devices of a farm behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnipFarmOptions {
    /// The largest connection a Forward Open is granted, in bytes
    /// (`CONNECTION_SIZE_MIN..=4002`); a larger one is refused.
    pub connection_size: u16,
    /// Whether the Large Forward Open (0x5B) is served; without it the
    /// device answers 0x08, as a module that has none.
    pub large_forward_open: bool,
}

impl Default for EnipFarmOptions {
    fn default() -> Self {
        EnipFarmOptions {
            connection_size: crate::config::EnipDevice::CONNECTION_SIZE_MAX,
            large_forward_open: true,
        }
    }
}

impl EnipFarmOptions {
    pub fn validate(&self) -> Result<(), String> {
        let max = crate::config::EnipDevice::CONNECTION_SIZE_MAX;
        if !(CONNECTION_SIZE_MIN..=max).contains(&self.connection_size) {
            return Err(format!(
                "the EtherNet/IP connection size is {}: it must be in {CONNECTION_SIZE_MIN}..={max}",
                self.connection_size
            ));
        }
        Ok(())
    }

    pub(super) fn behaviour(&self) -> EnipBehaviour {
        EnipBehaviour {
            connection_size: self.connection_size,
            large_forward_open: self.large_forward_open,
        }
    }
}

/// What the connections of an event loop need of the options.
#[derive(Clone, Copy, Debug)]
pub(super) struct EnipBehaviour {
    pub connection_size: u16,
    pub large_forward_open: bool,
}
