//! The columnar `.u.upd[`table; columns]` message, built straight from a
//! `[Sample]` slice into one caller-owned buffer: one pass to validate and
//! size, one `resize`, then each column written in place. No per-row
//! allocation; the buffer's capacity is reused from batch to batch.
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
use crate::sample::{Sample, TagId};

use super::encode::finish_header;
use super::error::KdbError;
use super::header::{MsgType, HEADER_SIZE};
use super::symbols::SymbolTable;
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
        TimeType::Timespan => ts_ns.rem_euclid(NS_PER_DAY),
        TimeType::Timestamp => ts_ns.saturating_sub(KDB_EPOCH_UNIX_NS),
    }
}

/// Encodes the whole message into `out` (cleared first).
pub fn encode_upd(
    table: &str,
    samples: &[Sample],
    first_seq: u64,
    symbols: &SymbolTable,
    time_type: TimeType,
    msg_type: MsgType,
    out: &mut Vec<u8>,
) -> Result<(), KdbError> {
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
    let mut symbol_bytes = 0usize;
    for s in samples {
        symbol_bytes += symbols
            .symbol_bytes(s.tag_id())
            .ok_or(KdbError::UnknownTag { tag: s.tag })?;
    }
    let prefix = HEADER_SIZE + 6 + (2 + UPD_FUNCTION.len()) + (2 + table.len()) + 6;
    let total = prefix + 6 * 6 + rows * (8 + 8 + 1 + 8) + symbol_bytes;
    if total > u32::MAX as usize {
        return Err(KdbError::MessageTooLarge {
            bytes: total as u64,
            max: u32::MAX as u64,
        });
    }
    out.clear();
    out.reserve(total);
    out.extend_from_slice(&[0; HEADER_SIZE]);
    list_header(out, 3);
    symbol_atom(out, UPD_FUNCTION.as_bytes());
    symbol_atom(out, table.as_bytes());
    list_header(out, 6);
    let time_ty = match time_type {
        TimeType::Timespan => ty::TIMESPAN,
        TimeType::Timestamp => ty::TIMESTAMP,
    };
    vector_header(out, time_ty, count);
    fixed_column(out, samples, |_, s| {
        kdb_time(s.ts_ns, time_type).to_le_bytes()
    });
    vector_header(out, ty::SYMBOL, count);
    symbol_column(out, samples, |t| symbols.name_z(t));
    vector_header(out, ty::SYMBOL, count);
    symbol_column(out, samples, |t| symbols.device_z(t));
    vector_header(out, ty::FLOAT, count);
    fixed_column(out, samples, |_, s| s.value_f64().to_le_bytes());
    vector_header(out, ty::BYTE, count);
    fixed_column(out, samples, |_, s| [s.quality]);
    vector_header(out, ty::LONG, count);
    fixed_column(out, samples, |i, _| {
        (first_seq as i64 + i as i64).to_le_bytes()
    });
    assert_eq!(out.len(), total, "sizing pass and writing pass disagree");
    finish_header(out, msg_type);
    Ok(())
}

fn list_header(out: &mut Vec<u8>, count: i32) {
    out.extend_from_slice(&[ty::LIST as u8, 0]);
    out.extend_from_slice(&count.to_le_bytes());
}

fn vector_header(out: &mut Vec<u8>, t: i8, count: i32) {
    out.extend_from_slice(&[t as u8, 0]);
    out.extend_from_slice(&count.to_le_bytes());
}

fn symbol_atom(out: &mut Vec<u8>, text: &[u8]) {
    out.push((-ty::SYMBOL) as u8);
    out.extend_from_slice(text);
    out.push(0);
}

/// Grows `out` by `N * rows` bytes and fills them row by row.
fn fixed_column<const N: usize>(
    out: &mut Vec<u8>,
    samples: &[Sample],
    value: impl Fn(usize, &Sample) -> [u8; N],
) {
    let start = out.len();
    out.resize(start + N * samples.len(), 0);
    if let Some(column) = out.get_mut(start..) {
        for (i, (cell, s)) in column.chunks_exact_mut(N).zip(samples).enumerate() {
            cell.copy_from_slice(&value(i, s));
        }
    }
}

/// Appends each row's NUL-terminated symbol (capacity was reserved).
fn symbol_column<'t>(
    out: &mut Vec<u8>,
    samples: &[Sample],
    symbol: impl Fn(TagId) -> Option<&'t [u8]>,
) {
    for s in samples {
        // Every tag was checked in the sizing pass.
        out.extend_from_slice(symbol(s.tag_id()).unwrap_or(b"\0"));
    }
}
