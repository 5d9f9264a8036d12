//! Codec tests: the specification's examples, one test per validation rule
//! (each length or count field lied about, Heartbleed-style), hand-derived
//! byte orders, the session's matching and timeouts.

#![allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data

use crate::config::{Area, DataType, WordOrder};
use crate::protocol::session::{Session as _, UnitBad};
use crate::sample::{Quality, Sample, TagId, ValueKind};

use super::*;

fn planned(tag: u32, offset: u16, data_type: DataType, order: WordOrder) -> PlannedTag {
    PlannedTag {
        tag: TagId(tag),
        offset,
        data_type,
        order,
        bit: None,
        length: 0,
        scale: 1.0,
        value_offset: 0.0,
        scaled: false,
    }
}

fn request(area: Area, start: u16, quantity: u16, tags: Vec<PlannedTag>) -> PlannedRequest {
    PlannedRequest {
        area,
        start,
        quantity,
        tags,
    }
}

fn session(requests: Vec<PlannedRequest>, framing: Framing, max_inflight: u32) -> ModbusSession {
    let config = SessionConfig {
        unit_id: 0x11,
        framing,
        timeout_ns: 1_000,
        max_inflight,
    };
    ModbusSession::new(config, DevicePlan { requests }).expect("valid plan")
}

fn tcp_adu(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut adu = tid.to_be_bytes().to_vec();
    adu.extend_from_slice(&[0, 0]);
    adu.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
    adu.push(unit);
    adu.extend_from_slice(pdu);
    adu
}

fn rtu_adu(unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut adu = vec![unit];
    adu.extend_from_slice(pdu);
    let crc = crc16(&adu);
    adu.extend_from_slice(&crc.to_le_bytes());
    adu
}

// ---- specification examples (Modbus Application Protocol V1.1b3, 6.1-6.4, 7)

#[test]
fn spec_6_1_read_coils() {
    let req = ReadRequest::new(Area::Coil, 19, 19).unwrap();
    assert_eq!(req.pdu(), [0x01, 0x00, 0x13, 0x00, 0x13]);
    let pdu = [0x01, 0x03, 0xCD, 0x6B, 0x05];
    let Payload::Data(data) = check_response(&req, &pdu).unwrap() else {
        panic!()
    };
    // Coils 20..38 (offsets 0..18): CD = 1100 1101 (coil 27..20), 6B, 05.
    let tags: Vec<_> = (0..19)
        .map(|i| planned(i, i as u16, DataType::Bool, WordOrder::Abcd))
        .collect();
    let mut out = [Sample::default(); 19];
    assert_eq!(decode_samples(Area::Coil, &tags, data, 5, &mut out), 19);
    let bits: String = out
        .iter()
        .map(|s| if s.value == 1 { '1' } else { '0' })
        .collect();
    // LSB first: CD -> 1011 0011, 6B -> 1101 0110, 05 -> 101
    assert_eq!(bits, "1011001111010110101");
    assert!(out
        .iter()
        .all(|s| s.kind_byte() == ValueKind::Bool as u8 && s.quality == 0));
}

#[test]
fn spec_6_2_read_discrete_inputs() {
    let req = ReadRequest::new(Area::Discrete, 196, 22).unwrap();
    assert_eq!(req.pdu(), [0x02, 0x00, 0xC4, 0x00, 0x16]);
    let pdu = [0x02, 0x03, 0xAC, 0xDB, 0x35];
    let Payload::Data(data) = check_response(&req, &pdu).unwrap() else {
        panic!()
    };
    let tags: Vec<_> = (0..22)
        .map(|i| planned(i, i as u16, DataType::Bool, WordOrder::Abcd))
        .collect();
    let mut out = [Sample::default(); 22];
    decode_samples(Area::Discrete, &tags, data, 0, &mut out);
    // Inputs 204-197 = AC (1010 1100); input 197 (offset 1? no: 196 is offset 0) LSB first.
    let bits: String = out
        .iter()
        .map(|s| if s.value == 1 { '1' } else { '0' })
        .collect();
    assert_eq!(bits, "0011010111011011101011");
}

#[test]
fn spec_6_3_read_holding_registers() {
    let req = ReadRequest::new(Area::Holding, 107, 3).unwrap();
    assert_eq!(req.pdu(), [0x03, 0x00, 0x6B, 0x00, 0x03]);
    let pdu = [0x03, 0x06, 0x02, 0x2B, 0x00, 0x00, 0x00, 0x64];
    let Payload::Data(data) = check_response(&req, &pdu).unwrap() else {
        panic!()
    };
    let tags: Vec<_> = (0..3)
        .map(|i| planned(i, i as u16, DataType::Uint16, WordOrder::Abcd))
        .collect();
    let mut out = [Sample::default(); 3];
    decode_samples(Area::Holding, &tags, data, 0, &mut out);
    assert_eq!(out.map(|s| s.value), [555, 0, 100]);
}

#[test]
fn spec_6_4_read_input_registers() {
    let req = ReadRequest::new(Area::Input, 8, 1).unwrap();
    assert_eq!(req.pdu(), [0x04, 0x00, 0x08, 0x00, 0x01]);
    let Payload::Data(data) = check_response(&req, &[0x04, 0x02, 0x00, 0x0A]).unwrap() else {
        panic!()
    };
    let mut out = [Sample::default(); 1];
    decode_samples(
        Area::Input,
        &[planned(0, 0, DataType::Uint16, WordOrder::Abcd)],
        data,
        0,
        &mut out,
    );
    assert_eq!(out[0].value, 10);
}

#[test]
fn spec_7_exception_response() {
    let req = ReadRequest::new(Area::Coil, 0x04A1, 1).unwrap();
    assert_eq!(
        check_response(&req, &[0x81, 0x02]),
        Ok(Payload::Exception(2))
    );
}

#[test]
fn tcp_request_bytes_match_the_messaging_guide_layout() {
    let req = ReadRequest::new(Area::Holding, 4, 1).unwrap();
    // Implementation Guide 3.1.3: tid, protocol 0, length 6, unit, PDU.
    assert_eq!(
        req.encode_tcp(0x1501, 0xFF),
        [0x15, 0x01, 0, 0, 0, 6, 0xFF, 3, 0, 4, 0, 1]
    );
    assert_eq!(req.encode_rtu(1), [1, 3, 0, 4, 0, 1, 0xC5, 0xCB]);
}

// ---- requests: read codes only, limits

#[test]
fn every_request_any_builder_emits_carries_a_read_code() {
    for area in [Area::Coil, Area::Discrete, Area::Input, Area::Holding] {
        for (start, quantity) in [(0, 1), (0, 125), (65_535, 1), (100, 2000), (7, 0), (0, 126)] {
            let Ok(req) = ReadRequest::new(area, start, quantity) else {
                continue;
            };
            let code = req.pdu()[0];
            assert!((1..=4).contains(&code));
            assert_eq!(req.encode_tcp(9, 1)[7], code);
            assert_eq!(req.encode_rtu(1)[1], code);
            assert_eq!(code, area.function_code());
        }
    }
    // The session can only transmit what the plan holds, built by ReadRequest.
    let plan = vec![
        request(Area::Coil, 0, 2000, vec![]),
        request(Area::Discrete, 0, 1, vec![]),
        request(Area::Input, 0, 125, vec![]),
        request(Area::Holding, 65_535, 1, vec![]),
    ];
    for framing in [Framing::Tcp, Framing::RtuOverTcp] {
        let mut s = session(plan.clone(), framing, 8);
        s.start_cycle();
        let mut buf = [0u8; REQUEST_BYTES_MAX];
        let mut codes = Vec::new();
        while let Some(n) = s.poll_transmit(0, &mut buf) {
            codes.push(if framing == Framing::Tcp {
                buf[7]
            } else {
                buf[1]
            });
            assert!(n == 12 || n == 8);
        }
        assert_eq!(codes, vec![1, 2, 4, 3]);
    }
    // ReadFunction has exactly the four read codes.
    let all = [
        ReadFunction::ReadCoils,
        ReadFunction::ReadDiscreteInputs,
        ReadFunction::ReadHoldingRegisters,
        ReadFunction::ReadInputRegisters,
    ];
    assert_eq!(all.map(ReadFunction::code), [1, 2, 3, 4]);
}

#[test]
fn request_limits_are_enforced_when_built() {
    use RequestError::*;
    assert_eq!(ReadRequest::new(Area::Holding, 0, 0), Err(QuantityZero));
    assert_eq!(
        ReadRequest::new(Area::Holding, 0, 126),
        Err(QuantityAboveMax {
            quantity: 126,
            max: 125
        })
    );
    assert_eq!(
        ReadRequest::new(Area::Input, 0, 126),
        Err(QuantityAboveMax {
            quantity: 126,
            max: 125
        })
    );
    assert_eq!(
        ReadRequest::new(Area::Coil, 0, 2001),
        Err(QuantityAboveMax {
            quantity: 2001,
            max: 2000
        })
    );
    assert!(ReadRequest::new(Area::Discrete, 0, 2000).is_ok());
    assert_eq!(
        ReadRequest::new(Area::Holding, 65_535, 2),
        Err(AddressPastEnd {
            start: 65_535,
            quantity: 2
        })
    );
    let bad_plan = DevicePlan {
        requests: vec![request(Area::Holding, 0, 200, vec![])],
    };
    let config = SessionConfig {
        unit_id: 1,
        framing: Framing::Tcp,
        timeout_ns: 1,
        max_inflight: 1,
    };
    assert!(ModbusSession::new(config, bad_plan).is_err());
}

// ---- validation, one test per rule / length field

fn first_frame(bytes: &[u8]) -> Result<Option<(u16, u8, Vec<u8>)>, ModbusError> {
    let mut framer = MbapFramer::new();
    let mut input = bytes;
    framer
        .next_frame(&mut input)
        .map(|f| f.map(|f| (f.transaction_id, f.unit_id, f.pdu.to_vec())))
}

#[test]
fn mbap_protocol_id_must_be_zero() {
    let mut adu = tcp_adu(1, 1, &[3, 2, 0, 1]);
    adu[3] = 1;
    assert_eq!(
        first_frame(&adu),
        Err(ModbusError::MbapProtocolId { found: 1 })
    );
}

#[test]
fn mbap_length_below_two_is_rejected() {
    for length in [0u8, 1] {
        let adu = [0, 1, 0, 0, 0, length, 1, 3, 2, 0, 1];
        assert_eq!(
            first_frame(&adu),
            Err(ModbusError::MbapLengthBelowMin {
                length: length.into()
            })
        );
    }
}

#[test]
fn mbap_length_above_254_is_rejected_before_any_byte_is_buffered() {
    // Heartbleed: a header claiming 65535 bytes must not make the framer wait for them.
    let adu = [0, 1, 0, 0, 0xFF, 0xFF, 1, 3];
    assert_eq!(
        first_frame(&adu),
        Err(ModbusError::MbapLengthAboveMax { length: 0xFFFF })
    );
    let adu = [0, 1, 0, 0, 0, 255, 1];
    assert_eq!(
        first_frame(&adu),
        Err(ModbusError::MbapLengthAboveMax { length: 255 })
    );
    // 254 is the largest legal length: a frame of 260 bytes.
    let mut adu = vec![0, 1, 0, 0, 0, 254, 1];
    adu.extend(std::iter::repeat_n(0u8, 253));
    assert_eq!(first_frame(&adu).unwrap().unwrap().2.len(), 253);
}

#[test]
fn mbap_length_shorter_than_the_pdu_leaves_the_rest_as_the_next_frame() {
    // Length says 4 (unit + 3 PDU bytes); the byte count 2 then lies about the data.
    let req = ReadRequest::new(Area::Holding, 0, 1).unwrap();
    let adu = [0, 1, 0, 0, 0, 4, 1, 3, 2, 0, 0x2A];
    let (_, _, pdu) = first_frame(&adu).unwrap().unwrap();
    assert_eq!(pdu, vec![3, 2, 0]);
    assert_eq!(
        check_response(&req, &pdu),
        Err(ModbusError::PduLengthMismatch {
            expected: 2,
            found: 1
        })
    );
}

#[test]
fn byte_count_must_equal_what_the_quantity_implies() {
    let req = ReadRequest::new(Area::Holding, 0, 2).unwrap();
    // Heartbleed: byte count 250 with 4 data bytes.
    let pdu = [3, 250, 0, 1, 0, 2];
    assert_eq!(
        check_response(&req, &pdu),
        Err(ModbusError::ByteCountMismatch {
            expected: 4,
            found: 250
        })
    );
    let pdu = [3, 2, 0, 1];
    assert_eq!(
        check_response(&req, &pdu),
        Err(ModbusError::ByteCountMismatch {
            expected: 4,
            found: 2
        })
    );
    let bits = ReadRequest::new(Area::Coil, 0, 9).unwrap();
    assert_eq!(
        check_response(&bits, &[1, 1, 0xFF]),
        Err(ModbusError::ByteCountMismatch {
            expected: 2,
            found: 1
        })
    );
}

#[test]
fn data_longer_or_shorter_than_the_byte_count_is_rejected() {
    let req = ReadRequest::new(Area::Input, 0, 1).unwrap();
    assert_eq!(
        check_response(&req, &[4, 2, 0]),
        Err(ModbusError::PduLengthMismatch {
            expected: 2,
            found: 1
        })
    );
    assert_eq!(
        check_response(&req, &[4, 2, 0, 1, 9]),
        Err(ModbusError::PduLengthMismatch {
            expected: 2,
            found: 3
        })
    );
    assert_eq!(
        check_response(&req, &[4]),
        Err(ModbusError::PduTruncated { length: 1 })
    );
    assert_eq!(
        check_response(&req, &[]),
        Err(ModbusError::PduTruncated { length: 0 })
    );
}

#[test]
fn function_code_must_match_or_be_its_exception_form() {
    let req = ReadRequest::new(Area::Holding, 0, 1).unwrap();
    assert_eq!(
        check_response(&req, &[4, 2, 0, 1]),
        Err(ModbusError::FunctionCodeMismatch {
            expected: 3,
            found: 4
        })
    );
    assert_eq!(
        check_response(&req, &[0x84, 2]),
        Err(ModbusError::FunctionCodeMismatch {
            expected: 3,
            found: 0x84
        })
    );
    // pymodbus's "80 01" where "83 03" is due is not this request's exception.
    assert_eq!(
        check_response(&req, &[0x80, 1]),
        Err(ModbusError::FunctionCodeMismatch {
            expected: 3,
            found: 0x80
        })
    );
    assert_eq!(check_response(&req, &[0x83, 3]), Ok(Payload::Exception(3)));
}

#[test]
fn exception_pdu_is_exactly_two_bytes() {
    let req = ReadRequest::new(Area::Holding, 0, 1).unwrap();
    assert_eq!(
        check_response(&req, &[0x83]),
        Err(ModbusError::ExceptionPduLength { length: 1 })
    );
    assert_eq!(
        check_response(&req, &[0x83, 2, 0]),
        Err(ModbusError::ExceptionPduLength { length: 3 })
    );
}

#[test]
fn transaction_and_unit_id_must_match_an_outstanding_request() {
    let tags = vec![planned(0, 0, DataType::Uint16, WordOrder::Abcd)];
    let mut s = session(vec![request(Area::Holding, 0, 1, tags)], Framing::Tcp, 1);
    s.start_cycle();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    s.poll_transmit(0, &mut buf).unwrap();
    let tid = u16::from_be_bytes([buf[0], buf[1]]);
    let mut out = [Sample::default(); 4];
    let err = s
        .receive(
            &tcp_adu(tid.wrapping_add(1), 0x11, &[3, 2, 0, 1]),
            0,
            &mut out,
        )
        .unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::TransactionIdUnknown {
            found: tid.wrapping_add(1)
        }
    );
    s.disconnect(0, &mut out);
    s.start_cycle();
    s.poll_transmit(0, &mut buf).unwrap();
    let tid = u16::from_be_bytes([buf[0], buf[1]]);
    let err = s
        .receive(&tcp_adu(tid, 0x12, &[3, 2, 0, 1]), 0, &mut out)
        .unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::UnitIdMismatch {
            expected: 0x11,
            found: 0x12
        }
    );
    // The matched request still ends in one sample per tag.
    assert_eq!(err.samples, 1);
    assert_eq!(out[0].quality(), Quality::DECODE_ERROR);
    assert_eq!(s.inflight_count(), 0);
}

#[test]
fn a_matched_response_that_breaks_ends_its_request_in_decode_error_samples() {
    // The farm's malformed answer: byte count two more than the data. The
    // driver promised ring room for these tags; no sample at all would leak
    // that room (one request's worth per malformed answer, until polling
    // stops) and leave a silent hole in the data.
    let tags = vec![
        planned(0, 0, DataType::Uint16, WordOrder::Abcd),
        planned(1, 1, DataType::Uint16, WordOrder::Abcd),
    ];
    let mut s = session(vec![request(Area::Holding, 0, 2, tags)], Framing::Tcp, 1);
    s.start_cycle();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    s.poll_transmit(0, &mut buf).unwrap();
    let tid = u16::from_be_bytes([buf[0], buf[1]]);
    let mut out = [Sample::default(); 4];
    let err = s
        .receive(&tcp_adu(tid, 0x11, &[3, 6, 0, 1, 0, 2]), 9, &mut out)
        .unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::ByteCountMismatch {
            expected: 4,
            found: 6
        }
    );
    assert_eq!(err.samples, 2);
    for (i, sample) in out[..2].iter().enumerate() {
        assert_eq!(
            *sample,
            Sample::bad(9, TagId(i as u32), Quality::DECODE_ERROR)
        );
    }
    assert_eq!(s.inflight_count(), 0);
    // Nothing outstanding is left for `disconnect` to fail a second time.
    assert_eq!(s.disconnect(9, &mut out), 0);
}

#[test]
fn rtu_crc_function_code_and_byte_count_are_checked() {
    let mut framer = RtuFramer::new();
    let mut adu = rtu_adu(1, &[3, 2, 0, 7]);
    let mut input = &adu[..];
    let frame = framer.next_frame(&mut input).unwrap().unwrap();
    assert_eq!((frame.unit_id, frame.pdu), (1, &[3u8, 2, 0, 7][..]));
    let last = adu.len() - 1;
    adu[last] ^= 1;
    let mut input = &adu[..];
    assert!(matches!(
        framer.next_frame(&mut input),
        Err(ModbusError::RtuCrc { .. })
    ));
    let mut input = &[1u8, 16, 0, 1, 0, 1][..];
    assert_eq!(
        framer.next_frame(&mut input),
        Err(ModbusError::RtuFunctionCode { found: 16 })
    );
    framer.clear();
    let mut input = &[1u8, 3, 251][..];
    assert_eq!(
        framer.next_frame(&mut input),
        Err(ModbusError::RtuByteCountAboveMax { found: 251 })
    );
    framer.clear();
    let exception = rtu_adu(1, &[0x83, 2]);
    let mut input = &exception[..];
    assert_eq!(
        framer.next_frame(&mut input).unwrap().unwrap().pdu,
        &[0x83, 2]
    );
}

// ---- framing across chunks

#[test]
fn frames_split_anywhere_and_many_per_chunk() {
    let mut stream = Vec::new();
    for tid in 0..5u16 {
        stream.extend(tcp_adu(tid, 1, &[3, 4, 0, tid as u8, 0, 9]));
    }
    for split in 0..stream.len() {
        let mut framer = MbapFramer::new();
        let mut seen = Vec::new();
        for part in [&stream[..split], &stream[split..]] {
            let mut input = part;
            while let Some(f) = framer.next_frame(&mut input).unwrap() {
                seen.push((f.transaction_id, f.pdu.to_vec()));
            }
            assert!(input.is_empty());
        }
        assert_eq!(seen.len(), 5, "split at {split}");
        assert!(seen
            .iter()
            .enumerate()
            .all(|(i, (t, p))| *t == i as u16 && p[3] == i as u8));
        assert_eq!(framer.pending_len(), 0);
    }
}

#[test]
fn only_a_straddling_frame_is_copied() {
    let a = tcp_adu(1, 1, &[3, 2, 0, 1]);
    let b = tcp_adu(2, 1, &[3, 2, 0, 2]);
    let chunk: Vec<u8> = a.iter().chain(&b[..4]).copied().collect();
    let mut framer = MbapFramer::new();
    let mut input = &chunk[..];
    let frame = framer.next_frame(&mut input).unwrap().unwrap();
    // Borrowed straight from the caller's chunk.
    assert!(std::ptr::eq(frame.pdu.as_ptr(), chunk[7..].as_ptr()));
    assert_eq!(framer.next_frame(&mut input).unwrap(), None);
    assert_eq!(framer.pending_len(), 4);
    let mut input = &b[4..];
    let frame = framer.next_frame(&mut input).unwrap().unwrap();
    assert_eq!(frame.transaction_id, 2);
}

// ---- decoding: hand-derived byte orders

fn decode_one(tag: PlannedTag, registers: &[u8]) -> Sample {
    let mut out = [Sample::default(); 1];
    assert_eq!(
        decode_samples(Area::Holding, &[tag], registers, 42, &mut out),
        1
    );
    assert_eq!(out[0].quality, 0);
    out[0]
}

#[test]
fn thirty_two_bit_orders() {
    // The value 0x12345678 (bytes A=12 B=34 C=56 D=78) as each order puts it on the wire.
    let wires = [
        (WordOrder::Abcd, [0x12, 0x34, 0x56, 0x78]),
        (WordOrder::Cdab, [0x56, 0x78, 0x12, 0x34]),
        (WordOrder::Badc, [0x34, 0x12, 0x78, 0x56]),
        (WordOrder::Dcba, [0x78, 0x56, 0x34, 0x12]),
    ];
    for (order, wire) in wires {
        assert_eq!(
            decode_one(planned(0, 0, DataType::Uint32, order), &wire).value,
            0x1234_5678
        );
        let f = decode_one(planned(0, 0, DataType::Float32, order), &wire);
        assert_eq!(
            f64::from_bits(f.value),
            f64::from(f32::from_bits(0x1234_5678))
        );
    }
    let neg = decode_one(
        planned(0, 0, DataType::Int32, WordOrder::Cdab),
        &[0xFF, 0xFE, 0xFF, 0xFF],
    );
    assert_eq!(neg.value as i64, -2);
    assert_eq!(neg.kind_byte(), ValueKind::I64 as u8);
}

#[test]
fn sixty_four_bit_orders() {
    let wires = [
        (WordOrder::Abcd, [1, 2, 3, 4, 5, 6, 7, 8]),
        (WordOrder::Cdab, [7, 8, 5, 6, 3, 4, 1, 2]),
        (WordOrder::Badc, [2, 1, 4, 3, 6, 5, 8, 7]),
        (WordOrder::Dcba, [8, 7, 6, 5, 4, 3, 2, 1]),
    ];
    for (order, wire) in wires {
        assert_eq!(
            decode_one(planned(0, 0, DataType::Uint64, order), &wire).value,
            0x0102_0304_0506_0708
        );
        assert_eq!(
            decode_one(planned(0, 0, DataType::Float64, order), &wire).value,
            0x0102_0304_0506_0708
        );
    }
    let minus_one = decode_one(planned(0, 0, DataType::Int64, WordOrder::Abcd), &[0xFF; 8]);
    assert_eq!(minus_one.value as i64, -1);
}

#[test]
fn sixteen_bit_values_see_only_the_byte_swap() {
    for (order, expected) in [
        (WordOrder::Abcd, 0x1234),
        (WordOrder::Cdab, 0x1234),
        (WordOrder::Badc, 0x3412),
        (WordOrder::Dcba, 0x3412),
    ] {
        assert_eq!(
            decode_one(planned(0, 0, DataType::Uint16, order), &[0x12, 0x34]).value,
            expected
        );
    }
    let i = decode_one(
        planned(0, 0, DataType::Int16, WordOrder::Abcd),
        &[0x80, 0x00],
    );
    assert_eq!(i.value as i64, -32768);
}

#[test]
fn bits_in_registers_strings_and_scaling() {
    let mut tag = planned(0, 0, DataType::Bool, WordOrder::Abcd);
    tag.bit = Some(9);
    assert_eq!(decode_one(tag, &[0x02, 0x00]).value, 1);
    assert_eq!(decode_one(tag, &[0x00, 0x02]).value, 0);
    tag.bit = Some(1);
    assert_eq!(decode_one(tag, &[0x00, 0x02]).value, 1);

    let mut text = planned(0, 0, DataType::String, WordOrder::Abcd);
    text.length = 5;
    let s = decode_one(text, b"HELLO\0");
    assert_eq!(s.value.to_le_bytes(), *b"HELLO\0\0\0");
    assert_eq!(s.kind_byte(), ValueKind::Str8 as u8);
    text.order = WordOrder::Badc;
    assert_eq!(
        decode_one(text, b"EHLL\0O").value.to_le_bytes(),
        *b"HELLO\0\0\0"
    );

    let mut scaled = planned(0, 0, DataType::Int16, WordOrder::Abcd);
    (scaled.scale, scaled.value_offset, scaled.scaled) = (0.1, -40.0, true);
    let s = decode_one(scaled, &[0x01, 0xF4]); // 500
    assert_eq!(s.kind_byte(), ValueKind::F64 as u8);
    assert!((f64::from_bits(s.value) - 10.0).abs() < 1e-9);
}

/// The text of a string tag's records, as the kdb+ encoder reads it.
fn text_of(records: &[Sample]) -> (Vec<u8>, Quality) {
    let text = crate::sample::text_at(records).expect("a text sample");
    let mut bytes = vec![0; text.len()];
    text.copy_to(&mut bytes);
    (bytes, text.head.quality())
}

#[test]
fn long_strings_take_a_head_and_extension_records() {
    let forty = b"A forty character recipe name, at most!!";
    assert_eq!(forty.len(), 40);
    for (order, wire) in [
        (WordOrder::Abcd, forty.to_vec()),
        (
            WordOrder::Badc,
            forty
                .chunks(2)
                .flat_map(|p| [p[1], p[0]])
                .collect::<Vec<u8>>(),
        ),
    ] {
        let mut text = planned(7, 0, DataType::String, order);
        text.length = 40;
        let number = planned(8, 20, DataType::Uint16, WordOrder::Abcd);
        let mut registers = wire.clone();
        registers.extend_from_slice(&[0x01, 0x02]);
        let records = text.records(Area::Holding);
        assert_eq!(records, crate::sample::text_records(40));
        let mut out = vec![Sample::default(); records + 1];
        let tags = [text, number];
        assert_eq!(
            decode_samples(Area::Holding, &tags, &registers, 42, &mut out),
            records + 1
        );
        assert_eq!(text_of(&out), (forty.to_vec(), Quality::GOOD), "{order:?}");
        assert_eq!(out[0].kind(), Some(ValueKind::Text));
        assert!(out[1..records].iter().all(|e| e.tag_id() == TagId(7)));
        assert_eq!(
            (out[records].tag_id(), out[records].value),
            (TagId(8), 0x0102)
        );
    }
    // NUL-padded: the text ends at its first NUL; the records stay as many.
    let mut text = planned(1, 0, DataType::String, WordOrder::Abcd);
    text.length = 250;
    let mut registers = vec![0u8; 250];
    registers[..5].copy_from_slice(b"short");
    registers[6] = b'x';
    let mut out = vec![Sample::default(); text.records(Area::Holding)];
    let written = decode_samples(Area::Holding, &[text], &registers, 0, &mut out);
    assert_eq!(written, 1 + 13);
    assert_eq!(text_of(&out).0, b"short");
    // An odd length reads the last register's high byte only.
    text.length = 11;
    let mut out = vec![Sample::default(); text.records(Area::Holding)];
    decode_samples(Area::Holding, &[text], b"hello, world", 0, &mut out);
    assert_eq!(text_of(&out).0, b"hello, worl");
    // Registers missing: an empty text of DecodeError, as many records.
    decode_samples(Area::Holding, &[text], b"hello", 0, &mut out);
    assert_eq!(text_of(&out), (Vec::new(), Quality::DECODE_ERROR));
    assert_eq!(crate::sample::record_span(&out), Ok(out.len()));
    // Too little room for its records: nothing written.
    let mut short = vec![Sample::default(); 1];
    assert_eq!(
        decode_samples(Area::Holding, &[text], b"hello, world", 0, &mut short),
        0
    );
}

#[test]
fn failures_of_string_tags_take_their_records_too() {
    let mut text = planned(3, 0, DataType::String, WordOrder::Abcd);
    text.length = 82;
    let tags = [planned(2, 0, DataType::Uint16, WordOrder::Abcd), text];
    let records = 1 + text.records(Area::Holding);
    let mut out = vec![Sample::default(); records];
    assert_eq!(write_bad(&tags, 5, Quality::TIMEOUT, &mut out), records);
    assert_eq!(out[0].quality(), Quality::TIMEOUT);
    assert_eq!(text_of(&out[1..]), (Vec::new(), Quality::TIMEOUT));
    assert_eq!(
        crate::sample::record_span(&out[1..]),
        Ok(records - 1),
        "a whole text sample"
    );
    // A session's frame maximum counts records.
    let request = request(Area::Holding, 0, 41, tags.to_vec());
    assert_eq!(request.record_count(), records);
}

#[test]
fn nan_and_infinities_are_kept() {
    let inf = decode_one(
        planned(0, 0, DataType::Float32, WordOrder::Abcd),
        &[0x7F, 0x80, 0, 0],
    );
    assert_eq!(f64::from_bits(inf.value), f64::INFINITY);
    let ninf = decode_one(
        planned(0, 0, DataType::Float64, WordOrder::Abcd),
        &f64::NEG_INFINITY.to_be_bytes(),
    );
    assert_eq!(f64::from_bits(ninf.value), f64::NEG_INFINITY);
    let nan = decode_one(
        planned(0, 0, DataType::Float32, WordOrder::Abcd),
        &[0x7F, 0xC0, 0, 1],
    );
    assert!(f64::from_bits(nan.value).is_nan());
    assert_eq!(nan.quality(), Quality::GOOD);
}

// ---- session

#[test]
fn session_decodes_pipelined_responses_out_of_order_and_exceptions() {
    let plan = vec![
        request(
            Area::Holding,
            0,
            2,
            vec![planned(10, 0, DataType::Float32, WordOrder::Abcd)],
        ),
        request(
            Area::Input,
            5,
            1,
            vec![planned(11, 0, DataType::Uint16, WordOrder::Abcd)],
        ),
        request(
            Area::Coil,
            0,
            3,
            vec![planned(12, 2, DataType::Bool, WordOrder::Abcd)],
        ),
    ];
    let mut s = session(plan, Framing::Tcp, 3);
    assert_eq!(s.start_cycle(), 0);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut tids = Vec::new();
    while let Some(n) = s.poll_transmit(0, &mut buf) {
        assert_eq!(n, 12);
        tids.push(u16::from_be_bytes([buf[0], buf[1]]));
    }
    assert_eq!(tids.len(), 3);
    let mut stream = tcp_adu(tids[2], 0x11, &[1, 1, 0b100]);
    stream.extend(tcp_adu(tids[0], 0x11, &[3, 4, 0x3F, 0xC0, 0, 0]));
    stream.extend(tcp_adu(tids[1], 0x11, &[0x84, 2]));
    let mut out = [Sample::default(); 8];
    let r = s.receive(&stream, 99, &mut out).unwrap();
    assert_eq!(
        r,
        Received {
            consumed: stream.len(),
            samples: 3
        }
    );
    assert_eq!((out[0].tag_id().0, out[0].value), (12, 1));
    assert_eq!((out[1].tag_id().0, f64::from_bits(out[1].value)), (10, 1.5));
    assert_eq!(
        (out[2].tag_id().0, out[2].quality()),
        (11, Quality::modbus_exception(2))
    );
    assert!(out[..3].iter().all(|s| s.ts_ns == 99));
    assert!(s.cycle_done());
}

#[test]
fn session_respects_max_inflight_and_reports_timeouts() {
    let plan: Vec<_> = (0..3u16)
        .map(|i| {
            request(
                Area::Holding,
                i * 10,
                1,
                vec![planned(i.into(), 0, DataType::Uint16, WordOrder::Abcd)],
            )
        })
        .collect();
    let mut s = session(plan, Framing::Tcp, 2);
    s.start_cycle();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    assert!(s.poll_transmit(100, &mut buf).is_some());
    assert!(s.poll_transmit(200, &mut buf).is_some());
    assert!(s.poll_transmit(200, &mut buf).is_none());
    assert_eq!(s.next_deadline_ns(), Some(1_100));
    let mut out = [Sample::default(); 4];
    assert_eq!(s.handle_timeout(1_099, 5, &mut out), 0);
    assert_eq!(s.handle_timeout(1_100, 5, &mut out), 1);
    assert_eq!((out[0].tag_id().0, out[0].quality()), (0, Quality::TIMEOUT));
    assert!(s.poll_transmit(1_100, &mut buf).is_some());
    assert_eq!(s.start_cycle(), 0);
    assert_eq!(s.disconnect(6, &mut out), 2);
    assert!(out[..2]
        .iter()
        .all(|s| s.quality() == Quality::NO_CONNECTION));
    assert_eq!(s.inflight_count(), 0);
}

#[test]
fn session_stops_when_the_sample_slice_is_full_and_resumes() {
    let plan = vec![request(
        Area::Holding,
        0,
        2,
        vec![
            planned(0, 0, DataType::Uint16, WordOrder::Abcd),
            planned(1, 1, DataType::Uint16, WordOrder::Abcd),
        ],
    )];
    let mut s = session(plan, Framing::RtuOverTcp, 1);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut stream = Vec::new();
    for i in 0..2u8 {
        s.start_cycle();
        assert_eq!(s.poll_transmit(0, &mut buf), Some(8));
        let mut one = [Sample::default(); 2];
        let frame = rtu_adu(0x11, &[3, 4, 0, i, 0, 9]);
        stream.extend(&frame);
        let r = s.receive(&frame, 1, &mut one).unwrap();
        assert_eq!(
            (r.samples, one[0].value, one[1].value),
            (2, u64::from(i), 9)
        );
    }
    // An unsolicited RTU frame (nothing outstanding) is an error.
    let mut out = [Sample::default(); 3];
    let err = s.receive(&stream, 1, &mut out).unwrap_err();
    assert_eq!(err.error, ModbusError::ResponseUnsolicited);
    // A slice smaller than one frame's samples is a caller error, typed.
    let mut tiny = [Sample::default(); 1];
    let err = s.receive(&stream, 1, &mut tiny).unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::SampleSliceTooSmall {
            needed: 2,
            capacity: 1
        }
    );
}

// ---- a connection shared by several units (a serial-to-TCP gateway)

/// `count` one-register holding reads for tags `first..first + count`.
fn one_register_reads(first: u32, count: u16) -> DevicePlan {
    let requests = (0..count)
        .map(|i| {
            let tag = planned(first + u32::from(i), 0, DataType::Uint16, WordOrder::Abcd);
            request(Area::Holding, i * 10, 1, vec![tag])
        })
        .collect();
    DevicePlan { requests }
}

/// Units 7 (timeout 1,000 ns, tags 0-1) and 9 (timeout 5,000 ns, tag 2).
fn gateway(framing: Framing, max_inflight: u32) -> ModbusSession {
    let config = SessionConfig {
        unit_id: 7,
        framing,
        timeout_ns: 1_000,
        max_inflight,
    };
    let units = vec![
        (7, 1_000, one_register_reads(0, 2)),
        (9, 5_000, one_register_reads(2, 1)),
    ];
    ModbusSession::shared(config, units).expect("valid plans")
}

/// (transaction id, unit id) of a TCP request.
fn sent(buf: &[u8]) -> (u16, u8) {
    (u16::from_be_bytes([buf[0], buf[1]]), buf[6])
}

#[test]
fn a_shared_session_asks_each_unit_under_its_own_id_and_timeout() {
    let mut s = gateway(Framing::Tcp, 3);
    assert_eq!(
        (s.unit_count(), s.cycle_samples(), s.requests_per_cycle()),
        (2, 3, 3)
    );
    s.start_cycle();
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut requests = Vec::new();
    while let Some(n) = s.poll_transmit(100, &mut buf) {
        assert_eq!(n, 12);
        requests.push(sent(&buf));
    }
    let units: Vec<u8> = requests.iter().map(|r| r.1).collect();
    assert_eq!(units, [7, 7, 9]);
    // Unit 7's requests time out at 1,100, unit 9's at 5,100.
    assert_eq!(s.next_deadline_ns(), Some(1_100));
    // Answers in any order, each checked against its own request's unit.
    let mut stream = tcp_adu(requests[2].0, 9, &[0x83, 2]);
    stream.extend(tcp_adu(requests[0].0, 7, &[3, 2, 0, 10]));
    let mut out = [Sample::default(); 4];
    let r = s.receive(&stream, 1, &mut out).unwrap();
    assert_eq!(r.samples, 2);
    assert_eq!(
        (out[0].tag_id().0, out[0].quality()),
        (2, Quality::modbus_exception(2))
    );
    assert_eq!((out[1].tag_id().0, out[1].value), (0, 10));
    // The exception is unit 9's alone.
    let exception = UnitBad {
        timeouts: 0,
        exception_samples: 1,
    };
    assert_eq!(s.unit_bad(0), Some(UnitBad::default()));
    assert_eq!(s.unit_bad(1), Some(exception));
    assert_eq!(s.unit_bad(2), None);
    // Unit 9's id on unit 7's request is a mismatch, as on a connection of its own.
    let wrong = tcp_adu(requests[1].0, 9, &[3, 2, 0, 20]);
    let err = s.receive(&wrong, 1, &mut out).unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::UnitIdMismatch {
            expected: 7,
            found: 9
        }
    );
}

#[test]
fn a_silent_unit_costs_one_timeout_per_cycle_and_its_late_answer_is_dropped() {
    let mut s = gateway(Framing::Tcp, 1);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut out = [Sample::default(); 4];
    for cycle in 0..2u64 {
        let t0 = cycle * 100_000;
        s.start_cycle();
        let first = s.poll_transmit(t0, &mut buf).map(|_| sent(&buf));
        let (late_tid, unit) = first.expect("unit 7's first request");
        assert_eq!(unit, 7);
        assert!(s.poll_transmit(t0, &mut buf).is_none(), "one in flight");
        // Unit 7 does not answer: its first request times out, and its
        // second ends in TIMEOUT unsent, at once.
        let n = s.handle_timeout(t0 + 1_000, 5, &mut out);
        assert_eq!(n, 2);
        assert!(out[..2].iter().all(|s| s.quality() == Quality::TIMEOUT));
        // Said once, not every cycle.
        let said = (cycle == 0).then_some(ModbusNotice::UnitSilent {
            unit_id: 7,
            position: 0,
        });
        assert_eq!(s.poll_notice(), said);
        assert_eq!((out[0].tag_id().0, out[1].tag_id().0), (0, 1));
        // Unit 9 goes next, and the late answer of unit 7 on the way is
        // dropped without breaking the connection.
        assert!(s.poll_transmit(t0 + 1_000, &mut buf).is_some());
        let (tid, unit) = sent(&buf);
        assert_eq!(unit, 9);
        let mut stream = tcp_adu(late_tid, 7, &[3, 2, 0, 10]);
        stream.extend(tcp_adu(tid, 9, &[3, 2, 0, 30]));
        let r = s.receive(&stream, 6, &mut out).unwrap();
        assert_eq!((r.consumed, r.samples), (stream.len(), 1));
        assert_eq!((out[0].tag_id().0, out[0].value), (2, 30));
        assert!(s.cycle_done(), "cycle {cycle}");
    }
    // Unit 7 answers again: said once.
    s.start_cycle();
    for _ in 0..3 {
        assert!(s.poll_transmit(300_000, &mut buf).is_some());
        let (tid, unit) = sent(&buf);
        let r = s
            .receive(&tcp_adu(tid, unit, &[3, 2, 0, 1]), 7, &mut out)
            .unwrap();
        assert_eq!(r.samples, 1);
    }
    assert_eq!(
        s.poll_notice(),
        Some(ModbusNotice::UnitAnswers {
            unit_id: 7,
            position: 0,
        })
    );
    assert_eq!(s.poll_notice(), None);
    // One timeout a cycle, unit 7's; its unsent requests did not time out.
    assert_eq!(s.unit_bad(0).map(|b| b.timeouts), Some(2));
    assert_eq!(s.unit_bad(1), Some(UnitBad::default()));
    // The same late answer a second time is not remembered any more.
    let err = s
        .receive(&tcp_adu(1, 7, &[3, 2, 0, 10]), 6, &mut out)
        .unwrap_err();
    assert!(matches!(
        err.error,
        ModbusError::TransactionIdUnknown { .. }
    ));
}

#[test]
fn a_connection_of_its_own_keeps_asking_and_refuses_late_answers() {
    let mut s = session(one_register_reads(0, 2).requests, Framing::Tcp, 1);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut out = [Sample::default(); 2];
    s.start_cycle();
    assert!(s.poll_transmit(0, &mut buf).is_some());
    let (late_tid, _) = sent(&buf);
    assert_eq!(s.handle_timeout(1_000, 5, &mut out), 1);
    // Its next request still goes out: one device has no other to stall.
    assert!(s.poll_transmit(1_000, &mut buf).is_some());
    let err = s
        .receive(&tcp_adu(late_tid, 0x11, &[3, 2, 0, 1]), 6, &mut out)
        .unwrap_err();
    assert_eq!(
        err.error,
        ModbusError::TransactionIdUnknown { found: late_tid }
    );
}

#[test]
fn a_silent_unit_on_rtu_framing_ends_its_cycle_without_a_late_answer_ring() {
    let mut s = gateway(Framing::RtuOverTcp, 1);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut out = [Sample::default(); 4];
    s.start_cycle();
    assert_eq!(s.poll_transmit(0, &mut buf), Some(8));
    assert_eq!(buf[0], 7);
    assert_eq!(s.handle_timeout(1_000, 5, &mut out), 2);
    assert_eq!(s.poll_transmit(1_000, &mut buf), Some(8));
    assert_eq!(buf[0], 9, "unit 9's request, RTU-framed with its own id");
    let r = s.receive(&rtu_adu(9, &[3, 2, 0, 30]), 6, &mut out).unwrap();
    assert_eq!((r.samples, out[0].value), (1, 30));
}

#[test]
fn a_silent_units_notice_gives_its_position_so_the_reader_names_its_device() {
    let mut s = gateway(Framing::Tcp, 4);
    let mut buf = [0u8; REQUEST_BYTES_MAX];
    let mut out = [Sample::default(); 4];
    s.start_cycle();
    let mut requests = Vec::new();
    while s.poll_transmit(0, &mut buf).is_some() {
        requests.push(sent(&buf));
    }
    assert_eq!(requests.iter().map(|r| r.1).collect::<Vec<_>>(), [7, 7, 9]);
    // Unit 7 (first on the connection) answers; unit 9 (second) does not.
    for &(tid, unit) in &requests[..2] {
        let r = s.receive(&tcp_adu(tid, unit, &[3, 2, 0, 1]), 1, &mut out);
        assert_eq!(r.unwrap().samples, 1);
    }
    assert_eq!(s.handle_timeout(5_000, 2, &mut out), 1);
    let notice = s.poll_notice().expect("unit 9's notice");
    assert_eq!(
        notice,
        ModbusNotice::UnitSilent {
            unit_id: 9,
            position: 1
        }
    );
    let notice = crate::protocol::ProtocolNotice::Modbus(notice);
    assert_eq!(notice.device_position(), Some(1));
}
