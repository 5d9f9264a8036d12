//! `millrace wal inspect DIR`: a read-only look at a WAL directory. It maps
//! segments read-only, takes no lock and changes nothing, so it can run next
//! to a live writer (whose in-flight frames may then show as a torn tail).
//!
//! Besides frames and seqs it walks the samples of every valid frame: rows
//! (records that are not text extensions), text samples with the newest one
//! of each segment, and records that do not hold together as samples (a
//! text head without its extensions: an anomaly, `FrameError::Records`).
//!
//! It also shows the history of names (inspect_tags.rs): each tag table
//! with the seqs and frames it names, and as anomalies the frames whose
//! names cannot be known, where the sink and `replay` would stop.

#![forbid(unsafe_code)]

use std::fs;
use std::path::Path;

use serde::Serialize;

use super::checkpoint;
use super::error::WalError;
use super::format::{frame_records, parse_frame, Body, FrameError, SegmentHeader};
use super::inspect_tags::{self, Coverage, TagTableInfo};
use super::recovery::segment_seq;
use super::scan::{describe_tail, scan_segment, ScanStop};
use super::segment::Segment;
use crate::sample::{record_span, text_at, Sample};

#[derive(Clone, Debug, Serialize)]
pub struct Inspection {
    pub dir: String,
    pub segments: Vec<SegmentInfo>,
    /// The oldest seq still held.
    pub oldest_seq: Option<u64>,
    /// One past the last valid frame: what a restart would call durable.
    pub durable_seq: u64,
    pub frames: u64,
    /// Records: every seq (a text sample's extensions have seqs too).
    pub samples: u64,
    /// Records that are rows (kdb+ rows: not text extension records).
    pub rows: u64,
    /// Rows that carry text.
    pub text_samples: u64,
    pub cursors: Vec<CursorInfo>,
    pub anomalies: Vec<Anomaly>,
    /// The tag tables, oldest first: which names each range of seqs was
    /// polled under.
    pub tag_tables: Vec<TagTableInfo>,
}

#[derive(Clone, Debug, Serialize)]
pub struct SegmentInfo {
    pub file: String,
    pub bytes: u64,
    /// Bytes up to the end of the last valid frame.
    pub used_bytes: u64,
    pub frames: u64,
    pub first_seq: u64,
    /// One past the last sample's seq.
    pub end_seq: u64,
    pub ts_min_ns: Option<i64>,
    pub ts_max_ns: Option<i64>,
    pub rows: u64,
    pub text_samples: u64,
    /// The segment's newest text sample.
    pub last_text: Option<TextInfo>,
}

/// One text sample as inspect shows it.
#[derive(Clone, Debug, Serialize)]
pub struct TextInfo {
    pub seq: u64,
    pub tag_id: u32,
    /// The text (not UTF-8: replacement characters), at most
    /// `TEXT_SHOWN_CHARS` characters.
    pub text: String,
    /// Its length in bytes.
    pub bytes: usize,
    pub quality: u32,
}

/// Characters of a text sample `inspect` shows.
const TEXT_SHOWN_CHARS: usize = 80;

#[derive(Clone, Debug, Serialize)]
pub struct CursorInfo {
    pub name: String,
    /// `None` when the file is unreadable or fails its checks.
    pub checkpoint: Option<u64>,
    /// Samples durable but not yet delivered.
    pub lag: Option<u64>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Anomaly {
    pub file: String,
    pub offset: Option<u64>,
    pub kind: &'static str,
    pub detail: String,
}

pub fn inspect(dir: &Path) -> Result<Inspection, WalError> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map_err(|e| WalError::io("read dir", dir, e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut out = Inspection {
        dir: dir.display().to_string(),
        segments: Vec::new(),
        oldest_seq: None,
        durable_seq: 0,
        frames: 0,
        samples: 0,
        rows: 0,
        text_samples: 0,
        cursors: Vec::new(),
        anomalies: Vec::new(),
        tag_tables: Vec::new(),
    };
    let mut coverage = Coverage::load(dir, &mut out);
    let seg_names: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|n| segment_seq(n).map(|s| (s, n)))
        .collect();
    for (i, (seq, name)) in seg_names.iter().enumerate() {
        let next = seg_names.get(i + 1).map(|n| n.0);
        inspect_segment(dir, name, *seq, next, &mut out, &mut coverage);
    }
    for name in &names {
        note_other_file(dir, name, &mut out);
    }
    out.oldest_seq = out.segments.first().map(|s| s.first_seq);
    out.durable_seq = out.segments.last().map_or(0, |s| s.end_seq);
    out.frames = out.segments.iter().map(|s| s.frames).sum();
    out.samples = out.segments.iter().map(|s| s.end_seq - s.first_seq).sum();
    out.rows = out.segments.iter().map(|s| s.rows).sum();
    out.text_samples = out.segments.iter().map(|s| s.text_samples).sum();
    for c in &mut out.cursors {
        c.lag = c.checkpoint.map(|ck| out.durable_seq.saturating_sub(ck));
    }
    coverage.finish(&mut out);
    Ok(out)
}

fn inspect_segment(
    dir: &Path,
    name: &str,
    seq: u64,
    next: Option<u64>,
    out: &mut Inspection,
    coverage: &mut Coverage,
) {
    let mut anomaly = |offset: Option<u64>, kind, detail: String| {
        out.anomalies.push(Anomaly {
            file: name.to_string(),
            offset,
            kind,
            detail,
        })
    };
    let seg = match Segment::open(&dir.join(name), seq, false) {
        Ok(seg) => seg,
        Err(e) => return anomaly(None, "unreadable segment", e.to_string()),
    };
    let bytes = seg.published();
    match SegmentHeader::decode(bytes) {
        Ok(h) if h.first_seq == seq && h.segment_bytes == bytes.len() as u64 => {}
        Ok(h) => {
            let d = format!(
                "header says first_seq {} size {}",
                h.first_seq, h.segment_bytes
            );
            return anomaly(Some(0), "bad segment header", d);
        }
        Err(e) => return anomaly(Some(0), "bad segment header", e.to_string()),
    }
    let scan = scan_segment(bytes, seq);
    let (tail_end, tail_frames) = describe_tail(bytes, scan.valid_end);
    let at = Some(scan.valid_end as u64);
    match (next, scan.stop) {
        (Some(_), ScanStop::Bad { offset, reason }) => anomaly(
            Some(offset as u64),
            "corrupt frame in sealed segment",
            reason.to_string(),
        ),
        (Some(n), ScanStop::Clean) if scan.end_seq != n => anomaly(
            at,
            "sealed segment short",
            format!(
                "frames end at seq {}, the next segment starts at {n}",
                scan.end_seq
            ),
        ),
        (None, ScanStop::Bad { reason, .. }) => anomaly(
            at,
            "torn tail",
            format!(
                "{reason}; recovery will cut {} bytes, ~{tail_frames} frames",
                tail_end - scan.valid_end
            ),
        ),
        (None, ScanStop::Clean) if tail_end > scan.valid_end => anomaly(
            at,
            "garbage after last frame",
            format!("recovery will zero {} bytes", tail_end - scan.valid_end),
        ),
        _ => {}
    }
    if let Some(prev) = out.segments.last() {
        if prev.end_seq != seq {
            out.anomalies.push(Anomaly {
                file: name.to_string(),
                offset: None,
                kind: "sequence gap",
                detail: format!("seqs {}..{seq} are missing", prev.end_seq),
            });
        }
    }
    let walked = walk_samples(bytes, seq, scan.frames, coverage);
    if let Some((offset, error)) = walked.broken {
        out.anomalies.push(Anomaly {
            file: name.to_string(),
            offset: Some(offset as u64),
            kind: "broken text samples",
            detail: FrameError::Records(error).to_string(),
        });
    }
    out.segments.push(SegmentInfo {
        file: name.to_string(),
        bytes: bytes.len() as u64,
        used_bytes: scan.valid_end as u64,
        frames: scan.frames,
        first_seq: seq,
        end_seq: scan.end_seq,
        ts_min_ns: scan.ts_min_ns,
        ts_max_ns: scan.ts_max_ns,
        rows: walked.rows,
        text_samples: walked.text_samples,
        last_text: walked.last_text,
    });
}

/// What the samples of a segment's valid frames hold.
#[derive(Default)]
struct Walked {
    rows: u64,
    text_samples: u64,
    last_text: Option<TextInfo>,
    /// The first frame (its offset) whose records do not hold together.
    broken: Option<(usize, crate::sample::TextError)>,
}

/// Walks the samples of the first `frames` frames (checked by the scan),
/// and counts each frame against its tag table.
fn walk_samples(bytes: &[u8], first_seq: u64, frames: u64, coverage: &mut Coverage) -> Walked {
    let mut walked = Walked::default();
    let mut offset = super::format::SEGMENT_HEADER_BYTES;
    let mut seq = first_seq;
    let body = Body::of_segment(bytes);
    let mut expanded = Vec::new();
    for _ in 0..frames {
        let Ok(Some(frame)) = parse_frame(body, bytes, offset, seq, false) else {
            break;
        };
        coverage.note(&frame);
        if let Ok(samples) = frame_records(bytes, &frame, &mut expanded) {
            if let Err(error) = walk_frame(samples, frame.first_seq, &mut walked) {
                walked.broken.get_or_insert((offset, error));
            }
        }
        offset += frame.frame_bytes;
        seq = frame.end_seq();
    }
    walked
}

/// Counts one frame's rows and text samples; the first broken record ends it.
fn walk_frame(
    samples: &[Sample],
    first_seq: u64,
    walked: &mut Walked,
) -> Result<(), crate::sample::TextError> {
    let mut at = 0;
    while let Some(rest) = samples.get(at..).filter(|r| !r.is_empty()) {
        let span = record_span(rest)?.max(1);
        walked.rows += 1;
        if let Some(text) = text_at(rest) {
            walked.text_samples += 1;
            let mut bytes = vec![0u8; text.len()];
            text.copy_to(&mut bytes);
            let shown: String = String::from_utf8_lossy(&bytes)
                .chars()
                .take(TEXT_SHOWN_CHARS)
                .collect();
            walked.last_text = Some(TextInfo {
                seq: first_seq + at as u64,
                tag_id: text.head.tag_id().0,
                text: shown,
                bytes: bytes.len(),
                quality: text.head.quality,
            });
        }
        at += span;
    }
    Ok(())
}

fn note_other_file(dir: &Path, name: &str, out: &mut Inspection) {
    let mut anomaly = |kind, detail: String| {
        out.anomalies.push(Anomaly {
            file: name.to_string(),
            offset: None,
            kind,
            detail,
        })
    };
    if let Some(cursor) = checkpoint::name_of(name) {
        let checkpoint = match checkpoint::read(&dir.join(name)) {
            Ok(Ok(seq)) => Some(seq),
            Ok(Err(why)) => {
                anomaly("bad checkpoint", why.to_string());
                None
            }
            Err(e) => {
                anomaly("bad checkpoint", e.to_string());
                None
            }
        };
        out.cursors.push(CursorInfo {
            name: cursor.to_string(),
            checkpoint,
            lag: None,
        });
    } else if name.contains(".corrupt") {
        anomaly(
            "set aside",
            "a file recovery set aside; inspect it and remove it".into(),
        );
    } else if name.starts_with("tags.") && name.ends_with(".part") {
        anomaly(
            "leftover temporary",
            "an interrupted tag table write; nothing reads it, remove it".into(),
        );
    } else if name.ends_with(".tmp") {
        anomaly(
            "leftover temporary",
            "an interrupted creation; recovery removes it".into(),
        );
    }
}

/// The human form of an inspection.
pub fn render_text(i: &Inspection) -> String {
    let mut s = format!("wal {}\n", i.dir);
    let oldest = i.oldest_seq.map_or("-".to_string(), |o| o.to_string());
    s += &format!(
        "  segments {}  frames {}  samples {} (rows {}, text {})  oldest seq {oldest}  \
         durable seq {}\n",
        i.segments.len(),
        i.frames,
        i.samples,
        i.rows,
        i.text_samples,
        i.durable_seq
    );
    for g in &i.segments {
        s += &format!(
            "  {}  seq {}..{}  frames {}  used {}/{} bytes  time {} .. {}\n",
            g.file,
            g.first_seq,
            g.end_seq,
            g.frames,
            g.used_bytes,
            g.bytes,
            g.ts_min_ns.map_or("-".into(), utc),
            g.ts_max_ns.map_or("-".into(), utc)
        );
        if let Some(t) = &g.last_text {
            s += &format!(
                "    text samples {}, newest: seq {} tag id {} quality {:#010x} {} bytes {:?}\n",
                g.text_samples, t.seq, t.tag_id, t.quality, t.bytes, t.text
            );
        }
    }
    s += &inspect_tags::render(&i.tag_tables);
    for c in &i.cursors {
        let ck = c.checkpoint.map_or("unreadable".into(), |v| v.to_string());
        let lag = c.lag.map_or("-".into(), |v| v.to_string());
        s += &format!("  cursor {}  checkpoint {ck}  lag {lag}\n", c.name);
    }
    if i.anomalies.is_empty() {
        s += "  anomalies: none\n";
    }
    for a in &i.anomalies {
        let at = a
            .offset
            .map_or(String::new(), |o| format!(" at offset {o}"));
        s += &format!("  ANOMALY {}{at}: {}: {}\n", a.file, a.kind, a.detail);
    }
    s
}

/// UNIX nanoseconds as `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` (proleptic
/// Gregorian, Howard Hinnant's days-to-civil).
fn utc(ns: i64) -> String {
    crate::civil::format_ns(ns)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            super::utc(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(super::utc(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
