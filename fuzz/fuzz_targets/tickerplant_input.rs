//! What a client sends to `millrace tickerplant`: login hello, then IPC
//! messages through the header check, the decoder, the `.u.upd` checks and
//! the sync answer (see millrace::kdb::fuzz::fuzz_server_input).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::kdb::fuzz::fuzz_server_input(data);
});
