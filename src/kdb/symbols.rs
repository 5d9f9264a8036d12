//! The tag table as the publisher needs it: for each `TagId`, the tag's name
//! and its device's name, each stored NUL-terminated in one arena so that a
//! row's symbol is one `memcpy` into the message.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::Config;
use crate::sample::TagId;

use super::error::KdbError;

/// Longest tag or device name we accept (a kdb+ symbol has no limit, but a
/// name this long is a configuration mistake).
pub const NAME_BYTES_MAX: usize = 255;

#[derive(Clone, Copy, Debug)]
struct Entry {
    name_start: u32,
    name_len_z: u32,
    device_start: u32,
    device_len_z: u32,
}

#[derive(Clone, Debug, Default)]
pub struct SymbolTable {
    arena: Vec<u8>,
    entries: Vec<Entry>,
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
        let id = TagId(self.entries.len() as u32);
        let name_start = self.arena.len() as u32;
        self.arena.extend_from_slice(tag.as_bytes());
        self.arena.push(0);
        let device_start = self.arena.len() as u32;
        self.arena.extend_from_slice(device.as_bytes());
        self.arena.push(0);
        self.entries.push(Entry {
            name_start,
            name_len_z: tag.len() as u32 + 1,
            device_start,
            device_len_z: device.len() as u32 + 1,
        });
        Ok(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The tag's name followed by its NUL.
    pub fn name_z(&self, tag: TagId) -> Option<&[u8]> {
        let e = self.entries.get(tag.0 as usize)?;
        self.arena
            .get(e.name_start as usize..(e.name_start + e.name_len_z) as usize)
    }

    /// The device's name followed by its NUL.
    pub fn device_z(&self, tag: TagId) -> Option<&[u8]> {
        let e = self.entries.get(tag.0 as usize)?;
        self.arena
            .get(e.device_start as usize..(e.device_start + e.device_len_z) as usize)
    }

    /// Bytes the two symbols of `tag` take on the wire (NULs included).
    pub fn symbol_bytes(&self, tag: TagId) -> Option<usize> {
        let e = self.entries.get(tag.0 as usize)?;
        Some((e.name_len_z + e.device_len_z) as usize)
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
    }
}
