//! `millrace discover --protocol ethernet-ip HOST[:PORT]`: lists a Logix
//! controller's tags over one blocking TCP connection and writes them as a
//! tag CSV that a device's `tags_csv` key accepts (`name,address,type,
//! count`). The requests and their paging are protocol/enip/discover.rs;
//! this file owns the socket, the deadline and the files, and decides
//! which symbols become rows.
//!
//! A row is written only for what a `millrace run` can read: an atomic tag
//! or array, a BOOL array (as its bits), a Logix STRING. Structures (UDTs)
//! are not expanded into members: each is listed in the summary, one line
//! apiece, as not readable whole, with the hint to add members by hand.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::{parse_enip_address, with_default_port, CipType, RouteHop};
use crate::protocol::enip::discover::REQUEST_BYTES_MAX;
use crate::protocol::enip::discover::{DiscoverError, Discovered, Discovery, Kind};
use crate::protocol::enip::encap::Framer;

/// The EtherNet/IP port when the address names none.
const PORT_DEFAULT: u16 = 44818;
/// Elements one tag may read (the Read Tag element count is 16 bits).
const COUNT_MAX: u64 = u16::MAX as u64;
/// Longest sample name the configuration accepts (config::tag).
const SAMPLE_NAME_BYTES_MAX: usize = crate::config::TAG_NAME_BYTES_MAX;

pub struct DiscoverArgs {
    /// `host` or `host:port`.
    pub address: String,
    pub route: Vec<RouteHop>,
    /// Where the CSV goes; stdout when `None` (the summary then goes to
    /// stderr).
    pub out: Option<PathBuf>,
    /// Put in front of every tag name (`line2.`): names must be unique
    /// across a gateway's devices.
    pub prefix: String,
    /// Connecting and each answer.
    pub timeout: Duration,
}

/// Why discovery failed, in words.
#[derive(Debug, thiserror::Error)]
pub enum DiscoverFailure {
    #[error("{address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("{address}: {source}")]
    Protocol {
        address: String,
        source: DiscoverError,
    },
    #[error("{address}: no answer to {asked} within {timeout_ms} ms")]
    Timeout {
        address: String,
        asked: &'static str,
        timeout_ms: u128,
    },
    #[error("{address}: the controller closed the connection while {asked} was outstanding")]
    Closed {
        address: String,
        asked: &'static str,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One CSV row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub name: String,
    pub address: String,
    pub data_type: CipType,
    pub count: u64,
}

/// A structure (UDT) symbol: not readable whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Structure {
    pub address: String,
    pub template: u16,
    /// Its handle and size, when the template answered.
    pub layout: Option<(u16, u32)>,
}

/// What discovery found, sorted into rows and what was left out.
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub rows: Vec<Row>,
    pub hidden: usize,
    pub structures: Vec<Structure>,
    /// Symbols left out, each with the reason.
    pub skipped: Vec<(String, String)>,
    pub programs: usize,
    pub programs_refused: Vec<String>,
    pub pages: u32,
}

/// Lists the controller's tags and writes the CSV; returns the summary.
pub fn run(args: &DiscoverArgs) -> Result<String, DiscoverFailure> {
    let address = with_default_port(&args.address, Some(PORT_DEFAULT));
    let discovery = list(&address, args)?;
    let found = sort(&discovery, &args.prefix);
    let csv = to_csv(&found.rows);
    match &args.out {
        Some(path) => std::fs::write(path, csv).map_err(|source| DiscoverFailure::Write {
            path: path.clone(),
            source,
        })?,
        None => {
            // A closed stdout (`| head`) is the reader's choice, not a failure.
            let _ = std::io::stdout().write_all(csv.as_bytes());
        }
    }
    Ok(summary(&address, &found, args.out.as_deref()))
}

/// The blocking exchange: connect, one request at a time until done,
/// UnregisterSession.
fn list(address: &str, args: &DiscoverArgs) -> Result<Discovery, DiscoverFailure> {
    let connect = |source| DiscoverFailure::Connect {
        address: address.to_string(),
        source,
    };
    let target = address
        .to_socket_addrs()
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(std::io::Error::other("the name resolves to no address")))?;
    let mut stream = TcpStream::connect_timeout(&target, args.timeout).map_err(connect)?;
    stream.set_nodelay(true).map_err(connect)?;
    let mut discovery = Discovery::new(args.route.clone());
    let mut framer = Framer::new();
    let mut out = vec![0u8; REQUEST_BYTES_MAX];
    let mut input = vec![0u8; 8192];
    while !discovery.is_done() {
        let Some(n) = discovery.poll_request(&mut out) else {
            break;
        };
        let request = out.get(..n).unwrap_or_default();
        stream.write_all(request).map_err(connect)?;
        await_answer(
            &mut stream,
            &mut framer,
            &mut input,
            &mut discovery,
            address,
            args,
        )?;
    }
    if let Some(n) = discovery.close(&mut out) {
        let _ = stream.write_all(out.get(..n).unwrap_or_default());
    }
    Ok(discovery)
}

/// Reads until the outstanding request's answer is handled, or the
/// deadline passes.
fn await_answer(
    stream: &mut TcpStream,
    framer: &mut Framer,
    input: &mut [u8],
    discovery: &mut Discovery,
    address: &str,
    args: &DiscoverArgs,
) -> Result<(), DiscoverFailure> {
    let asked = discovery.asked().name();
    let deadline = Instant::now() + args.timeout;
    let protocol = |source| DiscoverFailure::Protocol {
        address: address.to_string(),
        source,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(DiscoverFailure::Timeout {
                address: address.to_string(),
                asked,
                timeout_ms: args.timeout.as_millis(),
            });
        }
        let _ = stream.set_read_timeout(Some(left));
        let n = match stream.read(input) {
            Ok(0) => {
                return Err(DiscoverFailure::Closed {
                    address: address.to_string(),
                    asked,
                })
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DiscoverFailure::Connect {
                    address: address.to_string(),
                    source,
                })
            }
        };
        let mut rest = input.get(..n).unwrap_or_default();
        let frame = framer.next_frame(&mut rest).map_err(|error| {
            protocol(DiscoverError::Wire {
                asked: discovery.asked(),
                error,
            })
        })?;
        if let Some(frame) = frame {
            discovery.handle(&frame).map_err(protocol)?;
            return Ok(());
        }
    }
}

/// Sorts the symbols into rows and what was left out, in the
/// controller's order.
pub fn sort(discovery: &Discovery, prefix: &str) -> Found {
    let mut found = Found {
        programs: discovery.programs().len(),
        programs_refused: discovery
            .programs_refused()
            .iter()
            .map(|p| format!("{} (CIP status {:#04x})", p.program, p.general))
            .collect(),
        pages: discovery.pages(),
        ..Found::default()
    };
    for symbol in discovery.symbols() {
        match discovery.kind(symbol) {
            Kind::Hidden => found.hidden += 1,
            Kind::Atomic { data_type, count } => row(&mut found, symbol, prefix, data_type, count),
            Kind::String { count: 1 } => row(&mut found, symbol, prefix, CipType::String, 1),
            Kind::String { count } => found.skipped.push((
                symbol.address.clone(),
                format!("an array of {count} STRINGs (millrace reads one STRING per tag)"),
            )),
            Kind::Structure { template, layout } => {
                found.structures.push(Structure {
                    address: symbol.address.clone(),
                    template,
                    layout,
                });
            }
            Kind::Unsupported { type_code } => found.skipped.push((
                symbol.address.clone(),
                format!("CIP type {type_code:#06x}, which millrace does not read"),
            )),
        }
    }
    found
}

/// A row for `symbol`, or a reason it cannot be one.
fn row(found: &mut Found, symbol: &Discovered, prefix: &str, data_type: CipType, count: u64) {
    let name = format!("{prefix}{}", symbol.address);
    let longest = if count > 1 {
        format!("{name}[{}]", count - 1)
    } else {
        name.clone()
    };
    let reason = if let Err(e) = parse_enip_address(&symbol.address) {
        Some(format!("its name is not a tag address millrace reads: {e}"))
    } else if count > COUNT_MAX {
        Some(format!(
            "{count} elements, more than the {COUNT_MAX} one tag reads: split it by hand \
             (`{}[N]` with a count)",
            symbol.address
        ))
    } else if longest.len() > SAMPLE_NAME_BYTES_MAX {
        Some(format!(
            "the sample name `{longest}` would be longer than {SAMPLE_NAME_BYTES_MAX} bytes"
        ))
    } else {
        None
    };
    match reason {
        Some(reason) => found.skipped.push((symbol.address.clone(), reason)),
        None => found.rows.push(Row {
            name,
            address: symbol.address.clone(),
            data_type,
            count,
        }),
    }
}

/// The rows as a tag CSV (`name,address,type,count`; names and addresses
/// are quoted where they need it).
pub fn to_csv(rows: &[Row]) -> String {
    let mut text = String::from("name,address,type,count\n");
    for r in rows {
        let _ = writeln!(
            text,
            "{},{},{},{}",
            quoted(&r.name),
            quoted(&r.address),
            r.data_type.name(),
            r.count
        );
    }
    text
}

/// RFC 4180 quoting when a cell holds a comma, a quote or a line end.
pub fn quoted(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

/// What was found and written, and what was left out and why.
fn summary(address: &str, found: &Found, out: Option<&Path>) -> String {
    let mut s = String::new();
    let samples: u64 = found.rows.iter().map(|r| r.count).sum();
    let to = out.map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    let _ = writeln!(
        s,
        "{address}: {} tags ({samples} samples) written to {to}, from {} pages of the tag list \
         and {} programs",
        found.rows.len(),
        found.pages,
        found.programs
    );
    let _ = writeln!(
        s,
        "  left out: {} system or hidden symbols (names starting `__`, the system type bit, \
         `Task:`/`Routine:`/`Map:`/`Cxn:`/module I/O names)",
        found.hidden
    );
    for program in &found.programs_refused {
        let _ = writeln!(s, "  program {program}: its tag list was refused");
    }
    for (address, reason) in &found.skipped {
        let _ = writeln!(s, "  left out `{address}`: {reason}");
    }
    for Structure {
        address,
        template,
        layout,
    } in &found.structures
    {
        let size = layout.map_or_else(String::new, |(_, size)| format!(", {size} bytes"));
        let _ = writeln!(
            s,
            "  structure `{address}` (template {template:#05x}{size}): not readable whole; add \
             its atomic members by hand (`{address}.Member`)"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_with_commas_or_quotes_are_quoted() {
        let rows = [Row {
            name: "a,\"b\"".into(),
            address: "T".into(),
            data_type: CipType::Real,
            count: 2,
        }];
        assert_eq!(
            to_csv(&rows),
            "name,address,type,count\n\"a,\"\"b\"\"\",T,real,2\n"
        );
    }
}
