//! The names in force over ranges of WAL sequence numbers.
//!
//! The WAL stores tag ids; what an id means (its tag name and device) is
//! decided by the configuration in force when the sample was polled, and a
//! configuration changes between runs (and at a reload). Every start writes
//! the table in force into the WAL directory as `tags.<SEQ>.tsv` (SEQ = the
//! first sequence number it applies to, 20 digits) before any sample of it
//! is appended, unless the newest table already says the same. A table then
//! applies to `[SEQ, next table's SEQ)`.
//!
//! Both `run`'s sinks and `replay` name rows through one `TagHistory`, per
//! frame: a backlog polled under configuration A is delivered under A's
//! names even when B is in force by the time kdb+ is back.
//!
//! ```text
//! tags.00000000000000000000.tsv   tag<TAB>device per line, in tag id order
//! tags.00000000000000012345.tsv   from seq 12345 on
//! ```
//!
//! A table whose first seq is past the WAL's next seq names seqs the WAL no
//! longer holds and will hand out again (samples were lost after the table
//! was written: segments deleted by hand, or a tail cut by recovery after a
//! power loss): `record` removes it before it compares or writes, or the
//! next run's frames would fall in its range.
//!
//! Names never hold a tab or newline (validation rejects control characters
//! in names; `record` checks again). A frame never straddles two tables: a
//! table starts at the WAL's next seq when no frame of the new configuration
//! was written yet.
//!
//! Every frame also carries the CRC32C of the table its samples were polled
//! under (`Wal::set_tags_crc`, stamped by the writer): the seq range picks a
//! table, the checksum proves it. A table written after a reader listed the
//! directory (a reload in another process) is found by listing again on a
//! mismatch; a frame no table matches is an error, never a guess. Frames
//! written outside a pipeline (tools, tests) carry 0: checked by range only.
//!
//! Must never: name a row with a table that was not in force when it was
//! polled (a seq no table covers is an error, never the nearest table).

#![forbid(unsafe_code)]

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::config::Config;
use crate::kdb::SymbolTable;

/// Why a table could not be written, read or chosen; the text says which
/// file and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagHistoryError {
    /// A file system call failed.
    Io { path: PathBuf, problem: String },
    /// A table file is not `tag<TAB>device` lines.
    Malformed {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// A name holds a tab or newline and cannot be written.
    Name(String),
    /// No table applies to this seq (the WAL directory lost its tables).
    Uncovered { seq: u64 },
    /// A frame's records span two tables (a broken invariant).
    Straddles { first_seq: u64, end_seq: u64 },
    /// The table whose range holds the frame is not the one the frame was
    /// polled under (its checksum differs).
    Mismatch {
        seq: u64,
        frame_crc: u32,
        path: PathBuf,
        table_crc: u32,
    },
}

impl fmt::Display for TagHistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagHistoryError::Io { path, problem } => {
                write!(f, "tag table {}: {problem}", path.display())
            }
            TagHistoryError::Malformed {
                path,
                line,
                problem,
            } => write!(f, "tag table {}:{line}: {problem}", path.display()),
            TagHistoryError::Name(name) => {
                write!(f, "name {name:?} holds a tab or newline")
            }
            TagHistoryError::Uncovered { seq } => write!(
                f,
                "no tag table covers seq {seq}: the WAL directory lost its tags.*.tsv files, \
                 so the names its samples were polled under are unknown"
            ),
            TagHistoryError::Straddles { first_seq, end_seq } => {
                write!(f, "WAL frame {first_seq}..{end_seq} spans two tag tables")
            }
            TagHistoryError::Mismatch {
                seq,
                frame_crc,
                path,
                table_crc,
            } => write!(
                f,
                "the WAL frame at seq {seq} was polled under a tag table with checksum \
                 {frame_crc:#010x}, but {} (checksum {table_crc:#010x}) covers that seq: \
                 the tag tables in the WAL directory were changed or lost",
                path.display()
            ),
        }
    }
}

impl std::error::Error for TagHistoryError {}

fn io_error(path: &Path, e: std::io::Error) -> TagHistoryError {
    TagHistoryError::Io {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

/// The most bytes read from a tag table: one line per tag (at most
/// `TAGS_MAX`, 1 Mi) of a tag name (128 bytes at most) and a device name,
/// with room for device names of most of a KiB.
const TABLE_FILE_BYTES_MAX: u64 = 1 << 30;

fn read(path: &Path) -> std::io::Result<String> {
    crate::files::read_text_capped(path, TABLE_FILE_BYTES_MAX)
}

fn file_name(seq: u64) -> String {
    format!("tags.{seq:020}.tsv")
}

fn seq_of(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("tags.")?.strip_suffix(".tsv")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// `(first_seq, path)` of every table in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<(u64, PathBuf)>, TagHistoryError> {
    let entries = fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let mut tables: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            Some((seq_of(e.file_name().to_str()?)?, e.path()))
        })
        .collect();
    tables.sort();
    Ok(tables)
}

/// The table of `config` as a file's text.
fn render(config: &Config) -> Result<String, TagHistoryError> {
    let mut text = String::new();
    for device in &config.devices {
        for tag in device.sample_names() {
            for name in [tag.as_ref(), device.name.as_str()] {
                if name.contains(['\t', '\n', '\r']) {
                    return Err(TagHistoryError::Name(name.to_string()));
                }
            }
            text.push_str(&tag);
            text.push('\t');
            text.push_str(&device.name);
            text.push('\n');
        }
    }
    Ok(text)
}

/// The checksum frames carry for a table's text: CRC32C, with 0 (which
/// marks an unstamped frame) moved to 1.
pub fn table_crc(text: &[u8]) -> u32 {
    crc32c::crc32c(text).max(1)
}

/// Records `config`'s table as in force from `next_seq` on (nothing when
/// the newest table already says the same) and returns its checksum, for
/// `Wal::set_tags_crc`. Durable when it returns: file written, synced,
/// renamed into place, directory synced. Call it before the first sample
/// polled under `config` is appended.
pub fn record(dir: &Path, config: &Config, next_seq: u64) -> Result<u32, TagHistoryError> {
    let text = render(config)?;
    let crc = table_crc(text.as_bytes());
    let mut tables = list(dir)?;
    remove_past(dir, &mut tables, next_seq)?;
    if let Some((_, newest)) = tables.last() {
        if read(newest).is_ok_and(|t| t == text) {
            return Ok(crc);
        }
    }
    let path = dir.join(file_name(next_seq));
    let part = dir.join(format!("{}.part", file_name(next_seq)));
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&part)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&part, &path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| io_error(&path, e))?;
    Ok(crc)
}

/// Removes (durably) the tables that start past `next_seq`.
fn remove_past(
    dir: &Path,
    tables: &mut Vec<(u64, PathBuf)>,
    next_seq: u64,
) -> Result<(), TagHistoryError> {
    let keep = tables.partition_point(|(first, _)| *first <= next_seq);
    if keep == tables.len() {
        return Ok(());
    }
    for (_, path) in tables.drain(keep..) {
        fs::remove_file(&path).map_err(|e| io_error(&path, e))?;
    }
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// Deletes the tables no retained sample needs: every table that a newer
/// table at or below `oldest_seq` replaced. Returns how many were deleted.
pub fn prune(dir: &Path, oldest_seq: u64) -> Result<usize, TagHistoryError> {
    let tables = list(dir)?;
    let keep_from = tables
        .iter()
        .rposition(|(first, _)| *first <= oldest_seq)
        .unwrap_or(0);
    let mut deleted = 0;
    for (_, path) in tables.iter().take(keep_from) {
        fs::remove_file(path).map_err(|e| io_error(path, e))?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Loads a table written by `record`, with its checksum.
pub fn load(path: &Path) -> Result<(SymbolTable, u32), TagHistoryError> {
    let text = read(path).map_err(|e| io_error(path, e))?;
    let crc = table_crc(text.as_bytes());
    let mut table = SymbolTable::new();
    for (index, line) in text.lines().enumerate() {
        let malformed = |problem: String| TagHistoryError::Malformed {
            path: path.to_path_buf(),
            line: index + 1,
            problem,
        };
        let (tag, device) = line
            .split_once('\t')
            .ok_or_else(|| malformed("expected tag<TAB>device".into()))?;
        table
            .push(tag, device)
            .map_err(|e| malformed(e.to_string()))?;
    }
    Ok((table, crc))
}

/// One table and the seqs it covers.
struct Epoch {
    first_seq: u64,
    path: PathBuf,
    table: Option<(Arc<SymbolTable>, u32)>,
}

/// The tables of one WAL directory, loaded on first use. Tables written
/// after `open` (a reload) are found by listing again when a frame's
/// checksum or seq asks for one not known.
pub struct TagHistory {
    dir: PathBuf,
    epochs: Vec<Epoch>,
    /// The last answer, `[start, end)` and checksum: frames come in seq
    /// order, so almost every lookup is this.
    current: Option<(u64, u64, u32, Arc<SymbolTable>)>,
}

impl TagHistory {
    pub fn open(dir: &Path) -> Result<TagHistory, TagHistoryError> {
        let mut history = TagHistory {
            dir: dir.to_path_buf(),
            epochs: Vec::new(),
            current: None,
        };
        history.refresh()?;
        Ok(history)
    }

    /// Lists the directory again, keeping the tables already loaded.
    fn refresh(&mut self) -> Result<(), TagHistoryError> {
        let listed = list(&self.dir)?;
        let mut epochs = Vec::with_capacity(listed.len());
        for (first_seq, path) in listed {
            let known = self
                .epochs
                .iter_mut()
                .find(|e| e.first_seq == first_seq)
                .and_then(|e| e.table.take());
            epochs.push(Epoch {
                first_seq,
                path,
                table: known,
            });
        }
        self.epochs = epochs;
        self.current = None;
        Ok(())
    }

    /// The table for the frame holding seqs `[first_seq, end_seq)` that
    /// was stamped with `tags_crc` (0: unstamped, checked by range only).
    pub fn table_for(
        &mut self,
        first_seq: u64,
        end_seq: u64,
        tags_crc: u32,
    ) -> Result<Arc<SymbolTable>, TagHistoryError> {
        if let Some((start, end, crc, table)) = &self.current {
            let proven = *crc == tags_crc || tags_crc == 0;
            if *start <= first_seq && end_seq <= *end && proven {
                return Ok(Arc::clone(table));
            }
        }
        match self.lookup(first_seq, end_seq, tags_crc) {
            // Another table may have been written since the listing.
            Err(TagHistoryError::Mismatch { .. } | TagHistoryError::Uncovered { .. }) => {
                self.refresh()?;
                self.lookup(first_seq, end_seq, tags_crc)
            }
            other => other,
        }
    }

    fn lookup(
        &mut self,
        first_seq: u64,
        end_seq: u64,
        tags_crc: u32,
    ) -> Result<Arc<SymbolTable>, TagHistoryError> {
        let index = self
            .epochs
            .iter()
            .rposition(|e| e.first_seq <= first_seq)
            .ok_or(TagHistoryError::Uncovered { seq: first_seq })?;
        let end = self
            .epochs
            .get(index + 1)
            .map_or(u64::MAX, |next| next.first_seq);
        if end_seq > end {
            return Err(TagHistoryError::Straddles { first_seq, end_seq });
        }
        let epoch = &mut self.epochs[index];
        let (table, crc) = match &epoch.table {
            Some((table, crc)) => (Arc::clone(table), *crc),
            None => {
                let (table, crc) = load(&epoch.path)?;
                let table = Arc::new(table);
                epoch.table = Some((Arc::clone(&table), crc));
                (table, crc)
            }
        };
        if tags_crc != 0 && crc != tags_crc {
            return Err(TagHistoryError::Mismatch {
                seq: first_seq,
                frame_crc: tags_crc,
                path: epoch.path.clone(),
                table_crc: crc,
            });
        }
        self.current = Some((epoch.first_seq, end, crc, Arc::clone(&table)));
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_str;
    use crate::sample::TagId;

    fn config(tags: &[&str]) -> Config {
        let mut text = String::from(
            "[wal]\ndir = \"w\"\n[[sink]]\nname = \"tp\"\nkind = \"kdb\"\n\
             address = \"127.0.0.1:5010\"\ntable = \"plc\"\n\
             [[device]]\nname = \"d\"\nprotocol = \"modbus-tcp\"\naddress = \"h:502\"\n\
             unit_id = 1\npoll_interval = \"1s\"\n",
        );
        for (i, tag) in tags.iter().enumerate() {
            text.push_str(&format!(
                "[[device.tag]]\nname = \"{tag}\"\narea = \"holding\"\naddress = {i}\n\
                 type = \"uint16\"\n"
            ));
        }
        parse_str(&text, Path::new("p.toml")).unwrap()
    }

    #[test]
    fn each_seq_gets_the_table_in_force_then() {
        let dir = tempfile::tempdir().unwrap();
        let a = record(dir.path(), &config(&["a", "b"]), 0).unwrap();
        let same = record(dir.path(), &config(&["a", "b"]), 50).unwrap(); // no file
        assert_eq!(a, same);
        let new = record(dir.path(), &config(&["new", "a", "b"]), 100).unwrap();
        assert_ne!(a, new);
        assert_eq!(list(dir.path()).unwrap().len(), 2);
        let mut h = TagHistory::open(dir.path()).unwrap();
        let old = h.table_for(0, 100, a).unwrap();
        assert_eq!(old.tag_name(TagId(0)), Some("a"));
        let newer = h.table_for(100, 150, new).unwrap();
        assert_eq!(newer.tag_name(TagId(0)), Some("new"));
        assert_eq!(
            h.table_for(90, 110, a).err(),
            Some(TagHistoryError::Straddles {
                first_seq: 90,
                end_seq: 110
            })
        );
        // A table written after the listing (a reload) is found: the
        // frame's checksum says the cached open-ended table is not it.
        let b = record(dir.path(), &config(&["b"]), 200).unwrap();
        assert_eq!(
            h.table_for(200, 201, b).unwrap().tag_name(TagId(0)),
            Some("b")
        );
        assert_eq!(
            h.table_for(150, 200, new).unwrap().tag_name(TagId(0)),
            Some("new")
        );
        // A frame stamped with a table that is not where its seq says.
        assert!(matches!(
            h.table_for(0, 10, b),
            Err(TagHistoryError::Mismatch { seq: 0, .. })
        ));
    }

    #[test]
    fn a_reload_after_the_listing_is_found_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let a = record(dir.path(), &config(&["a"]), 0).unwrap();
        let mut h = TagHistory::open(dir.path()).unwrap();
        assert_eq!(h.table_for(0, 10, a).unwrap().tag_name(TagId(0)), Some("a"));
        let b = record(dir.path(), &config(&["b"]), 10).unwrap();
        // The cached answer covers [0, MAX): only the checksum tells.
        assert_eq!(
            h.table_for(10, 20, b).unwrap().tag_name(TagId(0)),
            Some("b")
        );
    }

    #[test]
    fn a_table_past_the_next_seq_is_removed_before_recording() {
        let dir = tempfile::tempdir().unwrap();
        let a = record(dir.path(), &config(&["a"]), 0).unwrap();
        record(dir.path(), &config(&["b"]), 100).unwrap();
        // The WAL lost seqs 50.. (emptied by hand down to a checkpoint):
        // b is in force again from 50, and tags.100 names nothing.
        let b = record(dir.path(), &config(&["b"]), 50).unwrap();
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|t| t.0).collect();
        assert_eq!(left, [0, 50]);
        let mut h = TagHistory::open(dir.path()).unwrap();
        assert_eq!(h.table_for(0, 50, a).unwrap().tag_name(TagId(0)), Some("a"));
        assert_eq!(
            h.table_for(50, 60, b).unwrap().tag_name(TagId(0)),
            Some("b")
        );
        assert_eq!(
            h.table_for(100, 110, b).unwrap().tag_name(TagId(0)),
            Some("b")
        );
    }

    #[test]
    fn a_seq_below_every_table_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), &config(&["a"]), 10).unwrap();
        let mut h = TagHistory::open(dir.path()).unwrap();
        assert_eq!(
            h.table_for(5, 6, 0).err(),
            Some(TagHistoryError::Uncovered { seq: 5 })
        );
    }

    #[test]
    fn prune_keeps_the_table_of_the_oldest_retained_seq() {
        let dir = tempfile::tempdir().unwrap();
        for (seq, tags) in [(0, ["a"]), (10, ["b"]), (20, ["c"]), (30, ["d"])] {
            record(dir.path(), &config(&tags), seq).unwrap();
        }
        assert_eq!(prune(dir.path(), 25).unwrap(), 2);
        let left: Vec<u64> = list(dir.path()).unwrap().iter().map(|t| t.0).collect();
        assert_eq!(left, [20, 30]);
        assert_eq!(prune(dir.path(), 5).unwrap(), 0);
    }
}
