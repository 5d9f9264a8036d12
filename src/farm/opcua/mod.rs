//! The OPC UA side of the farm: simulated OPC UA servers, async-opcua's
//! server side, one per port on 127.0.0.1 with security None and an
//! anonymous endpoint, each holding `tags_per_device` variables of eight
//! types whose every change a receiver can recompute ([`values`]).
//!
//! ```text
//! values.rs  the k-th value of every tag, its check and the counter step
//! serve.rs   the servers, their threads and the change tasks
//! lean.rs    the lean server: subscriptions and reads, computed when sent
//! emit.rs    the devices' tables and tag CSVs of an emitted config
//! ```
//!
//! Unlike the socket devices, whose values advance with every answered
//! read, an OPC UA device changes every variable once per change interval
//! whether anyone listens or not, as a plant does: a subscription at that
//! sampling interval gets every change, and the verifier checks that
//! between two delivered changes of one tag the counter moved by exactly
//! one (none lost on the way, none delivered twice).

pub mod emit;
mod lean;
pub(super) mod serve;
pub mod values;

use std::time::Duration;

pub use emit::tag_name;
pub use serve::node_id;

/// The namespace of the farm's variables, and the index every server
/// gives it (0 is OPC UA's, 1 the server's own): emitted configs name
/// their nodes `ns=2;i=J+1`, and a server whose index differs refuses to
/// start.
pub const NAMESPACE_URI: &str = "urn:millrace:farm";
pub const NAMESPACE_INDEX: u16 = 2;

/// The slowest and fastest change intervals: below 10 ms the stack's
/// subscription timer cannot keep up with one Publish per change; above a
/// minute a bench sees no change.
pub const CHANGE_INTERVAL_MIN: Duration = Duration::from_millis(10);
pub const CHANGE_INTERVAL_MAX: Duration = Duration::from_secs(60);

/// Which server serves the farm's OPC UA devices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpcuaServerKind {
    /// async-opcua's server: the whole address space (Browse for
    /// `discover`), its sampling engine and its subscriptions; about 1.5-2
    /// us of CPU per value change.
    #[default]
    Stack,
    /// The lean server (lean.rs): subscriptions and reads of the farm's
    /// variables only, each notification computed when it is sent; a
    /// fraction of the stack's CPU per change, for benches at 1 M changes/s.
    Lean,
}

impl OpcuaServerKind {
    pub const NAMES: &'static [(&'static str, OpcuaServerKind)] = &[
        ("stack", OpcuaServerKind::Stack),
        ("lean", OpcuaServerKind::Lean),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }

    pub fn parse(text: &str) -> Result<OpcuaServerKind, String> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, k)| *k)
            .ok_or_else(|| format!("unknown OPC UA farm server `{text}` (stack or lean)"))
    }
}

/// How the OPC UA devices of a farm behave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpcuaFarmOptions {
    /// Every variable of every device changes once per this interval.
    pub change_interval: Duration,
    /// The server that serves them.
    pub server: OpcuaServerKind,
}

impl Default for OpcuaFarmOptions {
    fn default() -> Self {
        OpcuaFarmOptions {
            change_interval: Duration::from_millis(100),
            server: OpcuaServerKind::Stack,
        }
    }
}

impl OpcuaFarmOptions {
    pub fn validate(&self) -> Result<(), String> {
        if !(CHANGE_INTERVAL_MIN..=CHANGE_INTERVAL_MAX).contains(&self.change_interval) {
            return Err(format!(
                "the OPC UA change interval is {}: it must be 10ms..=60s",
                crate::config::format_duration(self.change_interval)
            ));
        }
        Ok(())
    }
}
