//! Where millrace's log lines go and how they look: `tracing` events on
//! stderr, filtered by `--log-level` (or `RUST_LOG`, `info` by default), as
//! plain text or one JSON object per line (`--log-format json`, for Loki or
//! Elastic). Plain text carries no timestamp when stderr is the systemd
//! journal, which stamps every line itself.
//!
//! Every line about a device carries `device`, `protocol` and `address`
//! fields; every line of a sink runs on its `sink-NAME` thread, whose name
//! each line carries.

#![forbid(unsafe_code)]

use std::fmt;

use tracing_subscriber::EnvFilter;

/// How lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One readable line per event (the default).
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `threadName`,
    /// `fields.message` and the event's other fields.
    Json,
}

impl LogFormat {
    pub const NAMES: &'static [&'static str] = &["text", "json"];

    /// Parses a `--log-format` value.
    pub fn parse(text: &str) -> Result<LogFormat, String> {
        match text.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format `{other}`: expected one of {}",
                LogFormat::NAMES.join(", ")
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// The level filter when neither `--log-level` nor `RUST_LOG` gives one.
pub const DEFAULT_LEVEL: &str = "info";
/// Added to the default filter: the OPC UA stack's own lines. It logs every
/// failed reconnect attempt at ERROR; the OPC UA reader says what changed
/// in its own lines (lost, back, why), as the socket readers do. `RUST_LOG`
/// or `--log-level` (e.g. `info,opcua_client=debug`) brings them back.
pub const OPCUA_STACK_QUIET: &str =
    "opcua_client=off,opcua_core=off,opcua_crypto=off,opcua_types=off";

/// Installs the process's subscriber. `level` (from `--log-level`) wins over
/// `RUST_LOG`; either takes a plain level (`warn`) or `tracing`'s directive
/// syntax (`info,millrace::reader=debug`). A bad directive is an error that
/// says which. Call once, first thing in `main`.
pub fn init(level: Option<&str>, format: LogFormat) -> Result<(), String> {
    let filter = match level {
        Some(level) => EnvFilter::builder()
            .parse(level)
            .map_err(|e| format!("--log-level `{level}`: {e}"))?,
        None => match std::env::var("RUST_LOG") {
            Ok(directives) if !directives.trim().is_empty() => EnvFilter::builder()
                .parse(&directives)
                .map_err(|e| format!("RUST_LOG `{directives}`: {e}"))?,
            _ => EnvFilter::new(format!("{DEFAULT_LEVEL},{OPCUA_STACK_QUIET}")),
        },
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_thread_names(true);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(false)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text if stderr_is_journal() => builder.without_time().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|e| format!("cannot install the logger: {e}"))
}

/// Whether stderr is the systemd journal's stream: systemd sets
/// `JOURNAL_STREAM=DEVICE:INODE` for a service whose output goes there, and
/// stderr is that very file (not one the service redirected elsewhere).
fn stderr_is_journal() -> bool {
    std::env::var("JOURNAL_STREAM").is_ok_and(|stream| is_journal(&stream))
}

/// Whether stderr is the file `stream` (`DEVICE:INODE`) names.
fn is_journal(stream: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    std::fs::metadata("/proc/self/fd/2").is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_in_any_case_and_unknown_ones_are_named() {
        assert_eq!(LogFormat::parse("JSON"), Ok(LogFormat::Json));
        assert_eq!(LogFormat::parse("text"), Ok(LogFormat::Text));
        let error = LogFormat::parse("yaml").unwrap_err();
        assert!(
            error.contains("`yaml`") && error.contains("text, json"),
            "{error}"
        );
    }

    #[test]
    fn a_journal_stream_that_is_not_our_stderr_is_not_the_journal() {
        // The test's stderr is a pipe or a terminal, never inode 1 of device 1.
        assert!(!is_journal("1:1"));
        assert!(!is_journal("garbage"));
        assert!(!is_journal(""));
        // And stderr's own device and inode are recognised.
        use std::os::unix::fs::MetadataExt;
        let own = std::fs::metadata("/proc/self/fd/2").unwrap();
        assert!(is_journal(&format!("{}:{}", own.dev(), own.ino())));
    }
}
