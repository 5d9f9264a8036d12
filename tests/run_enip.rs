//! EtherNet/IP end to end: a real `millrace run` polls cm-ethernetip's
//! Logix tag server (tests/enip_support) over a Large Forward Open and
//! delivers to the tickerplant stand-in, which records every row. Every
//! tag's value arrives by name (array elements as `NAME[i]`), the Logix
//! STRING whole in the `text` column, and the missing tag as rows without
//! a value while the others keep coming.

mod common;
mod enip_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};

/// (name, address, type, count, the value of each element).
const TAGS: &[(&str, &str, &str, u16, &[f64])] = &[
    ("dint", "Counter", "dint", 1, &[-123_456_789.0]),
    (
        "temps",
        "Program:Main.Temps",
        "real",
        5,
        &[0.0, 1.5, 3.0, 4.5, 6.0],
    ),
    ("flag5", "Flags.5", "bool", 1, &[1.0]),
    ("sint", "S", "sint", 1, &[-5.0]),
    ("usint", "US", "usint", 1, &[250.0]),
    ("int", "I", "int", 1, &[-1234.0]),
    ("uint", "UI", "uint", 1, &[54321.0]),
    ("udint", "UD", "udint", 1, &[3_000_000_000.0]),
    ("lint", "Big", "lint", 1, &[-1_234_567_890_123.0]),
    ("real", "R", "real", 1, &[3.25]),
    ("lreal", "LR", "lreal", 1, &[-1.0e100]),
    ("ints", "Ints[2]", "int", 3, &[1.0, 4.0, 7.0]),
];

fn write_config(dir: &Path, plc_port: u16, tp: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n\n\
         [[device]]\nname = \"logix\"\nprotocol = \"ethernet-ip\"\n\
         address = \"127.0.0.1:{plc_port}\"\npoll_interval = \"50ms\"\n"
    );
    for (name, address, data_type, count, _) in TAGS {
        text.push_str(&format!(
            "\n[[device.tag]]\nname = \"logix.{name}\"\naddress = \"{address}\"\n\
             type = \"{data_type}\"\ncount = {count}\n"
        ));
    }
    text.push_str(
        "\n[[device.tag]]\nname = \"logix.name\"\naddress = \"Name\"\ntype = \"string\"\n\
         \n[[device.tag]]\nname = \"logix.missing\"\naddress = \"NoSuchTag\"\ntype = \"dint\"\n",
    );
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What each sym must read as.
fn expected() -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for (name, _, _, count, values) in TAGS {
        for (i, v) in values.iter().enumerate() {
            let sym = if *count == 1 {
                format!("logix.{name}")
            } else {
                format!("logix.{name}[{i}]")
            };
            out.insert(sym, *v);
        }
    }
    out
}

#[test]
fn every_type_reaches_the_stand_in_by_name_with_the_string_whole() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _peer = enip_support::start(port);
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let config = write_config(dir.path(), port, &tp.local_addr().to_string());
    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        // A file, not a pipe: nothing reads it while the run goes on.
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("start millrace run");
    let want = expected();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Three polls of everything: each sym, the text and the missing tag.
    loop {
        let r = recorder.lock().unwrap();
        let seen = |sym: &str| r.rows.iter().filter(|(_, s, _, _)| s == sym).count();
        let texts = r.texts.len();
        if want.keys().all(|sym| seen(sym) >= 3) && texts >= 3 && seen("logix.missing") >= 3 {
            break;
        }
        drop(r);
        assert!(
            Instant::now() < deadline,
            "rows after 60 s: {}",
            recorder.lock().unwrap().rows.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let stderr = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(status.success(), "{stderr}");
    tp.stop();
    // One clear line for the missing tag, whatever the polls.
    assert_eq!(
        stderr
            .matches("`logix.missing` (NoSuchTag) does not exist")
            .count(),
        1,
        "{stderr}"
    );

    let r = recorder.lock().unwrap();
    let text_seqs: Vec<i64> = r.texts.iter().map(|(_, _, seq, _)| *seq).collect();
    for (_, sym, _, seq, text) in r.texts.iter().map(|(t, s, q, x)| (t, s, 0, q, x)) {
        assert_eq!(
            (sym.as_str(), text.as_str()),
            ("logix.name", "pump 7"),
            "seq {seq}"
        );
    }
    for (table, sym, value, seq) in &r.rows {
        assert_eq!(table, "plc");
        match sym.as_str() {
            "logix.name" => assert!(text_seqs.contains(seq) && value.is_nan()),
            "logix.missing" => assert!(value.is_nan(), "seq {seq}: {value}"),
            other => {
                let want = want.get(other).unwrap_or_else(|| panic!("row for {other}"));
                assert_eq!(value, want, "{other} at seq {seq}");
            }
        }
    }
}
