//! The encapsulation layer (CIP Vol 2, chapter 2): the 24-byte header, the
//! framer that splits a TCP stream into messages, the common packet format
//! around CIP messages, and the few commands a client sends.
//!
//! ```text
//! header   command u16 | length u16 | session u32 | status u32 | context [8] | options u32
//! SendRRData / SendUnitData data:
//!          interface handle u32 (0) | timeout u16 | item count u16 | items
//! item     type u16 | length u16 | data
//!          0x0000 null address (unconnected)    0x00B2 unconnected data: CIP
//!          0x00A1 connection id u32 (connected) 0x00B1 connected data: seq u16, CIP
//! ```

use crate::protocol::assemble::{Assembler, Measure};

use super::error::{EnipError, Field};
use super::limits::{
    CPF_ITEMS_MAX, ENCAP_DATA_BYTES_MAX, ENCAP_FRAME_BYTES_MAX, ENCAP_HEADER_BYTES,
};
use super::wire::{Reader, Writer};

pub const REGISTER_SESSION: u16 = 0x0065;
pub const UNREGISTER_SESSION: u16 = 0x0066;
pub const SEND_RR_DATA: u16 = 0x006F;
pub const SEND_UNIT_DATA: u16 = 0x0070;

const ITEM_NULL_ADDRESS: u16 = 0x0000;
const ITEM_CONNECTED_ADDRESS: u16 = 0x00A1;
const ITEM_CONNECTED_DATA: u16 = 0x00B1;
const ITEM_UNCONNECTED_DATA: u16 = 0x00B2;

/// The encapsulation protocol version RegisterSession asks for (the only one).
const PROTOCOL_VERSION: u16 = 1;

/// Bytes the common packet format adds in front of a connected CIP message:
/// interface handle, timeout, item count, address item (8), data item
/// header (4), sequence count.
pub const CONNECTED_OVERHEAD_BYTES: usize = 4 + 2 + 2 + 8 + 4 + 2;
/// The same in front of an unconnected CIP message: null address item (4),
/// data item header (4).
pub const UNCONNECTED_OVERHEAD_BYTES: usize = 4 + 2 + 2 + 4 + 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub command: u16,
    pub length: u16,
    pub session: u32,
    pub status: u32,
    pub context: [u8; 8],
    pub options: u32,
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Header, EnipError> {
        let mut r = Reader::new(bytes);
        let f = Field::EncapHeader;
        Ok(Header {
            command: r.u16(f)?,
            length: r.u16(f)?,
            session: r.u32(f)?,
            status: r.u32(f)?,
            context: r.array(f)?,
            options: r.u32(f)?,
        })
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.command);
        w.u16(self.length);
        w.u32(self.session);
        w.u32(self.status);
        w.bytes(&self.context);
        w.u32(self.options);
    }
}

/// One whole encapsulation message, borrowed from the caller's buffer or
/// the framer's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    /// Exactly `header.length` bytes.
    pub data: &'a [u8],
}

fn measure(prefix: &[u8]) -> Result<Measure, EnipError> {
    let Some(Ok(length)) = prefix.get(2..4).map(<[u8; 2]>::try_from) else {
        return Ok(Measure::AtLeast(ENCAP_HEADER_BYTES));
    };
    let length = u16::from_le_bytes(length);
    if usize::from(length) > ENCAP_DATA_BYTES_MAX {
        return Err(EnipError::EncapLengthAboveMax {
            length,
            max: ENCAP_DATA_BYTES_MAX,
        });
    }
    if prefix.len() < ENCAP_HEADER_BYTES {
        return Ok(Measure::AtLeast(ENCAP_HEADER_BYTES));
    }
    Ok(Measure::Total(ENCAP_HEADER_BYTES + usize::from(length)))
}

/// Splits a TCP byte stream into encapsulation messages across arbitrary
/// chunk boundaries. Holds at most one partial message, in a buffer
/// allocated once (boxed: it is a few KiB).
#[derive(Clone, Debug)]
pub struct Framer {
    assembler: Box<Assembler<ENCAP_FRAME_BYTES_MAX>>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    pub fn new() -> Self {
        Framer {
            assembler: Box::new(Assembler::new()),
        }
    }

    /// Forgets a partial message (after a reconnect).
    pub fn clear(&mut self) {
        self.assembler.clear();
    }

    pub fn pending_len(&self) -> usize {
        self.assembler.pending_len()
    }

    /// The next whole message, consuming its bytes from `input`; `Ok(None)`
    /// once `input` is used up (a tail is kept for the next call).
    pub fn next_frame<'r, 'f: 'r, 'i: 'r>(
        &'f mut self,
        input: &mut &'i [u8],
    ) -> Result<Option<Frame<'r>>, EnipError> {
        let Some(bytes) = self.assembler.next(input, measure)? else {
            return Ok(None);
        };
        let (head, data) = bytes
            .split_at_checked(ENCAP_HEADER_BYTES)
            .unwrap_or_default();
        let header = Header::parse(head)?;
        Ok(Some(Frame { header, data }))
    }
}

/// Writes the header of a message whose data is written by `data`, and
/// patches its length. Returns the message's length; 0 if `buf` is short.
/// (Public for the farm's answers: RegisterSession, ListIdentity.)
pub fn message(
    buf: &mut [u8],
    command: u16,
    session: u32,
    context: [u8; 8],
    data: impl FnOnce(&mut Writer<'_>),
) -> usize {
    let mut w = Writer::new(buf);
    Header {
        command,
        length: 0,
        session,
        status: 0,
        context,
        options: 0,
    }
    .write(&mut w);
    data(&mut w);
    let length = w.len() - ENCAP_HEADER_BYTES;
    w.patch_u16(2, length as u16);
    if w.overflowed() || length > ENCAP_DATA_BYTES_MAX {
        return 0;
    }
    w.len()
}

pub fn register_session(buf: &mut [u8], context: [u8; 8]) -> usize {
    message(buf, REGISTER_SESSION, 0, context, |w| {
        w.u16(PROTOCOL_VERSION);
        w.u16(0);
    })
}

pub fn unregister_session(buf: &mut [u8], session: u32) -> usize {
    message(buf, UNREGISTER_SESSION, session, [0; 8], |_| {})
}

/// SendRRData carrying the unconnected CIP request `cip` writes.
pub fn send_rr_data(
    buf: &mut [u8],
    session: u32,
    context: [u8; 8],
    cip: impl FnOnce(&mut Writer<'_>),
) -> usize {
    message(buf, SEND_RR_DATA, session, context, |w| {
        w.u32(0);
        w.u16(0);
        w.u16(2);
        w.u16(ITEM_NULL_ADDRESS);
        w.u16(0);
        w.u16(ITEM_UNCONNECTED_DATA);
        let at = w.len();
        w.u16(0);
        cip(w);
        let length = w.len() - at - 2;
        w.patch_u16(at, length as u16);
    })
}

/// SendUnitData carrying the connected CIP request `cip` writes.
pub fn send_unit_data(
    buf: &mut [u8],
    session: u32,
    connection_id: u32,
    sequence: u16,
    cip: impl FnOnce(&mut Writer<'_>),
) -> usize {
    message(buf, SEND_UNIT_DATA, session, [0; 8], |w| {
        w.u32(0);
        w.u16(0);
        w.u16(2);
        w.u16(ITEM_CONNECTED_ADDRESS);
        w.u16(4);
        w.u32(connection_id);
        w.u16(ITEM_CONNECTED_DATA);
        let at = w.len();
        w.u16(0);
        w.u16(sequence);
        cip(w);
        let length = w.len() - at - 2;
        w.patch_u16(at, length as u16);
    })
}

/// The session handle of a RegisterSession reply.
pub fn register_reply(frame: &Frame<'_>) -> Result<u32, EnipError> {
    expect(frame, REGISTER_SESSION)?;
    let mut r = Reader::new(frame.data);
    let _version = r.u16(Field::RegisterData)?;
    let _options = r.u16(Field::RegisterData)?;
    if frame.header.session == 0 {
        return Err(EnipError::SessionHandleZero);
    }
    Ok(frame.header.session)
}

fn expect(frame: &Frame<'_>, command: u16) -> Result<(), EnipError> {
    if frame.header.command != command {
        return Err(EnipError::EncapCommand {
            expected: command,
            found: frame.header.command,
        });
    }
    if frame.header.status != 0 {
        return Err(EnipError::EncapStatus {
            command,
            status: frame.header.status,
        });
    }
    Ok(())
}

/// The address and data items of a common packet (`SendRRData` or
/// `SendUnitData` data after the interface handle and timeout).
struct Items<'a> {
    address: Option<(u16, &'a [u8])>,
    data: Option<(u16, &'a [u8])>,
}

fn items<'a>(data: &'a [u8]) -> Result<Items<'a>, EnipError> {
    let mut r = Reader::new(data);
    r.take(6, Field::InterfaceHandle)?;
    let count = r.u16(Field::CpfItemCount)?;
    if count > CPF_ITEMS_MAX {
        return Err(EnipError::CpfItems { count });
    }
    let mut found = Items {
        address: None,
        data: None,
    };
    for _ in 0..count {
        let item_type = r.u16(Field::CpfItemHeader)?;
        let length = r.u16(Field::CpfItemHeader)?;
        let bytes = r.take(usize::from(length), Field::CpfItemData)?;
        match item_type {
            ITEM_NULL_ADDRESS | ITEM_CONNECTED_ADDRESS if found.address.is_none() => {
                found.address = Some((item_type, bytes));
            }
            ITEM_UNCONNECTED_DATA | ITEM_CONNECTED_DATA if found.data.is_none() => {
                found.data = Some((item_type, bytes));
            }
            // Socket address items (0x8000, 0x8001) of a Forward Open reply.
            _ => {}
        }
    }
    r.finish(Field::CpfItemData)?;
    Ok(found)
}

/// The CIP reply a SendRRData message carries.
pub fn unconnected_reply<'a>(frame: &Frame<'a>, session: u32) -> Result<&'a [u8], EnipError> {
    expect(frame, SEND_RR_DATA)?;
    check_session(frame, session)?;
    let found = items(frame.data)?;
    match (found.address, found.data) {
        (Some((ITEM_NULL_ADDRESS, _)), Some((ITEM_UNCONNECTED_DATA, cip))) => Ok(cip),
        _ => Err(EnipError::CpfItems { count: 2 }),
    }
}

/// A connected reply: the connection id it names, its sequence count and
/// the CIP reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connected<'a> {
    pub connection_id: u32,
    pub sequence: u16,
    pub cip: &'a [u8],
}

pub fn connected_reply<'a>(frame: &Frame<'a>, session: u32) -> Result<Connected<'a>, EnipError> {
    expect(frame, SEND_UNIT_DATA)?;
    check_session(frame, session)?;
    let found = items(frame.data)?;
    let (Some((ITEM_CONNECTED_ADDRESS, address)), Some((ITEM_CONNECTED_DATA, data))) =
        (found.address, found.data)
    else {
        return Err(EnipError::CpfItems { count: 2 });
    };
    let mut a = Reader::new(address);
    let connection_id = a.u32(Field::ConnectionId)?;
    a.finish(Field::ConnectionId)?;
    let mut d = Reader::new(data);
    let sequence = d.u16(Field::SequenceCount)?;
    Ok(Connected {
        connection_id,
        sequence,
        cip: d.rest(),
    })
}

fn check_session(frame: &Frame<'_>, session: u32) -> Result<(), EnipError> {
    if frame.header.session != session {
        return Err(EnipError::SessionHandle {
            expected: session,
            found: frame.header.session,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;

    #[test]
    fn register_session_is_the_documented_28_bytes() {
        let mut buf = [0u8; 64];
        let n = register_session(&mut buf, *b"millrace");
        assert_eq!(
            buf[..n],
            [
                0x65, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, b'm', b'i', b'l', b'l', b'r', b'a', b'c',
                b'e', 0, 0, 0, 0, 1, 0, 0, 0
            ]
        );
    }

    #[test]
    fn send_unit_data_wraps_cip_with_the_connection_and_sequence() {
        let mut buf = [0u8; 64];
        let n = send_unit_data(&mut buf, 0x1122_3344, 0xAABB_CCDD, 7, |w| {
            w.bytes(&[0x4C, 0])
        });
        let frame = Framer::new()
            .next_frame(&mut &buf[..n])
            .unwrap()
            .unwrap()
            .data
            .to_vec();
        assert_eq!(
            frame,
            [
                0, 0, 0, 0, 0, 0, 2, 0, 0xA1, 0, 4, 0, 0xDD, 0xCC, 0xBB, 0xAA, 0xB1, 0, 4, 0, 7, 0,
                0x4C, 0
            ]
        );
        assert_eq!(n, ENCAP_HEADER_BYTES + CONNECTED_OVERHEAD_BYTES + 2);
    }

    #[test]
    fn framer_reassembles_and_refuses_long_lengths() {
        let mut buf = [0u8; 64];
        let n = unregister_session(&mut buf, 5);
        let mut framer = Framer::new();
        let (a, b) = buf[..n].split_at(10);
        assert_eq!(framer.next_frame(&mut &a[..]), Ok(None));
        let frame = framer.next_frame(&mut &b[..]).unwrap().unwrap();
        assert_eq!((frame.header.command, frame.header.session), (0x66, 5));
        let mut long = [0u8; 24];
        long[2..4].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(matches!(
            Framer::new().next_frame(&mut &long[..]),
            Err(EnipError::EncapLengthAboveMax { .. })
        ));
    }
}
