//! The simulated PLC farm: Modbus TCP and Siemens S7 devices holding
//! deterministic, verifiable values, used by `millrace-loadgen serve`,
//! `millrace demo` and the tests.
//!
//! Many devices in one process, one listening port on 127.0.0.1 each (or,
//! Modbus only, up to 247 unit ids behind each port, as a serial-to-TCP
//! gateway: [`ports`]), served by one or a few mio event loops (no thread
//! per device, no allocation per request), so that the farm is never the
//! bottleneck of what it measures.
//! A Modbus device answers FC 1-4 reads with values a receiver can check one
//! by one ([`values`]) and everything else with the specification's
//! exceptions; an S7 device answers COTP connect, Setup Communication and
//! Read Var from a memory whose every byte can be checked ([`s7::memory`]);
//! an EtherNet/IP device answers as a Logix controller, Read Tag, Multiple
//! Service Packet and fragmented reads of a symbol table whose every
//! element can be checked ([`enip::table`]). All answer pipelined requests
//! in order, and on demand delay answers (scan-cycle emulation) and inject
//! faults at seeded, reproducible rates. An OPC UA device is async-opcua's
//! server with variables that change once per interval to values whose
//! every change can be checked ([`opcua::values`]); those run on threads
//! of their own (`opcua/serve.rs`), not on the event loops.
//!
//! ```text
//! modbus/       MBAP framing and answers, register values, CSV rows
//! s7/           TPKT/COTP/S7 framing and answers, memory, tag layout
//! enip/         EtherNet/IP sessions, CIP services, the symbol table
//! opcua/        OPC UA servers (async-opcua), changing values, their checks
//! fault.rs      fault rates and the seeded generator (protocol-neutral)
//! conn.rs       one connection: buffers and the read/answer/write pump
//! event_loop.rs one mio loop over listeners and connections
//! ports.rs      which port and unit id serve which device
//! counters.rs   what the farm did
//! emit.rs       the matching millrace config and tag CSVs
//! verify.rs     the stand-in's check of every delivered row
//! ```
//!
//! It must never: block in an event loop, trust a length before checking it,
//! or grow a buffer without bound.

#![forbid(unsafe_code)]

mod conn;
mod counters;
pub mod emit;
pub mod enip;
mod event_loop;
pub mod fault;
pub mod modbus;
pub mod opcua;
pub mod ports;
pub mod s7;
pub mod verify;

pub use modbus::{adu, values};

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Poll, Waker};

pub use counters::FarmCounters;
pub use emit::{
    emit_config, emit_farm_config, emit_farm_config_layout, emit_farm_config_with, EmitOptions,
};
pub use enip::{EnipEmitOptions, EnipFarmOptions};
pub use fault::FaultRates;
pub use opcua::{OpcuaFarmOptions, OpcuaServerKind};
pub use ports::{PortLayout, UNITS_PER_PORT_MAX};
pub use s7::{S7EmitOptions, S7FarmOptions};
pub use values::{
    bit_value, counter_of, register_value, verify, verify_bit, verify_input_register,
    verify_register,
};

use conn::{Behaviour, Device, UnitSlots};
use counters::Counters;
use event_loop::{EventLoop, WAKER_TOKEN};
use fault::{FaultPlan, SplitMix64};
use modbus::ModbusMemory;

/// Event-loop threads at most (the machine has two cores; more only thrash).
pub const FARM_THREAD_COUNT_MAX: usize = 16;
/// Variables of one OPC UA device at most (numeric NodeIds `1..=` this).
pub const OPCUA_TAGS_MAX: u32 = 1_000_000;

/// What a device speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeviceProtocol {
    Modbus,
    S7,
    EthernetIp,
    Opcua,
}

/// What the devices of a farm speak.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FarmProtocol {
    #[default]
    Modbus,
    S7,
    /// Half and half: odd devices speak S7, even ones Modbus (so any
    /// prefix of the devices is a mix).
    Mixed,
    EthernetIp,
    Opcua,
}

impl FarmProtocol {
    /// The words the command lines use.
    pub const NAMES: &'static [(&'static str, FarmProtocol)] = &[
        ("modbus", FarmProtocol::Modbus),
        ("s7", FarmProtocol::S7),
        ("mixed", FarmProtocol::Mixed),
        ("ethernet-ip", FarmProtocol::EthernetIp),
        ("opcua", FarmProtocol::Opcua),
    ];

    pub fn parse(word: &str) -> Result<FarmProtocol, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == word)
            .map(|(_, p)| *p)
            .ok_or_else(|| {
                format!("unknown protocol `{word}`: modbus, s7, mixed, ethernet-ip or opcua")
            })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(name, _)| name)
    }

    pub const fn device(self, device: u32) -> DeviceProtocol {
        match self {
            FarmProtocol::Modbus => DeviceProtocol::Modbus,
            FarmProtocol::S7 => DeviceProtocol::S7,
            FarmProtocol::Mixed if device % 2 == 1 => DeviceProtocol::S7,
            FarmProtocol::Mixed => DeviceProtocol::Modbus,
            FarmProtocol::EthernetIp => DeviceProtocol::EthernetIp,
            FarmProtocol::Opcua => DeviceProtocol::Opcua,
        }
    }

    pub const fn has_s7(self) -> bool {
        matches!(self, FarmProtocol::S7 | FarmProtocol::Mixed)
    }

    pub const fn has_enip(self) -> bool {
        matches!(self, FarmProtocol::EthernetIp)
    }

    pub const fn has_opcua(self) -> bool {
        matches!(self, FarmProtocol::Opcua)
    }
}

impl std::fmt::Display for FarmProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug)]
pub struct FarmOptions {
    /// Devices to serve, at least 1. Device `i` is served on port index
    /// `i / units_per_port` (`ports()[i]` with one unit per port).
    pub devices: u32,
    /// Devices behind each port, 1..=247 (Modbus only beyond 1): device `i`
    /// answers as unit id `i % units_per_port + 1` on its port, other unit
    /// ids get exception 0x0B. With 1, each device has a port of its own and
    /// answers any unit id. See [`ports`].
    pub units_per_port: u32,
    /// What they speak (device `i` speaks `protocol.device(i)`).
    pub protocol: FarmProtocol,
    /// Port index `k` listens on `base_port + k`; 0 picks free ports.
    pub base_port: u16,
    /// Holding and input registers per device, addresses `0..register_count`;
    /// reads past the end get exception 02. At most 65536.
    pub register_count: u32,
    /// Coils and discrete inputs per device, addresses `0..bit_count`.
    pub bit_count: u32,
    /// Event-loop threads; devices are dealt out round-robin.
    pub threads: usize,
    /// Added to every answer (a PLC's scan cycle). Zero answers at once.
    pub response_delay: Duration,
    pub faults: FaultRates,
    /// How long a stalled answer is held back.
    pub stall: Duration,
    /// Seeds every device's fault generator (with the device index).
    pub seed: u64,
    /// Open connections at most, over all ports; more are closed at accept.
    pub connection_count_max: usize,
    /// How the S7 devices behave (ignored without any).
    pub s7: S7FarmOptions,
    /// How the EtherNet/IP devices behave (ignored without any).
    pub enip: EnipFarmOptions,
    /// How the OPC UA devices behave (ignored without any).
    pub opcua: OpcuaFarmOptions,
    /// Variables of each OPC UA device (`ns=2;i=1..=opcua_tags`).
    pub opcua_tags: u32,
}

impl Default for FarmOptions {
    fn default() -> Self {
        FarmOptions {
            devices: 1,
            units_per_port: 1,
            protocol: FarmProtocol::Modbus,
            base_port: 0,
            register_count: 10_000,
            bit_count: 10_000,
            threads: 1,
            response_delay: Duration::ZERO,
            faults: FaultRates::default(),
            stall: Duration::from_secs(2),
            seed: 1,
            connection_count_max: 0,
            s7: S7FarmOptions::default(),
            enip: EnipFarmOptions::default(),
            opcua: OpcuaFarmOptions::default(),
            opcua_tags: 10,
        }
    }
}

impl FarmOptions {
    /// Connections at most: the configured bound, or four per port.
    pub fn connection_bound(&self) -> usize {
        if self.connection_count_max > 0 {
            self.connection_count_max
        } else {
            (self.port_count() as usize * 4).max(64)
        }
    }

    /// Where the devices are served; `None` while `units_per_port` is out
    /// of `1..=UNITS_PER_PORT_MAX`.
    pub fn layout(&self) -> Option<PortLayout> {
        PortLayout::new(self.devices, self.units_per_port)
    }

    /// Listening ports: `ceil(devices / units_per_port)`.
    pub fn port_count(&self) -> u32 {
        self.layout().map_or(self.devices, PortLayout::port_count)
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.devices == 0 {
            return Err("a farm needs at least one device".into());
        }
        self.validate_units_per_port()?;
        let port_count = self.port_count();
        if self.base_port != 0 && u32::from(self.base_port) + port_count > 65536 {
            return Err(format!(
                "ports {}+{port_count} run past 65535",
                self.base_port
            ));
        }
        if self.register_count > 65536 || self.bit_count > 65536 {
            return Err("register_count and bit_count are at most 65536".into());
        }
        if !(1..=FARM_THREAD_COUNT_MAX).contains(&self.threads) {
            return Err(format!("threads must be in 1..={FARM_THREAD_COUNT_MAX}"));
        }
        self.faults.validate()?;
        self.enip.validate()?;
        if self.protocol.has_opcua() {
            self.opcua.validate()?;
            if self.faults != FaultRates::default() || !self.response_delay.is_zero() {
                return Err(
                    "fault rates and response delays are not served by the OPC UA \
                            devices"
                        .into(),
                );
            }
            if self.opcua_tags == 0 || self.opcua_tags > OPCUA_TAGS_MAX {
                return Err(format!(
                    "an OPC UA device holds 1..={OPCUA_TAGS_MAX} variables, not {}",
                    self.opcua_tags
                ));
            }
        }
        if self.protocol.has_s7() {
            self.s7.validate()?;
            let f = &self.faults;
            let sum =
                f.drop_connection + f.stall + f.exception + f.malformed + self.s7.pdu_overflow;
            if sum > 1.0 + 1e-9 {
                return Err(format!(
                    "fault rates with the PDU overflow rate sum to {sum}: at most 1"
                ));
            }
        } else if self.s7.pdu_overflow > 0.0 || self.s7.put_get_off {
            return Err(
                "PDU overflow and PUT/GET off are S7 modes: the farm has no S7 device".into(),
            );
        }
        Ok(())
    }

    fn validate_units_per_port(&self) -> Result<(), String> {
        if self.layout().is_none() {
            return Err(format!(
                "units_per_port must be in 1..={UNITS_PER_PORT_MAX} (the Modbus unit ids), \
                 not {}",
                self.units_per_port
            ));
        }
        if self.units_per_port > 1 && self.protocol != FarmProtocol::Modbus {
            return Err(format!(
                "units_per_port {} puts several Modbus devices behind one port (a \
                 serial-to-TCP gateway): a {} farm serves a port per device",
                self.units_per_port, self.protocol
            ));
        }
        Ok(())
    }
}

pub(crate) struct FarmShared {
    stop: AtomicBool,
    counters: Counters,
}

pub struct Farm;

impl Farm {
    /// Binds every port (so the ports are known and errors reported here),
    /// then starts the event loops.
    pub fn start(options: FarmOptions) -> io::Result<FarmHandle> {
        options
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let shared = Arc::new(FarmShared {
            stop: AtomicBool::new(false),
            counters: Counters::default(),
        });
        if options.protocol.has_opcua() {
            return Self::start_opcua(&options, shared);
        }
        let layout = options
            .layout()
            .ok_or_else(|| io::Error::other("units_per_port is validated"))?;
        let behaviour = Behaviour {
            response_delay: options.response_delay,
            stall: options.stall,
            units_per_port: layout.units_per_port(),
            modbus: ModbusMemory {
                register_count: options.register_count,
                bit_count: options.bit_count,
            },
            modbus_plan: FaultPlan::new(&options.faults, 0.0, options.stall),
            s7: options.s7.behaviour(),
            s7_plan: FaultPlan::new(&options.faults, options.s7.pdu_overflow, options.stall),
            enip: options.enip.behaviour(),
            enip_plan: FaultPlan::new(&options.faults, 0.0, options.stall),
        };
        let mut loops: Vec<EventLoop> = Vec::with_capacity(options.threads);
        for _ in 0..options.threads {
            loops.push(EventLoop {
                poll: Poll::new()?,
                listeners: Vec::new(),
                devices: Vec::new(),
                behaviour,
                connection_count_max: options.connection_bound().div_ceil(options.threads),
            });
        }
        let ports = Self::bind_ports(&options, layout, &mut loops)?;
        let mut wakers = Vec::with_capacity(options.threads);
        let mut threads = Vec::with_capacity(options.threads);
        for (i, event_loop) in loops.into_iter().enumerate() {
            wakers.push(Waker::new(event_loop.poll.registry(), WAKER_TOKEN)?);
            let shared = Arc::clone(&shared);
            threads.push(
                std::thread::Builder::new()
                    .name(format!("farm-{i}"))
                    .spawn(move || event_loop.run(shared))?,
            );
        }
        assert_eq!(ports.len(), layout.port_count() as usize);
        Ok(FarmHandle {
            ports,
            layout,
            shared,
            wakers,
            threads,
            opcua: None,
        })
    }

    /// Binds every port (port index `k` on loop `k % threads`) and gives
    /// its loop the devices behind it; returns the ports by port index.
    fn bind_ports(
        options: &FarmOptions,
        layout: PortLayout,
        loops: &mut [EventLoop],
    ) -> io::Result<Vec<u16>> {
        let mut ports = Vec::with_capacity(layout.port_count() as usize);
        for port_index in 0..layout.port_count() {
            let addr = port_addr(options, port_index);
            let listener =
                TcpListener::bind(addr).map_err(|e| bind_error(options, port_index, addr, e))?;
            ports.push(listener.local_addr()?.port());
            // Every unit of a port on the loop that owns its connections.
            let event_loop = (port_index as usize)
                .checked_rem(loops.len())
                .and_then(|i| loops.get_mut(i))
                .ok_or_else(|| io::Error::other("no event loop (threads >= 1 is validated)"))?;
            let (first, count) = layout.devices_of_port(port_index);
            let units = UnitSlots {
                first: event_loop.devices.len(),
                count: count as usize,
            };
            event_loop.listeners.push((listener, units));
            for device in first..first + count {
                let seed = options.seed ^ u64::from(device).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                event_loop.devices.push(Device {
                    index: device,
                    protocol: options.protocol.device(device),
                    counter: 0,
                    rng: SplitMix64::new(seed),
                });
            }
        }
        Ok(ports)
    }

    /// The OPC UA farm: every port bound here, the servers on threads of
    /// their own (opcua/serve.rs).
    fn start_opcua(options: &FarmOptions, shared: Arc<FarmShared>) -> io::Result<FarmHandle> {
        let mut served = Vec::with_capacity(options.devices as usize);
        let mut ports = Vec::with_capacity(options.devices as usize);
        for device in 0..options.devices {
            let listener = bind(options, device)?;
            ports.push(listener.local_addr()?.port());
            served.push(opcua::serve::Served { device, listener });
        }
        let serving = opcua::serve::Serving::start(
            served,
            options.threads,
            options.opcua,
            options.opcua_tags,
            Arc::clone(&shared),
        )?;
        Ok(FarmHandle {
            ports,
            layout: PortLayout::one_per_port(options.devices),
            shared,
            wakers: Vec::new(),
            threads: Vec::new(),
            opcua: Some(serving),
        })
    }
}

/// Device `device`'s listener on 127.0.0.1 (a std one: the OPC UA servers
/// take it over into their runtimes). OPC UA farms have a port per device.
fn bind(options: &FarmOptions, device: u32) -> io::Result<std::net::TcpListener> {
    let addr = port_addr(options, device);
    std::net::TcpListener::bind(addr).map_err(|e| bind_error(options, device, addr, e))
}

/// Where port index `port_index` listens: `base_port + port_index`, or a
/// free port.
fn port_addr(options: &FarmOptions, port_index: u32) -> SocketAddr {
    let port = if options.base_port == 0 {
        0
    } else {
        // base_port + port_count <= 65536 is validated.
        options.base_port + port_index as u16
    };
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn bind_error(options: &FarmOptions, port_index: u32, addr: SocketAddr, e: io::Error) -> io::Error {
    let what = if options.units_per_port == 1 {
        format!("farm device {port_index}")
    } else {
        format!("farm port {port_index}")
    };
    io::Error::new(e.kind(), format!("{what}: bind {addr}: {e}"))
}

/// A running farm. Dropping it stops it (as `stop` does, ignoring errors).
pub struct FarmHandle {
    ports: Vec<u16>,
    layout: PortLayout,
    shared: Arc<FarmShared>,
    wakers: Vec<Waker>,
    threads: Vec<JoinHandle<io::Result<()>>>,
    opcua: Option<opcua::serve::Serving>,
}

impl FarmHandle {
    /// Port of port index `k` at index `k`, all on 127.0.0.1: device `i`'s
    /// at index `i` with a port per device, at `i / units_per_port` else.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Which port and unit id serve which device.
    pub fn layout(&self) -> PortLayout {
        self.layout
    }

    /// The address serving `device` (shared by the units of its port).
    pub fn addr(&self, device: u32) -> Option<SocketAddr> {
        let port_index = self.layout.port_index(device)?;
        let port = *self.ports.get(port_index as usize)?;
        Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// The unit id `device` answers to on its port (any unit id reaches a
    /// device with a port of its own; this is then 1).
    pub fn unit_id(&self, device: u32) -> Option<u8> {
        self.layout.unit_id(device)
    }

    /// Counters so far (published by each loop once per iteration).
    pub fn counters(&self) -> FarmCounters {
        self.shared.counters.snapshot()
    }

    /// Stops the loops, closes every socket, returns the final counters or
    /// the first event-loop error.
    pub fn stop(mut self) -> io::Result<FarmCounters> {
        self.shutdown()?;
        Ok(self.counters())
    }

    fn shutdown(&mut self) -> io::Result<()> {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::Release);
        for waker in &self.wakers {
            waker.wake()?;
        }
        let mut result = match &mut self.opcua {
            Some(serving) => serving.stop(),
            None => Ok(()),
        };
        for thread in self.threads.drain(..) {
            let outcome = thread
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("farm event loop panicked")));
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }
}

impl Drop for FarmHandle {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
