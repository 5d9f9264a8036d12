//! OPC UA values into ring records (opcua/convert.rs): the first byte picks
//! a tag plan (type, scaling, array count), the rest is a DataValue in OPC
//! UA binary as a server would send it, decoded by the stack.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = millrace::opcua::convert::fuzz_value(data);
});
