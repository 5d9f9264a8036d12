//! `millrace wal inspect DIR [--json]` through the real binary.

mod wal_common;

use std::process::Command;

use millrace::config::WhenFull;
use millrace::wal::Wal;
use wal_common::*;

#[test]
fn wal_inspect_prints_text_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open(&config(tmp.path(), 8192, 1 << 20, WhenFull::Block)).unwrap();
        let mut c = wal.open_cursor("tp").unwrap();
        for _ in 0..30 {
            append(&mut wal, 25);
        }
        wal.commit().unwrap();
        drain(&mut c);
        c.checkpoint(100).unwrap();
    }
    let exe = env!("CARGO_BIN_EXE_millrace");
    let out = Command::new(exe)
        .args(["wal", "inspect"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("durable seq 750"), "{text}");
    assert!(
        text.contains("cursor tp  checkpoint 100  lag 650"),
        "{text}"
    );
    assert!(text.contains("anomalies: none"), "{text}");

    let out = Command::new(exe)
        .args(["wal", "inspect", "--json"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["durable_seq"], 750);
    assert_eq!(v["frames"], 30);
    assert_eq!(v["cursors"][0]["name"], "tp");
    assert_eq!(v["cursors"][0]["lag"], 650);
    assert!(v["segments"].as_array().unwrap().len() >= 2);

    let missing = tmp.path().join("nope");
    let out = Command::new(exe)
        .args(["wal", "inspect"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
