//! kdb+ IPC compression (the algorithm of `c.java`/`k.h` clients: an LZ77
//! variant with a 256-slot table keyed by the XOR of two adjacent bytes).
//!
//! Stream layout after the 8-byte header: the uncompressed total length
//! (4 bytes, header included), then groups of one control byte and eight
//! operations, least significant bit first: a clear bit copies one literal
//! byte; a set bit reads `slot, extra` and copies `2 + extra` bytes from the
//! position the table holds for `slot`. Both sides update the table the same
//! way, so it is never sent.
//!
//! Decompression is hostile-input code: the declared size is checked against
//! the configured maximum and against what the input could possibly expand
//! to before anything is allocated; every read of the stream and every copy
//! is bounds-checked; a bad stream is an error, never a panic.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use super::error::DecodeError;
use super::header::{Header, HEADER_SIZE};

/// kdb+ compresses only messages larger than this (and only to remote peers).
pub const COMPRESS_THRESHOLD_BYTES: usize = 2000;

/// One control byte and eight two-byte copies of at most 257 bytes each: no
/// stream can expand by more than 8 * 257 / 17 < 121 times. A declared size
/// beyond that is a lie (a decompression bomb) and is refused up front.
const EXPANSION_RATIO_MAX: usize = 121;

/// Decompresses a whole compressed message (header included) into a new
/// uncompressed message (header included, compressed flag cleared).
pub fn decompress(msg: &[u8], message_bytes_max: usize) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    decompress_into(msg, message_bytes_max, &mut out)?;
    Ok(out)
}

/// As `decompress`, into a caller-owned buffer (cleared first).
pub fn decompress_into(
    msg: &[u8],
    message_bytes_max: usize,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let header_bytes: &[u8; HEADER_SIZE] = msg
        .get(..HEADER_SIZE)
        .and_then(|h| h.try_into().ok())
        .ok_or(DecodeError::Truncated { what: "header" })?;
    let header = Header::parse(header_bytes, usize::MAX)?;
    if !header.compressed {
        return Err(DecodeError::BadHeader {
            what: "not compressed",
        });
    }
    let size_bytes: [u8; 4] = msg
        .get(HEADER_SIZE..HEADER_SIZE + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::Truncated {
            what: "uncompressed length",
        })?;
    let size = if header.little_endian {
        u32::from_le_bytes(size_bytes)
    } else {
        u32::from_be_bytes(size_bytes)
    } as usize;
    let stream = msg.get(HEADER_SIZE + 4..).unwrap_or(&[]);
    if size <= HEADER_SIZE {
        return Err(DecodeError::BadCompression {
            what: "uncompressed length",
        });
    }
    if size > message_bytes_max {
        return Err(DecodeError::TooLarge {
            what: "uncompressed message",
            declared: size as u64,
            max: message_bytes_max as u64,
        });
    }
    let possible = stream
        .len()
        .saturating_mul(EXPANSION_RATIO_MAX)
        .saturating_add(HEADER_SIZE);
    if size > possible {
        return Err(DecodeError::BadCompression {
            what: "declared size beyond any expansion",
        });
    }
    out.clear();
    out.resize(size, 0);
    let plain = Header {
        compressed: false,
        total_len: size as u32,
        ..header
    };
    // The header goes in after the expansion: like c.java, a (never valid)
    // copy from an unset slot reads zeros, not the header.
    expand(stream, out)?;
    if let Some(h) = out.get_mut(..HEADER_SIZE) {
        h.copy_from_slice(&plain.to_bytes());
    }
    Ok(())
}

/// Runs the stream into `out[HEADER_SIZE..]`; `out` has its final length.
fn expand(stream: &[u8], out: &mut [u8]) -> Result<(), DecodeError> {
    let truncated = DecodeError::BadCompression {
        what: "stream ends early",
    };
    let mut table = [0usize; 256];
    let mut input = stream.iter().copied();
    let (mut s, mut p) = (HEADER_SIZE, HEADER_SIZE);
    let (mut flags, mut bit) = (0u8, 0u32);
    while s < out.len() {
        if bit == 0 {
            flags = input.next().ok_or(truncated)?;
            bit = 1;
        }
        let is_copy = u32::from(flags) & bit != 0;
        let mut extra = 0usize;
        if is_copy {
            let slot = input.next().ok_or(truncated)?;
            extra = input.next().ok_or(truncated)? as usize;
            let from = table.get(slot as usize).copied().unwrap_or(0);
            copy_back(out, from, s, 2 + extra)?;
            s += 2;
        } else {
            let byte = input.next().ok_or(truncated)?;
            *out.get_mut(s).ok_or(truncated)? = byte;
            s += 1;
        }
        while p + 1 < s {
            let (a, b) = match (out.get(p), out.get(p + 1)) {
                (Some(a), Some(b)) => (*a, *b),
                _ => return Err(truncated),
            };
            if let Some(entry) = table.get_mut((a ^ b) as usize) {
                *entry = p;
            }
            p += 1;
        }
        if is_copy {
            s += extra;
            p = s;
        }
        bit <<= 1;
        if bit == 256 {
            bit = 0;
        }
    }
    Ok(())
}

/// `out[to..to+len] = out[from..from+len]`, byte by byte semantics (the
/// ranges may overlap: a copy may repeat what it is writing).
fn copy_back(out: &mut [u8], from: usize, to: usize, len: usize) -> Result<(), DecodeError> {
    if to + len > out.len() {
        return Err(DecodeError::BadCompression {
            what: "copy past the declared size",
        });
    }
    if from >= to {
        return Err(DecodeError::BadCompression {
            what: "copy from the future",
        });
    }
    if from + len <= to {
        // Disjoint: one memmove. Bounds checked just above.
        out.copy_within(from..from + len, to);
        return Ok(());
    }
    for k in 0..len {
        let byte = out.get(from + k).copied().unwrap_or(0);
        if let Some(dst) = out.get_mut(to + k) {
            *dst = byte;
        }
    }
    Ok(())
}

/// Compresses a whole little-endian message (header included) into `out`
/// (cleared first). Returns false, leaving `out` unspecified, when the result
/// would be more than half the size (kdb+ then sends the message as is).
pub fn compress(msg: &[u8], out: &mut Vec<u8>) -> bool {
    let t = msg.len();
    let e = t / 2;
    out.clear();
    let Some(head) = msg.get(..4) else {
        return false;
    };
    if e < 17 {
        return false;
    }
    out.extend_from_slice(head);
    if let Some(flag) = out.get_mut(2) {
        *flag = 1;
    }
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(t as u32).to_le_bytes());
    if !compress_stream(msg, e, out) {
        return false;
    }
    let d = out.len() as u32;
    if let Some(len) = out.get_mut(4..8) {
        len.copy_from_slice(&d.to_le_bytes());
    }
    true
}

/// The c.java loop, written with checked accesses (the input is our own, but
/// the file denies indexing). `out` holds the 12 header bytes on entry.
fn compress_stream(y: &[u8], e: usize, out: &mut Vec<u8>) -> bool {
    let t = y.len();
    let at = |i: usize| y.get(i).copied().unwrap_or(0);
    let mut table = [0usize; 256];
    let (mut i, mut f) = (0u8, 0u8);
    let (mut h0, mut h, mut s0) = (0usize, 0usize, 0usize);
    let mut c = out.len();
    let mut s = HEADER_SIZE;
    while s < t {
        if i == 0 {
            if out.len() > e - 17 {
                return false;
            }
            i = 1;
            if let Some(flags) = out.get_mut(c) {
                *flags = f;
            }
            c = out.len();
            out.push(0);
            f = 0;
        }
        let mut literal = s > t - 3;
        let mut p = 0usize;
        if !literal {
            h = (at(s) ^ at(s + 1)) as usize;
            p = table.get(h).copied().unwrap_or(0);
            literal = p == 0 || at(s) != at(p);
        }
        if s0 > 0 {
            if let Some(slot) = table.get_mut(h0) {
                *slot = s0;
            }
            s0 = 0;
        }
        if literal {
            h0 = h;
            s0 = s;
            out.push(at(s));
            s += 1;
        } else {
            if let Some(slot) = table.get_mut(h) {
                *slot = s;
            }
            f |= i;
            p += 2;
            s += 2;
            let r = s;
            let q = (s + 255).min(t);
            while s < q && at(p) == at(s) {
                s += 1;
                p += 1;
            }
            out.push(h as u8);
            out.push((s - r) as u8);
        }
        i = i.wrapping_mul(2);
    }
    if let Some(flags) = out.get_mut(c) {
        *flags = f;
    }
    true
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures
mod tests {
    use super::*;

    fn message(body_len: usize, pattern: impl FnMut(usize) -> u8) -> Vec<u8> {
        let total = HEADER_SIZE + body_len;
        let mut m = vec![1, 0, 0, 0];
        m.extend_from_slice(&(total as u32).to_le_bytes());
        m.extend((0..body_len).map(pattern));
        m
    }

    #[test]
    fn round_trip_compressible() {
        for len in [100, 2001, 5000, 70_000] {
            let m = message(len, |i| b"millrace kdb+ ipc"[i % 17] ^ (i / 4096) as u8);
            let mut c = Vec::new();
            assert!(compress(&m, &mut c), "len {len}");
            assert!(c.len() <= m.len() / 2);
            assert_eq!(c.get(2), Some(&1));
            assert_eq!(decompress(&c, 1 << 20).unwrap(), m, "len {len}");
        }
    }

    #[test]
    fn incompressible_is_refused() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let m = message(4000, |_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        });
        let mut c = Vec::new();
        assert!(!compress(&m, &mut c));
    }

    #[test]
    fn bombs_and_garbage_are_errors() {
        // Declares 1 GiB from a few bytes.
        let mut bomb = vec![1, 0, 1, 0, 20, 0, 0, 0];
        bomb.extend_from_slice(&(1u32 << 30).to_le_bytes());
        bomb.extend_from_slice(&[0xff; 8]);
        assert!(decompress(&bomb, usize::MAX).is_err());
        assert!(matches!(
            decompress(&bomb, 1 << 20),
            Err(DecodeError::TooLarge { .. })
        ));
        // A copy whose run goes past the declared size.
        let mut past = vec![1, 0, 1, 0, 16, 0, 0, 0];
        past.extend_from_slice(&12u32.to_le_bytes());
        past.extend_from_slice(&[0x01, 0x00, 0xff, 0, 0]);
        assert!(decompress(&past, 1 << 20).is_err());
        // Ends early.
        let mut short = vec![1, 0, 1, 0, 13, 0, 0, 0];
        short.extend_from_slice(&100u32.to_le_bytes());
        short.push(0);
        assert!(decompress(&short, 1 << 20).is_err());
    }
}
