//! What the configuration accepts: the documented defaults, the example plant
//! (through `load` and through `millrace check-config`), an Excel-style tag
//! CSV, and secrets that are read but never shown.

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
