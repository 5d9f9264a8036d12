//! One segment file: preallocated, memory-mapped, shared between the writer
//! and cursors. This file holds all of the WAL's `unsafe`.
//!
//! The sharing rule that makes the mapping sound: bytes below `published`
//! are immutable (the writer asserts it never writes there), so any thread
//! may view them; bytes at or above `published` are touched only through the
//! one `SegmentWriter`, which needs `&mut` to write. The file is never
//! truncated or resized while mapped (a smaller file would turn reads into
//! SIGBUS), and it is fully allocated before it is mapped (a sparse file
//! would SIGBUS on a full disk).

#![allow(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use memmap2::{MmapOptions, MmapRaw};

use super::format::{SegmentHeader, SEGMENT_BYTES_MAX, SEGMENT_HEADER_BYTES};
use crate::sample::{Sample, SAMPLE_SIZE};

// The in-place view reads little-endian integers as native ones.
#[cfg(not(target_endian = "little"))]
compile_error!("the WAL's zero-copy Sample view assumes a little-endian host");

const _: () = assert!(std::mem::size_of::<Sample>() == SAMPLE_SIZE);
const _: () = assert!(std::mem::align_of::<Sample>() == 8);

pub(crate) struct Segment {
    first_seq: u64,
    path: PathBuf,
    file: File,
    map: MmapRaw,
    len: usize,
    published: AtomicUsize,
    sealed: AtomicBool,
    writer_claimed: AtomicBool,
}

/// Why a new segment could not be made.
pub(crate) enum CreateError {
    /// fallocate found no space: a full disk, handled by `when_full`.
    NoSpace,
    Io(&'static str, PathBuf, io::Error),
}

pub(crate) fn segment_file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.wal")
}

impl Segment {
    /// Creates `dir/<first_seq>.wal`: a temporary file is preallocated and
    /// given its header, then renamed into place and the directory synced.
    /// The header is not synced here (one journal commit less per segment):
    /// the first commit's fdatasync covers it. A crash before that can leave
    /// a `.wal` name with a zero header and no frames, which recovery removes
    /// as an interrupted creation (nothing in it was ever durable).
    pub(crate) fn create(
        dir: &Path,
        dir_file: &File,
        first_seq: u64,
        size: u64,
    ) -> Result<Arc<Segment>, CreateError> {
        let path = dir.join(segment_file_name(first_seq));
        let tmp = dir.join(format!("{}.tmp", segment_file_name(first_seq)));
        fn io_err(op: &'static str, p: &Path) -> impl FnOnce(io::Error) -> CreateError {
            let p = p.to_path_buf();
            move |e| CreateError::Io(op, p, e)
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        if let Err(e) = fallocate(&file, size) {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return match e.raw_os_error() {
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => Err(CreateError::NoSpace),
                _ => Err(CreateError::Io("fallocate", tmp, e)),
            };
        }
        let header = SegmentHeader {
            first_seq,
            segment_bytes: size,
        }
        .encode();
        if let Err(e) = file.write_all_at(&header, 0) {
            let _ = fs::remove_file(&tmp);
            return Err(CreateError::Io("write header", tmp, e));
        }
        fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
        dir_file.sync_all().map_err(io_err("fsync dir", dir))?;
        let seg =
            Segment::map(file, path.clone(), first_seq, true).map_err(io_err("mmap", &path))?;
        seg.published.store(SEGMENT_HEADER_BYTES, Ordering::Release);
        Ok(seg)
    }

    /// Maps an existing segment file at its current length. Writable
    /// segments can be claimed by one writer (recovery, then the WAL writer);
    /// a read-only segment is published in full (for `wal inspect`).
    pub(crate) fn open(path: &Path, first_seq: u64, writable: bool) -> io::Result<Arc<Segment>> {
        let file = OpenOptions::new().read(true).write(writable).open(path)?;
        Segment::map(file, path.to_path_buf(), first_seq, writable)
    }

    fn map(file: File, path: PathBuf, first_seq: u64, writable: bool) -> io::Result<Arc<Segment>> {
        let len = usize::try_from(file.metadata()?.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "segment too large"))?;
        if len < SEGMENT_HEADER_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "segment shorter than its header",
            ));
        }
        // No segment millrace writes is larger: a bigger file in the WAL
        // directory is not one of ours, and is not mapped or walked.
        if len as u64 > SEGMENT_BYTES_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("segment of {len} bytes, larger than any segment ({SEGMENT_BYTES_MAX})"),
            ));
        }
        let map = if writable {
            MmapOptions::new().len(len).map_raw(&file)?
        } else {
            MmapOptions::new().len(len).map_raw_read_only(&file)?
        };
        Ok(Arc::new(Segment {
            first_seq,
            path,
            file,
            map,
            len,
            published: AtomicUsize::new(if writable { 0 } else { len }),
            sealed: AtomicBool::new(!writable),
            writer_claimed: AtomicBool::new(!writable),
        }))
    }

    pub(crate) fn first_seq(&self) -> u64 {
        self.first_seq
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_sealed(&self) -> bool {
        self.sealed.load(Ordering::Acquire)
    }

    /// fdatasync of the segment file: its dirty pages and the metadata
    /// needed to read them back (the unwritten-extent conversion). Any
    /// thread may call it (syncer.rs does, while the writer appends).
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Publishes `..end` from the sync thread, after the bytes are durable.
    /// The mark only grows: `fetch_max`, so a writer's own later `publish`
    /// (which asserts it never moves back) and this cannot undo each other.
    /// Sound for the sharing rule: the writer wrote `..end` before it handed
    /// the job over and writes only at or above its own offset, never below.
    pub(crate) fn publish_synced(&self, end: usize) {
        assert!(end <= self.len, "publish past the segment end");
        self.published.fetch_max(end, Ordering::AcqRel);
    }

    /// The immutable prefix: every byte the writer has published.
    pub(crate) fn published(&self) -> &[u8] {
        let end = self.published.load(Ordering::Acquire).min(self.len);
        // SAFETY: the mapping is `len` bytes long and lives as long as `self`;
        // bytes below `published` are never written again (SegmentWriter
        // asserts every write starts at or above it, and `published` only
        // grows), so a shared view of them cannot race with a write. The file
        // is truncated only by `shrink_unlinked`, which takes `&mut self` (so
        // no view exists then) and leaves `published` at 0 (none after it).
        unsafe { std::slice::from_raw_parts(self.map.as_ptr(), end) }
    }

    /// Frees the file's blocks beyond `len` bytes, for a deleted segment on
    /// its way out (reclaimer.rs: a few MiB at a time, so that the discard
    /// each free issues never holds the disk for long). `&mut self`: nothing
    /// else holds the segment, so no view of the mapping exists, and nothing
    /// is published from here on.
    pub(crate) fn shrink_unlinked(&mut self, len: u64) -> io::Result<()> {
        *self.published.get_mut() = 0;
        self.file.set_len(len)
    }

    /// The one writer of this segment, if nobody has claimed it yet.
    pub(crate) fn claim_writer(self: &Arc<Self>) -> Option<SegmentWriter> {
        if self.writer_claimed.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(SegmentWriter {
            seg: Arc::clone(self),
        })
    }
}

/// Exclusive write access to the unpublished part of one segment.
pub(crate) struct SegmentWriter {
    seg: Arc<Segment>,
}

impl SegmentWriter {
    pub(crate) fn segment(&self) -> &Arc<Segment> {
        &self.seg
    }

    /// The whole mapping, for the writer's own reads (recovery scan).
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is `len` bytes and outlives the borrow; writes
        // go only through `&mut self` of this unique writer, so none can
        // happen while this shared borrow is alive; other threads read only
        // the published prefix, and reads do not race with reads.
        unsafe { std::slice::from_raw_parts(self.seg.map.as_ptr(), self.seg.len) }
    }

    /// Writes `head` then `body` at `offset` (at or above `published`) with
    /// one pwritev(2) through the page cache that the mappings share.
    ///
    /// Why not a store into the mapping: on ext4 every first store to a page
    /// of a preallocated (unwritten) extent takes a page_mkwrite fault; here
    /// that ran at ~245 MiB/s against ~445 MiB/s for pwrite, before any sync.
    pub(crate) fn write_at(&mut self, offset: usize, head: &[u8], body: &[u8]) -> io::Result<()> {
        let published = self.seg.published.load(Ordering::Relaxed);
        assert!(offset >= published, "write below the published mark");
        let total = head.len() + body.len();
        let end = offset.checked_add(total).expect("offset overflow");
        assert!(end <= self.seg.len, "write past the segment end");
        let iov = [
            libc::iovec {
                iov_base: head.as_ptr() as *mut libc::c_void,
                iov_len: head.len(),
            },
            libc::iovec {
                iov_base: body.as_ptr() as *mut libc::c_void,
                iov_len: body.len(),
            },
        ];
        let pos = libc::off_t::try_from(offset).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: both iovecs describe live slices borrowed for the call (the
        // kernel only reads them); the descriptor is open for the life of
        // the segment; the file range is at or above `published` and inside
        // the file, so no thread holds a view of the bytes it changes.
        let n = unsafe { libc::pwritev(self.seg.file.as_raw_fd(), iov.as_ptr(), 2, pos) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != total {
            // Short writes do not happen on regular files short of an error;
            // the caller treats this like one (fatal).
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short pwritev"));
        }
        Ok(())
    }

    /// Zeroes `offset..end` (cutting a torn tail), above `published`.
    pub(crate) fn zero(&mut self, offset: usize, end: usize) {
        let published = self.seg.published.load(Ordering::Relaxed);
        assert!(offset >= published && offset <= end && end <= self.seg.len);
        // SAFETY: as for `write_at`: inside the mapping, above `published`,
        // and written only by this unique, mutably borrowed writer.
        unsafe {
            std::ptr::write_bytes(self.seg.map.as_mut_ptr().add(offset), 0, end - offset);
        }
    }

    /// Makes `..end` visible to cursors. Call only after the bytes are
    /// durable (or in `sync = none`, after they are written).
    pub(crate) fn publish(&mut self, end: usize) {
        assert!(end <= self.seg.len);
        let old = self.seg.published.load(Ordering::Relaxed);
        assert!(end >= old, "published mark moved backwards");
        self.seg.published.store(end, Ordering::Release);
    }

    /// No byte will be published after this: cursors may move on.
    pub(crate) fn seal(self) {
        self.seg.sealed.store(true, Ordering::Release);
    }

    /// See [`Segment::sync_data`].
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        self.seg.sync_data()
    }
}

pub(crate) fn fallocate(file: &File, size: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(size)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "segment size"))?;
    // SAFETY: a plain system call on an open descriptor we own; mode 0
    // allocates blocks and sets the file size, touching no process memory.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes the directory's exclusive advisory lock (`flock`) on `file`;
/// `Ok(false)` if another open file description holds it.
pub(crate) fn try_lock_exclusive(file: &File) -> io::Result<bool> {
    // SAFETY: a plain system call on an open descriptor we own; it touches no
    // process memory. The lock lives as long as the descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// The bytes of a sample slice, as they go into a frame.
pub(crate) fn sample_bytes(samples: &[Sample]) -> &[u8] {
    // SAFETY: Sample is repr(C), 24 bytes with explicit reserved bytes and no
    // implicit padding (8 + 8 + 4 + 1 + 1 + 2 = 24, asserted at compile time
    // in sample.rs), so every byte of the slice is initialised; u8 has
    // alignment 1 and the length is exact.
    unsafe {
        std::slice::from_raw_parts(
            samples.as_ptr().cast::<u8>(),
            std::mem::size_of_val(samples),
        )
    }
}

/// Views validated frame bytes as samples in place; `None` if the length is
/// not a whole number of samples or the address is not 8-aligned.
pub(crate) fn samples_from_bytes(bytes: &[u8]) -> Option<&[Sample]> {
    if bytes.len() % SAMPLE_SIZE != 0
        || bytes.as_ptr().align_offset(std::mem::align_of::<Sample>()) != 0
    {
        return None;
    }
    // SAFETY: length and alignment checked above; Sample is plain integers
    // (i64, u64, u32, u8, u8, [u8; 2]) with no padding, so every bit pattern
    // is a valid Sample; the result borrows `bytes`, so it cannot outlive or
    // alias a write to them.
    Some(unsafe {
        std::slice::from_raw_parts(bytes.as_ptr().cast::<Sample>(), bytes.len() / SAMPLE_SIZE)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Quality, TagId, ValueKind};

    #[test]
    fn cast_round_trips_and_rejects_misalignment() {
        let s = [
            Sample::new(1, TagId(2), Quality::GOOD, ValueKind::U64, 3),
            Sample::new(-4, TagId(5), Quality::TIMEOUT, ValueKind::F64, 6),
        ];
        let b = sample_bytes(&s);
        assert_eq!(b.len(), 48);
        assert_eq!(&b[..24], &s[0].to_bytes());
        assert_eq!(samples_from_bytes(b), Some(&s[..]));
        assert_eq!(samples_from_bytes(&b[..23]), None);
        assert_eq!(samples_from_bytes(&b[4..28]), None);
    }
}
