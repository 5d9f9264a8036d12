//! A real `millrace run` reads, from the EtherNet/IP farm, the path shapes
//! a Logix controller has beyond controller-scope tags and 1-D arrays:
//! program-scoped tags (`Program:Main.X`), dotted structure members
//! (`Motor_7.Speed`, a bit of a member `Motor_7.Starts.12`), elements of a
//! two-dimensional array (`DintGrid[3,7]`, runs across a row's end), and
//! the three together. Every value that reaches the tickerplant stand-in is
//! checked against the farm's table; paths the farm has not (a member it
//! has not, indices outside the grid, one index for a 2-D array) are that
//! tag's bad samples and one log line, while the device's other tags stay
//! good.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use millrace::farm::enip::{check_number, check_text, EnipFarmOptions, FarmTag};
use millrace::farm::s7::Check;
use millrace::farm::{Farm, FarmOptions, FarmProtocol};
use millrace::kdb::{RowRecorder, Tickerplant, TickerplantOptions};

/// Config tags: name, address, type, count.
const TAGS: &[(&str, &str, &str, u16)] = &[
    ("prog_dint", "Program:Main.Dint_3", "dint", 1),
    ("prog_reals", "Program:Main.RealArr[10]", "real", 5),
    ("prog_text", "Program:Main.Str_4", "string", 1),
    ("speed", "Motor_7.Speed", "real", 1),
    ("starts", "Motor_7.Starts", "dint", 1),
    ("starts_bit", "Motor_7.Starts.12", "bool", 1),
    ("load", "Motor_7.Load", "lreal", 1),
    ("prog_motor", "Program:Main.Motor_2.Load", "lreal", 1),
    ("grid", "DintGrid[3,7]", "dint", 4),
    ("grid_row_end", "IntGrid[1,62]", "int", 3),
    ("grid_last", "RealGrid[63,62]", "real", 2),
    ("prog_grid", "Program:Main.UlintGrid[9,0]", "ulint", 2),
    // Controller scope beside them: the same name as `prog_dint`.
    ("dint", "Dint_3", "dint", 1),
];

/// Tags the farm refuses: no such member, a row past the grid, one index
/// for a two-dimensional array.
const BAD: &[(&str, &str, &str, u16)] = &[
    ("no_member", "Motor_7.Torque", "real", 1),
    ("outside", "DintGrid[64,0]", "dint", 1),
    ("one_index", "DintGrid[3]", "dint", 1),
];

fn config(tp: &str, port: u16) -> String {
    let mut text = format!(
        "[metrics]\nlisten = \"off\"\n\n\
         [wal]\ndir = \"wal\"\nsegment_size = \"64KiB\"\nquota = \"64MiB\"\n\
         commit_interval = \"5ms\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"{tp}\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\
         batch_rows = 500\nbatch_age = \"5ms\"\n\n\
         [[device]]\nname = \"farm\"\nprotocol = \"ethernet-ip\"\n\
         address = \"127.0.0.1:{port}\"\npoll_interval = \"50ms\"\ntimeout = \"2s\"\n"
    );
    for (name, address, data_type, count) in TAGS.iter().chain(BAD) {
        text.push_str(&format!(
            "\n[[device.tag]]\nname = \"farm.{name}\"\naddress = \"{address}\"\n\
             type = \"{data_type}\"\ncount = {count}\n"
        ));
    }
    text
}

/// Every sample name of `TAGS` and the farm tag it reads.
fn expected() -> BTreeMap<String, FarmTag> {
    let mut want = BTreeMap::new();
    for (name, address, _, count) in TAGS {
        let first =
            FarmTag::of_address(address).unwrap_or_else(|| panic!("{address} is a farm tag"));
        for i in 0..u32::from(*count) {
            let sym = if *count == 1 {
                format!("farm.{name}")
            } else {
                format!("farm.{name}[{i}]")
            };
            let tag = FarmTag {
                element: first.element + i,
                ..first
            };
            want.insert(sym, tag);
        }
    }
    want
}

#[test]
fn program_scope_members_and_grids_are_read_from_the_farm_and_check() {
    for (_, address, _, _) in BAD {
        // What the farm refuses is not a farm tag to the checker either,
        // except a row past the grid (its range check refuses the read).
        let known = FarmTag::of_address(address).is_some();
        assert_eq!(known, address.starts_with("DintGrid[64"), "{address}");
    }
    let farm = Farm::start(FarmOptions {
        devices: 1,
        protocol: FarmProtocol::EthernetIp,
        enip: EnipFarmOptions::default(),
        ..FarmOptions::default()
    })
    .expect("start the EtherNet/IP farm");
    let port = farm.addr(0).unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let recorder = Arc::new(Mutex::new(RowRecorder::new(2_000_000)));
    let options = TickerplantOptions {
        recorder: Some(recorder.clone()),
        ..Default::default()
    };
    let tp = Tickerplant::bind("127.0.0.1:0", options).unwrap();
    let path = dir.path().join("plant.toml");
    std::fs::write(&path, config(&tp.local_addr().to_string(), port)).unwrap();
    let log = dir.path().join("stderr.log");
    let mut run = Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(["run", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start millrace run");

    let want = expected();
    let bad: Vec<String> = BAD.iter().map(|(n, ..)| format!("farm.{n}")).collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let rows = recorder.lock().unwrap().rows.clone();
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, sym, _, _) in &rows {
            *seen.entry(sym.as_str()).or_default() += 1;
        }
        let all = want
            .keys()
            .chain(&bad)
            .all(|s| seen.get(s.as_str()).copied().unwrap_or(0) >= 3);
        if all {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 90 s: {} rows; {}",
            rows.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    common::signal(run.id(), 15);
    let status = common::wait_exit(&mut run, Duration::from_secs(30));
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert!(status.success(), "{stderr}");
    tp.stop();
    let recorded = recorder.lock().unwrap();

    let mut good = 0;
    for (_, sym, value, seq) in &recorded.rows {
        if bad.contains(sym) {
            assert!(value.is_nan(), "{sym} at seq {seq}: {value}");
            continue;
        }
        let tag = want.get(sym).unwrap_or_else(|| panic!("a row for {sym}"));
        if tag.symbol.data_type.is_text() {
            continue; // checked from its text below
        }
        let check = check_number(0, tag, *value);
        assert!(
            matches!(check, Check::Served(_)),
            "{sym} at seq {seq}: {value} is not the farm's {tag:?}"
        );
        good += 1;
    }
    let mut texts = 0;
    for (_, sym, seq, text) in &recorded.texts {
        let tag = want.get(sym).unwrap_or_else(|| panic!("a text for {sym}"));
        let check = check_text(0, tag, text.as_bytes());
        assert!(
            matches!(check, Check::Served(_)),
            "{sym} at seq {seq}: {text}"
        );
        texts += 1;
    }
    assert!(good >= 3 * (want.len() - 1), "{good} good values");
    assert!(texts >= 3, "{texts} texts");
    // The program's Dint_3 is not the controller's: each checked against
    // its own symbol above, and the two differ.
    let prog = FarmTag::of_address("Program:Main.Dint_3").unwrap();
    let controller = FarmTag::of_address("Dint_3").unwrap();
    assert_ne!(prog.symbol.instance, controller.symbol.instance);
    for (name, status) in [
        ("farm.no_member", "0x05"),
        ("farm.outside", "0xff"),
        ("farm.one_index", "0x04"),
    ] {
        let line = stderr.lines().find(|l| l.contains(name));
        let line = line.unwrap_or_else(|| panic!("no log line for {name}: {stderr}"));
        assert!(line.contains(status), "{name}: {line}");
    }
}
