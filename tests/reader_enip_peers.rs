//! The reader against cm-ethernetip 0.1.0's Logix tag server (its
//! `EipAdapter`, `LogixDispatcher` and `TagDatabase`), from its own venv
//! (scripts/setup-peers.sh). The server holds one tag of every supported
//! type, arrays, a bit of an integer, a BOOL array and a Logix STRING; the
//! real reader reads them with both I/O drivers, over a Large Forward Open
//! (4002 bytes: everything packed into Multiple Service Packets, the
//! 800-byte array cut by the server's 480-byte reply cap and continued
//! with Read Tag Fragmented) and over a plain Forward Open (500 bytes: the
//! array planned as a fragmented read), and every value is checked. A tag
//! the controller does not have is that tag's bad quality (CIP general
//! status 0x05) while the connection and every other tag stay good; the
//! server answers such a packet with status 0x00 overall, so the session
//! must look inside. The same reads (without what cpppo lacks: the Logix
//! STRING, BOOL arrays, connected fragmented reads) go to cpppo 5.2.5's
//! server, its values written by its own client first. A peer that cannot
//! start fails the test.
#![cfg(not(millrace_loom))]

mod common;
mod enip_support;
mod reader_support;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{read_samples, Want};
use enip_support::{python, start, wait_listening, Peer};
use millrace::config::{
    parse_enip_address, CipType, DeviceConfig, DriverConfig, EnipDevice, EnipTag, Protocol,
};
use millrace::protocol::enip::{EnipSession, RequestKind};
use millrace::sample::ValueKind;
use millrace::{Quality, TagId};
use reader_support::*;

fn tag(name: &str, address: &str, data_type: CipType, count: u16) -> EnipTag {
    let address = parse_enip_address(address).expect("a valid address");
    EnipTag {
        count,
        ..EnipTag::new(name, address, data_type)
    }
}

fn int(v: i64) -> Want {
    Want::Value(ValueKind::I64, v as u64)
}
fn uint(v: u64) -> Want {
    Want::Value(ValueKind::U64, v)
}
fn float(v: f64) -> Want {
    Want::Value(ValueKind::F64, v.to_bits())
}
fn boolean(v: bool) -> Want {
    Want::Value(ValueKind::Bool, u64::from(v))
}

/// The device and, per sample in tag id order, what it must read as.
fn types_device(name: &str, port: u16, connection_size: u16) -> (DeviceConfig, Vec<Want>) {
    use CipType::*;
    let mut scaled = tag("scaled", "Scaled", Int, 1);
    (scaled.scale, scaled.offset) = (0.5, 1.0);
    let alarms: Vec<Want> = (3..43u32)
        .map(|bit| {
            let word: u32 = if bit < 32 { 0xAAAA_AAAA } else { 0x5555_5555 };
            boolean((word >> (bit % 32)) & 1 == 1)
        })
        .collect();
    let rows: Vec<(EnipTag, Vec<Want>)> = vec![
        (tag("dint", "Counter", DInt, 1), vec![int(-123_456_789)]),
        (
            tag("temps", "Program:Main.Temps", Real, 5),
            (0..5).map(|i| float(f64::from(i) * 1.5)).collect(),
        ),
        (tag("flag5", "Flags.5", Bool, 1), vec![boolean(true)]),
        (tag("flag4", "Flags.4", Bool, 1), vec![boolean(false)]),
        (tag("alarms", "Alarms[3]", Bool, 40), alarms),
        (tag("running", "Running", Bool, 1), vec![boolean(true)]),
        (tag("sint", "S", SInt, 1), vec![int(-5)]),
        (tag("usint", "US", USInt, 1), vec![uint(250)]),
        (tag("int", "I", Int, 1), vec![int(-1234)]),
        (tag("uint", "UI", UInt, 1), vec![uint(54321)]),
        (tag("udint", "UD", UDInt, 1), vec![uint(3_000_000_000)]),
        (tag("lint", "Big", LInt, 1), vec![int(-1_234_567_890_123)]),
        (
            tag("ulint", "UL", ULInt, 1),
            vec![uint(18_000_000_000_000_000_000)],
        ),
        (tag("real", "R", Real, 1), vec![float(3.25)]),
        (tag("lreal", "LR", LReal, 1), vec![float(-1.0e100)]),
        (
            tag("ints", "Ints[2]", Int, 3),
            (2..5).map(|i| int(i * 3 - 5)).collect(),
        ),
        (tag("name", "Name", String, 1), vec![Want::Text("pump 7")]),
        (
            tag("missing", "NoSuchTag", DInt, 1),
            vec![Want::Bad(Quality::cip(0x05, 0))],
        ),
        (
            tag("wave", "Wave", Real, 200),
            (0..200).map(|i| float(f64::from(i))).collect(),
        ),
        (scaled, vec![float(51.0)]),
    ];
    let (tags, wants): (Vec<EnipTag>, Vec<Vec<Want>>) = rows.into_iter().unzip();
    let device = DeviceConfig {
        name: name.into(),
        protocol: Protocol::EthernetIp,
        address: format!("127.0.0.1:{port}"),
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        max_inflight: 1,
        driver: DriverConfig::EthernetIp(EnipDevice {
            route: vec![],
            connection_size,
            tags,
        }),
    };
    (device, wants.into_iter().flatten().collect())
}

/// The kinds of request the session plans for `device` at first (before
/// any fallback).
fn planned_kinds(device: &DeviceConfig) -> Vec<RequestKind> {
    let session = EnipSession::for_device(device, TagId(0)).expect("a plannable device");
    session.plans()[0].requests.iter().map(|r| r.kind).collect()
}

#[test]
fn cm_ethernetip_every_type_a_missing_tag_and_fragments() {
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start(port);
        let (large, large_wants) = types_device("cm-large", port, 4002);
        let (small, small_wants) = types_device("cm-small", port, 500);
        // Large: every read packed into Multiple Service Packets. Small: the
        // 800-byte Wave cannot come in one reply and is planned fragmented.
        let kinds = planned_kinds(&large);
        assert!(
            kinds.iter().all(|k| *k == RequestKind::Multiple),
            "{kinds:?}"
        );
        assert!(kinds.len() < 3, "{kinds:?}");
        let kinds = planned_kinds(&small);
        assert!(kinds.contains(&RequestKind::Multiple), "{kinds:?}");
        assert!(kinds.contains(&RequestKind::Fragmented), "{kinds:?}");
        let first_small = large_wants.len();
        let wants: Vec<Want> = large_wants.into_iter().chain(small_wants).collect();
        let run = run_until(
            backend,
            specs(vec![large, small]),
            RunOptions::default(),
            |_, samples| {
                // Tag 0 and `first_small` open a cycle of each device.
                let cycles = |id: usize| {
                    samples
                        .iter()
                        .filter(|s| s.tag_id().0 as usize == id)
                        .count()
                };
                cycles(0) >= 4 && cycles(first_small) >= 4
            },
        );
        let rows = read_samples(&run.samples);
        let per_device = |small: bool| {
            rows.iter()
                .filter(|(id, _)| (*id >= first_small) == small)
                .count()
        };
        // Three whole cycles of each device at least.
        assert!(per_device(false) >= 3 * first_small, "{backend:?}");
        assert!(per_device(true) >= 3 * first_small, "{backend:?}");
        for (id, got) in &rows {
            assert_eq!(got, &wants[*id], "{backend:?}: sample {id}");
        }
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{backend:?}: {c:#?}"
        );
        assert!(
            c.exception_samples >= 6,
            "{backend:?}: the missing tag counts as device-reported: {c:#?}"
        );
    }
}

/// cpppo's tags (`NAME=TYPE[N]` as its command line takes them) and the
/// values its own client writes into them before the test reads.
const CPPPO_TAGS: &[&str] = &[
    "Counter=DINT",
    "Temps=REAL[5]",
    "Flags=DINT",
    "Running=BOOL",
    "S=SINT",
    "US=USINT",
    "I=INT",
    "UI=UINT",
    "UD=UDINT",
    "Big=LINT",
    "UL=ULINT",
    "R=REAL",
    "LR=LREAL",
    "Ints=INT[10]",
    "Scaled=INT",
];
const CPPPO_WRITES: &[&str] = &[
    "Counter=(DINT)-123456789",
    "Temps[0-4]=(REAL)0,1.5,3,4.5,6",
    "Flags=(DINT)32",
    "Running=(BOOL)1",
    "S=(SINT)-5",
    "US=(USINT)250",
    "I=(INT)-1234",
    "UI=(UINT)54321",
    "UD=(UDINT)3000000000",
    "Big=(LINT)-1234567890123",
    "UL=(ULINT)18000000000000000000",
    "R=(REAL)3.25",
    "LR=(LREAL)-1e100",
    "Ints[0-9]=(INT)-5,-2,1,4,7,10,13,16,19,22",
    "Scaled=(INT)100",
];

/// cpppo 5.2.5's EtherNet/IP server with `CPPPO_TAGS`, filled by its client.
fn start_cpppo(port: u16) -> Peer {
    let python = python("MILLRACE_CPPPO_PYTHON", "cpppo-venv");
    let child = Command::new(&python)
        .args(["-m", "cpppo.server.enip", "--address"])
        .arg(format!("127.0.0.1:{port}"))
        .args(CPPPO_TAGS)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the cpppo peer");
    let peer = wait_listening(Peer(child), port, "cpppo");
    let output = Command::new(&python)
        .args(["-m", "cpppo.server.enip.client", "--print", "-a"])
        .arg(format!("127.0.0.1:{port}"))
        .args(CPPPO_WRITES)
        .output()
        .expect("run the cpppo client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let written = stdout.lines().filter(|l| l.ends_with(": 'OK'")).count();
    assert!(
        output.status.success() && written == CPPPO_WRITES.len(),
        "cpppo's client wrote {written} of {} tags: {stdout}{}",
        CPPPO_WRITES.len(),
        String::from_utf8_lossy(&output.stderr)
    );
    peer
}

/// What cpppo serves, as the cm-ethernetip device without what cpppo has
/// not: the Logix STRING structure (its STRING is CIP's), BOOL arrays as
/// DWORDs, and a fragmented read on a connection (it has it only inside
/// Unconnected Send). Its replies stop near 500 bytes, so the device asks
/// for a 500-byte connection.
fn cpppo_device(port: u16) -> (DeviceConfig, Vec<Want>) {
    use CipType::*;
    let mut scaled = tag("scaled", "Scaled", Int, 1);
    (scaled.scale, scaled.offset) = (0.5, 1.0);
    let rows: Vec<(EnipTag, Vec<Want>)> = vec![
        (tag("dint", "Counter", DInt, 1), vec![int(-123_456_789)]),
        (
            tag("temps", "Temps", Real, 5),
            (0..5).map(|i| float(f64::from(i) * 1.5)).collect(),
        ),
        (tag("flag5", "Flags.5", Bool, 1), vec![boolean(true)]),
        (tag("flag4", "Flags.4", Bool, 1), vec![boolean(false)]),
        (tag("running", "Running", Bool, 1), vec![boolean(true)]),
        (tag("sint", "S", SInt, 1), vec![int(-5)]),
        (tag("usint", "US", USInt, 1), vec![uint(250)]),
        (tag("int", "I", Int, 1), vec![int(-1234)]),
        (tag("uint", "UI", UInt, 1), vec![uint(54321)]),
        (tag("udint", "UD", UDInt, 1), vec![uint(3_000_000_000)]),
        (tag("lint", "Big", LInt, 1), vec![int(-1_234_567_890_123)]),
        (
            tag("ulint", "UL", ULInt, 1),
            vec![uint(18_000_000_000_000_000_000)],
        ),
        (tag("real", "R", Real, 1), vec![float(3.25)]),
        (tag("lreal", "LR", LReal, 1), vec![float(-1.0e100)]),
        (
            tag("ints", "Ints[2]", Int, 3),
            (2..5).map(|i| int(i * 3 - 5)).collect(),
        ),
        (
            tag("missing", "NoSuchTag", DInt, 1),
            vec![Want::Bad(Quality::cip(0x05, 0))],
        ),
        (scaled, vec![float(51.0)]),
    ];
    let (tags, wants): (Vec<EnipTag>, Vec<Vec<Want>>) = rows.into_iter().unzip();
    let device = DeviceConfig {
        name: "cpppo".into(),
        protocol: Protocol::EthernetIp,
        address: format!("127.0.0.1:{port}"),
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        max_inflight: 1,
        driver: DriverConfig::EthernetIp(EnipDevice {
            route: vec![],
            connection_size: 500,
            tags,
        }),
    };
    (device, wants.into_iter().flatten().collect())
}

#[test]
fn cpppo_every_numeric_type_and_a_missing_tag() {
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start_cpppo(port);
        let (device, wants) = cpppo_device(port);
        assert!(planned_kinds(&device).contains(&RequestKind::Multiple));
        let run = run_until(
            backend,
            specs(vec![device]),
            RunOptions::default(),
            |_, samples| samples.iter().filter(|s| s.tag_id().0 == 0).count() >= 3,
        );
        let rows = read_samples(&run.samples);
        assert!(rows.len() >= 3 * wants.len(), "{backend:?}: {}", rows.len());
        for (id, got) in &rows {
            assert_eq!(got, &wants[*id], "{backend:?}: sample {id}");
        }
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{backend:?}: {c:#?}"
        );
    }
}

#[test]
fn a_clean_stop_sends_forward_close_and_unregister_session() {
    // `slow`: the stop finds a request in flight and the peer busy; closing
    // the socket before the peer has read everything would reset the
    // connection and lose the closing messages.
    for options in [&[][..], &["slow"]] {
        for backend in BACKENDS {
            let port = free_port();
            let (_peer, lines) = enip_support::start_with(port, options);
            let (device, _) = types_device("cm-stop", port, 4002);
            run_until(
                backend,
                specs(vec![device]),
                RunOptions::default(),
                |_, samples| {
                    let good = samples
                        .iter()
                        .filter(|s| s.tag_id().0 == 0 && s.quality() == Quality::GOOD);
                    good.count() >= 2
                },
            );
            // The reader has stopped; the peer prints what it received.
            let seen = common::wait_until(Duration::from_secs(10), || {
                let lines = lines.lock().unwrap();
                lines.iter().any(|l| l == "forward-close")
                    && lines.iter().any(|l| l == "unregister-session")
            });
            let lines = lines.lock().unwrap().clone();
            assert!(seen, "{backend:?} {options:?}: the peer saw {lines:?}");
            assert_eq!(
                lines,
                ["forward-close", "unregister-session"],
                "{backend:?} {options:?}"
            );
        }
    }
}
