//! Configuration: the TOML file of the design (readers, WAL, metrics, sinks,
//! devices, tags), tag lists imported from CSV, and validation that names the
//! file, line, column and key of every error. A device's `protocol` selects
//! its keys and its tags' keys and address syntax: one table and one
//! `finish_tag` per protocol (`modbus.rs`; `s7_device.rs` with the Step 7
//! words in `s7.rs`; `enip_device.rs` with the Logix words in `enip.rs`; `opcua.rs` with
//! NodeId text in `opcua_node.rs`), shared by `[[device.tag]]` tables and CSV rows.
//!
//! Entry points: `load(path)` for the real thing; `parse_str(text, path)`
//! parses without touching the file system or the environment (a `tags_csv`,
//! `password_file` or `password_env` is then "not found"); `parse_with` takes
//! the files and variables from a `Sources`. All three return the first error
//! in file order. This module never panics on any input and never puts a
//! secret into a message, a `Debug` or the summary.

#![forbid(unsafe_code)]

mod columns;
mod csv;
mod device;
mod enip;
mod enip_device;
mod error;
mod modbus;
mod opcua;
pub mod opcua_node;
mod opcua_pki;
mod opcua_types;
mod parse;
mod routing;
pub mod s7;
mod s7_device;
mod source;
mod suggest;
mod summary;
mod tag;
mod tree;
mod types;
mod units;
mod validate;

use std::path::Path;

pub use csv::{records as csv_records, Record as CsvRecord};
pub use device::with_default_port;
pub use enip::{parse_enip_address, parse_enip_route, SyntaxError as EnipSyntaxError};
pub use error::{line_column, ConfigError, Location, Place};
pub use opcua::{
    check_url as check_opcua_url, default_application_uri, host_port as opcua_host_port,
    COUNT_MAX as OPCUA_COUNT_MAX,
};
pub use opcua_types::*;
pub use parse::{check_host_port, resolve as resolve_path};
pub use routing::glob_match;
pub use source::{MemorySources, Sources, SystemSources};
pub use summary::Summary;
pub use tag::{check_name as check_tag_name, TAG_NAME_BYTES_MAX};
pub use types::*;
pub use units::{format_duration, format_size, parse_duration, parse_size};

/// Reads, parses and validates the configuration file at `path`. Relative
/// paths inside it resolve against its directory.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text =
        crate::files::read_text_capped(path, source::CONFIG_FILE_BYTES_MAX).map_err(|e| {
            ConfigError::new(
                Location::new(path, Place::File),
                format!("cannot read the file: {e}"),
            )
            .expected("a readable UTF-8 TOML file")
        })?;
    parse_with(&text, path, &SystemSources)
}

/// Parses `text` as if it were the file `path`, with no I/O at all.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with(text, path, &MemorySources::default())
}

/// Parses `text` as the file `path`, reading tag CSVs, password files and
/// environment variables from `sources`.
pub fn parse_with(text: &str, path: &Path, sources: &dyn Sources) -> Result<Config, ConfigError> {
    let doc = tree::Doc::new(text, path);
    let parsed = toml_edit::ImDocument::parse(text).map_err(|e| syntax_error(&doc, &e))?;
    let root = tree::Section::root(&doc, parsed.as_table());
    let base = path.parent().unwrap_or(Path::new(""));
    parse::parse_root(&root, path, base, sources)
}

fn syntax_error(doc: &tree::Doc<'_>, error: &toml_edit::TomlError) -> ConfigError {
    // toml_edit's message is several lines ("invalid table header\nduplicate
    // key ..."): fold it into one so the error stays one line.
    let message: Vec<&str> = error
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let location = doc.location(error.span(), None);
    ConfigError::new(
        location,
        format!("TOML syntax error: {}", message.join(": ")),
    )
    .expected("valid TOML (https://toml.io)")
}

/// The fuzz entry point (`fuzz/fuzz_targets/config_parse.rs` and the corpus
/// replay test): bytes up to the first NUL are the TOML text of
/// `fuzz/plant.toml`, the rest is the content of the files it may name
/// (`tags.csv`, `tags/a.csv`, `secret`); `MILLRACE_KDB_PASSWORD` is set.
/// Checks the promises a parsed `Config` makes and that the password shows
/// nowhere; panics only if one is broken. Returns whether it was accepted.
pub fn fuzz_config_parse(data: &[u8]) -> bool {
    const SECRET: &str = "fuzz-secret-Zq7";
    let (toml, rest) = match data.iter().position(|b| *b == 0) {
        Some(i) => (
            data.get(..i).unwrap_or(&[]),
            data.get(i + 1..).unwrap_or(&[]),
        ),
        None => (data, &[][..]),
    };
    let Ok(text) = std::str::from_utf8(toml) else {
        return false;
    };
    let other = String::from_utf8_lossy(rest).into_owned();
    let path = Path::new("fuzz/plant.toml");
    let mut sources = MemorySources::default();
    sources
        .env
        .insert("MILLRACE_KDB_PASSWORD".to_string(), SECRET.to_string());
    for name in ["tags.csv", "tags/a.csv", "secret"] {
        sources
            .files
            .insert(path.with_file_name(name), other.clone());
    }
    // An input that spells the password itself may echo it; that is not a leak.
    let spells_secret = data.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    match parse_with(text, path, &sources) {
        Ok(config) => {
            config.assert_invariants();
            let shown = format!("{config:?}\n{}", Summary::new(&config));
            assert!(
                spells_secret || !shown.contains(SECRET),
                "password in Debug or summary"
            );
            true
        }
        Err(error) => {
            let message = error.to_string();
            assert!(
                spells_secret || !message.contains(SECRET),
                "password in: {message}"
            );
            assert!(
                message.starts_with(&error.file().display().to_string()),
                "{message}"
            );
            false
        }
    }
}

/// The TOML that `fuzz_tag_csv` puts in front of its input for a Modbus
/// device: one device whose tags come from `tags.csv`, next to one inline tag
/// (so CSV rows meet the duplicate and overlap checks against a tag from the
/// TOML).
pub const FUZZ_CSV_TOML: &str = "[wal]\ndir = \"wal\"\n\n\
    [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"127.0.0.1:5010\"\ntable = \"plc\"\n\
    password_env = \"MILLRACE_KDB_PASSWORD\"\n\n\
    [[device]]\nname = \"press-01\"\nprotocol = \"modbus-tcp\"\naddress = \"10.0.0.5:502\"\n\
    unit_id = 1\npoll_interval = \"100ms\"\ntags_csv = \"tags.csv\"\n\n\
    [[device.tag]]\nname = \"press01.temp\"\narea = \"holding\"\naddress = 100\n\
    type = \"float32\"\n";

/// The same for an S7 device: `tags.csv` read with S7 columns, next to an
/// inline tag of the same name as the Modbus one.
pub const FUZZ_S7_CSV_TOML: &str = "[wal]\ndir = \"wal\"\n\n\
    [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"127.0.0.1:5010\"\ntable = \"plc\"\n\
    password_env = \"MILLRACE_KDB_PASSWORD\"\n\n\
    [[device]]\nname = \"cell-07\"\nprotocol = \"s7\"\naddress = \"10.0.0.7\"\n\
    poll_interval = \"100ms\"\ntags_csv = \"tags.csv\"\n\n\
    [[device.tag]]\nname = \"press01.temp\"\naddress = \"DB1.DBD0\"\ntype = \"real\"\n";

/// The fuzz entry point for tag CSV files (`fuzz/fuzz_targets/config_csv.rs`
/// and its corpus replay): `data` is the content of `tags.csv`, checked by
/// `fuzz_config_parse` under `FUZZ_CSV_TOML` (Modbus columns) and under
/// `FUZZ_S7_CSV_TOML` (S7 columns). Returns whether either plant was
/// accepted.
pub fn fuzz_tag_csv(data: &[u8]) -> bool {
    let mut accepted = false;
    for toml in [FUZZ_CSV_TOML, FUZZ_S7_CSV_TOML] {
        let mut input = Vec::with_capacity(toml.len() + 1 + data.len());
        input.extend_from_slice(toml.as_bytes());
        input.push(0);
        input.extend_from_slice(data);
        accepted |= fuzz_config_parse(&input);
    }
    accepted
}
