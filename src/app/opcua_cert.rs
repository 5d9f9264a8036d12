//! `millrace opcua make-cert`: a self-signed application instance
//! certificate for OPC UA secure channels, made by the stack's own X.509
//! builder (RSA 2048, SHA-256, the application URI as the first
//! subjectAltName, then the host names; key usages digitalSignature,
//! nonRepudiation, keyEncipherment, dataEncipherment, keyCertSign; extended
//! key usages clientAuth and serverAuth), laid out as the stack's PKI
//! directory: `own/cert.der`, `own/key.pem`, `trusted/`, `rejected/`.
//! Must never: overwrite an existing certificate or key.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use opcua::crypto::{CertificateStore, X509Data};

/// What `make-cert` wrote.
pub struct MadeCert {
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    pub trusted: PathBuf,
    pub rejected: PathBuf,
}

/// RSA key bits: what every policy millrace offers takes (2048..=4096).
pub const KEY_BITS: u32 = 2048;
/// Days the certificate is valid.
pub const VALID_DAYS: u32 = 365 * 2;

/// Makes the certificate and key for `uri` under `out`, with `hosts` (and
/// localhost) as its host names.
pub fn make_cert(uri: &str, out: &Path, hosts: &[String]) -> Result<MadeCert, String> {
    if !uri.contains(':') || uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{uri}` is not a URI: give the application URI, e.g. urn:millrace:edge1"
        ));
    }
    let made = MadeCert {
        certificate: out.join("own/cert.der"),
        private_key: out.join("own/key.pem"),
        trusted: out.join("trusted"),
        rejected: out.join("rejected"),
    };
    for file in [&made.certificate, &made.private_key] {
        if file.exists() {
            return Err(format!(
                "`{}` exists: nothing was written (move it away to make a new one)",
                file.display()
            ));
        }
    }
    let mut names = hosts.to_vec();
    if !names.iter().any(|h| h == "localhost") {
        names.push("localhost".into());
    }
    let data = X509Data {
        key_size: KEY_BITS,
        common_name: "millrace".into(),
        organization: "millrace".into(),
        organizational_unit: "millrace".into(),
        country: String::new(),
        state: String::new(),
        alt_host_names: X509Data::alt_host_names(uri, Some(names), false, false, false),
        certificate_duration_days: VALID_DAYS,
    };
    CertificateStore::create_certificate_and_key(
        &data,
        false,
        &made.certificate,
        &made.private_key,
    )?;
    // The key is readable by its owner alone.
    std::fs::set_permissions(&made.private_key, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict `{}`: {e}", made.private_key.display()))?;
    for dir in [&made.trusted, &made.rejected] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    }
    Ok(made)
}
