//! kdb+ IPC: encoding a 10,000-row `.u.upd` batch from samples (ours, into a
//! reused buffer, against the kdbplus crate building and serialising the
//! same table side by side), and decompression throughput.
//!
//! Two encode shapes: tags scattered over a 25,000-tag table (the cache's
//! worst case), and the plant's (`kdb_encode_plant_10k_rows`): 80 Modbus
//! responses of 125 consecutive uint16 tags each, from devices all over a
//! 100 x 1,250-tag table, as the WAL hands them to the sink.
//!
//! With text (`kdb_encode_plant_text_10k_rows`): the plant's batch sent with
//! a `text` column (every cell `""`), and a plant batch whose responses each
//! end in a 40-byte string (a head and two extension records), kdbplus
//! building the same message beside it (bytes asserted equal).
//!
//! The stand-in's side (`standin_upd_10k_rows`): a plant message checked,
//! counted and recorded through the borrowed view, and a message with a text
//! column, which takes the `K` path (decode, `parse_update`).
//!
//! cargo bench --bench kdb -- --measurement-time 3 --warm-up-time 1

use std::future::Future;
use std::task::{Context, Poll, Waker};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use kdbplus::ipc::{Query, K as QK};
use millrace::config::TimeType;
use millrace::kdb::upd::{for_each_record, for_each_text, parse_update, Tables};
use millrace::kdb::upd_view::{view_message, Viewed};
use millrace::kdb::{
    compress, decode_message, decompress, encode_upd, encode_upd_with, kdb_time, DecodeLimits,
    Header, MsgType, Schema, SymbolTable, UpdFormat,
};
use millrace::sample::{text_at, text_records, write_text};
use millrace::{Quality, Sample, TagId, ValueKind};

const ROWS: usize = 10_000;
const DEVICES: usize = 200;
const TAGS_PER_DEVICE: usize = 125;

fn symbols() -> SymbolTable {
    let mut t = SymbolTable::new();
    for d in 0..DEVICES {
        for i in 0..TAGS_PER_DEVICE {
            t.push(&format!("dev-{d:03}.tag-{i:03}"), &format!("dev-{d:03}"))
                .unwrap();
        }
    }
    t
}

/// Tags scattered over the whole table (each row a different tag, in no
/// order): the encoder's worst case for cache locality.
fn batch() -> Vec<Sample> {
    let ts0 = 1_764_000_000_000_000_000i64;
    (0..ROWS)
        .map(|i| {
            let tag = TagId(((i * 7919) % (DEVICES * TAGS_PER_DEVICE)) as u32);
            let ts = ts0 + (i as i64) * 10_000;
            if i % 50 == 49 {
                Sample::bad(ts, tag, Quality::TIMEOUT)
            } else {
                Sample::f64(ts, tag, (i as f64).sin() * 100.0)
            }
        })
        .collect()
}

/// Tags in poll order (device by device, as a reader cycle produces them)
/// with values that repeat: what the compressor sees in practice. The
/// scattered batch does not compress to half, so kdb+ would send it as is.
fn batch_in_poll_order() -> Vec<Sample> {
    let ts0 = 1_764_000_000_000_000_000i64;
    (0..ROWS)
        .map(|i| Sample::f64(ts0 + (i as i64) * 10_000, TagId(i as u32), (i % 100) as f64))
        .collect()
}

const PLANT_DEVICES: u32 = 100;
const PLANT_TAGS_PER_DEVICE: u32 = 1_250;
/// Registers per Modbus read (the farm's block size).
const PLANT_RUN: u32 = 125;

/// The farm's names (`src/farm/emit.rs`): tag `j` of device `i` is
/// `d{i:05}.hr{j:05}` of device `farm-{i:05}`, ids device by device.
fn plant_symbols() -> SymbolTable {
    let mut t = SymbolTable::new();
    for d in 0..PLANT_DEVICES {
        for j in 0..PLANT_TAGS_PER_DEVICE {
            t.push(&format!("d{d:05}.hr{j:05}"), &format!("farm-{d:05}"))
                .unwrap();
        }
    }
    t
}

/// 80 responses of 125 registers: uint16 values (`ValueKind::U64`, so not
/// the float fast path), one timestamp per response, every 40th response a
/// timeout; response k reads block (3k mod 10) of device (37k mod 100).
fn plant_batch() -> Vec<Sample> {
    let ts0 = 1_764_000_000_000_000_000i64;
    let runs = ROWS as u32 / PLANT_RUN;
    (0..runs)
        .flat_map(|k| {
            let device = (k * 37) % PLANT_DEVICES;
            let first = device * PLANT_TAGS_PER_DEVICE + ((k * 3) % 10) * PLANT_RUN;
            let ts = ts0 + i64::from(k) * 1_000_000;
            (0..PLANT_RUN).map(move |i| {
                let tag = TagId(first + i);
                if k % 40 == 39 {
                    Sample::bad(ts, tag, Quality::TIMEOUT)
                } else {
                    let v = u64::from((k * 7 + i * 13) % 65_536);
                    Sample::new(ts, tag, Quality::GOOD, ValueKind::U64, v)
                }
            })
        })
        .collect()
}

/// kdbplus's `serialize` is async but never waits when not compressing.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => unreachable!("kdbplus serialize does not wait"),
    }
}

/// What a kdbplus user writes for the same message: build the columns,
/// the call, then serialise.
fn kdbplus_upd(samples: &[Sample], symbols: &SymbolTable, first_seq: i64) -> Vec<u8> {
    let tag = |s: &Sample| s.tag_id();
    let time = samples
        .iter()
        .map(|s| chrono::Duration::nanoseconds(kdb_time(s.ts_ns, TimeType::Timespan)))
        .collect();
    let sym = samples
        .iter()
        .map(|s| symbols.tag_name(tag(s)).unwrap().to_string())
        .collect();
    let device = samples
        .iter()
        .map(|s| symbols.device_name(tag(s)).unwrap().to_string())
        .collect();
    let value = samples.iter().map(Sample::value_f64).collect();
    let quality = samples.iter().map(|s| s.quality as i32).collect();
    let seq = (first_seq..first_seq + samples.len() as i64).collect();
    let call = QK::new_compound_list(vec![
        QK::new_symbol(".u.upd".into()),
        QK::new_symbol("plc".into()),
        QK::new_compound_list(vec![
            QK::new_timespan_list(time, 0),
            QK::new_symbol_list(sym, 0),
            QK::new_symbol_list(device, 0),
            QK::new_float_list(value, 0),
            QK::new_int_list(quality, 0),
            QK::new_long_list(seq, 0),
        ]),
    ]);
    ready(call.serialize(0, true))
}

fn encode(c: &mut Criterion) {
    let symbols = symbols();
    let samples = batch();
    let mut out = Vec::new();
    encode_upd(
        "plc",
        &samples,
        0,
        &symbols,
        TimeType::Timespan,
        MsgType::Async,
        &mut out,
    )
    .unwrap();
    let theirs = kdbplus_upd(&samples, &symbols, 0);
    assert_eq!(theirs.len(), out.len(), "same message size");
    assert_eq!(theirs[8..], out[8..], "same message bytes");
    let bytes = out.len() as u64;
    for (unit, throughput) in [
        ("bytes", Throughput::Bytes(bytes)),
        ("rows", Throughput::Elements(ROWS as u64)),
    ] {
        let mut g = c.benchmark_group(format!("kdb_encode_10k_{unit}"));
        g.throughput(throughput);
        g.bench_function("millrace_encode_upd", |b| {
            b.iter(|| {
                let s = black_box(&samples);
                encode_upd(
                    "plc",
                    s,
                    0,
                    &symbols,
                    TimeType::Timespan,
                    MsgType::Async,
                    &mut out,
                )
                .unwrap();
                black_box(out.len())
            })
        });
        g.bench_function("kdbplus_build_and_serialize", |b| {
            b.iter(|| black_box(kdbplus_upd(black_box(&samples), &symbols, 0)).len())
        });
        g.finish();
    }
}

/// The plant's shape, rows group only: the figure is ns per row.
fn encode_plant(c: &mut Criterion) {
    let symbols = plant_symbols();
    let samples = plant_batch();
    assert_eq!(samples.len(), ROWS);
    let mut out = Vec::new();
    let encode = |samples: &[Sample], out: &mut Vec<u8>| {
        encode_upd(
            "plc",
            samples,
            0,
            &symbols,
            TimeType::Timespan,
            MsgType::Async,
            out,
        )
        .unwrap();
    };
    encode(&samples, &mut out);
    let theirs = kdbplus_upd(&samples, &symbols, 0);
    assert_eq!(theirs.len(), out.len(), "same message size");
    assert_eq!(theirs[8..], out[8..], "same message bytes");
    let mut g = c.benchmark_group("kdb_encode_plant_10k_rows");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("millrace_encode_upd", |b| {
        b.iter(|| {
            encode(black_box(&samples), &mut out);
            black_box(out.len())
        })
    });
    g.bench_function("kdbplus_build_and_serialize", |b| {
        b.iter(|| black_box(kdbplus_upd(black_box(&samples), &symbols, 0)).len())
    });
    g.finish();
}

/// The plant's batch with text: each response's last tag is a 40-byte
/// string (its head and two extension records) after 124 uint16 values;
/// 10,000 rows, 10,160 records.
fn plant_text_batch() -> Vec<Sample> {
    let ts0 = 1_764_000_000_000_000_000i64;
    let runs = ROWS as u32 / PLANT_RUN;
    let mut out = Vec::new();
    for k in 0..runs {
        let device = (k * 37) % PLANT_DEVICES;
        let first = device * PLANT_TAGS_PER_DEVICE + ((k * 3) % 10) * PLANT_RUN;
        let ts = ts0 + i64::from(k) * 1_000_000;
        for i in 0..PLANT_RUN - 1 {
            let v = u64::from((k * 7 + i * 13) % 65_536);
            out.push(Sample::new(
                ts,
                TagId(first + i),
                Quality::GOOD,
                ValueKind::U64,
                v,
            ));
        }
        let mut text = vec![Sample::default(); text_records(40)];
        let recipe = format!("recipe {k:04} of the plant's forty bytes.");
        write_text(
            &mut text,
            ts,
            TagId(first + PLANT_RUN - 1),
            Quality::GOOD,
            recipe.as_bytes(),
            40,
        );
        out.extend(text);
    }
    out
}

/// kdbplus builds the text column as a list of strings.
fn kdbplus_upd_text(samples: &[Sample], symbols: &SymbolTable) -> Vec<u8> {
    let rows: Vec<(usize, &Sample)> = samples
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_row())
        .collect();
    let name = |s: &Sample| symbols.tag_name(s.tag_id()).unwrap().to_string();
    let device = |s: &Sample| symbols.device_name(s.tag_id()).unwrap().to_string();
    let text = |i: usize| {
        let t = text_at(&samples[i..]).map_or(String::new(), |t| {
            let mut b = vec![0; t.len()];
            t.copy_to(&mut b);
            String::from_utf8(b).unwrap()
        });
        QK::new_string(t, 0)
    };
    let call = QK::new_compound_list(vec![
        QK::new_symbol(".u.upd".into()),
        QK::new_symbol("plc".into()),
        QK::new_compound_list(vec![
            QK::new_timespan_list(
                rows.iter()
                    .map(|(_, s)| {
                        chrono::Duration::nanoseconds(kdb_time(s.ts_ns, TimeType::Timespan))
                    })
                    .collect(),
                0,
            ),
            QK::new_symbol_list(rows.iter().map(|(_, s)| name(s)).collect(), 0),
            QK::new_symbol_list(rows.iter().map(|(_, s)| device(s)).collect(), 0),
            QK::new_float_list(rows.iter().map(|(_, s)| s.value_f64()).collect(), 0),
            QK::new_int_list(rows.iter().map(|(_, s)| s.quality as i32).collect(), 0),
            QK::new_long_list(rows.iter().map(|(i, _)| *i as i64).collect(), 0),
            QK::new_compound_list(rows.iter().map(|(i, _)| text(*i)).collect()),
        ]),
    ]);
    ready(call.serialize(0, true))
}

fn encode_with_text(samples: &[Sample], symbols: &SymbolTable, out: &mut Vec<u8>) -> usize {
    let format = UpdFormat {
        table: "plc",
        gateway: "",
        schema: Schema::WITH_TEXT,
        time_type: TimeType::Timespan,
        msg_type: MsgType::Async,
    };
    encode_upd_with(&format, samples, 0, symbols, out).unwrap()
}

/// The plant with a text column: its numbers alone (every text `""`), and
/// with a string per response.
fn encode_plant_text(c: &mut Criterion) {
    let symbols = plant_symbols();
    let numbers = plant_batch();
    let texts = plant_text_batch();
    assert_eq!(texts.iter().filter(|s| s.is_row()).count(), ROWS);
    let mut out = Vec::new();
    let len = encode_with_text(&texts, &symbols, &mut out);
    let theirs = kdbplus_upd_text(&texts, &symbols);
    assert_eq!(theirs.len(), len, "same message size");
    assert_eq!(theirs[8..], out[8..len], "same message bytes");
    let mut g = c.benchmark_group("kdb_encode_plant_text_10k_rows");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("millrace_numbers_text_column", |b| {
        b.iter(|| black_box(encode_with_text(black_box(&numbers), &symbols, &mut out)))
    });
    g.bench_function("millrace_strings_text_column", |b| {
        b.iter(|| black_box(encode_with_text(black_box(&texts), &symbols, &mut out)))
    });
    g.bench_function("kdbplus_strings_build_and_serialize", |b| {
        b.iter(|| black_box(kdbplus_upd_text(black_box(&texts), &symbols)).len())
    });
    g.finish();
}

/// The stand-in's work per message, recorder included (rows counted): the
/// plant message through the view, the text message through `K`.
fn standin(c: &mut Criterion) {
    let symbols = plant_symbols();
    let limits = DecodeLimits {
        message_bytes_max: 64 << 20,
        ..DecodeLimits::default()
    };
    let mut plain = Vec::new();
    encode_upd(
        "plc",
        &plant_batch(),
        0,
        &symbols,
        TimeType::Timespan,
        MsgType::Async,
        &mut plain,
    )
    .unwrap();
    let mut text = Vec::new();
    let len = encode_with_text(&plant_text_batch(), &symbols, &mut text);
    text.truncate(len);
    let header = |m: &[u8]| Header::parse(m[..8].try_into().unwrap(), usize::MAX).unwrap();
    let mut g = c.benchmark_group("standin_upd_10k_rows");
    g.throughput(Throughput::Elements(ROWS as u64));
    g.bench_function("view_numbers", |b| {
        let mut tables = Tables::new(4);
        let mut expanded = Vec::new();
        b.iter(|| {
            let Viewed::Update(v) = view_message(&plain, &header(&plain), &mut expanded, &limits)
            else {
                panic!("viewed");
            };
            let state = tables
                .apply_columns(v.table, None, v.types().as_slice(), v.rows())
                .unwrap();
            let columns = v.record_columns(state).unwrap();
            black_box(columns.iter().map(|(_, _, seq)| seq).sum::<i64>())
        })
    });
    g.bench_function("k_path_text", |b| {
        let mut tables = Tables::new(4);
        b.iter(|| {
            let (_, k) = decode_message(&text, &limits).unwrap();
            let u = parse_update(&k).unwrap().unwrap();
            let state = tables.apply(&u).unwrap();
            let mut sum = 0i64;
            for_each_record(&u, state, |_, _, seq| sum += seq);
            for_each_text(&u, state, |_, seq, _| sum += seq);
            black_box(sum)
        })
    });
    g.finish();
}

fn decompression(c: &mut Criterion) {
    let symbols = symbols();
    let samples = batch_in_poll_order();
    let mut plain = Vec::new();
    encode_upd(
        "plc",
        &samples,
        0,
        &symbols,
        TimeType::Timespan,
        MsgType::Async,
        &mut plain,
    )
    .unwrap();
    let mut packed = Vec::new();
    assert!(compress(&plain, &mut packed));
    assert_eq!(decompress(&packed, 1 << 30).unwrap(), plain);
    let mut g = c.benchmark_group("kdb_decompress_10k");
    g.throughput(Throughput::Bytes(plain.len() as u64));
    g.bench_function("millrace_decompress", |b| {
        b.iter(|| black_box(decompress(black_box(&packed), 1 << 30).unwrap().len()))
    });
    g.bench_function("millrace_compress", |b| {
        let mut out = Vec::new();
        b.iter(|| black_box(compress(black_box(&plain), &mut out)))
    });
    g.finish();
}

criterion_group!(
    benches,
    encode,
    encode_plant,
    encode_plant_text,
    standin,
    decompression
);
criterion_main!(benches);
