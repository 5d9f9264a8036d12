//! Against kola 2.6.1 (Rust core, Python API, capability 6): its messages,
//! compressed ones included, decode to the right values, and its client
//! publishes tables to our stand-in and gets (::) or the kdb+ error.

mod common;
mod kdb_support;

use kdb_support::run_python;
use millrace::kdb::types::ty;
use millrace::kdb::{decode_message, Data, DecodeLimits, Tickerplant, TickerplantOptions, K};

const SCRIPT: &str = r#"
import sys
import kola, polars as pl
def frame(n, seq0):
    return pl.DataFrame({
        "time": pl.Series([i * 1000 for i in range(n)], dtype=pl.Duration("ns")),
        "sym": pl.Series(["tag%d" % (i % 4) for i in range(n)], dtype=pl.Categorical),
        "value": [i * 0.25 for i in range(n)],
        "seq": pl.Series(list(range(seq0, seq0 + n)), dtype=pl.Int64),
    })
enc = kola.serialize_as_ipc_bytes6
print("long", enc("sync", False, 7).hex())
print("sym", enc("sync", False, "abc").hex())
print("list", enc("async", False, [1, "x", 2.5]).hex())
print("table", enc("async", False, frame(3, 0)).hex())
print("table_compressed", enc("async", True, frame(3000, 0)).hex())
if len(sys.argv) > 1:
    q = kola.Q("127.0.0.1", int(sys.argv[1]), "feed", "pw")
    q.connect()
    q.asyn(".u.upd", "plc", frame(10, 0))
    print("reply", q.sync(".u.upd", "plc", frame(5, 10)))
    try:
        q.sync(".u.upd", "plc", pl.DataFrame({"time": [1], "sym": ["a"]}))
        print("no error")
    except kola.KolaError as e:
        print("error", e)
    q.disconnect()
"#;

fn frame(n: i64, seq0: i64) -> K {
    let syms: Vec<String> = (0..n).map(|i| format!("tag{}", i % 4)).collect();
    K::table(
        &["time", "sym", "value", "seq"],
        vec![
            K::vector(
                ty::TIMESPAN,
                Data::Longs((0..n).map(|i| i * 1000).collect()),
            ),
            K::vector(
                ty::SYMBOL,
                Data::Symbols(syms.iter().map(String::as_str).collect()),
            ),
            K::vector(
                ty::FLOAT,
                Data::Floats((0..n).map(|i| i as f64 * 0.25).collect()),
            ),
            K::vector(ty::LONG, Data::Longs((seq0..seq0 + n).collect())),
        ],
    )
}

fn decode_hex(hex: &str) -> (bool, K) {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let (header, k) = decode_message(&bytes, &DecodeLimits::default()).expect("decode kola");
    (header.compressed, k)
}

#[test]
fn kola_messages_decode_and_kola_publishes_to_standin() {
    let options = TickerplantOptions {
        users: Some(vec![("feed".into(), "pw".into())]),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let port = tp.local_addr().port().to_string();
    let out = run_python(SCRIPT, &[&port]);
    assert_eq!(out.len(), 7, "{out:?}");
    let expected = [
        ("long", K::long(7)),
        ("sym", K::symbol("abc")),
        (
            "list",
            K::list(vec![K::long(1), K::symbol("x"), K::float(2.5)]),
        ),
        ("table", frame(3, 0)),
        ("table_compressed", frame(3000, 0)),
    ];
    for (line, (name, k)) in out.iter().zip(expected) {
        let (got_name, hex) = line.split_once(' ').unwrap();
        assert_eq!(got_name, name);
        let (compressed, got) = decode_hex(hex);
        assert_eq!(compressed, name == "table_compressed", "{name}");
        assert_eq!(got, k, "{name}");
    }
    assert_eq!(out[5], "reply ()", "kola shows (::) as ()");
    assert!(
        out[6].starts_with("error") && out[6].contains("type"),
        "{}",
        out[6]
    );
    assert_eq!(tp.rows("plc"), 15);
}
