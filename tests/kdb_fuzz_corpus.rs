//! Replays the kdb_* fuzz corpora through the fuzz entry points, so CI
//! exercises them without libFuzzer.

mod common;

use common::replay_corpus;

#[test]
fn kdb_decode_corpus() {
    replay_corpus("kdb_decode", millrace::kdb::fuzz::fuzz_decode);
}

#[test]
fn kdb_decompress_corpus() {
    replay_corpus("kdb_decompress", millrace::kdb::fuzz::fuzz_decompress);
}
