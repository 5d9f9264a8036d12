//! Test certificates made at test time with rcgen: a CA, a server
//! certificate for 127.0.0.1 and localhost, a client certificate, and a
//! second, unrelated CA, written as PEM files into a temporary directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The client certificate's common name (the peer reports it back).
pub const CLIENT_CN: &str = "millrace-feed";

pub struct Pki {
    pub dir: tempfile::TempDir,
    /// The CA that signed the server and client certificates.
    pub ca: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A client certificate and key signed by `other_ca`.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn leaf(
    names: &[&str],
    cn: &str,
    usage: ExtendedKeyUsagePurpose,
    issuer: &Issuer<'_, KeyPair>,
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names).expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, cn);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write pem");
    path
}

/// Makes every file; each call a fresh CA.
pub fn pki() -> Pki {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let ca_key = KeyPair::generate().expect("ca key");
    let params = ca_params("millrace test CA");
    let ca_cert = params.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(params, ca_key);
    let other_key = KeyPair::generate().expect("other ca key");
    let other_params = ca_params("some other CA");
    let other_cert = other_params.self_signed(&other_key).expect("other ca");
    let other_issuer = Issuer::new(other_params, other_key);

    let server_usage = ExtendedKeyUsagePurpose::ServerAuth;
    let (server_cert, server_key) = leaf(&["127.0.0.1", "localhost"], "kdb", server_usage, &issuer);
    let client_usage = ExtendedKeyUsagePurpose::ClientAuth;
    let (client_cert, client_key) = leaf(&[], CLIENT_CN, client_usage.clone(), &issuer);
    let (stranger_cert, stranger_key) = leaf(&[], "stranger", client_usage, &other_issuer);
    Pki {
        ca: write(d, "ca.pem", &ca_cert.pem()),
        other_ca: write(d, "other-ca.pem", &other_cert.pem()),
        server_cert: write(d, "server.pem", &server_cert),
        server_key: write(d, "server.key", &server_key),
        client_cert: write(d, "client.pem", &client_cert),
        client_key: write(d, "client.key", &client_key),
        stranger_cert: write(d, "stranger.pem", &stranger_cert),
        stranger_key: write(d, "stranger.key", &stranger_key),
        dir,
    }
}
