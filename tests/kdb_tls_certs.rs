//! Server certificates as people make them, through a real TLS server on
//! 127.0.0.1 (our stand-in serving TLS, and the OpenSSL peer of
//! tests/kdb_support/tls_peer.py): the self-signed certificate of `openssl
//! req -x509` (basicConstraints CA:TRUE), accepted when tls_ca_file pins
//! it and explained when it does not; a CA and a leaf made with `openssl
//! x509 -req`; and, for the dates `openssl req` cannot set, certificates
//! made with rcgen. Every refusal must say in words what is wrong and what
//! to do.

mod common;
mod kdb_support;
mod tls_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use kdb_support::{finish, samples, spawn_python, symbol_table, Lines};
use millrace::config::{Secret, SinkTls};
use millrace::kdb::{
    KdbError, Publisher, PublisherOptions, ServerTlsFiles, Tickerplant, TickerplantOptions,
    TlsClient,
};

const PEER: &str = include_str!("kdb_support/tls_peer.py");

/// The names every server certificate here carries.
const SAN: &str = "subjectAltName=DNS:localhost,IP:127.0.0.1";

/// Runs the `openssl` command line in `dir`; fails loudly if it is missing.
fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command line (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `openssl req -x509` as the guides write it: a key and a self-signed
/// certificate for localhost, which OpenSSL marks CA:TRUE.
fn openssl_self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            SAN,
            "-keyout",
            &key,
            "-out",
            &cert,
        ],
    );
    let text = openssl(dir, &["x509", "-in", &cert, "-noout", "-text"]);
    assert!(text.contains("CA:TRUE"), "not the CA:TRUE shape:\n{text}");
    (dir.join(cert), dir.join(key))
}

/// A CA (`openssl req -x509`) and a leaf for localhost it signs (`openssl
/// x509 -req`, CA:FALSE, serverAuth). Returns (CA, leaf, leaf key).
fn openssl_ca_and_leaf(dir: &Path, ca: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (ca_cert, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    let subject = format!("/CN={ca}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", &subject,
            "-keyout", &ca_key, "-out", &ca_cert,
        ],
    );
    let leaf = format!("{ca}-leaf");
    let (csr, cert, key) = (
        format!("{leaf}.csr"),
        format!("{leaf}.pem"),
        format!("{leaf}.key"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    let ext = format!("{leaf}.ext");
    std::fs::write(
        dir.join(&ext),
        format!("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n{SAN}\n"),
    )
    .expect("extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    (dir.join(ca_cert), dir.join(cert), dir.join(key))
}

/// The stand-in serving TLS with `cert` and `key`.
fn standin(cert: &Path, key: &Path) -> Tickerplant {
    let files = ServerTlsFiles {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
        client_ca: None,
    };
    let options = TickerplantOptions {
        tls: Some(files.load().expect("the stand-in's TLS files")),
        ..TickerplantOptions::default()
    };
    Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in")
}

fn options(ca_file: &Path, name: &str) -> PublisherOptions {
    let sink = SinkTls {
        ca_file: ca_file.to_path_buf(),
        client_cert: None,
        server_name: name.to_string(),
    };
    PublisherOptions {
        tls: Some(TlsClient::from_sink(&sink).expect("TLS client")),
        ..PublisherOptions::default()
    }
}

fn connect(addr: &str, ca_file: &Path, name: &str) -> Result<Publisher, KdbError> {
    let secret = Secret::new("secret".into());
    Publisher::connect(addr, "feed", &secret, options(ca_file, name))
}

/// Connects, publishes 20 rows and has them acknowledged.
fn delivers(addr: &str, ca_file: &Path, name: &str) {
    let mut p = connect(addr, ca_file, name).expect("TLS connection");
    assert!(p.is_tls());
    p.publish(
        "plc",
        &samples(20, 1_764_000_000_000_000_000),
        0,
        &symbol_table(),
    )
    .expect("publish");
    p.chase().expect("acknowledged");
}

#[track_caller]
fn refusal(result: Result<Publisher, KdbError>) -> String {
    match result {
        Err(KdbError::Tls(text)) => {
            // Words, not rustls's Debug output.
            for debug in [
                "OtherError",
                "Context {",
                "UnknownIssuer",
                "CaUsedAsEndEntity",
            ] {
                assert!(!text.contains(debug), "{debug} in: {text}");
            }
            text
        }
        other => panic!("expected a TLS refusal, got {other:?}"),
    }
}

#[test]
fn openssl_self_signed_certificate_is_accepted_when_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = openssl_self_signed(dir.path(), "host");
    let tp = standin(&cert, &key);
    let addr = tp.local_addr().to_string();
    delivers(&addr, &cert, "localhost");
    delivers(&addr, &cert, "127.0.0.1");
    // A CA file of several certificates pins each of them.
    let (other, _) = openssl_self_signed(dir.path(), "other");
    let bundle = dir.path().join("bundle.pem");
    let text = [
        std::fs::read(&other).unwrap(),
        std::fs::read(&cert).unwrap(),
    ]
    .concat();
    std::fs::write(&bundle, text).unwrap();
    delivers(&addr, &bundle, "localhost");
    assert_eq!(tp.stop(), [("plc".to_string(), 60)]);
}

#[test]
fn openssl_self_signed_certificate_served_by_openssl_is_accepted_when_pinned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = openssl_self_signed(dir.path(), "host");
    let args = ["server", s(&cert), s(&key), "-", "1"];
    let mut child = spawn_python(PEER, &args);
    let lines = Lines::new(child.stdout.take().expect("stdout"));
    let port = lines.next().expect("peer port");
    delivers(&format!("127.0.0.1:{port}"), &cert, "localhost");
    let events = lines.rest();
    finish(child);
    assert!(
        events.iter().any(|e| e.contains("\"session\"")),
        "{events:?}"
    );
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

#[test]
fn a_pinned_certificate_must_still_name_the_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = openssl_self_signed(dir.path(), "host");
    let tp = standin(&cert, &key);
    let text = refusal(connect(
        &tp.local_addr().to_string(),
        &cert,
        "kdb.example.net",
    ));
    assert!(text.contains("DNS:localhost, IP:127.0.0.1"), "{text}");
    assert!(text.contains("not `kdb.example.net`"), "{text}");
    assert!(text.contains("set tls_server_name"), "{text}");
}

#[test]
fn openssl_self_signed_certificate_not_pinned_is_explained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = openssl_self_signed(dir.path(), "host");
    let (other, _) = openssl_self_signed(dir.path(), "other");
    let tp = standin(&cert, &key);
    let text = refusal(connect(&tp.local_addr().to_string(), &other, "localhost"));
    assert!(
        text.contains("CA certificate (basicConstraints CA:TRUE)"),
        "{text}"
    );
    assert!(
        text.contains("put that exact certificate in tls_ca_file"),
        "{text}"
    );
    assert!(text.contains(s(&other)), "names the CA file: {text}");
}

#[test]
fn openssl_ca_and_leaf_chain_to_the_ca_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ca, leaf, key) = openssl_ca_and_leaf(dir.path(), "plant-ca");
    let tp = standin(&leaf, &key);
    let addr = tp.local_addr().to_string();
    delivers(&addr, &ca, "localhost");
    delivers(&addr, &ca, "127.0.0.1");
    // The leaf itself in the file, without its CA: a pin too.
    delivers(&addr, &leaf, "localhost");

    let (stranger, _, _) = openssl_ca_and_leaf(dir.path(), "other-ca");
    let text = refusal(connect(&addr, &stranger, "localhost"));
    assert!(text.contains("not issued by a CA in tls_ca_file"), "{text}");
    assert!(text.contains(s(&stranger)), "names the CA file: {text}");
    assert!(
        text.contains("put the CA certificate that signed it"),
        "{text}"
    );

    let text = refusal(connect(&addr, &ca, "kdb.example.net"));
    assert!(text.contains("DNS:localhost, IP:127.0.0.1"), "{text}");
    assert_eq!(tp.stop(), [("plc".to_string(), 60)]);
}

// ---------------------------------------------------------------- dates

/// A self-signed certificate for localhost valid from `from` to `to`
/// (year, month, day), CA:TRUE like `openssl req -x509` makes it, or a leaf
/// of `ca` when given. Returns (certificate, key) paths.
fn rcgen_cert(
    dir: &Path,
    name: &str,
    from: (i32, u8, u8),
    to: (i32, u8, u8),
    ca: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
) -> (PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let mut params = CertificateParams::new(names).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
    params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
    let key = KeyPair::generate().expect("key");
    let cert = match ca {
        None => {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.self_signed(&key).expect("self-signed")
        }
        Some(issuer) => params.signed_by(&key, issuer).expect("signed"),
    };
    let (cert_path, key_path) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

#[test]
fn pinned_certificates_out_of_their_dates_are_refused_with_the_dates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (old, old_key) = rcgen_cert(dir.path(), "old", (2019, 1, 1), (2020, 1, 1), None);
    let tp = standin(&old, &old_key);
    let text = refusal(connect(&tp.local_addr().to_string(), &old, "localhost"));
    assert!(
        text.contains("expired at 2020-01-01 00:00:00 UTC"),
        "{text}"
    );
    assert!(text.contains("renew it"), "{text}");
    drop(tp);

    // After 2049 a certificate's dates are GeneralizedTime, not UTCTime.
    let (future, future_key) = rcgen_cert(dir.path(), "future", (2060, 1, 1), (2061, 1, 1), None);
    let tp = standin(&future, &future_key);
    let text = refusal(connect(&tp.local_addr().to_string(), &future, "localhost"));
    assert!(
        text.contains("not valid before 2060-01-01 00:00:00 UTC"),
        "{text}"
    );
    assert!(text.contains("clock"), "{text}");
}

#[test]
fn an_expired_leaf_of_the_ca_is_refused_with_its_date() {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "dated CA");
    let ca_key = KeyPair::generate().expect("ca key");
    let ca_cert = params.self_signed(&ca_key).expect("ca");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_cert.pem()).unwrap();
    let issuer = Issuer::new(params, ca_key);
    let (leaf, key) = rcgen_cert(
        dir.path(),
        "leaf",
        (2019, 1, 1),
        (2020, 6, 1),
        Some(&issuer),
    );
    let tp = standin(&leaf, &key);
    let text = refusal(connect(&tp.local_addr().to_string(), &ca, "localhost"));
    assert!(
        text.contains("expired at 2020-06-01 00:00:00 UTC"),
        "{text}"
    );
}
