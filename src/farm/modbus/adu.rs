//! The server side of Modbus TCP, sans-IO: split incoming bytes into request
//! ADUs and write the answers. Independent of `protocol::modbus` (the client
//! codec) on purpose: the farm is the peer that codec is tested against, so
//! it must not share its mistakes.
//!
//! ```text
//! MBAP header (7 bytes)                         PDU (1..=253 bytes)
//! transaction:u16 protocol:u16=0 length:u16 unit:u8 | function:u8 data...
//! length counts unit + PDU: 2..=254
//! ```

#![forbid(unsafe_code)]

use crate::config::Area;

use super::values::{check8_seeded, response_seed};
use crate::farm::fault::{self, Fault};

pub const MBAP_HEADER_SIZE: usize = 7;
/// Modbus PDU limit (serial line heritage: 256 - address - CRC).
pub const PDU_SIZE_MAX: usize = 253;
pub const ADU_SIZE_MAX: usize = MBAP_HEADER_SIZE + PDU_SIZE_MAX;
/// The MBAP length field: unit id plus at least a function code, at most a
/// full PDU. Anything else cannot be a Modbus frame, and we cannot resync.
pub const LENGTH_FIELD_MIN: u16 = 2;
pub const LENGTH_FIELD_MAX: u16 = 1 + PDU_SIZE_MAX as u16;
/// Quantity limits of FC 3/4 and FC 1/2 (the response must fit one PDU).
pub const REGISTER_QUANTITY_MAX: u16 = 125;
pub const BIT_QUANTITY_MAX: u16 = 2000;

pub const EXCEPTION_ILLEGAL_FUNCTION: u8 = 0x01;
pub const EXCEPTION_ILLEGAL_ADDRESS: u8 = 0x02;
pub const EXCEPTION_ILLEGAL_VALUE: u8 = 0x03;
pub const EXCEPTION_DEVICE_FAILURE: u8 = 0x04;
/// Gateway target device failed to respond: a request for a unit id no
/// device behind the port answers to.
pub const EXCEPTION_GATEWAY_TARGET_FAILED: u8 = 0x0B;

/// Why the byte stream cannot be a Modbus TCP stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    ProtocolId(u16),
    Length(u16),
}

/// One request ADU at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub transaction: u16,
    pub unit: u8,
    pub function: u8,
    /// The PDU after the function code.
    pub data: &'a [u8],
    /// Bytes this ADU occupies in the input.
    pub adu_size: usize,
}

/// The next request at the front of `input`: `Ok(None)` until it is complete.
pub fn next_request(input: &[u8]) -> Result<Option<Request<'_>>, FrameError> {
    let Some(header) = input.first_chunk::<MBAP_HEADER_SIZE>() else {
        return Ok(None);
    };
    let [t0, t1, p0, p1, l0, l1, unit] = *header;
    let protocol = u16::from_be_bytes([p0, p1]);
    if protocol != 0 {
        return Err(FrameError::ProtocolId(protocol));
    }
    let length = u16::from_be_bytes([l0, l1]);
    if !(LENGTH_FIELD_MIN..=LENGTH_FIELD_MAX).contains(&length) {
        return Err(FrameError::Length(length));
    }
    let adu_size = MBAP_HEADER_SIZE - 1 + usize::from(length);
    let Some(pdu) = input.get(MBAP_HEADER_SIZE..adu_size) else {
        return Ok(None);
    };
    let Some((&function, data)) = pdu.split_first() else {
        return Err(FrameError::Length(length));
    };
    Ok(Some(Request {
        transaction: u16::from_be_bytes([t0, t1]),
        unit,
        function,
        data,
        adu_size,
    }))
}

/// What a request asks of a device with `register_count` registers and
/// `bit_count` bits in each area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Read {
        area: Area,
        start: u16,
        quantity: u16,
    },
    Exception(u8),
}

pub fn classify(function: u8, data: &[u8], register_count: u32, bit_count: u32) -> Answer {
    let area = match function {
        1 => Area::Coil,
        2 => Area::Discrete,
        3 => Area::Holding,
        4 => Area::Input,
        _ => return Answer::Exception(EXCEPTION_ILLEGAL_FUNCTION),
    };
    let Ok([s0, s1, q0, q1]) = <[u8; 4]>::try_from(data) else {
        return Answer::Exception(EXCEPTION_ILLEGAL_VALUE);
    };
    let start = u16::from_be_bytes([s0, s1]);
    let quantity = u16::from_be_bytes([q0, q1]);
    let (quantity_max, count) = if area.is_bit_area() {
        (BIT_QUANTITY_MAX, bit_count)
    } else {
        (REGISTER_QUANTITY_MAX, register_count)
    };
    if quantity == 0 || quantity > quantity_max {
        return Answer::Exception(EXCEPTION_ILLEGAL_VALUE);
    }
    if u32::from(start) + u32::from(quantity) > count {
        return Answer::Exception(EXCEPTION_ILLEGAL_ADDRESS);
    }
    Answer::Read {
        area,
        start,
        quantity,
    }
}

fn push_mbap(out: &mut Vec<u8>, transaction: u16, unit: u8, pdu_size: usize) {
    debug_assert!(pdu_size <= PDU_SIZE_MAX);
    out.extend_from_slice(&transaction.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(pdu_size as u16 + 1).to_be_bytes());
    out.push(unit);
}

pub fn write_exception(out: &mut Vec<u8>, transaction: u16, unit: u8, function: u8, code: u8) {
    push_mbap(out, transaction, unit, 2);
    out.extend_from_slice(&[function | 0x80, code]);
}

/// Appends the full response to a valid read (`classify` said `Read`).
pub fn write_read_response(
    out: &mut Vec<u8>,
    request: &Request<'_>,
    (area, start, quantity): (Area, u16, u16),
    device: u32,
    counter: u8,
) {
    let byte_count = if area.is_bit_area() {
        usize::from(quantity).div_ceil(8)
    } else {
        usize::from(quantity) * 2
    };
    assert!(byte_count <= PDU_SIZE_MAX - 2);
    let size_before = out.len();
    push_mbap(out, request.transaction, request.unit, 2 + byte_count);
    out.extend_from_slice(&[request.function, byte_count as u8]);
    let seed = response_seed(area, device, counter);
    if area.is_bit_area() {
        push_bits(out, area, device, start, quantity);
    } else {
        for offset in 0..quantity {
            let address = start.wrapping_add(offset);
            out.extend_from_slice(&[counter, check8_seeded(seed, address)]);
        }
    }
    assert_eq!(out.len() - size_before, MBAP_HEADER_SIZE + 2 + byte_count);
}

fn push_bits(out: &mut Vec<u8>, area: Area, device: u32, start: u16, quantity: u16) {
    let mut byte = 0u8;
    for offset in 0..quantity {
        let address = start.wrapping_add(offset);
        if super::values::bit_value(area, device, address) {
            byte |= 1 << (offset % 8);
        }
        if offset % 8 == 7 {
            out.push(byte);
            byte = 0;
        }
    }
    if quantity % 8 != 0 {
        out.push(byte);
    }
}

/// Turns the well-formed answer in `answer` (one ADU) into the malformed kind.
pub fn malform(answer: &mut [u8], fault: Fault) {
    match fault {
        // MBAP header, function code, then the byte count.
        Fault::MalformedCount => {
            if let Some(count) = answer.get_mut(MBAP_HEADER_SIZE + 1) {
                *count = count.wrapping_add(2);
            }
        }
        Fault::MalformedFrameLength => fault::add_to_u16(answer, 4, -2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adu(tid: u16, fc: u8, start: u16, qty: u16) -> Vec<u8> {
        let mut v = tid.to_be_bytes().to_vec();
        v.extend_from_slice(&[0, 0, 0, 6, 9, fc]);
        v.extend_from_slice(&start.to_be_bytes());
        v.extend_from_slice(&qty.to_be_bytes());
        v
    }

    #[test]
    fn splits_pipelined_requests_and_waits_for_partial_ones() {
        let mut input = adu(1, 3, 0, 2);
        input.extend(adu(2, 4, 5, 1));
        let first = next_request(&input).unwrap().unwrap();
        assert_eq!(
            (
                first.transaction,
                first.unit,
                first.function,
                first.adu_size
            ),
            (1, 9, 3, 12)
        );
        let second = next_request(&input[12..]).unwrap().unwrap();
        assert_eq!(second.transaction, 2);
        for cut in 0..12 {
            assert_eq!(next_request(&input[..cut]), Ok(None));
        }
    }

    #[test]
    fn rejects_what_cannot_be_modbus() {
        let mut bad = adu(1, 3, 0, 1);
        bad[2] = 1;
        assert_eq!(next_request(&bad), Err(FrameError::ProtocolId(0x0100)));
        for length in [0u16, 1, 255, 0xffff] {
            let mut bad = adu(1, 3, 0, 1);
            bad[4..6].copy_from_slice(&length.to_be_bytes());
            assert_eq!(next_request(&bad), Err(FrameError::Length(length)));
        }
    }

    #[test]
    fn exceptions_follow_the_specification() {
        let q = |qty: u16| [0, 0, (qty >> 8) as u8, qty as u8];
        assert_eq!(classify(5, &q(1), 10, 10), Answer::Exception(1));
        assert_eq!(classify(0x83, &q(1), 10, 10), Answer::Exception(1));
        assert_eq!(classify(3, &q(126), 1000, 1000), Answer::Exception(3));
        assert_eq!(classify(3, &q(0), 1000, 1000), Answer::Exception(3));
        assert_eq!(classify(1, &q(2001), 9000, 9000), Answer::Exception(3));
        assert_eq!(classify(3, &q(11), 10, 10), Answer::Exception(2));
        assert_eq!(classify(3, &[0, 0, 0], 10, 10), Answer::Exception(3));
        assert_eq!(
            classify(2, &q(2000), 10, 2000),
            Answer::Read {
                area: Area::Discrete,
                start: 0,
                quantity: 2000
            }
        );
    }

    #[test]
    fn register_and_bit_responses_carry_verifiable_values() {
        let input = adu(7, 3, 100, 125);
        let req = next_request(&input).unwrap().unwrap();
        let mut out = Vec::new();
        write_read_response(&mut out, &req, (Area::Holding, 100, 125), 42, 9);
        assert_eq!(out.len(), 9 + 250);
        assert_eq!(&out[..9], &[0, 7, 0, 0, 0, 253, 9, 3, 250]);
        for (i, pair) in out[9..].chunks(2).enumerate() {
            let v = u16::from_be_bytes([pair[0], pair[1]]);
            assert!(super::super::values::verify_register(42, 100 + i as u16, v));
        }
        let input = adu(8, 1, 3, 10);
        let req = next_request(&input).unwrap().unwrap();
        out.clear();
        write_read_response(&mut out, &req, (Area::Coil, 3, 10), 42, 0);
        assert_eq!(out.len(), 9 + 2);
        for i in 0..10u16 {
            let bit = out[9 + usize::from(i / 8)] >> (i % 8) & 1;
            assert!(super::super::values::verify(
                Area::Coil,
                42,
                3 + i,
                bit.into()
            ));
        }
        assert_eq!(out[10] >> 2, 0, "unused high bits are zero");
    }
}
