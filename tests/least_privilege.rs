//! millrace needs no privileges. When the test runs as root (CI does), a
//! short `millrace run` (simulated farm and tickerplant stand-in on
//! 127.0.0.1) runs as uid/gid 65534 through `setpriv` with no supplementary
//! groups, no new privileges and an empty capability bounding set (what
//! dist/millrace.service gives it), over a WAL directory that uid owns; as
//! any other user it runs as that user. Either way it must poll, commit and
//! deliver, with a reader pinned to a core and its metrics endpoint on
//! 127.0.0.1, and /proc must show it holding no capability at all.
//!
//! What the process needs, as this test sets it up: read access to the
//! config, the password file and the binary (the directories leading to
//! them traversable); read-write on the WAL directory and on the directory
//! that holds it (the `.hgrm` percentile directory is created beside it).

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::farm::{self, EmitOptions, Farm, FarmOptions};
use millrace::kdb::{SeqRecorder, Tickerplant, TickerplantOptions};

const NOBODY: u32 = 65534;
const PASSWORD: &str = "unprivileged-pw";

fn euid() -> u32 {
    // /proc/self/status: "Uid:\treal\teffective\tsaved\tfs".
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    proc_ids(&status, "Uid:")[1]
}

fn proc_ids(status: &str, key: &str) -> Vec<u32> {
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no {key} in /proc status"));
    line[key.len()..]
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

fn proc_field<'a>(status: &'a str, key: &str) -> &'a str {
    let line = status.lines().find(|l| l.starts_with(key)).unwrap();
    line[key.len()..].trim()
}

#[test]
fn metrics_endpoint_defaults_to_loopback() {
    let text = "[wal]\ndir = \"wal\"\n\n[[sink]]\nname = \"tp\"\nkind = \"kdb\"\n\
        address = \"127.0.0.1:5010\"\ntable = \"plc\"\n\n[[device]]\nname = \"d\"\n\
        protocol = \"modbus-tcp\"\naddress = \"10.0.0.5:502\"\nunit_id = 1\n\
        poll_interval = \"100ms\"\n\n[[device.tag]]\n\
        name = \"t\"\narea = \"holding\"\naddress = 0\ntype = \"uint16\"\n";
    let path = Path::new("/plant/plant.toml");
    // No [metrics] section, and a section without `listen`: loopback.
    for text in [text.to_string(), format!("[metrics]\n{text}")] {
        let config = millrace::config::parse_str(&text, path).unwrap();
        let listen = config
            .metrics
            .listen
            .expect("the endpoint is on by default");
        assert!(
            listen.ip().is_loopback(),
            "default metrics address {listen}"
        );
        assert_eq!(listen.to_string(), "127.0.0.1:9187");
    }
    // Other addresses only when written down, and "off" turns it off.
    let wide = format!("[metrics]\nlisten = \"0.0.0.0:9187\"\n{text}");
    let config = millrace::config::parse_str(&wide, path).unwrap();
    assert_eq!(config.metrics.listen.unwrap().to_string(), "0.0.0.0:9187");
    let off = format!("[metrics]\nlisten = \"off\"\n{text}");
    assert!(millrace::config::parse_str(&off, path)
        .unwrap()
        .metrics
        .listen
        .is_none());
}

/// The uid/gid the run uses, and the command prefix that gets it there.
fn identity() -> (u32, Vec<String>) {
    if euid() != 0 {
        return (euid(), Vec::new());
    }
    let setpriv = Command::new("setpriv").arg("--version").output();
    assert!(
        setpriv.is_ok_and(|o| o.status.success()),
        "running as root needs setpriv (util-linux) to drop to uid {NOBODY}"
    );
    let prefix = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--no-new-privs",
        "--bounding-set=-all",
        "--inh-caps=-all",
        "--",
    ];
    (NOBODY, prefix.iter().map(|s| s.to_string()).collect())
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), Some(uid))
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn drain(mut from: impl Read + Send + 'static) -> Arc<Mutex<Vec<u8>>> {
    let sink = Arc::new(Mutex::new(Vec::new()));
    let to = Arc::clone(&sink);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            to.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    sink
}

fn text(buf: &Arc<Mutex<Vec<u8>>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}

fn durable_seq(bin: &Path, wal: &Path) -> u64 {
    let out = Command::new(bin)
        .args(["wal", "inspect", "--json"])
        .arg(wal)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["durable_seq"].as_u64().expect("durable_seq")
}

fn wait_until(what: &str, stderr: &Arc<Mutex<Vec<u8>>>, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(
            Instant::now() < deadline,
            "timed out: {what}\n{}",
            text(stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop(mut child: Child, stderr: &Arc<Mutex<Vec<u8>>>) {
    let status = Command::new("kill")
        .args(["-15", &child.id().to_string()])
        .status()
        .expect("kill(1)");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            assert!(s.success(), "exit {s}:\n{}", text(stderr));
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("millrace run did not stop:\n{}", text(stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    config: PathBuf,
    wal: PathBuf,
}

/// A directory the unprivileged uid can traverse, holding a copy of the
/// binary (the build directory may not be reachable for it), the config
/// (root-owned, world-readable, as /etc/millrace would be), the password
/// file (owned by the uid, 0600) and a state directory the uid owns.
fn setup(uid: u32, sink: &str, ports: &[u16]) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let bin = dir.path().join("millrace");
    std::fs::copy(env!("CARGO_BIN_EXE_millrace"), &bin).unwrap();
    chmod(&bin, 0o755);
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    chown(&state, uid);
    chmod(&state, 0o700);
    let wal = state.join("wal");
    let config = dir.path().join("plant.toml");
    let emit = EmitOptions {
        tags_per_device: 20,
        wal_dir: wal.clone(),
        sink_address: sink.to_string(),
        poll_interval: "20ms".into(),
        reader_threads: 1,
    };
    farm::emit_config(&config, ports, &emit).unwrap();
    let secret = dir.path().join("kdb-password");
    std::fs::write(&secret, PASSWORD).unwrap();
    chown(&secret, uid);
    chmod(&secret, 0o600);
    let toml = std::fs::read_to_string(&config).unwrap();
    let toml = toml
        .replace("listen = \"127.0.0.1:9187\"", "listen = \"127.0.0.1:0\"")
        .replace("segment_size = \"64MiB\"", "segment_size = \"1MiB\"")
        .replace("backend = \"auto\"", "backend = \"auto\"\ncores = [0]")
        .replace(
            "user = \"feed\"\n",
            &format!(
                "user = \"feed\"\npassword_file = \"{}\"\n",
                secret.display()
            ),
        );
    assert!(toml.contains("cores = [0]") && toml.contains("password_file"));
    std::fs::write(&config, toml).unwrap();
    chmod(&config, 0o644);
    Setup {
        _dir: dir,
        bin,
        config,
        wal,
    }
}

#[test]
fn run_polls_commits_and_delivers_without_privileges() {
    let (uid, prefix) = identity();
    let recorder = Arc::new(Mutex::new(SeqRecorder::new(10_000_000)));
    let options = TickerplantOptions {
        users: Some(vec![("feed".into(), PASSWORD.into())]),
        recorder: Some(recorder.clone()),
        ..TickerplantOptions::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let farm = Farm::start(FarmOptions {
        devices: 4,
        register_count: 20,
        ..Default::default()
    })
    .unwrap();
    let s = setup(uid, &tp.local_addr().to_string(), farm.ports());

    let mut command = match prefix.split_first() {
        Some((program, args)) => {
            let mut c = Command::new(program);
            c.args(args).arg(&s.bin);
            c
        }
        None => Command::new(&s.bin),
    };
    let mut child = command
        .args(["run", "--config"])
        .arg(&s.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start millrace run");
    let stderr = drain(child.stderr.take().unwrap());

    // setpriv execs millrace in place: this pid is millrace itself.
    wait_until("the child to exec millrace", &stderr, || {
        std::fs::read_link(format!("/proc/{}/exe", child.id())).is_ok_and(|p| p == s.bin)
    });
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    assert_eq!(proc_ids(&status, "Uid:"), vec![uid; 4], "{status}");
    assert_eq!(proc_ids(&status, "Gid:"), vec![uid; 4], "{status}");
    assert_eq!(proc_field(&status, "CapEff:"), "0000000000000000");
    assert_eq!(proc_field(&status, "CapPrm:"), "0000000000000000");
    if euid() == 0 {
        assert_eq!(proc_field(&status, "CapBnd:"), "0000000000000000");
        assert_eq!(proc_field(&status, "NoNewPrivs:"), "1");
        assert_eq!(proc_field(&status, "Groups:"), "");
    }

    wait_until("metrics on 127.0.0.1", &stderr, || {
        text(&stderr).contains("metrics on")
    });
    let log = text(&stderr);
    let metrics = log.lines().find(|l| l.contains("metrics on")).unwrap();
    assert!(metrics.contains("http://127.0.0.1:"), "{metrics}");
    wait_until("samples delivered", &stderr, || tp.rows("plc") > 0);
    wait_until("samples durable", &stderr, || {
        durable_seq(&s.bin, &s.wal) > 0
    });
    stop(child, &stderr);

    // Everything it wrote belongs to it.
    let wal_owner = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&s.wal).unwrap());
    assert_eq!(wal_owner, uid);
    let durable = durable_seq(&s.bin, &s.wal);
    assert!(durable > 0);
    let r = recorder.lock().unwrap();
    assert_eq!(r.missing(0..durable), 0, "durable samples not delivered");
    let log = text(&stderr);
    assert!(!log.contains("Permission denied"), "{log}");
    assert!(!log.contains("Operation not permitted"), "{log}");
    eprintln!("millrace run as uid {uid}:\n{log}");
}
