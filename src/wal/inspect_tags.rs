//! The tag tables as `wal inspect` shows them (tag_history.rs owns them):
//! each `tags.SEQ.tsv` with the seqs and frames it names, its tags,
//! devices and checksum, and as anomalies what the sink and `replay` would
//! stop at rather than guess: stamped frames whose table was deleted or
//! replaced, and a table that starts past the WAL's end.
//!
//! Frames are counted one at a time as inspect walks them (memory per
//! table, never per frame); this module reads files and changes nothing.

#![forbid(unsafe_code)]

use std::path::Path;

use serde::Serialize;

use super::format::FrameView;
use super::inspect::{Anomaly, Inspection};
use crate::kdb::SymbolTable;
use crate::sample::TagId;
use crate::tag_history;

#[derive(Clone, Debug, Serialize)]
pub struct TagTableInfo {
    pub file: String,
    /// The first seq it names (the number in its file name).
    pub first_seq: u64,
    /// One past the last seq it names: the next table's first seq, or the
    /// durable end for the newest.
    pub end_seq: u64,
    /// Tags and devices it names; `None` when the file cannot be read.
    pub tags: Option<u64>,
    pub devices: Option<u64>,
    /// Its CRC32C, which every frame polled under it carries.
    pub checksum: Option<u32>,
    /// The frames in its range, and their records.
    pub frames: u64,
    pub samples: u64,
}

/// Stamped frames that their tag table does not name: how many, from which
/// seq to which, and the checksum the first of them carries.
#[derive(Clone, Copy)]
struct Unnamed {
    frames: u64,
    first_seq: u64,
    end_seq: u64,
    tags_crc: u32,
}

impl Unnamed {
    fn note(slot: &mut Option<Unnamed>, frame: &FrameView) {
        let u = slot.get_or_insert(Unnamed {
            frames: 0,
            first_seq: frame.first_seq,
            end_seq: frame.first_seq,
            tags_crc: frame.tags_crc,
        });
        u.frames += 1;
        u.end_seq = frame.end_seq();
    }
}

/// The frames counted against the tag tables, in seq order.
pub(super) struct Coverage {
    tables: Vec<TagTableInfo>,
    /// Per table: its stamped frames that carry another table's checksum.
    mismatched: Vec<Option<Unnamed>>,
    /// Stamped frames older than every table.
    uncovered: Option<Unnamed>,
}

impl Coverage {
    /// Reads the tables of `dir`; one that cannot be read is an anomaly.
    pub(super) fn load(dir: &Path, out: &mut Inspection) -> Coverage {
        let listed = tag_history::list(dir).unwrap_or_else(|e| {
            out.anomalies.push(Anomaly {
                file: dir.display().to_string(),
                offset: None,
                kind: "unreadable tag tables",
                detail: e.to_string(),
            });
            Vec::new()
        });
        let mut tables = Vec::with_capacity(listed.len());
        for (first_seq, path) in listed {
            let file = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let loaded = tag_history::load(&path);
            if let Err(e) = &loaded {
                out.anomalies.push(Anomaly {
                    file: file.clone(),
                    offset: None,
                    kind: "bad tag table",
                    detail: e.to_string(),
                });
            }
            let loaded = loaded.ok();
            tables.push(TagTableInfo {
                file,
                first_seq,
                end_seq: first_seq,
                tags: loaded.as_ref().map(|(t, _)| t.len() as u64),
                devices: loaded.as_ref().map(|(t, _)| device_count(t)),
                checksum: loaded.map(|(_, crc)| crc),
                frames: 0,
                samples: 0,
            });
        }
        Coverage {
            mismatched: vec![None; tables.len()],
            tables,
            uncovered: None,
        }
    }

    /// Counts `frame` against the table whose range holds it. Frames come
    /// in seq order and never straddle two tables (tag_history.rs).
    pub(super) fn note(&mut self, frame: &FrameView) {
        let after = self
            .tables
            .partition_point(|t| t.first_seq <= frame.first_seq);
        let stamped = frame.tags_crc != 0;
        let Some(table) = after.checked_sub(1).and_then(|i| self.tables.get_mut(i)) else {
            if stamped {
                Unnamed::note(&mut self.uncovered, frame);
            }
            return;
        };
        table.frames += 1;
        table.samples += u64::from(frame.sample_count);
        // An unreadable table was reported already; its frames are not
        // counted twice.
        if stamped && table.checksum.is_some_and(|c| c != frame.tags_crc) {
            if let Some(slot) = self.mismatched.get_mut(after - 1) {
                Unnamed::note(slot, frame);
            }
        }
    }

    /// Closes the ranges at the durable end and reports what cannot be
    /// named. Call it once the cursors are read.
    pub(super) fn finish(self, out: &mut Inspection) {
        let durable = out.durable_seq;
        // Where the next start's seqs begin: no sink is ever handed a seq
        // at or below a checkpoint again, even from an emptied WAL.
        let next_seq = out
            .cursors
            .iter()
            .filter_map(|c| c.checkpoint)
            .fold(durable, u64::max);
        let mut tables = self.tables;
        let firsts: Vec<u64> = tables.iter().skip(1).map(|t| t.first_seq).collect();
        for (table, next) in tables
            .iter_mut()
            .zip(firsts.into_iter().map(Some).chain([None]))
        {
            table.end_seq = next.unwrap_or(durable).max(table.first_seq);
        }
        for stale in tables.iter().filter(|t| t.first_seq > next_seq) {
            out.anomalies.push(Anomaly {
                file: stale.file.clone(),
                offset: None,
                kind: "tag table past the end",
                detail: format!(
                    "it names seqs from {} on, but the WAL ends at {next_seq}: the WAL lost \
                     samples after the table was written; the next start removes it",
                    stale.first_seq
                ),
            });
        }
        if let Some(u) = self.uncovered {
            out.anomalies.push(Anomaly {
                file: tables.first().map_or("-".into(), |t| t.file.clone()),
                offset: None,
                kind: "tag table missing",
                detail: format!(
                    "{} frames, seqs {}..{}, were polled under a tag table (checksum \
                     {:#010x}) that is no longer in the directory: the sink and replay stop \
                     at seq {} rather than guess their names",
                    u.frames, u.first_seq, u.end_seq, u.tags_crc, u.first_seq
                ),
            });
        }
        for (table, mismatch) in tables.iter().zip(self.mismatched) {
            let Some(u) = mismatch else { continue };
            out.anomalies.push(Anomaly {
                file: table.file.clone(),
                offset: None,
                kind: "tag table replaced",
                detail: format!(
                    "{} frames, seqs {}..{}, were polled under a tag table with checksum \
                     {:#010x}, not this one ({:#010x}): the sink and replay stop at seq {} \
                     rather than guess their names",
                    u.frames,
                    u.first_seq,
                    u.end_seq,
                    u.tags_crc,
                    table.checksum.unwrap_or(0),
                    u.first_seq
                ),
            });
        }
        out.tag_tables = tables;
    }
}

fn device_count(table: &SymbolTable) -> u64 {
    let mut devices: Vec<&str> = (0..table.len())
        .filter_map(|i| table.device_name(TagId(i as u32)))
        .collect();
    devices.sort_unstable();
    devices.dedup();
    devices.len() as u64
}

/// The human form: one line per table.
pub(super) fn render(tables: &[TagTableInfo]) -> String {
    let mut s = String::new();
    for t in tables {
        let count = |n: Option<u64>| n.map_or("?".to_string(), |n| n.to_string());
        let checksum = t
            .checksum
            .map_or("unreadable".into(), |c| format!("{c:#010x}"));
        s += &format!(
            "  {}  seq {}..{}  tags {} on {} devices  checksum {checksum}  frames {}\n",
            t.file,
            t.first_seq,
            t.end_seq,
            count(t.tags),
            count(t.devices),
            t.frames
        );
    }
    s
}
