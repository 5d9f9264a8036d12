//! kdb+ IPC: the codec, compression, the handshake, the columnar publisher and
//! the tickerplant stand-in.
