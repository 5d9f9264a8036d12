//! `millrace-loadgen serve` as a user runs it: ports printed, the emitted
//! config written, devices answering, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The ports `serve` prints before `ready`.
fn ready_ports(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Vec<u16> {
    let mut ports: Vec<u16> = Vec::new();
    for line in lines.by_ref().take(10) {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("ports ") {
            ports = rest.split(' ').map(|p| p.parse().unwrap()).collect();
        }
        if line == "ready" {
            break;
        }
    }
    ports
}

/// A `serve` child started with `args` (words split at white space) and
/// `--emit-config DIR/farm.toml`
/// (DIR a fresh directory named after `name`), once it printed its ports:
/// (DIR, the config path, the child, its remaining stdout lines, the ports).
fn serve(
    name: &str,
    args: &str,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
    Vec<u16>,
) {
    let dir = std::env::temp_dir().join(format!(
        "millrace-loadgen-serve-{name}-{}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("farm.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"))
        .arg("serve")
        .args(args.split_whitespace())
        .arg("--emit-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ports = ready_ports(&mut lines);
    (dir, config, child, lines, ports)
}

/// SIGTERM, then a clean exit within a bounded wait.
fn stop_on_sigterm(child: &mut std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn serve_prints_ports_answers_and_stops_on_sigterm() {
    let (dir, config, mut child, lines, ports) =
        serve("modbus", "--devices 3 --tags-per-device 5 --base-port 0");
    assert_eq!(ports.len(), 3, "ports line");
    let text = std::fs::read_to_string(&config).unwrap();
    for port in &ports {
        assert!(text.contains(&format!("address = \"127.0.0.1:{port}\"")));
    }

    let mut stream = TcpStream::connect(("127.0.0.1", ports[2])).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(&[0, 9, 0, 0, 0, 6, 1, 3, 0, 0, 0, 5])
        .unwrap();
    let mut answer = [0u8; 9 + 10];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..9], &[0, 9, 0, 0, 0, 13, 1, 3, 10]);
    for (address, pair) in (0u16..).zip(answer[9..].chunks(2)) {
        let value = u16::from_be_bytes([pair[0], pair[1]]);
        assert!(millrace::farm::verify_register(2, address, value));
    }

    stop_on_sigterm(&mut child);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.starts_with("stopped: 1 requests")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --protocol s7`: an S7 client connects, sets up and reads; the
/// emitted config holds S7 device tables and tags CSVs.
#[test]
fn serve_s7_answers_s7_and_emits_an_s7_config() {
    let (dir, config, mut child, _lines, ports) = serve(
        "s7",
        "--protocol s7 --devices 2 --tags-per-device 50 --base-port 0 --pdu-size 480 --slot 2",
    );
    assert_eq!(ports.len(), 2, "ports line");
    let text = std::fs::read_to_string(&config).unwrap();
    for key in ["protocol = \"s7\"", "slot = 2", "pdu_size = 480"] {
        assert_eq!(text.matches(key).count(), 2, "{key} in {text}");
    }
    let csv = std::fs::read_to_string(dir.join("farm-tags/farm-00001.csv")).unwrap();
    assert_eq!(csv.lines().count(), 51);
    assert!(csv.starts_with("name,address,type,scale,offset\nd00001.s00000,DB1.DBX0.0,bool,1,0\n"));

    let mut stream = TcpStream::connect(("127.0.0.1", ports[1])).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // CR to rack 0 slot 2, then Setup Communication asking for 960.
    stream
        .write_all(&[
            3, 0, 0, 22, 17, 0xE0, 0, 0, 0, 1, 0, 0xC0, 1, 0x0A, 0xC1, 2, 1, 0, 0xC2, 2, 3, 2,
        ])
        .unwrap();
    let mut cc = [0u8; 22];
    stream.read_exact(&mut cc).unwrap();
    assert_eq!(cc[5], 0xD0);
    stream
        .write_all(&[
            3, 0, 0, 25, 2, 0xF0, 0x80, 0x32, 1, 0, 0, 0, 1, 0, 8, 0, 0, 0xF0, 0, 0, 1, 0, 1, 0x03,
            0xC0,
        ])
        .unwrap();
    let mut setup = [0u8; 27];
    stream.read_exact(&mut setup).unwrap();
    assert_eq!(u16::from_be_bytes([setup[25], setup[26]]), 480);
    // Read Var: DB1.DBW2 (a WORD), checked against the farm's memory.
    stream
        .write_all(&[
            3, 0, 0, 31, 2, 0xF0, 0x80, 0x32, 1, 0, 0, 0, 2, 0, 14, 0, 0, 0x04, 1, 0x12, 0x0A,
            0x10, 0x02, 0, 2, 0, 1, 0x84, 0, 0, 16,
        ])
        .unwrap();
    let mut answer = [0u8; 4 + 3 + 12 + 2 + 4 + 2];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[21..25], &[0xFF, 0x04, 0, 16]);
    let mut expected = [0u8; 2];
    millrace::farm::s7::memory::fill(1, millrace::config::S7Area::Db(1), 2, 0, &mut expected);
    assert_eq!(&answer[25..], &expected);

    stop_on_sigterm(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --protocol ethernet-ip`, with a 500-byte connection size and the
/// Large Forward Open refused: a client registers a session; the emitted
/// config asks for what the farm grants and its CSVs hold the layout.
#[test]
fn serve_ethernet_ip_answers_and_emits_an_ethernet_ip_config() {
    let (dir, config, mut child, _lines, ports) = serve(
        "enip",
        "--protocol ethernet-ip --devices 2 --tags-per-device 40 --base-port 0 \
         --connection-size 500 --refuse-large-forward-open",
    );
    assert_eq!(ports.len(), 2, "ports line");
    let text = std::fs::read_to_string(&config).unwrap();
    for key in ["protocol = \"ethernet-ip\"", "connection_size = 500"] {
        assert_eq!(text.matches(key).count(), 2, "{key} in {text}");
    }
    assert!(
        text.contains("\"text\""),
        "a text column for STRINGs: {text}"
    );
    let csv = std::fs::read_to_string(dir.join("farm-tags/farm-00001.csv")).unwrap();
    assert!(
        csv.starts_with("name,address,type,count\nd00001.e00000,Bool_0,bool,1\n"),
        "{csv}"
    );
    let samples: u32 = csv
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u32>().unwrap())
        .sum();
    assert_eq!(samples, 40);
    millrace::config::load(&config).expect("the emitted config loads");

    let mut stream = TcpStream::connect(("127.0.0.1", ports[1])).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut register = [0u8; 28];
    let n = millrace::protocol::enip::encap::register_session(&mut register, *b"loadgen!");
    stream.write_all(&register[..n]).unwrap();
    let mut reply = [0u8; 28];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(reply[..2], [0x65, 0]);
    assert_ne!(reply[4..8], [0, 0, 0, 0], "a session handle");
    assert_eq!(reply[12..20], *b"loadgen!");

    stop_on_sigterm(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --protocol opcua` with a 50 ms change interval: the emitted
/// config subscribes at that interval, its CSVs name the farm's NodeIds
/// and types, it loads, and the servers' changes show in the rate lines.
#[test]
fn serve_opcua_emits_a_subscribing_config_and_changes_its_values() {
    let (dir, config, mut child, mut lines, ports) = serve(
        "opcua",
        "--protocol opcua --devices 2 --tags-per-device 16 --base-port 0 --change-interval-ms 50",
    );
    assert_eq!(ports.len(), 2, "ports line");
    let text = std::fs::read_to_string(&config).unwrap();
    for key in [
        "protocol = \"opcua\"",
        "mode = \"subscribe\"",
        "sampling_interval = \"50ms\"",
        "publishing_interval = \"50ms\"",
    ] {
        assert_eq!(text.matches(key).count(), 2, "{key} in {text}");
    }
    assert!(
        text.contains(&format!("address = \"opc.tcp://127.0.0.1:{}/\"", ports[1])),
        "{text}"
    );
    assert!(
        text.contains("\"text\""),
        "a text column for strings: {text}"
    );
    let csv = std::fs::read_to_string(dir.join("farm-tags/farm-00001.csv")).unwrap();
    assert!(
        csv.starts_with(
            "name,address,type\nd00001.u00000,ns=2;i=1,double\nd00001.u00001,ns=2;i=2,int32\n\
             d00001.u00002,ns=2;i=3,boolean\nd00001.u00003,ns=2;i=4,string[8]\n"
        ),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 17, "{csv}");
    millrace::config::load(&config).expect("the emitted config loads");
    // A rate line with value changes: 2 devices x 16 variables every 50 ms.
    let changing = lines.by_ref().take(10).map(Result::unwrap).find(|l| {
        l.starts_with("rate:")
            && l.split_whitespace()
                .nth(3)
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|n| n > 0.0)
    });
    assert!(changing.is_some(), "no rate line with changes");
    stop_on_sigterm(&mut child);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `serve --units-per-port 2`: four Modbus devices behind two ports, each
/// answering as its unit id there; the emitted config polls each device as
/// its unit at its port's address. Another protocol is refused.
#[test]
fn serve_units_per_port_puts_devices_behind_shared_ports() {
    let (dir, config, mut child, _lines, ports) = serve(
        "units",
        "--devices 4 --units-per-port 2 --tags-per-device 5 --base-port 0",
    );
    assert_eq!(ports.len(), 2, "one port per two devices");
    let text = std::fs::read_to_string(&config).unwrap();
    let tables: Vec<&str> = text.split("[[device]]").skip(1).collect();
    assert_eq!(tables.len(), 4, "{text}");
    for (device, table) in tables.iter().enumerate() {
        let address = format!("address = \"127.0.0.1:{}\"", ports[device / 2]);
        let unit = format!("unit_id = {}\n", device % 2 + 1);
        assert!(table.contains(&address) && table.contains(&unit), "{table}");
    }

    // Unit 2 on the second port is device 3; unit 3 is nobody (0x0B).
    let mut stream = TcpStream::connect(("127.0.0.1", ports[1])).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut both = vec![0, 7, 0, 0, 0, 6, 2, 3, 0, 0, 0, 5];
    both.extend_from_slice(&[0, 8, 0, 0, 0, 6, 3, 3, 0, 0, 0, 5]);
    stream.write_all(&both).unwrap();
    let mut answer = [0u8; 9 + 10];
    stream.read_exact(&mut answer).unwrap();
    assert_eq!(&answer[..9], &[0, 7, 0, 0, 0, 13, 2, 3, 10]);
    for (address, pair) in (0u16..).zip(answer[9..].chunks(2)) {
        let value = u16::from_be_bytes([pair[0], pair[1]]);
        assert!(millrace::farm::verify_register(3, address, value));
    }
    let mut refused = [0u8; 9];
    stream.read_exact(&mut refused).unwrap();
    assert_eq!(refused, [0, 8, 0, 0, 0, 3, 3, 0x83, 0x0B]);
    stop_on_sigterm(&mut child);
    let _ = std::fs::remove_dir_all(&dir);

    let s7 = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"))
        .args(["serve", "--protocol", "s7", "--devices", "4"])
        .args([
            "--units-per-port",
            "2",
            "--tags-per-device",
            "5",
            "--base-port",
            "0",
        ])
        .output()
        .unwrap();
    assert!(!s7.status.success());
    let stderr = String::from_utf8_lossy(&s7.stderr);
    assert!(stderr.contains("serial-to-TCP gateway"), "{stderr}");
}
