//! Text end to end: a real `millrace run` polls an independent Modbus
//! server (modbus-tk 1.1.5) holding a 40-character recipe name, a 250-byte
//! label field and a short status, and delivers to two kdb+ endpoints at
//! once: the tickerplant stand-in (journalling, recording every row) and an
//! aiokdb 0.1.38 server (an independent kdb+ IPC implementation) that
//! decodes every `.u.upd` it gets, with the `text` column in another place.
//! The texts must arrive whole in both, in the stand-in's journal as an
//! independent reader (aiokdb) parses it, in `wal inspect`, and again
//! through `millrace replay`.

mod common;
mod kdb_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kdb_support::{run_python, spawn_python, Lines};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};
use serde_json::Value;

const RECIPE: &str = "A forty character recipe name, at most!!";
const LABEL: &str = "line 3 / station 12: a label in a 250-byte field";
const STATUS: &str = "OK";

/// The Modbus peer: holding registers 0..9 = 1..10, the recipe (40 bytes)
/// at 100, the label (250-byte field, NUL-padded) at 130, the status
/// (8-byte field) at 260. Prints its port; runs until killed.
const MODBUS_PEER: &str = r#"
import json, socket, sys, threading
import modbus_tk.defines as cst
from modbus_tk import modbus_tcp
recipe, label, status = (a.encode() for a in sys.argv[1:4])
HOLD = [0] * 400
def place(address, raw, width):
    raw = raw.ljust(width, b"\0")
    for i in range(0, width, 2):
        HOLD[address + i // 2] = raw[i] << 8 | raw[i + 1]
for i in range(10):
    HOLD[i] = i + 1
place(100, recipe, 40)
place(130, label, 250)
place(260, status, 8)
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
server = modbus_tcp.TcpServer(port=port, address="127.0.0.1")
server.start()
slave = server.add_slave(1)
slave.add_block("h", cst.HOLDING_REGISTERS, 0, len(HOLD))
slave.set_values("h", 0, HOLD)
print(port, flush=True)
threading.Event().wait()
"#;

/// An aiokdb kdb+ server on 127.0.0.1: accepts any login, answers sync
/// messages with (::), and prints each `.u.upd` as JSON: the column types,
/// syms, texts and seqs (columns time, sym, text, device, value, quality,
/// seq, as that sink sends them).
const KDB_PEER: &str = r#"
import asyncio, json
import aiokdb as a
from aiokdb.server import KdbReader
T = a.TypeEnum
async def handle(reader, writer):
    hello = b""
    while not hello.endswith(b"\0"):
        chunk = await reader.read(1)
        if not chunk:
            return
        hello += chunk
    writer.write(bytes([min(hello[-2], 3)]))
    await writer.drain()
    q = KdbReader(reader, raise_krr=False)
    while True:
        try:
            mt, k = await q._read()
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        if k.t == T.K and len(k.kK()) == 3:
            fn, table, data = k.kK()
            cols = data.kK()
            print(json.dumps({"fn": fn.aS(), "table": table.aS(),
                              "types": [int(c.t) for c in cols],
                              "syms": list(cols[1].kS()),
                              "texts": [t.aS() for t in cols[2].kK()],
                              "seqs": list(cols[6].kJ())}), flush=True)
        if mt == 1:
            writer.write(a.b9(a.kNil, msgtype=2))
            await writer.drain()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"#;

/// Reads a tick.q log as `-11!` streams it (aiokdb finding each chunk's
/// end) and prints `seq text` for every row with a text (text last).
const READ_JOURNAL: &str = r#"
import sys
from aiokdb import _d9_unpackfrom
rb = open(sys.argv[1], "rb").read()
assert rb[:2] == b"\xff\x01", rb[:8].hex()
offset = 14
while offset < len(rb):
    k, offset = _d9_unpackfrom(rb, offset)
    fn, table, data = k.kK()
    cols = data.kK()
    for seq, text in zip(cols[5].kJ(), cols[6].kK()):
        if len(text.aS()) > 0:
            print(seq, text.aS())
"#;

/// A child killed and reaped when dropped (the peers run until killed).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn write_config(dir: &Path, modbus_port: &str, tp: &str, peer: &str) -> std::path::PathBuf {
    let mut text = format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n\n\
         [[sink]]\nname = \"peer\"\nkind = \"kdb\"\naddress = \"{peer}\"\nuser = \"feed\"\n\
         table = \"plc\"\n\
         columns = [\"time\", \"sym\", \"text\", \"device\", \"value\", \"quality\", \"seq\"]\n\
         batch_rows = 100\nbatch_age = \"5ms\"\n\n\
         [[device]]\nname = \"press-01\"\nprotocol = \"modbus-tcp\"\n\
         address = \"127.0.0.1:{modbus_port}\"\nunit_id = 1\npoll_interval = \"50ms\"\n"
    );
    for i in 0..10 {
        text.push_str(&format!(
            "\n[[device.tag]]\nname = \"press01.n{i}\"\narea = \"holding\"\naddress = {i}\n\
             type = \"uint16\"\n"
        ));
    }
    for (name, address, length) in [("recipe", 100, 40), ("label", 130, 250), ("status", 260, 8)] {
        text.push_str(&format!(
            "\n[[device.tag]]\nname = \"press01.{name}\"\narea = \"holding\"\n\
             address = {address}\ntype = \"string\"\nlength = {length}\n"
        ));
    }
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn millrace(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(args)
        .output()
        .expect("run millrace")
}

fn signal(child: &Child, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success());
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "millrace run did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `seq -> (sym, text)` of every text a recorder saw, checked against the
/// peer's texts by name.
fn texts_by_seq(recorder: &Arc<Mutex<RowRecorder>>) -> BTreeMap<i64, (String, String)> {
    let r = recorder.lock().unwrap();
    let mut out = BTreeMap::new();
    for (table, sym, seq, text) in &r.texts {
        assert_eq!(table, "plc");
        let expected = match sym.as_str() {
            "press01.recipe" => RECIPE,
            "press01.label" => LABEL,
            "press01.status" => STATUS,
            other => panic!("text for {other}: {text:?}"),
        };
        assert_eq!(text, expected, "seq {seq}");
        assert!(
            out.insert(*seq, (sym.clone(), text.clone())).is_none(),
            "seq {seq} twice"
        );
    }
    out
}

fn recorder_tp(journal: Option<&Path>) -> (Tickerplant, Arc<Mutex<RowRecorder>>) {
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        journal: journal.map(Path::to_path_buf),
        ..Default::default()
    };
    (Tickerplant::bind("127.0.0.1:0", options).unwrap(), recorder)
}

#[test]
fn strings_reach_two_kdb_peers_the_journal_inspect_and_replay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut modbus = spawn_python(MODBUS_PEER, &[RECIPE, LABEL, STATUS]);
    let modbus_lines = Lines::new(modbus.stdout.take().unwrap());
    let modbus = Killed(modbus);
    let modbus_port = modbus_lines.next().expect("the Modbus peer's port");
    let mut kdb = spawn_python(KDB_PEER, &[]);
    let kdb_lines = Lines::new(kdb.stdout.take().unwrap());
    let kdb = Killed(kdb);
    let kdb_port = kdb_lines.next().expect("the kdb+ peer's port");
    let journal = dir.path().join("plc.log");
    let (tp, recorder) = recorder_tp(Some(&journal));
    let config = write_config(
        dir.path(),
        &modbus_port,
        &tp.local_addr().to_string(),
        &format!("127.0.0.1:{kdb_port}"),
    );
    let check = millrace(&["check-config", config.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{summary}");
    assert!(
        summary.contains("text:())"),
        "the tick.q schema line: {summary}"
    );

    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start millrace run");
    // Both peers have seen several polls of every text.
    let mut peer_messages: Vec<Value> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let recorded = recorder.lock().unwrap().texts.len();
        let peer_texts: usize = peer_messages
            .iter()
            .map(|m| {
                m["texts"]
                    .as_array()
                    .map_or(0, |t| t.iter().filter(|t| t != &"").count())
            })
            .sum();
        if recorded >= 15 && peer_texts >= 15 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "texts after 60 s: stand-in {recorded}, aiokdb {peer_texts}"
        );
        if peer_texts < 15 {
            let line = kdb_lines.next().expect("a message at the aiokdb peer");
            peer_messages.push(serde_json::from_str(&line).unwrap());
        } else {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    signal(&run, 15);
    assert!(wait_exit(&mut run, Duration::from_secs(30)).success());
    drop(modbus);
    drop(kdb);
    tp.stop();

    // The stand-in: every text whole, on a row whose value is 0n.
    let texts = texts_by_seq(&recorder);
    let rows = recorder.lock().unwrap().rows.clone();
    for (_, sym, value, seq) in &rows {
        match texts.get(seq) {
            Some((text_sym, _)) => {
                assert_eq!(sym, text_sym);
                assert!(value.is_nan(), "a text row's value is 0n");
            }
            None => assert!(
                sym.starts_with("press01.n") && !value.is_nan(),
                "{sym} {seq}"
            ),
        }
    }
    for name in ["press01.recipe", "press01.label", "press01.status"] {
        assert!(texts.values().any(|(sym, _)| sym == name), "no {name}");
    }

    // The aiokdb peer: the same texts at the same seqs, text third.
    let mut peer_texts = BTreeMap::new();
    for m in &peer_messages {
        assert_eq!(
            (m["fn"].as_str(), m["table"].as_str()),
            (Some(".u.upd"), Some("plc"))
        );
        assert_eq!(m["types"], serde_json::json!([16, 11, 0, 11, 9, 6, 7]));
        let (syms, seqs) = (m["syms"].as_array().unwrap(), m["seqs"].as_array().unwrap());
        for ((sym, text), seq) in syms.iter().zip(m["texts"].as_array().unwrap()).zip(seqs) {
            let text = text.as_str().unwrap();
            if !text.is_empty() {
                peer_texts.insert(
                    seq.as_i64().unwrap(),
                    (sym.as_str().unwrap().to_string(), text.to_string()),
                );
            }
        }
    }
    assert!(peer_texts.len() >= 15);
    for (seq, got) in &peer_texts {
        // What the stand-in got at that seq (both sinks read one WAL).
        if let Some(ours) = texts.get(seq) {
            assert_eq!(got, ours, "seq {seq}");
        }
        let expected = match got.0.as_str() {
            "press01.recipe" => RECIPE,
            "press01.label" => LABEL,
            _ => STATUS,
        };
        assert_eq!(got.1, expected, "seq {seq}");
    }

    // The journal, as an independent reader parses it: the same texts.
    let journal_lines = run_python(READ_JOURNAL, &[journal.to_str().unwrap()]);
    let journal_texts: BTreeMap<i64, String> = journal_lines
        .iter()
        .map(|l| {
            let (seq, text) = l.split_once(' ').unwrap();
            (seq.parse().unwrap(), text.to_string())
        })
        .collect();
    let stand_in: BTreeMap<i64, String> = texts
        .iter()
        .map(|(seq, (_, text))| (*seq, text.clone()))
        .collect();
    assert_eq!(journal_texts, stand_in);

    // wal inspect counts the text samples, with no anomaly.
    let wal = dir.path().join("wal");
    let out = millrace(&["wal", "inspect", "--json", wal.to_str().unwrap()]);
    assert!(out.status.success());
    let inspection: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        inspection["anomalies"].as_array().unwrap().is_empty(),
        "{inspection}"
    );
    let text_samples = inspection["text_samples"].as_u64().unwrap();
    assert!(text_samples >= texts.len() as u64, "{inspection}");
    assert!(inspection["rows"].as_u64() < inspection["samples"].as_u64());
    let durable = inspection["durable_seq"].as_u64().unwrap();
    let text = millrace(&["wal", "inspect", wal.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("text samples"), "{text}");

    // Replay to a fresh stand-in: the same texts at the same seqs.
    let (tp2, replayed) = recorder_tp(None);
    let to = tp2.local_addr().to_string();
    let columns = "time,sym,device,value,quality,seq,text";
    let replay = |extra: &[&str]| {
        let mut args = vec!["replay", "--wal", wal.to_str().unwrap(), "--to", &to];
        args.extend_from_slice(extra);
        millrace(&args)
    };
    let out = replay(&["--columns", columns]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = texts_by_seq(&replayed);
    assert_eq!(all.len() as u64, text_samples);
    for (seq, text) in &texts {
        assert_eq!(all.get(seq), Some(text), "seq {seq}");
    }
    // Without a text column the replay refuses, and says what to add.
    let out = replay(&[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--columns has no `text`"), "{stderr}");
    // From a seq inside a text sample: that sample is not sent (its head's
    // seq is before the range), the next ones are, whole.
    let (&head, _) = all
        .iter()
        .find(|(_, (sym, _))| sym == "press01.label")
        .unwrap();
    let (tp3, partial) = recorder_tp(None);
    let to3 = tp3.local_addr().to_string();
    let from = (head + 1).to_string();
    let out = millrace(&[
        "replay",
        "--wal",
        wal.to_str().unwrap(),
        "--to",
        &to3,
        "--columns",
        columns,
        "--from-seq",
        &from,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tail = texts_by_seq(&partial);
    let expected: BTreeMap<i64, (String, String)> = all
        .range(head + 1..)
        .map(|(s, t)| (*s, t.clone()))
        .collect();
    assert_eq!(tail, expected);
    assert!(partial
        .lock()
        .unwrap()
        .rows
        .iter()
        .all(|r| r.3 > head && (r.3 as u64) < durable));
    tp2.stop();
    tp3.stop();
}
