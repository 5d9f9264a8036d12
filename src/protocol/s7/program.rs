//! Decode programs: one planned Read Var request compiled, at plan time,
//! into what its usual answer looks like and how to decode it. The hot
//! path then checks an answer with one comparison per item and decodes
//! runs of same-typed tags with one tight loop each, instead of walking
//! the items with the checked reader and dispatching on every tag's type.
//!
//! The usual answer is every item answered `0xFF` with transport size
//! `0x04` (bytes, length in bits) and exactly the bytes asked for: what
//! S7 CPUs, Snap7 and the farm send. Its item heads are then known bytes
//! at known offsets of the data part, so "every head equals the expected
//! one and the data part is exactly as long as planned" IS the validation
//! of every return code, transport size, length and fill the per-item
//! path (`wire::next_item`) does, for that answer. Anything else (an item
//! error, a PLC capping items, transport size 9, a malformed answer) fails
//! the comparison and takes the per-item path, which gives it its
//! qualities, notices and errors exactly as before. Both paths write the
//! same records; `tests` in this module and the property test in
//! `session_tests.rs` check that on random plans and answers.
//!
//! Must never: accept an answer the per-item path would refuse, or write
//! other records than it would; allocate per frame.

use crate::config::S7Type;
use crate::packed::{fill_run_records, Packed, Plain, RunFill};
use crate::sample::{Quality, RunTail, Sample, TagId, ValueKind};

use super::limits::*;
use super::planner::{PlannedRequest, PlannedTag};
use super::wire::{self, ITEM_OK};

/// Transport size of a byte read's answer: BYTE/WORD/DWORD, length in bits.
const TRANSPORT_SIZE_BYTES: u8 = 0x04;
/// Shortest group of tags worth a run of its own (a single tag goes
/// through `write_tag`, whose dispatch a loop of one saves nothing on).
const RUN_TAGS_MIN: usize = 2;

/// A numeric type whose value is a pure function of its bytes (no BCD or
/// date to check, no bit to pick), unscaled: what a run may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RunType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
}

impl RunType {
    fn of(tag: &PlannedTag) -> Option<Self> {
        if tag.scaled {
            return None;
        }
        Some(match tag.data_type {
            S7Type::Byte | S7Type::USInt => RunType::U8,
            S7Type::SInt => RunType::I8,
            S7Type::Word | S7Type::UInt => RunType::U16,
            S7Type::Int => RunType::I16,
            S7Type::DWord | S7Type::UDInt => RunType::U32,
            S7Type::DInt | S7Type::Time => RunType::I32,
            S7Type::ULInt => RunType::U64,
            S7Type::LInt => RunType::I64,
            S7Type::Real => RunType::F32,
            S7Type::LReal => RunType::F64,
            _ => return None,
        })
    }

    const fn bytes(self) -> usize {
        match self {
            RunType::U8 | RunType::I8 => 1,
            RunType::U16 | RunType::I16 => 2,
            RunType::U32 | RunType::I32 | RunType::F32 => 4,
            RunType::U64 | RunType::I64 | RunType::F64 => 8,
        }
    }

    /// The kind `decode::write_tag` gives the type.
    const fn kind(self) -> ValueKind {
        match self {
            RunType::U8 | RunType::U16 | RunType::U32 | RunType::U64 => ValueKind::U64,
            RunType::I8 | RunType::I16 | RunType::I32 | RunType::I64 => ValueKind::I64,
            RunType::F32 | RunType::F64 => ValueKind::F64,
        }
    }
}

/// One step of a program, in the order the per-item path writes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// `count` tags with ids from `tail`'s first on, values back to back
    /// from byte `from` of the answer's data part.
    Run {
        run_type: RunType,
        tail: RunTail,
        from: u16,
        count: u16,
    },
    /// Tag `tag` of the plan (an index into `Plan::tags`), its bytes from
    /// byte `from` of the data part, through `decode::write_tag`.
    Tag { tag: u32, from: u16 },
    /// The straddler parts of piece `piece` of the request, whose item data
    /// starts at byte `from` of the data part.
    Parts { piece: u16, from: u16 },
}

/// The compiled form of one planned request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct DecodeProgram {
    /// The request as sent, with PDU reference 0 (`send` sets it).
    request: Vec<u8>,
    /// The parameter part of the usual answer: Read Var, every item.
    params: [u8; READ_PARAM_HEAD_BYTES],
    /// Bytes of the usual answer's data part (heads, data, fill).
    data_bytes: usize,
    /// Each item's head in the usual answer: (offset in the data part,
    /// return code, transport size, length in bits). Empty with `params`
    /// zero when no answer can be usual (never for a plan's request).
    heads: Vec<(u16, [u8; READ_RESPONSE_ITEM_HEAD_BYTES])>,
    pub(super) steps: Vec<Step>,
    /// Records the request writes (`PlannedRequest::records_max`).
    records: usize,
}

impl DecodeProgram {
    pub(super) fn compile(tags: &[PlannedTag], request: &PlannedRequest) -> Self {
        let mut encoded = vec![0u8; wire::read_request_bytes(request.pieces.len())];
        let items: Vec<_> = request.pieces.iter().map(|p| p.item).collect();
        let written = wire::encode_read_var(0, &items, &mut encoded);
        assert!(written == encoded.len());
        let mut program = DecodeProgram {
            request: encoded,
            params: [wire::FUNCTION_READ_VAR, request.pieces.len() as u8],
            data_bytes: request.answer_item_bytes(),
            records: request.records_max,
            ..DecodeProgram::default()
        };
        let count = request.pieces.len();
        let mut at = 0usize;
        for (index, piece) in request.pieces.iter().enumerate() {
            let len = usize::from(piece.item.count);
            let (Ok(head_at), Ok(bits), Ok(from)) = (
                u16::try_from(at),
                u16::try_from(len * 8),
                u16::try_from(at + READ_RESPONSE_ITEM_HEAD_BYTES),
            ) else {
                return DecodeProgram::never_usual(program);
            };
            let [hi, lo] = bits.to_be_bytes();
            program
                .heads
                .push((head_at, [ITEM_OK, TRANSPORT_SIZE_BYTES, hi, lo]));
            program.compile_inside(tags, &piece.inside, from);
            if !piece.parts.is_empty() {
                let piece = index as u16;
                program.steps.push(Step::Parts { piece, from });
            }
            at += READ_RESPONSE_ITEM_HEAD_BYTES
                + len
                + usize::from(len % 2 == 1 && index + 1 < count);
        }
        assert!(at == program.data_bytes);
        program
    }

    /// A program whose heads no answer matches: every answer takes the
    /// per-item path. Unreachable for a plan under a 960-byte PDU (an item
    /// is at most 942 bytes, 7,536 bits), kept so a change there cannot
    /// make the fast path wrong.
    fn never_usual(mut program: DecodeProgram) -> Self {
        program.params = [0, 0];
        program.heads.clear();
        program.steps.clear();
        program
    }

    /// Steps for a piece's whole tags (ascending by offset), whose item data
    /// starts at `from`: runs where consecutive tags are of one run type,
    /// back to back, with consecutive ids; single tags otherwise.
    fn compile_inside(&mut self, tags: &[PlannedTag], inside: &[(u32, u16)], from: u16) {
        let mut index = 0;
        // Each round consumes at least one tag.
        while let Some(&(first, offset)) = inside.get(index) {
            let at = from + offset;
            let end = run_end(tags, inside, index);
            let run_type = tags.get(first as usize).and_then(RunType::of);
            match (run_type, tags.get(first as usize)) {
                (Some(run_type), Some(tag)) if end - index >= RUN_TAGS_MIN => {
                    self.steps.push(Step::Run {
                        run_type,
                        tail: RunTail::new(tag.tag, Quality::GOOD, run_type.kind()),
                        from: at,
                        count: (end - index) as u16,
                    });
                    index = end;
                }
                _ => {
                    self.steps.push(Step::Tag {
                        tag: first,
                        from: at,
                    });
                    index += 1;
                }
            }
        }
    }

    /// Writes the request into `buf` with `pdu_ref`: the bytes
    /// `wire::encode_read_var` gives (a test checks it); `None` when `buf`
    /// is too short.
    pub(super) fn send(&self, pdu_ref: u16, buf: &mut [u8]) -> Option<usize> {
        let target = buf.get_mut(..self.request.len())?;
        target.copy_from_slice(&self.request);
        target
            .get_mut(wire::REQUEST_PDU_REF_AT..wire::REQUEST_PDU_REF_AT + 2)?
            .copy_from_slice(&pdu_ref.to_be_bytes());
        Some(self.request.len())
    }

    /// Whether an error-free answer's parameter and data parts are the
    /// usual answer (see the module doc), and `room` records fit its
    /// records.
    #[inline]
    pub(super) fn is_usual(&self, params: &[u8], data: &[u8], room: usize) -> bool {
        params == self.params
            && data.len() == self.data_bytes
            && room >= self.records
            && self.heads.iter().all(|&(at, head)| {
                data.get(usize::from(at)..).and_then(|d| d.first_chunk()) == Some(&head)
            })
    }
}

/// End (exclusive) of the run starting at `inside[index]`: same run type,
/// the next tag's bytes right after the previous one's, the next tag id
/// (within 24 bits, which `Sample::set_run_member` relies on).
fn run_end(tags: &[PlannedTag], inside: &[(u32, u16)], index: usize) -> usize {
    let tag_at = |i: usize| {
        let &(tag, offset) = inside.get(i)?;
        Some((tags.get(tag as usize)?, offset))
    };
    let Some((first, first_offset)) = tag_at(index) else {
        return index;
    };
    let Some(run_type) = RunType::of(first) else {
        return index;
    };
    if first.tag.0 > TagId::MAX {
        return index;
    }
    let mut end = index + 1;
    let (mut previous, mut previous_offset) = (first, first_offset);
    while let Some((next, offset)) = tag_at(end) {
        let continues = RunType::of(next) == Some(run_type)
            && usize::from(offset) == usize::from(previous_offset) + run_type.bytes()
            && previous.tag.0.checked_add(1) == Some(next.tag.0)
            && next.tag.0 <= TagId::MAX;
        if !continues {
            break;
        }
        (previous, previous_offset) = (next, offset);
        end += 1;
    }
    end
}

/// A run's records from `data` (the whole data part): exactly `slot.len()`
/// values (else the missing ones become `DECODE_ERROR` records, which a
/// checked answer never gives). Returns the records written: `slot.len()`,
/// or fewer when `pack` and the run packs (`packed.rs`). One arm per type,
/// so each loop body is straight-line: load, convert, store.
pub(super) fn decode_run(
    run_type: RunType,
    tail: RunTail,
    data: &[u8],
    from: usize,
    ts_ns: i64,
    slot: &mut [Sample],
    pack: bool,
) -> usize {
    let bytes = slot.len() * run_type.bytes();
    let values = data.get(from..from + bytes).unwrap_or_default();
    fill_run_records(
        pack,
        values.len() == bytes,
        tail,
        ts_ns,
        slot,
        |s| fill_typed(Packed, run_type, values, tail, ts_ns, s),
        |s| fill_typed(Plain, run_type, values, tail, ts_ns, s),
    )
}

#[inline(always)]
fn fill_typed(
    fill: impl RunFill,
    run_type: RunType,
    values: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
) -> usize {
    match run_type {
        RunType::U8 => fill.fill::<1>(values, tail, ts_ns, slot, |[b]| u64::from(b)),
        RunType::I8 => fill.fill::<1>(values, tail, ts_ns, slot, |[b]| i64::from(b as i8) as u64),
        RunType::U16 => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            u64::from(u16::from_be_bytes(b))
        }),
        RunType::I16 => fill.fill::<2>(values, tail, ts_ns, slot, |b| {
            i64::from(i16::from_be_bytes(b)) as u64
        }),
        RunType::U32 => fill.fill::<4>(values, tail, ts_ns, slot, |b| {
            u64::from(u32::from_be_bytes(b))
        }),
        RunType::I32 => fill.fill::<4>(values, tail, ts_ns, slot, |b| {
            i64::from(i32::from_be_bytes(b)) as u64
        }),
        RunType::U64 | RunType::I64 | RunType::F64 => {
            fill.fill::<8>(values, tail, ts_ns, slot, u64::from_be_bytes)
        }
        RunType::F32 => fill.fill::<4>(values, tail, ts_ns, slot, |b| {
            f64::from(f32::from_be_bytes(b)).to_bits()
        }),
    }
}
