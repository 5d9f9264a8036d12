//! Scale: 10,000 device connections on one reader thread, once per driver,
//! against the farm (1,000 farm devices, ten connections each). Every device
//! must connect and deliver verified values.
//!
//! Both ends in one process would need over 21,000 file descriptors, above
//! the hard RLIMIT_NOFILE of 20,000 here (and raising a hard limit needs
//! CAP_SYS_RESOURCE, refused in this container). So the farm runs in a child
//! process: this test has its own `main` (`harness = false`) and re-executes
//! itself with `MILLRACE_SCALE_FARM_CHILD=1` to serve the farm.

mod common;
mod reader_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use millrace::config::Area;
use millrace::farm::{self, Farm, FarmOptions};

use reader_support::*;

const DEVICES: usize = 10_000;
const FARM_DEVICES: usize = 1_000;
const TAGS: u16 = 4;
/// Either side: the reader's 10,000 sockets, or the farm's 1,000 listeners
/// and 10,000 accepted connections, plus slack.
const FDS_NEEDED: u64 = DEVICES as u64 + FARM_DEVICES as u64 + 1_000;
const CHILD_ENV: &str = "MILLRACE_SCALE_FARM_CHILD";

fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit the call writes into.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max;
    // Up to the hard limit always works; above it needs CAP_SYS_RESOURCE.
    let wanted = libc::rlimit {
        rlim_cur: FDS_NEEDED,
        rlim_max: hard.max(FDS_NEEDED),
    };
    // SAFETY: `wanted` is a valid rlimit read during the call.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0;
    if !raised {
        let soft = libc::rlimit {
            rlim_cur: hard,
            rlim_max: hard,
        };
        // SAFETY: as above.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &soft) };
        panic!(
            "this test needs {FDS_NEEDED} file descriptors but the hard RLIMIT_NOFILE is {hard} \
             and raising it was refused (run as root or raise `ulimit -Hn`)"
        );
    }
}

fn main() {
    raise_fd_limit();
    if std::env::var_os(CHILD_ENV).is_some() {
        serve_farm();
        return;
    }
    ten_thousand_devices_on_one_reader_thread();
    println!("test ten_thousand_devices_on_one_reader_thread ... ok");
}

/// The child: start the farm, print its ports on one line, serve until
/// stdin closes (the parent exiting, even by a panic, closes it).
fn serve_farm() {
    let farm = Farm::start(FarmOptions {
        devices: FARM_DEVICES as u32,
        register_count: 64,
        bit_count: 64,
        connection_count_max: DEVICES + 1_000,
        ..Default::default()
    })
    .expect("start the farm");
    let ports: Vec<String> = farm.ports().iter().map(u16::to_string).collect();
    println!("{}", ports.join(" "));
    let _ = std::io::stdout().flush();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(farm);
}

struct FarmChild(Child);

impl Drop for FarmChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_farm_child() -> (FarmChild, Vec<u16>) {
    let exe = std::env::current_exe().expect("the test executable");
    let mut child = Command::new(exe)
        .env(CHILD_ENV, "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the farm child");
    let stdout = child.stdout.take().expect("child stdout");
    let child = FarmChild(child);
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("the farm child's ports");
    let ports: Vec<u16> = line
        .split_whitespace()
        .map(|p| p.parse().expect("a port"))
        .collect();
    assert_eq!(ports.len(), FARM_DEVICES, "farm child ports: {line}");
    (child, ports)
}

fn ten_thousand_devices_on_one_reader_thread() {
    for backend in BACKENDS {
        let (farm, ports) = start_farm_child();
        let devices = (0..DEVICES)
            .map(|i| {
                let port = ports[i % FARM_DEVICES];
                let mut d = device(
                    &format!("dev{i}"),
                    port,
                    tags(&format!("d{i}"), Area::Holding, 0, TAGS),
                );
                d.poll_interval = Duration::from_millis(1000);
                d.timeout = Duration::from_secs(10);
                d
            })
            .collect();
        let specs = specs(devices);
        let options = RunOptions {
            ring_slots: 1 << 18,
            drain_pause: Duration::from_millis(100),
            deadline: Duration::from_secs(180),
        };
        let mut good_per_device = vec![0u32; DEVICES];
        let mut seen = 0usize;
        let run = run_until(backend, specs, options, |_, samples| {
            for s in &samples[seen..] {
                if s.quality == 0 {
                    good_per_device[s.tag_id().0 as usize / TAGS as usize] += 1;
                }
            }
            seen = samples.len();
            good_per_device.iter().all(|&n| n >= 2 * u32::from(TAGS))
        });
        assert_eq!(
            run.connected_at_end, DEVICES as u64,
            "{backend:?}: not all devices connected"
        );
        for s in run.samples.iter().filter(|s| s.quality == 0) {
            let device = s.tag_id().0 as usize / TAGS as usize;
            let address = (s.tag_id().0 % u32::from(TAGS)) as u16;
            let raw = u16::try_from(s.value).expect("16-bit raw");
            let farm_device = (device % FARM_DEVICES) as u32;
            assert!(
                farm::verify_register(farm_device, address, raw),
                "{backend:?}: {s:?}"
            );
        }
        let c = run.counters;
        assert_eq!(c.samples as usize, run.samples.len(), "{backend:?}: {c:#?}");
        assert_eq!(c.malformed, 0, "{backend:?}: {c:#?}");
        println!("{backend:?}: 10,000 devices: {c:?}");
        drop(farm);
    }
}
