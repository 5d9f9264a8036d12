//! Replays every file of the EtherNet/IP fuzz corpora through the entry
//! points the cargo-fuzz targets call, so CI exercises them without
//! libFuzzer, and checks that the seeds reach the decoder. An empty or
//! missing corpus fails. `MILLRACE_WRITE_ENIP_SEEDS=1` rewrites the seeds
//! from `Responder` (the in-memory controller of src/protocol/enip/fuzz.rs).

mod common;

use common::{fuzz_corpus, replay_corpus};

use millrace::protocol::enip::fuzz::{
    discover_transcript, fuzz_device, fuzz_discover, fuzz_framer, fuzz_responder, fuzz_session,
    transcript, DiscoverRun, SessionRun,
};

/// The named seeds: (file, chunking seed byte, stream).
fn seeds() -> Vec<(&'static str, u8, Vec<u8>)> {
    let cycles = transcript(fuzz_responder(), 2);
    let mut missing = fuzz_responder();
    missing.tags.remove("Program:Main.Temps");
    let missing_quirk = {
        let mut r = missing.clone();
        r.msp_always_success = true;
        transcript(r, 1)
    };
    let missing = transcript(missing, 1);
    let mut cut = fuzz_responder();
    cut.reply_data_max = 93;
    let cut = transcript(cut, 1);
    // A stream cut in its last message, lengths kept.
    let mut truncated = cycles.clone();
    truncated.truncate(truncated.len() - 7);
    // The RegisterSession reply's session handle (bytes 4..8) changed: every
    // message after it names another session.
    let mut other_session = cycles.clone();
    other_session[4] ^= 0x55;
    // The first encapsulation length made huge.
    let mut long = cycles.clone();
    long[2] = 0xFF;
    long[3] = 0xFF;
    vec![
        ("two_cycles", 0, cycles.clone()),
        ("two_cycles_chunked", 37, cycles.clone()),
        // The fast clock: requests time out while the answers trickle in.
        ("two_cycles_timeouts", 0x80 | 37, cycles),
        ("missing_tag", 5, missing),
        ("missing_tag_msp_status_0", 0, missing_quirk),
        ("cut_replies_fragments", 9, cut),
        ("truncated", 3, truncated),
        ("other_session", 0, other_session),
        ("length_past_cap", 0, long),
    ]
}

fn seed_file(seed: u8, stream: &[u8]) -> Vec<u8> {
    let mut data = vec![seed];
    data.extend_from_slice(stream);
    data
}

#[test]
fn enip_seeds_are_current_and_reach_the_decoder() {
    let write = std::env::var_os("MILLRACE_WRITE_ENIP_SEEDS").is_some();
    for (name, seed, stream) in seeds() {
        let data = seed_file(seed, &stream);
        for target in ["enip_session", "enip_framer"] {
            let path = fuzz_corpus(target).join(name);
            if write {
                std::fs::create_dir_all(fuzz_corpus(target)).unwrap();
                std::fs::write(&path, &data).unwrap();
            }
            let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                stored, data,
                "{target}/{name}: seed out of date (MILLRACE_WRITE_ENIP_SEEDS=1)"
            );
        }
    }
    let run = |name: &str| {
        let data = std::fs::read(fuzz_corpus("enip_session").join(name)).unwrap();
        fuzz_session(&data)
    };
    let per_cycle = fuzz_device().tag_count();
    let good = SessionRun {
        good_samples: 2 * per_cycle,
        bad_samples: 0,
        errors: 0,
        cycles: 2,
    };
    assert_eq!(run("two_cycles"), good);
    assert_eq!(run("two_cycles_chunked"), good);
    // Five REALs of the missing tag bad, the rest good, the connection kept.
    for name in ["missing_tag", "missing_tag_msp_status_0"] {
        let missing = run(name);
        assert_eq!(
            (missing.good_samples, missing.bad_samples, missing.errors),
            (per_cycle - 5, 5, 0),
            "{name}"
        );
    }
    let cut = run("cut_replies_fragments");
    assert_eq!((cut.good_samples, cut.errors), (per_cycle, 0));
    assert_eq!(run("truncated").errors, 0, "a cut stream waits for more");
    assert!(run("other_session").errors >= 1);
    assert!(run("length_past_cap").errors >= 1);
    let slow = run("two_cycles_timeouts");
    assert!(slow.bad_samples > 0 && slow.errors > 0, "{slow:?}");
}

#[test]
fn enip_session_corpus_replays_without_a_crash() {
    replay_corpus("enip_session", |data| {
        fuzz_session(data);
    });
}

#[test]
fn enip_framer_corpus_replays_without_a_crash() {
    replay_corpus("enip_framer", fuzz_framer);
}

/// The discovery seeds: (file, route and chunking byte, stream).
fn discover_seeds() -> Vec<(&'static str, u8, Vec<u8>)> {
    let pages = discover_transcript(0x06);
    let mut truncated = pages.clone();
    truncated.truncate(pages.len() - 5);
    let mut long_name = pages.clone();
    // The first symbol's name length past what the page holds: after the
    // RegisterSession reply (28), the header (24), the common packet (16),
    // the reply header (4) and the instance (4).
    long_name[28 + 24 + 16 + 4 + 4] = 0xFF;
    vec![
        ("two_pages", 0, pages.clone()),
        ("two_pages_routed_chunked", 1 | (11 << 1), pages),
        ("no_tag_list", 0, discover_transcript(0x08)),
        ("truncated", 0, truncated),
        ("name_past_page", 0, long_name),
    ]
}

#[test]
fn enip_discover_seeds_are_current_and_reach_the_decoder() {
    let write = std::env::var_os("MILLRACE_WRITE_ENIP_SEEDS").is_some();
    let dir = fuzz_corpus("enip_discover");
    for (name, seed, stream) in discover_seeds() {
        let data = seed_file(seed, &stream);
        let path = dir.join(name);
        if write {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &data).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            stored, data,
            "enip_discover/{name}: seed out of date (MILLRACE_WRITE_ENIP_SEEDS=1)"
        );
    }
    let run = |name: &str| fuzz_discover(&std::fs::read(dir.join(name)).unwrap());
    let listed = DiscoverRun {
        done: true,
        symbols: 4,
        error: false,
    };
    assert_eq!(run("two_pages"), listed);
    assert_eq!(run("two_pages_routed_chunked"), listed);
    assert!(run("no_tag_list").error);
    let cut = run("truncated");
    assert!(
        !cut.done && !cut.error,
        "a cut stream waits for more: {cut:?}"
    );
    assert!(run("name_past_page").error);
}

#[test]
fn enip_discover_corpus_replays_without_a_crash() {
    replay_corpus("enip_discover", |data| {
        fuzz_discover(data);
    });
}
