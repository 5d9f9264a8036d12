//! The metrics endpoint of a real `millrace run` (farm and tickerplant
//! stand-in on 127.0.0.1) keeps answering scrapes while 500 idle
//! connections and 20 slow-loris connections (one header byte a second) are
//! open, and closes the idle and trickling ones itself. The hand-written
//! endpoint this replaced served one connection at a time: 500 idle ones
//! filled its accept backlog and every scrape after them hung or was reset.

mod common;
mod fault_proc_support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{metric_in, try_scrape, wait_until};
use fault_proc_support::{tickerplant, Delivered, Plant, PlantSpec, Run};

const IDLE_CONNECTIONS: usize = 500;
const SLOW_LORIS_CONNECTIONS: usize = 20;
/// Scraping goes on past the endpoint's 10 s head timeout, so the slow
/// clients are cut off (and the accept loop busy) while scrapes run.
const SCRAPING_FOR: Duration = Duration::from_secs(14);
/// What a slow-loris client trickles, one byte a second: never a full head.
const SLOW_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaa";

#[test]
fn scrapes_succeed_through_idle_and_slow_loris_connections() {
    let delivered = Delivered::shared(5, 20);
    let tp = tickerplant("127.0.0.1:0", &delivered, None);
    let spec = PlantSpec {
        devices: 5,
        tags: 20,
        metrics: true,
        ..PlantSpec::default()
    };
    let plant = Plant::start(&tp.local_addr().to_string(), spec);
    let run = Run::spawn(&plant.config, &plant.dir.path().join("run.log"), &[]);
    let addr = run.metrics_addr();
    assert!(
        wait_until(Duration::from_secs(30), || {
            try_scrape(&addr)
                .and_then(|text| metric_in(&text, "millrace_samples_total"))
                .is_some_and(|samples| samples > 0.0)
        }),
        "the run never reported samples: {}",
        run.log_text()
    );

    let idle: Vec<TcpStream> = (0..IDLE_CONNECTIONS)
        .map(|_| TcpStream::connect(&addr).expect("open an idle connection"))
        .collect();
    let mut slow: Vec<TcpStream> = (0..SLOW_LORIS_CONNECTIONS)
        .map(|_| TcpStream::connect(&addr).expect("open a slow connection"))
        .collect();

    let started = Instant::now();
    let mut scrapes = 0;
    let mut slow_sent = 0;
    while started.elapsed() < SCRAPING_FOR {
        // One more header byte on every slow connection each second.
        if started.elapsed() >= Duration::from_secs(slow_sent as u64) {
            let byte = &SLOW_HEAD[slow_sent % SLOW_HEAD.len()..][..1];
            for s in &mut slow {
                let _ = s.write_all(byte);
            }
            slow_sent += 1;
        }
        let text = try_scrape(&addr).unwrap_or_else(|| {
            panic!(
                "scrape {} failed with {IDLE_CONNECTIONS} idle and {SLOW_LORIS_CONNECTIONS} \
                 slow connections open",
                scrapes + 1
            )
        });
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(text.ends_with("# EOF\n"), "an exposition cut short: {text}");
        assert!(
            metric_in(&text, "millrace_samples_total").is_some(),
            "{text}"
        );
        scrapes += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(scrapes >= 10, "only {scrapes} scrapes ran");

    // The endpoint closes what never completes a request (bounded wait).
    for (what, streams) in [("idle", idle), ("slow", slow)] {
        for (index, mut s) in streams.into_iter().enumerate() {
            assert!(
                closed_by_peer(&mut s, Duration::from_secs(60)),
                "{what} connection {index} was never closed by the endpoint"
            );
        }
    }

    let (status, log) = run.stop();
    assert!(status.success(), "millrace run: {status}\n{log}");
}

/// True once a read sees end of file or a reset: the server closed it.
fn closed_by_peer(s: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or 431 answer may precede the close.
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}
