//! The stand-in's recorder for runs against the farm (`millrace demo`,
//! `millrace-loadgen bench`): every row's seq (exactly once, by
//! seq), its value (the farm's formula for that device and register), and
//! whether a row that survives de-duplication by seq repeats the previous
//! sample of its tag (the same device answer delivered twice under two seqs).
//!
//! A farm register carries its device's answer counter in the high byte and
//! the counter advances with every answered read, so two consecutive samples
//! of one tag differ in counter unless the same answer was delivered twice
//! (or 256 reads of that device went by unseen between them, which a bench
//! run at a fixed poll interval does not produce).

use crate::farm;
use crate::kdb::{Recorder, SeqRecorder};

/// Last delivered sample of one tag: `seq + 1` (0 = none yet) and counter.
#[derive(Clone, Copy, Default)]
struct Last {
    seq_plus_one: u64,
    counter: u8,
}

pub struct Verifier {
    seqs: SeqRecorder,
    tags_per_device: u32,
    last: Vec<Last>,
    pub rows: u64,
    pub mismatches: u64,
    pub unparsed_syms: u64,
    pub bad_quality_rows: u64,
    pub duplicates_after_dedup: u64,
}

impl Verifier {
    /// `seq_capacity`: seqs `0..seq_capacity` are tracked (one bit each).
    pub fn new(devices: u32, tags_per_device: u32, seq_capacity: u64) -> Self {
        let tag_count = devices as usize * tags_per_device as usize;
        Verifier {
            seqs: SeqRecorder::new(seq_capacity),
            tags_per_device,
            last: vec![Last::default(); tag_count],
            rows: 0,
            mismatches: 0,
            unparsed_syms: 0,
            bad_quality_rows: 0,
            duplicates_after_dedup: 0,
        }
    }

    /// Seqs in `0..end` that never arrived.
    pub fn lost(&self, end: u64) -> u64 {
        self.seqs.missing(0..end)
    }

    /// Rows removed by de-duplication by seq.
    pub fn duplicate_seqs(&self) -> u64 {
        self.seqs.duplicates()
    }

    pub fn out_of_range_seqs(&self) -> u64 {
        self.seqs.out_of_range()
    }

    fn check_value(&mut self, sym: &[u8], value: f64, seq: u64) {
        let Some((device, address)) = parse_sym(sym) else {
            self.unparsed_syms += 1;
            return;
        };
        if value.is_nan() {
            // Bad quality (not yet connected, timeout): no value to check.
            self.bad_quality_rows += 1;
            return;
        }
        let in_range = (0.0..=65535.0).contains(&value) && value.fract() == 0.0;
        if !in_range || !farm::verify_register(device, address, value as u16) {
            self.mismatches += 1;
            return;
        }
        let counter = farm::counter_of(value as u16);
        let index = device as usize * self.tags_per_device as usize + address as usize;
        let Some(last) = self.last.get_mut(index) else {
            self.unparsed_syms += 1;
            return;
        };
        if seq + 1 > last.seq_plus_one {
            if last.seq_plus_one != 0 && last.counter == counter {
                self.duplicates_after_dedup += 1;
            }
            *last = Last {
                seq_plus_one: seq + 1,
                counter,
            };
        }
    }
}

impl Recorder for Verifier {
    fn record(&mut self, table: &[u8], sym: &[u8], value: f64, seq: i64) {
        self.rows += 1;
        let seen = u64::try_from(seq).is_ok_and(|s| self.seqs.contains(s));
        self.seqs.record(table, sym, value, seq);
        if seen {
            return; // removed by de-duplication by seq
        }
        match u64::try_from(seq) {
            Ok(seq) => self.check_value(sym, value, seq),
            Err(_) => self.unparsed_syms += 1,
        }
    }
}

/// `dDDDDD.hrAAAAA` (farm::emit::tag_name) without a String per row: the
/// stand-in calls this for every row with its table lock held.
fn parse_sym(sym: &[u8]) -> Option<(u32, u16)> {
    let rest = sym.strip_prefix(b"d")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (device, address) = (rest.get(..dot)?, rest.get(dot + 1..)?);
    let address = address.strip_prefix(b"hr")?;
    Some((digits(device)?, u16::try_from(digits(address)?).ok()?))
}

fn digits(text: &[u8]) -> Option<u32> {
    if text.is_empty() || text.len() > 9 {
        return None;
    }
    text.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Area;

    fn value(device: u32, address: u16, counter: u8) -> f64 {
        f64::from(farm::values::register_value(
            Area::Holding,
            device,
            address,
            counter,
        ))
    }

    #[test]
    fn syms_parse_like_the_farm_names_them() {
        let name = farm::emit::tag_name(1234, 77);
        assert_eq!(parse_sym(name.as_bytes()), Some((1234, 77)));
        assert_eq!(parse_sym(b"d1.x2"), None);
        assert_eq!(parse_sym(b"d.hr1"), None);
        assert_eq!(parse_sym(b"d1.hr99999"), None);
    }

    #[test]
    fn counts_losses_mismatches_and_repeated_samples() {
        let mut v = Verifier::new(2, 3, 100);
        let sym = farm::emit::tag_name(1, 2);
        v.record(b"plc", sym.as_bytes(), value(1, 2, 5), 0);
        v.record(b"plc", sym.as_bytes(), value(1, 2, 5), 0); // same seq: removed
        v.record(b"plc", sym.as_bytes(), value(1, 2, 6), 1);
        v.record(b"plc", sym.as_bytes(), value(1, 2, 6), 2); // same answer again
        let flipped = f64::from(value(1, 2, 7) as u16 ^ 1); // check byte off by one bit
        v.record(b"plc", sym.as_bytes(), flipped, 3);
        v.record(b"plc", sym.as_bytes(), f64::NAN, 4);
        assert_eq!(v.rows, 6);
        assert_eq!(v.duplicate_seqs(), 1);
        assert_eq!(v.duplicates_after_dedup, 1);
        assert_eq!(v.bad_quality_rows, 1);
        assert_eq!(v.mismatches, 1);
        assert_eq!(v.lost(5), 0);
        assert_eq!(v.lost(7), 2);
    }
}
