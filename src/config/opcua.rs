//! An OPC UA device in the configuration (`protocol = "opcua"`, OPC UA
//! binary over TCP): its keys, the endpoint URL, security, identity, the
//! read mode with its intervals, and `finish_tag`, the one place the rules
//! of an OPC UA tag are written (`[[device.tag]]` tables and CSV rows
//! alike). NodeId text is parsed in `opcua_node.rs`.
//!
//! The files of a secure channel and of an X.509 user identity are read
//! and checked here too (opcua_pki.rs): a configuration that asks for
//! SignAndEncrypt either loads with files that work or does not load.

use std::path::Path;
use std::time::Duration;

use super::device::Keys;
use super::error::ConfigError;
use super::opcua_node::parse_node_id;
use super::opcua_pki;
use super::opcua_types::*;
use super::parse::{password, positive};
use super::source::Sources;
use super::suggest::{did_you_mean, one_of};
use super::tag::{description, name_and_origin, required, scaling, TagFields};
use super::tree::Section;
use super::units::{format_duration, DURATION_EXPECTED};
use super::validate::TagOrigin;

/// The keys of an OPC UA device and of its tags (the tag keys are also the
/// CSV columns; the first `tag_required` are required).
pub const KEYS: Keys = Keys {
    device: &[
        "name",
        "protocol",
        "address",
        "poll_interval",
        "timeout",
        "max_inflight",
        "tags_csv",
        "tag",
        "security_policy",
        "security_mode",
        "certificate",
        "private_key",
        "trusted_certs",
        "user",
        "password_env",
        "password_file",
        "user_certificate",
        "user_private_key",
        "mode",
        "sampling_interval",
        "publishing_interval",
        "queue_size",
        "time_source",
        "application_uri",
    ],
    tag: &[
        "name",
        "address",
        "type",
        "count",
        "deadband",
        "scale",
        "offset",
        "description",
    ],
    tag_required: 3,
    csv_example: "`name,address,type` (also `count`, `deadband`, `scale`, `offset`, \
                  `description`)",
};

/// The IANA port of OPC UA binary (opc.tcp) when the URL names none.
pub const PORT_DEFAULT: u16 = 4840;
/// Longest endpoint URL: servers refuse longer ones (Part 6 limits the
/// Hello's EndpointUrl to 4096 bytes).
pub const URL_BYTES_MAX: usize = 4096;
pub const URL_EXPECTED: &str =
    "an endpoint URL `opc.tcp://host[:port][/path]`, e.g. \"opc.tcp://10.0.0.9:4840/\"";
pub const ADDRESS_EXPECTED: &str =
    "a NodeId such as \"ns=2;s=Cell3.Temp\", \"i=2258\", \"ns=3;g=...\" or \"ns=1;b=...\"";
/// Monitored item queue: at least 1; past 100,000 values per item a
/// server's memory, not this setting, is the limit.
pub const QUEUE_SIZE_MAX: i64 = 100_000;
pub const SAMPLING_DEFAULT: Duration = Duration::from_millis(100);
const TYPE_EXPECTED: &str = "an OPC UA type: boolean, sbyte, byte, int16, uint16, int32, \
     uint32, int64, uint64, float, double, string, string[N] (N bytes, 1..=1024), datetime";

const MODES: &[(&str, ReadMode)] = &[("subscribe", ReadMode::Subscribe), ("poll", ReadMode::Poll)];
const TIME_SOURCES: &[(&str, TimeSource)] = &[
    ("source", TimeSource::Source),
    ("server", TimeSource::Server),
    ("receive", TimeSource::Receive),
];
const SUBSCRIBE_ONLY: &[&str] = &["sampling_interval", "publishing_interval", "queue_size"];
/// Elements one array tag may have: the stack decodes arrays of at most
/// this many elements.
pub const COUNT_MAX: i64 = crate::opcua::reader::ARRAY_ELEMENTS_MAX as i64;
const DEADBAND_EXPECTED: &str =
    "an absolute change such as 0.5, or a percent of the variable's EURange such as \"2%\"";

/// Checks `opc.tcp://host[:port][/path]` and gives it back with the port
/// made explicit (4840 when absent), so two spellings of one endpoint are
/// one string.
pub fn check_url(text: &str) -> Result<String, String> {
    if text.len() > URL_BYTES_MAX {
        return Err(format!(
            "the URL is {} bytes, more than {URL_BYTES_MAX}",
            text.len()
        ));
    }
    let Some(rest) = text.strip_prefix("opc.tcp://") else {
        if text.contains("://") {
            return Err(format!(
                "`{text}` is not an opc.tcp:// URL (only OPC UA binary over TCP)"
            ));
        }
        return Err(format!("`{text}` is not a URL: write `opc.tcp://{text}`"));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err("a user in the URL is not used: set `user` and `password_env`".into());
    }
    let has_port = match authority.strip_prefix('[') {
        Some(inner) => !inner.ends_with(']'),
        None => authority.contains(':'),
    };
    let host_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{PORT_DEFAULT}")
    };
    super::parse::check_host_port(&host_port)?;
    if path.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the path has a space or a control character".into());
    }
    Ok(format!("opc.tcp://{host_port}{path}"))
}

/// The host and port of a checked URL, for connecting and for messages.
pub fn host_port(url: &str) -> &str {
    let rest = url.strip_prefix("opc.tcp://").unwrap_or(url);
    rest.find('/')
        .map_or(rest, |i| rest.get(..i).unwrap_or(rest))
}

/// The device's `poll_interval`: required in poll mode; in subscribe mode
/// refused (the server pushes changes) and set to the sampling interval,
/// the fastest a change can come, so per-second estimates stay upper bounds.
pub fn poll_interval(section: &Section<'_>) -> Result<Duration, ConfigError> {
    let mode = section
        .word("mode", MODES)?
        .map_or(ReadMode::Subscribe, |m| m.value);
    let poll = section.duration("poll_interval")?;
    match mode {
        ReadMode::Poll => {
            let poll = super::tree::required(section, "poll_interval", DURATION_EXPECTED, poll)?;
            positive(Some(poll), Duration::ZERO)
        }
        ReadMode::Subscribe => {
            if let Some(p) = poll {
                return Err(p
                    .error(
                        "`poll_interval` is for `mode = \"poll\"`; a subscription pushes changes",
                    )
                    .expected("`sampling_interval` (and `publishing_interval`) for subscribe"));
            }
            positive(section.duration("sampling_interval")?, SAMPLING_DEFAULT)
        }
    }
}

/// The device's own keys, with the defaults of docs/configuration.md; the
/// tags are added by the caller.
pub fn parse_device(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<OpcuaDevice, ConfigError> {
    let mode = section
        .word("mode", MODES)?
        .map_or(ReadMode::Subscribe, |m| m.value);
    if mode == ReadMode::Poll {
        if let Some(key) = SUBSCRIBE_ONLY.iter().find(|k| section.has(k)) {
            return Err(ConfigError::new(
                section.location(key),
                format!("`{key}` is for `mode = \"subscribe\"`; this device polls"),
            )
            .expected("`poll_interval` alone sets a polling device's pace"));
        }
    }
    let sampling_interval = positive(section.duration("sampling_interval")?, SAMPLING_DEFAULT)?;
    let publishing_interval =
        positive(section.duration("publishing_interval")?, sampling_interval)?;
    if publishing_interval < sampling_interval {
        let at = section.location("publishing_interval");
        let problem = format!(
            "publishing every {} but sampling every {}: most publishes would be empty",
            format_duration(publishing_interval),
            format_duration(sampling_interval)
        );
        return Err(ConfigError::new(at, problem)
            .expected("a publishing interval at least the sampling interval"));
    }
    // Enough room for the changes of two publishing intervals, so that a
    // late Publish (a full ring, a slow network) costs no value.
    let per_publish = publishing_interval.as_nanos() / sampling_interval.as_nanos().max(1);
    let queue_default = u32::try_from(per_publish.saturating_mul(2).max(10)).unwrap_or(u32::MAX);
    let queue_size = section
        .integer("queue_size", 1..=QUEUE_SIZE_MAX)?
        .map_or(queue_default, |q| q.value as u32);
    if section.has("max_inflight") {
        return Err(ConfigError::new(
            section.location("max_inflight"),
            "`max_inflight` is not used by OPC UA devices (the stack pipelines its own requests)",
        )
        .expected("no `max_inflight` on an opcua device"));
    }
    let (security_policy, security_mode) = security(section)?;
    let application_uri =
        match section.string("application_uri", "a URI such as \"urn:millrace:HOST\"")? {
            Some(uri) if !uri.value.is_empty() => Some(uri.value.to_string()),
            Some(uri) => return Err(uri.error("the URI is empty").expected("a URI")),
            None => None,
        };
    let presented = application_uri
        .clone()
        .unwrap_or_else(default_application_uri);
    let pki = opcua_pki::channel(section, base, sources, security_policy, &presented)?;
    let identity = match opcua_pki::user_certificate(section, base, sources)? {
        Some(x509) => x509,
        None => identity(section, base, sources)?,
    };
    Ok(OpcuaDevice {
        security_policy,
        security_mode,
        pki,
        identity,
        application_uri,
        mode,
        sampling_interval,
        publishing_interval,
        queue_size,
        time_source: section
            .word("time_source", TIME_SOURCES)?
            .map_or(TimeSource::Source, |t| t.value),
        tags: Vec::new(),
    })
}

/// The ApplicationUri millrace presents when `application_uri` is not set:
/// `urn:millrace:HOST`, the host name as Linux keeps it.
pub fn default_application_uri() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!(
        "urn:millrace:{}",
        if host.is_empty() { "localhost" } else { host }
    )
}

fn security(section: &Section<'_>) -> Result<(SecurityPolicy, SecurityMode), ConfigError> {
    if let Some(text) = section.string("security_policy", "a security policy name")? {
        for old in ["Basic128Rsa15", "Basic256"] {
            if text.value.eq_ignore_ascii_case(old) {
                return Err(text
                    .error(format!(
                        "`{old}` is deprecated (OPC UA 1.04) and not offered"
                    ))
                    .expected("Basic256Sha256, Aes128_Sha256_RsaOaep or Aes256_Sha256_RsaPss"));
            }
        }
    }
    let policy = section.word("security_policy", SecurityPolicy::NAMES)?;
    let mode = section.word("security_mode", SecurityMode::NAMES)?;
    let policy_value = policy.as_ref().map_or(SecurityPolicy::None, |p| p.value);
    let mode_value = match (&mode, policy_value) {
        (Some(m), _) => m.value,
        (None, SecurityPolicy::None) => SecurityMode::None,
        (None, _) => SecurityMode::SignAndEncrypt,
    };
    let secure_policy = policy_value != SecurityPolicy::None;
    let secure_mode = mode_value != SecurityMode::None;
    if secure_policy != secure_mode {
        let (key, problem, expected) =
            if secure_mode {
                (
                "security_mode",
                format!("security mode {} needs a security policy", mode_value.name()),
                "`security_policy = \"Basic256Sha256\"` (or better) with Sign or SignAndEncrypt",
            )
            } else {
                (
                    "security_mode",
                    format!("security policy {} with mode None", policy_value.name()),
                    "`security_mode = \"SignAndEncrypt\"` (recommended) or \"Sign\"",
                )
            };
        return Err(ConfigError::new(section.location(key), problem).expected(expected));
    }
    Ok((policy_value, mode_value))
}

fn identity(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Identity, ConfigError> {
    let has_password = section.has("password_env") || section.has("password_file");
    match section.string("user", "a user name")? {
        Some(user) => {
            if user.value.is_empty() {
                return Err(user.error("the user name is empty").expected("a user name"));
            }
            let password = password(section, base, sources)?;
            Ok(Identity::UserName {
                user: user.value.to_string(),
                password,
            })
        }
        None if has_password => Err(section
            .missing("user", "the user name the password belongs to")
            .with_problem("a password is set without `user`")),
        None => Ok(Identity::Anonymous),
    }
}

/// Checks one tag on its own: its name, NodeId, type, array count,
/// deadband and scaling.
pub fn finish_tag(
    fields: &dyn TagFields,
    mode: ReadMode,
) -> Result<(OpcuaTag, TagOrigin), ConfigError> {
    let (name, origin) = name_and_origin(fields)?;
    let address = required(
        fields,
        "address",
        ADDRESS_EXPECTED,
        fields.text("address", ADDRESS_EXPECTED)?,
    )?;
    let type_word = required(
        fields,
        "type",
        TYPE_EXPECTED,
        fields.text("type", TYPE_EXPECTED)?,
    )?;
    description(fields)?;
    let node_id = parse_node_id(address.value).map_err(|e| {
        address
            .error(format!("`{}` is not a NodeId: {e}", cut(address.value)))
            .expected(ADDRESS_EXPECTED)
    })?;
    let data_type = parse_type(type_word.value)
        .map_err(|problem| type_word.error(problem).expected(TYPE_EXPECTED))?;
    let count = count(fields, data_type, &name)?;
    let deadband = deadband(fields, data_type, mode)?;
    let (scale, offset) = scaling(fields, data_type.is_numeric(), &data_type.to_string())?;
    let tag = OpcuaTag {
        name,
        node_id,
        data_type,
        count,
        deadband,
        scale,
        offset,
    };
    Ok((tag, origin))
}

/// `count`: 1 (a scalar, the default) ..= `COUNT_MAX` elements of an array.
fn count(fields: &dyn TagFields, data_type: OpcuaType, name: &str) -> Result<u32, ConfigError> {
    let Some(count) = fields.integer("count")? else {
        return Ok(1);
    };
    let longest = format!("{name}[{}]", count.value - 1);
    let (problem, expected) = if !(1..=COUNT_MAX).contains(&count.value) {
        (
            format!("count {} is out of range", count.value),
            format!("1..={COUNT_MAX}"),
        )
    } else if data_type.is_text() && count.value != 1 {
        (
            "an array of strings is not built yet for opcua devices".to_string(),
            "count = 1 (one tag per string)".to_string(),
        )
    } else if count.value > 1 && longest.len() > crate::config::TAG_NAME_BYTES_MAX {
        (
            format!(
                "the sample name `{longest}` would be longer than {} bytes",
                crate::config::TAG_NAME_BYTES_MAX
            ),
            "a shorter name".to_string(),
        )
    } else {
        return Ok(count.value as u32);
    };
    Err(count.error(problem).expected(expected))
}

/// `deadband`: a number (absolute) or `"N%"` (percent of the EURange), on
/// a numeric tag of a subscribing device.
fn deadband(
    fields: &dyn TagFields,
    data_type: OpcuaType,
    mode: ReadMode,
) -> Result<Option<Deadband>, ConfigError> {
    let at = fields.at("deadband");
    let deadband = match fields.float("deadband") {
        Ok(Some(value)) if value.value >= 0.0 => Deadband::Absolute(value.value),
        Ok(Some(value)) => {
            return Err(value
                .error(format!("a negative deadband ({})", value.value))
                .expected(DEADBAND_EXPECTED))
        }
        Ok(None) => return Ok(None),
        Err(not_a_number) => {
            let Some(text) = fields.text("deadband", DEADBAND_EXPECTED)? else {
                return Err(not_a_number);
            };
            let percent = text
                .value
                .trim()
                .strip_suffix('%')
                .and_then(|n| n.trim().parse::<f64>().ok())
                .filter(|p| *p > 0.0 && *p <= 100.0);
            match percent {
                Some(p) => Deadband::Percent(p),
                None => {
                    return Err(text
                        .error(format!("`{}` is not a deadband", cut(text.value)))
                        .expected(DEADBAND_EXPECTED))
                }
            }
        }
    };
    let problem = if !data_type.is_numeric() {
        format!("a deadband on a {data_type} tag: only numbers change by an amount")
    } else if mode == ReadMode::Poll {
        "a deadband is a subscription's filter; this device polls".to_string()
    } else {
        return Ok(Some(deadband));
    };
    Err(ConfigError::new(at, problem)
        .expected("a deadband on numeric tags of a `mode = \"subscribe\"` device, or none"))
}

fn cut(text: &str) -> String {
    let short: String = text.chars().take(60).collect();
    if short.len() < text.len() {
        short + "..."
    } else {
        short
    }
}

/// A type word, case-insensitive; `string[N]` with N bytes 1..=1024.
pub fn parse_type(text: &str) -> Result<OpcuaType, String> {
    if let Some((_, t)) = OpcuaType::NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(*t);
    }
    let lower = text.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("string") {
        let inner = rest.strip_prefix('[').and_then(|r| r.strip_suffix(']'));
        let n = inner.and_then(|n| {
            (n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<u16>().ok())
                .flatten()
        });
        return match n {
            Some(n) if (1..=crate::sample::TEXT_BYTES_MAX as u16).contains(&n) => {
                Ok(OpcuaType::String(n))
            }
            _ => Err(format!(
                "`{text}` is not `string[N]` with N bytes 1..={}",
                crate::sample::TEXT_BYTES_MAX
            )),
        };
    }
    let names: Vec<&str> = OpcuaType::NAMES.iter().map(|(n, _)| *n).collect();
    Err(match did_you_mean(text, &names) {
        Some(near) => format!("unknown type `{text}` (did you mean `{near}`?)"),
        None => format!("unknown type `{text}`, {}", one_of(&names)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            check_url("opc.tcp://10.0.0.9:4840/"),
            Ok("opc.tcp://10.0.0.9:4840/".into())
        );
        assert_eq!(
            check_url("opc.tcp://plc7"),
            Ok("opc.tcp://plc7:4840".into())
        );
        assert_eq!(
            check_url("opc.tcp://[::1]/UA/Srv"),
            Ok("opc.tcp://[::1]:4840/UA/Srv".into())
        );
        assert_eq!(host_port("opc.tcp://[::1]:4840/UA/Srv"), "[::1]:4840");
        assert_eq!(host_port("opc.tcp://h:1"), "h:1");
        assert!(check_url("10.0.0.9:4840")
            .unwrap_err()
            .contains("opc.tcp://10.0.0.9:4840"));
        assert!(check_url("https://x").unwrap_err().contains("opc.tcp://"));
        assert!(check_url("opc.tcp://u:p@h:1/").is_err());
        assert!(check_url("opc.tcp://h:0/").is_err());
        assert!(check_url("opc.tcp://h:1/a b").is_err());
    }

    #[test]
    fn types() {
        assert_eq!(parse_type("Double"), Ok(OpcuaType::Double));
        assert_eq!(parse_type("string"), Ok(OpcuaType::String(254)));
        assert_eq!(parse_type("String[16]"), Ok(OpcuaType::String(16)));
        assert!(parse_type("string[0]").is_err());
        assert!(parse_type("string[1025]").is_err());
        assert!(parse_type("dubble").unwrap_err().contains("double"));
        for (_, t) in OpcuaType::NAMES {
            assert_eq!(parse_type(&t.to_string()), Ok(*t));
        }
        assert_eq!(OpcuaType::String(16).to_string(), "string[16]");
    }
}
