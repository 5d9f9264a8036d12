//! The tick.q log file, so a real q process can replay what the stand-in
//! received with `-11!`.
//!
//! Format (a q serialised file holding one general list): `ff 01` (the magic
//! of a serialised file), then the list's type `00`, attribute `00` and item
//! count (4 bytes, little-endian), then the items back to back, each the
//! body encoding (no IPC header) of the list `(`upd; `table; data)` - what
//! tick.q's `l enlist (`upd;t;x)` appends. tick.q creates the file with
//! `.[L;();:;()]` (the 8-byte empty list); appending updates the count.
//! `-11!` executes each item; `-11!(-2;L)` counts the valid ones.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::encode::encode_body;
use super::types::K;

pub const JOURNAL_MAGIC: [u8; 2] = [0xff, 0x01];
pub const JOURNAL_HEADER_SIZE: usize = 8;
const COUNT_OFFSET: u64 = 4;

pub struct Journal {
    file: File,
    entry_count: u32,
    /// One entry being built; reused.
    entry: Vec<u8>,
}

impl Journal {
    /// Opens (creating if needed) a log file and appends to its end.
    pub fn open(path: &Path) -> std::io::Result<Journal> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len();
        let entry_count = if len == 0 {
            let mut header = [0u8; JOURNAL_HEADER_SIZE];
            header[..2].copy_from_slice(&JOURNAL_MAGIC);
            file.write_all(&header)?;
            0
        } else {
            let mut header = [0u8; JOURNAL_HEADER_SIZE];
            file.read_exact(&mut header)?;
            let [m0, m1, list_type, _attr, c0, c1, c2, c3] = header;
            if [m0, m1] != JOURNAL_MAGIC || list_type != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is not a tick.q log file", path.display()),
                ));
            }
            u32::from_le_bytes([c0, c1, c2, c3])
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
        self.file.write_all(&self.entry)?;
        self.entry_count += 1;
        self.file
            .write_all_at(&self.entry_count.to_le_bytes(), COUNT_OFFSET)
    }

    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}
