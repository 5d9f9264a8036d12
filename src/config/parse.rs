//! The TOML file, section by section: each function reads one table, checks
//! its keys, applies the defaults of docs/configuration.md and builds the
//! validated type. Devices are read in `device.rs`, cross-tag rules are in
//! `validate.rs`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::columns::{check_text_columns, sink_columns};
use super::device::parse_device;
use super::error::{ConfigError, Location, Place};
use super::routing::{check_routes, sink_devices};
use super::source::Sources;
use super::tree::{required, Section, Spanned};
use super::types::*;
use super::units::{format_duration, format_size};
use super::validate::{check_overlaps, check_unique_names};
use crate::kdb::tls::{client_config, host_of, server_name as check_server_name};
use crate::kdb::tls::{ClientPem, TlsFile};

pub const READERS_THREADS_MAX: i64 = 256;
pub const RING_SLOTS_MIN: u64 = 16;
pub const RING_SLOTS_MAX: u64 = 1 << 24;
pub const SEGMENT_SIZE_MIN: u64 = 64 << 10;
/// One mapping per segment; keep it well inside a 32-bit offset.
pub const SEGMENT_SIZE_MAX: u64 = 1 << 30;
pub const BATCH_ROWS_MAX: i64 = 1_000_000;
pub const INFLIGHT_MAX: i64 = 64;
/// TagId is a u32; this bound also keeps start-up allocation sane.
pub const TAGS_MAX: usize = 1 << 20;

const ROOT_KEYS: &[&str] = &["gateway", "readers", "wal", "metrics", "sink", "device"];
const GATEWAY_KEYS: &[&str] = &["id"];
/// A gateway id is a symbol in every row that carries it: keep it short.
pub const GATEWAY_ID_BYTES_MAX: usize = 64;
const READERS_KEYS: &[&str] = &["threads", "cores", "backend", "ring_slots"];
const WAL_KEYS: &[&str] = &[
    "dir",
    "segment_size",
    "quota",
    "commit_interval",
    "commit_bytes",
    "when_full",
    "sync",
];
const METRICS_KEYS: &[&str] = &["listen"];
const SINK_KEYS: &[&str] = &[
    "name",
    "kind",
    "address",
    "user",
    "password_env",
    "password_file",
    "table",
    "time_type",
    "batch_rows",
    "batch_age",
    "tls",
    "tls_ca_file",
    "tls_client_cert",
    "tls_client_key",
    "tls_server_name",
    "columns",
    "devices",
];
const BACKENDS: &[(&str, Backend)] = &[
    ("auto", Backend::Auto),
    ("io_uring", Backend::IoUring),
    ("epoll", Backend::Epoll),
];
const WHEN_FULL: &[(&str, WhenFull)] = &[
    ("block", WhenFull::Block),
    ("drop_oldest", WhenFull::DropOldest),
];
const SYNC_MODES: &[(&str, SyncMode)] = &[("data", SyncMode::Data), ("none", SyncMode::None)];
const SINK_KINDS: &[(&str, SinkKind)] = &[("kdb", SinkKind::Kdb)];
const TIME_TYPES: &[(&str, TimeType)] = &[
    ("timespan", TimeType::Timespan),
    ("timestamp", TimeType::Timestamp),
];

const NAME_EXPECTED: &str = "a non-empty name";
const HOST_PORT_EXPECTED: &str = "`host:port`, e.g. \"10.0.0.5:502\" or \"[::1]:502\"";

/// Reads the whole tree; `base` is the directory relative paths resolve against.
pub fn parse_root(
    root: &Section<'_>,
    file: &Path,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Config, ConfigError> {
    root.check_keys(ROOT_KEYS)?;
    let gateway = parse_gateway(root.table("gateway")?.as_ref(), sources)?;
    let readers = parse_readers(root.table("readers")?.as_ref())?;
    let wal_section = root
        .table("wal")?
        .ok_or_else(|| root.missing("wal", "a `[wal]` table with `dir`"))?;
    let wal = parse_wal(&wal_section, base)?;
    let metrics = parse_metrics(root.table("metrics")?.as_ref())?;
    let sinks = parse_sinks(root, base, sources)?;
    let device_sections = root.tables("device")?;
    if device_sections.is_empty() {
        return Err(root.missing("device", "at least one `[[device]]` table"));
    }
    let mut devices = Vec::with_capacity(device_sections.len());
    let mut names: HashMap<String, Location> = HashMap::new();
    let mut tag_count = 0usize;
    for section in &device_sections {
        let (device, origins) =
            parse_device(section, base, sources).map_err(|e| redact(e, &sinks))?;
        let name_at = section.location("name");
        if let Some(first) = names.get(&device.name) {
            let problem = format!(
                "duplicate device name `{}`, first at {}",
                device.name,
                first.short()
            );
            return Err(ConfigError::new(name_at, problem).expected("device names unique"));
        }
        names.insert(device.name.clone(), name_at);
        check_overlaps(&device, &origins).map_err(|e| redact(e, &sinks))?;
        tag_count += device.tag_count();
        if tag_count > TAGS_MAX {
            return Err(ConfigError::new(
                section.location("name"),
                format!("more than {TAGS_MAX} tags"),
            )
            .expected(format!("at most {TAGS_MAX} tags in all")));
        }
        devices.push((device, origins));
    }
    check_unique_names(&devices).map_err(|e| redact(e, &sinks))?;
    let devices: Vec<DeviceConfig> = devices.into_iter().map(|(device, _)| device).collect();
    let sink_sections = root.tables("sink")?;
    check_routes(&sink_sections, &sinks, &device_sections, &devices)?;
    check_text_columns(&sink_sections, &sinks, &devices)?;
    Ok(Config {
        source: file.to_path_buf(),
        gateway,
        readers,
        wal,
        metrics,
        sinks,
        devices,
    })
}

const GATEWAY_ID_EXPECTED: &str =
    "a name of 1 to 64 bytes without spaces or control characters, e.g. \"edge-03\"";

/// `[gateway] id`, or the host name (which the sinks' `gateway` column
/// then carries).
fn parse_gateway(
    section: Option<&Section<'_>>,
    sources: &dyn Sources,
) -> Result<GatewayConfig, ConfigError> {
    let id = match section {
        Some(section) => {
            section.check_keys(GATEWAY_KEYS)?;
            section.string("id", GATEWAY_ID_EXPECTED)?
        }
        None => None,
    };
    let Some(id) = id else {
        return Ok(GatewayConfig {
            id: host_name(sources),
        });
    };
    let ok = !id.value.is_empty()
        && id.value.len() <= GATEWAY_ID_BYTES_MAX
        && !id
            .value
            .contains(|c: char| c.is_control() || c.is_whitespace());
    if !ok {
        return Err(id
            .error(format!("`{}` is not a gateway id", id.value))
            .expected(GATEWAY_ID_EXPECTED));
    }
    Ok(GatewayConfig {
        id: id.value.to_string(),
    })
}

/// Where Linux keeps the host name (what `hostname` prints).
const HOST_NAME_FILE: &str = "/proc/sys/kernel/hostname";

/// The host name, read through `sources` (so `parse_str` touches nothing),
/// cut at the first character a gateway id cannot hold; "millrace" when
/// there is none.
fn host_name(sources: &dyn Sources) -> String {
    let text = sources
        .read_file(Path::new(HOST_NAME_FILE))
        .unwrap_or_default();
    let mut name: String = text
        .trim()
        .chars()
        .take_while(|c| !c.is_control() && !c.is_whitespace())
        .collect();
    while name.len() > GATEWAY_ID_BYTES_MAX {
        name.pop();
    }
    if name.is_empty() {
        "millrace".to_string()
    } else {
        name
    }
}

fn parse_readers(section: Option<&Section<'_>>) -> Result<ReadersConfig, ConfigError> {
    let mut readers = ReadersConfig {
        threads: 1,
        cores: Vec::new(),
        backend: Backend::Auto,
        ring_slots: 65536,
    };
    let Some(section) = section else {
        return Ok(readers);
    };
    section.check_keys(READERS_KEYS)?;
    if let Some(threads) = section.integer("threads", 1..=READERS_THREADS_MAX)? {
        readers.threads = threads.value as usize;
    }
    if let Some(backend) = section.word("backend", BACKENDS)? {
        readers.backend = backend.value;
    }
    if let Some(slots) = section.integer("ring_slots", 0..=i64::MAX)? {
        let n = slots.value as u64;
        if !n.is_power_of_two() || !(RING_SLOTS_MIN..=RING_SLOTS_MAX).contains(&n) {
            return Err(slots
                .error(format!("{n} is not a power of two in range"))
                .expected(format!(
                    "a power of two in {RING_SLOTS_MIN}..={RING_SLOTS_MAX}"
                )));
        }
        readers.ring_slots = n as usize;
    }
    if let Some(cores) = section.integers("cores", 0..=4095)? {
        if cores.value.len() != readers.threads {
            let problem = format!(
                "{} cores for {} reader threads",
                cores.value.len(),
                readers.threads
            );
            return Err(cores
                .error(problem)
                .expected("one core per reader thread (`threads`)"));
        }
        let mut sorted = cores.value.clone();
        sorted.sort_unstable();
        if let Some(pair) = sorted.windows(2).find(|w| w.first() == w.get(1)) {
            let problem = format!(
                "core {} is listed twice",
                pair.first().copied().unwrap_or(0)
            );
            return Err(cores
                .error(problem)
                .expected("a different core for each reader"));
        }
        readers.cores = cores.value.into_iter().map(|c| c as usize).collect();
    }
    Ok(readers)
}

fn parse_wal(section: &Section<'_>, base: &Path) -> Result<WalConfig, ConfigError> {
    section.check_keys(WAL_KEYS)?;
    let dir = required(
        section,
        "dir",
        "a directory path",
        section.string("dir", "a directory path")?,
    )?;
    if dir.value.is_empty() {
        return Err(dir
            .error("the directory is empty")
            .expected("a directory path"));
    }
    let segment_size = section.size("segment_size")?;
    let segment_bytes = segment_size.as_ref().map_or(64 << 20, |s| s.value);
    if let Some(s) = &segment_size {
        if s.value % 4096 != 0 || !(SEGMENT_SIZE_MIN..=SEGMENT_SIZE_MAX).contains(&s.value) {
            return Err(s
                .error(format!("{} is not a multiple of 4KiB in range", s.value))
                .expected("a multiple of 4KiB from 64KiB to 1GiB"));
        }
    }
    let quota = section.size("quota")?;
    let quota_bytes = quota.as_ref().map_or(16 << 30, |q| q.value);
    if quota_bytes < 2 * segment_bytes {
        let at = section.location(if quota.is_some() {
            "quota"
        } else {
            "segment_size"
        });
        let problem = format!(
            "quota {} is less than two segments of {}",
            format_size(quota_bytes),
            format_size(segment_bytes)
        );
        return Err(ConfigError::new(at, problem).expected("quota >= 2 * segment_size"));
    }
    let commit_interval = positive(
        section.duration("commit_interval")?,
        Duration::from_millis(10),
    )?;
    let commit_bytes = section.size("commit_bytes")?;
    if let Some(c) = commit_bytes.as_ref().filter(|c| c.value < 4096) {
        return Err(c
            .error(format!("{} bytes is too small", c.value))
            .expected("at least 4KiB"));
    }
    Ok(WalConfig {
        dir: resolve(base, dir.value),
        segment_size: segment_bytes,
        quota: quota_bytes,
        commit_interval,
        commit_bytes: commit_bytes.map_or(8 << 20, |c| c.value),
        when_full: section
            .word("when_full", WHEN_FULL)?
            .map_or(WhenFull::Block, |w| w.value),
        sync: section
            .word("sync", SYNC_MODES)?
            .map_or(SyncMode::Data, |s| s.value),
    })
}

fn parse_metrics(section: Option<&Section<'_>>) -> Result<MetricsConfig, ConfigError> {
    let default = SocketAddr::from(([127, 0, 0, 1], 9187));
    let Some(section) = section else {
        return Ok(MetricsConfig {
            listen: Some(default),
        });
    };
    section.check_keys(METRICS_KEYS)?;
    let expected = "an IP address and port such as \"127.0.0.1:9187\", or \"off\"";
    let Some(listen) = section.string("listen", expected)? else {
        return Ok(MetricsConfig {
            listen: Some(default),
        });
    };
    if listen.value.eq_ignore_ascii_case("off") {
        return Ok(MetricsConfig { listen: None });
    }
    match listen.value.parse::<SocketAddr>() {
        Ok(addr) => Ok(MetricsConfig { listen: Some(addr) }),
        Err(_) => Err(listen
            .error(format!("`{}` is not an IP address and port", listen.value))
            .expected(expected)),
    }
}

fn parse_sinks(
    root: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Vec<SinkConfig>, ConfigError> {
    let sections = root.tables("sink")?;
    if sections.is_empty() {
        return Err(root.missing("sink", "at least one `[[sink]]` table (kind = \"kdb\")"));
    }
    let mut sinks: Vec<SinkConfig> = Vec::with_capacity(sections.len());
    let mut names: HashMap<String, Location> = HashMap::new();
    for section in &sections {
        let sink = parse_sink(section, base, sources)?;
        let at = section.location("name");
        if let Some(first) = names.get(&sink.name) {
            let problem = format!(
                "duplicate sink name `{}`, first at {}",
                sink.name,
                first.short()
            );
            return Err(ConfigError::new(at, problem).expected("sink names unique"));
        }
        names.insert(sink.name.clone(), at);
        sinks.push(sink);
    }
    Ok(sinks)
}

fn parse_sink(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<SinkConfig, ConfigError> {
    section.check_keys(SINK_KEYS)?;
    let name = name_of(section)?;
    let kind = required(section, "kind", "`kdb`", section.word("kind", SINK_KINDS)?)?;
    let address = host_port(section)?;
    let user = section.string("user", "a string")?;
    if let Some(u) = user.as_ref().filter(|u| u.value.contains([':', '\0'])) {
        return Err(u
            .error("the user contains `:` or NUL")
            .expected("a kdb+ user name without `:`"));
    }
    let table = required(
        section,
        "table",
        "a q table name such as \"plc\"",
        section.string("table", "a string")?,
    )?;
    if !is_q_name(table.value) {
        return Err(table
            .error(format!("`{}` is not a q table name", table.value))
            .expected("a letter, then letters, digits or `_`"));
    }
    let batch_rows = section.integer("batch_rows", 1..=BATCH_ROWS_MAX)?;
    let tls = sink_tls(section, base, sources, &address)?;
    let columns = sink_columns(section)?;
    Ok(SinkConfig {
        name,
        kind: kind.value,
        address,
        user: user.map_or(String::new(), |u| u.value.to_string()),
        password: password(section, base, sources)?,
        table: table.value.to_string(),
        time_type: section
            .word("time_type", TIME_TYPES)?
            .map_or(TimeType::Timespan, |t| t.value),
        batch_rows: batch_rows.map_or(10_000, |b| b.value as usize),
        batch_age: positive(section.duration("batch_age")?, Duration::from_millis(5))?,
        tls,
        columns,
        devices: sink_devices(section)?,
    })
}

const PEM_EXPECTED: &str = "a readable PEM file";

/// `tls = true` and its files, read and checked now so that a missing or bad
/// file is an error at the key that names it. A `tls_*` key without
/// `tls = true` is refused: it is a half-done edit, and the sink would send
/// in the clear while the file says TLS.
fn sink_tls(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
    address: &str,
) -> Result<Option<SinkTls>, ConfigError> {
    let enabled = section.boolean("tls")?;
    let ca = section.string("tls_ca_file", "a file path")?;
    let cert = section.string("tls_client_cert", "a file path")?;
    let key = section.string("tls_client_key", "a file path")?;
    let name = section.string("tls_server_name", "a DNS name or IP address")?;
    if !enabled.as_ref().is_some_and(|t| t.value) {
        let stray = [&ca, &cert, &key, &name].into_iter().flatten().next();
        return match stray {
            Some(s) => Err(s
                .error("a `tls_*` key is set but `tls` is not true")
                .expected("`tls = true` with the `tls_*` keys, or no `tls_*` key (plain TCP)")),
            None => Ok(None),
        };
    }
    let ca = required(
        section,
        "tls_ca_file",
        "the PEM file of the CA that signed kdb+'s certificate (there are no built-in roots)",
        ca,
    )?;
    let client = match (cert, key) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(cert), None) => {
            return Err(cert
                .error("`tls_client_cert` is set without `tls_client_key`")
                .expected("both `tls_client_cert` and `tls_client_key`, or neither"))
        }
        (None, Some(key)) => {
            return Err(key
                .error("`tls_client_key` is set without `tls_client_cert`")
                .expected("both `tls_client_cert` and `tls_client_key`, or neither"))
        }
    };
    let read = |file: &Spanned<&str>| {
        let path = resolve(base, file.value);
        match sources.read_file(&path) {
            Ok(text) => Ok((path, text)),
            Err(e) => Err(file
                .error(format!("cannot read `{}`: {e}", path.display()))
                .expected(PEM_EXPECTED)),
        }
    };
    let ca_text = read(&ca)?;
    let client_text = match &client {
        Some((cert, key)) => Some((read(cert)?, read(key)?)),
        None => None,
    };
    let pem = ClientPem {
        ca: ca_text.1.as_bytes(),
        client: client_text
            .as_ref()
            .map(|((_, c), (_, k))| (c.as_bytes(), k.as_bytes())),
    };
    if let Err(e) = client_config(&pem) {
        let (at, path, expected) = match (e.file, &client, &client_text) {
            (TlsFile::ClientCert, Some((cert, _)), Some(((path, _), _))) => {
                (cert, path, "a PEM certificate chain")
            }
            (TlsFile::ClientKey, Some((_, key)), Some((_, (path, _)))) => (
                key,
                path,
                "the PEM private key of the certificate in `tls_client_cert`",
            ),
            _ => (&ca, &ca_text.0, "a PEM file of CA certificates"),
        };
        return Err(at
            .error(format!("`{}`: {}", path.display(), e.problem))
            .expected(expected));
    }
    let server_name = match &name {
        Some(n) => n.value.to_string(),
        None => host_of(address).to_string(),
    };
    if let Err(problem) = check_server_name(&server_name) {
        let at = name.map_or_else(|| section.location("address"), |n| n.at);
        return Err(ConfigError::new(at, problem)
            .expected("a DNS name or IP address in the server's certificate (tls_server_name)"));
    }
    Ok(Some(SinkTls {
        ca_file: ca_text.0,
        client_cert: client_text.map(|((cert_file, _), (key_file, _))| ClientCertFiles {
            cert_file,
            key_file,
        }),
        server_name,
    }))
}

/// The secret from `password_env` or `password_file`; neither gives an empty
/// password. Messages name the variable or the file, never the content.
pub(super) fn password(
    section: &Section<'_>,
    base: &Path,
    sources: &dyn Sources,
) -> Result<Secret, ConfigError> {
    let env = section.string("password_env", "the name of an environment variable")?;
    let file = section.string("password_file", "a file path")?;
    match (env, file) {
        (Some(_), Some(file)) => Err(file
            .error("both `password_env` and `password_file` are set")
            .expected("only one of `password_env` or `password_file`")),
        (Some(env), None) => match sources.env_var(env.value) {
            Some(secret) => Ok(Secret::new(secret)),
            None => Err(env
                .error(format!("environment variable `{}` is not set", env.value))
                .expected("the variable set to the password in millrace's environment")),
        },
        (None, Some(file)) => {
            let path = resolve(base, file.value);
            match sources.read_file(&path) {
                // One trailing line end is how editors save a one-line file.
                Ok(text) => Ok(Secret::new(
                    text.strip_suffix('\n')
                        .map_or(text.as_str(), |t| t.strip_suffix('\r').unwrap_or(t))
                        .to_string(),
                )),
                Err(e) => Err(file
                    .error(format!("cannot read `{}`: {e}", path.display()))
                    .expected("a readable file holding the password")),
            }
        }
        (None, None) => Ok(Secret::default()),
    }
}

pub(super) fn name_of(section: &Section<'_>) -> Result<String, ConfigError> {
    let name = required(
        section,
        "name",
        NAME_EXPECTED,
        section.string("name", NAME_EXPECTED)?,
    )?;
    if name.value.trim().is_empty()
        || name.value.trim() != name.value
        || name.value.chars().any(char::is_control)
    {
        return Err(name
            .error(format!(
                "the name `{}` is empty or has spaces at an end",
                name.value
            ))
            .expected(NAME_EXPECTED));
    }
    Ok(name.value.to_string())
}

fn host_port(section: &Section<'_>) -> Result<String, ConfigError> {
    let address = required(
        section,
        "address",
        HOST_PORT_EXPECTED,
        section.string("address", HOST_PORT_EXPECTED)?,
    )?;
    match check_host_port(address.value) {
        Ok(()) => Ok(address.value.to_string()),
        Err(problem) => Err(address.error(problem).expected(HOST_PORT_EXPECTED)),
    }
}

/// `host:port` with a host name, an IPv4 address or a bracketed IPv6
/// address, and a port 1..=65535. Resolution happens when connecting.
pub fn check_host_port(text: &str) -> Result<(), String> {
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("`{text}` has no `:port`"));
    };
    match port.parse::<u16>() {
        Ok(p) if p != 0 => {}
        _ => return Err(format!("`{port}` is not a port 1..=65535")),
    }
    if let Some(inner) = host.strip_prefix('[') {
        let ok = inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok());
        return if ok {
            Ok(())
        } else {
            Err(format!("`{host}` is not a bracketed IPv6 address"))
        };
    }
    if host.contains(':') {
        return Err(format!("`{host}` looks like IPv6: write it in brackets"));
    }
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    if host_ok {
        Ok(())
    } else {
        Err(format!("`{host}` is not a host name or IP address"))
    }
}

fn is_q_name(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A duration that must not be zero; `None` gives `default`.
pub(super) fn positive(
    value: Option<Spanned<Duration>>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(d) if d.value.is_zero() => Err(d
            .error(format!("{} is zero", format_duration(d.value)))
            .expected("a duration greater than zero")),
        Some(d) => Ok(d.value),
    }
}

pub fn resolve(base: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// Blanks any loaded password out of an error. A message quotes file text
/// (a CSV header cell, say), and a password file named as `tags_csv` by
/// mistake would otherwise print the password.
fn redact(mut error: ConfigError, sinks: &[SinkConfig]) -> ConfigError {
    for sink in sinks {
        let secret = sink.password.expose();
        if secret.is_empty() {
            continue;
        }
        error.problem = error.problem.replace(secret, "***");
        if let Some(expected) = error.expected.as_mut() {
            *expected = expected.replace(secret, "***");
        }
        if let Place::Csv {
            column: Some(column),
            ..
        } = &mut error.location.place
        {
            *column = column.replace(secret, "***");
        }
    }
    error
}
