//! Which rows of a WAL frame a sink delivers, when its `devices` patterns
//! take some devices and not others.
//!
//! The WAL is shared: a frame holds the rows of every device one reader
//! polled. A sink with patterns keeps a bitmap with one bit per tag id of
//! the tag table in force (built when that table is first seen, by matching
//! each tag's device against the patterns; a backlog polled under an older
//! configuration is routed by that configuration's device names) and cuts
//! each frame into runs of consecutive records it takes. A run keeps its
//! records' seqs (`first_seq` + offset), so de-duplication by seq stays
//! exact; a text sample's extension records carry its tag, so a run never
//! splits one.
//!
//! Must never: allocate per frame or per sample (the bitmap is rebuilt only
//! when the tag table changes), or hand out a record of a device the sink
//! does not take.

use std::sync::Arc;

use crate::config::SinkConfig;
use crate::kdb::SymbolTable;
use crate::sample::Sample;

/// A sink's rule for a tag table's ids.
pub struct Route {
    /// The sink's patterns; `None`: every row (no bitmap, no cutting).
    patterns: Option<Vec<String>>,
    /// The table the bitmap was built for, and one bit per tag id.
    built_for: Option<Arc<SymbolTable>>,
    taken: Vec<u64>,
}

impl Route {
    pub fn new(sink: &SinkConfig) -> Route {
        Route {
            patterns: sink.devices.clone(),
            built_for: None,
            taken: Vec::new(),
        }
    }

    /// Makes the bitmap match `table` (a no-op when it already does).
    pub fn use_table(&mut self, table: &Arc<SymbolTable>) {
        let Some(patterns) = &self.patterns else {
            return;
        };
        if self
            .built_for
            .as_ref()
            .is_some_and(|t| Arc::ptr_eq(t, table))
        {
            return;
        }
        self.taken.clear();
        self.taken.resize(table.len().div_ceil(64), 0);
        for (index, word) in self.taken.iter_mut().enumerate() {
            for bit in 0..64 {
                let id = index * 64 + bit;
                let Ok(id) = u32::try_from(id) else { break };
                let device = table.device_name(crate::sample::TagId(id));
                let takes = device
                    .is_some_and(|d| patterns.iter().any(|p| crate::config::glob_match(p, d)));
                *word |= u64::from(takes) << bit;
            }
        }
        self.built_for = Some(Arc::clone(table));
    }

    /// Whether the record `sample` belongs to a device this sink takes.
    /// An id past the table is taken: the encoder then names it as an
    /// unknown tag instead of the sink dropping it silently.
    #[inline]
    pub fn takes(&self, sample: &Sample) -> bool {
        if self.patterns.is_none() {
            return true;
        }
        let id = sample.tag_id().0 as usize;
        match self.taken.get(id / 64) {
            Some(word) => word >> (id % 64) & 1 == 1,
            None => true,
        }
    }

    /// The runs of records this sink takes, as `(offset, records)` with
    /// `offset` the index of the run's first record in `samples`.
    pub fn runs<'a>(&'a self, samples: &'a [Sample]) -> Runs<'a> {
        Runs {
            route: self,
            samples,
            at: 0,
        }
    }
}

/// Iterator over a frame's taken runs (see `Route::runs`).
pub struct Runs<'a> {
    route: &'a Route,
    samples: &'a [Sample],
    at: usize,
}

impl<'a> Iterator for Runs<'a> {
    type Item = (usize, &'a [Sample]);

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.samples.get(self.at..)?;
        let skip = rest.iter().position(|s| self.route.takes(s))?;
        let start = self.at + skip;
        let tail = self.samples.get(start..)?;
        let len = tail
            .iter()
            .position(|s| !self.route.takes(s))
            .unwrap_or(tail.len());
        self.at = start + len;
        Some((start, tail.get(..len)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::TagId;

    fn table() -> Arc<SymbolTable> {
        let mut t = SymbolTable::new();
        for (tag, device) in [
            ("a0", "line1-a"),
            ("a1", "line1-a"),
            ("b0", "press-01"),
            ("c0", "line2-c"),
            ("c1", "line2-c"),
        ] {
            t.push(tag, device).unwrap();
        }
        Arc::new(t)
    }

    fn route(patterns: Option<&[&str]>) -> Route {
        Route {
            patterns: patterns.map(|p| p.iter().map(|s| s.to_string()).collect()),
            built_for: None,
            taken: Vec::new(),
        }
    }

    #[test]
    fn runs_are_the_taken_records_with_their_offsets() {
        let mut r = route(Some(&["line*"]));
        r.use_table(&table());
        let tags = [0u32, 1, 2, 2, 3, 4, 2, 0];
        let samples: Vec<Sample> = tags
            .iter()
            .map(|&t| Sample::f64(1, TagId(t), 0.0))
            .collect();
        let runs: Vec<(usize, usize)> = r.runs(&samples).map(|(o, s)| (o, s.len())).collect();
        assert_eq!(runs, vec![(0, 2), (4, 2), (7, 1)]);
        // Every taken record is in exactly one run, every other in none.
        let covered: usize = runs.iter().map(|r| r.1).sum();
        assert_eq!(covered, tags.iter().filter(|&&t| t != 2).count());
    }

    #[test]
    fn no_patterns_take_the_whole_frame_and_unknown_ids_are_kept() {
        let all = route(None);
        let samples: Vec<Sample> = (0..4).map(|t| Sample::f64(1, TagId(t), 0.0)).collect();
        assert_eq!(all.runs(&samples).count(), 1);
        let mut some = route(Some(&["press-*"]));
        some.use_table(&table());
        assert!(some.takes(&Sample::f64(1, TagId(2), 0.0)));
        assert!(!some.takes(&Sample::f64(1, TagId(0), 0.0)));
        assert!(some.takes(&Sample::f64(1, TagId(999), 0.0)));
    }
}
