//! The columnar `.u.upd[`table; columns]` message, built straight from a
//! `[Sample]` slice into one caller-owned buffer: one pass to validate and
//! size, one `resize` (only growth is zero-filled), then one pass that writes
//! all six columns in place. No per-row allocation; the buffer's capacity is
//! reused from batch to batch.
//!
//! ```text
//! header | 00 00 03000000                      (list of 3)
//!        | f5 ".u.upd\0"  f5 "TABLE\0"
//!        | 00 00 06000000                      (list of 6 columns)
//!        | 10|0c 00 n  i64*n   time            (timespan | timestamp)
//!        | 0b 00 n  "name\0"*n    sym
//!        | 0b 00 n  "device\0"*n  device
//!        | 09 00 n  f64*n         value       (Sample::value_f64, NaN = 0n)
//!        | 04 00 n  u8*n          quality     (byte: the Quality byte as is)
//!        | 07 00 n  i64*n         seq         (first_seq + index)
//! ```
//!
//! `quality` is a byte column (`x`), not a short: the WAL's quality is one
//! byte and kdb+ bytes are unsigned, so every value survives unchanged.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::TimeType;
use crate::sample::{Quality, Sample, ValueKind};

use super::encode::finish_header;
use super::error::KdbError;
use super::header::{MsgType, HEADER_SIZE};
use super::symbols::{SymbolTable, SYMBOL_WINDOW_BYTES};
use super::types::ty;

/// The function the publisher calls.
pub const UPD_FUNCTION: &str = ".u.upd";
/// Column names, in the order the message carries them.
pub const COLUMN_NAMES: [&str; 6] = ["time", "sym", "device", "value", "quality", "seq"];

pub const NS_PER_DAY: i64 = 86_400_000_000_000;
/// UNIX time of 2000.01.01D00:00, kdb+'s epoch, in ns (10957 days).
pub const KDB_EPOCH_UNIX_NS: i64 = 10_957 * NS_PER_DAY;

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

/// Encodes the whole message into `out` (whatever it held is replaced).
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

/// Encodes the whole message into `out[..len]` and returns `len`. `out` is
/// never shortened (bytes past `len` are left over from earlier messages),
/// so a reused buffer is zero-filled only where it grows past its longest
/// message so far: per batch that fill was 2% of millrace's CPU.
///
/// Two passes over the samples: one to check every tag and size the two
/// symbol columns, then one that writes every column at once into the
/// pre-sized buffer (fixed-width columns through zipped exact chunks, so the
/// loop has no per-cell bounds checks; symbols as fixed-size window copies
/// from the `SymbolTable`). The buffer keeps its length from batch to batch
/// and is not zero-filled first: every byte below the new length is written.
pub fn encode_upd_into(
    table: &str,
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    time_type: TimeType,
    msg_type: MsgType,
    out: &mut Vec<u8>,
) -> Result<usize, KdbError> {
    if table.is_empty() || table.contains('\0') {
        return Err(KdbError::BadName { what: "table" });
    }
    let rows = samples.len();
    let count = i32::try_from(rows).map_err(|_| KdbError::MessageTooLarge {
        bytes: rows as u64,
        max: i32::MAX as u64,
    })?;
    let last_seq = first_seq
        .checked_add(rows as u64)
        .filter(|&s| s <= i64::MAX as u64);
    if last_seq.is_none() {
        return Err(KdbError::MessageTooLarge {
            bytes: first_seq,
            max: i64::MAX as u64,
        });
    }
    let (name_bytes, device_bytes) = symbol_column_bytes(samples, symbols)?;
    let prefix = HEADER_SIZE + 6 + (2 + UPD_FUNCTION.len()) + (2 + table.len()) + 6;
    let total = prefix + 6 * 6 + rows * (8 + 8 + 1 + 8) + name_bytes + device_bytes;
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
    let time_ty = match time_type {
        TimeType::Timespan => ty::TIMESPAN,
        TimeType::Timestamp => ty::TIMESTAMP,
    };
    let msg = out.get_mut(..total).expect("the buffer was sized above");
    let mut w = Cursor(&mut *msg);
    w.take(HEADER_SIZE).fill(0);
    w.put(&list_header(3));
    w.put(&[(-ty::SYMBOL) as u8]);
    w.put(UPD_FUNCTION.as_bytes());
    w.put(&[0, (-ty::SYMBOL) as u8]);
    w.put(table.as_bytes());
    w.put(&[0]);
    w.put(&list_header(6));
    let columns = Columns {
        time: w.column(time_ty, count, rows * 8),
        sym: w.column(ty::SYMBOL, count, name_bytes),
        device: w.column(ty::SYMBOL, count, device_bytes),
        value: w.column(ty::FLOAT, count, rows * 8),
        quality: w.column(ty::BYTE, count, rows),
        seq: w.column(ty::LONG, count, rows * 8),
    };
    assert!(w.0.is_empty(), "sizing pass and layout disagree");
    let written = match time_type {
        TimeType::Timespan => write_rows(samples, first_seq, symbols, columns, timespan),
        TimeType::Timestamp => write_rows(samples, first_seq, symbols, columns, timestamp),
    };
    assert!(written, "sizing pass and writing pass disagree");
    finish_header(msg, msg_type);
    Ok(total)
}

/// Checks every tag; returns the bytes of the sym and device columns.
fn symbol_column_bytes(
    samples: &[Sample],
    symbols: &SymbolTable,
) -> Result<(usize, usize), KdbError> {
    let (mut names, mut devices) = (0usize, 0usize);
    for s in samples {
        let e = symbols
            .entry(s.tag_id())
            .ok_or(KdbError::UnknownTag { tag: s.tag })?;
        names += e.name_len_z as usize;
        devices += e.device_len_z as usize;
    }
    Ok((names, devices))
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

/// The data bytes of the six columns, each exactly its size.
struct Columns<'a> {
    time: &'a mut [u8],
    sym: &'a mut [u8],
    device: &'a mut [u8],
    value: &'a mut [u8],
    quality: &'a mut [u8],
    seq: &'a mut [u8],
}

/// Writes every row; false if the symbol columns did not come out exactly
/// the size the sizing pass gave (a broken invariant, not bad input).
#[inline(always)]
fn write_rows(
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    c: Columns<'_>,
    time: impl Fn(i64) -> i64,
) -> bool {
    let fixed = samples
        .iter()
        .zip(c.time.chunks_exact_mut(8))
        .zip(c.value.chunks_exact_mut(8))
        .zip(c.quality.iter_mut())
        .zip(c.seq.chunks_exact_mut(8));
    let (mut at_sym, mut at_device) = (0usize, 0usize);
    // first_seq + rows <= i64::MAX was checked by the caller.
    for (seq, ((((s, t), v), q), n)) in (first_seq as i64..).zip(fixed) {
        t.copy_from_slice(&time(s.ts_ns).to_le_bytes());
        v.copy_from_slice(&value_bits(s).to_le_bytes());
        *q = s.quality;
        n.copy_from_slice(&seq.to_le_bytes());
        // Every tag was checked by the sizing pass.
        let e = symbols.entry(s.tag_id()).unwrap_or_default();
        let name = (e.start as usize, e.name_len_z as usize);
        at_sym += put_symbol(c.sym, at_sym, symbols, name);
        let device = (e.device_start(), e.device_len_z as usize);
        at_device += put_symbol(c.device, at_device, symbols, device);
    }
    at_sym == c.sym.len() && at_device == c.device.len()
}

/// The float column's bits: the stored bits as they are for a good f64
/// sample (the common case, one predictable branch), else `value_f64`.
#[inline(always)]
fn value_bits(s: &Sample) -> u64 {
    if s.quality == Quality::GOOD && s.kind == ValueKind::F64 as u8 {
        s.value
    } else {
        s.value_f64().to_bits()
    }
}

/// Copies the symbol at `(start, len)` of the arena to `column[at..]`;
/// returns `len`. A short symbol goes as a whole window (the bytes past
/// `len` are overwritten by the next row); near the column's end, or for a
/// long symbol, an exact copy.
#[inline(always)]
fn put_symbol(
    column: &mut [u8],
    at: usize,
    symbols: &SymbolTable,
    (start, len): (usize, usize),
) -> usize {
    if len <= SYMBOL_WINDOW_BYTES {
        let dst = column
            .get_mut(at..at + SYMBOL_WINDOW_BYTES)
            .and_then(|d| <&mut [u8; SYMBOL_WINDOW_BYTES]>::try_from(d).ok());
        let src = symbols
            .bytes(start, SYMBOL_WINDOW_BYTES)
            .and_then(|s| <&[u8; SYMBOL_WINDOW_BYTES]>::try_from(s).ok());
        if let (Some(dst), Some(src)) = (dst, src) {
            *dst = *src;
            return len;
        }
    }
    if let (Some(dst), Some(src)) = (column.get_mut(at..at + len), symbols.bytes(start, len)) {
        dst.copy_from_slice(src);
    }
    len
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::kdb::encode::encode_message;
    use crate::kdb::types::{Data, Symbols, K};
    use crate::sample::TagId;

    /// The same message built the slow way, through `K`.
    fn reference(
        samples: &[Sample],
        first_seq: u64,
        symbols: &SymbolTable,
        time_type: TimeType,
    ) -> Vec<u8> {
        let time_ty = match time_type {
            TimeType::Timespan => ty::TIMESPAN,
            TimeType::Timestamp => ty::TIMESTAMP,
        };
        let syms = |f: fn(&SymbolTable, TagId) -> Option<&str>| {
            let names: Symbols = samples
                .iter()
                .map(|s| f(symbols, s.tag_id()).unwrap())
                .collect();
            K::vector(ty::SYMBOL, Data::Symbols(names))
        };
        let k = K::list(vec![
            K::symbol(UPD_FUNCTION),
            K::symbol("plc"),
            K::list(vec![
                K::vector(
                    time_ty,
                    Data::Longs(
                        samples
                            .iter()
                            .map(|s| kdb_time(s.ts_ns, time_type))
                            .collect(),
                    ),
                ),
                syms(SymbolTable::tag_name),
                syms(SymbolTable::device_name),
                K::vector(
                    ty::FLOAT,
                    Data::Floats(samples.iter().map(Sample::value_f64).collect()),
                ),
                K::vector(
                    ty::BYTE,
                    Data::Bytes(samples.iter().map(|s| s.quality).collect()),
                ),
                K::vector(
                    ty::LONG,
                    Data::Longs(
                        (0..samples.len() as i64)
                            .map(|i| first_seq as i64 + i)
                            .collect(),
                    ),
                ),
            ]),
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
        let kinds = [
            ValueKind::F64,
            ValueKind::I64,
            ValueKind::Bool,
            ValueKind::Str8,
        ];
        let samples: Vec<Sample> = (0..61u32)
            .map(|i| {
                let ts = (i as i64 - 30) * 3_600_000_000_007 + i64::from(i % 3) * NS_PER_DAY;
                let quality = if i % 7 == 3 {
                    Quality::Timeout
                } else {
                    Quality::Good
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
}
