//! The millrace configuration that polls a running farm: one `[[device]]` per
//! farm device pointing at its port, its tags in a CSV file of its own (the
//! compact form: the TOML stays one short table per device), and a kdb+ sink.
//!
//! Tag `j` of device `i` is holding register `j` as `uint16`, named
//! [`tag_name`]`(i, j)`, so a receiver maps a row back to (device, address)
//! with [`parse_tag_name`] and checks it with `verify_register`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

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

pub fn tag_name(device: u32, address: u16) -> String {
    format!("d{device:05}.hr{address:05}")
}

/// (device, address) of a name made by [`tag_name`].
pub fn parse_tag_name(name: &str) -> Option<(u32, u16)> {
    let (device, address) = name.strip_prefix('d')?.split_once(".hr")?;
    Some((device.parse().ok()?, address.parse().ok()?))
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

/// Writes the config to `config_path` and one tag CSV per device into
/// [`tags_dir_for`]`(config_path)`; `ports[i]` is device `i`'s port.
/// Paths inside the config are relative to its directory.
pub fn emit_config(config_path: &Path, ports: &[u16], options: &EmitOptions) -> io::Result<()> {
    if options.tags_per_device == 0 || options.tags_per_device > 65536 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "tags_per_device must be 1..=65536",
        ));
    }
    let tags_dir = tags_dir_for(config_path);
    std::fs::create_dir_all(&tags_dir)?;
    let tags_dir_name = tags_dir
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or("farm-tags");
    let mut toml = header(ports.len(), options);
    let mut csv = String::new();
    for (device, port) in (0u32..).zip(ports) {
        let csv_name = format!("{}.csv", device_name(device));
        csv.clear();
        csv.push_str("name,area,address,type,order,scale,offset\n");
        for address in 0..options.tags_per_device {
            let address = address as u16;
            let _ = writeln!(
                csv,
                "{},holding,{address},uint16,ABCD,1,0",
                tag_name(device, address)
            );
        }
        std::fs::write(tags_dir.join(&csv_name), &csv)?;
        let _ = write!(
            toml,
            "\n[[device]]\nname = \"{}\"\nprotocol = \"modbus-tcp\"\n\
             address = \"127.0.0.1:{port}\"\nunit_id = 1\npoll_interval = \"{}\"\n\
             timeout = \"1s\"\nmax_registers = 125\n\
             max_inflight = 1\ntags_csv = \"{tags_dir_name}/{csv_name}\"\n",
            device_name(device),
            options.poll_interval,
        );
    }
    std::fs::write(config_path, toml)
}

fn header(device_count: usize, options: &EmitOptions) -> String {
    format!(
        "# Written by `millrace-loadgen serve --emit-config`: {device_count} simulated devices \
         on 127.0.0.1,\n# {} holding registers (uint16) each. Values check with \
         millrace::farm::verify_register.\n\n\
         [readers]\nthreads = {}\nbackend = \"auto\"\n\n\
         [wal]\ndir = {}\nsegment_size = \"64MiB\"\nquota = \"4GiB\"\ncommit_interval = \"10ms\"\n\
         when_full = \"block\"\n\n\
         [metrics]\nlisten = \"127.0.0.1:9187\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{}\"\nuser = \"feed\"\n\
         table = \"plc\"\ntime_type = \"timespan\"\nbatch_rows = 10000\nbatch_age = \"5ms\"\n",
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
    fn tag_names_round_trip() {
        assert_eq!(parse_tag_name(&tag_name(1999, 124)), Some((1999, 124)));
        assert_eq!(
            parse_tag_name(&tag_name(123_456, 65535)),
            Some((123_456, 65535))
        );
        assert_eq!(parse_tag_name("d1.x2"), None);
    }

    #[test]
    fn toml_strings_escape() {
        assert_eq!(toml_string("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
