//! The encapsulation framer and the CIP reply parsers alone: the messages
//! and the first error of a stream must not depend on how it is chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::protocol::enip::fuzz::fuzz_framer(data);
});
