//! The stand-in's recorder for runs against the farm (`millrace demo`,
//! `millrace-loadgen bench`): every row's seq (exactly once, by seq), its
//! value (the farm's value function for that device and tag), and whether a
//! row that survives de-duplication by seq repeats the previous sample of
//! its tag (the same device answer delivered twice under two seqs).
//!
//! A row names its device and tag by its sym alone (the names emitted
//! configs give): `dDDDDD.hrAAAAA` is holding register A of Modbus device D
//! (`verify_register`), `dDDDDD.sTTTTT` is tag T of S7 device D, the T-th
//! of `s7::layout::farm_tags` (checked by `s7::check_number` and
//! `s7::check_text`, see `s7::check` for what each S7 type delivers), and
//! `dDDDDD.eJJJJJ` or `dDDDDD.eJJJJJ[i]` is sample `i` of config tag `J` of
//! EtherNet/IP device D, the J-th of `enip::emit::farm_tags` (checked by
//! `enip::check_number` and `enip::check_text`), and `dDDDDD.uJJJJJ` is
//! variable J of OPC UA device D (`opcua::values`).
//!
//! An OPC UA value carries the count of changes of its variable; between
//! two delivered changes of one tag it must move by exactly one:
//! `opcua_changes_missed` counts the changes the farm published in between
//! that never arrived, a repeat counts in `duplicates_after_dedup`.
//!
//! Every farm value carries its device's answer counter (a Modbus
//! register's high byte; two nibbles of an S7 value of two bytes or more,
//! the hex digits of a text, a date's distance from its slot's base), and
//! the counter advances with every answered read, so two consecutive
//! samples of one tag differ in counter unless the same answer was
//! delivered twice (or 256 reads of that device went by unseen between
//! them, which a bench run at a fixed poll interval does not produce).
//! Values that carry no whole counter (bools, single bytes) are checked but
//! not compared with their predecessor.
//!
//! The Modbus farm serves registers only, no text: a configuration that
//! reads them as string tags gets text rows (value `0n`), which count as
//! rows without a value (`bad_quality_rows`) and, with their text, in
//! `text_rows`; there is no farm formula to check a text against. An S7
//! text tag's row comes in the update's rows without its text (value `0n`);
//! the stand-in hands the text over right after (`record_text`), where it
//! is checked against the farm (`s7::check_text`). Until then the row
//! counts in `text_rows_unchecked`.
//!
//! The stand-in hands it whole updates column-wise (`record_columns`): one
//! loop over the borrowed sym, value and seq columns, no allocation, and the
//! Modbus per-response hash computed once per run of rows from one device
//! answer (they arrive together) instead of once per row.

use std::collections::VecDeque;

use crate::config::Area;
use crate::config::CipType;
use crate::farm;
use crate::farm::enip;
use crate::farm::opcua::values::{self as ua, FarmType};
use crate::farm::s7::{self, Check, FarmTag};
use crate::farm::values::{check8_seeded, response_seed};
use crate::farm::{DeviceProtocol, FarmProtocol};
use crate::kdb::upd_view::RecordColumns;
use crate::kdb::{Recorder, SeqRecorder};

/// No counter recorded for a tag's last sample.
const NO_COUNTER: u16 = 0x100;

/// Last delivered sample of one tag: `seq + 1` (0 = none yet) and counter
/// (`NO_COUNTER` when the value carried none).
#[derive(Clone, Copy, Default)]
struct Last {
    seq_plus_one: u64,
    counter: u16,
}

/// The last `response_seed` computed, and for which (device, counter).
#[derive(Clone, Copy)]
struct Seed {
    device: u32,
    counter: u8,
    seed: u64,
}

impl Seed {
    /// The holding-register seed of `(device, counter)`, from the cache when
    /// the previous row came from the same answer.
    fn of(&mut self, device: u32, counter: u8) -> u64 {
        if self.device != device || self.counter != counter {
            *self = Seed {
                device,
                counter,
                seed: response_seed(Area::Holding, device, counter),
            };
        }
        self.seed
    }
}

/// One delivered row as the verifier reads it. `text` and `quality` are
/// `None` where the stand-in's update carried no such column.
#[derive(Clone, Copy, Debug)]
pub struct Row<'a> {
    pub sym: &'a [u8],
    pub value: f64,
    pub text: Option<&'a [u8]>,
    /// The `quality` column (0 good; a bad code is negative as a kdb+ int).
    pub quality: Option<i32>,
    pub seq: i64,
}

/// Which device and tag a sym names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TagRef {
    Modbus {
        device: u32,
        address: u16,
    },
    S7 {
        device: u32,
        index: u32,
    },
    /// Sample `element` of config tag `index`.
    Enip {
        device: u32,
        index: u32,
        element: u32,
    },
    Opcua {
        device: u32,
        index: u32,
    },
}

pub struct Verifier {
    seqs: SeqRecorder,
    protocol: FarmProtocol,
    devices: u32,
    tags_per_device: u32,
    s7_tags: Vec<FarmTag>,
    /// Per sample of an EtherNet/IP device, in order: what it reads.
    enip_samples: Vec<enip::FarmTag>,
    /// Per config tag of an EtherNet/IP device: its first sample's index
    /// in `enip_samples` and its sample count.
    enip_tags: Vec<(u32, u32)>,
    last: Vec<Last>,
    seed: Seed,
    pub rows: u64,
    pub mismatches: u64,
    pub unparsed_syms: u64,
    /// Rows without a value: bad quality, or text.
    pub bad_quality_rows: u64,
    /// Rows that carried a non-empty text.
    pub text_rows: u64,
    pub duplicates_after_dedup: u64,
    /// Rows of text tags that came without their text (the update had no
    /// text column): nothing could be checked.
    pub text_rows_unchecked: u64,
    /// S7 values checked and right, by type (the index of `S7Type::NAMES`).
    pub s7_checked_by_type: [u64; S7_TYPE_COUNT],
    /// EtherNet/IP values checked and right, by type (the index of
    /// `CipType::NAMES`).
    pub enip_checked_by_type: [u64; ENIP_TYPE_COUNT],
    /// S7 text rows of the update being recorded that came without their
    /// text (the stand-in hands texts over after the update's rows, in
    /// `record_text`), oldest first; at most `PENDING_TEXTS_MAX`.
    pending_texts: VecDeque<PendingText>,
    /// Per device, whether rows of it may arrive here (`route`); empty:
    /// every device.
    taken: Vec<bool>,
    /// Rows of a device the route does not take (a sink's `devices` leak).
    pub foreign_rows: u64,
    /// Per OPC UA tag (slot): the counter of its last delivered change.
    opcua_counters: Vec<ua::Counter>,
    /// OPC UA changes published between two delivered ones of a tag that
    /// never arrived.
    pub opcua_changes_missed: u64,
    /// OPC UA values checked and right, by type (the index of
    /// `opcua::values::TYPES`).
    pub opcua_checked_by_type: [u64; ua::TYPES.len()],
}

/// A text row waiting for its text.
#[derive(Clone, Copy, Debug)]
struct PendingText {
    seq: u64,
    device: u32,
    /// S7 and OPC UA: the tag's index; EtherNet/IP: the sample's.
    index: u32,
    protocol: DeviceProtocol,
}

/// Text rows waiting for their text: more than one update's worth only if
/// texts never come (a sink without a text column), and then the oldest
/// stay counted as unchecked.
const PENDING_TEXTS_MAX: usize = 1 << 16;

/// Entries of `S7Type::NAMES`.
pub const S7_TYPE_COUNT: usize = 21;
const _: () = assert!(crate::config::S7Type::NAMES.len() == S7_TYPE_COUNT);

/// Entries of `CipType::NAMES`.
pub const ENIP_TYPE_COUNT: usize = 12;
const _: () = assert!(CipType::NAMES.len() == ENIP_TYPE_COUNT);

fn enip_type_index(data_type: CipType) -> usize {
    CipType::NAMES
        .iter()
        .position(|(_, t)| *t == data_type)
        .unwrap_or(0)
}

fn s7_type_index(data_type: crate::config::S7Type) -> usize {
    crate::config::S7Type::NAMES
        .iter()
        .position(|(_, t)| std::mem::discriminant(t) == std::mem::discriminant(&data_type))
        .unwrap_or(0)
}

impl Verifier {
    /// For a Modbus farm. `seq_capacity`: seqs `0..seq_capacity` are
    /// tracked (one bit each).
    pub fn new(devices: u32, tags_per_device: u32, seq_capacity: u64) -> Self {
        Self::for_farm(FarmProtocol::Modbus, devices, tags_per_device, seq_capacity)
    }

    /// For a farm of `protocol` whose config `emit_farm_config` wrote.
    pub fn for_farm(
        protocol: FarmProtocol,
        devices: u32,
        tags_per_device: u32,
        seq_capacity: u64,
    ) -> Self {
        let tag_count = devices as usize * tags_per_device as usize;
        let s7_tags = if protocol.has_s7() {
            s7::layout::farm_tags(tags_per_device as usize)
        } else {
            Vec::new()
        };
        let mut enip_samples = Vec::new();
        let mut enip_tags = Vec::new();
        if protocol.has_enip() {
            for tag in enip::emit::farm_tags(tags_per_device as usize) {
                enip_tags.push((enip_samples.len() as u32, u32::from(tag.count)));
                enip_samples.extend((0..u32::from(tag.count)).map(|i| tag.sample(i)));
            }
        }
        Verifier {
            seqs: SeqRecorder::new(seq_capacity),
            protocol,
            devices,
            tags_per_device,
            s7_tags,
            enip_samples,
            enip_tags,
            last: vec![Last::default(); tag_count],
            seed: Seed {
                device: 0,
                counter: 0,
                seed: response_seed(Area::Holding, 0, 0),
            },
            rows: 0,
            mismatches: 0,
            unparsed_syms: 0,
            bad_quality_rows: 0,
            text_rows: 0,
            duplicates_after_dedup: 0,
            text_rows_unchecked: 0,
            s7_checked_by_type: [0; S7_TYPE_COUNT],
            enip_checked_by_type: [0; ENIP_TYPE_COUNT],
            pending_texts: VecDeque::new(),
            taken: Vec::new(),
            foreign_rows: 0,
            opcua_counters: if protocol.has_opcua() {
                vec![ua::Counter::default(); tag_count]
            } else {
                Vec::new()
            },
            opcua_changes_missed: 0,
            opcua_checked_by_type: [0; ua::TYPES.len()],
        }
    }

    /// Only the devices whose farm names (`emit::device_name`) match one of
    /// `patterns` may send rows here; any other row counts in
    /// `foreign_rows`. How a sink with `devices` patterns is checked.
    pub fn route(&mut self, patterns: &[String]) {
        self.taken = (0..self.devices)
            .map(|d| {
                let name = super::emit::device_name(d);
                patterns.iter().any(|p| crate::config::glob_match(p, &name))
            })
            .collect();
    }

    /// OPC UA tags of the farm of which no change arrived (a monitored
    /// item the server refused, a device never subscribed): every change
    /// of theirs is lost.
    pub fn opcua_silent_tags(&self) -> u64 {
        self.opcua_counters
            .iter()
            .filter(|c| **c == ua::Counter::default())
            .count() as u64
    }

    /// Seqs that arrived, each once whatever the duplicates.
    pub fn unique_seqs(&self) -> u64 {
        self.rows - self.seqs.duplicates()
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

    /// Checks one row (the whole path: seq, then value or text).
    pub fn check_row(&mut self, row: &Row<'_>) {
        self.rows += 1;
        if self.seqs.note(row.seq) {
            return; // removed by de-duplication by seq
        }
        let Ok(seq) = u64::try_from(row.seq) else {
            self.unparsed_syms += 1;
            return;
        };
        let tag = parse_sym(row.sym);
        if let Some(
            TagRef::Modbus { device, .. }
            | TagRef::S7 { device, .. }
            | TagRef::Enip { device, .. }
            | TagRef::Opcua { device, .. },
        ) = tag
        {
            if !self.taken.is_empty() && !self.taken.get(device as usize).copied().unwrap_or(false)
            {
                self.foreign_rows += 1;
            }
        }
        match tag {
            Some(TagRef::Modbus { device, address }) => {
                self.check_modbus(device, address, row.value, seq)
            }
            Some(TagRef::S7 { device, index }) => self.check_s7(device, index, row, seq),
            Some(TagRef::Enip {
                device,
                index,
                element,
            }) => self.check_enip(device, index, element, row, seq),
            Some(TagRef::Opcua { device, index }) => self.check_opcua(device, index, row, seq),
            None => self.unparsed_syms += 1,
        }
    }

    fn tag_slot(&self, device: u32, index: u32, protocol: DeviceProtocol) -> Option<usize> {
        let known = device < self.devices
            && index < self.tags_per_device
            && self.protocol.device(device) == protocol;
        known.then(|| device as usize * self.tags_per_device as usize + index as usize)
    }

    fn check_modbus(&mut self, device: u32, address: u16, value: f64, seq: u64) {
        let Some(slot) = self.tag_slot(device, address.into(), DeviceProtocol::Modbus) else {
            self.unparsed_syms += 1;
            return;
        };
        if value.is_nan() {
            // Bad quality (not yet connected, timeout): no value to check.
            self.bad_quality_rows += 1;
            return;
        }
        // A u16 exactly: the cast saturates, so a value out of range or with
        // a fraction does not come back equal (and NaN was handled above).
        let raw = value as u16;
        let in_range = f64::from(raw) == value;
        let counter = farm::counter_of(raw);
        // farm::verify_register, with the per-answer part cached.
        let check = check8_seeded(self.seed.of(device, counter), address);
        if !in_range || raw & 0xff != u16::from(check) {
            self.mismatches += 1;
            return;
        }
        self.note_sample(slot, seq, Some(counter));
    }

    fn check_s7(&mut self, device: u32, index: u32, row: &Row<'_>, seq: u64) {
        let tag = self.s7_tags.get(index as usize).copied();
        let (Some(slot), Some(tag)) = (self.tag_slot(device, index, DeviceProtocol::S7), tag)
        else {
            self.unparsed_syms += 1;
            return;
        };
        let pending = tag.data_type.is_text().then(|| {
            let capacity = crate::protocol::s7::planner::text_capacity(tag.data_type);
            self.note_text_extensions(seq, capacity as usize);
            PendingText {
                seq,
                device,
                index,
                protocol: DeviceProtocol::S7,
            }
        });
        let checked = self.checked(
            row,
            pending,
            |text| s7::check_text(device, &tag, text),
            |value| s7::check_number(device, &tag, value),
            Check::Wrong,
        );
        if let Some(check) = checked {
            self.note_s7_check(slot, &tag, seq, check);
        }
    }

    /// The check of a row's value or text; `None` when there is nothing to
    /// check yet: bad quality, or (`pending`, a text tag) a text that comes
    /// after the update's rows.
    fn checked<C>(
        &mut self,
        row: &Row<'_>,
        pending: Option<PendingText>,
        text: impl FnOnce(&[u8]) -> C,
        number: impl FnOnce(f64) -> C,
        wrong: C,
    ) -> Option<C> {
        if row.quality.is_some_and(|q| q != 0) {
            self.bad_quality_rows += 1;
            return None;
        }
        match (pending, row.text) {
            (Some(_), Some(t)) => Some(text(t)),
            (Some(pending), None) if row.value.is_nan() => {
                self.text_rows_unchecked += 1;
                self.await_text(pending);
                None
            }
            (Some(_), None) => Some(wrong),
            (None, _) if row.value.is_nan() => {
                self.bad_quality_rows += 1;
                None
            }
            (None, _) => Some(number(row.value)),
        }
    }

    /// The sample index of sample `element` of config tag `index`.
    fn enip_sample(&self, index: u32, element: u32) -> Option<u32> {
        let &(first, count) = self.enip_tags.get(index as usize)?;
        (element < count).then_some(first + element)
    }

    fn check_enip(&mut self, device: u32, index: u32, element: u32, row: &Row<'_>, seq: u64) {
        let sample = self.enip_sample(index, element);
        let tag = sample.and_then(|s| self.enip_samples.get(s as usize).copied());
        let slot = sample.and_then(|s| self.tag_slot(device, s, DeviceProtocol::EthernetIp));
        let (Some(slot), Some(tag), Some(sample)) = (slot, tag, sample) else {
            self.unparsed_syms += 1;
            return;
        };
        let pending = tag.data_type().is_text().then(|| {
            self.note_text_extensions(seq, CipType::STRING_CHARS);
            PendingText {
                seq,
                device,
                index: sample,
                protocol: DeviceProtocol::EthernetIp,
            }
        });
        let checked = self.checked(
            row,
            pending,
            |text| enip::check_text(device, &tag, text),
            |value| enip::check_number(device, &tag, value),
            Check::Wrong,
        );
        if let Some(check) = checked {
            self.note_enip_check(slot, &tag, seq, check);
        }
    }

    fn check_opcua(&mut self, device: u32, index: u32, row: &Row<'_>, seq: u64) {
        let Some(slot) = self.tag_slot(device, index, DeviceProtocol::Opcua) else {
            self.unparsed_syms += 1;
            return;
        };
        let data_type = FarmType::of_tag(index);
        // A farm string is 8 bytes: one record, no extension seqs.
        let pending = data_type.config_type().is_text().then_some(PendingText {
            seq,
            device,
            index,
            protocol: DeviceProtocol::Opcua,
        });
        let checked = self.checked(
            row,
            pending,
            |text| ua::check_text(device, index, text),
            |value| ua::check_number(device, index, value),
            ua::Check::Wrong,
        );
        if let Some(check) = checked {
            self.note_opcua_check(slot, data_type, seq, check);
        }
    }

    /// Counts a checked OPC UA value and how its counter moved from the
    /// tag's previous delivered change (rows come in seq order, each tag's
    /// changes in the order the server published them).
    fn note_opcua_check(&mut self, slot: usize, data_type: FarmType, seq: u64, check: ua::Check) {
        let ua::Check::Served(counter) = check else {
            self.mismatches += 1;
            return;
        };
        if let Some(at) = ua::TYPES.iter().position(|t| *t == data_type) {
            self.opcua_checked_by_type[at] += 1;
        }
        let (Some(last), Some(tag_counter)) =
            (self.last.get_mut(slot), self.opcua_counters.get_mut(slot))
        else {
            self.unparsed_syms += 1;
            return;
        };
        if seq < last.seq_plus_one {
            return; // older than the tag's newest change: a redelivery
        }
        last.seq_plus_one = seq + 1;
        match tag_counter.step(counter, data_type) {
            ua::Step::First | ua::Step::Next => {}
            ua::Step::Repeat => self.duplicates_after_dedup += 1,
            ua::Step::Missed(n) => self.opcua_changes_missed += n,
        }
    }

    fn note_enip_check(&mut self, slot: usize, tag: &enip::FarmTag, seq: u64, check: Check) {
        match check {
            Check::Wrong => self.mismatches += 1,
            Check::Served(counter) => {
                self.enip_checked_by_type[enip_type_index(tag.data_type())] += 1;
                self.note_sample(slot, seq, counter);
            }
        }
    }

    /// A text sample is one row at its head's seq; the seqs of its
    /// extension records (as many as its declared capacity takes, whatever
    /// the PLC sent, good or bad) arrive with it.
    fn note_text_extensions(&mut self, head_seq: u64, capacity: usize) {
        let records = crate::sample::text_records(capacity) as u64;
        for seq in head_seq + 1..head_seq + records {
            self.seqs.note(seq as i64);
        }
    }

    fn note_s7_check(&mut self, slot: usize, tag: &FarmTag, seq: u64, check: Check) {
        match check {
            Check::Wrong => self.mismatches += 1,
            Check::Served(counter) => {
                self.s7_checked_by_type[s7_type_index(tag.data_type)] += 1;
                self.note_sample(slot, seq, counter);
            }
        }
    }

    fn await_text(&mut self, pending: PendingText) {
        if self.pending_texts.len() == PENDING_TEXTS_MAX {
            self.pending_texts.pop_front();
        }
        self.pending_texts.push_back(pending);
    }

    /// Checks the text of a row `check_row` saw without it. Rows before it
    /// that are still waiting had an empty text (none is handed over):
    /// they stay unchecked.
    fn check_pending_text(&mut self, seq: i64, text: &[u8]) {
        let Ok(seq) = u64::try_from(seq) else { return };
        let Some(at) = self.pending_texts.iter().position(|p| p.seq == seq) else {
            return; // a duplicate seq, or not an S7 text tag of the farm
        };
        let pending = self.pending_texts[at];
        self.pending_texts.drain(..=at);
        self.text_rows_unchecked -= 1;
        let PendingText {
            device,
            index,
            protocol,
            ..
        } = pending;
        if protocol == DeviceProtocol::Opcua {
            if let Some(slot) = self.tag_slot(device, index, DeviceProtocol::Opcua) {
                let check = ua::check_text(device, index, text);
                self.note_opcua_check(slot, FarmType::of_tag(index), seq, check);
            }
            return;
        }
        if protocol == DeviceProtocol::EthernetIp {
            let tag = self.enip_samples.get(index as usize).copied();
            let slot = self.tag_slot(device, index, DeviceProtocol::EthernetIp);
            if let (Some(slot), Some(tag)) = (slot, tag) {
                let check = enip::check_text(device, &tag, text);
                self.note_enip_check(slot, &tag, seq, check);
            }
            return;
        }
        let tag = self.s7_tags.get(index as usize).copied();
        if let (Some(slot), Some(tag)) = (self.tag_slot(device, index, DeviceProtocol::S7), tag) {
            let check = s7::check_text(device, &tag, text);
            self.note_s7_check(slot, &tag, seq, check);
        }
    }

    /// Remembers a checked sample; counts it if it repeats its tag's
    /// previous answer.
    fn note_sample(&mut self, slot: usize, seq: u64, counter: Option<u8>) {
        let Some(last) = self.last.get_mut(slot) else {
            self.unparsed_syms += 1;
            return;
        };
        if seq + 1 > last.seq_plus_one {
            let counter = counter.map_or(NO_COUNTER, u16::from);
            if last.seq_plus_one != 0 && counter != NO_COUNTER && last.counter == counter {
                self.duplicates_after_dedup += 1;
            }
            *last = Last {
                seq_plus_one: seq + 1,
                counter,
            };
        }
    }

    fn row(&mut self, sym: &[u8], value: f64, seq: i64) {
        self.check_row(&Row {
            sym,
            value,
            text: None,
            quality: None,
            seq,
        });
    }
}

impl Recorder for Verifier {
    fn record(&mut self, _table: &[u8], sym: &[u8], value: f64, seq: i64) {
        self.row(sym, value, seq);
    }

    fn record_columns(&mut self, _table: &[u8], rows: &RecordColumns<'_>) {
        for (sym, value, seq) in rows.iter() {
            self.row(sym, value, seq);
        }
    }

    fn record_text(&mut self, _table: &[u8], _sym: &[u8], seq: i64, text: &[u8]) {
        self.text_rows += 1;
        self.check_pending_text(seq, text);
    }
}

/// The device and tag a sym names (`farm::emit::tag_name`,
/// `s7::emit::tag_name`) without a String per row: the stand-in calls this
/// for every row with its table lock held. The shapes every farm of up to
/// 100,000 devices names its tags with are matched whole first; wider
/// numbers take the general path.
fn parse_sym(sym: &[u8]) -> Option<TagRef> {
    match *sym {
        [b'd', d0, d1, d2, d3, d4, b'.', b'h', b'r', a0, a1, a2, a3, a4] => {
            let device = digits5([d0, d1, d2, d3, d4])?;
            let address = u16::try_from(digits5([a0, a1, a2, a3, a4])?).ok()?;
            Some(TagRef::Modbus { device, address })
        }
        [b'd', d0, d1, d2, d3, d4, b'.', b's', t0, t1, t2, t3, t4] => Some(TagRef::S7 {
            device: digits5([d0, d1, d2, d3, d4])?,
            index: digits5([t0, t1, t2, t3, t4])?,
        }),
        [b'd', d0, d1, d2, d3, d4, b'.', b'u', t0, t1, t2, t3, t4] => Some(TagRef::Opcua {
            device: digits5([d0, d1, d2, d3, d4])?,
            index: digits5([t0, t1, t2, t3, t4])?,
        }),
        _ => parse_sym_general(sym),
    }
}

/// Five ASCII digits, without a branch per digit.
#[inline(always)]
fn digits5(text: [u8; 5]) -> Option<u32> {
    let (mut n, mut bad) = (0u32, false);
    for b in text {
        let digit = b.wrapping_sub(b'0');
        bad |= digit > 9;
        n = n * 10 + u32::from(digit);
    }
    (!bad).then_some(n)
}

fn parse_sym_general(sym: &[u8]) -> Option<TagRef> {
    let rest = sym.strip_prefix(b"d")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (device, tag) = (digits(rest.get(..dot)?)?, rest.get(dot + 1..)?);
    if let Some(address) = tag.strip_prefix(b"hr") {
        let address = u16::try_from(digits(address)?).ok()?;
        return Some(TagRef::Modbus { device, address });
    }
    if let Some(rest) = tag.strip_prefix(b"e") {
        let (index, element) = match rest.iter().position(|&b| b == b'[') {
            Some(open) => {
                let inner = rest.get(open + 1..)?.strip_suffix(b"]")?;
                (digits(rest.get(..open)?)?, digits(inner)?)
            }
            None => (digits(rest)?, 0),
        };
        return Some(TagRef::Enip {
            device,
            index,
            element,
        });
    }
    if let Some(index) = tag.strip_prefix(b"u") {
        let index = digits(index)?;
        return Some(TagRef::Opcua { device, index });
    }
    let index = digits(tag.strip_prefix(b"s")?)?;
    Some(TagRef::S7 { device, index })
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

    fn modbus(device: u32, address: u16) -> Option<TagRef> {
        Some(TagRef::Modbus { device, address })
    }

    #[test]
    fn syms_parse_like_the_farm_names_them() {
        let name = farm::emit::tag_name(1234, 77);
        assert_eq!(parse_sym(name.as_bytes()), modbus(1234, 77));
        assert_eq!(parse_sym(b"d1.x2"), None);
        assert_eq!(parse_sym(b"d.hr1"), None);
        assert_eq!(parse_sym(b"d1.hr99999"), None);
        assert_eq!(parse_sym(b"d00001.hr99999"), None);
        assert_eq!(parse_sym(b"d00001.hr6553/"), None);
        assert_eq!(parse_sym(b"d0000:.hr00001"), None);
        assert_eq!(parse_sym(b"d99999.hr65535"), modbus(99999, 65535));
        assert_eq!(parse_sym(b"d123456.hr7"), modbus(123456, 7));
        let s7 = s7::emit::tag_name(42, 1234);
        assert_eq!(
            parse_sym(s7.as_bytes()),
            Some(TagRef::S7 {
                device: 42,
                index: 1234
            })
        );
        assert_eq!(
            parse_sym(b"d123456.s1234567"),
            Some(TagRef::S7 {
                device: 123456,
                index: 1234567
            })
        );
        assert_eq!(parse_sym(b"d00001.s0000x"), None);
        // Every shape the fast path takes, the general path agrees on.
        for sym in [
            &b"d00000.hr00000"[..],
            b"d12345.hr54321",
            b"d00001.hrx0001",
            b"d00001.s00002",
            b"d0000x.s00002",
        ] {
            assert_eq!(parse_sym(sym), parse_sym_general(sym), "{sym:?}");
        }
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

    #[test]
    fn values_that_are_not_a_u16_exactly_are_mismatches() {
        let mut v = Verifier::new(2, 3, 100);
        let sym = farm::emit::tag_name(1, 2);
        let good = value(1, 2, 0);
        for (seq, x) in [-1.0, 65536.0, good + 0.5, -0.0, f64::INFINITY, good]
            .into_iter()
            .enumerate()
        {
            v.record(b"plc", sym.as_bytes(), x, seq as i64);
        }
        // -0.0 is 0 (counter 0, check byte 0): a mismatch unless the check
        // byte of (1, 2, 0) is 0; the last one is right.
        let zero_ok = value(1, 2, 0) == 0.0;
        assert_eq!(v.mismatches, 5 - u64::from(zero_ok));
    }

    /// An S7 STRING row comes without its text (value 0n), its text right
    /// after: the text is checked against the farm, the extension records'
    /// seqs count as arrived, and a wrong text is a mismatch.
    #[test]
    fn s7_text_rows_are_checked_when_their_text_comes() {
        use crate::config::S7Type;
        let tags = s7::layout::farm_tags(40);
        let (index, tag) = (0u32..)
            .zip(&tags)
            .find(|(_, t)| matches!(t.data_type, S7Type::String(_)))
            .expect("a STRING among 40 farm tags");
        let S7Type::String(length) = tag.data_type else {
            unreachable!()
        };
        let mut field = vec![0u8; usize::from(length) + 2];
        s7::memory::fill(0, tag.area, tag.byte, 3, &mut field);
        let text = field[2..2 + usize::from(field[1])].to_vec();
        let records = crate::sample::text_records(usize::from(length)) as i64;
        assert!(records > 1, "the test needs extension records");
        let sym = s7::emit::tag_name(0, index);
        let mut v = Verifier::for_farm(FarmProtocol::S7, 1, 40, 1000);
        v.record(b"plc", sym.as_bytes(), f64::NAN, 0);
        assert_eq!(v.text_rows_unchecked, 1);
        v.record_text(b"plc", sym.as_bytes(), 0, &text);
        assert_eq!((v.text_rows_unchecked, v.mismatches), (0, 0));
        assert_eq!(v.lost(records as u64), 0);
        // The next sample, with a wrong text.
        v.record(b"plc", sym.as_bytes(), f64::NAN, records);
        v.record_text(b"plc", sym.as_bytes(), records, b"nonsense");
        assert_eq!((v.text_rows_unchecked, v.mismatches), (0, 1));
        // A text for a seq that waits for none changes nothing.
        v.record_text(b"plc", sym.as_bytes(), 999, &text);
        assert_eq!((v.text_rows_unchecked, v.mismatches), (0, 1));
        let string = S7Type::NAMES
            .iter()
            .position(|(n, _)| *n == "string")
            .unwrap();
        assert_eq!(v.s7_checked_by_type[string], 1);
    }

    /// The stand-in's column-wise path counts exactly what row by row does,
    /// over a message as millrace encodes it (with the seed cache crossing
    /// devices and counters, a repeated seq, a bad value and a bad sym).
    #[test]
    fn column_wise_equals_row_by_row() {
        use crate::config::TimeType;
        use crate::kdb::upd_view::{view_body, Viewed};
        use crate::kdb::{encode_upd, MsgType, SymbolTable};
        use crate::sample::{Sample, TagId};

        let mut symbols = SymbolTable::new();
        for (device, address) in [(0, 0), (0, 1), (1, 0), (1, 2)] {
            symbols
                .push(&farm::emit::tag_name(device, address), "d")
                .unwrap();
        }
        symbols.push("not.a.farm.tag", "d").unwrap();
        let rows: Vec<(u32, f64, u64)> = vec![
            (0, value(0, 0, 1), 0),
            (1, value(0, 1, 1), 1),
            (2, value(1, 0, 9), 2),
            (0, value(0, 0, 2), 3),
            (0, value(0, 0, 2), 4), // same answer again
            (3, value(1, 2, 9), 2), // same seq again
            (3, value(1, 2, 9) + 1.0, 5),
            (4, 3.0, 6),
            (2, f64::NAN, 7),
        ];
        let samples: Vec<Sample> = rows
            .iter()
            .map(|&(tag, v, _)| Sample::f64(0, TagId(tag), v))
            .collect();
        let (mut by_row, mut by_column) = (Verifier::new(2, 3, 100), Verifier::new(2, 3, 100));
        let mut message = Vec::new();
        for (sample, &(_, _, seq)) in samples.iter().zip(&rows) {
            encode_upd(
                "plc",
                std::slice::from_ref(sample),
                seq,
                &symbols,
                TimeType::Timespan,
                MsgType::Async,
                &mut message,
            )
            .unwrap();
            let Viewed::Update(update) = view_body(&message[8..], &Default::default()) else {
                panic!("not viewed");
            };
            let mut tables = crate::kdb::upd::Tables::new(1);
            let types = update.types();
            let state = tables
                .apply_columns(b"plc", None, types.as_slice(), 1)
                .unwrap();
            let columns = update.record_columns(state).unwrap();
            by_column.record_columns(b"plc", &columns);
            for (sym, v, seq) in columns.iter() {
                by_row.record(b"plc", sym, v, seq);
            }
        }
        let counts = |v: &Verifier| {
            (
                v.rows,
                v.mismatches,
                v.unparsed_syms,
                v.bad_quality_rows,
                v.duplicates_after_dedup,
                v.duplicate_seqs(),
                v.lost(8),
            )
        };
        assert_eq!(counts(&by_column), counts(&by_row));
        assert_eq!(counts(&by_column), (9, 1, 1, 1, 1, 1, 0));
    }
}
