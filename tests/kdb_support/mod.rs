//! Shared helpers of the kdb+ integration tests: the peer interpreter, child
//! processes with bounded waits, sample batches.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use millrace::kdb::SymbolTable;
use millrace::sample::{text_at, text_records, write_text};
use millrace::{Quality, Sample, TagId, ValueKind};

/// Bound on every wait for a peer (generous: 2 shared cores).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(60);

/// The peers' Python. Missing peers fail the test loudly: never a skip.
#[allow(unused_imports)] // each test file uses a different part
pub use crate::common::peer_python as python;

/// Starts `script` with the peers' Python.
pub fn spawn_python(script: &str, args: &[&str]) -> Child {
    Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start peer python")
}

/// Reads stdout lines on a thread so every wait can be bounded.
pub struct Lines {
    rx: mpsc::Receiver<String>,
}

impl Lines {
    pub fn new(stdout: ChildStdout) -> Lines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    pub fn next(&self) -> Option<String> {
        self.rx.recv_timeout(PEER_TIMEOUT).ok()
    }

    /// Every remaining line until the child closes stdout (bounded).
    pub fn rest(&self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(line) = self.rx.recv_timeout(PEER_TIMEOUT) {
            out.push(line);
        }
        out
    }
}

/// Waits for the child (bounded); panics with its stderr on failure.
pub fn finish(mut child: Child) {
    let deadline = Instant::now() + PEER_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for peer") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("peer did not finish in {PEER_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "peer failed ({status}):\n{err}");
}

/// Runs a script to the end and returns its stdout lines.
pub fn run_python(script: &str, args: &[&str]) -> Vec<String> {
    let mut child = spawn_python(script, args);
    let lines = Lines::new(child.stdout.take().expect("stdout"));
    let out = lines.rest();
    finish(child);
    out
}

/// Three devices of four tags: press-00.t0 .. press-02.t3.
pub fn symbol_table() -> SymbolTable {
    let mut t = SymbolTable::new();
    for d in 0..3 {
        for i in 0..4 {
            t.push(&format!("press-{d:02}.t{i}"), &format!("press-{d:02}"))
                .expect("push");
        }
    }
    t
}

/// A batch with every kind of sample, bad qualities included.
pub fn samples(count: usize, ts0: i64) -> Vec<Sample> {
    (0..count)
        .map(|i| {
            let tag = TagId((i % 12) as u32);
            let ts = ts0 + i as i64 * 1_000_003;
            match i % 5 {
                0 => Sample::f64(ts, tag, i as f64 * 0.5 - 3.0),
                1 => Sample::new(ts, tag, Quality::GOOD, ValueKind::I64, (-(i as i64)) as u64),
                2 => Sample::bad(ts, tag, Quality::TIMEOUT),
                3 => Sample::new(ts, tag, Quality::GOOD, ValueKind::Bool, 1),
                _ => Sample::bad(ts, tag, Quality::modbus_exception(2)),
            }
        })
        .collect()
}

/// A batch of text samples among numbers, over the tags of `symbol_table`:
/// a short text (`Str8`), a 40-byte one (a head and two extensions), an
/// empty bad one (timed out), a full 82-byte one (a Logix STRING), numbers.
pub fn text_samples(ts0: i64) -> Vec<Sample> {
    let mut out = vec![Sample::f64(ts0, TagId(0), 1.5)];
    let texts: [(u32, Quality, &[u8], usize); 4] = [
        (1, Quality::GOOD, b"abc", 8),
        (
            2,
            Quality::GOOD,
            b"A forty character recipe name, at most!!",
            40,
        ),
        (3, Quality::TIMEOUT, b"", 40),
        (5, Quality::GOOD, &[b'L'; 82], 82),
    ];
    for (tag, quality, text, capacity) in texts {
        let mut records = vec![Sample::default(); text_records(capacity)];
        write_text(&mut records, ts0 + 1, TagId(tag), quality, text, capacity);
        out.extend(records);
    }
    out.push(Sample::new(
        ts0 + 2,
        TagId(6),
        Quality::GOOD,
        ValueKind::I64,
        7,
    ));
    out
}

/// The rows of `batch` as kdb+ gets them: the head record, the seq
/// (`first_seq` + the head's index), the text (`""` for a row without).
pub fn text_rows(batch: &[Sample], first_seq: u64) -> Vec<(Sample, u64, String)> {
    batch
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_row())
        .map(|(i, s)| {
            let text = text_at(&batch[i..]).map_or(String::new(), |t| {
                let mut bytes = vec![0; t.len()];
                t.copy_to(&mut bytes);
                String::from_utf8(bytes).expect("test texts are UTF-8")
            });
            (*s, first_seq + i as u64, text)
        })
        .collect()
}
