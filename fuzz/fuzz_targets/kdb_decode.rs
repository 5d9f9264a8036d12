//! kdb+ IPC decoding: whole messages and bare bodies in both byte orders;
//! checks the exact re-encoding round trip (see millrace::kdb::fuzz).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::kdb::fuzz::fuzz_decode(data);
});
