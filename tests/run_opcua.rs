//! OPC UA end to end: a real `millrace run` reads FreeOpcUa's asyncua 2.1.0
//! server (tests/opcua_support/server.py, security None, anonymous) with
//! one subscribing device and one polling device, and delivers to the
//! tickerplant stand-in, whose tick.q journal keeps every row whole (time,
//! sym, value, quality, seq, text).
//!
//! The server writes tick k to every variable with SourceTimestamp
//! T0 + k s, so each row names its tick by its time alone; the test checks
//! that every row's value is the tag's value at that tick, that the status
//! tag's Good / Uncertain / Bad statuses arrive whole in `quality` (the
//! Uncertain values with their value, the Bad ones as the server sends them,
//! without), and that after the server is killed and
//! started again (its ticks then from 100,000) both devices carry on, with
//! `NO_CONNECTION` rows for the gap.

mod common;
mod opcua_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
use millrace::sample::Quality;

/// The server's T0 (2026-01-01T00:00:00Z) in UNIX seconds.
const T0_UNIX_S: i64 = 1_767_225_600;
/// The first tick after the restart.
const RESTART_K: i64 = 100_000;
/// The server's tags and their types in the configuration.
const TAGS: &[(&str, &str)] = &[
    ("bool", "boolean"),
    ("sbyte", "sbyte"),
    ("byte", "byte"),
    ("int16", "int16"),
    ("uint16", "uint16"),
    ("int32", "int32"),
    ("uint32", "uint32"),
    ("int64", "int64"),
    ("uint64", "uint64"),
    ("float", "float"),
    ("double", "double"),
    ("string", "string[24]"),
    ("datetime", "datetime"),
    ("status", "int32"),
];
/// Status of `ua.status` at tick k: Good, UncertainLastUsableValue,
/// BadSensorFailure (as the server's STATUSES).
const STATUSES: [u32; 3] = [0, 0x4090_0000, 0x808C_0000];

/// The value tag `name` has at tick k, as the `value` column shows it.
fn value_at(name: &str, k: i64) -> f64 {
    match name {
        "bool" => f64::from(u8::from(k % 2 == 0)),
        "sbyte" => -(k % 100) as f64,
        "byte" => (k % 256) as f64,
        "int16" => -(k % 30000) as f64,
        "uint16" => (k % 60000) as f64,
        "int32" => (-k * 1000) as f64,
        "uint32" => (3_000_000_000 + k) as f64,
        "int64" => (-k * 1_000_000_007) as f64,
        "uint64" => ((1i64 << 53) + 2 * k) as f64,
        "float" => k as f64 * 0.25,
        "double" => k as f64 * 0.5 + 0.125,
        // UNIX nanoseconds of T0 + 2k s.
        "datetime" => ((T0_UNIX_S + 2 * k) * 1_000_000_000) as f64,
        "status" => k as f64,
        other => panic!("no value for {other}"),
    }
}

fn write_config(dir: &Path, port: u16, tp: &str) -> PathBuf {
    let mut text = opcua_support::config_head(tp);
    for (device, mode) in [
        (
            "sub",
            "mode = \"subscribe\"\nsampling_interval = \"20ms\"\npublishing_interval = \"50ms\"\n",
        ),
        ("poll", "mode = \"poll\"\npoll_interval = \"100ms\"\n"),
    ] {
        text.push_str(&format!(
            "\n[[device]]\nname = \"ua-{device}\"\nprotocol = \"opcua\"\n\
             address = \"opc.tcp://127.0.0.1:{port}/\"\n{mode}"
        ));
        for (name, data_type) in TAGS {
            text.push_str(&format!(
                "\n[[device.tag]]\nname = \"{device}.{name}\"\naddress = \"ns=2;s=ua.{name}\"\n\
                 type = \"{data_type}\"\n"
            ));
        }
    }
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Distinct ticks seen per sym, before and after the restart.
fn ticks(recorder: &Mutex<RowRecorder>) -> usize {
    recorder.lock().unwrap().rows.len()
}

#[test]
fn values_source_times_and_statuses_arrive_whole_and_a_server_restart_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let port = opcua_support::free_port();
    let mut peer = opcua_support::start_peer(port, 0);
    let opcua_support::StandIn {
        tp,
        recorder,
        journal,
    } = opcua_support::stand_in(dir.path());
    let config = write_config(dir.path(), port, &tp.local_addr().to_string());
    let mut run = opcua_support::spawn_run(&config, &dir.path().join("stderr.log"));
    let stderr = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    let syms: Vec<String> = ["sub", "poll"]
        .iter()
        .flat_map(|d| TAGS.iter().map(move |(n, _)| format!("{d}.{n}")))
        .collect();
    // Every sym at least `min` times with a value (the strings: a text).
    let seen_all = |min: usize| {
        let r = recorder.lock().unwrap();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, sym, value, _) in &r.rows {
            if !value.is_nan() {
                *counts.entry(sym.as_str()).or_default() += 1;
            }
        }
        for (_, sym, _, _) in &r.texts {
            *counts.entry(sym.as_str()).or_default() += 1;
        }
        syms.iter()
            .all(|s| counts.get(s.as_str()).copied().unwrap_or(0) >= min)
    };
    assert!(
        common::wait_until(Duration::from_secs(120), || seen_all(5)),
        "rows before the restart: {}\n{}",
        ticks(&recorder),
        stderr()
    );
    // The server dies (no goodbye) and comes back with ticks from RESTART_K.
    drop(peer);
    assert!(
        common::wait_until(Duration::from_secs(60), || {
            let r = recorder.lock().unwrap();
            ["sub.double", "poll.double"]
                .iter()
                .all(|s| r.rows.iter().any(|(_, sym, v, _)| sym == s && v.is_nan()))
        }),
        "no rows without a value while the server was down\n{}",
        stderr()
    );
    peer = opcua_support::start_peer(port, RESTART_K);
    let after = |r: &RowRecorder, sym: &str| {
        r.rows
            .iter()
            .filter(|(_, s, v, _)| s == sym && *v >= RESTART_K as f64)
            .count()
    };
    assert!(
        common::wait_until(Duration::from_secs(180), || {
            let r = recorder.lock().unwrap();
            after(&r, "sub.status") >= 5 && after(&r, "poll.status") >= 5
        }),
        "no ticks after the restart: {:?}\n{}",
        {
            let r = recorder.lock().unwrap();
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            for (_, sym, v, _) in &r.rows {
                let key = format!(
                    "{sym} {}",
                    if v.is_nan() {
                        "nan"
                    } else if *v >= RESTART_K as f64 {
                        "after"
                    } else {
                        "before"
                    }
                );
                *counts.entry(key).or_default() += 1;
            }
            counts
        },
        stderr()
    );
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let log = stderr();
    assert!(status.success(), "{log}");
    drop(peer);
    tp.stop();

    let rows = opcua_support::journal_rows(&journal);
    assert!(!rows.is_empty());
    let mut seqs = BTreeSet::new();
    let mut ticks_by_sym: BTreeMap<&str, BTreeSet<i64>> = BTreeMap::new();
    let mut qualities: BTreeSet<u32> = BTreeSet::new();
    let mut gaps = 0;
    for row in &rows {
        assert!(seqs.insert(row.seq), "seq {} twice", row.seq);
        let (_, name) = row.sym.split_once('.').unwrap();
        if row.quality == Quality::NO_CONNECTION.bits() {
            assert!(row.value.is_nan() && row.text.is_empty(), "{row:?}");
            gaps += 1;
            continue;
        }
        // The time is the SourceTimestamp: a whole second after T0.
        let since_t0 = row.unix_ns - T0_UNIX_S * 1_000_000_000;
        assert_eq!(since_t0 % 1_000_000_000, 0, "{row:?}");
        let k = since_t0 / 1_000_000_000;
        assert!((0..RESTART_K * 2).contains(&k), "{row:?}");
        let want_quality = if name == "status" {
            STATUSES[(k % 3) as usize]
        } else {
            0
        };
        assert_eq!(row.quality, want_quality, "{row:?}");
        qualities.insert(row.quality);
        if name == "string" {
            assert_eq!(row.text, format!("text {k} \u{e9}"), "{row:?}");
            assert!(row.value.is_nan(), "{row:?}");
        } else if row.quality == STATUSES[2] {
            // asyncua sends a Bad value without its value: the row keeps
            // the status, with no value.
            assert!(row.value.is_nan(), "{row:?}");
        } else {
            assert_eq!(row.value, value_at(name, k), "{row:?}");
        }
        ticks_by_sym.entry(row.sym.as_str()).or_default().insert(k);
    }
    // Good, Uncertain and Bad values all kept, with their status whole.
    assert_eq!(qualities, STATUSES.into_iter().collect(), "{log}");
    assert!(gaps >= 2, "{gaps} NO_CONNECTION rows");
    for sym in &syms {
        let ks = ticks_by_sym.get(sym.as_str()).cloned().unwrap_or_default();
        let before = ks.iter().filter(|k| **k < RESTART_K).count();
        let after = ks.iter().filter(|k| **k >= RESTART_K).count();
        assert!(
            before >= 3 && after >= 1,
            "{sym}: {before} ticks before, {after} after\n{log}"
        );
    }
    assert!(log.contains("the OPC UA connection was lost"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

/// A user name identity (security None): the right password gives rows and
/// never shows in the log; a wrong one is refused by the server, and the log
/// says so once, in words, without the password.
#[test]
fn a_user_name_identity_is_accepted_and_a_wrong_password_is_said() {
    for (password, accepted) in [("feed-pw-1", true), ("not-the-pw", false)] {
        let dir = tempfile::tempdir().unwrap();
        let port = opcua_support::free_port();
        let _peer = opcua_support::start_peer_with(port, 0, &["feed:feed-pw-1"]);
        let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
        let options = TickerplantOptions {
            recorder: Some(recorder.clone()),
            ..Default::default()
        };
        let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
        std::fs::write(dir.path().join("ua.pw"), format!("{password}\n")).unwrap();
        let config = format!(
            "[metrics]\nlisten = \"off\"\n\n[wal]\ndir = \"wal\"\n\n\
             [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{}\"\ntable = \"plc\"\n\
             batch_rows = 100\nbatch_age = \"5ms\"\n\n\
             [[device]]\nname = \"ua\"\nprotocol = \"opcua\"\n\
             address = \"opc.tcp://127.0.0.1:{port}/\"\nuser = \"feed\"\n\
             password_file = \"ua.pw\"\n\n\
             [[device.tag]]\nname = \"ua.double\"\naddress = \"ns=2;s=ua.double\"\n\
             type = \"double\"\n",
            tp.local_addr()
        );
        let path = dir.path().join("plant.toml");
        std::fs::write(&path, config).unwrap();
        let mut run = opcua_support::spawn_run(&path, &dir.path().join("stderr.log"));
        let log = || std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
        let valued = |r: &RowRecorder| r.rows.iter().filter(|(_, _, v, _)| !v.is_nan()).count();
        if accepted {
            assert!(
                common::wait_until(Duration::from_secs(60), || valued(
                    &recorder.lock().unwrap()
                ) >= 5),
                "no values with the right password\n{}",
                log()
            );
        } else {
            assert!(
                common::wait_until(Duration::from_secs(60), || log()
                    .contains("reconnecting failed: Bad")),
                "no word of the refused identity\n{}",
                log()
            );
            assert_eq!(valued(&recorder.lock().unwrap()), 0, "{}", log());
        }
        common::signal(run.id(), 15);
        let status = common::wait_exit(&mut run, Duration::from_secs(30));
        let log = log();
        assert!(status.success(), "{log}");
        assert!(!log.contains(password), "{log}");
        tp.stop();
    }
}

/// More tags than the stack decodes in one array by default (1,000): a
/// subscription and a poll of 1,100 each deliver every tag's value. The
/// server refuses the first CreateMonitoredItems request whole: the
/// subscription asks again, says so once, and marks the chunk's tags with
/// the refusal.
#[test]
fn a_device_of_more_tags_than_one_request_takes_gets_every_value() {
    const MANY: usize = 1100;
    let devices = [
        ("sub", "mode = \"subscribe\""),
        ("poll", "mode = \"poll\"\npoll_interval = \"500ms\""),
    ];
    let mut a = every_value_arrives(MANY, &devices, &["refuse-monitor=1"]);
    let log_now = a.log();
    let refusals = log_now
        .matches("CreateMonitoredItems for tags 0..1000 failed")
        .count();
    assert_eq!(refusals, 1, "{log_now}");
    assert!(log_now.contains("BadTooManyOperations"), "{log_now}");
    common::signal(a.run.id(), 15);
    let status = common::wait_exit(&mut a.run, Duration::from_secs(30));
    assert!(status.success(), "{}", a.log());
    let stand_in = a.stand_in;
    stand_in.tp.stop();
    // The refused chunk's tags, and only they, got the refusal as their
    // quality, once each.
    const BAD_TOO_MANY_OPERATIONS: u32 = 0x8010_0000;
    let refused: Vec<String> = opcua_support::journal_rows(&stand_in.journal)
        .into_iter()
        .filter(|row| row.quality == BAD_TOO_MANY_OPERATIONS)
        .map(|row| row.sym)
        .collect();
    let chunk: BTreeSet<String> = (0..1000).map(|i| format!("sub.many.{i}")).collect();
    assert_eq!(refused.len(), chunk.len());
    assert_eq!(refused.into_iter().collect::<BTreeSet<_>>(), chunk);
}

/// asyncua sends all of a subscription's changes in one Publish whatever
/// MaxNotificationsPerPublish millrace asked for: 3,000 items created within
/// one publishing interval of 2 s arrive as one DataChange array of 3,000,
/// which the stack's default limit (1,000) refused, dropping the connection
/// and every change in it.
#[test]
fn a_publish_of_more_changes_than_asked_for_is_taken_whole() {
    const MANY: usize = 3000;
    let devices = [("sub", "mode = \"subscribe\"\npublishing_interval = \"2s\"")];
    let mut a = every_value_arrives(MANY, &devices, &[]);
    assert!(!a.log().contains("connection was lost"), "{}", a.log());
    common::signal(a.run.id(), 15);
    let status = common::wait_exit(&mut a.run, Duration::from_secs(30));
    assert!(status.success(), "{}", a.log());
    a.stand_in.tp.stop();
}

/// A run of `every_value_arrives`, its peer and its directory alive until
/// dropped.
struct Arrived {
    run: std::process::Child,
    log_path: PathBuf,
    stand_in: opcua_support::StandIn,
    _peer: opcua_support::Peer,
    _dir: tempfile::TempDir,
}

impl Arrived {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

/// Runs `millrace run` against the asyncua peer with `many` Double
/// variables (`peer_args` added), one device per `(name, keys)` reading all
/// of them, until every device has delivered every variable's value (each
/// checked).
fn every_value_arrives(many: usize, devices: &[(&str, &str)], peer_args: &[&str]) -> Arrived {
    let dir = tempfile::tempdir().unwrap();
    let port = opcua_support::free_port();
    let many_arg = format!("many={many}");
    let mut args = vec![many_arg.as_str()];
    args.extend_from_slice(peer_args);
    let peer = opcua_support::start_peer_with(port, 0, &args);
    let stand_in = opcua_support::stand_in(dir.path());
    let mut config = opcua_support::config_head(&stand_in.tp.local_addr().to_string());
    for (device, keys) in devices {
        config.push_str(&format!(
            "\n[[device]]\nname = \"ua-{device}\"\nprotocol = \"opcua\"\n\
             address = \"opc.tcp://127.0.0.1:{port}/\"\n{keys}\n"
        ));
        for i in 0..many {
            config.push_str(&format!(
                "\n[[device.tag]]\nname = \"{device}.many.{i}\"\naddress = \"ns=2;s=ua.many.{i}\"\n\
                 type = \"double\"\n"
            ));
        }
    }
    let path = dir.path().join("plant.toml");
    std::fs::write(&path, config).unwrap();
    let log_path = dir.path().join("stderr.log");
    let run = opcua_support::spawn_run(&path, &log_path);
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let missing = || {
        let r = stand_in.recorder.lock().unwrap();
        let mut seen = BTreeSet::new();
        // Rows without a value are the polls before the connection.
        for (_, sym, value, _) in r.rows.iter().filter(|(_, _, v, _)| !v.is_nan()) {
            let i: usize = sym.rsplit('.').next().unwrap().parse().unwrap();
            assert_eq!(*value, i as f64, "{sym}");
            seen.insert(sym.clone());
        }
        devices.len() * many - seen.len()
    };
    assert!(
        common::wait_until(Duration::from_secs(120), || missing() == 0),
        "{} tags never arrived\n{}",
        missing(),
        log()
    );
    Arrived {
        run,
        log_path,
        stand_in,
        _peer: peer,
        _dir: dir,
    }
}
