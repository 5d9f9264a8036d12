//! The tickerplant stand-in under bad input: bad handshakes, garbage,
//! truncated messages, lengths past the end and decompression bombs drop
//! only the offending connection; the journal is a tick.q log that an
//! independent reader (aiokdb) parses; the CLI prints `rows TABLE N`.

mod common;
mod kdb_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kdb_support::{run_python, samples, symbol_table};
use millrace::config::Secret;
use millrace::kdb::{
    compress, encode_message, KdbError, MsgType, Publisher, PublisherOptions, SeqRecorder,
    Tickerplant, TickerplantOptions, K,
};

fn secret(s: &str) -> Secret {
    Secret::new(s.into())
}

fn standin(options: TickerplantOptions) -> Tickerplant {
    Tickerplant::bind("127.0.0.1:0", options).expect("bind")
}

fn users() -> Option<Vec<(String, String)>> {
    Some(vec![("feed".into(), "pw".into())])
}

/// A raw logged-in connection.
fn raw(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(b"feed:pw\x03\0").unwrap();
    let mut cap = [0u8; 1];
    s.read_exact(&mut cap).unwrap();
    assert_eq!(cap, [3]);
    s
}

/// True when the server closed the connection (EOF or reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(s.read(&mut buf), Ok(0) | Err(_))
}

fn publish_ok(addr: SocketAddr, seq0: u64) {
    let mut p = Publisher::connect(&addr.to_string(), "feed", &secret("pw"), Default::default())
        .expect("good publisher connects");
    p.publish("plc", &samples(5, 1_000), seq0, &symbol_table())
        .unwrap();
    p.chase().unwrap();
}

#[test]
fn bad_handshakes_are_refused_and_harmless() {
    let tp = standin(TickerplantOptions {
        users: users(),
        ..Default::default()
    });
    let addr = tp.local_addr();
    let wrong = Publisher::connect(&addr.to_string(), "feed", &secret("no"), Default::default());
    assert!(
        matches!(wrong, Err(KdbError::AuthenticationRefused)),
        "{wrong:?}"
    );
    let unknown = Publisher::connect(&addr.to_string(), "x", &secret("pw"), Default::default());
    assert!(
        matches!(unknown, Err(KdbError::AuthenticationRefused)),
        "{unknown:?}"
    );
    // 2000 bytes and no NUL.
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = s.write_all(&[b'a'; 2000]);
    assert!(closed_by_server(&mut s));
    // Half a hello, then gone.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"feed:p").unwrap();
    drop(s);
    publish_ok(addr, 0);
    assert_eq!(tp.rows("plc"), 5);
    let stats = tp.stats();
    assert_eq!(stats.connections_refused, 2);
    assert!(stats.connections_dropped >= 1, "{stats:?}");
}

#[test]
fn garbage_drops_only_that_connection() {
    let tp = standin(TickerplantOptions {
        users: users(),
        ..Default::default()
    });
    let addr = tp.local_addr();
    // A good publisher connected before, throughout and after the garbage.
    let mut good =
        Publisher::connect(&addr.to_string(), "feed", &secret("pw"), Default::default()).unwrap();
    let symbols = symbol_table();
    let mut upd = Vec::new();
    let batch = samples(50, 7);
    millrace::kdb::encode_upd(
        "plc",
        &batch,
        0,
        &symbols,
        millrace::config::TimeType::Timespan,
        MsgType::Async,
        &mut upd,
    )
    .unwrap();
    let mut bomb = vec![1, 0, 1, 0, 20, 0, 0, 0];
    bomb.extend_from_slice(&(60u32 << 20).to_le_bytes());
    bomb.extend_from_slice(&[0xff; 8]);
    let mut past_end = upd.clone();
    past_end[14..18].copy_from_slice(&i32::MAX.to_le_bytes()); // list count
    let mut huge = upd.clone();
    huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut packed = Vec::new();
    let mut big_upd = Vec::new();
    let big = samples(2000, 9);
    millrace::kdb::encode_upd(
        "plc",
        &big,
        50,
        &symbols,
        millrace::config::TimeType::Timespan,
        MsgType::Async,
        &mut big_upd,
    )
    .unwrap();
    assert!(compress(&big_upd, &mut packed));
    let mut bad_stream = packed.clone();
    for b in bad_stream.iter_mut().skip(12).step_by(3) {
        *b = 0xff;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bad byte order", vec![7, 0, 0, 0, 10, 0, 0, 0, 0x65, 0]),
        ("bad message type", vec![1, 9, 0, 0, 10, 0, 0, 0, 0x65, 0]),
        ("unknown type", vec![1, 1, 0, 0, 10, 0, 0, 0, 0x77, 0]),
        ("count past the end", past_end),
        ("length over the maximum", huge),
        ("decompression bomb", bomb),
        ("corrupt compressed stream", bad_stream),
        ("truncated", upd[..upd.len() / 2].to_vec()),
    ];
    for (what, bytes) in &cases {
        let mut s = raw(addr);
        s.write_all(bytes).unwrap();
        if *what == "truncated" {
            s.shutdown(std::net::Shutdown::Write).unwrap();
        }
        assert!(
            closed_by_server(&mut s),
            "{what}: connection must be dropped"
        );
        good.publish("plc", &batch[..1], 0, &symbols).unwrap();
        good.chase().unwrap_or_else(|e| panic!("after {what}: {e}"));
    }
    // A compressed update that is valid goes through.
    let mut s = raw(addr);
    s.write_all(&packed).unwrap();
    let mut sync = Vec::new();
    encode_message(&K::string("::"), MsgType::Sync, &mut sync);
    s.write_all(&sync).unwrap();
    let mut reply = [0u8; 10];
    s.read_exact(&mut reply).unwrap();
    assert_eq!(reply, [1, 2, 0, 0, 10, 0, 0, 0, 0x65, 0]);
    assert_eq!(tp.rows("plc"), cases.len() as u64 + 2000);
    assert_eq!(tp.stats().connections_dropped, cases.len() as u64);
}

#[test]
fn connections_are_capped() {
    let tp = standin(TickerplantOptions {
        connections_max: 2,
        ..Default::default()
    });
    let addr = tp.local_addr();
    let _a = raw(addr);
    let _b = raw(addr);
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = c.write_all(b"feed:pw\x03\0");
    assert!(closed_by_server(&mut c), "third connection over the cap");
    assert_eq!(tp.stats().connections_refused, 1);
}

#[test]
fn capability_six_and_exact_delivery_record() {
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(10_000)));
    let tp = standin(TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    });
    let addr = tp.local_addr().to_string();
    let options = PublisherOptions {
        capability: 6,
        ..Default::default()
    };
    let mut p = Publisher::connect(&addr, "any", &secret(""), options).unwrap();
    assert_eq!(p.capability(), 6);
    let symbols = symbol_table();
    let batch = samples(1000, 0);
    for k in 0..5u64 {
        p.publish("plc", &batch, k * 1000, &symbols).unwrap();
    }
    p.chase().unwrap();
    let r = recorder.lock().unwrap();
    assert_eq!(
        (r.received(), r.duplicates(), r.out_of_range()),
        (5000, 0, 0)
    );
    assert_eq!(r.missing(0..5000), 0);
    assert_eq!(r.missing(5000..5001), 1);
}

const READ_JOURNAL: &str = r#"
import struct, sys
import aiokdb
# A q log file is the body of one list after an 8-byte file header (see
# src/kdb/journal.rs); with an IPC header instead it is one IPC message.
rb = open(sys.argv[1], "rb").read()
log = aiokdb.d9(struct.pack("<BBHI", 1, 0, 0, len(rb)) + rb[8:])
items = log.kK()
print(len(items))
for e in items:
    parts = e.kK()
    cols = parts[2].kK()
    print(parts[0].aS(), parts[1].aS(), len(cols), len(cols[0]), " ".join(map(str, cols[5].kJ())))
"#;

#[test]
fn journal_is_a_tick_log_read_back_by_aiokdb() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plc.log");
    for (round, seq0) in [(0, 0u64), (1, 3)] {
        let options = TickerplantOptions {
            journal: Some(path.clone()),
            ..Default::default()
        };
        let tp = standin(options);
        let addr = tp.local_addr().to_string();
        let mut p = Publisher::connect(&addr, "", &secret(""), Default::default()).unwrap();
        p.publish("plc", &samples(3, 0), seq0, &symbol_table())
            .unwrap();
        if round == 0 {
            let bad = K::list(vec![
                K::symbol(".u.upd"),
                K::symbol("plc"),
                K::list(vec![K::int(1)]),
            ]);
            assert!(matches!(p.call(&bad), Err(KdbError::Remote(_))));
        }
        p.chase().unwrap();
        tp.stop();
    }
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        &bytes[..14],
        &[0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0],
        "file header, list, count 2"
    );
    let out = run_python(READ_JOURNAL, &[path.to_str().unwrap()]);
    assert_eq!(out, ["2", "upd plc 6 3 0 1 2", "upd plc 6 3 3 4 5"]);
}

#[test]
fn cli_prints_rows_per_table_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let users_file = dir.path().join("users");
    std::fs::write(&users_file, "# feeds\nfeed:pw\n").unwrap();
    let journal = dir.path().join("tp.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["tickerplant", "--listen", "127.0.0.1:0", "--journal"])
        .arg(&journal)
        .arg("--users")
        .arg(&users_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr: SocketAddr = first
        .strip_prefix("listening ")
        .expect(&first)
        .parse()
        .unwrap();
    let symbols = symbol_table();
    let mut p =
        Publisher::connect(&addr.to_string(), "feed", &secret("pw"), Default::default()).unwrap();
    p.publish("plc", &samples(42, 0), 0, &symbols).unwrap();
    p.publish("other", &samples(8, 0), 0, &symbols).unwrap();
    p.chase().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(rest, ["rows other 8", "rows plc 42"]);
    assert!(std::fs::metadata(&journal).unwrap().len() > 8);
}
