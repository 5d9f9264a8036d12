//! Replays every file of the Modbus fuzz corpora through the same entry
//! points the cargo-fuzz targets call, so CI exercises them without
//! libFuzzer. An empty or missing corpus fails: the replay must replay.

mod common;

use common::replay_corpus;

use std::path::Path;

use millrace::protocol::modbus::fuzz::{fuzz_framers, fuzz_session, SessionRun};

#[test]
fn modbus_session_corpus_replays_without_a_crash() {
    replay_corpus("modbus_session", |data| {
        fuzz_session(data);
    });
}

fn seed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/modbus_session")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The seeds must reach the decoder, or the fuzzer starts from nothing:
/// one cycle of the fuzz device is 27 tags (19, plus 8 in two runs that
/// overlap them).
#[test]
fn modbus_session_seeds_decode_whole_cycles() {
    let good = |errors| SessionRun {
        good_samples: 27,
        exception_samples: 0,
        errors,
    };
    assert_eq!(fuzz_session(&seed("tcp_cycle")), good(0));
    assert_eq!(fuzz_session(&seed("tcp_cycle_chunked")), good(0));
    assert_eq!(fuzz_session(&seed("tcp_out_of_order")), good(0));
    assert_eq!(fuzz_session(&seed("rtu_cycle")), good(0));
    assert_eq!(fuzz_session(&seed("rtu_cycle_chunked")), good(0));
    assert_eq!(fuzz_session(&seed("tcp_two_cycles")).good_samples, 54);
    let exceptions = fuzz_session(&seed("tcp_exceptions"));
    assert_eq!((exceptions.exception_samples, exceptions.errors), (27, 0));
    for bad in [
        "tcp_bad_protocol",
        "tcp_bad_length",
        "tcp_unknown_tid",
        "rtu_bad_crc",
    ] {
        assert_eq!(fuzz_session(&seed(bad)).errors, 1, "{bad}");
    }
}

#[test]
fn modbus_framers_corpus_replays_without_a_crash() {
    replay_corpus("modbus_framers", fuzz_framers);
}
