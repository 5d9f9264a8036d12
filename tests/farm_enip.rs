//! The EtherNet/IP farm: simulated Logix controllers on real sockets.
//! On the wire (with millrace's client codec): Forward Open within the
//! connection size, the Large Forward Open refused in that mode, Read Tag,
//! a Multiple Service Packet with failing reads inside, Read Tag
//! Fragmented to the end of a large array, the whole tag list, and input
//! that cannot be EtherNet/IP closing its connection while the farm serves
//! on. Through the real reader with both I/O drivers: every type, a
//! fragmented array, a missing tag and elements past an array's end, over
//! a Large Forward Open and over the fallback to a plain one; and 1,000
//! controllers on one reader thread; `millrace discover` lists the farm's
//! tags. Every value is checked against the farm's table
//! (`farm::enip::check_number`, `check_text`).
#![cfg(not(millrace_loom))]

mod common;
mod reader_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{read_samples, Want};
use millrace::config::{
    parse_enip_address, CipType, DeviceConfig, DriverConfig, EnipDevice, EnipTag, Protocol,
};
use millrace::farm::enip::emit::{farm_tags, EmitTag};
use millrace::farm::enip::table::{self, lookup, SYMBOL_COUNT};
use millrace::farm::enip::{check_number, check_text, EnipFarmOptions, FarmTag};
use millrace::farm::s7::Check;
use millrace::farm::{Farm, FarmHandle, FarmOptions, FarmProtocol, FaultRates};
use millrace::protocol::enip::cip::{self, Triad};
use millrace::protocol::enip::encap::{self, Frame, Header};
use millrace::protocol::enip::symbols::SymbolPage;
use millrace::protocol::enip::wire::Writer;
use millrace::sample::ValueKind;
use millrace::Quality;
use reader_support::*;

fn farm_with(devices: u32, enip: EnipFarmOptions, faults: FaultRates) -> FarmHandle {
    Farm::start(FarmOptions {
        devices,
        protocol: FarmProtocol::EthernetIp,
        enip,
        faults,
        ..FarmOptions::default()
    })
    .expect("start the EtherNet/IP farm")
}

fn farm(enip: EnipFarmOptions) -> FarmHandle {
    farm_with(2, enip, FaultRates::default())
}

/// A client speaking through millrace's own codec, one message at a time.
struct Client {
    stream: TcpStream,
    session: u32,
    ot_id: u32,
    sequence: u16,
}

const TRIAD: Triad = Triad {
    connection_serial: 0x1234,
    vendor_id: 0x4D52,
    originator_serial: 0xCAFE_F00D,
};

impl Client {
    fn connect(farm: &FarmHandle, device: u32) -> Client {
        let stream = TcpStream::connect(farm.addr(device).unwrap()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut client = Client {
            stream,
            session: 0,
            ot_id: 0,
            sequence: 0,
        };
        let mut buf = [0u8; 64];
        let n = encap::register_session(&mut buf, *b"farmtest");
        client.stream.write_all(&buf[..n]).unwrap();
        let (header, data) = client.frame().unwrap();
        client.session = encap::register_reply(&Frame {
            header,
            data: &data,
        })
        .unwrap();
        client
    }

    /// The next whole message; `None` once the farm closed.
    fn frame(&mut self) -> Option<(Header, Vec<u8>)> {
        let mut head = [0u8; 24];
        self.stream.read_exact(&mut head).ok()?;
        let header = Header::parse(&head).unwrap();
        let mut data = vec![0u8; usize::from(header.length)];
        self.stream.read_exact(&mut data).ok()?;
        Some((header, data))
    }

    /// Sends an unconnected request; returns the CIP reply.
    fn unconnected(&mut self, cip: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        let n = encap::send_rr_data(&mut buf, self.session, [7; 8], cip);
        self.stream.write_all(&buf[..n]).unwrap();
        let (header, data) = self.frame().expect("an answer");
        assert_eq!(header.context, [7; 8]);
        encap::unconnected_reply(
            &Frame {
                header,
                data: &data,
            },
            self.session,
        )
        .unwrap()
        .to_vec()
    }

    /// A (Large) Forward Open of `size`: the reply's general and extended
    /// status; on success the connection is the client's.
    fn forward_open(&mut self, large: bool, size: u16) -> (u8, u16) {
        let reply = self.unconnected(|w| cip::write_forward_open(w, large, TRIAD, 0x77, size, &[]));
        let reply = cip::parse_reply(&reply).unwrap();
        if reply.general == 0 {
            self.ot_id = cip::parse_forward_open_reply(reply.data, TRIAD)
                .unwrap()
                .ot_connection_id;
        }
        (reply.general, reply.extended)
    }

    /// Sends a connected request; returns the CIP reply.
    fn connected(&mut self, cip: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = vec![0u8; 8192];
        self.sequence = self.sequence.wrapping_add(1);
        let n = encap::send_unit_data(&mut buf, self.session, self.ot_id, self.sequence, cip);
        self.stream.write_all(&buf[..n]).unwrap();
        let (header, data) = self.frame().expect("an answer");
        let reply = encap::connected_reply(
            &Frame {
                header,
                data: &data,
            },
            self.session,
        )
        .unwrap();
        assert_eq!((reply.connection_id, reply.sequence), (0x77, self.sequence));
        reply.cip.to_vec()
    }
}

fn path(address: &str) -> Vec<u8> {
    let parsed = parse_enip_address(address).unwrap();
    let mut buf = vec![0u8; 256];
    let mut w = Writer::new(&mut buf);
    cip::write_symbolic_path(&mut w, &parsed);
    let n = w.len();
    buf.truncate(n);
    buf
}

fn sample(name: &str, element: u32) -> FarmTag {
    FarmTag {
        symbol: lookup(name.as_bytes()).unwrap(),
        element,
        bit: None,
    }
}

/// Checks the values of reply data of `tag`'s type from element `first`.
fn check_elements(device: u32, tag: FarmTag, data: &[u8]) -> usize {
    let width = tag.symbol.element_bytes();
    assert_eq!(data.len() % width, 0);
    for (i, bytes) in data.chunks_exact(width).enumerate() {
        let t = FarmTag {
            element: tag.element + i as u32,
            ..tag
        };
        let check = match tag.symbol.data_type {
            CipType::String => {
                let len = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
                check_text(device, &t, &bytes[4..4 + len])
            }
            CipType::DInt => check_number(
                device,
                &t,
                f64::from(i32::from_le_bytes(bytes.try_into().unwrap())),
            ),
            CipType::LReal => {
                check_number(device, &t, f64::from_le_bytes(bytes.try_into().unwrap()))
            }
            CipType::Real => check_number(
                device,
                &t,
                f64::from(f32::from_le_bytes(bytes.try_into().unwrap())),
            ),
            other => panic!("not checked here: {other}"),
        };
        assert!(matches!(check, Check::Served(Some(_))), "{t:?}: {check:?}");
    }
    data.len() / width
}

#[test]
fn forward_open_honours_the_connection_size_and_the_refused_large_one() {
    let small = farm(EnipFarmOptions {
        connection_size: 500,
        large_forward_open: true,
    });
    let mut c = Client::connect(&small, 0);
    assert_eq!(c.forward_open(true, 4002), (0x01, 0x0109));
    assert_eq!(c.forward_open(true, 500), (0, 0));
    let reply = c.connected(|w| cip::write_read_tag(w, &path("Dint_3"), 1));
    let reply = cip::parse_reply(&reply).unwrap();
    assert_eq!((reply.service, reply.general), (cip::READ_TAG, 0));
    assert_eq!(reply.data[..2], [0xC4, 0]);
    check_elements(0, sample("Dint_3", 0), &reply.data[2..]);

    let refusing = farm(EnipFarmOptions {
        connection_size: 4002,
        large_forward_open: false,
    });
    let mut c = Client::connect(&refusing, 1);
    assert_eq!(
        c.forward_open(true, 4002),
        (cip::STATUS_SERVICE_NOT_SUPPORTED, 0)
    );
    assert_eq!(c.forward_open(false, 500), (0, 0));
    let reply = c.connected(|w| cip::write_read_tag(w, &path("RealArr[7]"), 3));
    let reply = cip::parse_reply(&reply).unwrap();
    assert_eq!(reply.general, 0);
    assert_eq!(check_elements(1, sample("RealArr", 7), &reply.data[2..]), 3);
}

#[test]
fn packets_check_every_read_inside_and_fragments_reach_the_end() {
    let handle = farm(EnipFarmOptions::default());
    let mut c = Client::connect(&handle, 1);
    assert_eq!(c.forward_open(true, 4002), (0, 0));
    let reads: [(Vec<u8>, u16); 4] = [
        (path("Real_1"), 1),
        (path("NoSuchTag"), 1),
        (path("DintArr[4095]"), 2),
        (path("StrArr[5]"), 2),
    ];
    let reply = c.connected(|w| {
        cip::write_multiple(w, 4, |w, i| {
            let (p, count) = &reads[usize::from(i)];
            cip::write_read_tag(w, p, *count)
        })
    });
    let reply = cip::parse_reply(&reply).unwrap();
    assert_eq!(
        (reply.service, reply.general),
        (
            cip::MULTIPLE_SERVICE_PACKET,
            cip::STATUS_EMBEDDED_SERVICE_ERROR
        )
    );
    let packet = cip::MspReplies::parse(reply.data, 4).unwrap();
    let embedded: Vec<_> = (0..4)
        .map(|i| cip::parse_reply(packet.get(i)).unwrap())
        .collect();
    let statuses: Vec<(u8, u16)> = embedded.iter().map(|r| (r.general, r.extended)).collect();
    assert_eq!(statuses, [(0, 0), (0x05, 0), (0xFF, 0x2105), (0, 0)]);
    check_elements(1, sample("Real_1", 0), &embedded[0].data[2..]);
    assert_eq!(embedded[3].data[..4], [0xA0, 0x02, 0xCE, 0x0F]);
    assert_eq!(
        check_elements(1, sample("StrArr", 5), &embedded[3].data[4..]),
        2
    );

    // 1000 LREALs (8000 bytes) do not fit a 4002-byte connection: Read Tag
    // answers 0x06 with the whole elements that fit, and Read Tag
    // Fragmented continues from each byte offset to the end.
    let array = path("LrealArr[0]");
    let reply = c.connected(|w| cip::write_read_tag(w, &array, 1000));
    let first = cip::parse_reply(&reply).unwrap();
    assert_eq!(first.general, cip::STATUS_PARTIAL_TRANSFER);
    assert!(reply.len() <= 4000, "{}", reply.len());
    let mut offset = 0u32;
    let mut elements = 0;
    loop {
        let reply = c.connected(|w| cip::write_read_fragmented(w, &array, 1000, offset));
        let reply = cip::parse_reply(&reply).unwrap();
        assert_eq!(reply.data[..2], [0xCB, 0]);
        let data = &reply.data[2..];
        elements += check_elements(1, sample("LrealArr", offset / 8), data);
        offset += data.len() as u32;
        match reply.general {
            cip::STATUS_PARTIAL_TRANSFER => assert!(!data.is_empty()),
            0 => break,
            other => panic!("status {other:#x}"),
        }
    }
    assert_eq!(elements, 1000);
    // Past the end, and an offset past the data.
    let reply = c.connected(|w| cip::write_read_tag(w, &path("LrealArr[4000]"), 100));
    assert_eq!(cip::parse_reply(&reply).unwrap().general, 0xFF);
    let reply = c.connected(|w| cip::write_read_fragmented(w, &array, 10, 81));
    assert_eq!(cip::parse_reply(&reply).unwrap().general, 0xFF);
}

#[test]
fn the_tag_list_names_every_symbol_with_its_type() {
    let handle = farm(EnipFarmOptions::default());
    let mut c = Client::connect(&handle, 0);
    assert_eq!(c.forward_open(true, 4002), (0, 0));
    let mut start = 0u32;
    let mut names = Vec::new();
    let mut pages = 0;
    loop {
        let reply = c.connected(|w| cip::write_symbol_list(w, None, start));
        let reply = cip::parse_reply(&reply).unwrap();
        let page = SymbolPage::from_reply(&reply).expect("a tag list page");
        for symbol in page.symbols().unwrap() {
            let symbol = symbol.unwrap();
            let name = symbol.name_text().unwrap().to_string();
            let known = table::symbol_at(symbol.instance).unwrap();
            assert_eq!(lookup(name.as_bytes()), Some(known), "{name}");
            assert_eq!(symbol.symbol_type, known.symbol_type(), "{name}");
            if known.shape != table::Shape::Scalar {
                assert_eq!(
                    u32::from(symbol.element_count().unwrap()),
                    known.element_count()
                );
            }
            start = symbol.instance + 1;
            names.push(name);
        }
        pages += 1;
        if !page.more {
            break;
        }
    }
    assert!(pages > 1, "the list spans pages");
    assert_eq!(names.len() as u32, SYMBOL_COUNT - 1);
    for name in ["Bool_0", "Str_63", "LrealArr", "Bits_7", "UlintArr"] {
        assert!(names.iter().any(|n| n == name), "{name}");
    }
}

#[test]
fn what_cannot_be_enip_closes_its_connection_and_the_farm_serves_on() {
    let handle = farm(EnipFarmOptions::default());
    let closed = |bytes: &[u8]| {
        let mut s = TcpStream::connect(handle.addr(0).unwrap()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(bytes).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(&mut buf).unwrap_or(0), 0, "{bytes:?}");
    };
    // A length far past any message, SendUnitData with no session, an
    // unknown command.
    let mut long = [0u8; 24];
    long[..4].copy_from_slice(&[0x6F, 0, 0xFF, 0xFF]);
    closed(&long);
    let mut buf = [0u8; 256];
    let n = encap::send_unit_data(&mut buf, 5, 1, 1, |w| w.bytes(&[0x4C, 0]));
    closed(&buf[..n]);
    let mut unknown = [0u8; 24];
    unknown[0] = 0x99;
    closed(&unknown);
    // Registered, but no connection yet: SendUnitData closes too.
    let mut c = Client::connect(&handle, 0);
    let n = encap::send_unit_data(&mut buf, c.session, 1, 1, |w| w.bytes(&[0x4C, 0]));
    c.stream.write_all(&buf[..n]).unwrap();
    assert!(c.frame().is_none());
    // Hostile bytes after a Forward Open never hurt the farm.
    let mut seed = 0x1234_5678_u64;
    for _ in 0..50 {
        let mut c = Client::connect(&handle, 1);
        assert_eq!(c.forward_open(true, 4002), (0, 0));
        let mut junk = [0u8; 40];
        for b in junk.iter_mut() {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *b = (seed >> 33) as u8;
        }
        let n = encap::send_unit_data(&mut buf, c.session, c.ot_id, 1, |w| w.bytes(&junk[..20]));
        assert!(n > 0);
        c.stream.write_all(&buf[..n]).unwrap();
        // An answer (an error status, most often) or a close.
        let _ = c.frame();
    }
    let mut c = Client::connect(&handle, 0);
    assert_eq!(c.forward_open(true, 4002), (0, 0));
    let reply = c.connected(|w| cip::write_read_tag(w, &path("Dint_9"), 1));
    check_elements(
        0,
        sample("Dint_9", 0),
        &cip::parse_reply(&reply).unwrap().data[2..],
    );
    assert!(handle.counters().framing_errors >= 4);
}

fn enip_tag(name: &str, address: &str, data_type: CipType, count: u16) -> EnipTag {
    EnipTag {
        count,
        ..EnipTag::new(name, parse_enip_address(address).unwrap(), data_type)
    }
}

/// What a sample must be: a farm value, or a bad quality.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Farm(u32, FarmTag),
    Bad(Quality),
}

fn device(name: &str, port: u16, size: u16, tags: Vec<EnipTag>) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        protocol: Protocol::EthernetIp,
        address: format!("127.0.0.1:{port}"),
        poll_interval: Duration::from_millis(50),
        timeout: Duration::from_secs(2),
        max_inflight: 1,
        driver: DriverConfig::EthernetIp(EnipDevice {
            route: vec![],
            connection_size: size,
            tags,
        }),
    }
}

/// The emitted layout of `samples` plus `extra`, as tags and expectations.
fn layout(
    prefix: &str,
    farm_device: u32,
    samples: usize,
    extra: &[(EmitTag, Option<Quality>)],
) -> (Vec<EnipTag>, Vec<Expect>) {
    let mut tags = Vec::new();
    let mut expects = Vec::new();
    let emitted = farm_tags(samples).into_iter().map(|t| (t, None));
    for (j, (tag, bad)) in emitted.chain(extra.iter().cloned()).enumerate() {
        tags.push(enip_tag(
            &format!("{prefix}{j}"),
            &tag.address,
            tag.data_type,
            tag.count,
        ));
        expects.extend((0..u32::from(tag.count)).map(|i| match bad {
            Some(q) => Expect::Bad(q),
            None => Expect::Farm(farm_device, tag.sample(i)),
        }));
    }
    (tags, expects)
}

fn value_of(want: &Want) -> f64 {
    match *want {
        Want::Value(ValueKind::I64, bits) => bits as i64 as f64,
        Want::Value(ValueKind::U64 | ValueKind::Bool, bits) => bits as f64,
        Want::Value(ValueKind::F64, bits) => f64::from_bits(bits),
        ref other => panic!("not a number: {other:?}"),
    }
}

/// Every sample read is what its expectation says; returns the good ones.
fn check_run(rows: &[(usize, Want)], expects: &[Expect]) -> usize {
    let mut good = 0;
    for (id, got) in rows {
        match (expects[*id], got) {
            (Expect::Bad(q), Want::Bad(got)) => assert_eq!(*got, q, "sample {id}"),
            (Expect::Farm(device, tag), Want::Text(text)) => {
                let check = check_text(device, &tag, text.as_bytes());
                assert!(
                    matches!(check, Check::Served(_)),
                    "sample {id} {tag:?}: {text}"
                );
                good += 1;
            }
            (Expect::Farm(device, tag), want @ Want::Value(..)) => {
                let check = check_number(device, &tag, value_of(want));
                assert!(
                    matches!(check, Check::Served(_)),
                    "sample {id} {tag:?}: {want:?}"
                );
                good += 1;
            }
            (expect, got) => panic!("sample {id}: {got:?}, expected {expect:?}"),
        }
    }
    good
}

/// The reader, both drivers, against two farms: one granting the Large
/// Forward Open of 4002 bytes (everything in Multiple Service Packets, the
/// 1000 LREALs fragmented), one refusing it (the session falls back to a
/// Forward Open of 500). Every type, a bit of a DINT, BOOL arrays,
/// STRINGs; a missing tag is 0x05 and elements past the end 0xFF/0x2105,
/// while every other tag of the device stays good.
#[test]
fn the_reader_reads_every_type_over_both_forward_opens_with_both_drivers() {
    let large = farm(EnipFarmOptions::default());
    let refusing = farm(EnipFarmOptions {
        connection_size: 4002,
        large_forward_open: false,
    });
    let extra = [
        (
            EmitTag {
                address: "LrealArr[100]".into(),
                data_type: CipType::LReal,
                count: 1000,
                first: sample("LrealArr", 100),
            },
            None,
        ),
        (
            EmitTag {
                address: "NoSuchTag".into(),
                data_type: CipType::DInt,
                count: 1,
                first: sample("Dint_0", 0),
            },
            Some(Quality::cip(0x05, 0)),
        ),
        (
            EmitTag {
                address: "IntArr[4095]".into(),
                data_type: CipType::Int,
                count: 3,
                first: sample("IntArr", 0),
            },
            Some(Quality::cip(0xFF, 0x2105)),
        ),
    ];
    for backend in BACKENDS {
        let (tags_a, expects_a) = layout("a", 0, 400, &extra);
        let (tags_b, expects_b) = layout("b", 1, 400, &extra);
        let first_b = expects_a.len();
        let devices = vec![
            device("large", large.addr(0).unwrap().port(), 4002, tags_a),
            device("fallback", refusing.addr(1).unwrap().port(), 4002, tags_b),
        ];
        let expects: Vec<Expect> = expects_a.into_iter().chain(expects_b).collect();
        let run = run_until(
            backend,
            specs(devices),
            RunOptions::default(),
            |_, samples| {
                let cycles = |id: usize| {
                    samples
                        .iter()
                        .filter(|s| s.tag_id().0 as usize == id)
                        .count()
                };
                cycles(0) >= 4 && cycles(first_b) >= 4
            },
        );
        let rows = read_samples(&run.samples);
        let good = check_run(&rows, &expects);
        assert!(good >= 3 * 2 * 1400, "{backend:?}: {good} good samples");
        let c = run.counters;
        assert_eq!(
            (c.malformed, c.timeouts, c.disconnects),
            (0, 0, 0),
            "{backend:?}: {c:#?}"
        );
    }
}

/// 1,000 controllers on one reader thread, both drivers: every device
/// connects and delivers values that check.
#[test]
fn a_thousand_controllers_on_one_reader_thread_with_both_drivers() {
    const DEVICES: u32 = 1_000;
    const SAMPLES: usize = 20;
    let handle = farm_with(DEVICES, EnipFarmOptions::default(), FaultRates::default());
    for backend in BACKENDS {
        let mut devices = Vec::new();
        let mut expects = Vec::new();
        for d in 0..DEVICES {
            let (tags, e) = layout(&format!("c{d}."), d, SAMPLES, &[]);
            let mut config = device(&format!("c{d}"), handle.addr(d).unwrap().port(), 4002, tags);
            config.poll_interval = Duration::from_millis(500);
            config.timeout = Duration::from_secs(10);
            devices.push(config);
            expects.extend(e);
        }
        let options = RunOptions {
            ring_slots: 1 << 18,
            drain_pause: Duration::from_millis(20),
            deadline: Duration::from_secs(120),
        };
        let mut good_per_device = vec![0u32; DEVICES as usize];
        let mut seen = 0usize;
        let run = run_until(backend, specs(devices), options, |_, samples| {
            for s in &samples[seen..] {
                if s.quality == 0 {
                    good_per_device[s.tag_id().0 as usize / SAMPLES] += 1;
                }
            }
            seen = samples.len();
            good_per_device.iter().all(|&n| n >= 2 * SAMPLES as u32)
        });
        assert_eq!(run.connected_at_end, u64::from(DEVICES), "{backend:?}");
        let rows = read_samples(&run.samples);
        let good = check_run(&rows, &expects);
        assert!(good >= 2 * SAMPLES * DEVICES as usize, "{backend:?}");
        let c = run.counters;
        assert_eq!(c.malformed, 0, "{backend:?}: {c:#?}");
    }
}

/// `millrace discover` lists a farm controller's tags from its tag list:
/// every symbol but the STRING array (millrace reads one STRING per tag),
/// a BOOL array as its bits, each row a tag the farm serves.
#[test]
fn discover_lists_the_farms_tags() {
    let handle = farm(EnipFarmOptions::default());
    let dir = std::env::temp_dir().join(format!("millrace-farm-enip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("tags.csv");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["discover", "--protocol", "ethernet-ip"])
        .arg(handle.addr(1).unwrap().to_string())
        .arg("--out")
        .arg(&csv)
        .output()
        .unwrap();
    let context = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{context}");
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    // Every symbol (no BoolArr), less StrArr.
    assert_eq!(rows.len() as u32, SYMBOL_COUNT - 2, "{context}");
    for row in [
        "Bits_0,Bits_0,bool,64",
        "Str_63,Str_63,string,1",
        "LrealArr,LrealArr,lreal,4096",
    ] {
        assert!(rows.contains(&row), "{row}: {context}");
    }
    for row in rows {
        let address = row.split(',').nth(1).unwrap();
        assert!(lookup(address.as_bytes()).is_some(), "{row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
