//! A `[[device]]` table: its `protocol` first, which selects the keys the
//! device and its tags may have; then the keys every device has; then the
//! protocol's own settings (`modbus.rs`, `s7_device.rs`, `enip_device.rs`); then its tags, from
//! `[[device.tag]]` tables and the `tags_csv` file, each finished by the
//! protocol's one `finish_tag`. Rules between tags are in `validate.rs`.

use std::path::Path;
use std::time::Duration;

use super::csv::read_tags;
use super::error::ConfigError;
use super::parse::{check_host_port, name_of, positive, resolve, INFLIGHT_MAX};
use super::source::Sources;
use super::suggest::{did_you_mean, one_of};
use super::tag::{TagFields, TomlTag};
use super::tree::{required, Section};
use super::types::{DeviceConfig, DriverConfig, Protocol};
use super::units::DURATION_EXPECTED;
use super::validate::TagOrigin;
use super::{enip_device, modbus, opcua, s7_device};

/// The keys of one protocol's devices and tags: the one table each
/// protocol has (`modbus::KEYS`, `s7_device::KEYS`, `enip_device::KEYS`).
pub struct Keys {
    /// Every key a device of this protocol takes, `COMMON_KEYS` first.
    pub device: &'static [&'static str],
    /// Every key its tags take; also the CSV columns.
    pub tag: &'static [&'static str],
    /// The first `tag_required` of `tag` must be there (CSV header included).
    pub tag_required: usize,
    /// A CSV header, for messages.
    pub csv_example: &'static str,
}

/// The keys every device has, whatever its protocol: the start of each
/// protocol's table (a test holds them to it).
#[cfg(test)]
const COMMON_KEYS: &[&str] = &[
    "name",
    "protocol",
    "address",
    "poll_interval",
    "timeout",
    "max_inflight",
    "tags_csv",
    "tag",
];

pub const fn keys(protocol: Protocol) -> &'static Keys {
    match protocol {
        Protocol::ModbusTcp | Protocol::ModbusRtuTcp => &modbus::KEYS,
        Protocol::S7 => &s7_device::KEYS,
        Protocol::EthernetIp => &enip_device::KEYS,
        Protocol::Opcua => &opcua::KEYS,
    }
}

/// Reads one device and its tags, with where each tag was written.
pub fn parse_device(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<(DeviceConfig, Vec<TagOrigin>), ConfigError> {
    let names: Vec<&str> = Protocol::ALL.iter().map(|(n, _)| *n).collect();
    let protocol = required(
        section,
        "protocol",
        &one_of(&names),
        section.word("protocol", Protocol::ALL)?,
    )?
    .value;
    check_keys(section, protocol, "devices", keys(protocol).device)?;
    let name = name_of(section)?;
    let address = device_address(section, protocol)?;
    let poll_interval = match protocol {
        Protocol::Opcua => opcua::poll_interval(section)?,
        _ => {
            let poll = required(
                section,
                "poll_interval",
                DURATION_EXPECTED,
                section.duration("poll_interval")?,
            )?;
            positive(Some(poll), Duration::ZERO)?
        }
    };
    let timeout = positive(section.duration("timeout")?, Duration::from_secs(1))?;
    let max_inflight = section
        .integer("max_inflight", 1..=INFLIGHT_MAX)?
        .map_or(1, |n| n.value as u32);
    let driver = match protocol {
        Protocol::ModbusTcp | Protocol::ModbusRtuTcp => {
            DriverConfig::Modbus(modbus::parse_device(section)?)
        }
        Protocol::S7 => DriverConfig::S7(s7_device::parse_device(section)?),
        Protocol::EthernetIp => DriverConfig::EthernetIp(enip_device::parse_device(section)?),
        Protocol::Opcua => DriverConfig::Opcua(opcua::parse_device(section, base, sources)?),
    };
    let mut device = DeviceConfig {
        name,
        protocol,
        address,
        poll_interval,
        timeout,
        max_inflight,
        driver,
    };
    let origins = parse_tags(section, &mut device, base, sources)?;
    Ok((device, origins))
}

/// The `[[device.tag]]` tables in file order, then the `tags_csv` rows.
fn parse_tags(
    section: &Section<'_>,
    device: &mut DeviceConfig,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Vec<TagOrigin>, ConfigError> {
    let protocol = device.protocol;
    let mut origins = Vec::new();
    for tag_section in section.tables("tag")? {
        check_keys(&tag_section, protocol, "tags", keys(protocol).tag)?;
        origins.push(add_tag(&mut device.driver, &TomlTag(&tag_section))?);
    }
    if let Some(csv) = section.string("tags_csv", "a file path")? {
        let path = resolve(base, csv.value);
        let text = sources.read_file(&path).map_err(|e| {
            csv.error(format!("cannot read `{}`: {e}", path.display()))
                .expected("a readable tag CSV file")
        })?;
        read_tags(&text, &path, protocol, &mut |fields| {
            origins.push(add_tag(&mut device.driver, fields)?);
            Ok(())
        })?;
    }
    if device.tag_count() == 0 {
        return Err(section.missing(
            "tag",
            "`[[device.tag]]` tables or a `tags_csv` file with at least one tag",
        ));
    }
    Ok(origins)
}

/// Finishes one tag by its protocol's rules and adds it to the device.
fn add_tag(driver: &mut DriverConfig, fields: &dyn TagFields) -> Result<TagOrigin, ConfigError> {
    match driver {
        DriverConfig::Modbus(m) => {
            let (tag, origin) = modbus::finish_tag(fields)?;
            m.tags.push(tag);
            Ok(origin)
        }
        DriverConfig::S7(s) => {
            let (tag, origin) = s7_device::finish_tag(fields)?;
            s.tags.push(tag);
            Ok(origin)
        }
        DriverConfig::EthernetIp(e) => {
            let (tag, origin) = enip_device::finish_tag(fields)?;
            e.tags.push(tag);
            Ok(origin)
        }
        DriverConfig::Opcua(o) => {
            let (tag, origin) = opcua::finish_tag(fields, o.mode)?;
            o.tags.push(tag);
            Ok(origin)
        }
    }
}

/// Rejects a key `protocol`'s devices (or tags: `what`) do not take,
/// naming the keys they do, and the protocol that takes it if another does.
fn check_keys(
    section: &Section<'_>,
    protocol: Protocol,
    what: &str,
    allowed: &[&str],
) -> Result<(), ConfigError> {
    let Some((key, at)) = section.first_unknown_key(allowed) else {
        return Ok(());
    };
    let problem = match did_you_mean(key, allowed) {
        Some(near) => format!("unknown key `{key}` (did you mean `{near}`?)"),
        None => {
            let mut problem = format!("unknown key `{key}` for protocol `{protocol}`");
            let others: Vec<&str> = Protocol::ALL
                .iter()
                .filter(|(_, p)| {
                    let k = keys(*p);
                    let table = if what == "tags" { k.tag } else { k.device };
                    table.contains(&key)
                })
                .map(|(n, _)| *n)
                .collect();
            if !others.is_empty() {
                problem += &format!(" (it is a key of {} {what})", others.join(" and "));
            }
            problem
        }
    };
    let expected = format!("a key {protocol} {what} take, {}", one_of(allowed));
    Err(ConfigError::new(at, problem).expected(expected))
}

/// `address` as `host:port`; a protocol with a default port (S7: 102,
/// EtherNet/IP: 44818) may
/// leave the port out, and it is then added.
fn device_address(section: &Section<'_>, protocol: Protocol) -> Result<String, ConfigError> {
    if protocol == Protocol::Opcua {
        let expected = opcua::URL_EXPECTED;
        let url = required(
            section,
            "address",
            expected,
            section.string("address", expected)?,
        )?;
        return opcua::check_url(url.value)
            .map_err(|problem| url.error(problem).expected(expected));
    }
    let expected = match protocol.default_port() {
        None => "`host:port`, e.g. \"10.0.0.5:502\" or \"[::1]:502\"".to_string(),
        Some(port) => format!(
            "`host` or `host:port` (port {port} if none), e.g. \"10.0.0.7\" or \"[::1]:{port}\""
        ),
    };
    let address = required(
        section,
        "address",
        &expected,
        section.string("address", &expected)?,
    )?;
    let text = with_default_port(address.value, protocol.default_port());
    match check_host_port(&text) {
        Ok(()) => Ok(text),
        Err(problem) => Err(address.error(problem).expected(expected)),
    }
}

/// `text` with `:port` added if it names no port (`host`, `1.2.3.4`,
/// `[::1]`); unchanged otherwise, or when there is no default port.
pub fn with_default_port(text: &str, port: Option<u16>) -> String {
    let Some(port) = port else {
        return text.to_string();
    };
    let has_port = match text.strip_prefix('[') {
        Some(rest) => !rest.ends_with(']'),
        None => text.contains(':'),
    };
    if has_port || text.is_empty() {
        text.to_string()
    } else {
        format!("{text}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_protocol_table_starts_with_the_common_keys() {
        for (name, protocol) in Protocol::ALL {
            let k = keys(*protocol);
            assert_eq!(
                k.device.get(..COMMON_KEYS.len()),
                Some(COMMON_KEYS),
                "{name}"
            );
            assert!(k.tag_required <= k.tag.len() && k.tag.starts_with(&["name"]));
            let mut sorted = k.device.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), k.device.len(), "{name}: a key twice");
        }
    }

    #[test]
    fn default_port() {
        let s7 = Some(102);
        assert_eq!(with_default_port("10.0.0.7", s7), "10.0.0.7:102");
        assert_eq!(with_default_port("plc-7.local", s7), "plc-7.local:102");
        assert_eq!(with_default_port("10.0.0.7:1102", s7), "10.0.0.7:1102");
        assert_eq!(with_default_port("[::1]", s7), "[::1]:102");
        assert_eq!(with_default_port("[::1]:1102", s7), "[::1]:1102");
        // Left for check_host_port to reject with its own words.
        assert_eq!(with_default_port("::1", s7), "::1");
        assert_eq!(with_default_port("", s7), "");
        assert_eq!(with_default_port("10.0.0.5", None), "10.0.0.5");
    }
}
