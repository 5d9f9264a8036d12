//! The validated OPC UA part of a device (`protocol = "opcua"`): what the
//! OPC UA reader (src/opcua/) reads. Parsed and checked in `opcua.rs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::opcua_node::NodeIdText;
use super::types::Secret;

/// An OPC UA server's own settings and tags.
#[derive(Clone, Debug)]
pub struct OpcuaDevice {
    pub security_policy: SecurityPolicy,
    pub security_mode: SecurityMode,
    /// The secure channel's files: `Some` exactly when the policy is not None.
    pub pki: Option<OpcuaPki>,
    pub identity: Identity,
    /// The client's ApplicationUri (`None`: `urn:millrace:HOSTNAME`, what
    /// a certificate made for millrace would carry); with a secure
    /// channel the certificate's first subject alternative name must be it.
    pub application_uri: Option<String>,
    pub mode: ReadMode,
    /// Subscribe: the monitored items' sampling interval. Poll: unused.
    pub sampling_interval: Duration,
    /// Subscribe: the subscription's publishing interval.
    pub publishing_interval: Duration,
    /// Subscribe: the monitored items' queue size (the server keeps this
    /// many changes per item while millrace does not acknowledge), >= 1.
    pub queue_size: u32,
    pub time_source: TimeSource,
    /// Unique names, in file order: `[[device.tag]]` tables first, then the CSV rows.
    pub tags: Vec<OpcuaTag>,
}

/// Security policies millrace offers (Part 7 profiles still in force;
/// Basic128Rsa15 and Basic256 are deprecated and refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityPolicy {
    None,
    Basic256Sha256,
    Aes128Sha256RsaOaep,
    Aes256Sha256RsaPss,
}

impl SecurityPolicy {
    pub const NAMES: &'static [(&'static str, SecurityPolicy)] = &[
        ("None", SecurityPolicy::None),
        ("Basic256Sha256", SecurityPolicy::Basic256Sha256),
        ("Aes128_Sha256_RsaOaep", SecurityPolicy::Aes128Sha256RsaOaep),
        ("Aes256_Sha256_RsaPss", SecurityPolicy::Aes256Sha256RsaPss),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }

    /// The policy's URI (Part 7): the name after
    /// `http://opcfoundation.org/UA/SecurityPolicy#`.
    pub fn uri(self) -> String {
        format!("http://opcfoundation.org/UA/SecurityPolicy#{}", self.name())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    None,
    Sign,
    SignAndEncrypt,
}

impl SecurityMode {
    pub const NAMES: &'static [(&'static str, SecurityMode)] = &[
        ("None", SecurityMode::None),
        ("Sign", SecurityMode::Sign),
        ("SignAndEncrypt", SecurityMode::SignAndEncrypt),
    ];

    pub fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("?", |(n, _)| n)
    }
}

/// The files of a secure channel, checked at load (config/opcua_pki.rs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpcuaPki {
    /// millrace's application instance certificate (`.der` or `.pem`).
    pub certificate: PathBuf,
    /// Its PEM private key.
    pub private_key: PathBuf,
    /// The trust list: a directory named `trusted` whose files are the
    /// server certificates millrace accepts.
    pub trusted_certs: PathBuf,
}

impl OpcuaPki {
    /// The names the stack gives the trust list and the directory of the
    /// certificates it refused, side by side in one PKI directory.
    pub const TRUSTED_DIR: &'static str = "trusted";
    pub const REJECTED_DIR: &'static str = "rejected";

    /// The stack's PKI directory: the trust list's parent.
    pub fn pki_dir(&self) -> &Path {
        self.trusted_certs.parent().unwrap_or(Path::new("."))
    }

    /// Where the stack writes a server certificate it refused, for the
    /// operator to move into the trust list.
    pub fn rejected_dir(&self) -> PathBuf {
        self.pki_dir().join(Self::REJECTED_DIR)
    }
}

/// Who millrace says it is to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    Anonymous,
    /// `user` with `password_env` or `password_file`.
    UserName {
        user: String,
        password: Secret,
    },
    /// `user_certificate` with `user_private_key` (checked at load).
    X509 {
        certificate: PathBuf,
        private_key: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReadMode {
    /// One subscription with a monitored item per tag: a sample per change.
    Subscribe,
    /// The Read service every `poll_interval`: a sample per tag per poll.
    Poll,
}

/// Which time stamps a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeSource {
    /// The value's SourceTimestamp; the ServerTimestamp, then the receive
    /// time, when the server gives none.
    Source,
    /// The ServerTimestamp, else the receive time.
    Server,
    /// When millrace received the value.
    Receive,
}

/// The OPC UA built-in types millrace reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpcuaType {
    Boolean,
    SByte,
    Byte,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Float,
    Double,
    /// Text of at most N bytes (UTF-8), `string[N]`; `string` is 254.
    String(u16),
    /// UNIX nanoseconds as an integer sample.
    DateTime,
}

impl OpcuaType {
    /// The type words, without the `[N]` of `string` (default 254).
    pub const NAMES: &'static [(&'static str, OpcuaType)] = &[
        ("boolean", OpcuaType::Boolean),
        ("bool", OpcuaType::Boolean),
        ("sbyte", OpcuaType::SByte),
        ("byte", OpcuaType::Byte),
        ("int16", OpcuaType::Int16),
        ("uint16", OpcuaType::UInt16),
        ("int32", OpcuaType::Int32),
        ("uint32", OpcuaType::UInt32),
        ("int64", OpcuaType::Int64),
        ("uint64", OpcuaType::UInt64),
        ("float", OpcuaType::Float),
        ("double", OpcuaType::Double),
        ("string", OpcuaType::String(STRING_BYTES_DEFAULT)),
        ("datetime", OpcuaType::DateTime),
    ];

    pub const fn is_text(self) -> bool {
        matches!(self, OpcuaType::String(_))
    }

    pub const fn is_numeric(self) -> bool {
        !matches!(
            self,
            OpcuaType::Boolean | OpcuaType::String(_) | OpcuaType::DateTime
        )
    }

    /// Ring records one value of this type takes.
    pub const fn records(self) -> usize {
        match self {
            OpcuaType::String(n) => crate::sample::text_records(n as usize),
            _ => 1,
        }
    }
}

/// Bytes of text a `string` tag keeps unless it says `string[N]`: what an
/// S7 STRING holds, and what most HMI text fields are sized for.
pub const STRING_BYTES_DEFAULT: u16 = 254;

impl std::fmt::Display for OpcuaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpcuaType::String(n) if *n == STRING_BYTES_DEFAULT => f.write_str("string"),
            OpcuaType::String(n) => write!(f, "string[{n}]"),
            other => {
                let name = OpcuaType::NAMES
                    .iter()
                    .find(|(_, t)| t == other)
                    .map_or("?", |(name, _)| name);
                f.write_str(name)
            }
        }
    }
}

/// One OPC UA tag: a Variable node and how to read its value.
#[derive(Clone, Debug, PartialEq)]
pub struct OpcuaTag {
    /// Unique across the whole configuration.
    pub name: String,
    pub node_id: NodeIdText,
    pub data_type: OpcuaType,
    /// Elements of an array value (1: a scalar); each is a sample
    /// `NAME[i]` with its own tag id.
    pub count: u32,
    /// Subscribe: a change smaller than this is not reported (numeric
    /// types).
    pub deadband: Option<Deadband>,
    /// value = raw * scale + offset (numeric types).
    pub scale: f64,
    pub offset: f64,
}

/// A data-change deadband (Part 4 §7.22.2 DataChangeFilter).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Deadband {
    /// A change of at most this much (in the value's units) is not
    /// reported.
    Absolute(f64),
    /// A change of at most this percent of the variable's EURange is not
    /// reported (the server must know the range).
    Percent(f64),
}

impl OpcuaTag {
    pub fn is_scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
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
}

impl OpcuaDevice {
    pub fn assert_invariants(&self) {
        assert_eq!(
            self.security_policy == SecurityPolicy::None,
            self.security_mode == SecurityMode::None
        );
        // Secure channels are not built yet: the parser refuses them.
        assert_eq!(self.security_policy, SecurityPolicy::None);
        assert!(self.queue_size >= 1);
        assert!(!self.sampling_interval.is_zero() && !self.publishing_interval.is_zero());
        for t in &self.tags {
            assert!(t.scale.is_finite() && t.offset.is_finite() && t.scale != 0.0);
            assert!(t.data_type.is_numeric() || !t.is_scaled());
            if let OpcuaType::String(n) = t.data_type {
                assert!((1..=crate::sample::TEXT_BYTES_MAX).contains(&usize::from(n)));
            }
        }
    }
}
