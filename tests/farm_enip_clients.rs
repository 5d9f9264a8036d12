//! The EtherNet/IP farm read by two independent Python clients, pylogix
//! 1.1.6 and pycomm3 1.2.16 (in the peers venv, scripts/setup-peers.sh):
//! every type, arrays, STRINGs, a bit of a BOOL array and an array large
//! enough to need fragmented reads. pycomm3 first reads the whole tag list
//! and the STRING template, as it does against a ControlLogix. Each value
//! the clients print is checked against the farm's table (`check_number`,
//! `check_text`): a client that reads a wrong value, or cannot read, fails
//! the test.
#![cfg(not(millrace_loom))]

mod common;

use std::process::Command;

use millrace::farm::enip::table::lookup;
use millrace::farm::enip::{check_number, check_text, EnipFarmOptions, FarmTag};
use millrace::farm::s7::Check;
use millrace::farm::{Farm, FarmOptions, FarmProtocol};

/// The reads: (client address, base symbol, first element, count).
const READS: &[(&str, &str, u32, u32)] = &[
    ("Bool_0", "Bool_0", 0, 1),
    ("Bool_1", "Bool_1", 0, 1),
    ("Sint_2", "Sint_2", 0, 1),
    ("Int_3", "Int_3", 0, 1),
    ("Dint_4", "Dint_4", 0, 1),
    ("Lint_5", "Lint_5", 0, 1),
    ("Usint_6", "Usint_6", 0, 1),
    ("Uint_7", "Uint_7", 0, 1),
    ("Udint_8", "Udint_8", 0, 1),
    ("Ulint_9", "Ulint_9", 0, 1),
    ("Real_10", "Real_10", 0, 1),
    ("Lreal_11", "Lreal_11", 0, 1),
    ("Str_12", "Str_12", 0, 1),
    ("DintArr[10]", "DintArr", 10, 5),
    ("RealArr[0]", "RealArr", 0, 3),
    ("IntArr[100]", "IntArr", 100, 4),
    ("StrArr[3]", "StrArr", 3, 2),
    ("LrealArr[0]", "LrealArr", 0, 600),
    ("Bits_4[5]", "Bits_4", 5, 1),
    ("Bits_4[20]", "Bits_4", 20, 1),
];

/// Prints one line per read: the address, then one token per value:
/// `b:0|1`, `i:N`, `f:` the f64's bits in hex, `s:` the text in hex.
const SCRIPT: &str = r#"
import sys, struct
client, port = sys.argv[1], int(sys.argv[2])
reads = [line.split() for line in sys.stdin.read().splitlines() if line]

def token(v):
    if isinstance(v, bool):
        return "b:%d" % v
    if isinstance(v, int):
        return "i:%d" % v
    if isinstance(v, float):
        return "f:" + struct.pack(">d", v).hex()
    if isinstance(v, str):
        return "s:" + v.encode("latin-1").hex()
    raise SystemExit("unexpected value %r" % (v,))

def emit(address, value):
    values = value if isinstance(value, list) else [value]
    print(address, " ".join(token(v) for v in values))

if client == "pylogix":
    from pylogix import PLC
    with PLC("127.0.0.1", port=port) as plc:
        for address, count in reads:
            count = int(count)
            r = plc.Read(address, count) if count > 1 else plc.Read(address)
            if r.Status != "Success":
                raise SystemExit("pylogix %s: %s" % (address, r.Status))
            emit(address, r.Value)
else:
    from pycomm3 import LogixDriver
    with LogixDriver("127.0.0.1:%d" % port, init_program_tags=False) as plc:
        for address, count in reads:
            count = int(count)
            tag = address + ("{%d}" % count if count > 1 else "")
            r = plc.read(tag)
            if r.error:
                raise SystemExit("pycomm3 %s: %s" % (tag, r.error))
            emit(address, r.value)
"#;

fn value(token: &str) -> Result<f64, Vec<u8>> {
    let (kind, text) = token.split_once(':').expect("a kind:value token");
    match kind {
        "b" | "i" => Ok(text.parse::<i128>().expect("an integer") as f64),
        "f" => Ok(f64::from_bits(
            u64::from_str_radix(text, 16).expect("hex bits"),
        )),
        "s" => Err((0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()),
        other => panic!("token kind {other}"),
    }
}

fn cross_check(client: &str) {
    let farm = Farm::start(FarmOptions {
        devices: 3,
        protocol: FarmProtocol::EthernetIp,
        enip: EnipFarmOptions::default(),
        ..FarmOptions::default()
    })
    .unwrap();
    let device = 2;
    let port = farm.addr(device).unwrap().port();
    let input: String = READS
        .iter()
        .map(|(address, _, _, count)| format!("{address} {count}\n"))
        .collect();
    let mut child = Command::new(common::peer_python())
        .args(["-c", SCRIPT, client, &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the peer Python");
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let context = format!(
        "{client}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{context}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), READS.len(), "{context}");
    let mut checked = 0;
    for (line, (address, base, first, count)) in lines.iter().zip(READS) {
        let mut tokens = line.split_whitespace();
        assert_eq!(tokens.next(), Some(*address), "{context}");
        let values: Vec<&str> = tokens.collect();
        assert_eq!(values.len() as u32, *count, "{address}: {context}");
        let symbol = lookup(base.as_bytes()).unwrap();
        for (i, token) in (0u32..).zip(values) {
            let tag = FarmTag {
                symbol,
                element: first + i,
                bit: None,
            };
            let check = match value(token) {
                Ok(number) => check_number(device, &tag, number),
                Err(text) => check_text(device, &tag, &text),
            };
            assert!(
                matches!(check, Check::Served(_)),
                "{client} read {address} element {i} as {token}: not the farm's value\n{context}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, READS.iter().map(|r| r.3).sum::<u32>());
    let counters = farm.stop().unwrap();
    assert_eq!(counters.framing_errors, 0, "{client}: {counters:?}");
}

#[test]
fn pylogix_reads_the_farms_values() {
    cross_check("pylogix");
}

#[test]
fn pycomm3_reads_the_tag_list_and_the_farms_values() {
    cross_check("pycomm3");
}
