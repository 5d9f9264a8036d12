//! Decoding whole messages into `K`. Hostile-input code: every count and
//! length is checked against the bytes present (and the message against a
//! configurable maximum) before anything is allocated; nesting depth and the
//! number of objects are bounded so that neither the stack nor the heap can
//! be blown up by a small message.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use super::compress::decompress;
use super::error::DecodeError;
use super::header::{Header, HEADER_SIZE, MESSAGE_BYTES_MAX_DEFAULT};
use super::reader::Reader;
use super::types::{element_size, ty, Atom, Data, Symbols, K};

/// Bounds on what one message may cost.
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimits {
    /// Largest message accepted, compressed or uncompressed, header included.
    pub message_bytes_max: usize,
    /// Deepest nesting of lists, dictionaries and tables (stack guard).
    pub depth_max: u32,
    /// Most objects (atoms, vectors, lists...) in one message (heap guard:
    /// a `K` is ~48 bytes, so a list of one-byte items could otherwise cost
    /// 24 times its wire size).
    pub object_count_max: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            message_bytes_max: MESSAGE_BYTES_MAX_DEFAULT,
            depth_max: 64,
            object_count_max: 1 << 20,
        }
    }
}

/// Decodes one whole message (header included), decompressing if needed.
pub fn decode_message(msg: &[u8], limits: &DecodeLimits) -> Result<(Header, K), DecodeError> {
    let header_bytes: &[u8; HEADER_SIZE] = msg
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Truncated { what: "header" })?;
    let header = Header::parse(header_bytes, limits.message_bytes_max)?;
    if header.total_len as usize != msg.len() {
        return Err(DecodeError::LengthMismatch {
            declared: header.total_len as u64,
            actual: msg.len() as u64,
        });
    }
    if header.compressed {
        let plain = decompress(msg, limits.message_bytes_max)?;
        let body = plain
            .get(HEADER_SIZE..)
            .ok_or(DecodeError::Truncated { what: "body" })?;
        let k = decode_body(body, header.little_endian, limits)?;
        return Ok((header, k));
    }
    let body = msg
        .get(HEADER_SIZE..)
        .ok_or(DecodeError::Truncated { what: "body" })?;
    Ok((header, decode_body(body, header.little_endian, limits)?))
}

/// Decodes one object that must fill `body` exactly.
pub fn decode_body(
    body: &[u8],
    little_endian: bool,
    limits: &DecodeLimits,
) -> Result<K, DecodeError> {
    let mut d = Decoder {
        r: Reader::new(body, little_endian),
        limits,
        objects: 0,
    };
    let k = d.object(0)?;
    d.r.finish()?;
    Ok(k)
}

/// Decodes one object from the front of `bytes`; returns it and the bytes it
/// used (for concatenated objects, e.g. the entries of a tick.q log file).
pub fn decode_prefix(
    bytes: &[u8],
    little_endian: bool,
    limits: &DecodeLimits,
) -> Result<(K, usize), DecodeError> {
    let mut d = Decoder {
        r: Reader::new(bytes, little_endian),
        limits,
        objects: 0,
    };
    let k = d.object(0)?;
    Ok((k, d.r.offset()))
}

struct Decoder<'a, 'l> {
    r: Reader<'a>,
    limits: &'l DecodeLimits,
    objects: usize,
}

impl Decoder<'_, '_> {
    fn object(&mut self, depth: u32) -> Result<K, DecodeError> {
        if depth > self.limits.depth_max {
            return Err(DecodeError::TooDeep);
        }
        self.objects += 1;
        if self.objects > self.limits.object_count_max {
            return Err(DecodeError::TooManyObjects);
        }
        let t = self.r.i8("type")?;
        match t {
            ty::ERROR => Ok(K::Error(self.r.symbol()?.to_vec())),
            ty::UNARY => Ok(K::Unary(self.r.u8("unary code")?)),
            -19..=-1 => self.atom(-t),
            ty::LIST => self.list(depth),
            1..=19 => self.vector(t),
            ty::TABLE => self.table(depth),
            ty::DICT | ty::SORTED_DICT => {
                let keys = Box::new(self.object(depth + 1)?);
                let values = Box::new(self.object(depth + 1)?);
                Ok(K::Dict {
                    sorted: t == ty::SORTED_DICT,
                    keys,
                    values,
                })
            }
            _ => Err(DecodeError::UnknownType { type_byte: t }),
        }
    }

    fn atom(&mut self, t: i8) -> Result<K, DecodeError> {
        let value = match t {
            ty::SYMBOL => Atom::Symbol(self.r.symbol()?.to_vec()),
            ty::BOOL | ty::BYTE | ty::CHAR => Atom::Byte(self.r.u8("atom")?),
            ty::GUID => Atom::Guid(self.r.array::<16>("guid atom")?),
            ty::SHORT => Atom::Short(self.r.i16("short atom")?),
            ty::REAL => Atom::Real(f32::from_bits(self.r.i32("real atom")? as u32)),
            ty::FLOAT | ty::DATETIME => {
                Atom::Float(f64::from_bits(self.r.i64("float atom")? as u64))
            }
            _ => match element_size(t) {
                Some(4) => Atom::Int(self.r.i32("int atom")?),
                Some(8) => Atom::Long(self.r.i64("long atom")?),
                _ => return Err(DecodeError::UnknownType { type_byte: -t }),
            },
        };
        Ok(K::Atom { ty: t, value })
    }

    fn vector(&mut self, t: i8) -> Result<K, DecodeError> {
        let attr = self.r.u8("attribute")?;
        if t == ty::SYMBOL {
            // Each symbol takes at least its NUL: count <= bytes present.
            let count = self.r.count(1, "symbol vector")?;
            let mut symbols = Symbols::with_capacity(count, 0);
            for _ in 0..count {
                symbols.push(self.r.symbol()?);
            }
            return Ok(K::Vector {
                ty: t,
                attr,
                data: Data::Symbols(symbols),
            });
        }
        let size = element_size(t).ok_or(DecodeError::UnknownType { type_byte: t })?;
        let count = self.r.count(size, "vector")?;
        let raw = self.r.take(count * size, "vector elements")?;
        let le = self.r.little_endian();
        let data = match t {
            ty::BOOL | ty::BYTE | ty::CHAR => Data::Bytes(raw.to_vec()),
            ty::GUID => Data::Guids(
                raw.chunks_exact(16)
                    .filter_map(|c| c.try_into().ok())
                    .collect(),
            ),
            ty::SHORT => Data::Shorts(collect(raw, le, i16::from_le_bytes, i16::from_be_bytes)),
            ty::REAL => Data::Reals(collect(raw, le, f32::from_le_bytes, f32::from_be_bytes)),
            ty::FLOAT | ty::DATETIME => {
                Data::Floats(collect(raw, le, f64::from_le_bytes, f64::from_be_bytes))
            }
            _ if size == 4 => Data::Ints(collect(raw, le, i32::from_le_bytes, i32::from_be_bytes)),
            _ => Data::Longs(collect(raw, le, i64::from_le_bytes, i64::from_be_bytes)),
        };
        Ok(K::Vector { ty: t, attr, data })
    }

    fn list(&mut self, depth: u32) -> Result<K, DecodeError> {
        let attr = self.r.u8("attribute")?;
        // Each item takes at least two bytes (type and one more).
        let count = self.r.count(2, "general list")?;
        // Capacity is bounded by the object budget as well as by the bytes.
        let budget = self.limits.object_count_max.saturating_sub(self.objects);
        let mut items = Vec::with_capacity(count.min(budget));
        for _ in 0..count {
            items.push(self.object(depth + 1)?);
        }
        Ok(K::List { attr, items })
    }

    fn table(&mut self, depth: u32) -> Result<K, DecodeError> {
        let attr = self.r.u8("attribute")?;
        let dict = self.object(depth + 1)?;
        match &dict {
            K::Dict {
                sorted: false,
                keys,
                ..
            } if keys.wire_type() == ty::SYMBOL => {}
            _ => {
                return Err(DecodeError::BadStructure {
                    what: "table is not a flipped dictionary",
                })
            }
        }
        Ok(K::Table {
            attr,
            dict: Box::new(dict),
        })
    }
}

fn collect<T, const N: usize>(
    raw: &[u8],
    little_endian: bool,
    from_le: fn([u8; N]) -> T,
    from_be: fn([u8; N]) -> T,
) -> Vec<T> {
    let convert = if little_endian { from_le } else { from_be };
    raw.chunks_exact(N)
        .filter_map(|c| c.try_into().ok())
        .map(convert)
        .collect()
}
