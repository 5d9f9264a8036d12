//! Helpers every kind of test needs the same way: the peer Python, a child
//! `millrace` process (signals, a bounded wait for its exit, the WAL's
//! durable end), bounded polling, reading the metrics endpoint, a tmpfs
//! that really fills, replaying a fuzz corpus, and reading back what a
//! reader wrote (a sample or a text as one `Want`).
//!
//! Every wait here is bounded; nothing asserts a timing.

#![allow(dead_code)] // each test file uses a different part

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// The Python interpreter of the independent peers: `MILLRACE_PEER_PYTHON`,
/// or the venv `scripts/setup-peers.sh` builds. Missing fails the test
/// (tests never skip a peer).
pub fn peer_python() -> PathBuf {
    let path = std::env::var_os("MILLRACE_PEER_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers-venv/bin/python")
        });
    assert!(
        path.exists(),
        "peer Python {} is missing: run scripts/setup-peers.sh or set MILLRACE_PEER_PYTHON \
         (tests never skip a peer)",
        path.display()
    );
    path
}

/// A loopback port that nothing listens on now, for a peer, a stand-in or a
/// kdb+ that a test starts on it later (or leaves down for a while).
///
/// Not one the kernel hands out for port 0 or as a connection's source port
/// (32768-60999 by default): between this call and the bind, a test beside
/// this one that binds port 0 or connects somewhere could be given the same
/// port, and this test's peer would then fail to bind, or its client would
/// talk to the other test's server. Ports are taken in turn from a block of
/// 20000-31999 chosen by the process id (test binaries of a workspace run
/// one after another, but other programs may hold ports), each checked free
/// when taken.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base = 20_000 + (std::process::id() % 24) as u16 * 500;
    for _ in 0..500 {
        let port = base + NEXT.fetch_add(1, Ordering::Relaxed) % 500;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {base}..{}", base + 500)
}

/// `127.0.0.1:` and a `free_port`, for a stand-in or peer that a test starts
/// there later (or never): never a port bound at 0 and dropped, which the
/// kernel may meanwhile give a connection as its source port.
pub fn free_address() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Sends `sig` with kill(1): no unsafe libc call in tests.
pub fn signal(pid: u32, sig: i32) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill(1)");
    assert!(status.success(), "kill -{sig} {pid} failed");
}

/// The child's exit status; kills it and panics after `limit` (a hang).
pub fn wait_exit(child: &mut Child, limit: Duration) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the millrace process did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `f` every 20 ms until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `millrace wal inspect --json DIR`, parsed.
pub fn inspect(wal: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["wal", "inspect", "--json"])
        .arg(wal)
        .output()
        .expect("run millrace wal inspect");
    assert!(
        out.status.success(),
        "wal inspect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("inspect JSON")
}

/// The durable end of the WAL (every lower seq is durable).
pub fn durable_seq(wal: &Path) -> u64 {
    inspect(wal)["durable_seq"]
        .as_u64()
        .expect("durable_seq in inspect --json")
}

/// The metrics endpoint's whole answer (status line, headers, body) to one
/// `GET /metrics` over HTTP/1.0; `None` if it could not be had.
pub fn try_scrape(addr: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text)
}

/// As [`try_scrape`], failing the test if the endpoint does not answer.
pub fn scrape(addr: &str) -> String {
    try_scrape(addr).unwrap_or_else(|| panic!("no answer from the metrics endpoint {addr}"))
}

/// The value of the first sample in `text` named exactly `key`, where `key`
/// is a name (`millrace_frames_total`) or a name with its labels as the
/// endpoint writes them (`millrace_sink_lag_samples{sink="tp"}`). A bare
/// name also matches the first series of a labelled metric.
pub fn metric_in(text: &str, key: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?;
        if !(rest.starts_with(' ') || rest.starts_with('{')) {
            return None;
        }
        rest.rsplit(' ').next()?.parse().ok()
    })
}

/// One metric, scraped now; `None` if the endpoint or the metric is missing.
pub fn metric(addr: &str, key: &str) -> Option<f64> {
    metric_in(&try_scrape(addr)?, key)
}

/// The metrics address `millrace run` logged (`metrics on http://ADDR/metrics`).
pub fn metrics_addr_in(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let rest = l.split("metrics on http://").nth(1)?;
        Some(rest.trim_end_matches("/metrics").to_string())
    })
}

/// A tmpfs mounted for the life of the value: a disk that really fills.
/// Mounting needs root (the tests run as root, here and in CI); without it
/// the test fails with a message that says so, it never skips.
pub struct Tmpfs {
    pub path: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    pub fn mount(bytes: u64) -> Tmpfs {
        let parent = tempfile::tempdir().unwrap();
        let path = parent.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount(8)");
        assert!(
            status.success(),
            "mounting a {bytes}-byte tmpfs failed ({status}): this test needs root \
             (CI runs the suite as root)"
        );
        Tmpfs {
            path,
            _parent: parent,
        }
    }

    /// Bytes free on the file system, from df(1).
    pub fn free_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&self.path)
            .output()
            .expect("run df(1)");
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// The cargo-fuzz corpus directory of `target` (fuzz/corpus/TARGET).
pub fn fuzz_corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

/// Runs `run` (the entry point the cargo-fuzz target calls) on every file
/// of `target`'s corpus, so CI exercises it without libFuzzer. A missing
/// corpus or one of fewer than 5 files fails.
pub fn replay_corpus(target: &str, run: fn(&[u8])) {
    let dir = fuzz_corpus(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).expect("corpus file");
        // Shown only when the test fails: names the input that broke it.
        eprintln!("replaying {}", path.display());
        run(&data);
        replayed += 1;
    }
    assert!(replayed >= 5, "{target}: only {replayed} corpus files");
}

/// What a tag must read as (and what it did).
#[derive(Clone, Debug, PartialEq)]
pub enum Want {
    Value(millrace::ValueKind, u64),
    Text(&'static str),
    Bad(millrace::Quality),
}

/// (tag id, what it read as) for each sample of a reader's output, a text
/// sample (a head and its extension records) as one.
pub fn read_samples(samples: &[millrace::Sample]) -> Vec<(usize, Want)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < samples.len() {
        let s = samples[at];
        let span = millrace::sample::record_span(&samples[at..]).expect("records hold together");
        let want = if !s.quality().is_good() {
            Want::Bad(s.quality())
        } else if let Some(t) = millrace::sample::text_at(&samples[at..]) {
            let mut bytes = vec![0; t.len()];
            t.copy_to(&mut bytes);
            let text = String::from_utf8(bytes).expect("UTF-8 text");
            Want::Text(Box::leak(text.into_boxed_str()))
        } else {
            Want::Value(s.kind().unwrap(), s.value)
        };
        out.push((s.tag_id().0 as usize, want));
        at += span;
    }
    out
}
