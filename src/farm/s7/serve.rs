//! One S7 connection's server state and the per-frame step the shared
//! connection pump calls: COTP connect (the called TSAP must name the
//! farm's rack and slot), Setup Communication (the smaller PDU wins), then
//! Read Var jobs answered from the device's memory ([`super::memory`]).
//!
//! What a job gets:
//!
//! | request | answer |
//! |---|---|
//! | Read Var, every item valid | ack-data, items with data (return code 0xFF) |
//! | an item of another word length | that item: 0x06 type not supported |
//! | a DB that does not exist, an area the farm has not (counters, timers) | that item: 0x0A object does not exist |
//! | count 0, a bit address on a non-bit read, more than one bit, past the area's end | that item: 0x05 address out of range |
//! | a request, or its reply, larger than the negotiated PDU | header error 0x8500 |
//! | PUT/GET off (the farm's mode) | header error 0x8104 |
//! | Read Var parameters that do not hold exactly their items, another function | header error 0x8104 |
//! | a job before Setup Communication, an ack or userdata PDU, not S7 | the connection closes |

use super::memory;
use super::wire::{
    self, ConnectRequest, ItemRequest, Tpdu, ERROR_FUNCTION_NOT_AVAILABLE, ERROR_PDU_SIZE,
    FUNCTION_READ_VAR, FUNCTION_SETUP, ITEM_HEADER_SIZE, PDU_SIZE_MIN, RC_ADDRESS_OUT_OF_RANGE,
    RC_HARDWARE_FAULT, RC_OBJECT_DOES_NOT_EXIST, RC_OK, RC_TYPE_NOT_SUPPORTED, ROSCTR_ACK_DATA,
};
use super::S7Behaviour;
use crate::config::S7Area;
use crate::farm::conn::{Behaviour, Device, Served};
use crate::farm::counters::Tally;
use crate::farm::fault::{self, Fault};

/// The farm's COTP source reference (any value will do; one per device).
const OUR_REF: u16 = 0x0001;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitConnect,
    AwaitSetup,
    Ready,
}

/// One connection's S7 state.
#[derive(Debug)]
pub(in crate::farm) struct S7Conn {
    phase: Phase,
    pdu_size: u16,
}

impl S7Conn {
    pub fn new() -> Self {
        S7Conn {
            phase: Phase::AwaitConnect,
            pdu_size: PDU_SIZE_MIN,
        }
    }

    /// Answers the frame at the front of `pending` (if it is whole).
    pub fn serve(
        &mut self,
        pending: &[u8],
        out: &mut Vec<u8>,
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Served {
        let (tpdu, consumed) = match wire::next_tpdu(pending) {
            Ok(Some(next)) => next,
            Ok(None) => return Served::NeedMore,
            Err(_) => {
                tally.framing_errors += 1;
                return Served::Close;
            }
        };
        let answered = |fault| Served::Answered {
            consumed,
            fault,
            last: false,
        };
        match (self.phase, tpdu) {
            (_, Tpdu::Disconnect) => Served::Close,
            (Phase::AwaitConnect, Tpdu::Connect(request)) => {
                if self.connect(&request, out, &how.s7) {
                    answered(Fault::None)
                } else {
                    tally.s7_connects_refused += 1;
                    Served::Answered {
                        consumed,
                        fault: Fault::None,
                        last: true,
                    }
                }
            }
            (Phase::AwaitConnect, _) | (_, Tpdu::Connect(_)) => {
                tally.framing_errors += 1;
                Served::Close
            }
            (_, Tpdu::Data(pdu)) => match self.job(pdu, out, device, how, tally) {
                Some(fault) => answered(fault),
                None => Served::Close,
            },
        }
    }

    /// Confirms a CR whose called TSAP names the farm's rack and slot (any
    /// connection type, PG, OP or S7 basic); refuses others with a DR.
    fn connect(&mut self, request: &ConnectRequest, out: &mut Vec<u8>, s7: &S7Behaviour) -> bool {
        let rack_slot = s7.rack * 0x20 + s7.slot;
        let accepted = matches!(request.called_tsap, Some([1..=3, rs]) if rs == rack_slot);
        if accepted {
            wire::write_connect_confirm(out, request, OUR_REF);
            self.phase = Phase::AwaitSetup;
        } else {
            wire::write_disconnect(out, request, OUR_REF, wire::DR_REASON_TSAP);
        }
        accepted
    }

    /// Answers one S7 job; `None` closes the connection.
    fn job(
        &mut self,
        pdu: &[u8],
        out: &mut Vec<u8>,
        device: &mut Device,
        how: &Behaviour,
        tally: &mut Tally,
    ) -> Option<Fault> {
        let Ok(job) = wire::parse_job(pdu) else {
            tally.framing_errors += 1;
            return None;
        };
        tally.requests += 1;
        match (self.phase, job.params.first().copied()) {
            (_, Some(FUNCTION_SETUP)) => {
                self.setup(&job, out, &how.s7, tally);
                Some(Fault::None)
            }
            (Phase::Ready, Some(FUNCTION_READ_VAR)) => {
                read_var(&job, pdu.len(), self.pdu_size, out, device, how, tally)
            }
            (Phase::Ready, _) => {
                tally.s7_header_errors += 1;
                wire::write_header_error(out, job.pdu_ref, ERROR_FUNCTION_NOT_AVAILABLE);
                Some(Fault::None)
            }
            _ => {
                tally.framing_errors += 1;
                None
            }
        }
    }

    /// Setup Communication: the smaller PDU size wins (but not below 240,
    /// as Snap7's server answers), the smaller AmQ too.
    fn setup(
        &mut self,
        job: &wire::Job<'_>,
        out: &mut Vec<u8>,
        s7: &S7Behaviour,
        tally: &mut Tally,
    ) {
        let Some((calling, called, requested)) =
            wire::setup_params(job.params).filter(|_| job.data.is_empty())
        else {
            tally.s7_header_errors += 1;
            wire::write_header_error(out, job.pdu_ref, ERROR_FUNCTION_NOT_AVAILABLE);
            return;
        };
        self.pdu_size = requested.clamp(PDU_SIZE_MIN, s7.pdu_size);
        let amq = (calling.clamp(1, s7.max_amq), called.clamp(1, s7.max_amq));
        wire::write_setup_reply(out, job.pdu_ref, amq, self.pdu_size);
        self.phase = Phase::Ready;
    }
}

/// What one item reads, or why it cannot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ItemPlan {
    Data {
        area: S7Area,
        start: u32,
        size: u32,
        /// For a BIT read: the bit of the byte at `start`.
        bit: Option<u8>,
        transport_size: u8,
        /// The reply's length field (bits or bytes, by transport size).
        length: u16,
    },
    Error(u8),
}

impl ItemPlan {
    /// Bytes of data in the reply.
    fn data_size(&self) -> usize {
        match *self {
            ItemPlan::Data { size, .. } => size as usize,
            ItemPlan::Error(_) => 0,
        }
    }
}

/// Element size in bytes and reply transport size of a request word length.
fn word_length(code: u8) -> Option<(u32, u8)> {
    Some(match code {
        0x01 => (1, 0x03),                                 // BIT: length in bits
        0x02 | 0x04 | 0x06 => (element_bytes(code), 0x04), // BYTE WORD DWORD: bits
        0x05 | 0x07 => (element_bytes(code), 0x05),        // INT DINT: bits
        0x08 => (4, 0x07),                                 // REAL: bytes
        0x03 => (1, 0x09),                                 // CHAR: octet string, bytes
        _ => return None,
    })
}

const fn element_bytes(code: u8) -> u32 {
    match code {
        0x04 | 0x05 => 2,
        0x06 | 0x07 => 4,
        _ => 1,
    }
}

/// The area an item names and its size in bytes, if the farm has it.
fn area_of(item: &ItemRequest, s7: &S7Behaviour) -> Option<(S7Area, u32)> {
    match item.area {
        0x84 if (1..=s7.db_count).contains(&item.db) => Some((S7Area::Db(item.db), s7.db_size)),
        0x83 => Some((S7Area::Merker, s7.merker_size)),
        0x81 => Some((S7Area::Inputs, s7.input_size)),
        0x82 => Some((S7Area::Outputs, s7.output_size)),
        _ => None,
    }
}

/// Checks one item against the device's memory (the order of the checks
/// follows Snap7's server: area, word length, count, bit address, range).
pub(super) fn plan_item(item: &ItemRequest, s7: &S7Behaviour) -> ItemPlan {
    let Some((area, area_size)) = area_of(item, s7) else {
        return ItemPlan::Error(RC_OBJECT_DOES_NOT_EXIST);
    };
    let Some((element, transport_size)) = word_length(item.word_length) else {
        return ItemPlan::Error(RC_TYPE_NOT_SUPPORTED);
    };
    let is_bit = item.word_length == 0x01;
    let count = u32::from(item.count);
    let bit = (item.bit_address & 7) as u8;
    if count == 0 || (is_bit && count > 1) || (!is_bit && bit != 0) {
        return ItemPlan::Error(RC_ADDRESS_OUT_OF_RANGE);
    }
    let start = item.bit_address >> 3;
    let size = count * element;
    if u64::from(start) + u64::from(size) > u64::from(area_size) {
        return ItemPlan::Error(RC_ADDRESS_OUT_OF_RANGE);
    }
    // Sizes past the PDU are refused before any item is written; the
    // length field only has to hold what can fit.
    let length = match transport_size {
        0x03 => 1,
        0x04 | 0x05 => size.saturating_mul(8).min(u32::from(u16::MAX)) as u16,
        _ => size.min(u32::from(u16::MAX)) as u16,
    };
    ItemPlan::Data {
        area,
        start,
        size,
        bit: is_bit.then_some(bit),
        transport_size,
        length,
    }
}

/// The plan of item `index`, with the fault's item error in place.
fn planned(items: &[u8], index: usize, error_item: Option<usize>, s7: &S7Behaviour) -> ItemPlan {
    if error_item == Some(index) {
        return ItemPlan::Error(RC_HARDWARE_FAULT);
    }
    match wire::item(items, index) {
        Some(item) => plan_item(&item, s7),
        None => ItemPlan::Error(RC_ADDRESS_OUT_OF_RANGE),
    }
}

/// Bytes of the ack-data answering `count` items (header, `04 N`, items
/// with their fill byte after an odd-sized one but the last).
fn reply_pdu_size(
    items: &[u8],
    count: usize,
    error_item: Option<usize>,
    s7: &S7Behaviour,
) -> usize {
    let mut size = wire::ACK_HEADER_SIZE + 2;
    for index in 0..count {
        let data = planned(items, index, error_item, s7).data_size();
        size += ITEM_HEADER_SIZE + data;
        if index + 1 < count && data % 2 == 1 {
            size += 1;
        }
    }
    size
}

/// A Read Var: checked, then answered from memory, one counter for all
/// items; faults drawn as for Modbus plus the S7 PDU overflow.
fn read_var(
    job: &wire::Job<'_>,
    request_size: usize,
    pdu_size: u16,
    out: &mut Vec<u8>,
    device: &mut Device,
    how: &Behaviour,
    tally: &mut Tally,
) -> Option<Fault> {
    let refuse = |out: &mut Vec<u8>, tally: &mut Tally, error| {
        tally.s7_header_errors += 1;
        wire::write_header_error(out, job.pdu_ref, error);
    };
    if request_size > usize::from(pdu_size) {
        refuse(out, tally, ERROR_PDU_SIZE);
        return Some(Fault::None);
    }
    if how.s7.put_get_off {
        refuse(out, tally, ERROR_FUNCTION_NOT_AVAILABLE);
        return Some(Fault::None);
    }
    let Some(items) = wire::read_var_items(job.params).filter(|_| job.data.is_empty()) else {
        refuse(out, tally, ERROR_FUNCTION_NOT_AVAILABLE);
        return Some(Fault::None);
    };
    let count = items.len() / wire::ITEM_SIZE;
    if reply_pdu_size(items, count, None, &how.s7) > usize::from(pdu_size) {
        refuse(out, tally, ERROR_PDU_SIZE);
        return Some(Fault::None);
    }
    let fault = how.s7_plan.draw(&mut device.rng);
    tally.count_fault(fault);
    let error_item = match fault {
        Fault::DropConnection => return None,
        Fault::PduOverflow => {
            wire::write_header_error(out, job.pdu_ref, ERROR_PDU_SIZE);
            return Some(fault);
        }
        Fault::Exception => Some((device.rng.next_u64() % count as u64) as usize),
        _ => None,
    };
    let counter = device.counter as u8;
    device.counter = device.counter.wrapping_add(1);
    tally.data_responses += 1;
    let start = wire::begin_answer(out, ROSCTR_ACK_DATA, job.pdu_ref, (0, 0));
    out.extend_from_slice(&[FUNCTION_READ_VAR, count as u8]);
    for index in 0..count {
        let plan = planned(items, index, error_item, &how.s7);
        if let ItemPlan::Error(_) = plan {
            tally.s7_item_errors += u64::from(error_item != Some(index));
        }
        write_item(out, &plan, device.index, counter);
        if index + 1 < count && plan.data_size() % 2 == 1 {
            out.push(0);
        }
    }
    wire::finish_answer(out, start, 2);
    malform(out.get_mut(start..).unwrap_or_default(), fault);
    Some(fault)
}

/// One reply item: its header, then its bytes from memory.
fn write_item(out: &mut Vec<u8>, plan: &ItemPlan, device: u32, counter: u8) {
    match *plan {
        ItemPlan::Error(rc) => out.extend_from_slice(&[rc, 0, 0, 0]),
        ItemPlan::Data {
            area,
            start,
            size,
            bit,
            transport_size,
            length,
        } => {
            out.push(RC_OK);
            out.push(transport_size);
            out.extend_from_slice(&length.to_be_bytes());
            let at = out.len();
            // Within the capacity reserved for a whole answer: no allocation.
            out.resize(at + size as usize, 0);
            let data = out.get_mut(at..).unwrap_or_default();
            memory::fill(device, area, start, counter, data);
            if let (Some(bit), Some(byte)) = (bit, data.first_mut()) {
                *byte = *byte >> bit & 1;
            }
        }
    }
}

/// Turns the well-formed answer in `answer` (one frame) into the malformed
/// kind: the S7 data length 2 more than follows, or the TPKT length 2 less
/// than sent.
fn malform(answer: &mut [u8], fault: Fault) {
    match fault {
        Fault::MalformedCount => fault::add_to_u16(answer, wire::DATA_LEN_AT, 2),
        Fault::MalformedFrameLength => fault::add_to_u16(answer, 2, -2),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s7() -> S7Behaviour {
        S7Behaviour {
            rack: 0,
            slot: 1,
            pdu_size: 960,
            max_amq: 8,
            db_count: 3,
            db_size: 1000,
            merker_size: 100,
            input_size: 10,
            output_size: 10,
            put_get_off: false,
        }
    }

    fn item(word_length: u8, count: u16, db: u16, area: u8, bit_address: u32) -> ItemRequest {
        ItemRequest {
            word_length,
            count,
            db,
            area,
            bit_address,
        }
    }

    #[test]
    fn items_are_checked_like_a_plc_does() {
        let s7 = s7();
        let plan = |i: ItemRequest| plan_item(&i, &s7);
        assert_eq!(
            plan(item(0x02, 4, 1, 0x84, 8 * 10)),
            ItemPlan::Data {
                area: S7Area::Db(1),
                start: 10,
                size: 4,
                bit: None,
                transport_size: 0x04,
                length: 32
            }
        );
        assert_eq!(
            plan(item(0x01, 1, 0, 0x81, 8 * 9 + 7)),
            ItemPlan::Data {
                area: S7Area::Inputs,
                start: 9,
                size: 1,
                bit: Some(7),
                transport_size: 0x03,
                length: 1
            }
        );
        let real = plan(item(0x08, 2, 0, 0x83, 0));
        assert!(matches!(
            real,
            ItemPlan::Data {
                transport_size: 0x07,
                length: 8,
                ..
            }
        ));
        let chars = plan(item(0x03, 5, 3, 0x84, 0));
        assert!(matches!(
            chars,
            ItemPlan::Data {
                transport_size: 0x09,
                length: 5,
                ..
            }
        ));
        let ints = plan(item(0x05, 3, 3, 0x84, 0));
        assert!(matches!(
            ints,
            ItemPlan::Data {
                transport_size: 0x05,
                length: 48,
                ..
            }
        ));
        // DB 0, DB 4 (of 3), counters, timers, an unknown area.
        for (db, area) in [(0, 0x84), (4, 0x84), (0, 0x1C), (0, 0x1D), (0, 0x99)] {
            assert_eq!(plan(item(0x02, 1, db, area, 0)), ItemPlan::Error(0x0A));
        }
        assert_eq!(plan(item(0x1C, 1, 1, 0x84, 0)), ItemPlan::Error(0x06));
        for bad in [
            item(0x02, 0, 1, 0x84, 0),              // nothing
            item(0x01, 2, 1, 0x84, 0),              // two bits
            item(0x04, 1, 1, 0x84, 3),              // a bit address on a word
            item(0x02, 1, 1, 0x84, 8000),           // byte 1000 of 1000
            item(0x06, 251, 1, 0x84, 0),            // 1004 bytes of 1000
            item(0x02, 91, 0, 0x83, 80),            // M10 + 91 of 100
            item(0x08, 0xFFFF, 2, 0x84, 0xFF_FFF8), // far past everything
        ] {
            assert_eq!(plan(bad), ItemPlan::Error(0x05), "{bad:?}");
        }
        let last = plan(item(0x02, 1, 1, 0x84, 8 * 999));
        assert!(matches!(last, ItemPlan::Data { start: 999, .. }));
    }
}
