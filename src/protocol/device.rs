//! `DeviceSession`: the one place that names every protocol. The reader
//! holds one per device and calls it through the `Session` trait; the match
//! here is the enum dispatch that keeps each protocol's code monomorphic.

use std::fmt;

use crate::config::DeviceConfig;
use crate::sample::{Quality, Sample, TagId};

use super::enip::{EnipError, EnipNotice, EnipSession};
use super::modbus::{ModbusError, ModbusNotice, ModbusSession};
use super::s7::{S7Error, S7Notice, S7Session};
use super::session::{ErrorClass, ReceiveError, Received, Session, UnitBad};

/// A device's session, whatever its protocol. Not boxed: one per device,
/// built at start-up, and every call would pay a pointer chase for a few
/// hundred bytes saved per device.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum DeviceSession {
    Modbus(ModbusSession),
    S7(S7Session),
    EthernetIp(EnipSession),
}

/// An error of any protocol's session; `Display` is that protocol's words.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProtocolError {
    Modbus(ModbusError),
    S7(S7Error),
    EthernetIp(EnipError),
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Modbus(e) => write!(f, "Modbus: {e}"),
            ProtocolError::S7(e) => write!(f, "S7: {e}"),
            ProtocolError::EthernetIp(e) => write!(f, "EtherNet/IP: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// A notice of any protocol's session.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ProtocolNotice {
    Modbus(ModbusNotice),
    S7(S7Notice),
    EthernetIp(EnipNotice),
}

impl ProtocolNotice {
    /// Which device of a shared connection the notice is about (its
    /// position in request order, `DeviceSpec::devices`); `None` when it is
    /// about the connection as a whole.
    pub fn device_position(&self) -> Option<usize> {
        match self {
            ProtocolNotice::Modbus(n) => Some(usize::from(n.position())),
            ProtocolNotice::S7(_) | ProtocolNotice::EthernetIp(_) => None,
        }
    }
}

impl fmt::Display for ProtocolNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolNotice::Modbus(n) => write!(f, "Modbus: {n}"),
            ProtocolNotice::S7(n) => write!(f, "S7: {n}"),
            ProtocolNotice::EthernetIp(n) => write!(f, "EtherNet/IP: {n}"),
        }
    }
}

/// Why a device's session could not be built (a configuration the
/// validation should have refused, or a plan past a protocol's limits).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub device: String,
    pub problem: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "device `{}`: {}", self.device, self.problem)
    }
}

impl std::error::Error for BuildError {}

impl DeviceSession {
    /// Plans the device and builds its session; its samples get tag ids from
    /// `first_tag` on, in the order of `DeviceConfig::sample_names`.
    pub fn for_device(device: &DeviceConfig, first_tag: TagId) -> Result<Self, BuildError> {
        let fail = |problem: String| BuildError {
            device: device.name.clone(),
            problem,
        };
        match device.protocol {
            crate::config::Protocol::ModbusTcp | crate::config::Protocol::ModbusRtuTcp => {
                ModbusSession::for_device(device, first_tag)
                    .map(DeviceSession::Modbus)
                    .map_err(|e| fail(e.to_string()))
            }
            crate::config::Protocol::S7 => S7Session::for_device(device, first_tag)
                .map(DeviceSession::S7)
                .map_err(|e| fail(e.to_string())),
            crate::config::Protocol::EthernetIp => EnipSession::for_device(device, first_tag)
                .map(DeviceSession::EthernetIp)
                .map_err(|e| fail(e.to_string())),
            // The OPC UA reader (src/opcua/) drives the async-opcua stack:
            // no sans-IO session of bytes, so no socket reader serves it.
            crate::config::Protocol::Opcua => Err(fail(
                "an OPC UA device is read by the OPC UA reader, not a socket reader's session"
                    .to_string(),
            )),
        }
    }

    /// Devices on the connection (more than one: a shared connection).
    pub fn unit_count(&self) -> usize {
        match self {
            DeviceSession::Modbus(s) => s.unit_count(),
            _ => 1,
        }
    }

    /// Device `unit`'s own troubles on a shared connection (in the order
    /// of `for_connection`); `None` past the last.
    pub fn unit_bad(&self, unit: usize) -> Option<UnitBad> {
        match self {
            DeviceSession::Modbus(s) => s.unit_bad(unit),
            _ => None,
        }
    }

    /// The session of devices that share one connection (Modbus units
    /// behind one gateway address, `Config::connections`), in order.
    pub fn for_connection(devices: &[(&DeviceConfig, TagId)]) -> Result<Self, BuildError> {
        let (first, _) = devices.first().ok_or_else(|| BuildError {
            device: String::new(),
            problem: "a connection with no device".to_string(),
        })?;
        ModbusSession::for_connection(devices)
            .map(DeviceSession::Modbus)
            .map_err(|e| BuildError {
                device: first.name.clone(),
                problem: e.to_string(),
            })
    }
}

/// Calls `$body` with `$s` bound to the inner session.
macro_rules! dispatch {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            DeviceSession::Modbus($s) => $body,
            DeviceSession::S7($s) => $body,
            DeviceSession::EthernetIp($s) => $body,
        }
    };
}

/// Calls `$body` (a `Result` with the protocol's error) and wraps its error.
macro_rules! dispatch_err {
    ($self:expr, $s:ident => $body:expr) => {
        match $self {
            DeviceSession::Modbus($s) => $body.map_err(ProtocolError::Modbus),
            DeviceSession::S7($s) => $body.map_err(ProtocolError::S7),
            DeviceSession::EthernetIp($s) => $body.map_err(ProtocolError::EthernetIp),
        }
    };
}

fn wrap<E>(e: ReceiveError<E>, f: impl FnOnce(E) -> ProtocolError) -> ReceiveError<ProtocolError> {
    ReceiveError {
        error: f(e.error),
        samples: e.samples,
    }
}

impl Session for DeviceSession {
    type Error = ProtocolError;
    type Notice = ProtocolNotice;

    #[inline]
    fn request_bytes_max(&self) -> usize {
        dispatch!(self, s => s.request_bytes_max())
    }
    #[inline]
    fn samples_per_frame_max(&self) -> usize {
        dispatch!(self, s => Session::samples_per_frame_max(s))
    }
    #[inline]
    fn cycle_samples(&self) -> usize {
        dispatch!(self, s => s.cycle_samples())
    }
    #[inline]
    fn requests_per_cycle(&self) -> usize {
        dispatch!(self, s => s.requests_per_cycle())
    }
    #[inline]
    fn on_connected(&mut self, now_ns: u64) {
        dispatch!(self, s => s.on_connected(now_ns))
    }
    #[inline]
    fn is_ready(&self) -> bool {
        dispatch!(self, s => s.is_ready())
    }
    #[inline]
    fn start_cycle(&mut self) {
        dispatch!(self, s => Session::start_cycle(s))
    }
    #[inline]
    fn cycle_sent(&self) -> bool {
        dispatch!(self, s => Session::cycle_sent(s))
    }
    #[inline]
    fn inflight_count(&self) -> usize {
        dispatch!(self, s => Session::inflight_count(s))
    }
    #[inline]
    fn unsent_samples(&self) -> usize {
        dispatch!(self, s => s.unsent_samples())
    }
    #[inline]
    fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize {
        dispatch!(self, s => s.fail_unsent(quality, ts_ns, out))
    }
    #[inline]
    fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize> {
        dispatch!(self, s => Session::poll_transmit(s, now_ns, buf))
    }
    #[inline]
    fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError<ProtocolError>> {
        match self {
            DeviceSession::Modbus(s) => {
                Session::receive(s, chunk, ts_ns, out).map_err(|e| wrap(e, ProtocolError::Modbus))
            }
            DeviceSession::S7(s) => {
                Session::receive(s, chunk, ts_ns, out).map_err(|e| wrap(e, ProtocolError::S7))
            }
            DeviceSession::EthernetIp(s) => Session::receive(s, chunk, ts_ns, out)
                .map_err(|e| wrap(e, ProtocolError::EthernetIp)),
        }
    }
    #[inline]
    fn next_deadline_ns(&self) -> Option<u64> {
        dispatch!(self, s => Session::next_deadline_ns(s))
    }
    #[inline]
    fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, ProtocolError> {
        dispatch_err!(self, s => Session::handle_timeout(s, now_ns, ts_ns, out))
    }
    #[inline]
    fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize {
        dispatch!(self, s => Session::disconnect(s, ts_ns, out))
    }
    fn classify(&self, error: &ProtocolError) -> ErrorClass {
        match (self, error) {
            (DeviceSession::Modbus(s), ProtocolError::Modbus(e)) => s.classify(e),
            (DeviceSession::S7(s), ProtocolError::S7(e)) => s.classify(e),
            (DeviceSession::EthernetIp(s), ProtocolError::EthernetIp(e)) => s.classify(e),
            // An error always comes from the device's own session.
            (_, _) => ErrorClass::Malformed,
        }
    }
    #[inline]
    fn device_bad_samples(&self) -> u64 {
        dispatch!(self, s => s.device_bad_samples())
    }
    #[inline]
    fn poll_notice(&mut self) -> Option<ProtocolNotice> {
        match self {
            DeviceSession::Modbus(s) => s.poll_notice().map(ProtocolNotice::Modbus),
            DeviceSession::S7(s) => s.poll_notice().map(ProtocolNotice::S7),
            DeviceSession::EthernetIp(s) => s.poll_notice().map(ProtocolNotice::EthernetIp),
        }
    }
    fn pack_runs(&mut self) {
        dispatch!(self, s => Session::pack_runs(s))
    }
    #[inline]
    fn poll_close(&mut self, buf: &mut [u8]) -> Option<usize> {
        dispatch!(self, s => Session::poll_close(s, buf))
    }
}
