//! Cursor checkpoints: one small file per sink, `cursor.NAME.ckpt`, replaced
//! atomically (write a temporary, fsync it, rename it over, fsync the
//! directory), so after a crash a checkpoint is either the old one or the
//! new one, never a mix. A file that fails its checks is treated as missing
//! (the sink then re-reads from the oldest segment: at-least-once, and kdb+
//! de-duplicates on `seq`).

#![forbid(unsafe_code)]

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::WalError;
use super::format::u64_at;

const MAGIC: [u8; 8] = *b"MLRCCKP\0";
const VERSION: u16 = 1;
const BYTES: usize = 32;
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

fn encode(next_seq: u64) -> [u8; BYTES] {
    let mut b = [0u8; BYTES];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..10].copy_from_slice(&VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&next_seq.to_le_bytes());
    let crc = crc32c::crc32c(&b[0..28]);
    b[28..32].copy_from_slice(&crc.to_le_bytes());
    b
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
            CheckpointError::Size => "the file is not the 32 bytes of a checkpoint",
            CheckpointError::Magic => "it does not start with the checkpoint magic MLRCCKP",
            CheckpointError::Version => "its format version is not 1",
            CheckpointError::Crc => "its CRC32C does not match its bytes (a torn write?)",
        })
    }
}

pub(crate) fn decode(b: &[u8]) -> Result<u64, CheckpointError> {
    if b.len() != BYTES {
        return Err(CheckpointError::Size);
    }
    if b.get(0..8) != Some(&MAGIC[..]) {
        return Err(CheckpointError::Magic);
    }
    if b.get(8..10) != Some(&VERSION.to_le_bytes()[..]) {
        return Err(CheckpointError::Version);
    }
    let crc = crc32c::crc32c(b.get(0..28).unwrap_or_default());
    if b.get(28..32) != Some(&crc.to_le_bytes()[..]) {
        return Err(CheckpointError::Crc);
    }
    Ok(u64_at(b, 16))
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

/// Replaces the checkpoint of `name` with `next_seq`, atomically and durably.
///
/// On a full file system (ENOSPC, EDQUOT) the temporary cannot get a block,
/// so the existing file is overwritten in place instead: its block is
/// already allocated, and the sink must be able to persist its progress on
/// a full disk, or no segment could ever be retired to make room. A torn
/// in-place write fails the CRC and reads as no checkpoint: the sink then
/// resends from the oldest segment (at-least-once; kdb+ removes by seq).
pub(crate) fn write(
    dir: &Path,
    dir_file: &File,
    name: &str,
    next_seq: u64,
) -> Result<(), WalError> {
    let path = path_for(dir, name);
    let tmp = dir.join(format!("{PREFIX}{name}{SUFFIX}.tmp"));
    match write_file(&tmp, &encode(next_seq)) {
        Ok(()) => {}
        Err(e) if is_no_space(&e) && path.exists() => {
            let _ = fs::remove_file(&tmp);
            return overwrite_in_place(&path, next_seq);
        }
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    }
    fs::rename(&tmp, &path).map_err(|e| WalError::io("rename", &tmp, e))?;
    dir_file
        .sync_all()
        .map_err(|e| WalError::io("fsync dir", dir, e))
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), WalError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|e| WalError::io("create", path, e))?;
    f.write_all(bytes)
        .map_err(|e| WalError::io("write", path, e))?;
    f.sync_all().map_err(|e| WalError::io("fsync", path, e))
}

fn is_no_space(e: &WalError) -> bool {
    matches!(
        e,
        WalError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    )
}

fn overwrite_in_place(path: &Path, next_seq: u64) -> Result<(), WalError> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| WalError::io("open", path, e))?;
    f.write_all_at(&encode(next_seq), 0)
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
        let mut bad = b;
        bad[17] ^= 4;
        assert_eq!(decode(&bad), Err(CheckpointError::Crc));
        bad[0] = 0;
        assert_eq!(decode(&bad), Err(CheckpointError::Magic));
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
