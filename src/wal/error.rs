//! What the WAL can answer instead of doing the work. `Full` is the only
//! error a caller is expected to retry; `SyncFailed` and `Stopped` mean the
//! writer is finished and the process should restart (recovery then starts
//! from the last durable point).

use super::format::FORMAT_VERSION_MIN;
use std::fmt;
use std::io;
use std::path::PathBuf;

#[derive(Debug)]
pub enum WalError {
    /// The configuration cannot be used; the text says which value and why.
    Config(String),
    /// Another process holds the directory's `LOCK`.
    Locked(PathBuf),
    /// A file system call failed; nothing durable was lost by it.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// fdatasync failed. Fatal: the kernel may have dropped the dirty pages,
    /// so the writer stops and never retries.
    SyncFailed { path: PathBuf, source: io::Error },
    /// The writer stopped earlier on a fatal error.
    Stopped,
    /// `when_full = block` and the quota or the disk is full: nothing was
    /// written; retry once cursors have moved on.
    Full,
    /// One append may hold at most `max` samples (one frame in one segment).
    BatchTooLarge { samples: usize, max: usize },
    /// Cursor names are 1..=64 characters of `[A-Za-z0-9_.-]`.
    CursorName(String),
    /// A cursor with this name is already open in this process.
    CursorBusy(String),
    /// A cursor may only checkpoint what it has read.
    CheckpointAhead { requested: u64, position: u64 },
    /// A segment was written in another format version (an older or newer
    /// millrace): refused whole, never read as this one's.
    FormatVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
}

impl WalError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        WalError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// True for the errors after which this writer accepts nothing more.
    pub fn is_fatal(&self) -> bool {
        matches!(self, WalError::SyncFailed { .. } | WalError::Stopped)
    }
}

impl fmt::Display for WalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalError::Config(why) => write!(f, "wal configuration: {why}"),
            WalError::Locked(p) => write!(
                f,
                "wal directory is locked by another process: {}",
                p.display()
            ),
            WalError::Io { op, path, source } => write!(f, "wal {op} {}: {source}", path.display()),
            WalError::SyncFailed { path, source } => write!(
                f,
                "wal fdatasync failed on {} ({source}); the writer stopped and will not retry: \
                 restart to recover from the last durable point",
                path.display()
            ),
            WalError::Stopped => write!(f, "wal writer stopped after a fatal error"),
            WalError::Full => write!(f, "wal is full (quota or disk); backpressure"),
            WalError::BatchTooLarge { samples, max } => {
                write!(
                    f,
                    "wal batch of {samples} samples exceeds the maximum of {max}"
                )
            }
            WalError::CursorName(n) => write!(f, "invalid wal cursor name {n:?}"),
            WalError::CursorBusy(n) => write!(f, "wal cursor {n:?} is already open"),
            WalError::FormatVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "wal segment {} is in format {found}, this millrace reads formats \
                 {FORMAT_VERSION_MIN} to {supported}: deliver its backlog with the millrace version that wrote it (`millrace \
                 replay`), then move the WAL directory aside; nothing was changed in it",
                path.display()
            ),
            WalError::CheckpointAhead {
                requested,
                position,
            } => {
                write!(
                    f,
                    "wal checkpoint {requested} is ahead of the cursor position {position}"
                )
            }
        }
    }
}

impl std::error::Error for WalError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WalError::Io { source, .. } | WalError::SyncFailed { source, .. } => Some(source),
            _ => None,
        }
    }
}
