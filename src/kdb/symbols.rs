//! The tag table as the publisher needs it: for each `TagId`, the tag's name
//! and its device's name, stored NUL-terminated and side by side
//! (`name\0device\0`) in one arena, so that a row's two symbols are two
//! short copies from one place.
//!
//! The arena always ends with `SYMBOL_WINDOW_BYTES` zero bytes, so that a
//! fixed-size window starting at any symbol is in bounds: the encoder copies
//! a whole window (a couple of vector stores, no length-dependent `memcpy`
//! call) and then advances by the symbol's true length.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::Config;
use crate::sample::TagId;

use super::error::KdbError;

/// Longest tag or device name we accept (a kdb+ symbol has no limit, but a
/// name this long is a configuration mistake).
pub const NAME_BYTES_MAX: usize = 255;

/// Bytes the encoder copies at once for a symbol of at most this many bytes
/// (NUL included); longer ones take an exact copy.
pub const SYMBOL_WINDOW_BYTES: usize = 32;

// A name with its NUL must fit the u16 lengths of `Entry`.
const _: () = assert!(NAME_BYTES_MAX < u16::MAX as usize);

/// Where one tag's `name\0device\0` starts in the arena, and the two
/// lengths (NULs included): 8 bytes, so 25,000 tags take 200 KB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entry {
    pub start: u32,
    pub name_len_z: u16,
    pub device_len_z: u16,
}

impl Entry {
    pub fn device_start(self) -> usize {
        self.start as usize + self.name_len_z as usize
    }
}

#[derive(Clone, Debug)]
pub struct SymbolTable {
    /// Symbols, then `SYMBOL_WINDOW_BYTES` zeros.
    arena: Vec<u8>,
    entries: Vec<Entry>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        SymbolTable {
            arena: vec![0; SYMBOL_WINDOW_BYTES],
            entries: Vec::new(),
        }
    }
}

impl SymbolTable {
    pub fn new() -> Self {
        SymbolTable::default()
    }

    /// Tag ids in configuration order: device 0's tags, then device 1's, ...
    pub fn from_config(config: &Config) -> Result<Self, KdbError> {
        let mut table = SymbolTable::new();
        for device in &config.devices {
            for tag in &device.tags {
                table.push(&tag.name, &device.name)?;
            }
        }
        Ok(table)
    }

    /// Adds the next tag; its id is the number of tags before it.
    pub fn push(&mut self, tag: &str, device: &str) -> Result<TagId, KdbError> {
        for (what, name) in [("tag name", tag), ("device name", device)] {
            if name.contains('\0') || name.len() > NAME_BYTES_MAX {
                return Err(KdbError::BadName { what });
            }
        }
        let id = u32::try_from(self.entries.len())
            .map_err(|_| KdbError::BadName { what: "tag count" })?;
        let data_len = self.arena.len() - SYMBOL_WINDOW_BYTES;
        let start = u32::try_from(data_len).map_err(|_| KdbError::BadName {
            what: "total length of tag names",
        })?;
        self.arena.truncate(data_len);
        self.arena.extend_from_slice(tag.as_bytes());
        self.arena.push(0);
        self.arena.extend_from_slice(device.as_bytes());
        self.arena.push(0);
        self.arena.resize(self.arena.len() + SYMBOL_WINDOW_BYTES, 0);
        self.entries.push(Entry {
            start,
            name_len_z: tag.len() as u16 + 1,
            device_len_z: device.len() as u16 + 1,
        });
        Ok(TagId(id))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn entry(&self, tag: TagId) -> Option<Entry> {
        self.entries.get(tag.0 as usize).copied()
    }

    /// `len` bytes of the arena from `start` (the symbol, or a window).
    pub(crate) fn bytes(&self, start: usize, len: usize) -> Option<&[u8]> {
        self.arena.get(start..start.checked_add(len)?)
    }

    /// The tag's name followed by its NUL.
    pub fn name_z(&self, tag: TagId) -> Option<&[u8]> {
        let e = self.entry(tag)?;
        self.bytes(e.start as usize, e.name_len_z as usize)
    }

    /// The device's name followed by its NUL.
    pub fn device_z(&self, tag: TagId) -> Option<&[u8]> {
        let e = self.entry(tag)?;
        self.bytes(e.device_start(), e.device_len_z as usize)
    }

    /// Bytes the two symbols of `tag` take on the wire (NULs included).
    pub fn symbol_bytes(&self, tag: TagId) -> Option<usize> {
        let e = self.entry(tag)?;
        Some(e.name_len_z as usize + e.device_len_z as usize)
    }

    pub fn tag_name(&self, tag: TagId) -> Option<&str> {
        let z = self.name_z(tag)?;
        std::str::from_utf8(z.get(..z.len() - 1)?).ok()
    }

    pub fn device_name(&self, tag: TagId) -> Option<&str> {
        let z = self.device_z(tag)?;
        std::str::from_utf8(z.get(..z.len() - 1)?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_push_order() {
        let mut t = SymbolTable::new();
        assert_eq!(t.push("a.temp", "press-01").unwrap(), TagId(0));
        assert_eq!(t.push("b", "press-02").unwrap(), TagId(1));
        assert_eq!(t.name_z(TagId(1)), Some(&b"b\0"[..]));
        assert_eq!(t.device_name(TagId(0)), Some("press-01"));
        assert_eq!(t.symbol_bytes(TagId(0)), Some(16));
        assert_eq!(t.name_z(TagId(2)), None);
        assert!(t.push("x\0", "d").is_err());
        assert!(t.push(&"n".repeat(NAME_BYTES_MAX + 1), "d").is_err());
        // Every symbol has a whole window of readable bytes after its start.
        let e = t.entry(TagId(1)).unwrap();
        assert!(t.bytes(e.device_start(), SYMBOL_WINDOW_BYTES).is_some());
    }
}
