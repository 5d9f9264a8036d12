//! Opening a WAL directory: lock it, clear leftovers, load checkpoints,
//! delete what every cursor has passed, then scan what is left and decide,
//! per segment, from a small table:
//!
//! | segment | header | frames                                | action                  |
//! |---------|--------|---------------------------------------|-------------------------|
//! | any     | bad    | -                                     | set aside, report       |
//! | sealed  | ok     | end exactly at the next segment's seq | keep                    |
//! | sealed  | ok     | bad frame, or end short of that seq   | set aside, report where |
//! | last    | ok     | clean end, zeros after                | keep, write after it    |
//! | last    | ok     | bad frame or garbage after the end    | zero the tail, report   |
//!
//! A bad tail never stops the start: it was never durable (the writer syncs
//! before it publishes and seals a segment before it starts the next).

#![forbid(unsafe_code)]

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::checkpoint::{self, CheckpointFile};
use super::compact::{BLOCK_HEADER_BYTES, BLOCK_RECORDS_MAX};
use super::error::WalError;
use super::format::{
    FrameError, HeaderError, SegmentHeader, FORMAT_VERSION, FRAME_OVERHEAD_BYTES,
    SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN, SEGMENT_HEADER_BYTES,
};
use super::scan::{describe_tail, scan_segment, ScanStop};
use super::segment::{fallocate, try_lock_exclusive, Segment, SegmentWriter};
use super::shared::{CursorState, Shared};
use crate::config::WalConfig;
use crate::sample::SAMPLE_SIZE;

/// What `Wal::open` found and did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Segments kept.
    pub segments: usize,
    pub frames_scanned: u64,
    pub bytes_scanned: u64,
    /// The seq the next append gets; everything below it on disk is durable.
    pub next_seq: u64,
    pub tail_cut: Option<TailCut>,
    /// Segments and checkpoints renamed to `*.corrupt`.
    pub set_aside: Vec<SetAside>,
    /// Segments deleted because every cursor had passed them.
    pub segments_deleted: usize,
    /// Temporary files of an interrupted segment creation or checkpoint.
    pub stray_files_removed: Vec<PathBuf>,
    /// Each cursor and its checkpoint.
    pub cursors: Vec<(String, u64)>,
}

/// A torn or corrupt tail of the last segment, zeroed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TailCut {
    pub segment: PathBuf,
    /// Where the valid frames end.
    pub offset: u64,
    pub bytes_cut: u64,
    pub frames_cut: u64,
    /// The check the first cut frame failed (`None`: it was only garbage
    /// after a zero length).
    pub reason: Option<FrameError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    pub path: PathBuf,
    pub moved_to: PathBuf,
    /// Where in the file the problem is.
    pub offset: u64,
    pub reason: String,
}

pub(crate) struct Recovered {
    pub shared: Arc<Shared>,
    pub active: Option<SegmentWriter>,
    pub write_offset: usize,
    pub next_seq: u64,
    pub report: RecoveryReport,
}

pub(crate) fn validate(cfg: &WalConfig) -> Result<(), WalError> {
    let s = cfg.segment_size;
    if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&s) || s % 4096 != 0 {
        let (min, max) = (SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
        let why = format!("segment_size {s} must be a multiple of 4096 in {min}..={max}");
        return Err(WalError::Config(why));
    }
    if cfg.quota < 2 * s {
        return Err(WalError::Config(format!(
            "quota {} is less than two segments",
            cfg.quota
        )));
    }
    Ok(())
}

/// Samples one frame in a segment of `len` bytes can hold at most, in
/// either body form (a version 3 body is at most one block header longer
/// than the records: `compact::body_bytes_max`).
pub(crate) fn capacity(len: u64) -> u64 {
    let overhead = SEGMENT_HEADER_BYTES + FRAME_OVERHEAD_BYTES + BLOCK_HEADER_BYTES;
    let records = len.saturating_sub(overhead as u64) / SAMPLE_SIZE as u64;
    records.min(BLOCK_RECORDS_MAX as u64)
}

/// More records than a segment of `len` bytes can hold in any form: every
/// record takes at least a packed value's 8 bytes. A set-aside segment's
/// seqs end below its first seq plus this.
fn records_bound(len: u64) -> u64 {
    len / 8
}

pub(crate) fn recover(cfg: &WalConfig) -> Result<Recovered, WalError> {
    validate(cfg)?;
    let dir = cfg.dir.clone();
    fs::create_dir_all(&dir).map_err(|e| WalError::io("create dir", &dir, e))?;
    let dir_file = File::open(&dir).map_err(|e| WalError::io("open dir", &dir, e))?;
    let lock_path = dir.join("LOCK");
    let lock_file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| WalError::io("open", &lock_path, e))?;
    lock_dir(&lock_file, &lock_path)?;
    let mut report = RecoveryReport::default();
    let listing = list_dir(&dir)?;
    for tmp in &listing.temporaries {
        fs::remove_file(tmp).map_err(|e| WalError::io("remove", tmp, e))?;
        report.stray_files_removed.push(tmp.clone());
    }
    refuse_other_formats(&listing.segments)?;
    let cursors = load_checkpoints(&listing.checkpoints, &mut report)?;
    let checkpoints = || {
        cursors
            .values()
            .map(|c| c.checkpoint.load(Ordering::Relaxed))
    };
    let names = delete_passed(&dir, listing.segments, checkpoints().min(), &mut report)?;
    let checkpoint_max = checkpoints().max().unwrap_or(0);
    let (segments, active, write_offset, next_seq) = scan_all(&names, checkpoint_max, &mut report)?;
    dir_file
        .sync_all()
        .map_err(|e| WalError::io("fsync dir", &dir, e))?;
    report.segments = segments.len();
    report.next_seq = next_seq;
    report.cursors = cursors
        .values()
        .map(|c| (c.name.clone(), c.checkpoint.load(Ordering::Relaxed)))
        .collect();
    let shared = Arc::new(Shared {
        dir,
        dir_file,
        _lock_file: lock_file,
        durable: Arc::new(AtomicU64::new(next_seq)),
        segments: Mutex::new(segments),
        cursors: Mutex::new(cursors),
        dropped_samples: AtomicU64::new(0),
        durable_wait: Default::default(),
    });
    Ok(Recovered {
        shared,
        active,
        write_offset,
        next_seq,
        report,
    })
}

/// Takes the directory's `flock`, waiting a little: a process that forked
/// while an earlier writer of ours held the lock keeps it until its exec.
fn lock_dir(lock_file: &File, lock_path: &Path) -> Result<(), WalError> {
    const ATTEMPTS: u32 = 100;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
    for _ in 0..ATTEMPTS {
        match try_lock_exclusive(lock_file) {
            Ok(true) => return Ok(()),
            Ok(false) => std::thread::sleep(PAUSE),
            Err(e) => return Err(WalError::io("flock", lock_path, e)),
        }
    }
    Err(WalError::Locked(
        lock_path.parent().unwrap_or(lock_path).to_path_buf(),
    ))
}

struct Listing {
    /// (first_seq from the name, path), sorted.
    segments: Vec<(u64, PathBuf)>,
    checkpoints: Vec<(String, PathBuf)>,
    temporaries: Vec<PathBuf>,
}

fn list_dir(dir: &Path) -> Result<Listing, WalError> {
    let mut l = Listing {
        segments: Vec::new(),
        checkpoints: Vec::new(),
        temporaries: Vec::new(),
    };
    let entries = fs::read_dir(dir).map_err(|e| WalError::io("read dir", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| WalError::io("read dir", dir, e))?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        let path = entry.path();
        if name.ends_with(".tmp") && (name.starts_with("cursor.") || name.contains(".wal.")) {
            l.temporaries.push(path);
        } else if let Some(seq) = segment_seq(&name) {
            l.segments.push((seq, path));
        } else if let Some(cursor) = checkpoint::name_of(&name) {
            l.checkpoints.push((cursor.to_string(), path));
        }
    }
    l.segments.sort();
    l.checkpoints.sort();
    Ok(l)
}

/// The seq in a segment file name: exactly 20 digits and `.wal`.
pub(crate) fn segment_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".wal")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn load_checkpoints(
    files: &[(String, PathBuf)],
    report: &mut RecoveryReport,
) -> Result<BTreeMap<String, Arc<CursorState>>, WalError> {
    let mut cursors = BTreeMap::new();
    for (name, path) in files {
        match checkpoint::read(path)? {
            Ok(seq) => {
                let state = CursorState {
                    name: name.clone(),
                    checkpoint: AtomicU64::new(seq),
                    file: Mutex::new(CheckpointFile::default()),
                    open: AtomicBool::new(false),
                };
                cursors.insert(name.clone(), Arc::new(state));
            }
            Err(why) => {
                let reason = format!(
                    "checkpoint rejected: {why}; the cursor restarts at the oldest segment"
                );
                report.set_aside.push(set_aside(path, 0, reason)?);
            }
        }
    }
    Ok(cursors)
}

/// Deletes leading segments whose every sample is below the smallest
/// checkpoint (their end is the next segment's first seq); the last segment
/// is always kept. Returns the rest.
fn delete_passed(
    dir: &Path,
    segments: Vec<(u64, PathBuf)>,
    min_checkpoint: Option<u64>,
    report: &mut RecoveryReport,
) -> Result<Vec<(u64, PathBuf)>, WalError> {
    let Some(min) = min_checkpoint else {
        return Ok(segments);
    };
    let passed = segments
        .windows(2)
        .take_while(|w| w.get(1).is_some_and(|n| n.0 <= min))
        .count();
    for (_, path) in segments.iter().take(passed) {
        fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
        report.segments_deleted += 1;
    }
    if passed > 0 {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| WalError::io("fsync dir", dir, e))?;
    }
    Ok(segments.into_iter().skip(passed).collect())
}

type Scanned = (VecDeque<Arc<Segment>>, Option<SegmentWriter>, usize, u64);

fn scan_all(
    names: &[(u64, PathBuf)],
    checkpoint_max: u64,
    report: &mut RecoveryReport,
) -> Result<Scanned, WalError> {
    let mut kept: VecDeque<Arc<Segment>> = VecDeque::new();
    let mut active: Option<(SegmentWriter, usize, u64)> = None;
    // Never hand out a seq that a set-aside segment may have held, or that a
    // sink has already acknowledged.
    let mut seq_floor = checkpoint_max;
    // Where the last kept sealed segment ends, if no active one follows it.
    let mut kept_end = 0u64;
    for (i, (seq, path)) in names.iter().enumerate() {
        let next_name_seq = names.get(i + 1).map(|n| n.0);
        if next_name_seq.is_none() {
            restore_length(path, *seq)?;
        }
        let opened = Segment::open(path, *seq, true)
            .map_err(|e| e.to_string())
            .and_then(|seg| {
                let w = seg.claim_writer().ok_or("segment already claimed")?;
                check_header(&w, *seq).map(|()| w)
            });
        let mut w = match opened {
            Ok(w) => w,
            Err(_) if next_name_seq.is_none() && all_zero(path)? => {
                // An interrupted creation (see Segment::create): no header,
                // no frames, nothing was ever durable in it.
                fs::remove_file(path).map_err(|e| WalError::io("remove", path, e))?;
                report.stray_files_removed.push(path.clone());
                continue;
            }
            Err(why) => {
                let len = fs::metadata(path).map(|m| m.len()).unwrap_or(0);
                seq_floor = seq_floor.max(seq.saturating_add(records_bound(len)));
                report
                    .set_aside
                    .push(set_aside(path, 0, format!("segment header: {why}"))?);
                continue;
            }
        };
        let scan = scan_segment(w.bytes(), *seq);
        report.frames_scanned += scan.frames;
        report.bytes_scanned += w.bytes().len() as u64;
        if let Some(expected_end) = next_name_seq {
            let bad = match scan.stop {
                ScanStop::Bad { offset, reason } => Some((offset, format!("frame: {reason}"))),
                ScanStop::Clean if scan.end_seq != expected_end => Some((
                    scan.valid_end,
                    format!(
                        "frames end at seq {} but the next segment starts at {expected_end}",
                        scan.end_seq
                    ),
                )),
                ScanStop::Clean => None,
            };
            if let Some((offset, reason)) = bad {
                drop(w);
                report.set_aside.push(set_aside(
                    path,
                    offset as u64,
                    format!("sealed segment: {reason}"),
                )?);
                continue;
            }
            w.publish(scan.valid_end);
            kept.push_back(Arc::clone(w.segment()));
            kept_end = scan.end_seq;
            w.seal();
        } else {
            cut_tail(&mut w, &scan, report)?;
            kept.push_back(Arc::clone(w.segment()));
            active = Some((w, scan.valid_end, scan.end_seq));
        }
    }
    let (active, write_offset, next_seq) = match active {
        Some((w, offset, end_seq)) if end_seq >= seq_floor => (Some(w), offset, end_seq),
        // The last good segment ends below a set-aside one's possible seqs:
        // seal it and let the next append start a segment at the floor.
        Some((w, _, _)) => {
            w.seal();
            (None, 0, seq_floor)
        }
        None => (None, 0, seq_floor.max(kept_end)),
    };
    Ok((kept, active, write_offset, next_seq))
}

/// A last segment shorter than its header says (the file was truncated,
/// e.g. inside a frame) is a torn tail, not a bad segment: its frames up to
/// the cut are intact. Preallocate it back to its size (never map a sparse
/// file); the zeros after the cut end its frames, and `cut_tail` then cuts
/// and reports the partial frame. A header that does not check out, or a
/// disk with no room to extend, leaves the file as it is (set aside later).
fn restore_length(path: &Path, name_seq: u64) -> Result<(), WalError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open", path, e))?;
    let len = file
        .metadata()
        .map_err(|e| WalError::io("stat", path, e))?
        .len();
    let mut header = [0u8; SEGMENT_HEADER_BYTES];
    if len < SEGMENT_HEADER_BYTES as u64 || file.read_exact_at(&mut header, 0).is_err() {
        return Ok(());
    }
    let Ok(h) = SegmentHeader::decode(&header) else {
        return Ok(());
    };
    let size_ok = (SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&h.segment_bytes);
    if h.first_seq != name_seq || !size_ok || h.segment_bytes <= len {
        return Ok(());
    }
    match fallocate(&file, h.segment_bytes).and_then(|()| file.sync_all()) {
        Ok(()) => {
            tracing::warn!(
                "wal: {} was truncated to {len} of {} bytes (a torn tail); \
                 extended with zeros to scan its intact frames",
                path.display(),
                h.segment_bytes
            );
            Ok(())
        }
        Err(e) => {
            tracing::warn!(
                "wal: {} is truncated to {len} of {} bytes and cannot be \
                 extended: {e}",
                path.display(),
                h.segment_bytes
            );
            Ok(())
        }
    }
}

/// True if every byte of the file is zero (or it is empty). Reads in
/// bounded chunks; only called for a last segment whose header failed.
fn all_zero(path: &Path) -> Result<bool, WalError> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let mut buf = vec![0u8; 1 << 16];
    let chunks_max = (SEGMENT_BYTES_MAX as usize) / buf.len() + 1;
    for _ in 0..chunks_max {
        let n = file
            .read(&mut buf)
            .map_err(|e| WalError::io("read", path, e))?;
        let Some(chunk) = buf.get(..n) else {
            return Ok(false);
        };
        if n == 0 {
            return Ok(true);
        }
        if chunk.iter().any(|&b| b != 0) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// Refuses a directory holding a segment of another format version before
/// anything in it is changed (a segment without our magic is left to the
/// scan, which sets damaged files aside).
fn refuse_other_formats(segments: &[(u64, PathBuf)]) -> Result<(), WalError> {
    for (_, path) in segments {
        let mut header = [0u8; SEGMENT_HEADER_BYTES];
        let read = File::open(path).and_then(|f| f.read_exact_at(&mut header, 0));
        if read.is_err() {
            continue;
        }
        if let Err(HeaderError::Version(found)) = SegmentHeader::decode(&header) {
            return Err(WalError::FormatVersion {
                path: path.clone(),
                found,
                supported: FORMAT_VERSION,
            });
        }
    }
    Ok(())
}

fn check_header(w: &SegmentWriter, name_seq: u64) -> Result<(), String> {
    let h = SegmentHeader::decode(w.bytes()).map_err(|e| e.to_string())?;
    if h.first_seq != name_seq {
        return Err(format!(
            "first_seq {} differs from the file name",
            h.first_seq
        ));
    }
    if h.segment_bytes != w.bytes().len() as u64 {
        return Err(format!(
            "segment_bytes {} differs from the file length {}",
            h.segment_bytes,
            w.bytes().len()
        ));
    }
    Ok(())
}

/// Zeroes what follows the last valid frame of the last segment, syncs, and
/// publishes the valid frames (they are durable once this sync returns).
fn cut_tail(
    w: &mut SegmentWriter,
    scan: &super::scan::SegmentScan,
    report: &mut RecoveryReport,
) -> Result<(), WalError> {
    let (tail_end, frames_cut) = describe_tail(w.bytes(), scan.valid_end);
    let reason = match scan.stop {
        ScanStop::Bad { reason, .. } => Some(reason),
        ScanStop::Clean => None,
    };
    if tail_end > scan.valid_end {
        w.zero(scan.valid_end, tail_end);
        report.tail_cut = Some(TailCut {
            segment: w.segment().path().to_path_buf(),
            offset: scan.valid_end as u64,
            bytes_cut: (tail_end - scan.valid_end) as u64,
            frames_cut,
            reason,
        });
    }
    let path = w.segment().path().to_path_buf();
    w.sync_data()
        .map_err(|source| WalError::SyncFailed { path, source })?;
    w.publish(scan.valid_end);
    Ok(())
}

/// Renames `path` to `path.corrupt` (or `.corrupt.N` if taken).
fn set_aside(path: &Path, offset: u64, reason: String) -> Result<SetAside, WalError> {
    let mut moved_to = PathBuf::from(format!("{}.corrupt", path.display()));
    for n in 1..1000 {
        if !moved_to.exists() {
            break;
        }
        moved_to = PathBuf::from(format!("{}.corrupt.{n}", path.display()));
    }
    fs::rename(path, &moved_to).map_err(|e| WalError::io("rename", path, e))?;
    tracing::warn!(
        "wal: set aside {} at offset {offset}: {reason}",
        path.display()
    );
    Ok(SetAside {
        path: path.to_path_buf(),
        moved_to,
        offset,
        reason,
    })
}
