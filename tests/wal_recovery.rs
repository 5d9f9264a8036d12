//! Recovery on open: torn tails, bit flips, zero-filled tails, corrupt sealed
//! segments, missing or bad checkpoints, leftovers, the directory lock.
//! Each test damages real segment files on disk the way a crash or a bad
//! disk would, reopens, and checks both the report and every sample read back.

mod wal_common;

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

use millrace::config::WhenFull;
use millrace::wal::{
    FrameError, Wal, WalError, BLOCK_HEADER_BYTES, FRAME_OVERHEAD_BYTES, SEGMENT_HEADER_BYTES,
};
use wal_common::*;

const SEG: u64 = 16 * 1024;
const N: usize = 10; // samples per frame in these tests
/// The samples of these tests each have their own time, so they never form
/// runs: a frame's body is one records block of 24-byte records.
const FRAME: usize = FRAME_OVERHEAD_BYTES + BLOCK_HEADER_BYTES + 24 * N;

fn frame_offset(k: usize) -> u64 {
    (SEGMENT_HEADER_BYTES + k * FRAME) as u64
}

fn write_bytes(path: &std::path::Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}

fn read_bytes(path: &std::path::Path, offset: u64, len: usize) -> Vec<u8> {
    let f = std::fs::File::open(path).unwrap();
    let mut b = vec![0; len];
    f.read_exact_at(&mut b, offset).unwrap();
    b
}

/// A WAL with `frames` committed frames of N samples each, closed again.
fn wal_with_frames(dir: &std::path::Path, frames: usize) {
    let (mut wal, report) = Wal::open(&config(dir, SEG, 64 * SEG, WhenFull::Block)).unwrap();
    assert_eq!(report.next_seq, 0);
    for _ in 0..frames {
        append(&mut wal, N);
    }
    assert_eq!(wal.commit().unwrap(), (frames * N) as u64);
}

fn reopen(dir: &std::path::Path) -> (Wal, millrace::wal::RecoveryReport) {
    Wal::open(&config(dir, SEG, 64 * SEG, WhenFull::Block)).unwrap()
}

#[test]
fn round_trip_across_reopen_and_rollover() {
    let tmp = tempfile::tempdir().unwrap();
    let frames = 3 * (SEG as usize / FRAME); // about three segments
    wal_with_frames(tmp.path(), frames);
    let (mut wal, report) = reopen(tmp.path());
    assert_eq!(report.next_seq, (frames * N) as u64);
    assert_eq!(report.frames_scanned, frames as u64);
    assert!(report.tail_cut.is_none() && report.set_aside.is_empty());
    assert!(report.segments >= 3, "{report:?}");
    append(&mut wal, N);
    wal.commit().unwrap();
    let mut cursor = wal.open_cursor("sink").unwrap();
    let (first, end, got) = drain(&mut cursor);
    assert_eq!(
        (first, end, got),
        (Some(0), ((frames + 1) * N) as u64, frames + 1)
    );
}

#[test]
fn cursor_sees_only_durable_frames() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = reopen(tmp.path());
    let mut cursor = wal.open_cursor("sink").unwrap();
    append(&mut wal, 5);
    assert!(cursor.next().is_none(), "not committed yet");
    assert_eq!(wal.durable_seq(), 0);
    wal.commit().unwrap();
    assert_eq!(wal.durable_seq(), 5);
    let f = cursor.next().unwrap();
    assert_eq!((f.first_seq, f.samples.len()), (0, 5));
    assert!(cursor.next().is_none());
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 6);
    let seg = &segment_files(tmp.path())[0];
    // Frame 5 lost its second half (zeros where samples were): a torn write.
    write_bytes(seg, frame_offset(5) + 100, &[0u8; FRAME - 100]);
    let (mut wal, report) = reopen(tmp.path());
    let cut = report.tail_cut.clone().expect("a tail cut");
    assert_eq!(cut.offset, frame_offset(5));
    assert_eq!(cut.frames_cut, 1);
    // Up to the last non-zero byte of what was left of the frame.
    assert!(cut.bytes_cut > 0 && cut.bytes_cut <= 100, "{cut:?}");
    assert_eq!(cut.reason, Some(FrameError::Crc));
    assert_eq!(report.next_seq, 5 * N as u64);
    // The cut bytes are zero on disk, and new frames continue the sequence.
    assert!(read_bytes(seg, frame_offset(5), FRAME)
        .iter()
        .all(|&b| b == 0));
    append(&mut wal, N);
    wal.commit().unwrap();
    let (_, end, frames) = drain(&mut wal.open_cursor("c").unwrap());
    assert_eq!((end, frames), (6 * N as u64, 6));
    drop(wal);
    let (_, again) = reopen(tmp.path());
    assert!(again.tail_cut.is_none(), "the cut is clean: {again:?}");
}

#[test]
fn bit_flip_in_the_active_segment_cuts_from_there() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 8);
    let seg = &segment_files(tmp.path())[0];
    let at = frame_offset(3) + 60;
    let byte = read_bytes(seg, at, 1)[0];
    write_bytes(seg, at, &[byte ^ 0x04]);
    let (wal, report) = reopen(tmp.path());
    let cut = report.tail_cut.expect("cut");
    assert_eq!(cut.offset, frame_offset(3));
    assert_eq!(cut.frames_cut, 5, "frames 3..8 walked by their lengths");
    // To the last non-zero byte (a sample ends in its zero reserved bytes).
    assert!(
        cut.bytes_cut > 4 * FRAME as u64 && cut.bytes_cut <= 5 * FRAME as u64,
        "{cut:?}"
    );
    assert_eq!(report.next_seq, 3 * N as u64);
    assert_eq!(drain(&mut wal.open_cursor("c").unwrap()).1, 3 * N as u64);
}

#[test]
fn zero_filled_tail_ends_the_log_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 4);
    let seg = &segment_files(tmp.path())[0];
    // Pages that never reached the disk read back as zeros.
    write_bytes(seg, frame_offset(2), &vec![0u8; 2 * FRAME]);
    let (wal, report) = reopen(tmp.path());
    assert!(
        report.tail_cut.is_none(),
        "zeros are the normal end: {report:?}"
    );
    assert_eq!(report.next_seq, 2 * N as u64);
    assert_eq!(drain(&mut wal.open_cursor("c").unwrap()).1, 2 * N as u64);
}

#[test]
fn zeroed_length_with_a_payload_left_behind_is_cut() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 4);
    let seg = &segment_files(tmp.path())[0];
    write_bytes(seg, frame_offset(3), &[0u8; 8]);
    let (_, report) = reopen(tmp.path());
    let cut = report.tail_cut.expect("the leftover payload is zeroed");
    assert_eq!(cut.offset, frame_offset(3));
    assert_eq!(cut.reason, None);
    assert_eq!(report.next_seq, 3 * N as u64);
}

#[test]
fn corrupt_sealed_segment_is_set_aside_and_the_gap_is_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let per_seg = (SEG as usize - SEGMENT_HEADER_BYTES) / FRAME;
    wal_with_frames(tmp.path(), 3 * per_seg);
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 3);
    let at = frame_offset(4) + 50;
    let byte = read_bytes(&files[1], at, 1)[0];
    write_bytes(&files[1], at, &[!byte]);
    let (mut wal, report) = reopen(tmp.path());
    assert_eq!(report.set_aside.len(), 1, "{report:?}");
    let aside = &report.set_aside[0];
    assert_eq!(aside.path, files[1]);
    assert_eq!(aside.offset, frame_offset(4));
    assert!(aside.reason.contains("CRC32C"), "{}", aside.reason);
    assert!(aside.moved_to.exists() && !files[1].exists());
    assert!(report.tail_cut.is_none());
    assert_eq!(
        report.next_seq,
        (3 * per_seg * N) as u64,
        "later segments are kept"
    );
    // The cursor reads segment 0, jumps the gap (counted), reads segment 2.
    let mut c = wal.open_cursor("c").unwrap();
    let mut seen = 0usize;
    for _ in 0..10_000 {
        let Some(f) = c.next() else { break };
        for (i, s) in f.samples.iter().enumerate() {
            assert_eq!(*s, sample(f.first_seq + i as u64));
        }
        seen += f.samples.len();
    }
    assert_eq!(c.skipped_samples(), (per_seg * N) as u64);
    assert_eq!(seen, 2 * per_seg * N);
    drop(c);
    append(&mut wal, N);
    wal.commit().unwrap();
    let listing = millrace::wal::inspect(tmp.path()).unwrap();
    assert!(listing.anomalies.iter().any(|a| a.kind == "sequence gap"));
    assert!(listing.anomalies.iter().any(|a| a.kind == "set aside"));
}

#[test]
fn missing_checkpoint_restarts_the_cursor_at_the_oldest_segment() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 5);
    {
        let (wal, _) = reopen(tmp.path());
        let mut c = wal.open_cursor("tp").unwrap();
        assert_eq!(drain(&mut c).1, 5 * N as u64);
        c.checkpoint(3 * N as u64).unwrap();
    }
    {
        let (wal, report) = reopen(tmp.path());
        assert_eq!(report.cursors, vec![("tp".to_string(), 3 * N as u64)]);
        let mut c = wal.open_cursor("tp").unwrap();
        assert_eq!(drain(&mut c), (Some(3 * N as u64), 5 * N as u64, 2));
    }
    std::fs::remove_file(tmp.path().join("cursor.tp.ckpt")).unwrap();
    let (wal, report) = reopen(tmp.path());
    assert!(report.cursors.is_empty());
    let mut c = wal.open_cursor("tp").unwrap();
    assert_eq!(
        drain(&mut c),
        (Some(0), 5 * N as u64, 5),
        "re-delivered from the start"
    );
}

/// A checkpoint file holds two slots, written in turn: a torn slot falls
/// back to the other (the checkpoint before); both torn, the file is set
/// aside and the cursor starts at the oldest segment.
#[test]
fn corrupt_checkpoint_falls_back_to_the_other_slot_then_is_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 3);
    {
        let (wal, _) = reopen(tmp.path());
        let mut c = wal.open_cursor("tp").unwrap();
        drain(&mut c);
        c.checkpoint(N as u64).unwrap();
        c.checkpoint(2 * N as u64).unwrap();
    }
    let ckpt = tmp.path().join("cursor.tp.ckpt");
    // The second slot (a page in) holds 2N, the first N.
    write_bytes(&ckpt, 4096 + 17, &[0xFF]);
    {
        let (wal, report) = reopen(tmp.path());
        assert!(report.set_aside.is_empty(), "{:?}", report.set_aside);
        let mut c = wal.open_cursor("tp").unwrap();
        assert_eq!(drain(&mut c).0, Some(N as u64));
    }
    write_bytes(&ckpt, 17, &[0xFF]);
    let (wal, report) = reopen(tmp.path());
    assert_eq!(report.set_aside.len(), 1);
    assert_eq!(report.set_aside[0].path, ckpt);
    let mut c = wal.open_cursor("tp").unwrap();
    assert_eq!(drain(&mut c).0, Some(0));
}

#[test]
fn leftovers_are_removed_and_a_bad_last_header_is_set_aside() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 2);
    std::fs::write(
        tmp.path().join("00000000000000000999.wal.tmp"),
        b"half made",
    )
    .unwrap();
    std::fs::write(tmp.path().join("cursor.x.ckpt.tmp"), b"half").unwrap();
    // A last segment whose header is garbage (not something our writer makes).
    let bad = tmp.path().join(format!("{:020}.wal", 2 * N));
    std::fs::write(&bad, vec![0xAB; SEG as usize]).unwrap();
    let (mut wal, report) = reopen(tmp.path());
    assert_eq!(report.stray_files_removed.len(), 2);
    assert_eq!(report.set_aside.len(), 1);
    assert_eq!(report.set_aside[0].path, bad);
    // Seqs the set-aside segment may have held are never handed out again.
    assert!(report.next_seq > 2 * N as u64);
    let first = append(&mut wal, 1);
    assert_eq!(first, report.next_seq);
    wal.commit().unwrap();
}

#[test]
fn a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (_wal, _) = reopen(tmp.path());
    match Wal::open(&config(tmp.path(), SEG, 64 * SEG, WhenFull::Block)) {
        Err(WalError::Locked(_)) => {}
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a second writer"),
    }
}

#[test]
fn bad_configuration_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    for (seg, quota) in [(1000, 1 << 20), (SEG, SEG), (1 << 31, 1 << 33)] {
        let r = Wal::open(&config(tmp.path(), seg, quota, WhenFull::Block));
        assert!(matches!(r, Err(WalError::Config(_))), "{seg} {quota}");
    }
}

#[test]
fn an_interrupted_segment_creation_is_removed_quietly() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 2);
    // A crash after the rename but before any commit synced the header.
    let empty = tmp.path().join(format!("{:020}.wal", 2 * N));
    std::fs::write(&empty, vec![0u8; SEG as usize]).unwrap();
    let (mut wal, report) = reopen(tmp.path());
    assert_eq!(report.stray_files_removed, vec![empty.clone()]);
    assert!(report.set_aside.is_empty() && !empty.exists());
    // The previous segment simply continues; no seqs were skipped.
    assert_eq!(report.next_seq, 2 * N as u64);
    assert_eq!(append(&mut wal, N), 2 * N as u64);
    wal.commit().unwrap();
    let mut c = wal.open_cursor("c").unwrap();
    assert_eq!(drain(&mut c), (Some(0), 3 * N as u64, 3));
    assert_eq!(c.skipped_samples(), 0);
}

/// A segment written in another format version (an older millrace's) is
/// refused whole with an error that says what to do, and nothing in the
/// directory is changed: no tail cut, no file set aside, no byte rewritten.
#[test]
fn segment_of_another_format_version_is_refused_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    wal_with_frames(tmp.path(), 5);
    let seg = segment_files(tmp.path()).into_iter().next().unwrap();
    let mut header = read_bytes(&seg, 0, SEGMENT_HEADER_BYTES);
    header[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = millrace::wal::crc32c(&header[0..44]);
    header[44..48].copy_from_slice(&crc.to_le_bytes());
    write_bytes(&seg, 0, &header);
    let before: Vec<(std::path::PathBuf, Vec<u8>)> = segment_files(tmp.path())
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    let error = Wal::open(&config(tmp.path(), SEG, 64 * SEG, WhenFull::Block))
        .err()
        .expect("a format-1 segment must be refused");
    assert!(
        matches!(
            error,
            WalError::FormatVersion {
                found: 1,
                supported: 3,
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(
        text.contains("format 1") && text.contains("millrace replay"),
        "{text}"
    );
    let after: Vec<(std::path::PathBuf, Vec<u8>)> = segment_files(tmp.path())
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after, "the refused directory was changed");
}

/// A version 2 segment as an older millrace wrote it: frames whose bodies
/// are the 24-byte records, each frame N samples of `sample(seq)`.
fn write_version_2_segment(dir: &std::path::Path, frames: usize) {
    let mut seg = vec![0u8; SEG as usize];
    seg[0..8].copy_from_slice(b"MLRCWAL\0");
    seg[8..10].copy_from_slice(&2u16.to_le_bytes());
    seg[10..12].copy_from_slice(&(SEGMENT_HEADER_BYTES as u16).to_le_bytes());
    seg[24..32].copy_from_slice(&SEG.to_le_bytes());
    let crc = millrace::wal::crc32c(&seg[0..44]);
    seg[44..48].copy_from_slice(&crc.to_le_bytes());
    let mut at = SEGMENT_HEADER_BYTES;
    for k in 0..frames {
        let first = (k * N) as u64;
        let samples = batch(first, N);
        let len = FRAME_OVERHEAD_BYTES + 24 * N;
        let frame = &mut seg[at..at + len];
        frame[0..4].copy_from_slice(&(len as u32).to_le_bytes());
        frame[8..16].copy_from_slice(&first.to_le_bytes());
        frame[16..20].copy_from_slice(&(N as u32).to_le_bytes());
        let ts = |s: &millrace::sample::Sample| s.ts_ns.to_le_bytes();
        frame[24..32].copy_from_slice(&ts(&samples[0]));
        frame[32..40].copy_from_slice(&ts(&samples[N - 1]));
        for (i, s) in samples.iter().enumerate() {
            frame[40 + 24 * i..64 + 24 * i].copy_from_slice(&s.to_bytes());
        }
        let mut covered = frame[0..4].to_vec();
        covered.extend_from_slice(&frame[8..]);
        let crc = millrace::wal::crc32c(&covered);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        at += len;
    }
    std::fs::write(dir.join("00000000000000000000.wal"), seg).unwrap();
}

fn segment_version(path: &std::path::Path) -> u16 {
    u16::from_le_bytes(read_bytes(path, 8, 2).try_into().unwrap())
}

/// A WAL an older millrace left behind (version 2) is recovered, its
/// active segment is appended to in its own form, the next segment is
/// version 3, and a cursor reads every sample across both, before and after
/// a reopen.
#[test]
fn version_2_segments_are_read_and_appended_to_then_version_3_follows() {
    let tmp = tempfile::tempdir().unwrap();
    write_version_2_segment(tmp.path(), 3);
    let (mut wal, report) = reopen(tmp.path());
    assert_eq!((report.next_seq, report.frames_scanned), (3 * N as u64, 3));
    assert!(report.tail_cut.is_none() && report.set_aside.is_empty());
    let frames = 2 * (SEG as usize / FRAME);
    for _ in 0..frames {
        append(&mut wal, N);
    }
    wal.commit().unwrap();
    let files = segment_files(tmp.path());
    assert!(files.len() >= 2, "{files:?}");
    assert_eq!(segment_version(&files[0]), 2);
    for later in &files[1..] {
        assert_eq!(segment_version(later), 3, "{later:?}");
    }
    let end = ((3 + frames) * N) as u64;
    assert_eq!(
        drain(&mut wal.open_cursor("c").unwrap()),
        (Some(0), end, 3 + frames)
    );
    drop(wal);
    let (wal, report) = reopen(tmp.path());
    assert_eq!(report.next_seq, end);
    assert!(report.tail_cut.is_none() && report.set_aside.is_empty());
    assert_eq!(
        drain(&mut wal.open_cursor("d").unwrap()),
        (Some(0), end, 3 + frames)
    );
}

/// What a poll cycle gives: per response, one time, one quality and tag
/// ids counting up; a text sample now and then. Stored packed (about 8
/// bytes a sample) and read back exactly, across a reopen.
#[test]
fn responses_are_stored_packed_and_read_back_exactly() {
    use millrace::sample::{text_records, write_text, Quality, Sample, TagId, ValueKind};
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = reopen(tmp.path());
    let mut appended: Vec<Sample> = Vec::new();
    let mut numbers = 0u64;
    for frame in 0..40u32 {
        let mut batch = Vec::new();
        for response in 0..5u32 {
            let ts = i64::from(frame * 10 + response) * 1_000_000;
            let quality = if response == 3 {
                Quality::TIMEOUT
            } else {
                Quality::GOOD
            };
            let first = response * 125;
            batch.extend((0..125).map(|i| {
                Sample::new(
                    ts,
                    TagId(first + i),
                    quality,
                    ValueKind::I64,
                    u64::from(i * frame),
                )
            }));
            numbers += 125;
        }
        let mut text = vec![Sample::default(); text_records(40)];
        write_text(&mut text, 5, TagId(9_999), Quality::GOOD, &[b'a'; 33], 40);
        batch.extend(text);
        wal.append(&batch).unwrap();
        appended.extend(batch);
    }
    wal.commit().unwrap();
    let bytes = wal.stats().bytes_appended;
    let per_number =
        (bytes - 40 * (FRAME_OVERHEAD_BYTES as u64 + 24 * 4 + 5 * 24)) as f64 / numbers as f64;
    assert!(per_number <= 8.5, "{per_number} bytes a sample");
    let read_all = |wal: &Wal| {
        let mut cursor = wal.open_cursor("c").unwrap();
        let mut got = Vec::new();
        while let Some(frame) = cursor.next() {
            assert_eq!(frame.first_seq, got.len() as u64);
            got.extend_from_slice(frame.samples);
        }
        got
    };
    assert!(read_all(&wal) == appended);
    drop(wal);
    let (wal, report) = reopen(tmp.path());
    assert_eq!(report.next_seq, appended.len() as u64);
    assert!(read_all(&wal) == appended);
}

/// A segment is filled by what its frames take on disk, not by what their
/// records would take unpacked: runs of 125 values (1,064-byte frames) fill
/// a 16 KiB segment with 15 frames, where 24 bytes a record would fit 5.
#[test]
fn segments_fill_with_packed_frames() {
    use millrace::sample::{Quality, Sample, TagId, ValueKind};
    let tmp = tempfile::tempdir().unwrap();
    let (mut wal, _) = reopen(tmp.path());
    for frame in 0..30i64 {
        let batch: Vec<Sample> = (0..125)
            .map(|i| Sample::new(frame, TagId(i), Quality::GOOD, ValueKind::U64, 7))
            .collect();
        wal.append(&batch).unwrap();
    }
    wal.commit().unwrap();
    let per_segment = (SEG as usize - SEGMENT_HEADER_BYTES) / (FRAME_OVERHEAD_BYTES + 24 + 1000);
    assert_eq!(per_segment, 15);
    assert_eq!(segment_files(tmp.path()).len(), 2);
    assert_eq!(wal.stats().segments_created, 2);
}
