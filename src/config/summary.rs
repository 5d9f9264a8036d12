//! What `millrace check-config` prints for a valid file: devices, tags by
//! area and type, requests per poll cycle, expected samples per second, and
//! the sinks (a password shows only as set or not).

use std::collections::BTreeMap;
use std::fmt;

use super::types::{Backend, Config, Protocol, SinkKind, SyncMode, TimeType, WhenFull};
use super::units::{format_duration, format_size};
use crate::protocol::modbus::plan_device;

/// The summary of a valid configuration.
pub struct Summary<'a> {
    config: &'a Config,
    /// Read requests per poll cycle for each device, from the Modbus planner.
    requests: Option<Vec<usize>>,
}

impl<'a> Summary<'a> {
    pub fn new(config: &'a Config) -> Self {
        Summary {
            config,
            requests: requests_per_cycle(config),
        }
    }

    /// Samples per second if every device is polled on time: the sum over
    /// devices of tags / poll interval.
    pub fn samples_per_second(&self) -> f64 {
        self.config
            .devices
            .iter()
            .map(|d| d.tags.len() as f64 / d.poll_interval.as_secs_f64())
            .sum()
    }

    /// Read requests per poll cycle over all devices, if the planner is built.
    pub fn requests_per_cycle(&self) -> Option<usize> {
        self.requests.as_ref().map(|r| r.iter().sum())
    }
}

/// Requests per cycle per device, as the Modbus planner lays them out.
fn requests_per_cycle(config: &Config) -> Option<Vec<usize>> {
    let plans = config.devices.iter().enumerate();
    Some(
        plans
            .map(|(i, d)| plan_device(d, config.first_tag(i)).requests.len())
            .collect(),
    )
}

const NOT_AVAILABLE: &str = "not available: planner not built yet";

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.config;
        writeln!(f, "config: {} (valid)", c.source.display())?;
        let cores = if c.readers.cores.is_empty() {
            "unpinned".to_string()
        } else {
            format!("cores {:?}", c.readers.cores)
        };
        writeln!(
            f,
            "readers: {} thread(s), {cores}, backend {}, ring {} slots",
            c.readers.threads,
            backend_name(c.readers.backend),
            c.readers.ring_slots
        )?;
        let w = &c.wal;
        writeln!(
            f,
            "wal: {} segment {} quota {} commit every {} or {} when_full {} sync {}",
            w.dir.display(),
            format_size(w.segment_size),
            format_size(w.quota),
            format_duration(w.commit_interval),
            format_size(w.commit_bytes),
            when_full_name(w.when_full),
            sync_name(w.sync)
        )?;
        match c.metrics.listen {
            Some(addr) => writeln!(f, "metrics: http://{addr}/metrics")?,
            None => writeln!(f, "metrics: off")?,
        }
        self.fmt_devices(f)?;
        self.fmt_tags(f)?;
        match self.requests_per_cycle() {
            Some(n) => writeln!(f, "requests per poll cycle: {n}")?,
            None => writeln!(f, "requests per poll cycle: {NOT_AVAILABLE}")?,
        }
        writeln!(
            f,
            "expected samples per second: {:.1}",
            self.samples_per_second()
        )?;
        self.fmt_sinks(f)
    }
}

impl Summary<'_> {
    fn fmt_devices(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "devices: {}", self.config.devices.len())?;
        for (i, d) in self.config.devices.iter().enumerate() {
            let protocol = match d.protocol {
                Protocol::ModbusTcp => "modbus-tcp",
                Protocol::ModbusRtuTcp => "modbus-rtu-tcp",
            };
            let requests = match self.requests.as_ref().and_then(|r| r.get(i)) {
                Some(n) => format!("{n} requests/cycle"),
                None => "requests/cycle n/a".to_string(),
            };
            writeln!(
                f,
                "  {} {protocol} {} unit {} poll {} timeout {} inflight {}: {} tags, {requests}",
                d.name,
                d.address,
                d.unit_id,
                format_duration(d.poll_interval),
                format_duration(d.timeout),
                d.max_inflight,
                d.tags.len()
            )?;
        }
        Ok(())
    }

    fn fmt_tags(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut by_area: BTreeMap<&str, usize> = BTreeMap::new();
        let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, _, t) in self.config.tags() {
            *by_area.entry(t.area.name()).or_default() += 1;
            *by_type.entry(t.data_type.name()).or_default() += 1;
        }
        writeln!(f, "tags: {}", self.config.tag_count())?;
        let join = |m: &BTreeMap<&str, usize>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(f, "  by area: {}", join(&by_area))?;
        writeln!(f, "  by type: {}", join(&by_type))?;
        Ok(())
    }

    fn fmt_sinks(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "sinks: {}", self.config.sinks.len())?;
        for s in &self.config.sinks {
            let kind = match s.kind {
                SinkKind::Kdb => "kdb",
            };
            let time = match s.time_type {
                TimeType::Timespan => "timespan",
                TimeType::Timestamp => "timestamp",
            };
            let password = if s.password.expose().is_empty() {
                "none"
            } else {
                "set (hidden)"
            };
            let user = if s.user.is_empty() { "(none)" } else { &s.user };
            writeln!(
                f,
                "  {} {kind} {} user {user} password {password} table {} time {time} \
                 batch {} rows or {}",
                s.name,
                s.address,
                s.table,
                s.batch_rows,
                format_duration(s.batch_age)
            )?;
            if let Some(tls) = &s.tls {
                // Paths only: a key file's content is a secret.
                let client = tls.client_cert.as_ref().map_or("none".to_string(), |c| {
                    format!("{} (key {})", c.cert_file.display(), c.key_file.display())
                });
                writeln!(
                    f,
                    "    tls: ca {} client certificate {client} server name {}",
                    tls.ca_file.display(),
                    tls.server_name
                )?;
            }
        }
        Ok(())
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Auto => "auto",
        Backend::IoUring => "io_uring",
        Backend::Epoll => "epoll",
    }
}

fn when_full_name(when_full: WhenFull) -> &'static str {
    match when_full {
        WhenFull::Block => "block",
        WhenFull::DropOldest => "drop_oldest",
    }
}

fn sync_name(sync: SyncMode) -> &'static str {
    match sync {
        SyncMode::Data => "data",
        SyncMode::None => "none",
    }
}
