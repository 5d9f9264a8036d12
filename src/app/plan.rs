//! `millrace plan`: one plant's devices split over N gateways (and, with
//! `--segments K`, over K tickerplant segments), written as N configuration
//! files that each pass `check-config`.
//!
//! The unit of placement is a network address: every device entry with the
//! same `address` (a Modbus gateway's unit ids, one PLC's several entries)
//! goes to the same gateway, since two gateways polling one address would
//! compete for its connections.
//!
//! Placement is rendezvous (highest-random-weight) hashing with a load
//! bound. Each address ranks the gateways by `score(address, gateway)`, a
//! hash of both; addresses are placed one by one in the order of their own
//! hash (which does not depend on N), each on its best-ranked gateway whose
//! expected requests/s and samples/s stay under `LOAD_SLACK` times the mean
//! (or the mean plus the largest single address, if that is more, so that
//! one heavy PLC always fits somewhere). Without the bound this is plain rendezvous hashing: going
//! from N to N+1 gateways moves exactly the addresses whose new gateway
//! outranks their old one, about 1/(N+1) of them, and no other. The bound
//! moves a few more (an address displaced by a full gateway), in exchange
//! for a balance that plain hashing only has on average. Segments are plain
//! rendezvous hashing of the address over K segments: a device's segment
//! does not depend on N, so replanning gateways never moves a device
//! between tickerplants.
//!
//! The load of a device is what `check-config` computes: tags / poll
//! interval (samples/s), and the read requests its protocol's planner
//! makes per cycle / poll interval (requests/s).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, DeviceConfig};
use crate::protocol::{DeviceSession, Session};

/// A gateway may take this much more than the mean load (each of requests/s
/// and samples/s) before an address goes to its next-ranked gateway.
pub const LOAD_SLACK: f64 = 1.10;
/// Gateways and segments at most: a plan is N files and each address is
/// scored N times.
pub const GATEWAYS_MAX: usize = 1024;

/// What one device costs a gateway per second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Load {
    pub requests: f64,
    pub samples: f64,
}

impl Load {
    fn add(&mut self, other: Load) {
        self.requests += other.requests;
        self.samples += other.samples;
    }
}

/// The devices of one network address, placed together.
#[derive(Clone, Debug)]
pub struct Group {
    pub address: String,
    /// Indices into `Config::devices`.
    pub devices: Vec<usize>,
    pub load: Load,
}

/// Where every device goes.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Per device (in configuration order): its gateway, 0..N.
    pub gateway_of: Vec<usize>,
    /// Per device: its segment, 0..K (all 0 without segments).
    pub segment_of: Vec<usize>,
    /// Per gateway: its expected load.
    pub loads: Vec<Load>,
}

#[derive(Debug)]
pub enum PlanError {
    Config(ConfigError),
    /// A device whose requests cannot be planned (its protocol says why).
    Device {
        device: String,
        problem: String,
    },
    Count {
        what: &'static str,
        count: usize,
    },
    /// `--segments K` needs the plant to name K sinks, one per segment.
    Segments {
        segments: usize,
        sinks: usize,
    },
    Io {
        path: PathBuf,
        problem: String,
    },
    /// A written configuration did not pass the checks (a planner bug).
    Written(ConfigError),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::Config(e) => write!(f, "{e}"),
            PlanError::Device { device, problem } => {
                write!(f, "device `{device}` cannot be planned: {problem}")
            }
            PlanError::Count { what, count } => {
                write!(
                    f,
                    "{what} {count} is out of range; expected 1..={GATEWAYS_MAX}"
                )
            }
            PlanError::Segments { segments, sinks } => write!(
                f,
                "--segments {segments} needs the plant to have {segments} [[sink]] tables, one \
                 per tickerplant segment in order, but it has {sinks}"
            ),
            PlanError::Io { path, problem } => write!(f, "{}: {problem}", path.display()),
            PlanError::Written(e) => write!(
                f,
                "the planned configuration does not pass check-config (a planner bug): {e}"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

/// Each device's load, as `check-config` computes it.
pub fn device_loads(config: &Config) -> Result<Vec<Load>, PlanError> {
    config
        .devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let requests = match d.opcua_part() {
                Some(o) => crate::opcua::requests_per_cycle(o),
                None => DeviceSession::for_device(d, config.first_tag(i))
                    .map(|s| s.requests_per_cycle())
                    .map_err(|e| PlanError::Device {
                        device: d.name.clone(),
                        problem: e.problem,
                    })?,
            };
            let seconds = d.poll_interval.as_secs_f64();
            Ok(Load {
                requests: requests as f64 / seconds,
                samples: d.tag_count() as f64 / seconds,
            })
        })
        .collect()
}

/// Devices grouped by address, in the order of their first device.
pub fn groups(devices: &[DeviceConfig], loads: &[Load]) -> Vec<Group> {
    let mut by_address: BTreeMap<&str, usize> = BTreeMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for (i, (device, load)) in devices.iter().zip(loads).enumerate() {
        let at = *by_address.entry(&device.address).or_insert_with(|| {
            groups.push(Group {
                address: device.address.clone(),
                devices: Vec::new(),
                load: Load::default(),
            });
            groups.len() - 1
        });
        if let Some(group) = groups.get_mut(at) {
            group.devices.push(i);
            group.load.add(*load);
        }
    }
    groups
}

/// FNV-1a 64 of `text`, then a splitmix64 finish with `salt`: a stable
/// hash (the same on every machine and release), well mixed in every bit.
fn score(text: &str, salt: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = h ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Salts that keep the gateway and segment rankings and the placement
/// order independent of each other.
const GATEWAY_SALT: u64 = 1;
const SEGMENT_SALT: u64 = 1 << 32;
const ORDER_SALT: u64 = u64::MAX;

/// `0..n` ranked for `address`, best first.
fn ranking(address: &str, n: usize, salt: u64) -> Vec<usize> {
    let mut ranked: Vec<usize> = (0..n).collect();
    ranked.sort_by_key(|&g| std::cmp::Reverse(score(address, salt + g as u64)));
    ranked
}

/// Places `groups` on `gateways` gateways and `segments` segments.
pub fn assign(groups: &[Group], device_count: usize, gateways: usize, segments: usize) -> Plan {
    assert!(gateways >= 1 && segments >= 1);
    let mut total = Load::default();
    let mut largest = Load::default();
    for g in groups {
        total.add(g.load);
        largest.requests = largest.requests.max(g.load.requests);
        largest.samples = largest.samples.max(g.load.samples);
    }
    // mean + largest always fits on the least loaded gateway (it holds at
    // most mean - w/N before a group of w is placed).
    let n = gateways as f64;
    let cap = Load {
        requests: (LOAD_SLACK * total.requests / n).max(total.requests / n + largest.requests),
        samples: (LOAD_SLACK * total.samples / n).max(total.samples / n + largest.samples),
    };
    let mut order: Vec<&Group> = groups.iter().collect();
    order.sort_by_key(|g| score(&g.address, ORDER_SALT));
    let mut loads = vec![Load::default(); gateways];
    let mut plan = Plan {
        gateway_of: vec![0; device_count],
        segment_of: vec![0; device_count],
        loads: Vec::new(),
    };
    for group in order {
        let ranked = ranking(&group.address, gateways, GATEWAY_SALT);
        let fits = |g: &usize| {
            let l = loads[*g];
            l.requests + group.load.requests <= cap.requests
                && l.samples + group.load.samples <= cap.samples
        };
        // The least loaded gateway always fits (above); the fallback only
        // guards against rounding.
        let gateway = ranked.iter().copied().find(|g| fits(g)).unwrap_or_else(|| {
            (0..gateways)
                .min_by(|a, b| loads[*a].samples.total_cmp(&loads[*b].samples))
                .unwrap_or(0)
        });
        loads[gateway].add(group.load);
        let segment = ranking(&group.address, segments, SEGMENT_SALT)
            .first()
            .copied()
            .unwrap_or(0);
        for &d in &group.devices {
            plan.gateway_of[d] = gateway;
            plan.segment_of[d] = segment;
        }
    }
    plan.loads = loads;
    plan
}

/// Plans `config` (already loaded and valid).
pub fn plan_config(config: &Config, gateways: usize, segments: usize) -> Result<Plan, PlanError> {
    for (what, count) in [("--gateways", gateways), ("--segments", segments)] {
        if !(1..=GATEWAYS_MAX).contains(&count) {
            return Err(PlanError::Count { what, count });
        }
    }
    let loads = device_loads(config)?;
    let groups = groups(&config.devices, &loads);
    Ok(assign(&groups, config.devices.len(), gateways, segments))
}

/// One written gateway configuration.
#[derive(Clone, Debug)]
pub struct Written {
    pub path: PathBuf,
    pub id: String,
    pub devices: usize,
    pub addresses: usize,
    pub load: Load,
    /// Per segment (sink), the devices this gateway sends it.
    pub segment_devices: Vec<usize>,
}

/// Writes one configuration per gateway into `out` (`STEM-1.toml`, ...),
/// each the plant's file with only that gateway's devices, its own
/// `[gateway] id` (`STEM-1`, ...) and WAL directory (the plant's, plus the
/// id), relative paths made absolute, and its sinks: with `segments`, sink
/// `s` of the plant takes segment `s`'s devices; without, each sink keeps
/// the devices it took, listed by name. Each file is loaded back and must
/// pass every check.
pub fn write_plan(
    plant: &Path,
    config: &Config,
    plan: &Plan,
    segments: Option<usize>,
    out: &Path,
) -> Result<Vec<Written>, PlanError> {
    let io = |path: &Path, e: &dyn fmt::Display| PlanError::Io {
        path: path.to_path_buf(),
        problem: e.to_string(),
    };
    if let Some(k) = segments {
        if config.sinks.len() != k {
            return Err(PlanError::Segments {
                segments: k,
                sinks: config.sinks.len(),
            });
        }
    }
    let text = crate::files::read_text_capped(plant, 256 << 20).map_err(|e| io(plant, &e))?;
    let base = plant.parent().unwrap_or(Path::new("")).to_path_buf();
    let base = std::fs::canonicalize(if base.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &base
    })
    .map_err(|e| io(&base, &e))?;
    std::fs::create_dir_all(out).map_err(|e| io(out, &e))?;
    let stem = plant
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("plant");
    let gateway_count = plan.loads.len();
    let empty = (0..gateway_count).find(|g| !plan.gateway_of.contains(g));
    if let Some(gateway) = empty {
        return Err(PlanError::Io {
            path: plant.to_path_buf(),
            problem: format!(
                "gateway {stem}-{} would have no device: {gateway_count} gateways are more \
                 than this plant's network addresses can spread over",
                gateway + 1
            ),
        });
    }
    let mut written = Vec::with_capacity(gateway_count);
    for (gateway, load) in plan.loads.iter().enumerate() {
        let id = format!("{stem}-{}", gateway + 1);
        let mine: Vec<usize> = (0..config.devices.len())
            .filter(|&d| plan.gateway_of.get(d) == Some(&gateway))
            .collect();
        let doc =
            render(&text, &base, config, plan, segments, &id, &mine).map_err(|e| io(plant, &e))?;
        let path = out.join(format!("{id}.toml"));
        std::fs::write(&path, doc).map_err(|e| io(&path, &e))?;
        crate::config::load(&path).map_err(PlanError::Written)?;
        let mut addresses: Vec<&str> = mine
            .iter()
            .map(|&d| config.devices[d].address.as_str())
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut segment_devices = vec![0; segments.unwrap_or(0)];
        for &d in &mine {
            if let Some(n) = segment_devices.get_mut(plan.segment_of[d]) {
                *n += 1;
            }
        }
        written.push(Written {
            path,
            id,
            devices: mine.len(),
            addresses: addresses.len(),
            load: *load,
            segment_devices,
        });
    }
    Ok(written)
}

const SINK_PATH_KEYS: &[&str] = &[
    "password_file",
    "tls_ca_file",
    "tls_client_cert",
    "tls_client_key",
];

/// The plant's text with one gateway's part of it (see `write_plan`).
fn render(
    text: &str,
    base: &Path,
    config: &Config,
    plan: &Plan,
    segments: Option<usize>,
    id: &str,
    mine: &[usize],
) -> Result<String, toml_edit::TomlError> {
    use toml_edit::{value, Array, DocumentMut, Item, Table};
    let mut doc: DocumentMut = text.parse()?;
    let absolute = |item: &mut Item| {
        if let Some(path) = item.as_str() {
            let path = crate::config::resolve_path(base, path);
            *item = value(path.display().to_string());
        }
    };
    let mut gateway = Table::new();
    gateway.insert("id", value(id));
    gateway
        .decor_mut()
        .set_prefix(format!("# Written by `millrace plan`: gateway {id}.\n"));
    // First in the file, where a reader looks for which gateway this is.
    gateway.set_position(0);
    doc.insert("gateway", Item::Table(gateway));
    if let Some(wal) = doc.get_mut("wal").and_then(Item::as_table_like_mut) {
        if let Some(dir) = wal.get_mut("dir") {
            absolute(dir);
            if let Some(path) = dir.as_str() {
                *dir = value(Path::new(path).join(id).display().to_string());
            }
        }
    }
    let names: Vec<&str> = mine
        .iter()
        .map(|&d| config.devices[d].name.as_str())
        .collect();
    if let Some(devices) = doc.get_mut("device").and_then(Item::as_array_of_tables_mut) {
        devices.retain(|t| {
            t.get("name")
                .and_then(Item::as_str)
                .is_some_and(|n| names.contains(&n))
        });
        for table in devices.iter_mut() {
            if let Some(csv) = table.get_mut("tags_csv") {
                absolute(csv);
            }
        }
    }
    let Some(sinks) = doc.get_mut("sink").and_then(Item::as_array_of_tables_mut) else {
        return Ok(doc.to_string());
    };
    let mut keep = Vec::with_capacity(config.sinks.len());
    for (index, (sink, table)) in config.sinks.iter().zip(sinks.iter_mut()).enumerate() {
        for key in SINK_PATH_KEYS {
            if let Some(item) = table.get_mut(key) {
                absolute(item);
            }
        }
        let taken: Vec<&str> = mine
            .iter()
            .filter(|&&d| match segments {
                Some(_) => plan.segment_of[d] == index,
                None => sink.takes(&config.devices[d].name),
            })
            .map(|&d| config.devices[d].name.as_str())
            .collect();
        keep.push(!taken.is_empty());
        if segments.is_some() || sink.devices.is_some() {
            table.insert("devices", value(taken.iter().copied().collect::<Array>()));
        }
    }
    let mut index = 0;
    sinks.retain(|_| {
        let kept = keep.get(index).copied().unwrap_or(true);
        index += 1;
        kept
    });
    Ok(doc.to_string())
}
