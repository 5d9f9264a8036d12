//! The OPC UA farm read by a client millrace did not write: FreeOpcUa's
//! asyncua 2.1.0 (MILLRACE_ASYNCUA_PYTHON, scripts/setup-peers.sh) connects
//! to a farm server (security None, anonymous), reads the first 16
//! variables (every type twice) and then subscribes to them for a while.
//! Each value it prints is checked against the farm's value functions
//! (`check_number`, `check_text`) with the variant type the farm serves,
//! and the notifications of each variable must step its change counter by
//! exactly one: a client that reads a wrong value or type, or a server
//! that skips or repeats a change, fails the test. Both farm servers
//! (async-opcua's and the lean one) are read so.
#![cfg(not(millrace_loom))]

mod common;
mod opcua_support;

use std::process::Command;
use std::time::Duration;

use millrace::farm::opcua::values::{check_number, check_text, Check, Counter, FarmType, Step};
use millrace::farm::{Farm, FarmOptions, FarmProtocol, OpcuaFarmOptions, OpcuaServerKind};

/// Variables read and subscribed to: every type twice.
const TAG_COUNT: u32 = 16;
const CHANGE_INTERVAL: Duration = Duration::from_millis(100);
/// How long the client listens to its subscription.
const LISTEN_S: f64 = 2.0;

/// Prints `read J TOKEN` per variable, then `sub J TOKEN` per notification;
/// a token is `VARIANTTYPE:kind:value` with kind `b` (0|1), `i` (integer),
/// `f` (the f64's bits in hex) or `s` (the UTF-8 text in hex).
const SCRIPT: &str = r#"
import sys, struct, asyncio
from asyncua import Client, ua
port, count, seconds, interval_ms = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])

def token(variant):
    v, t = variant.Value, variant.VariantType.name
    if isinstance(v, bool):
        return "%s:b:%d" % (t, v)
    if isinstance(v, int):
        return "%s:i:%d" % (t, v)
    if isinstance(v, float):
        return "%s:f:%s" % (t, struct.pack(">d", v).hex())
    if isinstance(v, str):
        return "%s:s:%s" % (t, v.encode("utf-8").hex())
    raise SystemExit("unexpected value %r" % (v,))

class Handler:
    def __init__(self):
        self.lines = []
    def datachange_notification(self, node, val, data):
        self.lines.append("sub %d %s" % (node.nodeid.Identifier - 1, token(data.monitored_item.Value.Value)))

async def main():
    async with Client("opc.tcp://127.0.0.1:%d/" % port) as client:
        nodes = [client.get_node(ua.NodeId(i + 1, 2)) for i in range(count)]
        for i, node in enumerate(nodes):
            dv = await node.read_data_value()
            print("read %d %s" % (i, token(dv.Value)))
        handler = Handler()
        sub = await client.create_subscription(interval_ms, handler)
        await sub.subscribe_data_change(nodes, queuesize=10, sampling_interval=interval_ms)
        await asyncio.sleep(seconds)
        await sub.delete()
        for line in handler.lines:
            print(line)

asyncio.run(main())
"#;

/// The variant type asyncua names for a farm type.
fn variant_name(data_type: FarmType) -> &'static str {
    match data_type {
        FarmType::Double => "Double",
        FarmType::Float => "Float",
        FarmType::Int16 => "Int16",
        FarmType::Int32 => "Int32",
        FarmType::UInt32 => "UInt32",
        FarmType::Int64 => "Int64",
        FarmType::Boolean => "Boolean",
        FarmType::String => "String",
    }
}

/// Checks one token of tag `index`; the counter it carries.
fn check(device: u32, index: u32, token: &str, context: &str) -> u64 {
    let mut parts = token.splitn(3, ':');
    let (Some(variant), Some(kind), Some(text)) = (parts.next(), parts.next(), parts.next()) else {
        panic!("token {token}: {context}");
    };
    let data_type = FarmType::of_tag(index);
    assert_eq!(variant, variant_name(data_type), "tag {index}: {context}");
    let checked = match kind {
        "b" | "i" => check_number(device, index, text.parse::<i128>().unwrap() as f64),
        "f" => check_number(
            device,
            index,
            f64::from_bits(u64::from_str_radix(text, 16).unwrap()),
        ),
        "s" => {
            let bytes: Vec<u8> = (0..text.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
                .collect();
            check_text(device, index, &bytes)
        }
        other => panic!("token kind {other}: {context}"),
    };
    match checked {
        Check::Served(counter) => counter,
        Check::Wrong => panic!("tag {index} read as {token}: not the farm's value\n{context}"),
    }
}

#[test]
fn asyncua_reads_and_subscribes_to_the_farms_values() {
    asyncua_reads_and_subscribes(OpcuaServerKind::Stack);
}

/// The same against the lean server: a client of another stack reads and
/// subscribes to it as to async-opcua's server.
#[test]
fn asyncua_reads_and_subscribes_to_the_lean_servers_values() {
    asyncua_reads_and_subscribes(OpcuaServerKind::Lean);
}

fn asyncua_reads_and_subscribes(server: OpcuaServerKind) {
    let farm = Farm::start(FarmOptions {
        devices: 3,
        protocol: FarmProtocol::Opcua,
        opcua: OpcuaFarmOptions {
            change_interval: CHANGE_INTERVAL,
            server,
        },
        opcua_tags: TAG_COUNT,
        ..FarmOptions::default()
    })
    .unwrap();
    let device = 2;
    let port = farm.addr(device).unwrap().port();
    let out = Command::new(opcua_support::python())
        .args(["-c", SCRIPT])
        .args([
            port.to_string(),
            TAG_COUNT.to_string(),
            LISTEN_S.to_string(),
            CHANGE_INTERVAL.as_millis().to_string(),
        ])
        .output()
        .expect("start the asyncua Python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{context}");
    let mut read = 0;
    let mut counters = vec![Counter::default(); TAG_COUNT as usize];
    let mut steps = vec![0u32; TAG_COUNT as usize];
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [what, index, token] = words[..] else {
            panic!("line {line}: {context}");
        };
        let index: u32 = index.parse().unwrap();
        assert!(index < TAG_COUNT, "{context}");
        let counter = check(device, index, token, &context);
        match what {
            "read" => read += 1,
            "sub" => {
                let data_type = FarmType::of_tag(index);
                match counters[index as usize].step(counter, data_type) {
                    Step::First => {}
                    Step::Next => steps[index as usize] += 1,
                    other => panic!("tag {index}: {other:?} at {token}\n{context}"),
                }
            }
            other => panic!("{other}: {context}"),
        }
    }
    assert_eq!(read, TAG_COUNT, "{context}");
    // 2 s of changes every 100 ms: every variable moved on, one step at a
    // time (the bound is far below the ~20 changes, for a loaded machine).
    for (index, n) in steps.iter().enumerate() {
        assert!(*n >= 3, "tag {index}: {n} changes seen\n{context}");
    }
    let counters = farm.stop().unwrap();
    assert!(counters.data_responses > 0, "{counters:?}");
}
