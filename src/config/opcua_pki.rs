//! The files of an OPC UA secure channel and of an X.509 user identity:
//! `certificate`, `private_key`, `trusted_certs`, `user_certificate`,
//! `user_private_key` (paths relative to the configuration file). Each is
//! read and checked at load, through the OPC UA stack's own parsers, so a
//! missing, unreadable or mismatched file is an error at the key that names
//! it, never a refused connection at run time.
//!
//! Checked: the certificate parses (DER or PEM, by extension, as the stack
//! reads it), its RSA key length is one the policy takes, its first
//! subjectAltName is the application URI millrace presents, and the key
//! signs what the certificate's public key verifies (the two belong
//! together). The trust list is a directory named `trusted`: the stack keeps
//! its trust list and its `rejected` directory side by side in one PKI
//! directory, the trust list's parent. Must never: read a key's bytes into
//! an error message.

use std::path::{Path, PathBuf};

use opcua::crypto::{KeySize, PrivateKey, X509};

use super::error::ConfigError;
use super::opcua_types::{Identity, OpcuaPki, SecurityPolicy};
use super::parse::resolve;
use super::source::Sources;
use super::tree::{Section, Spanned};

/// The secure channel's keys.
pub const CHANNEL_KEYS: [&str; 3] = ["certificate", "private_key", "trusted_certs"];
const CERTIFICATE_EXPECTED: &str = "an X.509 application instance certificate, `.der` (DER) or \
     `.pem`, e.g. one `millrace opcua make-cert` wrote";
const KEY_EXPECTED: &str = "the PEM RSA private key (PKCS#8 or PKCS#1) of the certificate";
const TRUSTED_EXPECTED: &str = "a directory named `trusted` holding the servers' certificates, \
     e.g. \"pki/trusted\" (`millrace opcua make-cert` creates it)";

/// The secure channel's files: all three with a security policy, none
/// without.
pub(super) fn channel(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
    policy: SecurityPolicy,
    application_uri: &str,
) -> Result<Option<OpcuaPki>, ConfigError> {
    if policy == SecurityPolicy::None {
        if let Some(key) = CHANNEL_KEYS.iter().find(|k| section.has(k)) {
            return Err(ConfigError::new(
                section.location(key),
                format!(
                    "`{key}` is for a secure channel, and `security_policy` is None (the default)"
                ),
            )
            .expected(
                "`security_policy = \"Basic256Sha256\"` with `security_mode = \
                 \"SignAndEncrypt\"`, or none of `certificate`, `private_key`, `trusted_certs`",
            ));
        }
        return Ok(None);
    }
    let need = |key: &str, expected: &str| match section.string(key, "a file path")? {
        Some(text) => Ok(text),
        None => Err(section
            .missing(key, expected)
            .with_problem(format!("security policy {} needs `{key}`", policy.name()))),
    };
    let certificate = need("certificate", CERTIFICATE_EXPECTED)?;
    let private_key = need("private_key", KEY_EXPECTED)?;
    let trusted = need("trusted_certs", TRUSTED_EXPECTED)?;
    let (cert_path, cert) = certificate_file(&certificate, base, sources)?;
    check_key_length(&certificate, &cert_path, &cert, policy)?;
    let key_path = key_file(&private_key, base, sources, &cert_path, &cert)?;
    if let Err(e) = cert.is_application_uri_valid(application_uri) {
        let at = if section.has("application_uri") {
            section.location("application_uri")
        } else {
            certificate.at.clone()
        };
        return Err(ConfigError::new(
            at,
            format!(
                "the certificate `{}` was not made for the application URI `{application_uri}` \
                 ({})",
                cert_path.display(),
                e.status()
            ),
        )
        .expected(
            "`application_uri` set to the URI the certificate was made with (its first \
             subjectAltName), or a certificate made with `millrace opcua make-cert --uri`",
        ));
    }
    let trusted_certs = trust_dir(&trusted, base, sources)?;
    Ok(Some(OpcuaPki {
        certificate: cert_path,
        private_key: key_path,
        trusted_certs,
    }))
}

/// `user_certificate` with `user_private_key`: an X.509 user identity.
pub(super) fn user_certificate(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Option<Identity>, ConfigError> {
    let cert = section.string("user_certificate", "a file path")?;
    let key = section.string("user_private_key", "a file path")?;
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(section
                .missing("user_private_key", KEY_EXPECTED)
                .with_problem("`user_certificate` is set without `user_private_key`"))
        }
        (None, Some(_)) => {
            return Err(section
                .missing("user_certificate", CERTIFICATE_EXPECTED)
                .with_problem("`user_private_key` is set without `user_certificate`"))
        }
    };
    if let Some(key) = ["user", "password_env", "password_file"]
        .into_iter()
        .find(|k| section.has(k))
    {
        return Err(ConfigError::new(
            section.location(key),
            "both a user name and a user certificate: a session has one identity",
        )
        .expected("either `user` (with a password) or `user_certificate` and `user_private_key`"));
    }
    let (cert_path, x509) = certificate_file(&cert, base, sources)?;
    let key_path = key_file(&key, base, sources, &cert_path, &x509)?;
    Ok(Some(Identity::X509 {
        certificate: cert_path,
        private_key: key_path,
    }))
}

/// Reads and parses a certificate the way the stack will: by extension.
fn certificate_file(
    file: &Spanned<&str>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<(PathBuf, X509), ConfigError> {
    let path = resolve(base, file.value);
    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if extension != "der" && extension != "pem" {
        return Err(file
            .error(format!(
                "`{}` does not end in `.der` or `.pem`, the two forms the OPC UA stack reads",
                path.display()
            ))
            .expected(CERTIFICATE_EXPECTED));
    }
    let bytes = sources.read_bytes(&path).map_err(|e| {
        file.error(format!("cannot read `{}`: {e}", path.display()))
            .expected(CERTIFICATE_EXPECTED)
    })?;
    let parsed = if extension == "der" {
        X509::from_der(&bytes)
    } else {
        X509::from_pem(&bytes)
    };
    match parsed {
        Ok(cert) => Ok((path, cert)),
        Err(_) => Err(file
            .error(format!(
                "`{}` is not an X.509 certificate in {} form",
                path.display(),
                extension.to_ascii_uppercase()
            ))
            .expected(CERTIFICATE_EXPECTED)),
    }
}

/// The certificate's RSA key is a length the policy takes.
fn check_key_length(
    file: &Spanned<&str>,
    path: &Path,
    cert: &X509,
    policy: SecurityPolicy,
) -> Result<(), ConfigError> {
    let stack_policy = opcua::crypto::SecurityPolicy::from_uri(&policy.uri());
    match cert.key_length() {
        Ok(bits) if stack_policy.is_valid_keylength(bits) => Ok(()),
        Ok(bits) => Err(file
            .error(format!(
                "`{}` has a {bits}-bit key, a length security policy {} does not take",
                path.display(),
                policy.name()
            ))
            .expected(
                "a certificate with a 2048-bit RSA key (`millrace opcua make-cert` makes one)",
            )),
        Err(_) => Err(file
            .error(format!("`{}` holds no RSA public key", path.display()))
            .expected(CERTIFICATE_EXPECTED)),
    }
}

/// Reads the PEM key and proves it is the certificate's: what it signs,
/// the certificate's public key verifies.
fn key_file(
    file: &Spanned<&str>,
    base: &Path,
    sources: &dyn Sources,
    cert_path: &Path,
    cert: &X509,
) -> Result<PathBuf, ConfigError> {
    let path = resolve(base, file.value);
    let bytes = sources.read_bytes(&path).map_err(|e| {
        file.error(format!("cannot read `{}`: {e}", path.display()))
            .expected(KEY_EXPECTED)
    })?;
    let Ok(key) = PrivateKey::from_pem(&bytes) else {
        return Err(file
            .error(format!("`{}` is not a PEM RSA private key", path.display()))
            .expected(KEY_EXPECTED));
    };
    const PROBE: &[u8] = b"millrace: does this key belong to this certificate?";
    let mut signature = vec![0u8; key.size()];
    let belongs = key.sign_sha256(PROBE, &mut signature).is_ok()
        && cert
            .public_key()
            .is_ok_and(|public| public.verify_sha256(PROBE, &signature).unwrap_or(false));
    if !belongs {
        return Err(file
            .error(format!(
                "`{}` is not the private key of the certificate `{}`",
                path.display(),
                cert_path.display()
            ))
            .expected(KEY_EXPECTED));
    }
    Ok(path)
}

/// The trust list: an existing directory named `trusted`.
fn trust_dir(
    file: &Spanned<&str>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<PathBuf, ConfigError> {
    let path = resolve(base, file.value);
    if path.file_name().and_then(|n| n.to_str()) != Some(OpcuaPki::TRUSTED_DIR) {
        return Err(file
            .error(format!(
                "`{}` is not named `{}`: the OPC UA stack keeps its trust list in a directory \
                 of that name, with `{}` beside it",
                path.display(),
                OpcuaPki::TRUSTED_DIR,
                OpcuaPki::REJECTED_DIR
            ))
            .expected(TRUSTED_EXPECTED));
    }
    if !sources.is_dir(&path) {
        return Err(file
            .error(format!("`{}` is not a directory", path.display()))
            .expected(TRUSTED_EXPECTED));
    }
    Ok(path)
}
