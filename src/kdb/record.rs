//! Delivery records: the stand-in can hand every received row's
//! (table, sym, value, seq) to a caller-provided recorder so that a test or
//! the demo can verify delivery exactly (nothing lost, nothing doubled), and
//! every non-empty text cell with its row's sym and seq.

use super::upd_view::RecordColumns;

/// Receives every row of every accepted update that has sym, value and seq
/// columns. Called with the stand-in's table lock held: keep it cheap.
pub trait Recorder: Send {
    fn record(&mut self, table: &[u8], sym: &[u8], value: f64, seq: i64);

    /// A whole update's rows at once, as columns borrowed from the message
    /// (the stand-in's path for `.u.upd` of a list of columns). The default
    /// hands each row to `record`; override it to check column-wise.
    fn record_columns(&mut self, table: &[u8], rows: &RecordColumns<'_>) {
        for (sym, value, seq) in rows.iter() {
            self.record(table, sym, value, seq);
        }
    }

    /// The text of a row that has one (a `text` column, non-empty cell);
    /// called after `record` or `record_columns` saw the update's rows.
    fn record_text(&mut self, _table: &[u8], _sym: &[u8], _seq: i64, _text: &[u8]) {}
}

/// A bounded record of which sequence numbers in `0..capacity` arrived:
/// one bit each (125 KiB per million), plus counts of duplicates and of
/// numbers outside the range. Values and symbols are not kept.
#[derive(Clone, Debug)]
pub struct SeqRecorder {
    bits: Vec<u64>,
    capacity: u64,
    received: u64,
    duplicates: u64,
    out_of_range: u64,
}

impl SeqRecorder {
    pub fn new(capacity: u64) -> Self {
        let words = capacity.div_ceil(64) as usize;
        SeqRecorder {
            bits: vec![0; words],
            capacity,
            received: 0,
            duplicates: 0,
            out_of_range: 0,
        }
    }

    /// Notes one arrival of `seq`; true when it is a duplicate (in range
    /// and seen before).
    pub fn note(&mut self, seq: i64) -> bool {
        self.received += 1;
        let Ok(seq) = u64::try_from(seq) else {
            self.out_of_range += 1;
            return false;
        };
        if seq >= self.capacity {
            self.out_of_range += 1;
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        let Some(w) = self.bits.get_mut(word) else {
            return false;
        };
        let duplicate = *w & (1 << bit) != 0;
        if duplicate {
            self.duplicates += 1;
        }
        *w |= 1 << bit;
        duplicate
    }

    pub fn contains(&self, seq: u64) -> bool {
        seq < self.capacity
            && self
                .bits
                .get((seq / 64) as usize)
                .is_some_and(|w| w & (1 << (seq % 64)) != 0)
    }

    /// How many of `range` never arrived.
    pub fn missing(&self, range: std::ops::Range<u64>) -> u64 {
        range.filter(|&s| !self.contains(s)).count() as u64
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    pub fn out_of_range(&self) -> u64 {
        self.out_of_range
    }
}

impl Recorder for SeqRecorder {
    fn record(&mut self, _table: &[u8], _sym: &[u8], _value: f64, seq: i64) {
        self.note(seq);
    }

    fn record_columns(&mut self, _table: &[u8], rows: &RecordColumns<'_>) {
        for seq in rows.seqs.iter() {
            self.note(seq);
        }
    }
}

/// Keeps every row (for tests that check values exactly), up to a bound;
/// rows past it are counted, not kept. Texts likewise, in `texts`.
#[derive(Clone, Debug, Default)]
pub struct RowRecorder {
    pub rows: Vec<(String, String, f64, i64)>,
    /// `(table, sym, seq, text)` of every row with a non-empty text (text
    /// that is not UTF-8 shows with replacement characters).
    pub texts: Vec<(String, String, i64, String)>,
    pub row_count_max: usize,
    pub overflow: u64,
}

impl RowRecorder {
    pub fn new(row_count_max: usize) -> Self {
        RowRecorder {
            rows: Vec::new(),
            texts: Vec::new(),
            row_count_max,
            overflow: 0,
        }
    }
}

impl Recorder for RowRecorder {
    fn record(&mut self, table: &[u8], sym: &[u8], value: f64, seq: i64) {
        if self.rows.len() >= self.row_count_max {
            self.overflow += 1;
            return;
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.rows.push((text(table), text(sym), value, seq));
    }

    fn record_text(&mut self, table: &[u8], sym: &[u8], seq: i64, text: &[u8]) {
        if self.texts.len() >= self.row_count_max {
            self.overflow += 1;
            return;
        }
        let lossy = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        self.texts
            .push((lossy(table), lossy(sym), seq, lossy(text)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_recorder_counts_missing_duplicates_and_strays() {
        let mut r = SeqRecorder::new(130);
        let duplicates: Vec<bool> = [0, 1, 2, 64, 129, 129, -1, 130]
            .into_iter()
            .map(|s| r.note(s))
            .collect();
        assert_eq!(
            duplicates,
            [false, false, false, false, false, true, false, false]
        );
        assert_eq!(r.received(), 8);
        assert_eq!(r.duplicates(), 1);
        assert_eq!(r.out_of_range(), 2);
        assert_eq!(r.missing(0..3), 0);
        assert_eq!(r.missing(0..130), 130 - 5);
        assert!(r.contains(129) && !r.contains(128) && !r.contains(1000));
    }
}
