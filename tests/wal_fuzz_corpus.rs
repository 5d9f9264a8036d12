//! Replays fuzz/corpus/wal_frames through the fuzz entry point, so CI
//! exercises it without libFuzzer.

use std::path::Path;

#[test]
fn wal_frames_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/wal_frames");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        millrace::wal::fuzz_segment(&data);
        count += 1;
    }
    assert!(count >= 5, "only {count} corpus files");
}
