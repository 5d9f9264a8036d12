//! OPC UA array tags and deadbands end to end: a real `millrace run`
//! subscribes to FreeOpcUa's asyncua 2.1.0 server (tests/opcua_support/
//! server.py) and delivers to the tickerplant stand-in.
//!
//! - `ua.array` holds three Doubles `k + 0.25 i` at tick k; the tag reads it
//!   with `count = 4`, so `arr[0..3]` carry the elements and `arr[3]` is
//!   Bad_IndexRangeNoData in every row.
//! - `ua.ramp` is `0.1 k`; one tag watches it with `deadband = 0.25` and one
//!   without: the second sees every tick, the first only changes of more
//!   than 0.25 from the last value it was sent.
//! - `ua.argument` (server option `argbomb`) holds an Argument structure
//!   whose ValueRank claims 1.7 billion dimensions: the stack alone would
//!   allocate 6.8 GB for it (opcua/guard.rs); millrace writes the tag's rows
//!   as TYPE_MISMATCH and goes on delivering the other tags.

mod common;
mod opcua_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use millrace::kdb::RowRecorder;
use millrace::sample::Quality;

/// The server's T0 (2026-01-01T00:00:00Z) in UNIX seconds.
const T0_UNIX_S: i64 = 1_767_225_600;
/// Rows of the tag without a deadband to wait for.
const RAMP_ROWS: usize = 60;

/// A configuration of one subscribed device at `port` with the `tags`
/// stanzas, delivering to `tp`.
fn write_config(dir: &Path, port: u16, tp: &str, tags: &str) -> PathBuf {
    let mut text = opcua_support::config_head(tp);
    text.push_str(&format!(
        "\n\
         [[device]]\nname = \"ua\"\nprotocol = \"opcua\"\n\
         address = \"opc.tcp://127.0.0.1:{port}/\"\n\
         sampling_interval = \"20ms\"\npublishing_interval = \"50ms\"\n\n{tags}"
    ));
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Rows of `sym` the stand-in has recorded so far.
fn rows_of(recorder: &Mutex<RowRecorder>, sym: &str) -> usize {
    let recorder = recorder.lock().unwrap();
    recorder.rows.iter().filter(|(_, s, ..)| s == sym).count()
}

#[test]
fn array_elements_and_deadbands_arrive_as_the_server_sends_them() {
    let dir = tempfile::tempdir().unwrap();
    let port = opcua_support::free_port();
    let _peer = opcua_support::start_peer(port, 0);
    let opcua_support::StandIn {
        tp,
        recorder,
        journal,
    } = opcua_support::stand_in(dir.path());
    let tags = "[[device.tag]]\nname = \"arr\"\naddress = \"ns=2;s=ua.array\"\n\
                type = \"double\"\ncount = 4\n\n\
                [[device.tag]]\nname = \"ramp\"\naddress = \"ns=2;s=ua.ramp\"\n\
                type = \"double\"\n\n\
                [[device.tag]]\nname = \"ramp.banded\"\naddress = \"ns=2;s=ua.ramp\"\n\
                type = \"double\"\ndeadband = 0.25\n";
    let config = write_config(dir.path(), port, &tp.local_addr().to_string(), tags);
    let log = dir.path().join("stderr.log");
    let mut run = opcua_support::spawn_run(&config, &log);
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let enough = common::wait_until(Duration::from_secs(120), || {
        rows_of(&recorder, "ramp") >= RAMP_ROWS
    });
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    assert!(
        enough,
        "{RAMP_ROWS} rows of `ramp` did not arrive:\n{}",
        stderr()
    );
    assert!(status.success(), "{}", stderr());
    tp.stop();

    let rows = opcua_support::journal_rows(&journal);
    let mut by_sym: BTreeMap<&str, Vec<&opcua_support::Row>> = BTreeMap::new();
    for row in &rows {
        by_sym.entry(row.sym.as_str()).or_default().push(row);
    }
    let tick = |row: &opcua_support::Row| {
        let since = row.unix_ns - T0_UNIX_S * 1_000_000_000;
        assert_eq!(since % 1_000_000_000, 0, "{row:?}");
        since / 1_000_000_000
    };
    for i in 0..3 {
        let sym = format!("arr[{i}]");
        let elements = &by_sym[sym.as_str()];
        assert!(!elements.is_empty());
        for row in elements {
            assert_eq!(row.quality, Quality::GOOD.0, "{row:?}");
            assert_eq!(row.value, tick(row) as f64 + 0.25 * f64::from(i), "{row:?}");
        }
    }
    let missing = &by_sym["arr[3]"];
    assert_eq!(missing.len(), by_sym["arr[0]"].len(), "one row per value");
    for row in missing {
        assert_eq!(row.quality, Quality::NO_SUCH_ELEMENT.0, "{row:?}");
    }

    let ramp = &by_sym["ramp"];
    let banded = &by_sym["ramp.banded"];
    for row in ramp.iter().chain(banded) {
        assert!((row.value - tick(row) as f64 * 0.1).abs() < 1e-9, "{row:?}");
    }
    for pair in banded.windows(2) {
        let step = pair[1].value - pair[0].value;
        assert!(
            step > 0.25,
            "a change of {step} passed the 0.25 deadband: {pair:?}"
        );
    }
    assert!(
        banded.len() * 2 < ramp.len(),
        "the deadband let {} of {} changes through",
        banded.len(),
        ramp.len()
    );
}

/// The most memory the process `pid` has held (VmHWM), in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_hostile_argument_value_is_one_bad_tag_not_a_huge_allocation() {
    let dir = tempfile::tempdir().unwrap();
    let port = opcua_support::free_port();
    let _peer = opcua_support::start_peer_with(port, 0, &["argbomb"]);
    let opcua_support::StandIn {
        tp,
        recorder,
        journal,
    } = opcua_support::stand_in(dir.path());
    let tags = "[[device.tag]]\nname = \"arg\"\naddress = \"ns=2;s=ua.argument\"\n\
                type = \"double\"\n\n\
                [[device.tag]]\nname = \"double\"\naddress = \"ns=2;s=ua.double\"\n\
                type = \"double\"\n";
    let config = write_config(dir.path(), port, &tp.local_addr().to_string(), tags);
    let log = dir.path().join("stderr.log");
    let mut run = opcua_support::spawn_run(&config, &log);
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let enough = common::wait_until(Duration::from_secs(120), || {
        rows_of(&recorder, "double") >= 40 && rows_of(&recorder, "arg") >= 1
    });
    let peak = peak_kib(run.id());
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    assert!(
        enough,
        "rows of `double` and `arg` did not arrive:\n{}",
        stderr()
    );
    assert!(status.success(), "{}", stderr());
    assert!(
        peak < 512 * 1024,
        "millrace held {peak} KiB at its peak: the Argument was sized by its ValueRank"
    );
    tp.stop();
    let rows = opcua_support::journal_rows(&journal);
    let arg: Vec<_> = rows.iter().filter(|r| r.sym == "arg").collect();
    assert!(!arg.is_empty());
    for row in arg {
        assert_eq!(row.quality, Quality::TYPE_MISMATCH.0, "{row:?}");
    }
    assert!(
        stderr().contains("TYPE_MISMATCH"),
        "no log line names the tag's bad type:\n{}",
        stderr()
    );
}
