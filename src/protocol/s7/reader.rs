//! The S7 family of the shared checked reader (protocol/checked.rs):
//! big-endian, a short read is `Truncated` and leftover bytes are
//! `TrailingBytes`, each naming the field.

use super::error::{Field, S7Error};
use crate::protocol::checked::{self, Family};

pub struct S7;

impl Family for S7 {
    type Field = Field;
    type Error = S7Error;
    const BIG_ENDIAN: bool = true;
    fn truncated(field: Field, needed: usize, available: usize) -> S7Error {
        S7Error::Truncated {
            field,
            needed,
            available,
        }
    }
    fn trailing(field: Field, count: usize) -> S7Error {
        S7Error::TrailingBytes { field, count }
    }
}

pub type Reader<'a> = checked::Reader<'a, S7>;
