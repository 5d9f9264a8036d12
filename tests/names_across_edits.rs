//! Every row delivered by `run` or `replay` carries the tag and device names
//! that were in force when its sample was polled, across configuration
//! edits made while kdb+ was down and a backlog waited in the WAL (#15).
//!
//! The farm is mixed (even devices Modbus TCP, odd devices S7), so every
//! configuration polls both protocols, and one edit replaces a Modbus
//! device by an S7 one under the same device name (and back).
//!
//! Each scenario: `millrace run` under config A with nothing listening on
//! its two sinks' ports (a backlog builds), a clean stop (SIGTERM), an edit
//! to config B, two kdb+ peers up (the stand-in, and aiokdb 0.1.38's IPC
//! server, a kdb+ implementation that is not ours), `millrace run` under B
//! until the backlog and new rows are delivered to both, a clean stop; then
//! `millrace replay` of the whole WAL to another stand-in. Every row is
//! checked by names_support's `check_rows`, which does not trust millrace's
//! naming: the value a good row carries must be the farm's for the register
//! or S7 tag its name maps to under the configuration in force at its seq
//! (about 255/256 per row to catch a wrong table), and every row's name and
//! device must be what that configuration calls the tag id the WAL holds.
//! Which configuration was in force at a seq is known without millrace: a
//! run starts at the WAL's durable end after the previous clean stop.
//!
//! - `every_edit_is_delivered_under_the_names_it_was_polled_with`: one
//!   scenario per kind of edit, through the real binary, run side by side (a
//!   clean stop with kdb+ down waits out the sink's 10 s delivery deadline:
//!   side by side, those waits overlap). Each scenario also checks what
//!   `wal inspect` says of the tag tables; the reproduction (a tag
//!   inserted at the top of a device's CSV) then damages copies of its
//!   tables by hand: `wal inspect` names each damage and `replay` stops
//!   where it cannot name a row.
//! - `random_edit_sequences_across_restarts`: proptest over sequences of 2-3
//!   edits, each run leaving a backlog, kdb+ down or going down just before
//!   a run stops (so a backlog can start inside an older table), delivered
//!   by the last run. Through `millrace::app::Runtime` in-process, not the
//!   binary: with kdb+ down the binary's clean stop waits its fixed 10 s
//!   delivery deadline, 30-40 s a case; `RuntimeOptions::stop_deadline`
//!   makes a stop immediate. Replay is `millrace::app::replay::run`, the
//!   binary's own code.
//!
//! - `routes_across_a_backlog_follow_the_names_rows_were_polled_under`: two
//!   sinks whose `devices` patterns split the plant, and a device renamed
//!   from one sink's pattern into the other's while its backlog waits: each
//!   row goes to the sink its name at polling time routes to.
//! - `a_reload_applies_edits_in_place_and_refuses_an_invalid_file`: the
//!   same check across a live reload (SIGHUP) with kdb+ up: config A runs,
//!   its file becomes B (a tag inserted, a device renamed, a Modbus device
//!   switched to S7), SIGHUP; every seq arrives (no gap across the reload)
//!   and each row carries the names of the configuration it was polled
//!   under. Then the file is made invalid and SIGHUP refused: the error
//!   names the file and line, polling goes on under B, no table is written.
//!
//! All of them poll one farm, started once for the whole binary: its values
//! depend on each device's own answer counter, which a row's value carries,
//! so runs side by side do not disturb each other's checks.
//!
//! Every wait is bounded; nothing asserts a timing.

mod common;
mod names_support;

use common::{free_address, free_port};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use millrace::app::replay::ReplayArgs;
use millrace::app::{Runtime, RuntimeOptions};
use millrace::config::TimeType;
use millrace::farm::{Farm, FarmHandle, FarmOptions};
use millrace::kdb::schema::Schema;
use millrace::kdb::{Tickerplant, TickerplantOptions};
use names_support::*;
use proptest::prelude::*;

/// Devices and tags of config A (farm devices 0-2: Modbus, S7, Modbus);
/// the farm has a spare device of each protocol to add or switch to.
const DEVICES: u32 = 3;
const TAGS: usize = 5;
const FARM_DEVICES: u32 = 5;
/// Rows each run leaves in the WAL at least (about 0.3 s of polling).
const ROWS_PER_RUN: u64 = 200;
/// Bound on every wait (2 shared cores, other suites beside).
const WAIT_LIMIT: Duration = Duration::from_secs(90);

/// The farm every test of this binary polls, and its emitted config.
fn plant_farm() -> &'static (FarmHandle, Emitted) {
    static FARM: OnceLock<(FarmHandle, Emitted)> = OnceLock::new();
    FARM.get_or_init(|| {
        let farm = Farm::start(FarmOptions {
            devices: FARM_DEVICES,
            protocol: FARM_PROTOCOL,
            threads: 2,
            // Every scenario side by side, each device on its connection.
            connection_count_max: 256,
            ..Default::default()
        })
        .expect("start the farm");
        let emitted = Emitted::new(farm.ports());
        (farm, emitted)
    })
}

fn stand_in(addr: &str, journal: &Path) -> Tickerplant {
    let options = TickerplantOptions {
        journal: Some(journal.to_path_buf()),
        ..Default::default()
    };
    Tickerplant::bind(addr, options).expect("bind the stand-in")
}

/// The WAL's durable end (`wal inspect`'s code, in-process: scenarios poll
/// it side by side).
fn durable_seq(wal: &Path) -> u64 {
    millrace::wal::inspect(wal).map_or(0, |i| i.durable_seq)
}

/// A run has left `ROWS_PER_RUN` rows from `from_seq` on, and every
/// device of its plant among them (a device that cannot be read shows up
/// once its requests time out).
fn run_showed_everything(wal: &Path, from_seq: u64, plant: &Plant) -> bool {
    durable_seq(wal) >= from_seq + ROWS_PER_RUN && every_device_polled(wal, from_seq, plant)
}

/// The tag tables `wal inspect --json` lists, by first seq, must be the
/// files on disk, and each must cover exactly its epoch's frames.
fn check_inspected_tables(wal: &Path, epochs: &[Epoch]) -> Result<(), String> {
    let v = common::inspect(wal);
    let tables = v["tag_tables"]
        .as_array()
        .ok_or("no tag_tables in inspect --json")?;
    let firsts: Vec<u64> = tables
        .iter()
        .filter_map(|t| t["first_seq"].as_u64())
        .collect();
    let expected = expected_table_seqs(epochs);
    if firsts != expected || table_seqs(wal) != expected {
        return Err(format!(
            "tag tables: inspect {firsts:?}, files {:?}, expected {expected:?}",
            table_seqs(wal)
        ));
    }
    for (table, next) in tables
        .iter()
        .zip(expected.iter().skip(1).map(Some).chain([None]))
    {
        let plant = &epochs
            .iter()
            .rev()
            .find(|e| Some(e.first_seq) == table["first_seq"].as_u64())
            .ok_or("a table at no epoch's start")?
            .plant;
        let tags = table["tags"].as_u64();
        let end = table["end_seq"].as_u64();
        let durable = v["durable_seq"].as_u64();
        if tags != Some(plant.names().len() as u64) || end != next.copied().or(durable) {
            return Err(format!("inspect's table {table} against {plant:?}"));
        }
        if table["frames"].as_u64().unwrap_or(0) == 0 {
            return Err(format!("inspect's table {table} covers no frame"));
        }
    }
    match v["anomalies"].as_array() {
        Some(a) if a.is_empty() => Ok(()),
        other => Err(format!("anomalies: {other:?}")),
    }
}

/// `millrace run` as a child, its stderr in a file of its own (scenarios
/// run side by side). Killed on drop.
struct RunChild {
    child: Child,
    log: PathBuf,
}

impl RunChild {
    fn spawn(config: &Path, log: &Path) -> RunChild {
        let file = std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_millrace"))
            .args(["run", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .spawn()
            .expect("start millrace run");
        RunChild {
            child,
            log: log.to_path_buf(),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Waits, the run still up, until the WAL holds `ROWS_PER_RUN` rows
    /// from `from_seq` on and a sample of every device of `plant`.
    fn wait_for_rows(&mut self, wal: &Path, from_seq: u64, plant: &Plant) -> Result<(), String> {
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Err(format!("run exited ({status}) early:\n{}", self.log_tail()));
            }
            if run_showed_everything(wal, from_seq, plant) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the WAL never held {ROWS_PER_RUN} rows of every device from seq \
                     {from_seq}:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGTERM and a clean exit (a hang detector bounds the wait).
    fn stop(mut self) -> Result<(), String> {
        common::signal(self.child.id(), 15);
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return match status.success() {
                    true => Ok(()),
                    false => Err(format!("run exited {status}:\n{}", self.log_tail())),
                };
            }
            if Instant::now() > deadline {
                return Err(format!("run did not stop:\n{}", self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RunChild {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The aiokdb tickerplant: its JSON lines, collected on a thread.
struct AiokdbPeer {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl AiokdbPeer {
    fn start(port: u16) -> AiokdbPeer {
        let mut child = Command::new(common::peer_python())
            .arg("-c")
            .arg(AIOKDB_TICKERPLANT)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the aiokdb peer");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = lines.recv_timeout(WAIT_LIMIT);
        assert_eq!(
            first.as_deref(),
            Ok("listening"),
            "the aiokdb peer did not start"
        );
        AiokdbPeer { child, lines }
    }

    /// Stops the peer; every row it printed (all it acknowledged).
    fn finish(mut self) -> Vec<Row> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let lines: Vec<String> = self.lines.iter().collect();
        json_rows(&lines)
    }
}

/// One scenario through the real binary, delivering to the stand-in and
/// to aiokdb at once (two sinks); `Ok` says what it checked.
fn scenario(edits: &[Edit], damage_tables: bool) -> Result<String, String> {
    let (_, emitted) = plant_farm();
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let log = dir.path().join("run.log");
    let (tp_port, peer_port) = (free_port(), free_port());
    let sinks = [
        format!("127.0.0.1:{tp_port}"),
        format!("127.0.0.1:{peer_port}"),
    ];
    let a = Plant::new(emitted, DEVICES, TAGS);
    let mut b = a.clone();
    for edit in edits {
        assert!(b.apply(edit, emitted), "{edit:?} does not apply to {b:?}");
    }

    // Config A, kdb+ down: a backlog, then a clean stop.
    let config = a.render(emitted, dir.path(), &wal, &sinks);
    let mut run = RunChild::spawn(&config, &log);
    run.wait_for_rows(&wal, 0, &a)?;
    run.stop()?;
    let boundary = durable_seq(&wal);

    // Config B, kdb+ up: the backlog and new rows, then a clean stop.
    let config = b.render(emitted, dir.path(), &wal, &sinks);
    let journal = dir.path().join("delivered.journal");
    let tp = stand_in(&sinks[0], &journal);
    let peer = AiokdbPeer::start(peer_port);
    let mut run = RunChild::spawn(&config, &log);
    run.wait_for_rows(&wal, boundary, &b)?;
    run.stop()?;
    let durable = durable_seq(&wal);
    tp.stop();
    let rows = journal_rows(&journal);
    let peer_rows = peer.finish();

    let epochs = [
        Epoch {
            first_seq: 0,
            plant: a,
        },
        Epoch {
            first_seq: boundary,
            plant: b,
        },
    ];
    let tags = wal_tags(&wal);
    let checked = check_rows(emitted, &rows, &epochs, &tags, durable)
        .map_err(|e| format!("run, stand-in: {e}"))?;
    checked.covers(&epochs)?;
    check_rows(emitted, &peer_rows, &epochs, &tags, durable)
        .map_err(|e| format!("run, aiokdb: {e}"))?;
    same_names(&rows, &peer_rows).map_err(|e| format!("aiokdb decoded otherwise: {e}"))?;
    check_inspected_tables(&wal, &epochs)?;

    // The whole WAL again, by replay, to a third peer.
    let (ok, stderr, again) = replay_binary(&wal, dir.path());
    if !ok {
        return Err(format!("replay: {stderr}"));
    }
    check_rows(emitted, &again, &epochs, &tags, durable).map_err(|e| format!("replay: {e}"))?;
    same_names(&rows, &again).map_err(|e| format!("replay named a seq otherwise: {e}"))?;
    if damage_tables {
        check_damaged_tables(&wal, boundary, durable, dir.path())?;
    }
    Ok(format!(
        "boundary {boundary}, durable {durable}, {} rows, verified {:?}, bad {:?}",
        checked.rows, checked.verified, checked.bad
    ))
}

/// `millrace replay` of `wal` to a fresh stand-in: whether it succeeded,
/// its stderr, and the rows the stand-in journaled.
fn replay_binary(wal: &Path, scratch: &Path) -> (bool, String, Vec<Row>) {
    let journal = scratch.join("replayed.journal");
    let _ = std::fs::remove_file(&journal);
    let tp = stand_in("127.0.0.1:0", &journal);
    let out = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["replay", "--wal"])
        .arg(wal)
        .args(["--to", &tp.local_addr().to_string()])
        .output()
        .expect("run millrace replay");
    tp.stop();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), stderr, journal_rows(&journal))
}

/// A copy of `wal`'s segments and tag tables in `scratch/name`, without
/// its checkpoints.
fn copy_wal(wal: &Path, scratch: &Path, name: &str) -> PathBuf {
    let copy = scratch.join(name);
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(wal).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().into_string().unwrap();
        if file.ends_with(".wal") || file.ends_with(".tsv") {
            std::fs::copy(entry.path(), copy.join(&file)).unwrap();
        }
    }
    copy
}

fn anomaly_kinds(wal: &Path) -> Vec<String> {
    let v = common::inspect(wal);
    v["anomalies"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x["kind"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Tag tables damaged by hand, on copies of a scenario's WAL (tables at 0
/// and `boundary`): `wal inspect` names each damage, and `replay` stops at
/// the first seq it cannot name rather than guess.
fn check_damaged_tables(
    wal: &Path,
    boundary: u64,
    durable: u64,
    scratch: &Path,
) -> Result<(), String> {
    let table = |dir: &Path, seq: u64| dir.join(format!("tags.{seq:020}.tsv"));
    let no_row_from = |rows: &[Row], seq: u64| rows.iter().all(|r| (r.seq as u64) < seq);

    let missing = copy_wal(wal, scratch, "missing");
    std::fs::remove_file(table(&missing, 0)).unwrap();
    let kinds = anomaly_kinds(&missing);
    let (ok, stderr, rows) = replay_binary(&missing, scratch);
    if kinds != ["tag table missing"] || ok || !rows.is_empty() {
        return Err(format!(
            "first table deleted: anomalies {kinds:?}, replay ok {ok}, {} rows: {stderr}",
            rows.len()
        ));
    }
    if !stderr.contains("no tag table covers seq 0") {
        return Err(format!("first table deleted: replay said {stderr}"));
    }

    let replaced = copy_wal(wal, scratch, "replaced");
    let path = table(&replaced, boundary);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen('\t', "\tedited-", 1)).unwrap();
    let kinds = anomaly_kinds(&replaced);
    let (ok, stderr, rows) = replay_binary(&replaced, scratch);
    if kinds != ["tag table replaced"] || ok || !no_row_from(&rows, boundary) {
        return Err(format!(
            "second table edited: anomalies {kinds:?}, replay ok {ok}, rows up to seq {:?}: \
             {stderr}",
            rows.iter().map(|r| r.seq).max()
        ));
    }
    if !stderr.contains(&format!("the WAL frame at seq {boundary} was polled under")) {
        return Err(format!("second table edited: replay said {stderr}"));
    }

    let past = copy_wal(wal, scratch, "past");
    std::fs::copy(table(wal, boundary), table(&past, durable + 100)).unwrap();
    std::fs::write(
        past.join(format!("tags.{:020}.tsv.part", durable + 50)),
        "x",
    )
    .unwrap();
    let kinds = anomaly_kinds(&past);
    if kinds != ["leftover temporary", "tag table past the end"] {
        return Err(format!("a table past the end: anomalies {kinds:?}"));
    }
    Ok(())
}

#[test]
fn every_edit_is_delivered_under_the_names_it_was_polled_with() {
    let cases: Vec<(&str, Vec<Edit>)> = vec![
        (
            "tag inserted at the top",
            vec![Edit::InsertTag { device: 0, at: 0 }],
        ),
        ("tag removed", vec![Edit::RemoveTag { device: 1, at: 2 }]),
        ("tag renamed", vec![Edit::RenameTag { device: 2, at: 4 }]),
        ("tags reordered", vec![Edit::ReorderTags { device: 0 }]),
        ("devices reordered", vec![Edit::ReorderDevices]),
        ("device renamed", vec![Edit::RenameDevice { device: 1 }]),
        (
            "device added in the middle",
            vec![Edit::AddDevice { at: 1 }],
        ),
        ("device removed", vec![Edit::RemoveDevice { device: 0 }]),
        ("device moved to another reader", vec![Edit::MoveReaders]),
        (
            "Modbus device replaced by an S7 one of its name, and an S7 one by Modbus",
            vec![
                Edit::SwitchProtocol { device: 0 },
                Edit::SwitchProtocol { device: 1 },
            ],
        ),
    ];
    let results: Vec<(&str, Result<String, String>)> = std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            // The reproduction also damages its tag tables by hand.
            .map(|(index, (name, edits))| (*name, s.spawn(move || scenario(edits, index == 0))))
            .collect();
        handles
            .into_iter()
            .map(|(name, h)| {
                let result = h.join().unwrap_or_else(|_| Err("panicked".into()));
                (name, result)
            })
            .collect()
    });
    let mut failed = Vec::new();
    for (name, result) in &results {
        match result {
            Ok(summary) => eprintln!("{name}: ok, {summary}"),
            Err(why) => {
                eprintln!("{name}: FAILED: {why}");
                failed.push(*name);
            }
        }
    }
    assert!(failed.is_empty(), "scenarios failed: {failed:?}");
}

/// Waits until the run's log has a line containing `needle`; returns it.
fn wait_for_log(run: &mut RunChild, needle: &str) -> Result<String, String> {
    let deadline = Instant::now() + WAIT_LIMIT;
    loop {
        let text = std::fs::read_to_string(&run.log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Ok(line.to_string());
        }
        if let Some(status) = run.child.try_wait().unwrap() {
            return Err(format!("run exited ({status}):\n{}", run.log_tail()));
        }
        if Instant::now() > deadline {
            return Err(format!("no `{needle}` in the log:\n{}", run.log_tail()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sink a device's rows go to is the one its name in force when they
/// were polled routes to: a backlog polled under config A, where device 0
/// is `farm-00000` and the stand-in's sink takes `farm-*`, reaches the
/// stand-in even when config B, which delivers it, has renamed the device
/// to `line-...`, which only the aiokdb sink takes; B's own rows of the
/// device go to aiokdb. Each peer gets exactly the seqs of its devices,
/// named as polled (the names checked against the farm's values), so
/// together every seq once.
#[test]
fn routes_across_a_backlog_follow_the_names_rows_were_polled_under() {
    let (_, emitted) = plant_farm();
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let log = dir.path().join("run.log");
    let (tp_port, peer_port) = (free_port(), free_port());
    let sinks = [
        format!("127.0.0.1:{tp_port}"),
        format!("127.0.0.1:{peer_port}"),
    ];
    // Both patterns must match a device under A and under B (a pattern
    // that matches nothing is a config error): device 2 is `line-...`
    // throughout, device 0 becomes one.
    let mut a = Plant::new(emitted, DEVICES, TAGS);
    assert!(a.apply(&Edit::RenameDevice { device: 2 }, emitted));
    let mut b = a.clone();
    assert!(b.apply(&Edit::RenameDevice { device: 0 }, emitted));
    let (farm_glob, line_glob) = ("farm-", "line-");
    assert!(a.devices[0].name.starts_with(farm_glob));
    assert!(b.devices[0].name.starts_with(line_glob));
    let routed = |plant: &Plant| {
        let config = plant.render(emitted, dir.path(), &wal, &sinks);
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text
            .replacen(
                "name = \"tp\"\n",
                &format!("name = \"tp\"\ndevices = [\"{farm_glob}*\"]\n"),
                1,
            )
            .replacen(
                "name = \"tp2\"\n",
                &format!("name = \"tp2\"\ndevices = [\"{line_glob}*\"]\n"),
                1,
            );
        assert_eq!(text.matches("devices = [").count(), 2, "{text}");
        std::fs::write(&config, text).unwrap();
        config
    };

    // Config A, kdb+ down: a backlog, then a clean stop.
    let mut run = RunChild::spawn(&routed(&a), &log);
    run.wait_for_rows(&wal, 0, &a).unwrap();
    run.stop().unwrap();
    let boundary = durable_seq(&wal);

    // Config B, both peers up: the backlog and B's rows.
    let journal = dir.path().join("delivered.journal");
    let tp = stand_in(&sinks[0], &journal);
    let peer = AiokdbPeer::start(peer_port);
    let mut run = RunChild::spawn(&routed(&b), &log);
    run.wait_for_rows(&wal, boundary, &b).unwrap();
    run.stop().unwrap();
    let durable = durable_seq(&wal);
    tp.stop();
    let tp_rows = journal_rows(&journal);
    let peer_rows = peer.finish();

    let (a_device, b_device) = (a.devices[0].name.clone(), b.devices[0].name.clone());
    let epochs = [
        Epoch {
            first_seq: 0,
            plant: a,
        },
        Epoch {
            first_seq: boundary,
            plant: b,
        },
    ];
    let tags = wal_tags(&wal);
    let to_tp = check_routed_rows(emitted, &tp_rows, &epochs, &tags, durable, &|n| {
        n.device.starts_with(farm_glob)
    })
    .unwrap_or_else(|e| panic!("stand-in (`{farm_glob}*`): {e}"));
    let to_peer = check_routed_rows(emitted, &peer_rows, &epochs, &tags, durable, &|n| {
        n.device.starts_with(line_glob)
    })
    .unwrap_or_else(|e| panic!("aiokdb (`{line_glob}*`): {e}"));
    // Device 0's backlog went to the stand-in under its old name, its new
    // rows to aiokdb under the new one, each verified by value.
    assert!(
        to_tp.verified_devices[0].contains(&a_device),
        "no backlog row of {a_device} verified at the stand-in: {to_tp:?}"
    );
    assert!(
        to_peer.verified_devices[1].contains(&b_device),
        "no row of {b_device} verified at aiokdb: {to_peer:?}"
    );
    assert!(
        to_tp.verified[1] > 0 && to_peer.verified[0] > 0,
        "{to_tp:?} {to_peer:?}"
    );
    eprintln!("boundary {boundary}, durable {durable}, stand-in {to_tp:?}, aiokdb {to_peer:?}");
}

#[test]
fn a_reload_applies_edits_in_place_and_refuses_an_invalid_file() {
    let (_, emitted) = plant_farm();
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let log = dir.path().join("run.log");
    let sinks = [free_address()];
    let journal = dir.path().join("delivered.journal");
    let tp = stand_in(&sinks[0], &journal);
    let a = Plant::new(emitted, DEVICES, TAGS);
    let mut b = a.clone();
    for edit in [
        Edit::InsertTag { device: 0, at: 0 },
        Edit::RenameDevice { device: 1 },
        Edit::SwitchProtocol { device: 2 },
    ] {
        assert!(b.apply(&edit, emitted), "{edit:?} does not apply to {b:?}");
    }
    let config = a.render(emitted, dir.path(), &wal, &sinks);
    let mut run = RunChild::spawn(&config, &log);
    run.wait_for_rows(&wal, 0, &a).unwrap();

    // The file becomes B; SIGHUP applies it in place.
    assert_eq!(b.render(emitted, dir.path(), &wal, &sinks), config);
    common::signal(run.child.id(), 1);
    let line = wait_for_log(&mut run, "reloaded ").unwrap();
    eprintln!("{line}");
    let tables = table_seqs(&wal);
    assert_eq!(
        tables.len(),
        2,
        "one tag table per configuration: {tables:?}"
    );
    let boundary = tables[1];
    run.wait_for_rows(&wal, boundary, &b).unwrap();

    // An invalid file is refused with where it is wrong; B keeps polling.
    std::fs::write(&config, "[readers]\nthreads = \"two\"\n").unwrap();
    common::signal(run.child.id(), 1);
    let refusal = wait_for_log(&mut run, "reload refused").unwrap();
    assert!(
        refusal.contains("plant.toml:2:") && refusal.contains("threads"),
        "the refusal does not say where: {refusal}"
    );
    let before = durable_seq(&wal);
    run.wait_for_rows(&wal, before, &b).unwrap();
    assert_eq!(table_seqs(&wal), tables, "a refused reload wrote a table");
    run.stop().unwrap();
    let durable = durable_seq(&wal);
    tp.stop();

    let epochs = [
        Epoch {
            first_seq: 0,
            plant: a,
        },
        Epoch {
            first_seq: boundary,
            plant: b,
        },
    ];
    let rows = journal_rows(&journal);
    let checked = check_rows(emitted, &rows, &epochs, &wal_tags(&wal), durable)
        .unwrap_or_else(|e| panic!("across the reload: {e}"));
    checked.covers(&epochs).unwrap();
    eprintln!("reload: {checked:?}");
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    let device = 0usize..4;
    let at = 0usize..6;
    prop_oneof![
        (device.clone(), at.clone()).prop_map(|(device, at)| Edit::InsertTag { device, at }),
        (device.clone(), at.clone()).prop_map(|(device, at)| Edit::RemoveTag { device, at }),
        (device.clone(), at.clone()).prop_map(|(device, at)| Edit::RenameTag { device, at }),
        device
            .clone()
            .prop_map(|device| Edit::ReorderTags { device }),
        Just(Edit::ReorderDevices),
        device
            .clone()
            .prop_map(|device| Edit::RenameDevice { device }),
        at.prop_map(|at| Edit::AddDevice { at }),
        device
            .clone()
            .prop_map(|device| Edit::RemoveDevice { device }),
        Just(Edit::MoveReaders),
        device.prop_map(|device| Edit::SwitchProtocol { device }),
    ]
}

/// Runs `config` (of `plant`) in-process until the WAL holds its rows from
/// `from_seq` on, calls `before_stop`, and stops with `deadline` for the
/// sink (short while kdb+ is down).
fn run_in_process(
    config: &Path,
    plant: &Plant,
    from_seq: u64,
    deadline: Duration,
    before_stop: impl FnOnce(),
) -> Result<(), String> {
    let config = millrace::config::load(config).map_err(|e| e.to_string())?;
    let options = RuntimeOptions {
        metrics_listen: Some(None),
        stop_deadline: deadline,
    };
    let runtime = Runtime::start(&config, options).map_err(|e| e.to_string())?;
    let limit = Instant::now() + WAIT_LIMIT;
    let reached = loop {
        if run_showed_everything(&config.wal.dir, from_seq, plant) {
            break true;
        }
        if Instant::now() > limit || runtime.failed_sink().is_some() || runtime.writer_failed() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let failed = runtime
        .failed_sink()
        .map(|(n, why)| format!("sink {n}: {why}"));
    before_stop();
    let (_, errors) = runtime.stop();
    if let Some(failed) = failed {
        return Err(failed);
    }
    if !errors.is_empty() {
        let errors: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        return Err(format!("stop: {}", errors.join("; ")));
    }
    if !reached {
        return Err(format!(
            "the WAL never held every device's rows from seq {from_seq}"
        ));
    }
    Ok(())
}

/// Runs the plants `edits` make one after another on one WAL, each run
/// leaving a backlog. kdb+ is down during a run, or up until just before
/// it stops when `outages` says so (the sink then delivers part of the
/// backlog and the next backlog starts at its checkpoint, inside that run's
/// table); the last run has kdb+ up to the end and delivers everything.
fn random_case(edits: &[Edit], outages: &[bool]) -> Result<(), String> {
    let (_, emitted) = plant_farm();
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("wal");
    let sink = free_address();
    let mut plants = vec![Plant::new(emitted, DEVICES, 4)];
    for edit in edits {
        let mut next = plants.last().unwrap().clone();
        // An edit that cannot apply (the last device) is a plain restart.
        next.apply(edit, emitted);
        plants.push(next);
    }
    let mut epochs = Vec::new();
    let mut journals = Vec::new();
    let mut checkpoints = Vec::new();
    for (index, plant) in plants.iter().enumerate() {
        let first_seq = durable_seq(&wal);
        epochs.push(Epoch {
            first_seq,
            plant: plant.clone(),
        });
        // epoll: the io_uring reader's stop drains its ring for about
        // 1.5 s, which is most of a run here; the backend names nothing.
        let config = plant.render_with_backend(
            emitted,
            "epoll",
            dir.path(),
            &wal,
            std::slice::from_ref(&sink),
        );
        let last = index + 1 == plants.len();
        let tp = (last || outages.get(index) == Some(&true)).then(|| {
            journals.push(dir.path().join(format!("delivered.{index}.journal")));
            stand_in(&sink, journals.last().unwrap())
        });
        if last {
            run_in_process(&config, plant, first_seq, WAIT_LIMIT, || {})
                .map_err(|e| format!("run {index}: {e}"))?;
            tp.expect("the last run has kdb+").stop();
        } else {
            let kdb_goes_down = move || drop(tp.map(Tickerplant::stop));
            run_in_process(
                &config,
                plant,
                first_seq,
                Duration::from_millis(50),
                kdb_goes_down,
            )
            .map_err(|e| format!("run {index}: {e}"))?;
            if outages.get(index) == Some(&true) {
                checkpoints.push(common::inspect(&wal)["cursors"][0]["checkpoint"].as_u64());
            }
        }
    }
    let durable = durable_seq(&wal);
    let tags = wal_tags(&wal);
    // Rows kdb+ got but did not acknowledge before it went down come again.
    let rows: Vec<Row> = journals.iter().flat_map(|j| journal_rows(j)).collect();
    let checked =
        check_rows(emitted, &rows, &epochs, &tags, durable).map_err(|e| format!("run: {e}"))?;
    checked.covers(&epochs)?;
    if table_seqs(&wal) != expected_table_seqs(&epochs) {
        return Err(format!(
            "tag tables at {:?}, expected {:?}",
            table_seqs(&wal),
            expected_table_seqs(&epochs)
        ));
    }
    let replayed = dir.path().join("replayed.journal");
    let tp = stand_in("127.0.0.1:0", &replayed);
    let args = ReplayArgs {
        wal: wal.clone(),
        to: tp.local_addr().to_string(),
        from_seq: 0,
        to_seq: u64::MAX,
        table: "plc".into(),
        user: "feed".into(),
        password_env: "MILLRACE_NAMES_TEST_NO_PASSWORD".into(),
        time_type: TimeType::Timespan,
        columns: Schema::DEFAULT,
        gateway: String::new(),
        tls: None,
    };
    let replay = millrace::app::replay::run(&args);
    tp.stop();
    replay.map_err(|e| format!("replay: {e}"))?;
    let again = journal_rows(&replayed);
    check_rows(emitted, &again, &epochs, &tags, durable).map_err(|e| format!("replay: {e}"))?;
    same_names(&rows, &again).map_err(|e| format!("replay named a seq otherwise: {e}"))?;
    let firsts: Vec<u64> = epochs.iter().map(|e| e.first_seq).collect();
    eprintln!(
        "{edits:?}, kdb+ up in runs {outages:?}: epochs at {firsts:?}, checkpoints after \
         kdb+ went down {checkpoints:?}, {} rows, verified {:?}, bad {:?}",
        checked.rows, checked.verified, checked.bad
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 6,
        max_shrink_iters: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_edit_sequences_across_restarts(
        edits in prop::collection::vec(edit_strategy(), 2..=3),
        outages in prop::collection::vec(any::<bool>(), 3),
    ) {
        if let Err(why) = random_case(&edits, &outages) {
            prop_assert!(false, "{why}");
        }
    }
}
