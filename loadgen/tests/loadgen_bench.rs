//! `millrace-loadgen bench` end to end, as a user runs it: farm and
//! `millrace run` as child processes, the stand-in verifying every row, the
//! tokio-modbus baseline after; the JSON report must show delivery with
//! nothing lost and every value checked.
//!
//! `bench` runs the `millrace` binary next to `millrace-loadgen`
//! (`common::millrace_binary` brings it up to date first).

mod common;

use std::path::PathBuf;
use std::process::Command;

/// Runs `bench ARGS` (JSON and work files in a fresh directory named
/// after `name`); its report, its stdout, and the directory.
fn bench(name: &str, args: &[&str]) -> (serde_json::Value, String, String, PathBuf) {
    let millrace = common::millrace_binary();
    let dir = std::env::temp_dir().join(format!("millrace-loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("bench.json");
    let output = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg("--dir")
        .arg(dir.join("work"))
        .env("MILLRACE_BIN", &millrace)
        .output()
        .expect("run millrace-loadgen bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "bench failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    (v, text, stdout, dir)
}

#[test]
fn bench_delivers_everything_and_reports_the_baseline() {
    let args = [
        "--seconds",
        "2",
        "--devices",
        "5",
        "--tags-per-device",
        "20",
    ];
    let (v, text, stdout, dir) = bench("bench", &args);
    assert_eq!(v["lost"], 0, "{text}");
    assert_eq!(v["mismatches"], 0, "{text}");
    assert_eq!(v["duplicates_after_dedup"], 0, "{text}");
    assert!(v["samples_per_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(v["responses_per_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(v["samples_per_cpu_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(v["p99_end_to_end_ms"].as_f64().unwrap() > 0.0, "{text}");
    assert!(v["durable_seq"].as_u64().unwrap() > 0, "{text}");
    // Rows that arrived cover every durable seq at least once.
    assert!(v["rows_received"].as_u64().unwrap() >= v["durable_seq"].as_u64().unwrap());
    let baseline = &v["baseline"];
    assert!(baseline["samples_per_s"].as_f64().unwrap() > 0.0, "{text}");
    assert!(
        baseline["samples_per_cpu_s"].as_f64().unwrap() > 0.0,
        "{text}"
    );
    assert_eq!(baseline["lost"], 0, "{text}");
    assert_eq!(baseline["mismatches"], 0, "{text}");
    assert!(stdout.contains("result: PASS"), "{stdout}");
    assert!(dir.join("work/hgrm/end_to_end.hgrm").is_file());
    let svg = std::fs::read_to_string(dir.join("work/hgrm/latency.svg")).unwrap();
    assert!(
        svg.contains("<polyline") && svg.contains("end_to_end"),
        "{svg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `bench --protocol ethernet-ip` at small scale: simulated Logix
/// controllers polled by `millrace run` over the EtherNet/IP session, every
/// row checked against the farm's table: nothing lost, nothing wrong, no
/// bad quality, no text left unchecked (there is no EtherNet/IP baseline).
#[test]
fn bench_over_ethernet_ip_loses_nothing_and_every_value_checks() {
    let args = ["--protocol", "ethernet-ip", "--seconds", "2"];
    let scale = ["--devices", "4", "--tags-per-device", "400"];
    let (v, text, stdout, dir) = bench("bench-enip", &[&args[..], &scale[..]].concat());
    assert_eq!(v["protocol"], "ethernet-ip", "{text}");
    assert_verified(&v, &[], &text, &stdout);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A verified run: nothing lost, wrong, duplicated, of bad quality or
/// unchecked (nor any of `more`), something delivered, and PASS.
fn assert_verified(v: &serde_json::Value, more: &[&str], context: &str, stdout: &str) {
    let always = [
        "lost",
        "mismatches",
        "duplicates_after_dedup",
        "bad_quality_rows",
        "text_rows_unchecked",
    ];
    for zero in always.iter().chain(more) {
        assert_eq!(v[*zero], 0, "{zero}: {context}");
    }
    assert!(v["samples_per_s"].as_f64().unwrap() > 0.0, "{context}");
    assert!(v["durable_seq"].as_u64().unwrap() > 0, "{context}");
    assert!(v["rows_received"].as_u64().unwrap() > 0, "{context}");
    assert!(stdout.contains("result: PASS"), "{stdout}");
}

/// `bench --protocol opcua` at small scale, with each of the farm's servers
/// (async-opcua's and the lean one): servers whose every variable changes
/// once per poll interval, subscribed to by `millrace run`'s OPC UA reader,
/// every row checked against the farm's value functions: nothing lost,
/// nothing wrong, no bad quality, no text left unchecked, and no change the
/// servers published missing between two delivered changes of a tag.
#[test]
fn bench_over_opcua_loses_no_change_and_every_value_checks() {
    for server in ["stack", "lean"] {
        let args = [
            "--protocol",
            "opcua",
            "--seconds",
            "2",
            "--opcua-server",
            server,
        ];
        let scale = ["--devices", "3", "--tags-per-device", "200"];
        let name = format!("bench-opcua-{server}");
        let (v, text, stdout, dir) = bench(&name, &[&args[..], &scale[..]].concat());
        assert_eq!(v["protocol"], "opcua", "{server}: {text}");
        let context = format!("{server}: {text}");
        assert_verified(&v, &["changes_missed", "silent_tags"], &context, &stdout);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
