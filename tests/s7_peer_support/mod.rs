//! The python-snap7 peers of the S7 tests (tests/reader_s7_peers.rs reads
//! them with the reader alone, tests/run_s7.rs through a real `millrace
//! run`): the server script, the two versions each in its own venv
//! (scripts/setup-peers.sh), and what every tag of the script's DB1, M, I
//! and Q must read as. A peer that cannot start fails the test.
#![allow(dead_code)] // each test file uses a different part

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use millrace::config::{S7Area, S7Tag, S7Type};
use millrace::protocol::s7::fuzz::s7_tag;
use millrace::sample::ValueKind;
use millrace::Quality;

/// Serves the areas; argv: port, forced PDU (0: none), DB2 size.
pub const SERVER: &str = r#"
import sys, struct, ctypes, time
import snap7
from snap7.type import SrvArea, Parameter
port, pdu, db2_size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def dtl():
    return struct.pack(">HBBBBBBI", 2024, 3, 15, 5, 13, 45, 30, 12345)

db1 = bytearray(460)
def put(at, b):
    db1[at:at + len(b)] = b
put(0, bytes([0b10100101, 0xAB]))
put(2, struct.pack(">HI", 0x1234, 0xDEADBEEF))
put(8, struct.pack(">bBhHiIqQfd", -5, 250, -1234, 54321, -123456789, 3000000000,
                   -1234567890123, 18000000000000000000, 3.25, -1.0e100))
put(50, b"Q")
put(52, bytes([10, 5]) + b"hello")
w = "añ中".encode("utf-16-be")
put(64, struct.pack(">HH", 6, 3) + w)
put(80, bytes([0x24, 0x03, 0x15, 0x13, 0x45, 0x30, 0x12, 0x35]))
put(88, dtl())
put(100, bytes([0x31, 0x23]) + struct.pack(">ih", -1500, 100))
put(200, bytes([254, 200]) + bytes(ord("a") + i % 26 for i in range(200)))
db2 = bytearray(db2_size)
for i in range(0, db2_size - 1, 2):
    db2[i:i + 2] = struct.pack(">h", i * 3 - 500)
mk = bytearray(16); mk[0] = 0b00000010; mk[2:4] = struct.pack(">H", 0x0102)
pe = bytearray(8); pe[0:2] = struct.pack(">h", 777)
pa = bytearray(8); pa[4:8] = struct.pack(">f", 2.5)

keep = []
def area(data):
    buf = (ctypes.c_char * len(data)).from_buffer(data)
    keep.append(buf)
    return buf

server = snap7.server.Server(log=False)
server.register_area(SrvArea.DB, 1, area(db1))
server.register_area(SrvArea.DB, 2, area(db2))
server.register_area(SrvArea.MK, 0, area(mk))
server.register_area(SrvArea.PE, 0, area(pe))
server.register_area(SrvArea.PA, 0, area(pa))
if pdu:
    server.set_param(Parameter.PDURequest, pdu)
server.start_to("127.0.0.1", port)
sys.stdin.read()
server.stop()
"#;

#[derive(Clone, Copy, Debug)]
pub enum Snap7 {
    V210,
    V330,
}

impl Snap7 {
    pub fn python(self) -> PathBuf {
        let (var, dir) = match self {
            Snap7::V210 => ("MILLRACE_SNAP7_210_PYTHON", "snap7-2.1.0-venv"),
            Snap7::V330 => ("MILLRACE_SNAP7_330_PYTHON", "snap7-3.3.0-venv"),
        };
        let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/{dir}/bin/python"))
        });
        assert!(
            path.exists(),
            "{self:?} Python {} is missing: run scripts/setup-peers.sh (tests never skip a peer)",
            path.display()
        );
        path
    }
}

/// A peer server; killed and reaped on drop.
pub struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(version: Snap7, port: u16, forced_pdu: u16, db2_size: usize) -> Peer {
    let child = Command::new(version.python())
        .args(["-c", SERVER])
        .args([
            port.to_string(),
            forced_pdu.to_string(),
            db2_size.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the snap7 peer");
    let mut peer = Peer(child);
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!("{version:?} server exited before listening: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{version:?} server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(stdin) = peer.0.stdin.as_mut() {
        let _ = stdin.flush();
    }
    peer
}

pub use crate::common::Want;

/// One tag of every supported type (and a scaled one, M, I, Q, and a DB
/// that does not exist) with what it must read as from [`SERVER`].
pub fn every_type_tags() -> Vec<(S7Tag, Want)> {
    use S7Type::*;
    use ValueKind::*;
    let db1 = S7Area::Db(1);
    let mut scaled = s7_tag("scaled", db1, 106, 0, Int);
    (scaled.scale, scaled.offset) = (0.5, 1.0);
    vec![
        (
            s7_tag("x0", db1, 0, 0, S7Type::Bool),
            Want::Value(ValueKind::Bool, 1),
        ),
        (
            s7_tag("x1", db1, 0, 1, S7Type::Bool),
            Want::Value(ValueKind::Bool, 0),
        ),
        (
            s7_tag("x7", db1, 0, 7, S7Type::Bool),
            Want::Value(ValueKind::Bool, 1),
        ),
        (s7_tag("byte", db1, 1, 0, Byte), Want::Value(U64, 0xAB)),
        (s7_tag("word", db1, 2, 0, Word), Want::Value(U64, 0x1234)),
        (
            s7_tag("dword", db1, 4, 0, DWord),
            Want::Value(U64, 0xDEAD_BEEF),
        ),
        (
            s7_tag("sint", db1, 8, 0, SInt),
            Want::Value(I64, -5i64 as u64),
        ),
        (s7_tag("usint", db1, 9, 0, USInt), Want::Value(U64, 250)),
        (
            s7_tag("int", db1, 10, 0, Int),
            Want::Value(I64, -1234i64 as u64),
        ),
        (s7_tag("uint", db1, 12, 0, UInt), Want::Value(U64, 54321)),
        (
            s7_tag("dint", db1, 14, 0, DInt),
            Want::Value(I64, -123_456_789i64 as u64),
        ),
        (
            s7_tag("udint", db1, 18, 0, UDInt),
            Want::Value(U64, 3_000_000_000),
        ),
        (
            s7_tag("lint", db1, 22, 0, LInt),
            Want::Value(I64, -1_234_567_890_123i64 as u64),
        ),
        (
            s7_tag("ulint", db1, 30, 0, ULInt),
            Want::Value(U64, 18_000_000_000_000_000_000),
        ),
        (
            s7_tag("real", db1, 38, 0, Real),
            Want::Value(F64, 3.25f64.to_bits()),
        ),
        (
            s7_tag("lreal", db1, 42, 0, LReal),
            Want::Value(F64, (-1.0e100f64).to_bits()),
        ),
        (s7_tag("char", db1, 50, 0, Char), Want::Text("Q")),
        (
            s7_tag("string", db1, 52, 0, String(10)),
            Want::Text("hello"),
        ),
        (
            s7_tag("wstring", db1, 64, 0, WString(6)),
            Want::Text("añ中"),
        ),
        (
            s7_tag("dt", db1, 80, 0, DateAndTime),
            Want::Value(I64, 1_710_510_330_123_000_000),
        ),
        (
            s7_tag("dtl", db1, 88, 0, Dtl),
            Want::Value(I64, 1_710_510_330_000_012_345),
        ),
        (
            s7_tag("s5time", db1, 100, 0, S5Time),
            Want::Value(I64, 1_230_000),
        ),
        (
            s7_tag("time", db1, 102, 0, Time),
            Want::Value(I64, -1500i64 as u64),
        ),
        (scaled, Want::Value(F64, 51.0f64.to_bits())),
        (
            s7_tag("m0.1", S7Area::Merker, 0, 1, S7Type::Bool),
            Want::Value(ValueKind::Bool, 1),
        ),
        (
            s7_tag("mw2", S7Area::Merker, 2, 0, Word),
            Want::Value(U64, 0x0102),
        ),
        (
            s7_tag("iw0", S7Area::Inputs, 0, 0, Int),
            Want::Value(I64, 777),
        ),
        (
            s7_tag("qd4", S7Area::Outputs, 4, 0, Real),
            Want::Value(F64, 2.5f64.to_bits()),
        ),
        (
            s7_tag("missing", S7Area::Db(99), 0, 0, Int),
            Want::Bad(Quality::s7_item(0x0A)),
        ),
    ]
}
