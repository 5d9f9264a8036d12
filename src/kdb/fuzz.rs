//! Entry points shared by the cargo-fuzz targets (fuzz/fuzz_targets/kdb_*)
//! and the corpus replay tests, so both exercise exactly the same code.
//! Each one panics only when an invariant is broken (that is the finding).

use super::compress::{compress, decompress};
use super::decode::{decode_body, decode_message, DecodeLimits};
use super::encode::{encode_body, encode_message};
use super::header::HEADER_SIZE;

const FUZZ_LIMITS: DecodeLimits = DecodeLimits {
    message_bytes_max: 1 << 20,
    depth_max: 64,
    object_count_max: 1 << 16,
};

/// Decodes `data` as a whole message and as a bare body in both byte
/// orders. Whatever decodes must re-encode to bytes that decode again to
/// the same bytes, and a little-endian uncompressed input must come back
/// byte for byte (decoding is exact, so encoding is its inverse).
pub fn fuzz_decode(data: &[u8]) {
    if let Ok((header, k)) = decode_message(data, &FUZZ_LIMITS) {
        let mut out = Vec::new();
        encode_message(&k, header.msg_type, &mut out);
        if header.little_endian && !header.compressed {
            assert_eq!(out, data, "re-encoding a decoded message changed it");
        }
        let (_, again) = decode_message(&out, &FUZZ_LIMITS).expect("re-encoded message decodes");
        let mut out2 = Vec::new();
        encode_message(&again, header.msg_type, &mut out2);
        assert_eq!(out, out2);
    }
    for little_endian in [true, false] {
        if let Ok(k) = decode_body(data, little_endian, &FUZZ_LIMITS) {
            let mut out = Vec::new();
            encode_body(&k, &mut out);
            if little_endian {
                assert_eq!(out, data, "re-encoding a decoded body changed it");
            } else {
                assert_eq!(out.len(), data.len(), "byte order changed the size");
            }
        }
    }
}

/// Decompresses `data` as a compressed message (must not panic, must stay
/// within the limit), then compresses `data` as a message body and checks
/// the round trip.
pub fn fuzz_decompress(data: &[u8]) {
    if let Ok(plain) = decompress(data, FUZZ_LIMITS.message_bytes_max) {
        assert!(plain.len() <= FUZZ_LIMITS.message_bytes_max);
        assert!(plain.len() > HEADER_SIZE);
    }
    let mut msg = Vec::with_capacity(HEADER_SIZE + data.len());
    msg.extend_from_slice(&[1, 0, 0, 0]);
    msg.extend_from_slice(&((HEADER_SIZE + data.len()) as u32).to_le_bytes());
    msg.extend_from_slice(data);
    let mut packed = Vec::new();
    if compress(&msg, &mut packed) {
        assert!(packed.len() <= msg.len() / 2);
        let back = decompress(&packed, usize::MAX).expect("our own compression decompresses");
        assert_eq!(back, msg, "compression round trip");
    }
}
