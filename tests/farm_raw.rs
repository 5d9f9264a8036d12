//! The farm seen by a raw-socket client: pipelined requests, the spec's
//! exceptions, framing errors, every fault kind, reproducible faults, the
//! response delay, and 2,000 devices in one farm.
#![cfg(not(millrace_loom))]

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use millrace::config::Area;
use millrace::farm::{self, Farm, FarmHandle, FarmOptions, FaultRates};

/// Every blocking read in these tests gives up after this (no hangs).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(handle: &FarmHandle, device: u32) -> TcpStream {
    let stream = TcpStream::connect(handle.addr(device).unwrap()).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn request(tid: u16, fc: u8, start: u16, quantity: u16) -> Vec<u8> {
    let mut v = tid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 6, 1, fc]);
    v.extend_from_slice(&start.to_be_bytes());
    v.extend_from_slice(&quantity.to_be_bytes());
    v
}

/// Reads one ADU as the MBAP header frames it: (header, pdu).
fn read_adu(stream: &mut TcpStream) -> ([u8; 7], Vec<u8>) {
    let mut header = [0u8; 7];
    stream.read_exact(&mut header).unwrap();
    let length = u16::from_be_bytes([header[4], header[5]]) as usize;
    let mut pdu = vec![0u8; length - 1];
    stream.read_exact(&mut pdu).unwrap();
    (header, pdu)
}

/// Checks a well-formed read answer against the request and the value rules.
fn check_read(
    device: u32,
    tid: u16,
    fc: u8,
    start: u16,
    quantity: u16,
    (h, pdu): ([u8; 7], Vec<u8>),
) {
    assert_eq!(
        u16::from_be_bytes([h[0], h[1]]),
        tid,
        "answers come in request order"
    );
    assert_eq!(pdu[0], fc, "pdu {pdu:?}");
    let area = [Area::Coil, Area::Discrete, Area::Holding, Area::Input][usize::from(fc - 1)];
    if area.is_bit_area() {
        assert_eq!(usize::from(pdu[1]), usize::from(quantity).div_ceil(8));
        for i in 0..quantity {
            let bit = pdu[2 + usize::from(i / 8)] >> (i % 8) & 1;
            assert!(farm::verify(area, device, start + i, bit.into()));
        }
    } else {
        assert_eq!(usize::from(pdu[1]), 2 * usize::from(quantity));
        let counter = pdu[2];
        for (i, pair) in pdu[2..].chunks(2).enumerate() {
            let value = u16::from_be_bytes([pair[0], pair[1]]);
            assert!(farm::verify(area, device, start + i as u16, value));
            assert_eq!(farm::counter_of(value), counter, "one counter per answer");
        }
    }
}

fn exception_of((h, pdu): ([u8; 7], Vec<u8>)) -> (u16, u8, u8) {
    assert_eq!(pdu.len(), 2);
    (u16::from_be_bytes([h[0], h[1]]), pdu[0], pdu[1])
}

#[test]
fn pipelined_requests_in_one_segment_are_all_answered_in_order() {
    let handle = Farm::start(FarmOptions {
        devices: 2,
        ..FarmOptions::default()
    })
    .unwrap();
    let mut stream = connect(&handle, 1);
    let reads = [
        (3u8, 0u16, 125u16),
        (4, 50, 3),
        (1, 0, 2000),
        (2, 9, 9),
        (3, 124, 1),
    ];
    let mut segment = Vec::new();
    for round in 0..20u16 {
        for (k, &(fc, start, quantity)) in reads.iter().enumerate() {
            segment.extend(request(round * 10 + k as u16, fc, start, quantity));
        }
    }
    stream.write_all(&segment).unwrap();
    for round in 0..20u16 {
        for (k, &(fc, start, quantity)) in reads.iter().enumerate() {
            check_read(
                1,
                round * 10 + k as u16,
                fc,
                start,
                quantity,
                read_adu(&mut stream),
            );
        }
    }
    // The counter moved on with every answer on this device.
    stream.write_all(&request(7, 3, 0, 1)).unwrap();
    let (_, pdu) = read_adu(&mut stream);
    assert_eq!(pdu[2], 100, "100 data answers before this one");
    let counters = handle.stop().unwrap();
    assert_eq!(counters.requests, 101);
    assert_eq!(counters.data_responses, 101);
}

#[test]
fn a_request_split_over_many_writes_is_answered() {
    let handle = Farm::start(FarmOptions::default()).unwrap();
    let mut stream = connect(&handle, 0);
    for byte in request(42, 4, 7, 11) {
        stream.write_all(&[byte]).unwrap();
        stream.flush().unwrap();
    }
    check_read(0, 42, 4, 7, 11, read_adu(&mut stream));
}

#[test]
fn bad_requests_get_the_specification_exceptions() {
    let options = FarmOptions {
        register_count: 200,
        bit_count: 3000,
        ..FarmOptions::default()
    };
    let handle = Farm::start(options).unwrap();
    let mut stream = connect(&handle, 0);
    let cases: [(Vec<u8>, (u16, u8, u8)); 7] = [
        (request(1, 5, 0, 0xff00), (1, 0x85, 1)),
        (request(2, 0x2b, 0, 1), (2, 0xab, 1)),
        (request(3, 3, 190, 11), (3, 0x83, 2)),
        (request(4, 4, 0, 126), (4, 0x84, 3)),
        (request(5, 1, 0, 2001), (5, 0x81, 3)),
        (request(6, 2, 0, 0), (6, 0x82, 3)),
        // A read PDU with a missing byte: MBAP length 5.
        (
            {
                let mut r = request(7, 3, 0, 1);
                r[5] = 5;
                r.pop();
                r
            },
            (7, 0x83, 3),
        ),
    ];
    for (bytes, _) in &cases {
        stream.write_all(bytes).unwrap();
    }
    for (_, want) in &cases {
        assert_eq!(exception_of(read_adu(&mut stream)), *want);
    }
    // Still serving on the same connection afterwards.
    stream.write_all(&request(8, 2, 2999, 1)).unwrap();
    check_read(0, 8, 2, 2999, 1, read_adu(&mut stream));
    assert_eq!(handle.stop().unwrap().protocol_exceptions, 7);
}

fn assert_closed(stream: &mut TcpStream) {
    let mut buf = [0u8; 300];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("expected a closed connection, got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }
}

#[test]
fn a_stream_that_cannot_be_modbus_is_closed() {
    let handle = Farm::start(FarmOptions::default()).unwrap();
    let mut bad_protocol = request(1, 3, 0, 1);
    bad_protocol[3] = 1;
    let mut bad_length = request(1, 3, 0, 1);
    bad_length[4] = 0x10;
    for bytes in [bad_protocol, bad_length] {
        let mut stream = connect(&handle, 0);
        stream.write_all(&bytes).unwrap();
        assert_closed(&mut stream);
    }
    assert_eq!(handle.stop().unwrap().framing_errors, 2);
}

fn farm_with(faults: FaultRates) -> FarmHandle {
    let stall = Duration::from_secs(600);
    Farm::start(FarmOptions {
        devices: 1,
        faults,
        stall,
        ..FarmOptions::default()
    })
    .unwrap()
}

#[test]
fn fault_dropped_connection() {
    let handle = farm_with(FaultRates {
        drop_connection: 1.0,
        ..FaultRates::default()
    });
    let mut stream = connect(&handle, 0);
    stream.write_all(&request(1, 3, 0, 10)).unwrap();
    assert_closed(&mut stream);
    // Spec exceptions are not faults: a bad request is still answered.
    let mut stream = connect(&handle, 0);
    stream.write_all(&request(2, 9, 0, 1)).unwrap();
    assert_eq!(exception_of(read_adu(&mut stream)), (2, 0x89, 1));
    assert_eq!(handle.stop().unwrap().fault_drops, 1);
}

#[test]
fn fault_stall_holds_the_answer_back() {
    let handle = farm_with(FaultRates {
        stall: 1.0,
        ..FaultRates::default()
    });
    let mut stream = connect(&handle, 0);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    stream.write_all(&request(1, 3, 0, 10)).unwrap();
    let mut buf = [0u8; 64];
    let err = stream
        .read(&mut buf)
        .expect_err("a stalled answer (held 600 s) arrived");
    assert!(
        matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        "{err}"
    );
    let counters = handle.stop().unwrap();
    assert_eq!((counters.fault_stalls, counters.requests), (1, 1));
}

#[test]
fn fault_exception_answers_04() {
    let handle = farm_with(FaultRates {
        exception: 1.0,
        ..FaultRates::default()
    });
    let mut stream = connect(&handle, 0);
    for tid in 0..5 {
        stream
            .write_all(&request(tid, 3 + (tid % 2) as u8, 0, 10))
            .unwrap();
        assert_eq!(
            exception_of(read_adu(&mut stream)),
            (tid, 0x83 + (tid % 2) as u8, 4)
        );
    }
    assert_eq!(handle.stop().unwrap().fault_exceptions, 5);
}

#[test]
fn fault_malformed_lengths_disagree_with_the_data() {
    let handle = farm_with(FaultRates {
        malformed: 1.0,
        ..FaultRates::default()
    });
    let mut stream = connect(&handle, 0);
    let (mut byte_count_kind, mut mbap_kind) = (0, 0);
    for tid in 0..40u16 {
        stream.write_all(&request(tid, 3, 0, 10)).unwrap();
        // Read exactly what a good answer would be (9 + 20 bytes) raw.
        let mut answer = [0u8; 29];
        stream.read_exact(&mut answer).unwrap();
        let mbap_length = u16::from_be_bytes([answer[4], answer[5]]);
        let byte_count = answer[8];
        match (mbap_length, byte_count) {
            (23, 22) => byte_count_kind += 1,
            (21, 20) => mbap_kind += 1,
            other => panic!("answer {tid} is not malformed as designed: {other:?}"),
        }
        assert_eq!(u16::from_be_bytes([answer[0], answer[1]]), tid);
    }
    assert!(
        byte_count_kind > 0 && mbap_kind > 0,
        "{byte_count_kind} {mbap_kind}"
    );
    assert_eq!(handle.stop().unwrap().fault_malformed, 40);
}

/// The kinds of answer one connection sees for 200 requests.
fn fault_trace(seed: u64) -> Vec<u8> {
    let faults = FaultRates {
        exception: 0.3,
        malformed: 0.3,
        ..FaultRates::default()
    };
    let handle = Farm::start(FarmOptions {
        faults,
        seed,
        ..FarmOptions::default()
    })
    .unwrap();
    let mut stream = connect(&handle, 0);
    let mut trace = Vec::new();
    for tid in 0..200u16 {
        stream.write_all(&request(tid, 3, 0, 4)).unwrap();
        let mut header = [0u8; 9];
        stream.read_exact(&mut header).unwrap();
        let kind = match (header[7], header[8]) {
            (0x83, _) => 1,
            (3, 8) if header[5] == 11 => 0,
            (3, 10) => 2,
            (3, 8) => 3,
            other => panic!("{other:?}"),
        };
        let rest = if kind == 1 { 0 } else { 8 };
        let mut data = vec![0u8; rest];
        stream.read_exact(&mut data).unwrap();
        trace.push(kind);
    }
    trace
}

#[test]
fn the_same_seed_injects_the_same_faults() {
    let a = fault_trace(11);
    assert_eq!(a, fault_trace(11));
    assert_ne!(a, fault_trace(12));
    assert!(a.contains(&0) && a.contains(&1) && a.contains(&2) && a.contains(&3));
}

#[test]
fn a_response_delay_still_answers_everything_in_order() {
    let options = FarmOptions {
        response_delay: Duration::from_millis(20),
        ..FarmOptions::default()
    };
    let handle = Farm::start(options).unwrap();
    let mut stream = connect(&handle, 0);
    let mut segment = Vec::new();
    for tid in 0..30 {
        segment.extend(request(tid, 4, tid, 5));
    }
    stream.write_all(&segment).unwrap();
    for tid in 0..30 {
        check_read(0, tid, 4, tid, 5, read_adu(&mut stream));
    }
}

#[test]
fn two_thousand_devices_in_one_farm_all_answer() {
    const DEVICES: u32 = 2000;
    let options = FarmOptions {
        devices: DEVICES,
        threads: 2,
        ..FarmOptions::default()
    };
    let handle = Farm::start(options).unwrap();
    assert_eq!(handle.ports().len(), DEVICES as usize);
    let mut ports = handle.ports().to_vec();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), DEVICES as usize, "one port per device");
    let mut streams: Vec<TcpStream> = (0..DEVICES).map(|d| connect(&handle, d)).collect();
    for round in 0..2u16 {
        for stream in &mut streams {
            stream.write_all(&request(round, 3, 0, 125)).unwrap();
        }
        for (device, stream) in (0..).zip(&mut streams) {
            check_read(device, round, 3, 0, 125, read_adu(stream));
        }
    }
    let counters = handle.stop().unwrap();
    assert_eq!(counters.data_responses, 2 * u64::from(DEVICES));
    assert_eq!(counters.connections_accepted, u64::from(DEVICES));
}

#[test]
fn fixed_base_port_gives_consecutive_ports() {
    // Find a free range by binding port 0 and trying just above it.
    for _ in 0..20 {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port().saturating_add(1);
        drop(probe);
        if base > 65000 {
            continue;
        }
        let options = FarmOptions {
            devices: 4,
            base_port: base,
            ..FarmOptions::default()
        };
        let Ok(handle) = Farm::start(options) else {
            continue;
        };
        assert_eq!(handle.ports(), &[base, base + 1, base + 2, base + 3]);
        let mut stream = connect(&handle, 3);
        stream.write_all(&request(1, 3, 5, 2)).unwrap();
        check_read(3, 1, 3, 5, 2, read_adu(&mut stream));
        return;
    }
    panic!("no free run of 4 ports found in 20 tries");
}
