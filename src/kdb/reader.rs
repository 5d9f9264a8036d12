//! The checked reader over a borrowed slice (rustls style): every read is a
//! checked split that returns an error instead of panicking, and the byte
//! order of the message is carried along.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use super::error::DecodeError;

pub struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
    little_endian: bool,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8], little_endian: bool) -> Self {
        Reader {
            bytes,
            offset: 0,
            little_endian,
        }
    }

    pub fn offset(&self) -> usize {
        self.offset
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.offset
    }

    pub fn little_endian(&self) -> bool {
        self.little_endian
    }

    /// The next `count` bytes, or `Truncated` naming `what`.
    pub fn take(&mut self, count: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        let end = self
            .offset
            .checked_add(count)
            .ok_or(DecodeError::Truncated { what })?;
        let taken = self
            .bytes
            .get(self.offset..end)
            .ok_or(DecodeError::Truncated { what })?;
        self.offset = end;
        Ok(taken)
    }

    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let taken = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(taken);
        Ok(out)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        let [b] = self.array::<1>(what)?;
        Ok(b)
    }

    pub fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(self.u8(what)? as i8)
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        let b = self.array::<2>(what)?;
        Ok(if self.little_endian {
            i16::from_le_bytes(b)
        } else {
            i16::from_be_bytes(b)
        })
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        let b = self.array::<4>(what)?;
        Ok(if self.little_endian {
            i32::from_le_bytes(b)
        } else {
            i32::from_be_bytes(b)
        })
    }

    pub fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        let b = self.array::<8>(what)?;
        Ok(if self.little_endian {
            i64::from_le_bytes(b)
        } else {
            i64::from_be_bytes(b)
        })
    }

    /// A count field: non-negative, and `count * element_size` must fit in
    /// the bytes still present. Checked before the caller allocates anything.
    pub fn count(&mut self, element_size: usize, what: &'static str) -> Result<usize, DecodeError> {
        let count = self.i32(what)?;
        let count = usize::try_from(count).map_err(|_| DecodeError::NegativeCount { what })?;
        let needed = count
            .checked_mul(element_size)
            .ok_or(DecodeError::Truncated { what })?;
        if needed > self.remaining() {
            return Err(DecodeError::Truncated { what });
        }
        Ok(count)
    }

    /// Bytes up to (not including) the next NUL; the NUL is consumed.
    pub fn symbol(&mut self) -> Result<&'a [u8], DecodeError> {
        let rest = self
            .bytes
            .get(self.offset..)
            .ok_or(DecodeError::UnterminatedSymbol)?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(DecodeError::UnterminatedSymbol)?;
        let text = self.take(len, "symbol")?;
        self.take(1, "symbol NUL")?;
        Ok(text)
    }

    /// Leftover bytes are an error.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::TrailingBytes { count: n as u64 }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_past_the_end_is_an_error() {
        let mut r = Reader::new(&[1, 2, 3], true);
        assert_eq!(r.take(2, "x").unwrap(), &[1, 2]);
        assert_eq!(r.take(2, "y"), Err(DecodeError::Truncated { what: "y" }));
        assert_eq!(
            r.take(usize::MAX, "z"),
            Err(DecodeError::Truncated { what: "z" })
        );
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn count_is_checked_against_bytes_present() {
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0x7f, 0], true);
        assert_eq!(r.count(1, "c"), Err(DecodeError::Truncated { what: "c" }));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff], true);
        assert_eq!(
            r.count(1, "c"),
            Err(DecodeError::NegativeCount { what: "c" })
        );
        let mut r = Reader::new(&[0, 0, 0, 2, 9, 9], false);
        assert_eq!(r.count(1, "c"), Ok(2));
    }

    #[test]
    fn symbol_needs_its_nul() {
        let mut r = Reader::new(b"ab\0cd", true);
        assert_eq!(r.symbol().unwrap(), b"ab");
        assert_eq!(r.symbol(), Err(DecodeError::UnterminatedSymbol));
    }
}
