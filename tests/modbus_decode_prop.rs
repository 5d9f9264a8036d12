//! The compiled decode program (runs of same-typed tags) must write exactly
//! the samples the tag-by-tag decoder writes, for any mix of types, orders,
//! scaling, offsets and tag ids; strings of up to 250 bytes take their text
//! records, and the records always hold together as samples.

use millrace::config::{Area, DataType, WordOrder};
use millrace::protocol::modbus::{decode_samples, DecodeProgram, PlannedTag};
use millrace::sample::record_span;
use millrace::{Sample, TagId};
use proptest::prelude::*;

const TYPES: [DataType; 10] = [
    DataType::Bool,
    DataType::Int16,
    DataType::Uint16,
    DataType::Int32,
    DataType::Uint32,
    DataType::Int64,
    DataType::Uint64,
    DataType::Float32,
    DataType::Float64,
    DataType::String,
];
const ORDERS: [WordOrder; 4] = [
    WordOrder::Abcd,
    WordOrder::Cdab,
    WordOrder::Badc,
    WordOrder::Dcba,
];

/// (type index, order index, scaled, bit, length, gap after, tag id jump)
type TagSpec = (usize, usize, bool, u8, u16, u16, bool);

fn tags_from(specs: &[TagSpec], homogeneous: Option<(usize, usize)>) -> (Vec<PlannedTag>, u16) {
    let mut tags = Vec::new();
    let mut offset = 0u16;
    let mut tag = 100u32;
    for &(t, o, scaled, bit, length, gap, jump) in specs {
        let (t, o) = homogeneous.unwrap_or((t, o));
        let data_type = TYPES[t];
        tags.push(PlannedTag {
            tag: TagId(tag),
            offset,
            data_type,
            order: ORDERS[o],
            bit: Some(bit),
            length,
            scale: if scaled { 0.5 } else { 1.0 },
            value_offset: if scaled { 3.0 } else { 0.0 },
            scaled: scaled && homogeneous.is_none(),
        });
        offset += data_type.register_count(length) + if homogeneous.is_some() { 0 } else { gap };
        tag += if jump && homogeneous.is_none() { 2 } else { 1 };
    }
    (tags, offset)
}

fn spec() -> impl Strategy<Value = TagSpec> {
    (
        0..10usize,
        0..4usize,
        proptest::bool::weighted(0.2),
        0..16u8,
        prop_oneof![3 => 1..=8u16, 1 => 9..=250u16],
        0..2u16,
        proptest::bool::weighted(0.1),
    )
}

fn compare(area: Area, tags: &[PlannedTag], quantity: u16, seed: u64) {
    let bytes = if area.is_bit_area() {
        usize::from(quantity).div_ceil(8)
    } else {
        2 * usize::from(quantity)
    };
    let mut state = seed | 1;
    let data: Vec<u8> = (0..bytes)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let records: usize = tags.iter().map(|t| t.records(area)).sum();
    let mut expected = vec![Sample::default(); records];
    let mut actual = vec![Sample::default(); records];
    assert_eq!(decode_samples(area, tags, &data, 9, &mut expected), records);
    let program = DecodeProgram::compile(area, tags);
    assert_eq!(
        program.run(area, tags, &data, 9, &mut actual, false),
        records
    );
    assert_eq!(actual, expected);
    // Packed (the reader's ring): fewer records, the same ones unpacked.
    let mut packed = vec![Sample::default(); records];
    let written = program.run(area, tags, &data, 9, &mut packed, true);
    assert!(written <= records);
    assert_eq!(millrace::packed::members_in(&packed[..written]), records);
    let mut unpacked = Vec::new();
    millrace::packed::unpack_into(&packed[..written], &mut unpacked);
    assert_eq!(unpacked, expected);
    // Sample by sample: one per tag, in plan order, each whole.
    let mut at = 0;
    for tag in tags {
        let span = record_span(&actual[at..]).expect("records hold together");
        assert_eq!(span, tag.records(area));
        assert_eq!(actual[at].tag_id(), tag.tag);
        at += span;
    }
    assert_eq!(at, records);
}

proptest! {
    #[test]
    fn program_equals_tag_by_tag_on_mixed_tags(
        specs in proptest::collection::vec(spec(), 1..60),
        seed in any::<u64>(),
    ) {
        let (tags, quantity) = tags_from(&specs, None);
        compare(Area::Holding, &tags, quantity, seed);
    }

    #[test]
    fn program_equals_tag_by_tag_on_runs(
        specs in proptest::collection::vec(spec(), 1..60),
        t in 0..10usize,
        o in 0..4usize,
        seed in any::<u64>(),
    ) {
        let (tags, quantity) = tags_from(&specs, Some((t, o)));
        compare(Area::Input, &tags, quantity, seed);
    }

    #[test]
    fn program_equals_tag_by_tag_on_bits(count in 1u16..2000, seed in any::<u64>()) {
        let tags: Vec<PlannedTag> = (0..count)
            .map(|i| PlannedTag {
                tag: TagId(i.into()),
                offset: i,
                data_type: DataType::Bool,
                order: WordOrder::Abcd,
                bit: None,
                length: 0,
                scale: 1.0,
                value_offset: 0.0,
                scaled: false,
            })
            .collect();
        compare(Area::Coil, &tags, count, seed);
    }
}
