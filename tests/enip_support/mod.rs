//! Shared by the EtherNet/IP peer tests: cm-ethernetip's Logix tag server
//! (every supported type, arrays, a STRING, a UDT and two symbols a tag
//! list hides) from its own venv, started and
//! waited for; a peer that cannot start fails the test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Serves the tags; argv: port, then options that make it a module of
/// another kind (each a real service of the library left out or checked,
/// see `start_with`):
/// - `no-large`: no Large Forward Open (0x5B) in its Connection Manager,
///   so the library's dispatcher answers it "service not supported"
///   (0x08), as a 1756-ENBT or older firmware does.
/// - `slow`: every connected request is answered 300 ms late with the
///   server's event loop blocked meanwhile, as a busy module does.
/// - `route=HEX`: a chassis: a Forward Open whose connection path does not
///   start with these port segments (`0100`: backplane, slot 0) is refused
///   with the library's Forward Open error, extended status 0x0312 (link
///   address not valid), as a ControlLogix refuses an empty slot.
///   cm-ethernetip and cpppo both skip a route's port segments unchecked.
/// - `log-open`: one line per Forward Open it accepts or refuses, on
///   stdout (`forward-open 0x5b 4002`, `route-refused 0103`).
///
/// Three things of cm-ethernetip 0.1.0 are worked around here, all outside
/// what is tested: its `TagDatabase` knows no unsigned types (USINT, UINT,
/// UDINT, ULINT: their sizes are added to its size table); it answers a
/// structure's Read Tag with the structure handle alone where a Logix
/// controller sends `A0 02` and then the handle (its own `TagClient`
/// expects the four bytes too): the `A0 02` is put back in front; and its
/// Symbol class serves Get Instance Attribute List at instance 0 only, so
/// the second page of a tag list (asked from an instance, by pycomm3 too)
/// is refused as not supported: the service is added to the instances.
pub const SERVER: &str = r#"
import sys, struct, asyncio, dataclasses
from ethernetip.cip.identity_info import IdentityInfo
from ethernetip.logix.logix_dispatcher import LogixDispatcher
from ethernetip.logix.tag_database import TagDatabase, TemplateMember
from ethernetip.logix import data_types as dt, tag_services as ts
from ethernetip.protocol.eip_adapter import EipAdapter

port = int(sys.argv[1])
options = sys.argv[2:]

sizes = dt.get_element_size
def get_element_size(tag_type):
    extra = {0xC6: 1, 0xC7: 2, 0xC8: 4, 0xC9: 8}.get(tag_type & 0xFF)
    return extra if extra is not None else sizes(tag_type)
dt.get_element_size = get_element_size

build = ts._build_read_response
def build_read_response(tag, service_code, offset, length, partial):
    resp = build(tag, service_code, offset, length, partial)
    if dt.get_element_size(tag.tag_type) < 0:
        resp = dataclasses.replace(resp, data=struct.pack("<H", 0x02A0) + resp.data)
    return resp
ts._build_read_response = build_read_response

from ethernetip.cip.service import CipServiceDefinition
from ethernetip.logix.symbol_object import SymbolObject, GET_INSTANCE_ATTRIBUTE_LIST
symbol_object_init = SymbolObject.__init__
def symbol_object_with_paging(self, tags):
    symbol_object_init(self, tags)
    self.cip_class.add_instance_service(CipServiceDefinition(
        GET_INSTANCE_ATTRIBUTE_LIST, "Get_Instance_Attribute_List", self._handle_browse))
SymbolObject.__init__ = symbol_object_with_paging

tags = TagDatabase()
def add(name, tag_type, packed, count=1):
    tag = tags.add_tag(name, tag_type, element_count=count)
    tag.set_data(packed)
    return tag

add("Counter", dt.DINT, struct.pack("<i", -123456789))
add("Program:Main.Temps", dt.REAL, struct.pack("<5f", *[i * 1.5 for i in range(5)]), 5)
add("Flags", dt.DINT, struct.pack("<i", 0b100000))
add("Alarms", dt.DWORD, struct.pack("<II", 0xAAAAAAAA, 0x55555555), 2)
add("Running", dt.BOOL, bytes([1]))
add("S", dt.SINT, struct.pack("<b", -5))
add("US", 0xC6, bytes([250]))
add("I", dt.INT, struct.pack("<h", -1234))
add("UI", 0xC7, struct.pack("<H", 54321))
add("UD", 0xC8, struct.pack("<I", 3000000000))
add("Big", dt.LINT, struct.pack("<q", -1234567890123))
add("UL", 0xC9, struct.pack("<Q", 18000000000000000000))
add("R", dt.REAL, struct.pack("<f", 3.25))
add("LR", dt.LREAL, struct.pack("<d", -1.0e100))
add("Ints", dt.INT, struct.pack("<10h", *[i * 3 - 5 for i in range(10)]), 10)
add("Wave", dt.REAL, struct.pack("<200f", *[float(i) for i in range(200)]), 200)
add("Scaled", dt.INT, struct.pack("<h", 100))

string = tags.add_template("STRING", TemplateMember("LEN", dt.DINT),
                           TemplateMember("DATA", dt.SINT, 82))
string.struct_handle = 0x0FCE
name = tags.add_struct_tag("Name", string)
text = b"pump 7"
name.set_data(struct.pack("<i", len(text)) + text.ljust(84, b"\0"))

# For discovery: a structure that is not a STRING, and two symbols a tag
# list must leave out (a `__` name, the system bit of the type).
motor = tags.add_template("MOTOR", TemplateMember("Speed", dt.REAL),
                          TemplateMember("Amps", dt.REAL))
tags.add_struct_tag("Motor", motor).set_data(struct.pack("<2f", 1450.0, 12.5))
add("__Hidden", dt.DINT, struct.pack("<i", 7))
add("SysFlag", dt.DINT, struct.pack("<i", 9)).symbol_type |= 0x1000

# A clean stop of the client is seen here: one line per Forward Close and
# per UnregisterSession, on stdout.
from ethernetip.connections.connection_manager import ConnectionManagerObject
from ethernetip.protocol.messages import UnregisterSessionMessage
forward_close = ConnectionManagerObject._handle_forward_close
def handle_forward_close(self, instance, request):
    print("forward-close", flush=True)
    return forward_close(self, instance, request)
ConnectionManagerObject._handle_forward_close = handle_forward_close
# Option `slow`: each connected request is answered 300 ms late, with the
# event loop blocked meanwhile, as a busy module does: a client that stops
# has a request in flight and its closing messages wait unread.
from ethernetip.protocol.messages import SendUnitDataMessage
import time
dispatch = EipAdapter._dispatch_message
def dispatch_message(self, msg, session_handle, local_addr):
    if isinstance(msg, UnregisterSessionMessage):
        print("unregister-session", flush=True)
    if "slow" in options and isinstance(msg, SendUnitDataMessage):
        time.sleep(0.3)
    return dispatch(self, msg, session_handle, local_addr)
EipAdapter._dispatch_message = dispatch_message

from ethernetip.connections import connection_manager as cm_module
from ethernetip.connections.forward_open_request import ForwardOpenRequest
if "no-large" in options:
    cm_init = ConnectionManagerObject.__init__
    def cm_without_large(self):
        cm_init(self)
        self._cip_class._instance_services.pop(cm_module.LARGE_FORWARD_OPEN_SERVICE)
    ConnectionManagerObject.__init__ = cm_without_large
route = next((bytes.fromhex(o[6:]) for o in options if o.startswith("route=")), None)
process_forward_open = ConnectionManagerObject._process_forward_open
def process_checked(self, request, is_large):
    fo = ForwardOpenRequest.parse(request.data, is_large)
    ports = bytes(fo.connection_path).split(b"\x20\x02", 1)[0]
    if route is not None and ports != route:
        if "log-open" in options:
            print("route-refused", ports.hex(), flush=True)
        return cm_module._forward_open_error(request.service_code, 0x0312)
    if "log-open" in options:
        print(f"forward-open {request.service_code:#x} {fo.ot_params.connection_size}",
              flush=True)
    return process_forward_open(self, request, is_large)
ConnectionManagerObject._process_forward_open = process_checked

async def main():
    identity = IdentityInfo(product_name="millrace peer")
    adapter = EipAdapter(LogixDispatcher(tags, identity), identity)
    await adapter.listen("127.0.0.1", port)
    print("listening", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await adapter.close()

asyncio.run(main())
"#;

/// The Python of a peer's venv: `var` if set, else target/`venv`.
pub fn python(var: &str, venv: &str) -> PathBuf {
    let path = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/{venv}/bin/python"))
    });
    assert!(
        path.exists(),
        "{venv} Python {} is missing: run scripts/setup-peers.sh (tests never skip a peer)",
        path.display()
    );
    path
}

/// A peer server; killed and reaped on drop.
pub struct Peer(pub Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn start(port: u16) -> Peer {
    start_logged(port).0
}

/// The peer and the lines it prints (one per Forward Close and per
/// UnregisterSession it receives), gathered by a thread.
pub fn start_logged(port: u16) -> (Peer, Arc<Mutex<Vec<String>>>) {
    start_with(port, &[])
}

/// The peer with `options` (see `SERVER`), and the lines it prints.
pub fn start_with(port: u16, options: &[&str]) -> (Peer, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(python(
        "MILLRACE_CM_ETHERNETIP_PYTHON",
        "cm-ethernetip-venv",
    ))
    .args(["-c", SERVER, &port.to_string()])
    .args(options)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("start the cm-ethernetip peer");
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stdout = child.stdout.take().expect("the peer's stdout");
    let gathered = Arc::clone(&lines);
    let (listening_tx, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line == "listening" {
                let _ = listening_tx.send(());
            } else {
                gathered.lock().unwrap().push(line);
            }
        }
    });
    // The peer says when its own socket listens: a probe connection could
    // reach another program's listener on the port instead.
    let mut peer = Peer(child);
    let started = Instant::now();
    while listening.recv_timeout(Duration::from_millis(50)).is_err() {
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!("the cm-ethernetip peer on port {port} exited before listening: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the cm-ethernetip peer never listened on port {port}"
        );
    }
    (peer, lines)
}

impl Peer {
    /// Whether the peer process is still running (for failure messages).
    pub fn state(&mut self) -> String {
        match self.0.try_wait() {
            Ok(None) => "the peer is running".into(),
            Ok(Some(status)) => format!("the peer exited: {status}"),
            Err(e) => format!("the peer's state is unknown: {e}"),
        }
    }
}

/// `peer` once its port takes connections; fails if it exits first or
/// never listens.
pub fn wait_listening(mut peer: Peer, port: u16, what: &str) -> Peer {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = peer.0.try_wait() {
            panic!("{what} server exited before listening: {status}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} server never listened"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(stdin) = peer.0.stdin.as_mut() {
        let _ = stdin.flush();
    }
    peer
}
