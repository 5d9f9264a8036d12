//! A farm with several Modbus devices behind each port, as behind a
//! serial-to-TCP gateway (`FarmOptions::units_per_port`), seen by a
//! raw-socket client on 127.0.0.1: the ports and addresses, each unit
//! answering exactly as its device does on a port of its own, exception
//! 0x0B for any other unit id, pipelined requests for several units, and
//! the emitted config.
#![cfg(not(millrace_loom))]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use millrace::farm::{
    self, adu, emit_farm_config_layout, EmitOptions, Farm, FarmHandle, FarmOptions, FarmProtocol,
    FaultRates, PortLayout, S7EmitOptions,
};

/// Every blocking read in these tests gives up after this (no hangs).
const READ_TIMEOUT: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream
}

fn port_addr(handle: &FarmHandle, port_index: usize) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], handle.ports()[port_index]))
}

fn request(tid: u16, unit: u8, fc: u8, start: u16, quantity: u16) -> Vec<u8> {
    let mut v = tid.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 6, unit, fc]);
    v.extend_from_slice(&start.to_be_bytes());
    v.extend_from_slice(&quantity.to_be_bytes());
    v
}

/// One whole answer ADU, as its MBAP header frames it.
fn read_adu(stream: &mut TcpStream) -> Vec<u8> {
    let mut adu = vec![0u8; 7];
    stream.read_exact(&mut adu).unwrap();
    let length = usize::from(u16::from_be_bytes([adu[4], adu[5]]));
    assert!((2..=254).contains(&length), "MBAP length {length}");
    adu.resize(6 + length, 0);
    stream.read_exact(&mut adu[7..]).unwrap();
    adu
}

/// (transaction, unit, function, exception code) of an exception answer.
fn exception_of(adu: &[u8]) -> (u16, u8, u8, u8) {
    assert_eq!(adu.len(), 9, "an exception answer: {adu:?}");
    (u16::from_be_bytes([adu[0], adu[1]]), adu[6], adu[7], adu[8])
}

fn gateway(devices: u32, units_per_port: u32) -> FarmHandle {
    Farm::start(FarmOptions {
        devices,
        units_per_port,
        ..FarmOptions::default()
    })
    .unwrap()
}

#[test]
fn six_devices_three_per_port_listen_on_two_ports() {
    let handle = gateway(6, 3);
    assert_eq!(handle.ports().len(), 2);
    assert_ne!(handle.ports()[0], handle.ports()[1]);
    for device in 0..6u32 {
        let port = handle.ports()[device as usize / 3];
        assert_eq!(
            handle.addr(device),
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        );
        assert_eq!(handle.unit_id(device), Some(device as u8 % 3 + 1));
    }
    assert_eq!(handle.addr(6), None);
    assert_eq!(handle.unit_id(6), None);
    assert_eq!(handle.layout(), PortLayout::new(6, 3).unwrap());
    // The last port may hold fewer units than the others.
    let ragged = gateway(7, 3);
    assert_eq!(ragged.ports().len(), 3);
    assert_eq!(ragged.addr(6).unwrap().port(), ragged.ports()[2]);
}

/// Unit 2 on port 1 is device 4: with exception faults drawn from the same
/// seed, it gives byte for byte what device 4 of a farm with a port per
/// device gives, while units 1 and 3 of the same connection are read in
/// between (each unit keeps its own counter and fault generator).
#[test]
fn a_unit_answers_exactly_as_its_device_on_a_port_of_its_own() {
    let faults = FaultRates {
        exception: 0.3,
        ..FaultRates::default()
    };
    let options = |units_per_port| FarmOptions {
        devices: 6,
        units_per_port,
        faults,
        seed: 5,
        ..FarmOptions::default()
    };
    let shared = Farm::start(options(3)).unwrap();
    let own = Farm::start(options(1)).unwrap();
    let mut gateway_port = connect(port_addr(&shared, 1));
    let mut device_4 = connect(own.addr(4).unwrap());
    let mut device_3 = connect(own.addr(3).unwrap());
    let mut exceptions = 0;
    for tid in 0..40u16 {
        let (fc, start, quantity) = [(3u8, 0u16, 125u16), (4, 7, 9), (1, 3, 20)][tid as usize % 3];
        gateway_port
            .write_all(&request(tid, 2, fc, start, quantity))
            .unwrap();
        device_4
            .write_all(&request(tid, 2, fc, start, quantity))
            .unwrap();
        let answer = read_adu(&mut gateway_port);
        assert_eq!(answer, read_adu(&mut device_4), "tid {tid}");
        exceptions += usize::from(answer[7] & 0x80 != 0);
        // Unit 1 (device 3) moves its own counter, not device 4's.
        gateway_port.write_all(&request(tid, 1, 3, 0, 2)).unwrap();
        device_3.write_all(&request(tid, 1, 3, 0, 2)).unwrap();
        assert_eq!(read_adu(&mut gateway_port), read_adu(&mut device_3));
    }
    assert!((4..=25).contains(&exceptions), "{exceptions} faults of 40");
    // A farm with a port per device still echoes any unit id.
    device_4.write_all(&request(99, 200, 3, 0, 1)).unwrap();
    let answer = read_adu(&mut device_4);
    assert_eq!((answer[6], answer[7]), (200, 3), "{answer:?}");
}

#[test]
fn a_unit_id_no_device_answers_to_gets_exception_0x0b() {
    let handle = gateway(6, 3);
    let mut stream = connect(port_addr(&handle, 1));
    for (tid, unit) in [(1u16, 4u8), (2, 0), (3, 255), (4, 247)] {
        stream.write_all(&request(tid, unit, 3, 0, 1)).unwrap();
        assert_eq!(
            exception_of(&read_adu(&mut stream)),
            (tid, unit, 0x83, adu::EXCEPTION_GATEWAY_TARGET_FAILED),
            "unit {unit}"
        );
    }
    // The connection stays up and the port's units still answer.
    stream.write_all(&request(5, 3, 3, 0, 1)).unwrap();
    let answer = read_adu(&mut stream);
    let value = u16::from_be_bytes([answer[9], answer[10]]);
    assert!(farm::verify_register(5, 0, value), "device 5 behind unit 3");
    // A ragged last port: device 6 alone, so unit 2 is nobody.
    let ragged = gateway(7, 3);
    let mut last = connect(port_addr(&ragged, 2));
    last.write_all(&request(6, 2, 4, 0, 1)).unwrap();
    assert_eq!(
        exception_of(&read_adu(&mut last)),
        (6, 2, 0x84, adu::EXCEPTION_GATEWAY_TARGET_FAILED)
    );
    let counters = handle.stop().unwrap();
    assert_eq!(counters.unknown_unit_exceptions, 4);
    assert_eq!(counters.data_responses, 1);
    assert_eq!(counters.protocol_exceptions, 0);
    assert_eq!(ragged.stop().unwrap().unknown_unit_exceptions, 1);
}

#[test]
fn pipelined_requests_for_three_units_in_one_write_are_answered_in_order() {
    let handle = gateway(6, 3);
    let mut stream = connect(port_addr(&handle, 1));
    let mut segment = Vec::new();
    for (tid, unit) in [(0x0101u16, 1u8), (0x0202, 2), (0x0303, 3)] {
        segment.extend(request(tid, unit, 3, 10, 20));
    }
    stream.write_all(&segment).unwrap();
    for (tid, unit) in [(0x0101u16, 1u8), (0x0202, 2), (0x0303, 3)] {
        let answer = read_adu(&mut stream);
        assert_eq!(u16::from_be_bytes([answer[0], answer[1]]), tid);
        assert_eq!((answer[6], answer[7], answer[8]), (unit, 3, 40));
        let device = 3 + u32::from(unit) - 1;
        for (address, pair) in (10u16..).zip(answer[9..].chunks(2)) {
            let value = u16::from_be_bytes([pair[0], pair[1]]);
            assert!(farm::verify_register(device, address, value), "unit {unit}");
            assert_eq!(farm::counter_of(value), 0, "each unit's first answer");
        }
    }
    let counters = handle.stop().unwrap();
    assert_eq!(
        (counters.requests, counters.data_responses),
        (3, 3),
        "{counters:?}"
    );
    assert_eq!(counters.connections_accepted, 1);
}

#[test]
fn the_emitted_config_polls_each_device_as_its_unit_at_its_port() {
    let handle = gateway(6, 3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.toml");
    let options = EmitOptions {
        tags_per_device: 4,
        ..EmitOptions::default()
    };
    let s7 = S7EmitOptions::default();
    let enip = Default::default();
    let (ports, layout) = (handle.ports(), handle.layout());
    emit_farm_config_layout(
        &path,
        ports,
        layout,
        FarmProtocol::Modbus,
        &options,
        &s7,
        &enip,
    )
    .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let tables: Vec<&str> = text.split("[[device]]").skip(1).collect();
    assert_eq!(tables.len(), 6, "{text}");
    for (device, table) in (0u32..).zip(&tables) {
        let port = ports[device as usize / 3];
        let unit = device % 3 + 1;
        for line in [
            format!("name = \"farm-{device:05}\""),
            format!("address = \"127.0.0.1:{port}\""),
            format!("unit_id = {unit}\n"),
        ] {
            assert!(table.contains(&line), "device {device}: {line} in {table}");
        }
    }
    let csv = std::fs::read_to_string(dir.path().join("plant-tags/farm-00004.csv")).unwrap();
    assert!(
        csv.contains("\nd00004.hr00003,holding,3,uint16,ABCD,1,0\n"),
        "{csv}"
    );
    let config = millrace::config::load(&path).unwrap_or_else(|e| panic!("rejected: {e}"));
    for (device, dc) in (0u32..).zip(&config.devices) {
        let at = (dc.address.as_str(), dc.modbus_part().unwrap().unit_id);
        let addr = handle.addr(device).unwrap().to_string();
        assert_eq!(at, (addr.as_str(), handle.unit_id(device).unwrap()));
    }

    // The ports of another layout, or another protocol, are refused.
    for (ports, layout, protocol) in [
        (&ports[..1], layout, FarmProtocol::Modbus),
        (ports, PortLayout::one_per_port(6), FarmProtocol::Modbus),
        (ports, layout, FarmProtocol::S7),
    ] {
        let refused = emit_farm_config_layout(&path, ports, layout, protocol, &options, &s7, &enip);
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}

#[test]
fn units_per_port_is_modbus_only_and_a_unit_id_range() {
    let refused = |options: FarmOptions| match Farm::start(options) {
        Ok(_) => panic!("accepted"),
        Err(e) => e.to_string(),
    };
    for protocol in [
        FarmProtocol::S7,
        FarmProtocol::Mixed,
        FarmProtocol::EthernetIp,
        FarmProtocol::Opcua,
    ] {
        let why = refused(FarmOptions {
            devices: 4,
            units_per_port: 2,
            protocol,
            ..FarmOptions::default()
        });
        assert!(why.contains("serial-to-TCP gateway"), "{protocol}: {why}");
    }
    for units_per_port in [0, 248] {
        let why = refused(FarmOptions {
            devices: 4,
            units_per_port,
            ..FarmOptions::default()
        });
        assert!(why.contains("1..=247"), "{why}");
    }
    // 247 units behind one port, the most a gateway addresses.
    let handle = gateway(300, 247);
    assert_eq!(handle.ports().len(), 2);
    let mut stream = connect(port_addr(&handle, 1));
    stream.write_all(&request(1, 53, 3, 0, 1)).unwrap();
    let answer = read_adu(&mut stream);
    let value = u16::from_be_bytes([answer[9], answer[10]]);
    assert!(farm::verify_register(299, 0, value));
}
