//! From a device's configuration to a session of the stack: the client's
//! settings, its certificate store, the server's endpoints, the trust
//! decision on the server's certificate, and the session with its event
//! loop (which then connects and reconnects by itself).
//!
//! The certificate store is the stack's (`CertificateStore`): it reads our
//! certificate and key from the configured files, looks a server's
//! certificate up in the trust list by the file name it gives every
//! certificate (`CN [thumbprint].der`), writes one it does not know into
//! `rejected` beside the trust list, and checks a trusted one's key length,
//! validity period, host name and application URI. millrace looks the
//! server's certificate up first, from GetEndpoints, so that a refusal is one
//! log line that names the file to move and where, not a status code.
//!
//! Must never: create a PKI directory the configuration does not name (with
//! security None there is none); trust a certificate the operator did not
//! put in the trust list; put the password in a message.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use opcua::client::transport::{ConnectorBuilder, TcpConnector, TransportPollResult};
use opcua::client::{
    Client, ClientBuilder, ClientConfig, IdentityToken, Session, SessionBuilder, SessionEventLoop,
};
use opcua::core::ResponseMessage;
use opcua::crypto::{CertificateStore, X509Data, X509};
use opcua::sync::RwLock;
use opcua::types::{
    DateTime, EndpointDescription, GetEndpointsRequest, MessageSecurityMode, NodeId, RequestHeader,
    StatusCode,
};

use super::reader::{ARRAY_ELEMENTS_MAX, RETRY_MAX, RETRY_MIN};
use crate::config::{DeviceConfig, Identity, OpcuaDevice, OpcuaPki, SecurityMode};

pub(super) type EventLoop = SessionEventLoop<TcpConnector>;
pub(super) type Store = Arc<RwLock<CertificateStore>>;

/// How long closing the GetEndpoints connection may take.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Why no session was made this time.
pub(super) enum Refusal {
    /// The server did not answer or refused (in words).
    Failed(String),
    /// The server's certificate is not in the trust list. `rejected` is
    /// where the stack wrote it, `trusted` where it must go.
    Untrusted { rejected: PathBuf, trusted: PathBuf },
}

impl Refusal {
    /// The one log line for the operator.
    pub(super) fn explain(&self) -> String {
        match self {
            Refusal::Failed(why) => why.clone(),
            Refusal::Untrusted { rejected, trusted } => format!(
                "the server's certificate is not trusted: it was written to `{}`; to trust \
                 it, move that file into `{}` (a copy left in `{}` is still refused)",
                rejected.display(),
                trusted.display(),
                rejected
                    .parent()
                    .map_or_else(|| ".".into(), |p| p.display().to_string())
            ),
        }
    }
}

/// The stack's certificate store for the device. With a secure channel it
/// reads the configured certificate and key and keeps its trust list where
/// the configuration says (creating `rejected` beside it); with security
/// None it touches no file at all.
pub(super) fn certificate_store(opcua: &OpcuaDevice) -> Result<Store, String> {
    let Some(pki) = &opcua.pki else {
        return Ok(no_files());
    };
    let (mut store, cert, key) = CertificateStore::new_with_x509_data::<X509Data>(
        pki.pki_dir(),
        false,
        Some(&pki.certificate),
        Some(&pki.private_key),
        None,
    );
    if cert.is_none() || key.is_none() {
        return Err(format!(
            "cannot read the certificate `{}` or its key `{}`, or cannot create `{}`",
            pki.certificate.display(),
            pki.private_key.display(),
            pki.rejected_dir().display()
        ));
    }
    store.set_trust_unknown_certs(false);
    store.set_skip_verify_certs(false);
    store.set_check_time(true);
    Ok(Arc::new(RwLock::new(store)))
}

/// A store for security None: a PKI path under /dev/null can never hold a
/// file or be created, so the store reads no certificate of ours and writes
/// nothing (with policy None the stack asks it for nothing else).
fn no_files() -> Store {
    Arc::new(RwLock::new(CertificateStore::new(Path::new("/dev/null"))))
}

/// A session with security None and an anonymous identity to `url`, as
/// `millrace discover` uses, touching no file (not connected yet: its
/// event loop connects).
pub(super) async fn anonymous_session(
    config: &ClientConfig,
    url: &str,
    timeout: Duration,
) -> Result<(Arc<Session>, EventLoop), String> {
    let store = no_files();
    let endpoints =
        match tokio::time::timeout(timeout, endpoints(config, &store, url, timeout)).await {
            Ok(Ok(endpoints)) => endpoints,
            Ok(Err(why)) => return Err(why),
            Err(_) => return Err("no answer to GetEndpoints in time".into()),
        };
    let none = crate::config::SecurityPolicy::None.uri();
    let wanted: EndpointDescription = (url, none.as_str(), MessageSecurityMode::None).into();
    SessionBuilder::new(config)
        .with_endpoints(endpoints)
        .connect_to_matching_endpoint(wanted)
        .map(|b| b.user_identity_token(IdentityToken::Anonymous).build(store))
        .and_then(|built| built)
        .map(guarded)
        .map_err(|e| super::in_words(&e))
}

/// The session with millrace's decoding guards (guard.rs) ahead of the
/// stack's decoders.
fn guarded((session, event_loop): (Arc<Session>, EventLoop)) -> (Arc<Session>, EventLoop) {
    super::guard::guard(&mut session.encoding_context().write());
    (session, event_loop)
}

/// The most elements of one array the device's session decodes: at least
/// the stack's default (1,000), and as many as one Publish can hold for the
/// device (a notification per monitored item per queued change), up to the
/// largest message the stack takes (every element takes at least a byte).
/// millrace asks for at most 1,000 notifications per Publish, but a server
/// may ignore that (asyncua sends all of a subscription's changes in one):
/// with the default, such a Publish failed to decode, the connection was
/// dropped and the changes in it were lost.
fn array_max(opcua: &OpcuaDevice) -> usize {
    let notifications = opcua.tags.len().saturating_mul(opcua.queue_size as usize);
    notifications.clamp(
        ARRAY_ELEMENTS_MAX,
        opcua::types::constants::MAX_MESSAGE_SIZE,
    )
}

/// The stack's client settings for the device.
pub(super) fn client_config(device: &DeviceConfig, opcua: &OpcuaDevice) -> ClientConfig {
    let application_uri = opcua
        .application_uri
        .clone()
        .unwrap_or_else(crate::config::default_application_uri);
    ClientBuilder::new()
        .application_name("millrace")
        .application_uri(application_uri)
        .product_uri("urn:millrace")
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .verify_server_certs(true)
        .session_retry_limit(-1)
        .session_retry_initial(RETRY_MIN)
        .session_retry_max(RETRY_MAX)
        .request_timeout(device.timeout)
        .recreate_subscriptions(true)
        .recreate_monitored_items_chunk(ARRAY_ELEMENTS_MAX)
        .max_array_length(array_max(opcua))
        .session_name(format!("millrace {}", device.name))
        .into_config()
}

/// Asks the server for its endpoints, picks the one of the configured
/// policy and mode, decides trust, and builds the session (not connected
/// yet: its event loop connects).
pub(super) async fn session(
    device: &DeviceConfig,
    opcua: &OpcuaDevice,
    config: &ClientConfig,
    store: &Store,
) -> Result<(Arc<Session>, EventLoop), Refusal> {
    let url = device.address.as_str();
    let wait = device.timeout.max(Duration::from_secs(1));
    let endpoints = match tokio::time::timeout(wait, endpoints(config, store, url, wait)).await {
        Ok(Ok(endpoints)) => endpoints,
        Ok(Err(why)) => return Err(Refusal::Failed(why)),
        Err(_) => return Err(Refusal::Failed("no answer to GetEndpoints in time".into())),
    };
    let mode = message_security_mode(opcua.security_mode);
    let policy_name = opcua.security_policy.name();
    let policy_uri = opcua.security_policy.uri();
    let policy = opcua::crypto::SecurityPolicy::from_uri(&policy_uri);
    let Some(endpoint) = Client::find_matching_endpoint(&endpoints, url, policy, mode) else {
        return Err(Refusal::Failed(format!(
            "the server offers no endpoint with security policy {policy_name} and mode {} \
             (it offers: {})",
            opcua.security_mode.name(),
            offered(&endpoints)
        )));
    };
    if let Some(pki) = &opcua.pki {
        trust(pki, store, &endpoint)?;
    }
    let identity = identity_token(&opcua.identity)?;
    let wanted: EndpointDescription = (url, policy_uri.as_str(), mode).into();
    SessionBuilder::new(config)
        .with_endpoints(endpoints)
        .connect_to_matching_endpoint(wanted)
        .map(|b| b.user_identity_token(identity).build(Arc::clone(store)))
        .and_then(|built| built)
        .map(guarded)
        .map_err(|e| Refusal::Failed(super::in_words(&e)))
}

fn message_security_mode(mode: SecurityMode) -> MessageSecurityMode {
    match mode {
        SecurityMode::None => MessageSecurityMode::None,
        SecurityMode::Sign => MessageSecurityMode::Sign,
        SecurityMode::SignAndEncrypt => MessageSecurityMode::SignAndEncrypt,
    }
}

/// The server's policy/mode pairs, for a refusal.
fn offered(endpoints: &[EndpointDescription]) -> String {
    let mut pairs: Vec<String> = endpoints
        .iter()
        .map(|e| {
            let uri = e.security_policy_uri.as_ref();
            let policy = uri.rsplit('#').next().unwrap_or(uri);
            format!("{policy}/{}", mode_name(e.security_mode))
        })
        .collect();
    pairs.sort();
    pairs.dedup();
    if pairs.is_empty() {
        "nothing".into()
    } else {
        pairs.join(", ")
    }
}

fn mode_name(mode: MessageSecurityMode) -> &'static str {
    match mode {
        MessageSecurityMode::None => "None",
        MessageSecurityMode::Sign => "Sign",
        MessageSecurityMode::SignAndEncrypt => "SignAndEncrypt",
        _ => "Invalid",
    }
}

/// The stack's token for the configured identity. The password goes into
/// the stack's `Password`, whose Debug hides it.
fn identity_token(identity: &Identity) -> Result<IdentityToken, Refusal> {
    Ok(match identity {
        Identity::Anonymous => IdentityToken::Anonymous,
        Identity::UserName { user, password } => {
            IdentityToken::new_user_name(user.clone(), password.expose().to_string())
        }
        Identity::X509 {
            certificate,
            private_key,
        } => IdentityToken::new_x509_path(certificate, private_key).map_err(|_| {
            Refusal::Failed(format!(
                "cannot read the user certificate `{}` or its key `{}`",
                certificate.display(),
                private_key.display()
            ))
        })?,
    })
}

/// Trusts the server's certificate only if the trust list holds it under
/// the name the stack looks for; otherwise has the stack write it into
/// `rejected` and refuses.
fn trust(pki: &OpcuaPki, store: &Store, endpoint: &EndpointDescription) -> Result<(), Refusal> {
    let cert = X509::from_byte_string(&endpoint.server_certificate).map_err(|_| {
        Refusal::Failed("the server's endpoint carries no readable certificate".into())
    })?;
    let name = CertificateStore::cert_file_name(&cert);
    let trusted = pki.trusted_certs.join(&name);
    let rejected = pki.rejected_dir().join(&name);
    if trusted.is_file() {
        if rejected.exists() {
            return Err(Refusal::Failed(format!(
                "the server's certificate is in the trust list and also in `{}`, and the stack \
                 refuses a certificate that is in `{}`: delete `{}`",
                pki.rejected_dir().display(),
                OpcuaPki::REJECTED_DIR,
                rejected.display()
            )));
        }
        return Ok(());
    }
    if let Some(other) = same_certificate_in(&pki.trusted_certs, &cert) {
        return Err(Refusal::Failed(format!(
            "the server's certificate is in the trust list as `{}`, but the stack looks for \
             it as `{}`: rename it",
            other.display(),
            trusted.display()
        )));
    }
    let written = store.read().store_rejected_cert(&cert);
    Err(match written {
        Ok(rejected) => Refusal::Untrusted {
            rejected,
            trusted: pki.trusted_certs.clone(),
        },
        Err(why) => Refusal::Failed(format!(
            "the server's certificate is not trusted, and writing it into `{}` failed: {why}",
            pki.rejected_dir().display()
        )),
    })
}

/// A file of the trust list holding `cert` under another name.
fn same_certificate_in(dir: &Path, cert: &X509) -> Option<PathBuf> {
    let der = cert.to_der().ok()?;
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| {
            CertificateStore::read_cert(path)
                .ok()
                .and_then(|c| c.to_der().ok())
                .is_some_and(|d| d == der)
        })
}

/// GetEndpoints over a channel of its own (security None, as discovery
/// is), closed afterwards. The stack's `Client` would do this too, but its
/// constructor creates a PKI directory even for security None.
async fn endpoints(
    config: &ClientConfig,
    store: &Store,
    url: &str,
    timeout: Duration,
) -> Result<Vec<EndpointDescription>, String> {
    let words = |e: opcua::types::Error| super::in_words(&e);
    let none = crate::config::SecurityPolicy::None.uri();
    let discovery: EndpointDescription = (url, none.as_str(), MessageSecurityMode::None).into();
    let channel = SessionBuilder::new(config)
        .connect_to_endpoint_directly(discovery)
        .and_then(|b| b.build_channel(Arc::clone(store)))
        .map_err(words)?;
    super::guard::guard(&mut channel.encoding_context().write());
    let connector = url.build().map_err(words)?;
    let mut transport = channel.connect_no_retry(&connector).await.map_err(words)?;
    let request = GetEndpointsRequest {
        request_header: RequestHeader::new(
            &NodeId::null(),
            &DateTime::now(),
            channel.request_handle(),
        ),
        endpoint_url: url.into(),
        locale_ids: None,
        profile_uris: None,
    };
    let sending = channel.send(request, timeout);
    let mut sending = std::pin::pin!(sending);
    let answer = loop {
        tokio::select! {
            polled = transport.poll() => {
                if let TransportPollResult::Closed(status) = polled {
                    return Err(format!("{status} (the connection closed during GetEndpoints)"));
                }
            }
            answer = &mut sending => break answer,
        }
    };
    channel.close_channel().await;
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while !matches!(transport.poll().await, TransportPollResult::Closed(_)) {}
    })
    .await;
    match answer.map_err(words)? {
        ResponseMessage::GetEndpoints(response) => {
            let status = response.response_header.service_result;
            if status.is_bad() {
                return Err(format!("{status} (GetEndpoints refused)"));
            }
            Ok(response.endpoints.unwrap_or_default())
        }
        _ => Err(format!(
            "{} (an answer to GetEndpoints that is not one)",
            StatusCode::BadUnknownResponse
        )),
    }
}

/// A status from the stack's own connecting (CreateSession, ActivateSession,
/// the secure channel), with what it means for the operator where that is
/// not plain from the name.
pub(super) fn status_words(status: StatusCode) -> String {
    let meaning = match status {
        StatusCode::BadCertificateHostNameInvalid => {
            "the server's certificate does not name the host of the endpoint URL"
        }
        StatusCode::BadCertificateUriInvalid => {
            "the server's certificate was not made for the server's application URI"
        }
        StatusCode::BadCertificateTimeInvalid | StatusCode::BadCertificateIssuerTimeInvalid => {
            "the server's certificate has expired or is not valid yet"
        }
        StatusCode::BadSecurityChecksFailed | StatusCode::BadCertificateUntrusted => {
            "a certificate was refused: the server must trust millrace's certificate (the \
             file `certificate` names), and millrace the server's"
        }
        StatusCode::BadIdentityTokenInvalid
        | StatusCode::BadIdentityTokenRejected
        | StatusCode::BadUserAccessDenied => "the server refused the user identity",
        StatusCode::BadSecurityPolicyRejected => {
            "the server does not offer this security policy and mode"
        }
        _ => return status.to_string(),
    };
    format!("{status} ({meaning})")
}
