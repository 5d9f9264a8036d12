//! MBAP and RTU framers: frames and first error independent of chunking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::protocol::modbus::fuzz::fuzz_framers(data);
});
