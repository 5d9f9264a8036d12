//! The TPKT framer and the COTP/S7 parsers alone: the packets and the first
//! error of a stream must not depend on how it is chunked.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::protocol::s7::fuzz::fuzz_framers(data);
});
