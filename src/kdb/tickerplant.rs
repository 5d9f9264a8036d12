//! `millrace tickerplant`: a small kdb+-compatible IPC server that accepts
//! `.u.upd` from any number of publishers, checks updates as tick.q does,
//! answers sync messages with `(::)` or a kdb+ error, counts rows per table,
//! and optionally journals updates in tick.q's log format and hands every
//! row to a recorder.
//!
//! One thread per connection (at most `connections_max`), one message
//! buffer each, capped at `limits.message_bytes_max` (and one for the
//! expanded form of a compressed message): memory is bounded by their
//! product plus the decoded form of one message per connection. A buffer
//! grows with the bytes that arrived, not with what a header announced
//! (`receive`, the one reader of kdb+ messages).
//!
//! A `.u.upd` of a list of columns (what every publisher sends, millrace's
//! `text` column of strings included) is checked, counted and recorded
//! straight from the message buffer through `upd_view` (no allocation per
//! message or row once the buffers have grown); anything else (a table, a
//! row of atoms, a general list of anything but strings) is decoded into
//! `K` and goes through `parse_update`, which answers the same for what both
//! can read.
//!
//! Garbage from a peer (bad header, oversized or undecodable message, a bad
//! handshake) drops that connection and nothing else.
//!
//! With `tls` set it serves TLS only (kdb+ `-E 2`): the handshake runs on the
//! connection's thread, then the same session code runs over the TLS stream
//! (generic over `Read + Write`, so the plain path is unchanged).

#![forbid(unsafe_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::ServerConfig;

use super::decode::{decode_body, decode_message, DecodeLimits};
use super::encode::encode_message;
use super::handshake::{agree, parse_client_hello, HELLO_BYTES_MAX};
use super::header::{MsgType, HEADER_SIZE};
use super::journal::Journal;
use super::receive::{receive, At, ReceiveError};
use super::record::Recorder;
use super::tls::{self, SERVER_HANDSHAKE_TIMEOUT};
use super::types::K;
use super::upd::{for_each_record, for_each_text, parse_update, Tables, UpdError};
use super::upd_view::{view_message, UpdView, Viewed};

/// How often blocked reads and the acceptor look at the stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The answer to a sync message that went well: `(::)` as a little-endian
/// response (header, type 101, code 0), sent as is instead of encoded.
const NULL_RESPONSE: [u8; HEADER_SIZE + 2] = [1, 2, 0, 0, 10, 0, 0, 0, 101, 0];

pub struct TickerplantOptions {
    /// Append every accepted update to this tick.q log file.
    pub journal: Option<PathBuf>,
    /// `(user, password)` pairs; `None` accepts any login.
    pub users: Option<Vec<(String, String)>>,
    pub connections_max: usize,
    pub table_count_max: usize,
    pub limits: DecodeLimits,
    pub recorder: Option<Arc<Mutex<dyn Recorder>>>,
    /// Serve TLS only (see `tls::ServerTlsFiles::load`); `None`: plain TCP.
    pub tls: Option<Arc<ServerConfig>>,
}

impl Default for TickerplantOptions {
    fn default() -> Self {
        TickerplantOptions {
            journal: None,
            users: None,
            connections_max: 32,
            table_count_max: 1024,
            limits: DecodeLimits {
                message_bytes_max: 64 << 20,
                ..DecodeLimits::default()
            },
            recorder: None,
            tls: None,
        }
    }
}

/// Parses a users file: `user:password` per line; blank lines and lines
/// starting with `#` are skipped.
pub fn parse_users(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| match l.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (l.to_string(), String::new()),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickerplantStats {
    pub connections_accepted: u64,
    /// Refused at the handshake (bad credentials) or over the cap.
    pub connections_refused: u64,
    /// Dropped for sending garbage.
    pub connections_dropped: u64,
    pub updates: u64,
    pub update_errors: u64,
    /// TLS handshakes that failed (also counted as refused): no or a wrong
    /// client certificate, a client that does not speak TLS, a timeout.
    pub tls_handshakes_failed: u64,
    /// The largest message buffer any connection has held, in bytes: about
    /// twice the largest message at most, however much a header announced.
    pub message_buffer_bytes_max: usize,
}

struct State {
    tables: Tables,
    journal: Option<Journal>,
}

struct Shared {
    stop: AtomicBool,
    state: Mutex<State>,
    users: Option<Vec<(String, String)>>,
    limits: DecodeLimits,
    connections_max: usize,
    recorder: Option<Arc<Mutex<dyn Recorder>>>,
    tls: Option<Arc<ServerConfig>>,
    live: AtomicUsize,
    accepted: AtomicU64,
    refused: AtomicU64,
    dropped: AtomicU64,
    updates: AtomicU64,
    update_errors: AtomicU64,
    tls_failed: AtomicU64,
    buffer_bytes_max: AtomicUsize,
}

impl Shared {
    /// Counts a refused update (the publisher gets the error as its answer).
    fn counted<T>(&self, result: Result<T, UpdError>) -> Result<T, UpdError> {
        if result.is_err() {
            self.update_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the counts stay usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Tickerplant {
    local_addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl Tickerplant {
    pub fn bind(addr: &str, options: TickerplantOptions) -> std::io::Result<Tickerplant> {
        let journal = options.journal.as_deref().map(Journal::open).transpose()?;
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(State {
                tables: Tables::new(options.table_count_max),
                journal,
            }),
            users: options.users,
            limits: options.limits,
            connections_max: options.connections_max,
            recorder: options.recorder,
            tls: options.tls,
            live: AtomicUsize::new(0),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            updates: AtomicU64::new(0),
            update_errors: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            buffer_bytes_max: AtomicUsize::new(0),
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("tp-accept".into())
            .spawn(move || accept_loop(listener, for_thread))?;
        Ok(Tickerplant {
            local_addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Rows accepted so far into `table`.
    pub fn rows(&self, table: &str) -> u64 {
        self.shared
            .state()
            .tables
            .tables
            .get(table.as_bytes())
            .map_or(0, |t| t.rows)
    }

    /// `(table, rows)` for every table seen, by name.
    pub fn row_counts(&self) -> Vec<(String, u64)> {
        let state = self.shared.state();
        let tables = state.tables.tables.iter();
        tables
            .map(|(name, t)| (String::from_utf8_lossy(name).into_owned(), t.rows))
            .collect()
    }

    pub fn stats(&self) -> TickerplantStats {
        let s = &self.shared;
        TickerplantStats {
            connections_accepted: s.accepted.load(Ordering::Relaxed),
            connections_refused: s.refused.load(Ordering::Relaxed),
            connections_dropped: s.dropped.load(Ordering::Relaxed),
            updates: s.updates.load(Ordering::Relaxed),
            update_errors: s.update_errors.load(Ordering::Relaxed),
            tls_handshakes_failed: s.tls_failed.load(Ordering::Relaxed),
            message_buffer_bytes_max: s.buffer_bytes_max.load(Ordering::Relaxed),
        }
    }

    /// Stops accepting, closes every connection, syncs the journal and
    /// returns the final row counts.
    pub fn stop(mut self) -> Vec<(String, u64)> {
        self.shutdown();
        self.row_counts()
    }

    fn shutdown(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        if let Some(journal) = &self.shared.state().journal {
            let _ = journal.sync();
        }
    }
}

impl Drop for Tickerplant {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        workers.retain(|w| !w.is_finished());
        match listener.accept() {
            Ok((stream, _)) => {
                if shared.live.load(Ordering::SeqCst) >= shared.connections_max {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
                shared.live.fetch_add(1, Ordering::SeqCst);
                shared.accepted.fetch_add(1, Ordering::Relaxed);
                let for_thread = Arc::clone(&shared);
                let spawned = std::thread::Builder::new()
                    .name("tp-conn".into())
                    .spawn(move || {
                        serve(stream, &for_thread);
                        for_thread.live.fetch_sub(1, Ordering::SeqCst);
                    });
                match spawned {
                    Ok(w) => workers.push(w),
                    Err(_) => {
                        shared.live.fetch_sub(1, Ordering::SeqCst);
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(POLL_INTERVAL);
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

/// Why a connection ended.
enum End {
    Closed,
    Stopped,
    Refused,
    Garbage,
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let setup = stream
        .set_nonblocking(false)
        .and_then(|_| stream.set_read_timeout(Some(POLL_INTERVAL)))
        .and_then(|_| stream.set_write_timeout(Some(Duration::from_secs(10))))
        .and_then(|_| stream.set_nodelay(true));
    if setup.is_err() {
        return;
    }
    let end = match &shared.tls {
        None => session(&mut stream, shared),
        Some(config) => match tls::accept(config, stream, &shared.stop, SERVER_HANDSHAKE_TIMEOUT) {
            Ok(mut tls) => {
                let end = session(&mut tls, shared);
                // A clean end for the client (a refusal included).
                tls.conn.send_close_notify();
                let _ = tls.conn.write_tls(&mut tls.sock);
                end
            }
            Err(_) => {
                shared.tls_failed.fetch_add(1, Ordering::Relaxed);
                End::Refused
            }
        },
    };
    match end {
        End::Refused => shared.refused.fetch_add(1, Ordering::Relaxed),
        End::Garbage => shared.dropped.fetch_add(1, Ordering::Relaxed),
        End::Closed | End::Stopped => 0,
    };
}

/// The kdb+ login, then messages until the connection ends.
fn session<S: Read + Write>(stream: &mut S, shared: &Shared) -> End {
    match handshake(stream, shared) {
        Ok(()) => messages(stream, shared),
        Err(end) => end,
    }
}

fn handshake<S: Read + Write>(stream: &mut S, shared: &Shared) -> Result<(), End> {
    let mut hello = Vec::with_capacity(64);
    let mut chunk = [0u8; 256];
    loop {
        let n = read_some(stream, &mut chunk, &shared.stop)?;
        hello.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
        match parse_client_hello(&hello) {
            Ok(None) if hello.len() < HELLO_BYTES_MAX => continue,
            Ok(None) | Err(_) => return Err(End::Garbage),
            Ok(Some(h)) => {
                if h.consumed != hello.len() {
                    // kdb+ clients wait for the answer before sending more.
                    return Err(End::Garbage);
                }
                if !allowed(shared, h.user, h.password) {
                    return Err(End::Refused);
                }
                let answer = [agree(h.capability)];
                return stream
                    .write_all(&answer)
                    .and_then(|()| stream.flush())
                    .map_err(|_| End::Closed);
            }
        }
    }
}

fn allowed(shared: &Shared, user: &[u8], password: &[u8]) -> bool {
    match &shared.users {
        None => true,
        Some(users) => users
            .iter()
            .any(|(u, p)| u.as_bytes() == user && p.as_bytes() == password),
    }
}

fn messages<S: Read + Write>(stream: &mut S, shared: &Shared) -> End {
    // Both grow to the largest message seen and are reused from then on.
    let mut message = Vec::new();
    let mut plain = Vec::new();
    let mut reply = Vec::new();
    loop {
        let received = receive(&mut message, shared.limits.message_bytes_max, |buf, at| {
            read_exact(stream, buf, &shared.stop, at == At::Boundary)
        });
        shared
            .buffer_bytes_max
            .fetch_max(message.capacity(), Ordering::Relaxed);
        let header = match received {
            Ok(header) => header,
            Err(ReceiveError::Stream(end)) => return end,
            Err(ReceiveError::Header(_)) => return End::Garbage,
        };
        let answer = match view_message(&message, &header, &mut plain, &shared.limits) {
            Viewed::Update(update) => handle_view(&update, shared),
            Viewed::Rejected(e) => shared.counted(Err(e)),
            Viewed::Other => {
                let Ok((_, k)) = decode_message(&message, &shared.limits) else {
                    return End::Garbage;
                };
                handle(&k, shared)
            }
        };
        if header.msg_type == MsgType::Sync {
            let answer: &[u8] = match answer {
                Ok(()) => &NULL_RESPONSE,
                Err(e) => {
                    encode_message(&K::error(e.text()), MsgType::Response, &mut reply);
                    &reply
                }
            };
            if stream
                .write_all(answer)
                .and_then(|()| stream.flush())
                .is_err()
            {
                return End::Closed;
            }
        }
    }
}

/// Applies one viewed `.u.upd` (already through `parse_update`'s checks):
/// the schema check and count, the journal, the recorder.
fn handle_view(update: &UpdView<'_>, shared: &Shared) -> Result<(), UpdError> {
    let types = update.types();
    let mut state = shared.state();
    let State { tables, journal } = &mut *state;
    let applied = tables.apply_columns(update.table, None, types.as_slice(), update.rows());
    let table = shared.counted(applied)?;
    shared.updates.fetch_add(1, Ordering::Relaxed);
    if let Some(journal) = journal {
        // The journal writes a `K`: decoded here from the data item's bytes
        // (a journalling stand-in is bound by its disk, not by this).
        let appended = decode_body(update.data, true, &shared.limits)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|data| journal.append(update.table, &data));
        if let Err(e) = appended {
            tracing::error!("tickerplant: journal append failed: {e}");
        }
    }
    if let (Some(recorder), Some(columns)) = (&shared.recorder, update.record_columns(table)) {
        let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
        r.record_columns(update.table, &columns);
        for (sym, seq, text) in update.texts(table) {
            r.record_text(update.table, sym, seq, text);
        }
    }
    Ok(())
}

/// Applies one decoded message: `Ok` for `.u.upd` accepted and for anything
/// that is not a `.u.upd` call (answered with `(::)`).
fn handle(k: &K, shared: &Shared) -> Result<(), UpdError> {
    let Some(update) = shared.counted(parse_update(k))? else {
        return Ok(());
    };
    let mut state = shared.state();
    let State { tables, journal } = &mut *state;
    let table = shared.counted(tables.apply(&update))?;
    shared.updates.fetch_add(1, Ordering::Relaxed);
    if let Some(journal) = journal {
        // A journal that cannot be written is an operator problem, not the
        // publisher's: the update is counted, the failure is printed once per
        // occurrence on stderr.
        if let Err(e) = journal.append(update.table, update.data) {
            tracing::error!("tickerplant: journal append failed: {e}");
        }
    }
    if let Some(recorder) = &shared.recorder {
        let mut r = recorder.lock().unwrap_or_else(|e| e.into_inner());
        for_each_record(&update, table, |sym, value, seq| {
            r.record(update.table, sym, value, seq)
        });
        for_each_text(&update, table, |sym, seq, text| {
            r.record_text(update.table, sym, seq, text)
        });
    }
    Ok(())
}

/// One read, retrying timeouts until data, EOF or stop.
fn read_some<S: Read>(stream: &mut S, buf: &mut [u8], stop: &AtomicBool) -> Result<usize, End> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Err(End::Stopped);
        }
        match stream.read(buf) {
            Ok(0) => return Err(End::Closed),
            Ok(n) => return Ok(n),
            Err(e) if retryable(&e) => continue,
            Err(_) => return Err(End::Closed),
        }
    }
}

/// Fills `buf`; a clean EOF before the first byte is `Closed` when
/// `at_boundary`, otherwise a truncated message (`Garbage`).
fn read_exact<S: Read>(
    stream: &mut S,
    buf: &mut [u8],
    stop: &AtomicBool,
    at_boundary: bool,
) -> Result<(), End> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = buf.get_mut(filled..).unwrap_or(&mut []);
        match read_some(stream, rest, stop) {
            Ok(n) => filled += n,
            Err(End::Closed) if at_boundary && filled == 0 => return Err(End::Closed),
            Err(End::Closed) => return Err(End::Garbage),
            Err(end) => return Err(end),
        }
    }
    Ok(())
}

fn retryable(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), WouldBlock | TimedOut | Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_response_is_the_encoded_null() {
        let mut encoded = Vec::new();
        encode_message(&K::null(), MsgType::Response, &mut encoded);
        assert_eq!(encoded, NULL_RESPONSE);
    }
}
