//! The EtherNet/IP family of the shared checked reader (protocol/checked.rs),
//! little-endian. And the one writer: appends
//! into a caller's buffer and remembers, rather than panics, when it would
//! not fit. Nothing here panics or indexes.

use super::error::{EnipError, Field};
use crate::protocol::checked::{self, Family};

/// The EtherNet/IP family of the shared checked reader
/// (protocol/checked.rs): little-endian, a short read is `Truncated` and
/// leftover bytes are `TrailingBytes`, each naming the field.
pub struct Enip;

impl Family for Enip {
    type Field = Field;
    type Error = EnipError;
    const BIG_ENDIAN: bool = false;
    fn truncated(field: Field, needed: usize, available: usize) -> EnipError {
        EnipError::Truncated {
            field,
            needed,
            available,
        }
    }
    fn trailing(field: Field, count: usize) -> EnipError {
        EnipError::TrailingBytes { field, count }
    }
}

pub type Reader<'a> = checked::Reader<'a, Enip>;

/// Appends little-endian fields to the front of a caller's buffer. A field
/// that would not fit is not written and marks the writer `overflowed`:
/// encoders size their messages beforehand, so callers assert it is not.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    overflowed: bool,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            len: 0,
            overflowed: false,
        }
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn bytes(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(target) if !self.overflowed => {
                target.copy_from_slice(bytes);
                self.len = end;
            }
            _ => self.overflowed = true,
        }
    }

    pub fn u8(&mut self, value: u8) {
        self.bytes(&[value]);
    }

    pub fn u16(&mut self, value: u16) {
        self.bytes(&value.to_le_bytes());
    }

    pub fn u32(&mut self, value: u32) {
        self.bytes(&value.to_le_bytes());
    }

    /// Overwrites a u16 written earlier at `at` (a length known only after
    /// what it counts was written).
    pub fn patch_u16(&mut self, at: usize, value: u16) {
        match self.buf.get_mut(at..at + 2) {
            Some(target) if at + 2 <= self.len => target.copy_from_slice(&value.to_le_bytes()),
            _ => self.overflowed = true,
        }
    }

    /// Overwrites a byte written earlier at `at`.
    pub fn patch_u8(&mut self, at: usize, value: u8) {
        match self.buf.get_mut(at) {
            Some(target) if at < self.len => *target = value,
            _ => self.overflowed = true,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;

    #[test]
    fn reader_fails_with_the_field_instead_of_panicking() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(Field::TagType), Ok(0x0201));
        assert_eq!(
            r.u32(Field::TagData),
            Err(EnipError::Truncated {
                field: Field::TagData,
                needed: 4,
                available: 1
            })
        );
        assert_eq!(r.remaining(), 1);
        assert_eq!(
            r.finish(Field::TagData),
            Err(EnipError::TrailingBytes {
                field: Field::TagData,
                count: 1
            })
        );
        assert_eq!(r.u8(Field::TagData), Ok(3));
        assert!(r.finish(Field::TagData).is_ok());
    }

    #[test]
    fn writer_marks_an_overflow_and_keeps_what_fit() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        w.u16(0x1234);
        w.u32(7);
        assert!(w.overflowed());
        assert_eq!(w.len(), 2);
        w.patch_u16(0, 0xBEEF);
        assert_eq!(buf[..2], [0xEF, 0xBE]);
    }
}
