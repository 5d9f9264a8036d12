//! Notifications lost in flight are asked for again: a real `millrace run`
//! subscribes to FreeOpcUa's asyncua 2.1.0 server (tests/opcua_support/
//! server.py) through a TCP relay. Twice, the relay swallows what the
//! server sends for 300 ms (Publish answers the server sent and holds for
//! retransmission, which millrace never sees) and then cuts the
//! connection. The client reconnects; every tick the server wrote must
//! still arrive, each exactly once: the gaps in the notification numbers
//! are filled by Republish, and the monitored items' queues (1,000 deep)
//! hold what changed while the connection was down.

mod common;
mod opcua_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use millrace::sample::Quality;

/// The server's T0 (2026-01-01T00:00:00Z) in UNIX seconds.
const T0_UNIX_S: i64 = 1_767_225_600;

/// A relay from its own port to the server's that can swallow the
/// server's bytes and cut every connection.
struct Relay {
    port: u16,
    swallow: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    connections: Arc<AtomicUsize>,
}

impl Relay {
    fn start(server_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let swallow = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let relay = Relay {
            port,
            swallow: Arc::clone(&swallow),
            streams: Arc::clone(&streams),
            connections: Arc::clone(&connections),
        };
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { break };
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                connections.fetch_add(1, Ordering::Relaxed);
                streams.lock().unwrap().push(client.try_clone().unwrap());
                streams.lock().unwrap().push(server.try_clone().unwrap());
                let never = Arc::new(AtomicBool::new(false));
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    never,
                );
                pump(server, client, Arc::clone(&swallow));
            }
        });
        relay
    }

    /// Swallows the server's bytes for `for_how_long`, then cuts every
    /// connection.
    fn swallow_then_cut(&self, for_how_long: Duration) {
        self.swallow.store(true, Ordering::Relaxed);
        std::thread::sleep(for_how_long);
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.swallow.store(false, Ordering::Relaxed);
    }
}

/// Copies `from` to `to` until either closes; drops the bytes while
/// `swallow` is set.
fn pump(mut from: TcpStream, mut to: TcpStream, swallow: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 65536];
        loop {
            let n = match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if swallow.load(Ordering::Relaxed) {
                continue;
            }
            if to.write_all(&buffer[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

fn write_config(dir: &Path, port: u16, tp: &str) -> PathBuf {
    let mut text = opcua_support::config_head(tp);
    text.push_str(&format!(
        "\n\
         [[device]]\nname = \"ua\"\nprotocol = \"opcua\"\n\
         address = \"opc.tcp://127.0.0.1:{port}/\"\n\
         sampling_interval = \"10ms\"\npublishing_interval = \"50ms\"\nqueue_size = 1000\n\n\
         [[device.tag]]\nname = \"int32\"\naddress = \"ns=2;s=ua.int32\"\ntype = \"int32\"\n"
    ));
    let path = dir.join("plant.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn publish_answers_lost_with_a_connection_are_republished() {
    let dir = tempfile::tempdir().unwrap();
    let server_port = opcua_support::free_port();
    let _peer = opcua_support::start_peer(server_port, 0);
    let relay = Relay::start(server_port);
    let opcua_support::StandIn {
        tp,
        recorder,
        journal,
    } = opcua_support::stand_in(dir.path());
    let config = write_config(dir.path(), relay.port, &tp.local_addr().to_string());
    let log = dir.path().join("stderr.log");
    let mut run = opcua_support::spawn_run(&config, &log);
    let stderr = || std::fs::read_to_string(&log).unwrap_or_default();
    let rows = || recorder.lock().unwrap().rows.len();
    let mut reached = true;
    for round in 1..=2 {
        let want = rows() + 20;
        reached &= common::wait_until(Duration::from_secs(120), || rows() >= want);
        relay.swallow_then_cut(Duration::from_millis(300));
        let connections = round + 1;
        reached &= common::wait_until(Duration::from_secs(120), || {
            relay.connections.load(Ordering::Relaxed) >= connections
        });
    }
    let want = rows() + 40;
    reached &= common::wait_until(Duration::from_secs(120), || rows() >= want);
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    assert!(reached, "rows stopped arriving:\n{}", stderr());
    assert!(status.success(), "{}", stderr());
    tp.stop();

    // Every tick from the first to the last, each once, with its value.
    let mut ticks: BTreeMap<i64, usize> = BTreeMap::new();
    for row in opcua_support::journal_rows(&journal) {
        if row.quality == Quality::NO_CONNECTION.0 {
            continue;
        }
        assert_eq!(row.quality, Quality::GOOD.0, "{row:?}");
        let since = row.unix_ns - T0_UNIX_S * 1_000_000_000;
        assert_eq!(since % 1_000_000_000, 0, "{row:?}");
        let k = since / 1_000_000_000;
        assert_eq!(row.value, (-k * 1000) as f64, "{row:?}");
        *ticks.entry(k).or_default() += 1;
    }
    let (first, last) = (*ticks.keys().next().unwrap(), *ticks.keys().last().unwrap());
    let missing: Vec<i64> = (first..=last).filter(|k| !ticks.contains_key(k)).collect();
    let twice: Vec<i64> = ticks
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(k, _)| *k)
        .collect();
    assert!(
        missing.is_empty() && twice.is_empty(),
        "ticks {first}..={last}: missing {missing:?}, twice {twice:?}\n{}",
        stderr()
    );
}
