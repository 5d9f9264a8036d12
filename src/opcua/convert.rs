//! DataValue to samples: the one place an OPC UA value becomes ring
//! records. Sans-IO (the receive time is an argument), no panics on any
//! value a server sends, and a tag's record count is fixed by its plan,
//! never by what arrived: a scalar is 1 record, a `string[C]`
//! `text_records(C)`.
//!
//! - Quality is the DataValue's StatusCode whole (`Quality::opcua`); a
//!   missing status is Good. Bad and Uncertain values are samples with
//!   their status (a Bad one usually has no value: its value bits are 0).
//! - A value of another built-in type than the tag declares (an array
//!   too) is `Quality::TYPE_MISMATCH`, and the caller logs one line per tag
//!   (`Written::mismatch`).
//! - Time: the SourceTimestamp, else the ServerTimestamp, else the receive
//!   time (`time_source = "source"`); `"server"` skips the first,
//!   `"receive"` uses the receive time only.

use opcua::types::{DataValue, DateTime, Variant};

use crate::config::{OpcuaTag, OpcuaType, TimeSource};
use crate::sample::{text_records, write_text, Quality, Sample, TagId, ValueKind};

/// How one tag's values become records.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ItemPlan {
    pub first_tag: TagId,
    pub data_type: OpcuaType,
    /// Array elements (1: a scalar); element i is tag `first_tag + i`.
    pub count: u32,
    pub scale: f64,
    pub offset: f64,
}

impl ItemPlan {
    pub fn new(tag: &OpcuaTag, first_tag: TagId) -> ItemPlan {
        ItemPlan {
            first_tag,
            data_type: tag.data_type,
            count: tag.count.max(1),
            scale: tag.scale,
            offset: tag.offset,
        }
    }

    /// Records one value of this tag writes, whatever arrived.
    pub const fn records(&self) -> usize {
        self.data_type.records() * self.count as usize
    }

    /// Tag ids the tag uses (one per element).
    pub const fn tags(&self) -> u32 {
        self.count
    }

    fn scaled(&self) -> bool {
        self.scale != 1.0 || self.offset != 0.0
    }
}

/// What `write_value` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// Records written (the plan's `records()`; 0 if `out` was too short).
    pub records: usize,
    /// The value had another type or shape than the tag declares.
    pub mismatch: bool,
}

/// UNIX nanoseconds of an OPC UA DateTime (saturating past 2262).
pub fn unix_ns(time: &DateTime) -> i64 {
    let chrono = time.as_chrono();
    chrono
        .timestamp_nanos_opt()
        .unwrap_or(if chrono.timestamp() < 0 {
            i64::MIN
        } else {
            i64::MAX
        })
}

/// The time that stamps `value`'s samples.
pub fn stamp(value: &DataValue, source: TimeSource, receive_ns: i64) -> i64 {
    let from = |t: &Option<DateTime>| t.as_ref().filter(|t| !t.is_null()).map(unix_ns);
    match source {
        TimeSource::Source => from(&value.source_timestamp)
            .or_else(|| from(&value.server_timestamp))
            .unwrap_or(receive_ns),
        TimeSource::Server => from(&value.server_timestamp).unwrap_or(receive_ns),
        TimeSource::Receive => receive_ns,
    }
}

/// Writes one DataValue of the tag planned by `plan` at the front of `out`.
pub fn write_value(
    plan: &ItemPlan,
    value: &DataValue,
    time_source: TimeSource,
    receive_ns: i64,
    out: &mut [Sample],
) -> Written {
    let records = plan.records();
    let Some(out) = out.get_mut(..records) else {
        return Written {
            records: 0,
            mismatch: false,
        };
    };
    let ts = stamp(value, time_source, receive_ns);
    let quality = Quality::opcua(value.status.map_or(0, |s| s.bits()));
    let mut mismatch = false;
    match &value.value {
        None | Some(Variant::Empty) => {
            // No value: a Bad status says why; a good one without a value is
            // not the declared type.
            let q = if quality.is_bad() {
                quality
            } else {
                mismatch = true;
                Quality::TYPE_MISMATCH
            };
            fill_bad(plan, ts, q, out);
        }
        Some(Variant::Array(array)) if plan.count > 1 => {
            // Element i of the value is sample i; elements past `count` are
            // not read, and those the value lacks are Bad_IndexRangeNoData.
            let per = plan.data_type.records();
            for (i, slot) in out.chunks_exact_mut(per).enumerate() {
                let tag = TagId(plan.first_tag.0 + i as u32);
                match array.values.get(i) {
                    Some(element) => {
                        mismatch |= !write_scalar(plan, tag, element, ts, quality, slot);
                    }
                    None => write_empty(plan.data_type, tag, ts, Quality::NO_SUCH_ELEMENT, slot),
                }
            }
        }
        Some(_) if plan.count > 1 => {
            // A scalar where an array was declared.
            mismatch = true;
            fill_bad(plan, ts, Quality::TYPE_MISMATCH, out);
        }
        Some(value) => {
            mismatch = !write_scalar(plan, plan.first_tag, value, ts, quality, out);
        }
    }
    Written { records, mismatch }
}

/// Every element of the tag with `quality` and no value (no connection, a
/// timeout).
pub fn fill_bad(plan: &ItemPlan, ts: i64, quality: Quality, out: &mut [Sample]) {
    let per = plan.data_type.records();
    for (i, slot) in out
        .chunks_exact_mut(per)
        .take(plan.count as usize)
        .enumerate()
    {
        write_empty(
            plan.data_type,
            TagId(plan.first_tag.0 + i as u32),
            ts,
            quality,
            slot,
        );
    }
}

fn write_empty(data_type: OpcuaType, tag: TagId, ts: i64, quality: Quality, out: &mut [Sample]) {
    match data_type {
        OpcuaType::String(capacity) => {
            write_text(out, ts, tag, quality, &[], usize::from(capacity));
        }
        _ => {
            if let Some(first) = out.first_mut() {
                *first = Sample::bad(ts, tag, quality);
            }
        }
    }
}

/// One scalar into `out` (its `records()` long); false when the variant is
/// not the declared type (then `TYPE_MISMATCH` is written).
fn write_scalar(
    plan: &ItemPlan,
    tag: TagId,
    value: &Variant,
    ts: i64,
    quality: Quality,
    out: &mut [Sample],
) -> bool {
    if let OpcuaType::String(capacity) = plan.data_type {
        let Variant::String(text) = value else {
            write_empty(plan.data_type, tag, ts, Quality::TYPE_MISMATCH, out);
            return false;
        };
        let text = text.as_ref();
        let capacity = usize::from(capacity);
        let cut = floor_char_boundary(text, capacity);
        debug_assert_eq!(out.len(), text_records(capacity));
        write_text(
            out,
            ts,
            tag,
            quality,
            text.as_bytes().get(..cut).unwrap_or(&[]),
            capacity,
        );
        return true;
    }
    let Some((kind, bits)) = scalar_bits(plan.data_type, value) else {
        write_empty(plan.data_type, tag, ts, Quality::TYPE_MISMATCH, out);
        return false;
    };
    let (kind, bits) = if plan.scaled() {
        let raw = match kind {
            ValueKind::I64 => bits as i64 as f64,
            ValueKind::U64 => bits as f64,
            _ => f64::from_bits(bits),
        };
        (ValueKind::F64, (raw * plan.scale + plan.offset).to_bits())
    } else {
        (kind, bits)
    };
    if let Some(first) = out.first_mut() {
        *first = Sample::new(ts, tag, quality, kind, bits);
    }
    true
}

/// The largest index <= `at` on a character boundary of `text`: a cut
/// text stays valid UTF-8.
fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0)
}

/// The value kind and bits of a scalar of the declared type; `None` for
/// any other variant.
fn scalar_bits(data_type: OpcuaType, value: &Variant) -> Option<(ValueKind, u64)> {
    let signed = |v: i64| Some((ValueKind::I64, v as u64));
    let unsigned = |v: u64| Some((ValueKind::U64, v));
    match (data_type, value) {
        (OpcuaType::Boolean, Variant::Boolean(b)) => Some((ValueKind::Bool, u64::from(*b))),
        (OpcuaType::SByte, Variant::SByte(v)) => signed(i64::from(*v)),
        (OpcuaType::Int16, Variant::Int16(v)) => signed(i64::from(*v)),
        (OpcuaType::Int32, Variant::Int32(v)) => signed(i64::from(*v)),
        (OpcuaType::Int64, Variant::Int64(v)) => signed(*v),
        (OpcuaType::Byte, Variant::Byte(v)) => unsigned(u64::from(*v)),
        (OpcuaType::UInt16, Variant::UInt16(v)) => unsigned(u64::from(*v)),
        (OpcuaType::UInt32, Variant::UInt32(v)) => unsigned(u64::from(*v)),
        (OpcuaType::UInt64, Variant::UInt64(v)) => unsigned(*v),
        (OpcuaType::Float, Variant::Float(v)) => Some((ValueKind::F64, f64::from(*v).to_bits())),
        (OpcuaType::Double, Variant::Double(v)) => Some((ValueKind::F64, v.to_bits())),
        (OpcuaType::DateTime, Variant::DateTime(t)) => signed(unix_ns(t)),
        _ => None,
    }
}

/// The fuzz entry point (`fuzz/fuzz_targets/opcua_value.rs` and its corpus
/// replay): the first byte picks a tag plan, the rest is an OPC UA binary
/// DataValue as a server would send it, decoded by the stack. Checks that
/// exactly the plan's records are written, with the plan's tag ids in
/// order, and that text reads back within its capacity.
pub fn fuzz_value(data: &[u8]) -> bool {
    use opcua::types::{BinaryDecodable, ContextOwned, DecodingOptions};
    let Some((selector, wire)) = data.split_first() else {
        return false;
    };
    let types = [
        OpcuaType::Boolean,
        OpcuaType::SByte,
        OpcuaType::UInt16,
        OpcuaType::Int64,
        OpcuaType::Float,
        OpcuaType::Double,
        OpcuaType::String(8),
        OpcuaType::String(30),
        OpcuaType::DateTime,
    ];
    let data_type = types[usize::from(*selector) % types.len()];
    let plan = ItemPlan {
        first_tag: TagId(100),
        data_type,
        count: if selector & 16 != 0 && !data_type.is_text() {
            3
        } else {
            1
        },
        scale: if selector & 8 != 0 { 2.0 } else { 1.0 },
        offset: 0.0,
    };
    let mut context = ContextOwned::new_default(Default::default(), DecodingOptions::default());
    super::guard::guard(&mut context);
    let mut stream = std::io::Cursor::new(wire);
    let Ok(value) = DataValue::decode(&mut stream, &context.context()) else {
        return false;
    };
    let mut out = vec![Sample::default(); plan.records() + 1];
    let written = write_value(&plan, &value, TimeSource::Source, 7, &mut out);
    assert_eq!(written.records, plan.records());
    let mut index = 0;
    let mut tag = plan.first_tag.0;
    while index < written.records {
        let record = &out[index];
        assert_eq!(record.tag_id(), TagId(tag));
        let span = crate::sample::record_span(&out[index..written.records]).expect("span");
        assert_eq!(span, plan.data_type.records());
        if let OpcuaType::String(capacity) = plan.data_type {
            let text = crate::sample::text_at(&out[index..]).expect("text");
            assert!(text.len() <= usize::from(capacity));
        }
        index += span;
        tag += 1;
    }
    assert_eq!(
        out[written.records],
        Sample::default(),
        "wrote past the plan"
    );
    true
}

#[cfg(test)]
mod tests {
    use opcua::types::{Array, StatusCode, UAString, VariantScalarTypeId};

    use super::*;

    fn plan(data_type: OpcuaType) -> ItemPlan {
        ItemPlan {
            first_tag: TagId(10),
            data_type,
            count: 1,
            scale: 1.0,
            offset: 0.0,
        }
    }

    fn value(v: Variant) -> DataValue {
        DataValue {
            value: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn scalars_of_every_type() {
        let t = DateTime::from(chrono::DateTime::from_timestamp(1_700_000_000, 5_000).unwrap());
        for (data_type, variant, kind, bits) in [
            (
                OpcuaType::Boolean,
                Variant::Boolean(true),
                ValueKind::Bool,
                1,
            ),
            (
                OpcuaType::SByte,
                Variant::SByte(-2),
                ValueKind::I64,
                (-2i64) as u64,
            ),
            (OpcuaType::Byte, Variant::Byte(200), ValueKind::U64, 200),
            (
                OpcuaType::Int16,
                Variant::Int16(-300),
                ValueKind::I64,
                (-300i64) as u64,
            ),
            (
                OpcuaType::UInt16,
                Variant::UInt16(60000),
                ValueKind::U64,
                60000,
            ),
            (
                OpcuaType::Int32,
                Variant::Int32(-7),
                ValueKind::I64,
                (-7i64) as u64,
            ),
            (OpcuaType::UInt32, Variant::UInt32(7), ValueKind::U64, 7),
            (
                OpcuaType::Int64,
                Variant::Int64(i64::MIN),
                ValueKind::I64,
                i64::MIN as u64,
            ),
            (
                OpcuaType::UInt64,
                Variant::UInt64(u64::MAX),
                ValueKind::U64,
                u64::MAX,
            ),
            (
                OpcuaType::Float,
                Variant::Float(1.5),
                ValueKind::F64,
                1.5f64.to_bits(),
            ),
            (
                OpcuaType::Double,
                Variant::Double(-2.25),
                ValueKind::F64,
                (-2.25f64).to_bits(),
            ),
            (
                OpcuaType::DateTime,
                Variant::DateTime(Box::new(t)),
                ValueKind::I64,
                1_700_000_000_000_005_000u64,
            ),
        ] {
            let mut out = [Sample::default(); 2];
            let w = write_value(
                &plan(data_type),
                &value(variant),
                TimeSource::Receive,
                9,
                &mut out,
            );
            assert_eq!(
                w,
                Written {
                    records: 1,
                    mismatch: false
                },
                "{data_type}"
            );
            assert_eq!(
                out[0],
                Sample::new(9, TagId(10), Quality::GOOD, kind, bits),
                "{data_type}"
            );
            assert_eq!(out[1], Sample::default());
        }
    }

    #[test]
    fn status_and_time_are_kept() {
        let source = DateTime::from(chrono::DateTime::from_timestamp(1000, 0).unwrap());
        let server = DateTime::from(chrono::DateTime::from_timestamp(2000, 0).unwrap());
        let uncertain = StatusCode::from(0x4090_0000u32);
        let v = DataValue {
            value: Some(Variant::Double(1.0)),
            status: Some(uncertain),
            source_timestamp: Some(source),
            server_timestamp: Some(server),
            ..Default::default()
        };
        let p = plan(OpcuaType::Double);
        let mut out = [Sample::default(); 1];
        write_value(&p, &v, TimeSource::Source, 5, &mut out);
        assert_eq!(
            (out[0].ts_ns, out[0].quality()),
            (1_000_000_000_000, Quality(0x4090_0000))
        );
        assert_eq!(out[0].value_f64(), 1.0);
        write_value(&p, &v, TimeSource::Server, 5, &mut out);
        assert_eq!(out[0].ts_ns, 2_000_000_000_000);
        write_value(&p, &v, TimeSource::Receive, 5, &mut out);
        assert_eq!(out[0].ts_ns, 5);
        // A bad value without a value: kept, with its status.
        let bad = DataValue {
            value: None,
            status: Some(StatusCode::from(0x8034_0000u32)),
            ..Default::default()
        };
        let w = write_value(&p, &bad, TimeSource::Source, 5, &mut out);
        assert!(!w.mismatch);
        assert_eq!(out[0], Sample::bad(5, TagId(10), Quality(0x8034_0000)));
    }

    #[test]
    fn a_value_of_another_type_is_a_mismatch() {
        let mut out = [Sample::default(); 1];
        let w = write_value(
            &plan(OpcuaType::Double),
            &value(Variant::Int32(1)),
            TimeSource::Receive,
            1,
            &mut out,
        );
        assert!(w.mismatch);
        assert_eq!(out[0], Sample::bad(1, TagId(10), Quality::TYPE_MISMATCH));
    }

    #[test]
    fn an_array_is_a_mismatch() {
        let values: Vec<Variant> = (0..3).map(|i| Variant::Int16(i * 3)).collect();
        let array = Array::new(VariantScalarTypeId::Int16, values).unwrap();
        let mut out = [Sample::default(); 1];
        let v = value(Variant::Array(Box::new(array)));
        let w = write_value(
            &plan(OpcuaType::Int16),
            &v,
            TimeSource::Receive,
            1,
            &mut out,
        );
        assert!(w.mismatch);
        assert_eq!(out[0], Sample::bad(1, TagId(10), Quality::TYPE_MISMATCH));
    }

    #[test]
    fn an_array_tag_gives_each_element_its_tag_and_marks_the_missing_ones() {
        let mut p = plan(OpcuaType::Double);
        p.count = 4;
        p.scale = 2.0;
        assert_eq!(p.records(), 4);
        let values: Vec<Variant> = (0..3)
            .map(|i| Variant::Double(f64::from(i) + 0.5))
            .collect();
        let array = Array::new(VariantScalarTypeId::Double, values).unwrap();
        let mut out = [Sample::default(); 5];
        let w = write_value(
            &p,
            &value(Variant::Array(Box::new(array))),
            TimeSource::Receive,
            1,
            &mut out,
        );
        assert_eq!(
            w,
            Written {
                records: 4,
                mismatch: false
            }
        );
        for i in 0..3u32 {
            let want = (f64::from(i) + 0.5) * 2.0;
            assert_eq!(
                out[i as usize],
                Sample::new(
                    1,
                    TagId(10 + i),
                    Quality::GOOD,
                    ValueKind::F64,
                    want.to_bits()
                )
            );
        }
        assert_eq!(out[3], Sample::bad(1, TagId(13), Quality::NO_SUCH_ELEMENT));
        assert_eq!(out[4], Sample::default(), "wrote past the plan");

        // A scalar where the array was declared: every element says so.
        let w = write_value(
            &p,
            &value(Variant::Double(1.0)),
            TimeSource::Receive,
            2,
            &mut out,
        );
        assert!(w.mismatch);
        for i in 0..4u32 {
            assert_eq!(
                out[i as usize],
                Sample::bad(2, TagId(10 + i), Quality::TYPE_MISMATCH)
            );
        }
        // No connection: every element.
        fill_bad(&p, 3, Quality::NO_CONNECTION, &mut out);
        assert_eq!(out[3], Sample::bad(3, TagId(13), Quality::NO_CONNECTION));
    }

    #[test]
    fn text_is_cut_at_its_capacity_on_a_character_boundary() {
        let p = plan(OpcuaType::String(10));
        let records = p.records();
        let mut out = vec![Sample::default(); records];
        let v = value(Variant::String(UAString::from("ééééééé")));
        write_value(&p, &v, TimeSource::Receive, 1, &mut out);
        let text = crate::sample::text_at(&out).unwrap();
        let mut bytes = vec![0u8; text.len()];
        text.copy_to(&mut bytes);
        assert_eq!(std::str::from_utf8(&bytes), Ok("ééééé"));
        // A bad text value still takes its full record count.
        let bad = DataValue {
            value: None,
            status: Some(StatusCode::BadNodeIdUnknown),
            ..Default::default()
        };
        let w = write_value(&p, &bad, TimeSource::Receive, 1, &mut out);
        assert_eq!(w.records, records);
    }

    #[test]
    fn scaling_gives_a_float() {
        let p = ItemPlan {
            scale: 0.5,
            offset: 1.0,
            ..plan(OpcuaType::Int32)
        };
        let mut out = [Sample::default(); 1];
        write_value(
            &p,
            &value(Variant::Int32(10)),
            TimeSource::Receive,
            1,
            &mut out,
        );
        assert_eq!(
            (out[0].kind(), out[0].value_f64()),
            (Some(ValueKind::F64), 6.0)
        );
    }
}
