//! `millrace discover --protocol ethernet-ip` against real peers. From
//! cm-ethernetip 0.1.0's Logix tag server (tests/enip_support: every
//! supported type, arrays, a BOOL array, a STRING, a UDT, a `__` symbol and
//! one with the system type bit; its tag list takes two pages) the real
//! binary writes a tag CSV; the configuration loader takes it as a device's
//! `tags_csv`, and a real `millrace run` with it delivers every value right
//! to the tickerplant stand-in. cpppo 5.2.5 has no tag list: discovery
//! against it fails with a message that names the missing service. A peer
//! that cannot start fails the test.

mod common;
mod enip_support;

use common::free_port;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enip_support::{python, wait_listening, Peer};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};

fn discover(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["discover", "--protocol", "ethernet-ip"])
        .args(args)
        .output()
        .expect("run millrace discover")
}

/// The rows cm-ethernetip's server must be listed as, in its order:
/// (name, address, type, count).
const ROWS: &[(&str, &str, &str, u32)] = &[
    ("logix.Counter", "Counter", "dint", 1),
    ("logix.Program:Main.Temps", "Program:Main.Temps", "real", 5),
    ("logix.Flags", "Flags", "dint", 1),
    ("logix.Alarms", "Alarms", "bool", 64),
    ("logix.Running", "Running", "bool", 1),
    ("logix.S", "S", "sint", 1),
    ("logix.US", "US", "usint", 1),
    ("logix.I", "I", "int", 1),
    ("logix.UI", "UI", "uint", 1),
    ("logix.UD", "UD", "udint", 1),
    ("logix.Big", "Big", "lint", 1),
    ("logix.UL", "UL", "ulint", 1),
    ("logix.R", "R", "real", 1),
    ("logix.LR", "LR", "lreal", 1),
    ("logix.Ints", "Ints", "int", 10),
    ("logix.Wave", "Wave", "real", 200),
    ("logix.Scaled", "Scaled", "int", 1),
    ("logix.Name", "Name", "string", 1),
];

/// What each numeric sym must read as.
fn expected() -> BTreeMap<String, f64> {
    let mut want = BTreeMap::new();
    let mut put = |name: &str, values: Vec<f64>| {
        if values.len() == 1 {
            want.insert(format!("logix.{name}"), values[0]);
        } else {
            for (i, v) in values.into_iter().enumerate() {
                want.insert(format!("logix.{name}[{i}]"), v);
            }
        }
    };
    put("Counter", vec![-123_456_789.0]);
    put(
        "Program:Main.Temps",
        (0..5).map(|i| f64::from(i) * 1.5).collect(),
    );
    put("Flags", vec![32.0]);
    let alarms = (0..64u32)
        .map(|bit| {
            let word: u32 = if bit < 32 { 0xAAAA_AAAA } else { 0x5555_5555 };
            f64::from((word >> (bit % 32)) & 1)
        })
        .collect();
    put("Alarms", alarms);
    put("Running", vec![1.0]);
    put("S", vec![-5.0]);
    put("US", vec![250.0]);
    put("I", vec![-1234.0]);
    put("UI", vec![54321.0]);
    put("UD", vec![3_000_000_000.0]);
    put("Big", vec![-1_234_567_890_123.0]);
    put("UL", vec![18_000_000_000_000_000_000u64 as f64]);
    put("R", vec![3.25]);
    put("LR", vec![-1.0e100]);
    put("Ints", (0..10).map(|i| f64::from(i * 3 - 5)).collect());
    put("Wave", (0..200).map(f64::from).collect());
    put("Scaled", vec![100.0]);
    want
}

fn write_config(dir: &Path, plc_port: u16, tp: &str, csv: &Path) -> std::path::PathBuf {
    let text = format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 500\nbatch_age = \"5ms\"\n\n\
         [[device]]\nname = \"logix\"\nprotocol = \"ethernet-ip\"\n\
         address = \"127.0.0.1:{plc_port}\"\npoll_interval = \"50ms\"\n\
         tags_csv = \"{}\"\n",
        csv.display()
    );
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn cm_ethernetip_tags_are_discovered_loaded_and_read_right() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut peer = enip_support::start(port);
    let csv = dir.path().join("tags.csv");
    let address = format!("127.0.0.1:{port}");
    let output = discover(&[
        &address,
        "--prefix",
        "logix.",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{stdout}{stderr}({})",
        peer.state()
    );

    // The CSV: every readable tag, in the controller's order.
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("name,address,type,count"));
    let rows: Vec<&str> = lines.collect();
    let want: Vec<String> = ROWS
        .iter()
        .map(|(n, a, t, c)| format!("{n},{a},{t},{c}"))
        .collect();
    assert_eq!(rows, want, "{stdout}");
    // The summary: the count, two pages, the hidden symbols and the UDT.
    assert!(
        stdout.starts_with(&format!(
            "{address}: {} tags (293 samples) written to {}, from 2 pages",
            ROWS.len(),
            csv.display()
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("left out: 2 system or hidden symbols"),
        "{stdout}"
    );
    assert!(
        stdout.contains("structure `Motor` (template 0x102, 8 bytes): not readable whole"),
        "{stdout}"
    );
    assert!(!text.contains("Hidden") && !text.contains("SysFlag") && !text.contains("Motor"));

    // The configuration loader takes it as the device's tags_csv.
    let tp_recorder = Arc::new(Mutex::new(RowRecorder::new(2_000_000)));
    let options = TickerplantOptions {
        recorder: Some(tp_recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let config_path = write_config(dir.path(), port, &tp.local_addr().to_string(), &csv);
    let config = millrace::config::load(&config_path).expect("the discovered CSV loads");
    let want = expected();
    assert_eq!(
        config.tag_count(),
        want.len() + 1,
        "every sample and the string"
    );

    // A real run reads every value right.
    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("start millrace run");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = tp_recorder.lock().unwrap();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, sym, _, _) in &r.rows {
            *seen.entry(sym.as_str()).or_default() += 1;
        }
        let done = want
            .keys()
            .all(|s| seen.get(s.as_str()).copied().unwrap_or(0) >= 3)
            && r.texts.len() >= 3;
        drop(r);
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "rows after 90 s: {}",
            tp_recorder.lock().unwrap().rows.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(status.success(), "{log}");
    tp.stop();
    let r = tp_recorder.lock().unwrap();
    for (_, sym, _, text) in &r.texts {
        assert_eq!((sym.as_str(), text.as_str()), ("logix.Name", "pump 7"));
    }
    for (table, sym, value, seq) in &r.rows {
        assert_eq!(table, "plc");
        if sym == "logix.Name" {
            continue;
        }
        let want = want.get(sym).unwrap_or_else(|| panic!("a row for {sym}"));
        assert_eq!(value, want, "{sym} at seq {seq}");
    }
}

#[test]
fn cpppo_has_no_tag_list_and_discover_says_which_service() {
    let port = free_port();
    let child = Command::new(python("MILLRACE_CPPPO_PYTHON", "cpppo-venv"))
        .args(["-m", "cpppo.server.enip", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("Counter=DINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cpppo peer");
    let _peer = wait_listening(Peer(child), port, "cpppo");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("tags.csv");
    let output = discover(&[&format!("127.0.0.1:{port}"), "--out", csv.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("millrace discover: 127.0.0.1:"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Get Instance Attribute List (0x55) on the Symbol class (0x6B)"),
        "{stderr}"
    );
    assert!(stderr.contains("it cannot list its tags"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!csv.exists(), "no CSV is written when discovery fails");
}
