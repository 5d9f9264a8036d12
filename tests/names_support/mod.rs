//! The plant model behind tests/names_across_edits.rs: configurations built
//! from the config `millrace::farm::emit_farm_config` writes for a mixed
//! farm (even devices Modbus, odd devices S7) and edited (tags and devices
//! inserted, removed, renamed, reordered; a device moved to another reader;
//! a Modbus device replaced by an S7 one of the same name, or back), and a
//! check of delivered rows that does not trust millrace's own naming.
//!
//! Why the check is independent: the farm's values are a function of
//! (device, tag, answer counter) (`farm::values`, `farm::s7::check`), so a
//! delivered row `(sym, device, value, seq)` is verified by looking `sym`
//! up in the configuration that was in force when `seq` was polled (this
//! model's copy of it, never millrace's tag tables) and checking `value`
//! against the farm device and tag that configuration maps `sym` to. A row
//! named with another configuration's table names the wrong register (or a
//! name that configuration does not have) and fails with probability about
//! 255/256 (the model only uses tags of two bytes or more, whose value
//! carries the answer counter and a check byte). Rows of bad quality carry
//! no value; their names are checked exactly against the tag id the WAL
//! holds for their seq, through the model's table (tag id = position in
//! device order, then tag order).
//!
//! Which configuration was in force at a seq is known without millrace too:
//! a run starts at the WAL's durable end after the previous clean stop.
#![allow(dead_code)] // each test uses a different part

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use millrace::farm::s7::{self, Check, FarmTag};
use millrace::farm::{self, DeviceProtocol, EmitOptions, FarmProtocol, S7EmitOptions};
use millrace::kdb::{Data, DecodeLimits, K};
use millrace::Quality;

/// What the farm's devices speak: even Modbus, odd S7.
pub const FARM_PROTOCOL: FarmProtocol = FarmProtocol::Mixed;
/// Tags emitted per farm device: enough S7 tags to hold `TAG_CHOICES`
/// numeric ones of two bytes or more (the layout deals out strings and
/// bools among them).
const EMITTED_TAGS: u32 = 48;
/// Tags the model may poll per farm device (room for inserted tags).
pub const TAG_CHOICES: usize = 12;
/// A placeholder the emitted config carries where the sink address goes.
const SINK_PLACEHOLDER: &str = "sink.invalid:5010";
/// Likewise for the WAL directory.
const WAL_PLACEHOLDER: &str = "WAL-DIR-PLACEHOLDER";

/// The farm is a mixed one: Modbus and S7 devices only.
const MIXED_ONLY: &str = "a mixed farm has Modbus and S7 devices only";

fn protocol_of(farm_device: u32) -> DeviceProtocol {
    FARM_PROTOCOL.device(farm_device)
}

/// The emitted config of a farm cut into the pieces plants are rendered
/// from: its header, each farm device's `[[device]]` block, and each farm
/// device's CSV header and rows (by emitted tag index).
pub struct Emitted {
    header: String,
    blocks: Vec<String>,
    csv_headers: Vec<String>,
    /// Per farm device, per emitted tag index: the CSV row after the name.
    rows: Vec<Vec<String>>,
    /// Emitted tag indices the model polls, per protocol: Modbus
    /// registers 0.., S7 tags of two bytes or more that are not text.
    modbus_choices: Vec<u32>,
    s7_choices: Vec<u32>,
    /// Every S7 device's emitted tags (`s7::layout::farm_tags`).
    s7_tags: Vec<FarmTag>,
}

impl Emitted {
    /// Emits the config of a mixed farm on `ports` and keeps its pieces.
    pub fn new(ports: &[u16]) -> Emitted {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("plant.toml");
        let options = EmitOptions {
            tags_per_device: EMITTED_TAGS,
            wal_dir: PathBuf::from(WAL_PLACEHOLDER),
            sink_address: SINK_PLACEHOLDER.into(),
            poll_interval: "20ms".into(),
            reader_threads: 1,
        };
        let s7_options = S7EmitOptions::default();
        farm::emit_farm_config(&path, ports, FARM_PROTOCOL, &options, &s7_options)
            .expect("emit the farm config");
        let text = std::fs::read_to_string(&path).unwrap();
        let mut parts = text.split("\n[[device]]\n");
        let header = parts.next().unwrap().to_string();
        let blocks: Vec<String> = parts.map(str::to_string).collect();
        assert_eq!(blocks.len(), ports.len());
        let mut csv_headers = Vec::new();
        let mut rows = Vec::new();
        for device in 0..ports.len() as u32 {
            let csv = farm::emit::tags_dir_for(&path)
                .join(format!("{}.csv", farm::emit::device_name(device)));
            let csv = std::fs::read_to_string(csv).unwrap();
            let mut lines = csv.lines();
            csv_headers.push(lines.next().unwrap().to_string());
            let mut device_rows = Vec::new();
            for (index, line) in (0u32..).zip(lines) {
                let (name, rest) = line.split_once(',').unwrap();
                assert_eq!(name, tag_name(device, index), "emitted names by index");
                device_rows.push(rest.to_string());
            }
            rows.push(device_rows);
        }
        let s7_tags = s7::layout::farm_tags(EMITTED_TAGS as usize);
        let s7_choices: Vec<u32> = (0u32..)
            .zip(&s7_tags)
            .filter(|(_, t)| !t.data_type.is_text() && t.data_type.byte_size() >= 2)
            .map(|(index, _)| index)
            .take(TAG_CHOICES)
            .collect();
        assert_eq!(
            s7_choices.len(),
            TAG_CHOICES,
            "the S7 layout's numeric tags"
        );
        Emitted {
            header,
            blocks,
            csv_headers,
            rows,
            modbus_choices: (0..TAG_CHOICES as u32).collect(),
            s7_choices,
            s7_tags,
        }
    }

    pub fn farm_devices(&self) -> u32 {
        self.blocks.len() as u32
    }

    /// The emitted tag indices the model polls on `farm_device`.
    fn choices(&self, farm_device: u32) -> &[u32] {
        match protocol_of(farm_device) {
            DeviceProtocol::Modbus => &self.modbus_choices,
            DeviceProtocol::S7 => &self.s7_choices,
            DeviceProtocol::EthernetIp | DeviceProtocol::Opcua => unreachable!("{MIXED_ONLY}"),
        }
    }

    /// Whether `value` is what tag `index` of `farm_device` serves.
    fn value_fits(&self, farm_device: u32, index: u32, value: f64) -> bool {
        match protocol_of(farm_device) {
            DeviceProtocol::Modbus => {
                value.fract() == 0.0
                    && (0.0..=65535.0).contains(&value)
                    && farm::verify_register(farm_device, index as u16, value as u16)
            }
            DeviceProtocol::S7 => self
                .s7_tags
                .get(index as usize)
                .is_some_and(|tag| s7::check_number(farm_device, tag, value) != Check::Wrong),
            DeviceProtocol::EthernetIp | DeviceProtocol::Opcua => unreachable!("{MIXED_ONLY}"),
        }
    }
}

/// The name the emitted config gives tag `index` of `farm_device`.
fn tag_name(farm_device: u32, index: u32) -> String {
    match protocol_of(farm_device) {
        DeviceProtocol::Modbus => farm::emit::tag_name(farm_device, index as u16),
        DeviceProtocol::S7 => s7::emit::tag_name(farm_device, index),
        DeviceProtocol::EthernetIp | DeviceProtocol::Opcua => unreachable!("{MIXED_ONLY}"),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub name: String,
    /// Its emitted tag index on the device's farm device (a Modbus
    /// register address, an S7 layout index).
    pub index: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    /// The farm device it polls (which decides its protocol).
    pub farm: u32,
    pub tags: Vec<Tag>,
}

/// One configuration, as this test knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plant {
    pub threads: usize,
    pub devices: Vec<Device>,
    /// Makes every new name unique over the plant's whole history.
    fresh: u32,
}

/// What a tag id means under one plant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub sym: String,
    pub device: String,
    pub farm: u32,
    pub index: u32,
}

impl Plant {
    /// Farm devices `0..devices`, their first `tags` choices each, named
    /// as emitted.
    pub fn new(emitted: &Emitted, devices: u32, tags: usize) -> Plant {
        let devices = (0..devices)
            .map(|d| fresh_device(emitted, d, tags))
            .collect();
        Plant {
            threads: 1,
            devices,
            fresh: 0,
        }
    }

    /// Every sample name in tag id order: devices in order, tags in order.
    pub fn names(&self) -> Vec<Named> {
        let mut names = Vec::new();
        for device in &self.devices {
            for tag in &device.tags {
                names.push(Named {
                    sym: tag.name.clone(),
                    device: device.name.clone(),
                    farm: device.farm,
                    index: tag.index,
                });
            }
        }
        names
    }

    /// Writes `dir/plant.toml` and its tag CSVs; returns the config path.
    /// One kdb+ sink per address in `sinks`.
    pub fn render(&self, emitted: &Emitted, dir: &Path, wal: &Path, sinks: &[String]) -> PathBuf {
        self.render_with_backend(emitted, "auto", dir, wal, sinks)
    }

    /// `render` with `[readers] backend = "{backend}"`.
    pub fn render_with_backend(
        &self,
        emitted: &Emitted,
        backend: &str,
        dir: &Path,
        wal: &Path,
        sinks: &[String],
    ) -> PathBuf {
        let config = dir.join("plant.toml");
        let tags_dir = farm::emit::tags_dir_for(&config);
        std::fs::create_dir_all(&tags_dir).unwrap();
        let (first, more) = sinks.split_first().expect("a sink");
        let mut text = edit(
            &emitted.header,
            &[
                ("threads = 1\n", &format!("threads = {}\n", self.threads)),
                (SINK_PLACEHOLDER, first),
                (WAL_PLACEHOLDER, wal.to_str().unwrap()),
                ("listen = \"127.0.0.1:9187\"", "listen = \"off\""),
                ("segment_size = \"64MiB\"", "segment_size = \"1MiB\""),
                ("batch_rows = 10000", "batch_rows = 500"),
                ("backend = \"auto\"", &format!("backend = \"{backend}\"")),
            ],
        );
        let sink_block = &text[text.find("[[sink]]").expect("a sink table")..];
        let mut extra = String::new();
        for (index, address) in more.iter().enumerate() {
            extra += "\n";
            extra += &edit(
                sink_block,
                &[
                    (
                        &format!("address = \"{first}\""),
                        &format!("address = \"{address}\""),
                    ),
                    ("name = \"tp\"", &format!("name = \"tp{}\"", index + 2)),
                ],
            );
        }
        text += &extra;
        for device in &self.devices {
            let emitted_name = farm::emit::device_name(device.farm);
            let block = edit(
                &emitted.blocks[device.farm as usize],
                &[(
                    &format!("name = \"{emitted_name}\""),
                    &format!("name = \"{}\"", device.name),
                )],
            );
            text.push_str("\n[[device]]\n");
            text.push_str(&block);
            let mut csv = format!("{}\n", emitted.csv_headers[device.farm as usize]);
            for tag in &device.tags {
                let row = &emitted.rows[device.farm as usize][tag.index as usize];
                csv.push_str(&format!("{},{row}\n", tag.name));
            }
            std::fs::write(tags_dir.join(format!("{emitted_name}.csv")), csv).unwrap();
        }
        std::fs::write(&config, text).unwrap();
        config
    }

    fn fresh_name(&mut self, what: &str) -> String {
        self.fresh += 1;
        format!("{what}{:03}", self.fresh)
    }

    /// A farm device no device of the plant polls, of `protocol` if given.
    fn unused_farm(&self, emitted: &Emitted, protocol: Option<DeviceProtocol>) -> Option<u32> {
        (0..emitted.farm_devices()).find(|f| {
            self.devices.iter().all(|d| d.farm != *f)
                && protocol.is_none_or(|p| protocol_of(*f) == p)
        })
    }

    /// Applies `edit` (indices are taken modulo what exists); false when it
    /// cannot apply here (the last tag or device, no free tag or device).
    pub fn apply(&mut self, edit: &Edit, emitted: &Emitted) -> bool {
        let n = self.devices.len();
        match *edit {
            Edit::InsertTag { device, at } => {
                let d = &self.devices[device % n];
                let Some(index) = emitted
                    .choices(d.farm)
                    .iter()
                    .copied()
                    .find(|i| d.tags.iter().all(|t| t.index != *i))
                else {
                    return false;
                };
                let name = self.fresh_name("inserted");
                let tags = &mut self.devices[device % n].tags;
                tags.insert(at % (tags.len() + 1), Tag { name, index });
            }
            Edit::RemoveTag { device, at } => {
                let tags = &mut self.devices[device % n].tags;
                if tags.len() < 2 {
                    return false;
                }
                tags.remove(at % tags.len());
            }
            Edit::RenameTag { device, at } => {
                let name = self.fresh_name("renamed");
                let tags = &mut self.devices[device % n].tags;
                let at = at % tags.len();
                tags[at].name = name;
            }
            Edit::ReorderTags { device } => {
                let tags = &mut self.devices[device % n].tags;
                if tags.len() < 2 {
                    return false;
                }
                tags.reverse();
            }
            Edit::ReorderDevices => {
                if n < 2 {
                    return false;
                }
                self.devices.rotate_left(1);
            }
            Edit::RenameDevice { device } => {
                self.devices[device % n].name = self.fresh_name("line-");
            }
            Edit::AddDevice { at } => {
                let Some(farm) = self.unused_farm(emitted, None) else {
                    return false;
                };
                let mut added = fresh_device(emitted, farm, 4);
                // Its emitted name may be taken by a device that was
                // switched to another farm device under its name.
                if self.devices.iter().any(|d| d.name == added.name) {
                    added.name = self.fresh_name("line-");
                }
                self.devices.insert(at % (n + 1), added);
            }
            Edit::RemoveDevice { device } => {
                if n < 2 {
                    return false;
                }
                self.devices.remove(device % n);
            }
            Edit::MoveReaders => self.threads = 3 - self.threads,
            Edit::SwitchProtocol { device } => {
                let d = &self.devices[device % n];
                let other = match protocol_of(d.farm) {
                    DeviceProtocol::Modbus => DeviceProtocol::S7,
                    DeviceProtocol::S7 => DeviceProtocol::Modbus,
                    DeviceProtocol::EthernetIp | DeviceProtocol::Opcua => {
                        unreachable!("{MIXED_ONLY}")
                    }
                };
                let Some(farm) = self.unused_farm(emitted, Some(other)) else {
                    return false;
                };
                // The same device name, on a PLC of the other protocol,
                // with that PLC's tags.
                let replaced = fresh_device(emitted, farm, d.tags.len());
                self.devices[device % n] = Device {
                    name: d.name.clone(),
                    ..replaced
                };
            }
        }
        true
    }
}

/// Farm device `farm_index` with its first `tags` choices, named as emitted.
fn fresh_device(emitted: &Emitted, farm_index: u32, tags: usize) -> Device {
    Device {
        name: farm::emit::device_name(farm_index),
        farm: farm_index,
        tags: emitted
            .choices(farm_index)
            .iter()
            .take(tags)
            .map(|&index| Tag {
                name: tag_name(farm_index, index),
                index,
            })
            .collect(),
    }
}

fn edit(text: &str, edits: &[(&str, &str)]) -> String {
    let mut text = text.to_string();
    for (from, to) in edits {
        assert!(text.contains(from), "{from:?} not in the emitted config");
        text = text.replacen(from, to, 1);
    }
    text
}

/// One configuration edit between two runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// A tag the device does not poll yet, as CSV row `at`.
    InsertTag {
        device: usize,
        at: usize,
    },
    RemoveTag {
        device: usize,
        at: usize,
    },
    RenameTag {
        device: usize,
        at: usize,
    },
    /// The device's CSV rows reversed.
    ReorderTags {
        device: usize,
    },
    /// The first `[[device]]` block moved to the end.
    ReorderDevices,
    RenameDevice {
        device: usize,
    },
    /// A farm device not polled yet (4 tags), as block `at`.
    AddDevice {
        at: usize,
    },
    RemoveDevice {
        device: usize,
    },
    /// `[readers] threads` 1 <-> 2: every other device on another reader.
    MoveReaders,
    /// The device, under its name, polls a PLC of the other protocol
    /// (Modbus -> S7 or S7 -> Modbus), that PLC's tags.
    SwitchProtocol {
        device: usize,
    },
}

/// Short enough to read in a shrunk failure: `insert tag (device 0, row 0)`.
impl fmt::Debug for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Edit::InsertTag { device, at } => write!(f, "insert tag (device {device}, row {at})"),
            Edit::RemoveTag { device, at } => write!(f, "remove tag (device {device}, row {at})"),
            Edit::RenameTag { device, at } => write!(f, "rename tag (device {device}, row {at})"),
            Edit::ReorderTags { device } => write!(f, "reverse tags (device {device})"),
            Edit::ReorderDevices => write!(f, "first device to the end"),
            Edit::RenameDevice { device } => write!(f, "rename device {device}"),
            Edit::AddDevice { at } => write!(f, "add device (block {at})"),
            Edit::RemoveDevice { device } => write!(f, "remove device {device}"),
            Edit::MoveReaders => write!(f, "reader threads 1 <-> 2"),
            Edit::SwitchProtocol { device } => write!(f, "switch protocol (device {device})"),
        }
    }
}

/// A configuration and the first seq polled under it.
#[derive(Clone, Debug)]
pub struct Epoch {
    pub first_seq: u64,
    pub plant: Plant,
}

/// One delivered row, as the receiving peer decoded it.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub sym: String,
    pub device: String,
    /// `None`: kdb+'s float null (a bad sample).
    pub value: Option<f64>,
    pub quality: i32,
    pub seq: i64,
}

/// What a check found, per epoch.
#[derive(Clone, Debug, Default)]
pub struct Checked {
    pub rows: u64,
    /// Good rows whose value matched the tag their name maps to.
    pub verified: Vec<u64>,
    /// The devices with such a row.
    pub verified_devices: Vec<BTreeSet<String>>,
    /// Bad-quality rows (names checked, no value).
    pub bad: Vec<u64>,
}

impl Checked {
    /// Every device of every epoch has a row verified by value: no
    /// configuration, and no device of one, went unchecked.
    pub fn covers(&self, epochs: &[Epoch]) -> Result<(), String> {
        for (index, epoch) in epochs.iter().enumerate() {
            let unchecked: Vec<&str> = epoch
                .plant
                .devices
                .iter()
                .map(|d| d.name.as_str())
                .filter(|name| !self.verified_devices[index].contains(*name))
                .collect();
            if !unchecked.is_empty() {
                return Err(format!(
                    "epoch {index}: no row of {unchecked:?} was verified: {self:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Checks `rows` against the plants in force by seq: every seq of
/// `0..durable` arrived, nothing else did; every row's name and device are
/// the ones its plant gives the tag id the WAL holds for its seq
/// (`wal_tags`), and a good row's value is the farm's for the tag its name
/// maps to under that plant. Returns the problems, the first few spelled
/// out.
pub fn check_rows(
    emitted: &Emitted,
    rows: &[Row],
    epochs: &[Epoch],
    wal_tags: &[u32],
    durable: u64,
) -> Result<Checked, String> {
    check_routed_rows(emitted, rows, epochs, wal_tags, durable, &|_| true)
}

/// `check_rows` for a sink that takes only some devices: the seqs of
/// `0..durable` whose sample, under the plant in force at its seq, belongs
/// to a device `takes` accepts must all arrive, and no other seq may.
pub fn check_routed_rows(
    emitted: &Emitted,
    rows: &[Row],
    epochs: &[Epoch],
    wal_tags: &[u32],
    durable: u64,
    takes: &dyn Fn(&Named) -> bool,
) -> Result<Checked, String> {
    assert_eq!(
        wal_tags.len() as u64,
        durable,
        "the WAL walk and its durable end disagree"
    );
    let tables: Vec<Vec<Named>> = epochs.iter().map(|e| e.plant.names()).collect();
    let by_name: Vec<HashMap<&str, &Named>> = tables
        .iter()
        .map(|t| t.iter().map(|n| (n.sym.as_str(), n)).collect())
        .collect();
    let mut checked = Checked {
        verified: vec![0; epochs.len()],
        verified_devices: vec![BTreeSet::new(); epochs.len()],
        bad: vec![0; epochs.len()],
        ..Checked::default()
    };
    let mut seen = vec![false; durable as usize];
    let mut problems = Vec::new();
    for row in rows {
        checked.rows += 1;
        let Some(seq) = u64::try_from(row.seq).ok().filter(|s| *s < durable) else {
            problems.push(format!(
                "seq {} is beyond the WAL's durable end {durable}",
                row.seq
            ));
            continue;
        };
        seen[seq as usize] = true;
        let epoch = epochs
            .iter()
            .rposition(|e| e.first_seq <= seq)
            .expect("epoch 0 starts at 0");
        let Some(expected) = tables[epoch].get(wal_tags[seq as usize] as usize) else {
            problems.push(format!(
                "seq {seq}: tag id {} is not in epoch {epoch}",
                wal_tags[seq as usize]
            ));
            continue;
        };
        if !takes(expected) {
            problems.push(format!(
                "seq {seq} (epoch {epoch}): polled as {}/{}, a device this sink does not take",
                expected.device, expected.sym
            ));
            continue;
        }
        if (row.sym.as_str(), row.device.as_str())
            != (expected.sym.as_str(), expected.device.as_str())
        {
            problems.push(format!(
                "seq {seq} (epoch {epoch}): delivered as {}/{}, polled as {}/{}",
                row.device, row.sym, expected.device, expected.sym
            ));
            continue;
        }
        if row.quality != Quality::GOOD.0 as i32 {
            checked.bad[epoch] += 1;
            continue;
        }
        // The name alone, under the plant in force, must explain the value.
        let named = by_name[epoch].get(row.sym.as_str());
        let fits = match (named, row.value) {
            (Some(n), Some(v)) => emitted.value_fits(n.farm, n.index, v),
            _ => false,
        };
        if fits {
            checked.verified[epoch] += 1;
            checked.verified_devices[epoch].insert(row.device.clone());
        } else {
            problems.push(format!(
                "seq {seq} (epoch {epoch}): value {:?} is not what {} reads",
                row.value, row.sym
            ));
        }
    }
    let wanted = |seq: usize| {
        let epoch = epochs
            .iter()
            .rposition(|e| e.first_seq <= seq as u64)
            .expect("epoch 0 starts at 0");
        tables[epoch].get(wal_tags[seq] as usize).is_some_and(takes)
    };
    let missing: Vec<usize> = (0..seen.len()).filter(|&s| !seen[s] && wanted(s)).collect();
    if !missing.is_empty() {
        problems.push(format!(
            "{} of {durable} seqs never arrived, the first {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        ));
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        let shown: Vec<&String> = problems.iter().take(8).collect();
        Err(format!("{} problems, first: {shown:#?}", problems.len()))
    }
}

/// Two deliveries of one WAL name every seq alike (the first row of each seq).
pub fn same_names(first: &[Row], second: &[Row]) -> Result<(), String> {
    let names = |rows: &[Row]| -> BTreeMap<i64, (String, String)> {
        let mut m = BTreeMap::new();
        for r in rows {
            m.entry(r.seq)
                .or_insert_with(|| (r.sym.clone(), r.device.clone()));
        }
        m
    };
    let (a, b) = (names(first), names(second));
    if a.len() != b.len() {
        return Err(format!("{} seqs against {}", a.len(), b.len()));
    }
    match a.iter().zip(&b).find(|(x, y)| x != y) {
        Some((x, y)) => Err(format!("{x:?} against {y:?}")),
        None => Ok(()),
    }
}

/// The tag id of every durable seq, from the WAL (`0..end`).
pub fn wal_tags(wal: &Path) -> Vec<u32> {
    let mut tags = Vec::new();
    let walked = millrace::wal::replay::for_each_frame(wal, 0, u64::MAX, |first, samples, _| {
        assert_eq!(first, tags.len() as u64, "frames are contiguous");
        tags.extend(samples.iter().map(|s| s.tag_id().0));
        true
    })
    .expect("walk the WAL");
    assert_eq!(walked.stopped_at, None);
    tags
}

/// Whether every device of `plant` has a good sample at or after
/// `from_seq` in the WAL: a run has then shown each of its names with a
/// value to check.
pub fn every_device_polled(wal: &Path, from_seq: u64, plant: &Plant) -> bool {
    let names = plant.names();
    let mut seen: Vec<&str> = Vec::new();
    let walked = millrace::wal::replay::for_each_frame(wal, from_seq, u64::MAX, |_, samples, _| {
        for s in samples.iter().filter(|s| s.quality == Quality::GOOD.0) {
            if let Some(n) = names.get(s.tag_id().0 as usize) {
                if !seen.contains(&n.device.as_str()) {
                    seen.push(&n.device);
                }
            }
        }
        true
    });
    walked.is_ok() && seen.len() == plant.devices.len()
}

/// First seqs of the `tags.<SEQ>.tsv` files in `wal`.
pub fn table_seqs(wal: &Path) -> Vec<u64> {
    let mut seqs: Vec<u64> = std::fs::read_dir(wal)
        .unwrap()
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("tags.")?
                .strip_suffix(".tsv")?
                .parse()
                .ok()
        })
        .collect();
    seqs.sort_unstable();
    seqs
}

/// The tables that must be on disk for `epochs`: one where the names
/// changed (a run under the same names writes none).
pub fn expected_table_seqs(epochs: &[Epoch]) -> Vec<u64> {
    let mut seqs = Vec::new();
    let mut last: Option<Vec<Named>> = None;
    for e in epochs {
        let names = e.plant.names();
        let sames = last.as_ref().is_some_and(|l| {
            l.iter()
                .zip(&names)
                .all(|(a, b)| (&a.sym, &a.device) == (&b.sym, &b.device))
                && l.len() == names.len()
        });
        if !sames {
            seqs.push(e.first_seq);
        }
        last = Some(names);
    }
    seqs
}

/// Every row of every `.u.upd` in a stand-in's tick.q journal.
pub fn journal_rows(path: &Path) -> Vec<Row> {
    let bytes = std::fs::read(path).expect("read the stand-in's journal");
    let limits = DecodeLimits {
        message_bytes_max: 64 << 20,
        ..DecodeLimits::default()
    };
    let mut at = millrace::kdb::journal::JOURNAL_HEADER_SIZE;
    let mut rows = Vec::new();
    while at < bytes.len() {
        let (k, used) = millrace::kdb::decode::decode_prefix(&bytes[at..], true, &limits)
            .expect("a journal chunk decodes");
        at += used;
        let K::List { items, .. } = k else {
            panic!("a journal chunk is (`upd;`table;columns)")
        };
        let K::List { items: columns, .. } = &items[2] else {
            panic!("columns as a general list")
        };
        rows.extend(update_rows(columns));
    }
    rows
}

fn update_rows(columns: &[K]) -> Vec<Row> {
    let data = |i: usize| match &columns[i] {
        K::Vector { data, .. } => data,
        other => panic!("column {i} is not a vector: {other:?}"),
    };
    let (
        Data::Symbols(syms),
        Data::Symbols(devices),
        Data::Floats(values),
        Data::Ints(q),
        Data::Longs(seqs),
    ) = (data(1), data(2), data(3), data(4), data(5))
    else {
        panic!("columns are time, sym, device, value, quality, seq")
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).expect("UTF-8 names");
    (0..syms.len())
        .map(|i| Row {
            sym: text(syms.get(i).unwrap()),
            device: text(devices.get(i).unwrap()),
            value: Some(values[i]).filter(|v| !v.is_nan()),
            quality: q[i],
            seq: seqs[i],
        })
        .collect()
}

/// Rows from the JSON lines the aiokdb peer prints (one per `.u.upd`).
pub fn json_rows(lines: &[String]) -> Vec<Row> {
    let mut rows = Vec::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let column = |name: &str| {
            v[name]
                .as_array()
                .unwrap_or_else(|| panic!("{name} in {line}"))
                .clone()
        };
        let (syms, devices, values, qualities, seqs) = (
            column("sym"),
            column("device"),
            column("value"),
            column("quality"),
            column("seq"),
        );
        assert_eq!(v["table"], "plc");
        for i in 0..syms.len() {
            rows.push(Row {
                sym: syms[i].as_str().unwrap().to_string(),
                device: devices[i].as_str().unwrap().to_string(),
                value: values[i].as_f64(),
                quality: qualities[i].as_i64().unwrap() as i32,
                seq: seqs[i].as_i64().unwrap(),
            });
        }
    }
    rows
}

/// A kdb+ tickerplant in aiokdb 0.1.38 (an independent pure-Python kdb+
/// IPC implementation): accepts any login, answers every sync message with
/// `(::)`, and prints each `.u.upd`'s columns as one JSON line before it
/// answers the chaser that follows, so every acknowledged row is printed.
pub const AIOKDB_TICKERPLANT: &str = r#"
import asyncio, json, math, sys
import aiokdb as a
from aiokdb.server import KdbReader
T = a.TypeEnum
async def handle(reader, writer):
    hello = b""
    while not hello.endswith(b"\0"):
        chunk = await reader.read(1)
        if not chunk:
            return
        hello += chunk
    writer.write(bytes([min(hello[-2], 3)]))
    await writer.drain()
    q = KdbReader(reader, raise_krr=False)
    while True:
        try:
            mt, k = await q._read()
        except (asyncio.IncompleteReadError, ConnectionError):
            break
        if k.t == T.K:
            items = k.kK()
            cols = items[2].kK()
            print(json.dumps({
                "fn": items[0].aS(), "table": items[1].aS(),
                "sym": list(cols[1].kS()), "device": list(cols[2].kS()),
                "value": [None if math.isnan(x) else x for x in cols[3].kF()],
                "quality": list(cols[4].kI()), "seq": list(cols[5].kJ())}), flush=True)
        if mt == 1:
            writer.write(a.b9(a.kNil, msgtype=2))
            await writer.drain()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]))
    print("listening", flush=True)
    await server.serve_forever()
asyncio.run(main())
"#;
