//! The pipeline behind the readers, end to end with real threads, a real WAL
//! on disk and the tickerplant stand-in on a real 127.0.0.1 socket: samples
//! pushed into a ring come out of kdb+ IPC exactly once each (by seq), with
//! their values, and a restart resumes from the sink's checkpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::config::{self, Config};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
use millrace::metrics::{Stage, StageHistograms};
use millrace::pipeline::{Pipeline, PipelineOptions};
use millrace::ring;
use millrace::wal::Wal;
use millrace::{Sample, TagId};

const TAGS: u32 = 50;

fn write_config(dir: &std::path::Path, tp_addr: &str) -> Config {
    let mut text = format!(
        "[wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\ncommit_interval = \"2ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp_addr}\"\nuser = \"feed\"\n\
         table = \"plc\"\nbatch_rows = 500\nbatch_age = \"1ms\"\n\n\
         [[device]]\nname = \"dev0\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:1\"\n\
         unit_id = 1\npoll_interval = \"100ms\"\n"
    );
    for t in 0..TAGS {
        text.push_str(&format!(
            "\n[[device.tag]]\nname = \"t{t}\"\narea = \"holding\"\naddress = {t}\ntype = \"uint16\"\n"
        ));
    }
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    config::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

/// Pushes `batches` batches of TAGS samples; value = global index.
fn produce(producer: &mut ring::Producer, start: u64, batches: u64) {
    let mut next = start;
    for _ in 0..batches {
        let deadline = Instant::now() + Duration::from_secs(20);
        let samples: Vec<Sample> = (0..TAGS)
            .map(|t| {
                let s = Sample::f64(millrace::pipeline::unix_now_ns(), TagId(t), next as f64);
                next += 1;
                s
            })
            .collect();
        while producer.push_slice(&samples).is_err() {
            assert!(Instant::now() < deadline, "ring stayed full for 20 s");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
}

fn run_once(cfg: &Config, start: u64, batches: u64) -> Pipeline {
    let (wal, _report) = Wal::open(&cfg.wal).unwrap();
    let (mut producer, consumer) = ring::channel(4096);
    let histograms = Arc::new(StageHistograms::default());
    let pipeline = Pipeline::start(
        cfg,
        wal,
        vec![consumer],
        histograms,
        PipelineOptions::default(),
    )
    .unwrap();
    produce(&mut producer, start, batches);
    pipeline
}

#[test]
fn every_sample_arrives_once_with_its_value_and_restart_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let cfg = write_config(dir.path(), &tp.local_addr().to_string());

    let batches = 400u64; // 20,000 samples: several 64 KiB segments
    let pipeline = run_once(&cfg, 0, batches);
    let histograms = Arc::clone(&pipeline.histograms);
    let finished = pipeline.finish();
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    drop(finished);
    assert!(!histograms.snapshot(Stage::EndToEnd).is_empty());
    assert!(!histograms.snapshot(Stage::WalCommit).is_empty());

    // Second run on the same WAL: the sink resumes after its checkpoint.
    let pipeline = run_once(&cfg, batches * TAGS as u64, batches);
    let finished = pipeline.finish();
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);

    let total = 2 * batches * TAGS as u64;
    let rows = recorder.lock().unwrap().rows.clone();
    let mut seen = vec![0u32; total as usize];
    for (table, sym, value, seq) in &rows {
        assert_eq!(table, "plc");
        let seq = *seq as u64;
        assert!(seq < total, "seq {seq} beyond what was written");
        seen[seq as usize] += 1;
        // The WAL numbers samples in the order they were produced.
        assert_eq!(*value, seq as f64, "value of seq {seq}");
        assert_eq!(sym, &format!("t{}", seq % TAGS as u64));
    }
    let missing = seen.iter().filter(|&&n| n == 0).count();
    assert_eq!(missing, 0, "samples never delivered");
    // At-least-once: a clean stop checkpoints everything, so no duplicates here.
    let doubled = seen.iter().filter(|&&n| n > 1).count();
    assert_eq!(doubled, 0, "samples delivered twice after a clean stop");
    assert_eq!(tp.rows("plc"), total);
}
