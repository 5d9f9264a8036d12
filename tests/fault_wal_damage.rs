//! Torn tails and bit flips on a WAL written by a real `millrace run`.
//! The run writes with kdb+ down (so nothing is delivered yet and the WAL
//! holds every sample), is killed with -9, and the WAL is damaged in place:
//! the last segment truncated at a random offset inside a frame, or random
//! bits flipped in a frame of the active segment and of a sealed segment
//! (seeded; `MILLRACE_FAULT_SEED` replays). Then kdb+ comes up and
//! `millrace run` restarts by itself over the damage. Asserted: the log
//! reports what recovery cut and set aside; every intact frame before the
//! damage is delivered; no sample of a damaged frame is ever delivered
//! (every delivered value checks against the farm's formula); new samples
//! flow after.

mod common;
mod fault_proc_support;
mod wal_common;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fault_proc_support::*;

const SEGMENT_HEADER_BYTES: u64 = 48;

/// One frame as laid out on disk (read independently of the crate's parser:
/// length, then first seq; the samples follow the 40-byte overhead).
#[derive(Clone, Copy, Debug)]
struct Frame {
    offset: u64,
    bytes: u64,
    first_seq: u64,
    end_seq: u64,
}

fn segments(wal: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    v.sort();
    v
}

fn frames(segment: &Path) -> Vec<Frame> {
    let bytes = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut at = SEGMENT_HEADER_BYTES as usize;
    while let Some(head) = bytes.get(at..at + 16) {
        let len = u32::from_le_bytes(head[0..4].try_into().unwrap()) as u64;
        if len == 0 {
            break;
        }
        let first_seq = u64::from_le_bytes(head[8..16].try_into().unwrap());
        let count = u32::from_le_bytes(bytes[at + 16..at + 20].try_into().unwrap()) as u64;
        out.push(Frame {
            offset: at as u64,
            bytes: len,
            first_seq,
            end_seq: first_seq + count,
        });
        at += len as usize;
    }
    out
}

fn flip_bits(path: &Path, frame: Frame, rng: &mut Rng) -> u64 {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(path)
        .unwrap();
    let flips = rng.range(1, 4);
    for _ in 0..flips {
        // Anywhere in the frame: header, batch header or samples.
        let at = frame.offset + rng.range(0, frame.bytes);
        let mut b = [0u8];
        file.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 1 << rng.range(0, 8);
        file.write_all_at(&b, at).unwrap();
    }
    flips
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Truncate the active segment inside a frame; flip bits in a sealed one.
    TornTailAndSealedFlip,
    /// Flip bits inside a frame of the active segment.
    ActiveFlip,
}

fn damage_and_restart(test: &str, damage: Damage) {
    let mut rng = Rng::new(seed(test));
    let spec = PlantSpec {
        devices: 5,
        tags: 100,
        segment_size: "256KiB",
        metrics: true,
        ..Default::default()
    };
    let recorder = Delivered::shared(spec.devices, spec.tags);
    // kdb+'s address, with nothing listening there yet.
    let addr = common::free_address();
    let plant = Plant::start(&addr, spec);
    let log = plant.dir.path().join("run.log");
    let mut run = Run::spawn(&plant.config, &log, &[]);
    let metrics = run.metrics_addr();
    // Four sealed segments and some of a fifth (a frame's samples take
    // about 8 bytes each on disk: `wal/compact.rs`).
    assert!(
        wait_until(Duration::from_secs(60), || segments(&plant.wal).len() >= 5),
        "the WAL never reached five segments"
    );
    let durable = || metric(&metrics, "millrace_wal_durable_seq").unwrap_or(0.0) as u64;
    let target = durable() + rng.range(500, 8000);
    assert!(
        wait_until(Duration::from_secs(60), || durable() >= target),
        "the WAL never reached seq {target}"
    );
    run.signal(9);
    run.wait(Duration::from_secs(10));
    drop(run);

    let segs = segments(&plant.wal);
    assert!(segs.len() >= 5, "{segs:?}");
    let active = segs.last().unwrap().clone();
    let active_frames = frames(&active);
    assert!(active_frames.len() >= 2, "{active_frames:?}");
    // The first frame of the active segment stays intact.
    let hit = active_frames[rng.range(1, active_frames.len() as u64) as usize];
    // Seqs that must arrive, and seqs that must never arrive.
    let mut expected: Vec<(u64, u64)> = Vec::new();
    let mut forbidden: Vec<(u64, u64)> = vec![(hit.first_seq, hit.end_seq)];
    let mut set_aside: Option<(u64, u64)> = None;
    for seg in &segs[..segs.len() - 1] {
        let f = frames(seg);
        expected.push((f[0].first_seq, f.last().unwrap().end_seq));
    }
    expected.push((active_frames[0].first_seq, hit.first_seq));
    match damage {
        Damage::TornTailAndSealedFlip => {
            let cut = hit.offset + rng.range(1, hit.bytes);
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&active)
                .unwrap();
            file.set_len(cut).unwrap();
            eprintln!(
                "{test}: truncated {} at {cut} inside {hit:?}",
                active.display()
            );
            let index = rng.range(1, segs.len() as u64 - 1) as usize;
            let sealed = &segs[index];
            let f = frames(sealed);
            let victim = f[rng.range(0, f.len() as u64) as usize];
            let flips = flip_bits(sealed, victim, &mut rng);
            eprintln!(
                "{test}: {flips} bit flips in {} in {victim:?}",
                sealed.display()
            );
            forbidden.push((victim.first_seq, victim.end_seq));
            let range = (f[0].first_seq, f.last().unwrap().end_seq);
            expected.retain(|r| *r != range);
            set_aside = Some(range);
        }
        Damage::ActiveFlip => {
            let flips = flip_bits(&active, hit, &mut rng);
            eprintln!(
                "{test}: {flips} bit flips in {} in {hit:?}",
                active.display()
            );
        }
    }

    let tp = tickerplant(&addr, &recorder, None);
    let run = Run::spawn(&plant.config, &log, &[]);
    assert!(
        run.wait_log("running", Duration::from_secs(30)),
        "millrace did not start over the damage:\n{}",
        run.log_text()
    );
    let text = run.log_text();
    assert!(text.contains("cut a torn tail"), "{text}");
    if set_aside.is_some() {
        assert!(text.contains("SET ASIDE"), "{text}");
    }
    let all_expected = || {
        let r = recorder.lock().unwrap();
        expected
            .iter()
            .all(|&(lo, hi)| r.verifier.lost(hi) - r.verifier.lost(lo) == 0)
    };
    assert!(
        wait_until(Duration::from_secs(60), all_expected),
        "intact frames before the damage were not delivered ({expected:?}):\n{}",
        run.log_text()
    );
    let recovered_end = hit.first_seq;
    assert!(
        wait_until(Duration::from_secs(30), || {
            metric(&metrics_of(&run), "millrace_wal_durable_seq").unwrap_or(0.0) as u64
                > recovered_end + 5_000
        }),
        "no new samples after recovery"
    );
    let (status, text) = run.stop();
    assert!(status.success(), "clean stop exit status {status}:\n{text}");
    let durable = durable_seq(&plant.wal);
    tp.stop();
    let r = recorder.lock().unwrap();
    let v = &r.verifier;
    assert_eq!(v.mismatches, 0, "a damaged value was delivered");
    assert_eq!(r.conflicting_duplicates, 0);
    // Every seq below the durable end arrived, except those set aside.
    let gap = set_aside.map_or(0, |(lo, hi)| hi - lo);
    let lost_outside = v.lost(durable) - set_aside.map_or(0, |(lo, hi)| v.lost(hi) - v.lost(lo));
    assert_eq!(
        lost_outside, 0,
        "samples lost outside the set-aside segment"
    );
    if let Some((lo, hi)) = set_aside {
        // Its seqs are never handed out again, and none of it was delivered
        // (it was set aside whole, damaged frame included).
        assert_eq!(v.lost(hi) - v.lost(lo), hi - lo, "set-aside seqs delivered");
    }
    eprintln!(
        "{test}: durable {durable}, set aside {gap} samples, forbidden {forbidden:?}, \
         delivered {} rows",
        r.rows
    );
}

fn metrics_of(run: &Run) -> String {
    run.metrics_addr()
}

#[test]
fn torn_tail_and_sealed_bit_flips_are_cut_reported_and_never_delivered() {
    damage_and_restart("fault_wal_damage torn", Damage::TornTailAndSealedFlip);
}

#[test]
fn bit_flips_in_the_active_segment_are_cut_and_never_delivered() {
    damage_and_restart("fault_wal_damage active", Damage::ActiveFlip);
}

/// The same torn tail at library level, exactly: a last segment truncated
/// inside its fourth frame keeps three frames, is its full size again, and
/// takes new frames after them.
#[test]
fn a_truncated_last_segment_keeps_its_intact_frames() {
    use millrace::config::WhenFull;
    use millrace::wal::Wal;
    use wal_common::{append, config, drain, segment_files};
    const N: usize = 50;
    const SEG: u64 = 64 * 1024;
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(tmp.path(), SEG, 1 << 30, WhenFull::Block);
    {
        let (mut wal, _) = Wal::open(&cfg).unwrap();
        wal.open_cursor("c").unwrap();
        for _ in 0..6 {
            append(&mut wal, N);
            wal.commit().unwrap();
        }
    }
    let seg = segment_files(tmp.path()).pop().unwrap();
    let f = frames(&seg);
    assert_eq!(f.len(), 6);
    let file = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    file.set_len(f[3].offset + f[3].bytes / 2).unwrap();
    drop(file);
    let (mut wal, report) = Wal::open(&cfg).unwrap();
    assert!(report.set_aside.is_empty(), "{report:?}");
    let cut = report.tail_cut.clone().expect("the partial frame is cut");
    assert_eq!((cut.offset, cut.frames_cut), (f[3].offset, 1));
    assert_eq!(report.next_seq, 3 * N as u64);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), SEG);
    append(&mut wal, N);
    wal.commit().unwrap();
    let (first, end, count) = drain(&mut wal.open_cursor("c").unwrap());
    assert_eq!((first, end, count), (Some(0), 4 * N as u64, 4));
}
