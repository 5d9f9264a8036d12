//! The wire format: TPKT (RFC 1006) framing, the COTP TPDUs of ISO 8073
//! class 0, and the S7 PDUs this client uses. Encoding covers exactly three
//! messages (COTP connect request, Setup Communication, Read Var): there is
//! no builder for a write, a control or a userdata job. Parsing validates
//! every length against what holds it, through the one checked `Reader`.
//!
//! ```text
//! TPKT   03 00 len16                         len counts the whole packet
//! COTP   CR  LI E0 dst16 src16 class {C0 01 size, C1 02 tsap, C2 02 tsap}
//!        CC  LI D0 dst16 src16 class {params}
//!        DT  02 F0 80                        0x80: end of TSDU
//!        DR  LI 80 dst16 src16 reason        ER  LI 70 dst16 cause
//! S7     32 rosctr 00 00 ref16 plen16 dlen16 [class code]  (ack/ack-data)
//!        Setup Communication  F0 00 amq_calling16 amq_called16 pdu16
//!        Read Var request     04 n  n x (12 0A 10 02 count16 db16 area addr24)
//!        Read Var answer      04 n  n x (rc ts len16 data [fill])
//! ```

use crate::protocol::assemble::{Assembler, Measure};

use super::error::{Field, S7Error};
use super::limits::*;
use super::reader::Reader;

/// COTP TPDU codes (high nibble of the code byte for CR/CC).
const COTP_CR: u8 = 0xE0;
const COTP_CC: u8 = 0xD0;
const COTP_DT: u8 = 0xF0;
const COTP_DR: u8 = 0x80;
const COTP_ER: u8 = 0x70;
const COTP_EOT: u8 = 0x80;
/// TPDU size parameter: 2^10 = 1024 bytes, room for a 960-byte PDU.
const COTP_TPDU_SIZE_CODE: u8 = 0x0A;
const COTP_PARAM_TPDU_SIZE: u8 = 0xC0;
const COTP_PARAM_CALLING_TSAP: u8 = 0xC1;
const COTP_PARAM_CALLED_TSAP: u8 = 0xC2;

const ROSCTR_JOB: u8 = 0x01;
const ROSCTR_ACK: u8 = 0x02;
const ROSCTR_ACK_DATA: u8 = 0x03;
pub const FUNCTION_SETUP: u8 = 0xF0;
pub const FUNCTION_READ_VAR: u8 = 0x04;
/// Item return code "success".
pub const ITEM_OK: u8 = 0xFF;
/// Variable specification, address length 10, syntax id S7ANY.
const ITEM_SPEC: [u8; 3] = [0x12, 0x0A, 0x10];
/// Request word length BYTE: every item is read as bytes (bits are
/// extracted in the decoder, so a PLC that answers bit reads as whole
/// bytes cannot break a bool).
const WORD_LENGTH_BYTE: u8 = 0x02;

/// The only messages this client can put on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outgoing {
    ConnectRequest,
    SetupCommunication,
    ReadVar,
}

/// Writes into a caller's buffer; a buffer too short is a bug of the
/// caller (it is sized from `request_bytes_max`), caught by the assertion
/// on the written length.
struct Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) {
        if let Some(target) = self.out.get_mut(self.at..self.at + bytes.len()) {
            target.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }
    fn u16(&mut self, value: u16) {
        self.put(&value.to_be_bytes());
    }
    fn done(self, expected: usize) -> usize {
        assert!(self.at == expected && self.at <= self.out.len());
        self.at
    }
}

fn tpkt_dt(w: &mut Writer<'_>, s7_bytes: usize) {
    let total = TPKT_HEADER_BYTES + COTP_DT_HEADER_BYTES + s7_bytes;
    w.put(&[TPKT_VERSION, 0]);
    w.u16(total as u16);
    w.put(&[2, COTP_DT, COTP_EOT]);
}

/// COTP connect request (class 0) with our TPDU size and both TSAPs.
pub fn encode_connect_request(local_tsap: u16, remote_tsap: u16, out: &mut [u8]) -> usize {
    let mut w = Writer { out, at: 0 };
    w.put(&[TPKT_VERSION, 0]);
    w.u16(CONNECT_REQUEST_BYTES as u16);
    // LI 17: code, dst ref, src ref, class, then 3 + 4 + 4 parameter bytes.
    w.put(&[17, COTP_CR, 0, 0, 0, 1, 0]);
    w.put(&[COTP_PARAM_TPDU_SIZE, 1, COTP_TPDU_SIZE_CODE]);
    w.put(&[COTP_PARAM_CALLING_TSAP, 2]);
    w.u16(local_tsap);
    w.put(&[COTP_PARAM_CALLED_TSAP, 2]);
    w.u16(remote_tsap);
    w.done(CONNECT_REQUEST_BYTES)
}

fn job_header(w: &mut Writer<'_>, pdu_ref: u16, param_bytes: usize) {
    w.put(&[S7_PROTOCOL_ID, ROSCTR_JOB, 0, 0]);
    w.u16(pdu_ref);
    w.u16(param_bytes as u16);
    w.u16(0);
}

/// Setup Communication: parallel jobs we ask for and the PDU size.
pub fn encode_setup(pdu_ref: u16, amq: u16, pdu_bytes: u16, out: &mut [u8]) -> usize {
    let mut w = Writer { out, at: 0 };
    tpkt_dt(&mut w, S7_JOB_HEADER_BYTES + SETUP_PARAM_BYTES);
    job_header(&mut w, pdu_ref, SETUP_PARAM_BYTES);
    w.put(&[FUNCTION_SETUP, 0]);
    w.u16(amq);
    w.u16(amq);
    w.u16(pdu_bytes);
    w.done(SETUP_REQUEST_BYTES)
}

/// One item of a Read Var request: `count` bytes from `start` of an area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadItem {
    pub area_code: u8,
    pub db_number: u16,
    /// Byte offset in the area, below 2^21.
    pub start: u32,
    /// Bytes, at least 1.
    pub count: u16,
}

/// Bytes of a Read Var request of `items` items on the wire.
pub const fn read_request_bytes(items: usize) -> usize {
    TPKT_HEADER_BYTES
        + COTP_DT_HEADER_BYTES
        + S7_JOB_HEADER_BYTES
        + READ_PARAM_HEAD_BYTES
        + READ_REQUEST_ITEM_BYTES * items
}

/// Where a request's PDU reference sits: after TPKT, the COTP DT header
/// and the S7 header's protocol id, ROSCTR and reserved word.
pub const REQUEST_PDU_REF_AT: usize = TPKT_HEADER_BYTES + COTP_DT_HEADER_BYTES + 4;

/// A Read Var job for `items` (1..=79 of them, each read as bytes).
pub fn encode_read_var(pdu_ref: u16, items: &[ReadItem], out: &mut [u8]) -> usize {
    assert!(!items.is_empty() && items.len() <= READ_ITEMS_MAX);
    let param_bytes = READ_PARAM_HEAD_BYTES + READ_REQUEST_ITEM_BYTES * items.len();
    let mut w = Writer { out, at: 0 };
    tpkt_dt(&mut w, S7_JOB_HEADER_BYTES + param_bytes);
    job_header(&mut w, pdu_ref, param_bytes);
    w.put(&[FUNCTION_READ_VAR, items.len() as u8]);
    for item in items {
        assert!(item.count >= 1 && item.start < ADDRESS_BYTES_MAX);
        w.put(&ITEM_SPEC);
        w.put(&[WORD_LENGTH_BYTE]);
        w.u16(item.count);
        w.u16(item.db_number);
        let address = (item.start << 3).to_be_bytes();
        w.put(&[item.area_code]);
        w.put(address.get(1..).unwrap_or_default());
    }
    w.done(read_request_bytes(items.len()))
}

/// Splits a byte stream into TPKT packets across any chunk boundaries;
/// holds at most one partial packet (`FRAME_BYTES_MAX`, on the heap so a
/// session stays small in the reader's device table).
#[derive(Clone, Debug)]
pub struct TpktFramer {
    assembler: Box<Assembler<FRAME_BYTES_MAX>>,
}

impl Default for TpktFramer {
    fn default() -> Self {
        Self::new()
    }
}

impl TpktFramer {
    pub fn new() -> Self {
        TpktFramer {
            assembler: Box::new(Assembler::new()),
        }
    }

    pub fn clear(&mut self) {
        self.assembler.clear();
    }

    pub fn pending_len(&self) -> usize {
        self.assembler.pending_len()
    }

    /// The next whole packet (TPKT header included), consuming its bytes.
    pub fn next_packet<'r, 'f: 'r, 'i: 'r>(
        &'f mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<&'r [u8]>, S7Error> {
        self.assembler.next(input, measure)
    }
}

fn measure(prefix: &[u8]) -> Result<Measure, S7Error> {
    let Some(&[version, _, hi, lo]) = prefix.first_chunk::<TPKT_HEADER_BYTES>() else {
        return Ok(Measure::AtLeast(TPKT_HEADER_BYTES));
    };
    if version != TPKT_VERSION {
        return Err(S7Error::TpktVersion { found: version });
    }
    let length = u16::from_be_bytes([hi, lo]);
    if !(FRAME_BYTES_MIN..=FRAME_BYTES_MAX).contains(&usize::from(length)) {
        return Err(S7Error::TpktLength { length });
    }
    Ok(Measure::Total(usize::from(length)))
}

/// A COTP TPDU of a whole TPKT packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tpdu<'a> {
    /// A data TPDU with the end-of-TSDU mark: one S7 PDU.
    Data(&'a [u8]),
    /// Connect confirm; the TPDU size the PLC chose, when it said one.
    ConnectConfirm {
        tpdu_bytes: Option<usize>,
    },
    DisconnectRequest {
        reason: u8,
    },
    Error {
        cause: u8,
    },
}

/// Parses the COTP part of a packet `next_packet` gave (its TPKT header is
/// validated there).
pub fn parse_tpdu(packet: &[u8]) -> Result<Tpdu<'_>, S7Error> {
    let mut r = Reader::new(packet);
    r.take(TPKT_HEADER_BYTES, Field::TpktHeader)?;
    let packet_bytes = r.remaining();
    let indicator = r.u8(Field::CotpHeader)?;
    let bad_indicator = S7Error::CotpLengthIndicator {
        indicator,
        packet_bytes,
    };
    let Ok(mut header) = r.sub(usize::from(indicator), Field::CotpHeader) else {
        return Err(bad_indicator);
    };
    let code = header.u8(Field::CotpHeader)?;
    match code & 0xF0 {
        COTP_DT if code == COTP_DT => {
            let number = header.u8(Field::CotpHeader).map_err(|_| bad_indicator)?;
            header
                .finish(Field::CotpHeader)
                .map_err(|_| bad_indicator)?;
            if number & COTP_EOT == 0 {
                return Err(S7Error::CotpSegmented);
            }
            Ok(Tpdu::Data(r.rest()))
        }
        COTP_CC => {
            let mut fixed = header
                .sub(5, Field::CotpHeader)
                .map_err(|_| bad_indicator)?;
            fixed.rest();
            let tpdu_bytes = connect_params(header)?;
            r.finish(Field::CotpHeader)?;
            Ok(Tpdu::ConnectConfirm { tpdu_bytes })
        }
        COTP_DR => {
            let mut fixed = header
                .sub(5, Field::CotpHeader)
                .map_err(|_| bad_indicator)?;
            fixed.take(4, Field::CotpHeader)?;
            let reason = fixed.u8(Field::CotpHeader)?;
            Ok(Tpdu::DisconnectRequest { reason })
        }
        COTP_ER => {
            let mut fixed = header
                .sub(3, Field::CotpHeader)
                .map_err(|_| bad_indicator)?;
            fixed.take(2, Field::CotpHeader)?;
            let cause = fixed.u8(Field::CotpHeader)?;
            Ok(Tpdu::Error { cause })
        }
        _ => Err(S7Error::CotpUnexpected { code }),
    }
}

/// The variable part of a connect confirm: parameters of code, length,
/// value, each bounded by the header. Only the TPDU size is used.
fn connect_params(mut params: Reader<'_>) -> Result<Option<usize>, S7Error> {
    let mut tpdu_bytes = None;
    // Each round consumes at least 2 bytes of a header of at most 254.
    for _ in 0..COTP_LI_MAX {
        if params.remaining() == 0 {
            break;
        }
        let code = params.u8(Field::CotpParameter)?;
        let length = params.u8(Field::CotpParameter)?;
        let value = params.take(usize::from(length), Field::CotpParameter)?;
        if let (COTP_PARAM_TPDU_SIZE, [exponent]) = (code, value) {
            // ISO 8073: 7 (128 bytes) to 13 (8192 bytes).
            if (7..=13).contains(exponent) {
                tpdu_bytes = Some(1usize << exponent);
            }
        }
    }
    Ok(tpdu_bytes)
}

/// An ack or ack-data S7 header with its parameter and data parts, each
/// exactly as long as the header says and together the whole PDU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack<'a> {
    pub pdu_ref: u16,
    pub error_class: u8,
    pub error_code: u8,
    pub params: &'a [u8],
    pub data: &'a [u8],
}

pub fn parse_ack(pdu: &[u8]) -> Result<Ack<'_>, S7Error> {
    let mut r = Reader::new(pdu);
    let protocol = r.u8(Field::S7Header)?;
    if protocol != S7_PROTOCOL_ID {
        return Err(S7Error::ProtocolId { found: protocol });
    }
    let rosctr = r.u8(Field::S7Header)?;
    if rosctr != ROSCTR_ACK && rosctr != ROSCTR_ACK_DATA {
        return Err(S7Error::PduType { found: rosctr });
    }
    r.u16(Field::S7Header)?;
    let pdu_ref = r.u16(Field::S7Header)?;
    let param_bytes = r.u16(Field::S7Header)?;
    let data_bytes = r.u16(Field::S7Header)?;
    let error_class = r.u8(Field::S7Header)?;
    let error_code = r.u8(Field::S7Header)?;
    let params = r.take(usize::from(param_bytes), Field::S7Parameters)?;
    let data = r.take(usize::from(data_bytes), Field::S7Data)?;
    r.finish(Field::S7Data)?;
    Ok(Ack {
        pdu_ref,
        error_class,
        error_code,
        params,
        data,
    })
}

/// What the PLC granted in Setup Communication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Granted {
    pub amq_calling: u16,
    pub amq_called: u16,
    pub pdu_bytes: u16,
}

pub fn parse_setup(ack: &Ack<'_>) -> Result<Granted, S7Error> {
    if ack.error_class != 0 || ack.error_code != 0 {
        return Err(S7Error::SetupRefused {
            class: ack.error_class,
            code: ack.error_code,
        });
    }
    let mut r = Reader::new(ack.params);
    let function = r.u8(Field::SetupParameters)?;
    if function != FUNCTION_SETUP {
        return Err(S7Error::FunctionMismatch {
            expected: FUNCTION_SETUP,
            found: function,
        });
    }
    r.u8(Field::SetupParameters)?;
    let granted = Granted {
        amq_calling: r.u16(Field::SetupParameters)?,
        amq_called: r.u16(Field::SetupParameters)?,
        pdu_bytes: r.u16(Field::SetupParameters)?,
    };
    r.finish(Field::SetupParameters)?;
    Reader::new(ack.data).finish(Field::S7Data)?;
    Ok(granted)
}

/// The item count of a Read Var answer, checked against the request's.
/// Fewer items than asked is allowed (a PLC that caps items per request
/// answers the first ones); more is an error.
pub fn read_var_count(params: &[u8], requested: usize) -> Result<usize, S7Error> {
    let mut r = Reader::new(params);
    let function = r.u8(Field::S7Parameters)?;
    if function != FUNCTION_READ_VAR {
        return Err(S7Error::FunctionMismatch {
            expected: FUNCTION_READ_VAR,
            found: function,
        });
    }
    let count = r.u8(Field::ReadItemCount)?;
    r.finish(Field::S7Parameters)?;
    if usize::from(count) > requested || count == 0 {
        return Err(S7Error::ItemCount {
            requested: requested as u8,
            found: count,
        });
    }
    Ok(usize::from(count))
}

/// One answered item: its return code and, when 0xFF, exactly the bytes
/// asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerItem<'a> {
    pub return_code: u8,
    pub data: &'a [u8],
}

/// The next item of a Read Var answer's data part: item `index` of
/// `count`, which asked for `expected` bytes. An item whose return code is
/// not 0xFF carries no data whatever its length field says (PLCs send 0,
/// Snap7 sends 4 with no bytes behind it); a good one's length, in bits
/// for transport sizes 3/4/5 and in bytes for 6/7/9, must be `expected`.
/// A fill byte follows an odd-length item unless it is the last.
pub fn next_item<'a>(
    r: &mut Reader<'a>,
    index: usize,
    count: usize,
    expected: usize,
) -> Result<AnswerItem<'a>, S7Error> {
    let return_code = r.u8(Field::ReadItemHead)?;
    let transport_size = r.u8(Field::ReadItemHead)?;
    let length = usize::from(r.u16(Field::ReadItemHead)?);
    if return_code != ITEM_OK {
        return Ok(AnswerItem {
            return_code,
            data: &[],
        });
    }
    let bytes = match transport_size {
        3..=5 => length.div_ceil(8),
        6 | 7 | 9 => length,
        found => {
            return Err(S7Error::ItemTransportSize {
                index: index as u8,
                found,
            })
        }
    };
    if bytes != expected {
        return Err(S7Error::ItemLength {
            index: index as u8,
            expected,
            found: bytes,
        });
    }
    let data = r.take(bytes, Field::ReadItemData)?;
    if bytes % 2 == 1 && index + 1 < count {
        r.take(1, Field::ReadItemFill)?;
    }
    Ok(AnswerItem { return_code, data })
}
