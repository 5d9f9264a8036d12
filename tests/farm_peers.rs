//! Independent Modbus clients (pymodbus 3.16 and modbus-tk 1.1.5, from the
//! peers venv) read from the farm: every value they get must pass the farm's
//! `verify_*`, on several devices, in all four areas, and the spec exceptions
//! reach them as exceptions. The peer is required: without it the test fails.
#![cfg(not(millrace_loom))]

mod common;

use std::process::Command;

use common::peer_python;
use millrace::config::Area;
use millrace::farm::{self, Farm, FarmOptions};

/// Runs `script` with the ports as arguments; its stdout has lines
/// `device area address value` (one per value read) and `exc device fc code`.
fn run_peer(script: &str, ports: &[u16]) -> String {
    let output = Command::new(peer_python())
        .arg("-c")
        .arg(script)
        .args(ports.iter().map(u16::to_string))
        .output()
        .expect("start the peer Python");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "peer failed: {stderr}");
    String::from_utf8(output.stdout).expect("utf-8")
}

/// Checks every value line; returns (values checked, exception lines).
fn check_lines(stdout: &str) -> (usize, Vec<(u32, u8, u8)>) {
    let mut values = 0;
    let mut exceptions = Vec::new();
    for line in stdout.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["exc", device, fc, code] => exceptions.push((
                device.parse().unwrap(),
                fc.parse().unwrap(),
                code.parse().unwrap(),
            )),
            [device, area, address, value] => {
                let device: u32 = device.parse().unwrap();
                let area = match *area {
                    "coil" => Area::Coil,
                    "discrete" => Area::Discrete,
                    "input" => Area::Input,
                    "holding" => Area::Holding,
                    other => panic!("area {other}"),
                };
                let address: u16 = address.parse().unwrap();
                let value: u16 = value.parse().unwrap();
                assert!(
                    farm::verify(area, device, address, value),
                    "peer read a bad value: {line}"
                );
                values += 1;
            }
            _ => panic!("unexpected peer output line: {line}"),
        }
    }
    (values, exceptions)
}

const PYMODBUS: &str = r#"
import sys
from pymodbus.client import ModbusTcpClient
for device, port in enumerate(int(p) for p in sys.argv[1:]):
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=5, retries=0)
    assert c.connect(), f"connect {port}"
    for rnd in range(3):
        for name, call, start, count in [
            ("holding", c.read_holding_registers, 0, 125),
            ("holding", c.read_holding_registers, 300, 7),
            ("input", c.read_input_registers, 10, 100),
        ]:
            r = call(start, count=count, device_id=1)
            assert not r.isError(), r
            assert len(r.registers) == count
            for i, v in enumerate(r.registers):
                print(device, name, start + i, v)
    for name, call, start, count in [
        ("coil", c.read_coils, 0, 2000),
        ("discrete", c.read_discrete_inputs, 77, 13),
    ]:
        r = call(start, count=count, device_id=1)
        assert not r.isError(), r
        for i in range(count):
            print(device, name, start + i, int(r.bits[i]))
    r = c.read_holding_registers(9990, count=20, device_id=1)
    assert r.isError()
    print("exc", device, r.function_code & 0x7F, r.exception_code)
    c.close()
"#;

const MODBUS_TK: &str = r#"
import sys
from modbus_tk import modbus_tcp
from modbus_tk.modbus import ModbusError
import modbus_tk.defines as cst
for device, port in enumerate(int(p) for p in sys.argv[1:]):
    m = modbus_tcp.TcpMaster("127.0.0.1", port)
    m.set_timeout(5.0)
    for rnd in range(3):
        for name, fc, start, count in [
            ("holding", cst.READ_HOLDING_REGISTERS, 0, 125),
            ("input", cst.READ_INPUT_REGISTERS, 1000, 125),
            ("holding", cst.READ_HOLDING_REGISTERS, 9999, 1),
        ]:
            values = m.execute(1, fc, start, count)
            assert len(values) == count
            for i, v in enumerate(values):
                print(device, name, start + i, v)
    for name, fc, start, count in [
        ("coil", cst.READ_COILS, 5, 37),
        ("discrete", cst.READ_DISCRETE_INPUTS, 0, 2000),
    ]:
        values = m.execute(1, fc, start, count)
        for i, v in enumerate(values):
            print(device, name, start + i, v)
    for fc, start, count in [(cst.READ_HOLDING_REGISTERS, 9999, 2),
                             (cst.WRITE_SINGLE_REGISTER, 0, 1)]:
        try:
            if fc == cst.WRITE_SINGLE_REGISTER:
                m.execute(1, fc, start, output_value=count)
            else:
                m.execute(1, fc, start, count)
            raise SystemExit("no exception")
        except ModbusError as e:
            print("exc", device, fc, e.get_exception_code())
    m.close()
"#;

#[test]
fn pymodbus_client_reads_verifiable_values_from_several_devices() {
    let handle = Farm::start(FarmOptions {
        devices: 3,
        ..FarmOptions::default()
    })
    .unwrap();
    let (values, exceptions) = check_lines(&run_peer(PYMODBUS, handle.ports()));
    assert_eq!(values, 3 * (3 * (125 + 7 + 100) + 2000 + 13));
    assert_eq!(exceptions, vec![(0, 3, 2), (1, 3, 2), (2, 3, 2)]);
    let counters = handle.stop().unwrap();
    assert_eq!(counters.data_responses, 3 * (3 * 3 + 2));
}

#[test]
fn modbus_tk_client_reads_verifiable_values_and_gets_exceptions() {
    let handle = Farm::start(FarmOptions {
        devices: 2,
        threads: 2,
        ..FarmOptions::default()
    })
    .unwrap();
    let (values, exceptions) = check_lines(&run_peer(MODBUS_TK, handle.ports()));
    assert_eq!(values, 2 * (3 * (125 + 125 + 1) + 37 + 2000));
    assert_eq!(exceptions, vec![(0, 3, 2), (0, 6, 1), (1, 3, 2), (1, 6, 1)]);
    assert_eq!(handle.stop().unwrap().protocol_exceptions, 4);
}
