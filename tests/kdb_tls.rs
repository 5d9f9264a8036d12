//! TLS for kdb+ IPC (kdb+ -E) against an OpenSSL-backed peer: Python's ssl
//! module wrapping a kdb+ server and client built on aiokdb 0.1.38
//! (tests/kdb_support/tls_peer.py), plus our stand-in serving TLS to that
//! client, to our publisher, and to a real `millrace run` process.
//! Certificates are made at test time (tests/tls_support).

mod common;
mod kdb_support;
mod tls_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{durable_seq, wait_exit};
use kdb_support::{finish, samples, spawn_python, symbol_table, Lines};
use millrace::config::{ClientCertFiles, Secret, SinkTls, TimeType};
use millrace::farm::{self, EmitOptions, Farm, FarmOptions};
use millrace::kdb::tickerplant::TickerplantStats;
use millrace::kdb::{
    kdb_time, Compression, KdbError, Publisher, PublisherOptions, RowRecorder, SeqRecorder,
    ServerTlsFiles, Tickerplant, TickerplantOptions, TlsClient,
};
use millrace::Sample;
use serde_json::Value;
use tls_support::{pki, Pki, CLIENT_CN};

const PEER: &str = include_str!("kdb_support/tls_peer.py");

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// Publisher options for TLS with `ca`, the client certificate if `client`
/// is given, and the server name checked against the certificate.
fn tls_options(ca: &Path, client: Option<(&Path, &Path)>, name: &str) -> PublisherOptions {
    let tls = SinkTls {
        ca_file: ca.to_path_buf(),
        client_cert: client.map(|(cert, key)| ClientCertFiles {
            cert_file: cert.to_path_buf(),
            key_file: key.to_path_buf(),
        }),
        server_name: name.to_string(),
    };
    PublisherOptions {
        tls: Some(TlsClient::from_sink(&tls).expect("tls client config")),
        ..Default::default()
    }
}

fn secret(text: &str) -> Secret {
    Secret::new(text.to_string())
}

/// Starts the Python TLS server; returns it, its output and its address.
fn peer_server(pki: &Pki, client_ca: Option<&Path>, connections: u32) -> (Child, Lines, String) {
    let ca = client_ca.map_or("-", s);
    let n = connections.to_string();
    let args = ["server", s(&pki.server_cert), s(&pki.server_key), ca, &n];
    let mut child = spawn_python(PEER, &args);
    let lines = Lines::new(child.stdout.take().expect("stdout"));
    let port = lines.next().expect("peer port");
    (child, lines, format!("127.0.0.1:{port}"))
}

/// Every event the peer printed, after it served all its connections.
fn events(child: Child, lines: &Lines) -> Vec<Value> {
    let out: Vec<Value> = lines
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).expect("peer json"))
        .collect();
    finish(child);
    out
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event"].as_str().expect("event"))
        .collect()
}

/// A `.u.upd` the peer decoded carries exactly `batch` with seqs from `first_seq`.
#[track_caller]
fn check_update(msg: &Value, batch: &[Sample], first_seq: u64) {
    let symbols = symbol_table();
    assert_eq!(
        (msg["fn"].as_str(), msg["table"].as_str()),
        (Some(".u.upd"), Some("plc"))
    );
    let cols = msg["cols"].as_array().expect("columns");
    let types: Vec<i64> = cols.iter().map(|c| c[0].as_i64().unwrap()).collect();
    assert_eq!(
        types,
        [16, 11, 11, 9, 6, 7],
        "timespan sym device value quality seq"
    );
    assert_eq!(cols[0][1].as_array().unwrap().len(), batch.len());
    for (i, sample) in batch.iter().enumerate() {
        let time = kdb_time(sample.ts_ns, TimeType::Timespan);
        assert_eq!(cols[0][1][i].as_i64(), Some(time), "row {i}");
        assert_eq!(cols[1][1][i], symbols.tag_name(sample.tag_id()).unwrap());
        assert_eq!(cols[2][1][i], symbols.device_name(sample.tag_id()).unwrap());
        let v = sample.value_f64();
        if v.is_nan() {
            assert!(cols[3][1][i].is_null(), "row {i}: NaN is kdb+'s 0n");
        } else {
            assert_eq!(cols[3][1][i].as_f64(), Some(v), "row {i}");
        }
        // The int column holds the Quality's 32 bits as they are.
        let quality = i64::from(sample.quality as i32);
        assert_eq!(cols[4][1][i].as_i64(), Some(quality), "row {i}");
        assert_eq!(cols[5][1][i].as_u64(), Some(first_seq + i as u64));
    }
}

#[track_caller]
fn tls_error(result: Result<Publisher, KdbError>) -> String {
    match result {
        Err(KdbError::Tls(text)) => text,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

/// (1) Our publisher over TLS to the OpenSSL peer: a refused login, plain
/// and compressed batches, the chaser acknowledged, a reconnect; the peer
/// decodes every row we sent.
#[test]
fn publisher_over_tls_to_openssl_peer() {
    let pki = pki();
    let (child, lines, addr) = peer_server(&pki, None, 3);
    let options = PublisherOptions {
        compression: Compression::Always,
        ..tls_options(&pki.ca, None, "127.0.0.1")
    };
    let refused = Publisher::connect(&addr, "feed", &secret("wrong"), options.clone());
    assert!(
        matches!(refused, Err(KdbError::AuthenticationRefused)),
        "{refused:?}"
    );
    let symbols = symbol_table();
    let mut p = Publisher::connect(&addr, "feed", &secret("secret"), options).unwrap();
    assert!(p.is_tls());
    assert_eq!(p.capability(), 3);
    let ts0 = 1_764_000_000_123_456_789;
    let small = samples(7, ts0);
    // Several TLS records (16 KiB each) and compressed.
    let big = samples(3000, ts0 + 5);
    p.publish("plc", &small, 100, &symbols).unwrap();
    p.publish("plc", &big, 107, &symbols).unwrap();
    p.chase().unwrap();
    p.reconnect().unwrap();
    p.publish("plc", &small, 5000, &symbols).unwrap();
    p.chase().unwrap();
    drop(p);

    let events = events(child, &lines);
    let expected = [
        "session", "hello", "end", // refused login
        "session", "hello", "msg", "msg", "msg", "end", // two batches and a chaser
        "session", "hello", "msg", "msg", "end", // after the reconnect
    ];
    assert_eq!(kinds(&events), expected, "{events:?}");
    for e in events.iter().filter(|e| e["event"] == "session") {
        assert_eq!(e["version"], "TLSv1.3", "{e}");
        assert!(
            e["client_cn"].is_null(),
            "no client certificate was asked for"
        );
    }
    assert_eq!(events[1]["user"], "feed");
    check_update(&events[5], &small, 100);
    check_update(&events[6], &big, 107);
    assert_eq!(events[6]["compressed"], 1, "the big batch went compressed");
    assert_eq!(
        (events[7]["mt"].as_i64(), events[7]["text"].as_str()),
        (Some(1), Some("::"))
    );
    check_update(&events[11], &small, 5000);
    assert_eq!(events[12]["text"], "::");
}

/// (2) A server certificate that does not chain to tls_ca_file, or does not
/// name tls_server_name, is a clear TLS error, and the peer never sees a
/// byte of the kdb+ login.
#[test]
fn wrong_ca_or_name_fails_before_any_kdb_byte() {
    let pki = pki();
    let (child, lines, addr) = peer_server(&pki, None, 2);
    let wrong_ca = tls_options(&pki.other_ca, None, "127.0.0.1");
    let text = tls_error(Publisher::connect(
        &addr,
        "feed",
        &secret("secret"),
        wrong_ca,
    ));
    assert!(text.contains("not issued by a CA in tls_ca_file"), "{text}");
    assert!(text.contains(s(&pki.other_ca)), "names the file: {text}");
    let wrong_name = tls_options(&pki.ca, None, "kdb.example.net");
    let text = tls_error(Publisher::connect(
        &addr,
        "feed",
        &secret("secret"),
        wrong_name,
    ));
    assert!(text.contains("not `kdb.example.net`"), "{text}");
    assert!(text.contains("IP:127.0.0.1, DNS:localhost"), "{text}");
    assert!(text.contains("set tls_server_name"), "{text}");
    let events = events(child, &lines);
    assert_eq!(kinds(&events), ["tls_error", "tls_error"], "{events:?}");
}

/// (3) A peer that requires client certificates: none, or one from another
/// CA, fails clearly; ours is accepted and the peer sees its name.
#[test]
fn client_certificate_required_by_the_peer() {
    let pki = pki();
    let (child, lines, addr) = peer_server(&pki, Some(&pki.ca), 3);
    let none = tls_options(&pki.ca, None, "localhost");
    let text = tls_error(Publisher::connect(&addr, "feed", &secret("secret"), none));
    assert!(text.contains("client certificate"), "{text}");
    let stranger = Some((pki.stranger_cert.as_path(), pki.stranger_key.as_path()));
    let stranger = tls_options(&pki.ca, stranger, "localhost");
    let text = tls_error(Publisher::connect(
        &addr,
        "feed",
        &secret("secret"),
        stranger,
    ));
    assert!(text.contains("refused our client certificate"), "{text}");
    let ours = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let ours = tls_options(&pki.ca, ours, "localhost");
    let mut p = Publisher::connect(&addr, "feed", &secret("secret"), ours).unwrap();
    let batch = samples(25, 1_764_000_000_000_000_000);
    p.publish("plc", &batch, 7, &symbol_table()).unwrap();
    p.chase().unwrap();
    drop(p);
    let events = events(child, &lines);
    let expected = [
        "tls_error",
        "tls_error",
        "session",
        "hello",
        "msg",
        "msg",
        "end",
    ];
    assert_eq!(kinds(&events), expected, "{events:?}");
    assert_eq!(events[2]["client_cn"], CLIENT_CN);
    check_update(&events[4], &batch, 7);
}

/// The stand-in's stats once `count` TLS handshakes have failed (bounded).
fn wait_for_failed_handshakes(tp: &Tickerplant, count: u64) -> TickerplantStats {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = tp.stats();
        if stats.tls_handshakes_failed >= count {
            assert_eq!(stats.tls_handshakes_failed, count, "{stats:?}");
            return stats;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn tls_standin(pki: &Pki, options: TickerplantOptions) -> Tickerplant {
    let files = ServerTlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: Some(pki.ca.clone()),
    };
    let options = TickerplantOptions {
        tls: Some(files.load().expect("server tls")),
        ..options
    };
    Tickerplant::bind("127.0.0.1:0", options).expect("bind stand-in")
}

/// (5) The stand-in's TLS server with an independent client: aiokdb over
/// Python's ssl publishes async and sync and gets (::) and a kdb+ error;
/// without a client certificate it is refused; a plain client is told.
#[test]
fn standin_serves_tls_to_an_openssl_client() {
    let pki = pki();
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1000)));
    let options = TickerplantOptions {
        users: Some(vec![("feed".into(), "pw".into())]),
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = tls_standin(&pki, options);
    let port = tp.local_addr().port().to_string();
    let client = |cert: &Path, key: &Path| {
        let args = ["client", s(&pki.ca), &port, "localhost", s(cert), s(key)];
        kdb_support::run_python(PEER, &args)
    };
    let out = client(&pki.client_cert, &pki.client_key);
    assert_eq!(
        out,
        ["tls TLSv1.3", "capability 3", "ok 101", "error type"],
        "replies"
    );
    let refused = client(Path::new("-"), Path::new("-"));
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].starts_with("refused "), "{refused:?}");

    let plain = Publisher::connect(
        &tp.local_addr().to_string(),
        "feed",
        &secret("pw"),
        Default::default(),
    );
    let text = tls_error(plain);
    assert!(text.contains("set tls = true"), "{text}");

    let rows = recorder.lock().unwrap().rows.clone();
    assert_eq!(rows.len(), 15);
    for (i, (table, sym, value, seq)) in rows.iter().enumerate() {
        let n = if i < 10 { i } else { i - 10 };
        assert_eq!((table.as_str(), *seq), ("plc", i as i64));
        assert_eq!(*sym, format!("s{}", n % 3));
        assert_eq!(*value, n as f64 * 0.5);
    }
    // The client may read the alert before the stand-in's thread counts it.
    let stats = wait_for_failed_handshakes(&tp, 2);
    assert_eq!(stats.update_errors, 1, "{stats:?}");
    assert_eq!(tp.stop(), [("plc".to_string(), 15)]);
}

/// A plain-TCP publisher is refused by a TLS-only stand-in: the test of the
/// plain path's message is above; here our TLS publisher without a client
/// certificate is refused by the stand-in that requires one, and with it
/// delivers.
#[test]
fn standin_requires_our_client_certificate() {
    let pki = pki();
    let tp = tls_standin(&pki, TickerplantOptions::default());
    let addr = tp.local_addr().to_string();
    let none = tls_options(&pki.ca, None, "127.0.0.1");
    let text = tls_error(Publisher::connect(&addr, "u", &secret(""), none));
    assert!(text.contains("client certificate"), "{text}");
    let ours = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let mut p = Publisher::connect(
        &addr,
        "u",
        &secret(""),
        tls_options(&pki.ca, ours, "127.0.0.1"),
    )
    .unwrap();
    p.publish("plc", &samples(40, 0), 0, &symbol_table())
        .unwrap();
    p.chase().unwrap();
    drop(p);
    assert_eq!(tp.rows("plc"), 40);
    wait_for_failed_handshakes(&tp, 1);
}

fn kill(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success());
}

/// `millrace tickerplant` with --tls-cert/--tls-key/--tls-client-ca: serves
/// our publisher with a client certificate, and a bad key file is a startup
/// error that names the flag and the file.
#[test]
fn tickerplant_cli_serves_tls() {
    let pki = pki();
    let bin = env!("CARGO_BIN_EXE_millrace");
    let mut child = Command::new(bin)
        .args(["tickerplant", "--listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_key),
        ])
        .args(["--tls-client-ca", s(&pki.ca)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first.strip_prefix("listening ").expect(&first).to_string();
    let ours = Some((pki.client_cert.as_path(), pki.client_key.as_path()));
    let mut p = Publisher::connect(
        &addr,
        "feed",
        &secret(""),
        tls_options(&pki.ca, ours, "localhost"),
    )
    .unwrap();
    p.publish("plc", &samples(42, 0), 0, &symbol_table())
        .unwrap();
    p.chase().unwrap();
    drop(p);
    kill(&child, "-15");
    assert!(wait_exit(&mut child, Duration::from_secs(20)).success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert_eq!(rest, ["rows plc 42"]);

    let out = Command::new(bin)
        .args(["tickerplant", "--listen", "127.0.0.1:0"])
        .args([
            "--tls-cert",
            s(&pki.server_cert),
            "--tls-key",
            s(&pki.server_cert),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--tls-key"), "{err}");
    assert!(err.contains(s(&pki.server_cert)), "{err}");
    assert!(err.contains("no private key"), "{err}");
}

/// (4) A real `millrace run` with a TLS sink (CA, client certificate, server
/// name) into the TLS stand-in: every durable sample arrives.
#[test]
fn millrace_run_delivers_over_tls() {
    let pki = pki();
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(10_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = tls_standin(&pki, options);
    let farm = Farm::start(FarmOptions {
        devices: 4,
        register_count: 50,
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("plant.toml");
    let wal = dir.path().join("wal");
    let emit = EmitOptions {
        tags_per_device: 50,
        wal_dir: wal.clone(),
        sink_address: tp.local_addr().to_string(),
        poll_interval: "20ms".into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, farm.ports(), &emit).unwrap();
    let tls_keys = format!(
        "batch_rows = 2000\ntls = true\ntls_ca_file = \"{}\"\ntls_client_cert = \"{}\"\n\
         tls_client_key = \"{}\"\ntls_server_name = \"localhost\"\n",
        s(&pki.ca),
        s(&pki.client_cert),
        s(&pki.client_key)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("batch_rows = 10000\n"), "{text}");
    let text = text
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"off\"")
        .replace("segment_size = \"64MiB\"", "segment_size = \"1MiB\"")
        .replace("batch_rows = 10000\n", &tls_keys);
    std::fs::write(&config, text).unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tp.rows("plc") < 1000 {
        assert!(Instant::now() < deadline, "no rows over TLS");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(&child, "-15");
    let status = wait_exit(&mut child, Duration::from_secs(30));
    assert!(status.success(), "millrace run exit {status}");
    let durable = durable_seq(&wal);
    assert!(durable > 0);
    let r = recorder.lock().unwrap();
    assert_eq!(r.missing(0..durable), 0, "durable samples never arrived");
    assert_eq!(r.out_of_range(), 0);
    assert!(tp.rows("plc") >= durable);
    assert_eq!(tp.stats().tls_handshakes_failed, 0);
    drop(r);

    // `millrace replay --tls` rebuilds a second TLS stand-in from the WAL.
    let rebuilt = Arc::new(Mutex::new(SeqRecorder::new(10_000_000)));
    let options = TickerplantOptions {
        recorder: Some(rebuilt.clone()),
        ..Default::default()
    };
    let tp2 = tls_standin(&pki, options);
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args([
            "replay",
            "--wal",
            s(&wal),
            "--to",
            &tp2.local_addr().to_string(),
        ])
        .args([
            "--tls",
            "--tls-ca-file",
            s(&pki.ca),
            "--tls-server-name",
            "localhost",
        ])
        .args(["--tls-client-cert", s(&pki.client_cert)])
        .args(["--tls-client-key", s(&pki.client_key)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "replay: {stderr}");
    assert_eq!(rebuilt.lock().unwrap().missing(0..durable), 0);
    // Without the client certificate the stand-in refuses, and replay says why.
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args([
            "replay",
            "--wal",
            s(&wal),
            "--to",
            &tp2.local_addr().to_string(),
        ])
        .args(["--tls", "--tls-ca-file", s(&pki.ca)])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("client certificate"), "{stderr}");
}
