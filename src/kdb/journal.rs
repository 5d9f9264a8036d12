//! The tick.q log file (journal), so a real q process can replay what the
//! stand-in received with `-11!`, and a checker that counts its chunks the
//! way `-11!(-2;file)` does.
//!
//! # Format, byte for byte
//!
//! ```text
//! offset 0   ff 01 00 00 00 00 00 00   file header: 0xff01 (a q serialised
//!                                      file) in the place of the 8-byte IPC
//!                                      header, then 6 zero bytes
//! offset 8   00 00                     type 0 (general list), attribute 0
//! offset 10  N (i32, little-endian)    item count: updated on every append
//! offset 14  chunk 1, chunk 2, ...     each the IPC body of one item, with
//!                                      no IPC header and no length prefix
//! ```
//!
//! An empty log (what tick.q's `.u.ld` creates with `.[L;();:;()]`, i.e.
//! `` L set () ``) is exactly the 14 bytes `ff01 000000000000 0000 00000000`.
//! tick.q then opens a handle (`hopen L`) and appends `l enlist (`upd;t;x)`
//! per update: q writes the body of the one item `(`upd;`t;x)` - a general
//! list of 3 (`00 00 03000000`), `f5 "upd\0"`, `f5 "t\0"`, then `x` as it
//! arrived (here: six column vectors or a table) - and rewrites the count at
//! offset 10. `-11!file` reads and executes chunk after chunk (it does not
//! trust the count); `-11!(-2;file)` returns the number of chunks, or, when
//! the file ends inside one, `(valid chunks; valid length in bytes)`, and
//! tick.q then refuses to start ("is a corrupt log. Truncate to length ...").
//!
//! Sources: KxSystems/kdb-tick `tick.q` (`.u.ld`, `upd`); KxSystems/docs
//! `kb/replay-log.md` and `basics/internal.md` (`-11!`, `-11!(-2;x)`,
//! `'badtail`); the serialised-file header and the count at offset 10 from
//! q's own output quoted in "Kdb+ data format when writing to a file"
//! (Stack Overflow 72488931: `read1` after `` `:out set () `` and
//! `h (1 2;3)` gives `0xff01 000000000000 0000 02000000 0700...`). There is
//! no q here, so tests/kdb_journal.rs checks files written by `Journal` with
//! independent decoders (the kdbplus crate and aiokdb): the file with its
//! first 8 bytes replaced by an IPC header is one valid IPC message holding
//! the whole list - exactly how `get` sees it.
//!
//! Note: aiokdb's `kfromfile` assumes the body starts at offset 2; it cannot
//! read q's files (nor ours).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::decode::{decode_prefix, DecodeLimits};
use super::encode::encode_body;
use super::types::K;

pub const JOURNAL_MAGIC: [u8; 2] = [0xff, 0x01];
/// `ff 01` and six zero bytes, where an IPC message has its 8-byte header.
pub const FILE_HEADER_SIZE: usize = 8;
/// The whole empty log: file header, then an empty general list.
pub const EMPTY_JOURNAL: [u8; 14] = [0xff, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// Where the list's item count (i32, little-endian) sits.
pub const COUNT_OFFSET: usize = 10;
// The count follows the list's type and attribute bytes.
const _: () = assert!(COUNT_OFFSET == FILE_HEADER_SIZE + 2);
/// Bytes before the first chunk.
pub const JOURNAL_HEADER_SIZE: usize = EMPTY_JOURNAL.len();

const _: () = assert!(COUNT_OFFSET + 4 == JOURNAL_HEADER_SIZE);

/// What `-11!(-2;file)` would say about a log file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalCheck {
    /// Complete chunks from the start of the file.
    pub chunk_count: u64,
    /// Bytes up to the end of the last complete chunk (header included):
    /// where a torn tail starts.
    pub valid_bytes: u64,
    pub file_bytes: u64,
    /// The item count the header claims (q rewrites it after each append).
    pub header_count: u32,
}

impl JournalCheck {
    /// True when the file ends exactly after its last chunk.
    pub fn is_complete(&self) -> bool {
        self.valid_bytes == self.file_bytes
    }
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message)
}

/// Checks the 14-byte header; returns the count it holds.
pub fn parse_header(header: &[u8; JOURNAL_HEADER_SIZE]) -> Option<u32> {
    let [m0, m1, z0, z1, z2, z3, z4, z5, list_type, _attr, c0, c1, c2, c3] = *header;
    let padding_is_zero = [z0, z1, z2, z3, z4, z5] == [0; 6];
    if [m0, m1] != JOURNAL_MAGIC || !padding_is_zero || list_type != 0 {
        return None;
    }
    Some(u32::from_le_bytes([c0, c1, c2, c3]))
}

/// Counts the complete chunks of a log file as `-11!(-2;file)` does,
/// reading it in bounded pieces (a day's log can be larger than memory).
/// A chunk that does not decode (torn, or not a q object) ends the count.
pub fn check_journal(path: &Path, limits: &DecodeLimits) -> std::io::Result<JournalCheck> {
    let mut file = File::open(path)?;
    let file_bytes = file.metadata()?.len();
    let mut header = [0u8; JOURNAL_HEADER_SIZE];
    file.read_exact(&mut header)
        .map_err(|_| invalid(format!("{} is shorter than a log header", path.display())))?;
    let header_count = parse_header(&header)
        .ok_or_else(|| invalid(format!("{} is not a tick.q log file", path.display())))?;
    let mut check = JournalCheck {
        chunk_count: 0,
        valid_bytes: JOURNAL_HEADER_SIZE as u64,
        file_bytes,
        header_count,
    };
    // `buf[at..]` is read but not yet decoded; `eof` once the file is read.
    let mut buf: Vec<u8> = Vec::new();
    let mut at = 0usize;
    let mut eof = false;
    let mut want = 1usize << 20;
    loop {
        let pending = buf.get(at..).unwrap_or(&[]);
        match decode_prefix(pending, true, limits) {
            Ok((_, used)) if used > 0 => {
                at += used;
                check.chunk_count += 1;
                check.valid_bytes += used as u64;
                want = 1 << 20;
                continue;
            }
            _ if eof => return Ok(check),
            // Too little read to tell: read more (a chunk is at most one
            // message, so give up past that much).
            _ if pending.len() > limits.message_bytes_max => return Ok(check),
            _ => {}
        }
        buf.drain(..at);
        at = 0;
        let have = buf.len();
        buf.resize(have + want, 0);
        let got = read_full(&mut file, buf.get_mut(have..).unwrap_or(&mut []))?;
        buf.truncate(have + got);
        eof = got < want;
        // Memory stays under about twice the largest message.
        want = want
            .saturating_mul(2)
            .min(limits.message_bytes_max.max(1 << 20));
    }
}

/// Reads until `dst` is full or the file ends; returns the bytes read.
fn read_full(file: &mut File, dst: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while let Some(rest) = dst.get_mut(got..).filter(|r| !r.is_empty()) {
        match file.read(rest) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One line for people, in q's words where q has them.
pub fn describe(path: &Path, check: &JournalCheck) -> String {
    if check.is_complete() {
        format!(
            "{}: {} chunks, {} bytes, complete (header count {})",
            path.display(),
            check.chunk_count,
            check.file_bytes,
            check.header_count
        )
    } else {
        format!(
            "{}: {} valid chunks, then a bad tail at byte {} of {}: \
             truncate to length {} before replaying",
            path.display(),
            check.chunk_count,
            check.valid_bytes,
            check.file_bytes,
            check.valid_bytes
        )
    }
}

/// `millrace tickerplant --check-journal FILE`: prints `describe`; true
/// when the file is a complete log.
pub fn run_check(path: &Path) -> Result<bool, String> {
    let check = check_journal(path, &DecodeLimits::default())
        .map_err(|e| format!("cannot check {}: {e}", path.display()))?;
    println!("{}", describe(path, &check));
    Ok(check.is_complete())
}

pub struct Journal {
    file: File,
    entry_count: u32,
    /// One entry being built; reused.
    entry: Vec<u8>,
}

impl Journal {
    /// Opens (creating if needed) a log file and appends to its end. Like
    /// tick.q's `.u.ld`, an existing file is counted first and refused if
    /// its tail is torn (the message says where to truncate it).
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let entry_count = if file.metadata()?.len() == 0 {
            file.write_all(&EMPTY_JOURNAL)?;
            0
        } else {
            let check = check_journal(path, &DecodeLimits::default())?;
            if !check.is_complete() {
                return Err(invalid(format!(
                    "{} is a corrupt log: {}",
                    path.display(),
                    describe(path, &check)
                )));
            }
            u32::try_from(check.chunk_count).unwrap_or(u32::MAX)
        };
        file.seek(SeekFrom::End(0))?;
        Ok(Journal {
            file,
            entry_count,
            entry: Vec::new(),
        })
    }

    pub fn entry_count(&self) -> u32 {
        self.entry_count
    }

    /// Appends `(`upd; `table; data)` and updates the count in the header.
    pub fn append(&mut self, table: &[u8], data: &K) -> std::io::Result<()> {
        self.entry.clear();
        self.entry.extend_from_slice(&[0, 0, 3, 0, 0, 0]);
        self.entry.push(0xf5);
        self.entry.extend_from_slice(b"upd\0");
        self.entry.push(0xf5);
        self.entry.extend_from_slice(table);
        self.entry.push(0);
        encode_body(data, &mut self.entry);
        // One write per chunk: a crash leaves whole chunks and at most one
        // torn tail, which `check_journal` finds.
        self.file.write_all(&self.entry)?;
        // q's count is an i32; past that only -11! (which scans) still works.
        self.entry_count = self.entry_count.saturating_add(1).min(i32::MAX as u32);
        self.file
            .write_all_at(&self.entry_count.to_le_bytes(), COUNT_OFFSET as u64)
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn empty_journal_header_round_trips() {
        assert_eq!(parse_header(&EMPTY_JOURNAL), Some(0));
        let mut h = EMPTY_JOURNAL;
        h[COUNT_OFFSET] = 7;
        assert_eq!(parse_header(&h), Some(7));
        for bad_at in [0, 1, 2, 7, 8] {
            let mut h = EMPTY_JOURNAL;
            h[bad_at] ^= 0x40;
            assert_eq!(parse_header(&h), None, "byte {bad_at}");
        }
    }
}
