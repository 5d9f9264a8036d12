//! What `millrace check-config` prints for a valid file: each device with
//! its protocol's settings and requests per poll cycle (planned by its
//! protocol's session), totals per protocol, tags by area and type, requests
//! per poll cycle, expected samples per second, and the sinks (a password
//! shows only as set or not).

use std::collections::BTreeMap;
use std::fmt;

use super::types::{
    Backend, Config, DeviceConfig, DriverConfig, Protocol, S7ConnectionType, SinkConfig, SinkKind,
    SyncMode, TimeType, WhenFull,
};
use super::units::{format_duration, format_size};
use crate::protocol::{DeviceSession, Session};

/// The summary of a valid configuration.
pub struct Summary<'a> {
    config: &'a Config,
    /// Read requests per poll cycle for each device, from its protocol's
    /// planner (`Err`: the plan failed, with why).
    requests: Vec<Result<usize, String>>,
}

impl<'a> Summary<'a> {
    pub fn new(config: &'a Config) -> Self {
        let requests = config
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| match d.opcua_part() {
                // Served by the OPC UA reader, not a socket reader's session.
                Some(o) => Ok(crate::opcua::requests_per_cycle(o)),
                None => DeviceSession::for_device(d, config.first_tag(i))
                    .map(|s| s.requests_per_cycle())
                    .map_err(|e| e.problem),
            })
            .collect();
        Summary { config, requests }
    }

    /// Samples per second if every device is polled on time: the sum over
    /// devices of tags / poll interval.
    pub fn samples_per_second(&self) -> f64 {
        self.config
            .devices
            .iter()
            .map(|d| d.tag_count() as f64 / d.poll_interval.as_secs_f64())
            .sum()
    }

    /// Read requests per poll cycle over all devices (for a plan that cannot
    /// be made, the error of the first such device).
    pub fn requests_per_cycle(&self) -> Result<usize, String> {
        self.requests.iter().try_fold(0, |sum, r| match r {
            Ok(n) => Ok(sum + n),
            Err(e) => Err(e.clone()),
        })
    }
}

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.config;
        writeln!(f, "config: {} (valid)", c.source.display())?;
        writeln!(f, "gateway: {}", c.gateway.id)?;
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
        self.fmt_connections(f)?;
        self.fmt_protocols(f)?;
        self.fmt_tags(f)?;
        match self.requests_per_cycle() {
            Ok(n) => writeln!(f, "requests per poll cycle: {n}")?,
            Err(e) => writeln!(f, "requests per poll cycle: no plan: {e}")?,
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
        for (d, requests) in self.config.devices.iter().zip(&self.requests) {
            let requests = match requests {
                Ok(n) => format!("{n} requests/cycle"),
                Err(e) => format!("no plan ({e})"),
            };
            writeln!(
                f,
                "  {} {} {} {} poll {} timeout {} inflight {}: {} tags, {requests}",
                d.name,
                d.protocol,
                d.address,
                protocol_settings(d),
                format_duration(d.poll_interval),
                format_duration(d.timeout),
                d.max_inflight,
                d.tag_count()
            )?;
        }
        Ok(())
    }

    /// The socket connections the readers open, and each one that several
    /// devices share (`Config::connections`).
    fn fmt_connections(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let connections = self.config.connections();
        writeln!(f, "connections: {}", connections.len())?;
        let devices = &self.config.devices;
        for connection in connections.iter().filter(|c| c.len() > 1) {
            let shared: Vec<&DeviceConfig> =
                connection.iter().filter_map(|&i| devices.get(i)).collect();
            let (Some(first), Some(last)) = (shared.first(), shared.last()) else {
                continue;
            };
            let inflight = shared.iter().map(|d| d.max_inflight).min().unwrap_or(1);
            writeln!(
                f,
                "  {} {} poll {}: one connection for {} devices ({} .. {}), inflight {inflight}",
                first.address,
                first.protocol,
                format_duration(first.poll_interval),
                shared.len(),
                first.name,
                last.name,
            )?;
        }
        Ok(())
    }

    /// Devices, tags, requests per cycle and samples per second of each
    /// protocol in use, in the order of `Protocol::ALL`.
    fn fmt_protocols(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "by protocol:")?;
        for (name, protocol) in Protocol::ALL {
            let devices: Vec<(&DeviceConfig, &Result<usize, String>)> = self
                .config
                .devices
                .iter()
                .zip(&self.requests)
                .filter(|(d, _)| d.protocol == *protocol)
                .collect();
            if devices.is_empty() {
                continue;
            }
            let tags: usize = devices.iter().map(|(d, _)| d.tag_count()).sum();
            let per_second: f64 = devices
                .iter()
                .map(|(d, _)| d.tag_count() as f64 / d.poll_interval.as_secs_f64())
                .sum();
            let requests = devices
                .iter()
                .try_fold(0, |sum, (_, r)| r.as_ref().map(|n| sum + n));
            let requests = match requests {
                Ok(n) => format!("{n} requests/cycle"),
                Err(e) => format!("no plan ({e})"),
            };
            writeln!(
                f,
                "  {name}: {} device(s), {tags} tags, {requests}, {per_second:.1} samples/s",
                devices.len()
            )?;
        }
        Ok(())
    }

    /// Tags counted by protocol and area, and by protocol and type.
    fn fmt_tags(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut by_area: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_type: BTreeMap<String, usize> = BTreeMap::new();
        for d in &self.config.devices {
            let protocol = d.protocol.name();
            let mut add = |area: String, data_type: String| {
                *by_area.entry(format!("{protocol} {area}")).or_default() += 1;
                *by_type
                    .entry(format!("{protocol} {data_type}"))
                    .or_default() += 1;
            };
            match &d.driver {
                DriverConfig::Modbus(m) => {
                    for t in &m.tags {
                        add(t.area.name().into(), t.data_type.name().into());
                    }
                }
                DriverConfig::S7(s) => {
                    for t in &s.tags {
                        add(t.area.to_string(), t.data_type.to_string());
                    }
                }
                DriverConfig::EthernetIp(e) => {
                    for t in &e.tags {
                        add("symbolic".into(), t.data_type.to_string());
                    }
                }
                DriverConfig::Opcua(o) => {
                    for t in &o.tags {
                        add(
                            format!("ns{}", t.node_id.namespace),
                            t.data_type.to_string(),
                        );
                    }
                }
            }
        }
        writeln!(f, "tags: {}", self.config.tag_count())?;
        let join = |m: &BTreeMap<String, usize>| {
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
            // What the tickerplant's table must be (tick.q pairs by position).
            writeln!(
                f,
                "    columns: {}  (tickerplant schema: {})",
                s.columns,
                s.columns.q_table(&s.table, s.time_type)
            )?;
            writeln!(f, "    devices: {}", self.sink_devices(s))?;
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

impl Summary<'_> {
    /// The devices a sink takes: its patterns, how many devices they
    /// match and the first `DEVICES_SHOWN_MAX` of them by name.
    fn sink_devices(&self, sink: &SinkConfig) -> String {
        const DEVICES_SHOWN_MAX: usize = 20;
        let taken: Vec<&str> = self
            .config
            .devices
            .iter()
            .filter(|d| sink.takes(&d.name))
            .map(|d| d.name.as_str())
            .collect();
        let patterns = match &sink.devices {
            None => "all".to_string(),
            Some(patterns) => patterns.join(" "),
        };
        let shown = taken.get(..DEVICES_SHOWN_MAX).unwrap_or(&taken);
        let more = match taken.len() - shown.len() {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        format!(
            "{patterns} -> {} device(s): {}{more}",
            taken.len(),
            shown.join(" ")
        )
    }
}

/// The protocol's own settings, in the words of the configuration.
fn protocol_settings(device: &DeviceConfig) -> String {
    match &device.driver {
        DriverConfig::Modbus(m) => format!(
            "unit {} max_registers {} max_bits {} max_hole {}",
            m.unit_id, m.max_registers, m.max_bits, m.max_hole
        ),
        DriverConfig::S7(s) => {
            let connection = match s.connection_type {
                S7ConnectionType::Pg => "pg",
                S7ConnectionType::Op => "op",
                S7ConnectionType::Basic => "basic",
            };
            let remote = match s.remote_tsap {
                Some(_) => "given".to_string(),
                None => format!("rack {} slot {} {connection}", s.rack, s.slot),
            };
            format!(
                "tsap {:#06x}->{:#06x} ({remote}) pdu {} max_hole {}",
                s.local_tsap,
                s.remote_tsap(),
                s.pdu_size,
                s.max_hole
            )
        }
        DriverConfig::EthernetIp(e) => {
            let route: Vec<String> = e.route.iter().map(ToString::to_string).collect();
            let route = if route.is_empty() {
                "none".to_string()
            } else {
                route.join(",")
            };
            format!("path {route} connection_size {}", e.connection_size)
        }
        DriverConfig::Opcua(o) => opcua_settings(o),
    }
}

/// An OPC UA device's security, identity (never the password) and mode.
fn opcua_settings(o: &super::opcua_types::OpcuaDevice) -> String {
    use super::opcua_types::{Identity, ReadMode, TimeSource};
    let identity = match &o.identity {
        Identity::Anonymous => "anonymous".to_string(),
        Identity::UserName { user, .. } => format!("user {user} (password hidden)"),
        Identity::X509 { certificate, .. } => {
            format!("user certificate {}", certificate.display())
        }
    };
    let mode = match o.mode {
        ReadMode::Subscribe => format!(
            "subscribe sampling {} publishing {} queue {}",
            format_duration(o.sampling_interval),
            format_duration(o.publishing_interval),
            o.queue_size
        ),
        ReadMode::Poll => "poll".to_string(),
    };
    let time = match o.time_source {
        TimeSource::Source => "source",
        TimeSource::Server => "server",
        TimeSource::Receive => "receive",
    };
    format!(
        "security {}/{} {identity} {mode} time {time}",
        o.security_policy.name(),
        o.security_mode.name()
    )
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
