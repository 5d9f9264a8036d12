//! The S7 farm seen by a raw-socket client speaking TPKT/COTP/S7 written
//! here from the wire facts: the handshake and its TSAP check, PDU
//! negotiation, every word length's bytes against the memory functions,
//! every emitted tag's value against the checker, every error path, the
//! fault modes, and hostile input that must not hurt the farm.
#![cfg(not(millrace_loom))]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use millrace::config::{S7Area, S7Type};
use millrace::farm::s7::{self, memory, Check, FarmTag};
use millrace::farm::{Farm, FarmHandle, FarmOptions, FarmProtocol, FaultRates, S7FarmOptions};

/// Every blocking read in these tests gives up after this (no hangs).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn farm_with(s7: S7FarmOptions, faults: FaultRates) -> FarmHandle {
    Farm::start(FarmOptions {
        devices: 2,
        protocol: FarmProtocol::S7,
        faults,
        stall: Duration::from_millis(400),
        s7,
        ..FarmOptions::default()
    })
    .unwrap()
}

fn farm() -> FarmHandle {
    farm_with(S7FarmOptions::default(), FaultRates::default())
}

fn connect(handle: &FarmHandle, device: u32) -> TcpStream {
    let stream = TcpStream::connect(handle.addr(device).unwrap()).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn tpkt(cotp_and_pdu: &[u8]) -> Vec<u8> {
    let size = 4 + cotp_and_pdu.len();
    let mut v = vec![3, 0, (size >> 8) as u8, size as u8];
    v.extend_from_slice(cotp_and_pdu);
    v
}

/// A CR with calling TSAP 01 00 and the given called TSAP.
fn connect_request(called: [u8; 2]) -> Vec<u8> {
    tpkt(&[
        17, 0xE0, 0, 0, 0x00, 0x2A, 0, 0xC0, 1, 0x0A, 0xC1, 2, 0x01, 0x00, 0xC2, 2, called[0],
        called[1],
    ])
}

/// A DT frame around an S7 job.
fn job(pdu_ref: u16, params: &[u8], data: &[u8]) -> Vec<u8> {
    let mut pdu = vec![2, 0xF0, 0x80, 0x32, 1, 0, 0];
    pdu.extend_from_slice(&pdu_ref.to_be_bytes());
    pdu.extend_from_slice(&(params.len() as u16).to_be_bytes());
    pdu.extend_from_slice(&(data.len() as u16).to_be_bytes());
    pdu.extend_from_slice(params);
    pdu.extend_from_slice(data);
    tpkt(&pdu)
}

fn setup(pdu_ref: u16, pdu_size: u16) -> Vec<u8> {
    let mut params = vec![0xF0, 0, 0, 3, 0, 3];
    params.extend_from_slice(&pdu_size.to_be_bytes());
    job(pdu_ref, &params, &[])
}

/// One Read Var item: word length, count, DB, area, byte, bit.
#[derive(Clone, Copy, Debug)]
struct Item {
    word_length: u8,
    count: u16,
    db: u16,
    area: u8,
    byte: u32,
    bit: u8,
}

fn item(word_length: u8, count: u16, area: S7Area, byte: u32) -> Item {
    Item {
        word_length,
        count,
        db: area.db_number(),
        area: area.code(),
        byte,
        bit: 0,
    }
}

fn read_var(pdu_ref: u16, items: &[Item]) -> Vec<u8> {
    let mut params = vec![0x04, items.len() as u8];
    for i in items {
        params.extend_from_slice(&[0x12, 0x0A, 0x10, i.word_length]);
        params.extend_from_slice(&i.count.to_be_bytes());
        params.extend_from_slice(&i.db.to_be_bytes());
        params.push(i.area);
        let address = i.byte << 3 | u32::from(i.bit);
        params.extend_from_slice(&address.to_be_bytes()[1..]);
    }
    job(pdu_ref, &params, &[])
}

/// One whole TPKT frame.
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).unwrap();
    assert_eq!(header[0], 3, "TPKT version");
    let size = usize::from(u16::from_be_bytes([header[2], header[3]]));
    let mut frame = header.to_vec();
    frame.resize(size, 0);
    stream.read_exact(&mut frame[4..]).unwrap();
    frame
}

/// An S7 answer: ROSCTR, PDU ref, error (class, code), params, data.
#[derive(Debug)]
struct Answer {
    rosctr: u8,
    pdu_ref: u16,
    error: (u8, u8),
    params: Vec<u8>,
    data: Vec<u8>,
}

fn read_answer(stream: &mut TcpStream) -> Answer {
    let frame = read_frame(stream);
    assert_eq!(&frame[4..7], &[2, 0xF0, 0x80], "COTP DT with EOT");
    let s7 = &frame[7..];
    assert_eq!(s7[0], 0x32);
    let param_len = usize::from(u16::from_be_bytes([s7[6], s7[7]]));
    let data_len = usize::from(u16::from_be_bytes([s7[8], s7[9]]));
    assert_eq!(12 + param_len + data_len, s7.len(), "header lengths");
    Answer {
        rosctr: s7[1],
        pdu_ref: u16::from_be_bytes([s7[4], s7[5]]),
        error: (s7[10], s7[11]),
        params: s7[12..12 + param_len].to_vec(),
        data: s7[12 + param_len..].to_vec(),
    }
}

/// Connects and sets up; returns the stream and the negotiated PDU size.
fn session(handle: &FarmHandle, device: u32, pdu_size: u16) -> (TcpStream, u16) {
    let mut stream = connect(handle, device);
    stream.write_all(&connect_request([0x03, 0x01])).unwrap();
    let cc = read_frame(&mut stream);
    assert_eq!(cc[5], 0xD0, "connect confirm: {cc:?}");
    stream.write_all(&setup(1, pdu_size)).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!((answer.rosctr, answer.error), (3, (0, 0)));
    assert_eq!(&answer.params[..2], &[0xF0, 0]);
    let negotiated = u16::from_be_bytes([answer.params[6], answer.params[7]]);
    (stream, negotiated)
}

/// A reply item: return code, transport size, length field, data.
#[derive(Debug, PartialEq, Eq)]
struct ReplyItem {
    rc: u8,
    transport: u8,
    length: u16,
    data: Vec<u8>,
}

/// The items of a Read Var ack-data (checking the fill bytes).
fn reply_items(answer: &Answer) -> Vec<ReplyItem> {
    assert_eq!((answer.rosctr, answer.error), (3, (0, 0)), "{answer:?}");
    assert_eq!(answer.params[0], 0x04);
    let count = usize::from(answer.params[1]);
    let mut items = Vec::new();
    let mut at = 0;
    for index in 0..count {
        let d = &answer.data[at..];
        let (rc, transport, length) = (d[0], d[1], u16::from_be_bytes([d[2], d[3]]));
        let size = match (rc, transport) {
            (0xFF, 0x03 | 0x07 | 0x09) => usize::from(length),
            (0xFF, _) => usize::from(length) / 8,
            _ => 0,
        };
        let size = if transport == 0x03 { 1 } else { size };
        items.push(ReplyItem {
            rc,
            transport,
            length,
            data: d[4..4 + size].to_vec(),
        });
        at += 4 + size;
        if index + 1 < count && size % 2 == 1 {
            assert_eq!(answer.data[at], 0, "fill byte after an odd item");
            at += 1;
        }
    }
    assert_eq!(at, answer.data.len(), "nothing after the last item");
    items
}

fn memory(device: u32, area: S7Area, byte: u32, size: usize, counter: u8) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    memory::fill(device, area, byte, counter, &mut bytes);
    bytes
}

fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + READ_TIMEOUT;
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => assert!(Instant::now() < deadline, "still answering"),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return,
            Err(e) => panic!("not closed: {e}"),
        }
    }
}

#[test]
fn connect_honours_the_tsap_and_setup_takes_the_smaller_pdu() {
    let handle = farm_with(
        S7FarmOptions {
            pdu_size: 480,
            max_amq: 2,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let mut stream = connect(&handle, 0);
    stream.write_all(&connect_request([0x03, 0x01])).unwrap();
    let cc = read_frame(&mut stream);
    // CC: our reference, the client's echoed, TPDU size 1024, TSAPs echoed.
    assert_eq!(
        &cc[4..],
        &[17, 0xD0, 0x00, 0x2A, 0, 1, 0, 0xC0, 1, 0x0A, 0xC1, 2, 1, 0, 0xC2, 2, 3, 1]
    );
    stream.write_all(&setup(7, 960)).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!(answer.pdu_ref, 7);
    assert_eq!(answer.params, [0xF0, 0, 0, 2, 0, 2, 0x01, 0xE0]);
    // Renegotiating is allowed; a request below 240 gets 240 (as Snap7).
    for (asked, got) in [(300u16, 300u16), (100, 240), (60000, 480)] {
        stream.write_all(&setup(8, asked)).unwrap();
        let answer = read_answer(&mut stream);
        assert_eq!(
            u16::from_be_bytes([answer.params[6], answer.params[7]]),
            got
        );
    }
    // Any connection type (PG 01, OP 02, S7 basic 03) to rack 0 slot 1.
    for kind in [1u8, 2] {
        let mut other = connect(&handle, 1);
        other.write_all(&connect_request([kind, 0x01])).unwrap();
        assert_eq!(read_frame(&mut other)[5], 0xD0);
    }
    // Slot 2, rack 1 slot 1, or an unknown type: a DR, then the close.
    for called in [[3u8, 0x02], [3, 0x21], [0x10, 0x01]] {
        let mut refused = connect(&handle, 0);
        refused.write_all(&connect_request(called)).unwrap();
        let dr = read_frame(&mut refused);
        assert_eq!(&dr[4..], &[6, 0x80, 0x00, 0x2A, 0, 1, 0x02], "{called:?}");
        assert_closed(&mut refused);
    }
    assert_eq!(handle.stop().unwrap().s7_connects_refused, 3);
}

#[test]
fn every_word_length_and_area_reads_the_memory_functions() {
    let handle = farm();
    let (mut stream, pdu) = session(&handle, 1, 960);
    assert_eq!(pdu, 960);
    let db1 = S7Area::Db(1);
    let items = [
        item(0x02, 7, db1, 3),                // BYTE x7: odd, filled
        item(0x04, 3, db1, 100),              // WORD
        item(0x06, 2, S7Area::Merker, 40),    // DWORD
        item(0x05, 1, S7Area::Inputs, 9),     // INT
        item(0x07, 1, S7Area::Outputs, 200),  // DINT
        item(0x08, 2, db1, 20),               // REAL
        item(0x03, 30, db1, 514),             // CHAR x30 of a STRING[30]
        item(0x02, 300, S7Area::Db(16), 500), // across a numeric and a strings page
        Item {
            bit: 6,
            ..item(0x01, 1, db1, 0)
        },
        Item {
            bit: 2,
            ..item(0x01, 1, S7Area::Merker, 77)
        },
    ];
    for (round, counter) in [(0u16, 0u8), (1, 1), (2, 2)] {
        stream.write_all(&read_var(100 + round, &items)).unwrap();
        let answer = read_answer(&mut stream);
        assert_eq!(answer.pdu_ref, 100 + round);
        let replies = reply_items(&answer);
        assert_eq!(replies.len(), items.len());
        for (i, reply) in items.iter().zip(&replies) {
            let area = match i.area {
                0x84 => S7Area::Db(i.db),
                0x83 => S7Area::Merker,
                0x81 => S7Area::Inputs,
                _ => S7Area::Outputs,
            };
            let element = [0, 1, 1, 1, 2, 2, 4, 4, 4][usize::from(i.word_length)];
            let size = usize::from(i.count) * element;
            let bytes = memory(1, area, i.byte, size, counter);
            let (transport, length) = match i.word_length {
                0x01 => (0x03, 1),
                0x02 | 0x04 | 0x06 => (0x04, 8 * size as u16),
                0x05 | 0x07 => (0x05, 8 * size as u16),
                0x08 => (0x07, size as u16),
                _ => (0x09, size as u16),
            };
            let data = if i.word_length == 0x01 {
                vec![bytes[0] >> i.bit & 1]
            } else {
                bytes
            };
            let expected = ReplyItem {
                rc: 0xFF,
                transport,
                length,
                data,
            };
            assert_eq!(reply, &expected, "{i:?}");
        }
    }
    assert_eq!(handle.stop().unwrap().data_responses, 3);
}

/// What millrace delivers for a tag read as bytes (see `s7::check`).
fn delivered(tag: &FarmTag, bytes: &[u8]) -> Result<f64, Vec<u8>> {
    match tag.data_type {
        S7Type::Char => Err(bytes.to_vec()),
        S7Type::String(_) => Err(bytes[2..2 + usize::from(bytes[1])].to_vec()),
        S7Type::WString(_) => {
            let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
            let units: Vec<u16> = bytes[4..4 + 2 * len]
                .chunks(2)
                .map(|u| u16::from_be_bytes([u[0], u[1]]))
                .collect();
            Err(String::from_utf16(&units).unwrap().into_bytes())
        }
        t => {
            let raw = s7::check::decode_number(t, tag.bit, bytes).expect("a valid value");
            Ok(if tag.is_scaled() {
                raw * tag.scale + tag.offset
            } else {
                raw
            })
        }
    }
}

#[test]
fn every_emitted_tag_read_from_the_wire_checks() {
    let handle = farm();
    let (mut stream, _) = session(&handle, 0, 960);
    let tags = s7::layout::farm_tags(400);
    let mut checked = [0u32; 21];
    let (mut other_devices, mut other_passes) = (0u32, 0u32);
    for (round, chunk) in tags.chunks(8).enumerate() {
        let items: Vec<Item> = chunk
            .iter()
            .map(|t| match t.data_type {
                S7Type::Bool => Item {
                    bit: t.bit,
                    ..item(0x01, 1, t.area, t.byte)
                },
                d => item(0x02, d.byte_size() as u16, t.area, t.byte),
            })
            .collect();
        stream.write_all(&read_var(round as u16, &items)).unwrap();
        let replies = reply_items(&read_answer(&mut stream));
        let counter = round as u8;
        for (tag, reply) in chunk.iter().zip(&replies) {
            // A BIT read answers 0 or 1 in bit 0.
            let bytes = match tag.data_type {
                S7Type::Bool => vec![reply.data[0] << tag.bit],
                _ => reply.data.clone(),
            };
            let found = match delivered(tag, &bytes) {
                Ok(v) => s7::check_number(0, tag, v),
                Err(text) => s7::check_text(0, tag, &text),
            };
            let whole = tag.data_type.byte_size() >= 2;
            assert_eq!(found, Check::Served(whole.then_some(counter)), "{tag:?}");
            let at = S7Type::NAMES
                .iter()
                .position(|(_, t)| {
                    std::mem::discriminant(t) == std::mem::discriminant(&tag.data_type)
                })
                .unwrap();
            checked[at] += 1;
            // The same value from another device rarely checks.
            if whole {
                let other = match delivered(tag, &bytes) {
                    Ok(v) => s7::check_number(1, tag, v),
                    Err(text) => s7::check_text(1, tag, &text),
                };
                other_devices += 1;
                other_passes += u32::from(other == found);
            }
        }
    }
    assert!(
        checked.iter().all(|&n| n > 0),
        "every type read: {checked:?}"
    );
    assert!(
        other_passes * 50 <= other_devices,
        "{other_passes} of {other_devices}"
    );
}

#[test]
fn bad_items_get_their_return_codes_and_good_ones_their_data() {
    let handle = farm_with(
        S7FarmOptions {
            db_count: 3,
            db_size: 1000,
            merker_size: 100,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let (mut stream, _) = session(&handle, 0, 960);
    let db2 = S7Area::Db(2);
    let items = [
        item(0x02, 4, db2, 0),           // good
        item(0x02, 1, S7Area::Db(4), 0), // DB4 of 3: 0A
        Item {
            db: 0,
            ..item(0x02, 1, db2, 0)
        }, // DB0: 0A
        Item {
            area: 0x1C,
            ..item(0x1C, 1, db2, 0)
        }, // counters: 0A
        item(0x1D, 1, db2, 0),           // a timer word length in a DB: 06
        item(0x02, 0, db2, 0),           // count 0: 05
        item(0x01, 2, db2, 0),           // two bits: 05
        Item {
            bit: 3,
            ..item(0x04, 1, db2, 0)
        }, // a bit address on a word: 05
        item(0x02, 2, db2, 999),         // one byte past the end: 05
        item(0x06, 1, S7Area::Merker, 96), // the last four bytes of M: good
        item(0x02, 1, S7Area::Merker, 100), // past M: 05
        item(0x04, 1, db2, 998),         // the last word: good
    ];
    stream.write_all(&read_var(9, &items)).unwrap();
    let replies = reply_items(&read_answer(&mut stream));
    let codes: Vec<u8> = replies.iter().map(|r| r.rc).collect();
    assert_eq!(
        codes,
        [0xFF, 0x0A, 0x0A, 0x0A, 0x06, 0x05, 0x05, 0x05, 0x05, 0xFF, 0x05, 0xFF]
    );
    for r in replies.iter().filter(|r| r.rc != 0xFF) {
        assert_eq!((r.transport, r.length, r.data.len()), (0, 0, 0));
    }
    assert_eq!(replies[0].data, memory(0, db2, 0, 4, 0));
    assert_eq!(replies[9].data, memory(0, S7Area::Merker, 96, 4, 0));
    assert_eq!(handle.stop().unwrap().s7_item_errors, 9);
}

#[test]
fn requests_and_replies_past_the_pdu_get_0x8500() {
    let handle = farm_with(
        S7FarmOptions {
            pdu_size: 240,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let (mut stream, pdu) = session(&handle, 0, 960);
    assert_eq!(pdu, 240);
    let one = item(0x02, 1, S7Area::Db(1), 0);
    // 12 + 12 x 19 = 240 fits; 20 items (252 bytes) do not.
    stream.write_all(&read_var(1, &[one; 19])).unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 19);
    stream.write_all(&read_var(2, &[one; 20])).unwrap();
    let refused = read_answer(&mut stream);
    assert_eq!(
        (refused.rosctr, refused.pdu_ref, refused.error),
        (2, 2, (0x85, 0))
    );
    assert!(refused.params.is_empty() && refused.data.is_empty());
    // A reply of 14 + 4 + 222 = 240 bytes fits; one byte more does not.
    stream
        .write_all(&read_var(3, &[item(0x02, 222, S7Area::Db(1), 0)]))
        .unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream))[0].data.len(), 222);
    stream
        .write_all(&read_var(4, &[item(0x02, 223, S7Area::Db(1), 0)]))
        .unwrap();
    assert_eq!(read_answer(&mut stream).error, (0x85, 0));
    // Two odd items pay a fill byte: 14 + (4 + 109 + 1) + (4 + 108) = 240.
    let two = [
        item(0x02, 109, S7Area::Db(1), 0),
        item(0x02, 108, S7Area::Db(1), 0),
    ];
    stream.write_all(&read_var(5, &two)).unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 2);
    let two = [
        item(0x02, 109, S7Area::Db(1), 0),
        item(0x02, 109, S7Area::Db(1), 0),
    ];
    stream.write_all(&read_var(6, &two)).unwrap();
    assert_eq!(read_answer(&mut stream).error, (0x85, 0));
    // The connection lives on.
    stream.write_all(&read_var(7, &[one])).unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 1);
    assert_eq!(handle.stop().unwrap().s7_header_errors, 3);
}

#[test]
fn put_get_off_refuses_every_read_with_0x8104() {
    let handle = farm_with(
        S7FarmOptions {
            put_get_off: true,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let (mut stream, _) = session(&handle, 0, 960);
    for pdu_ref in 0..3 {
        stream
            .write_all(&read_var(pdu_ref, &[item(0x02, 2, S7Area::Db(1), 0)]))
            .unwrap();
        let answer = read_answer(&mut stream);
        assert_eq!(
            (answer.rosctr, answer.pdu_ref, answer.error),
            (2, pdu_ref, (0x81, 0x04))
        );
    }
    assert_eq!(handle.stop().unwrap().data_responses, 0);
}

#[test]
fn malformed_parameters_and_other_functions_get_0x8104() {
    let handle = farm();
    let (mut stream, _) = session(&handle, 0, 960);
    let good = read_var(0, &[item(0x02, 2, S7Area::Db(1), 0)]);
    let params = |frame: &[u8]| frame[17..].to_vec();
    let p = params(&good);
    let mut wrong_count = p.clone();
    wrong_count[1] = 2;
    let mut wrong_spec = p.clone();
    wrong_spec[2] = 0x11;
    let mut zero = p.clone();
    zero.truncate(2);
    zero[1] = 0;
    let bad: Vec<Vec<u8>> = vec![
        job(1, &wrong_count, &[]),
        job(2, &wrong_spec, &[]),
        job(3, &zero, &[]),
        job(4, &p, &[0xAA]),                 // data where none belongs
        job(5, &[0x05, 0x01], &[]),          // Write Var: not served
        job(6, &[0x1A], &[]),                // request download
        job(7, &[], &[]),                    // no function at all
        job(8, &[0xF0, 0, 0, 1, 0, 1], &[]), // a short setup
    ];
    for (frame, pdu_ref) in bad.iter().zip(1u16..) {
        stream.write_all(frame).unwrap();
        let answer = read_answer(&mut stream);
        assert_eq!(
            (answer.rosctr, answer.pdu_ref, answer.error),
            (2, pdu_ref, (0x81, 0x04))
        );
    }
    stream.write_all(&good).unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 1);
}

#[test]
fn what_cannot_be_s7_closes_the_connection_and_the_farm_serves_on() {
    let handle = farm();
    let dt = |pdu: &[u8]| {
        let mut v = vec![2, 0xF0, 0x80];
        v.extend_from_slice(pdu);
        tpkt(&v)
    };
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("TPKT version 4", vec![vec![4, 0, 0, 7, 2, 0xF0, 0x80]]),
        ("TPKT length 6", vec![vec![3, 0, 0, 6, 2, 0xF0]]),
        (
            "TPKT length 65535",
            vec![vec![3, 0, 0xFF, 0xFF, 2, 0xF0, 0x80]],
        ),
        ("data before connect", vec![setup(1, 960)]),
        (
            "connect twice",
            vec![connect_request([3, 1]), connect_request([3, 1])],
        ),
        (
            "read before setup",
            vec![
                connect_request([3, 1]),
                read_var(1, &[item(2, 1, S7Area::Db(1), 0)]),
            ],
        ),
        (
            "a fragment",
            vec![connect_request([3, 1]), tpkt(&[2, 0xF0, 0x00, 0x32, 1])],
        ),
        (
            "userdata",
            vec![
                connect_request([3, 1]),
                setup(1, 960),
                dt(&[0x32, 7, 0, 0, 0, 1, 0, 0, 0, 0]),
            ],
        ),
        (
            "not S7",
            vec![
                connect_request([3, 1]),
                dt(&[0x72, 1, 0, 0, 0, 1, 0, 0, 0, 0]),
            ],
        ),
        (
            "header lengths",
            vec![
                connect_request([3, 1]),
                dt(&[0x32, 1, 0, 0, 0, 1, 0, 9, 0, 0, 0xF0]),
            ],
        ),
        (
            "a CR parameter past its header",
            vec![tpkt(&[9, 0xE0, 0, 0, 0, 1, 0, 0xC2, 9, 3])],
        ),
        ("an expedited data unit", vec![tpkt(&[2, 0x10, 0x80])]),
    ];
    for (name, frames) in cases {
        let mut stream = connect(&handle, 0);
        for frame in &frames {
            // The farm may close before the last frame is written.
            let _ = stream.write_all(frame);
        }
        let mut buf = Vec::new();
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            let mut chunk = [0u8; 512];
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("{name}: not closed ({e}), got {buf:?}"),
            }
            assert!(Instant::now() < deadline, "{name}");
        }
    }
    // Still serving.
    let (mut stream, _) = session(&handle, 0, 960);
    stream
        .write_all(&read_var(1, &[item(0x02, 1, S7Area::Db(1), 0)]))
        .unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 1);
    assert!(handle.stop().unwrap().framing_errors >= 10);
}

#[test]
fn hostile_bytes_after_the_handshake_never_hurt_the_farm() {
    let handle = farm();
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..200 {
        let (mut stream, _) = session(&handle, round % 2, 960);
        // A valid Read Var with random bytes over its item fields, or
        // random bytes behind a valid TPKT/DT header.
        let mut frame = read_var(1, &[item(0x02, 4, S7Area::Db(1), 0); 3]);
        let len = frame.len();
        for _ in 0..1 + next() % 6 {
            let at = 17 + (next() as usize) % (len - 17);
            frame[at] = next() as u8;
        }
        if round % 3 == 0 {
            let size = 7 + (next() % 900) as usize;
            frame = tpkt(&[2, 0xF0, 0x80]);
            frame.resize(size, 0);
            frame[2..4].copy_from_slice(&(size as u16).to_be_bytes());
            for b in &mut frame[7..] {
                *b = next() as u8;
            }
            if round % 2 == 0 {
                frame[7] = 0x32;
                frame[8] = 1;
            }
        }
        let _ = stream.write_all(&frame);
        stream
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut buf = [0u8; 2048];
        let _ = stream.read(&mut buf);
    }
    let (mut stream, _) = session(&handle, 1, 960);
    stream
        .write_all(&read_var(1, &[item(0x02, 1, S7Area::Db(1), 0)]))
        .unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 1);
}

#[test]
fn pipelined_jobs_are_answered_in_order_with_one_counter_each() {
    let handle = farm();
    let (mut stream, _) = session(&handle, 0, 960);
    let area = S7Area::Db(1);
    let mut burst = Vec::new();
    for pdu_ref in 0..40u16 {
        burst.extend(read_var(
            pdu_ref,
            &[item(0x04, 2, area, 0), item(0x02, 3, S7Area::Merker, 1)],
        ));
    }
    stream.write_all(&burst).unwrap();
    for pdu_ref in 0..40u16 {
        let answer = read_answer(&mut stream);
        assert_eq!(answer.pdu_ref, pdu_ref);
        let items = reply_items(&answer);
        let counter = pdu_ref as u8;
        assert_eq!(items[0].data, memory(0, area, 0, 4, counter));
        assert_eq!(items[1].data, memory(0, S7Area::Merker, 1, 3, counter));
    }
}

#[test]
fn faults_come_as_s7_answers() {
    let one = [
        item(0x02, 4, S7Area::Db(1), 0),
        item(0x02, 4, S7Area::Db(1), 8),
        item(0x02, 4, S7Area::Db(1), 16),
    ];
    // Item errors: exactly one item of each answer has 0x01.
    let handle = farm_with(
        S7FarmOptions::default(),
        FaultRates {
            exception: 1.0,
            ..FaultRates::default()
        },
    );
    let (mut stream, _) = session(&handle, 0, 960);
    for pdu_ref in 0..20 {
        stream.write_all(&read_var(pdu_ref, &one)).unwrap();
        let items = reply_items(&read_answer(&mut stream));
        assert_eq!(items.iter().filter(|i| i.rc == 0x01).count(), 1);
        assert_eq!(items.iter().filter(|i| i.rc == 0xFF).count(), 2);
    }
    drop(handle);
    // PDU overflow: 0x8500 instead of data.
    let handle = farm_with(
        S7FarmOptions {
            pdu_overflow: 1.0,
            ..S7FarmOptions::default()
        },
        FaultRates::default(),
    );
    let (mut stream, _) = session(&handle, 0, 960);
    stream.write_all(&read_var(3, &one)).unwrap();
    let answer = read_answer(&mut stream);
    assert_eq!((answer.rosctr, answer.error), (2, (0x85, 0x00)));
    assert_eq!(handle.stop().unwrap().fault_pdu_overflows, 1);
    // Dropped connections.
    let handle = farm_with(
        S7FarmOptions::default(),
        FaultRates {
            drop_connection: 1.0,
            ..FaultRates::default()
        },
    );
    let (mut stream, _) = session(&handle, 0, 960);
    stream.write_all(&read_var(3, &one)).unwrap();
    assert_closed(&mut stream);
    drop(handle);
    // Malformed: the data length 2 more than follows, or the TPKT 2 less.
    let handle = farm_with(
        S7FarmOptions::default(),
        FaultRates {
            malformed: 1.0,
            ..FaultRates::default()
        },
    );
    let (mut stream, _) = session(&handle, 0, 960);
    let good_size = 4 + 3 + 12 + 2 + 3 * 8;
    let (mut data_kind, mut tpkt_kind) = (0, 0);
    for pdu_ref in 0..30u16 {
        stream.write_all(&read_var(pdu_ref, &one)).unwrap();
        let mut raw = vec![0u8; good_size];
        stream.read_exact(&mut raw).unwrap();
        let tpkt_len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        let data_len = usize::from(u16::from_be_bytes([raw[15], raw[16]]));
        if tpkt_len == good_size - 2 {
            tpkt_kind += 1;
            assert_eq!(data_len, 3 * 8);
        } else {
            assert_eq!((tpkt_len, data_len), (good_size, 3 * 8 + 2));
            data_kind += 1;
        }
    }
    assert!(data_kind > 0 && tpkt_kind > 0, "{data_kind} {tpkt_kind}");
    drop(handle);
    // Stalls hold the answer back.
    let handle = farm_with(
        S7FarmOptions::default(),
        FaultRates {
            stall: 1.0,
            ..FaultRates::default()
        },
    );
    let (mut stream, _) = session(&handle, 0, 960);
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream.write_all(&read_var(3, &one)).unwrap();
    let mut byte = [0u8; 1];
    let early = stream.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "{early:?}"
    );
    // Held back, not lost: the whole answer comes after the stall.
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut answer = vec![0u8; good_size];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..4], &[3, 0, 0, good_size as u8]);
}

#[test]
fn a_mixed_farm_speaks_both_protocols() {
    let handle = Farm::start(FarmOptions {
        devices: 4,
        protocol: FarmProtocol::Mixed,
        ..FarmOptions::default()
    })
    .unwrap();
    // Device 1 is S7, device 2 Modbus.
    let (mut stream, _) = session(&handle, 1, 960);
    stream
        .write_all(&read_var(1, &[item(0x02, 2, S7Area::Db(1), 0)]))
        .unwrap();
    assert_eq!(reply_items(&read_answer(&mut stream)).len(), 1);
    let mut modbus = connect(&handle, 2);
    modbus
        .write_all(&[0, 1, 0, 0, 0, 6, 1, 3, 0, 0, 0, 1])
        .unwrap();
    let mut answer = [0u8; 11];
    modbus.read_exact(&mut answer).unwrap();
    let value = u16::from_be_bytes([answer[9], answer[10]]);
    assert!(millrace::farm::verify_register(2, 0, value));
    // An S7 connect to a Modbus device is not Modbus: closed.
    let mut wrong = connect(&handle, 0);
    wrong.write_all(&connect_request([3, 1])).unwrap();
    assert_closed(&mut wrong);
}
