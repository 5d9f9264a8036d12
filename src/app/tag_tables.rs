//! The WAL stores tag ids; names live in the configuration, which can change
//! between runs. So that a WAL can be replayed on its own, every start writes
//! the tag table in force into the WAL directory as `tags.<SEQ>.tsv` (SEQ =
//! the first sequence number it applies to, 20 digits), unless the newest
//! such file already says the same. Replay picks, for each frame, the newest
//! table at or below the frame's seq.
//!
//! Format: one line per tag id, in id order: `tag<TAB>device`. Names never
//! hold a tab or newline (configuration validation rejects control
//! characters in names; see `write`'s check).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::kdb::SymbolTable;

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
pub fn list(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut tables: Vec<(u64, PathBuf)> = fs::read_dir(dir)?
        .filter_map(|e| {
            let e = e.ok()?;
            Some((seq_of(e.file_name().to_str()?)?, e.path()))
        })
        .collect();
    tables.sort();
    Ok(tables)
}

fn render(config: &Config) -> Result<String, String> {
    let mut text = String::new();
    for device in &config.devices {
        for tag in device.sample_names() {
            for name in [tag.as_ref(), device.name.as_str()] {
                if name.contains(['\t', '\n', '\r']) {
                    return Err(format!("name {name:?} holds a tab or newline"));
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

/// Records the config's tag table as applying from `next_seq` on.
pub fn record(dir: &Path, config: &Config, next_seq: u64) -> Result<(), String> {
    let text = render(config)?;
    let tables = list(dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    if let Some((_, newest)) = tables.last() {
        if read(newest).is_ok_and(|t| t == text) {
            return Ok(());
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
    write().map_err(|e| format!("write {}: {e}", path.display()))
}

/// Loads a table written by `record`.
pub fn load(path: &Path) -> Result<SymbolTable, String> {
    let text = read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut table = SymbolTable::new();
    for (index, line) in text.lines().enumerate() {
        let (tag, device) = line
            .split_once('\t')
            .ok_or_else(|| format!("{}:{}: expected tag<TAB>device", path.display(), index + 1))?;
        table
            .push(tag, device)
            .map_err(|e| format!("{}:{}: {e}", path.display(), index + 1))?;
    }
    Ok(table)
}
