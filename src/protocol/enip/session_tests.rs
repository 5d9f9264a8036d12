//! The session against the in-memory `Responder` (fuzz.rs): handshake,
//! every type and shape, the Large Forward Open fallback, fragmented reads,
//! per-tag errors that keep the connection, timeouts, drops, clean close.
#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::protocol::session::Session;
use crate::sample::{text_at, Quality, Sample, ValueKind};

use super::fuzz::{fuzz_device, fuzz_responder, fuzz_session_for, Responder, FUZZ_TAG_FIRST};
use super::{EnipError, EnipNotice, EnipSession};

struct Run {
    records: Vec<Sample>,
    notices: Vec<EnipNotice>,
}

/// Drives `session` against `responder` until `cycles` cycles completed.
fn drive(session: &mut EnipSession, responder: &mut Responder, cycles: usize) -> Run {
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut run = Run {
        records: Vec::new(),
        notices: Vec::new(),
    };
    if !session.is_ready() && session.inflight_count() == 0 {
        session.on_connected(0);
    }
    let mut done = 0;
    for _ in 0..1000 {
        if session.is_ready() && session.cycle_sent() && session.inflight_count() == 0 {
            if done == cycles {
                break;
            }
            session.start_cycle();
            done += 1;
        }
        let mut sent = Vec::new();
        while let Some(n) = session.poll_transmit(0, &mut buf) {
            sent.extend_from_slice(&buf[..n]);
        }
        let replies = responder.answer(&sent);
        // Fed a byte at a time every other round: framing must not care.
        let step = if done % 2 == 0 {
            replies.len().max(1)
        } else {
            1
        };
        for chunk in replies.chunks(step) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let r = Session::receive(session, rest, 7, &mut out)
                    .unwrap_or_else(|e| panic!("receive: {}", e.error));
                run.records.extend_from_slice(&out[..r.samples]);
                rest = &rest[r.consumed..];
            }
        }
        while let Some(n) = session.poll_notice() {
            run.notices.push(n);
        }
    }
    assert_eq!(done, cycles, "cycles did not complete");
    run
}

/// The value of tag `FUZZ_TAG_FIRST + offset` in `records` (first found).
fn value(records: &[Sample], offset: u32) -> &Sample {
    records
        .iter()
        .find(|s| s.tag_id().0 == FUZZ_TAG_FIRST + offset && s.is_row())
        .unwrap_or_else(|| panic!("no sample of tag +{offset}"))
}

/// Tag id offsets of the fuzz device, in its tag order.
const DINT: u32 = 0;
const REALS: u32 = 1; // 5
const FLAG: u32 = 6;
const ALARMS: u32 = 7; // 40
const NAME: u32 = 47;
const LINT: u32 = 48;
const SINT: u32 = 49;
const USINT: u32 = 50; // 2
const UINT: u32 = 52;
const UDINT: u32 = 53;
const ULINT: u32 = 54;
const LREAL: u32 = 55;
const BOOL: u32 = 56;
const INT: u32 = 57; // 3
const WAVE: u32 = 60; // 200

fn check_values(records: &[Sample]) {
    assert_eq!(value(records, DINT).value_f64(), 42.0);
    for i in 0..5 {
        assert_eq!(value(records, REALS + i).value_f64(), f64::from(i) * 1.5);
    }
    let flag = value(records, FLAG);
    assert_eq!((flag.kind(), flag.value), (Some(ValueKind::Bool), 1));
    // Alarms[3] x 40: bits 3..43 of AAAAAAAA 55555555.
    for i in 0..40u32 {
        let bit = 3 + i;
        let word: u32 = if bit < 32 { 0xAAAA_AAAA } else { 0x5555_5555 };
        let want = u64::from((word >> (bit % 32)) & 1);
        assert_eq!(value(records, ALARMS + i).value, want, "alarm bit {bit}");
    }
    let at = records
        .iter()
        .position(|s| s.tag_id().0 == FUZZ_TAG_FIRST + NAME)
        .unwrap();
    let text = text_at(&records[at..]).unwrap();
    let mut bytes = vec![0; text.len()];
    text.copy_to(&mut bytes);
    assert_eq!(bytes, b"pump 7");
    assert_eq!(value(records, LINT).value_f64(), -4.0 * 0.5 + 1.0);
    assert_eq!(value(records, SINT).value_f64(), -2.0);
    assert_eq!(value(records, USINT + 1).value_f64(), 8.0);
    assert_eq!(value(records, UINT).value_f64(), 65535.0);
    assert_eq!(value(records, UDINT).value, u64::from(u32::MAX));
    assert_eq!(value(records, ULINT).value, u64::MAX);
    assert_eq!(value(records, ULINT).kind(), Some(ValueKind::U64));
    assert_eq!(value(records, LREAL).value_f64(), 2.25);
    assert_eq!(value(records, BOOL).value, 1);
    assert_eq!(value(records, INT + 1).value_f64(), -2.0);
    for i in [0u32, 99, 199] {
        assert_eq!(value(records, WAVE + i).value_f64(), f64::from(i));
    }
    assert!(records.iter().all(|s| s.quality() == Quality::GOOD));
}

#[test]
fn a_cycle_reads_every_type_and_shape() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    let run = drive(&mut session, &mut responder, 2);
    assert_eq!(run.records.len(), 2 * session.cycle_samples());
    check_values(&run.records[..session.cycle_samples()]);
    check_values(&run.records[session.cycle_samples()..]);
    assert!(run.notices.is_empty());
    // 500-byte connection: Wave (800 bytes) goes fragmented.
    assert!(session
        .plan()
        .requests
        .iter()
        .any(|r| r.kind == super::RequestKind::Fragmented));
}

#[test]
fn a_refused_large_forward_open_falls_back_and_says_so() {
    let mut device = fuzz_device();
    if let crate::config::DriverConfig::EthernetIp(e) = &mut device.driver {
        e.connection_size = 4002;
    }
    let mut session = fuzz_session_for(&device);
    assert_eq!(session.connection_size(), 4002);
    let mut responder = fuzz_responder();
    responder.refuse_large = true;
    let run = drive(&mut session, &mut responder, 1);
    check_values(&run.records);
    assert_eq!(session.connection_size(), 500);
    assert!(matches!(
        run.notices[..],
        [EnipNotice::LargeForwardOpenRefused {
            general: 8,
            size: 500,
            ..
        }]
    ));
    // Without the refusal the large plan is in force and needs fewer requests.
    let mut big = fuzz_session_for(&device);
    let run = drive(&mut big, &mut fuzz_responder(), 1);
    check_values(&run.records);
    assert!(big.plan().requests.len() < session.plan().requests.len());
}

#[test]
fn a_refused_route_is_not_a_reason_to_fall_back() {
    let mut device = fuzz_device();
    if let crate::config::DriverConfig::EthernetIp(e) = &mut device.driver {
        e.connection_size = 4002;
    }
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    responder.refuse_route = true;
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    session.on_connected(0);
    let mut error = None;
    for _ in 0..4 {
        let mut sent = Vec::new();
        while let Some(n) = session.poll_transmit(0, &mut buf) {
            sent.extend_from_slice(&buf[..n]);
        }
        let replies = responder.answer(&sent);
        if let Err(e) = Session::receive(&mut session, &replies, 7, &mut out) {
            error = Some(e.error);
            break;
        }
    }
    let error = error.expect("the refused route ends the handshake");
    assert_eq!(
        error,
        EnipError::ForwardOpenRefused {
            step: super::Step::LargeForwardOpen,
            general: 1,
            extended: 0x0312
        }
    );
    assert!(error.to_string().contains("check `path`"), "{error}");
    assert_eq!(
        session.classify(&error),
        crate::protocol::session::ErrorClass::Handshake
    );
    assert!(session.poll_notice().is_none(), "no fallback notice");
}

#[test]
fn replies_cut_short_continue_with_fragmented_reads() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    // 90 data bytes: one whole STRING (88) per reply, the 800-byte Wave in
    // fragments.
    responder.reply_data_max = 90;
    let run = drive(&mut session, &mut responder, 2);
    check_values(&run.records[..session.cycle_samples()]);
    assert_eq!(run.records.len(), 2 * session.cycle_samples());
    // A cut that splits elements (93 is no multiple of 2, 4 or 8) still
    // decodes whole values: the next fragment asks again from the cut one.
    responder.reply_data_max = 93;
    let run = drive(&mut session, &mut responder, 1);
    check_values(&run.records);
    // A cut smaller than one element makes no progress: those reads end as
    // decode errors, the others are good, and the connection stays.
    responder.reply_data_max = 7;
    let run = drive(&mut session, &mut responder, 1);
    assert_eq!(run.records.len(), session.cycle_samples());
    assert!(value(&run.records, LINT).quality() == Quality::DECODE_ERROR);
    assert!(value(&run.records, NAME).quality() == Quality::DECODE_ERROR);
    assert_eq!(value(&run.records, DINT).value_f64(), 42.0);
    assert_eq!(value(&run.records, WAVE + 199).value_f64(), 199.0);
}

#[test]
fn a_missing_tag_is_its_quality_and_one_notice_not_a_dropped_connection() {
    for quirk in [false, true] {
        let device = fuzz_device();
        let mut session = fuzz_session_for(&device);
        let mut responder = fuzz_responder();
        responder.msp_always_success = quirk;
        responder.tags.remove("Program:Main.Temps");
        let run = drive(&mut session, &mut responder, 3);
        let missing: Vec<_> = run
            .records
            .iter()
            .filter(|s| (REALS..REALS + 5).contains(&(s.tag_id().0 - FUZZ_TAG_FIRST)))
            .collect();
        assert_eq!(missing.len(), 15);
        assert!(missing.iter().all(|s| s.quality() == Quality::cip(0x05, 0)));
        assert_eq!(value(&run.records, DINT).value_f64(), 42.0);
        assert_eq!(run.notices.len(), 1, "one notice, not one per cycle");
        let text = run.notices[0].to_string();
        assert!(
            text.contains("`reals` (Program:Main.Temps) does not exist"),
            "{text}"
        );
        assert_eq!(Session::device_bad_samples(&session), 15);
    }
}

#[test]
fn a_wrong_type_is_a_type_mismatch() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    responder.serve("Counter", 0xCA, 4, 1.0f32.to_le_bytes().to_vec());
    let run = drive(&mut session, &mut responder, 1);
    assert_eq!(value(&run.records, DINT).quality(), Quality::TYPE_MISMATCH);
    assert!(matches!(
        run.notices[..],
        [EnipNotice::TypeMismatch { found: 0xCA, .. }]
    ));
}

/// The records of a cycle whatever happens: timeouts and a dropped
/// connection end every request in exactly its records.
#[test]
fn timeouts_and_drops_end_every_request_in_its_records() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    drive(&mut session, &mut responder, 1);
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    let mut buf = vec![0u8; session.request_bytes_max()];
    // Timeouts: nothing answers.
    session.start_cycle();
    let mut records = 0;
    for round in 0..100u64 {
        while session.poll_transmit(round, &mut buf).is_some() {}
        let deadline = session.next_deadline_ns().unwrap_or(0);
        loop {
            let n = session.handle_timeout(deadline, 7, &mut out).unwrap();
            assert!(out[..n]
                .iter()
                .filter(|s| s.is_row())
                .all(|s| s.quality() == Quality::TIMEOUT));
            records += n;
            if n == 0 {
                break;
            }
        }
        if session.cycle_sent() && session.inflight_count() == 0 {
            break;
        }
    }
    assert_eq!(records, session.cycle_samples());
    // A drop after the first request went out.
    session.start_cycle();
    assert!(session.poll_transmit(0, &mut buf).is_some());
    let mut records = 0;
    loop {
        let n = session.disconnect(7, &mut out);
        records += n;
        if n == 0 {
            break;
        }
    }
    loop {
        let n = session.fail_unsent(Quality::NO_CONNECTION, 7, &mut out);
        records += n;
        if n == 0 {
            break;
        }
    }
    assert_eq!(records, session.cycle_samples());
    assert!(!session.is_ready());
    // It connects again and reads.
    let run = drive(&mut session, &mut responder, 1);
    check_values(&run.records);
}

#[test]
fn a_late_answer_or_another_session_is_a_protocol_error() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut responder = fuzz_responder();
    drive(&mut session, &mut responder, 1);
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    session.start_cycle();
    let n = session.poll_transmit(0, &mut buf).unwrap();
    let reply = responder.answer(&buf[..n]);
    // Time it out, then let the answer arrive.
    let deadline = session.next_deadline_ns().unwrap();
    while session.handle_timeout(deadline, 7, &mut out).unwrap() > 0 {}
    let error = Session::receive(&mut session, &reply, 7, &mut out).unwrap_err();
    assert!(matches!(error.error, EnipError::SequenceUnknown { .. }));
    // A message of another session.
    let mut other = reply.clone();
    other[4] ^= 1;
    let error = Session::receive(&mut session, &other, 7, &mut out).unwrap_err();
    assert!(matches!(error.error, EnipError::SessionHandle { .. }));
}

#[test]
fn a_clean_stop_sends_forward_close_and_unregister() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut buf = vec![0u8; session.request_bytes_max()];
    assert_eq!(Session::poll_close(&mut session, &mut buf), None);
    drive(&mut session, &mut fuzz_responder(), 1);
    let n = Session::poll_close(&mut session, &mut buf).unwrap();
    let bytes = &buf[..n];
    assert_eq!(&bytes[..2], &[0x6F, 0]);
    let close_len = 24 + usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
    assert_eq!(bytes[24 + 16], 0x4E, "Forward Close");
    assert_eq!(
        &bytes[close_len..close_len + 2],
        &[0x66, 0],
        "UnregisterSession"
    );
    assert_eq!(Session::poll_close(&mut session, &mut buf), None, "once");
}

#[test]
fn a_handshake_without_answer_times_out() {
    let device = fuzz_device();
    let mut session = fuzz_session_for(&device);
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    session.on_connected(0);
    assert!(session.poll_transmit(0, &mut buf).is_some());
    assert_eq!(session.inflight_count(), 1);
    let deadline = session.next_deadline_ns().unwrap();
    assert_eq!(
        session.handle_timeout(deadline, 7, &mut out),
        Err(EnipError::HandshakeTimeout {
            step: super::Step::RegisterSession
        })
    );
}
