//! Decode programs (program.rs): the request they send is the one
//! `encode_read_var` writes, runs form where tags lie back to back, and a
//! session decoding through its programs writes exactly the records of a
//! session decoding every answer through the per-item path, on random
//! devices, PDUs and answers (item errors, capped items, header errors,
//! transport size 9, corrupted bytes).
#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use proptest::prelude::*;
use proptest::test_runner::TestRunner;

use crate::config::{S7Area, S7Tag, S7Type};
use crate::protocol::session::Session;
use crate::sample::{Quality, Sample, TagId};

use super::fuzz::{fuzz_areas, fuzz_device, s7_device, s7_tag, FakePlc, Lockstep, FUZZ_TAG_FIRST};
use super::planner::planned_tags;
use super::program::{DecodeProgram, Step};
use super::session::S7Session;
use super::wire::{self, ReadItem};

fn programs(session: &S7Session) -> Vec<DecodeProgram> {
    let plan = session.plan();
    plan.requests
        .iter()
        .map(|r| DecodeProgram::compile(&plan.tags, r))
        .collect()
}

#[test]
fn the_request_sent_is_the_one_encode_read_var_writes() {
    for pdu in [64, 240, 960] {
        let mut device = fuzz_device();
        if let crate::config::DriverConfig::S7(s7) = &mut device.driver {
            s7.pdu_size = pdu;
        }
        let session = S7Session::for_device(&device, TagId(FUZZ_TAG_FIRST)).unwrap();
        for (program, request) in programs(&session).iter().zip(&session.plan().requests) {
            let items: Vec<ReadItem> = request.pieces.iter().map(|p| p.item).collect();
            for pdu_ref in [0, 1, 0x1234, u16::MAX] {
                let mut expected = vec![0u8; 1024];
                let n = wire::encode_read_var(pdu_ref, &items, &mut expected);
                let mut sent = vec![0xAAu8; 1024];
                assert_eq!(program.send(pdu_ref, &mut sent), Some(n));
                assert_eq!(sent[..n], expected[..n], "pdu {pdu}, ref {pdu_ref}");
                assert_eq!(program.send(pdu_ref, &mut sent[..n - 1]), None);
            }
        }
    }
}

#[test]
fn runs_cover_back_to_back_tags_of_one_type_and_consecutive_ids() {
    let db = S7Area::Db(1);
    let mut tags: Vec<S7Tag> = (0..10)
        .map(|i| s7_tag(&format!("r{i}"), db, 4 * i, 0, S7Type::Real))
        .collect();
    // A scaled REAL, a BOOL, then four INTs of which the third overlaps.
    let mut scaled = s7_tag("scaled", db, 40, 0, S7Type::Real);
    scaled.scale = 2.0;
    tags.push(scaled);
    tags.push(s7_tag("x", db, 44, 1, S7Type::Bool));
    for (name, byte) in [("i0", 46), ("i1", 48), ("i2", 49), ("i3", 51)] {
        tags.push(s7_tag(name, db, byte, 0, S7Type::Int));
    }
    let device = s7_device("runs", "127.0.0.1:102", 240, tags);
    let session = S7Session::for_device(&device, TagId(5)).unwrap();
    let programs = programs(&session);
    assert_eq!(programs.len(), 1);
    let kinds: Vec<String> = programs[0]
        .steps
        .iter()
        .map(|step| match step {
            Step::Run { count, from, .. } => format!("run {count} @{from}"),
            Step::Tag { tag, from } => format!("tag {tag} @{from}"),
            Step::Parts { piece, .. } => format!("parts {piece}"),
        })
        .collect();
    // Two items (the hole before the INTs ends the range), both odd, so
    // the INTs' item (DB1.DBB46, 7 bytes) goes first: its data at 4, then
    // a fill byte, the REALs' item head at 12 and its data at 16.
    let expected = [
        "run 2 @4",
        "run 2 @7",
        "run 10 @16",
        "tag 10 @56",
        "tag 11 @60",
    ];
    assert_eq!(kinds, expected);
}

#[test]
fn the_usual_answer_takes_the_program_and_an_unusual_one_does_not() {
    let session = S7Session::for_device(&fuzz_device(), TagId(FUZZ_TAG_FIRST)).unwrap();
    let plc = FakePlc::new(240, fuzz_areas());
    let program = &programs(&session)[0];
    let mut request = vec![0u8; 1024];
    let n = program.send(9, &mut request).unwrap();
    let answer = plc.answer(&request[..n]);
    let wire::Tpdu::Data(pdu) = wire::parse_tpdu(&answer).unwrap() else {
        panic!("a data TPDU");
    };
    let ack = wire::parse_ack(pdu).unwrap();
    let room = session.samples_per_frame_max();
    assert!(program.is_usual(ack.params, ack.data, room));
    assert!(!program.is_usual(ack.params, ack.data, room - 1), "room");
    let mut data = ack.data.to_vec();
    data[1] = 0x09;
    assert!(!program.is_usual(ack.params, &data, room), "transport size");
    data[1] = 0x04;
    data[0] = 0x05;
    assert!(!program.is_usual(ack.params, &data, room), "return code");
    assert!(
        !program.is_usual(ack.params, &ack.data[1..], room),
        "length"
    );
    let mut params = ack.params.to_vec();
    params[1] -= 1;
    assert!(!program.is_usual(&params, ack.data, room), "item count");
}

const AREAS: [S7Area; 4] = [S7Area::Db(1), S7Area::Db(2), S7Area::Merker, S7Area::Inputs];
/// Every type, the ones runs take more often.
const TYPES: [S7Type; 27] = [
    S7Type::Bool,
    S7Type::Byte,
    S7Type::Word,
    S7Type::DWord,
    S7Type::SInt,
    S7Type::USInt,
    S7Type::Int,
    S7Type::UInt,
    S7Type::DInt,
    S7Type::UDInt,
    S7Type::LInt,
    S7Type::ULInt,
    S7Type::Real,
    S7Type::LReal,
    S7Type::Char,
    S7Type::String(10),
    S7Type::WString(6),
    S7Type::DateAndTime,
    S7Type::Dtl,
    S7Type::S5Time,
    S7Type::Time,
    S7Type::Real,
    S7Type::Real,
    S7Type::Int,
    S7Type::Int,
    S7Type::DInt,
    S7Type::String(60),
];

/// A block of `repeat` tags of one type back to back: (area, type, gap or
/// address, bit, scaled, repeat).
type RawTag = (usize, usize, u32, u8, bool, u32);

/// Dense: each block `gap % 3` bytes after the area's previous one, so
/// blocks often join into longer runs; else at its address.
fn device_tags(raw: &[RawTag], dense: bool) -> Vec<S7Tag> {
    let mut cursor = [0u32; AREAS.len()];
    let mut tags = Vec::new();
    for &(area, ty, at, bit, scaled, repeat) in raw {
        let data_type = TYPES[ty];
        let size = data_type.byte_size();
        let first = if dense { cursor[area] + at % 3 } else { at };
        for k in 0..repeat {
            let name = format!("t{}", tags.len());
            let mut tag = s7_tag(&name, AREAS[area], first + k * size, bit % 8, data_type);
            if scaled {
                (tag.scale, tag.offset) = (0.5, -3.0);
            }
            tags.push(tag);
        }
        cursor[area] = cursor[area].max(first + repeat * size);
    }
    tags
}

/// Memory for each area (xorshift from `seed`); `short` areas end early
/// (items past it: 0x05), a `missing` one is absent (0x0A).
fn areas(seed: u64, short: Option<usize>, missing: Option<usize>) -> Vec<(u8, u16, Vec<u8>)> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    AREAS
        .iter()
        .enumerate()
        .filter(|&(i, _)| Some(i) != missing)
        .map(|(i, area)| {
            let len = if Some(i) == short { 40 } else { 4000 };
            let bytes: Vec<u8> = (0..len).map(|_| next()).collect();
            (area.code(), area.db_number(), bytes)
        })
        .collect()
}

/// Rewrites every good item of a Read Var answer from transport size 4
/// (length in bits) to 9 (length in bytes): a valid answer, not the usual.
fn transport_size_9(answer: &mut [u8]) {
    let Some(&count) = answer.get(7 + 12 + 1) else {
        return;
    };
    let mut at = 7 + 12 + 2;
    for index in 0..usize::from(count) {
        let Some(head) = answer.get_mut(at..at + 4) else {
            return;
        };
        if head[0] != 0xFF || head[1] != 0x04 {
            at += 4;
            continue;
        }
        let bytes = usize::from(u16::from_be_bytes([head[2], head[3]])).div_ceil(8);
        head[1] = 0x09;
        head[2..4].copy_from_slice(&(bytes as u16).to_be_bytes());
        at += 4 + bytes + usize::from(bytes % 2 == 1 && index + 1 < usize::from(count));
    }
}

/// What happens to the answers: the n-th answer of a cycle is changed by
/// the mutation at n (if any): 0 none, 1 transport size 9, 2 a byte xored.
type Mutation = (u8, u16, u8);

fn mutate(answer: &mut [u8], mutation: Option<&Mutation>) {
    match mutation {
        Some(&(1, _, _)) => transport_size_9(answer),
        Some(&(2, at, xor)) if answer.len() > 7 => {
            let at = 7 + usize::from(at) % (answer.len() - 7);
            answer[at] ^= xor.max(1);
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
struct Case {
    raw: Vec<RawTag>,
    dense: bool,
    pdu: u16,
    first_tag: u32,
    seed: u64,
    short: Option<usize>,
    missing: Option<usize>,
    items_cap: Option<usize>,
    header_error: bool,
    mutations: Vec<Mutation>,
}

/// Both sessions (`Lockstep`) over three poll cycles of a `FakePlc`
/// whose answers are mutated; after an error, both reconnect. Returns the
/// good and the other records written.
fn run_lockstep(case: &Case) -> (usize, usize) {
    let mut device = s7_device(
        "prop",
        "127.0.0.1:102",
        case.pdu,
        device_tags(&case.raw, case.dense),
    );
    device.max_inflight = 2;
    let Ok(session) = S7Session::for_device(&device, TagId(case.first_tag)) else {
        return (0, 0);
    };
    let s7 = device.s7_part().unwrap();
    assert!(planned_tags(s7, TagId(case.first_tag)).is_ok());
    let plc = FakePlc {
        amq: 2,
        items_cap: case.items_cap,
        header_error: case.header_error.then_some((0x81, 0x04)),
        ..FakePlc::new(case.pdu, areas(case.seed, case.short, case.missing))
    };
    let mut out = vec![Sample::default(); session.samples_per_frame_max()];
    let mut buf = vec![0u8; session.request_bytes_max()];
    let mut pair = Lockstep::new(session);
    let mut records = (0, 0);
    let mut count = |written: &[Sample]| {
        let good = written
            .iter()
            .filter(|s| s.quality() == Quality::GOOD)
            .count();
        records.0 += good;
        records.1 += written.len() - good;
    };
    for _ in 0..3 {
        if !pair.session.is_ready() {
            pair.on_connected(0);
            while let Some(n) = pair.poll_transmit(0, &mut buf) {
                let answer = plc.answer(&buf[..n]);
                pair.receive(&answer, 1, &mut out).expect("handshake");
            }
            assert!(pair.session.is_ready());
        }
        pair.start_cycle();
        let mut answered = 0;
        while let Some(n) = pair.poll_transmit(0, &mut buf) {
            let mut answer = plc.answer(&buf[..n]);
            mutate(&mut answer, case.mutations.get(answered));
            answered += 1;
            match pair.receive(&answer, 1, &mut out) {
                Ok(received) => count(&out[..received.samples]),
                Err(error) => {
                    count(&out[..error.samples]);
                    while pair.disconnect(1, &mut out) > 0 {}
                    while pair.fail_unsent(Quality::NO_CONNECTION, 1, &mut out) > 0 {}
                    break;
                }
            }
        }
        pair.same_notices();
    }
    records
}

fn case_strategy() -> impl Strategy<Value = Case> {
    let raw = prop::collection::vec(
        (
            0..AREAS.len(),
            0..TYPES.len(),
            0u32..120,
            0u8..8,
            prop::bool::weighted(0.1),
            1u32..6,
        ),
        1..16,
    );
    let mutation = (0u8..3, any::<u16>(), any::<u8>());
    (
        (
            raw,
            any::<bool>(),
            prop::sample::select(vec![64u16, 120, 240, 480, 960]),
        ),
        prop::sample::select(vec![0u32, 1000, TagId::MAX - 20]),
        any::<u64>(),
        (
            prop::option::weighted(0.2, 0..AREAS.len()),
            prop::option::weighted(0.1, 0..AREAS.len()),
            prop::option::weighted(0.1, 1usize..4),
            prop::bool::weighted(0.05),
        ),
        prop::collection::vec(mutation, 0..8),
    )
        .prop_map(
            |(
                (raw, dense, pdu),
                first_tag,
                seed,
                (short, missing, items_cap, header_error),
                mutations,
            )| Case {
                raw,
                dense,
                pdu,
                first_tag,
                seed,
                short,
                missing,
                items_cap,
                header_error,
                mutations,
            },
        )
}

/// The property, with a check that the cases reach both good records
/// (the programs) and bad ones (the per-item path's qualities).
#[test]
fn programs_write_what_the_per_item_path_writes() {
    let mut runner = TestRunner::new(ProptestConfig::with_cases(512));
    let totals = std::cell::Cell::new((0, 0));
    let result = runner.run(&case_strategy(), |case| {
        let (good, bad) = run_lockstep(&case);
        let (all_good, all_bad) = totals.get();
        totals.set((all_good + good, all_bad + bad));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    let (good, bad) = totals.get();
    assert!(good > 10_000 && bad > 1_000, "good {good}, bad {bad}");
}

/// The dense layouts reach the runs: a plain case decodes through several.
#[test]
fn a_dense_plain_case_runs_and_decodes_every_tag() {
    // REAL, INT, DINT, REAL runs of ten, in DB1 and DB2.
    let raw: Vec<RawTag> = (0..4)
        .map(|i| (i / 2, [12, 6, 8, 12][i], 0, 0, false, 10))
        .collect();
    let tags = device_tags(&raw, true);
    let session = S7Session::for_device(&s7_device("d", "127.0.0.1:102", 240, tags), TagId(0));
    let runs = programs(&session.unwrap())
        .iter()
        .flat_map(|p| p.steps.clone())
        .filter(|s| matches!(s, Step::Run { count: 10, .. }))
        .count();
    assert_eq!(runs, 4);
    let case = Case {
        raw,
        dense: true,
        pdu: 240,
        first_tag: 0,
        seed: 7,
        short: None,
        missing: None,
        items_cap: None,
        header_error: false,
        mutations: Vec::new(),
    };
    assert_eq!(run_lockstep(&case), (3 * 40, 0));
}
