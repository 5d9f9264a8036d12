//! TPKT framing + COTP + S7 validation + decoding through the driver-facing
//! S7 session (handshake, cycles, timeouts, reconnects), over arbitrary
//! bytes as the PLC's side of the stream, split into arbitrary chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::protocol::s7::fuzz::fuzz_session(data);
});
