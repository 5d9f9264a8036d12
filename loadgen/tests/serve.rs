//! `millrace-loadgen serve` as a user runs it: ports printed, the emitted
//! config written, devices answering, and a clean stop on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn serve_prints_ports_answers_and_stops_on_sigterm() {
    let dir = std::env::temp_dir().join(format!("millrace-loadgen-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("farm.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_millrace-loadgen"))
        .args([
            "serve",
            "--devices",
            "3",
            "--tags-per-device",
            "5",
            "--base-port",
            "0",
        ])
        .arg("--emit-config")
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
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
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.starts_with("stopped: 1 requests")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
