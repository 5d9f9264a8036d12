//! The validated configuration: what the rest of millrace reads. Everything
//! here has already passed validation (see `parse.rs`, `tag.rs`, `validate.rs`), so
//! consumers may rely on the invariants written on each field.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::sample::TagId;

#[derive(Clone, Debug)]
pub struct Config {
    /// The file this configuration came from (for messages).
    pub source: PathBuf,
    pub gateway: GatewayConfig,
    pub readers: ReadersConfig,
    pub wal: WalConfig,
    pub metrics: MetricsConfig,
    pub sinks: Vec<SinkConfig>,
    pub devices: Vec<DeviceConfig>,
}

/// This gateway among many (`[gateway]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The `gateway` column's symbol: a non-empty name without control
    /// characters; by default the host name.
    pub id: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Auto,
    IoUring,
    Epoll,
}

#[derive(Clone, Debug)]
pub struct ReadersConfig {
    /// At least 1.
    pub threads: usize,
    /// Empty, or exactly `threads` entries.
    pub cores: Vec<usize>,
    pub backend: Backend,
    /// Sample slots in each reader's SPSC ring; a power of two.
    pub ring_slots: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    Block,
    DropOldest,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncMode {
    /// fdatasync/msync before the durable sequence number moves.
    Data,
    /// No sync at all: the durable number moves on append. Unsafe: a power
    /// loss loses what the page cache held. For benchmarks only.
    None,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Bytes per segment file; a multiple of 4096.
    pub segment_size: u64,
    /// Bytes of segments the WAL may hold before `when_full` applies;
    /// at least two segments.
    pub quota: u64,
    pub commit_interval: Duration,
    /// Commit early once this many bytes are pending.
    pub commit_bytes: u64,
    pub when_full: WhenFull,
    pub sync: SyncMode,
}

#[derive(Clone, Debug)]
pub struct MetricsConfig {
    /// `None` disables the endpoint.
    pub listen: Option<SocketAddr>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkKind {
    Kdb,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeType {
    /// Nanoseconds since midnight UTC (kdb+ type 16), what vanilla tick.q wants.
    Timespan,
    /// Nanoseconds since 2000.01.01 (kdb+ type 12).
    Timestamp,
}

/// A secret read from the environment or a file. Its `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    /// The only way to the text; call it where the bytes go on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

#[derive(Clone, Debug)]
pub struct SinkConfig {
    pub name: String,
    pub kind: SinkKind,
    /// `host:port` as written; resolved when connecting.
    pub address: String,
    pub user: String,
    pub password: Secret,
    pub table: String,
    pub time_type: TimeType,
    /// At least 1.
    pub batch_rows: usize,
    pub batch_age: Duration,
    /// TLS to kdb+ (`tls = true`, kdb+ started with `-E`); `None`: plain TCP.
    pub tls: Option<SinkTls>,
    /// The columns of `.u.upd`, in the tickerplant table's order (`columns`).
    pub columns: crate::kdb::Schema,
    /// Glob patterns on device names (`devices`): the sink delivers only
    /// the rows of the devices they match. `None`: every device. Each
    /// pattern matched a device of the configuration it came from.
    pub devices: Option<Vec<String>>,
}

impl SinkConfig {
    /// Whether this sink delivers the rows of the device named `device`.
    pub fn takes(&self, device: &str) -> bool {
        self.devices.as_ref().is_none_or(|patterns| {
            patterns
                .iter()
                .any(|p| super::routing::glob_match(p, device))
        })
    }
}

/// A sink's TLS settings. The files were read and checked when the
/// configuration was loaded; the sink reads them again at each connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkTls {
    /// PEM CA certificate(s) the server's certificate must chain to: the
    /// only trust anchors (no system roots).
    pub ca_file: PathBuf,
    /// Presented when the server asks for a client certificate.
    pub client_cert: Option<ClientCertFiles>,
    /// The name the server's certificate must carry, a DNS name or an IP
    /// address (valid as one); by default the host part of `address`.
    pub server_name: String,
}

/// A PEM certificate chain and the PEM private key that goes with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The protocol a device speaks: it selects the device's keys, its tag
/// address syntax and its session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    ModbusTcp,
    ModbusRtuTcp,
    S7,
    /// EtherNet/IP CIP to Allen-Bradley Logix and Micro800 controllers.
    EthernetIp,
    /// OPC UA binary over TCP (`opc.tcp://`), through the async-opcua stack.
    Opcua,
}

impl Protocol {
    /// Every protocol with the word a configuration uses for it.
    pub const ALL: &'static [(&'static str, Protocol)] = &[
        ("modbus-tcp", Protocol::ModbusTcp),
        ("modbus-rtu-tcp", Protocol::ModbusRtuTcp),
        ("s7", Protocol::S7),
        ("ethernet-ip", Protocol::EthernetIp),
        ("opcua", Protocol::Opcua),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(name, _)| name)
    }

    /// The TCP port used when `address` names none.
    pub const fn default_port(self) -> Option<u16> {
        match self {
            Protocol::ModbusTcp | Protocol::ModbusRtuTcp => None,
            Protocol::S7 => Some(102),
            Protocol::EthernetIp => Some(44818),
            Protocol::Opcua => Some(super::opcua::PORT_DEFAULT),
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What every device has, whatever its protocol, plus the protocol's own
/// part in `driver`.
#[derive(Clone, Debug)]
pub struct DeviceConfig {
    pub name: String,
    pub protocol: Protocol,
    /// `host:port` as written (the port may be implied by the protocol, see
    /// `Protocol::default_port`, and is then added); resolved when
    /// connecting.
    pub address: String,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Requests in flight on the connection, at least 1 (a protocol may
    /// negotiate fewer).
    pub max_inflight: u32,
    pub driver: DriverConfig,
}

/// The protocol's own settings and tags. The variant always matches
/// `DeviceConfig::protocol`.
#[derive(Clone, Debug)]
pub enum DriverConfig {
    Modbus(ModbusDevice),
    S7(S7Device),
    EthernetIp(EnipDevice),
    Opcua(super::opcua_types::OpcuaDevice),
}

/// A Modbus TCP or RTU-over-TCP device's own settings.
#[derive(Clone, Debug)]
pub struct ModbusDevice {
    pub unit_id: u8,
    /// Registers per read request, 1..=125.
    pub max_registers: u16,
    /// Bits per coil/discrete read request, 1..=2000.
    pub max_bits: u16,
    /// Unused registers (or bits) the planner may read to join two ranges.
    pub max_hole: u16,
    /// Unique names, in file order: `[[device.tag]]` tables first, then the CSV rows.
    pub tags: Vec<ModbusTag>,
}

impl DeviceConfig {
    /// A Modbus device with the defaults of docs/configuration.md: timeout
    /// 1 s, 125 registers and 2,000 bits per request, no holes, one request
    /// in flight (tests, benches and the farm build devices this way).
    pub fn modbus(
        name: &str,
        protocol: Protocol,
        address: &str,
        unit_id: u8,
        poll_interval: Duration,
        tags: Vec<ModbusTag>,
    ) -> DeviceConfig {
        DeviceConfig {
            name: name.to_string(),
            protocol,
            address: address.to_string(),
            poll_interval,
            timeout: Duration::from_secs(1),
            max_inflight: 1,
            driver: DriverConfig::Modbus(ModbusDevice {
                unit_id,
                max_registers: 125,
                max_bits: 2000,
                max_hole: 0,
                tags,
            }),
        }
    }

    /// The Modbus part, if this is a Modbus device.
    pub fn modbus_part(&self) -> Option<&ModbusDevice> {
        match &self.driver {
            DriverConfig::Modbus(m) => Some(m),
            _ => None,
        }
    }

    pub fn modbus_part_mut(&mut self) -> Option<&mut ModbusDevice> {
        match &mut self.driver {
            DriverConfig::Modbus(m) => Some(m),
            _ => None,
        }
    }

    pub fn s7_part(&self) -> Option<&S7Device> {
        match &self.driver {
            DriverConfig::S7(s) => Some(s),
            _ => None,
        }
    }

    pub fn enip_part(&self) -> Option<&EnipDevice> {
        match &self.driver {
            DriverConfig::EthernetIp(e) => Some(e),
            _ => None,
        }
    }

    pub fn opcua_part(&self) -> Option<&super::opcua_types::OpcuaDevice> {
        match &self.driver {
            DriverConfig::Opcua(o) => Some(o),
            _ => None,
        }
    }

    /// Sample names of the device in `TagId` order (an array tag gives one
    /// name per element).
    pub fn sample_names(&self) -> Vec<std::borrow::Cow<'_, str>> {
        match &self.driver {
            DriverConfig::Modbus(m) => m.tags.iter().map(|t| t.name.as_str().into()).collect(),
            DriverConfig::S7(s) => s.tags.iter().map(|t| t.name.as_str().into()).collect(),
            DriverConfig::EthernetIp(e) => e.tags.iter().flat_map(EnipTag::sample_names).collect(),
            DriverConfig::Opcua(o) => o
                .tags
                .iter()
                .flat_map(super::OpcuaTag::sample_names)
                .collect(),
        }
    }

    /// Tag ids the device uses: one per sample name.
    pub fn tag_count(&self) -> usize {
        match &self.driver {
            DriverConfig::Modbus(m) => m.tags.len(),
            DriverConfig::S7(s) => s.tags.len(),
            DriverConfig::EthernetIp(e) => e.tags.iter().map(|t| t.count as usize).sum(),
            DriverConfig::Opcua(o) => o.tags.iter().map(|t| t.count as usize).sum(),
        }
    }

    /// Whether any of the device's tags carries text.
    pub fn has_text(&self) -> bool {
        self.text_tag().is_some()
    }

    /// The name of the device's first tag that carries text.
    pub fn text_tag(&self) -> Option<&str> {
        match &self.driver {
            DriverConfig::Modbus(m) => m
                .tags
                .iter()
                .find(|t| t.data_type == DataType::String)
                .map(|t| t.name.as_str()),
            DriverConfig::S7(s) => s
                .tags
                .iter()
                .find(|t| t.data_type.is_text())
                .map(|t| t.name.as_str()),
            DriverConfig::EthernetIp(e) => e
                .tags
                .iter()
                .find(|t| t.data_type.is_text())
                .map(|t| t.name.as_str()),
            DriverConfig::Opcua(o) => o
                .tags
                .iter()
                .find(|t| t.data_type.is_text())
                .map(|t| t.name.as_str()),
        }
    }
}

/// An S7 device's own settings (ISO-on-TCP, port 102 unless given).
#[derive(Clone, Debug)]
pub struct S7Device {
    /// Rack of the CPU, 0..=7.
    pub rack: u8,
    /// Slot of the CPU, 0..=31 (S7-300: usually 2; S7-1200/1500: 1).
    pub slot: u8,
    pub connection_type: S7ConnectionType,
    /// PDU size requested in Setup Communication, 240..=960; the PLC's
    /// answer wins (S7-300/1200: 240, S7-400: 480, S7-1500: 960).
    pub pdu_size: u16,
    /// Our TSAP in the COTP connect request (0x0100 unless given).
    pub local_tsap: u16,
    /// The PLC's TSAP; `None`: from `connection_type`, `rack` and `slot`.
    pub remote_tsap: Option<u16>,
    /// Unused bytes the planner may read to join two ranges of one area.
    pub max_hole: u16,
    /// Unique names, in file order: `[[device.tag]]` tables first, then the CSV rows.
    pub tags: Vec<S7Tag>,
}

impl S7Device {
    /// The remote TSAP: `connection_type << 8 | rack * 0x20 + slot` unless
    /// configured.
    pub fn remote_tsap(&self) -> u16 {
        self.remote_tsap.unwrap_or(
            (u16::from(self.connection_type as u8) << 8)
                | (u16::from(self.rack) * 0x20)
                | u16::from(self.slot),
        )
    }
}

/// The kind of S7 connection, the high byte of the remote TSAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum S7ConnectionType {
    /// Programming device (PG).
    Pg = 1,
    /// Operator panel (OP).
    Op = 2,
    /// S7 basic communication.
    Basic = 3,
}

/// An S7 memory area, as Step 7 absolute addresses name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum S7Area {
    /// Data block `DBn` (area 0x84).
    Db(u16),
    /// Bit memory `M` (German `M` too; area 0x83, MK).
    Merker,
    /// Process inputs `I` / German `E` (area 0x81, PE).
    Inputs,
    /// Process outputs `Q` / German `A` (area 0x82, PA).
    Outputs,
}

impl S7Area {
    /// The area byte of a Read Var item.
    pub const fn code(self) -> u8 {
        match self {
            S7Area::Inputs => 0x81,
            S7Area::Outputs => 0x82,
            S7Area::Merker => 0x83,
            S7Area::Db(_) => 0x84,
        }
    }
    /// The DB number of a Read Var item (0 outside data blocks).
    pub const fn db_number(self) -> u16 {
        match self {
            S7Area::Db(n) => n,
            _ => 0,
        }
    }
}

/// The S7 data types millrace reads (S7-300/400/1200/1500 names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum S7Type {
    Bool,
    Byte,
    Word,
    DWord,
    SInt,
    USInt,
    Int,
    UInt,
    DInt,
    UDInt,
    LInt,
    ULInt,
    Real,
    LReal,
    Char,
    /// `string[N]`: max-length byte, actual-length byte, N characters.
    String(u8),
    /// `wstring[N]`: max-length u16, actual-length u16, N UTF-16BE units.
    WString(u16),
    /// DATE_AND_TIME: 8 bytes BCD.
    DateAndTime,
    /// DTL: 12 bytes.
    Dtl,
    /// S5TIME: 2 bytes (time base + 3 BCD digits).
    S5Time,
    /// TIME: 4 bytes, signed milliseconds.
    Time,
}

impl S7Type {
    /// Bytes the value occupies in the PLC (a bool: 1, the byte of its bit).
    pub const fn byte_size(self) -> u32 {
        match self {
            S7Type::Bool | S7Type::Byte | S7Type::SInt | S7Type::USInt | S7Type::Char => 1,
            S7Type::Word | S7Type::Int | S7Type::UInt | S7Type::S5Time => 2,
            S7Type::DWord | S7Type::DInt | S7Type::UDInt | S7Type::Real | S7Type::Time => 4,
            S7Type::LInt | S7Type::ULInt | S7Type::LReal | S7Type::DateAndTime => 8,
            S7Type::Dtl => 12,
            S7Type::String(n) => n as u32 + 2,
            S7Type::WString(n) => 2 * n as u32 + 4,
        }
    }

    pub const fn is_text(self) -> bool {
        matches!(self, S7Type::Char | S7Type::String(_) | S7Type::WString(_))
    }
}

impl std::fmt::Display for S7Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S7Area::Db(n) => write!(f, "DB{n}"),
            S7Area::Merker => f.write_str("M"),
            S7Area::Inputs => f.write_str("I"),
            S7Area::Outputs => f.write_str("Q"),
        }
    }
}

impl S7Type {
    /// Every type word a configuration may use, without the `[N]` of the
    /// text types (`string`, `wstring`; their default length follows Step 7:
    /// 254).
    pub const NAMES: &'static [(&'static str, S7Type)] = &[
        ("bool", S7Type::Bool),
        ("byte", S7Type::Byte),
        ("word", S7Type::Word),
        ("dword", S7Type::DWord),
        ("sint", S7Type::SInt),
        ("usint", S7Type::USInt),
        ("int", S7Type::Int),
        ("uint", S7Type::UInt),
        ("dint", S7Type::DInt),
        ("udint", S7Type::UDInt),
        ("lint", S7Type::LInt),
        ("ulint", S7Type::ULInt),
        ("real", S7Type::Real),
        ("lreal", S7Type::LReal),
        ("char", S7Type::Char),
        ("string", S7Type::String(254)),
        ("wstring", S7Type::WString(254)),
        ("date_and_time", S7Type::DateAndTime),
        ("dtl", S7Type::Dtl),
        ("s5time", S7Type::S5Time),
        ("time", S7Type::Time),
    ];
}

impl std::fmt::Display for S7Type {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S7Type::String(n) => write!(f, "string[{n}]"),
            S7Type::WString(n) => write!(f, "wstring[{n}]"),
            other => {
                let name = S7Type::NAMES
                    .iter()
                    .find(|(_, t)| t == other)
                    .map_or("?", |(name, _)| name);
                f.write_str(name)
            }
        }
    }
}

/// One S7 tag: where it is and how to read it.
#[derive(Clone, Debug, PartialEq)]
pub struct S7Tag {
    /// Unique across the whole configuration.
    pub name: String,
    pub area: S7Area,
    /// Byte offset of the value in its area.
    pub byte: u32,
    /// For a bool: the bit 0..=7 of that byte; else 0.
    pub bit: u8,
    pub data_type: S7Type,
    /// value = raw * scale + offset (numeric types), as for Modbus tags.
    pub scale: f64,
    pub offset: f64,
}

/// An EtherNet/IP device's own settings (a Logix or Micro800 controller,
/// TCP port 44818 unless given).
#[derive(Clone, Debug, PartialEq)]
pub struct EnipDevice {
    /// From the adapter to the controller, hop by hop: `path = "1,0"` is the
    /// backplane (port 1), slot 0; empty for a Micro800 or a CompactLogix
    /// reached on its own Ethernet port.
    pub route: Vec<RouteHop>,
    /// Bytes per connected message asked for in the Large Forward Open,
    /// `CONNECTION_SIZE_MIN..=CONNECTION_SIZE_MAX`; a module that refuses
    /// it gets a Forward Open of at most 500 instead.
    pub connection_size: u16,
    /// Unique names, in file order: `[[device.tag]]` tables first, then the CSV rows.
    pub tags: Vec<EnipTag>,
}

impl EnipDevice {
    /// The largest connection size a Large Forward Open asks for (what a
    /// ControlLogix EN2T/L8x and CompactLogix 5380 accept).
    pub const CONNECTION_SIZE_MAX: u16 = 4002;
    /// The smallest a configuration may ask for: a Read Tag of one STRING
    /// and its reply fit in it with room to spare.
    pub const CONNECTION_SIZE_MIN: u16 = 200;
    /// Tag samples a device may have: the Read Tag element count is 16 bits
    /// per tag, and a device's whole table stays a modest share of the
    /// 2^24 tag ids.
    pub const SAMPLES_MAX: usize = 1 << 20;

    fn assert_invariants(&self) {
        assert!(
            (Self::CONNECTION_SIZE_MIN..=Self::CONNECTION_SIZE_MAX).contains(&self.connection_size)
        );
        for hop in &self.route {
            assert!(hop.port >= 1);
        }
        for t in &self.tags {
            assert!(t.count >= 1);
            assert!(t.scale.is_finite() && t.offset.is_finite() && t.scale != 0.0);
            assert!(!t.address.segments.is_empty());
            if let Some(bit) = t.address.bit {
                assert!(t.data_type == CipType::Bool && bit < 64 && t.count == 1);
            }
        }
    }
}

/// One hop of a route path: out of `port` of the module we are at, to the
/// module at `link` on it (a slot number on a backplane, or an IP address
/// on an Ethernet port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RouteHop {
    /// 1 is the backplane of a ControlLogix chassis, 2 the front Ethernet
    /// port of most modules.
    pub port: u16,
    pub link: RouteLink,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RouteLink {
    /// A slot (or node) number.
    Slot(u8),
    /// An IP address (dotted text, sent as ASCII), for a hop over Ethernet.
    Address(String),
}

impl std::fmt::Display for RouteHop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.link {
            RouteLink::Slot(slot) => write!(f, "{},{slot}", self.port),
            RouteLink::Address(address) => write!(f, "{},{address}", self.port),
        }
    }
}

/// The Logix data types millrace reads (Rockwell's names, CIP type codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CipType {
    /// A BOOL tag; with `count > 1` or an element index, bits of a BOOL
    /// array (which Logix stores as DWORDs); with `.N`, bit N of an integer.
    Bool,
    SInt,
    Int,
    DInt,
    LInt,
    USInt,
    UInt,
    UDInt,
    ULInt,
    Real,
    LReal,
    /// The Logix STRING structure: DINT LEN, SINT[82] DATA.
    String,
}

impl CipType {
    pub const NAMES: &'static [(&'static str, CipType)] = &[
        ("bool", CipType::Bool),
        ("sint", CipType::SInt),
        ("int", CipType::Int),
        ("dint", CipType::DInt),
        ("lint", CipType::LInt),
        ("usint", CipType::USInt),
        ("uint", CipType::UInt),
        ("udint", CipType::UDInt),
        ("ulint", CipType::ULInt),
        ("real", CipType::Real),
        ("lreal", CipType::LReal),
        ("string", CipType::String),
    ];

    /// Characters of the Logix STRING's DATA member: the text capacity.
    pub const STRING_CHARS: usize = 82;

    pub const fn is_text(self) -> bool {
        matches!(self, CipType::String)
    }

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(name, _)| name)
    }
}

impl std::fmt::Display for CipType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A Logix tag address, parsed (`config::parse_enip_address`): the symbolic
/// segments of a Read Tag request path, plus a bit of an integer.
///
/// `Program:Main.Line[3].Temps[1,2]` is the names `Program:Main`, `Line`,
/// `Temps` with the indices `[3]` after `Line` and `[1,2]` after `Temps`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SymbolicPath {
    pub segments: Vec<PathSegment>,
    /// `Flags.5`: bit 5 of the integer `Flags` (read whole, one bit kept).
    pub bit: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A tag, program or member name (ASCII, 1..=255 bytes).
    Name(String),
    /// Array element indices after a name: one to three dimensions.
    Index(Vec<u32>),
}

impl SymbolicPath {
    /// The element indices after the last name, if the path ends in some.
    pub fn last_index(&self) -> Option<&[u32]> {
        match self.segments.last() {
            Some(PathSegment::Index(indices)) => Some(indices),
            _ => None,
        }
    }
}

impl std::fmt::Display for SymbolicPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for segment in &self.segments {
            match segment {
                PathSegment::Name(name) => {
                    if !first {
                        f.write_str(".")?;
                    }
                    f.write_str(name)?;
                }
                PathSegment::Index(indices) => {
                    f.write_str("[")?;
                    for (i, index) in indices.iter().enumerate() {
                        if i > 0 {
                            f.write_str(",")?;
                        }
                        write!(f, "{index}")?;
                    }
                    f.write_str("]")?;
                }
            }
            first = false;
        }
        if let Some(bit) = self.bit {
            write!(f, ".{bit}")?;
        }
        Ok(())
    }
}

/// One EtherNet/IP tag: `count` elements from `address` on, each a sample.
#[derive(Clone, Debug, PartialEq)]
pub struct EnipTag {
    /// Unique across the whole configuration; with `count > 1` the samples
    /// are named `NAME[0]` .. `NAME[count - 1]`.
    pub name: String,
    pub address: SymbolicPath,
    pub data_type: CipType,
    /// Elements read, 1..=65535 (the Read Tag element count is 16 bits).
    pub count: u16,
    /// value = raw * scale + offset (numeric types), as for Modbus tags.
    pub scale: f64,
    pub offset: f64,
}

impl EnipTag {
    /// An unscaled tag of one element.
    pub fn new(name: &str, address: SymbolicPath, data_type: CipType) -> Self {
        EnipTag {
            name: name.to_string(),
            address,
            data_type,
            count: 1,
            scale: 1.0,
            offset: 0.0,
        }
    }

    /// The names of its samples in `TagId` order.
    pub fn sample_names(&self) -> Vec<std::borrow::Cow<'_, str>> {
        if self.count == 1 {
            return vec![self.name.as_str().into()];
        }
        (0..self.count)
            .map(|i| format!("{}[{i}]", self.name).into())
            .collect()
    }

    pub fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }
}

/// The four Modbus data areas. Function code to read each: coil 1,
/// discrete 2, holding 3, input 4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Area {
    Coil,
    Discrete,
    Input,
    Holding,
}

impl Area {
    pub const fn is_bit_area(self) -> bool {
        matches!(self, Area::Coil | Area::Discrete)
    }
    pub const fn function_code(self) -> u8 {
        match self {
            Area::Coil => 1,
            Area::Discrete => 2,
            Area::Holding => 3,
            Area::Input => 4,
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            Area::Coil => "coil",
            Area::Discrete => "discrete",
            Area::Input => "input",
            Area::Holding => "holding",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataType {
    Bool,
    Int16,
    Uint16,
    Int32,
    Uint32,
    Int64,
    Uint64,
    Float32,
    Float64,
    /// `length` bytes of text, two per register, at most 8 (one sample's value).
    String,
}

impl DataType {
    /// Registers this type occupies; `string_len` is the text length in bytes.
    /// A bool read from a register (with `bit`) occupies one register.
    pub const fn register_count(self, string_len: u16) -> u16 {
        match self {
            DataType::Bool | DataType::Int16 | DataType::Uint16 => 1,
            DataType::Int32 | DataType::Uint32 | DataType::Float32 => 2,
            DataType::Int64 | DataType::Uint64 | DataType::Float64 => 4,
            DataType::String => string_len.div_ceil(2),
        }
    }
    pub const fn name(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Int16 => "int16",
            DataType::Uint16 => "uint16",
            DataType::Int32 => "int32",
            DataType::Uint32 => "uint32",
            DataType::Int64 => "int64",
            DataType::Uint64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            DataType::String => "string",
        }
    }
}

/// Byte and word order of a multi-register value, named by where the bytes of
/// the big-endian value `A B C D` land on the wire.
///
/// - `ABCD`: big-endian words, high word first (the Modbus default).
/// - `CDAB`: big-endian words, low word first ("word swap").
/// - `BADC`: bytes swapped inside each word, high word first ("byte swap").
/// - `DCBA`: fully little-endian.
///
/// 64-bit values extend the same rule to four words (`ABCD` = words 0..3 high
/// first; `CDAB` = the four words in reverse order; `BADC` = words in order,
/// bytes swapped; `DCBA` = all eight bytes reversed). 16-bit values only see
/// the byte swap (`BADC`, `DCBA`). Strings: two characters per register, the
/// first in the high byte, unless the order swaps bytes (`BADC`, `DCBA`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WordOrder {
    Abcd,
    Cdab,
    Badc,
    Dcba,
}

impl WordOrder {
    pub const fn swaps_bytes(self) -> bool {
        matches!(self, WordOrder::Badc | WordOrder::Dcba)
    }
    pub const fn swaps_words(self) -> bool {
        matches!(self, WordOrder::Cdab | WordOrder::Dcba)
    }
}

/// One Modbus tag.
#[derive(Clone, Debug, PartialEq)]
pub struct ModbusTag {
    /// Unique across the whole configuration.
    pub name: String,
    pub area: Area,
    /// Zero-based register or bit address; the tag's last register fits in 0..=65535.
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    /// For a bool read from a register: the bit, 0 (least significant) to 15.
    pub bit: Option<u8>,
    /// For strings: the text length in bytes, 1..=250 (`config::modbus::STRING_BYTES_MAX`).
    pub length: u16,
    /// value = raw * scale + offset, applied when scale != 1 or offset != 0
    /// (the sample is then a float).
    pub scale: f64,
    pub offset: f64,
}

impl ModbusTag {
    pub const fn register_count(&self) -> u16 {
        if self.area.is_bit_area() {
            1
        } else {
            self.data_type.register_count(self.length)
        }
    }
    pub fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }
}

impl Config {
    /// Tags of all devices; `TagId`s count from 0 in configuration order.
    pub fn tag_count(&self) -> usize {
        self.devices.iter().map(DeviceConfig::tag_count).sum()
    }

    /// The config's socket devices (every protocol but OPC UA) as the
    /// connections that poll them, each a list of device indices in config
    /// order, the connections in the order of their first device. Modbus
    /// devices with the same `address`, protocol and `poll_interval` share
    /// one connection: the units behind a serial-to-TCP gateway, told apart
    /// by their `unit_id` (a gateway often takes only a few connections).
    /// Every other device has a connection of its own.
    pub fn connections(&self) -> Vec<Vec<usize>> {
        let mut connections: Vec<Vec<usize>> = Vec::new();
        let mut shared = std::collections::HashMap::new();
        for (index, device) in self.devices.iter().enumerate() {
            match device.protocol {
                Protocol::Opcua => continue,
                Protocol::ModbusTcp | Protocol::ModbusRtuTcp => {
                    let key = (
                        device.address.as_str(),
                        device.protocol,
                        device.poll_interval,
                    );
                    match shared.entry(key) {
                        std::collections::hash_map::Entry::Occupied(at) => {
                            let at: usize = *at.get();
                            if let Some(connection) = connections.get_mut(at) {
                                connection.push(index);
                            }
                            continue;
                        }
                        std::collections::hash_map::Entry::Vacant(at) => {
                            at.insert(connections.len());
                        }
                    }
                }
                _ => {}
            }
            connections.push(vec![index]);
        }
        connections
    }

    /// The `TagId` of device `device_index`'s first tag (what the planner's
    /// `first_tag` wants); `tag_count()` for an index past the end.
    pub fn first_tag(&self, device_index: usize) -> TagId {
        let before: usize = self
            .devices
            .iter()
            .take(device_index)
            .map(DeviceConfig::tag_count)
            .sum();
        TagId(u32::try_from(before).unwrap_or(u32::MAX))
    }

    /// Every device's `first_tag`, in one pass.
    pub fn first_tags(&self) -> Vec<TagId> {
        let mut before = 0usize;
        self.devices
            .iter()
            .map(|d| {
                let first = TagId(u32::try_from(before).unwrap_or(u32::MAX));
                before += d.tag_count();
                first
            })
            .collect()
    }

    /// Every sample name with its id and device, in `TagId` order.
    pub fn tags(&self) -> impl Iterator<Item = (TagId, &DeviceConfig, std::borrow::Cow<'_, str>)> {
        self.devices
            .iter()
            .flat_map(|d| d.sample_names().into_iter().map(move |n| (d, n)))
            .enumerate()
            .map(|(i, (d, n))| (TagId(u32::try_from(i).unwrap_or(u32::MAX)), d, n))
    }

    /// Panics if a promise written on a field does not hold. Validation makes
    /// them hold; tests and the fuzz target call this to prove it.
    pub fn assert_invariants(&self) {
        let r = &self.readers;
        assert!(!self.gateway.id.is_empty() && !self.gateway.id.contains(char::is_control));
        assert!(r.threads >= 1);
        assert!(r.cores.is_empty() || r.cores.len() == r.threads);
        assert!(r.ring_slots.is_power_of_two());
        let w = &self.wal;
        assert!(w.segment_size % 4096 == 0 && w.segment_size > 0);
        assert!(w.quota >= 2 * w.segment_size);
        assert!(!w.commit_interval.is_zero());
        assert!(!self.sinks.is_empty() && !self.devices.is_empty());
        assert!(self.tag_count() <= TagId::MAX as usize + 1);
        let mut names = std::collections::HashSet::new();
        for s in &self.sinks {
            assert!(s.batch_rows >= 1 && !s.batch_age.is_zero() && !s.name.is_empty());
        }
        for d in &self.devices {
            assert!(d.max_inflight >= 1 && !d.poll_interval.is_zero() && d.tag_count() > 0);
            for name in d.sample_names() {
                assert!(names.insert(name.to_string()), "duplicate tag {name}");
            }
            match &d.driver {
                DriverConfig::Modbus(m) => {
                    assert!(matches!(
                        d.protocol,
                        Protocol::ModbusTcp | Protocol::ModbusRtuTcp
                    ));
                    m.assert_invariants();
                }
                DriverConfig::S7(s) => {
                    assert_eq!(d.protocol, Protocol::S7);
                    s.assert_invariants();
                }
                DriverConfig::EthernetIp(e) => {
                    assert_eq!(d.protocol, Protocol::EthernetIp);
                    e.assert_invariants();
                }
                DriverConfig::Opcua(o) => {
                    assert_eq!(d.protocol, Protocol::Opcua);
                    assert!(d.address.starts_with("opc.tcp://"));
                    o.assert_invariants();
                }
            }
        }
    }
}

impl S7Device {
    fn assert_invariants(&self) {
        assert!(self.rack <= 7 && self.slot <= 31);
        assert!((240..=960).contains(&self.pdu_size));
        for t in &self.tags {
            assert!(t.bit <= 7 && (t.bit == 0 || t.data_type == S7Type::Bool));
            assert!(t.scale.is_finite() && t.offset.is_finite() && t.scale != 0.0);
            let last = u64::from(t.byte) + u64::from(t.data_type.byte_size()) - 1;
            assert!(last <= u64::from(super::s7::BYTE_MAX));
            assert!(t.area != S7Area::Db(0));
            match t.data_type {
                S7Type::String(n) => {
                    assert!((1..=super::s7::STRING_CHARS_MAX).contains(&u16::from(n)))
                }
                S7Type::WString(n) => assert!((1..=super::s7::WSTRING_CHARS_MAX).contains(&n)),
                _ => {}
            }
        }
    }
}

impl ModbusDevice {
    fn assert_invariants(&self) {
        assert!((1..=125).contains(&self.max_registers) && (1..=2000).contains(&self.max_bits));
        for t in &self.tags {
            let last = u32::from(t.address) + u32::from(t.register_count()) - 1;
            assert!(last <= 65535 && t.register_count() >= 1);
            assert!(!t.area.is_bit_area() || t.data_type == DataType::Bool);
            assert!(t
                .bit
                .is_none_or(|b| b <= 15 && t.data_type == DataType::Bool));
            let string_max = crate::protocol::modbus::STRING_BYTES_MAX as u16;
            assert!(t.data_type != DataType::String || (1..=string_max).contains(&t.length));
            assert!(t.scale.is_finite() && t.offset.is_finite() && t.scale != 0.0);
        }
    }
}
