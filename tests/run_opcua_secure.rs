//! OPC UA over a secure channel, end to end: `millrace opcua make-cert`
//! makes millrace's certificate, FreeOpcUa's asyncua 2.1.0 server offers
//! one endpoint (Basic256Sha256 SignAndEncrypt, or in the third test each
//! other policy and mode millrace offers in turn), refuses a session on a
//! channel of any other, and requires a user name and password (or, in the
//! second test, an X.509 user certificate); a real `millrace run` first
//! refuses the server's certificate (one log line naming the file the stack
//! wrote into `rejected` and the trust list to move it into), then, once the
//! file is moved, delivers the server's values to the tickerplant stand-in.
//! The password never shows.

mod common;
mod opcua_support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
use opcua_support::{free_port, start_peer_with};

const PASSWORD: &str = "ua-secret-9";

fn make_cert(dir: &Path, name: &str) {
    let output = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args([
            "opcua",
            "make-cert",
            "--uri",
            "urn:millrace:test",
            "--host",
            "127.0.0.1",
        ])
        .arg("--out")
        .arg(dir.join(name))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("certificate = \""), "{stdout}");
    assert!(dir.join(name).join("own/cert.der").is_file());
    assert!(dir.join(name).join("trusted").is_dir());
    // The second time it refuses to overwrite.
    let again = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["opcua", "make-cert", "--uri", "urn:millrace:test"])
        .arg("--out")
        .arg(dir.join(name))
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

/// A security policy and mode, as millrace's configuration spells them.
#[derive(Clone, Copy)]
struct Channel {
    policy: &'static str,
    mode: &'static str,
}

impl Channel {
    /// The asyncua `SecurityPolicyType` of the one endpoint the peer offers
    /// (`Aes128_Sha256_RsaOaep` Sign: `Aes128Sha256RsaOaep_Sign`).
    fn peer_name(self) -> String {
        format!("{}_{}", self.policy.replace('_', ""), self.mode)
    }
}

const BASIC256SHA256_ENCRYPTED: Channel = Channel {
    policy: "Basic256Sha256",
    mode: "SignAndEncrypt",
};

const USER_PASSWORD: &str = "user = \"feed\"\npassword_env = \"MILLRACE_TEST_UA_PASSWORD\"\n";

#[test]
fn an_untrusted_server_is_refused_with_the_file_to_move_then_signed_and_encrypted_values_arrive() {
    secure_run(
        &[BASIC256SHA256_ENCRYPTED],
        &[&format!("feed:{PASSWORD}")],
        USER_PASSWORD,
    );
}

/// The same with an X.509 user identity (a second certificate made by
/// make-cert), the one identity the server accepts.
#[test]
fn an_x509_user_identity_is_accepted_over_a_secure_channel() {
    secure_run(
        &[BASIC256SHA256_ENCRYPTED],
        &["usercert"],
        "user_certificate = \"user/own/cert.der\"\nuser_private_key = \"user/own/key.pem\"\n",
    );
}

/// Every other policy and mode millrace offers, each against a server that
/// offers only that one: one trust list, so only the first run is refused.
/// With Sign the channel is not encrypted and the password goes encrypted
/// under the channel's own policy (the server's user token policy says so).
#[test]
fn every_other_policy_and_mode_delivers_values_over_that_channel() {
    let channel = |policy, mode| Channel { policy, mode };
    secure_run(
        &[
            channel("Aes128_Sha256_RsaOaep", "SignAndEncrypt"),
            channel("Aes256_Sha256_RsaPss", "SignAndEncrypt"),
            channel("Basic256Sha256", "Sign"),
            channel("Aes128_Sha256_RsaOaep", "Sign"),
            channel("Aes256_Sha256_RsaPss", "Sign"),
        ],
        &[&format!("feed:{PASSWORD}")],
        USER_PASSWORD,
    );
}

/// Runs against the secure peer once per channel, in order, with
/// `peer_args` (`usercert` becomes the user certificate's path) and the
/// identity keys `identity`. The server keeps one certificate: the first
/// run finds it untrusted, the rest find it in the trust list.
fn secure_run(channels: &[Channel], peer_args: &[&str], identity: &str) {
    let dir = tempfile::tempdir().unwrap();
    make_cert(dir.path(), "pki");
    make_cert(dir.path(), "user");
    let server_dir = dir.path().join("server");
    std::fs::create_dir(&server_dir).unwrap();
    let mut args: Vec<String> = peer_args
        .iter()
        .map(|a| match *a {
            "usercert" => format!(
                "usercert={}",
                dir.path().join("user/own/cert.der").display()
            ),
            other => other.to_string(),
        })
        .collect();
    args.push(format!("secure={}", server_dir.display()));
    for (index, &channel) in channels.iter().enumerate() {
        let mut peer_args = args.clone();
        peer_args.push(format!("policy={}", channel.peer_name()));
        run_once(dir.path(), index, channel, &peer_args, identity);
    }
}

/// Run `index` of `millrace run` (its configuration, WAL and log named by
/// `index`, beside the PKI in `dir`) against a peer that offers only
/// `channel`; the first finds the server's certificate untrusted.
fn run_once(dir: &Path, index: usize, channel: Channel, peer_args: &[String], identity: &str) {
    let port = free_port();
    let peer_args: Vec<&str> = peer_args.iter().map(String::as_str).collect();
    let peer = start_peer_with(port, 0, &peer_args);
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let path = dir.join(format!("plant{index}.toml"));
    let config = config(index, channel, port, &tp.local_addr().to_string(), identity);
    std::fs::write(&path, config).unwrap();
    let log_path = dir.join(format!("stderr{index}.log"));
    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&path)
        .env("MILLRACE_TEST_UA_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("start millrace run");
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let valued = |r: &RowRecorder| r.rows.iter().filter(|(_, _, v, _)| !v.is_nan()).count();
    if index == 0 {
        refused_then_trusted(dir, &mut run, &log);
        assert_eq!(valued(&recorder.lock().unwrap()), 0);
    }
    let (policy, mode) = (channel.policy, channel.mode);
    assert!(
        common::wait_until(Duration::from_secs(120), || {
            let r = recorder.lock().unwrap();
            valued(&r) >= 5 && r.texts.len() >= 5
        }),
        "no values over a {policy} {mode} channel\n{}",
        log()
    );
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let log = log();
    assert!(status.success(), "{policy} {mode}: {log}");
    assert!(!log.contains(PASSWORD), "{log}");
    // millrace says which channel and identity it connected with.
    let said = format!("security policy {policy}, mode {mode}, ");
    assert!(
        log.lines()
            .any(|l| l.contains("connected to opc.tcp://") && l.contains(&said)),
        "no connection line naming {said}\n{log}"
    );
    tp.stop();
    // The server refuses a session on any other channel; it says which one
    // each session was activated on.
    let lines = peer.lines.lock().unwrap();
    let sessions: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("session on"))
        .collect();
    assert!(!sessions.is_empty(), "no session line from the peer");
    for line in sessions {
        assert_eq!(*line, format!("session on {policy} {mode}"));
    }
    check_values(&recorder.lock().unwrap());
}

/// The device section for `channel`, the identity keys `identity`, a
/// server on `port` and the stand-in at `tp`.
fn config(index: usize, channel: Channel, port: u16, tp: &str, identity: &str) -> String {
    format!(
        "[metrics]\nlisten = \"off\"\n\n[wal]\ndir = \"wal{index}\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n\n\
         [[device]]\nname = \"ua\"\nprotocol = \"opcua\"\n\
         address = \"opc.tcp://127.0.0.1:{port}/\"\n\
         security_policy = \"{}\"\nsecurity_mode = \"{}\"\n\
         application_uri = \"urn:millrace:test\"\n\
         certificate = \"pki/own/cert.der\"\nprivate_key = \"pki/own/key.pem\"\n\
         trusted_certs = \"pki/trusted\"\n{identity}\
         sampling_interval = \"20ms\"\npublishing_interval = \"50ms\"\n\n\
         [[device.tag]]\nname = \"ua.double\"\naddress = \"ns=2;s=ua.double\"\ntype = \"double\"\n\n\
         [[device.tag]]\nname = \"ua.string\"\naddress = \"ns=2;s=ua.string\"\n\
         type = \"string[24]\"\n",
        channel.policy, channel.mode
    )
}

/// The first run is refused: the server's certificate is in no trust list
/// yet. One log line names the file to move; the test moves it, as the
/// operator would, and the next attempt connects.
fn refused_then_trusted(dir: &Path, run: &mut Child, log: &dyn Fn() -> String) {
    assert!(
        common::wait_until(Duration::from_secs(120), || {
            log().contains("the server's certificate is not trusted")
                || run.try_wait().ok().flatten().is_some()
        }) && log().contains("the server's certificate is not trusted"),
        "no refusal of the untrusted server\n{}",
        log()
    );
    let rejected: Vec<_> = std::fs::read_dir(dir.join("pki/rejected"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let [file] = &rejected[..] else {
        panic!("one rejected certificate, not {rejected:?}")
    };
    let refusal = log();
    let trusted = dir.join("pki/trusted");
    assert!(
        refusal.contains(&format!("written to `{}`", file.display())),
        "{refusal}"
    );
    assert!(
        refusal.contains(&format!("move that file into `{}`", trusted.display())),
        "{refusal}"
    );
    assert_eq!(refusal.matches("is not trusted").count(), 1, "{refusal}");
    std::fs::rename(file, trusted.join(file.file_name().unwrap())).unwrap();
}

/// Every value is the server's tick k of `ua.double` (k * 0.5 + 0.125)
/// and of `ua.string` ("text k é"): whole, through the secure channel.
fn check_values(r: &RowRecorder) {
    for (_, sym, value, _) in r.rows.iter().filter(|(_, _, v, _)| !v.is_nan()) {
        assert_eq!(sym, "ua.double");
        let k = (value - 0.125) * 2.0;
        assert!(k >= 0.0 && k.fract() == 0.0, "{sym} = {value}");
    }
    for (_, sym, _, text) in &r.texts {
        assert_eq!(sym, "ua.string");
        let k = text
            .strip_prefix("text ")
            .and_then(|t| t.strip_suffix(" \u{e9}"))
            .and_then(|k| k.parse::<u64>().ok());
        assert!(k.is_some(), "{text}");
    }
}
