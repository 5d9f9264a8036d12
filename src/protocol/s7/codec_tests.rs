//! Wire vectors (the bytes Snap7's client sends and the Wireshark S7comm
//! dissector documents), Heartbleed-style tests for every length field,
//! and one decode test per S7 type.
#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::config::{S7Area, S7Type};
use crate::sample::{text_at, Quality, Sample, TagId, ValueKind};

use super::decode::write_tag;
use super::error::{Field, S7Error};
use super::limits::*;
use super::planner::PlannedTag;
use super::reader::Reader;
use super::wire::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn connect_request_is_snap7s_iso_cr() {
    // Snap7's ISO connection request (s7_isotcp.cpp) for local TSAP
    // 0x0100, remote 0x0102 (PG, rack 0, slot 2).
    let want = hex("03 00 00 16 11 e0 00 00 00 01 00 c0 01 0a c1 02 01 00 c2 02 01 02");
    let mut out = [0u8; 64];
    let n = encode_connect_request(0x0100, 0x0102, &mut out);
    assert_eq!(&out[..n], &want[..]);
}

#[test]
fn setup_communication_is_snap7s_negotiation() {
    // Snap7's S7_PN: ref 0x0400, AmQ 1/1, PDU 480.
    let want = hex("03 00 00 19 02 f0 80 32 01 00 00 04 00 00 08 00 00 f0 00 00 01 00 01 01 e0");
    let mut out = [0u8; 64];
    let n = encode_setup(0x0400, 1, 480, &mut out);
    assert_eq!(&out[..n], &want[..]);
}

#[test]
fn read_var_request_items() {
    // DB1.DBB2 x 4 bytes and M10 x 1 byte: any-pointer items, word length
    // BYTE, address = byte << 3 (Wireshark: "DB 1.DBX 2.0 BYTE 4").
    let items = [
        ReadItem {
            area_code: 0x84,
            db_number: 1,
            start: 2,
            count: 4,
        },
        ReadItem {
            area_code: 0x83,
            db_number: 0,
            start: 10,
            count: 1,
        },
    ];
    let want = hex("03 00 00 2b 02 f0 80 32 01 00 00 00 07 00 1a 00 00 04 02 \
         12 0a 10 02 00 04 00 01 84 00 00 10 \
         12 0a 10 02 00 01 00 00 83 00 00 50");
    let mut out = [0u8; 128];
    let n = encode_read_var(7, &items, &mut out);
    assert_eq!(&out[..n], &want[..]);
    assert_eq!(n, read_request_bytes(2));
}

#[test]
fn the_encoders_write_only_the_three_messages() {
    // Every builder the module has, and the function each puts on the wire:
    // no write (0x05), no control (0x28/0x29), no userdata (ROSCTR 7).
    let mut out = [0u8; 1024];
    let builders: [(Outgoing, usize); 3] = [
        (
            Outgoing::ConnectRequest,
            encode_connect_request(1, 2, &mut out),
        ),
        (Outgoing::SetupCommunication, 0),
        (Outgoing::ReadVar, 0),
    ];
    assert_eq!(out[5], 0xE0);
    assert_eq!(builders[0].1, CONNECT_REQUEST_BYTES);
    let n = encode_setup(1, 1, 960, &mut out);
    assert_eq!(
        (out[8], out[17], n),
        (0x01, FUNCTION_SETUP, SETUP_REQUEST_BYTES)
    );
    let item = ReadItem {
        area_code: 0x84,
        db_number: 9,
        start: 0,
        count: 1,
    };
    for count in [1, 40, READ_ITEMS_MAX] {
        let n = encode_read_var(1, &vec![item; count], &mut out);
        assert_eq!(
            (out[8], out[17], out[18] as usize),
            (0x01, FUNCTION_READ_VAR, count)
        );
        assert_eq!(n, read_request_bytes(count));
        assert!(n <= TPKT_HEADER_BYTES + COTP_DT_HEADER_BYTES + S7_PDU_BYTES_MAX);
    }
    assert_eq!(builders.len(), 3, "one builder per message of Outgoing");
}

fn framed(stream: &[u8]) -> Result<Vec<Vec<u8>>, S7Error> {
    let mut framer = TpktFramer::new();
    let mut input = stream;
    let mut out = Vec::new();
    while let Some(p) = framer.next_packet(&mut input)? {
        out.push(p.to_vec());
    }
    Ok(out)
}

#[test]
fn tpkt_length_is_checked_before_use() {
    // Heartbleed: a length above the cap, below the minimum, a version
    // that is not 3; a length longer than the bytes sent waits for more.
    assert_eq!(
        framed(&hex("03 00 ff ff 02")),
        Err(S7Error::TpktLength { length: 0xFFFF })
    );
    assert_eq!(
        framed(&hex("03 00 03 c8")),
        Err(S7Error::TpktLength { length: 968 })
    );
    assert_eq!(
        framed(&hex("03 00 00 05 01")),
        Err(S7Error::TpktLength { length: 5 })
    );
    assert_eq!(
        framed(&hex("04 00 00 07")),
        Err(S7Error::TpktVersion { found: 4 })
    );
    assert_eq!(framed(&hex("03 00 00 0a 02 f0 80")), Ok(vec![]));
    let two = hex("03 00 00 07 02 f0 80 03 00 00 08 02 f0 80 32");
    assert_eq!(framed(&two).unwrap().len(), 2);
}

#[test]
fn cotp_length_indicator_is_checked() {
    // LI past the packet, a DT with LI 3, a CC too short for its fixed part.
    let e = parse_tpdu(&hex("03 00 00 07 05 f0 80")).unwrap_err();
    assert_eq!(
        e,
        S7Error::CotpLengthIndicator {
            indicator: 5,
            packet_bytes: 3
        }
    );
    let e = parse_tpdu(&hex("03 00 00 08 03 f0 80 00")).unwrap_err();
    assert!(
        matches!(e, S7Error::CotpLengthIndicator { indicator: 3, .. }),
        "{e}"
    );
    let e = parse_tpdu(&hex("03 00 00 08 03 d0 00 01")).unwrap_err();
    assert!(matches!(e, S7Error::CotpLengthIndicator { .. }), "{e}");
    // A CC parameter whose length runs past the header.
    let e = parse_tpdu(&hex("03 00 00 0e 09 d0 00 01 00 02 00 c0 05 0a")).unwrap_err();
    assert!(
        matches!(
            e,
            S7Error::Truncated {
                field: Field::CotpParameter,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(
        parse_tpdu(&hex("03 00 00 07 02 f0 00")),
        Err(S7Error::CotpSegmented)
    );
    let cc = hex("03 00 00 16 11 d0 00 01 00 02 00 c0 01 09 c1 02 01 00 c2 02 01 02");
    assert_eq!(
        parse_tpdu(&cc),
        Ok(Tpdu::ConnectConfirm {
            tpdu_bytes: Some(512)
        })
    );
    let dr = hex("03 00 00 0b 06 80 00 01 00 02 81");
    assert_eq!(
        parse_tpdu(&dr),
        Ok(Tpdu::DisconnectRequest { reason: 0x81 })
    );
}

#[test]
fn s7_parameter_and_data_lengths_must_be_the_pdu() {
    let ok = hex("32 03 00 00 00 07 00 02 00 05 00 00 04 01 ff 04 00 08 2a");
    let ack = parse_ack(&ok).unwrap();
    assert_eq!(
        (ack.pdu_ref, ack.params, ack.data.len()),
        (7, &[4u8, 1][..], 5)
    );
    // Heartbleed: data length 0x0105 with 5 bytes behind it.
    let mut long = ok.clone();
    long[8] = 0x01;
    let e = parse_ack(&long).unwrap_err();
    assert!(
        matches!(
            e,
            S7Error::Truncated {
                field: Field::S7Data,
                needed: 261,
                ..
            }
        ),
        "{e}"
    );
    // Parameter length past the PDU.
    let mut params = ok.clone();
    params[7] = 0x20;
    assert!(matches!(
        parse_ack(&params),
        Err(S7Error::Truncated {
            field: Field::S7Parameters,
            ..
        })
    ));
    // Shorter lengths leave bytes over.
    let mut short = ok.clone();
    short[9] = 4;
    assert_eq!(
        parse_ack(&short),
        Err(S7Error::TrailingBytes {
            field: Field::S7Data,
            count: 1
        })
    );
    assert_eq!(
        parse_ack(&hex("33 03")),
        Err(S7Error::ProtocolId { found: 0x33 })
    );
    assert_eq!(
        parse_ack(&hex("32 07 00")),
        Err(S7Error::PduType { found: 7 })
    );
}

fn items(data: &[u8], count: usize, expected: &[usize]) -> Result<Vec<(u8, Vec<u8>)>, S7Error> {
    let mut r = Reader::new(data);
    let mut out = Vec::new();
    for (i, &bytes) in expected.iter().enumerate().take(count) {
        let item = next_item(&mut r, i, count, bytes)?;
        out.push((item.return_code, item.data.to_vec()));
    }
    r.finish(Field::S7Data)?;
    Ok(out)
}

#[test]
fn read_var_items_fill_bytes_and_error_items() {
    // An odd item is followed by a fill byte unless it is last; error
    // items carry no data (a CPU sends length 0, Snap7 sends 4).
    let data = hex("ff 04 00 08 2a 00 0a 00 00 00 05 00 00 04 ff 09 00 03 61 62 63");
    let got = items(&data, 4, &[1, 2, 2, 3]).unwrap();
    assert_eq!(got[0], (0xFF, vec![0x2A]));
    assert_eq!((got[1].0, got[2].0), (0x0A, 0x05));
    assert_eq!(got[3], (0xFF, b"abc".to_vec()));
    // Transport sizes: BIT/BYTE/INT count bits, REAL/OCTET count bytes.
    assert!(items(&hex("ff 03 00 01 01"), 1, &[1]).is_ok());
    assert!(items(&hex("ff 05 00 10 00 01"), 1, &[2]).is_ok());
    assert!(items(&hex("ff 07 00 04 3f 80 00 00"), 1, &[4]).is_ok());
    assert_eq!(
        items(&hex("ff 08 00 01 00"), 1, &[1]),
        Err(S7Error::ItemTransportSize { index: 0, found: 8 })
    );
}

#[test]
fn read_var_item_lengths_are_checked() {
    // Heartbleed: an item claiming 0x0800 bits (256 bytes) with 2 behind.
    let e = items(&hex("ff 04 08 00 01 02"), 1, &[256]).unwrap_err();
    assert!(
        matches!(
            e,
            S7Error::Truncated {
                field: Field::ReadItemData,
                needed: 256,
                ..
            }
        ),
        "{e}"
    );
    // A length that is not what was asked, in either direction.
    let e = items(&hex("ff 04 00 20 01 02 03 04"), 1, &[2]).unwrap_err();
    assert_eq!(
        e,
        S7Error::ItemLength {
            index: 0,
            expected: 2,
            found: 4
        }
    );
    // The fill byte of a non-last odd item is missing.
    let e = items(&hex("ff 04 00 08 01"), 2, &[1, 1]).unwrap_err();
    assert!(
        matches!(
            e,
            S7Error::Truncated {
                field: Field::ReadItemFill,
                ..
            }
        ),
        "{e}"
    );
    // Item header cut short, bytes left over after the last item.
    assert!(matches!(
        items(&hex("ff 04"), 1, &[1]),
        Err(S7Error::Truncated {
            field: Field::ReadItemHead,
            ..
        })
    ));
    assert_eq!(
        items(&hex("ff 04 00 08 01 00"), 1, &[1]),
        Err(S7Error::TrailingBytes {
            field: Field::S7Data,
            count: 1
        })
    );
    // Item count: more than asked or zero is an error, fewer is allowed.
    assert_eq!(
        read_var_count(&[4, 3], 2),
        Err(S7Error::ItemCount {
            requested: 2,
            found: 3
        })
    );
    assert_eq!(
        read_var_count(&[4, 0], 2),
        Err(S7Error::ItemCount {
            requested: 2,
            found: 0
        })
    );
    assert_eq!(read_var_count(&[4, 1], 2), Ok(1));
    assert_eq!(
        read_var_count(&[5, 1], 2),
        Err(S7Error::FunctionMismatch {
            expected: 4,
            found: 5
        })
    );
    assert!(read_var_count(&[4, 1, 0], 2).is_err());
}

#[test]
fn setup_answer_is_checked() {
    let reply = hex("32 03 00 00 00 01 00 08 00 00 00 00 f0 00 00 03 00 03 00 f0");
    let ack = parse_ack(&reply).unwrap();
    let granted = parse_setup(&ack).unwrap();
    assert_eq!((granted.amq_calling, granted.pdu_bytes), (3, 240));
    let refused = hex("32 03 00 00 00 01 00 00 00 00 81 04");
    let ack = parse_ack(&refused).unwrap();
    assert_eq!(
        parse_setup(&ack),
        Err(S7Error::SetupRefused {
            class: 0x81,
            code: 4
        })
    );
    let short = hex("32 03 00 00 00 01 00 06 00 00 00 00 f0 00 00 03 00 03");
    assert!(parse_setup(&parse_ack(&short).unwrap()).is_err());
}

fn tag(data_type: S7Type, bit: u8) -> PlannedTag {
    PlannedTag::from_config(
        TagId(5),
        &crate::config::S7Tag {
            name: "t".into(),
            area: S7Area::Db(1),
            byte: 0,
            bit,
            data_type,
            scale: 1.0,
            offset: 0.0,
        },
    )
}

fn one(data_type: S7Type, bytes: &[u8]) -> Sample {
    let mut out = [Sample::default(); 64];
    assert_eq!(write_tag(&tag(data_type, 0), bytes, 9, &mut out), 1);
    out[0]
}

fn value(s: Sample) -> (ValueKind, u64) {
    assert_eq!(s.quality(), Quality::GOOD, "{s:?}");
    (s.kind().unwrap(), s.value)
}

#[test]
fn every_numeric_type_decodes_big_endian() {
    use S7Type::*;
    use ValueKind::*;
    let mut out = [Sample::default(); 1];
    write_tag(&tag(S7Type::Bool, 5), &[0b0010_0000], 9, &mut out);
    assert_eq!(value(out[0]), (ValueKind::Bool, 1));
    write_tag(&tag(S7Type::Bool, 4), &[0b0010_0000], 9, &mut out);
    assert_eq!(value(out[0]), (ValueKind::Bool, 0));
    assert_eq!(value(one(Byte, &[0xFE])), (U64, 0xFE));
    assert_eq!(value(one(USInt, &[0xFE])), (U64, 0xFE));
    assert_eq!(value(one(SInt, &[0xFE])), (I64, -2i64 as u64));
    assert_eq!(value(one(Word, &[0x12, 0x34])), (U64, 0x1234));
    assert_eq!(value(one(UInt, &[0xFF, 0xFE])), (U64, 0xFFFE));
    assert_eq!(value(one(Int, &[0xFF, 0xFE])), (I64, -2i64 as u64));
    assert_eq!(value(one(DWord, &[1, 2, 3, 4])), (U64, 0x0102_0304));
    assert_eq!(value(one(UDInt, &[0xFF; 4])), (U64, 0xFFFF_FFFF));
    assert_eq!(value(one(DInt, &[0xFF; 4])), (I64, -1i64 as u64));
    assert_eq!(
        value(one(LInt, &(-5i64).to_be_bytes())),
        (I64, -5i64 as u64)
    );
    assert_eq!(value(one(ULInt, &u64::MAX.to_be_bytes())), (U64, u64::MAX));
    assert_eq!(
        value(one(Real, &1.5f32.to_be_bytes())),
        (F64, 1.5f64.to_bits())
    );
    assert_eq!(
        value(one(LReal, &(-2.25f64).to_be_bytes())),
        (F64, (-2.25f64).to_bits())
    );
    assert_eq!(
        value(one(Time, &(-1500i32).to_be_bytes())),
        (I64, -1500i64 as u64)
    );
    // S5TIME: base 10 s (0b11), 123 -> 1230 s; base 10 ms, 999.
    assert_eq!(value(one(S5Time, &[0x31, 0x23])), (I64, 1_230_000));
    assert_eq!(value(one(S5Time, &[0x09, 0x99])), (I64, 9_990));
    assert_eq!(one(S5Time, &[0x0A, 0x00]).quality(), Quality::DECODE_ERROR);
}

#[test]
fn dates_decode_to_unix_nanoseconds() {
    use S7Type::*;
    // 2024-03-15 13:45:30.123, weekday 5 (BCD).
    let dt = one(
        DateAndTime,
        &[0x24, 0x03, 0x15, 0x13, 0x45, 0x30, 0x12, 0x35],
    );
    assert_eq!(value(dt), (ValueKind::I64, 1_710_510_330_123_000_000));
    // 1990-01-01 00:00:00.000: the first year of DATE_AND_TIME.
    let first = one(DateAndTime, &[0x90, 0x01, 0x01, 0, 0, 0, 0, 0x02]);
    assert_eq!(value(first).1 as i64, 631_152_000_000_000_000);
    for bad in [
        [0x24, 0x13, 0x15, 0, 0, 0, 0, 0],    // month 13
        [0x23, 0x02, 0x29, 0, 0, 0, 0, 0],    // 2023-02-29
        [0x2A, 0x01, 0x01, 0, 0, 0, 0, 0],    // digit A
        [0x24, 0x01, 0x01, 0x24, 0, 0, 0, 0], // hour 24
    ] {
        assert_eq!(
            one(DateAndTime, &bad).quality(),
            Quality::DECODE_ERROR,
            "{bad:02x?}"
        );
    }
    // DTL 2024-03-15 13:45:30.000012345.
    let dtl = [0x07, 0xE8, 3, 15, 5, 13, 45, 30, 0, 0, 0x30, 0x39];
    assert_eq!(value(one(Dtl, &dtl)).1 as i64, 1_710_510_330_000_012_345);
    let mut bad = dtl;
    bad[8] = 0x40; // more than 999,999,999 ns
    assert_eq!(one(Dtl, &bad).quality(), Quality::DECODE_ERROR);
    // 2024-02-29 is a real date.
    assert!(one(Dtl, &[0x07, 0xE8, 2, 29, 5, 0, 0, 0, 0, 0, 0, 0])
        .quality()
        .is_good());
}

fn text(data_type: S7Type, bytes: &[u8]) -> (Quality, Vec<u8>) {
    let mut out = vec![Sample::default(); 80];
    let t = tag(data_type, 0);
    let n = write_tag(&t, bytes, 9, &mut out);
    assert_eq!(n, t.records as usize);
    let records = text_at(&out[..n]).unwrap();
    let mut got = vec![0u8; records.len()];
    records.copy_to(&mut got);
    (records.head.quality(), got)
}

#[test]
fn strings_respect_their_length_bytes() {
    use S7Type::*;
    let mut s = vec![10, 5];
    s.extend_from_slice(b"hello_____");
    assert_eq!(text(String(10), &s), (Quality::GOOD, b"hello".to_vec()));
    // Actual length above the PLC's maximum, or above the declared N.
    assert_eq!(
        text(
            String(10),
            &[4, 5, b'a', b'b', b'c', b'd', 0, 0, 0, 0, 0, 0]
        )
        .0,
        Quality::DECODE_ERROR
    );
    let mut long = vec![20, 12];
    long.extend_from_slice(&[b'x'; 10]);
    assert_eq!(text(String(10), &long).0, Quality::DECODE_ERROR);
    assert_eq!(text(Char, b"Z"), (Quality::GOOD, b"Z".to_vec()));
    // WSTRING: "aé中" in UTF-16BE -> UTF-8.
    let ws = hex("00 05 00 03 00 61 00 e9 4e 2d 00 00 00 00");
    assert_eq!(
        text(WString(5), &ws),
        (Quality::GOOD, "aé中".as_bytes().to_vec())
    );
    // An unpaired surrogate, and actual above max.
    assert_eq!(
        text(
            WString(5),
            &hex("00 05 00 01 d8 00 00 00 00 00 00 00 00 00")
        )
        .0,
        Quality::DECODE_ERROR
    );
    assert_eq!(
        text(
            WString(5),
            &hex("00 01 00 02 00 61 00 62 00 00 00 00 00 00")
        )
        .0,
        Quality::DECODE_ERROR
    );
}

#[test]
fn scaled_numbers_become_floats() {
    let mut t = tag(S7Type::Int, 0);
    (t.scale, t.value_offset, t.scaled) = (0.5, 10.0, true);
    let mut out = [Sample::default(); 1];
    write_tag(&t, &[0, 8], 1, &mut out);
    assert_eq!(value(out[0]), (ValueKind::F64, 14.0f64.to_bits()));
}
