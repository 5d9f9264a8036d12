//! Framer + validation + decoder through the driver-facing session, over
//! arbitrary bytes split into arbitrary chunks (TCP and RTU framing).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::protocol::modbus::fuzz::fuzz_session(data);
});
