//! The io_uring driver. One ring per reader thread: connects, sends, and
//! multishot receives into a provided-buffer ring (`register_buf_ring`);
//! each received buffer is decoded in place by the shard straight into the
//! sample ring (a frame split across two buffers goes through the framer's
//! 260-byte copy) and handed back to the kernel right after.
//!
//! One `io_uring_enter` per event-loop turn submits the turn's work and waits:
//! its timeout is the scheduler's next deadline plus the timer slack (no timer
//! operation, no update per turn), and it waits for as many completions as the
//! sends still owe (each send's own completion and its answer, also those of
//! sends from earlier turns), so a burst of answers wakes the thread once,
//! not once each. On kernels with
//! `IORING_FEAT_MIN_TIMEOUT` (6.12) that batching wait is cut short after
//! half the slack (at most `MIN_WAIT_NS_MAX`) if at least one completion has
//! arrived, so an answer that comes alone waits at most that long. The ring is single-issuer with
//! deferred task work where the kernel has it (6.1): completions are run in
//! the thread's own wait, in a batch, with no interrupt of its work.
//! Each device's socket sits in the ring's registered file table at the
//! device's index (where the kernel allows a sparse table, 5.19), so an
//! operation does not look its descriptor up and reference it every time.
//!
//! Ownership (the tokio-uring discipline): memory the kernel may touch (the
//! provided buffers, the buffer ring, each device's send staging and socket
//! address) is allocated once, never moved or resized, and outlives every
//! operation: on shutdown every operation is cancelled and its completion
//! drained before the memory goes; if the drain does not finish, the memory
//! is leaked rather than freed under the kernel. A send in flight keeps its
//! staging bytes even when its connection is closed: they are reused only
//! after its completion arrives.
//!
//! Must never: touch a buffer the kernel owns, block except in
//! `submit_and_wait`, or allocate per frame.

#![allow(unsafe_code)]

use std::alloc::Layout;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use io_uring::types::{BufRingEntry, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};

use super::scheduler::DeviceIndex;
use super::shard::{Clock, Now, Shard, Transport};

/// Submission queue entries; the completion queue is twice that.
const SQ_ENTRIES: u32 = 4096;
/// Provided receive buffers and their size: a receive takes one buffer and
/// returns it within the same loop turn, so this bounds a turn's receives,
/// not the device count.
const BUFFER_COUNT: u16 = 1024;
const BUFFER_BYTES: usize = 4096;
const BUFFER_GROUP: u16 = 7;
/// The longest the loop sleeps without looking at the stop flag: a
/// backstop, as a stop wakes the loop at once through the waker.
const WAIT_NS_MAX: u64 = 1_000_000_000;
/// Longest a turn's batching wait goes on once one completion is in: the
/// answers to a turn's sends on a LAN come within this, and one that comes
/// alone is not held for half of a long slack. A sample's time is taken
/// when its answer is read, so this is also how late that time may be.
/// 1,000 devices every 125 ms woke the reader 555-876 times a second at
/// 0.5 ms, 368-710 at 2 ms.
const MIN_WAIT_NS_MAX: u64 = 2_000_000;
/// Rounds of draining completions at shutdown (10 ms each).
const DRAIN_ROUNDS_MAX: usize = 300;

const _: () = assert!(BUFFER_COUNT.is_power_of_two() && BUFFER_COUNT <= 32768);
const _: () = assert!(BUFFER_BYTES >= 2 * crate::protocol::modbus::TCP_ADU_BYTES_MAX);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    Connect = 1,
    Send = 2,
    Recv = 3,
    /// Cancels and the drain's timers: nothing to do on completion.
    Control = 5,
}

/// An operation on `$conn`'s socket: through the registered file table when
/// `$fixed`, by descriptor otherwise (the builders take either kind).
macro_rules! on_socket {
    ($fixed:expr, $device:expr, $conn:expr, |$target:ident| $build:expr) => {
        if $fixed {
            let $target = Fixed($device);
            $build
        } else {
            let $target = Fd($conn.fd);
            $build
        }
    };
}

/// user_data: kind (8 bits) | connection generation (24 bits) | device (32 bits).
fn user_data(kind: Kind, generation: u32, device: DeviceIndex) -> u64 {
    (kind as u64) << 56 | u64::from(generation & 0xFF_FFFF) << 32 | u64::from(device)
}

fn split_user_data(data: u64) -> (u8, u32, DeviceIndex) {
    (
        (data >> 56) as u8,
        ((data >> 32) & 0xFF_FFFF) as u32,
        data as u32,
    )
}

/// Whether this kernel gives us everything the driver uses. `Backend::Auto`
/// falls back to epoll when it does not (seccomp, old kernels, disabled by
/// sysctl).
pub fn probe() -> io::Result<()> {
    let ring = IoUring::new(8)?;
    if !ring.params().is_feature_ext_arg() {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "no io_uring timed wait (IORING_FEAT_EXT_ARG, Linux 5.11)",
        ));
    }
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    for (code, name) in [
        (opcode::Connect::CODE, "connect"),
        (opcode::Send::CODE, "send"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::Timeout::CODE, "timeout"),
        (opcode::AsyncCancel::CODE, "cancel"),
    ] {
        if !probe.is_supported(code) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("no io_uring {name}"),
            ));
        }
    }
    let ring_memory = BufRingMemory::new(8)?;
    // SAFETY: the buffer ring memory is page-aligned, zeroed, 8 entries
    // long, and lives until after the unregister below.
    unsafe {
        ring.submitter()
            .register_buf_ring_with_flags(ring_memory.address(), 8, 0, 0)?
    };
    ring.submitter().unregister_buf_ring(0)?;
    Ok(())
}

/// The page-aligned array of `io_uring_buf` entries the kernel reads.
struct BufRingMemory {
    base: *mut BufRingEntry,
    layout: Layout,
}

impl BufRingMemory {
    fn new(entries: u16) -> io::Result<Self> {
        let size = usize::from(entries) * std::mem::size_of::<BufRingEntry>();
        let layout = Layout::from_size_align(size.max(4096), 4096)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<BufRingEntry>();
        if base.is_null() {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, "buffer ring"));
        }
        Ok(BufRingMemory { base, layout })
    }

    fn address(&self) -> u64 {
        self.base as u64
    }
}

// SAFETY: the memory is owned by this value alone (the kernel only reads
// it while the ring is registered by the same owner); moving the owner to
// another thread moves that ownership with it.
unsafe impl Send for BufRingMemory {}

impl Drop for BufRingMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the owner unregisters
        // the ring (or leaks this value) before it is dropped.
        unsafe { std::alloc::dealloc(self.base.cast(), self.layout) };
    }
}

/// The receive buffers and the ring that lends them to the kernel.
struct ProvidedBuffers {
    memory: Box<[u8]>,
    ring: BufRingMemory,
    /// Our copy of the ring's tail (the kernel reads the shared one).
    tail: u16,
    /// Buffers given back since the last tail publish.
    returned: u16,
}

impl ProvidedBuffers {
    fn new() -> io::Result<Self> {
        let memory = vec![0u8; usize::from(BUFFER_COUNT) * BUFFER_BYTES].into_boxed_slice();
        let ring = BufRingMemory::new(BUFFER_COUNT)?;
        let mut buffers = ProvidedBuffers {
            memory,
            ring,
            tail: 0,
            returned: 0,
        };
        for bid in 0..BUFFER_COUNT {
            buffers.give_back(bid);
        }
        buffers.publish();
        Ok(buffers)
    }

    /// The first `length` bytes of buffer `bid`, which the kernel filled
    /// and gave us (it does not touch it again until `give_back`).
    fn bytes(&self, bid: u16, length: usize) -> &[u8] {
        let start = usize::from(bid) * BUFFER_BYTES;
        self.memory
            .get(start..start + length.min(BUFFER_BYTES))
            .unwrap_or_default()
    }

    /// Queues buffer `bid` to be lent again (visible at `publish`).
    fn give_back(&mut self, bid: u16) {
        assert!(bid < BUFFER_COUNT);
        let slot = usize::from(self.tail.wrapping_add(self.returned) & (BUFFER_COUNT - 1));
        let address = self.memory.as_ptr() as u64 + (usize::from(bid) * BUFFER_BYTES) as u64;
        // SAFETY: `slot` < BUFFER_COUNT entries of the ring allocation; the
        // kernel only reads entries between its head and the published tail,
        // and this slot is past the published tail until `publish`.
        let entry = unsafe { &mut *self.ring.base.add(slot) };
        entry.set_addr(address);
        entry.set_len(BUFFER_BYTES as u32);
        entry.set_bid(bid);
        self.returned += 1;
    }

    /// Makes the given-back buffers visible to the kernel (one release store).
    fn publish(&mut self) {
        if self.returned == 0 {
            return;
        }
        self.tail = self.tail.wrapping_add(self.returned);
        self.returned = 0;
        // SAFETY: the tail field lies inside the first entry of the ring
        // allocation, is 2-byte aligned, and the kernel only reads it; an
        // atomic view of it gives the release ordering the entries need.
        let tail = unsafe { &*BufRingEntry::tail(self.ring.base).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}

/// One device's socket and the memory its operations use.
struct Conn {
    fd: RawFd,
    generation: u32,
    addr: libc::sockaddr_storage,
    addr_len: libc::socklen_t,
    recv_armed: bool,
    /// Allocated once (`Shard::staging_sizes`), never resized: the kernel
    /// reads it during a send.
    staging: Box<[u8]>,
    /// Bytes staged; `[..sending]` are with the kernel while `send_busy`.
    end: usize,
    sending: usize,
    send_busy: bool,
    /// The send in flight belongs to a closed connection: drop its bytes
    /// when it completes, stage nothing until then.
    send_stale: bool,
    /// Half-close once the staged bytes are sent (`close_write`).
    close_write: bool,
}

pub struct UringTransport {
    ring: IoUring,
    conns: Vec<Conn>,
    /// Operations whose final completion has not arrived.
    ops_outstanding: u64,
    /// Devices whose multishot receive ended and must be armed again.
    rearm: Vec<DeviceIndex>,
    /// Completions the sends still owe (each send's own and its answer's),
    /// less those reaped since: what a turn's wait waits for. Answers come
    /// over several turns; counting only the turn's own sends made every
    /// later answer wake the thread alone.
    expected: u32,
    /// Sockets are in the registered file table, slot = device index.
    fixed_files: bool,
}

impl UringTransport {
    fn push(&mut self, entry: squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: every entry built by this driver points only at memory
            // that outlives the operation (see the module docs).
            if unsafe { self.ring.submission().push(&entry) }.is_ok() {
                self.ops_outstanding += 1;
                return Ok(());
            }
            self.ring.submit()?;
        }
        Err(io::Error::other("io_uring submission queue stays full"))
    }

    /// Submits the half-close asked for by `close_write` once nothing is
    /// staged or in flight.
    fn half_close_when_sent(&mut self, device: DeviceIndex) -> io::Result<()> {
        let conn = &mut self.conns[device as usize];
        if !conn.close_write || conn.fd < 0 || conn.send_busy || conn.end > 0 {
            return Ok(());
        }
        conn.close_write = false;
        let entry = on_socket!(self.fixed_files, device, conn, |socket| {
            opcode::Shutdown::new(socket, libc::SHUT_WR).build()
        });
        self.push(entry.user_data(user_data(Kind::Control, 0, device)))
    }

    fn arm_recv(&mut self, device: DeviceIndex) -> io::Result<()> {
        let conn = &mut self.conns[device as usize];
        if conn.fd < 0 || conn.recv_armed {
            return Ok(());
        }
        conn.recv_armed = true;
        let data = user_data(Kind::Recv, conn.generation, device);
        let entry = on_socket!(self.fixed_files, device, conn, |socket| {
            opcode::RecvMulti::new(socket, BUFFER_GROUP).build()
        });
        self.push(entry.user_data(data))
    }
}

impl Transport for UringTransport {
    fn connect(&mut self, device: DeviceIndex, addr: SocketAddr) -> io::Result<()> {
        self.close(device);
        let family = if addr.is_ipv4() {
            libc::AF_INET
        } else {
            libc::AF_INET6
        };
        let kind = libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: plain system call with constant arguments.
        let fd = unsafe { libc::socket(family, kind, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        set_nodelay(fd);
        let conn = &mut self.conns[device as usize];
        conn.fd = conn_fd_check(fd);
        if self.fixed_files {
            if let Err(e) = self.ring.submitter().register_files_update(device, &[fd]) {
                self.close(device);
                return Err(e);
            }
        }
        let conn = &mut self.conns[device as usize];
        conn.addr_len = write_sockaddr(&addr, &mut conn.addr);
        let data = user_data(Kind::Connect, conn.generation, device);
        let address = std::ptr::addr_of!(conn.addr).cast::<libc::sockaddr>();
        let entry = on_socket!(self.fixed_files, device, conn, |socket| {
            opcode::Connect::new(socket, address, conn.addr_len).build()
        });
        self.push(entry.user_data(data))
    }

    fn tx_room(&self, device: DeviceIndex) -> usize {
        let conn = &self.conns[device as usize];
        if conn.send_stale {
            0
        } else {
            conn.staging.len() - conn.end
        }
    }

    fn queue(&mut self, device: DeviceIndex, bytes: &[u8]) {
        let conn = &mut self.conns[device as usize];
        let end = conn.end + bytes.len();
        assert!(
            end <= conn.staging.len() && !conn.send_stale,
            "queue past tx_room"
        );
        // Appending after `sending` never touches the bytes the kernel holds.
        conn.staging[conn.end..end].copy_from_slice(bytes);
        conn.end = end;
    }

    fn flush(&mut self, device: DeviceIndex) -> io::Result<()> {
        let conn = &mut self.conns[device as usize];
        if conn.fd < 0 {
            return Err(io::ErrorKind::NotConnected.into());
        }
        if conn.send_busy || conn.end == 0 {
            return Ok(());
        }
        conn.send_busy = true;
        conn.sending = conn.end;
        let data = user_data(Kind::Send, conn.generation, device);
        let length = conn.sending as u32;
        let entry = on_socket!(self.fixed_files, device, conn, |socket| {
            opcode::Send::new(socket, conn.staging.as_ptr(), length).build()
        });
        self.expected = self.expected.saturating_add(2);
        self.push(entry.user_data(data))
    }

    fn close_write(&mut self, device: DeviceIndex) {
        self.conns[device as usize].close_write = true;
        let _ = self.half_close_when_sent(device);
    }

    fn close(&mut self, device: DeviceIndex) {
        let conn = &mut self.conns[device as usize];
        conn.close_write = false;
        if conn.fd < 0 {
            return;
        }
        let (fd, generation) = (conn.fd, conn.generation);
        conn.fd = -1;
        conn.generation = conn.generation.wrapping_add(1) & 0xFF_FFFF;
        conn.recv_armed = false;
        if conn.send_busy {
            conn.send_stale = true;
        } else {
            conn.end = 0;
        }
        for kind in [Kind::Connect, Kind::Recv] {
            let cancel = opcode::AsyncCancel::new(user_data(kind, generation, device));
            let _ = self.push(
                cancel
                    .build()
                    .user_data(user_data(Kind::Control, 0, device)),
            );
        }
        // SAFETY: `fd` is our socket, closed exactly once (conn.fd is reset
        // above). Operations still holding it keep their own file reference;
        // shutdown makes them complete promptly.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        if self.fixed_files {
            // The table's reference goes too, or the socket outlives close.
            let _ = self.ring.submitter().register_files_update(device, &[-1]);
        }
        // SAFETY: as above.
        unsafe { libc::close(fd) };
    }
}

fn conn_fd_check(fd: RawFd) -> RawFd {
    assert!(fd >= 0);
    fd
}

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call; the size passed is its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            std::ptr::addr_of!(one).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

fn write_sockaddr(addr: &SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(*out).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: v6.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(std::ptr::addr_of_mut!(*out).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

pub struct UringDriver {
    transport: UringTransport,
    buffers: ProvidedBuffers,
    completions: Vec<(u64, i32, u32)>,
    /// Created disabled (single issuer): the reader thread enables it, and
    /// so becomes the one thread that may submit.
    disabled: bool,
    /// The kernel has `min_wait_usec` (see the module docs).
    min_timeout: bool,
    /// A socket pair: the ring polls `stop_rx`; `Reader::stop` writes to a
    /// clone of `stop_tx` (`waker`), which ends the wait at once.
    stop_rx: UnixStream,
    stop_tx: UnixStream,
}

/// A single-issuer ring with deferred task work, created disabled so that
/// the thread that runs it, not this one, becomes its issuer; a plain ring on
/// kernels without those flags (before 6.1).
fn new_ring() -> io::Result<(IoUring, bool)> {
    let mut builder = IoUring::builder();
    builder
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_r_disabled();
    match builder.build(SQ_ENTRIES) {
        Ok(ring) => Ok((ring, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((IoUring::new(SQ_ENTRIES)?, false)),
        Err(e) => Err(e),
    }
}

impl UringDriver {
    /// `staging_sizes`: each device's send staging bytes, by device index.
    pub fn new(staging_sizes: &[usize]) -> io::Result<Self> {
        let device_count = staging_sizes.len();
        let (ring, disabled) = new_ring()?;
        let min_timeout = ring.params().is_feature_min_timeout();
        let slots = u32::try_from(device_count)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "too many devices"))?;
        let fixed_files = slots > 0 && ring.submitter().register_files_sparse(slots).is_ok();
        let buffers = ProvidedBuffers::new()?;
        // SAFETY: the ring memory is page-aligned and BUFFER_COUNT entries
        // long; it lives in `buffers` until after unregister (or is leaked).
        unsafe {
            let address = buffers.ring.address();
            ring.submitter()
                .register_buf_ring_with_flags(address, BUFFER_COUNT, BUFFER_GROUP, 0)?
        };
        let conns = staging_sizes
            .iter()
            .map(|&staging_bytes| Conn {
                fd: -1,
                generation: 0,
                // SAFETY: all-zero is a valid sockaddr_storage.
                addr: unsafe { std::mem::zeroed() },
                addr_len: 0,
                recv_armed: false,
                staging: vec![0; staging_bytes].into_boxed_slice(),
                end: 0,
                sending: 0,
                send_busy: false,
                send_stale: false,
                close_write: false,
            })
            .collect();
        let transport = UringTransport {
            ring,
            conns,
            ops_outstanding: 0,
            rearm: Vec::with_capacity(device_count),
            expected: 0,
            fixed_files,
        };
        let completions = Vec::with_capacity(2 * SQ_ENTRIES as usize);
        let (stop_rx, stop_tx) = UnixStream::pair()?;
        Ok(UringDriver {
            transport,
            buffers,
            completions,
            disabled,
            min_timeout,
            stop_rx,
            stop_tx,
        })
    }

    /// What wakes the thread for a stop: a byte written to it.
    pub fn waker(&self) -> io::Result<UnixStream> {
        self.stop_tx.try_clone()
    }

    pub fn run(mut self, mut shard: Shard, stop: &AtomicBool) -> io::Result<()> {
        if self.disabled {
            self.transport.ring.submitter().register_enable_rings()?;
        }
        // One-shot: the stop ends the loop, so it is never armed again.
        let stop_poll = opcode::PollAdd::new(Fd(self.stop_rx.as_raw_fd()), libc::POLLIN as u32);
        self.transport
            .push(stop_poll.build().user_data(user_data(Kind::Control, 0, 0)))?;
        let clock = Clock::new();
        shard.start();
        let result = self.event_loop(&mut shard, stop, &clock);
        if result.is_ok() {
            // A clean stop: closing messages out, then read until the peers
            // close their end (see `CLOSE_LINGER_MAX`); shut_down closes
            // the sockets whatever happens here.
            shard.close_politely(&mut self.transport);
            shard.linger(&clock, |shard, wait_ns| self.turn(shard, wait_ns, &clock));
        }
        shard.finish(clock.now());
        shard.publish();
        let drained = self.shut_down();
        if !drained {
            // The kernel may still write into these: never free them.
            std::mem::forget(self);
        }
        result
    }

    fn event_loop(
        &mut self,
        shard: &mut Shard,
        stop: &AtomicBool,
        clock: &Clock,
    ) -> io::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let now = clock.now();
            shard.run_due(now, &mut self.transport);
            let wake_at_ns = shard.wake_at_ns().unwrap_or(u64::MAX);
            self.turn(shard, wake_at_ns.saturating_sub(now.mono_ns), clock)?;
        }
        Ok(())
    }

    /// One wait (at most `wait_ns`) and the completions it brings.
    fn turn(&mut self, shard: &mut Shard, wait_ns: u64, clock: &Clock) -> io::Result<()> {
        self.wait(wait_ns.min(WAIT_NS_MAX), shard.slack_ns())?;
        shard.count_wakeup();
        let now = clock.now();
        self.reap();
        for index in 0..self.completions.len() {
            let (data, result, flags) = self.completions[index];
            self.dispatch(shard, data, result, flags, now);
        }
        self.buffers.publish();
        for index in 0..self.transport.rearm.len() {
            let device = self.transport.rearm[index];
            self.transport.arm_recv(device)?;
        }
        self.transport.rearm.clear();
        shard.publish();
        Ok(())
    }

    /// Submits the turn's work and waits up to `wait_ns` for the completions
    /// its sends will produce (see the module docs).
    fn wait(&mut self, wait_ns: u64, slack_ns: u64) -> io::Result<()> {
        let want = if self.min_timeout {
            (self.transport.expected as usize).clamp(1, SQ_ENTRIES as usize)
        } else {
            1
        };
        let timeout = Timespec::new()
            .sec(wait_ns / 1_000_000_000)
            .nsec((wait_ns % 1_000_000_000) as u32);
        let args = SubmitArgs::new().timespec(&timeout);
        let min_wait_us = (slack_ns / 2).min(MIN_WAIT_NS_MAX) / 1_000;
        let min_wait_us = min_wait_us.max(1) as u32;
        let args = if want > 1 {
            args.min_wait_usec(min_wait_us)
        } else {
            args
        };
        match self
            .transport
            .ring
            .submitter()
            .submit_with_args(want, &args)
        {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Copies the completions out (16 bytes each; no sample data) so that
    /// handling them may submit new work on the same ring.
    fn reap(&mut self) {
        self.completions.clear();
        let capacity = self.completions.capacity();
        for cqe in self.transport.ring.completion().take(capacity) {
            self.completions
                .push((cqe.user_data(), cqe.result(), cqe.flags()));
        }
        let finished = self
            .completions
            .iter()
            .filter(|c| !cqueue::more(c.2))
            .count() as u64;
        self.transport.ops_outstanding = self.transport.ops_outstanding.saturating_sub(finished);
        // An answer that never comes (a timeout, a closed connection) or one
        // split over two buffers skews the count; a wait that ends with
        // nothing forgets it.
        let reaped = u32::try_from(self.completions.len()).unwrap_or(u32::MAX);
        self.transport.expected = match reaped {
            0 => 0,
            n => self.transport.expected.saturating_sub(n),
        };
    }

    fn dispatch(&mut self, shard: &mut Shard, data: u64, result: i32, flags: u32, now: Now) {
        let (kind, generation, device) = split_user_data(data);
        let t = &mut self.transport;
        let current = t
            .conns
            .get(device as usize)
            .is_some_and(|c| c.generation == generation);
        match kind {
            k if k == Kind::Connect as u8 && current => {
                if result == 0 {
                    // Receive armed first: a handshake answer may come fast.
                    let armed = t.arm_recv(device);
                    shard.on_connected(device, now, t);
                    if armed.is_err() {
                        shard.on_closed(device, now, t);
                    }
                } else {
                    shard.on_connect_failed(device, now, t);
                }
            }
            k if k == Kind::Recv as u8 => {
                let bid = cqueue::buffer_select(flags);
                if current && !cqueue::more(flags) {
                    t.conns[device as usize].recv_armed = false;
                }
                match (current, result, bid) {
                    (true, n, Some(bid)) if n > 0 => {
                        let bytes = self.buffers.bytes(bid, n as usize);
                        shard.on_recv(device, bytes, now, t);
                        if !cqueue::more(flags) {
                            t.rearm.push(device);
                        }
                    }
                    (true, n, _) if n == -libc::ENOBUFS => t.rearm.push(device),
                    (true, _, _) => shard.on_closed(device, now, t),
                    (false, _, _) => {}
                }
                if let Some(bid) = bid {
                    self.buffers.give_back(bid);
                }
            }
            k if k == Kind::Send as u8 => self.on_sent(shard, device, current, result, now),
            _ => {}
        }
    }

    fn on_sent(
        &mut self,
        shard: &mut Shard,
        device: DeviceIndex,
        current: bool,
        result: i32,
        now: Now,
    ) {
        let t = &mut self.transport;
        let Some(conn) = t.conns.get_mut(device as usize) else {
            return;
        };
        conn.send_busy = false;
        if conn.send_stale || !current {
            conn.send_stale = false;
            conn.end = 0;
            return;
        }
        if result < 0 {
            shard.on_closed(device, now, t);
            return;
        }
        let sent = (result as usize).min(conn.sending);
        conn.staging.copy_within(sent..conn.end, 0);
        conn.end -= sent;
        conn.sending = 0;
        if (conn.end > 0 && t.flush(device).is_err()) || t.half_close_when_sent(device).is_err() {
            shard.on_closed(device, now, t);
        }
    }

    /// Closes every connection and waits (bounded) for
    /// every operation's last completion. Returns whether all arrived.
    fn shut_down(&mut self) -> bool {
        // The stop poll completes, if a loop that ended on an error left it.
        let _ = io::Write::write_all(&mut &self.stop_tx, &[1]);
        for device in 0..self.transport.conns.len() {
            self.transport.close(device as DeviceIndex);
        }
        // Waits with a timeout argument, not a timer operation: a timer of
        // our own would be one operation still outstanding at every check.
        let spec = Timespec::new().nsec(10_000_000);
        let args = SubmitArgs::new().timespec(&spec);
        for _ in 0..DRAIN_ROUNDS_MAX {
            if self.drained() {
                break;
            }
            match self.transport.ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(_) => break,
            }
            self.reap();
            for index in 0..self.completions.len() {
                let (data, _, flags) = self.completions[index];
                let (kind, _, device) = split_user_data(data);
                if let Some(bid) = cqueue::buffer_select(flags) {
                    self.buffers.give_back(bid);
                }
                if kind == Kind::Send as u8 {
                    if let Some(conn) = self.transport.conns.get_mut(device as usize) {
                        conn.send_busy = false;
                    }
                }
            }
        }
        self.drained()
            && self
                .transport
                .ring
                .submitter()
                .unregister_buf_ring(BUFFER_GROUP)
                .is_ok()
    }

    fn drained(&self) -> bool {
        let t = &self.transport;
        t.ops_outstanding == 0 && !t.conns.iter().any(|c| c.send_busy)
    }
}
