//! Sans-IO protocol codecs: bytes and `now` in, samples and requests out. No
//! sockets, no clocks, no threads, no `unsafe`.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

pub mod modbus;
