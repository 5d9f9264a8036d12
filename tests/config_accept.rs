//! What the configuration accepts: the documented defaults, the example plants
//! (Modbus and S7, through `load` and through `millrace check-config`),
//! Excel-style tag CSVs, every S7 device key and address form, and secrets
//! that are read but never shown.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use millrace::config::*;
use millrace::protocol::modbus::plan_device;
use millrace::TagId;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs")
        .join(name)
}

fn load_ok(path: &Path) -> Config {
    match load(path) {
        Ok(config) => {
            config.assert_invariants();
            config
        }
        Err(e) => panic!("{} was rejected: {e}", path.display()),
    }
}

fn check_config(path: &Path, env: Option<(&str, &str)>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_millrace"));
    command
        .arg("check-config")
        .arg(path)
        .env_remove("MILLRACE_TEST_KDB_PASSWORD");
    if let Some((key, value)) = env {
        command.env(key, value);
    }
    command
        .output()
        .unwrap_or_else(|e| panic!("cannot run millrace: {e}"))
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = load_ok(&fixture("minimal.toml"));
    assert_eq!(c.source, fixture("minimal.toml"));
    assert_eq!((c.readers.threads, c.readers.cores.len()), (1, 0));
    assert_eq!(
        (c.readers.backend, c.readers.ring_slots),
        (Backend::Auto, 65536)
    );
    // Relative to the config file's directory, not the working directory.
    assert_eq!(c.wal.dir, fixture("wal"));
    assert_eq!((c.wal.segment_size, c.wal.quota), (64 << 20, 16 << 30));
    assert_eq!(
        (c.wal.commit_interval, c.wal.commit_bytes),
        (Duration::from_millis(10), 8 << 20)
    );
    assert_eq!(
        (c.wal.when_full, c.wal.sync),
        (WhenFull::Block, SyncMode::Data)
    );
    assert_eq!(
        c.metrics.listen,
        Some(SocketAddr::from(([127, 0, 0, 1], 9187)))
    );
    let sink = &c.sinks[0];
    assert_eq!(
        (sink.kind, sink.time_type),
        (SinkKind::Kdb, TimeType::Timespan)
    );
    assert_eq!(
        (sink.batch_rows, sink.batch_age),
        (10_000, Duration::from_millis(5))
    );
    assert_eq!((sink.user.as_str(), sink.password.expose()), ("", ""));
    let d = &c.devices[0];
    let m = d.modbus_part().unwrap();
    assert_eq!(
        (d.protocol, m.unit_id, d.timeout),
        (Protocol::ModbusTcp, 1, Duration::from_secs(1))
    );
    assert_eq!(
        (m.max_registers, m.max_bits, m.max_hole, d.max_inflight),
        (125, 2000, 0, 1)
    );
    let t = &m.tags[0];
    assert_eq!(
        (t.area, t.address, t.data_type),
        (Area::Holding, 100, DataType::Float32)
    );
    assert_eq!(
        (t.order, t.bit, t.scale, t.offset),
        (WordOrder::Abcd, None, 1.0, 0.0)
    );
}

/// Tags in the example, counted from the files themselves: one per
/// `[[device.tag]]` header plus one per non-empty CSV line after the header.
fn count_example_tags(toml: &Path) -> usize {
    let text = std::fs::read_to_string(toml).unwrap_or_default();
    let csv = std::fs::read_to_string(toml.with_file_name("tags.csv")).unwrap_or_default();
    let in_toml = text
        .lines()
        .filter(|l| l.trim() == "[[device.tag]]")
        .count();
    let in_csv = csv.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    in_toml + in_csv
}

#[test]
fn example_plant_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plant.toml");
    let c = load_ok(&path);
    let tag_count = count_example_tags(&path);
    assert!(tag_count >= 200, "a few hundred tags, found {tag_count}");
    assert_eq!(c.tag_count(), tag_count);
    assert!((4..=6).contains(&c.devices.len()));
    assert_eq!(c.sinks.len(), 1);
    assert!(c
        .devices
        .iter()
        .any(|d| d.protocol == Protocol::ModbusRtuTcp));
    let modbus_tags = || {
        c.devices
            .iter()
            .flat_map(|d| d.modbus_part().unwrap().tags.iter().map(move |t| (d, t)))
    };
    let mut areas: Vec<Area> = modbus_tags().map(|(_, t)| t.area).collect();
    areas.sort();
    areas.dedup();
    assert_eq!(areas.len(), 4, "every area used");
    let types: std::collections::HashSet<&str> =
        modbus_tags().map(|(_, t)| t.data_type.name()).collect();
    assert!(types.len() >= 8, "{types:?}");

    let output = check_config(&path, None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains(&format!("devices: {}\n", c.devices.len())),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("tags: {tag_count}\n")), "{stdout}");
    let per_second: f64 = c
        .devices
        .iter()
        .map(|d| d.tag_count() as f64 / d.poll_interval.as_secs_f64())
        .sum();
    assert!(
        stdout.contains(&format!("expected samples per second: {per_second:.1}\n")),
        "{stdout}"
    );
    // Requests per cycle come from the Modbus planner: at least one per
    // (device, area) in use, at most one per tag.
    let requests: usize = (0..c.devices.len())
        .map(|i| {
            plan_device(c.devices[i].modbus_part().unwrap(), c.first_tag(i))
                .requests
                .len()
        })
        .sum();
    let mut device_areas: Vec<(&str, Area)> = modbus_tags()
        .map(|(d, t)| (d.name.as_str(), t.area))
        .collect();
    device_areas.sort();
    device_areas.dedup();
    assert!(
        requests >= device_areas.len() && requests <= tag_count,
        "{requests}"
    );
    assert!(
        stdout.contains(&format!("requests per poll cycle: {requests}\n")),
        "{stdout}"
    );
    for d in &c.devices {
        assert!(stdout.contains(&format!("  {} ", d.name)), "{stdout}");
    }
}

#[test]
fn excel_style_csv() {
    let c = load_ok(&fixture("csv_excel.toml"));
    let tags = &c.devices[0].modbus_part().unwrap().tags;
    // One TOML tag, then the five CSV rows; the all-empty row is skipped.
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    let expected = [
        "press01.temp",
        "line.speed",
        "line.count",
        "line.temp",
        "line.ready",
        "line.batch",
    ];
    assert_eq!(names, expected);
    assert_eq!(
        (tags[1].area, tags[1].address, tags[1].data_type),
        (Area::Input, 0, DataType::Float32)
    );
    assert_eq!(tags[2].order, WordOrder::Cdab);
    assert_eq!((tags[3].scale, tags[3].offset), (0.1, -40.0));
    assert_eq!((tags[4].area, tags[4].bit), (Area::Holding, Some(3)));
    assert_eq!(
        (tags[5].data_type, tags[5].length, tags[5].order),
        (DataType::String, 8, WordOrder::Badc)
    );
}

#[test]
fn tag_ids_follow_configuration_order() {
    let c = load_ok(&Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/plant.toml"));
    let mut expected = 0u32;
    for (i, d) in c.devices.iter().enumerate() {
        assert_eq!(c.first_tag(i), TagId(expected));
        expected += d.tag_count() as u32;
    }
    assert_eq!(c.first_tag(c.devices.len()), TagId(expected));
    let ids: Vec<u32> = c.tags().map(|(id, _, _)| id.0).collect();
    assert_eq!(ids, (0..expected).collect::<Vec<_>>());
}

const FILE_SECRET: &str = "hunter2-from-file";

#[test]
fn password_file_is_read_and_never_shown() {
    let c = load_ok(&fixture("secret_file.toml"));
    // The file's one trailing newline is not part of the password.
    assert_eq!(c.sinks[0].password.expose(), FILE_SECRET);
    assert!(!format!("{c:?}").contains("hunter2"));
    assert!(!Summary::new(&c).to_string().contains("hunter2"));
    let output = check_config(&fixture("secret_file.toml"), None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout.contains("password set (hidden)"), "{stdout}");
    assert!(!stdout.contains("hunter2"), "{stdout}");
}

#[test]
fn password_env_is_read_and_never_shown() {
    let secret = "pw-from-env-9Xq";
    let output = check_config(
        &fixture("secret_env.toml"),
        Some(("MILLRACE_TEST_KDB_PASSWORD", secret)),
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("user feed password set (hidden)"),
        "{stdout}"
    );
    assert!(!stdout.contains(secret), "{stdout}");

    let output = check_config(&fixture("secret_env.toml"), None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1));
    let fragment = "key `sink[0].password_env`: environment variable `MILLRACE_TEST_KDB_PASSWORD`";
    assert!(
        stderr.contains(fragment) && stderr.contains("is not set"),
        "{stderr}"
    );

    // The same through `parse_with`, without touching this process's environment.
    let text = std::fs::read_to_string(fixture("secret_env.toml")).unwrap_or_default();
    let mut sources = MemorySources::default();
    sources
        .env
        .insert("MILLRACE_TEST_KDB_PASSWORD".into(), secret.into());
    match parse_with(&text, &fixture("secret_env.toml"), &sources) {
        Ok(c) => {
            assert_eq!(c.sinks[0].password.expose(), secret);
            assert!(!format!("{c:?}").contains(secret));
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn an_error_never_quotes_a_password() {
    // secret.txt is named as the password file and, by mistake, as the tag
    // CSV: the CSV error would quote its first line, which is the password.
    let path = fixture("secret_leak.toml");
    let error = match load(&path) {
        Ok(_) => panic!("secret_leak.toml was accepted"),
        Err(e) => e,
    };
    let message = error.to_string();
    assert_eq!(
        (error.line(), error.csv_column()),
        (Some(1), Some("***")),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");
    let output = check_config(&path, None);
    assert_eq!(output.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
}

#[test]
fn parse_str_does_no_io() {
    // The CSV exists on disk, but parse_str must not read it.
    let path = fixture("csv_excel.toml");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    match parse_str(&text, &path) {
        Ok(_) => panic!("parse_str read a file"),
        Err(e) => {
            assert_eq!(e.key(), Some("device[0].tags_csv"));
            assert!(e.to_string().contains("cannot read"), "{e}");
        }
    }
    let minimal = std::fs::read_to_string(fixture("minimal.toml")).unwrap_or_default();
    assert!(parse_str(&minimal, &fixture("minimal.toml")).is_ok());
}

// ---------------------------------------------------------------- S7

fn s7(device: &DeviceConfig) -> &S7Device {
    device
        .s7_part()
        .unwrap_or_else(|| panic!("{} is not an S7 device", device.name))
}

#[test]
fn s7_defaults_are_the_documented_ones() {
    let c = load_ok(&fixture("s7_minimal.toml"));
    let d = &c.devices[0];
    // The port is 102 when the address names none.
    assert_eq!(
        (d.protocol, d.address.as_str()),
        (Protocol::S7, "10.0.0.7:102")
    );
    assert_eq!((d.timeout, d.max_inflight), (Duration::from_secs(1), 1));
    let s = s7(d);
    assert_eq!(
        (s.rack, s.slot, s.connection_type),
        (0, 1, S7ConnectionType::Pg)
    );
    assert_eq!((s.pdu_size, s.max_hole), (960, 4));
    assert_eq!((s.local_tsap, s.remote_tsap), (0x0100, None));
    // PG (1) << 8 | rack 0 * 32 + slot 1.
    assert_eq!(s.remote_tsap(), 0x0101);
    let t = &s.tags[0];
    assert_eq!(
        (t.area, t.byte, t.bit, t.data_type),
        (S7Area::Db(10), 0, 0, S7Type::Real)
    );
    assert_eq!((t.scale, t.offset), (1.0, 0.0));
}

#[test]
fn s7_every_device_key() {
    let c = load_ok(&fixture("s7_every_key.toml"));
    let [a, b, h, basic] = &c.devices[..] else {
        panic!("four devices expected");
    };
    assert_eq!(a.address, "10.0.0.7:1102");
    assert_eq!((a.timeout, a.max_inflight), (Duration::from_millis(250), 4));
    let s = s7(a);
    assert_eq!(
        (s.rack, s.slot, s.connection_type),
        (1, 3, S7ConnectionType::Op)
    );
    assert_eq!((s.pdu_size, s.local_tsap, s.max_hole), (480, 0x1000, 16));
    // OP (2) << 8 | rack 1 * 32 + slot 3.
    assert_eq!(s.remote_tsap(), 0x0223);
    // A bracketed IPv6 address gets the port too; TSAPs as TIA writes them.
    assert_eq!(b.address, "[fd00::7]:102");
    assert_eq!(
        (s7(b).local_tsap, s7(b).remote_tsap),
        (0x0300, Some(0x0200))
    );
    assert_eq!(s7(b).remote_tsap(), 0x0200);
    // TSAPs as TOML integers.
    assert_eq!(h.address, "plc-2.plant.local:102");
    assert_eq!((s7(h).local_tsap, s7(h).remote_tsap()), (0x0200, 0x0302));
    assert_eq!((s7(h).pdu_size, s7(h).max_hole), (240, 0));
    assert_eq!(s7(basic).connection_type, S7ConnectionType::Basic);
    assert_eq!(
        (s7(basic).local_tsap, s7(basic).remote_tsap()),
        (256, 0x0301)
    );
    let t = &s7(basic).tags[0];
    assert_eq!((t.scale, t.offset), (2.0, -1.5));
}

#[test]
fn s7_every_address_form_and_type() {
    use S7Area::*;
    let c = load_ok(&fixture("s7_forms.toml"));
    let tags = &s7(&c.devices[0]).tags;
    let got: Vec<(S7Area, u32, u8, S7Type)> = tags
        .iter()
        .map(|t| (t.area, t.byte, t.bit, t.data_type))
        .collect();
    let expected = [
        (Db(10), 4, 3, S7Type::Bool),
        (Db(10), 4, 0, S7Type::Byte),
        (Db(10), 6, 0, S7Type::Int),
        (Db(10), 8, 0, S7Type::Real),
        (Merker, 0, 1, S7Type::Bool),
        (Merker, 2, 0, S7Type::SInt),
        (Merker, 2, 0, S7Type::Word),
        (Merker, 4, 0, S7Type::DInt),
        (Inputs, 0, 0, S7Type::Bool),
        (Inputs, 0, 1, S7Type::Bool),
        (Inputs, 1, 0, S7Type::USInt),
        (Inputs, 2, 0, S7Type::Char),
        (Inputs, 4, 0, S7Type::UInt),
        (Inputs, 6, 0, S7Type::S5Time),
        (Inputs, 8, 0, S7Type::UDInt),
        (Inputs, 12, 0, S7Type::Time),
        (Outputs, 0, 1, S7Type::Bool),
        (Outputs, 0, 2, S7Type::Bool),
        (Outputs, 1, 0, S7Type::Byte),
        (Outputs, 2, 0, S7Type::Byte),
        (Outputs, 4, 0, S7Type::Int),
        (Outputs, 6, 0, S7Type::Int),
        (Outputs, 8, 0, S7Type::DWord),
        (Outputs, 12, 0, S7Type::Real),
        (Db(7), 100, 0, S7Type::LReal),
        (Merker, 10, 0, S7Type::LInt),
        (Db(7), 108, 0, S7Type::ULInt),
        (Db(7), 116, 0, S7Type::DateAndTime),
        (Db(7), 124, 0, S7Type::Dtl),
        (Db(7), 136, 0, S7Type::String(20)),
        (Db(7), 158, 0, S7Type::WString(341)),
        (Db(7), 900, 0, S7Type::String(254)),
        (Db(7), 1200, 7, S7Type::Bool),
        (Db(65535), 2_097_148, 0, S7Type::Real),
        // The bytes of tag 3 again, as a dword: S7 tags may overlap.
        (Db(10), 8, 0, S7Type::DWord),
    ];
    assert_eq!(got, expected);
}

#[test]
fn s7_tags_from_an_excel_csv() {
    let c = load_ok(&fixture("s7_csv.toml"));
    let tags = &s7(&c.devices[0]).tags;
    // The TOML tag, then the rows in file order; the all-empty row skipped.
    let names: Vec<&str> = tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cell07.speed",
            "st01.torque",
            "st01.busy",
            "st01.temp",
            "st01.serial"
        ]
    );
    assert_eq!((tags[1].area, tags[1].byte), (S7Area::Db(101), 4));
    assert_eq!((tags[2].data_type, tags[2].bit), (S7Type::Bool, 1));
    assert_eq!((tags[3].scale, tags[3].offset), (0.1, -40.0));
    assert_eq!((tags[4].byte, tags[4].data_type), (20, S7Type::String(20)));
}

#[test]
fn example_s7_line_is_accepted() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/s7-line.toml");
    let c = load_ok(&path);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let csv = std::fs::read_to_string(path.with_file_name("s7-tags.csv")).unwrap_or_default();
    let tag_count = text
        .lines()
        .filter(|l| l.trim() == "[[device.tag]]")
        .count()
        + csv.lines().skip(1).filter(|l| !l.trim().is_empty()).count();
    assert_eq!(c.tag_count(), tag_count);
    assert!(c.devices.iter().all(|d| d.protocol == Protocol::S7));
    // Every area and every size letter is used.
    let tags: Vec<&S7Tag> = c.devices.iter().flat_map(|d| &s7(d).tags).collect();
    for area in [S7Area::Merker, S7Area::Inputs, S7Area::Outputs] {
        assert!(tags.iter().any(|t| t.area == area), "{area}");
    }
    assert!(tags.iter().any(|t| t.data_type.is_text()));

    let output = check_config(&path, None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(&format!("tags: {tag_count}\n")), "{stdout}");
    let per_second: f64 = c
        .devices
        .iter()
        .map(|d| d.tag_count() as f64 / d.poll_interval.as_secs_f64())
        .sum();
    let line = format!("  s7: {} device(s), {tag_count} tags, ", c.devices.len());
    assert!(stdout.contains(&line), "{stdout}");
    assert!(
        stdout.contains(&format!(", {per_second:.1} samples/s\n")),
        "{stdout}"
    );
    for d in &c.devices {
        let s = s7(d);
        let settings = format!(
            "  {} s7 {} tsap {:#06x}->{:#06x} ",
            d.name,
            d.address,
            s.local_tsap,
            s.remote_tsap()
        );
        assert!(stdout.contains(&settings), "{settings}\n{stdout}");
    }
}

// ---------------------------------------------------------------- EtherNet/IP

fn enip(device: &DeviceConfig) -> &EnipDevice {
    device
        .enip_part()
        .unwrap_or_else(|| panic!("{} is not an EtherNet/IP device", device.name))
}

#[test]
fn enip_defaults_are_the_documented_ones() {
    let c = load_ok(&fixture("enip_minimal.toml"));
    let d = &c.devices[0];
    // The port is 44818 when the address names none.
    assert_eq!(
        (d.protocol, d.address.as_str()),
        (Protocol::EthernetIp, "10.0.0.8:44818")
    );
    assert_eq!((d.timeout, d.max_inflight), (Duration::from_secs(1), 1));
    let e = enip(d);
    assert_eq!((e.route.len(), e.connection_size), (0, 4002));
    let t = &e.tags[0];
    assert_eq!(
        (t.address.to_string(), t.data_type, t.count),
        ("Speed".to_string(), CipType::Real, 1)
    );
    assert_eq!((t.scale, t.offset), (1.0, 0.0));
}

#[test]
fn enip_every_key_and_tags_from_a_csv() {
    let c = load_ok(&fixture("enip_every_key.toml"));
    let d = &c.devices[0];
    assert_eq!(d.address, "10.0.0.8:44819");
    assert_eq!((d.timeout, d.max_inflight), (Duration::from_secs(2), 4));
    let e = enip(d);
    let route: Vec<String> = e.route.iter().map(ToString::to_string).collect();
    assert_eq!((route, e.connection_size), (vec!["1,0".to_string()], 500));
    let got: Vec<(&str, String, CipType, u16, f64, f64)> = e
        .tags
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.address.to_string(),
                t.data_type,
                t.count,
                t.scale,
                t.offset,
            )
        })
        .collect();
    let expected = vec![
        (
            "line2.temps",
            "Program:Main.Temps".into(),
            CipType::Real,
            200,
            1.0,
            0.0,
        ),
        ("line2.flag", "Flags.5".into(), CipType::Bool, 1, 1.0, 0.0),
        (
            "line2.matrix",
            "Matrix[1,2]".into(),
            CipType::DInt,
            1,
            0.5,
            -1.0,
        ),
        (
            "line2.name",
            "Line[3].Name".into(),
            CipType::String,
            1,
            1.0,
            0.0,
        ),
        (
            "line2.alarms",
            "Alarms[3]".into(),
            CipType::Bool,
            40,
            1.0,
            0.0,
        ),
        (
            "line2.counter",
            "Program:Main.Counter".into(),
            CipType::UDInt,
            1,
            1.0,
            0.0,
        ),
        ("line2.raw", "Raw".into(), CipType::Int, 1, 0.1, -40.0),
    ];
    assert_eq!(got, expected);
    assert_eq!(e.tags[1].address.bit, Some(5));
    // An array is one sample per element, named NAME[i].
    assert_eq!(d.tag_count(), 200 + 1 + 1 + 1 + 40 + 1 + 1);
    let names = d.sample_names();
    assert_eq!(
        (&*names[0], &*names[199]),
        ("line2.temps[0]", "line2.temps[199]")
    );
    assert_eq!(&*names[200], "line2.flag");
    // check-config: the device's own settings and its planned requests (the
    // 800-byte array fragmented at 500 bytes, the rest in one packet).
    let output = check_config(&fixture("enip_every_key.toml"), None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "line2-logix ethernet-ip 10.0.0.8:44819 path 1,0 connection_size 500 poll 250ms \
             timeout 2s inflight 4: 245 tags, 2 requests/cycle"
        ),
        "{stdout}"
    );
}

// ---------------------------------------------------------------- gateways

#[test]
fn modbus_units_behind_one_address_share_one_connection() {
    let device = |name: &str, protocol: &str, address: &str, unit: u8, interval: &str| {
        format!(
            "\n[[device]]\nname = \"{name}\"\nprotocol = \"{protocol}\"\naddress = \"{address}\"\n\
             unit_id = {unit}\npoll_interval = \"{interval}\"\n\n[[device.tag]]\n\
             name = \"{name}.t\"\narea = \"holding\"\naddress = 0\ntype = \"uint16\"\n"
        )
    };
    let mut text = String::from(
        "[wal]\ndir = \"wal\"\n\n[[sink]]\nname = \"tp\"\nkind = \"kdb\"\n\
         address = \"127.0.0.1:5010\"\ntable = \"plc\"\n",
    );
    for d in [
        device("gw-a", "modbus-tcp", "10.0.0.5:502", 1, "1s"),
        device("other", "modbus-tcp", "10.0.0.6:502", 1, "1s"),
        device("gw-b", "modbus-tcp", "10.0.0.5:502", 2, "1s"),
        // Another poll interval: a connection of its own.
        device("gw-fast", "modbus-tcp", "10.0.0.5:502", 3, "100ms"),
        // Another framing on the same address: a connection of its own.
        device("gw-rtu", "modbus-rtu-tcp", "10.0.0.5:502", 4, "1s"),
        device("gw-c", "modbus-tcp", "10.0.0.5:502", 5, "1s"),
    ] {
        text.push_str(&d);
    }
    let config = match parse_str(&text, Path::new("gateway.toml")) {
        Ok(config) => config,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        config.connections(),
        vec![vec![0, 2, 5], vec![1], vec![3], vec![4]]
    );
    // A reader gets each connection whole, its devices with their own tags.
    let shards = millrace::reader::shard_devices(&config, 2);
    let gateway = &shards[0][0];
    assert_eq!(gateway.name(), "gw-a+2");
    let shared: Vec<(&str, u32)> = gateway
        .shared_with
        .iter()
        .map(|(d, first)| (d.name.as_str(), first.0))
        .collect();
    assert_eq!(shared, [("gw-b", 2), ("gw-c", 5)]);
    assert_eq!(
        (shards[1][0].name(), shards[0][1].name()),
        ("other".into(), "gw-fast".into())
    );
    let summary = Summary::new(&config).to_string();
    assert!(summary.contains("connections: 4\n"), "{summary}");
    assert!(
        summary.contains(
            "  10.0.0.5:502 modbus-tcp poll 1s: one connection for 3 devices (gw-a .. gw-c), \
             inflight 1\n"
        ),
        "{summary}"
    );
}
