//! The reader against independent Modbus servers (modbus-tk 1.1.5 and
//! pymodbus 3.16.1 from the peers venv), once per driver: known register,
//! float, input and coil values arrive as written, and a read of an address
//! the server does not have comes back as exception samples. pymodbus
//! answers only the first ADU of a TCP segment, so both run max_inflight 1.
#![cfg(not(millrace_loom))]

mod common;
mod reader_support;

use std::io::Write;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use millrace::config::{Area, DataType};
use millrace::{Quality, Sample};
use reader_support::*;

const MODBUS_TK: &str = r#"
import sys, struct
import modbus_tk.defines as cst
from modbus_tk import modbus_tcp
port = int(sys.argv[1])
server = modbus_tcp.TcpServer(port=port, address="127.0.0.1")
server.start()
slave = server.add_slave(1)
slave.add_block("hr", cst.HOLDING_REGISTERS, 0, 200)
hr = [(i * 7 + 3) & 0xFFFF for i in range(200)]
hr[150], hr[151] = struct.unpack(">HH", struct.pack(">f", 21.5))
slave.set_values("hr", 0, hr)
slave.add_block("ir", cst.ANALOG_INPUTS, 0, 100)
slave.set_values("ir", 0, [i * 11 for i in range(100)])
slave.add_block("co", cst.COILS, 0, 64)
slave.set_values("co", 0, [1 if i % 3 == 0 else 0 for i in range(64)])
sys.stdin.read()
server.stop()
"#;

const PYMODBUS: &str = r#"
import sys, struct, asyncio, threading, os
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusDeviceContext, ModbusServerContext
from pymodbus.server import ModbusTcpServer
port = int(sys.argv[1])
hr = [(i * 7 + 3) & 0xFFFF for i in range(200)]
hr[150], hr[151] = struct.unpack(">HH", struct.pack(">f", 21.5))
device = ModbusDeviceContext(
    hr=ModbusSequentialDataBlock(1, hr),
    ir=ModbusSequentialDataBlock(1, [i * 11 for i in range(100)]),
    co=ModbusSequentialDataBlock(1, [i % 3 == 0 for i in range(64)]),
)
context = ModbusServerContext(devices={1: device})
def watch_stdin():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch_stdin, daemon=True).start()
async def main():
    server = ModbusTcpServer(context, address=("127.0.0.1", port))
    await server.serve_forever()
asyncio.run(main())
"#;

/// A peer server; killed and reaped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(script: &str, port: u16) -> Peer {
    let child = Command::new(peer_python())
        .arg("-c")
        .arg(script)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the peer Python");
    let mut peer = Peer(child);
    let started = Instant::now();
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!("peer server exited before listening: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "peer server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(stdin) = peer.0.stdin.as_mut() {
        let _ = stdin.flush();
    }
    peer
}

fn peer_device(port: u16) -> millrace::config::DeviceConfig {
    let mut all = tags("p", Area::Holding, 0, 125);
    all.push(tag("p.float", Area::Holding, 150, DataType::Float32));
    all.extend(tags("p", Area::Input, 0, 50));
    all.extend(tags("p", Area::Coil, 0, 64));
    all.push(tag("p.missing", Area::Holding, 1000, DataType::Uint16));
    let mut d = device("peer", port, all);
    d.poll_interval = Duration::from_millis(50);
    d.timeout = Duration::from_secs(2);
    d
}

/// The value tag `index` must carry (None: the exception tag).
fn expected(index: usize) -> Option<f64> {
    match index {
        0..=124 => Some(((index * 7 + 3) & 0xFFFF) as f64),
        125 => Some(21.5),
        126..=175 => Some(((index - 126) * 11) as f64),
        176..=239 => Some(f64::from(u8::from((index - 176) % 3 == 0))),
        _ => None,
    }
}

fn check_against(script: &str, name: &str) {
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start_peer(script, port);
        let specs = specs(vec![peer_device(port)]);
        let run = run_until(backend, specs, RunOptions::default(), |c, _| {
            c.responses >= 25
        });
        let mut good = 0;
        let mut exceptions = Vec::new();
        for sample in &run.samples {
            let index = sample.tag_id().0 as usize;
            match (expected(index), sample.quality()) {
                (Some(want), Quality::GOOD) => {
                    assert_eq!(sample.value_f64(), want, "{name} {backend:?}: tag {index}");
                    good += 1;
                }
                (None, q) => exceptions.push(q),
                (_, q) => panic!("{name} {backend:?}: tag {index} came with quality {q:?}"),
            }
        }
        assert!(
            good >= 4 * 240,
            "{name} {backend:?}: only {good} good samples"
        );
        assert!(
            !exceptions.is_empty(),
            "{name} {backend:?}: the missing address gave nothing"
        );
        assert!(
            exceptions
                .iter()
                .all(|q| *q == Quality::modbus_exception(2)),
            "{name} {backend:?}: want exception 02 (illegal data address): {exceptions:?}"
        );
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{name} {backend:?}: {c:#?}"
        );
        assert_eq!(c.samples as usize, run.samples.len());
        let _: &[Sample] = &run.samples;
    }
}

#[test]
fn modbus_tk_values_and_exceptions() {
    check_against(MODBUS_TK, "modbus-tk");
}

#[test]
fn pymodbus_values_and_exceptions() {
    check_against(PYMODBUS, "pymodbus");
}

/// A serial-to-TCP gateway as modbus-tk serves one: units 1, 2 and 3 on one
/// port, each with its own registers (unit `u`'s register `i` holds
/// `u * 1000 + i`). A request for a unit it does not have is not answered at
/// all, as a gateway whose serial device is off.
const MODBUS_TK_GATEWAY: &str = r#"
import sys
import modbus_tk.defines as cst
from modbus_tk import modbus_tcp
port = int(sys.argv[1])
server = modbus_tcp.TcpServer(port=port, address="127.0.0.1")
server.start()
for unit in (1, 2, 3):
    slave = server.add_slave(unit)
    slave.add_block("hr", cst.HOLDING_REGISTERS, 0, 300)
    slave.set_values("hr", 0, [unit * 1000 + i for i in range(300)])
sys.stdin.read()
server.stop()
"#;

#[test]
fn units_behind_one_gateway_share_its_connection_and_a_silent_one_stalls_none() {
    use millrace::reader::DeviceSpec;
    use millrace::TagId;
    for backend in BACKENDS {
        let port = free_port();
        let _peer = start_peer(MODBUS_TK_GATEWAY, port);
        // Units 1, 2, 9 (not there) and 3, in that order on the wire; each
        // reads registers 0..125 and 200..210 (two requests a cycle).
        let units: Vec<_> = [1u8, 2, 9, 3]
            .iter()
            .map(|&unit| {
                let mut all = tags(&format!("u{unit}"), Area::Holding, 0, 125);
                all.extend(tags(&format!("u{unit}"), Area::Holding, 200, 10));
                let mut d = device(&format!("unit-{unit}"), port, all);
                d.modbus_part_mut().expect("Modbus").unit_id = unit;
                d.poll_interval = Duration::from_millis(300);
                d.timeout = Duration::from_millis(if unit == 9 { 100 } else { 2_000 });
                d
            })
            .collect();
        let per_unit = units[0].tag_count();
        let mut devices = units
            .into_iter()
            .enumerate()
            .map(|(i, d)| (d, TagId((i * per_unit) as u32)));
        let (config, first_tag) = devices.next().expect("four units");
        let spec = DeviceSpec {
            config,
            first_tag,
            shared_with: devices.collect(),
        };
        assert_eq!(spec.name(), "unit-1+3");
        let run = run_until(backend, vec![spec], RunOptions::default(), |c, _| {
            c.polls >= 5
        });
        let mut good = [0usize; 4];
        for sample in &run.samples {
            let index = sample.tag_id().0 as usize;
            let (position, tag) = (index / per_unit, index % per_unit);
            let register = if tag < 125 { tag } else { 200 + tag - 125 };
            match ([1u64, 2, 9, 3][position], sample.quality()) {
                (9, q) => assert_eq!(q, Quality::TIMEOUT, "{backend:?}: unit 9 tag {tag}"),
                (unit, Quality::GOOD) => {
                    assert_eq!(sample.value, unit * 1000 + register as u64, "{backend:?}");
                    good[position] += 1;
                }
                (unit, q) => panic!("{backend:?}: unit {unit} tag {tag} came with {q:?}"),
            }
        }
        let cycles = run.counters.polls as usize;
        for position in [0, 1, 3] {
            // Every finished cycle answered the unit whole, unit 3 (after
            // the silent one) included.
            assert!(
                good[position] >= (cycles - 1) * per_unit,
                "{backend:?}: {good:?} good samples in {cycles} cycles"
            );
        }
        let c = run.counters;
        // One connection for the four units, never dropped; the silent
        // unit costs one timeout a cycle (its second request is not sent).
        assert_eq!(run.connected_at_end, 1, "{backend:?}");
        assert_eq!((c.malformed, c.disconnects), (0, 0), "{backend:?}: {c:#?}");
        assert!(
            c.timeouts >= 1 && c.timeouts <= c.polls,
            "{backend:?}: {} timeouts in {} cycles",
            c.timeouts,
            c.polls
        );
        assert_eq!(c.samples as usize, run.samples.len());
        // Each device keeps its own metrics: the timeouts are unit 9's.
        let want: Vec<(String, u64, u64)> = [(1, 0), (2, 0), (9, c.timeouts), (3, 0)]
            .iter()
            .map(|&(unit, errors)| (format!("unit-{unit}"), errors, 0))
            .collect();
        assert_eq!(run.devices, want, "{backend:?}");
    }
}
