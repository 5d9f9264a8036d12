//! The write-ahead log: preallocated memory-mapped segments, CRC32C-framed
//! batches of samples, group commit, per-sink cursors, recovery, retention.
