//! Property tests of the framers and the session over random chunkings: a
//! stream cut anywhere gives the same frames, and the same samples, as the
//! stream in one piece.

use millrace::config::{Area, DataType, WordOrder};
use millrace::protocol::modbus::{
    crc16, DevicePlan, Framing, MbapFramer, ModbusSession, PlannedRequest, PlannedTag, RtuFramer,
    SessionConfig, REQUEST_BYTES_MAX,
};
use millrace::{Sample, TagId};
use proptest::prelude::*;

type Frame = (u16, u8, Vec<u8>);

const TYPES: [DataType; 3] = [DataType::Uint16, DataType::Float32, DataType::Int64];
const ORDERS: [WordOrder; 3] = [WordOrder::Abcd, WordOrder::Cdab, WordOrder::Dcba];

fn mbap(frames: &[Frame]) -> Vec<u8> {
    let mut stream = Vec::new();
    for (tid, unit, pdu) in frames {
        stream.extend_from_slice(&tid.to_be_bytes());
        stream.extend_from_slice(&[0, 0]);
        stream.extend_from_slice(&(pdu.len() as u16 + 1).to_be_bytes());
        stream.push(*unit);
        stream.extend_from_slice(pdu);
    }
    stream
}

/// Cuts `stream` at the given fractions (sorted, deduplicated positions).
fn cut<'a>(stream: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len() + 1)).collect();
    points.push(0);
    points.push(stream.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    (
        any::<u16>(),
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 1..=253),
    )
}

fn rtu_pdu_strategy() -> impl Strategy<Value = (u8, Vec<u8>)> {
    prop_oneof![
        (
            any::<u8>(),
            1u8..=4,
            proptest::collection::vec(any::<u8>(), 0..=250)
        )
            .prop_map(|(unit, fc, data)| {
                let mut pdu = vec![fc, data.len() as u8];
                pdu.extend_from_slice(&data);
                (unit, pdu)
            }),
        (any::<u8>(), 1u8..=4, any::<u8>())
            .prop_map(|(unit, fc, code)| (unit, vec![fc | 0x80, code])),
    ]
}

proptest! {
    #[test]
    fn mbap_frames_survive_any_chunking(
        frames in proptest::collection::vec(frame_strategy(), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let stream = mbap(&frames);
        let mut framer = MbapFramer::new();
        let mut seen = Vec::new();
        for chunk in cut(&stream, &cuts) {
            let mut input = chunk;
            while let Some(f) = framer.next_frame(&mut input).unwrap() {
                seen.push((f.transaction_id, f.unit_id, f.pdu.to_vec()));
            }
            prop_assert!(input.is_empty());
            prop_assert!(framer.pending_len() <= 260);
        }
        prop_assert_eq!(seen, frames);
        prop_assert_eq!(framer.pending_len(), 0);
    }

    #[test]
    fn rtu_frames_survive_any_chunking(
        frames in proptest::collection::vec(rtu_pdu_strategy(), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
    ) {
        let mut stream = Vec::new();
        for (unit, pdu) in &frames {
            let start = stream.len();
            stream.push(*unit);
            stream.extend_from_slice(pdu);
            let crc = crc16(&stream[start..]);
            stream.extend_from_slice(&crc.to_le_bytes());
        }
        let mut framer = RtuFramer::new();
        let mut seen = Vec::new();
        for chunk in cut(&stream, &cuts) {
            let mut input = chunk;
            while let Some(f) = framer.next_frame(&mut input).unwrap() {
                seen.push((f.unit_id, f.pdu.to_vec()));
            }
            prop_assert!(input.is_empty());
        }
        prop_assert_eq!(seen, frames);
    }

    #[test]
    fn session_samples_do_not_depend_on_chunking(
        registers in proptest::collection::vec(any::<u16>(), 4..=125),
        responses in 1usize..6,
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..30),
        rtu in any::<bool>(),
    ) {
        let quantity = registers.len() as u16;
        let tags: Vec<PlannedTag> = (0..quantity - 3)
            .map(|i| PlannedTag {
                tag: TagId(i.into()),
                offset: i,
                data_type: TYPES[usize::from(i % 3)],
                order: ORDERS[usize::from(i % 3)],
                bit: None,
                length: 0,
                scale: 1.0,
                value_offset: 0.0,
                scaled: false,
            })
            .collect();
        let request = PlannedRequest { area: Area::Holding, start: 0, quantity, tags };
        let plan = DevicePlan { requests: vec![request; responses] };
        let framing = if rtu { Framing::RtuOverTcp } else { Framing::Tcp };
        let config = SessionConfig { unit_id: 9, framing, timeout_ns: 1_000, max_inflight: 8 };
        let run = |chunks: Vec<&[u8]>| -> Vec<Sample> {
            let mut session = ModbusSession::new(config, plan.clone()).unwrap();
            session.start_cycle();
            let mut request = [0u8; REQUEST_BYTES_MAX];
            while session.poll_transmit(0, &mut request).is_some() {}
            let mut out = vec![Sample::default(); session.samples_per_frame_max()];
            let mut samples = Vec::new();
            for chunk in chunks {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let r = session.receive(rest, 5, &mut out).unwrap();
                    samples.extend_from_slice(&out[..r.samples]);
                    rest = &rest[r.consumed..];
                }
            }
            assert!(session.cycle_done());
            samples
        };
        let mut pdu = vec![3, (2 * registers.len()) as u8];
        for r in &registers {
            pdu.extend_from_slice(&r.to_be_bytes());
        }
        let mut stream = Vec::new();
        for tid in 1..=responses as u16 {
            if rtu {
                let start = stream.len();
                stream.push(9);
                stream.extend_from_slice(&pdu);
                let crc = crc16(&stream[start..]);
                stream.extend_from_slice(&crc.to_le_bytes());
            } else {
                stream.extend(mbap(&[(tid, 9, pdu.clone())]));
            }
        }
        let whole = run(vec![&stream[..]]);
        prop_assert_eq!(whole.len(), responses * (registers.len() - 3));
        prop_assert!(whole.iter().all(|s| s.quality == 0));
        let chunked = run(cut(&stream, &cuts));
        prop_assert_eq!(whole, chunked);
    }
}
