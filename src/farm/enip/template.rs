//! The one structure template a farm controller has: the Logix STRING
//! (instance 0x0FCE, `ASCIISTRING82`: DINT LEN, SINT[82] DATA), which a
//! client that reads the tag list (pycomm3) asks for before reading a
//! STRING tag.
//!
//! ```text
//! Get Attribute List 0x03: count u16, then per attribute: id u16, status u16, value
//!   4 object definition size u32 (words; the definition is 4 x size - 21 bytes)
//!   5 structure size u32 (bytes)   2 member count u16   1 structure handle u16
//! Read 0x4C: offset u32, size u16 -> the definition from offset:
//!   per member: info u16 (array size), type u16, offset u32; then the
//!   names, NUL-terminated: "ASCIISTRING82;n", "LEN", "DATA"
//! ```

use crate::protocol::enip::cip::{type_code, Request};
use crate::protocol::enip::limits::{STRING_STRUCT_BYTES, STRING_STRUCT_HANDLE};
use crate::protocol::enip::wire::{Reader, Writer};
use crate::protocol::enip::Field;

use super::services::reply_head;

const MEMBER_COUNT: u16 = 2;
/// The definition as a Logix controller sends it, padded so that its
/// length is 4 x size - 21.
const DEFINITION: [u8; 43] = *b"\x00\x00\xc4\x00\x00\x00\x00\x00\
\x52\x00\xc2\x00\x04\x00\x00\x00\
ASCIISTRING82;n\x00LEN\x00DATA\x00\x00\x00";
const _: () = assert!((DEFINITION.len() + 21) % 4 == 0);
/// Member info of the definition: LEN a DINT at 0, DATA SINT[82] at 4.
const _: () = assert!(DEFINITION[2] as u16 == type_code::DINT);
const _: () = assert!(DEFINITION[10] as u16 == type_code::SINT);

/// The template instance a path names (`0x20 0x6C` then the instance).
fn instance(path: &[u8]) -> Option<u32> {
    let mut r = Reader::new(path);
    let f = Field::SymbolInstance;
    r.take(2, f).ok()?;
    let instance = match r.u8(f).ok()? {
        0x24 => u32::from(r.u8(f).ok()?),
        0x25 => {
            r.u8(f).ok()?;
            u32::from(r.u16(f).ok()?)
        }
        _ => return None,
    };
    r.finish(f).ok()?;
    Some(instance)
}

/// Get Attribute List of the STRING template; 0x05 for any other.
pub fn attributes(w: &mut Writer<'_>, request: &Request<'_>) {
    if instance(request.path) != Some(u32::from(STRING_STRUCT_HANDLE)) {
        return reply_head(w, request.service, 0x05, None);
    }
    let mut r = Reader::new(request.data);
    let count = r.u16(Field::TagData).unwrap_or(0);
    if count == 0 || count > 8 {
        return reply_head(w, request.service, 0x13, None);
    }
    reply_head(w, request.service, 0, None);
    w.u16(count);
    for _ in 0..count {
        let id = r.u16(Field::TagData).unwrap_or(0);
        w.u16(id);
        match id {
            4 => {
                w.u16(0);
                w.u32(((DEFINITION.len() + 21) / 4) as u32);
            }
            5 => {
                w.u16(0);
                w.u32(STRING_STRUCT_BYTES as u32);
            }
            2 => {
                w.u16(0);
                w.u16(MEMBER_COUNT);
            }
            1 => {
                w.u16(0);
                w.u16(STRING_STRUCT_HANDLE);
            }
            _ => w.u16(0x14), // attribute not supported
        }
    }
}

/// Read of the STRING template's definition from an offset.
pub fn read(w: &mut Writer<'_>, request: &Request<'_>) {
    if instance(request.path) != Some(u32::from(STRING_STRUCT_HANDLE)) {
        return reply_head(w, request.service, 0x05, None);
    }
    let mut r = Reader::new(request.data);
    let (Ok(offset), Ok(size)) = (r.u32(Field::TagData), r.u16(Field::TagData)) else {
        return reply_head(w, request.service, 0x13, None);
    };
    let from = (offset as usize).min(DEFINITION.len());
    let to = (from + usize::from(size)).min(DEFINITION.len());
    reply_head(w, request.service, 0, None);
    w.bytes(DEFINITION.get(from..to).unwrap_or_default());
}
