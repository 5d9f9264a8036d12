//! The millrace configuration that polls a running farm: one `[[device]]` per
//! farm device pointing at its port (and, with several Modbus devices
//! behind one port, its unit id there: [`PortLayout`]), its tags in a CSV
//! file of its own (the compact form: the TOML stays one short table per
//! device), and a kdb+ sink.
//!
//! A Modbus device's tag `j` is holding register `j` as `uint16`, named
//! [`tag_name`]`(i, j)` (`modbus::emit`); an S7 device's tag `j` is the
//! `j`-th of `s7::layout::farm_tags`, named `s7::emit::tag_name(i, j)`; an
//! EtherNet/IP device's tag `j` is the `j`-th of `enip::emit::farm_tags`,
//! named `enip::emit::tag_name(i, j)`; an OPC UA device's tag `j` is the
//! variable `ns=2;i=j+1` of the type `opcua::values::FarmType::of_tag(j)`,
//! named `opcua::tag_name(i, j)`. A receiver maps a row back to its
//! device and tag by its name alone.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use super::enip::{self, EnipEmitOptions};
use super::opcua;
use super::s7::{self, S7EmitOptions};
use super::{modbus, DeviceProtocol, FarmProtocol, PortLayout};

pub use super::modbus::emit::{parse_tag_name, tag_name};

#[derive(Clone, Debug)]
pub struct EmitOptions {
    /// Holding registers polled per device, addresses `0..tags_per_device`.
    pub tags_per_device: u32,
    /// `[wal] dir`.
    pub wal_dir: PathBuf,
    /// The kdb+ sink, `host:port`.
    pub sink_address: String,
    /// `poll_interval` of every device, as the config writes durations.
    pub poll_interval: String,
    /// `[readers] threads`.
    pub reader_threads: usize,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            tags_per_device: 10,
            wal_dir: PathBuf::from("millrace-wal"),
            sink_address: "127.0.0.1:5010".into(),
            poll_interval: "100ms".into(),
            reader_threads: 1,
        }
    }
}

pub fn device_name(device: u32) -> String {
    format!("farm-{device:05}")
}

/// The tag CSV directory that goes with `config_path` (`plant.toml` ->
/// `plant-tags/` beside it).
pub fn tags_dir_for(config_path: &Path) -> PathBuf {
    let stem = config_path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("farm");
    config_path.with_file_name(format!("{stem}-tags"))
}

/// Writes the config of a Modbus farm to `config_path` and one tag CSV per
/// device into [`tags_dir_for`]`(config_path)`; `ports[i]` is device `i`'s
/// port. Paths inside the config are relative to its directory.
pub fn emit_config(config_path: &Path, ports: &[u16], options: &EmitOptions) -> io::Result<()> {
    emit_farm_config(
        config_path,
        ports,
        FarmProtocol::Modbus,
        options,
        &S7EmitOptions::default(),
    )
}

/// [`emit_config`] for a farm of any protocol: device `i` is polled as
/// `protocol.device(i)` (EtherNet/IP devices ask for the largest connection).
pub fn emit_farm_config(
    config_path: &Path,
    ports: &[u16],
    protocol: FarmProtocol,
    options: &EmitOptions,
    s7_options: &S7EmitOptions,
) -> io::Result<()> {
    let enip_options = EnipEmitOptions::default();
    emit_farm_config_with(
        config_path,
        ports,
        protocol,
        options,
        s7_options,
        &enip_options,
    )
}

/// [`emit_farm_config`] with the EtherNet/IP devices' options.
pub fn emit_farm_config_with(
    config_path: &Path,
    ports: &[u16],
    protocol: FarmProtocol,
    options: &EmitOptions,
    s7_options: &S7EmitOptions,
    enip_options: &EnipEmitOptions,
) -> io::Result<()> {
    let device_count = u32::try_from(ports.len()).map_err(|_| invalid("too many ports"))?;
    emit_farm_config_layout(
        config_path,
        ports,
        PortLayout::one_per_port(device_count),
        protocol,
        options,
        s7_options,
        enip_options,
    )
}

/// [`emit_farm_config_with`] for a farm laid out as `layout` (several
/// Modbus devices behind one port, as `FarmOptions::units_per_port`):
/// `ports[k]` is port index `k`'s port (as `FarmHandle::ports`), and device
/// `i` is polled at `ports[layout.port_index(i)]` as unit id
/// `layout.unit_id(i)`. Devices behind one port get one `[[device]]` each,
/// at the same address.
pub fn emit_farm_config_layout(
    config_path: &Path,
    ports: &[u16],
    layout: PortLayout,
    protocol: FarmProtocol,
    options: &EmitOptions,
    s7_options: &S7EmitOptions,
    enip_options: &EnipEmitOptions,
) -> io::Result<()> {
    if options.tags_per_device == 0 || options.tags_per_device > 65536 {
        return Err(invalid("tags_per_device must be 1..=65536"));
    }
    if ports.len() != layout.port_count() as usize {
        return Err(invalid(&format!(
            "{} devices, {} per port, are served on {} ports, not {}",
            layout.devices(),
            layout.units_per_port(),
            layout.port_count(),
            ports.len()
        )));
    }
    if layout.units_per_port() > 1 && protocol != FarmProtocol::Modbus {
        return Err(invalid(&format!(
            "several devices behind one port are Modbus only, not {protocol}"
        )));
    }
    let tags_dir = tags_dir_for(config_path);
    std::fs::create_dir_all(&tags_dir)?;
    let tags_dir_name = tags_dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("farm-tags");
    let s7_tags = if protocol.has_s7() {
        s7::layout::farm_tags(options.tags_per_device as usize)
    } else {
        Vec::new()
    };
    let enip_tags = if protocol.has_enip() {
        enip::emit::farm_tags(options.tags_per_device as usize)
    } else {
        Vec::new()
    };
    // S7 and Logix strings reach kdb+ whole in a text column (a sink
    // without one is refused for a device with a text tag).
    let text = s7_tags.iter().any(|t| t.data_type.is_text())
        || enip_tags.iter().any(|t| t.data_type.is_text())
        || (protocol.has_opcua()
            && (0..options.tags_per_device.min(8))
                .any(|j| opcua::values::FarmType::of_tag(j).config_type().is_text()));
    let mut toml = header(layout, protocol, options, text);
    let mut csv = String::new();
    for device in 0..layout.devices() {
        let (Some(port_index), Some(unit_id)) = (layout.port_index(device), layout.unit_id(device))
        else {
            return Err(invalid("a device past the layout"));
        };
        let port = ports
            .get(port_index as usize)
            .ok_or_else(|| invalid("a port index past the ports"))?;
        let name = device_name(device);
        let csv_path = format!("{tags_dir_name}/{name}.csv");
        csv.clear();
        let poll = &options.poll_interval;
        match protocol.device(device) {
            DeviceProtocol::Modbus => {
                modbus::emit::tags_csv(device, options.tags_per_device, &mut csv);
                let at = (*port, unit_id);
                modbus::emit::device_table(&mut toml, &name, at, poll, &csv_path);
            }
            DeviceProtocol::S7 => {
                s7::emit::tags_csv(device, &s7_tags, &mut csv);
                s7::emit::device_table(&mut toml, &name, *port, poll, &csv_path, s7_options);
            }
            DeviceProtocol::EthernetIp => {
                enip::emit::tags_csv(device, &enip_tags, &mut csv);
                enip::emit::device_table(&mut toml, &name, *port, poll, &csv_path, enip_options);
            }
            DeviceProtocol::Opcua => {
                opcua::emit::tags_csv(device, options.tags_per_device, &mut csv);
                opcua::emit::device_table(&mut toml, &name, *port, poll, &csv_path);
            }
        }
        std::fs::write(tags_dir.join(format!("{name}.csv")), &csv)?;
    }
    std::fs::write(config_path, toml)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

fn header(layout: PortLayout, protocol: FarmProtocol, options: &EmitOptions, text: bool) -> String {
    let what = match protocol {
        FarmProtocol::Modbus => "holding registers (uint16)",
        FarmProtocol::S7 => "S7 tags of every type",
        FarmProtocol::Mixed => "tags (even devices Modbus, odd devices S7)",
        FarmProtocol::EthernetIp => "Logix tag samples of every type",
        FarmProtocol::Opcua => "OPC UA variables of eight types",
    };
    let check = match protocol {
        FarmProtocol::Modbus => "millrace::farm::verify_register",
        _ => "millrace::farm::verify::Verifier",
    };
    let columns = if text {
        "columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n"
    } else {
        ""
    };
    let device_count = layout.devices();
    let ports = match layout.units_per_port() {
        1 => String::new(),
        units => format!(
            " behind {} ports ({units} unit ids each)",
            layout.port_count()
        ),
    };
    format!(
        "# Written by `millrace-loadgen serve --emit-config`: {device_count} simulated devices \
         on 127.0.0.1{ports},\n# {} {what} each. Values check with {check}.\n\n\
         [readers]\nthreads = {}\nbackend = \"auto\"\n\n\
         [wal]\ndir = {}\nsegment_size = \"64MiB\"\nquota = \"4GiB\"\ncommit_interval = \"10ms\"\n\
         when_full = \"block\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:9187\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{}\"\nuser = \"feed\"\n\
         table = \"plc\"\ntime_type = \"timespan\"\n{columns}\
         batch_rows = 10000\nbatch_age = \"5ms\"\n",
        options.tags_per_device,
        options.reader_threads,
        toml_string(&options.wal_dir.to_string_lossy()),
        options.sink_address,
    )
}

/// A TOML basic string (quotes and backslashes escaped).
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
