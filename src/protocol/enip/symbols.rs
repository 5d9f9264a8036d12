//! The controller's tag list: Get Instance Attribute List (0x55) replies of
//! the Symbol class (0x6B), asked for name (1), type (2) and dimensions (8),
//! and the template attribute that tells a Logix STRING from other
//! structures. What `millrace discover` reads, decoded here so the codec
//! stays sans-IO and fuzzable.
//!
//! ```text
//! symbol   instance u32 | name length u16 | name | type u16 | dimensions u32 x 3
//! type     bit 15 structure, 14-13 dimension count, 12 system, 11-0 type code
//!          (a structure's: its template instance; a BOOL's: bit in 10-8)
//! ```

use crate::config::CipType;

use super::cip::{type_code, Reply, STATUS_PARTIAL_TRANSFER, STATUS_SUCCESS};
use super::error::{EnipError, Field};
use super::wire::{Reader, Writer};

/// Longest symbol name accepted (a program-scoped name is `Program:` plus
/// 40 characters, a Logix identifier at most 40).
pub const SYMBOL_NAME_BYTES_MAX: usize = 255;
/// The Template class.
pub const TEMPLATE_CLASS: u8 = 0x6C;
/// Get Attribute List.
pub const GET_ATTRIBUTE_LIST: u8 = 0x03;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub instance: u32,
    pub name: &'a [u8],
    pub symbol_type: u16,
    pub dimensions: [u32; 3],
}

impl Symbol<'_> {
    pub const fn is_struct(&self) -> bool {
        self.symbol_type & 0x8000 != 0
    }
    pub const fn is_system(&self) -> bool {
        self.symbol_type & 0x1000 != 0
    }
    pub const fn dimension_count(&self) -> u16 {
        (self.symbol_type >> 13) & 0x3
    }
    /// A structure's template instance id.
    pub const fn template(&self) -> Option<u16> {
        if self.is_struct() {
            Some(self.symbol_type & 0x0FFF)
        } else {
            None
        }
    }
    /// The atomic type millrace reads it as (a DWORD: a BOOL array).
    pub const fn atomic_type(&self) -> Option<CipType> {
        if self.is_struct() {
            return None;
        }
        Some(match self.symbol_type & 0x00FF {
            0xC1 => CipType::Bool,
            0xC2 => CipType::SInt,
            0xC3 => CipType::Int,
            0xC4 => CipType::DInt,
            0xC5 => CipType::LInt,
            0xC6 => CipType::USInt,
            0xC7 => CipType::UInt,
            0xC8 => CipType::UDInt,
            0xC9 => CipType::ULInt,
            0xCA => CipType::Real,
            0xCB => CipType::LReal,
            0xD3 => CipType::Bool,
            _ => return None,
        })
    }
    /// Elements of the array (1 for a scalar); `None` past 65535, which a
    /// Read Tag cannot ask for at once.
    pub fn element_count(&self) -> Option<u16> {
        let dims = self
            .dimensions
            .iter()
            .take(usize::from(self.dimension_count()))
            .filter(|&&d| d > 0);
        let mut count: u64 = 1;
        for &d in dims {
            count = count.saturating_mul(u64::from(d));
        }
        u16::try_from(count).ok()
    }
    /// The name as text, if it is ASCII.
    pub fn name_text(&self) -> Option<&str> {
        std::str::from_utf8(self.name).ok().filter(|n| n.is_ascii())
    }
}

/// One page of the tag list: its symbols, and whether more follow.
#[derive(Clone, Copy, Debug)]
pub struct SymbolPage<'a> {
    data: &'a [u8],
    /// Status 0x06: ask again from the last instance + 1.
    pub more: bool,
}

impl<'a> SymbolPage<'a> {
    /// `Err(Some((general, extended)))`-like refusals are the caller's:
    /// this returns `Ok(None)` when the reply is a CIP error status.
    pub fn from_reply(reply: &Reply<'a>) -> Option<Self> {
        match reply.general {
            STATUS_SUCCESS => Some(SymbolPage {
                data: reply.data,
                more: false,
            }),
            STATUS_PARTIAL_TRANSFER => Some(SymbolPage {
                data: reply.data,
                more: true,
            }),
            _ => None,
        }
    }

    /// Every symbol of the page, checked whole before any is returned.
    pub fn symbols(&self) -> Result<SymbolIter<'a>, EnipError> {
        let mut check = SymbolIter {
            reader: Reader::new(self.data),
        };
        for symbol in check.by_ref() {
            symbol?;
        }
        Ok(SymbolIter {
            reader: Reader::new(self.data),
        })
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SymbolIter<'a> {
    reader: Reader<'a>,
}

impl<'a> Iterator for SymbolIter<'a> {
    type Item = Result<Symbol<'a>, EnipError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.reader.is_empty() {
            return None;
        }
        let symbol = parse_symbol(&mut self.reader);
        if symbol.is_err() {
            self.reader.rest();
        }
        Some(symbol)
    }
}

fn parse_symbol<'a>(r: &mut Reader<'a>) -> Result<Symbol<'a>, EnipError> {
    let instance = r.u32(Field::SymbolInstance)?;
    let length = usize::from(r.u16(Field::SymbolName)?);
    if length > SYMBOL_NAME_BYTES_MAX {
        return Err(EnipError::Truncated {
            field: Field::SymbolName,
            needed: length,
            available: SYMBOL_NAME_BYTES_MAX,
        });
    }
    let name = r.take(length, Field::SymbolName)?;
    let symbol_type = r.u16(Field::SymbolType)?;
    let dimensions = [
        r.u32(Field::SymbolDimensions)?,
        r.u32(Field::SymbolDimensions)?,
        r.u32(Field::SymbolDimensions)?,
    ];
    Ok(Symbol {
        instance,
        name,
        symbol_type,
        dimensions,
    })
}

/// Get Attribute List of a template: its structure handle (1) and size (5).
pub fn write_template_attributes(w: &mut Writer<'_>, template: u16) {
    super::cip::write_request(
        w,
        GET_ATTRIBUTE_LIST,
        |w| {
            w.u8(0x20);
            w.u8(TEMPLATE_CLASS);
            w.u8(0x25);
            w.u8(0);
            w.u16(template);
        },
        |w| {
            w.u16(2);
            w.u16(1);
            w.u16(5);
        },
    );
}

/// The structure handle and size a template's Get Attribute List reply
/// gives; `None` when an attribute is missing or refused.
pub fn template_attributes(data: &[u8]) -> Result<Option<(u16, u32)>, EnipError> {
    let mut r = Reader::new(data);
    let count = r.u16(Field::SymbolType)?;
    let (mut handle, mut size) = (None, None);
    for _ in 0..count.min(8) {
        let id = r.u16(Field::SymbolType)?;
        let status = r.u16(Field::SymbolType)?;
        if status != 0 {
            // A refused attribute carries no value; nothing after it can be
            // placed.
            break;
        }
        match id {
            1 => handle = Some(r.u16(Field::SymbolType)?),
            5 => size = Some(r.u32(Field::SymbolType)?),
            _ => break,
        }
    }
    Ok(handle.zip(size))
}

/// Whether a template is the Logix STRING structure.
pub fn is_logix_string(handle: u16, size: u32) -> bool {
    handle == super::limits::STRING_STRUCT_HANDLE
        && size as usize == super::limits::STRING_STRUCT_BYTES
}

/// The type code a Read Tag reply would carry for this symbol's elements.
pub const fn reply_type(symbol_type: u16) -> u16 {
    if symbol_type & 0x8000 != 0 {
        type_code::STRUCT
    } else {
        symbol_type & 0x00FF
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;

    fn entry(instance: u32, name: &str, symbol_type: u16, dims: [u32; 3]) -> Vec<u8> {
        let mut v = instance.to_le_bytes().to_vec();
        v.extend_from_slice(&(name.len() as u16).to_le_bytes());
        v.extend_from_slice(name.as_bytes());
        v.extend_from_slice(&symbol_type.to_le_bytes());
        for d in dims {
            v.extend_from_slice(&d.to_le_bytes());
        }
        v
    }

    #[test]
    fn a_page_of_symbols_decodes() {
        let mut data = entry(1, "Temps", 0x20CA, [200, 0, 0]);
        data.extend(entry(7, "Name", 0x8FCE, [0, 0, 0]));
        let reply = Reply {
            service: 0x55,
            general: 6,
            extended: 0,
            data: &data,
        };
        let page = SymbolPage::from_reply(&reply).unwrap();
        assert!(page.more);
        let symbols: Vec<_> = page.symbols().unwrap().map(Result::unwrap).collect();
        assert_eq!(symbols.len(), 2);
        assert_eq!(symbols[0].atomic_type(), Some(CipType::Real));
        assert_eq!(symbols[0].element_count(), Some(200));
        assert_eq!(symbols[1].template(), Some(0x0FCE));
        assert_eq!(symbols[1].element_count(), Some(1));
        let mut cut = data.clone();
        cut.truncate(data.len() - 3);
        let page = SymbolPage {
            data: &cut,
            more: false,
        };
        assert!(page.symbols().is_err());
    }
}
