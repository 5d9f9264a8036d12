//! The tag table as the publisher needs it: for each `TagId`, the tag's name
//! and its device's name, NUL-terminated, in two arenas laid out in id order
//! (`names`: every tag's `name\0`; `devices`: every tag's `device\0`, the
//! device name repeated per tag) and one table of where each id starts in
//! both.
//!
//! Why id order: a batch comes in runs of consecutive ids (one Modbus
//! response is one device's block of registers, and tags are numbered device
//! by device), and for a run the wire's symbol columns are exactly a
//! contiguous slice of each arena. A run is sized from two table lookups
//! (its first id and one past its last) and written as two copies, however
//! long it is; the rows in between touch no table at all.
//!
//! Each arena ends with `SYMBOL_WINDOW_BYTES` zero bytes, so that a
//! fixed-size window starting at any symbol is in bounds: the encoder copies
//! a short run as a whole window (a couple of vector stores, no
//! length-dependent `memcpy` call) and then advances by its true length.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::Config;
use crate::sample::TagId;

use super::error::KdbError;

/// Longest tag or device name we accept (a kdb+ symbol has no limit, but a
/// name this long is a configuration mistake).
pub const NAME_BYTES_MAX: usize = 255;

/// Bytes the encoder copies at once for a run of symbols of at most this
/// many bytes (NULs included); longer ones take an exact copy.
pub const SYMBOL_WINDOW_BYTES: usize = 32;

/// Where a run of consecutive tag ids sits in the two arenas: `[name,
/// device]` offsets of its first id and of one past its last. The sym
/// column of the run is `names[start[0]..end[0]]`, its device column
/// `devices[start[1]..end[1]]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: [u32; 2],
    pub end: [u32; 2],
}

impl Span {
    /// Bytes of the run's sym column (NULs included).
    pub fn name_bytes(self) -> usize {
        (self.end[0] - self.start[0]) as usize
    }

    /// Bytes of the run's device column (NULs included).
    pub fn device_bytes(self) -> usize {
        (self.end[1] - self.start[1]) as usize
    }
}

#[derive(Clone, Debug)]
pub struct SymbolTable {
    /// `name\0` of every tag in id order, then `SYMBOL_WINDOW_BYTES` zeros.
    names: Vec<u8>,
    /// `device\0` of every tag in id order, then `SYMBOL_WINDOW_BYTES` zeros.
    devices: Vec<u8>,
    /// `starts[id]` is `[name, device]` offset of tag `id`; one more entry
    /// than tags, holding the ends of the last. 8 bytes per tag, so one cache
    /// line serves 8 ids and 125,000 tags take 1 MB.
    starts: Vec<[u32; 2]>,
}

impl Default for SymbolTable {
    fn default() -> Self {
        SymbolTable {
            names: vec![0; SYMBOL_WINDOW_BYTES],
            devices: vec![0; SYMBOL_WINDOW_BYTES],
            starts: vec![[0, 0]],
        }
    }
}

/// Appends `symbol\0` before the arena's trailing window of zeros.
fn append(arena: &mut Vec<u8>, symbol: &str) {
    let data_len = arena.len() - SYMBOL_WINDOW_BYTES;
    arena.truncate(data_len);
    arena.extend_from_slice(symbol.as_bytes());
    arena.push(0);
    arena.resize(arena.len() + SYMBOL_WINDOW_BYTES, 0);
}

/// The arena's end offset once `symbol\0` is appended, if it fits a `u32`.
fn end_after(arena: &[u8], symbol: &str) -> Option<u32> {
    u32::try_from(arena.len() - SYMBOL_WINDOW_BYTES + symbol.len() + 1).ok()
}

impl SymbolTable {
    pub fn new() -> Self {
        SymbolTable::default()
    }

    /// Tag ids in configuration order: device 0's tags, then device 1's, ...
    pub fn from_config(config: &Config) -> Result<Self, KdbError> {
        let mut table = SymbolTable::new();
        for device in &config.devices {
            for tag in device.sample_names() {
                table.push(&tag, &device.name)?;
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
        let id = u32::try_from(self.len()).map_err(|_| KdbError::BadName { what: "tag count" })?;
        let (Some(name_end), Some(device_end)) = (
            end_after(&self.names, tag),
            end_after(&self.devices, device),
        ) else {
            return Err(KdbError::BadName {
                what: "total length of tag names",
            });
        };
        append(&mut self.names, tag);
        append(&mut self.devices, device);
        self.starts.push([name_end, device_end]);
        Ok(TagId(id))
    }

    pub fn len(&self) -> usize {
        self.starts.len() - 1
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The run of `count` consecutive ids from `first`, if every one of them
    /// is a known tag (`count` 0 is an empty run).
    #[inline(always)]
    pub(crate) fn span(&self, first: TagId, count: usize) -> Option<Span> {
        let first = first.0 as usize;
        let start = *self.starts.get(first)?;
        let end = *self.starts.get(first.checked_add(count)?)?;
        Some(Span { start, end })
    }

    /// The name arena (`[0]`) and the device arena (`[1]`), each with its
    /// trailing window of zeros.
    pub(crate) fn arenas(&self) -> [&[u8]; 2] {
        [&self.names, &self.devices]
    }

    /// The tag's name followed by its NUL.
    pub fn name_z(&self, tag: TagId) -> Option<&[u8]> {
        let s = self.span(tag, 1)?;
        self.names.get(s.start[0] as usize..s.end[0] as usize)
    }

    /// The device's name followed by its NUL.
    pub fn device_z(&self, tag: TagId) -> Option<&[u8]> {
        let s = self.span(tag, 1)?;
        self.devices.get(s.start[1] as usize..s.end[1] as usize)
    }

    /// Bytes the two symbols of `tag` take on the wire (NULs included).
    pub fn symbol_bytes(&self, tag: TagId) -> Option<usize> {
        let s = self.span(tag, 1)?;
        Some(s.name_bytes() + s.device_bytes())
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
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn ids_in_push_order() {
        let mut t = SymbolTable::new();
        assert!(t.is_empty());
        assert_eq!(t.push("a.temp", "press-01").unwrap(), TagId(0));
        assert_eq!(t.push("b", "press-02").unwrap(), TagId(1));
        assert_eq!(t.len(), 2);
        assert_eq!(t.name_z(TagId(1)), Some(&b"b\0"[..]));
        assert_eq!(t.device_name(TagId(0)), Some("press-01"));
        assert_eq!(t.tag_name(TagId(0)), Some("a.temp"));
        assert_eq!(t.symbol_bytes(TagId(0)), Some(16));
        assert_eq!(t.name_z(TagId(2)), None);
        assert!(t.push("x\0", "d").is_err());
        assert!(t.push(&"n".repeat(NAME_BYTES_MAX + 1), "d").is_err());
        assert!(t.push("d", &"n".repeat(NAME_BYTES_MAX + 1)).is_err());
        // A refused push leaves the table as it was.
        assert_eq!(t.len(), 2);
        assert_eq!(t.push("c", "press-02").unwrap(), TagId(2));
        // Every symbol has a whole window of readable bytes after its start.
        let [names, devices] = t.arenas();
        for id in 0..3 {
            let s = t.span(TagId(id), 1).unwrap();
            assert!(names.len() >= s.start[0] as usize + SYMBOL_WINDOW_BYTES);
            assert!(devices.len() >= s.start[1] as usize + SYMBOL_WINDOW_BYTES);
        }
        assert!(names.ends_with(&[0; SYMBOL_WINDOW_BYTES]));
        assert!(devices.ends_with(&[0; SYMBOL_WINDOW_BYTES]));
    }

    /// A run's slices of the two arenas are its rows' symbols, in order.
    #[test]
    fn a_span_is_its_rows_symbols_concatenated() {
        let mut t = SymbolTable::new();
        for (name, device) in [("a", "d1"), ("bb", "d1"), ("", "d2"), ("ccc", "")] {
            t.push(name, device).unwrap();
        }
        let [names, devices] = t.arenas();
        for first in 0..=4u32 {
            for count in 0..=(4 - first as usize) {
                let s = t.span(TagId(first), count).unwrap();
                let ids = first..first + count as u32;
                let name: Vec<u8> = ids
                    .clone()
                    .flat_map(|i| t.name_z(TagId(i)).unwrap().to_vec())
                    .collect();
                let device: Vec<u8> = ids
                    .flat_map(|i| t.device_z(TagId(i)).unwrap().to_vec())
                    .collect();
                assert_eq!(&names[s.start[0] as usize..s.end[0] as usize], &name[..]);
                assert_eq!(
                    &devices[s.start[1] as usize..s.end[1] as usize],
                    &device[..]
                );
                assert_eq!(s.name_bytes(), name.len());
                assert_eq!(s.device_bytes(), device.len());
            }
        }
        // Past the last id, or an id count that would overflow.
        assert_eq!(t.span(TagId(4), 1), None);
        assert_eq!(t.span(TagId(3), 2), None);
        assert_eq!(t.span(TagId(u32::MAX), 1), None);
        assert_eq!(t.span(TagId(0), usize::MAX), None);
    }
}
