//! Hostile input, decoder by decoder: the Heartbleed-style cases (a length
//! past the end of the frame, a count that disagrees with the bytes, zero and
//! the largest lengths) for the decoders whose own tests do not already
//! cover them, and the corpus replays of the `tickerplant_input` and
//! `config_csv` fuzz targets. Modbus TCP/RTU length fields are covered field
//! by field in src/protocol/modbus/codec_tests.rs; the kdb+ object decoder's
//! truncations in tests/kdb_codec.rs. Every case asserts the exact error (or
//! the exact acceptance), never just "did not panic".

mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use millrace::config::{parse_with, MemorySources};
use millrace::kdb::compress::decompress;
use millrace::kdb::handshake::{parse_client_hello, HELLO_BYTES_MAX};
use millrace::kdb::{decode_message, DecodeError, DecodeLimits, Tickerplant, TickerplantOptions};
use millrace::protocol::modbus::{crc16, ModbusError, RtuFramer, RTU_ADU_BYTES_MAX};
use millrace::wal::{check_frames, crc32c, FrameError, FORMAT_VERSION, FRAME_OVERHEAD_BYTES};

// ---------------------------------------------------------------- corpora

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("corpus entry").path();
            let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
            (path, data)
        })
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{target}: only {} files", files.len());
    files
}

#[test]
fn replay_tickerplant_input_corpus() {
    let mut total = millrace::kdb::fuzz::ServerRun::default();
    for (path, data) in corpus("tickerplant_input") {
        let run = millrace::kdb::fuzz::fuzz_server_input(&data);
        eprintln!("{}: {run:?}", path.display());
        total.logged_in |= run.logged_in;
        total.messages += run.messages;
        total.updates += run.updates;
        total.update_errors += run.update_errors;
        total.records += run.records;
    }
    // The seeds reach every stage: login, messages, accepted updates with
    // records, and each kind of refused update.
    assert!(total.logged_in);
    assert!(total.updates >= 5, "{total:?}");
    assert!(total.records >= 10, "{total:?}");
    assert!(total.update_errors >= 4, "{total:?}");
}

#[test]
fn replay_config_csv_corpus() {
    let (mut accepted, mut rejected) = (0, 0);
    for (_, data) in corpus("config_csv") {
        if millrace::config::fuzz_tag_csv(&data) {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    assert!(accepted >= 5, "accepted {accepted}");
    assert!(rejected >= 10, "rejected {rejected}");
}

// ---------------------------------------------------------------- WAL frames

const SAMPLE_BYTES: usize = 24;

/// A version 2 segment (frame bodies are the 24-byte records) of
/// `segment_bytes` whose header says `first_seq`.
fn segment(first_seq: u64, segment_bytes: usize) -> Vec<u8> {
    segment_of(2, first_seq, segment_bytes)
}

fn segment_of(version: u16, first_seq: u64, segment_bytes: usize) -> Vec<u8> {
    let mut seg = vec![0u8; segment_bytes];
    seg[0..8].copy_from_slice(b"MLRCWAL\0");
    seg[8..10].copy_from_slice(&version.to_le_bytes());
    seg[10..12].copy_from_slice(&48u16.to_le_bytes());
    seg[16..24].copy_from_slice(&first_seq.to_le_bytes());
    seg[24..32].copy_from_slice(&(segment_bytes as u64).to_le_bytes());
    let crc = crc32c(&seg[0..44]);
    seg[44..48].copy_from_slice(&crc.to_le_bytes());
    seg
}

/// Writes a frame at `at` with `len` and `count` as given (they may lie),
/// then a CRC over the length field and the rest of the frame as the length
/// declares it (clipped to the segment), so only the lie itself is wrong.
fn put_frame(seg: &mut [u8], at: usize, len: u32, first_seq: u64, count: u32) {
    seg[at..at + 4].copy_from_slice(&len.to_le_bytes());
    seg[at + 8..at + 16].copy_from_slice(&first_seq.to_le_bytes());
    seg[at + 16..at + 20].copy_from_slice(&count.to_le_bytes());
    let end = (at + len as usize).min(seg.len());
    let mut covered = seg[at..at + 4].to_vec();
    covered.extend_from_slice(&seg[at + 8..end.max(at + 8)]);
    let crc = crc32c(&covered);
    seg[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
}

fn frame_len(count: usize) -> u32 {
    (FRAME_OVERHEAD_BYTES + count * SAMPLE_BYTES) as u32
}

/// The frames a scan accepted and how it stopped, as `Debug` text (the
/// scan's types are not exported; their `Debug` is their whole content).
fn wal_stop(seg: &[u8]) -> (u64, String) {
    let check = check_frames(seg);
    assert!(check.header_ok);
    let scan = check.scan.expect("a scan");
    (scan.frames, format!("{:?}", scan.stop))
}

fn clean(frames: u64) -> (u64, String) {
    (frames, "Clean".to_string())
}

fn bad(frames: u64, offset: usize, reason: FrameError) -> (u64, String) {
    (
        frames,
        format!("Bad {{ offset: {offset}, reason: {reason:?} }}"),
    )
}

#[test]
fn wal_frame_that_fills_the_segment_exactly_is_accepted() {
    let mut seg = segment(7, 48 + frame_len(3) as usize);
    put_frame(&mut seg, 48, frame_len(3), 7, 3);
    assert_eq!(wal_stop(&seg), clean(1));
    // One byte shorter: the same length now runs past the end of the segment.
    let short = &seg[..seg.len() - 1];
    assert_eq!(
        wal_stop(short),
        bad(0, 48, FrameError::Length(frame_len(3)))
    );
}

#[test]
fn wal_lengths_past_the_segment_and_maximum_lengths_are_refused() {
    for len in [frame_len(4), u32::MAX - 7, u32::MAX] {
        let mut seg = segment(1, 4096);
        put_frame(&mut seg, 48, frame_len(1), 1, 1);
        let at = 48 + frame_len(1) as usize;
        put_frame(&mut seg, at, len, 2, 4);
        // The tail is cut to exactly fit: the first frame is kept.
        let cut = at + frame_len(3) as usize;
        assert_eq!(
            wal_stop(&seg[..cut]),
            bad(1, at, FrameError::Length(len)),
            "len {len}"
        );
    }
}

#[test]
fn wal_zero_small_and_unaligned_lengths() {
    // Zero: the preallocated zeros, a clean end.
    let seg = segment(1, 4096);
    assert_eq!(wal_stop(&seg), clean(0));
    // Below the smallest frame (overhead + one sample), or not 8-aligned.
    for len in [
        8,
        FRAME_OVERHEAD_BYTES as u32,
        frame_len(1) - 8,
        frame_len(1) + 4,
    ] {
        let mut seg = segment(1, 4096);
        put_frame(&mut seg, 48, len, 1, 1);
        assert_eq!(
            wal_stop(&seg),
            bad(0, 48, FrameError::Length(len)),
            "len {len}"
        );
    }
}

#[test]
fn wal_counts_that_disagree_with_the_length_are_refused() {
    for count in [0, 1, 3, 100, u32::MAX] {
        let mut seg = segment(1, 4096);
        put_frame(&mut seg, 48, frame_len(2), 1, count);
        assert_eq!(
            wal_stop(&seg),
            bad(0, 48, FrameError::Count(count)),
            "count {count}"
        );
    }
}

#[test]
fn wal_sequence_numbers_at_the_top_of_the_range_do_not_wrap() {
    // A frame whose samples would run past u64::MAX cannot be a frame the
    // writer wrote: refused, never wrapped (nor an overflow panic).
    let first = u64::MAX - 1;
    let mut seg = segment(first, 4096);
    put_frame(&mut seg, 48, frame_len(3), first, 3);
    assert_eq!(wal_stop(&seg), bad(0, 48, FrameError::Count(3)));
    // Up to exactly u64::MAX (one past the last sample) is fine.
    let mut seg = segment(first, 4096);
    put_frame(&mut seg, 48, frame_len(1), first, 1);
    assert_eq!(wal_stop(&seg), clean(1));
}

/// A version 3 frame at 48 of one run block: `count` says the block's
/// records, `frame_count` the frame's (they may lie); CRC made to hold.
fn blocks_segment(block_count: u32, frame_count: u32, values: usize) -> Vec<u8> {
    let mut seg = segment_of(FORMAT_VERSION, 1, 4096);
    let body = 48 + FRAME_OVERHEAD_BYTES;
    seg[body..body + 4].copy_from_slice(&(block_count | 1 << 24).to_le_bytes());
    seg[body + 8..body + 12].copy_from_slice(&7u32.to_le_bytes()); // tag 7, kind F64
    let len = (FRAME_OVERHEAD_BYTES + 24 + 8 * values) as u32;
    put_frame(&mut seg, 48, len, 1, frame_count);
    seg
}

#[test]
fn wal_blocks_that_disagree_with_the_frame_are_refused_though_the_crc_holds() {
    assert_eq!(wal_stop(&blocks_segment(3, 3, 3)), clean(1));
    // The block says more values than the frame has bytes for.
    let stop = wal_stop(&blocks_segment(4, 3, 3));
    assert_eq!(stop.0, 0);
    assert!(stop.1.contains("Blocks(Truncated"), "{stop:?}");
    // The frame says more records than its blocks hold.
    let stop = wal_stop(&blocks_segment(2, 3, 3));
    assert_eq!(stop.0, 0);
    assert!(stop.1.contains("Blocks("), "{stop:?}");
    // A count no body of this length can hold.
    assert_eq!(
        wal_stop(&blocks_segment(3, 100, 3)),
        bad(0, 48, FrameError::Count(100))
    );
    // A zero-count block.
    let stop = wal_stop(&blocks_segment(0, 3, 3));
    assert!(stop.1.contains("Blocks(Header"), "{stop:?}");
}

#[test]
fn wal_header_truncated_at_every_cut() {
    let mut seg = segment(1, 4096);
    put_frame(&mut seg, 48, frame_len(1), 1, 1);
    for cut in 48 + 4..48 + FRAME_OVERHEAD_BYTES {
        assert_eq!(
            wal_stop(&seg[..cut]),
            bad(0, 48, FrameError::HeaderTruncated),
            "cut {cut}"
        );
    }
    // Fewer than 4 bytes left: no frame starts there.
    for cut in 48..48 + 4 {
        assert_eq!(wal_stop(&seg[..cut]), clean(0), "cut {cut}");
    }
}

/// A WAL directory holding a sparse file named as a segment but larger
/// than any segment (1 GiB): `wal inspect` reports it, recovery sets it
/// aside; neither maps or walks it.
#[test]
fn wal_file_larger_than_any_segment_is_not_mapped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{:020}.wal", 0));
    let file = std::fs::File::create(&path).expect("create");
    file.set_len((1 << 30) + 4096).expect("a sparse file");
    drop(file);
    let inspection = millrace::wal::inspect(dir.path()).expect("inspect");
    let anomaly = &inspection.anomalies[0];
    assert_eq!(anomaly.kind, "unreadable segment", "{anomaly:?}");
    assert!(
        anomaly.detail.contains("larger than any segment"),
        "{anomaly:?}"
    );
    let config = millrace::config::WalConfig {
        dir: dir.path().to_path_buf(),
        segment_size: 1 << 20,
        quota: 64 << 20,
        commit_interval: Duration::from_millis(10),
        commit_bytes: 1 << 20,
        when_full: millrace::config::WhenFull::Block,
        sync: millrace::config::SyncMode::Data,
    };
    let (_wal, report) = millrace::wal::Wal::open(&config).expect("recovery");
    assert_eq!(report.set_aside.len(), 1, "{:?}", report.set_aside);
    let reason = &report.set_aside[0].reason;
    assert!(reason.contains("larger than any segment"), "{reason}");
}

// ---------------------------------------------------------------- kdb+ decompression

fn compressed(declared: u32, stream: &[u8]) -> Vec<u8> {
    let total = (8 + 4 + stream.len()) as u32;
    let mut m = vec![1, 0, 1, 0];
    m.extend_from_slice(&total.to_le_bytes());
    m.extend_from_slice(&declared.to_le_bytes());
    m.extend_from_slice(stream);
    m
}

/// A stream of literals only: groups of a zero control byte and 8 bytes.
fn literal_stream(bytes: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    for chunk in bytes.chunks(8) {
        s.push(0);
        s.extend_from_slice(chunk);
    }
    s
}

#[test]
fn decompress_sizes_zero_minimum_and_maximum() {
    // Declared sizes that cannot hold a message: zero and the bare header.
    for declared in [0u32, 8] {
        assert_eq!(
            decompress(&compressed(declared, &[0, 1]), 1 << 20),
            Err(DecodeError::BadCompression {
                what: "uncompressed length"
            }),
            "declared {declared}"
        );
    }
    // The smallest message: the header and one byte.
    let plain = decompress(&compressed(9, &literal_stream(&[0x65])), 1 << 20).unwrap();
    assert_eq!(plain, vec![1, 0, 0, 0, 9, 0, 0, 0, 0x65]);
    // Exactly the maximum is accepted, one more refused before allocating.
    let body = vec![0x42u8; 24];
    let at_max = compressed(8 + 24, &literal_stream(&body));
    assert_eq!(decompress(&at_max, 32).unwrap().len(), 32);
    assert_eq!(
        decompress(&at_max, 31),
        Err(DecodeError::TooLarge {
            what: "uncompressed message",
            declared: 32,
            max: 31
        })
    );
    assert_eq!(
        decompress(&compressed(u32::MAX, &[0; 8]), usize::MAX),
        Err(DecodeError::BadCompression {
            what: "declared size beyond any expansion"
        })
    );
}

#[test]
fn decompress_lengths_beyond_the_input() {
    // Shorter than the header, and than the size field.
    for cut in 0..12 {
        let m = compressed(100, &[0; 4]);
        assert!(decompress(&m[..cut], 1 << 20).is_err(), "cut {cut}");
    }
    // A declared size the stream does not fill: ends early.
    let m = compressed(8 + 20, &literal_stream(&[1; 10]));
    assert_eq!(
        decompress(&m, 1 << 20),
        Err(DecodeError::BadCompression {
            what: "stream ends early"
        })
    );
    // A back-reference whose run (2 + 255 bytes) passes the declared size.
    let mut stream = literal_stream(&[7; 8]);
    stream.extend_from_slice(&[0x01, 0x00, 0xff]);
    let m = compressed(8 + 8 + 20, &stream);
    assert_eq!(
        decompress(&m, 1 << 20),
        Err(DecodeError::BadCompression {
            what: "copy past the declared size"
        })
    );
    // Not compressed at all.
    let mut plain = compressed(20, &[0; 8]);
    plain[2] = 0;
    assert_eq!(
        decompress(&plain, 1 << 20),
        Err(DecodeError::BadHeader {
            what: "not compressed"
        })
    );
}

#[test]
fn compressed_message_whose_header_length_lies_is_refused() {
    let limits = DecodeLimits::default();
    let good = compressed(9, &literal_stream(&[0x65]));
    let mut extra = good.clone();
    extra.extend_from_slice(&[0; 16]); // bytes past the declared frame
    assert_eq!(
        decode_message(&extra, &limits).unwrap_err(),
        DecodeError::LengthMismatch {
            declared: good.len() as u64,
            actual: extra.len() as u64
        }
    );
    assert!(matches!(
        decode_message(&good[..good.len() - 1], &limits),
        Err(DecodeError::LengthMismatch { .. })
    ));
    // The compressed form's minimum is the header plus the size field.
    let mut tiny = good.clone();
    tiny[4..8].copy_from_slice(&11u32.to_le_bytes());
    tiny.truncate(11);
    assert_eq!(
        decode_message(&tiny, &limits).unwrap_err(),
        DecodeError::BadHeader {
            what: "total length"
        }
    );
}

// ---------------------------------------------------------------- kdb+ objects

fn message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![1, 1, 0, 0];
    m.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
    m.extend_from_slice(body);
    m
}

#[test]
fn kdb_zero_length_vectors_of_every_type_decode() {
    let limits = DecodeLimits::default();
    for t in (1u8..=19).filter(|t| *t != 3) {
        let m = message(&[t, 0, 0, 0, 0, 0]);
        let (_, k) = decode_message(&m, &limits).unwrap_or_else(|e| panic!("type {t}: {e}"));
        assert_eq!(k.count(), 0, "type {t}");
    }
    // An empty general list, and an empty table is still a structure check.
    assert_eq!(
        decode_message(&message(&[0, 0, 0, 0, 0, 0]), &limits)
            .unwrap()
            .1
            .count(),
        0
    );
}

#[test]
fn kdb_counts_that_disagree_with_the_bytes() {
    let limits = DecodeLimits::default();
    // Three symbols declared, two NULs present.
    let m = message(&[11, 0, 3, 0, 0, 0, b'a', 0, b'b', 0]);
    assert!(decode_message(&m, &limits).is_err());
    // Two longs declared, the bytes of one and a half.
    let mut body = vec![7, 0, 2, 0, 0, 0];
    body.extend_from_slice(&[1; 12]);
    assert!(matches!(
        decode_message(&message(&body), &limits),
        Err(DecodeError::Truncated { .. })
    ));
    // Fewer items declared than present: trailing bytes.
    let mut body = vec![6, 0, 1, 0, 0, 0];
    body.extend_from_slice(&[1; 8]);
    assert_eq!(
        decode_message(&message(&body), &limits).unwrap_err(),
        DecodeError::TrailingBytes { count: 4 }
    );
    // The largest count a header can hold, on a general list and a vector.
    for t in [0u8, 4, 9] {
        let m = message(&[t, 0, 0xff, 0xff, 0xff, 0x7f, 1, 2]);
        assert!(matches!(
            decode_message(&m, &limits),
            Err(DecodeError::Truncated { .. })
        ));
    }
}

// ---------------------------------------------------------------- kdb+ handshake

#[test]
fn hello_lengths_zero_and_maximum() {
    // Only the NUL: empty user, no capability.
    let h = parse_client_hello(&[0]).unwrap().unwrap();
    assert_eq!(
        (h.user, h.password, h.capability, h.consumed),
        (&b""[..], &b""[..], 0, 1)
    );
    // The largest hello: NUL at the last byte of the window.
    let mut big = vec![b'u'; HELLO_BYTES_MAX - 2];
    big.push(3);
    big.push(0);
    let h = parse_client_hello(&big).unwrap().unwrap();
    assert_eq!(
        (h.user.len(), h.capability, h.consumed),
        (HELLO_BYTES_MAX - 2, 3, HELLO_BYTES_MAX)
    );
    // One byte more: the NUL lies past the window.
    let mut over = vec![b'u'; HELLO_BYTES_MAX];
    over.push(0);
    assert!(matches!(
        parse_client_hello(&over),
        Err(DecodeError::TooLarge {
            what: "handshake",
            ..
        })
    ));
    // Not there yet, below the window: wait for more bytes.
    assert_eq!(
        parse_client_hello(&[b'u'; HELLO_BYTES_MAX - 1]).unwrap(),
        None
    );
    // Bytes after the NUL are not part of the hello.
    let h = parse_client_hello(b"a:b\x03\0junk").unwrap().unwrap();
    assert_eq!((h.user, h.password, h.consumed), (&b"a"[..], &b"b"[..], 5));
}

// ---------------------------------------------------------------- the stand-in, over a socket

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect to the stand-in");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until EOF (the server closed) and returns what came; errors are a
/// reset, which also counts as closed.
fn read_to_close(mut s: TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    for _ in 0..1000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    panic!("the stand-in never closed the connection");
}

fn wait_for(tp: &Tickerplant, what: &str, ok: impl Fn(&Tickerplant) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok(tp) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            tp.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn standin_drops_hostile_clients_and_keeps_serving() {
    let options = TickerplantOptions {
        limits: DecodeLimits {
            message_bytes_max: 1 << 16,
            ..DecodeLimits::default()
        },
        ..TickerplantOptions::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in");
    let addr = tp.local_addr();

    // A hello that never ends: dropped after HELLO_BYTES_MAX bytes.
    let mut s = connect(addr);
    s.write_all(&vec![b'x'; HELLO_BYTES_MAX + 10]).unwrap();
    assert!(read_to_close(s).is_empty());
    wait_for(&tp, "the endless hello dropped", |tp| {
        tp.stats().connections_dropped >= 1
    });

    // A header declaring more than the limit: dropped before the body.
    let mut s = connect(addr);
    s.write_all(b"u:p\x03\0").unwrap();
    let mut cap = [0u8; 1];
    s.read_exact(&mut cap).unwrap();
    assert_eq!(cap, [3]);
    let mut huge = vec![1, 1, 0, 0];
    huge.extend_from_slice(&((1u32 << 16) + 1).to_le_bytes());
    s.write_all(&huge).unwrap();
    assert!(read_to_close(s).is_empty());
    wait_for(&tp, "the oversized header dropped", |tp| {
        tp.stats().connections_dropped >= 2
    });

    // A symbol vector whose count lies: dropped, no answer.
    let mut s = connect(addr);
    s.write_all(b"u:p\x03\0").unwrap();
    s.read_exact(&mut cap).unwrap();
    s.write_all(&message(&[11, 0, 9, 0, 0, 0, b'a', 0]))
        .unwrap();
    assert!(read_to_close(s).is_empty());
    wait_for(&tp, "the lying count dropped", |tp| {
        tp.stats().connections_dropped >= 3
    });

    // And an honest client still gets its answer: (::) to a sync (::).
    let mut s = connect(addr);
    s.write_all(b"u:p\x03\0").unwrap();
    s.read_exact(&mut cap).unwrap();
    s.write_all(&message(&[101, 0])).unwrap();
    let mut answer = [0u8; 10];
    s.read_exact(&mut answer).unwrap();
    assert_eq!(answer, [1, 2, 0, 0, 10, 0, 0, 0, 101, 0]);
    assert_eq!(tp.stats().connections_dropped, 3);
}

// ---------------------------------------------------------------- config: tag CSV

fn csv_plant(csv: &str) -> Result<millrace::config::Config, millrace::config::ConfigError> {
    let path = Path::new("/plant/plant.toml");
    let mut sources = MemorySources::default();
    let password = ("MILLRACE_KDB_PASSWORD".to_string(), "pw".to_string());
    sources.env.insert(password.0, password.1);
    sources
        .files
        .insert(PathBuf::from("/plant/tags.csv"), csv.to_string());
    let toml = millrace::config::FUZZ_CSV_TOML;
    parse_with(toml, path, &sources)
}

fn csv_error(csv: &str) -> String {
    match csv_plant(csv) {
        Ok(_) => panic!("accepted:\n{csv}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn csv_addresses_at_and_past_the_top_of_the_register_space() {
    let ok = csv_plant("name,area,address,type\nx,input,65535,uint16\n").unwrap();
    assert_eq!(ok.devices[0].tag_count(), 2);
    // Two registers starting at the last one run past the address space.
    let e = csv_error("name,area,address,type\nx,input,65535,uint32\n");
    assert!(e.contains("tags.csv:2"), "{e}");
    let e = csv_error("name,area,address,type\nx,input,65536,uint16\n");
    assert!(e.contains("tags.csv:2") && e.contains("address"), "{e}");
    let e = csv_error("name,area,address,type\nx,input,-1,uint16\n");
    assert!(e.contains("tags.csv:2"), "{e}");
}

#[test]
fn csv_string_lengths_zero_and_maximum() {
    let e = csv_error("name,area,address,type,length\ns,holding,0,string,0\n");
    assert!(e.contains("tags.csv:2") && e.contains("length"), "{e}");
    let e = csv_error("name,area,address,type,length\ns,holding,0,string,4294967296\n");
    assert!(e.contains("tags.csv:2") && e.contains("length"), "{e}");
    // A string longer than one request can read.
    let e = csv_error("name,area,address,type,length\ns,holding,0,string,100000\n");
    assert!(e.contains("tags.csv:2"), "{e}");
}

#[test]
fn csv_rows_whose_field_count_disagrees_with_the_header() {
    // Fewer fields than the required columns.
    let e = csv_error("name,area,address,type\nx,input,0\n");
    assert!(e.contains("tags.csv:2"), "{e}");
    // An unterminated quote swallows the rest of the file.
    let e = csv_error("name,area,address,type\n\"x,input,0,uint16\ny,input,1,uint16\n");
    assert!(e.contains("tags.csv:2"), "{e}");
    // Header only: a CSV with no tags is accepted (the TOML has one).
    let ok = csv_plant("name,area,address,type\n").unwrap();
    assert_eq!(ok.devices[0].tag_count(), 1);
}

// ---------------------------------------------------------------- Modbus RTU byte counts

fn rtu_adu(pdu: &[u8]) -> Vec<u8> {
    let mut adu = vec![1];
    adu.extend_from_slice(pdu);
    let crc = crc16(&adu);
    adu.extend_from_slice(&crc.to_le_bytes());
    adu
}

#[test]
fn rtu_byte_counts_zero_and_maximum() {
    // Byte count 0: a frame of unit, code, count and CRC.
    let mut framer = RtuFramer::new();
    let adu = rtu_adu(&[3, 0]);
    let mut input = &adu[..];
    assert_eq!(framer.next_frame(&mut input).unwrap().unwrap().pdu, &[3, 0]);
    // The largest: 250 data bytes, an ADU of exactly RTU_ADU_BYTES_MAX - 1.
    let mut pdu = vec![3, 250];
    pdu.extend(std::iter::repeat_n(0xa5, 250));
    let adu = rtu_adu(&pdu);
    assert!(adu.len() < RTU_ADU_BYTES_MAX);
    let mut framer = RtuFramer::new();
    let mut input = &adu[..];
    assert_eq!(
        framer.next_frame(&mut input).unwrap().unwrap().pdu,
        &pdu[..]
    );
    // A count that claims more than the bytes that came: wait, not read past.
    let mut framer = RtuFramer::new();
    let mut input = &adu[..100];
    assert_eq!(framer.next_frame(&mut input).unwrap(), None);
    // A count that claims fewer: the CRC lands on data bytes and fails.
    let mut lie = adu.clone();
    lie[2] = 10;
    let mut framer = RtuFramer::new();
    let mut input = &lie[..];
    assert!(matches!(
        framer.next_frame(&mut input),
        Err(ModbusError::RtuCrc { .. })
    ));
}

// ---------------------------------------------------------------- kdb+ readers and memory
//
// A peer that announces a huge message and sends little must cost little:
// every reader of kdb+ messages (the publisher's replies over TCP and TLS,
// `millrace replay` through it, the stand-in's sessions over TCP and TLS)
// grows its buffer with the bytes that arrived. Each case is measured two
// ways: the reader's buffer as it reports it, and the process's peak RSS
// (VmHWM, reset before the case) against a generous bound far below what
// the header announced.

/// What a hostile header announces: near the default maximum of the reader
/// (256 MiB for the publisher, 64 MiB for the stand-in), so the header
/// itself is accepted and only the missing body is the lie.
const PUBLISHER_ANNOUNCED_BYTES: u32 = 250 << 20;
const STANDIN_ANNOUNCED_BYTES: u32 = 60 << 20;
/// The most the process's peak RSS may rise during a case: what the header
/// announced would be several times this.
const PEAK_RISE_BYTES_MAX: u64 = 48 << 20;
/// A reader that trickles `n` bytes holds at most about twice that plus
/// 64 KiB; this bound is for `TRICKLE_BYTES`.
const TRICKLE_BYTES: usize = 2 << 20;
const TRICKLE_BUFFER_BYTES_MAX: usize = 5 << 20;
/// A reader that got a header and a few bytes holds its first 64 KiB step.
const STALL_BUFFER_BYTES_MAX: usize = 256 << 10;

/// The memory cases run one at a time: each resets the process's peak RSS.
static MEMORY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Set in the process `in_own_process` starts for one memory case.
const ALONE_ENV: &str = "MILLRACE_TEST_ALONE";

/// A memory case: a test that runs `$body` through `in_own_process`.
macro_rules! memory_case {
    ($name:ident, $body:block) => {
        #[test]
        fn $name() {
            in_own_process(stringify!($name), || $body);
        }
    };
}

/// Runs the memory case `test` (this function's caller, by its name) in a
/// process of its own: this test binary, asked for that one test. The peak
/// RSS is the process's, so measured beside other tests' threads it also
/// counted what they allocated meanwhile (once a rise of 59 MB under a
/// loaded run); alone it counts the case.
fn in_own_process(test: &str, case: impl FnOnce()) {
    if std::env::var_os(ALONE_ENV).is_some() {
        return case();
    }
    let exe = std::env::current_exe().expect("this test binary");
    let output = std::process::Command::new(exe)
        .args(["--exact", test, "--test-threads", "1", "--nocapture"])
        .env(ALONE_ENV, "1")
        .output()
        .expect("run the case in a process of its own");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "{test} alone: {}\n{stdout}\n{stderr}",
        output.status
    );
}

fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let digits: String = line.chars().filter(|c| c.is_ascii_digit()).collect();
    digits.parse().expect("a number of kB")
}

/// Peak RSS of this process from now on: `rise()` is how far it went above
/// the RSS at the start, in bytes.
struct Peak {
    start_kib: u64,
}

impl Peak {
    fn start() -> Peak {
        // Linux: writing 5 resets VmHWM to the current RSS.
        std::fs::write("/proc/self/clear_refs", "5")
            .expect("cannot reset the peak RSS through /proc/self/clear_refs");
        Peak {
            start_kib: status_kib("VmRSS:"),
        }
    }

    fn rise(&self) -> u64 {
        status_kib("VmHWM:").saturating_sub(self.start_kib) * 1024
    }
}

/// A kdb+ message header as a little-endian peer sends it.
fn kdb_header(msg_type: u8, total: u32) -> [u8; 8] {
    let [l0, l1, l2, l3] = total.to_le_bytes();
    [1, msg_type, 0, 0, l0, l1, l2, l3]
}

/// How a fake kdb+ answers the first sync message: a response header that
/// announces `announced` bytes, then `sent` bytes of body in writes of
/// `piece` bytes, then it closes or, with `hold`, waits for the client to go.
#[derive(Clone, Copy)]
struct Lie {
    announced: u32,
    sent: usize,
    piece: usize,
    hold: bool,
}

trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

/// The fake kdb+'s side of one connection (trusted test code: it reads the
/// client's messages by their headers).
fn lie_to(stream: &mut dyn Duplex, lie: Lie) {
    let mut byte = [0u8; 1];
    for _ in 0..HELLO_BYTES_MAX {
        stream.read_exact(&mut byte).expect("hello");
        if byte[0] == 0 {
            break;
        }
    }
    stream.write_all(&[3]).expect("capability");
    stream.flush().expect("flush");
    loop {
        let mut head = [0u8; 8];
        stream.read_exact(&mut head).expect("a message header");
        let total = u32::from_le_bytes(head[4..8].try_into().unwrap()) as usize;
        let mut body = vec![0u8; total - 8];
        stream.read_exact(&mut body).expect("a message body");
        if head[1] == 1 {
            break; // the sync chaser
        }
    }
    stream
        .write_all(&kdb_header(2, lie.announced))
        .expect("the lie");
    let piece = vec![0x5au8; lie.piece];
    let mut sent = 0;
    while sent < lie.sent {
        let n = lie.piece.min(lie.sent - sent);
        if stream.write_all(&piece[..n]).is_err() {
            return;
        }
        sent += n;
    }
    let _ = stream.flush();
    if lie.hold {
        // Until the client gives up and closes (bounded by the socket's
        // read timeout).
        let _ = stream.read(&mut byte);
    }
}

/// A fake kdb+ on 127.0.0.1 that serves one connection, plain or TLS.
fn fake_kdb(
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    lie: Lie,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the fake kdb+");
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().expect("accept");
        tcp.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        match tls {
            None => lie_to(&mut { tcp }, lie),
            Some(config) => {
                let stop = std::sync::atomic::AtomicBool::new(false);
                let mut s =
                    millrace::kdb::tls::accept(&config, tcp, &stop, Duration::from_secs(20))
                        .expect("the fake kdb+'s TLS handshake");
                lie_to(&mut s, lie);
                s.conn.send_close_notify();
                let _ = s.conn.write_tls(&mut s.sock);
            }
        }
    });
    (addr, server)
}

fn tls_files(pki: &tls_support::Pki) -> millrace::kdb::ServerTlsFiles {
    millrace::kdb::ServerTlsFiles {
        cert: pki.server_cert.clone(),
        key: pki.server_key.clone(),
        client_ca: None,
    }
}

fn publisher_tls(pki: &tls_support::Pki) -> millrace::kdb::TlsClient {
    let sink = millrace::config::SinkTls {
        ca_file: pki.ca.clone(),
        client_cert: None,
        server_name: "127.0.0.1".into(),
    };
    millrace::kdb::TlsClient::from_sink(&sink).expect("TLS client")
}

/// One publisher against one lying fake kdb+: the chaser's reply fails, and
/// the reply buffer the publisher reports stays under `buffer_max`.
fn publisher_meets(lie: Lie, tls: bool, buffer_max: usize) {
    use millrace::kdb::{KdbError, Publisher, PublisherOptions};
    let _one_at_a_time = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let pki = tls_support::pki();
    let server_tls = tls.then(|| tls_files(&pki).load().expect("server TLS"));
    let (addr, server) = fake_kdb(server_tls, lie);
    let options = PublisherOptions {
        io_timeout: Duration::from_secs(2),
        tls: tls.then(|| publisher_tls(&pki)),
        ..PublisherOptions::default()
    };
    let secret = millrace::config::Secret::new(String::new());
    let peak = Peak::start();
    let mut publisher =
        Publisher::connect(&addr.to_string(), "u", &secret, options).expect("log in");
    let reply = publisher.chase();
    match (&reply, lie.hold) {
        (Err(KdbError::Io(e)), true) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        (Err(KdbError::Closed), false) => {}
        _ => panic!("the lie was believed: {reply:?}"),
    }
    let held = publisher.reply_buffer_bytes();
    let rise = peak.rise();
    drop(publisher);
    server.join().expect("the fake kdb+");
    assert!(held <= buffer_max, "the reply buffer holds {held} bytes");
    assert!(rise < PEAK_RISE_BYTES_MAX, "peak RSS rose {rise} bytes");
}

const STALL: Lie = Lie {
    announced: PUBLISHER_ANNOUNCED_BYTES,
    sent: 1_000,
    piece: 1_000,
    hold: true,
};

const TRICKLE: Lie = Lie {
    announced: PUBLISHER_ANNOUNCED_BYTES,
    sent: TRICKLE_BYTES,
    piece: 4_096,
    hold: false,
};

memory_case!(
    publisher_reply_announcing_250_mib_then_stalling_holds_little,
    {
        publisher_meets(STALL, false, STALL_BUFFER_BYTES_MAX);
    }
);

memory_case!(
    publisher_reply_announcing_250_mib_then_trickling_holds_little,
    {
        publisher_meets(TRICKLE, false, TRICKLE_BUFFER_BYTES_MAX);
    }
);

memory_case!(publisher_tls_reply_announcing_250_mib_holds_little, {
    publisher_meets(STALL, true, STALL_BUFFER_BYTES_MAX);
    publisher_meets(TRICKLE, true, TRICKLE_BUFFER_BYTES_MAX);
});

/// Logs in to the stand-in and sends a header announcing `announced` bytes
/// and `sent` bytes of its body, in writes of `piece` bytes.
fn standin_lie(stream: &mut dyn Duplex, sent: usize, piece: usize) {
    stream.write_all(b"u:p\x03\0").unwrap();
    let mut cap = [0u8; 1];
    stream.read_exact(&mut cap).unwrap();
    assert_eq!(cap, [3]);
    stream
        .write_all(&kdb_header(0, STANDIN_ANNOUNCED_BYTES))
        .unwrap();
    let body = vec![0x5au8; piece];
    let mut done = 0;
    while done < sent {
        let n = piece.min(sent - done);
        stream.write_all(&body[..n]).unwrap();
        done += n;
    }
    stream.flush().unwrap();
}

/// Four connections stall inside a message the stand-in's header check let
/// through, a fifth trickles, then all go: each is dropped as a truncated
/// message, and neither a connection's buffer nor the process grew by what
/// the headers announced.
fn standin_meets_liars(tls: bool) {
    let _one_at_a_time = MEMORY.lock().unwrap_or_else(|e| e.into_inner());
    let pki = tls_support::pki();
    let options = TickerplantOptions {
        tls: tls.then(|| tls_files(&pki).load().expect("server TLS")),
        ..TickerplantOptions::default()
    };
    assert!(STANDIN_ANNOUNCED_BYTES as usize <= options.limits.message_bytes_max);
    let peak = Peak::start();
    let tp = Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in");
    let client = publisher_tls(&pki);
    let connect = || -> Box<dyn Duplex> {
        let tcp = connect(tp.local_addr());
        if tls {
            Box::new(millrace::kdb::tls::connect(&client, tcp).expect("TLS to the stand-in"))
        } else {
            Box::new(tcp)
        }
    };
    let mut liars = Vec::new();
    for _ in 0..4 {
        let mut s = connect();
        standin_lie(&mut *s, 1_000, 1_000);
        liars.push(s);
    }
    let mut trickler = connect();
    standin_lie(&mut *trickler, TRICKLE_BYTES, 4_096);
    liars.push(trickler);
    drop(liars);
    wait_for(&tp, "the five liars dropped", |tp| {
        tp.stats().connections_dropped >= 5
    });
    let stats = tp.stats();
    let rise = peak.rise();
    assert_eq!(stats.connections_dropped, 5, "{stats:?}");
    assert!(
        stats.message_buffer_bytes_max <= TRICKLE_BUFFER_BYTES_MAX,
        "{stats:?}"
    );
    assert!(rise < PEAK_RISE_BYTES_MAX, "peak RSS rose {rise} bytes");
}

memory_case!(standin_connections_announcing_60_mib_hold_little, {
    standin_meets_liars(false);
});

memory_case!(standin_tls_connections_announcing_60_mib_hold_little, {
    standin_meets_liars(true);
});

/// A WAL of one frame whose tag table names tag 0, for `millrace replay`.
fn one_frame_wal(dir: &Path) {
    use millrace::config::{SyncMode, WalConfig, WhenFull};
    let config = WalConfig {
        dir: dir.to_path_buf(),
        segment_size: 1 << 20,
        quota: 64 << 20,
        commit_interval: Duration::from_millis(10),
        commit_bytes: 1 << 20,
        when_full: WhenFull::Block,
        sync: SyncMode::Data,
    };
    let (mut wal, _) = millrace::wal::Wal::open(&config).expect("open the WAL");
    let samples: Vec<millrace::Sample> = (0..10)
        .map(|i| {
            let kind = millrace::ValueKind::U64;
            millrace::Sample::new(i, millrace::TagId(0), millrace::Quality::GOOD, kind, 7)
        })
        .collect();
    wal.append(&samples).expect("append");
    wal.commit().expect("commit");
    drop(wal);
    let tags = dir.join(format!("tags.{:020}.tsv", 0));
    std::fs::write(tags, "t0\tplc1\n").expect("tag table");
}

/// Waits for `child` and returns its exit status and its peak RSS in bytes
/// (the kernel's count, kept after the process is gone).
fn wait_with_peak(child: std::process::Child) -> (i32, u64) {
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes it whole.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child, reaped exactly once here (std's Child never
    // waits for it: it is dropped without `wait`).
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    assert!(libc::WIFEXITED(status), "the child did not exit: {status}");
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

/// `millrace replay` sends a WAL to a fake kdb+ whose answer to the final
/// chaser announces 250 MiB and trickles 2 MiB: replay fails in words, and
/// its peak RSS stays far below what was announced.
#[test]
fn replay_against_a_kdb_announcing_250_mib_holds_little() {
    let dir = tempfile::tempdir().expect("tempdir");
    one_frame_wal(dir.path());
    let (addr, server) = fake_kdb(None, TRICKLE);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["replay", "--wal"])
        .arg(dir.path())
        .args(["--to", &addr.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn millrace replay");
    let mut stderr = child.stderr.take().expect("stderr");
    let (code, peak) = wait_with_peak(child);
    server.join().expect("the fake kdb+");
    let mut text = String::new();
    stderr.read_to_string(&mut text).expect("replay's stderr");
    assert_eq!(code, 1, "replay must fail: {text}");
    assert!(text.contains("kdb+ peer closed the connection"), "{text}");
    assert!(
        peak < PEAK_RISE_BYTES_MAX + (16 << 20),
        "peak RSS {peak} bytes"
    );
}
