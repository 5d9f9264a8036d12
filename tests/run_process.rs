//! `millrace run` as a real child process against the simulated farm and the
//! tickerplant stand-in on 127.0.0.1: kill -9 under load and restart, a kdb+
//! endpoint that goes away and comes back. After each scenario every sample
//! the WAL holds as durable must have reached the stand-in (no gap in seq;
//! duplicates are allowed: delivery is at-least-once and seq removes them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{durable_seq, wait_exit};
use millrace::farm::{self, EmitOptions, Farm, FarmHandle, FarmOptions};
use millrace::kdb::{SeqRecorder, Tickerplant, TickerplantOptions};

const DEVICES: u32 = 20;
const TAGS: u32 = 100;

struct Plant {
    _dir: tempfile::TempDir,
    config: PathBuf,
    wal: PathBuf,
    _farm: FarmHandle,
}

fn plant(sink_address: &str) -> Plant {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(FarmOptions {
        devices: DEVICES,
        register_count: TAGS,
        ..Default::default()
    })
    .unwrap();
    let config = dir.path().join("plant.toml");
    let wal = dir.path().join("wal");
    let emit = EmitOptions {
        tags_per_device: TAGS,
        wal_dir: wal.clone(),
        sink_address: sink_address.to_string(),
        poll_interval: "20ms".into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, farm.ports(), &emit).unwrap();
    // Several tests run at once: no fixed metrics port.
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"off\"")
        .replace("segment_size = \"64MiB\"", "segment_size = \"1MiB\"")
        .replace("batch_rows = 10000", "batch_rows = 2000");
    std::fs::write(&config, text).unwrap();
    Plant {
        _dir: dir,
        config,
        wal,
        _farm: farm,
    }
}

fn spawn_run(config: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start millrace run")
}

/// Sends `sig` to the child with kill(1).
fn signal(child: &Child, sig: i32) {
    common::signal(child.id(), sig);
}

fn recorder_tp(addr: &str, recorder: &Arc<Mutex<SeqRecorder>>) -> Tickerplant {
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    Tickerplant::bind(addr, options).unwrap()
}

fn assert_no_gaps(recorder: &Arc<Mutex<SeqRecorder>>, durable: u64) {
    let r = recorder.lock().unwrap();
    assert!(durable > 0, "nothing became durable");
    let missing = r.missing(0..durable);
    assert_eq!(
        missing, 0,
        "{missing} of {durable} durable samples never reached kdb+"
    );
    assert_eq!(
        r.out_of_range(),
        0,
        "seqs beyond the WAL's durable end arrived"
    );
}

#[test]
fn kill_9_under_load_then_restart_loses_nothing_durable() {
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(50_000_000)));
    let tp = recorder_tp("127.0.0.1:0", &recorder);
    let plant = plant(&tp.local_addr().to_string());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    for round in 0..5 {
        let mut child = spawn_run(&plant.config);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let ms = 300 + rng % 900;
        std::thread::sleep(Duration::from_millis(ms));
        signal(&child, 9);
        let status = wait_exit(&mut child, Duration::from_secs(10));
        assert!(
            !status.success(),
            "round {round}: a SIGKILLed process cannot exit 0"
        );
    }
    // A last run delivers the backlog and stops cleanly on SIGTERM.
    let mut child = spawn_run(&plant.config);
    std::thread::sleep(Duration::from_millis(1500));
    signal(&child, 15);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "clean stop exit status {status}");
    let durable = durable_seq(&plant.wal);
    assert_no_gaps(&recorder, durable);
    // The clean stop delivered everything durable: the stand-in has it all.
    assert!(tp.rows("plc") >= durable);
}

#[test]
fn kdb_outage_backlog_drains_after_it_comes_back() {
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(50_000_000)));
    let tp = recorder_tp("127.0.0.1:0", &recorder);
    let addr = tp.local_addr().to_string();
    let plant = plant(&addr);
    let mut child = spawn_run(&plant.config);
    std::thread::sleep(Duration::from_millis(700));
    let before_outage = tp.stop();
    assert!(
        before_outage.iter().any(|(t, n)| t == "plc" && *n > 0),
        "{before_outage:?}"
    );
    // kdb+ is down for a while; millrace keeps polling into the WAL.
    std::thread::sleep(Duration::from_millis(1500));
    let tp = recorder_tp(&addr, &recorder);
    let deadline = Instant::now() + Duration::from_secs(30);
    while tp.rows("plc") == 0 {
        assert!(
            Instant::now() < deadline,
            "no delivery after kdb+ came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, 15);
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "clean stop exit status {status}");
    assert_no_gaps(&recorder, durable_seq(&plant.wal));
}

#[test]
fn replay_sends_a_wal_range_again_with_its_seqs() {
    let first = Arc::new(Mutex::new(SeqRecorder::new(50_000_000)));
    let tp = recorder_tp("127.0.0.1:0", &first);
    let plant = plant(&tp.local_addr().to_string());
    let mut child = spawn_run(&plant.config);
    std::thread::sleep(Duration::from_millis(800));
    signal(&child, 15);
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
    let durable = durable_seq(&plant.wal);
    assert_no_gaps(&first, durable);

    // Rebuild a second tickerplant from the WAL alone, whole and in part.
    let rebuilt = Arc::new(Mutex::new(SeqRecorder::new(50_000_000)));
    let tp2 = recorder_tp("127.0.0.1:0", &rebuilt);
    let replay = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(["replay", "--wal"])
            .arg(&plant.wal)
            .args(["--to", &tp2.local_addr().to_string()])
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let summary = replay(&[]);
    assert!(
        summary.contains(&format!("{durable} rows acknowledged")),
        "{summary}"
    );
    assert_no_gaps(&rebuilt, durable);
    assert_eq!(rebuilt.lock().unwrap().duplicates(), 0);

    let (lo, hi) = (durable / 3, durable / 2);
    let summary = replay(&["--from-seq", &lo.to_string(), "--to-seq", &hi.to_string()]);
    assert!(
        summary.contains(&format!("{} rows acknowledged", hi - lo)),
        "{summary}"
    );
    let r = rebuilt.lock().unwrap();
    // Exactly the range came twice: every seq in lo..hi is now a duplicate.
    assert_eq!(r.duplicates(), hi - lo);
    assert_eq!(r.received(), durable + (hi - lo));
}
