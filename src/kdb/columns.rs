//! The columnar `.u.upd[`table; columns]` message, built straight from a
//! `[Sample]` slice into one caller-owned buffer: one pass to validate and
//! size, one `resize` (only growth is zero-filled), then the fixed-width
//! columns row by row and the two symbol columns run by run (a run: rows of
//! consecutive tag ids, one Modbus response's block of registers), in place.
//! No per-row allocation; the buffer's capacity is reused from batch to batch.
//!
//! ```text
//! header | 00 00 03000000                      (list of 3)
//!        | f5 ".u.upd\0"  f5 "TABLE\0"
//!        | 00 00 NCOLS                         (list of the schema's columns)
//!        | 10|0c 00 n  i64*n   time            (timespan | timestamp)
//!        | 0b 00 n  "name\0"*n    sym
//!        | 0b 00 n  "device\0"*n  device
//!        | 09 00 n  f64*n         value       (Sample::value_f64, NaN = 0n)
//!        | 06 00 n  i32*n         quality     (int: the Quality bits as is)
//!        | 07 00 n  i64*n         seq         (the row's head record's seq)
//!        | 00 00 n  (0a 00 len bytes)*n  text (general list of strings)
//!        | 0b 00 n  "gateway\0"*n  gateway   (the same symbol in every row)
//! ```
//!
//! The columns go in the order of the sink's `Schema` (`time` and `sym`
//! first; `text` only when the schema has it).
//!
//! A row is a record that is not a text extension (`sample.rs`): a text
//! sample of more than 8 bytes is a `Text` head and its `TextExt` records,
//! one row whose seq is the head's, so a batch with long text has seqs that
//! skip (de-duplication by seq stays exact). Its `value` is `0n`, its text
//! in the `text` column; other rows have `""` there.
//!
//! `quality` is an int column (`i`): the 32 bits of `sample::Quality`, which
//! keep every protocol's status code whole (an OPC UA StatusCode, a CIP
//! general and extended status, an S7 item return code); bad codes are
//! negative.
//!
//! Two paths: a schema without `text` and a batch with no text record (the
//! plant's numbers) takes the run-by-run path; anything else takes the text
//! path, which cuts the batch into stretches of numbers, written as the
//! run-by-run path writes them (an empty text cell each), and the text rows
//! between them, one at a time. Its sizing pass validates every text sample
//! (`record_span`): records that do not hold together are an error naming
//! the record, never a panic and never a row.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::TimeType;
use crate::sample::{record_span, Quality, Sample, TagId, TextRecords, ValueKind};

use super::encode::finish_header;
use super::error::KdbError;
use super::header::{MsgType, HEADER_SIZE};
use super::schema::{Column, Schema};
use super::symbols::{Span, SymbolTable, SYMBOL_WINDOW_BYTES};
use super::types::ty;

/// The function the publisher calls.
pub const UPD_FUNCTION: &str = ".u.upd";
/// Column names of the default schema, in the order the message carries them.
pub const COLUMN_NAMES: [&str; 6] = ["time", "sym", "device", "value", "quality", "seq"];

pub const NS_PER_DAY: i64 = 86_400_000_000_000;
/// UNIX time of 2000.01.01D00:00, kdb+'s epoch, in ns (10957 days).
pub const KDB_EPOCH_UNIX_NS: i64 = 10_957 * NS_PER_DAY;

/// Bytes of a text cell before its characters: type 10, attribute, count.
const TEXT_CELL_HEADER_BYTES: usize = 6;
/// The text cell of a row without text: `""`.
const EMPTY_TEXT_CELL: [u8; TEXT_CELL_HEADER_BYTES] = [ty::CHAR as u8, 0, 0, 0, 0, 0];

/// kdb+ time of a sample: ns since midnight UTC (timespan) or since
/// 2000.01.01 (timestamp).
pub fn kdb_time(ts_ns: i64, time_type: TimeType) -> i64 {
    match time_type {
        TimeType::Timespan => timespan(ts_ns),
        TimeType::Timestamp => timestamp(ts_ns),
    }
}

/// `ts_ns.rem_euclid(NS_PER_DAY)` without a branch: the remainder by a
/// constant is a multiply; a negative one (before 1970) is moved up by one
/// day with a mask instead of a jump.
#[inline(always)]
fn timespan(ts_ns: i64) -> i64 {
    let r = ts_ns % NS_PER_DAY;
    r + ((r >> 63) & NS_PER_DAY)
}

/// Saturating, so a sample from before 1707 cannot wrap around (a `cmov`).
#[inline(always)]
fn timestamp(ts_ns: i64) -> i64 {
    ts_ns.saturating_sub(KDB_EPOCH_UNIX_NS)
}

/// Everything about one message but its rows.
#[derive(Clone, Copy, Debug)]
pub struct UpdFormat<'a> {
    pub table: &'a str,
    /// The `gateway` column's symbol (`[gateway] id`); used only when the
    /// schema has the column, and then it must be a non-empty name.
    pub gateway: &'a str,
    pub schema: Schema,
    pub time_type: TimeType,
    pub msg_type: MsgType,
}

/// Encodes the whole message (default schema) into `out` (whatever it
/// held is replaced).
///
/// A caller that sends many messages from one buffer should use
/// [`encode_upd_into`]: cutting `out` to each message's length makes the
/// next, longer message zero-fill the difference first.
pub fn encode_upd(
    table: &str,
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    time_type: TimeType,
    msg_type: MsgType,
    out: &mut Vec<u8>,
) -> Result<(), KdbError> {
    let len = encode_upd_into(table, samples, first_seq, symbols, time_type, msg_type, out)?;
    out.truncate(len);
    Ok(())
}

/// [`encode_upd_with`] with the default schema.
pub fn encode_upd_into(
    table: &str,
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    time_type: TimeType,
    msg_type: MsgType,
    out: &mut Vec<u8>,
) -> Result<usize, KdbError> {
    let format = UpdFormat {
        table,
        gateway: "",
        schema: Schema::DEFAULT,
        time_type,
        msg_type,
    };
    encode_upd_with(&format, samples, first_seq, symbols, out)
}

/// Encodes the whole message into `out[..len]` and returns `len`; record
/// `i` of `samples` has seq `first_seq + i`. `out` is never shortened
/// (bytes past `len` are left over from earlier messages), so a reused
/// buffer is zero-filled only where it grows past its longest message so
/// far: per batch that fill was 2% of millrace's CPU.
///
/// Passes over the samples: one to check every tag and size the two symbol
/// columns (noting the largest value kind on the way), one that writes the
/// fixed-width columns (a response's stretch of one time, quality and kind as
/// fills and one loop for its kind, other rows as zipped exact chunks; no
/// loop has per-cell bounds checks), one that writes the symbol columns. The
/// symbol passes go run by run: a run of consecutive tag ids is a contiguous
/// slice of each `SymbolTable` arena, so it costs two table lookups and two
/// copies however long it is, and no per-row table load at all (a run of one
/// is a scattered tag). The buffer keeps its length from batch to batch and
/// is not zero-filled first: every byte below the new length is written.
pub fn encode_upd_with(
    format: &UpdFormat<'_>,
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    out: &mut Vec<u8>,
) -> Result<usize, KdbError> {
    let table = format.table;
    if table.is_empty() || table.contains('\0') {
        return Err(KdbError::BadName { what: "table" });
    }
    let gateway = format.gateway;
    if format.schema.has_gateway() && (gateway.is_empty() || gateway.contains('\0')) {
        return Err(KdbError::BadName { what: "gateway" });
    }
    let records = samples.len();
    let last_seq = first_seq
        .checked_add(records as u64)
        .filter(|&s| s <= i64::MAX as u64);
    if last_seq.is_none() {
        return Err(KdbError::MessageTooLarge {
            bytes: first_seq,
            max: i64::MAX as u64,
        });
    }
    if !format.schema.has_text() {
        let sized = symbol_column_bytes(samples, symbols)?;
        if sized.kind_max < ValueKind::Str8 as u8 {
            let sizes = ColumnSizes {
                rows: records,
                name_bytes: sized.name_bytes,
                device_bytes: sized.device_bytes,
                text_bytes: 0,
            };
            let (total, columns) = lay_out(format, &sizes, out)?;
            write_runs(samples, symbols, first_seq, format.time_type, columns);
            return Ok(total);
        }
    }
    let sizes = size_rows(samples, symbols, format.schema.has_text())?;
    let (total, columns) = lay_out(format, &sizes, out)?;
    let written = write_row_symbols(samples, symbols, columns.sym, columns.device);
    assert!(written, "sizing pass and writing pass disagree");
    let (fixed, text) = (columns.fixed, columns.text);
    match format.time_type {
        TimeType::Timespan => write_rows(samples, first_seq, fixed, text, timespan),
        TimeType::Timestamp => write_rows(samples, first_seq, fixed, text, timestamp),
    }
    Ok(total)
}

/// The run-by-run path's writing: every record is a row.
fn write_runs(
    samples: &[Sample],
    symbols: &SymbolTable,
    first_seq: u64,
    time_type: TimeType,
    columns: Columns<'_>,
) {
    let written = write_symbols(samples, symbols, columns.sym, columns.device);
    assert!(written, "sizing pass and writing pass disagree");
    match time_type {
        TimeType::Timespan => write_fixed(samples, first_seq, columns.fixed, timespan),
        TimeType::Timestamp => write_fixed(samples, first_seq, columns.fixed, timestamp),
    }
}

/// Rows and the bytes of the variable-width columns of one message.
struct ColumnSizes {
    rows: usize,
    name_bytes: usize,
    device_bytes: usize,
    /// Text bytes of every row (the cells' headers not included).
    text_bytes: usize,
}

/// Sizes the message, makes room in `out` and writes everything but the
/// column data: returns the message's length and its columns' data, each
/// exactly its size.
fn lay_out<'o>(
    format: &UpdFormat<'_>,
    sizes: &ColumnSizes,
    out: &'o mut Vec<u8>,
) -> Result<(usize, Columns<'o>), KdbError> {
    let rows = sizes.rows;
    let count = i32::try_from(rows).map_err(|_| KdbError::MessageTooLarge {
        bytes: rows as u64,
        max: i32::MAX as u64,
    })?;
    let schema = &format.schema;
    let data_bytes = |column: Column| match column {
        Column::Time | Column::Value | Column::Seq => rows * 8,
        Column::Quality => rows * 4,
        Column::Sym => sizes.name_bytes,
        Column::Device => sizes.device_bytes,
        Column::Text => rows * TEXT_CELL_HEADER_BYTES + sizes.text_bytes,
        Column::Gateway => rows * (format.gateway.len() + 1),
    };
    let table = format.table;
    let prefix = HEADER_SIZE + 6 + (2 + UPD_FUNCTION.len()) + (2 + table.len()) + 6;
    let total = schema
        .columns()
        .iter()
        .fold(prefix, |total, &c| total + 6 + data_bytes(c));
    if total > u32::MAX as usize {
        return Err(KdbError::MessageTooLarge {
            bytes: total as u64,
            max: u32::MAX as u64,
        });
    }
    // Only growth past the longest message so far is filled; the old bytes
    // below `total` are all overwritten.
    if out.len() < total {
        out.resize(total, 0);
    }
    let msg = out.get_mut(..total).expect("the buffer was sized above");
    finish_header(msg, format.msg_type);
    let mut w = Cursor(msg);
    w.take(HEADER_SIZE);
    w.put(&list_header(3));
    w.put(&[(-ty::SYMBOL) as u8]);
    w.put(UPD_FUNCTION.as_bytes());
    w.put(&[0, (-ty::SYMBOL) as u8]);
    w.put(table.as_bytes());
    w.put(&[0]);
    w.put(&list_header(schema.len() as i32));
    let mut slots: [&mut [u8]; Column::ALL.len()] = Default::default();
    for &column in schema.columns() {
        let t = match column {
            Column::Time => match format.time_type {
                TimeType::Timespan => ty::TIMESPAN,
                TimeType::Timestamp => ty::TIMESTAMP,
            },
            Column::Sym | Column::Device | Column::Gateway => ty::SYMBOL,
            Column::Value => ty::FLOAT,
            Column::Quality => ty::INT,
            Column::Seq => ty::LONG,
            Column::Text => ty::LIST,
        };
        if let Some(slot) = slots.get_mut(column as usize) {
            *slot = w.column(t, count, data_bytes(column));
        }
    }
    assert!(w.0.is_empty(), "sizing pass and layout disagree");
    let [time, sym, device, value, quality, seq, text, gateway] = slots;
    put_gateway(gateway, format.gateway);
    let columns = Columns {
        fixed: Fixed {
            time,
            value,
            quality,
            seq,
        },
        sym,
        device,
        text,
    };
    Ok((total, columns))
}

/// Fills the gateway column (empty when the schema has none): one symbol,
/// the same in every row.
fn put_gateway(column: &mut [u8], gateway: &str) {
    let symbol_bytes = gateway.len() + 1;
    for cell in column.chunks_exact_mut(symbol_bytes) {
        let (name, nul) = cell.split_at_mut(gateway.len());
        name.copy_from_slice(gateway.as_bytes());
        nul.fill(0);
    }
}

/// Runs of rows whose tag ids count up by one: the unit the symbol columns
/// are sized and copied in.
fn runs(samples: &[Sample]) -> impl Iterator<Item = &[Sample]> {
    samples.chunk_by(|a, b| a.tag_id().0.checked_add(1) == Some(b.tag_id().0))
}

/// The run's first tag and its span in the symbol table; `None` for a run
/// with an unknown tag.
#[inline(always)]
fn run_span(run: &[Sample], symbols: &SymbolTable) -> Option<Span> {
    symbols.span(run.first()?.tag_id(), run.len())
}

/// The error for a run of `len` ids from `first` with an unknown one: its
/// first unknown tag is `first` itself, or the first id past the table.
fn unknown_in_run(first: TagId, symbols: &SymbolTable) -> KdbError {
    let tag = u32::try_from(symbols.len()).map_or(first.0, |len| first.0.max(len));
    KdbError::UnknownTag { tag }
}

/// What the sizing pass over records found.
struct Sized {
    name_bytes: usize,
    device_bytes: usize,
    /// The largest kind byte of any record: below `Str8`, no text at all.
    kind_max: u8,
}

/// Checks every tag; returns the bytes of the sym and device columns (as
/// if every record were a row) and the largest kind byte. The kind rides
/// along in the run split, which loads every record's tag word anyway.
fn symbol_column_bytes(samples: &[Sample], symbols: &SymbolTable) -> Result<Sized, KdbError> {
    let (mut names, mut devices) = (0usize, 0usize);
    let mut kind_max = samples.first().map_or(0, Sample::kind_byte);
    let split = |a: &Sample, b: &Sample| {
        kind_max = kind_max.max(b.kind_byte());
        a.tag_id().0.checked_add(1) == Some(b.tag_id().0)
    };
    for run in samples.chunk_by(split) {
        let Some(span) = run_span(run, symbols) else {
            let first = run.first().map_or(TagId(0), Sample::tag_id);
            return Err(unknown_in_run(first, symbols));
        };
        names += span.name_bytes();
        devices += span.device_bytes();
    }
    Ok(Sized {
        name_bytes: names,
        device_bytes: devices,
        kind_max,
    })
}

fn list_header(count: i32) -> [u8; 6] {
    let [c0, c1, c2, c3] = count.to_le_bytes();
    [ty::LIST as u8, 0, c0, c1, c2, c3]
}

/// Hands out consecutive disjoint pieces of the message buffer.
struct Cursor<'a>(&'a mut [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> &'a mut [u8] {
        let (head, rest) = std::mem::take(&mut self.0)
            .split_at_mut_checked(n)
            .expect("the message was sized for every piece");
        self.0 = rest;
        head
    }

    fn put(&mut self, bytes: &[u8]) {
        self.take(bytes.len()).copy_from_slice(bytes);
    }

    /// Writes a vector header; returns the vector's data bytes.
    fn column(&mut self, t: i8, count: i32, data_bytes: usize) -> &'a mut [u8] {
        let mut header = list_header(count);
        header[0] = t as u8;
        self.put(&header);
        self.take(data_bytes)
    }
}

/// The data bytes of each column, exactly its size (empty when the schema
/// does not send it).
struct Columns<'a> {
    fixed: Fixed<'a>,
    sym: &'a mut [u8],
    device: &'a mut [u8],
    text: &'a mut [u8],
}

/// The cells of the fixed-width columns, which every schema has.
struct Fixed<'a> {
    time: &'a mut [u8],
    value: &'a mut [u8],
    quality: &'a mut [u8],
    seq: &'a mut [u8],
}

impl<'a> Fixed<'a> {
    /// The cells of the first `rows` rows, and the rest.
    fn split(self, rows: usize) -> (Fixed<'a>, Fixed<'a>) {
        let cut = |cells: &'a mut [u8], width: usize| {
            let at = (rows * width).min(cells.len());
            cells.split_at_mut(at)
        };
        let (time, time_rest) = cut(self.time, 8);
        let (value, value_rest) = cut(self.value, 8);
        let (quality, quality_rest) = cut(self.quality, 4);
        let (seq, seq_rest) = cut(self.seq, 8);
        let rest = Fixed {
            time: time_rest,
            value: value_rest,
            quality: quality_rest,
            seq: seq_rest,
        };
        (
            Fixed {
                time,
                value,
                quality,
                seq,
            },
            rest,
        )
    }
}

/// Writes the time, value, quality and seq cells of every row. A stretch of
/// at least `STRETCH_MIN` rows with one time, quality and kind (a response's
/// block) fills its time and quality cells with one value each and converts
/// its values in one loop for its kind; rows between such stretches (a
/// subscription's values, each with its own source time) go row by row. A
/// match on the kind in every row was an indirect jump a row, the largest
/// cost of this pass at the plant's shape.
#[inline(always)]
fn write_fixed(samples: &[Sample], first_seq: u64, c: Fixed<'_>, time: impl Fn(i64) -> i64) {
    // first_seq + rows <= i64::MAX was checked by the caller.
    let seq_of = |row: usize| first_seq as i64 + row as i64;
    let mut rest = c;
    // Rows before `row` are written, or wait from `scattered` to be.
    let (mut row, mut scattered) = (0usize, 0usize);
    for stretch in samples.chunk_by(same_stretch) {
        let start = row;
        row += stretch.len();
        if stretch.len() < STRETCH_MIN {
            continue;
        }
        if start > scattered {
            let (cells, after) = rest.split(start - scattered);
            rest = after;
            let rows = samples.get(scattered..start).unwrap_or_default();
            write_scattered(rows, seq_of(scattered), cells, &time);
        }
        let (cells, after) = rest.split(stretch.len());
        rest = after;
        write_stretch(stretch, seq_of(start), cells, &time);
        scattered = row;
    }
    let rows = samples.get(scattered..).unwrap_or_default();
    write_scattered(rows, seq_of(scattered), rest, &time);
}

/// The shortest stretch `write_fixed` fills as one: below it, the stretch's
/// own loops cost more than they save.
const STRETCH_MIN: usize = 8;

/// Rows that `write_fixed` writes as one stretch: one time, quality, kind.
#[inline(always)]
fn same_stretch(a: &Sample, b: &Sample) -> bool {
    a.ts_ns == b.ts_ns && a.quality == b.quality && a.kind_byte() == b.kind_byte()
}

/// The cells of a stretch: one time and quality for every row, seqs from
/// `first_seq`, the values converted for the stretch's kind.
#[inline(always)]
fn write_stretch(stretch: &[Sample], first_seq: i64, c: Fixed<'_>, time: impl Fn(i64) -> i64) {
    let Some(head) = stretch.first() else {
        return;
    };
    let t = time(head.ts_ns).to_le_bytes();
    c.time
        .chunks_exact_mut(8)
        .for_each(|cell| cell.copy_from_slice(&t));
    let q = head.quality.to_le_bytes();
    c.quality
        .chunks_exact_mut(4)
        .for_each(|cell| cell.copy_from_slice(&q));
    for (cell, n) in c.seq.chunks_exact_mut(8).zip(first_seq..) {
        cell.copy_from_slice(&n.to_le_bytes());
    }
    write_values(stretch, head, c.value);
}

/// The cells of rows that are not one stretch, row by row.
#[inline(always)]
fn write_scattered(rows: &[Sample], first_seq: i64, c: Fixed<'_>, time: impl Fn(i64) -> i64) {
    let fixed = rows
        .iter()
        .zip(c.time.chunks_exact_mut(8))
        .zip(c.value.chunks_exact_mut(8))
        .zip(c.quality.chunks_exact_mut(4))
        .zip(c.seq.chunks_exact_mut(8));
    // Neighbours often share their time: convert it once for them.
    let mut ts_last = rows.first().map_or(0, |s| s.ts_ns);
    let mut t_last = time(ts_last);
    for (seq, ((((s, t), v), q), n)) in (first_seq..).zip(fixed) {
        if s.ts_ns != ts_last {
            ts_last = s.ts_ns;
            t_last = time(ts_last);
        }
        t.copy_from_slice(&t_last.to_le_bytes());
        v.copy_from_slice(&value_bits(s).to_le_bytes());
        q.copy_from_slice(&s.quality.to_le_bytes());
        n.copy_from_slice(&seq.to_le_bytes());
    }
}

/// The float column's bits of one row: the stored bits as they are for a
/// good f64 sample (the common case, one predictable branch), else
/// `value_f64`.
#[inline(always)]
fn value_bits(s: &Sample) -> u64 {
    if s.quality == Quality::GOOD.bits() && s.kind_byte() == ValueKind::F64 as u8 {
        s.value
    } else {
        s.value_f64().to_bits()
    }
}

/// The float column's cells of a stretch whose rows all have `head`'s
/// quality and kind: `Sample::value_f64` of each, the kind matched once.
#[inline(always)]
fn write_values(stretch: &[Sample], head: &Sample, column: &mut [u8]) {
    if head.quality().is_bad() {
        return put_values(stretch, column, |_| f64::NAN);
    }
    match head.kind() {
        Some(ValueKind::F64) => put_values(stretch, column, f64::from_bits),
        Some(ValueKind::I64) => put_values(stretch, column, |v| v as i64 as f64),
        Some(ValueKind::U64) => put_values(stretch, column, |v| v as f64),
        Some(ValueKind::Bool) => put_values(stretch, column, |v| f64::from(u8::from(v != 0))),
        Some(ValueKind::Str8 | ValueKind::Text | ValueKind::TextExt) | None => {
            put_values(stretch, column, |_| f64::NAN)
        }
    }
}

/// One loop a kind: `value` of each row's stored bits.
#[inline(always)]
fn put_values(stretch: &[Sample], column: &mut [u8], value: impl Fn(u64) -> f64) {
    for (s, cell) in stretch.iter().zip(column.chunks_exact_mut(8)) {
        cell.copy_from_slice(&value(s.value).to_bits().to_le_bytes());
    }
}

/// Writes the sym and device columns run by run; false if they did not come
/// out exactly the size the sizing pass gave (a broken invariant, not bad
/// input).
fn write_symbols(
    samples: &[Sample],
    symbols: &SymbolTable,
    sym: &mut [u8],
    device: &mut [u8],
) -> bool {
    let [names, devices] = symbols.arenas();
    let (mut at_sym, mut at_device) = (0usize, 0usize);
    for run in runs(samples) {
        // Every tag was checked by the sizing pass.
        let Some(span) = run_span(run, symbols) else {
            return false;
        };
        let name = (span.start[0] as usize, span.name_bytes());
        at_sym += put_symbols(sym, at_sym, names, name);
        let dev = (span.start[1] as usize, span.device_bytes());
        at_device += put_symbols(device, at_device, devices, dev);
    }
    at_sym == sym.len() && at_device == device.len()
}

/// Copies the symbols at `(start, len)` of `arena` to `column[at..]`;
/// returns `len`. Short ones (a symbol or two) go as a whole window (the
/// bytes past `len` are overwritten by the next run); near the column's end,
/// or for a longer run, an exact copy.
#[inline(always)]
fn put_symbols(column: &mut [u8], at: usize, arena: &[u8], (start, len): (usize, usize)) -> usize {
    if len <= SYMBOL_WINDOW_BYTES {
        let dst = column
            .get_mut(at..at + SYMBOL_WINDOW_BYTES)
            .and_then(|d| <&mut [u8; SYMBOL_WINDOW_BYTES]>::try_from(d).ok());
        let src = arena
            .get(start..start + SYMBOL_WINDOW_BYTES)
            .and_then(|s| <&[u8; SYMBOL_WINDOW_BYTES]>::try_from(s).ok());
        if let (Some(dst), Some(src)) = (dst, src) {
            *dst = *src;
            return len;
        }
    }
    if let (Some(dst), Some(src)) = (column.get_mut(at..at + len), arena.get(start..start + len)) {
        dst.copy_from_slice(src);
    }
    len
}

/// The records of the row at the front of `rest`, whose records were
/// validated (`size_rows`): a text head and its extensions, or one.
#[inline(always)]
fn validated_span(rest: &[Sample]) -> usize {
    match rest.first() {
        Some(head) if head.kind_byte() == ValueKind::Text as u8 => {
            (1 + (head.value >> 32) as usize).min(rest.len())
        }
        _ => 1,
    }
}

/// A piece of a validated batch as the writing passes of the text path
/// take it.
enum Piece<'a> {
    /// Records that are rows of one (numbers: every record a row, as in the
    /// run-by-run path); possibly none.
    Numbers(&'a [Sample]),
    /// One other row: a text sample's records, or a record of a kind this
    /// build does not know.
    Row(&'a [Sample]),
}

/// Calls `f(at, piece)` for each piece of `samples` in order; `at` is the
/// index of the piece's first record.
#[inline(always)]
fn for_each_piece(samples: &[Sample], mut f: impl FnMut(usize, Piece<'_>)) {
    let mut at = 0;
    while let Some(rest) = samples.get(at..).filter(|r| !r.is_empty()) {
        let numbers = rest
            .iter()
            .position(|s| s.kind_byte() >= ValueKind::Str8 as u8)
            .unwrap_or(rest.len());
        let (stretch, rest) = rest.split_at(numbers);
        f(at, Piece::Numbers(stretch));
        at += numbers;
        if !rest.is_empty() {
            let span = validated_span(rest);
            f(at, Piece::Row(rest.get(..span).unwrap_or(rest)));
            at += span;
        }
    }
}

/// The text path's sizing pass: validates every row's records, checks every
/// tag, and sizes the variable-width columns, piece by piece (a stretch of
/// numbers run by run). The first error in this order: records that do not
/// hold together or text for a schema without a text column, whichever
/// comes first; then an unknown tag.
fn size_rows(
    samples: &[Sample],
    symbols: &SymbolTable,
    text_column: bool,
) -> Result<ColumnSizes, KdbError> {
    let mut sizes = ColumnSizes {
        rows: 0,
        name_bytes: 0,
        device_bytes: 0,
        text_bytes: 0,
    };
    let mut unknown = None;
    let mut size_run = |first: TagId, len: usize, sizes: &mut ColumnSizes| {
        if unknown.is_some() {
            return;
        }
        match symbols.span(first, len) {
            Some(span) => {
                sizes.name_bytes += span.name_bytes();
                sizes.device_bytes += span.device_bytes();
            }
            None => unknown = Some(unknown_in_run(first, symbols)),
        }
    };
    let mut broken = None;
    for_each_piece(samples, |at, piece| match piece {
        Piece::Numbers(stretch) => {
            sizes.rows += stretch.len();
            for run in runs(stretch) {
                if let Some(first) = run.first() {
                    size_run(first.tag_id(), run.len(), &mut sizes);
                }
            }
        }
        Piece::Row(row) => {
            let Some(head) = row.first() else { return };
            // The piece was cut by the head's own count: check it holds.
            let rest = samples.get(at..).unwrap_or_default();
            if let Err(error) = record_span(rest) {
                broken.get_or_insert(KdbError::BadRecords { record: at, error });
            } else if let Some(text) = text_of(row) {
                if !text_column {
                    let tag = head.tag_id().0;
                    broken.get_or_insert(KdbError::NoTextColumn { tag });
                }
                sizes.text_bytes += text.len();
            }
            sizes.rows += 1;
            size_run(head.tag_id(), 1, &mut sizes);
        }
    });
    match broken.or(unknown) {
        Some(e) => Err(e),
        None => Ok(sizes),
    }
}

/// The text path's sym and device columns: a stretch of numbers run by run,
/// a text row as a run of one (cutting a run of consecutive tags writes the
/// same bytes).
fn write_row_symbols(
    samples: &[Sample],
    symbols: &SymbolTable,
    sym: &mut [u8],
    device: &mut [u8],
) -> bool {
    let [names, devices] = symbols.arenas();
    let (mut at_sym, mut at_device) = (0usize, 0usize);
    let mut complete = true;
    let mut put = |first: TagId, len: usize| {
        let Some(span) = symbols.span(first, len) else {
            complete = false;
            return;
        };
        let name = (span.start[0] as usize, span.name_bytes());
        at_sym += put_symbols(sym, at_sym, names, name);
        let dev = (span.start[1] as usize, span.device_bytes());
        at_device += put_symbols(device, at_device, devices, dev);
    };
    for_each_piece(samples, |_, piece| match piece {
        Piece::Numbers(stretch) => {
            for run in runs(stretch) {
                if let Some(first) = run.first() {
                    put(first.tag_id(), run.len());
                }
            }
        }
        Piece::Row(row) => {
            if let Some(head) = row.first() {
                put(head.tag_id(), 1);
            }
        }
    });
    complete && at_sym == sym.len() && at_device == device.len()
}

/// The text path's fixed-width cells and text cells: a stretch of numbers
/// as the run-by-run path writes it (and an empty text cell per row), each
/// other row on its own. A row's seq is its head record's.
fn write_rows(
    samples: &[Sample],
    first_seq: u64,
    fixed: Fixed<'_>,
    text: &mut [u8],
    time: impl Fn(i64) -> i64,
) {
    let mut text = Cursor(text);
    let text_column = !text.0.is_empty();
    let mut rest = Some(fixed);
    for_each_piece(samples, |at, piece| {
        let (records, rows) = match piece {
            Piece::Numbers(stretch) => (stretch, stretch.len()),
            Piece::Row(row) => (row.get(..1).unwrap_or_default(), 1),
        };
        if let Some((cells, after)) = rest.take().map(|f| f.split(rows)) {
            write_fixed(records, first_seq + at as u64, cells, &time);
            rest = Some(after);
        }
        if !text_column {
            return;
        }
        match piece {
            Piece::Numbers(_) => {
                let cells = text.take(rows * TEXT_CELL_HEADER_BYTES);
                for cell in cells.chunks_exact_mut(TEXT_CELL_HEADER_BYTES) {
                    cell.copy_from_slice(&EMPTY_TEXT_CELL);
                }
            }
            Piece::Row(row) => put_text(&mut text, row),
        }
    });
    assert!(text.0.is_empty(), "text sizing and writing disagree");
}

/// One cell of the text column: a char vector, empty for a row without text.
fn put_text(w: &mut Cursor<'_>, row: &[Sample]) {
    let text = text_of(row);
    let len = text.map_or(0, |t| t.len());
    let [l0, l1, l2, l3] = (len as i32).to_le_bytes();
    w.put(&[ty::CHAR as u8, 0, l0, l1, l2, l3]);
    if let Some(text) = text {
        text.copy_to(w.take(len));
    }
}

/// The text of a row whose records were validated (`record_span`): its
/// head and the extension records after it, without checking them again.
#[inline(always)]
fn text_of(row: &[Sample]) -> Option<TextRecords<'_>> {
    let (head, exts) = row.split_first()?;
    head.kind()
        .filter(|k| k.is_text())
        .map(|_| TextRecords { head, exts })
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::kdb::encode::encode_message;
    use crate::kdb::types::{Data, Symbols, K};
    use crate::sample::{text_at, write_text, TextError};
    use proptest::prelude::*;

    /// The same message built the slow way, through `K`, default schema.
    fn reference(
        samples: &[Sample],
        first_seq: u64,
        symbols: &SymbolTable,
        time_type: TimeType,
    ) -> Vec<u8> {
        reference_with(Schema::DEFAULT, samples, first_seq, symbols, time_type)
    }

    /// The rows of a batch the slow way: every record that is not a text
    /// extension, with its seq, and its text read back by `text_at`.
    fn rows_of(samples: &[Sample], first_seq: u64) -> Vec<(Sample, i64, Vec<u8>)> {
        samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.kind() != Some(ValueKind::TextExt))
            .map(|(i, s)| {
                let text = text_at(&samples[i..]).map_or(Vec::new(), |t| {
                    let mut bytes = vec![0; t.len()];
                    t.copy_to(&mut bytes);
                    bytes
                });
                (*s, first_seq as i64 + i as i64, text)
            })
            .collect()
    }

    const TEST_GATEWAY: &str = "edge-03";

    fn reference_with(
        schema: Schema,
        samples: &[Sample],
        first_seq: u64,
        symbols: &SymbolTable,
        time_type: TimeType,
    ) -> Vec<u8> {
        let time_ty = match time_type {
            TimeType::Timespan => ty::TIMESPAN,
            TimeType::Timestamp => ty::TIMESTAMP,
        };
        let rows = rows_of(samples, first_seq);
        let syms = |f: fn(&SymbolTable, TagId) -> Option<&str>| {
            let names: Symbols = rows
                .iter()
                .map(|(s, _, _)| f(symbols, s.tag_id()).unwrap())
                .collect();
            K::vector(ty::SYMBOL, Data::Symbols(names))
        };
        let column = |c: Column| match c {
            Column::Time => K::vector(
                time_ty,
                Data::Longs(
                    rows.iter()
                        .map(|(s, _, _)| kdb_time(s.ts_ns, time_type))
                        .collect(),
                ),
            ),
            Column::Sym => syms(SymbolTable::tag_name),
            Column::Device => syms(SymbolTable::device_name),
            Column::Value => K::vector(
                ty::FLOAT,
                Data::Floats(rows.iter().map(|(s, _, _)| s.value_f64()).collect()),
            ),
            Column::Quality => K::vector(
                ty::INT,
                Data::Ints(rows.iter().map(|(s, _, _)| s.quality as i32).collect()),
            ),
            Column::Seq => K::vector(
                ty::LONG,
                Data::Longs(rows.iter().map(|(_, seq, _)| *seq).collect()),
            ),
            Column::Text => K::list(
                rows.iter()
                    .map(|(_, _, t)| K::vector(ty::CHAR, Data::Bytes(t.clone())))
                    .collect(),
            ),
            Column::Gateway => K::vector(
                ty::SYMBOL,
                Data::Symbols(rows.iter().map(|_| TEST_GATEWAY).collect()),
            ),
        };
        let k = K::list(vec![
            K::symbol(UPD_FUNCTION),
            K::symbol("plc"),
            K::list(schema.columns().iter().map(|&c| column(c)).collect()),
        ]);
        let mut out = Vec::new();
        encode_message(&k, MsgType::Async, &mut out);
        out
    }

    #[test]
    fn same_bytes_as_through_k_into_a_dirty_buffer() {
        let mut symbols = SymbolTable::new();
        let long = "x".repeat(SYMBOL_WINDOW_BYTES * 3);
        for (name, device) in [
            ("a", "d"),
            (long.as_str(), "press-01"),
            ("exactly.thirty.one.bytes.long.x", long.as_str()),
            ("t", "exactly.thirty.two.bytes.long.xy"),
        ] {
            symbols.push(name, device).unwrap();
        }
        // Text takes the text path and a text column: tested below.
        let kinds = [
            ValueKind::F64,
            ValueKind::I64,
            ValueKind::Bool,
            ValueKind::U64,
        ];
        let samples: Vec<Sample> = (0..61u32)
            .map(|i| {
                let ts = (i as i64 - 30) * 3_600_000_000_007 + i64::from(i % 3) * NS_PER_DAY;
                let quality = if i % 7 == 3 {
                    Quality::TIMEOUT
                } else {
                    Quality::GOOD
                };
                let kind = kinds[i as usize % kinds.len()];
                Sample::new(ts, TagId(i % 4), quality, kind, u64::from(i) * 0x1234_5678)
            })
            .collect();
        for time_type in [TimeType::Timespan, TimeType::Timestamp] {
            for rows in [0, 1, 2, 5, 61] {
                let batch = &samples[..rows];
                let expected = reference(batch, 77, &symbols, time_type);
                // Longer than needed and full of garbage: reuse must not leak it.
                let mut out = vec![0xAA; expected.len() + 100];
                encode_upd(
                    "plc",
                    batch,
                    77,
                    &symbols,
                    time_type,
                    MsgType::Async,
                    &mut out,
                )
                .unwrap();
                assert_eq!(out, expected, "{time_type:?} {rows} rows");
                // Shorter than needed, also garbage.
                out.truncate(expected.len() / 2);
                out.fill(0x55);
                encode_upd(
                    "plc",
                    batch,
                    77,
                    &symbols,
                    time_type,
                    MsgType::Async,
                    &mut out,
                )
                .unwrap();
                assert_eq!(out, expected, "{time_type:?} {rows} rows, grown");
                // The reusing form: the message is the prefix, the rest of
                // the (longer, dirty) buffer is left alone.
                let mut out = vec![0x33; expected.len() + 64];
                let len = encode_upd_into(
                    "plc",
                    batch,
                    77,
                    &symbols,
                    time_type,
                    MsgType::Async,
                    &mut out,
                )
                .unwrap();
                assert_eq!(len, expected.len());
                assert_eq!(out.len(), expected.len() + 64, "never shortened");
                assert_eq!(
                    &out[..len],
                    &expected[..],
                    "{time_type:?} {rows} rows, into"
                );
                assert!(out[len..].iter().all(|&b| b == 0x33));
            }
        }
    }

    #[test]
    fn time_conversion_matches_rem_euclid_and_saturates() {
        for ts in [
            i64::MIN,
            -NS_PER_DAY - 1,
            -NS_PER_DAY,
            -1,
            0,
            1,
            NS_PER_DAY - 1,
            NS_PER_DAY,
            1_764_000_000_123_456_789,
            i64::MAX,
        ] {
            assert_eq!(timespan(ts), ts.rem_euclid(NS_PER_DAY), "{ts}");
            assert_eq!(timestamp(ts), ts.saturating_sub(KDB_EPOCH_UNIX_NS), "{ts}");
        }
        assert_eq!(timestamp(KDB_EPOCH_UNIX_NS), 0);
    }

    #[test]
    fn unknown_tag_is_an_error_and_names_it() {
        let mut symbols = SymbolTable::new();
        symbols.push("a", "d").unwrap();
        let samples = [Sample::f64(0, TagId(0), 1.0), Sample::f64(0, TagId(9), 1.0)];
        let mut out = Vec::new();
        let r = encode_upd(
            "plc",
            &samples,
            0,
            &symbols,
            TimeType::Timespan,
            MsgType::Async,
            &mut out,
        );
        assert!(matches!(r, Err(KdbError::UnknownTag { tag: 9 })), "{r:?}");
    }

    /// A table shaped like a plant with its awkward corners: 6 devices of
    /// 7 tags, names of every length around the window (a run of short
    /// names can fit a window, a long name never does), an empty device
    /// name, and one device whose tags are split in two by another's.
    fn awkward_table() -> SymbolTable {
        let long = "L".repeat(SYMBOL_WINDOW_BYTES + 7);
        let devices = [
            "d0",
            "",
            "press-number-two-with-a-long-name",
            "d3",
            "d0",
            &long,
        ];
        let mut symbols = SymbolTable::new();
        for (d, device) in devices.iter().enumerate() {
            for i in 0..7usize {
                let len = (d * 7 + i) * 3 % (SYMBOL_WINDOW_BYTES + 9);
                let name: String = format!("{d}.{i}.{}", "n".repeat(len));
                symbols.push(&name[..len.max(1)], device).unwrap();
            }
        }
        symbols
    }

    fn encode_both(samples: &[Sample], symbols: &SymbolTable, time_type: TimeType) {
        let expected = reference(samples, 3, symbols, time_type);
        let mut out = vec![0xC3; expected.len() + 40];
        let len = encode_upd_into(
            "plc",
            samples,
            3,
            symbols,
            time_type,
            MsgType::Async,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..len], &expected[..], "{samples:?}");
    }

    fn rows(tags: impl IntoIterator<Item = u32>) -> Vec<Sample> {
        tags.into_iter()
            .enumerate()
            .map(|(i, tag)| {
                let kind = [ValueKind::U64, ValueKind::F64, ValueKind::I64][i % 3];
                // Timestamps repeat in stretches, as one response's do.
                let ts = 1_764_000_000_000_000_000 + (i as i64 / 4) * 999_999_937;
                Sample::new(ts, TagId(tag), Quality::GOOD, kind, i as u64 * 0x9E37)
            })
            .collect()
    }

    /// The shapes the run-by-run symbol columns must get right: runs of
    /// consecutive ids within a device and across device boundaries, ids
    /// going down or repeating, devices interleaved, the first and the last
    /// id, long names, and a run of one.
    #[test]
    fn runs_of_every_shape_match_the_reference() {
        let symbols = awkward_table();
        let last = symbols.len() as u32 - 1;
        let cases: Vec<Vec<u32>> = vec![
            (0..=last).collect(),
            (0..=last).rev().collect(),
            vec![0],
            vec![last],
            vec![last, 0, last, 0],
            (3..12).collect(),
            (27..last).chain(0..4).collect(),
            vec![5, 5, 5, 6, 6, 7],
            vec![0, 7, 1, 8, 2, 9, 3, 35, 4, 36],
            (0..=last)
                .step_by(2)
                .chain((0..=last).skip(1).step_by(2))
                .collect(),
            (35..=last).chain(28..35).chain(0..7).collect(),
        ];
        for tags in cases {
            let samples = rows(tags);
            for time_type in [TimeType::Timespan, TimeType::Timestamp] {
                encode_both(&samples, &symbols, time_type);
            }
        }
    }

    /// An unknown id inside a run of consecutive ids is named, the first one
    /// in row order; no message is produced.
    #[test]
    fn unknown_tag_inside_a_run_is_named() {
        let symbols = awkward_table();
        let n = symbols.len() as u32;
        for (tags, unknown) in [
            (vec![n - 2, n - 1, n, n + 1], n),
            (vec![0, 1, n + 5, n + 6], n + 5),
            (vec![TagId::MAX, 0], TagId::MAX),
            (vec![n - 1, TagId::MAX - 1, TagId::MAX], TagId::MAX - 1),
        ] {
            let mut out = Vec::new();
            let r = encode_upd(
                "plc",
                &rows(tags),
                0,
                &symbols,
                TimeType::Timespan,
                MsgType::Async,
                &mut out,
            );
            assert!(
                matches!(r, Err(KdbError::UnknownTag { tag }) if tag == unknown),
                "{r:?}"
            );
        }
    }

    /// A batch with text of every shape among numbers: short text (`Str8`),
    /// long text (a head and extensions) full, partly filled and empty, bad
    /// text, and numbers of consecutive tags around them.
    fn text_batch() -> Vec<Sample> {
        fn push_text(out: &mut Vec<Sample>, tag: u32, quality: Quality, text: &[u8], cap: usize) {
            let mut records = vec![Sample::default(); crate::sample::text_records(cap)];
            let ts = 1_764_000_000_000_000_000 + out.len() as i64 * 1_000;
            let n = write_text(&mut records, ts, TagId(tag), quality, text, cap);
            assert_eq!(n, records.len());
            out.extend_from_slice(&records);
        }
        let mut out = Vec::new();
        push_text(&mut out, 0, Quality::GOOD, b"abc", 8);
        let forty = b"a string of forty characters, exactly!!";
        push_text(&mut out, 1, Quality::GOOD, forty, 40);
        push_text(&mut out, 2, Quality::TIMEOUT, b"", 82);
        push_text(&mut out, 3, Quality::GOOD, &[b'x'; 254], 254);
        push_text(&mut out, 4, Quality::GOOD, b"eight by", 8);
        push_text(&mut out, 5, Quality::GOOD, b"nine byte", 9);
        push_text(&mut out, 6, Quality::modbus_exception(2), b"", 9);
        out.extend_from_slice(&rows(7..20));
        let utf8 = "\u{e9}t\u{e9} UTF-8, 21 bytes".as_bytes();
        push_text(&mut out, 20, Quality::GOOD, utf8, 30);
        push_text(&mut out, 21, Quality::GOOD, b"", 1);
        out.extend_from_slice(&rows([22, 23, 0, 1]));
        out
    }

    fn schemas_with_text() -> Vec<Schema> {
        let with = |names: &[&str]| Schema::from_names(names.iter().copied()).unwrap();
        vec![
            Schema::WITH_TEXT,
            with(&["time", "sym", "text", "device", "value", "quality", "seq"]),
            with(&["time", "sym", "seq", "quality", "text", "value", "device"]),
            with(&[
                "time", "sym", "gateway", "device", "value", "quality", "seq", "text",
            ]),
            with(&[
                "time", "sym", "device", "value", "quality", "seq", "text", "gateway",
            ]),
        ]
    }

    fn encode_with(schema: Schema, samples: &[Sample], time_type: TimeType) -> Vec<u8> {
        let symbols = awkward_table();
        let format = UpdFormat {
            table: "plc",
            gateway: TEST_GATEWAY,
            schema,
            time_type,
            msg_type: MsgType::Async,
        };
        let mut out = vec![0xE7; 64];
        let len = encode_upd_with(&format, samples, 11, &symbols, &mut out).unwrap();
        out.truncate(len);
        out
    }

    #[test]
    fn text_rows_match_the_reference_in_every_schema() {
        let symbols = awkward_table();
        let samples = text_batch();
        let rows = rows_of(&samples, 11);
        assert_eq!(rows.len(), 7 + 13 + 2 + 4);
        // A text row's seq is its head's: the seqs skip the extensions.
        assert_eq!(rows[2].1, 11 + 1 + crate::sample::text_records(40) as i64);
        assert_eq!(rows[1].2, b"a string of forty characters, exactly!!");
        for schema in schemas_with_text() {
            for time_type in [TimeType::Timespan, TimeType::Timestamp] {
                for cut in [0, 1, 2, 3, 7, samples.len()] {
                    // Cuts at row boundaries only (what a frame holds).
                    let Some(batch) = samples.get(..cut).filter(|b| {
                        b.is_empty() || crate::sample::record_span(&samples[b.len()..]).is_ok()
                    }) else {
                        continue;
                    };
                    let expected = reference_with(schema, batch, 11, &symbols, time_type);
                    assert_eq!(
                        encode_with(schema, batch, time_type),
                        expected,
                        "{schema} {time_type:?} {cut} records"
                    );
                }
            }
        }
    }

    /// A schema with text and a batch without: every cell `""`, the same
    /// bytes as the slow way; a reordered schema without text takes the
    /// fast path in its own order.
    #[test]
    fn schemas_without_text_rows_or_without_text_column() {
        let symbols = awkward_table();
        let numbers = rows([0, 1, 2, 9, 10, 3]);
        for schema in schemas_with_text() {
            let expected = reference_with(schema, &numbers, 11, &symbols, TimeType::Timespan);
            assert_eq!(encode_with(schema, &numbers, TimeType::Timespan), expected);
        }
        let reordered =
            Schema::from_names(["time", "sym", "seq", "value", "device", "quality"]).unwrap();
        let expected = reference_with(reordered, &numbers, 11, &symbols, TimeType::Timestamp);
        assert_eq!(
            encode_with(reordered, &numbers, TimeType::Timestamp),
            expected
        );
    }

    #[test]
    fn text_for_a_schema_without_text_is_an_error_naming_the_tag() {
        let symbols = awkward_table();
        for (samples, tag) in [
            (text_batch(), 0),
            (rows([4, 5]).into_iter().chain(text_batch()).collect(), 0),
            (text_batch()[1..].to_vec(), 1),
        ] {
            let mut out = Vec::new();
            let r = encode_upd(
                "plc",
                &samples,
                0,
                &symbols,
                TimeType::Timespan,
                MsgType::Async,
                &mut out,
            );
            assert!(
                matches!(r, Err(KdbError::NoTextColumn { tag: t }) if t == tag),
                "{r:?}"
            );
            let message = r.unwrap_err().to_string();
            assert!(message.contains("add \"text\""), "{message}");
        }
    }

    /// Records that do not hold together: an error naming the record and
    /// what is wrong with it, never a row, never a panic.
    #[test]
    fn broken_text_records_are_an_error_naming_the_record() {
        let samples = text_batch();
        // text_batch: [Str8 tag 0][Text tag 1: head + 2 ext][Text tag 2 ...]
        let head = 1;
        let truncated = samples[..head + 2].to_vec();
        let orphan = samples[head + 1..].to_vec();
        let mut foreign = samples.clone();
        foreign[head + 2] = Sample::text_ext(TagId(5), &[b'z'; 20]);
        let mut not_ext = samples.clone();
        not_ext[head + 1] = Sample::f64(0, TagId(1), 1.0);
        let mut long = samples.clone();
        long[head].value = 41 | 2 << 32;
        let cases = [
            (
                truncated,
                head,
                TextError::Truncated {
                    wanted: 2,
                    found: 1,
                },
            ),
            (orphan, 0, TextError::Orphan),
            (foreign, head, TextError::ExtensionMismatch { index: 2 }),
            (not_ext, head, TextError::ExtensionMismatch { index: 1 }),
            (
                long,
                head,
                TextError::Length {
                    bytes: 41,
                    room: 40,
                },
            ),
        ];
        for (batch, record, error) in cases {
            for schema in [Schema::WITH_TEXT, Schema::DEFAULT] {
                let format = UpdFormat {
                    table: "plc",
                    gateway: TEST_GATEWAY,
                    schema,
                    time_type: TimeType::Timespan,
                    msg_type: MsgType::Async,
                };
                let mut out = Vec::new();
                let r = encode_upd_with(&format, &batch, 0, &awkward_table(), &mut out);
                match r {
                    Err(KdbError::BadRecords {
                        record: r,
                        error: e,
                    }) => {
                        assert_eq!((r, e), (record, error), "{schema}");
                    }
                    // Without a text column the first text row may be named
                    // first (the Str8 at record 0).
                    Err(KdbError::NoTextColumn { .. }) if !schema.has_text() => {}
                    other => panic!("{schema} {error:?}: {other:?}"),
                }
            }
        }
    }

    proptest! {
        /// Any order of tags: stretches of consecutive ids of random length
        /// from random starts, with random qualities and kinds.
        #[test]
        fn any_tag_order_matches_the_reference(
            stretches in proptest::collection::vec((0u32..42, 1usize..20), 0..12),
            bytes in proptest::collection::vec(any::<(u8, u8, u64)>(), 240),
        ) {
            let symbols = awkward_table();
            let n = symbols.len() as u32;
            let tags = stretches
                .iter()
                .flat_map(|&(first, len)| (first..n).take(len));
            let mut samples = rows(tags);
            for (s, &(quality, kind, value)) in samples.iter_mut().zip(&bytes) {
                let quality = Quality::modbus_exception(quality);
                s.quality = [Quality::GOOD, quality][usize::from(quality.bits() % 3 == 0)].bits();
                // Every kind but text (which takes extension records).
                let kind = [ValueKind::F64, ValueKind::I64, ValueKind::U64, ValueKind::Bool]
                    [usize::from(kind % 4)];
                *s = Sample::new(s.ts_ns, s.tag_id(), s.quality(), kind, s.value);
                s.value = value;
            }
            for time_type in [TimeType::Timespan, TimeType::Timestamp] {
                encode_both(&samples, &symbols, time_type);
            }
        }

        /// Responses: stretches of random length (both sides of
        /// `STRETCH_MIN`) that share a time, a quality (good, or a bad one of
        /// any protocol) and a kind, with random values and tags, beside
        /// scattered rows.
        #[test]
        fn response_stretches_match_the_reference(
            stretches in proptest::collection::vec(
                (0u32..42, 1usize..(3 * STRETCH_MIN), 0usize..4, 0u8..6, any::<bool>()),
                0..12,
            ),
            values in proptest::collection::vec(any::<u64>(), 240),
        ) {
            let symbols = awkward_table();
            let n = symbols.len() as u32;
            let mut samples = Vec::new();
            for (k, &(first, len, kind, quality, same_time)) in stretches.iter().enumerate() {
                let kind = [ValueKind::F64, ValueKind::I64, ValueKind::U64, ValueKind::Bool][kind];
                let quality = [
                    Quality::GOOD,
                    Quality::TIMEOUT,
                    Quality::modbus_exception(2),
                    Quality::s7_item(0x0A),
                    Quality::opcua(0x0040_0000),
                    Quality::NO_CONNECTION,
                ][usize::from(quality)];
                for (i, tag) in (first..n).take(len).enumerate() {
                    let ts = 1_764_000_000_000_000_000 + k as i64 * 1_000_003
                        + if same_time { 0 } else { i as i64 };
                    let value = values[samples.len() % values.len()];
                    samples.push(Sample::new(ts, TagId(tag), quality, kind, value));
                }
            }
            for time_type in [TimeType::Timespan, TimeType::Timestamp] {
                encode_both(&samples, &symbols, time_type);
            }
        }

        /// Text samples of random lengths and capacities mixed in among
        /// numbers of random tags: the same bytes as the slow way, in a
        /// schema with text anywhere.
        #[test]
        fn text_mixed_in_matches_the_reference(
            items in proptest::collection::vec(
                (0u32..42, 0usize..4, proptest::collection::vec(1u8..=255, 0..300), 1usize..300),
                0..40,
            ),
            schema_index in 0usize..3,
            timestamp in any::<bool>(),
        ) {
            let mut samples = Vec::new();
            for (tag, shape, text, capacity) in items {
                if shape == 0 {
                    samples.extend(rows([tag]));
                    continue;
                }
                let quality = [Quality::GOOD, Quality::TIMEOUT, Quality::GOOD][shape - 1];
                let mut records = vec![Sample::default(); crate::sample::text_records(capacity)];
                write_text(&mut records, tag as i64 * 77, TagId(tag), quality, &text, capacity);
                samples.extend(records);
            }
            let schema = schemas_with_text()[schema_index];
            let time_type = if timestamp { TimeType::Timestamp } else { TimeType::Timespan };
            let expected = reference_with(schema, &samples, 11, &awkward_table(), time_type);
            prop_assert_eq!(encode_with(schema, &samples, time_type), expected);
        }
    }
}
