//! The codec, the publisher and the stand-in against the kdbplus crate
//! (0.3.9, features ["ipc"]), an independent Rust implementation: its
//! messages (compressed ones too) decode to the right values, our publisher
//! feeds its `QStream::accept` server, its client publishes to our stand-in.

mod common;
mod kdb_support;

use common::free_port;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kdb_support::{run_python, samples, symbol_table, text_rows, text_samples};
use kdbplus::ipc::{ConnectionMethod, QStream, Query, K as QK};
use kdbplus::qattribute;
use millrace::config::Secret;
use millrace::kdb::types::ty;
use millrace::kdb::{
    decode_message, kdb_time, Compression, Data, DecodeLimits, KdbError, MsgType, Publisher,
    PublisherOptions, RowRecorder, Schema, Tickerplant, TickerplantOptions, K,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn spans(ns: &[i64]) -> Vec<chrono::Duration> {
    ns.iter()
        .map(|&n| chrono::Duration::nanoseconds(n))
        .collect()
}

/// A table as kdbplus builds it, and the same table as we build it.
fn table(rows: usize) -> (QK, K) {
    let time: Vec<i64> = (0..rows as i64)
        .map(|i| i * 1_000_000_007 % 86_400_000_000_000)
        .collect();
    let sym: Vec<String> = (0..rows)
        .map(|i| format!("press-{:02}.t{}", i % 7, i % 3))
        .collect();
    let value: Vec<f64> = (0..rows)
        .map(|i| if i % 9 == 0 { f64::NAN } else { i as f64 / 4.0 })
        .collect();
    let seq: Vec<i64> = (0..rows as i64).collect();
    let names = QK::new_symbol_list(
        vec!["time".into(), "sym".into(), "value".into(), "seq".into()],
        0,
    );
    let columns = QK::new_compound_list(vec![
        QK::new_timespan_list(spans(&time), qattribute::NONE),
        QK::new_symbol_list(sym.clone(), qattribute::NONE),
        QK::new_float_list(value.clone(), qattribute::NONE),
        QK::new_long_list(seq.clone(), qattribute::NONE),
    ]);
    let theirs = QK::new_dictionary(names, columns).unwrap().flip().unwrap();
    let ours = K::table(
        &["time", "sym", "value", "seq"],
        vec![
            K::vector(ty::TIMESPAN, Data::Longs(time)),
            K::vector(
                ty::SYMBOL,
                Data::Symbols(sym.iter().map(String::as_str).collect()),
            ),
            K::vector(ty::FLOAT, Data::Floats(value)),
            K::vector(ty::LONG, Data::Longs(seq)),
        ],
    );
    (theirs, ours)
}

/// Byte-equal after one more encode: NaN != NaN defeats `==` on values.
fn same(a: &K, b: &K) -> bool {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    millrace::kdb::encode_message(a, MsgType::Async, &mut x);
    millrace::kdb::encode_message(b, MsgType::Async, &mut y);
    x == y
}

#[test]
fn kdbplus_messages_plain_and_compressed_decode() {
    let rt = runtime();
    for (rows, remote) in [(3, false), (5000, false), (5000, true)] {
        let (theirs, ours) = table(rows);
        let bytes = rt.block_on(theirs.serialize(1, !remote));
        let (header, k) = decode_message(&bytes, &DecodeLimits::default()).expect("decode");
        assert_eq!(header.compressed, remote && rows > 100, "rows {rows}");
        assert_eq!(header.msg_type, MsgType::Sync);
        assert!(same(&k, &ours), "rows {rows}");
    }
    // Atoms, lists and dictionaries (kdbplus cannot serialise an error).
    let cases = vec![
        (QK::new_long(-7), K::long(-7)),
        (QK::new_symbol("abc".into()), K::symbol("abc")),
        (QK::new_float(2.5), K::float(2.5)),
        (QK::new_string("hi".into(), 0), K::string("hi")),
        (QK::new_null(), K::null()),
        (
            QK::new_compound_list(vec![QK::new_int(1), QK::new_symbol("x".into())]),
            K::list(vec![K::int(1), K::symbol("x")]),
        ),
        (
            QK::new_dictionary(
                QK::new_symbol_list(vec!["a".into(), "b".into()], 0),
                QK::new_int_list(vec![2, 3], 0),
            )
            .unwrap(),
            K::dict(
                K::symbols(&["a", "b"]),
                K::vector(ty::INT, Data::Ints(vec![2, 3])),
            ),
        ),
    ];
    for (theirs, ours) in cases {
        let bytes = rt.block_on(theirs.serialize(0, true));
        let (_, k) = decode_message(&bytes, &DecodeLimits::default()).expect("decode");
        assert_eq!(k, ours);
    }
}

fn upd(table: &str, rows: i64, seq0: i64) -> QK {
    let n = rows as usize;
    QK::new_compound_list(vec![
        QK::new_symbol(".u.upd".into()),
        QK::new_symbol(table.into()),
        QK::new_compound_list(vec![
            QK::new_timespan_list(spans(&(0..rows).collect::<Vec<_>>()), 0),
            QK::new_symbol_list(vec!["t".to_string(); n], 0),
            QK::new_symbol_list(vec!["dev".to_string(); n], 0),
            QK::new_float_list(vec![1.5; n], 0),
            QK::new_int_list(vec![0; n], 0),
            QK::new_long_list((seq0..seq0 + rows).collect(), 0),
        ]),
    ])
}

#[test]
fn kdbplus_client_to_standin() {
    let options = TickerplantOptions {
        users: Some(vec![("feed".into(), "pw".into())]),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let port = tp.local_addr().port();
    let rt = runtime();
    rt.block_on(async {
        let bad = QStream::connect(ConnectionMethod::TCP, "127.0.0.1", port, "feed:nope").await;
        assert!(bad.is_err(), "a wrong password must be refused");
        let mut q = QStream::connect(ConnectionMethod::TCP, "127.0.0.1", port, "feed:pw")
            .await
            .expect("connect");
        q.send_async_message(&upd("plc", 4, 0)).await.unwrap();
        let reply = q.send_sync_message(&upd("plc", 3, 4)).await.unwrap();
        assert_eq!(reply.get_type(), 101, "(::)");
        let bad = QK::new_compound_list(vec![
            QK::new_symbol(".u.upd".into()),
            QK::new_symbol("plc".into()),
            QK::new_compound_list(vec![QK::new_long_list(vec![1], 0)]),
        ]);
        let reply = q.send_sync_message(&bad).await;
        let text = match reply {
            Ok(k) => k.get_error_string().map(str::to_string).unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        assert!(text.contains("length") || text.contains("type"), "{text}");
        let reply = q.send_sync_message(&"1+1").await.unwrap();
        assert_eq!(reply.get_type(), 101);
        q.shutdown().await.unwrap();
    });
    assert_eq!(tp.stop(), [("plc".to_string(), 7)]);
}

#[test]
fn publisher_to_kdbplus_server() {
    let sha1 = run_python(
        "import hashlib; print(hashlib.sha1(b'secret').hexdigest())",
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let accounts = dir.path().join("accounts");
    std::fs::write(&accounts, format!("feed:{}\n", sha1[0])).unwrap();
    std::env::set_var("KDBPLUS_ACCOUNT_FILE", &accounts);
    let port = free_port();
    let server = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut q = QStream::accept(ConnectionMethod::TCP, "127.0.0.1", port)
                .await
                .unwrap();
            let mut got = Vec::new();
            // kdbplus 0.3.9 does not report EOF from receive_message: stop
            // at the chaser (a sync message) instead of at the close.
            while let Ok((msg_type, k)) = q.receive_message().await {
                got.push((msg_type, k));
                if msg_type == 1 {
                    q.send_message(&QK::new_null(), 2).await.unwrap();
                    break;
                }
            }
            got
        })
    });
    let addr = format!("127.0.0.1:{port}");
    let secret = Secret::new("secret".into());
    let connect = |password: &Secret, options: PublisherOptions| {
        // The server thread may not be listening yet: bounded retries.
        for _ in 0..500 {
            match Publisher::connect(&addr, "feed", password, options.clone()) {
                Err(KdbError::Io(_)) => std::thread::sleep(Duration::from_millis(20)),
                other => return other,
            }
        }
        panic!("kdbplus server never listened");
    };
    let wrong = connect(&Secret::new("wrong".into()), PublisherOptions::default());
    assert!(
        matches!(wrong, Err(KdbError::AuthenticationRefused)),
        "{wrong:?}"
    );
    let options = PublisherOptions {
        compression: Compression::Always,
        ..Default::default()
    };
    let mut p = connect(&secret, options).unwrap();
    let symbols = symbol_table();
    let small = samples(10, 1_764_000_000_000_000_000);
    let big = samples(4000, 1_764_000_001_000_000_000);
    p.publish("plc", &small, 0, &symbols).unwrap();
    p.publish("plc", &big, 10, &symbols).unwrap();
    p.chase().unwrap();
    drop(p);
    let got = server.join().unwrap();
    assert_eq!(got.len(), 3);
    for ((msg_type, k), (batch, seq0)) in got.iter().zip([(&small, 0i64), (&big, 10)]) {
        assert_eq!(*msg_type, 0);
        let items = k.as_vec::<QK>().unwrap();
        assert_eq!(items[0].get_symbol().unwrap(), ".u.upd");
        assert_eq!(items[1].get_symbol().unwrap(), "plc");
        let cols = items[2].as_vec::<QK>().unwrap();
        assert_eq!(
            cols.iter().map(|c| c.get_type()).collect::<Vec<_>>(),
            [16, 11, 11, 9, 6, 7]
        );
        let time = cols[0].as_vec::<i64>().unwrap();
        let sym = cols[1].as_vec::<String>().unwrap();
        let device = cols[2].as_vec::<String>().unwrap();
        let value = cols[3].as_vec::<f64>().unwrap();
        let quality = cols[4].as_vec::<i32>().unwrap();
        let seq = cols[5].as_vec::<i64>().unwrap();
        assert_eq!(seq.len(), batch.len());
        for (i, s) in batch.iter().enumerate() {
            assert_eq!(
                time[i],
                kdb_time(s.ts_ns, millrace::config::TimeType::Timespan)
            );
            assert_eq!(sym[i], symbols.tag_name(s.tag_id()).unwrap());
            assert_eq!(device[i], symbols.device_name(s.tag_id()).unwrap());
            let v = s.value_f64();
            assert!(
                value[i] == v || (v.is_nan() && value[i].is_nan()),
                "row {i}"
            );
            assert_eq!(quality[i], s.quality as i32);
            assert_eq!(seq[i], seq0 + i as i64);
        }
    }
    assert_eq!(got[2].0, 1, "the chaser is sync");
    assert_eq!(got[2].1.as_string().unwrap(), "::");
}

/// The account file kdbplus's server checks logins against (`feed:secret`).
fn kdbplus_accounts(dir: &std::path::Path) {
    let sha1 = run_python(
        "import hashlib; print(hashlib.sha1(b'secret').hexdigest())",
        &[],
    );
    let accounts = dir.join("accounts");
    std::fs::write(&accounts, format!("feed:{}\n", sha1[0])).unwrap();
    std::env::set_var("KDBPLUS_ACCOUNT_FILE", &accounts);
}

/// A text column (a general list of strings, here last) decodes in kdbplus
/// as one char vector per row, `""` where a row has no text; a text row's
/// value is 0n and its seq its head record's.
#[test]
fn publisher_text_to_kdbplus_server() {
    let dir = tempfile::tempdir().unwrap();
    kdbplus_accounts(dir.path());
    let port = free_port();
    let server = std::thread::spawn(move || {
        runtime().block_on(async move {
            let mut q = QStream::accept(ConnectionMethod::TCP, "127.0.0.1", port)
                .await
                .unwrap();
            let mut got = Vec::new();
            while let Ok((msg_type, k)) = q.receive_message().await {
                got.push((msg_type, k));
                if msg_type == 1 {
                    q.send_message(&QK::new_null(), 2).await.unwrap();
                    break;
                }
            }
            got
        })
    });
    let addr = format!("127.0.0.1:{port}");
    let options = PublisherOptions {
        columns: Schema::WITH_TEXT,
        ..Default::default()
    };
    let secret = Secret::new("secret".into());
    let mut p = (0..500)
        .find_map(
            |_| match Publisher::connect(&addr, "feed", &secret, options.clone()) {
                Err(KdbError::Io(_)) => {
                    std::thread::sleep(Duration::from_millis(20));
                    None
                }
                other => Some(other.unwrap()),
            },
        )
        .expect("kdbplus server never listened");
    let batch = text_samples(1_764_000_000_000_000_000);
    p.publish("plc", &batch, 7, &symbol_table()).unwrap();
    p.chase().unwrap();
    drop(p);
    let got = server.join().unwrap();
    assert_eq!(got.len(), 2);
    let items = got[0].1.as_vec::<QK>().unwrap();
    let cols = items[2].as_vec::<QK>().unwrap();
    assert_eq!(
        cols.iter().map(|c| c.get_type()).collect::<Vec<_>>(),
        [16, 11, 11, 9, 6, 7, 0]
    );
    let rows = text_rows(&batch, 7);
    let value = cols[3].as_vec::<f64>().unwrap();
    let seq = cols[5].as_vec::<i64>().unwrap();
    let text = cols[6].as_vec::<QK>().unwrap();
    assert_eq!(text.len(), rows.len());
    for (i, (sample, row_seq, row_text)) in rows.iter().enumerate() {
        assert_eq!(text[i].get_type(), 10, "row {i}: a char vector");
        assert_eq!(text[i].as_string().unwrap(), row_text.as_str(), "row {i}");
        assert_eq!(seq[i], *row_seq as i64, "row {i}");
        assert_eq!(value[i].is_nan(), sample.value_f64().is_nan(), "row {i}");
    }
    assert!(rows.iter().any(|r| r.2.len() == 82), "the 82-byte text");
}

/// kdbplus publishes a table with a text column to our stand-in: accepted
/// (a general list is a column, as in q), counted, and each text recorded
/// with its row's sym and seq.
#[test]
fn kdbplus_client_text_to_standin() {
    let recorder = Arc::new(Mutex::new(RowRecorder::new(100)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let port = tp.local_addr().port();
    let texts = ["", "forty characters of text, give or take.", "x"];
    runtime().block_on(async {
        let mut q = QStream::connect(ConnectionMethod::TCP, "127.0.0.1", port, "feed:pw")
            .await
            .expect("connect");
        let call = QK::new_compound_list(vec![
            QK::new_symbol(".u.upd".into()),
            QK::new_symbol("plc".into()),
            QK::new_compound_list(vec![
                QK::new_timespan_list(spans(&[1, 2, 3]), 0),
                QK::new_symbol_list(vec!["a".into(), "b".into(), "c".into()], 0),
                QK::new_symbol_list(vec!["dev".to_string(); 3], 0),
                QK::new_float_list(vec![1.5, f64::NAN, f64::NAN], 0),
                QK::new_int_list(vec![0, 0, i32::MIN], 0),
                QK::new_long_list(vec![10, 11, 14], 0),
                QK::new_compound_list(
                    texts
                        .iter()
                        .map(|t| QK::new_string(t.to_string(), 0))
                        .collect(),
                ),
            ]),
        ]);
        let reply = q.send_sync_message(&call).await.unwrap();
        assert_eq!(reply.get_type(), 101, "(::)");
        q.shutdown().await.unwrap();
    });
    assert_eq!(tp.stop(), [("plc".to_string(), 3)]);
    let r = recorder.lock().unwrap();
    assert_eq!(r.rows.len(), 3);
    let got: Vec<(String, i64, String)> = r
        .texts
        .iter()
        .map(|(_, sym, seq, text)| (sym.clone(), *seq, text.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("b".to_string(), 11, texts[1].to_string()),
            ("c".to_string(), 14, texts[2].to_string())
        ]
    );
}
