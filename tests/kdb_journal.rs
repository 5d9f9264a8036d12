//! The stand-in's `--journal` is a tick.q log a real q could replay with
//! `-11!`. No q here, so an independent reader (aiokdb) parses what our
//! stand-in wrote, two ways:
//! - as `get` sees it: the 8-byte file header replaced by an IPC header
//!   makes the file one IPC message holding the list of all chunks (the
//!   count at offset 10 must match);
//! - as `-11!` streams it: chunk after chunk from offset 14, with aiokdb
//!   finding each chunk's end itself.
//!
//! Our `-11!(-2;file)`-style checker must agree with aiokdb on the chunk
//! count and on where a torn tail starts.

mod common;
mod kdb_support;

use std::process::Command;

use kdb_support::{run_python, samples, symbol_table};
use millrace::config::Secret;
use millrace::kdb::journal::{check_journal, Journal};
use millrace::kdb::{DecodeLimits, Publisher, Tickerplant, TickerplantOptions};

/// argv[1]: the log file. Prints the count `get` sees, one line per item
/// (function, table, columns, rows, seqs), then the chunk end offsets that
/// a chunk-by-chunk walk finds, and where the walk stopped.
const READ_LOG: &str = r#"
import struct, sys
import aiokdb
from aiokdb import _d9_unpackfrom
rb = open(sys.argv[1], "rb").read()
assert rb[:8] == b"\xff\x01" + bytes(6), rb[:8].hex()
# As get sees it: one general list.
msg = struct.pack("<BBHI", 1, 0, 0, len(rb)) + rb[8:]
try:
    items = aiokdb.d9(msg).kK()
    print("get", len(items))
    for e in items:
        parts = e.kK()
        cols = parts[2].kK()
        seqs = " ".join(map(str, cols[5].kJ()))
        print("item", parts[0].aS(), parts[1].aS(), len(cols), len(cols[0]), seqs)
except Exception as e:
    print("get failed", type(e).__name__)
# As -11! streams it.
offset, ends = 14, []
while offset < len(rb):
    try:
        k, offset = _d9_unpackfrom(rb, offset)
    except Exception:
        break
    if offset > len(rb):
        break
    ends.append(offset)
print("chunks", len(ends), " ".join(map(str, ends)))
"#;

fn publish_round(path: &std::path::Path, batches: &[(&str, usize, u64)]) {
    let options = TickerplantOptions {
        journal: Some(path.to_path_buf()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).expect("bind");
    let addr = tp.local_addr().to_string();
    let secret = Secret::new(String::new());
    let mut p = Publisher::connect(&addr, "", &secret, Default::default()).unwrap();
    for &(table, rows, seq0) in batches {
        p.publish(table, &samples(rows, 0), seq0, &symbol_table())
            .unwrap();
    }
    p.chase().unwrap();
    tp.stop();
}

fn seqs(seq0: u64, rows: usize) -> String {
    let v: Vec<String> = (seq0..seq0 + rows as u64).map(|s| s.to_string()).collect();
    v.join(" ")
}

fn check_cli(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["tickerplant", "--check-journal"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into(),
    )
}

#[test]
fn journal_reads_as_q_reads_it_and_torn_tails_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sym2026.11.26");
    // Two runs of the stand-in: the second appends to the first's file.
    publish_round(&path, &[("plc", 3, 0), ("other", 1, 100)]);
    publish_round(&path, &[("plc", 7, 3)]);

    let bytes = std::fs::read(&path).unwrap();
    let file_len = bytes.len() as u64;
    // The documented layout: ff01, six zero bytes, list type 0, attr 0,
    // count 3 (little-endian i32), then the chunks.
    assert_eq!(
        &bytes[..14],
        &[0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0]
    );
    // First chunk: (`upd;`plc;columns), a general list of 3.
    assert_eq!(&bytes[14..20], &[0, 0, 3, 0, 0, 0]);
    assert_eq!(&bytes[20..36], b"\xf5upd\0\xf5plc\0\0\0\x06\0\0\0");

    let out = run_python(READ_LOG, &[path.to_str().unwrap()]);
    let expected_items = [
        format!("item upd plc 6 3 {}", seqs(0, 3)),
        format!("item upd other 6 1 {}", seqs(100, 1)),
        format!("item upd plc 6 7 {}", seqs(3, 7)),
    ];
    assert_eq!(out[0], "get 3");
    assert_eq!(out[1..4], expected_items);
    let walk: Vec<u64> = out[4]
        .strip_prefix("chunks 3 ")
        .unwrap_or_else(|| panic!("{out:?}"))
        .split(' ')
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(walk.last(), Some(&file_len), "{walk:?}");

    let ours = check_journal(&path, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (ours.chunk_count, ours.valid_bytes, ours.header_count),
        (3, file_len, 3)
    );
    let (code, text) = check_cli(&path);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(": 3 chunks,"), "{text}");

    // Tear the last chunk (a crash mid-write): aiokdb stops after chunk 2,
    // and so do we, at the same byte.
    let torn = dir.path().join("torn");
    let cut = walk[1] + 11;
    std::fs::write(&torn, &bytes[..cut as usize]).unwrap();
    let out = run_python(READ_LOG, &[torn.to_str().unwrap()]);
    let torn_walk = out.last().unwrap().clone();
    assert_eq!(torn_walk, format!("chunks 2 {} {}", walk[0], walk[1]));
    let ours = check_journal(&torn, &DecodeLimits::default()).unwrap();
    assert_eq!(
        (ours.chunk_count, ours.valid_bytes, ours.file_bytes),
        (2, walk[1], cut)
    );
    let (code, text) = check_cli(&torn);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("truncate to length {}", walk[1])),
        "{text}"
    );
    // Like tick.q's .u.ld, the stand-in will not append to a corrupt log.
    let err = Journal::open(&torn).err().expect("torn log refused");
    assert!(err.to_string().contains("corrupt log"), "{err}");
}

#[test]
fn empty_journal_is_what_set_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty");
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.entry_count(), 0);
    drop(journal);
    // `L set ()`: file header, then an empty general list.
    let expected = [0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(std::fs::read(&path).unwrap(), expected);
    let out = run_python(READ_LOG, &[path.to_str().unwrap()]);
    assert_eq!(out, ["get 0", "chunks 0 "]);
    let (code, text) = check_cli(&path);
    assert_eq!(code, Some(0), "{text}");
    // Not a log at all: an error, not a count.
    let other = dir.path().join("other");
    std::fs::write(
        &other,
        b"\x01\x00\x00\x00\x0e\x00\x00\x00\x00\x00\x00\x00\x00\x00",
    )
    .unwrap();
    let (code, _) = check_cli(&other);
    assert_eq!(code, Some(1));
    assert!(Journal::open(&other).is_err());
}
