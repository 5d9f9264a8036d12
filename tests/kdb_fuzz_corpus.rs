//! Replays the kdb_* fuzz corpora through the fuzz entry points, so CI
//! exercises them without libFuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        run(&data);
        count += 1;
    }
    assert!(count >= 5, "{target}: only {count} corpus files");
}

#[test]
fn kdb_decode_corpus() {
    replay("kdb_decode", millrace::kdb::fuzz::fuzz_decode);
}

#[test]
fn kdb_decompress_corpus() {
    replay("kdb_decompress", millrace::kdb::fuzz::fuzz_decompress);
}
