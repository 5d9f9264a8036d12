//! The write-ahead log: preallocated memory-mapped segments, CRC32C-framed
//! batches of samples, group commit, per-sink cursors, recovery, retention.
//!
//! It owns the promise "nothing acknowledged is lost": a sample counts as
//! durable only once an fdatasync covering it has returned, and a cursor never
//! sees a frame that is not durable. It must never skip a corrupt frame
//! silently, never retry a failed sync, and never map a sparse file.
//!
//! # On-disk format (version 3, all integers little-endian)
//!
//! A directory holds segment files named by the first sequence number they
//! hold (`00000000000000000000.wal`, 20 digits), cursor checkpoints
//! (`cursor.NAME.ckpt`), a `LOCK` file, set-aside files (`*.corrupt`), and
//! the tag tables (`tags.SEQ.tsv`, see tag_history.rs).
//! Every segment has the same size, given at creation and preallocated with
//! fallocate; unused space is zero, and a zero frame length ends the frames.
//!
//! ```text
//! struct SegmentHeader {          // offset 0, 48 bytes
//!     magic: [u8; 8],             // b"MLRCWAL\0"
//!     version: u16,               // 3 (2: bodies are records; 1: refused)
//!     header_bytes: u16,          // 48
//!     reserved0: u32,             // 0
//!     first_seq: u64,             // == the number in the file name
//!     segment_bytes: u64,         // == the file's length
//!     reserved1: [u8; 12],        // 0
//!     header_crc: u32,            // CRC32C (Castagnoli) of bytes 0..44
//! }
//! struct Frame {                  // at 48, then back to back; every offset 8-aligned
//!     frame_bytes: u32,           // 40 + the body's bytes; 0 = no more frames
//!     frame_crc: u32,             // CRC32C of bytes 0..4, then 8..frame_bytes
//!     first_seq: u64,             // seq of record 0; record i has first_seq + i
//!     batch: BatchHeader,
//!     body: [Block],              // version 3: blocks (compact.rs), about 8 bytes
//!                                 // a sample of a response; version 2:
//!                                 // [Sample; sample_count], 24 bytes each
//! }
//! struct BatchHeader {            // 24 bytes
//!     sample_count: u32,          // >= 1 (records: text samples take several)
//!     tags_crc: u32,              // CRC32C of the tag table in force (0: none)
//!     ts_min_ns: i64,             // smallest Sample::ts_ns of a row in the batch
//!     ts_max_ns: i64,             // largest (text extension records hold text there)
//! }
//! struct Checkpoint {             // cursor.NAME.ckpt: two of these, at 0 and
//!                                 // 4096 (checkpoint.rs); the higher valid one holds
//!     magic: [u8; 8],             // b"MLRCCKP\0"
//!     version: u16,               // 2 (1: a 32-byte file of one slot)
//!     reserved: [u8; 6],
//!     next_seq: u64,              // every seq below this was delivered by the sink
//!     reserved: u32,
//!     crc: u32,                   // CRC32C of bytes 0..28
//! }
//! ```
//!
//! Sequence numbers count records, from 0 (a text sample is a head and its
//! extension records, `sample.rs`: its seq is its head's, and a frame never
//! holds part of one). Frames are contiguous in sequence
//! within a segment, and a segment's frames end exactly where the next
//! segment's name begins (the writer syncs a segment before it starts the
//! next one, so every sealed segment is complete on disk).
//!
//! Reading a frame: a version 3 body is checked block by block against its
//! bytes and the record count (`compact::check`, in `parse_frame`) and
//! expanded into the reader's reused buffer of `Sample`s (`compact::expand`):
//! one pass that writes 24 bytes a record into memory the reader owns, after
//! reading about a third of that from the page cache. A version 2 body is
//! viewed in place: frames are 8-aligned inside a page-aligned mapping and
//! `Sample` is `repr(C)`, 24 bytes, align 8, with no implicit padding and no
//! invalid bit patterns, so a validated byte range is viewed as `&[Sample]`
//! by one audited cast in `segment.rs`. No rkyv: its archived form of a POD
//! of little-endian integers would be these same bytes, and a packed run is
//! not a layout it can view without expanding either; the CRC, length and
//! block checks are what validation means here.
//!
//! Why blocks: the samples of one response share a time, a quality and a
//! kind, and count up through consecutive tag ids. Stored once per run with
//! the values packed, they cost 8 bytes a sample and a 24-byte block header
//! instead of 24 bytes each: a third of the bytes to copy into the page
//! cache, checksum, sync, read back and free, and a third of the disk
//! writes, which matters to the flash of an edge box.
//!
//! # Threads
//!
//! [`Wal`] is the writer (one thread). [`WalHandle`] is cheap to clone and
//! opens [`Cursor`]s on any thread; cursors share the writer's mappings
//! through `Arc` and read only the published (durable) prefix of a segment,
//! which the writer never writes again. Retention unlinks segments on the
//! writer's thread; their blocks are freed on the `wal-reclaim` thread, a
//! MiB at a time, once no cursor holds them (`reclaimer.rs` says why).
//!
//! The writer encodes a frame's blocks into a reused buffer, then puts the
//! frame into the preallocated file with one pwritev (one copy, from that
//! buffer into the page cache) rather than by
//! stores into the mapping: on ext4 a store to each fresh page of an
//! unwritten extent costs a page_mkwrite fault, which halved append
//! throughput here (see `segment.rs`). Reads - cursors and recovery - are
//! zero-copy views of the same page cache through the mapping.
//!
//! # API in one breath
//!
//! ```text
//! let (mut wal, report) = Wal::open(&cfg.wal)?;        // recovers, reports
//! let handle = wal.handle();                           // Clone + Send
//! wal.append(&samples)?;                               // Err(Full) = backpressure
//! wal.poll_commit(now)?;  wal.commit_deadline();       // group commit by time/bytes
//! let mut c = handle.open_cursor("tp")?;               // on the sink's thread
//! while let Some(f) = c.next() { send(f.first_seq, f.samples) }
//! c.checkpoint(acked_next_seq)?;                       // atomic, durable
//! ```

mod checkpoint;
mod compact;
mod cursor;
mod error;
mod format;
mod inspect;
mod inspect_tags;
mod reclaimer;
mod recovery;
pub mod replay;
mod retention;
mod scan;
mod segment;
mod shared;
mod syncer;
mod writer;

pub use compact::BLOCK_HEADER_BYTES;
pub use cursor::{Cursor, FrameRef};
pub use error::WalError;
pub use format::{
    FrameError, FORMAT_VERSION, FORMAT_VERSION_MIN, FRAME_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES,
};
pub use inspect::{inspect, render_text, Anomaly, CursorInfo, Inspection, SegmentInfo, TextInfo};
pub use inspect_tags::TagTableInfo;
pub use recovery::{RecoveryReport, SetAside, TailCut};
pub use scan::{check_frames, fuzz_segment, FrameCheck};
pub use shared::{DurableSeq, WalHandle};
pub use writer::{Appended, FullCause, Wal, WalStats};

/// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), hardware-accelerated
/// where the CPU has it.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn crc32c_matches_the_published_check_value() {
        assert_eq!(super::crc32c(b"123456789"), 0xE306_9283);
    }
}
