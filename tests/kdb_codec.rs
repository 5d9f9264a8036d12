//! The codec against the documented byte vectors (../shared/kdb/test-vectors.md,
//! from KxSystems/docs kb/serialization.md), every type's nulls and
//! infinities, big-endian input, and hostile lengths.

use millrace::kdb::types::{attr, null, ty};
use millrace::kdb::{
    compress, decode_message, encode_message, Atom, Data, DecodeError, DecodeLimits, MsgType, K,
};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn limits() -> DecodeLimits {
    DecodeLimits::default()
}

/// (q expression, bytes, the object built by hand)
fn vectors() -> Vec<(&'static str, &'static str, K)> {
    let ab = || K::symbols(&["a", "b"]);
    let ints = |v: Vec<i32>| K::vector(ty::INT, Data::Ints(v));
    vec![
        ("1i", "010000000d000000fa01000000", K::int(1)),
        (
            "enlist 1i",
            "010000001200000006000100000001000000",
            ints(vec![1]),
        ),
        (
            "`byte$til 5",
            "01000000130000000400050000000001020304",
            K::vector(ty::BYTE, Data::Bytes(vec![0, 1, 2, 3, 4])),
        ),
        (
            "enlist `byte$til 5",
            "01000000190000000000010000000400050000000001020304",
            K::list(vec![K::vector(ty::BYTE, Data::Bytes(vec![0, 1, 2, 3, 4]))]),
        ),
        (
            "`a`b!2 3i",
            "0100000021000000630b0002000000610062000600020000000200000003000000",
            K::dict(ab(), ints(vec![2, 3])),
        ),
        (
            "`s#`a`b!2 3i",
            "01000000210000007f0b0102000000610062000600020000000200000003000000",
            K::Dict {
                sorted: true,
                keys: Box::new(ab().with_attr(attr::SORTED)),
                values: Box::new(ints(vec![2, 3])),
            },
        ),
        (
            "([]a:enlist 2i;b:enlist 3i)",
            concat!(
                "010000002f0000006200630b000200000061006200000002000000060001000000020000",
                "0006000100000003000000",
            ),
            K::table(&["a", "b"], vec![ints(vec![2]), ints(vec![3])]),
        ),
        (
            "([]a:`s#enlist 2i;b:enlist 3i)",
            concat!(
                "010000002f0000006201630b000200000061006200000002000000060301000000020000",
                "0006000100000003000000",
            ),
            K::table(
                &["a", "b"],
                vec![ints(vec![2]).with_attr(attr::PARTED), ints(vec![3])],
            )
            .with_attr(attr::SORTED),
        ),
        (
            "([a:enlist 2i]b:enlist 3i)",
            concat!(
                "010000003f000000636200630b0001000000610000000100000006000100000002000000",
                "6200630b0001000000620000000100000006000100000003000000",
            ),
            K::dict(
                K::table(&["a"], vec![ints(vec![2])]),
                K::table(&["b"], vec![ints(vec![3])]),
            ),
        ),
    ]
}

#[test]
fn documented_vectors_decode_and_encode_exactly() {
    for (q, bytes, expected) in vectors() {
        let bytes = hex(bytes);
        let (header, k) = decode_message(&bytes, &limits()).unwrap_or_else(|e| panic!("{q}: {e}"));
        assert_eq!(header.msg_type, MsgType::Async, "{q}");
        assert_eq!(k, expected, "{q}");
        let mut out = Vec::new();
        encode_message(&expected, MsgType::Async, &mut out);
        assert_eq!(out, bytes, "{q}");
    }
}

/// Every prefix of every vector is an error (never a panic), and so is
/// every vector with its counts inflated past the end.
#[test]
fn truncations_and_lengths_past_the_end_are_errors() {
    for (q, bytes, _) in vectors() {
        let bytes = hex(bytes);
        for cut in 0..bytes.len() {
            assert!(
                decode_message(&bytes[..cut], &limits()).is_err(),
                "{q} cut at {cut}"
            );
        }
        // Fix the header length but cut the body: truncated objects.
        for cut in 9..bytes.len() {
            let mut m = bytes[..cut].to_vec();
            m[4..8].copy_from_slice(&(cut as u32).to_le_bytes());
            assert!(
                decode_message(&m, &limits()).is_err(),
                "{q} body cut at {cut}"
            );
        }
    }
    // A vector claiming 2^31-1 ints in a 14-byte message.
    let huge = hex("01000000120000000600ffffff7f01000000");
    assert!(matches!(
        decode_message(&huge, &limits()),
        Err(DecodeError::Truncated { .. })
    ));
    // A header claiming more than the limit.
    let big = hex("01000000ffffff7f0600010000000100");
    assert!(matches!(
        decode_message(&big, &limits()),
        Err(DecodeError::TooLarge { .. })
    ));
    // Negative count.
    let neg = hex("01000000120000000600ffffffff01000000");
    assert!(matches!(
        decode_message(&neg, &limits()),
        Err(DecodeError::NegativeCount { .. })
    ));
    // Trailing garbage after the object.
    let trailing = hex("010000000e000000fa0100000000");
    assert!(matches!(
        decode_message(&trailing, &limits()),
        Err(DecodeError::TrailingBytes { .. })
    ));
    // Unknown type 3 and 120.
    assert!(decode_message(&hex("010000000a000000fd00"), &limits()).is_err());
    assert!(decode_message(&hex("010000000a0000007800"), &limits()).is_err());
}

#[test]
fn nesting_and_object_count_are_bounded() {
    // enlist enlist ... 1000 deep.
    let mut body = Vec::new();
    for _ in 0..1000 {
        body.extend_from_slice(&[0, 0, 1, 0, 0, 0]);
    }
    body.extend_from_slice(&[0xfa, 1, 0, 0, 0]);
    let mut m = vec![1, 0, 0, 0];
    m.extend_from_slice(&((8 + body.len()) as u32).to_le_bytes());
    m.extend_from_slice(&body);
    assert_eq!(
        decode_message(&m, &limits()).unwrap_err(),
        DecodeError::TooDeep
    );
    // A list of 100 (::) with a budget of 50 objects.
    let mut m = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100, 0, 0, 0];
    for _ in 0..100 {
        m.extend_from_slice(&[101, 0]);
    }
    let len = m.len() as u32;
    m[4..8].copy_from_slice(&len.to_le_bytes());
    let tight = DecodeLimits {
        object_count_max: 50,
        ..limits()
    };
    assert_eq!(
        decode_message(&m, &tight).unwrap_err(),
        DecodeError::TooManyObjects
    );
    assert_eq!(decode_message(&m, &limits()).unwrap().1.count(), 100);
}

fn round_trip(k: &K) -> K {
    let mut out = Vec::new();
    encode_message(k, MsgType::Sync, &mut out);
    let (h, back) = decode_message(&out, &limits()).unwrap();
    assert_eq!(h.msg_type, MsgType::Sync);
    let mut again = Vec::new();
    encode_message(&back, MsgType::Sync, &mut again);
    assert_eq!(out, again);
    back
}

/// Each type 1..=19 as atom and vector, with its null and infinities, and
/// the generic null and an error.
#[test]
fn every_type_with_nulls_and_infinities() {
    let cases: Vec<(i8, Atom, Data)> = vec![
        (ty::BOOL, Atom::Byte(1), Data::Bytes(vec![0, 1])),
        (
            ty::GUID,
            Atom::Guid(null::GUID),
            Data::Guids(vec![null::GUID, [0xab; 16]]),
        ),
        (ty::BYTE, Atom::Byte(0xff), Data::Bytes(vec![0, 0x80, 0xff])),
        (
            ty::SHORT,
            Atom::Short(null::SHORT),
            Data::Shorts(vec![null::SHORT, null::SHORT_INF, -null::SHORT_INF, 7]),
        ),
        (
            ty::INT,
            Atom::Int(null::INT),
            Data::Ints(vec![null::INT, null::INT_INF, -null::INT_INF]),
        ),
        (
            ty::LONG,
            Atom::Long(null::LONG),
            Data::Longs(vec![null::LONG, null::LONG_INF, 1 - null::LONG_INF - 1]),
        ),
        (
            ty::REAL,
            Atom::Real(f32::NAN),
            Data::Reals(vec![f32::NAN, null::REAL_INF, -null::REAL_INF]),
        ),
        (
            ty::FLOAT,
            Atom::Float(f64::NAN),
            Data::Floats(vec![f64::NAN, null::FLOAT_INF, -1.5]),
        ),
        (
            ty::CHAR,
            Atom::Byte(null::CHAR),
            Data::Bytes(b"hello".to_vec()),
        ),
        (
            ty::SYMBOL,
            Atom::Symbol(Vec::new()),
            Data::Symbols(["", "a", "bc"].into_iter().collect()),
        ),
        (
            ty::TIMESTAMP,
            Atom::Long(null::LONG),
            Data::Longs(vec![0, null::LONG, null::LONG_INF]),
        ),
        (
            ty::MONTH,
            Atom::Int(null::INT),
            Data::Ints(vec![0, 12, null::INT_INF]),
        ),
        (
            ty::DATE,
            Atom::Int(null::INT),
            Data::Ints(vec![-1, 9000, -null::INT_INF]),
        ),
        (
            ty::DATETIME,
            Atom::Float(f64::NAN),
            Data::Floats(vec![0.5, f64::INFINITY]),
        ),
        (
            ty::TIMESPAN,
            Atom::Long(null::LONG),
            Data::Longs(vec![1, -null::LONG_INF]),
        ),
        (ty::MINUTE, Atom::Int(null::INT), Data::Ints(vec![0, 1439])),
        (ty::SECOND, Atom::Int(null::INT), Data::Ints(vec![0, 86399])),
        (
            ty::TIME,
            Atom::Int(null::INT),
            Data::Ints(vec![0, 86_399_999, null::INT_INF]),
        ),
    ];
    for (t, atom, data) in cases {
        let a = K::atom(t, atom);
        let v = K::vector(t, data).with_attr(attr::UNIQUE);
        let back = round_trip(&K::list(vec![
            a.clone(),
            v.clone(),
            K::null(),
            K::error("type"),
        ]));
        let K::List { items, .. } = back else {
            panic!("list")
        };
        assert_eq!(items[0].wire_type(), -t);
        assert_eq!(items[1].wire_type(), t);
        assert_eq!(items[1].count(), v.count());
        assert!(items[2].is_null());
        assert_eq!(items[3], K::error("type"));
    }
    // Exact bytes of the nulls the docs name.
    let mut out = Vec::new();
    encode_message(
        &K::atom(ty::SHORT, Atom::Short(null::SHORT)),
        MsgType::Async,
        &mut out,
    );
    assert_eq!(&out[8..], &[0xfb, 0x00, 0x80]);
    encode_message(&K::null(), MsgType::Async, &mut out);
    assert_eq!(&out[8..], &[0x65, 0x00]);
    encode_message(&K::error("length"), MsgType::Response, &mut out);
    assert_eq!(&out[8..], b"\x80length\0");
}

#[test]
fn big_endian_messages_decode() {
    // `a`b!2 3i in big-endian byte order.
    let be = hex("0000000000000021630b0000000002610062000600000000020000000200000003");
    let (h, k) = decode_message(&be, &limits()).unwrap();
    assert!(!h.little_endian);
    let ints = K::vector(ty::INT, Data::Ints(vec![2, 3]));
    assert_eq!(k, K::dict(K::symbols(&["a", "b"]), ints));
}

#[test]
fn compressed_messages_decode_to_the_same_object() {
    let longs: Vec<i64> = (0..5000).map(|i| i % 17).collect();
    let k = K::table(
        &["time", "sym"],
        vec![
            K::vector(ty::TIMESPAN, Data::Longs(longs.clone())),
            K::vector(
                ty::SYMBOL,
                Data::Symbols((0..5000).map(|i| ["ab", "cd"][i % 2]).collect()),
            ),
        ],
    );
    let mut plain = Vec::new();
    encode_message(&k, MsgType::Async, &mut plain);
    let mut packed = Vec::new();
    assert!(compress(&plain, &mut packed));
    assert!(packed.len() * 2 <= plain.len());
    let (h, back) = decode_message(&packed, &limits()).unwrap();
    assert!(h.compressed);
    assert_eq!(back, k);
}
