//! A borrowed view of a `.u.upd` message: the table name and the columns as
//! slices of the message itself, so that the stand-in checks, counts and
//! records an update without building a `K` tree (no allocation per message
//! or per row; the columns sit in a fixed array on the stack).
//!
//! Owns: recognising the one shape publishers send (millrace's `encode_upd`,
//! kdbplus, q's ``neg[h](`.u.upd;`t;(c1;c2;...))``) in a little-endian
//! message, and answering for it exactly what `decode_message` followed by
//! `parse_update` answers. Must never: accept bytes the decoder would refuse,
//! or answer an update differently from `parse_update`. Anything outside the
//! shape (data as a table or as a row of atoms, a big-endian message, more
//! than `VIEW_COLUMNS_MAX` columns, any other call, any decode error) is
//! `Viewed::Other`, and the caller takes the `K` path as before.
//!
//! ```text
//! 00 aa 03000000               general list of 3 (any attribute)
//! f5 ".u.upd\0"                function: symbol `.u.upd or `upd,
//!   | 0a aa n chars*n            or a string ".u.upd" / "upd"
//! f5 "TABLE\0"                 table: symbol
//! 00 aa ncols                  data: general list of ncols vectors
//!   tt aa n elements           tt 1..=19: n * element_size(tt) bytes,
//!                              or (tt = 0b) n NUL-terminated symbols,
//!   | 00 aa n strings*n          or millrace's `text` column: a general list
//!                                of n strings, each 0a aa len chars*len
//! ```
//!
//! Typed columns are read little-endian on access (`F64Column`,
//! `I64Column`); a symbol column is the raw bytes of its symbols, each with
//! its NUL (`SymbolColumn`), checked once here to hold exactly `n` of them;
//! a text column is its strings as they sit (`TextColumn`), each string's
//! type and length checked once here, and the decoder's object and depth
//! budget for its items too (a general list holding anything else, or over
//! budget, is left to the `K` path).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::marker::PhantomData;

use super::compress::decompress_into;
use super::decode::DecodeLimits;
use super::header::{Header, HEADER_SIZE};
use super::reader::Reader;
use super::types::{element_size, ty};
use super::upd::{TableState, UpdError};

/// Most columns a view holds (a fixed array on the stack, 32 bytes each).
/// millrace sends 6; tick.q tables are rarely wider; a wider update takes
/// the `K` path and is answered the same.
pub const VIEW_COLUMNS_MAX: usize = 32;

/// Objects the decoder counts before the columns: the call list, the
/// function, the table and the data list (`DecodeLimits::object_count_max`).
const OBJECTS_BEFORE_COLUMNS: usize = 4;
/// Nesting depth of a column: call list 0, data list 1, column 2
/// (`DecodeLimits::depth_max`).
const COLUMN_DEPTH: u32 = 2;

const _: () = assert!(VIEW_COLUMNS_MAX * std::mem::size_of::<ColumnView<'static>>() <= 1024);

/// One column as it sits in the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ColumnView<'a> {
    /// Vector type, 1..=19.
    pub ty: i8,
    /// Elements (rows).
    pub count: usize,
    /// The elements as on the wire (little-endian): `count * element_size`
    /// bytes, or for symbols `count` NUL-terminated symbols back to back.
    pub bytes: &'a [u8],
}

impl<'a> ColumnView<'a> {
    pub fn symbols(&self) -> Option<SymbolColumn<'a>> {
        (self.ty == ty::SYMBOL).then_some(SymbolColumn {
            bytes: self.bytes,
            count: self.count,
        })
    }

    /// Float and datetime columns (the types `Data::Floats` carries).
    pub fn f64s(&self) -> Option<F64Column<'a>> {
        matches!(self.ty, ty::FLOAT | ty::DATETIME).then_some(F64Column::new(self.bytes))
    }

    /// Long, timestamp and timespan columns (the types `Data::Longs` carries).
    pub fn i64s(&self) -> Option<I64Column<'a>> {
        matches!(self.ty, ty::LONG | ty::TIMESTAMP | ty::TIMESPAN)
            .then_some(I64Column::new(self.bytes))
    }

    /// A general list of strings (millrace's `text` column).
    pub fn texts(&self) -> Option<TextColumn<'a>> {
        (self.ty == ty::LIST).then_some(TextColumn {
            bytes: self.bytes,
            count: self.count,
        })
    }
}

/// A general list of strings, as on the wire: `count` char vectors back to
/// back, each `0a attribute length chars` (checked when the view was made).
#[derive(Clone, Copy, Debug)]
pub struct TextColumn<'a> {
    bytes: &'a [u8],
    count: usize,
}

/// Type, attribute and length before a string's chars.
const STRING_HEAD: usize = 6;

impl<'a> TextColumn<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Each string's chars.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut rest = self.bytes;
        (0..self.count).map_while(move |_| {
            let length = rest.get(2..STRING_HEAD)?;
            let length = usize::try_from(i32::from_le_bytes(length.try_into().ok()?)).ok()?;
            let end = STRING_HEAD.checked_add(length)?;
            let chars = rest.get(STRING_HEAD..end)?;
            rest = rest.get(end..)?;
            Some(chars)
        })
    }
}

/// A symbol column: exactly `count` NUL-terminated symbols (checked when
/// the view was made), so splitting at NULs yields them in order.
#[derive(Clone, Copy, Debug)]
pub struct SymbolColumn<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl<'a> SymbolColumn<'a> {
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The symbols with their NULs, as on the wire.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Each symbol, without its NUL.
    pub fn iter(&self) -> SymbolIter<'a> {
        SymbolIter {
            rest: self.bytes,
            left: self.count,
        }
    }
}

/// The symbols of a `SymbolColumn`, in order.
#[derive(Clone, Debug)]
pub struct SymbolIter<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for SymbolIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        // The column holds exactly `count` NULs (checked by the view); a
        // missing one ends the iteration rather than panicking.
        let Some(nul_at) = nul_index(self.rest) else {
            self.left = 0;
            return None;
        };
        let (symbol, rest) = self.rest.split_at_checked(nul_at)?;
        self.rest = rest.get(1..).unwrap_or(&[]);
        Some(symbol)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// The index of the first NUL, eight bytes at a time: in `w - 0x01..01 &
/// !w & 0x80..80` the lowest set bit is in the first zero byte (a borrow
/// can only mark bytes above a zero one).
fn nul_index(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    let mut at = 0usize;
    for word in bytes.chunks_exact(8).filter_map(<[u8]>::first_chunk::<8>) {
        let w = u64::from_le_bytes(*word);
        let zeros = w.wrapping_sub(ONES) & !w & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = bytes.get(at..)?;
    tail.iter().position(|&b| b == 0).map(|index| at + index)
}

/// An 8-byte element a typed column holds (kdb+ float, long, timestamp...).
pub trait Element8: Copy {
    fn from_le(bytes: [u8; 8]) -> Self;
}

impl Element8 for f64 {
    fn from_le(bytes: [u8; 8]) -> Self {
        f64::from_le_bytes(bytes)
    }
}

impl Element8 for i64 {
    fn from_le(bytes: [u8; 8]) -> Self {
        i64::from_le_bytes(bytes)
    }
}

/// A column of 8-byte elements, read little-endian on access.
#[derive(Clone, Copy, Debug)]
pub struct Column8<'a, T> {
    bytes: &'a [u8],
    element: PhantomData<T>,
}

pub type F64Column<'a> = Column8<'a, f64>;
pub type I64Column<'a> = Column8<'a, i64>;

impl<'a, T: Element8 + 'a> Column8<'a, T> {
    fn new(bytes: &'a [u8]) -> Self {
        Column8 {
            bytes,
            element: PhantomData,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / 8
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.len() < 8
    }

    pub fn iter(&self) -> impl Iterator<Item = T> + 'a {
        self.bytes
            .chunks_exact(8)
            .filter_map(<[u8]>::first_chunk::<8>)
            .map(|c| T::from_le(*c))
    }
}

/// The sym, value and seq columns of an update, all of one length: what a
/// `Recorder` checks column-wise.
#[derive(Clone, Copy, Debug)]
pub struct RecordColumns<'a> {
    pub syms: SymbolColumn<'a>,
    pub values: F64Column<'a>,
    pub seqs: I64Column<'a>,
}

impl<'a> RecordColumns<'a> {
    pub fn rows(&self) -> usize {
        self.syms.len()
    }

    /// `(sym, value, seq)` per row.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], f64, i64)> + 'a {
        let rows = self
            .syms
            .iter()
            .zip(self.values.iter())
            .zip(self.seqs.iter());
        rows.map(|((s, v), q)| (s, v, q))
    }
}

/// The column types of an update, on the stack.
#[derive(Clone, Copy, Debug)]
pub struct ColumnTypes {
    types: [i8; VIEW_COLUMNS_MAX],
    count: usize,
}

impl ColumnTypes {
    pub fn as_slice(&self) -> &[i8] {
        self.types.get(..self.count).unwrap_or(&[])
    }
}

/// A `.u.upd` call that passed `parse_update`'s checks.
#[derive(Clone, Copy, Debug)]
pub struct UpdView<'a> {
    pub table: &'a [u8],
    /// The data item as it arrived (little-endian body bytes, to the end of
    /// the message): what the journal logs.
    pub data: &'a [u8],
    columns: [ColumnView<'a>; VIEW_COLUMNS_MAX],
    column_count: usize,
    rows: usize,
}

impl<'a> UpdView<'a> {
    pub fn columns(&self) -> &[ColumnView<'a>] {
        self.columns.get(..self.column_count).unwrap_or(&[])
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn types(&self) -> ColumnTypes {
        let mut types = [0i8; VIEW_COLUMNS_MAX];
        for (t, c) in types.iter_mut().zip(self.columns()) {
            *t = c.ty;
        }
        ColumnTypes {
            types,
            count: self.column_count,
        }
    }

    /// The sym, value and seq columns, where `state` (the table's schema,
    /// which this update matched) says they are; `None` when it has none.
    pub fn record_columns(&self, state: &TableState) -> Option<RecordColumns<'a>> {
        let (sym_at, value_at, seq_at) = state.record_columns?;
        let columns = RecordColumns {
            syms: self.columns().get(sym_at)?.symbols()?,
            values: self.columns().get(value_at)?.f64s()?,
            seqs: self.columns().get(seq_at)?.i64s()?,
        };
        let rows = columns.rows();
        let same = columns.values.len() == rows && columns.seqs.len() == rows;
        same.then_some(columns)
    }

    /// `(sym, seq, text)` of each row whose text is not empty, where
    /// `state` says the sym, seq and text columns are (what `for_each_text`
    /// hands out on the `K` path); nothing when the table has no text.
    pub fn texts(
        &self,
        state: &TableState,
    ) -> impl Iterator<Item = (&'a [u8], i64, &'a [u8])> + 'a {
        let columns = state.record_columns.zip(state.text_column).and_then(
            |((sym_at, _, seq_at), text_at)| {
                Some((
                    self.columns().get(sym_at)?.symbols()?,
                    self.columns().get(seq_at)?.i64s()?,
                    self.columns().get(text_at)?.texts()?,
                ))
            },
        );
        columns.into_iter().flat_map(|(syms, seqs, texts)| {
            syms.iter()
                .zip(seqs.iter())
                .zip(texts.iter())
                .filter(|(_, text)| !text.is_empty())
                .map(|((sym, seq), text)| (sym, seq, text))
        })
    }
}

/// What the view makes of a message.
// About 1 KiB, returned once per message on the stack: boxing the view
// would be the one allocation per message this module exists to avoid.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Copy, Debug)]
pub enum Viewed<'a> {
    /// A `.u.upd` that `parse_update` accepts, as the same update.
    Update(UpdView<'a>),
    /// A `.u.upd` of the viewed shape that `parse_update` refuses, and why.
    Rejected(UpdError),
    /// Not the viewed shape: decode into `K` (`decode_message`) and use
    /// `parse_update`, which decides, as before.
    Other,
}

/// Views one whole message (header included) whose `header` the caller
/// parsed and checked. A compressed message is expanded into `plain` (the
/// caller's, reused from message to message) and viewed there.
pub fn view_message<'a>(
    message: &'a [u8],
    header: &Header,
    plain: &'a mut Vec<u8>,
    limits: &DecodeLimits,
) -> Viewed<'a> {
    if !header.little_endian || header.total_len as usize != message.len() {
        return Viewed::Other;
    }
    let whole: &'a [u8] = if header.compressed {
        if decompress_into(message, limits.message_bytes_max, plain).is_err() {
            return Viewed::Other;
        }
        plain
    } else {
        message
    };
    match whole.get(HEADER_SIZE..) {
        Some(body) => view_body(body, limits),
        None => Viewed::Other,
    }
}

/// Views one little-endian message body (no header).
pub fn view_body<'a>(body: &'a [u8], limits: &DecodeLimits) -> Viewed<'a> {
    match shape(body, limits) {
        Some(view) => check(view),
        None => Viewed::Other,
    }
}

/// `parse_update`'s checks, in its order, on a call of the viewed shape
/// (whose data is a general list of vectors).
fn check(mut view: UpdView<'_>) -> Viewed<'_> {
    if view.table.is_empty() {
        return Viewed::Rejected(UpdError::Type);
    }
    let (Some(time), Some(sym)) = (view.columns().first(), view.columns().get(1)) else {
        return Viewed::Rejected(UpdError::Length);
    };
    if !matches!(time.ty, ty::TIMESPAN | ty::TIMESTAMP) || sym.ty != ty::SYMBOL {
        return Viewed::Rejected(UpdError::Type);
    }
    let rows = time.count;
    if view.columns().iter().any(|c| c.count != rows) {
        return Viewed::Rejected(UpdError::Length);
    }
    view.rows = rows;
    Viewed::Update(view)
}

/// Parses the whole body as the viewed shape; `None` as soon as it is not
/// (or would not decode, or would break `limits`).
fn shape<'a>(body: &'a [u8], limits: &DecodeLimits) -> Option<UpdView<'a>> {
    if limits.depth_max < COLUMN_DEPTH {
        return None;
    }
    let mut r = Reader::new(body, true);
    if !list_header(&mut r, 3)? || !upd_function(&mut r)? {
        return None;
    }
    if r.i8("table type").ok()? != -ty::SYMBOL {
        return None;
    }
    let table = r.symbol().ok()?;
    let data = body.get(r.offset()..)?;
    if r.i8("data type").ok()? != ty::LIST {
        return None;
    }
    r.u8("data attribute").ok()?;
    let column_count = usize::try_from(r.i32("data count").ok()?).ok()?;
    if column_count > VIEW_COLUMNS_MAX
        || OBJECTS_BEFORE_COLUMNS.checked_add(column_count)? > limits.object_count_max
    {
        return None;
    }
    let mut columns = [ColumnView::default(); VIEW_COLUMNS_MAX];
    let mut objects = OBJECTS_BEFORE_COLUMNS + column_count;
    for column in columns.iter_mut().take(column_count) {
        *column = column_view(&mut r, body, limits, &mut objects)?;
    }
    if r.remaining() != 0 {
        return None;
    }
    Some(UpdView {
        table,
        data,
        columns,
        column_count,
        rows: 0,
    })
}

/// A general list header; `Some(true)` when it has `count` items.
fn list_header(r: &mut Reader<'_>, count: i32) -> Option<bool> {
    if r.i8("type").ok()? != ty::LIST {
        return Some(false);
    }
    r.u8("attribute").ok()?;
    Some(r.i32("count").ok()? == count)
}

/// The function item: `.u.upd` or `upd`, as a symbol or a string.
fn upd_function(r: &mut Reader<'_>) -> Option<bool> {
    let name = match r.i8("function type").ok()? {
        t if t == -ty::SYMBOL => r.symbol().ok()?,
        ty::CHAR => {
            r.u8("attribute").ok()?;
            let count = r.count(1, "function").ok()?;
            r.take(count, "function").ok()?
        }
        _ => return Some(false),
    };
    Some(matches!(name, b".u.upd" | b"upd"))
}

/// One column: a vector of type 1..=19, or a general list of strings, as
/// the decoder reads it; `objects` is the decoder's object count so far.
fn column_view<'a>(
    r: &mut Reader<'a>,
    body: &'a [u8],
    limits: &DecodeLimits,
    objects: &mut usize,
) -> Option<ColumnView<'a>> {
    let t = r.i8("column type").ok()?;
    if t == ty::LIST {
        return strings(r, body, limits, objects);
    }
    if !(1..=19).contains(&t) {
        return None;
    }
    r.u8("attribute").ok()?;
    if t == ty::SYMBOL {
        // Each symbol takes at least its NUL: count <= bytes present.
        let count = r.count(1, "symbol vector").ok()?;
        let rest = body.get(r.offset()..)?;
        let end = symbols_end(rest, count)?;
        let bytes = r.take(end, "symbols").ok()?;
        return Some(ColumnView {
            ty: t,
            count,
            bytes,
        });
    }
    let size = element_size(t)?;
    let count = r.count(size, "vector").ok()?;
    let bytes = r.take(count.checked_mul(size)?, "vector elements").ok()?;
    Some(ColumnView {
        ty: t,
        count,
        bytes,
    })
}

/// A general list whose every item is a string (a char vector), read as the
/// decoder reads it (`Decoder::list`, then `object` and `vector` per item:
/// one more object and one level deeper each); `None` for any other item
/// or past the decoder's budget, which the `K` path then decides.
fn strings<'a>(
    r: &mut Reader<'a>,
    body: &'a [u8],
    limits: &DecodeLimits,
    objects: &mut usize,
) -> Option<ColumnView<'a>> {
    r.u8("attribute").ok()?;
    // Each item takes at least two bytes (type and one more).
    let count = r.count(2, "general list").ok()?;
    if count > 0 && limits.depth_max < COLUMN_DEPTH + 1 {
        return None;
    }
    *objects = objects.checked_add(count)?;
    if *objects > limits.object_count_max {
        return None;
    }
    let start = r.offset();
    for _ in 0..count {
        if r.i8("type").ok()? != ty::CHAR {
            return None;
        }
        r.u8("attribute").ok()?;
        let length = r.count(1, "vector").ok()?;
        r.take(length, "vector elements").ok()?;
    }
    Some(ColumnView {
        ty: ty::LIST,
        count,
        bytes: body.get(start..r.offset())?,
    })
}

/// Where the `count`-th NUL of `bytes` ends (one past it); `None` when
/// there are fewer. Counts NULs a whole block at a time (a loop the
/// compiler vectorises), then finds the last ones (and the tail shorter
/// than a block) byte by byte.
fn symbols_end(bytes: &[u8], count: usize) -> Option<usize> {
    const BLOCK_BYTES: usize = 64;
    if count == 0 {
        return Some(0);
    }
    // A block's count fits a u8, so the sum is a byte-wise vector add.
    const _: () = assert!(BLOCK_BYTES <= u8::MAX as usize);
    let (mut seen, mut at) = (0usize, 0usize);
    for block in bytes.chunks_exact(BLOCK_BYTES) {
        let nuls = block.iter().fold(0u8, |n, &b| n + u8::from(b == 0));
        if seen + nuls as usize >= count {
            break;
        }
        seen += nuls as usize;
        at += BLOCK_BYTES;
    }
    // seen < count: at least one NUL is still needed.
    let mut needed = count - seen;
    for (index, &b) in bytes.get(at..)?.iter().enumerate() {
        if b == 0 {
            needed -= 1;
            if needed == 0 {
                return at.checked_add(index)?.checked_add(1);
            }
        }
    }
    None
}

/// What `cross_check` found the view to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrossCheck {
    /// The header does not parse (the stand-in drops the connection first).
    NotAMessage,
    Update {
        rows: usize,
    },
    Rejected(UpdError),
    Other,
}

/// The oracle for the fuzz target and the tests: views `message` and also
/// decodes it into `K` with `parse_update`, and panics where the two
/// disagree (table, rows, each column's type and bytes, the data item the
/// journal logs, the error). Allocates freely: not for the hot path.
pub fn cross_check(message: &[u8], limits: &DecodeLimits) -> CrossCheck {
    use super::decode::decode_message;
    use super::upd::parse_update;

    let Some(head) = message.first_chunk::<HEADER_SIZE>() else {
        return CrossCheck::NotAMessage;
    };
    let Ok(header) = Header::parse(head, limits.message_bytes_max) else {
        return CrossCheck::NotAMessage;
    };
    let mut plain = Vec::new();
    let viewed = view_message(message, &header, &mut plain, limits);
    let decoded = decode_message(message, limits);
    match viewed {
        Viewed::Other => CrossCheck::Other,
        Viewed::Rejected(e) => {
            let (_, k) = decoded.expect("a message the view answers decodes");
            let answer = parse_update(&k).map(|u| u.is_some());
            assert_eq!(answer, Err(e), "view and parse_update refuse alike");
            CrossCheck::Rejected(e)
        }
        Viewed::Update(v) => {
            let (_, k) = decoded.expect("a message the view answers decodes");
            let u = parse_update(&k)
                .expect("parse_update accepts what the view accepts")
                .expect("a .u.upd call");
            same_update(&v, &u);
            CrossCheck::Update { rows: v.rows() }
        }
    }
}

fn same_update(v: &UpdView<'_>, u: &super::upd::Update<'_>) {
    use super::encode::encode_body;
    use super::types::{Data, K};

    assert_eq!(v.table, u.table, "table");
    assert_eq!(v.rows(), u.rows, "rows");
    assert!(u.names.is_none(), "the view takes lists of columns only");
    assert_eq!(v.columns().len(), u.columns.len(), "column count");
    for (c, k) in v.columns().iter().zip(&u.columns) {
        if let K::List { items, .. } = k {
            let texts = c.texts().expect("a general list is a text column");
            assert_eq!(texts.len(), items.len(), "strings");
            let strings = items.iter().map(|i| i.as_chars().expect("a string"));
            assert!(texts.iter().eq(strings), "strings");
            continue;
        }
        let K::Vector { ty, data, .. } = k else {
            panic!("the view took a column that is neither a vector nor a list: {k:?}");
        };
        assert_eq!((c.ty, c.count), (*ty, data.len()), "column type and count");
        match data {
            Data::Symbols(s) => {
                let view = c.symbols().expect("a symbol column");
                assert!(view.iter().eq(s.iter()), "symbols");
            }
            _ => {
                let mut wire = Vec::new();
                encode_body(k, &mut wire);
                assert_eq!(wire.get(6..), Some(c.bytes), "elements");
            }
        }
    }
    let mut data = Vec::new();
    encode_body(u.data, &mut data);
    assert_eq!(data, v.data, "the data item as the journal logs it");
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::config::TimeType;
    use crate::kdb::columns::{encode_upd_with, UpdFormat};
    use crate::kdb::compress::compress;
    use crate::kdb::decode::decode_message;
    use crate::kdb::encode::encode_message;
    use crate::kdb::header::MsgType;
    use crate::kdb::schema::Schema;
    use crate::kdb::symbols::SymbolTable;
    use crate::kdb::types::{Data, K};
    use crate::kdb::upd::{for_each_record, for_each_text, parse_update, Tables};
    use crate::sample::{text_records, write_text, Quality, Sample, TagId, ValueKind};

    const LIMITS: DecodeLimits = DecodeLimits {
        message_bytes_max: 1 << 24,
        depth_max: 64,
        object_count_max: 1 << 20,
    };

    fn view(message: &[u8]) -> Viewed<'_> {
        let header = Header::parse(message.first_chunk().unwrap(), usize::MAX).unwrap();
        // Leaked: the view borrows it; a few bytes per test call.
        let plain: &'static mut Vec<u8> = Box::leak(Box::default());
        view_message(message, &header, plain, &LIMITS)
    }

    fn symbol_table(names: &[(String, String)]) -> SymbolTable {
        let mut t = SymbolTable::new();
        for (name, device) in names {
            t.push(name, device).unwrap();
        }
        t
    }

    /// As millrace's sink encodes `samples`: with the `text` column when
    /// `texts` (a sink whose devices have text tags).
    fn upd(time_type: TimeType, samples: &[Sample], symbols: &SymbolTable, texts: bool) -> Vec<u8> {
        let format = UpdFormat {
            table: "plc",
            gateway: "",
            schema: if texts {
                Schema::WITH_TEXT
            } else {
                Schema::DEFAULT
            },
            time_type,
            msg_type: MsgType::Async,
        };
        let mut out = Vec::new();
        let len = encode_upd_with(&format, samples, 7, symbols, &mut out).unwrap();
        out.truncate(len);
        out
    }

    fn k_upd(function: K, table: K, columns: Vec<K>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_message(
            &K::list(vec![function, table, K::list(columns)]),
            MsgType::Sync,
            &mut out,
        );
        out
    }

    fn time(n: usize) -> K {
        K::vector(ty::TIMESPAN, Data::Longs((0..n as i64).collect()))
    }

    fn syms(n: usize) -> K {
        let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
        K::symbols(&names.iter().map(String::as_str).collect::<Vec<_>>())
    }

    fn strings(texts: &[&str]) -> K {
        K::list(texts.iter().map(|t| K::string(t)).collect())
    }

    fn longs(n: usize) -> K {
        K::vector(ty::LONG, Data::Longs((0..n as i64).collect()))
    }

    /// With the header's length set to the message's.
    fn relength(mut message: Vec<u8>) -> Vec<u8> {
        let len = (message.len() as u32).to_le_bytes();
        message[4..8].copy_from_slice(&len);
        message
    }

    /// Rows as the stand-in's recorder sees them, the K way and the view way:
    /// (sym, value, seq) of every row, and (sym, seq, text) of every row
    /// with a text.
    type Records = (Vec<(Vec<u8>, u64, i64)>, Vec<(Vec<u8>, i64, Vec<u8>)>);

    fn records_both_ways(message: &[u8]) -> (Records, Records) {
        let (_, k) = decode_message(message, &LIMITS).unwrap();
        let u = parse_update(&k).unwrap().unwrap();
        let mut tables = Tables::new(4);
        let state = tables.apply(&u).unwrap().clone();
        let mut by_k = (Vec::new(), Vec::new());
        for_each_record(&u, &state, |s, v, q| {
            by_k.0.push((s.to_vec(), v.to_bits(), q))
        });
        for_each_text(&u, &state, |s, q, t| {
            by_k.1.push((s.to_vec(), q, t.to_vec()))
        });
        let Viewed::Update(v) = view(message) else {
            panic!("not viewed");
        };
        let mut tables = Tables::new(4);
        let state = tables
            .apply_columns(v.table, None, v.types().as_slice(), v.rows())
            .unwrap();
        assert_eq!(state.rows, u.rows as u64);
        let columns = v.record_columns(state).expect("sym, value and seq columns");
        let rows = columns
            .iter()
            .map(|(s, v, q)| (s.to_vec(), v.to_bits(), q))
            .collect();
        let texts = v
            .texts(state)
            .map(|(s, q, t)| (s.to_vec(), q, t.to_vec()))
            .collect();
        (by_k, (rows, texts))
    }

    fn sample_strategy(tag_count: u32) -> impl Strategy<Value = Sample> {
        let quality = prop_oneof![
            Just(Quality::GOOD),
            Just(Quality::TIMEOUT),
            Just(Quality::modbus_exception(3))
        ];
        let kind = prop_oneof![
            Just(ValueKind::F64),
            Just(ValueKind::I64),
            Just(ValueKind::Bool)
        ];
        (any::<i64>(), 0..tag_count, quality, kind, any::<u64>())
            .prop_map(|(ts, tag, q, k, v)| Sample::new(ts, TagId(tag), q, k, v))
    }

    /// The text capacity of the generated text tags (a head and two
    /// extension records).
    const TEXT_CAPACITY: usize = 40;

    /// One row's records: a value, or a text as a reader writes it (its
    /// head and extension records), some of them empty.
    fn row_strategy(tag_count: u32) -> impl Strategy<Value = Vec<Sample>> {
        let text = (
            any::<i64>(),
            0..tag_count,
            prop::collection::vec(any::<u8>(), 0..TEXT_CAPACITY),
        )
            .prop_map(|(ts, tag, text)| {
                let mut out = vec![Sample::default(); text_records(TEXT_CAPACITY)];
                let written = write_text(
                    &mut out,
                    ts,
                    TagId(tag),
                    Quality::GOOD,
                    &text,
                    TEXT_CAPACITY,
                );
                assert_eq!(written, out.len());
                out
            });
        prop_oneof![
            3 => sample_strategy(tag_count).prop_map(|s| vec![s]),
            1 => text,
        ]
    }

    /// A batch: tag names, samples, how many rows they are (a text is one
    /// row of several records), and whether it goes with a `text` column.
    /// One batch in four has neither, as most of millrace's do.
    type Batch = (Vec<(String, String)>, Vec<Sample>, usize, bool);

    fn batch_strategy() -> impl Strategy<Value = Batch> {
        let name = "[a-z0-9.]{0,40}";
        (prop::collection::vec((name, name), 1..20), any::<u8>()).prop_flat_map(|(names, pick)| {
            let tags = names.len() as u32;
            let texts = pick % 4 != 0;
            let rows = if texts {
                row_strategy(tags).boxed()
            } else {
                sample_strategy(tags).prop_map(|s| vec![s]).boxed()
            };
            let batch = prop::collection::vec(rows, 0..300).prop_map(|rows| {
                let count = rows.len();
                (rows.concat(), count)
            });
            (Just(names), batch, Just(texts))
                .prop_map(|(names, (samples, rows), texts)| (names, samples, rows, texts))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every message millrace's encoder makes, plain or compressed, is
        /// viewed as the same update the K path sees, with the same records.
        #[test]
        fn encoder_output_views_as_the_k_path_sees_it(
            (names, samples, rows, texts) in batch_strategy(),
            timestamp in any::<bool>(),
        ) {
            let time_type = if timestamp { TimeType::Timestamp } else { TimeType::Timespan };
            let symbols = symbol_table(&names);
            let message = upd(time_type, &samples, &symbols, texts);
            prop_assert_eq!(cross_check(&message, &LIMITS), CrossCheck::Update { rows });
            let (by_k, by_view) = records_both_ways(&message);
            prop_assert_eq!(by_k.0.len(), rows);
            prop_assert_eq!(by_k, by_view);
            let mut packed = Vec::new();
            if compress(&message, &mut packed) {
                prop_assert_eq!(cross_check(&packed, &LIMITS), CrossCheck::Update { rows });
            }
        }

        /// Any one byte or one 32-bit field of such a message changed: the
        /// view and the K path still answer alike (`cross_check` panics
        /// otherwise), and the view never panics.
        #[test]
        fn damaged_messages_are_answered_alike(
            (names, samples, _, texts) in batch_strategy(),
            at in any::<prop::sample::Index>(),
            field in any::<i32>(),
            byte in any::<u8>(),
            as_field in any::<bool>(),
        ) {
            let symbols = symbol_table(&names);
            let mut message = upd(TimeType::Timespan, &samples, &symbols, texts);
            let at = HEADER_SIZE + at.index(message.len() - HEADER_SIZE);
            if as_field {
                let end = (at + 4).min(message.len());
                let bytes = field.to_le_bytes();
                message[at..end].copy_from_slice(&bytes[..end - at]);
            } else {
                message[at] = byte;
            }
            let _ = cross_check(&message, &LIMITS);
        }

        #[test]
        fn nul_index_finds_the_first_nul(
            bytes in prop::collection::vec(
                prop_oneof![Just(0u8), Just(1u8), Just(0x80u8), any::<u8>()],
                0..40,
            ),
        ) {
            prop_assert_eq!(nul_index(&bytes), bytes.iter().position(|&b| b == 0));
            let count = bytes.iter().filter(|&&b| b == 0).count();
            let column = SymbolColumn { bytes: &bytes, count };
            let split: Vec<&[u8]> = bytes.split(|&b| b == 0).take(column.len()).collect();
            prop_assert_eq!(column.iter().collect::<Vec<_>>(), split);
        }

        #[test]
        fn symbols_end_finds_the_count_th_nul(
            bytes in prop::collection::vec(prop_oneof![Just(0u8), any::<u8>()], 0..300),
            count in 0usize..200,
        ) {
            let naive = if count == 0 {
                Some(0)
            } else {
                bytes
                    .iter()
                    .enumerate()
                    .filter(|(_, &b)| b == 0)
                    .nth(count - 1)
                    .map(|(i, _)| i + 1)
            };
            prop_assert_eq!(symbols_end(&bytes, count), naive);
        }
    }

    /// A text and a value: the view hands the recorder the text with its
    /// row's sym and seq, and nothing for the value's empty cell.
    #[test]
    fn texts_reach_the_recorder_with_their_sym_and_seq() {
        let symbols = symbol_table(&[("t.a".into(), "dev".into()), ("t.b".into(), "d".into())]);
        let mut samples = vec![Sample::default(); text_records(TEXT_CAPACITY)];
        write_text(
            &mut samples,
            5,
            TagId(1),
            Quality::GOOD,
            b"hello",
            TEXT_CAPACITY,
        );
        samples.insert(0, Sample::f64(4, TagId(0), 2.5));
        let message = upd(TimeType::Timespan, &samples, &symbols, true);
        let (by_k, by_view) = records_both_ways(&message);
        assert_eq!(by_view.1, vec![(b"t.b".to_vec(), 8, b"hello".to_vec())]);
        assert_eq!(by_k, by_view);
    }

    /// The decoder counts each string of a text column as an object one
    /// level below the column: past either budget the view leaves the
    /// message to it (which refuses it).
    #[test]
    fn a_text_column_past_the_decoders_budget_is_left_to_it() {
        let message = k_upd(
            K::symbol(".u.upd"),
            K::symbol("t"),
            vec![time(3), syms(3), strings(&["a", "b", "c"])],
        );
        let limits = |object_count_max, depth_max| DecodeLimits {
            message_bytes_max: 1 << 20,
            depth_max,
            object_count_max,
        };
        // 4 objects before the columns, 3 columns, 3 strings.
        assert_eq!(
            cross_check(&message, &limits(10, 3)),
            CrossCheck::Update { rows: 3 }
        );
        for (objects, depth) in [(9, 3), (10, 2)] {
            let tight = limits(objects, depth);
            assert_eq!(cross_check(&message, &tight), CrossCheck::Other);
            assert!(decode_message(&message, &tight).is_err());
        }
    }

    #[test]
    fn every_cut_of_a_message_is_left_to_the_decoder() {
        let symbols = symbol_table(&[("t.a".into(), "dev".into()), ("t.b".into(), "d".into())]);
        let samples: Vec<Sample> = (0..5)
            .map(|i| Sample::f64(i, TagId(i as u32 % 2), 1.5))
            .collect();
        let message = upd(TimeType::Timespan, &samples, &symbols, false);
        for len in HEADER_SIZE + 1..message.len() {
            let cut = relength(message[..len].to_vec());
            assert_eq!(
                cross_check(&cut, &LIMITS),
                CrossCheck::Other,
                "cut at {len}"
            );
        }
        // One byte too many: trailing bytes, which the decoder refuses.
        let mut long = message.clone();
        long.push(0);
        let long = relength(long);
        assert!(decode_message(&long, &LIMITS).is_err());
        assert_eq!(cross_check(&long, &LIMITS), CrossCheck::Other);
    }

    /// Offsets of the column counts in `encode_upd`'s layout (columns.rs).
    fn column_count_at(message: &[u8], column: usize) -> usize {
        let v = match view(message) {
            Viewed::Update(v) => v,
            other => panic!("{other:?}"),
        };
        let c = v.columns()[column];
        let data_at = c.bytes.as_ptr() as usize - message.as_ptr() as usize;
        data_at - 4
    }

    #[test]
    fn counts_past_the_bytes_or_short_of_them_are_refused() {
        let symbols = symbol_table(&[("t.a".into(), "dev".into())]);
        let samples: Vec<Sample> = (0..4).map(|i| Sample::f64(i, TagId(0), 2.0)).collect();
        let message = upd(TimeType::Timespan, &samples, &symbols, false);
        for column in 0..6 {
            let at = column_count_at(&message, column);
            for count in [-1i32, 0, 3, 5, 1 << 20, i32::MAX, i32::MIN] {
                let mut bad = message.clone();
                bad[at..at + 4].copy_from_slice(&count.to_le_bytes());
                // Whatever the decoder makes of it, the view agrees.
                let answer = cross_check(&bad, &LIMITS);
                assert!(
                    !matches!(answer, CrossCheck::Update { .. }),
                    "column {column} count {count}: {answer:?}"
                );
            }
        }
        // Column lengths that disagree, in a message that decodes.
        let bad = k_upd(
            K::symbol(".u.upd"),
            K::symbol("t"),
            vec![time(3), syms(3), longs(2)],
        );
        assert_eq!(
            cross_check(&bad, &LIMITS),
            CrossCheck::Rejected(UpdError::Length)
        );
    }

    #[test]
    fn checks_answer_as_parse_update_does() {
        let upd_fn = || K::symbol(".u.upd");
        let cases: Vec<(Vec<u8>, CrossCheck)> = vec![
            (
                k_upd(upd_fn(), K::symbol("t"), vec![time(2), syms(2), longs(2)]),
                CrossCheck::Update { rows: 2 },
            ),
            (
                k_upd(K::string("upd"), K::symbol("t"), vec![time(1), syms(1)]),
                CrossCheck::Update { rows: 1 },
            ),
            (
                k_upd(K::symbol("upd"), K::symbol("t"), vec![time(0), syms(0)]),
                CrossCheck::Update { rows: 0 },
            ),
            (
                k_upd(upd_fn(), K::symbol(""), vec![time(1), syms(1)]),
                CrossCheck::Rejected(UpdError::Type),
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), vec![]),
                CrossCheck::Rejected(UpdError::Length),
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), vec![time(1)]),
                CrossCheck::Rejected(UpdError::Length),
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), vec![longs(1), syms(1)]),
                CrossCheck::Rejected(UpdError::Type),
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), vec![time(1), longs(1)]),
                CrossCheck::Rejected(UpdError::Type),
            ),
            // A text column: a general list of strings, empty ones too.
            (
                k_upd(
                    upd_fn(),
                    K::symbol("t"),
                    vec![time(3), syms(3), strings(&["ab", "", "c"])],
                ),
                CrossCheck::Update { rows: 3 },
            ),
            (
                k_upd(
                    upd_fn(),
                    K::symbol("t"),
                    vec![time(0), syms(0), strings(&[])],
                ),
                CrossCheck::Update { rows: 0 },
            ),
            (
                k_upd(
                    upd_fn(),
                    K::symbol("t"),
                    vec![time(2), syms(2), strings(&["ab"])],
                ),
                CrossCheck::Rejected(UpdError::Length),
            ),
            // Not the viewed shape: the K path decides.
            (
                k_upd(
                    upd_fn(),
                    K::symbol("t"),
                    vec![time(2), syms(2), K::list(vec![K::string("a"), K::long(1)])],
                ),
                CrossCheck::Other,
            ),
            (
                k_upd(
                    upd_fn(),
                    K::symbol("t"),
                    vec![
                        time(1),
                        syms(1),
                        K::list(vec![K::list(vec![K::string("a")])]),
                    ],
                ),
                CrossCheck::Other,
            ),
            (
                k_upd(
                    K::symbol(".u.other"),
                    K::symbol("t"),
                    vec![time(1), syms(1)],
                ),
                CrossCheck::Other,
            ),
            (
                k_upd(upd_fn(), K::string("t"), vec![time(1), syms(1)]),
                CrossCheck::Other,
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), vec![time(1), syms(1), K::long(1)]),
                CrossCheck::Other,
            ),
            (
                k_upd(upd_fn(), K::symbol("t"), (0..33).map(|_| time(1)).collect()),
                CrossCheck::Other,
            ),
        ];
        for (i, (message, expected)) in cases.iter().enumerate() {
            assert_eq!(cross_check(message, &LIMITS), *expected, "case {i}");
        }
        // Big-endian: the same update, left to the decoder.
        let mut be = cases[0].0.clone();
        be[0] = 0;
        let len = be.len() as u32;
        be[4..8].copy_from_slice(&len.to_be_bytes());
        assert_eq!(cross_check(&be, &LIMITS), CrossCheck::Other);
    }

    #[test]
    fn limits_the_decoder_would_break_are_left_to_it() {
        let message = k_upd(
            K::symbol("upd"),
            K::symbol("t"),
            vec![time(1), syms(1), longs(1)],
        );
        for (depth_max, object_count_max, expected) in [
            (2, 7, CrossCheck::Update { rows: 1 }),
            (1, 7, CrossCheck::Other),
            (2, 6, CrossCheck::Other),
        ] {
            let limits = DecodeLimits {
                depth_max,
                object_count_max,
                ..LIMITS
            };
            assert_eq!(cross_check(&message, &limits), expected);
        }
    }

    #[test]
    fn the_fuzz_corpus_reaches_the_view() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/tickerplant_input");
        let mut viewed = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            viewed +=
                crate::kdb::fuzz::fuzz_server_input(&std::fs::read(entry.unwrap().path()).unwrap())
                    .viewed;
        }
        assert!(viewed >= 3, "{viewed} messages viewed");
        // The text column's seed, a .u.upd with a general list of strings.
        let text = std::fs::read(dir.join("upd_text")).unwrap();
        let run = crate::kdb::fuzz::fuzz_server_input(&text);
        assert_eq!((run.viewed, run.updates), (1, 1), "{run:?}");
    }
}
