//! Arbitrary bytes as a tag CSV file under a fixed plant TOML: the CSV
//! splitter, header mapping, cell parsing and the checks against the TOML's
//! own tag (see millrace::config::fuzz_tag_csv).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::config::fuzz_tag_csv(data);
});
