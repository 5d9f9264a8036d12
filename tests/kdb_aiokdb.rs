//! The codec, the publisher and the stand-in against aiokdb 0.1.38, an
//! independent pure-Python implementation of kdb+ IPC (server and client).

mod common;
mod kdb_support;

use std::sync::{Arc, Mutex};

use kdb_support::{
    finish, run_python, samples, spawn_python, symbol_table, text_rows, text_samples, Lines,
};
use millrace::config::{Secret, TimeType};
use millrace::kdb::types::{attr, null, ty};
use millrace::kdb::{
    decode_message, encode_message, kdb_time, Atom, Compression, Data, DecodeLimits, KdbError,
    MsgType, Publisher, PublisherOptions, RowRecorder, Schema, Tickerplant, TickerplantOptions, K,
};
use millrace::ValueKind;
use serde_json::Value;

const ENCODE_SCRIPT: &str = r#"
import uuid
import aiokdb as a
T = a.TypeEnum
def vec(t, accessor, values, attr=0):
    k = a.ktn(t, attr=attr)
    getattr(k, accessor)().extend(values)
    return k
cases = [
    ("int", a.ki(7)),
    ("long_null", a.kj(a.Nulls.j)),
    ("float", a.kf(1.5)),
    ("sym", a.ks("abc")),
    ("bool", a.kb(True)),
    ("byte", a.kg(255)),
    ("short_inf", a.kh(a.Infs.h)),
    ("real", a.ke(2.5)),
    ("char", a.kc("x")),
    ("guid", a.kuu(uuid.UUID("01234567-89ab-cdef-0123-456789abcdef"))),
    ("timestamp", a.kp(123456789)),
    ("longs", vec(T.KJ, "kJ", [1, a.Nulls.j, a.Infs.j, -a.Infs.j])),
    ("timespans", vec(T.KN, "kJ", [0, 86399999999999])),
    # aiokdb 0.1.38 packs int and short vectors as unsigned: no negatives here.
    ("dates", vec(T.KD, "kI", [0, 9000, a.Infs.i])),
    ("floats", vec(T.KF, "kF", [1.25, float("inf")])),
    ("shorts", vec(T.KH, "kH", [a.Infs.h, 3])),
    ("syms_sorted", vec(T.KS, "kS", ["a", "b", "c"], a.AttrEnum.SORTED)),
    ("string", a.cv("hello")),
    ("list", a.kk(a.ki(1), a.ks("x"), a.cv("yz"))),
    ("dict", a.xd(vec(T.KS, "kS", ["a", "b"]), vec(T.KI, "kI", [2, 3]))),
    ("table", a.xt(a.xd(vec(T.KS, "kS", ["time", "sym"]),
                        a.kk(vec(T.KN, "kJ", [1, 2]), vec(T.KS, "kS", ["x", "y"]))))),
    ("error", a.krr("oops")),
    ("nil", a.kNil),
]
for name, k in cases:
    print(name, a.b9(k, msgtype=1).hex())
"#;

fn expected(name: &str) -> K {
    let syms = |s: &[&str]| K::symbols(s);
    match name {
        "int" => K::int(7),
        "long_null" => K::long(null::LONG),
        "float" => K::float(1.5),
        "sym" => K::symbol("abc"),
        "bool" => K::atom(ty::BOOL, Atom::Byte(1)),
        "byte" => K::atom(ty::BYTE, Atom::Byte(255)),
        "short_inf" => K::atom(ty::SHORT, Atom::Short(null::SHORT_INF)),
        "real" => K::atom(ty::REAL, Atom::Real(2.5)),
        "char" => K::atom(ty::CHAR, Atom::Byte(b'x')),
        "guid" => K::atom(
            ty::GUID,
            Atom::Guid([
                0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab,
                0xcd, 0xef,
            ]),
        ),
        "timestamp" => K::atom(ty::TIMESTAMP, Atom::Long(123456789)),
        "longs" => K::vector(
            ty::LONG,
            Data::Longs(vec![1, null::LONG, null::LONG_INF, -null::LONG_INF]),
        ),
        "timespans" => K::vector(ty::TIMESPAN, Data::Longs(vec![0, 86_399_999_999_999])),
        "dates" => K::vector(ty::DATE, Data::Ints(vec![0, 9000, null::INT_INF])),
        "floats" => K::vector(ty::FLOAT, Data::Floats(vec![1.25, f64::INFINITY])),
        "shorts" => K::vector(ty::SHORT, Data::Shorts(vec![null::SHORT_INF, 3])),
        "syms_sorted" => syms(&["a", "b", "c"]).with_attr(attr::SORTED),
        "string" => K::string("hello"),
        "list" => K::list(vec![K::int(1), K::symbol("x"), K::string("yz")]),
        "dict" => K::dict(
            syms(&["a", "b"]),
            K::vector(ty::INT, Data::Ints(vec![2, 3])),
        ),
        "table" => K::table(
            &["time", "sym"],
            vec![
                K::vector(ty::TIMESPAN, Data::Longs(vec![1, 2])),
                syms(&["x", "y"]),
            ],
        ),
        "error" => K::error("oops"),
        "nil" => K::null(),
        other => panic!("no expectation for {other}"),
    }
}

/// Messages aiokdb encodes decode to the right values, and our encoding of
/// those values is byte-identical to aiokdb's.
#[test]
fn aiokdb_messages_decode_to_the_right_values() {
    let lines = run_python(ENCODE_SCRIPT, &[]);
    assert_eq!(lines.len(), 23, "{lines:?}");
    for line in lines {
        let (name, hex) = line.split_once(' ').expect("name hex");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (header, k) = decode_message(&bytes, &DecodeLimits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(header.msg_type, MsgType::Sync, "{name}");
        assert_eq!(k, expected(name), "{name}");
        let mut ours = Vec::new();
        encode_message(&k, MsgType::Sync, &mut ours);
        assert_eq!(ours, bytes, "{name}: our bytes differ from aiokdb's");
    }
}

const SERVER_SCRIPT: &str = r#"
import asyncio, json, math, sys
import aiokdb as a
from aiokdb.server import KdbReader
T = a.TypeEnum
def col(k):
    t = int(k.t)
    if t == T.KS: return [t, list(k.kS())]
    if t in (T.KJ, T.KN, T.KP): return [t, list(k.kJ())]
    if t == T.KF: return [t, [None if math.isnan(x) else x for x in k.kF()]]
    if t == T.KG: return [t, list(k.kG())]
    if t == T.KI: return [t, list(k.kI())]
    # A general list: millrace's text column, one char vector per row.
    if t == T.K: return [t, [[int(x.t), x.aS()] for x in k.kK()]]
    return [t, None]
async def handle(reader, writer, done):
    hello = b""
    while not hello.endswith(b"\0"):
        chunk = await reader.read(1)
        if not chunk:
            return
        hello += chunk
    creds = hello[:-2].decode()
    if creds != "feed:secret":
        print(json.dumps({"refused": creds}), flush=True)
        writer.close()
        return
    writer.write(bytes([min(hello[-2], 3)]))
    await writer.drain()
    q = KdbReader(reader, raise_krr=False)
    while True:
        try:
            mt, k = await q._read()
        except asyncio.IncompleteReadError:
            break
        if k.t == T.K:
            items = k.kK()
            out = {"mt": int(mt), "fn": items[0].aS(), "table": items[1].aS(),
                   "cols": [col(c) for c in items[2].kK()]}
        else:
            out = {"mt": int(mt), "t": int(k.t), "text": k.aS() if k.t == T.KC else None}
        print(json.dumps(out), flush=True)
        if mt == 1:
            reply = a.krr("schema") if out.get("text") == "fail" else a.kNil
            writer.write(a.b9(reply, msgtype=2))
            await writer.drain()
    # The test logs in three times (p, p after reconnect, q): stop after the
    # third session, not the first, or a reconnect races the shutdown.
    ENDED[0] += 1
    if ENDED[0] == SESSIONS and not done.done():
        done.set_result(None)
SESSIONS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
ENDED = [0]
async def main():
    done = asyncio.get_running_loop().create_future()
    server = await asyncio.start_server(lambda r, w: handle(r, w, done), "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done, 60)
asyncio.run(main())
"#;

fn check_columns(msg: &Value, batch: &[millrace::Sample], first_seq: u64, time_type: TimeType) {
    let symbols = symbol_table();
    assert_eq!(msg["fn"], ".u.upd");
    assert_eq!(msg["table"], "plc");
    let cols = msg["cols"].as_array().expect("columns");
    assert_eq!(cols.len(), 6);
    let time_ty = match time_type {
        TimeType::Timespan => 16,
        TimeType::Timestamp => 12,
    };
    let types: Vec<i64> = cols.iter().map(|c| c[0].as_i64().unwrap()).collect();
    assert_eq!(types, [time_ty, 11, 11, 9, 6, 7]);
    for (i, s) in batch.iter().enumerate() {
        assert_eq!(
            cols[0][1][i].as_i64().unwrap(),
            kdb_time(s.ts_ns, time_type)
        );
        assert_eq!(cols[1][1][i], symbols.tag_name(s.tag_id()).unwrap());
        assert_eq!(cols[2][1][i], symbols.device_name(s.tag_id()).unwrap());
        let v = s.value_f64();
        if v.is_nan() {
            assert!(cols[3][1][i].is_null(), "row {i}: NaN is kdb+'s 0n");
        } else {
            assert_eq!(cols[3][1][i].as_f64().unwrap(), v);
        }
        assert_eq!(cols[4][1][i].as_i64().unwrap(), i64::from(s.quality as i32));
        assert_eq!(cols[5][1][i].as_u64().unwrap(), first_seq + i as u64);
    }
}

/// Our publisher's messages (plain and compressed, timespan and timestamp)
/// decode correctly in an aiokdb server; the chaser is acknowledged; an
/// error reply surfaces with its text; a refused login is an auth error.
#[test]
fn publisher_to_aiokdb_server() {
    let mut child = spawn_python(SERVER_SCRIPT, &[]);
    let lines = Lines::new(child.stdout.take().unwrap());
    let port = lines.next().expect("server port");
    let addr = format!("127.0.0.1:{port}");

    let refused = Publisher::connect(
        &addr,
        "feed",
        &Secret::new("wrong".into()),
        Default::default(),
    );
    assert!(
        matches!(refused, Err(KdbError::AuthenticationRefused)),
        "{refused:?}"
    );
    let refusal: Value = serde_json::from_str(&lines.next().unwrap()).unwrap();
    assert_eq!(refusal["refused"], "feed:wrong");

    let symbols = symbol_table();
    let options = PublisherOptions {
        compression: Compression::Always,
        ..Default::default()
    };
    let mut p = Publisher::connect(&addr, "feed", &Secret::new("secret".into()), options).unwrap();
    assert_eq!(p.capability(), 3);
    let ts0 = 1_764_000_000_123_456_789;
    let small = samples(7, ts0);
    let big = samples(3000, ts0 + 5);
    p.publish("plc", &small, 100, &symbols).unwrap();
    p.publish("plc", &big, 107, &symbols).unwrap();
    p.chase().unwrap();
    let fail = p.call(&K::string("fail"));
    assert!(
        matches!(&fail, Err(KdbError::Remote(t)) if t == "schema"),
        "{fail:?}"
    );
    p.reconnect().unwrap();
    let timestamps = PublisherOptions {
        time_type: TimeType::Timestamp,
        ..Default::default()
    };
    let mut q =
        Publisher::connect(&addr, "feed", &Secret::new("secret".into()), timestamps).unwrap();
    drop(p);
    q.publish("plc", &small, 5000, &symbols).unwrap();
    q.chase().unwrap();
    drop(q);

    let msgs: Vec<Value> = lines
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    finish(child);
    assert_eq!(msgs.len(), 6, "{msgs:?}");
    check_columns(&msgs[0], &small, 100, TimeType::Timespan);
    check_columns(&msgs[1], &big, 107, TimeType::Timespan);
    assert_eq!(
        (msgs[2]["mt"].as_i64(), msgs[2]["text"].as_str()),
        (Some(1), Some("::"))
    );
    assert_eq!(msgs[3]["text"], "fail");
    check_columns(&msgs[4], &small, 5000, TimeType::Timestamp);
    assert_eq!(msgs[5]["text"], "::");
}

/// A batch with text of every shape (short, long, empty and bad text among
/// numbers) goes to aiokdb with a `text` column in the middle: aiokdb reads
/// the general list of strings, one per row, `""` for rows without text,
/// and the seqs skip the extension records.
#[test]
fn text_column_to_aiokdb_server() {
    let mut child = spawn_python(SERVER_SCRIPT, &["1"]);
    let lines = Lines::new(child.stdout.take().unwrap());
    let port = lines.next().expect("server port");
    let addr = format!("127.0.0.1:{port}");
    let columns =
        Schema::from_names(["time", "sym", "text", "device", "value", "quality", "seq"]).unwrap();
    let options = PublisherOptions {
        columns,
        ..Default::default()
    };
    let mut p = Publisher::connect(&addr, "feed", &Secret::new("secret".into()), options).unwrap();
    let batch = text_samples(1_764_000_000_123_456_789);
    p.publish("plc", &batch, 40, &symbol_table()).unwrap();
    p.chase().unwrap();
    drop(p);
    let msgs: Vec<Value> = lines
        .rest()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    finish(child);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let cols = msgs[0]["cols"].as_array().expect("columns");
    let types: Vec<i64> = cols.iter().map(|c| c[0].as_i64().unwrap()).collect();
    assert_eq!(types, [16, 11, 0, 11, 9, 6, 7]);
    let rows = text_rows(&batch, 40);
    assert_eq!(cols[2][1].as_array().unwrap().len(), rows.len());
    for (i, (sample, seq, text)) in rows.iter().enumerate() {
        assert_eq!(
            cols[1][1][i],
            symbol_table().tag_name(sample.tag_id()).unwrap()
        );
        assert_eq!(cols[2][1][i][0], 10, "row {i}: a char vector");
        assert_eq!(cols[2][1][i][1], text.as_str(), "row {i}");
        assert_eq!(cols[6][1][i].as_u64().unwrap(), *seq, "row {i}");
        let text_row = matches!(sample.kind(), Some(ValueKind::Str8 | ValueKind::Text));
        // A text row's value is 0n; the number rows keep theirs.
        assert_eq!(cols[4][1][i].is_null(), text_row, "row {i}");
    }
    assert_eq!(
        rows.iter().map(|r| r.1).collect::<Vec<_>>(),
        [40, 41, 42, 45, 48, 54]
    );
}

const CLIENT_SCRIPT: &str = r#"
import asyncio, sys
import aiokdb as a
from aiokdb.client import open_qipc_connection
T = a.TypeEnum
def vec(t, accessor, values):
    k = a.ktn(t)
    getattr(k, accessor)().extend(values)
    return k
def cols(n, seq0):
    return a.kk(vec(T.KN, "kJ", list(range(n))),
                vec(T.KS, "kS", ["s%d" % (i % 3) for i in range(n)]),
                vec(T.KS, "kS", ["dev"] * n), vec(T.KF, "kF", [i * 0.5 for i in range(n)]),
                vec(T.KI, "kI", [0] * n), vec(T.KJ, "kJ", list(range(seq0, seq0 + n))))
async def main():
    port = int(sys.argv[1])
    r, w = await open_qipc_connection(host="127.0.0.1", port=port, user="feed", password="pw")
    w.write(a.kk(a.ks(".u.upd"), a.ks("plc"), cols(10, 0)), a.MessageType.ASYNC)
    res = await w.sync_req(a.kk(a.ks(".u.upd"), a.ks("plc"), cols(5, 10)))
    print("ok", int(res.t))
    names = vec(T.KS, "kS", ["time", "sym", "price"])
    table = a.xt(a.xd(names, a.kk(vec(T.KN, "kJ", [1, 2]), vec(T.KS, "kS", ["a", "b"]),
                                  vec(T.KF, "kF", [1.0, 2.0]))))
    res = await w.sync_req(a.kk(a.cv(".u.upd"), a.ks("quote"), table))
    print("ok", int(res.t))
    for name, bad in [
        ("type", a.kk(vec(T.KJ, "kJ", [1]), vec(T.KS, "kS", ["a"]))),
        ("length", a.kk(vec(T.KN, "kJ", [1, 2]), vec(T.KS, "kS", ["a"]))),
        ("schema", a.kk(vec(T.KN, "kJ", [1]), vec(T.KS, "kS", ["a"]))),
    ]:
        try:
            await w.sync_req(a.kk(a.ks(".u.upd"), a.ks("plc"), bad))
            print("no error for", name)
        except a.KException as e:
            print("error", e)
    res = await w.sync_req(a.cv("1+1"))
    print("ok", int(res.t))
    w.close()
asyncio.run(main())
"#;

/// An aiokdb client publishes to our stand-in (columns and a table) and gets
/// (::) or the right kdb+ error for each sync message.
#[test]
fn aiokdb_client_to_standin() {
    let recorder = Arc::new(Mutex::new(RowRecorder::new(1000)));
    let options = TickerplantOptions {
        users: Some(vec![("feed".into(), "pw".into())]),
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let port = tp.local_addr().port().to_string();
    let out = run_python(CLIENT_SCRIPT, &[&port]);
    assert_eq!(
        out,
        [
            "ok 101",
            "ok 101",
            "error type",
            "error length",
            "error schema",
            "ok 101"
        ],
        "replies"
    );
    assert_eq!(tp.rows("plc"), 15);
    assert_eq!(tp.rows("quote"), 2);
    let rows = recorder.lock().unwrap().rows.clone();
    assert_eq!(rows.len(), 15, "only plc has sym, value and seq");
    for (i, (table, sym, value, seq)) in rows.iter().enumerate() {
        assert_eq!(table, "plc");
        assert_eq!(*seq, i as i64);
        let n = if i < 10 { i } else { i - 10 };
        assert_eq!(*sym, format!("s{}", n % 3));
        assert_eq!(*value, n as f64 * 0.5);
    }
    let stats = tp.stats();
    assert_eq!(stats.update_errors, 3);
    assert_eq!(
        tp.stop(),
        [("plc".to_string(), 15), ("quote".to_string(), 2)]
    );
}
