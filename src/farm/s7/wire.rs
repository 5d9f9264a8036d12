//! The server side of S7comm's framing, sans-IO: TPKT (RFC 1006) and COTP
//! (ISO 8073 class 0) around S7 PDUs, split from incoming bytes and written
//! for answers. Written from the wire facts (Wireshark's `packet-s7comm.c`,
//! RFC 905/1006), independent of `protocol::s7` on purpose: the farm is the
//! peer that client is tested against, so it must not share its mistakes.
//!
//! ```text
//! TPKT   03 00 length16            length counts the whole frame, header too
//! COTP   LI code ...               LI counts the COTP header bytes after it
//!   CR   LI E0 dst16 src16 class  params (code len value): C0 TPDU size,
//!                                 C1 calling TSAP, C2 called TSAP
//!   CC   LI D0 dst16 src16 class  params echoed
//!   DR   LI 80 dst16 src16 reason
//!   DT   02 F0 80                  EOT set, TPDU number 0; the S7 PDU follows
//! S7     32 rosctr reserved16 ref16 param_len16 data_len16 [class code] ...
//! ```
//!
//! Every length is checked before use; a frame that cannot be TPKT/COTP is
//! an error the caller answers by closing the connection.

#![forbid(unsafe_code)]

/// TPKT header: version 3, reserved, the frame's length.
pub const TPKT_HEADER_SIZE: usize = 4;
pub const TPKT_VERSION: u8 = 3;
/// The largest frame the farm reads whole. An S7 PDU is at most 960 bytes
/// (S7-1500); a request larger than the negotiated PDU must still be read
/// to be refused with 0x8500, so twice that is allowed; anything longer
/// cannot be S7, and reading it would let a peer size our buffers.
pub const TPKT_SIZE_MAX: usize = 2048;
/// A DT frame's COTP header: length indicator 2, code, EOT + TPDU number.
pub const COTP_DT_SIZE: usize = 3;
/// The smallest COTP header that is a frame: LI, code, EOT (a DT).
const COTP_SIZE_MIN: usize = 3;

pub const COTP_CR: u8 = 0xE0;
pub const COTP_CC: u8 = 0xD0;
pub const COTP_DR: u8 = 0x80;
pub const COTP_DT: u8 = 0xF0;
const COTP_EOT: u8 = 0x80;
const PARAM_TPDU_SIZE: u8 = 0xC0;
const PARAM_CALLING_TSAP: u8 = 0xC1;
const PARAM_CALLED_TSAP: u8 = 0xC2;
/// TSAPs are two bytes: connection type, rack * 32 + slot.
pub const TSAP_SIZE: usize = 2;
/// TPDU size codes: 2^code bytes, 128 (0x07) to 8192 (0x0D); the farm
/// offers at most 1024 (0x0A), room for its largest PDU and the headers.
const TPDU_SIZE_CODE_MIN: u8 = 0x07;
const TPDU_SIZE_CODE_MAX: u8 = 0x0A;
/// DR reason: "session entity not attached to TSAP" (ISO 8073).
pub const DR_REASON_TSAP: u8 = 0x02;

pub const S7_PROTOCOL_ID: u8 = 0x32;
pub const ROSCTR_JOB: u8 = 0x01;
pub const ROSCTR_ACK: u8 = 0x02;
pub const ROSCTR_ACK_DATA: u8 = 0x03;
/// S7 job header; an ack or ack-data header adds error class and code.
pub const JOB_HEADER_SIZE: usize = 10;
pub const ACK_HEADER_SIZE: usize = 12;
pub const FUNCTION_READ_VAR: u8 = 0x04;
pub const FUNCTION_SETUP: u8 = 0xF0;
/// Setup Communication parameters: function, reserved, max AmQ calling,
/// max AmQ called, PDU size.
pub const SETUP_PARAM_SIZE: usize = 8;
/// A Read Var item: `12 0A 10` (variable specification, length 10, S7ANY),
/// word length, count16, db16, area, bit address24.
pub const ITEM_SIZE: usize = 12;
const ITEM_HEAD: [u8; 3] = [0x12, 0x0A, 0x10];
/// A reply item's header: return code, transport size, length16.
pub const ITEM_HEADER_SIZE: usize = 4;

/// The largest PDU the farm negotiates (an S7-1500's), and the smallest it
/// answers a Setup Communication with (as Snap7's server does).
pub const PDU_SIZE_MAX: u16 = 960;
pub const PDU_SIZE_MIN: u16 = 240;
/// The largest frame the farm sends.
pub const ANSWER_SIZE_MAX: usize = TPKT_HEADER_SIZE + COTP_DT_SIZE + PDU_SIZE_MAX as usize;

/// Header errors (class, code) the farm answers with.
pub const ERROR_FUNCTION_NOT_AVAILABLE: (u8, u8) = (0x81, 0x04);
pub const ERROR_PDU_SIZE: (u8, u8) = (0x85, 0x00);

/// Item return codes.
pub const RC_OK: u8 = 0xFF;
pub const RC_HARDWARE_FAULT: u8 = 0x01;
pub const RC_ADDRESS_OUT_OF_RANGE: u8 = 0x05;
pub const RC_TYPE_NOT_SUPPORTED: u8 = 0x06;
pub const RC_OBJECT_DOES_NOT_EXIST: u8 = 0x0A;

/// Why the bytes cannot be TPKT + COTP (the connection closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    TpktVersion(u8),
    TpktLength(u16),
    CotpLength(u8),
    CotpCode(u8),
    /// A DT without EOT: S7 never fragments a request.
    Fragmented,
    /// A CR whose parameters run past its header, or a TSAP of another size.
    ConnectParameters,
}

/// A COTP connection request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectRequest {
    pub src_ref: u16,
    pub tpdu_size_code: Option<u8>,
    pub calling_tsap: Option<[u8; TSAP_SIZE]>,
    pub called_tsap: Option<[u8; TSAP_SIZE]>,
}

/// One whole frame at the front of the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tpdu<'a> {
    Connect(ConnectRequest),
    /// The S7 PDU of a DT frame.
    Data(&'a [u8]),
    Disconnect,
}

/// The next frame at the front of `input` and the bytes it occupies;
/// `Ok(None)` until it is complete.
pub fn next_tpdu(input: &[u8]) -> Result<Option<(Tpdu<'_>, usize)>, FrameError> {
    let Some(&[version, _reserved, l0, l1]) = input.first_chunk::<TPKT_HEADER_SIZE>() else {
        return Ok(None);
    };
    if version != TPKT_VERSION {
        return Err(FrameError::TpktVersion(version));
    }
    let length = u16::from_be_bytes([l0, l1]);
    let size = usize::from(length);
    if !(TPKT_HEADER_SIZE + COTP_SIZE_MIN..=TPKT_SIZE_MAX).contains(&size) {
        return Err(FrameError::TpktLength(length));
    }
    let Some(frame) = input.get(TPKT_HEADER_SIZE..size) else {
        return Ok(None);
    };
    let [li, code, rest @ ..] = frame else {
        return Err(FrameError::TpktLength(length));
    };
    let header_size = 1 + usize::from(*li);
    let Some(header) = rest.get(..usize::from(*li).saturating_sub(1)) else {
        return Err(FrameError::CotpLength(*li));
    };
    if *li == 0 || *li == 0xFF {
        return Err(FrameError::CotpLength(*li));
    }
    let tpdu = match code & 0xF0 {
        COTP_DT => {
            if *li != 2 {
                return Err(FrameError::CotpLength(*li));
            }
            let eot = header.first().copied().unwrap_or(0);
            if eot & COTP_EOT == 0 {
                return Err(FrameError::Fragmented);
            }
            Tpdu::Data(frame.get(header_size..).unwrap_or_default())
        }
        COTP_CR => Tpdu::Connect(connect_request(header)?),
        COTP_DR => Tpdu::Disconnect,
        other => return Err(FrameError::CotpCode(other)),
    };
    Ok(Some((tpdu, size)))
}

/// A CR's fixed part after the code (dst16 src16 class) and its parameters.
fn connect_request(header: &[u8]) -> Result<ConnectRequest, FrameError> {
    let Some((&[_d0, _d1, s0, s1, _class], mut params)) = header.split_first_chunk::<5>() else {
        return Err(FrameError::ConnectParameters);
    };
    let mut request = ConnectRequest {
        src_ref: u16::from_be_bytes([s0, s1]),
        tpdu_size_code: None,
        calling_tsap: None,
        called_tsap: None,
    };
    while let Some((&[code, len], rest)) = params.split_first_chunk::<2>() {
        let Some((value, rest)) = rest.split_at_checked(usize::from(len)) else {
            return Err(FrameError::ConnectParameters);
        };
        let tsap = || <[u8; TSAP_SIZE]>::try_from(value).map_err(|_| FrameError::ConnectParameters);
        match code {
            PARAM_TPDU_SIZE => request.tpdu_size_code = value.first().copied(),
            PARAM_CALLING_TSAP => request.calling_tsap = Some(tsap()?),
            PARAM_CALLED_TSAP => request.called_tsap = Some(tsap()?),
            _ => {}
        }
        params = rest;
    }
    if !params.is_empty() {
        return Err(FrameError::ConnectParameters);
    }
    Ok(request)
}

/// Starts a frame in `out`; `finish_frame` writes its length.
fn begin_frame(out: &mut Vec<u8>) -> usize {
    let start = out.len();
    out.extend_from_slice(&[TPKT_VERSION, 0, 0, 0]);
    start
}

fn finish_frame(out: &mut [u8], start: usize) {
    let size = out.len() - start;
    debug_assert!(size <= TPKT_SIZE_MAX);
    if let Some(length) = out.get_mut(start + 2..start + 4) {
        length.copy_from_slice(&(size as u16).to_be_bytes());
    }
}

/// A CC echoing the request's TSAPs, with the TPDU size the farm accepts.
pub fn write_connect_confirm(out: &mut Vec<u8>, request: &ConnectRequest, our_ref: u16) {
    let start = begin_frame(out);
    let li_at = out.len();
    out.push(0);
    out.push(COTP_CC);
    out.extend_from_slice(&request.src_ref.to_be_bytes());
    out.extend_from_slice(&our_ref.to_be_bytes());
    out.push(0);
    let tpdu = request
        .tpdu_size_code
        .unwrap_or(TPDU_SIZE_CODE_MAX)
        .clamp(TPDU_SIZE_CODE_MIN, TPDU_SIZE_CODE_MAX);
    out.extend_from_slice(&[PARAM_TPDU_SIZE, 1, tpdu]);
    for (code, tsap) in [
        (PARAM_CALLING_TSAP, request.calling_tsap),
        (PARAM_CALLED_TSAP, request.called_tsap),
    ] {
        if let Some(tsap) = tsap {
            out.extend_from_slice(&[code, TSAP_SIZE as u8]);
            out.extend_from_slice(&tsap);
        }
    }
    let li = out.len() - li_at - 1;
    if let Some(byte) = out.get_mut(li_at) {
        *byte = li as u8;
    }
    finish_frame(out, start);
}

/// A DR refusing the request.
pub fn write_disconnect(out: &mut Vec<u8>, request: &ConnectRequest, our_ref: u16, reason: u8) {
    let start = begin_frame(out);
    out.extend_from_slice(&[6, COTP_DR]);
    out.extend_from_slice(&request.src_ref.to_be_bytes());
    out.extend_from_slice(&our_ref.to_be_bytes());
    out.push(reason);
    finish_frame(out, start);
}

/// An S7 job: its PDU reference, parameters and data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Job<'a> {
    pub pdu_ref: u16,
    pub params: &'a [u8],
    pub data: &'a [u8],
}

/// Why a PDU is not an S7 job the farm can read (the connection closes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobError {
    ProtocolId(u8),
    /// Not a job (ack, ack-data, userdata): the farm serves jobs only.
    Rosctr(u8),
    /// The header's lengths disagree with the PDU's.
    Lengths,
}

pub fn parse_job(pdu: &[u8]) -> Result<Job<'_>, JobError> {
    let Some((header, rest)) = pdu.split_first_chunk::<JOB_HEADER_SIZE>() else {
        return Err(JobError::Lengths);
    };
    let [id, rosctr, _, _, r0, r1, p0, p1, d0, d1] = *header;
    if id != S7_PROTOCOL_ID {
        return Err(JobError::ProtocolId(id));
    }
    if rosctr != ROSCTR_JOB {
        return Err(JobError::Rosctr(rosctr));
    }
    let param_len = usize::from(u16::from_be_bytes([p0, p1]));
    let data_len = usize::from(u16::from_be_bytes([d0, d1]));
    if param_len + data_len != rest.len() {
        return Err(JobError::Lengths);
    }
    let (params, data) = rest.split_at(param_len);
    Ok(Job {
        pdu_ref: u16::from_be_bytes([r0, r1]),
        params,
        data,
    })
}

/// Starts an ack or ack-data answer: TPKT, COTP DT and the S7 header with
/// zero lengths (see `finish_answer`); returns where the frame starts.
pub fn begin_answer(out: &mut Vec<u8>, rosctr: u8, pdu_ref: u16, error: (u8, u8)) -> usize {
    let start = begin_frame(out);
    out.extend_from_slice(&[2, COTP_DT, COTP_EOT]);
    out.extend_from_slice(&[S7_PROTOCOL_ID, rosctr, 0, 0]);
    out.extend_from_slice(&pdu_ref.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, error.0, error.1]);
    start
}

/// Where the S7 header's parameter length sits, from the frame's start.
pub const PARAM_LEN_AT: usize = TPKT_HEADER_SIZE + COTP_DT_SIZE + 6;
pub const DATA_LEN_AT: usize = PARAM_LEN_AT + 2;

/// Writes the frame length and the S7 parameter and data lengths of the
/// answer begun at `start` (the parameters are the first `param_len`
/// bytes after the header).
pub fn finish_answer(out: &mut [u8], start: usize, param_len: usize) {
    let pdu_size = out.len() - start - TPKT_HEADER_SIZE - COTP_DT_SIZE;
    let data_len = pdu_size - ACK_HEADER_SIZE - param_len;
    if let Some(field) = out.get_mut(start + PARAM_LEN_AT..start + DATA_LEN_AT + 2) {
        field[..2].copy_from_slice(&(param_len as u16).to_be_bytes());
        field[2..].copy_from_slice(&(data_len as u16).to_be_bytes());
    }
    finish_frame(out, start);
}

/// An ack with a header error and nothing else, as a PLC refuses a job
/// (`32 02 00 00 ref ref 00 00 00 00 class code`, e.g. 0x8104 when PUT/GET
/// access is off on an S7-1200/1500).
pub fn write_header_error(out: &mut Vec<u8>, pdu_ref: u16, error: (u8, u8)) {
    let start = begin_answer(out, ROSCTR_ACK, pdu_ref, error);
    finish_answer(out, start, 0);
}

/// The ack-data of a Setup Communication.
pub fn write_setup_reply(out: &mut Vec<u8>, pdu_ref: u16, amq: (u16, u16), pdu_size: u16) {
    let start = begin_answer(out, ROSCTR_ACK_DATA, pdu_ref, (0, 0));
    out.extend_from_slice(&[FUNCTION_SETUP, 0]);
    out.extend_from_slice(&amq.0.to_be_bytes());
    out.extend_from_slice(&amq.1.to_be_bytes());
    out.extend_from_slice(&pdu_size.to_be_bytes());
    finish_answer(out, start, SETUP_PARAM_SIZE);
}

/// A Setup Communication's (max AmQ calling, max AmQ called, PDU size).
pub fn setup_params(params: &[u8]) -> Option<(u16, u16, u16)> {
    let &[FUNCTION_SETUP, _, a0, a1, b0, b1, p0, p1] = params.first_chunk::<SETUP_PARAM_SIZE>()?
    else {
        return None;
    };
    (params.len() == SETUP_PARAM_SIZE).then_some((
        u16::from_be_bytes([a0, a1]),
        u16::from_be_bytes([b0, b1]),
        u16::from_be_bytes([p0, p1]),
    ))
}

/// One Read Var item as requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ItemRequest {
    pub word_length: u8,
    pub count: u16,
    pub db: u16,
    pub area: u8,
    /// byte << 3 | bit.
    pub bit_address: u32,
}

/// The items of a Read Var: `04 N` then exactly N well-formed items
/// (N >= 1); `None` if the parameters are anything else.
pub fn read_var_items(params: &[u8]) -> Option<&[u8]> {
    let (&[FUNCTION_READ_VAR, count], items) = params.split_first_chunk::<2>()? else {
        return None;
    };
    let well_formed = count > 0
        && items.len() == usize::from(count) * ITEM_SIZE
        && items
            .chunks_exact(ITEM_SIZE)
            .all(|i| i.starts_with(&ITEM_HEAD));
    well_formed.then_some(items)
}

/// Item `index` of what `read_var_items` returned.
pub fn item(items: &[u8], index: usize) -> Option<ItemRequest> {
    let bytes = items.get(index * ITEM_SIZE..)?.first_chunk::<ITEM_SIZE>()?;
    let [_, _, _, word_length, c0, c1, d0, d1, area, a0, a1, a2] = *bytes;
    Some(ItemRequest {
        word_length,
        count: u16::from_be_bytes([c0, c1]),
        db: u16::from_be_bytes([d0, d1]),
        area,
        bit_address: u32::from_be_bytes([0, a0, a1, a2]),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(cotp: &[u8], pdu: &[u8]) -> Vec<u8> {
        let size = 4 + cotp.len() + pdu.len();
        let mut v = vec![3, 0, (size >> 8) as u8, size as u8];
        v.extend_from_slice(cotp);
        v.extend_from_slice(pdu);
        v
    }

    #[test]
    fn splits_frames_and_waits_for_partial_ones() {
        let cr = frame(
            &[
                17, 0xE0, 0, 0, 0, 7, 0, 0xC0, 1, 0x0A, 0xC1, 2, 1, 0, 0xC2, 2, 3, 1,
            ],
            &[],
        );
        let dt = frame(&[2, 0xF0, 0x80], &[0x32, 1, 0, 0, 0, 9, 0, 0, 0, 0]);
        let mut input = cr.clone();
        input.extend_from_slice(&dt);
        let (tpdu, size) = next_tpdu(&input).unwrap().unwrap();
        assert_eq!(size, cr.len());
        assert_eq!(
            tpdu,
            Tpdu::Connect(ConnectRequest {
                src_ref: 7,
                tpdu_size_code: Some(0x0A),
                calling_tsap: Some([1, 0]),
                called_tsap: Some([3, 1]),
            })
        );
        let (tpdu, size) = next_tpdu(&input[cr.len()..]).unwrap().unwrap();
        assert_eq!(size, dt.len());
        assert_eq!(tpdu, Tpdu::Data(&dt[7..]));
        for cut in 0..dt.len() {
            assert_eq!(next_tpdu(&dt[..cut]), Ok(None), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_tpkt_and_cotp() {
        let dt = frame(&[2, 0xF0, 0x80], &[0x32]);
        let mut bad = dt.clone();
        bad[0] = 4;
        assert_eq!(next_tpdu(&bad), Err(FrameError::TpktVersion(4)));
        for length in [0u16, 6, 2049, 0xFFFF] {
            let mut bad = dt.clone();
            bad[2..4].copy_from_slice(&length.to_be_bytes());
            assert_eq!(next_tpdu(&bad), Err(FrameError::TpktLength(length)));
        }
        let fragment = frame(&[2, 0xF0, 0x00], &[0x32]);
        assert_eq!(next_tpdu(&fragment), Err(FrameError::Fragmented));
        // A length indicator beyond the frame, or 0.
        for li in [0u8, 9, 0xFF] {
            let bad = frame(&[li, 0xF0, 0x80], &[0x32]);
            assert_eq!(next_tpdu(&bad), Err(FrameError::CotpLength(li)), "{li}");
        }
        let ed = frame(&[2, 0x10, 0x80], &[]);
        assert_eq!(next_tpdu(&ed), Err(FrameError::CotpCode(0x10)));
        // A CR parameter running past the header; a three-byte TSAP.
        let cr = frame(&[9, 0xE0, 0, 0, 0, 7, 0, 0xC1, 4, 1], &[]);
        assert_eq!(next_tpdu(&cr), Err(FrameError::ConnectParameters));
        let cr = frame(&[11, 0xE0, 0, 0, 0, 7, 0, 0xC2, 3, 1, 2, 3], &[]);
        assert_eq!(next_tpdu(&cr), Err(FrameError::ConnectParameters));
    }

    #[test]
    fn jobs_are_checked_against_their_header() {
        let job = [0x32, 1, 0, 0, 0x12, 0x34, 0, 2, 0, 1, 0x04, 0x00, 0xAA];
        let parsed = parse_job(&job).unwrap();
        assert_eq!(parsed.pdu_ref, 0x1234);
        assert_eq!((parsed.params, parsed.data), (&[4u8, 0][..], &[0xAAu8][..]));
        assert_eq!(parse_job(&job[..12]), Err(JobError::Lengths));
        let mut other = job;
        other[0] = 0x72;
        assert_eq!(parse_job(&other), Err(JobError::ProtocolId(0x72)));
        other[0] = 0x32;
        other[1] = 7;
        assert_eq!(parse_job(&other), Err(JobError::Rosctr(7)));
        assert_eq!(parse_job(&job[..5]), Err(JobError::Lengths));
    }

    #[test]
    fn answers_carry_consistent_lengths() {
        let mut out = Vec::new();
        write_header_error(&mut out, 0x0102, ERROR_FUNCTION_NOT_AVAILABLE);
        assert_eq!(
            out,
            [3, 0, 0, 19, 2, 0xF0, 0x80, 0x32, 2, 0, 0, 1, 2, 0, 0, 0, 0, 0x81, 0x04]
        );
        out.clear();
        write_setup_reply(&mut out, 5, (1, 1), 480);
        assert_eq!(out.len(), 4 + 3 + 12 + 8);
        assert_eq!(&out[2..4], &[0, 27]);
        assert_eq!(&out[13..17], &[0, 8, 0, 0]);
        assert_eq!(&out[19..], &[0xF0, 0, 0, 1, 0, 1, 0x01, 0xE0]);
        let request = ConnectRequest {
            src_ref: 0x0044,
            tpdu_size_code: Some(0x0D),
            calling_tsap: Some([0x01, 0x00]),
            called_tsap: Some([0x03, 0x01]),
        };
        out.clear();
        write_connect_confirm(&mut out, &request, 1);
        assert_eq!(&out[..4], &[3, 0, 0, 22]);
        assert_eq!(
            &out[4..],
            &[17, 0xD0, 0, 0x44, 0, 1, 0, 0xC0, 1, 0x0A, 0xC1, 2, 1, 0, 0xC2, 2, 3, 1]
        );
    }

    #[test]
    fn read_var_parameters_hold_exactly_their_items() {
        let item = [0x12, 0x0A, 0x10, 0x02, 0, 4, 0, 1, 0x84, 0, 0, 0x10];
        let mut params = vec![0x04, 2];
        params.extend_from_slice(&item);
        params.extend_from_slice(&item);
        let items = read_var_items(&params).unwrap();
        assert_eq!(
            item_at(items, 1),
            ItemRequest {
                word_length: 2,
                count: 4,
                db: 1,
                area: 0x84,
                bit_address: 16
            }
        );
        assert_eq!(read_var_items(&params[..params.len() - 1]), None);
        params[1] = 3;
        assert_eq!(read_var_items(&params), None);
        params[1] = 0;
        assert_eq!(read_var_items(&params[..2]), None);
        params[1] = 2;
        params[14] = 0xB0;
        assert_eq!(read_var_items(&params), None);
    }

    fn item_at(items: &[u8], index: usize) -> ItemRequest {
        item(items, index).unwrap()
    }
}
