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

/// What a stand-in session over fuzz bytes got to, so the corpus replay can
/// check that its seeds reach every stage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerRun {
    pub logged_in: bool,
    pub messages: usize,
    pub updates: usize,
    pub update_errors: usize,
    pub records: usize,
    /// Messages the borrowed `.u.upd` view answered (checked against the
    /// decoded path by `upd_view::cross_check`).
    pub viewed: usize,
}

/// The tickerplant stand-in's server side without the socket: `data` is what
/// a client sends, read the way `tickerplant::serve` reads it. The hello is
/// parsed from its first bytes (`parse_client_hello`, refused if bytes follow
/// the NUL in the same read - here: if the hello is not whole), then the rest
/// is a stream of messages: header check, `decode_message`, `parse_update`,
/// the tick.q checks in `Tables::apply`, the records, and the sync answer
/// encoded as the stand-in would; each message also goes through the
/// borrowed view (`upd_view`), which must agree with the decoded path.
/// Stops at the first thing the stand-in would drop the connection for.
/// Panics only on a broken invariant.
pub fn fuzz_server_input(data: &[u8]) -> ServerRun {
    use super::handshake::{agree, parse_client_hello, CAPABILITY_MAX, HELLO_BYTES_MAX};
    use super::header::{Header, MsgType};
    use super::types::K;
    use super::upd::{for_each_record, parse_update, Tables};

    let mut run = ServerRun::default();
    let hello = match parse_client_hello(data) {
        Ok(Some(h)) => h,
        Ok(None) | Err(_) => return run,
    };
    assert!(hello.consumed <= HELLO_BYTES_MAX && hello.consumed <= data.len());
    assert!(hello.user.len() + hello.password.len() < hello.consumed);
    assert!(agree(hello.capability) <= CAPABILITY_MAX);
    run.logged_in = true;
    let mut tables = Tables::new(4);
    let mut reply = Vec::new();
    let mut rest = data.get(hello.consumed..).unwrap_or(&[]);
    while let Some(head) = rest.first_chunk::<HEADER_SIZE>() {
        let Ok(header) = Header::parse(head, FUZZ_LIMITS.message_bytes_max) else {
            break;
        };
        let total = header.total_len as usize;
        assert!(total > HEADER_SIZE && total <= FUZZ_LIMITS.message_bytes_max);
        let Some(message) = rest.get(..total) else {
            break; // truncated: the stand-in waits for bytes that never come
        };
        rest = rest.get(total..).unwrap_or(&[]);
        use super::upd_view::{cross_check, CrossCheck};
        match cross_check(message, &FUZZ_LIMITS) {
            CrossCheck::Update { .. } | CrossCheck::Rejected(_) => run.viewed += 1,
            CrossCheck::Other | CrossCheck::NotAMessage => {}
        }
        let Ok((_, k)) = decode_message(message, &FUZZ_LIMITS) else {
            break;
        };
        run.messages += 1;
        let answer = match parse_update(&k) {
            Ok(None) => Ok(()),
            Ok(Some(update)) => match tables.apply(&update) {
                Ok(state) => {
                    let mut rows = 0usize;
                    for_each_record(&update, state, |_, _, _| rows += 1);
                    assert!(rows <= update.rows, "more records than rows");
                    run.records += rows;
                    run.updates += 1;
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        assert!(tables.tables.len() <= tables.table_count_max);
        if answer.is_err() {
            run.update_errors += 1;
        }
        if header.msg_type == MsgType::Sync {
            let k = match answer {
                Ok(()) => K::null(),
                Err(e) => K::error(e.text()),
            };
            encode_message(&k, MsgType::Response, &mut reply);
            let (_, back) = decode_message(&reply, &FUZZ_LIMITS).expect("our answer decodes");
            assert_eq!(back, k, "the answer round-trips");
        }
    }
    run
}
