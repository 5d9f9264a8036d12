//! `millrace demo`, the README's first command, runs the whole data path on
//! embedded defaults and reports a verified loss of zero.

use std::process::Command;

#[test]
fn demo_reports_zero_verified_loss_and_rows_received() {
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args([
            "demo",
            "--seconds",
            "2",
            "--devices",
            "10",
            "--tags-per-device",
            "40",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("verified loss: 0 (OK)"), "{stdout}");
    assert!(
        stdout.contains("value mismatches against the farm         0"),
        "{stdout}"
    );
    let rows: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rows plc "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `rows plc N` line:\n{stdout}"));
    assert!(rows > 0);
    for stage in [
        "poll_round_trip",
        "decode",
        "ring_dwell",
        "wal_commit",
        "end_to_end",
    ] {
        let line = stdout.lines().find(|l| l.starts_with(stage)).expect(stage);
        assert!(!line.contains("not recorded"), "{line}");
    }
}

/// Runs `demo --protocol PROTOCOL` on 4 devices of 40 tags and checks what
/// every protocol's report must say: zero loss, no value wrong, no bad
/// quality, every text checked, and every type of the `line` (the S7 or
/// CIP types, `types` of them) checked at least once; its stdout.
fn demo_verifies_every_type(protocol: &str, line: &str, types: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["demo", "--seconds", "2", "--devices", "4"])
        .args(["--tags-per-device", "40", "--protocol", protocol])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "{protocol}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{context}");
    for wanted in [
        "verified loss: 0 (OK)",
        "value mismatches against the farm         0",
        "bad-quality rows (no value to check)      0",
        "same answer twice after dedup by seq      0",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {context}");
    }
    assert!(
        !stdout.contains("text rows without their text"),
        "{context}"
    );
    let checked = stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(line))
        .unwrap_or_else(|| panic!("no `{line}` line: {context}"));
    let counts: Vec<(&str, u64)> = checked
        .split_whitespace()
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|pair| (pair[0], pair[1].parse().unwrap()))
        .collect();
    assert_eq!(counts.len(), types, "{context}");
    for (name, count) in counts {
        assert!(count > 0, "no {name} value checked: {context}");
    }
    stdout.into_owned()
}

/// S7 devices (every S7 type, strings into the text column) and a mixed
/// farm (half Modbus, half S7) through the real S7 session: zero loss, no
/// value wrong, and every S7 type checked, texts included.
#[test]
fn demo_with_s7_and_mixed_devices_verifies_every_s7_type() {
    for protocol in ["s7", "mixed"] {
        demo_verifies_every_type(protocol, "S7 values checked by type", 21);
    }
}

/// Simulated Logix controllers through the real EtherNet/IP session (Large
/// Forward Open, Multiple Service Packets, BOOL arrays, a bit of a DINT,
/// STRINGs into the text column): zero loss, no value wrong, and every CIP
/// type checked.
#[test]
fn demo_with_ethernet_ip_verifies_every_cip_type() {
    demo_verifies_every_type("ethernet-ip", "CIP values checked by type", 12);
}

/// OPC UA servers (async-opcua's server side) whose every variable changes
/// once per poll interval, subscribed to by the real OPC UA reader: zero
/// loss, no value wrong, every one of the farm's eight types checked, and
/// no change the servers published missing between two delivered ones.
#[test]
fn demo_with_opcua_verifies_every_change_of_every_type() {
    let stdout = demo_verifies_every_type("opcua", "OPC UA values checked by type", 8);
    for wanted in [
        "OPC UA changes missed between two rows   0",
        "OPC UA tags of which nothing arrived     0",
    ] {
        assert!(stdout.contains(wanted), "{wanted}: {stdout}");
    }
}
