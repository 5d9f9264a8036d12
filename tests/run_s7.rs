//! S7 end to end through a real `millrace run` process into the kdb+
//! stand-in, whose journal an independent kdb+ reader (aiokdb) decodes:
//!
//! - against both python-snap7 servers (2.1.0, the C++ Snap7 server; 3.3.0,
//!   the pure-Python one): every supported S7 type, strings into the `text`
//!   column, a scaled tag, M, I and Q, and a DB that does not exist (item
//!   return code 0x0A in `quality`); every delivered row is checked;
//! - against the farm's S7 fault modes in one process: item errors (a
//!   hardware fault 0x01 drawn per request, 0x0A for a missing DB, 0x05 past
//!   the end of a DB), header error 0x8500 (PDU size) and 0x8104 (PUT/GET
//!   off). Each row carries its S7 code in `quality` (docs/configuration.md),
//!   every good row's value checks against the farm, the operator notices
//!   reach the log, and the process keeps running until it is stopped.
#![cfg(not(millrace_loom))]

mod common;
mod kdb_support;
mod s7_peer_support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{signal, wait_exit, wait_until};
use kdb_support::run_python;
use millrace::config::{S7Area, S7Tag, S7Type};
use millrace::farm::s7::{self, emit, layout, Check, FarmTag};
use millrace::farm::{Farm, FarmHandle, FarmOptions, FarmProtocol, FaultRates, S7FarmOptions};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
use millrace::sample::ValueKind;
use millrace::Quality;
use s7_peer_support::{every_type_tags, start, Snap7, Want};

/// Every wait for rows: generous, two shared cores.
const ROWS_WAIT: Duration = Duration::from_secs(60);

/// Prints each row of a tick.q log as `-11!` streams it (aiokdb finding
/// each chunk's end): `seq sym quality value-bits text-hex`, tab-separated,
/// for the columns time, sym, device, value, quality, seq, text.
const READ_JOURNAL: &str = r#"
import struct, sys
from aiokdb import _d9_unpackfrom
rb = open(sys.argv[1], "rb").read()
assert rb[:2] == b"\xff\x01", rb[:8].hex()
offset = 14
while offset < len(rb):
    k, offset = _d9_unpackfrom(rb, offset)
    fn, table, data = k.kK()
    cols = data.kK()
    rows = zip(cols[1].kS(), cols[3].kF(), cols[4].kI(), cols[5].kJ(), cols[6].kK())
    for sym, value, quality, seq, text in rows:
        bits = struct.unpack(">Q", struct.pack(">d", value))[0]
        print(seq, sym, quality, bits, text.aS().encode().hex() or "-", sep="\t")
"#;

/// One row of the journal.
#[derive(Clone, Debug)]
struct Row {
    seq: i64,
    sym: String,
    quality: i32,
    value: f64,
    text: Option<Vec<u8>>,
}

fn journal_rows(journal: &Path) -> Vec<Row> {
    let lines = run_python(READ_JOURNAL, &[journal.to_str().unwrap()]);
    lines
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 5, "journal line {line:?}");
            let text = (f[4] != "-").then(|| {
                (0..f[4].len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&f[4][i..i + 2], 16).unwrap())
                    .collect()
            });
            Row {
                seq: f[0].parse().unwrap(),
                sym: f[1].to_string(),
                quality: f[2].parse().unwrap(),
                value: f64::from_bits(f[3].parse().unwrap()),
                text,
            }
        })
        .collect()
}

/// The `quality` column's int for a code.
fn int(q: Quality) -> i32 {
    q.0 as i32
}

/// The config head: no metrics endpoint, a small WAL, the stand-in as the
/// one sink with a text column.
fn config_head(tp: &str) -> String {
    format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n"
    )
}

fn device_table(toml: &mut String, name: &str, port: u16, tags: &[(String, S7Tag)]) {
    let _ = write!(
        toml,
        "\n[[device]]\nname = \"{name}\"\nprotocol = \"s7\"\naddress = \"127.0.0.1:{port}\"\n\
         rack = 0\nslot = 1\npdu_size = 960\npoll_interval = \"50ms\"\ntimeout = \"2s\"\n"
    );
    for (tag_name, tag) in tags {
        let _ = write!(
            toml,
            "\n[[device.tag]]\nname = \"{tag_name}\"\naddress = \"{}\"\ntype = \"{}\"\n\
             scale = {:?}\noffset = {:?}\n",
            emit::address(&farm_tag(tag)),
            tag.data_type,
            tag.scale,
            tag.offset
        );
    }
}

fn farm_tag(tag: &S7Tag) -> FarmTag {
    FarmTag {
        area: tag.area,
        byte: tag.byte,
        bit: tag.bit,
        data_type: tag.data_type,
        scale: tag.scale,
        offset: tag.offset,
    }
}

fn s7_tag(tag: &FarmTag) -> S7Tag {
    S7Tag {
        name: String::new(),
        area: tag.area,
        byte: tag.byte,
        bit: tag.bit,
        data_type: tag.data_type,
        scale: tag.scale,
        offset: tag.offset,
    }
}

/// A stand-in that journals (and records, to tell when enough arrived).
fn stand_in(journal: &Path) -> (Tickerplant, Arc<Mutex<RowRecorder>>) {
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        journal: Some(journal.to_path_buf()),
        ..Default::default()
    };
    (Tickerplant::bind("127.0.0.1:0", options).unwrap(), recorder)
}

/// `millrace check-config`, then `millrace run` with its log in `log`.
fn start_run(config: &Path, log: &Path) -> Child {
    let check = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["check-config"])
        .arg(config)
        .output()
        .expect("run millrace check-config");
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start millrace run")
}

/// Waits until every sym of `names` has at least `each` rows at the
/// stand-in, failing if the process exits first.
fn wait_rows(run: &mut Child, recorder: &Mutex<RowRecorder>, names: &[String], each: usize) {
    let enough = wait_until(ROWS_WAIT, || {
        if let Ok(Some(status)) = run.try_wait() {
            panic!("millrace run exited early: {status}");
        }
        let r = recorder.lock().unwrap();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, sym, _, _) in &r.rows {
            *counts.entry(sym.as_str()).or_default() += 1;
        }
        names
            .iter()
            .all(|n| counts.get(n.as_str()).is_some_and(|&c| c >= each))
    });
    let r = recorder.lock().unwrap();
    assert!(
        enough,
        "not {each} rows of every tag: {} rows",
        r.rows.len()
    );
}

/// SIGTERM, a clean exit, the stand-in stopped: the journal is complete.
fn stop(mut run: Child, tp: Tickerplant, log: &Path) -> String {
    signal(run.id(), 15);
    let status = wait_exit(&mut run, Duration::from_secs(30));
    let log = std::fs::read_to_string(log).unwrap_or_default();
    assert!(status.success(), "millrace run: {status}\n{log}");
    tp.stop();
    log
}

/// What a journal row of a tag that must read as `want` has to be.
fn check_peer_row(row: &Row, want: &Want, version: Snap7) {
    let context = format!("{version:?} {} seq {}", row.sym, row.seq);
    match want {
        Want::Value(kind, bits) => {
            let expected = match kind {
                ValueKind::I64 => *bits as i64 as f64,
                ValueKind::F64 => f64::from_bits(*bits),
                _ => *bits as f64,
            };
            assert_eq!((row.quality, row.value), (0, expected), "{context}");
            assert_eq!(row.text, None, "{context}");
        }
        Want::Text(text) => {
            assert_eq!(row.quality, 0, "{context}");
            assert!(row.value.is_nan(), "{context}: a text row's value is 0n");
            assert_eq!(row.text.as_deref(), Some(text.as_bytes()), "{context}");
        }
        Want::Bad(q) => assert_eq!(row.quality, int(*q), "{context}"),
    }
}

fn every_type_through_run(version: Snap7) {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let _peer = start(version, port, 0, 64);
    let journal = dir.path().join("plc.log");
    let (tp, recorder) = stand_in(&journal);
    let tags: Vec<(String, S7Tag, Want)> = every_type_tags()
        .into_iter()
        .map(|(tag, want)| (format!("snap7.{}", tag.name), tag, want))
        .collect();
    let mut toml = config_head(&tp.local_addr().to_string());
    let named: Vec<(String, S7Tag)> = tags
        .iter()
        .map(|(n, t, _)| (n.clone(), t.clone()))
        .collect();
    device_table(&mut toml, "snap7", port, &named);
    let config = dir.path().join("s7.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("run.log");
    let mut run = start_run(&config, &log);
    let names: Vec<String> = tags.iter().map(|(n, _, _)| n.clone()).collect();
    wait_rows(&mut run, &recorder, &names, 4);
    stop(run, tp, &log);

    let wants: BTreeMap<&str, &Want> = tags.iter().map(|(n, _, w)| (n.as_str(), w)).collect();
    let rows = journal_rows(&journal);
    let mut per_tag: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seqs = std::collections::BTreeSet::new();
    for row in &rows {
        let want = wants
            .get(row.sym.as_str())
            .unwrap_or_else(|| panic!("a row of unknown tag {}", row.sym));
        check_peer_row(row, want, version);
        assert!(seqs.insert(row.seq), "seq {} twice", row.seq);
        *per_tag
            .entry(wants.get_key_value(row.sym.as_str()).unwrap().0)
            .or_default() += 1;
    }
    for name in &names {
        assert!(
            per_tag.get(name.as_str()) >= Some(&4),
            "{version:?}: {name}"
        );
    }
    // Every durable sample reached the stand-in: the journal's rows are
    // the WAL's rows (a text sample is one row over several records).
    let inspection = common::inspect(&dir.path().join("wal"));
    assert_eq!(
        inspection["rows"].as_u64(),
        Some(rows.len() as u64),
        "{inspection}"
    );
}

#[test]
fn snap7_210_every_type_through_millrace_run() {
    every_type_through_run(Snap7::V210);
}

#[test]
fn snap7_330_every_type_through_millrace_run() {
    every_type_through_run(Snap7::V330);
}

/// Farm tags read by the fault test's devices: the first 24 of the layout
/// (every numeric type, a STRING, bools).
const FARM_TAG_COUNT: usize = 24;

fn fault_farm(s7: S7FarmOptions, faults: FaultRates) -> FarmHandle {
    Farm::start(FarmOptions {
        devices: 1,
        protocol: FarmProtocol::S7,
        faults,
        s7,
        ..FarmOptions::default()
    })
    .unwrap()
}

/// What a row of a fault test device may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Good,
    Item(u8),
    Header(u8, u8),
}

fn classify(row: &Row, tag: Option<&FarmTag>) -> Seen {
    let q = row.quality as u32;
    if q == 0 {
        let tag = tag.unwrap_or_else(|| panic!("{} good, yet it names no farm tag", row.sym));
        let check = match &row.text {
            Some(text) => s7::check_text(0, tag, text),
            None => s7::check_number(0, tag, row.value),
        };
        assert!(
            matches!(check, Check::Served(_)),
            "{} seq {}: {:?} {:?} is not what the farm served",
            row.sym,
            row.seq,
            row.value,
            row.text
        );
        return Seen::Good;
    }
    for rc in [0x01, 0x05, 0x0A] {
        if q == Quality::s7_item(rc).0 {
            return Seen::Item(rc);
        }
    }
    for (class, code) in [(0x85, 0x00), (0x81, 0x04)] {
        if q == Quality::s7_header(class, code).0 {
            return Seen::Header(class, code);
        }
    }
    panic!("{} seq {}: quality {q:#010x}", row.sym, row.seq);
}

#[test]
fn s7_fault_modes_become_quality_and_the_process_keeps_running() {
    let dir = tempfile::tempdir().unwrap();
    // Per request: one item a hardware fault (0x01) in 3 of 10, the whole
    // read refused with 0x8500 in 2 of 10.
    let faulty = fault_farm(
        S7FarmOptions {
            pdu_overflow: 0.2,
            ..S7FarmOptions::default()
        },
        FaultRates {
            exception: 0.3,
            ..FaultRates::default()
        },
    );
    let locked = fault_farm(
        S7FarmOptions {
            put_get_off: true,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let journal = dir.path().join("plc.log");
    let (tp, recorder) = stand_in(&journal);
    let farm_tags = layout::farm_tags(FARM_TAG_COUNT);
    let db_count = S7FarmOptions::default().db_count;
    let mut faulty_tags: Vec<(String, S7Tag)> = farm_tags
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("faulty.{}", emit::tag_name(0, i as u32)), s7_tag(t)))
        .collect();
    let missing = FarmTag {
        area: S7Area::Db(db_count + 1),
        byte: 0,
        bit: 0,
        data_type: S7Type::Int,
        scale: 1.0,
        offset: 0.0,
    };
    let past_end = FarmTag {
        area: S7Area::Db(1),
        byte: layout::LAYOUT_DB_SIZE,
        data_type: S7Type::DInt,
        ..missing
    };
    faulty_tags.push(("faulty.missing_db".into(), s7_tag(&missing)));
    faulty_tags.push(("faulty.past_end".into(), s7_tag(&past_end)));
    let locked_tags: Vec<(String, S7Tag)> = farm_tags[..4]
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("locked.{}", emit::tag_name(0, i as u32)), s7_tag(t)))
        .collect();
    let mut toml = config_head(&tp.local_addr().to_string());
    device_table(&mut toml, "faulty", faulty.ports()[0], &faulty_tags);
    device_table(&mut toml, "locked", locked.ports()[0], &locked_tags);
    let config = dir.path().join("faults.toml");
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("run.log");
    let mut run = start_run(&config, &log);
    let names: Vec<String> = faulty_tags
        .iter()
        .chain(&locked_tags)
        .map(|(n, _)| n.clone())
        .collect();
    // Enough polls that every kind of answer came (a fault is drawn per
    // request), then still running: the faults never stopped it.
    wait_rows(&mut run, &recorder, &names, 40);
    assert!(run.try_wait().unwrap().is_none(), "millrace run exited");
    let log = stop(run, tp, &log);
    let _ = faulty.stop();
    let _ = locked.stop();

    let by_name: BTreeMap<String, Option<FarmTag>> = faulty_tags
        .iter()
        .map(|(n, _)| n.clone())
        .zip(farm_tags.iter().copied().map(Some).chain([None, None]))
        .chain(
            locked_tags
                .iter()
                .map(|(n, _)| n.clone())
                .zip(farm_tags.iter().copied().map(Some)),
        )
        .collect();
    let mut seen: BTreeMap<(String, Seen), usize> = BTreeMap::new();
    for row in journal_rows(&journal) {
        let tag = by_name
            .get(&row.sym)
            .unwrap_or_else(|| panic!("a row of unknown tag {}", row.sym));
        let kind = classify(&row, tag.as_ref());
        *seen.entry((row.sym.clone(), kind)).or_default() += 1;
    }
    let count = |name: &str, kind: Seen| seen.get(&(name.to_string(), kind)).copied();
    let sum = |pred: &dyn Fn(&str, Seen) -> bool| -> usize {
        seen.iter()
            .filter(|((n, k), _)| pred(n, *k))
            .map(|(_, c)| c)
            .sum()
    };
    // PUT/GET off: every row of every tag refused, none good.
    let locked_bad = sum(&|n, k| n.starts_with("locked.") && k == Seen::Header(0x81, 0x04));
    let locked_all = sum(&|n, _| n.starts_with("locked."));
    assert!(locked_bad >= 4 * 40 && locked_bad == locked_all, "{seen:?}");
    // The missing DB and the bytes past the end: their item codes only
    // (or the request's 0x8500 or the drawn 0x01).
    for (name, rc) in [("faulty.missing_db", 0x0A), ("faulty.past_end", 0x05)] {
        assert!(count(name, Seen::Item(rc)) >= Some(1), "{name}: {seen:?}");
        assert_eq!(count(name, Seen::Good), None, "{name}: {seen:?}");
    }
    // The drawn faults came, and good values around them.
    let faulty_of = |kind: Seen| sum(&|n, k| n.starts_with("faulty.") && k == kind);
    assert!(faulty_of(Seen::Item(0x01)) > 0, "{seen:?}");
    assert!(faulty_of(Seen::Header(0x85, 0x00)) > 0, "{seen:?}");
    assert!(faulty_of(Seen::Good) > 10 * FARM_TAG_COUNT, "{seen:?}");
    // One line each that says what to change on the PLC.
    assert!(log.contains("PUT/GET"), "{log}");
    assert!(log.contains("0x8500"), "{log}");
}
