//! `emit_farm_config` for S7 and mixed farms: every S7 device table names
//! its port, the farm's rack and slot and the PDU size to ask for; every
//! tags CSV row is the layout's tag, its Step 7 address read back here by a
//! parser of this test's own.
#![cfg(not(millrace_loom))]

use millrace::config::{S7Area, S7Type};
use millrace::farm::emit::tags_dir_for;
use millrace::farm::s7::emit::parse_tag_name;
use millrace::farm::s7::layout::farm_tags;
use millrace::farm::{
    emit_farm_config, EmitOptions, Farm, FarmOptions, FarmProtocol, S7EmitOptions,
};

/// (area, byte, bit) of `DB3.DBX4.5`, `DB1.DBW2`, `MD4`, `I0.1`, `QW6`, ...
fn parse_address(text: &str) -> (S7Area, u32, u8) {
    let (area, rest) = if let Some(rest) = text.strip_prefix("DB") {
        let (db, rest) = rest.split_once(".DB").unwrap();
        (S7Area::Db(db.parse().unwrap()), rest)
    } else {
        let area = match &text[..1] {
            "M" => S7Area::Merker,
            "I" => S7Area::Inputs,
            "Q" => S7Area::Outputs,
            other => panic!("area {other}"),
        };
        (area, &text[1..])
    };
    let rest = rest.trim_start_matches(['X', 'B', 'W', 'D']);
    match rest.split_once('.') {
        Some((byte, bit)) => (area, byte.parse().unwrap(), bit.parse().unwrap()),
        None => (area, rest.parse().unwrap(), 0),
    }
}

/// The width letter an address carries for a type of `size` bytes.
fn width_ok(text: &str, data_type: S7Type) -> bool {
    let letter = match data_type {
        S7Type::Bool => return text.contains('.') && !text.contains(".DBB"),
        t if t.byte_size() == 2 => 'W',
        t if t.byte_size() == 4 => 'D',
        _ => 'B',
    };
    let after_area = text.split_once(".DB").map_or(&text[1..], |(_, r)| r);
    after_area.starts_with(letter)
}

#[test]
fn a_mixed_farm_config_lists_both_kinds_of_device_and_every_s7_tag() {
    let handle = Farm::start(FarmOptions {
        devices: 4,
        protocol: FarmProtocol::Mixed,
        ..FarmOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.toml");
    let tags = 500u32;
    let options = EmitOptions {
        tags_per_device: tags,
        ..EmitOptions::default()
    };
    let s7 = S7EmitOptions {
        rack: 0,
        slot: 2,
        pdu_size: 480,
    };
    emit_farm_config(&path, handle.ports(), FarmProtocol::Mixed, &options, &s7).unwrap();
    let toml = std::fs::read_to_string(&path).unwrap();
    let tables: Vec<&str> = toml.split("[[device]]").skip(1).collect();
    assert_eq!(tables.len(), 4);
    let layout = farm_tags(tags as usize);
    for (device, (table, port)) in (0u32..).zip(tables.iter().zip(handle.ports())) {
        assert!(table.contains(&format!("address = \"127.0.0.1:{port}\"")));
        assert!(table.contains("poll_interval = \"100ms\"") && table.contains("max_inflight = 1"));
        let csv_name = format!("farm-{device:05}.csv");
        assert!(table.contains(&csv_name), "{table}");
        let csv = std::fs::read_to_string(tags_dir_for(&path).join(&csv_name)).unwrap();
        if device % 2 == 0 {
            assert!(table.contains("protocol = \"modbus-tcp\""), "{table}");
            assert!(csv.starts_with("name,area,address,type,order,scale,offset\n"));
            continue;
        }
        for key in [
            "protocol = \"s7\"",
            "rack = 0",
            "slot = 2",
            "pdu_size = 480",
            "timeout = \"1s\"",
        ] {
            assert!(table.contains(key), "{key} in {table}");
        }
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("name,address,type,scale,offset"));
        let rows: Vec<&str> = lines.collect();
        assert_eq!(rows.len(), tags as usize);
        for (index, (row, tag)) in (0u32..).zip(rows.iter().zip(&layout)) {
            let fields: Vec<&str> = row.split(',').collect();
            assert_eq!(fields.len(), 5, "{row}");
            assert_eq!(parse_tag_name(fields[0]), Some((device, index)));
            assert_eq!(
                parse_address(fields[1]),
                (tag.area, tag.byte, tag.bit),
                "{row}"
            );
            assert!(width_ok(fields[1], tag.data_type), "{row}");
            assert_eq!(fields[2], tag.data_type.to_string(), "{row}");
            let known = S7Type::NAMES
                .iter()
                .any(|(name, _)| fields[2].split('[').next() == Some(*name));
            assert!(known, "{row}");
            let scale: f64 = fields[3].parse().unwrap();
            let offset: f64 = fields[4].parse().unwrap();
            assert_eq!((scale, offset), (tag.scale, tag.offset), "{row}");
        }
    }
}
