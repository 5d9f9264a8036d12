//! The sink's TLS keys (`tls`, `tls_ca_file`, `tls_client_cert`,
//! `tls_client_key`, `tls_server_name`): what is accepted and what it
//! becomes, and each rejection at its file, line, column and key, with the
//! PEM files made at test time. No message quotes a PEM file's content.

mod tls_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use millrace::config::{load, ClientCertFiles, Config, ConfigError, SinkTls};
use tls_support::{pki, Pki};

const DEVICE: &str = "\n[[device]]\nname = \"press-01\"\nprotocol = \"modbus-tcp\"\n\
    address = \"10.0.0.5:502\"\nunit_id = 1\npoll_interval = \"100ms\"\n\n\
    [[device.tag]]\nname = \"press01.temp\"\narea = \"holding\"\naddress = 100\n\
    type = \"float32\"\n";

/// A plant file in the PKI's directory (so relative PEM paths resolve
/// there) whose one sink has `address` and then the `sink_keys` lines.
fn plant(pki: &Pki, address: &str, sink_keys: &str) -> (PathBuf, String) {
    let text = format!(
        "[wal]\ndir = \"wal\"\n\n[[sink]]\nname = \"tp\"\nkind = \"kdb\"\n\
         address = \"{address}\"\ntable = \"plc\"\n{sink_keys}{DEVICE}"
    );
    let path = pki.dir.path().join("plant.toml");
    std::fs::write(&path, &text).unwrap();
    (path, text)
}

fn accept(pki: &Pki, address: &str, sink_keys: &str) -> Config {
    let (path, _) = plant(pki, address, sink_keys);
    load(&path).unwrap_or_else(|e| panic!("rejected: {e}"))
}

/// Line and column (1-based) of the first `needle` in `text`, plus `shift`
/// columns (to point past `key = ` at the value).
fn place(text: &str, needle: &str, shift: u32) -> (u32, u32) {
    let offset = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let column = (offset - before.rfind('\n').map_or(0, |i| i + 1)) as u32 + 1;
    (line, column + shift)
}

/// Rejected at the value of `key = ` (or at `[[sink]]` for a missing key),
/// with `fragment` in the message, an expectation, and no PEM content.
#[track_caller]
fn rejects(pki: &Pki, address: &str, sink_keys: &str, at: &str, key: &str, fragment: &str) {
    let (path, text) = plant(pki, address, sink_keys);
    let error: ConfigError = match load(&path) {
        Ok(_) => panic!("accepted:\n{sink_keys}"),
        Err(e) => e,
    };
    let message = error.to_string();
    let shift = if at.ends_with("= ") {
        at.len() as u32
    } else {
        0
    };
    let (line, column) = place(&text, at, shift);
    let prefix = format!("{}:{line}:{column}: key `{key}`: ", path.display());
    assert!(message.starts_with(&prefix), "{message}\nnot at\n{prefix}");
    assert!(message.contains(fragment), "{message}\nhas no\n{fragment}");
    assert!(message.contains("; expected "), "{message}");
    assert!(!message.contains("-----"), "PEM content in: {message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn plain_by_default_and_with_tls_false() {
    let pki = pki();
    assert_eq!(accept(&pki, "127.0.0.1:5010", "").sinks[0].tls, None);
    assert_eq!(
        accept(&pki, "127.0.0.1:5010", "tls = false\n").sinks[0].tls,
        None
    );
}

#[test]
fn accepts_a_ca_and_defaults_the_name_to_the_host() {
    let pki = pki();
    let config = accept(
        &pki,
        "127.0.0.1:5010",
        "tls = true\ntls_ca_file = \"ca.pem\"\n",
    );
    let expected = SinkTls {
        ca_file: pki.dir.path().join("ca.pem"),
        client_cert: None,
        server_name: "127.0.0.1".into(),
    };
    assert_eq!(config.sinks[0].tls, Some(expected));
    let v6 = accept(&pki, "[::1]:5010", "tls = true\ntls_ca_file = \"ca.pem\"\n");
    assert_eq!(v6.sinks[0].tls.as_ref().unwrap().server_name, "::1");
    let host = accept(
        &pki,
        "kdb.plant.local:5010",
        "tls = true\ntls_ca_file = \"ca.pem\"\n",
    );
    assert_eq!(
        host.sinks[0].tls.as_ref().unwrap().server_name,
        "kdb.plant.local"
    );
}

#[test]
fn accepts_a_client_certificate_and_a_server_name() {
    let pki = pki();
    let keys = "tls = true\ntls_ca_file = \"ca.pem\"\ntls_client_cert = \"client.pem\"\n\
                tls_client_key = \"client.key\"\ntls_server_name = \"kdb.plant.local\"\n";
    let config = accept(&pki, "10.1.2.3:5010", keys);
    let d = pki.dir.path();
    let expected = SinkTls {
        ca_file: d.join("ca.pem"),
        client_cert: Some(ClientCertFiles {
            cert_file: d.join("client.pem"),
            key_file: d.join("client.key"),
        }),
        server_name: "kdb.plant.local".into(),
    };
    assert_eq!(config.sinks[0].tls, Some(expected));
    // check-config shows the files and the name, never a key's content.
    let (path, _) = plant(&pki, "10.1.2.3:5010", keys);
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("tls: ca "), "{summary}");
    assert!(summary.contains("server name kdb.plant.local"), "{summary}");
    assert!(!summary.contains("-----"), "{summary}");
}

#[test]
fn rejects_tls_that_is_not_a_boolean() {
    let pki = pki();
    let at = "tls = ";
    rejects(
        &pki,
        "h:1",
        "tls = \"yes\"\n",
        at,
        "sink[0].tls",
        "wrong type",
    );
}

#[test]
fn rejects_tls_without_a_ca_file() {
    let pki = pki();
    let fragment = "missing key `tls_ca_file`";
    rejects(
        &pki,
        "h:1",
        "tls = true\n",
        "[[sink]]",
        "sink[0].tls_ca_file",
        fragment,
    );
}

#[test]
fn rejects_tls_keys_without_tls_true() {
    let pki = pki();
    let fragment = "`tls` is not true";
    let ca = "tls_ca_file = \"ca.pem\"\n";
    rejects(
        &pki,
        "h:1",
        ca,
        "tls_ca_file = ",
        "sink[0].tls_ca_file",
        fragment,
    );
    let keys = "tls = false\ntls_server_name = \"kdb\"\n";
    let at = "tls_server_name = ";
    rejects(&pki, "h:1", keys, at, "sink[0].tls_server_name", fragment);
}

#[test]
fn rejects_half_a_client_certificate() {
    let pki = pki();
    let base = "tls = true\ntls_ca_file = \"ca.pem\"\n";
    let cert_only = format!("{base}tls_client_cert = \"client.pem\"\n");
    let at = "tls_client_cert = ";
    let fragment = "without `tls_client_key`";
    rejects(
        &pki,
        "h:1",
        &cert_only,
        at,
        "sink[0].tls_client_cert",
        fragment,
    );
    let key_only = format!("{base}tls_client_key = \"client.key\"\n");
    let at = "tls_client_key = ";
    let fragment = "without `tls_client_cert`";
    rejects(
        &pki,
        "h:1",
        &key_only,
        at,
        "sink[0].tls_client_key",
        fragment,
    );
}

#[test]
fn rejects_missing_and_invalid_pem_files() {
    let pki = pki();
    let d = pki.dir.path();
    let missing = "tls = true\ntls_ca_file = \"nowhere.pem\"\n";
    let at = "tls_ca_file = ";
    let key = "sink[0].tls_ca_file";
    let path = d.join("nowhere.pem");
    let fragment = format!("cannot read `{}`", path.display());
    rejects(&pki, "h:1", missing, at, key, &fragment);

    std::fs::write(d.join("junk.pem"), "not a certificate\n").unwrap();
    let junk = "tls = true\ntls_ca_file = \"junk.pem\"\n";
    rejects(&pki, "h:1", junk, at, key, "no certificate in it");

    let broken = "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n";
    std::fs::write(d.join("broken.pem"), broken).unwrap();
    let broken = "tls = true\ntls_ca_file = \"broken.pem\"\n";
    rejects(&pki, "h:1", broken, at, key, "not valid base64");

    // A key file holding a certificate: no private key in it.
    let base = "tls = true\ntls_ca_file = \"ca.pem\"\ntls_client_cert = \"client.pem\"\n";
    let no_key = format!("{base}tls_client_key = \"client.pem\"\n");
    let at = "tls_client_key = ";
    let key = "sink[0].tls_client_key";
    rejects(&pki, "h:1", &no_key, at, key, "no private key");
    // A key that belongs to another certificate.
    let other = format!("{base}tls_client_key = \"stranger.key\"\n");
    rejects(&pki, "h:1", &other, at, key, "does not fit the certificate");
    // A certificate file with no certificate in it.
    let certless = "tls = true\ntls_ca_file = \"ca.pem\"\ntls_client_cert = \"client.key\"\n\
                    tls_client_key = \"client.key\"\n";
    let at = "tls_client_cert = ";
    rejects(
        &pki,
        "h:1",
        certless,
        at,
        "sink[0].tls_client_cert",
        "no certificate",
    );
}

#[test]
fn rejects_a_server_name_tls_cannot_check() {
    let pki = pki();
    let base = "tls = true\ntls_ca_file = \"ca.pem\"\n";
    let bad = format!("{base}tls_server_name = \"not a name\"\n");
    let at = "tls_server_name = ";
    let fragment = "not a DNS name or IP address";
    rejects(&pki, "h:1", &bad, at, "sink[0].tls_server_name", fragment);
    // The default comes from the address: an empty label is no DNS name.
    rejects(
        &pki,
        "kdb..plant:5010",
        base,
        "address = ",
        "sink[0].address",
        fragment,
    );
}

#[test]
fn a_ca_file_path_is_relative_to_the_config() {
    let pki = pki();
    let sub = pki.dir.path().join("pki");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(&pki.ca, sub.join("ca.pem")).unwrap();
    let config = accept(&pki, "h:1", "tls = true\ntls_ca_file = \"pki/ca.pem\"\n");
    let tls = config.sinks[0].tls.clone().unwrap();
    assert_eq!(tls.ca_file, sub.join("ca.pem"));
    assert!(Path::new(&tls.ca_file).is_absolute());
}
