//! How a real `millrace run` connects to EtherNet/IP modules of different
//! kinds, read end to end into the tickerplant stand-in.
//!
//! Neither test peer refuses a Large Forward Open (0x5B) or checks a
//! route: cm-ethernetip 0.1.0 and cpppo 5.2.5 both serve 0x5B and skip the
//! port segments of a connection path (checked in their sources and on the
//! wire). So cm-ethernetip's server (tests/enip_support) is started as the
//! module kinds that do: without its Large Forward Open service (its own
//! dispatcher then answers "service not supported", as a 1756-ENBT does),
//! and as a chassis that refuses a Forward Open along a route other than
//! backplane slot 0 (with its own Forward Open error, 0x0312). cpppo, as it
//! is, takes the `1,0` route.

mod common;
mod enip_support;

use common::free_port;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use enip_support::{python, start_with, wait_listening, Peer};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};

/// A device of the config: name, port, `path`, `connection_size` line.
struct Device<'a> {
    name: &'a str,
    port: u16,
    path: &'a str,
    extra: &'a str,
    tags: &'a [(&'a str, &'a str, &'a str, u16)],
}

/// Tags of cm-ethernetip's server: the 800-byte Wave cannot come in one
/// 500-byte reply, so the plans of the two connection sizes differ.
const CM_TAGS: &[(&str, &str, &str, u16)] = &[
    ("counter", "Counter", "dint", 1),
    ("temps", "Program:Main.Temps", "real", 5),
    ("wave", "Wave", "real", 200),
];

/// What a device with `CM_TAGS` must read as.
fn cm_expected(device: &str, want: &mut BTreeMap<String, f64>) {
    want.insert(format!("{device}.counter"), -123_456_789.0);
    for i in 0..5 {
        want.insert(format!("{device}.temps[{i}]"), f64::from(i) * 1.5);
    }
    for i in 0..200 {
        want.insert(format!("{device}.wave[{i}]"), f64::from(i));
    }
}

fn write_config(dir: &Path, tp: &str, devices: &[Device<'_>]) -> std::path::PathBuf {
    let mut text = format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         batch_rows = 500\nbatch_age = \"5ms\"\n"
    );
    for d in devices {
        text.push_str(&format!(
            "\n[[device]]\nname = \"{}\"\nprotocol = \"ethernet-ip\"\n\
             address = \"127.0.0.1:{}\"\npath = \"{}\"\npoll_interval = \"50ms\"\n\
             timeout = \"2s\"\n{}\n",
            d.name, d.port, d.path, d.extra
        ));
        for (name, address, data_type, count) in d.tags {
            text.push_str(&format!(
                "\n[[device.tag]]\nname = \"{}.{name}\"\naddress = \"{address}\"\n\
                 type = \"{data_type}\"\ncount = {count}\n",
                d.name
            ));
        }
    }
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `millrace run` until every sym of `want` arrived three times and
/// `done(stderr)` holds; stops it cleanly and returns its rows and stderr.
fn run_until(
    devices: &[Device<'_>],
    want: &BTreeMap<String, f64>,
    done: impl Fn(&str) -> bool,
) -> (Vec<(String, String, f64, i64)>, String) {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Mutex::new(RowRecorder::new(2_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let config = write_config(dir.path(), &tp.local_addr().to_string(), devices);
    let log = dir.path().join("stderr.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start millrace run");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let r = recorder.lock().unwrap();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, sym, _, _) in &r.rows {
            *seen.entry(sym.as_str()).or_default() += 1;
        }
        let all = want
            .keys()
            .all(|s| seen.get(s.as_str()).copied().unwrap_or(0) >= 3);
        drop(r);
        if all && done(&std::fs::read_to_string(&log).unwrap_or_default()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 90 s: {} rows; {}",
            recorder.lock().unwrap().rows.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    tp.stop();
    let rows = recorder.lock().unwrap().rows.clone();
    (rows, stderr)
}

/// Every row of a sym in `want` has its value; every other row is of a
/// device in `bad` and has none.
fn check_rows(rows: &[(String, String, f64, i64)], want: &BTreeMap<String, f64>, bad: &[&str]) {
    for (_, sym, value, seq) in rows {
        match want.get(sym) {
            Some(w) => assert_eq!(value, w, "{sym} at seq {seq}"),
            None => {
                assert!(
                    bad.iter().any(|d| sym.starts_with(&format!("{d}."))),
                    "a row for {sym}"
                );
                assert!(value.is_nan(), "{sym} at seq {seq}: {value}");
            }
        }
    }
}

#[test]
fn large_forward_open_where_accepted_and_the_fallback_where_refused() {
    let (large_port, small_port) = (free_port(), free_port());
    let (_large, large_lines) = start_with(large_port, &["log-open"]);
    let (_small, small_lines) = start_with(small_port, &["no-large", "log-open"]);
    // Both ask for the default connection size, 4002.
    let devices = [
        Device {
            name: "large",
            port: large_port,
            path: "",
            extra: "",
            tags: CM_TAGS,
        },
        Device {
            name: "enbt",
            port: small_port,
            path: "",
            extra: "",
            tags: CM_TAGS,
        },
    ];
    let mut want = BTreeMap::new();
    cm_expected("large", &mut want);
    cm_expected("enbt", &mut want);
    let (rows, stderr) = run_until(&devices, &want, |_| true);
    check_rows(&rows, &want, &[]);

    // The session says it fell back, once, for the module that refused.
    let fallbacks: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("refused the Large Forward Open"))
        .collect();
    assert_eq!(fallbacks.len(), 1, "{stderr}");
    assert!(
        fallbacks[0].contains("device enbt:")
            && fallbacks[0].contains("CIP status 0x08")
            && fallbacks[0].contains("connected with a Forward Open of 500 bytes"),
        "{stderr}"
    );
    // What each module was asked: 4002 bytes by 0x5B where it is served;
    // 500 bytes by 0x54 where 0x5B is not (its refusal is the dispatcher's,
    // before any Forward Open is processed).
    let opens = |lines: &Mutex<Vec<String>>| -> Vec<String> {
        let lines = lines.lock().unwrap();
        lines
            .iter()
            .filter(|l| l.starts_with("forward-open"))
            .cloned()
            .collect()
    };
    let large = opens(&large_lines);
    assert!(!large.is_empty(), "the large module saw no Forward Open");
    assert!(
        large.iter().all(|l| l == "forward-open 0x5b 4002"),
        "{large:?}"
    );
    let small = opens(&small_lines);
    assert!(
        !small.is_empty(),
        "the ENBT-like module saw no Forward Open"
    );
    assert!(
        small.iter().all(|l| l == "forward-open 0x54 500"),
        "{small:?}"
    );
}

/// cpppo 5.2.5's server, its `Counter` set by its own client.
fn start_cpppo(port: u16) -> Peer {
    let python = python("MILLRACE_CPPPO_PYTHON", "cpppo-venv");
    let child = Command::new(&python)
        .args(["-m", "cpppo.server.enip", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("Counter=DINT")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cpppo peer");
    let peer = wait_listening(Peer(child), port, "cpppo");
    let output = Command::new(&python)
        .args(["-m", "cpppo.server.enip.client", "--print", "-a"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("Counter=(DINT)4711")
        .output()
        .expect("run the cpppo client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|l| l.ends_with(": 'OK'")),
        "cpppo's client: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    peer
}

#[test]
fn a_backplane_route_is_taken_and_a_wrong_one_is_that_devices_error() {
    let (chassis_port, direct_port, cpppo_port) = (free_port(), free_port(), free_port());
    let (_chassis, chassis_lines) = start_with(chassis_port, &["route=0100", "log-open"]);
    let (_direct, _) = start_with(direct_port, &[]);
    let _cpppo = start_cpppo(cpppo_port);
    let devices = [
        // Backplane, slot 0: the controller is there.
        Device {
            name: "chassis",
            port: chassis_port,
            path: "1,0",
            extra: "",
            tags: CM_TAGS,
        },
        // Slot 3 of the same chassis is empty.
        Device {
            name: "wrongslot",
            port: chassis_port,
            path: "1,3",
            extra: "",
            tags: CM_TAGS,
        },
        // A Micro800 or CompactLogix reached directly: no route.
        Device {
            name: "direct",
            port: direct_port,
            path: "",
            extra: "",
            tags: CM_TAGS,
        },
        // cpppo, unchanged, takes the backplane route; its replies stop
        // near 500 bytes, so it gets a 500-byte connection.
        Device {
            name: "cpppo",
            port: cpppo_port,
            path: "1,0",
            extra: "connection_size = 500",
            tags: &[("counter", "Counter", "dint", 1)],
        },
    ];
    let mut want = BTreeMap::new();
    cm_expected("chassis", &mut want);
    cm_expected("direct", &mut want);
    want.insert("cpppo.counter".to_string(), 4711.0);
    let refused = |log: &str| {
        log.lines()
            .any(|l| l.contains("device wrongslot:") && l.contains("handshake failed"))
    };
    let (rows, stderr) = run_until(&devices, &want, refused);
    // The other devices read right; the wrong slot's rows carry no value.
    check_rows(&rows, &want, &["wrongslot"]);
    let line = stderr
        .lines()
        .find(|l| l.contains("device wrongslot:") && l.contains("handshake failed"))
        .unwrap();
    assert!(
        line.contains("handshake failed")
            && line
                .contains("refused the Large Forward Open with CIP status 0x01, extended 0x0312")
            && line.contains("check `path`"),
        "{line}"
    );
    // Told once, not per retry; and no fallback was tried for a route.
    let told = stderr
        .lines()
        .filter(|l| l.contains("device wrongslot:") && l.contains("handshake failed"))
        .count();
    assert_eq!(told, 1, "{stderr}");
    assert!(!stderr.contains("Forward Open of 500 bytes"), "{stderr}");
    let lines = chassis_lines.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l == "route-refused 0103"), "{lines:?}");
    assert!(
        lines.iter().any(|l| l == "forward-open 0x5b 4002"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("forward-open 0x54")),
        "{lines:?}"
    );
}
