//! The blocking publisher the kdb+ sink thread drives: one TCP connection,
//! async `.u.upd` messages built into one reused buffer, and a sync chaser
//! whose reply acknowledges everything sent before it (kdb+ processes the
//! messages of one connection in order).
//!
//! Reconnecting is the caller's loop: on an error, wait `Backoff::delay`,
//! call `reconnect`, resend from the last acknowledged sequence number.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::{Secret, TimeType};
use crate::sample::Sample;

use super::columns::encode_upd;
use super::compress::{compress, COMPRESS_THRESHOLD_BYTES};
use super::decode::{decode_message, DecodeLimits};
use super::encode::encode_message;
use super::error::KdbError;
use super::handshake::{client_handshake, CAPABILITY_DEFAULT};
use super::header::{Header, MsgType, HEADER_SIZE};
use super::symbols::SymbolTable;
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
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            time_type: TimeType::Timespan,
            capability: CAPABILITY_DEFAULT,
            compression: Compression::Auto,
            connect_timeout: Duration::from_secs(5),
            io_timeout: Duration::from_secs(30),
            limits: DecodeLimits::default(),
            skipped_messages_max: 1024,
        }
    }
}

pub struct Publisher {
    stream: TcpStream,
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
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let (stream, capability, peer) =
            open(&self.addr, &self.user, &self.password, &self.options)?;
        self.stream = stream;
        self.capability = capability;
        self.peer_is_loopback = peer.ip().is_loopback();
        Ok(())
    }

    /// The capability the server agreed to.
    pub fn capability(&self) -> u8 {
        self.capability
    }

    pub fn messages_sent(&self) -> u64 {
        self.messages_sent
    }

    /// Sends `.u.upd[`table; columns]` asynchronously; sample `i` gets
    /// `seq = first_seq + i`. No allocation once the buffers have grown.
    pub fn publish(
        &mut self,
        table: &str,
        samples: &[Sample],
        first_seq: u64,
        symbols: &SymbolTable,
    ) -> Result<(), KdbError> {
        let time_type = self.options.time_type;
        let buf = &mut self.message;
        encode_upd(
            table,
            samples,
            first_seq,
            symbols,
            time_type,
            MsgType::Async,
            buf,
        )?;
        self.send_built()
    }

    /// Sends a sync chaser and waits for its reply: `Ok` acknowledges every
    /// message sent before it; a kdb+ error surfaces as `KdbError::Remote`.
    pub fn chase(&mut self) -> Result<(), KdbError> {
        self.call(&K::string("::")).map(|_| ())
    }

    /// Sends `k` as a sync message and returns the reply.
    pub fn call(&mut self, k: &K) -> Result<K, KdbError> {
        encode_message(k, MsgType::Sync, &mut self.message);
        self.send_built()?;
        self.read_reply()
    }

    /// Sends `k` as an async message.
    pub fn send_async(&mut self, k: &K) -> Result<(), KdbError> {
        encode_message(k, MsgType::Async, &mut self.message);
        self.send_built()
    }

    fn send_built(&mut self) -> Result<(), KdbError> {
        let len = self.message.len();
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
            && compress(&self.message, &mut self.compressed);
        let bytes = if use_compressed {
            &self.compressed
        } else {
            &self.message
        };
        self.stream.write_all(bytes).map_err(closed_or_io)?;
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

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("capability", &self.capability)
            .field("messages_sent", &self.messages_sent)
            .finish_non_exhaustive()
    }
}

fn open(
    addr: &str,
    user: &str,
    password: &Secret,
    options: &PublisherOptions,
) -> Result<(TcpStream, u8, SocketAddr), KdbError> {
    let mut last = None;
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, options.connect_timeout) {
            Ok(mut stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(options.io_timeout))?;
                stream.set_write_timeout(Some(options.io_timeout))?;
                let cap =
                    client_handshake(&mut stream, user, password.expose(), options.capability)?;
                return Ok((stream, cap, candidate));
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or(KdbError::Closed, KdbError::Io))
}

fn closed_or_io(e: std::io::Error) -> KdbError {
    use std::io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => KdbError::Closed,
        _ => KdbError::Io(e),
    }
}

/// Reads one whole message into `buf` (header included), checking the
/// header's length against the limit before growing the buffer.
pub fn read_message<R: Read>(
    stream: &mut R,
    buf: &mut Vec<u8>,
    limits: &DecodeLimits,
) -> Result<Header, KdbError> {
    let mut head = [0u8; HEADER_SIZE];
    stream.read_exact(&mut head).map_err(closed_or_io)?;
    let header = Header::parse(&head, limits.message_bytes_max)?;
    buf.clear();
    buf.extend_from_slice(&head);
    buf.resize(header.total_len as usize, 0);
    if let Some(rest) = buf.get_mut(HEADER_SIZE..) {
        stream.read_exact(rest).map_err(closed_or_io)?;
    }
    Ok(header)
}
