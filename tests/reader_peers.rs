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
