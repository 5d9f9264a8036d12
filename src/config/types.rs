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
    pub readers: ReadersConfig,
    pub wal: WalConfig,
    pub metrics: MetricsConfig,
    pub sinks: Vec<SinkConfig>,
    pub devices: Vec<DeviceConfig>,
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

#[derive(Clone, Debug)]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    ModbusTcp,
    ModbusRtuTcp,
}

#[derive(Clone, Debug)]
pub struct DeviceConfig {
    pub name: String,
    pub protocol: Protocol,
    /// `host:port` as written; resolved when connecting.
    pub address: String,
    pub unit_id: u8,
    pub poll_interval: Duration,
    pub timeout: Duration,
    /// Registers per read request, 1..=125.
    pub max_registers: u16,
    /// Bits per coil/discrete read request, 1..=2000.
    pub max_bits: u16,
    /// Unused registers (or bits) the planner may read to join two ranges.
    pub max_hole: u16,
    /// Requests in flight on the connection, at least 1.
    pub max_inflight: u32,
    /// Unique names, in file order: `[[device.tag]]` tables first, then the CSV rows.
    pub tags: Vec<TagConfig>,
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

#[derive(Clone, Debug, PartialEq)]
pub struct TagConfig {
    /// Unique across the whole configuration.
    pub name: String,
    pub area: Area,
    /// Zero-based register or bit address; the tag's last register fits in 0..=65535.
    pub address: u16,
    pub data_type: DataType,
    pub order: WordOrder,
    /// For a bool read from a register: the bit, 0 (least significant) to 15.
    pub bit: Option<u8>,
    /// For strings: the text length in bytes, 1..=8.
    pub length: u16,
    /// value = raw * scale + offset, applied when scale != 1 or offset != 0
    /// (the sample is then a float).
    pub scale: f64,
    pub offset: f64,
}

impl TagConfig {
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
        self.devices.iter().map(|d| d.tags.len()).sum()
    }

    /// The `TagId` of device `device_index`'s first tag (what the planner's
    /// `first_tag` wants); `tag_count()` for an index past the end.
    pub fn first_tag(&self, device_index: usize) -> TagId {
        let before: usize = self
            .devices
            .iter()
            .take(device_index)
            .map(|d| d.tags.len())
            .sum();
        TagId(u32::try_from(before).unwrap_or(u32::MAX))
    }

    /// Every tag with its id and device, in `TagId` order.
    pub fn tags(&self) -> impl Iterator<Item = (TagId, &DeviceConfig, &TagConfig)> + '_ {
        self.devices
            .iter()
            .flat_map(|d| d.tags.iter().map(move |t| (d, t)))
            .enumerate()
            .map(|(i, (d, t))| (TagId(u32::try_from(i).unwrap_or(u32::MAX)), d, t))
    }

    /// Panics if a promise written on a field does not hold. Validation makes
    /// them hold; tests and the fuzz target call this to prove it.
    pub fn assert_invariants(&self) {
        let r = &self.readers;
        assert!(r.threads >= 1);
        assert!(r.cores.is_empty() || r.cores.len() == r.threads);
        assert!(r.ring_slots.is_power_of_two());
        let w = &self.wal;
        assert!(w.segment_size % 4096 == 0 && w.segment_size > 0);
        assert!(w.quota >= 2 * w.segment_size);
        assert!(!w.commit_interval.is_zero());
        assert!(!self.sinks.is_empty() && !self.devices.is_empty());
        assert!(u32::try_from(self.tag_count()).is_ok());
        let mut names = std::collections::HashSet::new();
        for s in &self.sinks {
            assert!(s.batch_rows >= 1 && !s.batch_age.is_zero() && !s.name.is_empty());
        }
        for d in &self.devices {
            assert!((1..=125).contains(&d.max_registers) && (1..=2000).contains(&d.max_bits));
            assert!(d.max_inflight >= 1 && !d.poll_interval.is_zero() && !d.tags.is_empty());
            for t in &d.tags {
                assert!(names.insert(t.name.as_str()), "duplicate tag {}", t.name);
                let last = u32::from(t.address) + u32::from(t.register_count()) - 1;
                assert!(last <= 65535 && t.register_count() >= 1);
                assert!(!t.area.is_bit_area() || t.data_type == DataType::Bool);
                assert!(t
                    .bit
                    .is_none_or(|b| b <= 15 && t.data_type == DataType::Bool));
                assert!(t.data_type != DataType::String || (1..=8).contains(&t.length));
                assert!(t.scale.is_finite() && t.offset.is_finite() && t.scale != 0.0);
            }
        }
    }
}
