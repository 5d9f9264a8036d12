//! `millrace replay --wal DIR --to HOST:PORT [--from-seq N] [--to-seq N]`:
//! publishes a range of the WAL again to a kdb+ endpoint, e.g. to rebuild a
//! tickerplant after an outage. Reads the WAL read-only (safe beside a
//! running `millrace run`), names tags from the tag tables the runs left in
//! the WAL directory, sends async `.u.upd` per frame and a sync chaser every
//! `CHASE_EVERY_ROWS` rows and at the end, so the summary counts only what
//! kdb+ acknowledged. Rows keep their original `seq`: duplicates against
//! what kdb+ already has are removable exactly. With `--tls` it connects as
//! a TLS sink does (kdb+ -E), the same CA, client certificate and name rules.
//! `--columns` gives the table's columns as a sink's `columns` key does: a
//! WAL that holds text samples needs `text` among them (else the replay
//! stops at the first text sample and says so). A text sample goes whole
//! or not at all: the range takes it by its head's seq.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::error::ReplayError;
use crate::config::{Secret, SinkTls, TimeType};
use crate::kdb::{KdbError, Publisher, PublisherOptions, Schema, TlsClient};
use crate::tag_history::TagHistory;

const CHASE_EVERY_ROWS: u64 = 100_000;
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub struct ReplayArgs {
    pub wal: PathBuf,
    pub to: String,
    pub from_seq: u64,
    pub to_seq: u64,
    pub table: String,
    pub user: String,
    /// Environment variable holding the password (may be unset: no password).
    pub password_env: String,
    pub time_type: TimeType,
    /// The columns sent, in the table's order.
    pub columns: Schema,
    /// The `gateway` column's symbol (when `columns` has it).
    pub gateway: String,
    /// TLS as a sink's `tls_*` keys give it; `None`: plain TCP.
    pub tls: Option<SinkTls>,
}

pub fn run(args: &ReplayArgs) -> Result<(), ReplayError> {
    let mut tables = TagHistory::open(&args.wal)?;
    let password = Secret::new(std::env::var(&args.password_env).unwrap_or_default());
    let tls = args.tls.as_ref().map(TlsClient::from_sink).transpose();
    let options = PublisherOptions {
        time_type: args.time_type,
        columns: args.columns,
        gateway: args.gateway.clone(),
        tls: tls.map_err(|source| ReplayError::Tls { source })?,
        ..PublisherOptions::default()
    };
    let mut publisher =
        Publisher::connect(&args.to, &args.user, &password, options).map_err(|source| {
            ReplayError::Connect {
                to: args.to.clone(),
                source,
            }
        })?;
    tracing::info!(
        "replay: {} seq {}..{} -> {} table {}",
        args.wal.display(),
        args.from_seq,
        if args.to_seq == u64::MAX {
            "end".to_string()
        } else {
            args.to_seq.to_string()
        },
        args.to,
        args.table
    );
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let (mut sent, mut acked, mut since_chase) = (0u64, 0u64, 0u64);
    let mut failure: Option<ReplayError> = None;
    let walked = crate::wal::replay::for_each_frame(
        &args.wal,
        args.from_seq,
        args.to_seq,
        |first_seq, samples, tags_crc| {
            let end_seq = first_seq + samples.len() as u64;
            let result = tables
                .table_for(first_seq, end_seq, tags_crc)
                .map_err(ReplayError::from)
                .and_then(|symbols| {
                    publisher
                        .publish(&args.table, samples, first_seq, &symbols)
                        .map_err(|e| match e {
                            KdbError::NoTextColumn { tag } => ReplayError::NoTextColumn { tag },
                            e => e.into(),
                        })
                });
            if let Err(e) = result {
                failure = Some(e);
                return false;
            }
            // Rows, not records: a text sample's extension records are no rows.
            let rows = samples.iter().filter(|s| s.is_row()).count() as u64;
            sent += rows;
            since_chase += rows;
            if since_chase >= CHASE_EVERY_ROWS {
                if let Err(e) = publisher.chase() {
                    failure = Some(e.into());
                    return false;
                }
                acked = sent;
                since_chase = 0;
            }
            if last_progress.elapsed() >= PROGRESS_EVERY {
                last_progress = Instant::now();
                let rate = acked as f64 / started.elapsed().as_secs_f64();
                tracing::info!(
                    "replay: {acked} rows acknowledged ({rate:.0} rows/s), at seq {first_seq}"
                );
            }
            true
        },
    )?;
    if failure.is_none() {
        match publisher.chase() {
            Ok(()) => acked = sent,
            Err(source) => failure = Some(ReplayError::FinalChase { source }),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "replayed {} frames, {acked} rows acknowledged by {} in {secs:.2} s ({:.0} rows/s); WAL ends at seq {}",
        walked.frames,
        args.to,
        acked as f64 / secs.max(1e-9),
        walked.end_seq
    );
    if let Some(why) = &walked.stopped_at {
        println!("stopped at a frame that failed its checks: {why}");
    }
    match failure {
        Some(e) => Err(ReplayError::Publish {
            source: Box::new(e),
            acked,
        }),
        None if walked.stopped_at.is_some() => Err(ReplayError::CorruptFrame),
        None => Ok(()),
    }
}
