//! The one checked reader of the S7 codec family (rustls' `Reader`): every
//! read is a bounds-checked split that fails with the field it was reading,
//! `sub` bounds a child reader by a declared length, and `finish` refuses
//! leftover bytes. Nothing here panics or indexes.

use super::error::{Field, S7Error};

#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    pub const fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The next `count` bytes, or `Truncated` naming `field`.
    pub fn take(&mut self, count: usize, field: Field) -> Result<&'a [u8], S7Error> {
        let Some((head, tail)) = self.rest.split_at_checked(count) else {
            return Err(S7Error::Truncated {
                field,
                needed: count,
                available: self.rest.len(),
            });
        };
        self.rest = tail;
        Ok(head)
    }

    pub fn u8(&mut self, field: Field) -> Result<u8, S7Error> {
        match self.take(1, field)? {
            [b] => Ok(*b),
            _ => unreachable!("take(1) gives one byte"),
        }
    }

    pub fn u16(&mut self, field: Field) -> Result<u16, S7Error> {
        match self.take(2, field)? {
            [hi, lo] => Ok(u16::from_be_bytes([*hi, *lo])),
            _ => unreachable!("take(2) gives two bytes"),
        }
    }

    /// A child reader over the next `length` bytes.
    pub fn sub(&mut self, length: usize, field: Field) -> Result<Reader<'a>, S7Error> {
        self.take(length, field).map(Reader::new)
    }

    /// The bytes not read yet, consuming them.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Every byte must have been read.
    pub fn finish(&self, field: Field) -> Result<(), S7Error> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(S7Error::TrailingBytes {
                field,
                count: self.rest.len(),
            })
        }
    }
}
