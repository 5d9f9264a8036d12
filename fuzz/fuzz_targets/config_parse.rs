//! Arbitrary text into the configuration parser: bytes up to the first NUL
//! are the TOML file, the rest is every file it names (tag CSV, password
//! file). It must never panic, never leak the password, and every `Config`
//! it accepts must keep the promises written on its types.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    millrace::config::fuzz_config_parse(data);
});
