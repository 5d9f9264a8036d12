//! The pipeline behind the readers, end to end with real threads, a real WAL
//! on disk and the tickerplant stand-in on a real 127.0.0.1 socket: samples
//! pushed into a ring come out of kdb+ IPC exactly once each (by seq), with
//! their values, and a restart resumes from the sink's checkpoint.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::config::{self, Config};
use millrace::doorbell::Doorbell;
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
/// Rings `doorbell` after each, as a reader does after a turn.
/// A reader's rule for waking a napping writer (shard.rs, ring_out.rs).
fn filling(producer: &mut ring::Producer) -> bool {
    let capacity = producer.capacity();
    capacity - producer.free() >= capacity / 4
}

fn produce(producer: &mut ring::Producer, doorbell: &Doorbell, start: u64, batches: u64) {
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
        doorbell.ring(|| filling(producer));
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
    produce(&mut producer, &pipeline.doorbell, start, batches);
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

/// Text samples (a head and extension records) pushed through a small ring
/// whose wrap cuts some of them in two: every frame the WAL writer makes
/// holds whole samples (a split one would stop the sink), and every text
/// arrives once, whole, at the seq of its head; the numbers keep theirs.
#[test]
fn text_samples_cut_by_the_ring_wrap_arrive_whole() {
    use millrace::sample::{text_records, write_text};
    use millrace::Quality;

    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let text = format!(
        "[wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"2ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"text\", \"device\", \"value\", \"quality\", \"seq\"]\n\
         batch_rows = 50\nbatch_age = \"1ms\"\n\n\
         [[device]]\nname = \"dev0\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:1\"\n\
         unit_id = 1\npoll_interval = \"100ms\"\n\n\
         [[device.tag]]\nname = \"n\"\narea = \"holding\"\naddress = 0\ntype = \"uint16\"\n\n\
         [[device.tag]]\nname = \"label\"\narea = \"holding\"\naddress = 10\ntype = \"string\"\n\
         length = 100\n",
        tp.local_addr()
    );
    let path = dir.path().join("plant.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let (wal, _) = Wal::open(&cfg.wal).unwrap();
    // 64 slots; a batch is 1 number + 1 + 5 text records = 7: the wrap
    // falls inside a text sample on most trips around the ring.
    let (mut producer, consumer) = ring::channel(64);
    let pipeline = Pipeline::start(
        &cfg,
        wal,
        vec![consumer],
        Arc::new(StageHistograms::default()),
        PipelineOptions::default(),
    )
    .unwrap();
    let batches = 500u64;
    let records = 1 + text_records(100);
    let label = |k: u64| format!("label {k:05}: ").repeat(1 + (k % 7) as usize);
    for k in 0..batches {
        let mut batch = vec![Sample::f64(
            millrace::pipeline::unix_now_ns(),
            TagId(0),
            k as f64,
        )];
        let mut text = vec![Sample::default(); text_records(100)];
        let ts = millrace::pipeline::unix_now_ns();
        write_text(
            &mut text,
            ts,
            TagId(1),
            Quality::GOOD,
            label(k).as_bytes(),
            100,
        );
        batch.extend(text);
        assert_eq!(batch.len(), records);
        let deadline = Instant::now() + Duration::from_secs(20);
        while producer.push_slice(&batch).is_err() {
            assert!(Instant::now() < deadline, "ring stayed full for 20 s");
            std::thread::sleep(Duration::from_micros(100));
        }
        pipeline.doorbell.ring(|| filling(&mut producer));
    }
    let finished = pipeline.finish();
    assert!(finished.errors.is_empty(), "{:?}", finished.errors);
    let r = recorder.lock().unwrap();
    let records = records as u64;
    assert_eq!(
        r.rows.len() as u64,
        2 * batches,
        "one row per number and per text"
    );
    for (_, sym, value, seq) in &r.rows {
        let (k, at) = (*seq as u64 / records, *seq as u64 % records);
        match at {
            0 => assert_eq!((sym.as_str(), *value), ("n", k as f64)),
            1 => assert!(sym == "label" && value.is_nan()),
            _ => panic!("a row at seq {seq}: an extension's seq"),
        }
    }
    assert_eq!(r.texts.len() as u64, batches);
    for (_, sym, seq, text) in &r.texts {
        let k = *seq as u64 / records;
        assert_eq!((sym.as_str(), *seq as u64 % records), ("label", 1));
        let mut expected = label(k);
        expected.truncate(100);
        assert_eq!(text, &expected, "seq {seq}");
    }
    drop(r);
    let inspection = millrace::wal::inspect(&cfg.wal.dir).unwrap();
    assert_eq!(
        (inspection.rows, inspection.text_samples),
        (2 * batches, batches)
    );
    assert!(
        inspection.anomalies.is_empty(),
        "{:?}",
        inspection.anomalies
    );
}
