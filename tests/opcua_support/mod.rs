//! The asyncua 2.1.0 peer (server.py beside this file) for the OPC UA
//! tests: started on a port, waited for until it serves, killed on drop.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::free_port;
use millrace::kdb::decode::decode_prefix;
use millrace::kdb::journal::JOURNAL_HEADER_SIZE;
use millrace::kdb::types::{Atom, Data, K};
use millrace::kdb::{DecodeLimits, RowRecorder, Tickerplant, TickerplantOptions};

/// kdb+ timestamps count from 2000-01-01.
const KDB_EPOCH_UNIX_S: i64 = 946_684_800;

pub struct Peer {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn python() -> PathBuf {
    let path = std::env::var_os("MILLRACE_ASYNCUA_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/asyncua-2.1.0-venv/bin/python")
        });
    assert!(
        path.exists(),
        "the asyncua Python {} is missing: run scripts/setup-peers.sh (tests never skip a peer)",
        path.display()
    );
    path
}

/// Starts the server with ticks from `first` and waits until it serves.
pub fn start_peer(port: u16, first: i64) -> Peer {
    start_peer_with(port, first, &[])
}

/// `start_peer` with more arguments (`user:password`).
pub fn start_peer_with(port: u16, first: i64, more: &[&str]) -> Peer {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/opcua_support/server.py");
    let mut child = Command::new(python())
        .arg(script)
        .args([port.to_string(), first.to_string()])
        .args(more)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the asyncua peer");
    let stdout = child.stdout.take().expect("the peer's stdout");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let gathered = Arc::clone(&lines);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            gathered.lock().unwrap().push(line);
        }
    });
    let mut peer = Peer { child, lines };
    // Building the standard address space takes asyncua a while on a busy
    // machine: a generous bound, never a timing assertion.
    let ready = super::common::wait_until(Duration::from_secs(300), || {
        peer.lines.lock().unwrap().iter().any(|l| l == "ready")
            || peer.child.try_wait().ok().flatten().is_some()
    });
    let up = peer.lines.lock().unwrap().iter().any(|l| l == "ready");
    assert!(ready && up, "the asyncua peer did not start (port {port})");
    peer
}

/// One row of the journal.
#[derive(Debug)]
pub struct Row {
    pub unix_ns: i64,
    pub sym: String,
    pub value: f64,
    pub quality: u32,
    pub seq: i64,
    pub text: String,
}

/// Every row of the stand-in's journal: `(`upd; `plc; columns)` chunks,
/// the columns in the configured order (a one-row update as atoms).
pub fn journal_rows(path: &Path) -> Vec<Row> {
    let bytes = std::fs::read(path).unwrap();
    let limits = DecodeLimits::default();
    let mut at = JOURNAL_HEADER_SIZE;
    let mut rows = Vec::new();
    while at < bytes.len() {
        let (chunk, used) = decode_prefix(&bytes[at..], true, &limits).expect("a journal chunk");
        at += used;
        let K::List { items, .. } = chunk else {
            panic!("chunk {chunk:?}")
        };
        let K::List { items: columns, .. } = &items[2] else {
            panic!("columns {:?}", items[2])
        };
        let n = match &columns[0] {
            K::Vector { data, .. } => data.len(),
            _ => 1,
        };
        for i in 0..n {
            let long = |c: &K| match c {
                K::Vector {
                    data: Data::Longs(v),
                    ..
                } => v[i],
                K::Atom {
                    value: Atom::Long(v),
                    ..
                } => *v,
                other => panic!("long column {other:?}"),
            };
            let sym = match &columns[1] {
                K::Vector {
                    data: Data::Symbols(s),
                    ..
                } => s.get(i).unwrap().to_vec(),
                K::Atom {
                    value: Atom::Symbol(s),
                    ..
                } => s.clone(),
                other => panic!("sym column {other:?}"),
            };
            let value = match &columns[3] {
                K::Vector {
                    data: Data::Floats(v),
                    ..
                } => v[i],
                K::Atom {
                    value: Atom::Float(v),
                    ..
                } => *v,
                other => panic!("value column {other:?}"),
            };
            let quality = match &columns[4] {
                K::Vector {
                    data: Data::Ints(v),
                    ..
                } => v[i],
                K::Atom {
                    value: Atom::Int(v),
                    ..
                } => *v,
                other => panic!("quality column {other:?}"),
            };
            let text = match &columns[6] {
                K::List { items, .. } => items[i].as_chars().unwrap_or(&[]).to_vec(),
                single => single.as_chars().unwrap_or(&[]).to_vec(),
            };
            rows.push(Row {
                unix_ns: long(&columns[0]) + KDB_EPOCH_UNIX_S * 1_000_000_000,
                sym: String::from_utf8(sym).unwrap(),
                value,
                quality: quality as u32,
                seq: long(&columns[5]),
                text: String::from_utf8(text).unwrap(),
            });
        }
    }
    rows
}

/// The metrics, WAL and sink sections every OPC UA test configuration
/// starts with: a sink to the stand-in at `tp` with every column.
pub fn config_head(tp: &str) -> String {
    format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         time_type = \"timestamp\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n"
    )
}

/// The tickerplant stand-in: rows recorded as they come, and journaled
/// whole (`journal_rows` reads them back).
pub struct StandIn {
    pub tp: Tickerplant,
    pub recorder: Arc<Mutex<RowRecorder>>,
    pub journal: PathBuf,
}

pub fn stand_in(dir: &Path) -> StandIn {
    let recorder = Arc::new(Mutex::new(RowRecorder::new(10_000_000)));
    let journal = dir.join("tp.log");
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        journal: Some(journal.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    StandIn {
        tp,
        recorder,
        journal,
    }
}

/// `millrace run --config CONFIG`, its stderr to `log`.
pub fn spawn_run(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start millrace run")
}
