//! A TCP proxy on 127.0.0.1 between millrace and a kdb+ stand-in that
//! misbehaves on demand:
//!
//! - `pause()`: stop reading from the client (millrace). Its bytes pile up
//!   in the proxy's receive buffer, then in millrace's send buffer, until
//!   its writes block: TCP backpressure from a kdb+ that stopped reading.
//!   `resume()` reads again and forwards everything in order.
//! - `reset_after(Some(max))`: every connection forwards the handshake and a
//!   random number (`0..=max`) of whole kdb+ messages from the client, then a
//!   random part of the next one (possibly none of it), then both sides are
//!   reset: SO_LINGER 0 and close, so the kernel sends an RST instead of a
//!   FIN. `reset_after(None)` stops resetting.
//!
//! One thread per connection owns both sockets (so a reset closes them at
//! once); reads use a short timeout to look at the controls.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

const POLL: Duration = Duration::from_millis(5);
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    paused: AtomicBool,
    /// 0: never reset; else 1 + the most whole messages a connection forwards.
    reset_after: AtomicU64,
    seed: AtomicU64,
    connections: AtomicU64,
    resets: AtomicU64,
    /// Client bytes forwarded upstream.
    forwarded: AtomicU64,
}

pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            seed: AtomicU64::new(0x2545_f491_4f6c_dd1d),
            ..Shared::default()
        });
        let for_thread = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name("proxy-accept".into())
            .spawn(move || accept_loop(listener, upstream, for_thread))
            .unwrap();
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn pause(&self) {
        self.shared.paused.store(true, Ordering::SeqCst);
    }

    pub fn resume(&self) {
        self.shared.paused.store(false, Ordering::SeqCst);
    }

    pub fn reset_after(&self, whole_messages_max: Option<u64>) {
        let code = whole_messages_max.map_or(0, |m| m + 1);
        self.shared.reset_after.store(code, Ordering::SeqCst);
    }

    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    pub fn resets(&self) -> u64 {
        self.shared.resets.load(Ordering::SeqCst)
    }

    pub fn forwarded(&self) -> u64 {
        self.shared.forwarded.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        workers.retain(|w| !w.is_finished());
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(upstream) else {
                    reset(&client);
                    continue;
                };
                let budget = draw_budget(&shared);
                let for_thread = Arc::clone(&shared);
                workers.push(std::thread::spawn(move || {
                    relay(client, server, budget, &for_thread)
                }));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    for w in workers {
        let _ = w.join();
    }
}

fn next_random(shared: &Shared) -> u64 {
    // xorshift64 over a shared seed: reproducible per run order.
    let mut x = shared.seed.load(Ordering::SeqCst);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    shared.seed.store(x, Ordering::SeqCst);
    x
}

/// Whole client messages this connection forwards before the cut message.
fn draw_budget(shared: &Shared) -> Option<u64> {
    let code = shared.reset_after.load(Ordering::SeqCst);
    (code != 0).then(|| next_random(shared) % code)
}

/// Follows the client's byte stream (handshake up to its NUL, then kdb+
/// messages: 8-byte header, total length at bytes 4..8, little-endian) to
/// find where the connection is to be cut.
struct Cutter {
    /// Whole messages to let through; `None`: never cut.
    whole_left: Option<u64>,
    in_handshake: bool,
    header: Vec<u8>,
    /// Bytes of the current message body still to come.
    body_left: u64,
    /// Stream offset at which to reset, once known.
    cut_at: Option<u64>,
    offset: u64,
}

impl Cutter {
    fn new(whole: Option<u64>) -> Self {
        Cutter {
            whole_left: whole,
            in_handshake: true,
            header: Vec::with_capacity(8),
            body_left: 0,
            cut_at: None,
            offset: 0,
        }
    }

    /// How many of `bytes` may go through before the cut (all when none).
    fn admit(&mut self, bytes: &[u8], shared: &Shared) -> usize {
        let Some(_) = self.whole_left else {
            return bytes.len();
        };
        for (i, &b) in bytes.iter().enumerate() {
            if self.cut_at.is_some_and(|c| self.offset >= c) {
                return i;
            }
            self.offset += 1;
            self.step(b, shared);
        }
        bytes.len()
    }

    fn cut_due(&self) -> bool {
        self.cut_at.is_some_and(|c| self.offset >= c)
    }

    fn step(&mut self, b: u8, shared: &Shared) {
        if self.in_handshake {
            self.in_handshake = b != 0;
            return;
        }
        if self.body_left > 0 {
            self.body_left -= 1;
            return;
        }
        self.header.push(b);
        if self.header.len() < 8 {
            return;
        }
        let total = u32::from_le_bytes([
            self.header[4],
            self.header[5],
            self.header[6],
            self.header[7],
        ]);
        self.header.clear();
        self.body_left = u64::from(total).saturating_sub(8);
        match self.whole_left {
            Some(0) if self.cut_at.is_none() => {
                // This message is cut: somewhere in its body, or right
                // after its header.
                let keep = next_random(shared) % (self.body_left + 1);
                self.cut_at = Some(self.offset + keep);
            }
            Some(n) if n > 0 => self.whole_left = Some(n - 1),
            _ => {}
        }
    }
}

fn relay(mut client: TcpStream, mut server: TcpStream, budget: Option<u64>, shared: &Shared) {
    let setup = [&client, &server].iter().try_for_each(|s| {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(POLL))?;
        s.set_write_timeout(Some(Duration::from_secs(10)))
    });
    if setup.is_err() {
        return;
    }
    let mut buf = vec![0u8; CHUNK_BYTES];
    let mut cutter = Cutter::new(budget);
    while !shared.stop.load(Ordering::SeqCst) {
        if cutter.cut_due() {
            shared.resets.fetch_add(1, Ordering::SeqCst);
            reset(&client);
            reset(&server);
            return;
        }
        if !shared.paused.load(Ordering::SeqCst) {
            match client.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let admitted = cutter.admit(&buf[..n], shared);
                    if server.write_all(&buf[..admitted]).is_err() {
                        return;
                    }
                    shared
                        .forwarded
                        .fetch_add(admitted as u64, Ordering::SeqCst);
                }
                Err(e) if retryable(&e) => {}
                Err(_) => return,
            }
        } else {
            std::thread::sleep(POLL);
        }
        match server.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if client.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if retryable(&e) => {}
            Err(_) => return,
        }
    }
}

fn retryable(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
    )
}

/// SO_LINGER {on, 0}: the close that follows (when the caller drops the
/// stream) sends an RST and discards unsent data.
fn reset(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the fd is open for the lifetime of `stream`; `linger` is a
    // valid struct of the size passed, read by the kernel during the call.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt(SO_LINGER)");
}
