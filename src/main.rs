//! The `millrace` command line. Each subcommand's work lives in the library;
//! this file only parses arguments and maps results to exit codes:
//! 0 success, 1 failure (the message says why), 2 usage error.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "millrace",
    version,
    about = "Edge ingest gateway: PLCs -> WAL -> kdb+"
)]
struct Cli {
    /// Log level: error, warn, info, debug or trace, or a filter such as
    /// `info,millrace::reader=debug` (default: RUST_LOG, else info).
    #[arg(long, global = true)]
    log_level: Option<String>,
    /// Log lines as plain text or one JSON object per line.
    #[arg(long, global = true, default_value = "text", value_parser = millrace::logging::LogFormat::parse)]
    log_format: millrace::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a configuration file.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Where the per-stage .hgrm percentile files go on exit
        /// (default: beside the WAL directory, `<wal dir>.hgrm`).
        #[arg(long)]
        hgrm_dir: Option<PathBuf>,
    },
    /// Run the whole pipeline on embedded defaults: a simulated farm, the
    /// tickerplant stand-in and a temporary WAL, then print a report.
    Demo {
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 200)]
        devices: u32,
        #[arg(long, default_value_t = 125)]
        tags_per_device: u32,
        /// Poll interval of every simulated device, in milliseconds.
        #[arg(long, default_value_t = 100)]
        poll_interval_ms: u64,
        /// Keep the WAL, config and percentile files in DIR (default: a
        /// temporary directory removed at the end).
        #[arg(long)]
        keep: Option<PathBuf>,
        /// What the simulated devices speak: modbus, s7, mixed (half
        /// and half), ethernet-ip (simulated Logix controllers), or opcua
        /// (OPC UA servers changing every variable once per poll interval).
        #[arg(long, default_value = "modbus", value_parser = millrace::farm::FarmProtocol::parse)]
        protocol: millrace::farm::FarmProtocol,
    },
    /// Validate a configuration file and print a summary.
    CheckConfig { file: PathBuf },
    /// Split a plant's devices over N gateway configurations (and K
    /// tickerplant segments), balanced by expected requests/s and samples/s.
    Plan {
        /// Gateways to plan for.
        #[arg(long)]
        gateways: usize,
        /// The plant's configuration (every device, the sinks).
        plant: PathBuf,
        /// Directory the gateway configurations are written to.
        #[arg(long)]
        out: PathBuf,
        /// Tickerplant segments: the plant's K sinks, in order, each take
        /// one segment's devices.
        #[arg(long)]
        segments: Option<usize>,
    },
    /// A kdb+-compatible IPC server that accepts `.u.upd`.
    Tickerplant {
        #[arg(long, default_value = "127.0.0.1:5010")]
        listen: String,
        /// Append each update to a tick.q-style log file.
        #[arg(long)]
        journal: Option<PathBuf>,
        /// A file of `user:password` lines; without it any login is accepted.
        #[arg(long)]
        users: Option<PathBuf>,
        /// Serve TLS only (as kdb+ -E 2) with this PEM certificate chain.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Require client certificates signed by this PEM CA.
        #[arg(long, requires = "tls_cert")]
        tls_client_ca: Option<PathBuf>,
        /// Only count the chunks of a tick.q log file as -11!(-2;FILE) does
        /// and say where a torn tail starts (exit 1 if it has one).
        #[arg(long)]
        check_journal: Option<PathBuf>,
    },
    /// Publish a range of the WAL again to a kdb+ endpoint.
    Replay {
        #[arg(long)]
        wal: PathBuf,
        #[arg(long)]
        to: String,
        /// First seq to send (default: the oldest in the WAL).
        #[arg(long)]
        from_seq: Option<u64>,
        /// Send seqs below this one (default: to the end of the WAL).
        #[arg(long)]
        to_seq: Option<u64>,
        #[arg(long, default_value = "plc")]
        table: String,
        #[arg(long, default_value = "replay")]
        user: String,
        /// Environment variable that holds the kdb+ password.
        #[arg(long, default_value = "MILLRACE_KDB_PASSWORD")]
        password_env: String,
        /// Send `time` as a timestamp instead of a timespan.
        #[arg(long)]
        timestamp: bool,
        /// The table's columns in order, as a sink's `columns` key lists
        /// them (add `text` when the WAL holds text samples).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "time,sym,device,value,quality,seq"
        )]
        columns: Vec<String>,
        /// The `gateway` column's symbol when --columns has `gateway`: the
        /// `[gateway] id` of the gateway that wrote the WAL, so replayed
        /// rows de-duplicate against the live ones by (gateway, seq).
        #[arg(long)]
        gateway: Option<String>,
        /// Connect with TLS (kdb+ -E), verifying kdb+ against --tls-ca-file.
        #[arg(long, requires = "tls_ca_file")]
        tls: bool,
        /// PEM CA certificate(s) kdb+'s certificate must chain to.
        #[arg(long, requires = "tls")]
        tls_ca_file: Option<PathBuf>,
        /// PEM client certificate chain, presented if kdb+ asks for one.
        #[arg(long, requires = "tls_client_key", requires = "tls")]
        tls_client_cert: Option<PathBuf>,
        /// The PEM private key of --tls-client-cert.
        #[arg(long, requires = "tls_client_cert")]
        tls_client_key: Option<PathBuf>,
        /// The name kdb+'s certificate must carry (default: the host of --to).
        #[arg(long, requires = "tls")]
        tls_server_name: Option<String>,
    },
    /// List a controller's tags as a tag CSV that `tags_csv` accepts
    /// (EtherNet/IP: a Logix controller's tag list; OPC UA: the variables
    /// of a server's address space).
    Discover {
        /// `ethernet-ip` or `opcua`.
        #[arg(long, value_parser = ["ethernet-ip", "opcua"])]
        protocol: String,
        /// The controller, `host` or `host:port` (port 44818 if none); for
        /// OPC UA the server's `opc.tcp://host[:port]/` URL.
        address: String,
        /// The route to the controller, as a device's `path` key: "1,0"
        /// for backplane slot 0; empty (the default) for a Micro800 or a
        /// CompactLogix reached directly.
        #[arg(long, default_value = "")]
        path: String,
        /// OPC UA: the NodeId to browse from (default: the Objects folder),
        /// e.g. "ns=2;s=Line1".
        #[arg(long)]
        node: Option<String>,
        /// Where the tag CSV goes (default: stdout, the summary then goes
        /// to stderr).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Put in front of every tag's name (e.g. `line2.`).
        #[arg(long, default_value = "")]
        prefix: String,
        /// Connecting and each answer, in milliseconds.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
    },
    /// OPC UA tools.
    Opcua {
        #[command(subcommand)]
        command: OpcuaCommand,
    },
    /// Inspect a write-ahead log directory.
    Wal {
        #[command(subcommand)]
        command: WalCommand,
    },
}

#[derive(Subcommand)]
enum OpcuaCommand {
    /// Make a self-signed application instance certificate (DER) and key
    /// (PEM) for secure channels: DIR/own/cert.der, DIR/own/key.pem, and
    /// the trust list DIR/trusted with DIR/rejected beside it.
    MakeCert {
        /// The application URI millrace presents (its `application_uri`),
        /// e.g. urn:millrace:edge1.
        #[arg(long)]
        uri: String,
        /// The PKI directory to write.
        #[arg(long)]
        out: PathBuf,
        /// A host name or IP address of this machine to put in the
        /// certificate (repeat for more; localhost is always in).
        #[arg(long)]
        host: Vec<String>,
    },
}

#[derive(Subcommand)]
enum WalCommand {
    /// Segments, frames, sequence numbers, cursors and anomalies.
    Inspect {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = millrace::logging::init(cli.log_level.as_deref(), cli.log_format) {
        eprintln!("millrace: {message}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Run { config, hgrm_dir } => {
            ExitCode::from(millrace::app::run::run(&millrace::app::run::RunArgs {
                config,
                hgrm_dir,
            }))
        }
        Command::Demo {
            seconds,
            devices,
            tags_per_device,
            poll_interval_ms,
            keep,
            protocol,
        } => {
            let args = millrace::app::demo::DemoArgs {
                protocol,
                seconds,
                devices,
                tags_per_device,
                poll_interval: std::time::Duration::from_millis(poll_interval_ms.max(1)),
                keep_dir: keep,
            };
            match millrace::app::demo::run(&args) {
                Ok(true) => ExitCode::SUCCESS,
                Ok(false) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("millrace demo: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Discover {
            protocol,
            address,
            path,
            node,
            out,
            prefix,
            timeout_ms,
        } => {
            let timeout = std::time::Duration::from_millis(timeout_ms.max(1));
            let to_stdout = out.is_none();
            let summary = if protocol == "opcua" {
                discover_opcua(address, node, out, prefix, timeout)
            } else {
                discover_enip(address, &path, out, prefix, timeout)
            };
            match summary {
                Ok(summary) if to_stdout => {
                    eprint!("{summary}");
                    ExitCode::SUCCESS
                }
                Ok(summary) => {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes());
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::Opcua {
            command: OpcuaCommand::MakeCert { uri, out, host },
        } => make_cert(&uri, &out, &host),
        Command::CheckConfig { file } => match millrace::config::load(&file) {
            Ok(config) => {
                // A closed stdout (`| head`) is not a failed check: ignore it.
                let summary = millrace::config::Summary::new(&config).to_string();
                let _ = std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes());
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{error}");
                ExitCode::from(1)
            }
        },
        Command::Plan {
            gateways,
            plant,
            out,
            segments,
        } => match plan(gateways, &plant, &out, segments) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("millrace plan: {e}");
                ExitCode::from(1)
            }
        },
        Command::Tickerplant {
            check_journal: Some(path),
            ..
        } => match millrace::kdb::journal::run_check(&path) {
            Ok(complete) => ExitCode::from(u8::from(!complete)),
            Err(message) => {
                eprintln!("millrace: {message}");
                ExitCode::from(1)
            }
        },
        Command::Tickerplant {
            listen,
            journal,
            users,
            tls_cert,
            tls_key,
            tls_client_ca,
            check_journal: None,
        } => {
            let tls = match (tls_cert, tls_key) {
                (Some(cert), Some(key)) => Some(millrace::kdb::ServerTlsFiles {
                    cert,
                    key,
                    client_ca: tls_client_ca,
                }),
                _ => None,
            };
            let (journal, users) = (journal.as_deref(), users.as_deref());
            match millrace::kdb::cli::run_tickerplant(&listen, journal, users, tls.as_ref()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("millrace: {message}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Replay {
            wal,
            to,
            from_seq,
            to_seq,
            table,
            user,
            password_env,
            timestamp,
            columns,
            gateway,
            tls,
            tls_ca_file,
            tls_client_cert,
            tls_client_key,
            tls_server_name,
        } => {
            let tls = match (tls, tls_ca_file) {
                (true, Some(ca_file)) => Some(millrace::config::SinkTls {
                    ca_file,
                    client_cert: tls_client_cert.zip(tls_client_key).map(
                        |(cert_file, key_file)| millrace::config::ClientCertFiles {
                            cert_file,
                            key_file,
                        },
                    ),
                    server_name: tls_server_name
                        .unwrap_or_else(|| millrace::kdb::tls::host_of(&to).to_string()),
                }),
                _ => None,
            };
            let columns = match millrace::kdb::Schema::from_names(columns.iter().map(|c| c.trim()))
            {
                Ok(columns) => columns,
                Err(e) => {
                    eprintln!("millrace replay: --columns: {e}");
                    return ExitCode::from(2);
                }
            };
            if columns.has_gateway() && gateway.is_none() {
                eprintln!(
                    "millrace replay: --columns has `gateway`: give --gateway ID, the \
                     [gateway] id of the gateway that wrote this WAL"
                );
                return ExitCode::from(2);
            }
            let args = millrace::app::replay::ReplayArgs {
                wal,
                columns,
                gateway: gateway.unwrap_or_default(),
                to,
                from_seq: from_seq.unwrap_or(0),
                to_seq: to_seq.unwrap_or(u64::MAX),
                table,
                user,
                password_env,
                time_type: if timestamp {
                    millrace::config::TimeType::Timestamp
                } else {
                    millrace::config::TimeType::Timespan
                },
                tls,
            };
            match millrace::app::replay::run(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("millrace replay: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Wal {
            command: WalCommand::Inspect { dir, json },
        } => wal_inspect(&dir, json),
    }
}

/// `millrace wal inspect DIR [--json]`: read-only; exit 0 even when the
/// report lists anomalies (they are findings, not a failure to inspect).
fn wal_inspect(dir: &std::path::Path, json: bool) -> ExitCode {
    let inspection = match millrace::wal::inspect(dir) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("millrace: {e}");
            return ExitCode::from(1);
        }
    };
    if json {
        match serde_json::to_string_pretty(&inspection) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("millrace: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        print!("{}", millrace::wal::render_text(&inspection));
    }
    ExitCode::SUCCESS
}

/// `millrace opcua make-cert`: what it wrote and the keys that use it.
fn make_cert(uri: &str, out: &std::path::Path, hosts: &[String]) -> ExitCode {
    match millrace::app::opcua_cert::make_cert(uri, out, hosts) {
        Ok(made) => {
            println!(
                "wrote {} (certificate, application URI {uri})\nwrote {} (private key: keep it \
                 private)\ncreated {} (trust list: put the server certificates here) and {}\n\n\
                 In the device's configuration (paths relative to the configuration file):\n\
                 security_policy = \"Basic256Sha256\"\nsecurity_mode = \"SignAndEncrypt\"\n\
                 application_uri = \"{uri}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n\
                 trusted_certs = \"{}\"\n\nThen trust {} on the OPC UA server.",
                made.certificate.display(),
                made.private_key.display(),
                made.trusted.display(),
                made.rejected.display(),
                made.certificate.display(),
                made.private_key.display(),
                made.trusted.display(),
                made.certificate.display(),
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("millrace opcua make-cert: {e}");
            ExitCode::from(1)
        }
    }
}

/// `millrace discover --protocol ethernet-ip`: the summary, or the exit
/// code after saying why not.
fn discover_enip(
    address: String,
    path: &str,
    out: Option<PathBuf>,
    prefix: String,
    timeout: std::time::Duration,
) -> Result<String, ExitCode> {
    let route = millrace::config::parse_enip_route(path).map_err(|e| {
        eprintln!("millrace discover: --path \"{path}\": {e}");
        ExitCode::from(2)
    })?;
    let args = millrace::app::discover::DiscoverArgs {
        address,
        route,
        out,
        prefix,
        timeout,
    };
    millrace::app::discover::run(&args).map_err(|e| {
        eprintln!("millrace discover: {e}");
        ExitCode::from(1)
    })
}

/// `millrace discover --protocol opcua`: the summary, or the exit code
/// after saying why not.
fn discover_opcua(
    url: String,
    node: Option<String>,
    out: Option<PathBuf>,
    prefix: String,
    timeout: std::time::Duration,
) -> Result<String, ExitCode> {
    let args = millrace::opcua::discover::DiscoverArgs {
        url,
        node,
        out,
        prefix,
        timeout,
    };
    millrace::opcua::discover::run(&args).map_err(|e| {
        eprintln!("millrace discover: {e}");
        ExitCode::from(1)
    })
}

/// `millrace plan`: plans, writes, and prints one line per gateway.
fn plan(
    gateways: usize,
    plant: &std::path::Path,
    out: &std::path::Path,
    segments: Option<usize>,
) -> Result<(), millrace::app::plan::PlanError> {
    use millrace::app::plan::{plan_config, write_plan, PlanError};
    let config = millrace::config::load(plant).map_err(PlanError::Config)?;
    let plan = plan_config(&config, gateways, segments.unwrap_or(1))?;
    let written = write_plan(plant, &config, &plan, segments, out)?;
    for w in &written {
        let segments = if w.segment_devices.is_empty() {
            String::new()
        } else {
            let counts: Vec<String> = w.segment_devices.iter().map(|n| n.to_string()).collect();
            format!(", devices per segment {}", counts.join(" "))
        };
        println!(
            "{} {}: {} devices at {} addresses, {:.1} requests/s, {:.1} samples/s{segments}",
            w.id,
            w.path.display(),
            w.devices,
            w.addresses,
            w.load.requests,
            w.load.samples
        );
    }
    Ok(())
}
