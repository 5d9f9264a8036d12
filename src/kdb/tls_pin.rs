//! How a sink decides to trust kdb+'s certificate: webpki's chain check
//! against the CA certificates of `tls_ca_file`, or, when that fails, an
//! exact pin: the certificate the server presented is byte for byte one of
//! the certificates in that file. A pinned certificate must still name the
//! server (`tls_server_name`) and be inside its validity period; anything
//! else about it (self-signed, basicConstraints CA:TRUE as `openssl req
//! -x509` makes by default, no issuer in the file, key usages) the operator
//! vouched for by putting that very certificate in the file.
//!
//! Must never: accept a certificate that is not in the file on a weaker
//! check than webpki's; parse a certificate from the peer before it matched
//! a pin (the DER walk below reads only bytes the operator's file holds).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, RootCertStore};

/// What a server certificate failed on that rustls has no words for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinError {
    /// A CA certificate (basicConstraints CA:TRUE) presented as the server's
    /// own, and not itself in tls_ca_file.
    CaNotPinned,
    /// A pinned certificate whose validity dates cannot be read.
    BadValidity,
}

impl std::fmt::Display for PinError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PinError::CaNotPinned => f.write_str(
                "the server presented a CA certificate (basicConstraints CA:TRUE) as its own, \
                 and tls_ca_file does not hold that exact certificate",
            ),
            PinError::BadValidity => {
                f.write_str("the pinned certificate's validity dates cannot be read")
            }
        }
    }
}

impl std::error::Error for PinError {}

fn pin_error(e: PinError) -> Error {
    Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// The `PinError` inside a certificate error, if it carries one.
pub fn pin_problem(e: &CertificateError) -> Option<PinError> {
    match e {
        CertificateError::Other(other) => other.0.downcast_ref::<PinError>().copied(),
        _ => None,
    }
}

/// webpki's chain check, then the pins.
#[derive(Debug)]
pub struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// Every certificate of tls_ca_file, as DER.
    pins: Vec<CertificateDer<'static>>,
}

impl PinningVerifier {
    pub fn new(
        roots: RootCertStore,
        pins: Vec<CertificateDer<'static>>,
        provider: Arc<CryptoProvider>,
    ) -> Result<PinningVerifier, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(PinningVerifier { webpki, pins })
    }

    fn pinned(&self, end_entity: &CertificateDer<'_>) -> bool {
        self.pins.iter().any(|p| p.as_ref() == end_entity.as_ref())
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let chained = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        match chained {
            Ok(verified) => Ok(verified),
            Err(_) if self.pinned(end_entity) => verify_pinned(end_entity, server_name, now),
            Err(e) if is_ca_used_as_end_entity(&e) => Err(pin_error(PinError::CaNotPinned)),
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn is_ca_used_as_end_entity(e: &Error) -> bool {
    let Error::InvalidCertificate(CertificateError::Other(other)) = e else {
        return false;
    };
    matches!(
        other.0.downcast_ref::<webpki::Error>(),
        Some(webpki::Error::CaUsedAsEndEntity)
    )
}

/// A pinned certificate: the name as webpki checks it, then the dates.
fn verify_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    verify_server_name(&parsed, server_name)?;
    let Some((not_before, not_after)) = validity(cert.as_ref()) else {
        return Err(pin_error(PinError::BadValidity));
    };
    let time = now;
    if now.as_secs() < not_before {
        let not_before = UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_before));
        return Err(CertificateError::NotValidYetContext { time, not_before }.into());
    }
    if now.as_secs() > not_after {
        let not_after = UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_after));
        return Err(CertificateError::ExpiredContext { time, not_after }.into());
    }
    Ok(ServerCertVerified::assertion())
}

// ------------------------------------------------------------------ DER

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0; // [0] EXPLICIT, constructed
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// A checked walk over DER: `tlv` splits one tag-length-value off the front.
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    /// The value of the next element, which must have tag `tag`.
    fn tlv(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (&found, rest) = self.rest.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        if found != tag {
            return None;
        }
        let len = match first {
            0..=0x7f => usize::from(first),
            // Long form, at most four length bytes (no certificate is 4 GiB).
            0x81..=0x84 => {
                let count = usize::from(first & 0x7f);
                let (bytes, after) = rest.split_at_checked(count)?;
                rest = after;
                bytes.iter().fold(0usize, |n, &b| (n << 8) | usize::from(b))
            }
            _ => return None,
        };
        let (value, after) = rest.split_at_checked(len)?;
        self.rest = after;
        Some(value)
    }

    /// The next element if its tag is `tag`, else nothing is consumed.
    fn optional(&mut self, tag: u8) -> Option<&'a [u8]> {
        if self.rest.first() == Some(&tag) {
            self.tlv(tag)
        } else {
            None
        }
    }

    fn time(&mut self) -> Option<u64> {
        if let Some(t) = self.optional(UTC_TIME) {
            return parse_time(t, false);
        }
        parse_time(self.tlv(GENERALIZED_TIME)?, true)
    }
}

/// `(not_before, not_after)` of an X.509 certificate, in seconds since the
/// Unix epoch.
pub fn validity(cert: &[u8]) -> Option<(u64, u64)> {
    let certificate = Der { rest: cert }.tlv(SEQUENCE)?;
    let mut tbs = Der {
        rest: Der { rest: certificate }.tlv(SEQUENCE)?,
    };
    tbs.optional(VERSION);
    tbs.tlv(INTEGER)?; // serialNumber
    tbs.tlv(SEQUENCE)?; // signature algorithm
    tbs.tlv(SEQUENCE)?; // issuer
    let mut validity = Der {
        rest: tbs.tlv(SEQUENCE)?,
    };
    let not_before = validity.time()?;
    let not_after = validity.time()?;
    Some((not_before, not_after))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950..=2049, RFC 5280) or GeneralizedTime
/// `YYYYMMDDHHMMSSZ`.
fn parse_time(text: &[u8], generalized: bool) -> Option<u64> {
    let (zone, digits) = text.split_last()?;
    if *zone != b'Z' || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number = |s: &[u8]| s.iter().fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
    let (year, rest) = if generalized {
        let (y, rest) = digits.split_at_checked(4)?;
        (i64::from(number(y)), rest)
    } else {
        let (y, rest) = digits.split_at_checked(2)?;
        let yy = i64::from(number(y));
        (if yy >= 50 { 1900 + yy } else { 2000 + yy }, rest)
    };
    let [m0, m1, d0, d1, h0, h1, n0, n1, s0, s1] = *rest else {
        return None;
    };
    let (month, day) = (number(&[m0, m1]), number(&[d0, d1]));
    let (hour, minute, second) = (number(&[h0, h1]), number(&[n0, n1]), number(&[s0, s1]));
    let valid = (1..=12).contains(&month) && (1..=31).contains(&day);
    if !valid || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = crate::civil::days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_both_forms() {
        assert_eq!(parse_time(b"700101000000Z", false), Some(0));
        assert_eq!(parse_time(b"491231235959Z", false), Some(2_524_607_999));
        assert_eq!(parse_time(b"500101000000Z", false), None); // before 1970
        assert_eq!(parse_time(b"20500101000000Z", true), Some(2_524_608_000));
        assert_eq!(parse_time(b"20250229000000", true), None);
        assert_eq!(parse_time(b"251301000000Z", false), None);
        assert_eq!(parse_time(b"2512010000Z", false), None);
        assert_eq!(parse_time(b"25120100000aZ", false), None);
    }

    #[test]
    fn truncated_der_is_none_at_every_cut() {
        // A minimal TBSCertificate shape: version, serial, algorithm,
        // issuer, validity.
        let dates = [
            &[SEQUENCE, 30, UTC_TIME, 13][..],
            b"250101000000Z",
            &[UTC_TIME, 13],
            b"260101000000Z",
        ]
        .concat();
        let tbs = [
            &[VERSION, 3, INTEGER, 1, 2][..],
            &[INTEGER, 1, 7],
            &[SEQUENCE, 0],
            &[SEQUENCE, 0],
            &dates,
        ]
        .concat();
        let mut cert = vec![SEQUENCE, tbs.len() as u8 + 2, SEQUENCE, tbs.len() as u8];
        cert.extend_from_slice(&tbs);
        assert_eq!(validity(&cert), Some((1_735_689_600, 1_767_225_600)));
        for cut in 0..cert.len() {
            assert_eq!(validity(cert.get(..cut).unwrap()), None, "cut {cut}");
        }
    }
}
