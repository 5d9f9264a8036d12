//! The blocking publisher the kdb+ sink thread drives: one TCP connection
//! (TLS inside it when `PublisherOptions::tls` is set, as kdb+ -E serves),
//! async `.u.upd` messages built into one reused buffer, and a sync chaser
//! whose reply acknowledges everything sent before it (kdb+ processes the
//! messages of one connection in order).
//!
//! Reconnecting is the caller's loop: on an error, wait `Backoff::delay`,
//! call `reconnect`, resend from the last acknowledged sequence number.

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use crate::config::{Secret, TimeType};
use crate::sample::Sample;

use super::columns::{encode_upd_with, UpdFormat};
use super::compress::{compress, COMPRESS_THRESHOLD_BYTES};
use super::decode::{decode_message, DecodeLimits};
use super::encode::encode_message;
use super::error::KdbError;
use super::handshake::{client_handshake, CAPABILITY_DEFAULT};
use super::header::MsgType;
use super::receive::{closed_or_io, read_message};
use super::schema::Schema;
use super::symbols::SymbolTable;
use super::tls::{self, TlsClient};
use super::types::K;

/// When to compress outgoing messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// As kdb+ does: messages over 2000 bytes to a peer not on loopback.
    Auto,
    Never,
    /// Every message over 2000 bytes, loopback or not (tests, slow links).
    Always,
}

#[derive(Clone, Debug)]
pub struct PublisherOptions {
    pub time_type: TimeType,
    /// The columns `.u.upd` carries, in the tickerplant table's order.
    pub columns: Schema,
    /// Capability byte offered in the handshake (3, or 6).
    pub capability: u8,
    pub compression: Compression,
    pub connect_timeout: Duration,
    /// Read and write timeout of the socket (a chaser waits this long).
    pub io_timeout: Duration,
    /// Limits for replies we decode (and the cap on messages we send).
    pub limits: DecodeLimits,
    /// Async messages the server may push before a reply arrives, ignored.
    pub skipped_messages_max: u32,
    /// TLS inside the TCP connection; `None`: plain TCP (kdb+'s default).
    pub tls: Option<TlsClient>,
    /// The `gateway` column's symbol, when `columns` has it.
    pub gateway: String,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            time_type: TimeType::Timespan,
            columns: Schema::DEFAULT,
            capability: CAPABILITY_DEFAULT,
            compression: Compression::Auto,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            limits: DecodeLimits::default(),
            skipped_messages_max: 1024,
            tls: None,
            gateway: String::new(),
        }
    }
}

/// The byte stream under the kdb+ messages.
enum Transport {
    Plain(TcpStream),
    /// Boxed: a rustls connection is a few KiB; the plain variant stays small.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        }
    }

    /// Ends the connection; over TLS with a close_notify first, so the server
    /// sees a clean end rather than a truncation.
    fn close(&mut self) {
        if let Transport::Tls(s) = self {
            s.conn.send_close_notify();
            // Bounded: a peer that stopped reading must not hold us up.
            let _ = s.sock.set_write_timeout(Some(CLOSE_NOTIFY_TIMEOUT));
            let _ = s.conn.write_tls(&mut s.sock);
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Both);
    }
}

/// The content type byte of a TLS alert record.
const TLS_ALERT_RECORD: u8 = 0x15;

/// How long a close_notify may wait for room in the socket's send buffer.
const CLOSE_NOTIFY_TIMEOUT: Duration = Duration::from_millis(200);

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.write_all(buf),
            Transport::Tls(s) => s.write_all(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

pub struct Publisher {
    stream: Transport,
    addr: String,
    user: String,
    password: Secret,
    options: PublisherOptions,
    capability: u8,
    peer_is_loopback: bool,
    /// The message being built; reused.
    message: Vec<u8>,
    /// Its compressed form; reused.
    compressed: Vec<u8>,
    /// Replies; reused.
    reply: Vec<u8>,
    messages_sent: u64,
}

impl Publisher {
    pub fn connect(
        addr: &str,
        user: &str,
        password: &Secret,
        options: PublisherOptions,
    ) -> Result<Publisher, KdbError> {
        let (stream, capability, peer) = open(addr, user, password, &options)?;
        Ok(Publisher {
            stream,
            addr: addr.to_string(),
            user: user.to_string(),
            password: password.clone(),
            options,
            capability,
            peer_is_loopback: peer.ip().is_loopback(),
            message: Vec::new(),
            compressed: Vec::new(),
            reply: Vec::new(),
            messages_sent: 0,
        })
    }

    /// Drops the connection and logs in again (buffers are kept).
    pub fn reconnect(&mut self) -> Result<(), KdbError> {
        self.stream.close();
        let (stream, capability, peer) =
            open(&self.addr, &self.user, &self.password, &self.options)?;
        self.stream = stream;
        self.capability = capability;
        self.peer_is_loopback = peer.ip().is_loopback();
        Ok(())
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Transport::Tls(_))
    }

    /// The capability the server agreed to.
    pub fn capability(&self) -> u8 {
        self.capability
    }

    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Bytes the reply buffer holds: what the largest reply read so far (or
    /// the furthest a hostile one got) cost. The buffer grows only with
    /// bytes that arrived (see `receive`).
    pub fn reply_buffer_bytes(&self) -> usize {
        self.reply.capacity()
    }

    /// Sends `.u.upd[`table; columns]` asynchronously; record `i` has
    /// `seq = first_seq + i` (a text sample's row has its head's). No
    /// allocation once the buffers have grown. `samples` must hold whole
    /// samples (a text head with its extensions): else `BadRecords`, and
    /// nothing is sent.
    pub fn publish(
        &mut self,
        table: &str,
        samples: &[Sample],
        first_seq: u64,
        symbols: &SymbolTable,
    ) -> Result<(), KdbError> {
        let format = UpdFormat {
            table,
            gateway: &self.options.gateway,
            schema: self.options.columns,
            time_type: self.options.time_type,
            msg_type: MsgType::Async,
        };
        let len = encode_upd_with(&format, samples, first_seq, symbols, &mut self.message)?;
        self.send_built(len)
    }

    /// Sends a sync chaser and waits for its reply: `Ok` acknowledges every
    /// message sent before it; a kdb+ error surfaces as `KdbError::Remote`.
    pub fn chase(&mut self) -> Result<(), KdbError> {
        self.call(&K::string("::")).map(|_| ())
    }

    /// Sends a sync chaser without waiting for its reply, so a sink can keep
    /// several batches in flight; `read_ack` takes the replies in order. The
    /// message is a constant: nothing is allocated per batch.
    ///
    /// Sent from the constant, not through `message`: clearing `message`
    /// made the next `.u.upd` zero-fill its whole buffer again
    /// (`encode_upd_with` fills only growth past the longest message).
    pub fn send_chaser(&mut self) -> Result<(), KdbError> {
        self.send_bytes(&CHASER_MESSAGE)
    }

    /// Waits for the reply to the oldest chaser not yet answered: `Ok`
    /// acknowledges every message sent before that chaser; a kdb+ error
    /// surfaces as `KdbError::Remote`.
    pub fn read_ack(&mut self) -> Result<(), KdbError> {
        self.read_reply().map(|_| ())
    }

    /// Sends `k` as a sync message and returns the reply.
    pub fn call(&mut self, k: &K) -> Result<K, KdbError> {
        encode_message(k, MsgType::Sync, &mut self.message);
        self.send_built(self.message.len())?;
        self.read_reply()
    }

    /// Sends `message[..len]`: the buffer keeps the length of its longest
    /// message (see `encode_upd_with`).
    fn send_built(&mut self, len: usize) -> Result<(), KdbError> {
        let message = self.message.get(..len).ok_or(KdbError::MessageTooLarge {
            bytes: len as u64,
            max: self.message.len() as u64,
        })?;
        if len > self.options.limits.message_bytes_max {
            let max = self.options.limits.message_bytes_max as u64;
            return Err(KdbError::MessageTooLarge {
                bytes: len as u64,
                max,
            });
        }
        let wanted = match self.options.compression {
            Compression::Never => false,
            Compression::Auto => !self.peer_is_loopback,
            Compression::Always => true,
        };
        let use_compressed = wanted
            && self.capability >= 3
            && len > COMPRESS_THRESHOLD_BYTES
            && compress(message, &mut self.compressed);
        let bytes = if use_compressed {
            &self.compressed
        } else {
            message
        };
        write_message(&mut self.stream, bytes)?;
        self.messages_sent += 1;
        Ok(())
    }

    /// Sends a complete message that needs no size check or compression.
    fn send_bytes(&mut self, bytes: &[u8]) -> Result<(), KdbError> {
        debug_assert!(bytes.len() <= COMPRESS_THRESHOLD_BYTES);
        write_message(&mut self.stream, bytes)?;
        self.messages_sent += 1;
        Ok(())
    }

    fn read_reply(&mut self) -> Result<K, KdbError> {
        for _ in 0..=self.options.skipped_messages_max {
            let header = read_message(&mut self.stream, &mut self.reply, &self.options.limits)?;
            if header.msg_type != MsgType::Response {
                continue;
            }
            let (_, k) = decode_message(&self.reply, &self.options.limits)?;
            if let K::Error(text) = k {
                return Err(KdbError::Remote(
                    String::from_utf8_lossy(&text).into_owned(),
                ));
            }
            return Ok(k);
        }
        Err(KdbError::NoReply)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if self.is_tls() {
            self.stream.close();
        }
    }
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("capability", &self.capability)
            .field("tls", &self.is_tls())
            .field("messages_sent", &self.messages_sent)
            .finish_non_exhaustive()
    }
}

fn open(
    addr: &str,
    user: &str,
    password: &Secret,
    options: &PublisherOptions,
) -> Result<(Transport, u8, SocketAddr), KdbError> {
    let mut last = None;
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, options.connect_timeout) {
            Ok(tcp) => {
                tcp.set_nodelay(true)?;
                let mut stream = match &options.tls {
                    None => Transport::Plain(tcp),
                    Some(tls) => Transport::Tls(Box::new(tls_open(tcp, tls, options)?)),
                };
                stream.tcp().set_read_timeout(Some(options.io_timeout))?;
                stream.tcp().set_write_timeout(Some(options.io_timeout))?;
                let login =
                    client_handshake(&mut stream, user, password.expose(), options.capability);
                let cap = match (login, &options.tls) {
                    (Ok(cap), _) => cap,
                    // A server that refuses our certificate says so only now,
                    // with an alert in answer to the login (TLS 1.3).
                    (Err(KdbError::Io(e)), Some(tls)) if tls::rustls_error(&e).is_some() => {
                        return Err(tls::handshake_error(e, tls))
                    }
                    // Closed without close_notify: kdb+ refusing the login.
                    (Err(KdbError::Io(e)), Some(_))
                        if e.kind() == std::io::ErrorKind::UnexpectedEof =>
                    {
                        return Err(KdbError::AuthenticationRefused)
                    }
                    // A TLS-only server answers our plain login with an alert
                    // record, whose first byte reads as a capability.
                    (Err(KdbError::BadCapability { answered, .. }), None)
                        if answered == TLS_ALERT_RECORD =>
                    {
                        return Err(KdbError::Tls(
                            "the server answered with a TLS alert: it serves TLS only \
                             (kdb+ -E 2); set tls = true"
                                .into(),
                        ))
                    }
                    (Err(e), _) => return Err(e),
                };
                return Ok((stream, cap, candidate));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or(KdbError::Closed, KdbError::Io))
}

/// The TLS handshake, bounded by the connect timeout like the TCP connect.
fn tls_open(
    tcp: TcpStream,
    tls: &TlsClient,
    options: &PublisherOptions,
) -> Result<StreamOwned<ClientConnection, TcpStream>, KdbError> {
    tcp.set_read_timeout(Some(options.connect_timeout))?;
    tcp.set_write_timeout(Some(options.connect_timeout))?;
    tls::connect(tls, tcp)
}

/// The chaser `"::"` (a char vector) as a sync message, little-endian: the
/// bytes `encode_message(&K::string("::"), MsgType::Sync, ..)` produces
/// (checked by a test), kept as a constant so a chaser costs no allocation.
const CHASER_MESSAGE: [u8; 16] = [1, 1, 0, 0, 16, 0, 0, 0, 10, 0, 2, 0, 0, 0, b':', b':'];

fn write_message(stream: &mut Transport, bytes: &[u8]) -> Result<(), KdbError> {
    stream.write_all(bytes).map_err(closed_or_io)?;
    // TLS: push the last record out now, so an error shows here and not
    // at the next call (a no-op on plain TCP).
    stream.flush().map_err(closed_or_io)
}

#[cfg(test)]
mod chaser_tests {
    use super::*;

    #[test]
    fn chaser_constant_is_the_encoded_sync_string() {
        let mut encoded = Vec::new();
        encode_message(&K::string("::"), MsgType::Sync, &mut encoded);
        assert_eq!(encoded, CHASER_MESSAGE);
    }
}
