//! `standin`: the bench's verifying kdb+ tickerplant stand-in in a process of
//! its own, so that its CPU is measured apart from the bench driver's.
//! `millrace tickerplant` accepts `.u.upd` but checks no values; this one
//! records every row with the farm's verifier (seq exactly once, value by
//! the farm's formula, no answer delivered twice under two seqs).
//!
//! It prints `standin listening ADDR` and then answers one line per command
//! read from stdin (the bench driver holds both pipes):
//!
//! ```text
//! rows           ->  rows N              (rows received so far)
//! finish END     ->  verdict {JSON}      (seqs 0..END must all have arrived;
//!                                         stops the server and exits)
//! ```
//!
//! End of stdin stops it too (a driver that died leaves no stand-in behind).

use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};

use clap::Args;
use millrace::farm::verify::Verifier;
use millrace::kdb::{Recorder, Tickerplant, TickerplantOptions};

#[derive(Args, Debug)]
pub struct StandinArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// The farm's protocol (what the rows' tags are).
    #[arg(long, default_value = "modbus", value_parser = crate::parse_protocol)]
    protocol: millrace::farm::FarmProtocol,
    #[arg(long)]
    devices: u32,
    #[arg(long)]
    tags_per_device: u32,
    /// Seqs `0..seq_capacity` are tracked, one bit each.
    #[arg(long)]
    seq_capacity: u64,
    /// Only devices whose names match one of these globs may send rows (a
    /// sink's `devices`); repeat for several. Others count as foreign.
    #[arg(long = "route")]
    route: Vec<String>,
}

/// What the stand-in found, as numbers the bench reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    pub rows: u64,
    /// Seqs below the end that never arrived, plus seqs beyond the record.
    pub lost: u64,
    /// Rows removed by de-duplication by seq.
    pub duplicate_seqs: u64,
    pub duplicates_after_dedup: u64,
    /// Values off the farm's formula, plus rows whose sym did not parse.
    pub mismatches: u64,
    pub bad_quality_rows: u64,
    /// Rows of text tags whose text the update did not carry.
    pub text_rows_unchecked: u64,
    /// Seqs that arrived (each once).
    pub unique_seqs: u64,
    /// Rows of devices outside `--route`.
    pub foreign_rows: u64,
    /// OPC UA: changes the farm published between two delivered changes
    /// of a tag that never arrived.
    pub changes_missed: u64,
    /// OPC UA: tags of which no change arrived at all.
    pub silent_tags: u64,
}

impl Verdict {
    pub fn of(v: &Verifier, end_seq: u64) -> Verdict {
        Verdict {
            rows: v.rows,
            lost: v.lost(end_seq) + v.out_of_range_seqs(),
            duplicate_seqs: v.duplicate_seqs(),
            duplicates_after_dedup: v.duplicates_after_dedup,
            mismatches: v.mismatches + v.unparsed_syms,
            bad_quality_rows: v.bad_quality_rows,
            text_rows_unchecked: v.text_rows_unchecked,
            unique_seqs: v.unique_seqs(),
            foreign_rows: v.foreign_rows,
            changes_missed: v.opcua_changes_missed,
            silent_tags: v.opcua_silent_tags(),
        }
    }

    pub fn to_json(self) -> String {
        format!(
            "{{\"rows\": {}, \"lost\": {}, \"duplicate_seqs\": {}, \
             \"duplicates_after_dedup\": {}, \"mismatches\": {}, \"bad_quality_rows\": {}, \
             \"text_rows_unchecked\": {}, \"unique_seqs\": {}, \"foreign_rows\": {}, \
             \"changes_missed\": {}, \"silent_tags\": {}}}",
            self.rows,
            self.lost,
            self.duplicate_seqs,
            self.duplicates_after_dedup,
            self.mismatches,
            self.bad_quality_rows,
            self.text_rows_unchecked,
            self.unique_seqs,
            self.foreign_rows,
            self.changes_missed,
            self.silent_tags
        )
    }

    /// Parses what `to_json` wrote (and nothing else: no JSON crate here).
    pub fn from_json(text: &str) -> Option<Verdict> {
        let field = |name: &str| -> Option<u64> {
            let key = format!("\"{name}\": ");
            let rest = text.split_once(&key)?.1;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok()
        };
        Some(Verdict {
            rows: field("rows")?,
            lost: field("lost")?,
            duplicate_seqs: field("duplicate_seqs")?,
            duplicates_after_dedup: field("duplicates_after_dedup")?,
            mismatches: field("mismatches")?,
            bad_quality_rows: field("bad_quality_rows")?,
            text_rows_unchecked: field("text_rows_unchecked")?,
            unique_seqs: field("unique_seqs")?,
            foreign_rows: field("foreign_rows")?,
            changes_missed: field("changes_missed")?,
            silent_tags: field("silent_tags")?,
        })
    }
}

pub fn run(args: &StandinArgs) -> std::io::Result<()> {
    let mut verifier = Verifier::for_farm(
        args.protocol,
        args.devices,
        args.tags_per_device,
        args.seq_capacity,
    );
    if !args.route.is_empty() {
        verifier.route(&args.route);
    }
    let verifier = Arc::new(Mutex::new(verifier));
    let options = TickerplantOptions {
        recorder: Some(Arc::clone(&verifier) as Arc<Mutex<dyn Recorder>>),
        ..TickerplantOptions::default()
    };
    let tp = Tickerplant::bind(&args.listen, options)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "standin listening {}", tp.local_addr())?;
    out.flush()?;
    let lock = || verifier.lock().unwrap_or_else(|e| e.into_inner());
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("rows"), None) => writeln!(out, "rows {}", lock().rows)?,
            (Some("finish"), Some(end)) => {
                let end: u64 = end.parse().map_err(std::io::Error::other)?;
                // Stop first: every acknowledged update has been recorded
                // (a chaser is answered after the updates before it).
                let _ = tp.stop();
                writeln!(out, "verdict {}", Verdict::of(&lock(), end).to_json())?;
                out.flush()?;
                return Ok(());
            }
            _ => writeln!(out, "error unknown command {line:?}")?,
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_survives_its_json() {
        let v = Verdict {
            rows: 12,
            lost: 1,
            duplicate_seqs: 2,
            duplicates_after_dedup: 3,
            mismatches: 4,
            bad_quality_rows: 5,
            text_rows_unchecked: 6,
            unique_seqs: 7,
            foreign_rows: 8,
            changes_missed: 9,
            silent_tags: 10,
        };
        assert_eq!(Verdict::from_json(&v.to_json()), Some(v));
        assert_eq!(Verdict::from_json("{\"rows\": 1}"), None);
    }
}
