//! Cursor checkpoints: one small file per sink, `cursor.NAME.ckpt`, of two
//! 32-byte slots a page apart, each a whole checkpoint with its own CRC.
//!
//! The first write in a process creates the file atomically (both slots,
//! through a temporary, fsync, rename, fsync of the directory) and keeps it
//! open; later writes overwrite the older slot in place with one pwrite and
//! one fdatasync. A checkpoint only moves forward, so the valid slot with
//! the higher seq is the checkpoint: a write torn by a crash spoils only the
//! slot it was writing, and the other still holds the previous checkpoint.
//! Why: the replace-by-rename cost about 420 us of CPU and 1.3 ms of wall
//! time per checkpoint on ext4 (two fsyncs, a create and a rename), the
//! slot about 95 us and 0.3 ms.
//!
//! A file of one slot (format version 1, 32 bytes) is read too; the next
//! write replaces it with two. A file that fails its checks is treated as
//! missing (the sink then re-reads from the oldest segment: at-least-once,
//! and kdb+ de-duplicates on `seq`).

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::error::WalError;
use super::format::u64_at;

const MAGIC: [u8; 8] = *b"MLRCCKP\0";
/// A file of one slot.
const VERSION_ONE_SLOT: u16 = 1;
/// A file of two slots.
const VERSION: u16 = 2;
const SLOT_BYTES: usize = 32;
/// The second slot starts a page after the first, so that no torn block or
/// sector write can reach both (the first slot's page is otherwise zero).
const SECOND_SLOT: usize = 4096;
const BYTES: usize = SECOND_SLOT + SLOT_BYTES;
const NAME_CHARS_MAX: usize = 64;
const PREFIX: &str = "cursor.";
const SUFFIX: &str = ".ckpt";

pub(crate) fn validate_name(name: &str) -> Result<(), WalError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_CHARS_MAX
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(WalError::CursorName(name.to_string()))
    }
}

pub(crate) fn path_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{PREFIX}{name}{SUFFIX}"))
}

/// The cursor name in a checkpoint file name, if it is one.
pub(crate) fn name_of(file_name: &str) -> Option<&str> {
    let name = file_name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    validate_name(name).ok().map(|()| name)
}

fn encode_slot(version: u16, next_seq: u64) -> [u8; SLOT_BYTES] {
    let mut b = [0u8; SLOT_BYTES];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&version.to_le_bytes());
    b[16..24].copy_from_slice(&next_seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
}

/// A new file: both slots hold `next_seq`.
fn encode(next_seq: u64) -> [u8; BYTES] {
    let slot = encode_slot(VERSION, next_seq);
    let mut b = [0u8; BYTES];
    b[..SLOT_BYTES].copy_from_slice(&slot);
    b[SECOND_SLOT..].copy_from_slice(&slot);
    b
}

/// The two slots of a two-slot file's bytes.
fn slots(b: &[u8; BYTES]) -> (&[u8], &[u8]) {
    (&b[..SLOT_BYTES], &b[SECOND_SLOT..])
}

fn slot_offset(slot: u64) -> u64 {
    slot * SECOND_SLOT as u64
}

/// Why a checkpoint file was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckpointError {
    Size,
    Magic,
    Version,
    Crc,
}

impl std::fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckpointError::Size => "the file is not the 32 or 4,128 bytes of a checkpoint",
            CheckpointError::Magic => "it does not start with the checkpoint magic MLRCCKP",
            CheckpointError::Version => "its format version is not 1 (one slot) or 2 (two)",
            CheckpointError::Crc => "its CRC32C does not match its bytes (a torn write?)",
        })
    }
}

/// The checkpoint in a file's bytes: the one slot of a version 1 file, or
/// the higher of the valid slots of a version 2 file (the error of the
/// first slot when neither is valid).
pub(crate) fn decode(b: &[u8]) -> Result<u64, CheckpointError> {
    match b.len() {
        SLOT_BYTES => decode_slot(b, VERSION_ONE_SLOT),
        BYTES => {
            let (first, second) = b.first_chunk().map(slots).unwrap_or_default();
            match (decode_slot(first, VERSION), decode_slot(second, VERSION)) {
                (Ok(a), Ok(b)) => Ok(a.max(b)),
                (Ok(seq), Err(_)) | (Err(_), Ok(seq)) => Ok(seq),
                (Err(why), Err(_)) => Err(why),
            }
        }
        _ => Err(CheckpointError::Size),
    }
}

fn decode_slot(b: &[u8], version: u16) -> Result<u64, CheckpointError> {
    if b.get(0..8) != Some(&MAGIC[..]) {
        return Err(CheckpointError::Magic);
    }
    if b.get(8..10) != Some(&version.to_le_bytes()[..]) {
        return Err(CheckpointError::Version);
    }
    let crc = crc32c::crc32c(b.get(0..28).unwrap_or_default());
    if b.get(28..32) != Some(&crc.to_le_bytes()[..]) {
        return Err(CheckpointError::Crc);
    }
    Ok(u64_at(b, 16))
}

/// The slot a file's next write goes to: the one not holding its
/// checkpoint (the first when both hold it).
fn slot_after(b: &[u8; BYTES]) -> u64 {
    let (first, second) = slots(b);
    match (decode_slot(first, VERSION), decode_slot(second, VERSION)) {
        (Ok(a), Ok(b)) => u64::from(a >= b),
        (Ok(_), Err(_)) => 1,
        (Err(_), _) => 0,
    }
}

/// Reads a checkpoint: `Ok(Err(..))` for a file that exists but is bad.
pub(crate) fn read(path: &Path) -> Result<Result<u64, CheckpointError>, WalError> {
    let mut file = File::open(path).map_err(|e| WalError::io("open", path, e))?;
    let mut buf = Vec::with_capacity(BYTES);
    // Read one byte more than a checkpoint holds, to notice a longer file.
    (&mut file)
        .take(BYTES as u64 + 1)
        .read_to_end(&mut buf)
        .map_err(|e| WalError::io("read", path, e))?;
    Ok(decode(&buf))
}

/// A cursor's checkpoint file, open for writing, and the slot its next
/// write overwrites. `None` until the cursor's first write in this process.
#[derive(Debug, Default)]
pub(crate) struct CheckpointFile {
    open: Option<(File, u64)>,
}

/// Sets the checkpoint of `name` to `next_seq`, durably: in place in the
/// older slot once the file is open (see the module comment), else by
/// creating the file afresh.
///
/// On a full file system (ENOSPC, EDQUOT) the temporary cannot get a block,
/// so the existing file is overwritten in place instead: its block is
/// already allocated, and the sink must be able to persist its progress on
/// a full disk, or no segment could ever be retired to make room. A torn
/// in-place write of a one-slot file fails the CRC and reads as no
/// checkpoint: the sink then resends from the oldest segment (at-least-once;
/// kdb+ removes by seq).
pub(crate) fn write(
    dir: &Path,
    dir_file: &File,
    name: &str,
    next_seq: u64,
    held: &mut CheckpointFile,
) -> Result<(), WalError> {
    let path = path_for(dir, name);
    if let Some((file, slot)) = &mut held.open {
        write_slot(file, *slot, next_seq, &path)?;
        // Only a durable write moves on: after a failed one the same slot
        // is written again, and the other still holds the checkpoint.
        *slot ^= 1;
        return Ok(());
    }
    let tmp = dir.join(format!("{PREFIX}{name}{SUFFIX}.tmp"));
    let file = match write_file(&tmp, &encode(next_seq)) {
        Ok(file) => file,
        Err(e) if is_no_space(&e) && path.exists() => {
            let _ = fs::remove_file(&tmp);
            return overwrite_in_place(&path, next_seq, held);
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    fs::rename(&tmp, &path).map_err(|e| WalError::io("rename", &tmp, e))?;
    dir_file
        .sync_all()
        .map_err(|e| WalError::io("fsync dir", dir, e))?;
    // The descriptor follows the file through the rename.
    held.open = Some((file, 0));
    Ok(())
}

fn write_slot(file: &File, slot: u64, next_seq: u64, path: &Path) -> Result<(), WalError> {
    file.write_all_at(&encode_slot(VERSION, next_seq), slot_offset(slot))
        .map_err(|e| WalError::io("write slot", path, e))?;
    file.sync_data()
        .map_err(|e| WalError::io("fdatasync", path, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<File, WalError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io("create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| WalError::io("write", path, e))?;
    f.sync_all().map_err(|e| WalError::io("fsync", path, e))?;
    Ok(f)
}

fn is_no_space(e: &WalError) -> bool {
    matches!(
        e,
        WalError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    )
}

/// The full-disk path: a two-slot file is adopted (its older slot written,
/// and kept open); a one-slot file is overwritten whole.
fn overwrite_in_place(
    path: &Path,
    next_seq: u64,
    held: &mut CheckpointFile,
) -> Result<(), WalError> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open", path, e))?;
    let mut bytes = [0u8; BYTES];
    let two_slots = f
        .metadata()
        .map_err(|e| WalError::io("stat", path, e))?
        .len()
        == BYTES as u64
        && f.read_exact_at(&mut bytes, 0).is_ok();
    if two_slots {
        let slot = slot_after(&bytes);
        write_slot(&f, slot, next_seq, path)?;
        held.open = Some((f, slot ^ 1));
        return Ok(());
    }
    f.write_all_at(&encode_slot(VERSION_ONE_SLOT, next_seq), 0)
        .map_err(|e| WalError::io("write in place", path, e))?;
    f.sync_data().map_err(|e| WalError::io("fsync", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let b = encode(12345);
        assert_eq!(decode(&b), Ok(12345));
        assert_eq!(decode(&b[..31]), Err(CheckpointError::Size));
        assert_eq!(decode(&b[..33]), Err(CheckpointError::Size));
        // A file of one slot, as version 1 wrote it.
        let one = encode_slot(VERSION_ONE_SLOT, 77);
        assert_eq!(decode(&one), Ok(77));
        assert_eq!(decode(&b[..32]), Err(CheckpointError::Version));
        let mut bad = one;
        bad[17] ^= 4;
        assert_eq!(decode(&bad), Err(CheckpointError::Crc));
        bad[0] = 0;
        assert_eq!(decode(&bad), Err(CheckpointError::Magic));
    }

    #[test]
    fn the_higher_valid_slot_is_the_checkpoint() {
        let mut b = encode(10);
        b[SECOND_SLOT..].copy_from_slice(&encode_slot(VERSION, 20));
        assert_eq!(decode(&b), Ok(20));
        assert_eq!(slot_after(&b), 0, "the older slot is written next");
        // A write of slot 0 torn by a crash: slot 1 still holds 20.
        let mut torn = b;
        torn[..SLOT_BYTES].copy_from_slice(&encode_slot(VERSION, 30));
        torn[20] ^= 0xFF;
        assert_eq!(decode(&torn), Ok(20));
        assert_eq!(slot_after(&torn), 0);
        // Torn in slot 1 instead: slot 0 holds the checkpoint.
        let mut torn = encode(40);
        torn[SECOND_SLOT + 3] = 0;
        assert_eq!(decode(&torn), Ok(40));
        assert_eq!(slot_after(&torn), 1);
        torn[0] = 0;
        assert_eq!(decode(&torn), Err(CheckpointError::Magic));
    }

    /// The file through a process's writes: created whole, then one slot
    /// at a time, alternating, each read back as the newest.
    #[test]
    fn writes_alternate_slots_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let dir_file = File::open(dir.path()).unwrap();
        let path = path_for(dir.path(), "tp");
        // A one-slot file left by an earlier version is read, then replaced.
        fs::write(&path, encode_slot(VERSION_ONE_SLOT, 5)).unwrap();
        assert_eq!(read(&path).unwrap(), Ok(5));
        let mut held = CheckpointFile::default();
        write(dir.path(), &dir_file, "tp", 6, &mut held).unwrap();
        let inode = |p: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(p).unwrap());
        let created = inode(&path);
        assert_eq!(fs::read(&path).unwrap(), encode(6));
        for (seq, slot) in [(7u64, 0u64), (8, 1), (9, 0)] {
            write(dir.path(), &dir_file, "tp", seq, &mut held).unwrap();
            let bytes = fs::read(&path).unwrap();
            assert_eq!(decode(&bytes), Ok(seq));
            let at = slot_offset(slot) as usize;
            assert_eq!(bytes[at..at + SLOT_BYTES], encode_slot(VERSION, seq));
            assert_eq!(
                decode_slot(
                    &bytes[slot_offset(1 - slot) as usize..][..SLOT_BYTES],
                    VERSION
                ),
                Ok(seq - 1)
            );
        }
        assert_eq!(inode(&path), created, "written in place, not replaced");
        assert!(!dir.path().join("cursor.tp.ckpt.tmp").exists());
    }

    /// The full-disk path adopts a two-slot file: the older slot first.
    #[test]
    fn overwrite_in_place_adopts_two_slots() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_for(dir.path(), "tp");
        let mut b = encode(10);
        b[..SLOT_BYTES].copy_from_slice(&encode_slot(VERSION, 11));
        fs::write(&path, b).unwrap();
        let mut held = CheckpointFile::default();
        overwrite_in_place(&path, 12, &mut held).unwrap();
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes[..SLOT_BYTES], encode_slot(VERSION, 11));
        assert_eq!(decode(&bytes), Ok(12));
        assert!(matches!(held.open, Some((_, 0))));
        // A one-slot file is overwritten whole and not kept.
        fs::write(&path, encode_slot(VERSION_ONE_SLOT, 3)).unwrap();
        let mut held = CheckpointFile::default();
        overwrite_in_place(&path, 4, &mut held).unwrap();
        assert_eq!(read(&path).unwrap(), Ok(4));
        assert!(held.open.is_none());
    }

    #[test]
    fn names() {
        assert!(validate_name("tp-1.a_b").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("../x").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
        assert_eq!(name_of("cursor.tp.ckpt"), Some("tp"));
        assert_eq!(name_of("cursor.tp.ckpt.tmp"), None);
    }
}
