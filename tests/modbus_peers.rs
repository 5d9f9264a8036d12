//! The Modbus session against independent servers over real sockets on
//! 127.0.0.1: modbus-tk 1.1.5 `TcpServer`, pymodbus 3.16.1 (MBAP framing
//! and RTU over TCP). The Python peer fills its registers with values packed
//! by Python's `struct` module for every type x order of the configuration
//! (orders written as struct formats, not as our swap rules), and strings of
//! 1 to 250 bytes (two characters per register), and prints the expected
//! sample bits or text; the test plans, polls, decodes and compares.
//!
//! The peer is started from the venv of scripts/setup-peers.sh; if it is
//! missing the test fails, it never skips.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use common::peer_python;
use millrace::config::{Area, DataType, DeviceConfig, ModbusTag, Protocol, WordOrder};
use millrace::protocol::modbus::{ModbusSession, REQUEST_BYTES_MAX};
use millrace::sample::{record_span, text_at, text_records};
use millrace::{Quality, Sample, TagId};

const PEER: &str = r#"
import json, os, random, socket, struct, sys, threading

kind, seed = sys.argv[1], int(sys.argv[2])
rng = random.Random(seed)
HOLD, INP, COILS, DISC = [0] * 1000, [0] * 300, [0] * 3000, [0] * 100
tags = []
M64 = (1 << 64) - 1

def place(regs, address, wire):
    for i, w in enumerate(struct.unpack('>%dH' % (len(wire) // 2), wire)):
        regs[address + i] = w

def wire16(u, order):
    return struct.pack('>H' if order in ('ABCD', 'CDAB') else '<H', u)

def wire32(u, order):
    hi, lo = u >> 16, u & 0xFFFF
    return {'ABCD': struct.pack('>I', u), 'DCBA': struct.pack('<I', u),
            'CDAB': struct.pack('>HH', lo, hi), 'BADC': struct.pack('<HH', hi, lo)}[order]

def wire64(u, order):
    w = [(u >> s) & 0xFFFF for s in (48, 32, 16, 0)]
    return {'ABCD': struct.pack('>Q', u), 'DCBA': struct.pack('<Q', u),
            'CDAB': struct.pack('>4H', *reversed(w)), 'BADC': struct.pack('<4H', *w)}[order]

def f64bits(x):
    return struct.unpack('>Q', struct.pack('>d', x))[0]

def value_for(t):
    """(raw bits on the wire, expected sample bits, sample kind)"""
    if t == 'int16':
        v = rng.randint(-32768, 32767)
        return struct.unpack('>H', struct.pack('>h', v))[0], v & M64, 'i64'
    if t == 'uint16':
        v = rng.randint(0, 65535)
        return v, v, 'u64'
    if t == 'int32':
        v = rng.randint(-2**31, 2**31 - 1)
        return struct.unpack('>I', struct.pack('>i', v))[0], v & M64, 'i64'
    if t == 'uint32':
        v = rng.randint(0, 2**32 - 1)
        return v, v, 'u64'
    if t == 'int64':
        v = rng.randint(-2**63, 2**63 - 1)
        return struct.unpack('>Q', struct.pack('>q', v))[0], v & M64, 'i64'
    if t == 'uint64':
        v = rng.randint(0, M64)
        return v, v, 'u64'
    if t == 'float32':
        v = rng.choice([rng.uniform(-1e6, 1e6), float('inf'), float('-inf'), float('nan'),
                        -0.0, 1.5])
        u = struct.unpack('>I', struct.pack('>f', v))[0]
        return u, f64bits(struct.unpack('>f', struct.pack('>I', u))[0]), 'f64'
    if t == 'float64':
        v = rng.choice([rng.uniform(-1e300, 1e300), float('inf'), float('-inf'), float('nan'),
                        2.5e-308])
        return f64bits(v), f64bits(v), 'f64'
    raise ValueError(t)

WIDTH = {'int16': 1, 'uint16': 1, 'int32': 2, 'uint32': 2, 'float32': 2,
         'int64': 4, 'uint64': 4, 'float64': 4}
address = 0
for order in ('ABCD', 'CDAB', 'BADC', 'DCBA'):
    for t in WIDTH:
        raw, expected, kindname = value_for(t)
        wire = {1: wire16, 2: wire32, 4: wire64}[WIDTH[t]](raw, order)
        place(HOLD, address, wire)
        tags.append(dict(area='holding', address=address, type=t, order=order,
                         expected=expected, kind=kindname))
        address += WIDTH[t] + rng.randint(0, 3)
    # a string of 1..8 bytes: two per register, high byte first unless bytes swap
    length = rng.randint(1, 8)
    text = bytes(rng.choice(b'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789') for _ in range(length))
    padded = text + b'\0' * (length % 2)
    if order in ('BADC', 'DCBA'):
        padded = b''.join(padded[i:i + 2][::-1] for i in range(0, len(padded), 2))
    place(HOLD, address, padded)
    tags.append(dict(area='holding', address=address, type='string', order=order,
                     length=length, kind='str8',
                     expected=int.from_bytes(text.ljust(8, b'\0'), 'little')))
    address += len(padded) // 2 + rng.randint(0, 3)
    # a longer string (a text head and extension records): 9..250 bytes, the
    # text NUL-padded when shorter than the tag
    length = rng.choice([rng.randint(9, 60), rng.randint(61, 250)])
    text = bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz ,.-0123456789')
                 for _ in range(rng.choice([length, rng.randint(0, length)])))
    padded = text.ljust(length + length % 2, b'\0')
    if order in ('BADC', 'DCBA'):
        padded = b''.join(padded[i:i + 2][::-1] for i in range(0, len(padded), 2))
    place(HOLD, address, padded)
    tags.append(dict(area='holding', address=address, type='string', order=order,
                     length=length, kind='text', expected=text.hex()))
    address += len(padded) // 2 + rng.randint(0, 3)
    # a bool from a bit of a register
    reg, bit = rng.randint(0, 65535), rng.randint(0, 15)
    place(HOLD, address, wire16(reg, order))
    tags.append(dict(area='holding', address=address, type='bool', order=order, bit=bit,
                     expected=(reg >> bit) & 1, kind='bool'))
    address += 1 + rng.randint(0, 3)
    # a scaled int16
    raw, _, _ = value_for('int16')
    place(HOLD, address, wire16(raw, order))
    signed = struct.unpack('>h', struct.pack('>H', raw))[0]
    tags.append(dict(area='holding', address=address, type='int16', order=order, scale=0.1,
                     offset=-40.0, expected=f64bits(float(signed) * 0.1 + -40.0), kind='f64'))
    address += 1 + rng.randint(0, 3)
for a in range(0, 40, 3):
    raw, expected, kindname = value_for('float32')
    place(INP, a, wire32(raw, 'ABCD'))
    tags.append(dict(area='input', address=a, type='float32', order='ABCD', expected=expected,
                     kind=kindname))
for a in range(0, 2500, 7):
    COILS[a] = rng.randint(0, 1)
    tags.append(dict(area='coil', address=a, type='bool', order='ABCD', expected=COILS[a],
                     kind='bool'))
for a in range(5, 60, 2):
    DISC[a] = rng.randint(0, 1)
    tags.append(dict(area='discrete', address=a, type='bool', order='ABCD', expected=DISC[a],
                     kind='bool'))
# Past the holding block: the server answers exception 2 (illegal data address).
tags.append(dict(area='holding', address=1500, type='uint16', order='ABCD', expected=None,
                 kind='exception'))
for t in tags:
    t['expected'] = None if t['expected'] is None else str(t['expected'])

s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()

def stop_on_eof():
    sys.stdin.read()
    os._exit(0)

threading.Thread(target=stop_on_eof, daemon=True).start()
if kind == 'tk':
    import modbus_tk.defines as cst
    from modbus_tk import modbus_tcp
    server = modbus_tcp.TcpServer(port=port, address='127.0.0.1')
    server.start()
    slave = server.add_slave(1)
    blocks = (('h', cst.HOLDING_REGISTERS, HOLD), ('i', cst.ANALOG_INPUTS, INP),
              ('c', cst.COILS, COILS), ('d', cst.DISCRETE_INPUTS, DISC))
    for name, block, values in blocks:
        slave.add_block(name, block, 0, len(values))
        slave.set_values(name, 0, values)
    print(json.dumps(dict(port=port, tags=tags)), flush=True)
    threading.Event().wait()
else:
    from pymodbus import FramerType
    from pymodbus.datastore import (ModbusDeviceContext, ModbusSequentialDataBlock,
                                    ModbusServerContext)
    from pymodbus.server import StartTcpServer
    # pymodbus maps request address a to block index a + 1: blocks start at 1.
    block = ModbusSequentialDataBlock
    device = ModbusDeviceContext(di=block(1, DISC), co=block(1, COILS), ir=block(1, INP),
                                 hr=block(1, HOLD))
    context = ModbusServerContext(devices={1: device}, single=False)
    framer = FramerType.RTU if kind == 'pymodbus-rtu' else FramerType.SOCKET
    print(json.dumps(dict(port=port, tags=tags)), flush=True)
    StartTcpServer(context=context, address=('127.0.0.1', port), framer=framer)
"#;

/// A running peer; dropping it closes its stdin (it exits) and reaps it.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    port: u16,
    tags: Vec<serde_json::Value>,
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_peer(kind: &str, seed: u32) -> Peer {
    let mut child = Command::new(peer_python())
        .args(["-c", PEER, kind, &seed.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the Python peer");
    let stdin = child.stdin.take();
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let manifest: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("peer manifest {line:?}: {e}"));
    let port = manifest["port"].as_u64().expect("port") as u16;
    let tags = manifest["tags"].as_array().expect("tags").clone();
    Peer {
        child,
        stdin,
        port,
        tags,
    }
}

fn tag_config(index: usize, t: &serde_json::Value) -> ModbusTag {
    let area = match t["area"].as_str().unwrap() {
        "holding" => Area::Holding,
        "input" => Area::Input,
        "coil" => Area::Coil,
        "discrete" => Area::Discrete,
        other => panic!("area {other}"),
    };
    let data_type = match t["type"].as_str().unwrap() {
        "bool" => DataType::Bool,
        "int16" => DataType::Int16,
        "uint16" => DataType::Uint16,
        "int32" => DataType::Int32,
        "uint32" => DataType::Uint32,
        "int64" => DataType::Int64,
        "uint64" => DataType::Uint64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "string" => DataType::String,
        other => panic!("type {other}"),
    };
    let order = match t["order"].as_str().unwrap() {
        "ABCD" => WordOrder::Abcd,
        "CDAB" => WordOrder::Cdab,
        "BADC" => WordOrder::Badc,
        "DCBA" => WordOrder::Dcba,
        other => panic!("order {other}"),
    };
    ModbusTag {
        name: format!("t{index}"),
        area,
        address: t["address"].as_u64().unwrap() as u16,
        data_type,
        order,
        bit: t.get("bit").and_then(|b| b.as_u64()).map(|b| b as u8),
        length: t.get("length").and_then(|l| l.as_u64()).unwrap_or(0) as u16,
        scale: t.get("scale").and_then(|s| s.as_f64()).unwrap_or(1.0),
        offset: t.get("offset").and_then(|s| s.as_f64()).unwrap_or(0.0),
    }
}

fn device(peer: &Peer, protocol: Protocol, max_inflight: u32) -> DeviceConfig {
    {
        let mut d = DeviceConfig::modbus(
            "peer",
            protocol,
            &format!("127.0.0.1:{}", peer.port),
            1,
            Duration::from_millis(100),
            peer.tags
                .iter()
                .enumerate()
                .map(|(i, t)| tag_config(i, t))
                .collect(),
        );
        d.timeout = Duration::from_secs(5);
        d.max_inflight = max_inflight;
        let m = d.modbus_part_mut().expect("a Modbus device");
        m.max_registers = 30;
        m.max_bits = 2000;
        m.max_hole = 2;
        d
    }
}

fn connect(port: u16) -> TcpStream {
    // The peer prints its port just before it listens: retry, bounded.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => {
                stream
                    .set_read_timeout(Some(Duration::from_secs(10)))
                    .unwrap();
                stream.set_nodelay(true).unwrap();
                return stream;
            }
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connect to peer on port {port}: {e}"),
        }
    }
}

/// Polls `cycles` full cycles over a real socket, reading in chunks of
/// `read_size` bytes so frames straddle reads. Returns every sample.
fn poll(device: &DeviceConfig, port: u16, cycles: usize, read_size: usize) -> Vec<Sample> {
    let mut session = ModbusSession::for_device(device, TagId(0)).expect("session");
    let mut stream = connect(port);
    let mut out = vec![Sample::default(); session.samples_per_frame_max().max(1) * 2];
    let mut samples = Vec::new();
    let mut request = [0u8; REQUEST_BYTES_MAX];
    let mut buf = vec![0u8; read_size];
    let mut now_ns = 0u64;
    for cycle in 0..cycles {
        assert_eq!(session.start_cycle(), 0);
        // Bounded: every round sends or receives at least one byte or fails.
        for _ in 0..100_000 {
            while let Some(len) = session.poll_transmit(now_ns, &mut request) {
                stream.write_all(&request[..len]).expect("send");
            }
            if session.cycle_done() {
                break;
            }
            let read = stream.read(&mut buf).expect("read from peer");
            assert!(read > 0, "peer closed the connection in cycle {cycle}");
            now_ns += 1;
            let mut chunk = &buf[..read];
            while !chunk.is_empty() {
                let received = session
                    .receive(chunk, 1_000 + cycle as i64, &mut out)
                    .unwrap_or_else(|e| panic!("cycle {cycle}: {e:?}"));
                samples.extend_from_slice(&out[..received.samples]);
                chunk = &chunk[received.consumed..];
            }
        }
        assert!(session.cycle_done(), "cycle {cycle} did not finish");
    }
    samples
}

fn check(peer: &Peer, samples: &[Sample], cycles: usize) {
    let mut checked = 0;
    let mut rows = 0;
    let mut texts = 0;
    let mut at = 0;
    while at < samples.len() {
        let span = record_span(&samples[at..]).expect("whole samples");
        let records = &samples[at..at + span];
        at += span;
        rows += 1;
        let sample = &records[0];
        let t = &peer.tags[sample.tag_id().0 as usize];
        let what = format!("{t} -> {sample:?}");
        if t["kind"] == "exception" {
            assert_eq!(sample.quality(), Quality::modbus_exception(2), "{what}");
            continue;
        }
        assert_eq!(sample.quality(), Quality::GOOD, "{what}");
        if t["kind"] == "text" {
            let length = t["length"].as_u64().unwrap() as usize;
            assert_eq!(span, text_records(length), "{what}");
            let text = text_at(records).expect("a text sample");
            let mut bytes = vec![0; text.len()];
            text.copy_to(&mut bytes);
            let expected = t["expected"].as_str().unwrap();
            let expected: Vec<u8> = (0..expected.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&expected[i..i + 2], 16).unwrap())
                .collect();
            assert_eq!(bytes, expected, "{what}");
            texts += 1;
            continue;
        }
        let expected: u64 = t["expected"].as_str().unwrap().parse().unwrap();
        assert_eq!(sample.value, expected, "{what}");
        let kind = match t["kind"].as_str().unwrap() {
            "f64" => 0,
            "i64" => 1,
            "u64" => 2,
            "bool" => 3,
            "str8" => 4,
            other => panic!("{other}"),
        };
        assert_eq!(sample.kind_byte(), kind, "{what}");
        checked += 1;
    }
    assert_eq!(rows, peer.tags.len() * cycles);
    assert_eq!(texts, 4 * cycles, "one long string per order per cycle");
    assert!(checked > 400, "only {checked} values compared");
}

#[test]
fn modbus_tk_every_type_and_order_pipelined() {
    let peer = start_peer("tk", 7);
    let device = device(&peer, Protocol::ModbusTcp, 4);
    let plan = millrace::protocol::modbus::plan_device(device.modbus_part().unwrap(), TagId(0));
    assert!(
        plan.requests.len() > 8,
        "the planner should split: {}",
        plan.requests.len()
    );
    let samples = poll(&device, peer.port, 3, 7);
    check(&peer, &samples, 3);
}

#[test]
fn pymodbus_every_type_and_order_one_in_flight() {
    // pymodbus answers only the first ADU of a segment: one request in flight.
    let peer = start_peer("pymodbus", 11);
    let device = device(&peer, Protocol::ModbusTcp, 1);
    let samples = poll(&device, peer.port, 2, 64);
    check(&peer, &samples, 2);
}

#[test]
fn pymodbus_rtu_over_tcp() {
    let peer = start_peer("pymodbus-rtu", 13);
    let device = device(&peer, Protocol::ModbusRtuTcp, 1);
    let samples = poll(&device, peer.port, 2, 5);
    check(&peer, &samples, 2);
}
