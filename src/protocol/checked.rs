//! The one checked reader the codec families share (rustls' `Reader`):
//! every read is a bounds-checked split that fails with the field it was
//! reading, `sub` bounds a child reader by a declared length, and `finish`
//! refuses leftover bytes. A family says its byte order and how its errors
//! name a short read and leftover bytes. Nothing here panics or indexes.

#![forbid(unsafe_code)]

use std::marker::PhantomData;

/// A codec family's byte order and errors.
pub trait Family {
    type Field: Copy;
    type Error;
    const BIG_ENDIAN: bool;
    fn truncated(field: Self::Field, needed: usize, available: usize) -> Self::Error;
    fn trailing(field: Self::Field, count: usize) -> Self::Error;
}

pub struct Reader<'a, F: Family> {
    rest: &'a [u8],
    family: PhantomData<F>,
}

impl<F: Family> Clone for Reader<'_, F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F: Family> Copy for Reader<'_, F> {}

impl<F: Family> std::fmt::Debug for Reader<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("rest", &self.rest).finish()
    }
}

impl<'a, F: Family> Reader<'a, F> {
    pub const fn new(bytes: &'a [u8]) -> Self {
        Reader {
            rest: bytes,
            family: PhantomData,
        }
    }

    pub const fn remaining(&self) -> usize {
        self.rest.len()
    }

    pub const fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    /// The next `count` bytes, or the family's short-read error naming `field`.
    pub fn take(&mut self, count: usize, field: F::Field) -> Result<&'a [u8], F::Error> {
        let Some((head, tail)) = self.rest.split_at_checked(count) else {
            return Err(F::truncated(field, count, self.rest.len()));
        };
        self.rest = tail;
        Ok(head)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, field: F::Field) -> Result<[u8; N], F::Error> {
        let bytes = self.take(N, field)?;
        Ok(<[u8; N]>::try_from(bytes).unwrap_or([0; N]))
    }

    pub fn u8(&mut self, field: F::Field) -> Result<u8, F::Error> {
        self.array::<1>(field).map(|[b]| b)
    }

    /// In the family's byte order.
    pub fn u16(&mut self, field: F::Field) -> Result<u16, F::Error> {
        let bytes = self.array(field)?;
        Ok(match F::BIG_ENDIAN {
            true => u16::from_be_bytes(bytes),
            false => u16::from_le_bytes(bytes),
        })
    }

    /// In the family's byte order.
    pub fn u32(&mut self, field: F::Field) -> Result<u32, F::Error> {
        let bytes = self.array(field)?;
        Ok(match F::BIG_ENDIAN {
            true => u32::from_be_bytes(bytes),
            false => u32::from_le_bytes(bytes),
        })
    }

    /// A child reader over the next `length` bytes.
    pub fn sub(&mut self, length: usize, field: F::Field) -> Result<Reader<'a, F>, F::Error> {
        self.take(length, field).map(Reader::new)
    }

    /// The bytes not read yet, consuming them.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// Every byte must have been read.
    pub fn finish(&self, field: F::Field) -> Result<(), F::Error> {
        match self.rest.len() {
            0 => Ok(()),
            count => Err(F::trailing(field, count)),
        }
    }
}
