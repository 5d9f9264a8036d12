//! Replays every file of the S7 fuzz corpora through the entry points the
//! cargo-fuzz targets call, so CI exercises them without libFuzzer, and
//! checks that the seeds reach the decoder. An empty or missing corpus
//! fails. `MILLRACE_WRITE_S7_SEEDS=1` rewrites the seeds from `FakePlc`
//! (the in-memory PLC of src/protocol/s7/fuzz.rs).

mod common;

use common::{fuzz_corpus, replay_corpus};

use millrace::protocol::s7::fuzz::{
    fuzz_areas, fuzz_framers, fuzz_session, seed_stream, FakePlc, SessionRun,
};

/// The named seeds: (file, chunking seed byte, stream).
fn seeds() -> Vec<(&'static str, u8, Vec<u8>)> {
    let plc = FakePlc {
        amq: 2,
        ..FakePlc::new(240, fuzz_areas())
    };
    let cycles = seed_stream(&plc, 2);
    let small = seed_stream(
        &FakePlc {
            pdu: 64,
            ..plc.clone()
        },
        2,
    );
    let put_get = seed_stream(
        &FakePlc {
            header_error: Some((0x81, 0x04)),
            ..plc.clone()
        },
        1,
    );
    let mut no_db2 = plc.clone();
    no_db2
        .areas
        .retain(|(area, db, _)| !(*area == 0x84 && *db == 2));
    let missing = seed_stream(&no_db2, 1);
    let capped = seed_stream(
        &FakePlc {
            items_cap: Some(2),
            ..plc.clone()
        },
        2,
    );
    // A stream cut inside the first read answer's item data, lengths kept.
    let mut truncated = cycles.clone();
    let at = truncated.len() / 2;
    truncated.truncate(at);
    let mut bad_ref = cycles.clone();
    // The first answer after the handshake (CC 22 bytes, setup 27): its
    // PDU reference's high byte.
    bad_ref[22 + 27 + 11] ^= 0x80;
    vec![
        ("two_cycles", 0, cycles.clone()),
        ("two_cycles_chunked", 37, cycles),
        ("pdu_64_cut_between_tags", 5, small),
        ("put_get_off", 0, put_get),
        ("missing_db", 9, missing),
        ("items_capped", 0, capped),
        ("truncated", 3, truncated),
        ("unknown_pdu_ref", 0, bad_ref),
    ]
}

fn seed_file(seed: u8, stream: &[u8]) -> Vec<u8> {
    let mut data = vec![seed];
    data.extend_from_slice(stream);
    data
}

#[test]
fn s7_seeds_are_current_and_reach_the_decoder() {
    let write = std::env::var_os("MILLRACE_WRITE_S7_SEEDS").is_some();
    let mut framers = Vec::new();
    for (name, seed, stream) in seeds() {
        let data = seed_file(seed, &stream);
        let path = fuzz_corpus("s7_session").join(name);
        if write {
            std::fs::create_dir_all(fuzz_corpus("s7_session")).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            stored, data,
            "{name}: seed out of date (MILLRACE_WRITE_S7_SEEDS=1)"
        );
        framers.push((name, data));
    }
    if write {
        std::fs::create_dir_all(fuzz_corpus("s7_framers")).unwrap();
        for (name, data) in &framers {
            std::fs::write(fuzz_corpus("s7_framers").join(name), data).unwrap();
        }
    }
    let run = |name: &str| {
        let data = std::fs::read(fuzz_corpus("s7_session").join(name)).unwrap();
        fuzz_session(&data)
    };
    // 26 tags a cycle, two cycles, nothing bad.
    let good = SessionRun {
        ready: 1,
        good_samples: 52,
        device_samples: 0,
        errors: 0,
        cycles: 1,
    };
    assert_eq!(run("two_cycles"), good);
    assert_eq!(run("two_cycles_chunked"), good);
    assert_eq!(run("pdu_64_cut_between_tags"), good);
    let put_get = run("put_get_off");
    assert_eq!((put_get.device_samples, put_get.errors), (26, 0));
    let missing = run("missing_db");
    assert_eq!(
        (missing.good_samples, missing.device_samples, missing.errors),
        (25, 1, 0)
    );
    let capped = run("items_capped");
    assert_eq!(capped.errors, 0);
    assert!(capped.good_samples > 26, "{capped:?}");
    assert_eq!(run("truncated").errors, 0, "a cut stream waits for more");
    // The unknown reference drops the connection; the second cycle's answer
    // then arrives during the new handshake: a second error.
    assert_eq!(run("unknown_pdu_ref").errors, 2);
}

#[test]
fn s7_session_corpus_replays_without_a_crash() {
    replay_corpus("s7_session", |data| {
        fuzz_session(data);
    });
}

#[test]
fn s7_framers_corpus_replays_without_a_crash() {
    replay_corpus("s7_framers", fuzz_framers);
}
