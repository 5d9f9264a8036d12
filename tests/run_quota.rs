//! The WAL quota end to end, under both policies, with `millrace run` as a
//! child process and its Prometheus endpoint scraped over HTTP: kdb+ is down,
//! the WAL fills to its quota, and the policy shows in the metrics. With
//! `block` the readers stretch their polls (overruns) and nothing durable is
//! lost once kdb+ returns; with `drop_oldest` the drop is counted.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::farm::{self, EmitOptions, Farm, FarmOptions};
use millrace::kdb::{SeqRecorder, Tickerplant, TickerplantOptions};

fn write_plant(dir: &Path, sink: &str, when_full: &str, farm_ports: &[u16]) -> std::path::PathBuf {
    let config = dir.join("plant.toml");
    let emit = EmitOptions {
        tags_per_device: 125,
        wal_dir: dir.join("wal"),
        sink_address: sink.to_string(),
        poll_interval: "10ms".into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, farm_ports, &emit).unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"127.0.0.1:0\"")
        .replace("segment_size = \"64MiB\"", "segment_size = \"256KiB\"")
        .replace("quota = \"4GiB\"", "quota = \"768KiB\"")
        .replace(
            "when_full = \"block\"",
            &format!("when_full = \"{when_full}\""),
        );
    std::fs::write(&config, text).unwrap();
    config
}

/// Starts `millrace run` and returns it with its metrics address (read from
/// the line it logs).
fn spawn_run(config: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            if let Some(rest) = line.split_once("metrics on http://").map(|(_, rest)| rest) {
                let _ = tx.send(rest.trim_end_matches("/metrics").to_string());
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("metrics address in the log");
    (child, addr)
}

fn scrape(addr: &str, name: &str) -> f64 {
    let text = common::scrape(addr);
    common::metric_in(&text, name)
        .unwrap_or_else(|| panic!("{name} not in the exposition:\n{text}"))
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child) {
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-15", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        assert!(Instant::now() < deadline, "millrace run did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn farm() -> millrace::farm::FarmHandle {
    Farm::start(FarmOptions {
        devices: 10,
        register_count: 125,
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn block_policy_stretches_polls_then_delivers_everything() {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm();
    let sink = common::free_address();
    let config = write_plant(dir.path(), &sink, "block", farm.ports());
    let (child, metrics) = spawn_run(&config);
    // 125,000 samples/s against 768 KiB of WAL: full within a second or two.
    wait_for(
        "the WAL to refuse (full_waits)",
        Duration::from_secs(60),
        || scrape(&metrics, "millrace_wal_full_waits_total") > 0.0,
    );
    wait_for(
        "readers to delay polls (overruns)",
        Duration::from_secs(60),
        || scrape(&metrics, "millrace_overruns_total") > 0.0,
    );
    assert_eq!(scrape(&metrics, "millrace_wal_dropped_samples_total"), 0.0);
    // kdb+ comes back: the backlog drains.
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(100_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind(&sink, options).unwrap();
    wait_for(
        "delivery after kdb+ returned",
        Duration::from_secs(60),
        || scrape(&metrics, "millrace_sink_acked_samples_total{sink=\"tp\"}") > 0.0,
    );
    let durable_then = scrape(&metrics, "millrace_wal_durable_seq") as u64;
    stop(child);
    let r = recorder.lock().unwrap();
    assert_eq!(r.missing(0..durable_then), 0, "block lost durable samples");
    drop(tp);
}

#[test]
fn drop_oldest_policy_keeps_going_and_counts_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let farm = farm();
    let sink = common::free_address();
    let config = write_plant(dir.path(), &sink, "drop_oldest", farm.ports());
    let (child, metrics) = spawn_run(&config);
    wait_for(
        "dropped samples to be counted",
        Duration::from_secs(60),
        || scrape(&metrics, "millrace_wal_dropped_samples_total") > 0.0,
    );
    // The WAL keeps accepting: the durable seq still moves.
    let before = scrape(&metrics, "millrace_wal_durable_seq");
    wait_for(
        "the durable seq to move on",
        Duration::from_secs(30),
        || scrape(&metrics, "millrace_wal_durable_seq") > before,
    );
    assert_eq!(scrape(&metrics, "millrace_wal_full_waits_total"), 0.0);
    stop(child);
}
