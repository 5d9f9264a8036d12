//! The `opcua_value` fuzz target's corpus: every seed reaches the
//! conversion (the stack decodes it as a DataValue), and the whole corpus
//! replays without a crash, so CI exercises the target without libFuzzer.

mod common;

use common::{fuzz_corpus, replay_corpus};

#[test]
fn every_seed_is_a_data_value_the_conversion_takes() {
    for entry in std::fs::read_dir(fuzz_corpus("opcua_value")).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        assert!(
            millrace::opcua::convert::fuzz_value(&data),
            "{}: not decoded as a DataValue",
            path.display()
        );
    }
}

#[test]
fn the_corpus_replays_without_a_crash() {
    replay_corpus("opcua_value", |data| {
        let _ = millrace::opcua::convert::fuzz_value(data);
    });
}
