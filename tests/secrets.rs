//! The kdb+ password never leaves the process: the real `millrace` binary is
//! run with a distinctive password through every path that prints or writes
//! (`check-config` accepting and refusing, `run` against a stand-in that
//! refuses the login so the authentication error path prints, `wal inspect`
//! in text and JSON over the WAL that run wrote, `replay` refused and
//! accepted), and the password must appear in none of their stdout or stderr
//! nor in any file of the WAL directory (segments, tag tables, cursors) or
//! the percentile directory beside it. `run` is also run at every log level
//! (`--log-level trace`) with JSON lines, each of which must parse.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::farm::{self, EmitOptions, Farm, FarmOptions};
use millrace::kdb::{Tickerplant, TickerplantOptions};

/// Distinctive enough that no other text contains it by chance.
const SECRET: &str = "Qx7-millrace-SECRET-9f3Kz";
const WRONG: &str = "not-the-password";

fn millrace() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_millrace"));
    c.stdin(Stdio::null()).env_remove("MILLRACE_KDB_PASSWORD");
    c
}

fn assert_clean(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    assert!(!text.contains(SECRET), "{what} shows the password:\n{text}");
}

fn assert_output_clean(what: &str, out: &Output) {
    assert_clean(&format!("{what} stdout"), &out.stdout);
    assert_clean(&format!("{what} stderr"), &out.stderr);
}

/// Every file under `dir`, read whole and searched for the password.
fn assert_tree_clean(dir: &Path) -> usize {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    for _ in 0..10_000 {
        let Some(d) = stack.pop() else { return files };
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
            assert!(!found, "{} holds the password", path.display());
            files += 1;
        }
    }
    panic!("more than 10000 directories under {}", dir.display());
}

fn tickerplant(password: &str) -> Tickerplant {
    let options = TickerplantOptions {
        users: Some(vec![("feed".to_string(), password.to_string())]),
        ..TickerplantOptions::default()
    };
    Tickerplant::bind("127.0.0.1:0", options).expect("bind the stand-in")
}

struct Plant {
    dir: tempfile::TempDir,
    config: PathBuf,
    wal: PathBuf,
    _farm: farm::FarmHandle,
}

/// A farm of 4 devices and a config that sends to `sink`, with the password
/// in `secret.txt` beside the config.
fn plant(sink: &str) -> Plant {
    let dir = tempfile::tempdir().unwrap();
    let farm = Farm::start(FarmOptions {
        devices: 4,
        register_count: 20,
        ..Default::default()
    })
    .expect("start the farm");
    let config = dir.path().join("plant.toml");
    let wal = dir.path().join("wal");
    let emit = EmitOptions {
        tags_per_device: 20,
        wal_dir: wal.clone(),
        sink_address: sink.to_string(),
        poll_interval: "20ms".into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, farm.ports(), &emit).unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"off\"")
        .replace("segment_size = \"64MiB\"", "segment_size = \"1MiB\"")
        .replace(
            "user = \"feed\"\n",
            "user = \"feed\"\npassword_file = \"secret.txt\"\n",
        );
    assert!(
        text.contains("password_file"),
        "the emitted config changed shape"
    );
    std::fs::write(&config, text).unwrap();
    std::fs::write(dir.path().join("secret.txt"), format!("{SECRET}\n")).unwrap();
    Plant {
        dir,
        config,
        wal,
        _farm: farm,
    }
}

/// Collects a child's stdout and stderr on threads while it runs.
struct Running {
    child: Child,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

fn drain(
    mut from: impl Read + Send + 'static,
) -> (Arc<Mutex<Vec<u8>>>, std::thread::JoinHandle<()>) {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let to = Arc::clone(&sink);
    let handle = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    (sink, handle)
}

fn spawn_run(config: &Path) -> Running {
    spawn_run_logging(config, &[])
}

fn spawn_run_logging(config: &Path, log_args: &[&str]) -> Running {
    let mut child = millrace()
        .args(log_args)
        .args(["run", "--config"])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace run");
    let (stdout, a) = drain(child.stdout.take().unwrap());
    let (stderr, b) = drain(child.stderr.take().unwrap());
    Running {
        child,
        stdout,
        stderr,
        readers: vec![a, b],
    }
}

impl Running {
    fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// SIGTERM, wait (bounded), and return (stdout, stderr).
    fn stop(mut self) -> (Vec<u8>, Vec<u8>) {
        let status = Command::new("kill")
            .arg("-15")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("millrace run did not stop: {}", self.stderr_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        assert!(exit.success(), "exit {exit}: {}", self.stderr_text());
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

fn durable_seq(wal: &Path) -> u64 {
    let out = millrace()
        .args(["wal", "inspect", "--json"])
        .arg(wal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_output_clean("wal inspect --json", &out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["durable_seq"].as_u64().expect("durable_seq")
}

#[test]
fn check_config_never_shows_the_password() {
    let plant = plant("127.0.0.1:5010");
    let out = millrace()
        .arg("check-config")
        .arg(&plant.config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_output_clean("check-config", &out);
    // The summary does say a password is configured, just not what it is.
    assert!(!out.stdout.is_empty());

    // From the environment instead of a file.
    let text = std::fs::read_to_string(&plant.config).unwrap();
    let env_config = plant.dir.path().join("env.toml");
    let with_env = text.replace(
        "password_file = \"secret.txt\"",
        "password_env = \"MILLRACE_TEST_SECRET\"",
    );
    std::fs::write(&env_config, &with_env).unwrap();
    let out = millrace()
        .arg("check-config")
        .arg(&env_config)
        .env("MILLRACE_TEST_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_output_clean("check-config (env)", &out);

    // Refused configs while the password is loaded: both sources at once,
    // and an error later in the file than the sink.
    let both = plant.dir.path().join("both.toml");
    let text_both = text.replace(
        "password_file = \"secret.txt\"",
        "password_file = \"secret.txt\"\npassword_env = \"MILLRACE_TEST_SECRET\"",
    );
    std::fs::write(&both, text_both).unwrap();
    let later = plant.dir.path().join("later.toml");
    std::fs::write(&later, format!("{text}\n[bogus]\nkey = 1\n")).unwrap();
    for config in [&both, &later] {
        let out = millrace()
            .arg("check-config")
            .arg(config)
            .env("MILLRACE_TEST_SECRET", SECRET)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{} was accepted", config.display());
        assert!(!out.stderr.is_empty(), "no error message");
        assert_output_clean("check-config (refused)", &out);
    }
}

#[test]
fn run_at_every_log_level_in_json_never_shows_the_password() {
    let refusing = tickerplant(WRONG);
    let plant = plant(&refusing.local_addr().to_string());
    let running = spawn_run_logging(
        &plant.config,
        &["--log-level", "trace", "--log-format", "json"],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !running.stderr_text().contains("authentication refused") {
        assert!(
            Instant::now() < deadline,
            "no authentication error logged: {}",
            running.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (stdout, stderr) = running.stop();
    assert_clean("run --log-level trace --log-format json stdout", &stdout);
    assert_clean("run --log-level trace --log-format json stderr", &stderr);
    let text = String::from_utf8_lossy(&stderr);
    let mut levels = std::collections::BTreeSet::new();
    for line in text.lines() {
        let event: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        let level = event["level"]
            .as_str()
            .unwrap_or_else(|| panic!("no level: {line}"));
        levels.insert(level.to_string());
        assert!(event["fields"]["message"].is_string(), "no message: {line}");
        assert!(event["threadName"].is_string(), "no thread name: {line}");
    }
    // The refusal is a warning of the sink; start and stop are info.
    assert!(
        levels.contains("WARN") && levels.contains("INFO"),
        "{levels:?}"
    );
    assert!(assert_tree_clean(&plant.wal) > 0);
}

#[test]
fn run_inspect_and_replay_never_show_the_password() {
    // The stand-in wants another password: every login is refused.
    let refusing = tickerplant(WRONG);
    let plant = plant(&refusing.local_addr().to_string());
    let running = spawn_run(&plant.config);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !running.stderr_text().contains("authentication refused") {
        assert!(
            Instant::now() < deadline,
            "no authentication error printed: {}",
            running.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Keep polling until samples are durable in the WAL (tag tables too).
    let deadline = Instant::now() + Duration::from_secs(30);
    while durable_seq(&plant.wal) == 0 {
        assert!(Instant::now() < deadline, "nothing became durable");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (stdout, stderr) = running.stop();
    assert_clean("run stdout", &stdout);
    assert_clean("run stderr", &stderr);
    assert!(
        refusing.stats().connections_refused >= 1,
        "{:?}",
        refusing.stats()
    );
    assert_eq!(refusing.rows("plc"), 0);

    let durable = durable_seq(&plant.wal);
    assert!(durable > 0);
    let out = millrace()
        .args(["wal", "inspect"])
        .arg(&plant.wal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_output_clean("wal inspect", &out);

    // replay, refused (the password is wrong for this stand-in) ...
    let replay = |to: &Tickerplant| {
        millrace()
            .args(["replay", "--user", "feed", "--wal"])
            .arg(&plant.wal)
            .arg("--to")
            .arg(to.local_addr().to_string())
            .env("MILLRACE_KDB_PASSWORD", SECRET)
            .output()
            .unwrap()
    };
    let out = replay(&refusing);
    assert!(
        !out.status.success(),
        "replay logged in with a wrong password"
    );
    assert!(!out.stderr.is_empty());
    assert_output_clean("replay (refused)", &out);
    // ... and accepted by a stand-in that knows it.
    let accepting = tickerplant(SECRET);
    let out = replay(&accepting);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_output_clean("replay", &out);
    assert!(
        accepting.rows("plc") >= durable,
        "replay delivered {}",
        accepting.rows("plc")
    );

    // Nothing on disk either: segments, tag tables, cursors, percentiles.
    let files = assert_tree_clean(&plant.wal);
    assert!(files >= 2, "the WAL directory holds {files} files");
    let hgrm = PathBuf::from(format!("{}.hgrm", plant.wal.display()));
    if hgrm.is_dir() {
        assert_tree_clean(&hgrm);
    }
}
