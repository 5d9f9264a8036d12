//! The reader against the two python-snap7 servers, each from its own venv
//! (scripts/setup-peers.sh): 2.1.0 bundles the C++ Snap7 server, 3.3.0 is a
//! pure-Python rewrite. Each serves DB1 (one value of every supported
//! type), M, I and Q filled with known bytes; the real reader reads them
//! with both I/O drivers and every value is checked. Negative cases these
//! servers can produce: a DB that does not exist (item return code 0x0A
//! on that tag only), a PDU forced down to 240 (2.1.0) or capped at 480
//! (3.3.0) under a device planned for 960 with many items (the re-plan's
//! packing holds: every value good), and Snap7's silent truncation of a
//! request to 20 items (the session learns the cap). A peer that cannot
//! start fails the test.
#![cfg(not(millrace_loom))]

mod common;
mod reader_support;
mod s7_peer_support;

use std::time::Duration;

use common::read_samples;
use millrace::config::{DeviceConfig, S7Area, S7Tag, S7Type};
use millrace::protocol::s7::fuzz::{s7_device, s7_tag};
use millrace::sample::ValueKind;
use millrace::Quality;
use reader_support::*;
use s7_peer_support::{every_type_tags, start, Snap7, Want};

fn types_device(port: u16) -> (DeviceConfig, Vec<Want>) {
    let (tags, wants): (Vec<S7Tag>, Vec<Want>) = every_type_tags().into_iter().unzip();
    let mut device = s7_device("snap7", &format!("127.0.0.1:{port}"), 960, tags);
    device.poll_interval = Duration::from_millis(50);
    device.timeout = Duration::from_secs(2);
    (device, wants)
}

fn every_type(version: Snap7) {
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start(version, port, 0, 64);
        let (device, wants) = types_device(port);
        let run = run_until(
            backend,
            specs(vec![device]),
            RunOptions::default(),
            |c, _| c.responses >= 8,
        );
        let rows = read_samples(&run.samples);
        assert!(
            rows.len() >= 4 * wants.len(),
            "{version:?} {backend:?}: {}",
            rows.len()
        );
        for (index, got) in &rows {
            assert_eq!(got, &wants[*index], "{version:?} {backend:?}: tag {index}");
        }
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{c:#?}"
        );
        assert!(
            c.exception_samples >= 4,
            "the missing DB counts as device-reported"
        );
    }
}

#[test]
fn snap7_210_every_type_and_a_missing_db() {
    every_type(Snap7::V210);
}

#[test]
fn snap7_330_every_type_and_a_missing_db() {
    every_type(Snap7::V330);
}

/// 80 INTs every 6 bytes of DB2 (scattered: 80 items) and a STRING[254]
/// (256 bytes) that no 240-byte answer holds whole: planned for 960, read
/// at what the server grants. Every value must arrive good.
fn many_items(port: u16) -> DeviceConfig {
    let mut tags: Vec<S7Tag> = (0..80)
        .map(|i| s7_tag(&format!("db2.{i}"), S7Area::Db(2), 6 * i, 0, S7Type::Int))
        .collect();
    tags.push(s7_tag("long", S7Area::Db(1), 200, 0, S7Type::String(254)));
    let mut device = s7_device("snap7-many", &format!("127.0.0.1:{port}"), 960, tags);
    device.poll_interval = Duration::from_millis(50);
    device.timeout = Duration::from_secs(2);
    device
}

fn long_text() -> std::string::String {
    (0..200)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect()
}

fn many_items_hold(version: Snap7, forced_pdu: u16) {
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start(version, port, forced_pdu, 600);
        // A cycle is 94 records (80 INTs, a STRING[254] head and 13
        // extensions): wait for four.
        let run = run_until(
            backend,
            specs(vec![many_items(port)]),
            RunOptions::default(),
            |c, _| c.samples >= 4 * 94,
        );
        let rows = read_samples(&run.samples);
        let mut decode_errors = 0;
        for (index, got) in &rows {
            match got {
                Want::Value(ValueKind::I64, v) => {
                    assert_eq!(
                        *v as i64,
                        (*index as i64) * 18 - 500,
                        "{version:?} tag {index}"
                    )
                }
                Want::Text(t) => assert_eq!(*t, long_text(), "{version:?} {backend:?}"),
                // Snap7 2.1.0 answers the first 20 items of a longer
                // request: those tags once, until the session re-plans.
                Want::Bad(q) if *q == Quality::DECODE_ERROR => decode_errors += 1,
                other => panic!("{version:?} {backend:?}: tag {index} read {other:?}"),
            }
        }
        assert!(
            rows.len() >= 3 * 81,
            "{version:?} {backend:?}: {} rows",
            rows.len()
        );
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{c:#?}"
        );
        match (version, forced_pdu) {
            // 240 bytes take at most 19 items: Snap7's cap of 20 never bites.
            (_, 240) | (Snap7::V330, _) => assert_eq!(decode_errors, 0),
            // At 960 a request of up to 79 items is cut to 20 once.
            (Snap7::V210, _) => assert!(decode_errors > 0 && decode_errors < 81),
        }
    }
}

#[test]
fn snap7_210_forced_pdu_240_many_items() {
    many_items_hold(Snap7::V210, 240);
}

#[test]
fn snap7_210_twenty_item_cap_is_learned() {
    many_items_hold(Snap7::V210, 0);
}

#[test]
fn snap7_330_pdu_capped_at_480_many_items() {
    many_items_hold(Snap7::V330, 0);
}
