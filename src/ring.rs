//! The lock-free single-producer single-consumer ring of Sample records
//! between a reader thread and the WAL writer.
