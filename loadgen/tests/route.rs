//! Routing inside one gateway, end to end: a real `millrace run` polls a
//! 4-device farm with two sinks whose `devices` patterns split the devices
//! between two verifying stand-ins. Each stand-in must get only its devices'
//! rows (none foreign), every value checked, and between them every durable
//! seq exactly once (a device goes to one sink here, so their seqs are
//! disjoint and their sum is the whole). A third sink without `devices`
//! takes everything into `millrace tickerplant --journal` with a `gateway`
//! column: every row read back from the journal carries `[gateway] id`.

mod common;

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// A child killed when dropped (a failing test leaves nothing running).
struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct StandIn {
    _kid: Kid,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    addr: String,
}

impl StandIn {
    fn start(devices: u32, tags: u32, routes: &[&str]) -> StandIn {
        let mut command = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"));
        command
            .args(["standin", "--devices", &devices.to_string()])
            .args(["--tags-per-device", &tags.to_string()])
            .args(["--seq-capacity", "50000000"]);
        for route in routes {
            command.args(["--route", route]);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the stand-in");
        let stdin = child.stdin.take().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let addr = first
            .strip_prefix("standin listening ")
            .unwrap_or_else(|| panic!("stand-in said {first:?}"))
            .to_string();
        StandIn {
            _kid: Kid(child),
            stdin,
            lines,
            addr,
        }
    }

    fn ask(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        self.lines.next().unwrap().unwrap()
    }

    fn rows(&mut self) -> u64 {
        let line = self.ask("rows");
        line.strip_prefix("rows ").unwrap().parse().unwrap()
    }

    /// The verdict's fields by name (the stand-in prints flat JSON).
    fn finish(&mut self, end: u64) -> serde_json::Value {
        let line = self.ask(&format!("finish {end}"));
        let json = line
            .strip_prefix("verdict ")
            .unwrap_or_else(|| panic!("{line}"));
        serde_json::from_str(json).unwrap()
    }
}

/// Starts the farm, writing its config; returns it and the config path.
fn start_farm(dir: &Path, devices: u32, tags: u32) -> (Kid, PathBuf) {
    let config = dir.join("farm.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"))
        .args(["serve", "--devices", &devices.to_string()])
        .args(["--tags-per-device", &tags.to_string(), "--base-port", "0"])
        .arg("--emit-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the farm");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(
        lines.by_ref().take(16).any(|l| l.unwrap() == "ready"),
        "the farm did not start"
    );
    std::thread::spawn(move || lines.for_each(drop));
    (Kid(child), config)
}

/// The emitted config with its one sink replaced by `sinks` (TOML text)
/// and the metrics endpoint off (tests run side by side).
fn with_sinks(config: &Path, sinks: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("[[sink]]").unwrap();
    let end = text.find("[[device]]").unwrap();
    let text = format!("{}{sinks}\n{}", &text[..start], &text[end..]);
    text.replace("listen = \"127.0.0.1:9187\"", "listen = \"off\"")
}

fn kdb_sink(name: &str, addr: &str, devices: &str) -> String {
    format!(
        "[[sink]]\nname = \"{name}\"\nkind = \"kdb\"\naddress = \"{addr}\"\nuser = \"feed\"\n\
         table = \"plc\"\nbatch_rows = 1000\nbatch_age = \"5ms\"\n{devices}\n\n"
    )
}

/// `millrace tickerplant --journal FILE` on a free port: the child and its
/// address.
fn start_journal_tp(journal: &Path) -> (Kid, String) {
    let mut child = Command::new(common::millrace_binary())
        .args(["tickerplant", "--listen", "127.0.0.1:0", "--journal"])
        .arg(journal)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start millrace tickerplant");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("listening ").unwrap().to_string();
    std::thread::spawn(move || lines.for_each(drop));
    (Kid(child), addr)
}

/// (seq, gateway) of every row of the journal, with the gateway column at
/// position `gateway_at`.
fn journal_gateways(path: &Path, gateway_at: usize) -> Vec<(i64, String)> {
    use millrace::kdb::{Data, DecodeLimits, K};
    let bytes = std::fs::read(path).unwrap();
    let limits = DecodeLimits {
        message_bytes_max: 64 << 20,
        ..DecodeLimits::default()
    };
    let mut rows = Vec::new();
    let mut at = millrace::kdb::journal::JOURNAL_HEADER_SIZE;
    while at < bytes.len() {
        let (k, used) = millrace::kdb::decode::decode_prefix(&bytes[at..], true, &limits)
            .expect("journal entry");
        at += used;
        let update = millrace::kdb::upd::parse_update(&k)
            .unwrap()
            .expect("an upd entry");
        let column = |i: usize| match update.columns.get(i) {
            Some(K::Vector { data, .. }) => data,
            other => panic!("column {i}: {other:?}"),
        };
        let (Data::Symbols(gateway), Data::Longs(seq)) = (column(gateway_at), column(5)) else {
            panic!("unexpected column types")
        };
        for (g, q) in gateway.iter().zip(seq) {
            rows.push((*q, String::from_utf8_lossy(g).into_owned()));
        }
    }
    rows
}

/// Runs `millrace run` until each stand-in has rows, then stops it with
/// SIGTERM; returns its stderr lines.
fn run_gateway(config: &Path, standins: &mut [&mut StandIn]) -> Vec<String> {
    let mut gateway = Kid(Command::new(common::millrace_binary())
        .args(["run", "--config"])
        .arg(config)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace run"));
    let stderr = gateway.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while standins.iter_mut().any(|s| s.rows() < 2_000) {
        assert!(
            Instant::now() < deadline,
            "the stand-ins got no rows in 60 s"
        );
        assert!(
            gateway.0.try_wait().unwrap().is_none(),
            "millrace exited early"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = gateway.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = gateway.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "millrace did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = reader.join().unwrap();
    assert!(
        status.success(),
        "millrace exited with {status:?}:\n{}",
        lines.join("\n")
    );
    lines
}

/// `millrace: stopped: durable seq N, ..., lag L` -> (N, L).
fn stopped_line(lines: &[String]) -> (u64, u64) {
    let line = lines
        .iter()
        .find(|l| l.contains("stopped: durable seq "))
        .unwrap_or_else(|| panic!("no stop line in:\n{}", lines.join("\n")));
    let durable = line.split("durable seq ").nth(1).unwrap();
    let durable: u64 = durable.split(',').next().unwrap().trim().parse().unwrap();
    let lag: u64 = line.rsplit("lag ").next().unwrap().trim().parse().unwrap();
    (durable, lag)
}

#[test]
fn two_sinks_each_get_exactly_their_devices_rows() {
    let dir = std::env::temp_dir().join(format!("millrace-route-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (devices, tags) = (4, 20);
    let (_farm, farm_config) = start_farm(&dir, devices, tags);
    // Devices interleave in one reader's frames: each frame is cut in runs.
    let mut a = StandIn::start(devices, tags, &["farm-00000", "*2"]);
    let mut b = StandIn::start(devices, tags, &["*1", "*3"]);
    let journal = dir.join("all.log");
    let (mut all_tp, all_addr) = start_journal_tp(&journal);
    let sinks = kdb_sink("even", &a.addr, "devices = [\"farm-00000\", \"*2\"]")
        + &kdb_sink("odd", &b.addr, "devices = [\"*1\", \"*3\"]")
        + &kdb_sink(
            "all",
            &all_addr,
            "columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"gateway\"]",
        );
    let config = dir.join("routed.toml");
    let text = format!(
        "[gateway]\nid = \"edge-03\"\n\n{}",
        with_sinks(&farm_config, &sinks)
    );
    std::fs::write(&config, text).unwrap();

    let check = Command::new(common::millrace_binary())
        .arg("check-config")
        .arg(&config)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        summary.contains("devices: farm-00000 *2 -> 2 device(s): farm-00000 farm-00002"),
        "{summary}"
    );

    let lines = run_gateway(&config, &mut [&mut a, &mut b]);
    let (durable, lag) = stopped_line(&lines);
    assert_eq!(
        lag,
        0,
        "every sink acknowledged everything:\n{}",
        lines.join("\n")
    );
    let (va, vb) = (a.finish(durable), b.finish(durable));
    for (name, v) in [("even", &va), ("odd", &vb)] {
        assert_eq!(
            v["foreign_rows"], 0,
            "{name}: rows of another sink's devices: {v}"
        );
        assert_eq!(v["mismatches"], 0, "{name}: {v}");
        assert_eq!(v["duplicates_after_dedup"], 0, "{name}: {v}");
        assert!(v["unique_seqs"].as_u64().unwrap() > 0, "{name}: {v}");
    }
    let total = va["unique_seqs"].as_u64().unwrap() + vb["unique_seqs"].as_u64().unwrap();
    assert_eq!(
        total, durable,
        "every durable seq reached exactly one sink: {va} {vb}"
    );

    // The sink without `devices` got every row, each carrying the gateway id.
    let pid = all_tp.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let _ = all_tp.0.wait();
    let mut rows = journal_gateways(&journal, 6);
    assert!(
        rows.iter().all(|(_, g)| g == "edge-03"),
        "a row without the id"
    );
    rows.sort();
    rows.dedup();
    assert_eq!(
        rows.len() as u64,
        durable,
        "the `all` sink got every seq once"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every row of a journal whose table has millrace's default columns and
/// then `gateway`: (gateway, seq, device, sym, value).
fn journal_rows(path: &Path) -> Vec<(String, i64, String, String, f64)> {
    use millrace::kdb::{Data, DecodeLimits, K};
    let bytes = std::fs::read(path).unwrap();
    let limits = DecodeLimits {
        message_bytes_max: 64 << 20,
        ..DecodeLimits::default()
    };
    let mut rows = Vec::new();
    let mut at = millrace::kdb::journal::JOURNAL_HEADER_SIZE;
    while at < bytes.len() {
        let (k, used) = millrace::kdb::decode::decode_prefix(&bytes[at..], true, &limits)
            .expect("journal entry");
        at += used;
        let update = millrace::kdb::upd::parse_update(&k)
            .unwrap()
            .expect("an upd entry");
        let column = |i: usize| match update.columns.get(i) {
            Some(K::Vector { data, .. }) => data,
            other => panic!("column {i}: {other:?}"),
        };
        let (
            Data::Symbols(sym),
            Data::Symbols(device),
            Data::Floats(value),
            Data::Longs(seq),
            Data::Symbols(gateway),
        ) = (column(1), column(2), column(3), column(5), column(6))
        else {
            panic!("unexpected column types")
        };
        let text = |s: &[u8]| String::from_utf8_lossy(s).into_owned();
        let cells = gateway
            .iter()
            .zip(seq)
            .zip(device.iter())
            .zip(sym.iter())
            .zip(value);
        for ((((g, q), d), s), v) in cells {
            rows.push((text(g), *q, text(d), text(s), *v));
        }
    }
    rows
}

/// The end-to-end case: `millrace plan` splits a 1,000-device farm
/// over 3 gateways and 2 tickerplant segments; the 3 gateways run at once
/// into 2 journaling stand-ins. No device is polled by two gateways, every
/// row is in its device's segment, every (gateway, seq) a gateway made
/// durable arrives in exactly one segment, and every value is the farm's.
#[test]
fn three_planned_gateways_deliver_every_sample_once_per_segment() {
    let dir = std::env::temp_dir().join(format!("millrace-plan-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let (_farm, farm_config) = start_farm(&dir, 1_000, 2);
    let journals = [dir.join("seg-a.log"), dir.join("seg-b.log")];
    let (mut tp_a, addr_a) = start_journal_tp(&journals[0]);
    let (mut tp_b, addr_b) = start_journal_tp(&journals[1]);
    let columns =
        "columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"gateway\"]";
    let sinks = kdb_sink("seg-a", &addr_a, columns) + &kdb_sink("seg-b", &addr_b, columns);
    let plant = dir.join("plant.toml");
    std::fs::write(&plant, with_sinks(&farm_config, &sinks)).unwrap();
    let out = dir.join("gateways");
    let planned = Command::new(common::millrace_binary())
        .args(["plan", "--gateways", "3", "--segments", "2", "--out"])
        .arg(&out)
        .arg(&plant)
        .output()
        .unwrap();
    assert!(
        planned.status.success(),
        "{}",
        String::from_utf8_lossy(&planned.stderr)
    );

    let configs: Vec<millrace::config::Config> = (1..=3)
        .map(|i| millrace::config::load(&out.join(format!("plant-{i}.toml"))).unwrap())
        .collect();
    // No device polled twice, none left out.
    let mut gateway_of = std::collections::BTreeMap::new();
    for c in &configs {
        for d in &c.devices {
            assert!(gateway_of
                .insert(d.name.clone(), c.gateway.id.clone())
                .is_none());
        }
    }
    assert_eq!(gateway_of.len(), 1_000);

    let mut gateways: Vec<(Kid, std::thread::JoinHandle<Vec<String>>)> = (1..=3)
        .map(|i| {
            let mut kid = Kid(Command::new(common::millrace_binary())
                .args(["run", "--config"])
                .arg(out.join(format!("plant-{i}.toml")))
                .stderr(Stdio::piped())
                .spawn()
                .expect("start millrace run"));
            let stderr = kid.0.stderr.take().unwrap();
            let reader = std::thread::spawn(move || {
                BufReader::new(stderr)
                    .lines()
                    .map_while(Result::ok)
                    .collect()
            });
            (kid, reader)
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    let grown = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0) > 2_000_000;
    while !journals.iter().all(|j| grown(j)) {
        assert!(
            Instant::now() < deadline,
            "the segments got too little in 90 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut durable = std::collections::BTreeMap::new();
    for (i, (kid, reader)) in gateways.iter_mut().enumerate() {
        let pid = kid.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = kid.0.wait().unwrap();
        let lines = std::mem::replace(reader, std::thread::spawn(Vec::new));
        let lines = lines.join().unwrap();
        assert!(status.success(), "gateway {}:\n{}", i + 1, lines.join("\n"));
        let (seq, lag) = stopped_line(&lines);
        assert_eq!(lag, 0, "gateway {}:\n{}", i + 1, lines.join("\n"));
        durable.insert(configs[i].gateway.id.clone(), seq);
    }
    for tp in [&mut tp_a, &mut tp_b] {
        let pid = tp.0.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let _ = tp.0.wait();
    }

    let mut keys = std::collections::BTreeSet::new();
    for (segment, journal) in journals.iter().enumerate() {
        let mut seen = std::collections::BTreeSet::new();
        for (gateway, seq, device, sym, value) in journal_rows(journal) {
            assert_eq!(
                gateway_of.get(&device),
                Some(&gateway),
                "{device} from {gateway}"
            );
            let config = configs.iter().find(|c| c.gateway.id == gateway).unwrap();
            assert!(
                config.sinks[segment].takes(&device),
                "{device} in segment {segment}"
            );
            if !value.is_nan() {
                let index: u32 = device.trim_start_matches("farm-").parse().unwrap();
                let address: u16 = sym.rsplit("hr").next().unwrap().parse().unwrap();
                assert!(
                    millrace::farm::verify_register(index, address, value as u16),
                    "{sym} = {value}"
                );
            }
            if seen.insert((gateway.clone(), seq)) {
                assert!(keys.insert((gateway, seq)), "a row in both segments");
            }
        }
    }
    let expected: u64 = durable.values().sum();
    assert_eq!(
        keys.len() as u64,
        expected,
        "every durable (gateway, seq) once: {durable:?}"
    );
    for (gateway, end) in &durable {
        let top = keys
            .range((gateway.clone(), 0)..=(gateway.clone(), i64::MAX))
            .next_back();
        assert_eq!(top.map(|k| k.1 + 1), Some(*end as i64), "{gateway}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
