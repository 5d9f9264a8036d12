//! kdb+ IPC decompression of hostile streams, and the compress/decompress
//! round trip (see millrace::kdb::fuzz).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::kdb::fuzz::fuzz_decompress(data);
});
