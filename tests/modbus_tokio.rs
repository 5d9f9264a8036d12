//! tokio-modbus 0.17 as an independent encoder and decoder: the request
//! bytes its client puts on a real socket must equal ours, its public PDU
//! decoders must read our request PDUs as the same reads, and it must decode
//! the same response frames to the same registers and bits as we do.

use std::io::{Read, Write};
use std::net::TcpListener;

use millrace::config::{Area, DataType, WordOrder};
use millrace::protocol::modbus::{
    check_response, decode_samples, Payload, PlannedTag, ReadRequest,
};
use millrace::{Sample, TagId};
use proptest::prelude::*;
use tokio_modbus::bytes::Bytes;
use tokio_modbus::prelude::*;

/// Runs one tokio-modbus read against a listener on 127.0.0.1 that records
/// the request ADU and answers with exception 2 (so the client returns).
fn capture_tokio_request(area: Area, start: u16, quantity: u16, unit: u8) -> Vec<u8> {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        let mut adu = [0u8; 12];
        socket.read_exact(&mut adu).unwrap();
        let answer = [adu[0], adu[1], 0, 0, 0, 3, adu[6], adu[7] | 0x80, 2];
        socket.write_all(&answer).unwrap();
        adu.to_vec()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut ctx = tokio_modbus::client::tcp::connect_slave(address, Slave(unit))
            .await
            .unwrap();
        let exception = match area {
            Area::Coil => ctx.read_coils(start, quantity).await.unwrap().unwrap_err(),
            Area::Discrete => ctx
                .read_discrete_inputs(start, quantity)
                .await
                .unwrap()
                .unwrap_err(),
            Area::Holding => ctx
                .read_holding_registers(start, quantity)
                .await
                .unwrap()
                .unwrap_err(),
            Area::Input => ctx
                .read_input_registers(start, quantity)
                .await
                .unwrap()
                .unwrap_err(),
        };
        assert_eq!(exception, ExceptionCode::IllegalDataAddress);
    });
    server.join().unwrap()
}

#[test]
fn request_bytes_equal_tokio_modbus_on_the_wire() {
    let cases = [
        (Area::Coil, 19, 19, 1),
        (Area::Discrete, 196, 22, 0x11),
        (Area::Holding, 107, 3, 0xFF),
        (Area::Input, 8, 1, 0),
        (Area::Holding, 0, 125, 7),
        (Area::Coil, 63_000, 2000, 2),
        (Area::Input, 65_535, 1, 3),
    ];
    for (area, start, quantity, unit) in cases {
        let theirs = capture_tokio_request(area, start, quantity, unit);
        let transaction_id = u16::from_be_bytes([theirs[0], theirs[1]]);
        let ours = ReadRequest::new(area, start, quantity)
            .unwrap()
            .encode_tcp(transaction_id, unit);
        assert_eq!(ours.to_vec(), theirs, "{area:?} {start} {quantity}");
    }
}

fn tokio_request(pdu: &[u8]) -> Request<'static> {
    Request::try_from(Bytes::copy_from_slice(pdu)).expect("tokio-modbus decodes our PDU")
}

proptest! {
    #[test]
    fn tokio_modbus_reads_our_request_pdus_as_the_same_reads(
        area in prop_oneof![Just(Area::Coil), Just(Area::Discrete), Just(Area::Holding),
                            Just(Area::Input)],
        start in any::<u16>(),
        quantity in 1u16..=2000,
    ) {
        let Ok(request) = ReadRequest::new(area, start, quantity) else {
            return Ok(());
        };
        let expected = match area {
            Area::Coil => Request::ReadCoils(start, quantity),
            Area::Discrete => Request::ReadDiscreteInputs(start, quantity),
            Area::Holding => Request::ReadHoldingRegisters(start, quantity),
            Area::Input => Request::ReadInputRegisters(start, quantity),
        };
        prop_assert_eq!(tokio_request(&request.pdu()), expected);
    }

    #[test]
    fn register_responses_decode_like_tokio_modbus(
        registers in proptest::collection::vec(any::<u16>(), 1..=125),
        input in any::<bool>(),
    ) {
        let area = if input { Area::Input } else { Area::Holding };
        let quantity = registers.len() as u16;
        let mut pdu = vec![area.function_code(), (2 * registers.len()) as u8];
        for r in &registers {
            pdu.extend_from_slice(&r.to_be_bytes());
        }
        let theirs = match Response::try_from(Bytes::copy_from_slice(&pdu)).unwrap() {
            Response::ReadHoldingRegisters(v) | Response::ReadInputRegisters(v) => v,
            other => panic!("{other:?}"),
        };
        let request = ReadRequest::new(area, 0, quantity).unwrap();
        let Payload::Data(data) = check_response(&request, &pdu).unwrap() else {
            panic!("not data")
        };
        let tags: Vec<PlannedTag> = (0..quantity).map(|i| uint16(i, i)).collect();
        let mut out = vec![Sample::default(); tags.len()];
        decode_samples(area, &tags, data, 0, &mut out);
        let ours: Vec<u16> = out.iter().map(|s| s.value as u16).collect();
        prop_assert_eq!(ours, theirs);
    }

    #[test]
    fn bit_responses_decode_like_tokio_modbus(
        bits in proptest::collection::vec(any::<bool>(), 1..=2000),
        discrete in any::<bool>(),
    ) {
        let area = if discrete { Area::Discrete } else { Area::Coil };
        let mut data = vec![0u8; bits.len().div_ceil(8)];
        for (i, &b) in bits.iter().enumerate() {
            data[i / 8] |= u8::from(b) << (i % 8);
        }
        let mut pdu = vec![area.function_code(), data.len() as u8];
        pdu.extend_from_slice(&data);
        let theirs = match Response::try_from(Bytes::copy_from_slice(&pdu)).unwrap() {
            Response::ReadCoils(v) | Response::ReadDiscreteInputs(v) => v,
            other => panic!("{other:?}"),
        };
        let request = ReadRequest::new(area, 0, bits.len() as u16).unwrap();
        let Payload::Data(data) = check_response(&request, &pdu).unwrap() else {
            panic!("not data")
        };
        let tags: Vec<PlannedTag> = (0..bits.len() as u16).map(|i| uint16(i, i)).collect();
        let mut out = vec![Sample::default(); tags.len()];
        decode_samples(area, &tags, data, 0, &mut out);
        let ours: Vec<bool> = out.iter().map(|s| s.value == 1).collect();
        // tokio-modbus returns every bit of the last byte; the quantity is ours to know.
        prop_assert_eq!(&ours[..], &theirs[..bits.len()]);
    }
}

fn uint16(tag: u16, offset: u16) -> PlannedTag {
    PlannedTag {
        tag: TagId(tag.into()),
        offset,
        data_type: DataType::Uint16,
        order: WordOrder::Abcd,
        bit: None,
        length: 0,
        scale: 1.0,
        value_offset: 0.0,
        scaled: false,
    }
}
