//! Replays the `config_parse` fuzz corpus through the same entry point as the
//! fuzz target, so CI exercises it without libFuzzer.

use std::path::Path;

#[test]
fn replay_config_parse_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_parse");
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()));
    let (mut accepted, mut rejected) = (0usize, 0usize);
    for entry in entries.flatten() {
        let data = std::fs::read(entry.path())
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", entry.path().display()));
        if millrace::config::fuzz_config_parse(&data) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    // The corpus holds valid plants and broken ones; both paths must run.
    assert!(accepted >= 3, "accepted {accepted}");
    assert!(rejected >= 10, "rejected {rejected}");
}

#[test]
fn enip_seeds_parse_as_their_fixtures_do() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config_parse");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("an enip seed");
    // With its tag CSV after the NUL, as the target reads files.
    assert!(millrace::config::fuzz_config_parse(&read("enip_every_key")));
    assert!(millrace::config::fuzz_config_parse(&read("enip_minimal")));
    for bad in [
        "enip_bit_real",
        "enip_bad_address",
        "enip_path",
        "enip_count",
        "enip_connection_size",
        "enip_unit_id",
    ] {
        assert!(!millrace::config::fuzz_config_parse(&read(bad)), "{bad}");
    }
}
