//! Encapsulation framing + CIP replies (Forward Open, Multiple Service
//! Packet, Read Tag, fragments) through the driver-facing EtherNet/IP
//! session (handshake, cycles, timeouts, reconnects), over arbitrary bytes
//! as the controller's side of the stream, split into arbitrary chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::protocol::enip::fuzz::fuzz_session(data);
});
