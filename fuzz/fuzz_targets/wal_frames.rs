//! WAL segment bytes as recovery sees them after a crash or a bad disk:
//! header check and frame walk must never panic, and every frame counted
//! must re-parse back to back (see millrace::wal::fuzz_segment).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::wal::fuzz_segment(data);
});
