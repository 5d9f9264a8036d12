//! `emit_config` writes a configuration that millrace's own loader accepts
//! and that points at the running farm, tag for tag.
#![cfg(not(millrace_loom))]

use millrace::config::{self, Area, DataType};
use millrace::farm::emit::{parse_tag_name, tags_dir_for};
use millrace::farm::{emit_config, EmitOptions, Farm, FarmOptions};

#[test]
fn emitted_config_loads_and_points_at_the_farm() {
    let handle = Farm::start(FarmOptions {
        devices: 3,
        ..FarmOptions::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plant.toml");
    let options = EmitOptions {
        tags_per_device: 7,
        wal_dir: dir.path().join("wal \"quoted\""),
        ..EmitOptions::default()
    };
    emit_config(&path, handle.ports(), &options).unwrap();
    assert!(tags_dir_for(&path).join("farm-00002.csv").exists());

    let config = config::load(&path).unwrap_or_else(|e| panic!("emitted config rejected: {e}"));
    assert_eq!(config.wal.dir, options.wal_dir);
    assert_eq!(config.sinks.len(), 1);
    assert_eq!(config.sinks[0].address, "127.0.0.1:5010");
    assert_eq!(config.devices.len(), 3);
    for (device, (dc, port)) in (0u32..).zip(config.devices.iter().zip(handle.ports())) {
        assert_eq!(dc.address, format!("127.0.0.1:{port}"));
        assert_eq!(dc.tag_count(), 7);
        for (address, tag) in (0u16..).zip(&dc.modbus_part().unwrap().tags) {
            assert_eq!(parse_tag_name(&tag.name), Some((device, address)));
            assert_eq!(
                (tag.area, tag.address, tag.data_type),
                (Area::Holding, address, DataType::Uint16)
            );
            assert!(!tag.is_scaled());
        }
    }
}
