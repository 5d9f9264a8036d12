//! The protocol seam: the one sans-IO session shape every PLC protocol
//! implements, modelled on quinn-proto's `Connection`. The reader hands a
//! session `connected`, bytes and the time; the session hands back request
//! bytes into a buffer it sized, samples into ring slots the reader
//! reserved, and its next deadline. Handshakes (COTP + Setup Communication,
//! RegisterSession + Forward Open, ...) are session states, not reader code.
//!
//! The reader (reader/shard.rs) never names a protocol: it calls this trait
//! through `DeviceSession`'s enum dispatch (one predictable branch per call,
//! the protocol code itself monomorphic).
//!
//! # The contract
//!
//! ```text
//!   on_connected(now) ─► handshake: poll_transmit gives its messages, receive
//!                        takes the answers (no samples) ─► is_ready()
//!   every poll_interval, when ready and no cycle runs:
//!     start_cycle(); while poll_transmit(now, buf) is Some(n): send buf[..n]
//!   bytes arrive:  receive(chunk, ts, out) ─► samples in out[..r.samples]
//!   a deadline:    handle_timeout(now, ts, out) ─► Timeout samples, or Err
//!                  (a handshake that did not finish: drop the connection)
//!   connection lost: disconnect(ts, out) until 0, then fail_unsent until 0
//!   clean stop:    poll_close(buf) ─► send buf[..n] (if Some), close
//! ```
//!
//! - Every request of a cycle ends in exactly its `records` (one per tag,
//!   text tags their fixed extension records too): data, a device-reported
//!   quality, `TIMEOUT`, `DECODE_ERROR` or `NO_CONNECTION`. The reader
//!   promises ring room for `cycle_samples()` before a cycle starts and
//!   relies on this to never find the ring full half-way.
//! - `samples_per_frame_max()` is fixed at construction and never grows (a
//!   plan rebuilt after a negotiation stays within it): the reader sizes its
//!   wrap-around scratch from it.
//! - `request_bytes_max()` is fixed at construction: the reader sizes each
//!   device's send staging from it.
//! - A connection drop ends the cycle: `disconnect` fails what is in flight,
//!   `fail_unsent` what was not sent yet, so nothing of a cycle survives into
//!   the next connection (a session may re-plan after its next handshake).
//! - Errors are values that name the field that was wrong; any `Err` from
//!   `receive` or `handle_timeout` means: keep the samples it counted, close
//!   the connection, back off, and reconnect the same session.

use std::fmt;

use crate::sample::{Quality, Sample};

/// Progress of one `receive` call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    /// Bytes of the chunk used; call again with the rest when it is less
    /// than the chunk (the sample slice filled up).
    pub consumed: usize,
    /// Samples written at the front of the caller's slice.
    pub samples: usize,
}

/// One device's own troubles on a connection it shares with other devices
/// (the Modbus units behind one gateway), for its per-device metrics; the
/// connection's own failures (malformed answers, failed connects) are
/// every one of its devices'.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitBad {
    /// Its requests that timed out.
    pub timeouts: u64,
    /// Its rows the device reported bad (exceptions).
    pub exception_samples: u64,
}

/// A protocol violation, plus the samples written before it and for it:
/// the good ones decoded first, then `DECODE_ERROR` samples for the request
/// whose response broke, when it was matched to one. Keep them all, then
/// close the connection and call `disconnect`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveError<E> {
    pub error: E,
    pub samples: usize,
}

/// What kind of trouble an error is, for counters and the decision to back
/// off (the reader treats all of them as "drop the connection").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorClass {
    /// The peer broke the protocol: counted as a malformed frame.
    Malformed,
    /// The handshake was refused or did not finish in time: counted as a
    /// connect failure.
    Handshake,
}

/// One sans-IO PLC session. See the module documentation for the contract.
pub trait Session {
    /// A protocol error; its `Display` names the field and the values.
    type Error: fmt::Display + fmt::Debug + Copy + PartialEq;
    /// Something worth one log line that is not an error of the connection
    /// (e.g. an S7 PLC answering "PUT/GET access off"); the reader logs a
    /// notice when it differs from the device's last one.
    type Notice: fmt::Display + fmt::Debug + Copy + PartialEq;

    /// Longest request (or handshake message) `poll_transmit` writes.
    fn request_bytes_max(&self) -> usize;
    /// Most samples one `receive` frame, one `handle_timeout` round, one
    /// `disconnect` or one `fail_unsent` round writes: the least room `out`
    /// must have.
    fn samples_per_frame_max(&self) -> usize;
    /// Records one whole poll cycle produces.
    fn cycle_samples(&self) -> usize;
    /// Requests one poll cycle sends (with the plan in force: a session may
    /// re-plan after a handshake).
    fn requests_per_cycle(&self) -> usize;

    /// The transport connected: start the handshake (or be ready at once).
    fn on_connected(&mut self, now_ns: u64);
    /// Handshake finished: cycles may start.
    fn is_ready(&self) -> bool;

    /// Starts a poll cycle: every planned request is due again.
    fn start_cycle(&mut self);
    /// Every request of the cycle handed out by `poll_transmit` (or failed).
    fn cycle_sent(&self) -> bool;
    /// Requests (or handshake messages) awaiting an answer.
    fn inflight_count(&self) -> usize;
    /// Records the unsent rest of the current cycle will produce.
    fn unsent_samples(&self) -> usize;
    /// Writes `quality` samples for the cycle's next unsent request(s) and
    /// marks them done; returns the samples written, 0 when none are left
    /// (or `out` is shorter than `samples_per_frame_max`). Call until 0.
    fn fail_unsent(&mut self, quality: Quality, ts_ns: i64, out: &mut [Sample]) -> usize;

    /// Writes the next message due (a handshake step, or the cycle's next
    /// request while fewer than the negotiated maximum are in flight) into
    /// `buf` (at least `request_bytes_max` long) and returns its length.
    fn poll_transmit(&mut self, now_ns: u64, buf: &mut [u8]) -> Option<usize>;
    /// Feeds received bytes (any split of the stream); `ts_ns` is the UNIX
    /// time stamped on samples that carry no source time.
    fn receive(
        &mut self,
        chunk: &[u8],
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<Received, ReceiveError<Self::Error>>;

    /// The earliest monotonic ns at which `handle_timeout` has work.
    fn next_deadline_ns(&self) -> Option<u64>;
    /// Retires requests past their deadline with `TIMEOUT` samples (call
    /// again while it returns non-zero); `Err` when the handshake timed out.
    fn handle_timeout(
        &mut self,
        now_ns: u64,
        ts_ns: i64,
        out: &mut [Sample],
    ) -> Result<usize, Self::Error>;
    /// The connection is gone: `NO_CONNECTION` samples for what was in
    /// flight, partial frames dropped, handshake state reset. Call until 0.
    fn disconnect(&mut self, ts_ns: i64, out: &mut [Sample]) -> usize;

    /// How an error of this session is counted.
    fn classify(&self, error: &Self::Error) -> ErrorClass;
    /// Samples the device reported bad (exceptions, item errors) since the
    /// session began.
    fn device_bad_samples(&self) -> u64;
    /// The next notice, if any.
    fn poll_notice(&mut self) -> Option<Self::Notice>;

    /// From now on, writes runs of same-typed values packed (`packed.rs`)
    /// where its decoder can: about a third of the records and stores. The
    /// reader turns it on for its ring, whose writer unpacks them into the
    /// WAL; tools and tests that read records one by one leave it off. A
    /// protocol that does not pack ignores it.
    fn pack_runs(&mut self) {}

    /// A clean stop: the messages that end the connection politely (e.g.
    /// EtherNet/IP's Forward Close and UnregisterSession) into `buf` (at
    /// least `request_bytes_max` long), once; `None` when the protocol has
    /// none or the connection is not up. The reader sends them on a clean
    /// stop, best effort (`Shard::close_politely`), with a half-close after
    /// them, and reads what comes back until the peer closes (bounded by
    /// `CLOSE_LINGER_MAX`); the answers are not decoded.
    fn poll_close(&mut self, _buf: &mut [u8]) -> Option<usize> {
        None
    }
}
