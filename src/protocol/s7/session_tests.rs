//! The session driven in memory against `FakePlc`: handshake, cycles,
//! re-planning after a smaller PDU, straddling strings, timeouts of each
//! handshake step and of reads, disconnects, header and item errors with
//! their notices, and a PLC that caps items per request.
#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::config::{S7Area, S7Type};
use crate::protocol::session::{ErrorClass, Session};
use crate::sample::{record_span, text_at, Quality, Sample, TagId};

use super::error::{S7Error, Step};
use super::fuzz::{fuzz_areas, fuzz_device, s7_device, s7_tag, FakePlc, FUZZ_TAG_FIRST};
use super::notice::S7Notice;
use super::session::S7Session;

struct Harness {
    session: S7Session,
    plc: FakePlc,
    out: Vec<Sample>,
    buf: Vec<u8>,
    records: Vec<Sample>,
}

impl Harness {
    fn new(session: S7Session, plc: FakePlc) -> Self {
        let out = vec![Sample::default(); session.samples_per_frame_max()];
        let buf = vec![0u8; session.request_bytes_max()];
        Harness {
            session,
            plc,
            out,
            buf,
            records: Vec::new(),
        }
    }

    /// Sends what is due and feeds the PLC's answers back, byte by byte
    /// when `split`, until nothing more is due.
    fn pump(&mut self, now_ns: u64, split: bool) -> Result<(), S7Error> {
        for _ in 0..1000 {
            let Some(n) = self.session.poll_transmit(now_ns, &mut self.buf) else {
                return Ok(());
            };
            let answer = self.plc.answer(&self.buf[..n]);
            let chunks: Vec<&[u8]> = if split {
                answer.chunks(1).collect()
            } else {
                vec![&answer[..]]
            };
            for chunk in chunks {
                let mut rest = chunk;
                while !rest.is_empty() {
                    match self.session.receive(rest, 7, &mut self.out) {
                        Ok(r) => {
                            self.records.extend_from_slice(&self.out[..r.samples]);
                            rest = &rest[r.consumed..];
                        }
                        Err(e) => {
                            self.records.extend_from_slice(&self.out[..e.samples]);
                            return Err(e.error);
                        }
                    }
                }
            }
        }
        panic!("pump did not settle");
    }

    fn connect(&mut self) {
        self.session.on_connected(0);
        self.pump(0, false).expect("handshake");
        assert!(self.session.is_ready());
    }

    fn cycle(&mut self, split: bool) -> Vec<Sample> {
        self.records.clear();
        self.session.start_cycle();
        self.pump(0, split).expect("cycle");
        assert!(self.session.cycle_sent() && self.session.inflight_count() == 0);
        assert_eq!(self.records.len(), self.session.cycle_samples());
        std::mem::take(&mut self.records)
    }
}

fn fuzz_harness(pdu: u16) -> Harness {
    let session = S7Session::for_device(&fuzz_device(), TagId(FUZZ_TAG_FIRST)).unwrap();
    Harness::new(session, FakePlc::new(pdu, fuzz_areas()))
}

/// (tag index, quality, value bits, text) of each sample, in tag order.
fn by_tag(records: &[Sample]) -> Vec<(u32, Quality, u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let span = record_span(&records[at..]).unwrap();
        let s = records[at];
        let text = text_at(&records[at..]).map_or(Vec::new(), |t| {
            let mut b = vec![0; t.len()];
            t.copy_to(&mut b);
            b
        });
        out.push((s.tag_id().0 - FUZZ_TAG_FIRST, s.quality(), s.value, text));
        at += span;
    }
    out.sort_by_key(|r| r.0);
    out
}

#[test]
fn handshake_then_cycles_decode_every_tag() {
    let mut h = fuzz_harness(240);
    h.connect();
    let first = by_tag(&h.cycle(false));
    assert_eq!(first.len(), fuzz_device().tag_count());
    assert!(first.iter().all(|r| r.1 == Quality::GOOD), "{first:?}");
    assert_eq!(first[9].3, b"hello world");
    assert_eq!(first[10].3, "aé中".as_bytes());
    assert_eq!(
        f64::from_bits(first[5].2),
        2.0 * f32::from_be_bytes([71, 78, 85, 92]) as f64 + 1.0
    );
    assert_eq!(first[21].2, 1, "M0.0");
    assert_eq!(first[23].2 as i64, 0x1234, "IW2");
    assert_eq!(f64::from_bits(first[25].2), 1.5, "DB2.DBD500");
    // Byte-by-byte delivery gives the same values.
    assert_eq!(by_tag(&h.cycle(true)), first);
    assert_eq!(h.session.poll_notice(), None);
}

#[test]
fn a_smaller_pdu_replans_without_tearing_a_tag() {
    // Planned for 240; the PLC grants 64: the DB1 run is cut across
    // requests, only between tags (every tag fits the 46 bytes of one item,
    // the STRING[40] too: none is torn), and the records per request stay
    // within what the reader sized its slices for.
    let mut h = fuzz_harness(64);
    let spf = h.session.samples_per_frame_max();
    let requests_240 = h.session.requests_per_cycle();
    h.connect();
    assert!(h.session.requests_per_cycle() > requests_240);
    assert_eq!(h.session.samples_per_frame_max(), spf);
    assert!(h.session.plan().straddlers.is_empty());
    let inside: usize = h
        .session
        .plan()
        .requests
        .iter()
        .flat_map(|r| &r.pieces)
        .map(|p| p.inside.len())
        .sum();
    assert_eq!(
        inside,
        h.session.plan().tags.len(),
        "every tag whole in one piece"
    );
    for r in &h.session.plan().requests {
        assert!(r.request_bytes() - 7 <= 64 && 14 + r.answer_item_bytes() <= 64);
    }
    let small = by_tag(&h.cycle(false));
    let mut big = fuzz_harness(240);
    big.connect();
    assert_eq!(small, by_tag(&big.cycle(false)));
    assert_eq!(
        h.session.poll_notice(),
        Some(S7Notice::PduNegotiated {
            requested: 240,
            granted: 64
        })
    );
}

#[test]
fn an_oversize_string_comes_together_from_its_parts() {
    // A STRING[60] over the fuzz device's STRING[40] at DB1.DBB42: 62
    // bytes, more than the 46 one item carries at 64. Read in parts under
    // the 64-byte grant, it decodes as when read whole at 240.
    let db1 = S7Area::Db(1);
    let tags = vec![
        s7_tag("di", db1, 6, 0, S7Type::DInt),
        s7_tag("s", db1, 42, 0, S7Type::String(60)),
        s7_tag("ui", db1, 116, 0, S7Type::UInt),
    ];
    let harness = |pdu| {
        let device = s7_device("long", "127.0.0.1:102", 240, tags.clone());
        let session = S7Session::for_device(&device, TagId(FUZZ_TAG_FIRST)).unwrap();
        Harness::new(session, FakePlc::new(pdu, fuzz_areas()))
    };
    let mut small = harness(64);
    small.connect();
    assert_eq!(small.session.plan().straddlers.len(), 1);
    let mut big = harness(240);
    big.connect();
    assert!(big.session.plan().straddlers.is_empty());
    let whole = by_tag(&big.cycle(false));
    assert_eq!(whole.len(), 3);
    assert!(whole.iter().all(|r| r.1 == Quality::GOOD));
    assert!(!whole[1].3.is_empty(), "the string has text");
    assert_eq!(by_tag(&small.cycle(false)), whole);
    assert_eq!(by_tag(&small.cycle(true)), whole);
}

#[test]
fn handshake_steps_time_out_as_handshake_errors() {
    let mut h = fuzz_harness(240);
    h.session.on_connected(0);
    let n = h.session.poll_transmit(0, &mut h.buf).unwrap();
    assert_eq!(h.buf[5], 0xE0);
    assert_eq!(h.session.inflight_count(), 1);
    let deadline = h.session.next_deadline_ns().unwrap();
    assert_eq!(h.session.handle_timeout(deadline - 1, 7, &mut h.out), Ok(0));
    let e = h
        .session
        .handle_timeout(deadline, 7, &mut h.out)
        .unwrap_err();
    assert_eq!(
        e,
        S7Error::HandshakeTimeout {
            step: Step::Connect
        }
    );
    assert_eq!(h.session.classify(&e), ErrorClass::Handshake);
    assert_eq!(h.session.disconnect(7, &mut h.out), 0);
    assert_eq!(h.session.inflight_count(), 0);
    // Reconnect: the connect confirm comes, the setup answer does not.
    h.session.on_connected(100);
    h.session.poll_transmit(100, &mut h.buf).unwrap();
    let cc = h.plc.answer(&h.buf[..n]);
    assert_eq!(h.session.receive(&cc, 7, &mut h.out).unwrap().samples, 0);
    h.session.poll_transmit(100, &mut h.buf).unwrap();
    let deadline = h.session.next_deadline_ns().unwrap();
    let e = h
        .session
        .handle_timeout(deadline, 7, &mut h.out)
        .unwrap_err();
    assert_eq!(
        e,
        S7Error::HandshakeTimeout {
            step: Step::SetupCommunication
        }
    );
    assert!(!h.session.is_ready());
}

#[test]
fn reads_time_out_and_disconnects_end_the_cycle() {
    // At 64 bytes the cycle is many requests; two may be in flight.
    let mut h = fuzz_harness(64);
    h.plc.amq = 2;
    h.connect();
    let cycle = h.session.cycle_samples();
    h.session.start_cycle();
    let mut sent = 0;
    while h.session.poll_transmit(5, &mut h.buf).is_some() {
        sent += 1;
    }
    assert_eq!(sent, 2, "two in flight (max_inflight 2, AmQ granted 2)");
    let deadline = h.session.next_deadline_ns().unwrap();
    let mut records = 0;
    let mut out = vec![Sample::default(); 4 * h.session.samples_per_frame_max()];
    loop {
        let n = h.session.handle_timeout(deadline, 7, &mut out).unwrap();
        assert!(out[..n]
            .iter()
            .all(|s| s.quality() == Quality::TIMEOUT || !s.is_row()));
        records += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(h.session.inflight_count(), 0);
    // The rest of the cycle goes out; then the connection drops with one
    // request in flight and the others unsent.
    h.session.poll_transmit(6, &mut h.buf).unwrap();
    loop {
        let n = h.session.disconnect(7, &mut out);
        records += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let n = h.session.fail_unsent(Quality::NO_CONNECTION, 7, &mut out);
        records += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(records, cycle, "every tag ended exactly once");
    assert!(!h.session.is_ready());
    h.connect();
    assert_eq!(h.cycle(false).len(), cycle);
}

/// A clone (the bench's, a test's twin) raises notices as its original does.
#[test]
fn a_cloned_session_still_raises_its_notices() {
    let session = S7Session::for_device(&fuzz_device(), TagId(FUZZ_TAG_FIRST)).unwrap();
    let plc = FakePlc {
        header_error: Some((0x81, 0x04)),
        ..FakePlc::new(240, fuzz_areas())
    };
    let mut h = Harness::new(session.clone(), plc);
    h.connect();
    h.cycle(false);
    assert_eq!(h.session.poll_notice(), Some(S7Notice::PutGetOff));
}

#[test]
fn header_errors_are_qualities_and_one_notice() {
    let mut h = fuzz_harness(240);
    h.plc.header_error = Some((0x81, 0x04));
    h.connect();
    for _ in 0..3 {
        let records = h.cycle(false);
        let rows = by_tag(&records);
        assert!(rows.iter().all(|r| r.1 == Quality::s7_header(0x81, 0x04)));
    }
    assert_eq!(h.session.poll_notice(), Some(S7Notice::PutGetOff));
    assert_eq!(h.session.poll_notice(), None, "once, not per poll");
    assert!(h.session.poll_notice().is_none());
    assert!(S7Notice::PutGetOff.to_string().contains("PUT/GET"));
}

#[test]
fn item_errors_are_per_tag_and_name_the_db_setting() {
    let mut areas = fuzz_areas();
    areas.retain(|(area, db, _)| !(*area == 0x84 && *db == 2));
    let session = S7Session::for_device(&fuzz_device(), TagId(FUZZ_TAG_FIRST)).unwrap();
    let mut h = Harness::new(session, FakePlc::new(240, areas));
    h.connect();
    let rows = by_tag(&h.cycle(false));
    assert_eq!(rows[25].1, Quality::s7_item(0x0A), "DB2 does not exist");
    assert!(rows[..25].iter().all(|r| r.1 == Quality::GOOD));
    let notice = h.session.poll_notice().unwrap();
    assert_eq!(notice, S7Notice::DbRefused { db: 2, code: 0x0A });
    assert!(notice.to_string().contains("Optimized block access"));
    h.cycle(false);
    assert_eq!(h.session.poll_notice(), None);
    assert_eq!(h.session.device_bad_samples(), 2);
}

#[test]
fn a_plc_that_caps_items_gets_smaller_requests() {
    // 30 scattered INTs: one request of 30 items at PDU 960; the PLC (as
    // Snap7 2.1.0 does) answers the first 20 only.
    let tags = (0..30)
        .map(|i| s7_tag(&format!("t{i}"), S7Area::Db(3), 10 * i, 0, S7Type::Int))
        .collect();
    let device = s7_device("cap", "127.0.0.1:102", 960, tags);
    let session = S7Session::for_device(&device, TagId(FUZZ_TAG_FIRST)).unwrap();
    let memory = (0..300u32).map(|i| i as u8).collect();
    let mut plc = FakePlc::new(960, vec![(0x84, 3, memory)]);
    plc.items_cap = Some(20);
    let mut h = Harness::new(session, plc);
    h.connect();
    assert_eq!(h.session.requests_per_cycle(), 1);
    let rows = by_tag(&h.cycle(false));
    assert_eq!(rows.iter().filter(|r| r.1 == Quality::GOOD).count(), 20);
    assert_eq!(
        rows.iter().filter(|r| r.1 == Quality::DECODE_ERROR).count(),
        10
    );
    assert_eq!(
        h.session.poll_notice(),
        Some(S7Notice::ItemsCapped {
            asked: 30,
            answered: 20
        })
    );
    let rows = by_tag(&h.cycle(false));
    assert_eq!(h.session.requests_per_cycle(), 2);
    assert!(rows.iter().all(|r| r.1 == Quality::GOOD));
    assert_eq!(rows[3].2 as i64, i64::from(i16::from_be_bytes([30, 31])));
}

#[test]
fn malformed_answers_end_the_request_and_are_errors() {
    let mut h = fuzz_harness(240);
    h.connect();
    h.session.start_cycle();
    let n = h.session.poll_transmit(0, &mut h.buf).unwrap();
    let mut answer = h.plc.answer(&h.buf[..n]);
    // The first item's length (in bits, after TPKT 4, COTP 3, header 12,
    // function + count 2, return code + transport size 2) one byte longer.
    let bits = u16::from_be_bytes([answer[23], answer[24]]) + 8;
    answer[23..25].copy_from_slice(&bits.to_be_bytes());
    let e = h.session.receive(&answer, 7, &mut h.out).unwrap_err();
    assert!(
        matches!(e.error, S7Error::ItemLength { index: 0, .. }),
        "{}",
        e.error
    );
    assert!(e.samples > 0);
    assert!(h.out[..e.samples]
        .iter()
        .all(|s| s.quality() == Quality::DECODE_ERROR || !s.is_row()));
    assert_eq!(h.session.classify(&e.error), ErrorClass::Malformed);
    // An answer to a PDU reference no request has.
    let mut h = fuzz_harness(240);
    h.connect();
    h.session.start_cycle();
    let n = h.session.poll_transmit(0, &mut h.buf).unwrap();
    let mut answer = h.plc.answer(&h.buf[..n]);
    answer[11] ^= 0x40;
    let e = h.session.receive(&answer, 7, &mut h.out).unwrap_err();
    assert!(matches!(e.error, S7Error::PduReferenceUnknown { .. }));
    assert_eq!(e.samples, 0);
}

#[test]
fn a_refused_connection_is_a_handshake_error() {
    let mut h = fuzz_harness(240);
    h.session.on_connected(0);
    h.session.poll_transmit(0, &mut h.buf).unwrap();
    let dr = [3, 0, 0, 11, 6, 0x80, 0, 1, 0, 2, 0x81];
    let e = h.session.receive(&dr, 7, &mut h.out).unwrap_err();
    assert_eq!(e.error, S7Error::ConnectRefused { reason: 0x81 });
    assert_eq!(h.session.classify(&e.error), ErrorClass::Handshake);
    assert!(e.error.to_string().contains("rack, slot"));
}
