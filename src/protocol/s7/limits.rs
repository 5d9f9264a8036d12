//! Every cap of S7comm over ISO-on-TCP as a named constant with its reason.
//! They bound memory and loops the peer controls: nothing from the wire is
//! trusted beyond them.

/// The largest S7 PDU millrace negotiates: an S7-1500 offers 960, and the
/// configuration caps `pdu_size` there. The PLC's answer may only lower it
/// (Setup Communication: "the reply is <= the request").
pub const S7_PDU_BYTES_MAX: usize = 960;
/// The smallest negotiated PDU the session accepts: room for a Read Var
/// request of 4 items and a response item of 40 bytes. No CPU answers less
/// than 240 (S7-200, LOGO!, S7-300, S7-1200); below this the PLC is broken.
pub const S7_PDU_BYTES_MIN: usize = 64;
/// TPKT header (RFC 1006): version 3, reserved, length16 of the whole packet.
pub const TPKT_HEADER_BYTES: usize = 4;
pub const TPKT_VERSION: u8 = 3;
/// A COTP data TPDU header: length indicator 2, code 0xF0, EOT + number.
pub const COTP_DT_HEADER_BYTES: usize = 3;
/// ISO 8073: a COTP header's length indicator is one byte, at most 254.
pub const COTP_LI_MAX: usize = 254;
/// The longest frame the session accepts: a COTP connect confirm with the
/// longest header (LI 254), or a data TPDU carrying the largest PDU.
pub const FRAME_BYTES_MAX: usize = {
    let dt = TPKT_HEADER_BYTES + COTP_DT_HEADER_BYTES + S7_PDU_BYTES_MAX;
    let cc = TPKT_HEADER_BYTES + 1 + COTP_LI_MAX;
    if dt > cc {
        dt
    } else {
        cc
    }
};
/// The shortest TPKT packet: its header and a COTP length indicator + code.
pub const FRAME_BYTES_MIN: usize = TPKT_HEADER_BYTES + 2;

/// S7 header of a job (ROSCTR 1) and of a userdata PDU: 10 bytes.
pub const S7_JOB_HEADER_BYTES: usize = 10;
/// S7 header of an ack or ack-data (ROSCTR 2/3): 12 bytes (error class, code).
pub const S7_ACK_HEADER_BYTES: usize = 12;
pub const S7_PROTOCOL_ID: u8 = 0x32;
/// Read Var request: function + item count, then 12 bytes per item.
pub const READ_PARAM_HEAD_BYTES: usize = 2;
pub const READ_REQUEST_ITEM_BYTES: usize = 12;
/// Read Var response item: return code, transport size, length16, data.
pub const READ_RESPONSE_ITEM_HEAD_BYTES: usize = 4;
/// Items one Read Var may carry: the item count is one byte, and a request
/// of 960 bytes holds (960 - 12) / 12 = 79 of them.
pub const READ_ITEMS_MAX: usize = (S7_PDU_BYTES_MAX - S7_JOB_HEADER_BYTES - 2) / 12;
/// Setup Communication parameters: function, reserved, AmQ calling, AmQ
/// called, PDU length.
pub const SETUP_PARAM_BYTES: usize = 8;
/// An S7 address is `byte << 3 | bit` in 24 bits: bytes below 2^21.
pub const ADDRESS_BYTES_MAX: u32 = 1 << 21;
/// Requests kept in flight at once: far above what a PLC grants (S7-300: 1,
/// S7-1500: a few), far below the 65,536 PDU references.
pub const INFLIGHT_MAX: usize = 64;
/// Notices waiting for the reader: each distinct condition is raised once,
/// so a handful suffices; more are dropped (and counted).
pub const NOTICES_QUEUED_MAX: usize = 16;

/// Bytes of a COTP connect request as millrace sends it (TPDU size, calling
/// and called TSAP parameters).
pub const CONNECT_REQUEST_BYTES: usize = 22;
/// Bytes of a Setup Communication job on the wire.
pub const SETUP_REQUEST_BYTES: usize =
    TPKT_HEADER_BYTES + COTP_DT_HEADER_BYTES + S7_JOB_HEADER_BYTES + SETUP_PARAM_BYTES;

const _: () = assert!(READ_ITEMS_MAX == 79);
const _: () = assert!(FRAME_BYTES_MAX == 967);
const _: () = assert!(S7_PDU_BYTES_MIN >= S7_JOB_HEADER_BYTES + 2 + 4 * 12);
const _: () = assert!(S7_PDU_BYTES_MAX <= u16::MAX as usize);
