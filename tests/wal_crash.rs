//! Crash consistency: a child process (this test binary, re-executed with
//! `MILLRACE_WAL_CRASH_DIR` set) appends and commits as fast as it can and
//! prints every durable seq it is told about; the parent SIGKILLs it at a
//! random point, recovers the directory, and checks that every sample the
//! child saw as durable is there, intact, in order. The same directory is
//! reused across iterations, so recovery runs over its own earlier repairs.

mod wal_common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

use millrace::config::WhenFull;
use millrace::wal::Wal;
use wal_common::*;

const ENV_DIR: &str = "MILLRACE_WAL_CRASH_DIR";
const ENV_SEED: &str = "MILLRACE_WAL_CRASH_SEED";
const SEG: u64 = 64 * 1024;
const QUOTA: u64 = 1 << 30;
const ITERATIONS: u64 = 40;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The child's work: append batches of random sizes, commit now and then
/// (by time, by bytes, or explicitly), and print each durable seq.
fn child(dir: &str, seed: u64) {
    let cfg = config(std::path::Path::new(dir), SEG, QUOTA, WhenFull::Block);
    let (mut wal, report) = Wal::open(&cfg).expect("child open");
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@open {}", report.next_seq).unwrap();
    out.flush().unwrap();
    let mut rng = Rng(seed | 1);
    let mut printed = 0u64;
    // Bounded: the parent kills the child long before this ends.
    for _ in 0..2_000_000u64 {
        let count = 1 + rng.below(300) as usize;
        append(&mut wal, count);
        // Inline commits, and background ones (the pipeline's way): the
        // durable seq those move on the `wal-sync` thread is what it
        // announces, so a kill mid-sync must not lose what was printed.
        let durable = match rng.below(8) {
            0 => Some(wal.commit().expect("commit")),
            1 | 2 => wal.poll_commit(Instant::now()).expect("poll"),
            _ => {
                wal.poll_commit_background(Instant::now())
                    .expect("background poll");
                Some(wal.durable_seq()).filter(|&d| d > printed)
            }
        };
        if let Some(d) = durable {
            printed = printed.max(d);
            writeln!(out, "@@durable {d}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[test]
fn sigkill_at_random_points_loses_nothing_durable() {
    if let Ok(dir) = std::env::var(ENV_DIR) {
        let seed = std::env::var(ENV_SEED)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        child(&dir, seed);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let seed0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed0}");
    let mut rng = Rng(seed0 | 1);
    let mut durable_max = 0u64;
    let mut tails_cut = 0;
    for iteration in 0..ITERATIONS {
        let reported = run_child_and_kill(tmp.path(), rng.next(), rng.below(120) + 1);
        durable_max = durable_max.max(reported);
        if iteration % 2 == 1 {
            // Power-loss flavour: damage a byte past the last durable frame,
            // as if that page never fully reached the disk.
            damage_after(tmp.path(), durable_max, &mut rng);
        }
        let (wal, report) = Wal::open(&config(tmp.path(), SEG, QUOTA, WhenFull::Block)).unwrap();
        assert!(
            report.set_aside.is_empty(),
            "iteration {iteration}: {report:?}"
        );
        assert!(
            report.next_seq >= durable_max,
            "iteration {iteration}: recovered to {} but {durable_max} was durable",
            report.next_seq
        );
        tails_cut += usize::from(report.tail_cut.is_some());
        let mut cursor = wal.open_cursor("verify").unwrap();
        let (first, end, _) = drain(&mut cursor);
        assert_eq!(first, Some(0), "iteration {iteration}");
        assert_eq!(
            end, report.next_seq,
            "iteration {iteration}: every recovered sample is readable"
        );
        durable_max = report.next_seq;
        drop(cursor);
        drop(wal);
        // The verify cursor must not hold retention back in later runs.
        std::fs::remove_file(tmp.path().join("cursor.verify.ckpt")).unwrap();
    }
    assert!(durable_max > 0);
    eprintln!("{ITERATIONS} kills, {durable_max} samples durable, {tails_cut} torn tails cut");
}

/// Flips one byte at a random offset between the end of the frame holding
/// `durable` and the end of the written frames of the last segment.
fn damage_after(dir: &std::path::Path, durable: u64, rng: &mut Rng) {
    let Some(last) = segment_files(dir).pop() else {
        return;
    };
    let bytes = std::fs::read(&last).unwrap();
    let word = |at: usize, n: usize| -> u64 {
        bytes.get(at..at + n).map_or(0, |b| {
            b.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x))
        })
    };
    let mut at = millrace::wal::SEGMENT_HEADER_BYTES;
    let mut durable_end = at;
    for _ in 0..bytes.len() / 64 {
        let len = word(at, 4) as usize;
        if len == 0 || at + len > bytes.len() {
            break;
        }
        at += len;
        // first_seq + sample_count = the frame's end seq
        if word(at - len + 8, 8) + word(at - len + 16, 4) <= durable {
            durable_end = at;
        }
    }
    if at > durable_end {
        let target = durable_end + rng.below((at - durable_end) as u64) as usize;
        let f = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
        let flipped = [bytes[target] ^ (1 << rng.below(8))];
        std::os::unix::fs::FileExt::write_all_at(&f, &flipped, target as u64).unwrap();
    }
}

/// Starts the child, lets it report `commits` durable seqs, SIGKILLs it;
/// returns the last durable seq it reported.
fn run_child_and_kill(dir: &std::path::Path, seed: u64, commits: u64) -> u64 {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "sigkill_at_random_points_loses_nothing_durable",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV_DIR, dir)
        .env(ENV_SEED, seed.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut last = 0u64;
    let mut seen = 0u64;
    let mut opened = false;
    // Bounded by the child's own bounded loop: its stdout closes when it ends.
    for line in lines.by_ref() {
        let Ok(line) = line else { break };
        // The harness may print its own text on the same line first.
        if let Some(v) = durable_in(&line) {
            last = v;
            seen += 1;
            if seen >= commits {
                break;
            }
        } else if line.contains("@@open ") {
            opened = true;
        }
    }
    child.kill().unwrap(); // SIGKILL on Unix
                           // Anything it printed before dying was durable before the kill, too.
    for line in lines.map_while(Result::ok) {
        if let Some(v) = durable_in(&line) {
            last = v;
        }
    }
    let status = child.wait().unwrap();
    assert!(opened, "the child never opened the WAL ({status})");
    last
}

fn durable_in(line: &str) -> Option<u64> {
    let (_, v) = line.split_once("@@durable ")?;
    match v.trim().parse() {
        Ok(v) => Some(v),
        Err(_) => panic!("not a durable line: {line:?}"),
    }
}
