//! Encoding `K` into little-endian messages (the byte order kdb+ itself
//! sends on x86). The caller owns the output buffer and reuses it.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use super::header::{Header, MsgType, HEADER_SIZE};
use super::types::{Atom, Data, K};

/// Clears `out` and writes the whole message: header, then `k`.
pub fn encode_message(k: &K, msg_type: MsgType, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&[0; HEADER_SIZE]);
    encode_body(k, out);
    finish_header(out, msg_type);
}

/// Writes the header for the bytes already in `out` (which start with
/// `HEADER_SIZE` placeholder bytes).
pub fn finish_header(out: &mut [u8], msg_type: MsgType) {
    let total_len = u32::try_from(out.len()).expect("message under 4 GiB");
    let header = Header {
        little_endian: true,
        msg_type,
        compressed: false,
        total_len,
    };
    if let Some(h) = out.get_mut(..HEADER_SIZE) {
        h.copy_from_slice(&header.to_bytes());
    }
}

/// Appends `k` without a header.
pub fn encode_body(k: &K, out: &mut Vec<u8>) {
    out.push(k.wire_type() as u8);
    match k {
        K::Atom { value, .. } => atom(value, out),
        K::Vector { attr, data, .. } => {
            out.push(*attr);
            out.extend_from_slice(&(data.len() as i32).to_le_bytes());
            vector(data, out);
        }
        K::List { attr, items } => {
            out.push(*attr);
            out.extend_from_slice(&(items.len() as i32).to_le_bytes());
            for item in items {
                encode_body(item, out);
            }
        }
        K::Dict { keys, values, .. } => {
            encode_body(keys, out);
            encode_body(values, out);
        }
        K::Table { attr, dict } => {
            out.push(*attr);
            encode_body(dict, out);
        }
        K::Error(text) => {
            out.extend_from_slice(text);
            out.push(0);
        }
        K::Unary(code) => out.push(*code),
    }
}

fn atom(value: &Atom, out: &mut Vec<u8>) {
    match value {
        Atom::Byte(b) => out.push(*b),
        Atom::Guid(g) => out.extend_from_slice(g),
        Atom::Short(v) => out.extend_from_slice(&v.to_le_bytes()),
        Atom::Int(v) => out.extend_from_slice(&v.to_le_bytes()),
        Atom::Long(v) => out.extend_from_slice(&v.to_le_bytes()),
        Atom::Real(v) => out.extend_from_slice(&v.to_le_bytes()),
        Atom::Float(v) => out.extend_from_slice(&v.to_le_bytes()),
        Atom::Symbol(s) => {
            out.extend_from_slice(s);
            out.push(0);
        }
    }
}

fn vector(data: &Data, out: &mut Vec<u8>) {
    match data {
        Data::Bytes(v) => out.extend_from_slice(v),
        Data::Guids(v) => v.iter().for_each(|g| out.extend_from_slice(g)),
        Data::Shorts(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Ints(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Longs(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Reals(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Floats(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Symbols(s) => {
            for sym in s.iter() {
                out.extend_from_slice(sym);
                out.push(0);
            }
        }
    }
}
