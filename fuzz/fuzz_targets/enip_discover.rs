//! `millrace discover` for EtherNet/IP: the tag list's paging, program
//! scopes and template answers (protocol/enip/discover.rs) over arbitrary
//! bytes as the controller's side of the stream, in arbitrary chunks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::protocol::enip::fuzz::fuzz_discover(data);
});
