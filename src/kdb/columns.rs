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
//!        | 00 00 06000000                      (list of 6 columns)
//!        | 10|0c 00 n  i64*n   time            (timespan | timestamp)
//!        | 0b 00 n  "name\0"*n    sym
//!        | 0b 00 n  "device\0"*n  device
//!        | 09 00 n  f64*n         value       (Sample::value_f64, NaN = 0n)
//!        | 06 00 n  i32*n         quality     (int: the Quality bits as is)
//!        | 07 00 n  i64*n         seq         (first_seq + index)
//! ```
//!
//! `quality` is an int column (`i`): the 32 bits of `sample::Quality`, which
//! keep every protocol's status code whole (an OPC UA StatusCode, a CIP
//! general and extended status, an S7 item return code); bad codes are
//! negative.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use crate::config::TimeType;
use crate::sample::{Quality, Sample, ValueKind};

use super::encode::finish_header;
use super::error::KdbError;
use super::header::{MsgType, HEADER_SIZE};
use super::symbols::{Span, SymbolTable, SYMBOL_WINDOW_BYTES};
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
/// Passes over the samples: one to check every tag and size the two symbol
/// columns, one that writes the fixed-width columns (zipped exact chunks, so
/// the loop has no per-cell bounds checks), one that writes the symbol
/// columns. The symbol passes go run by run: a run of consecutive tag ids is
/// a contiguous slice of each `SymbolTable` arena, so it costs two table
/// lookups and two copies however long it is, and no per-row table load at
/// all (a run of one is a scattered tag). The buffer keeps its length from
/// batch to batch and is not zero-filled first: every byte below the new
/// length is written.
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
    let total = prefix + 6 * 6 + rows * (8 + 8 + 4 + 8) + name_bytes + device_bytes;
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
        quality: w.column(ty::INT, count, rows * 4),
        seq: w.column(ty::LONG, count, rows * 8),
    };
    assert!(w.0.is_empty(), "sizing pass and layout disagree");
    let written = write_symbols(samples, symbols, columns.sym, columns.device);
    assert!(written, "sizing pass and writing pass disagree");
    match time_type {
        TimeType::Timespan => write_fixed(samples, first_seq, columns, timespan),
        TimeType::Timestamp => write_fixed(samples, first_seq, columns, timestamp),
    }
    finish_header(msg, msg_type);
    Ok(total)
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

/// Checks every tag; returns the bytes of the sym and device columns.
fn symbol_column_bytes(
    samples: &[Sample],
    symbols: &SymbolTable,
) -> Result<(usize, usize), KdbError> {
    let (mut names, mut devices) = (0usize, 0usize);
    for run in runs(samples) {
        let Some(span) = run_span(run, symbols) else {
            // The run's ids are first, first + 1, ...: its first unknown tag
            // is `first` itself, or the first id past the table.
            let first = run.first().map_or(0, |s| s.tag_id().0);
            let tag = u32::try_from(symbols.len()).map_or(first, |len| first.max(len));
            return Err(KdbError::UnknownTag { tag });
        };
        names += span.name_bytes();
        devices += span.device_bytes();
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

/// Writes the time, value, quality and seq cells of every row.
#[inline(always)]
fn write_fixed(samples: &[Sample], first_seq: u64, c: Columns<'_>, time: impl Fn(i64) -> i64) {
    let fixed = samples
        .iter()
        .zip(c.time.chunks_exact_mut(8))
        .zip(c.value.chunks_exact_mut(8))
        .zip(c.quality.chunks_exact_mut(4))
        .zip(c.seq.chunks_exact_mut(8));
    // first_seq + rows <= i64::MAX was checked by the caller.
    // One response's rows share their timestamp: convert it once per run.
    let mut ts_last = samples.first().map_or(0, |s| s.ts_ns);
    let mut t_last = time(ts_last);
    for (seq, ((((s, t), v), q), n)) in (first_seq as i64..).zip(fixed) {
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

/// The float column's bits: the stored bits as they are for a good f64
/// sample (the common case, one predictable branch), else `value_f64`.
#[inline(always)]
fn value_bits(s: &Sample) -> u64 {
    if s.quality == Quality::GOOD.bits() && s.kind_byte() == ValueKind::F64 as u8 {
        s.value
    } else {
        s.value_f64().to_bits()
    }
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

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::kdb::encode::encode_message;
    use crate::kdb::types::{Data, Symbols, K};
    use crate::sample::TagId;
    use proptest::prelude::*;

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
                    ty::INT,
                    Data::Ints(samples.iter().map(|s| s.quality as i32).collect()),
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
    }
}
