//! Reader runtime: the threads that own PLC connections. Each reader thread,
//! pinned to its core, owns a shard of the devices, polls them on schedule,
//! decodes responses in place and publishes samples into its SPSC ring.
//! This is the only layer (with the WAL and kdb+ sinks) that does I/O.

pub mod scheduler;
