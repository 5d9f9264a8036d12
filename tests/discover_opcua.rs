//! `millrace discover --protocol opcua` against FreeOpcUa's asyncua 2.1.0
//! server (tests/opcua_support/server.py): the CSV lists every variable of
//! the server's `Cell` object with its NodeId, its type and its array
//! length, leaves out the
//! standard nodes of namespace 0, and a configuration that reads it with
//! `tags_csv` passes `check-config`. A start node the server does not know
//! is an error that names it.

mod common;
mod opcua_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// The server's variables (server.py's VALUES) and the type each must get.
const VARIABLES: &[(&str, &str, u32)] = &[
    ("bool", "boolean", 1),
    ("sbyte", "sbyte", 1),
    ("byte", "byte", 1),
    ("int16", "int16", 1),
    ("uint16", "uint16", 1),
    ("int32", "int32", 1),
    ("uint32", "uint32", 1),
    ("int64", "int64", 1),
    ("uint64", "uint64", 1),
    ("float", "float", 1),
    ("double", "double", 1),
    ("string", "string", 1),
    ("datetime", "datetime", 1),
    ("status", "int32", 1),
    ("array", "double", 3),
    ("ramp", "double", 1),
];

fn millrace(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_millrace"))
        .args(args)
        .output()
        .expect("run millrace")
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn the_address_space_becomes_a_tag_csv_that_the_configuration_reads() {
    let port = opcua_support::free_port();
    let _peer = opcua_support::start_peer_with(port, 0, &["many=3"]);
    let url = format!("opc.tcp://127.0.0.1:{port}/");
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("cell.csv");
    let run = millrace(&[
        "discover",
        "--protocol",
        "opcua",
        &url,
        "--prefix",
        "line1.",
        "--out",
        csv.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", text(&run));
    let summary = String::from_utf8_lossy(&run.stdout);
    assert!(
        summary.contains("19 tags written"),
        "16 variables and 3 `many` doubles: {}",
        text(&run)
    );
    assert!(
        summary.contains("standard nodes of namespace 0"),
        "{summary}"
    );

    let written = std::fs::read_to_string(&csv).unwrap();
    let mut lines = written.lines();
    assert_eq!(lines.next(), Some("name,address,type,count"));
    let rows: BTreeMap<String, (String, String, String)> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            assert_eq!(cells.len(), 4, "{line}");
            (
                cells[0].to_string(),
                (
                    cells[1].to_string(),
                    cells[2].to_string(),
                    cells[3].to_string(),
                ),
            )
        })
        .collect();
    let mut want: BTreeMap<String, (String, String, String)> = VARIABLES
        .iter()
        .map(|(name, data_type, count)| {
            (
                format!("line1.Cell.{name}"),
                (
                    format!("ns=2;s=ua.{name}"),
                    data_type.to_string(),
                    count.to_string(),
                ),
            )
        })
        .collect();
    for i in 0..3 {
        want.insert(
            format!("line1.Cell.many{i}"),
            (
                format!("ns=2;s=ua.many.{i}"),
                "double".to_string(),
                "1".to_string(),
            ),
        );
    }
    assert_eq!(rows, want, "{written}");

    write_config(dir.path(), &url);
    let check = millrace(&[
        "check-config",
        dir.path().join("plant.toml").to_str().unwrap(),
    ]);
    assert!(check.status.success(), "{}", text(&check));
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("\ntags: 21\n"),
        "the summary counts the CSV's samples (19 tags, one an array of 3): {}",
        text(&check)
    );

    let unknown = millrace(&[
        "discover",
        "--protocol",
        "opcua",
        &url,
        "--node",
        "ns=2;s=no.such.node",
    ]);
    assert!(!unknown.status.success(), "{}", text(&unknown));
    let said = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        said.contains("ns=2;s=no.such.node") && said.contains("Browse"),
        "{}",
        text(&unknown)
    );
}

fn write_config(dir: &Path, url: &str) {
    let text = format!(
        "[wal]\ndir = \"wal\"\n\n\
         [[sink]]\nname = \"tp\"\nkind = \"kdb\"\naddress = \"127.0.0.1:5010\"\ntable = \"plc\"\n\
         columns = [\"time\", \"sym\", \"device\", \"value\", \"quality\", \"seq\", \"text\"]\n\n\
         [[device]]\nname = \"cell\"\nprotocol = \"opcua\"\naddress = \"{url}\"\n\
         tags_csv = \"cell.csv\"\n"
    );
    std::fs::write(dir.join("plant.toml"), text).unwrap();
}
