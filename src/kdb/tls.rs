//! TLS for kdb+ IPC, as kdb+ serves it when started with `-E`: TCP, then a
//! TLS handshake, then the ordinary kdb+ login and messages inside TLS.
//!
//! Owns: turning PEM files into rustls configurations (the client side for a
//! sink or `millrace replay`, the server side for the stand-in), the client
//! and server handshakes over a blocking `TcpStream`, and readable messages
//! for every way they fail, in words that say what to do. Must never: trust
//! a certificate that neither chains to the configured CA file nor is
//! itself in it (`tls_pin.rs`; there are no built-in or system roots: an
//! edge gateway's kdb+ is usually signed by a plant CA, and the roots are
//! not reachable offline), send a byte of the kdb+ login before the server's
//! certificate is verified, or quote the content of a PEM file in a message
//! (a private key is a secret).
//!
//! The crypto provider is rustls's `ring` one, passed explicitly: nothing
//! depends on a process-wide default provider being installed.

#![forbid(unsafe_code)]

use std::io;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, RootCertStore, ServerConfig,
    ServerConnection, StreamOwned,
};

use super::error::KdbError;
use super::tls_pin::{pin_problem, PinError, PinningVerifier};
use crate::config::SinkTls;

/// Rounds of `complete_io` a handshake may take. Each round blocks until
/// the peer's next flight (or the socket timeout); TLS 1.2 and 1.3 finish in
/// two or three, so this only bounds a peer that trickles bytes forever.
const HANDSHAKE_ROUNDS_MAX: u32 = 64;

/// How long the stand-in gives a client to finish the TLS handshake.
pub const SERVER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which of the TLS files a problem is in; `key()` names the sink key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsFile {
    CaFile,
    ClientCert,
    ClientKey,
    ServerCert,
    ServerKey,
    ClientCa,
}

impl TlsFile {
    /// The configuration key (or command-line flag) that names the file.
    pub const fn key(self) -> &'static str {
        match self {
            TlsFile::CaFile => "tls_ca_file",
            TlsFile::ClientCert => "tls_client_cert",
            TlsFile::ClientKey => "tls_client_key",
            TlsFile::ServerCert => "--tls-cert",
            TlsFile::ServerKey => "--tls-key",
            TlsFile::ClientCa => "--tls-client-ca",
        }
    }
}

/// A PEM file that cannot be used, and why (never its content).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFileError {
    pub file: TlsFile,
    pub problem: String,
}

impl std::fmt::Display for TlsFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file.key(), self.problem)
    }
}

fn file_error(file: TlsFile, problem: impl Into<String>) -> TlsFileError {
    TlsFileError {
        file,
        problem: problem.into(),
    }
}

/// The PEM contents a client configuration is built from.
#[derive(Clone, Copy, Debug)]
pub struct ClientPem<'a> {
    pub ca: &'a [u8],
    /// Certificate chain and private key, when the client authenticates.
    pub client: Option<(&'a [u8], &'a [u8])>,
}

/// What the publisher needs to open TLS: the configuration, the name the
/// server's certificate must carry, and the CA file (named in errors).
#[derive(Clone, Debug)]
pub struct TlsClient {
    pub config: Arc<ClientConfig>,
    pub server_name: ServerName<'static>,
    pub ca_file: PathBuf,
}

impl TlsClient {
    /// Reads a sink's TLS files now: called at every (re)connection, so a
    /// renewed certificate or CA file is picked up without a restart.
    pub fn from_sink(tls: &SinkTls) -> Result<TlsClient, KdbError> {
        let ca = read(&tls.ca_file, TlsFile::CaFile)?;
        let client = match &tls.client_cert {
            Some(c) => Some((
                read(&c.cert_file, TlsFile::ClientCert)?,
                read(&c.key_file, TlsFile::ClientKey)?,
            )),
            None => None,
        };
        let pem = ClientPem {
            ca: &ca,
            client: client.as_ref().map(|(c, k)| (c.as_slice(), k.as_slice())),
        };
        let config = client_config(&pem).map_err(|e| KdbError::Tls(e.to_string()))?;
        let server_name = server_name(&tls.server_name).map_err(KdbError::Tls)?;
        Ok(TlsClient {
            config: Arc::new(config),
            server_name,
            ca_file: tls.ca_file.clone(),
        })
    }
}

/// The most bytes read from a PEM file: a bundle of every public root CA is
/// about 220 KiB.
pub const PEM_FILE_BYTES_MAX: u64 = 4 << 20;

fn read(path: &Path, file: TlsFile) -> Result<Vec<u8>, KdbError> {
    crate::files::read_capped(path, PEM_FILE_BYTES_MAX).map_err(|e| {
        KdbError::Tls(format!(
            "{}: cannot read `{}`: {e}",
            file.key(),
            path.display()
        ))
    })
}

/// The files of the stand-in's TLS server (`millrace tickerplant --tls-*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that client certificates must chain to; `None`: no client auth.
    pub client_ca: Option<PathBuf>,
}

impl ServerTlsFiles {
    /// Reads the files and builds the server configuration; the message
    /// names the flag and the file.
    pub fn load(&self) -> Result<Arc<ServerConfig>, String> {
        let load = |path: &Path, file: TlsFile| {
            crate::files::read_capped(path, PEM_FILE_BYTES_MAX)
                .map_err(|e| format!("{}: cannot read `{}`: {e}", file.key(), path.display()))
        };
        let cert = load(&self.cert, TlsFile::ServerCert)?;
        let key = load(&self.key, TlsFile::ServerKey)?;
        let client_ca = match &self.client_ca {
            Some(path) => Some(load(path, TlsFile::ClientCa)?),
            None => None,
        };
        let config = server_config(&cert, &key, client_ca.as_deref()).map_err(|e| {
            let path = match e.file {
                TlsFile::ServerCert => &self.cert,
                TlsFile::ServerKey => &self.key,
                _ => self.client_ca.as_ref().unwrap_or(&self.cert),
            };
            format!("{} `{}`: {}", e.file.key(), path.display(), e.problem)
        })?;
        Ok(Arc::new(config))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A pem error in words that quote nothing from the file.
fn pem_problem(e: &pem::Error, what: &str) -> String {
    match e {
        pem::Error::NoItemsFound => format!("no {what} in it (not a PEM file?)"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        pem::Error::SectionTooLarge => "a PEM section is too large".into(),
        _ => format!("cannot read a {what} from it"),
    }
}

/// Every `CERTIFICATE` block of a PEM text; at least one.
pub fn parse_certificates(
    pem_text: &[u8],
    file: TlsFile,
) -> Result<Vec<CertificateDer<'static>>, TlsFileError> {
    let certs = CertificateDer::pem_slice_iter(pem_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(file, pem_problem(&e, "certificate")))?;
    if certs.is_empty() {
        return Err(file_error(
            file,
            "no certificate in it (no PEM `BEGIN CERTIFICATE` block)",
        ));
    }
    Ok(certs)
}

/// The first private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn parse_private_key(
    pem_text: &[u8],
    file: TlsFile,
) -> Result<PrivateKeyDer<'static>, TlsFileError> {
    PrivateKeyDer::from_pem_slice(pem_text).map_err(|e| {
        let problem = match e {
            pem::Error::NoItemsFound => {
                "no private key in it (no PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC \
                 PRIVATE KEY` block)"
                    .to_string()
            }
            other => pem_problem(&other, "private key"),
        };
        file_error(file, problem)
    })
}

/// The trust anchors of a CA file: every certificate in it must parse.
pub fn root_store(pem_text: &[u8], file: TlsFile) -> Result<RootCertStore, TlsFileError> {
    roots_of(parse_certificates(pem_text, file)?, file)
}

fn roots_of(
    certs: Vec<CertificateDer<'static>>,
    file: TlsFile,
) -> Result<RootCertStore, TlsFileError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in certs.into_iter().enumerate() {
        roots.add(cert).map_err(|e| {
            let problem = format!("certificate {} is not a usable CA: {e}", index + 1);
            file_error(file, problem)
        })?;
    }
    Ok(roots)
}

/// A client configuration: TLS 1.2 and 1.3, the server verified against the
/// CA file only (a chain to one of its CAs, or an exact pin of one of its
/// certificates), the client certificate presented if given (its key must
/// match it).
pub fn client_config(pem_text: &ClientPem<'_>) -> Result<ClientConfig, TlsFileError> {
    let pins = parse_certificates(pem_text.ca, TlsFile::CaFile)?;
    let roots = roots_of(pins.clone(), TlsFile::CaFile)?;
    let verifier = PinningVerifier::new(roots, pins, provider())
        .map_err(|e| file_error(TlsFile::CaFile, e))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error(TlsFile::CaFile, e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    match pem_text.client {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => {
            let chain = parse_certificates(cert, TlsFile::ClientCert)?;
            let key = parse_private_key(key, TlsFile::ClientKey)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                let problem = format!("does not fit the certificate in tls_client_cert: {e}");
                file_error(TlsFile::ClientKey, problem)
            })
        }
    }
}

/// A server configuration for the stand-in: its certificate chain and key,
/// and client certificates required and verified when `client_ca` is given.
pub fn server_config(
    cert: &[u8],
    key: &[u8],
    client_ca: Option<&[u8]>,
) -> Result<ServerConfig, TlsFileError> {
    let chain = parse_certificates(cert, TlsFile::ServerCert)?;
    let key = parse_private_key(key, TlsFile::ServerKey)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error(TlsFile::ServerCert, e.to_string()))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = Arc::new(root_store(ca, TlsFile::ClientCa)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                .build()
                .map_err(|e| file_error(TlsFile::ClientCa, e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        let problem = format!("does not fit the certificate in --tls-cert: {e}");
        file_error(TlsFile::ServerKey, problem)
    })
}

/// The name a server certificate is checked against: a DNS name or an IP
/// address.
pub fn server_name(text: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(text.to_string())
        .map_err(|_| format!("`{text}` is not a DNS name or IP address for TLS"))
}

/// The host part of `host:port` (brackets of an IPv6 address removed): the
/// default TLS server name.
pub fn host_of(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The client handshake over a connected socket. Returns only once the
/// server's certificate has been verified: no kdb+ byte (the login carries
/// the password) is written before that.
pub fn connect(
    tls: &TlsClient,
    mut tcp: TcpStream,
) -> Result<StreamOwned<ClientConnection, TcpStream>, KdbError> {
    let mut conn = ClientConnection::new(Arc::clone(&tls.config), tls.server_name.clone())
        .map_err(|e| KdbError::Tls(format!("cannot start TLS: {e}")))?;
    for _ in 0..HANDSHAKE_ROUNDS_MAX {
        if !conn.is_handshaking() {
            return Ok(StreamOwned::new(conn, tcp));
        }
        if let Err(e) = conn.complete_io(&mut tcp) {
            return Err(handshake_error(e, tls));
        }
    }
    Err(KdbError::Tls("TLS handshake did not finish".into()))
}

/// Why a client handshake (or the first read after it) failed, in words an
/// operator can act on.
pub fn handshake_error(e: io::Error, tls: &TlsClient) -> KdbError {
    let Some(rustls) = rustls_error(&e) else {
        return match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::ConnectionReset => KdbError::Tls(
                "TLS: the server closed the connection during the handshake: does it serve \
                 TLS (kdb+ -E 1 or -E 2)? does it want a client certificate (set \
                 tls_client_cert and tls_client_key)?"
                    .into(),
            ),
            _ => KdbError::Tls(format!("TLS handshake failed: {e}")),
        };
    };
    KdbError::Tls(format!("TLS: {}", describe(rustls, tls)))
}

/// The rustls error from an I/O error, if it carries one.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
}

/// A rustls error as a sentence: what is wrong and what to do.
fn describe(e: &rustls::Error, tls: &TlsClient) -> String {
    use rustls::AlertDescription as Alert;
    match e {
        rustls::Error::InvalidCertificate(c) => describe_certificate(c, tls),
        rustls::Error::AlertReceived(Alert::CertificateRequired | Alert::HandshakeFailure) => {
            "the server refused the handshake: it wants a client certificate (set \
             tls_client_cert and tls_client_key) or shares no cipher suite or version with us \
             (TLS 1.2 or 1.3)"
                .into()
        }
        rustls::Error::AlertReceived(
            Alert::BadCertificate | Alert::UnknownCA | Alert::UnsupportedCertificate,
        ) => "the server refused our client certificate (tls_client_cert): it does not chain \
              to a CA the server trusts for clients"
            .into(),
        rustls::Error::AlertReceived(alert) => {
            format!("the server refused the TLS connection (alert: {alert:?})")
        }
        rustls::Error::InvalidMessage(_) => {
            "the server's answer is not TLS: is it serving TLS (kdb+ -E 1 or -E 2)?".into()
        }
        other => format!("the TLS handshake failed: {other}"),
    }
}

fn describe_certificate(c: &CertificateError, tls: &TlsClient) -> String {
    let ca_file = tls.ca_file.display();
    let name = tls.server_name.to_str();
    match c {
        CertificateError::UnknownIssuer => format!(
            "the server's certificate was not issued by a CA in tls_ca_file `{ca_file}`: put \
             the CA certificate that signed it in that file (for a self-signed certificate, \
             the certificate itself)"
        ),
        CertificateError::BadSignature => format!(
            "the server's certificate names a CA in tls_ca_file `{ca_file}` as its issuer, but \
             that CA's signature on it does not verify: the file holds another CA of the same \
             name (an old or a test CA?); put the CA that really signed it there"
        ),
        CertificateError::NotValidForNameContext { presented, .. } => {
            let names = if presented.is_empty() {
                "no name (no subjectAltName; a name in the CN alone is not used)".to_string()
            } else {
                let names: Vec<String> = presented.iter().map(|n| san_words(n)).collect();
                names.join(", ")
            };
            format!(
                "the server's certificate is for {names}, not `{name}`: set tls_server_name to \
                 a name it carries, or issue the server a certificate with `{name}` in its \
                 subjectAltName"
            )
        }
        CertificateError::NotValidForName => format!(
            "the server's certificate does not name `{name}`: set tls_server_name to a name \
             in its subjectAltName"
        ),
        CertificateError::ExpiredContext { time, not_after } => format!(
            "the server's certificate expired at {} (the time here is {}): renew it on the \
             server (and in tls_ca_file `{ca_file}` if it is pinned there)",
            date(not_after),
            date(time)
        ),
        CertificateError::Expired => "the server's certificate has expired: renew it".into(),
        CertificateError::NotValidYetContext { time, not_before } => format!(
            "the server's certificate is not valid before {} (the time here is {}): check \
             this machine's clock and the server's",
            date(not_before),
            date(time)
        ),
        CertificateError::NotValidYet => {
            "the server's certificate is not valid yet: check this machine's clock".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "the server's certificate is not for a TLS server (its extendedKeyUsage lacks \
             serverAuth): issue one for server authentication"
                .into()
        }
        CertificateError::Other(_) => match pin_problem(c) {
            Some(PinError::CaNotPinned) => format!(
                "{}: a self-signed certificate made with `openssl req -x509` is a CA \
                 certificate; to trust it as the server's own, put that exact certificate in \
                 tls_ca_file `{ca_file}` (it is then pinned: only its name and dates are \
                 checked), or give the server a certificate issued by a CA (CA:FALSE)",
                PinError::CaNotPinned
            ),
            Some(other) => format!("{other} (tls_ca_file `{ca_file}`)"),
            None => format!("the server's certificate was refused: {c}"),
        },
        other => format!("the server's certificate was refused: {other}"),
    }
}

/// A subjectAltName as webpki lists it (`DnsName("kdb")`, `IpAddress(10.0.0.5)`),
/// written the way `openssl x509 -text` shows it (`DNS:kdb`, `IP:10.0.0.5`).
fn san_words(name: &str) -> String {
    if let Some(dns) = name
        .strip_prefix("DnsName(\"")
        .and_then(|n| n.strip_suffix("\")"))
    {
        return format!("DNS:{dns}");
    }
    if let Some(ip) = name
        .strip_prefix("IpAddress(")
        .and_then(|n| n.strip_suffix(')'))
    {
        return format!("IP:{ip}");
    }
    name.to_string()
}

fn date(t: &rustls::pki_types::UnixTime) -> String {
    crate::civil::format_secs(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
}

/// The stand-in's side of the handshake, on a socket whose reads time out
/// every few milliseconds: gives up at `timeout`, when `stop` is set, or on
/// any TLS error (wrong or missing client certificate, not TLS at all).
pub fn accept(
    config: &Arc<ServerConfig>,
    mut tcp: TcpStream,
    stop: &AtomicBool,
    timeout: Duration,
) -> Result<StreamOwned<ServerConnection, TcpStream>, io::Error> {
    let mut conn = ServerConnection::new(Arc::clone(config)).map_err(io::Error::other)?;
    let deadline = Instant::now() + timeout;
    while conn.is_handshaking() {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match conn.complete_io(&mut tcp) {
            Ok(_) => {}
            Err(e) if retryable(&e) => {}
            // complete_io has already sent the alert that tells the client why.
            Err(e) => return Err(e),
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

fn retryable(e: &io::Error) -> bool {
    use io::ErrorKind::*;
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_of_strips_port_and_brackets() {
        assert_eq!(host_of("kdb.plant:5010"), "kdb.plant");
        assert_eq!(host_of("127.0.0.1:5010"), "127.0.0.1");
        assert_eq!(host_of("[::1]:5010"), "::1");
        assert!(server_name(host_of("[::1]:5010")).is_ok());
        assert!(server_name("kdb.plant").is_ok());
        assert!(server_name("not a name").is_err());
    }

    #[test]
    fn subject_alt_names_in_openssl_words() {
        assert_eq!(san_words("DnsName(\"kdb.plant\")"), "DNS:kdb.plant");
        assert_eq!(san_words("IpAddress(10.0.0.5)"), "IP:10.0.0.5");
        assert_eq!(san_words("DirectoryName"), "DirectoryName");
    }

    #[test]
    fn pem_problems_name_no_content() {
        let junk = b"-----BEGIN CERTIFICATE-----\nsecret-material!!\n";
        let e = parse_certificates(junk, TlsFile::CaFile).unwrap_err();
        assert!(!e.problem.contains("secret"), "{e}");
        let e = parse_certificates(b"hello", TlsFile::CaFile).unwrap_err();
        assert!(e.problem.contains("no certificate"), "{e}");
        let e = parse_private_key(b"-----BEGIN PRIVATE KEY-----\nkey!!\n", TlsFile::ClientKey)
            .unwrap_err();
        assert!(!e.problem.contains("key!!"), "{e}");
        assert!(e.to_string().starts_with("tls_client_key: "), "{e}");
        let e = parse_private_key(b"", TlsFile::ClientKey).unwrap_err();
        assert!(e.problem.contains("no private key"), "{e}");
    }
}
