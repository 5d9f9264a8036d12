//! CIP messages (CIP Vol 1; Logix services from Rockwell's 1756-PM020):
//! request paths, the requests a reader sends, and reply headers.
//!
//! ```text
//! request   service u8 | path size u8 (words) | path | data
//! reply     service | 0x80 u8 | reserved u8 | general status u8 | ext size u8 (words) | ext | data
//! symbolic  0x91 len name [pad to even]        element 0x28 u8 | 0x29 0x00 u16 | 0x2A 0x00 u32
//! logical   0x20 class8 | 0x24 instance8 | 0x25 0x00 instance16
//! port      port | link (port 1..=14, one-byte link); 0x10 | port, len, address [pad]
//! ```
//!
//! Service 0x52 is two services: Read Tag Fragmented at a tag, Unconnected
//! Send at the Connection Manager. `request_service` tells them apart by the
//! path, as a server must; a client knows which it sent.

use crate::config::{PathSegment, RouteHop, RouteLink, SymbolicPath};

use super::error::{EnipError, Field};
use super::limits::{EXTENDED_STATUS_WORDS_MAX, MSP_SERVICES_MAX, PATH_BYTES_MAX};
use super::wire::{Reader, Writer};

pub const READ_TAG: u8 = 0x4C;
/// Read Tag Fragmented at a tag; Unconnected Send at the Connection Manager.
pub const SERVICE_0X52: u8 = 0x52;
pub const MULTIPLE_SERVICE_PACKET: u8 = 0x0A;
pub const FORWARD_OPEN: u8 = 0x54;
pub const LARGE_FORWARD_OPEN: u8 = 0x5B;
pub const FORWARD_CLOSE: u8 = 0x4E;
pub const GET_INSTANCE_ATTRIBUTE_LIST: u8 = 0x55;
pub const REPLY_FLAG: u8 = 0x80;

/// General status codes (CIP Vol 1 Appendix B) a reader acts on.
pub const STATUS_SUCCESS: u8 = 0x00;
pub const STATUS_PATH_SEGMENT_ERROR: u8 = 0x04;
pub const STATUS_PATH_DESTINATION_UNKNOWN: u8 = 0x05;
pub const STATUS_PARTIAL_TRANSFER: u8 = 0x06;
pub const STATUS_SERVICE_NOT_SUPPORTED: u8 = 0x08;
pub const STATUS_EMBEDDED_SERVICE_ERROR: u8 = 0x1E;

/// The Message Router (class 2, instance 1): where a Multiple Service
/// Packet goes, and the end of a connection path.
pub const MESSAGE_ROUTER_PATH: [u8; 4] = [0x20, 0x02, 0x24, 0x01];
/// The Connection Manager (class 6, instance 1).
pub const CONNECTION_MANAGER_PATH: [u8; 4] = [0x20, 0x06, 0x24, 0x01];
/// The Symbol class (0x6B) of a Logix controller.
pub const SYMBOL_CLASS: u8 = 0x6B;

/// The CIP data type codes of a Read Tag reply.
pub mod type_code {
    pub const BOOL: u16 = 0x00C1;
    pub const SINT: u16 = 0x00C2;
    pub const INT: u16 = 0x00C3;
    pub const DINT: u16 = 0x00C4;
    pub const LINT: u16 = 0x00C5;
    pub const USINT: u16 = 0x00C6;
    pub const UINT: u16 = 0x00C7;
    pub const UDINT: u16 = 0x00C8;
    pub const ULINT: u16 = 0x00C9;
    pub const REAL: u16 = 0x00CA;
    pub const LREAL: u16 = 0x00CB;
    /// 32 bits: the storage of a BOOL array.
    pub const DWORD: u16 = 0x00D3;
    /// A structure: a 16-bit structure handle follows.
    pub const STRUCT: u16 = 0x02A0;
}

/// Bytes `path` takes as request path segments (a multiple of 2).
pub fn symbolic_path_bytes(path: &SymbolicPath) -> usize {
    path.segments
        .iter()
        .map(|segment| match segment {
            PathSegment::Name(name) => 2 + name.len() + name.len() % 2,
            PathSegment::Index(indices) => indices.iter().map(|&i| element_bytes(i)).sum(),
        })
        .sum()
}

const fn element_bytes(index: u32) -> usize {
    if index <= 0xFF {
        2
    } else if index <= 0xFFFF {
        4
    } else {
        6
    }
}

fn write_element(w: &mut Writer<'_>, index: u32) {
    if index <= 0xFF {
        w.u8(0x28);
        w.u8(index as u8);
    } else if index <= 0xFFFF {
        w.u8(0x29);
        w.u8(0);
        w.u16(index as u16);
    } else {
        w.u8(0x2A);
        w.u8(0);
        w.u32(index);
    }
}

/// Writes `path` as ANSI extended symbolic and element segments (the bit
/// of an integer is no segment: the integer is read whole).
pub fn write_symbolic_path(w: &mut Writer<'_>, path: &SymbolicPath) {
    for segment in &path.segments {
        match segment {
            PathSegment::Name(name) => {
                w.u8(0x91);
                w.u8(name.len() as u8);
                w.bytes(name.as_bytes());
                if name.len() % 2 == 1 {
                    w.u8(0);
                }
            }
            PathSegment::Index(indices) => {
                for &index in indices {
                    write_element(w, index);
                }
            }
        }
    }
}

/// Bytes the port segments of `route` take.
pub fn route_bytes(route: &[RouteHop]) -> usize {
    route
        .iter()
        .map(|hop| {
            let port = if hop.port < 15 { 0 } else { 2 };
            port + match &hop.link {
                RouteLink::Slot(_) => 2,
                RouteLink::Address(a) => 2 + a.len() + a.len() % 2,
            }
        })
        .sum()
}

/// Writes `route` as port segments (CIP Vol 1 C-1.4.2).
pub fn write_route(w: &mut Writer<'_>, route: &[RouteHop]) {
    for hop in route {
        let (port_nibble, extended) = if hop.port < 15 {
            (hop.port as u8, None)
        } else {
            (0x0F, Some(hop.port))
        };
        match &hop.link {
            RouteLink::Slot(slot) => {
                w.u8(port_nibble);
                if let Some(port) = extended {
                    w.u16(port);
                }
                w.u8(*slot);
            }
            RouteLink::Address(address) => {
                w.u8(0x10 | port_nibble);
                w.u8(address.len() as u8);
                if let Some(port) = extended {
                    w.u16(port);
                }
                w.bytes(address.as_bytes());
                if address.len() % 2 == 1 {
                    w.u8(0);
                }
            }
        }
    }
}

/// Writes a request: service, path size in words, the path `path` writes,
/// then the data `data` writes. The path must come out even and at most
/// `PATH_BYTES_MAX` long (callers size paths at plan time).
pub fn write_request(
    w: &mut Writer<'_>,
    service: u8,
    path: impl FnOnce(&mut Writer<'_>),
    data: impl FnOnce(&mut Writer<'_>),
) {
    w.u8(service);
    let size_at = w.len();
    w.u8(0);
    path(w);
    let path_bytes = w.len() - size_at - 1;
    debug_assert!(path_bytes % 2 == 0 && path_bytes <= PATH_BYTES_MAX);
    w.patch_u8(size_at, (path_bytes / 2) as u8);
    data(w);
}

/// Read Tag: `count` elements from `path`.
pub fn write_read_tag(w: &mut Writer<'_>, path: &[u8], count: u16) {
    write_request(w, READ_TAG, |w| w.bytes(path), |w| w.u16(count));
}

/// Read Tag Fragmented: `count` elements from `path`, data from byte
/// `offset` of them on.
pub fn write_read_fragmented(w: &mut Writer<'_>, path: &[u8], count: u16, offset: u32) {
    write_request(
        w,
        SERVICE_0X52,
        |w| w.bytes(path),
        |w| {
            w.u16(count);
            w.u32(offset);
        },
    );
}

/// Bytes of a Read Tag request with a path of `path_bytes`.
pub const fn read_tag_bytes(path_bytes: usize) -> usize {
    2 + path_bytes + 2
}

/// Bytes of a Read Tag Fragmented request with a path of `path_bytes`.
pub const fn read_fragmented_bytes(path_bytes: usize) -> usize {
    2 + path_bytes + 6
}

/// A Multiple Service Packet request's bytes before its embedded requests:
/// service, path size, the Message Router path, the count.
pub const MSP_REQUEST_HEAD_BYTES: usize = 2 + MESSAGE_ROUTER_PATH.len() + 2;
/// A Multiple Service Packet reply's bytes before its embedded replies:
/// the reply header (with room for one extended status word) and the count.
pub const MSP_REPLY_HEAD_BYTES: usize = 4 + 2 + 2;
/// What each embedded request or reply adds: its offset.
pub const MSP_OFFSET_BYTES: usize = 2;

/// What `request_service` makes of a service code and its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    ReadTag,
    ReadTagFragmented,
    UnconnectedSend,
    MultipleServicePacket,
    ForwardOpen,
    LargeForwardOpen,
    ForwardClose,
    GetInstanceAttributeList,
    Other(u8),
}

/// The service a request is, from its code and its path: 0x52 and 0x4E
/// mean one thing at the Connection Manager and another at a tag.
pub fn request_service(service: u8, path: &[u8]) -> RequestKind {
    let at_connection_manager = path.starts_with(&CONNECTION_MANAGER_PATH);
    match service {
        READ_TAG => RequestKind::ReadTag,
        SERVICE_0X52 if at_connection_manager => RequestKind::UnconnectedSend,
        SERVICE_0X52 => RequestKind::ReadTagFragmented,
        MULTIPLE_SERVICE_PACKET => RequestKind::MultipleServicePacket,
        FORWARD_OPEN if at_connection_manager => RequestKind::ForwardOpen,
        LARGE_FORWARD_OPEN if at_connection_manager => RequestKind::LargeForwardOpen,
        FORWARD_CLOSE if at_connection_manager => RequestKind::ForwardClose,
        GET_INSTANCE_ATTRIBUTE_LIST => RequestKind::GetInstanceAttributeList,
        other => RequestKind::Other(other),
    }
}

/// A request split into its parts (tests, the fuzz target's round trip,
/// and a stand-in that must answer what it was sent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub service: u8,
    pub path: &'a [u8],
    pub data: &'a [u8],
}

pub fn parse_request(bytes: &[u8]) -> Result<Request<'_>, EnipError> {
    let mut r = Reader::new(bytes);
    let service = r.u8(Field::ReplyHeader)?;
    let words = r.u8(Field::ReplyHeader)?;
    let path = r.take(2 * usize::from(words), Field::ReplyHeader)?;
    Ok(Request {
        service,
        path,
        data: r.rest(),
    })
}

/// A CIP reply: the service it answers, its status, its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The request's service code (bit 7 of the reply's cleared).
    pub service: u8,
    pub general: u8,
    /// The first extended status word, 0 when there is none.
    pub extended: u16,
    pub data: &'a [u8],
}

pub fn parse_reply(bytes: &[u8]) -> Result<Reply<'_>, EnipError> {
    let mut r = Reader::new(bytes);
    let service = r.u8(Field::ReplyHeader)?;
    let _reserved = r.u8(Field::ReplyHeader)?;
    let general = r.u8(Field::ReplyHeader)?;
    let words = r.u8(Field::ReplyHeader)?;
    if words > EXTENDED_STATUS_WORDS_MAX {
        return Err(EnipError::ExtendedStatusWords { words });
    }
    let mut ext = r.sub(2 * usize::from(words), Field::ExtendedStatus)?;
    let extended = if words > 0 {
        ext.u16(Field::ExtendedStatus)?
    } else {
        0
    };
    if service & REPLY_FLAG == 0 {
        return Err(EnipError::ReplyService {
            expected: service | REPLY_FLAG,
            found: service,
        });
    }
    Ok(Reply {
        service: service & !REPLY_FLAG,
        general,
        extended,
        data: r.rest(),
    })
}

impl Reply<'_> {
    /// Fails unless this answers `service`.
    pub fn expect(&self, service: u8) -> Result<(), EnipError> {
        if self.service == service {
            Ok(())
        } else {
            Err(EnipError::ReplyService {
                expected: service | REPLY_FLAG,
                found: self.service | REPLY_FLAG,
            })
        }
    }
}

/// The embedded replies of a Multiple Service Packet reply's data,
/// validated once: exactly `expected` of them, offsets inside the data, in
/// order, each past the offsets table.
#[derive(Clone, Copy, Debug)]
pub struct MspReplies<'a> {
    data: &'a [u8],
    offsets: &'a [u8],
}

impl<'a> MspReplies<'a> {
    pub fn parse(data: &'a [u8], expected: u16) -> Result<Self, EnipError> {
        let mut r = Reader::new(data);
        let count = r.u16(Field::MspCount)?;
        if count != expected || count > MSP_SERVICES_MAX {
            return Err(EnipError::MspCount {
                expected,
                found: count,
            });
        }
        let offsets = r.take(2 * usize::from(count), Field::MspOffsets)?;
        let replies = MspReplies { data, offsets };
        let mut previous = 2 + offsets.len();
        for index in 0..count {
            let offset = replies.offset(index);
            if offset < previous || offset > data.len() {
                return Err(EnipError::MspOffset {
                    index,
                    offset: offset as u16,
                });
            }
            previous = offset;
        }
        Ok(replies)
    }

    fn offset(&self, index: u16) -> usize {
        let at = 2 * usize::from(index);
        self.offsets
            .get(at..at + 2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map_or(self.data.len(), |b| usize::from(u16::from_le_bytes(b)))
    }

    pub fn len(&self) -> usize {
        self.offsets.len() / 2
    }

    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The bytes of embedded reply `index` (up to the next one's offset).
    pub fn get(&self, index: u16) -> &'a [u8] {
        let start = self.offset(index);
        let end = if usize::from(index) + 1 < self.len() {
            self.offset(index + 1)
        } else {
            self.data.len()
        };
        self.data.get(start..end).unwrap_or_default()
    }
}

/// Writes a Multiple Service Packet of `count` embedded requests, each
/// written by `embedded(w, index)`.
pub fn write_multiple(
    w: &mut Writer<'_>,
    count: u16,
    mut embedded: impl FnMut(&mut Writer<'_>, u16),
) {
    write_request(
        w,
        MULTIPLE_SERVICE_PACKET,
        |w| w.bytes(&MESSAGE_ROUTER_PATH),
        |w| {
            let start = w.len();
            w.u16(count);
            let table = w.len();
            for _ in 0..count {
                w.u16(0);
            }
            for index in 0..count {
                let offset = w.len() - start;
                w.patch_u16(table + 2 * usize::from(index), offset as u16);
                embedded(w, index);
            }
        },
    );
}

/// What identifies this client's connection to the module: the
/// originator triad and the ids it asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Triad {
    pub connection_serial: u16,
    pub vendor_id: u16,
    pub originator_serial: u32,
}

/// Vendor id sent in the triad (any value: it only has to be the same in
/// Forward Open and Forward Close).
pub const VENDOR_ID: u16 = 0x4D52;
/// Requested packet interval of the explicit connection, microseconds.
const RPI_US: u32 = 2_000_000;
/// Connection timeout multiplier 7: the connection times out after 512
/// RPIs (1,024 s) without a message.
const TIMEOUT_MULTIPLIER: u8 = 7;
/// Priority/time tick and timeout ticks of an unconnected request: 2^10 ms
/// x 5 ticks = 5.1 s for the module to answer.
const PRIORITY_TIME_TICK: u8 = 0x0A;
const TIMEOUT_TICKS: u8 = 0x05;
/// Server, class 3, application triggered.
const TRANSPORT_CLASS_TRIGGER: u8 = 0xA3;
/// Point to point, low priority, variable size (the size is or-ed in).
const PARAMS_SMALL: u16 = 0x4200;
const PARAMS_LARGE: u32 = 0x4200_0000;

/// A Forward Open (or Large Forward Open, `large`) to the Message Router
/// at the end of `route`, asking for `size` bytes per message.
pub fn write_forward_open(
    w: &mut Writer<'_>,
    large: bool,
    triad: Triad,
    to_connection_id: u32,
    size: u16,
    route: &[RouteHop],
) {
    let service = if large {
        LARGE_FORWARD_OPEN
    } else {
        FORWARD_OPEN
    };
    write_request(
        w,
        service,
        |w| w.bytes(&CONNECTION_MANAGER_PATH),
        |w| {
            w.u8(PRIORITY_TIME_TICK);
            w.u8(TIMEOUT_TICKS);
            w.u32(0); // O->T connection id: the module chooses
            w.u32(to_connection_id);
            w.u16(triad.connection_serial);
            w.u16(triad.vendor_id);
            w.u32(triad.originator_serial);
            w.u8(TIMEOUT_MULTIPLIER);
            w.bytes(&[0, 0, 0]);
            for _ in 0..2 {
                w.u32(RPI_US);
                if large {
                    w.u32(PARAMS_LARGE | u32::from(size));
                } else {
                    w.u16(PARAMS_SMALL | (size & 0x01FF));
                }
            }
            w.u8(TRANSPORT_CLASS_TRIGGER);
            write_connection_path(w, route);
        },
    );
}

/// Path size in words, then the route and the Message Router.
fn write_connection_path(w: &mut Writer<'_>, route: &[RouteHop]) {
    let bytes = route_bytes(route) + MESSAGE_ROUTER_PATH.len();
    w.u8((bytes / 2) as u8);
    write_route(w, route);
    w.bytes(&MESSAGE_ROUTER_PATH);
}

/// A Forward Close of the connection `triad` opened.
pub fn write_forward_close(w: &mut Writer<'_>, triad: Triad, route: &[RouteHop]) {
    write_request(
        w,
        FORWARD_CLOSE,
        |w| w.bytes(&CONNECTION_MANAGER_PATH),
        |w| {
            w.u8(PRIORITY_TIME_TICK);
            w.u8(TIMEOUT_TICKS);
            w.u16(triad.connection_serial);
            w.u16(triad.vendor_id);
            w.u32(triad.originator_serial);
            let bytes = route_bytes(route) + MESSAGE_ROUTER_PATH.len();
            w.u8((bytes / 2) as u8);
            w.u8(0);
            write_route(w, route);
            w.bytes(&MESSAGE_ROUTER_PATH);
        },
    );
}

/// What a successful Forward Open reply gives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Opened {
    /// The id to put in our requests' connected address item.
    pub ot_connection_id: u32,
    /// The id the module puts in its replies (ours, echoed).
    pub to_connection_id: u32,
}

pub fn parse_forward_open_reply(data: &[u8], triad: Triad) -> Result<Opened, EnipError> {
    let mut r = Reader::new(data);
    let f = Field::ForwardOpenReply;
    let ot_connection_id = r.u32(f)?;
    let to_connection_id = r.u32(f)?;
    let serial = r.u16(f)?;
    let _vendor = r.u16(f)?;
    let _originator = r.u32(f)?;
    if serial != triad.connection_serial {
        return Err(EnipError::ConnectionId {
            expected: u32::from(triad.connection_serial),
            found: u32::from(serial),
        });
    }
    Ok(Opened {
        ot_connection_id,
        to_connection_id,
    })
}

/// Unconnected Send (0x52 at the Connection Manager): the request
/// `embedded` writes, carried along `route` to the module at its end (a
/// controller in a chassis slot). With no route a request goes bare to the
/// Message Router instead; the caller decides.
pub fn write_unconnected_send(
    w: &mut Writer<'_>,
    route: &[RouteHop],
    embedded: impl FnOnce(&mut Writer<'_>),
) {
    write_request(
        w,
        SERVICE_0X52,
        |w| w.bytes(&CONNECTION_MANAGER_PATH),
        |w| {
            w.u8(PRIORITY_TIME_TICK);
            w.u8(TIMEOUT_TICKS);
            let at = w.len();
            w.u16(0);
            embedded(w);
            let length = w.len() - at - 2;
            w.patch_u16(at, length as u16);
            if length % 2 == 1 {
                w.u8(0);
            }
            w.u8((route_bytes(route) / 2) as u8);
            w.u8(0);
            write_route(w, route);
        },
    );
}

/// Get Instance Attribute List of the Symbol class from instance `start`
/// on, asking for name (1), type (2) and array dimensions (8), in that
/// order; `program` scopes it to a program's tags.
pub fn write_symbol_list(w: &mut Writer<'_>, program: Option<&str>, start: u32) {
    write_request(
        w,
        GET_INSTANCE_ATTRIBUTE_LIST,
        |w| {
            if let Some(program) = program {
                w.u8(0x91);
                w.u8(program.len() as u8);
                w.bytes(program.as_bytes());
                if program.len() % 2 == 1 {
                    w.u8(0);
                }
            }
            w.u8(0x20);
            w.u8(SYMBOL_CLASS);
            if start <= 0xFFFF {
                w.u8(0x25);
                w.u8(0);
                w.u16(start as u16);
            } else {
                w.u8(0x26);
                w.u8(0);
                w.u32(start);
            }
        },
        |w| {
            w.u16(3);
            w.u16(1);
            w.u16(2);
            w.u16(8);
        },
    );
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)] // tests index their own fixtures, not wire data
mod tests {
    use super::*;
    use crate::config::parse_enip_address;

    fn encode(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
        let mut buf = vec![0u8; 600];
        let mut w = Writer::new(&mut buf);
        f(&mut w);
        assert!(!w.overflowed());
        let n = w.len();
        buf.truncate(n);
        buf
    }

    #[test]
    fn symbolic_paths_pad_names_and_size_elements() {
        let path = parse_enip_address("Program:Main.Temps[3,300,70000]").unwrap();
        let bytes = encode(|w| write_symbolic_path(w, &path));
        let mut want = vec![0x91, 12];
        want.extend_from_slice(b"Program:Main");
        want.extend_from_slice(&[0x91, 5]);
        want.extend_from_slice(b"Temps");
        want.push(0);
        want.extend_from_slice(&[0x28, 3, 0x29, 0, 0x2C, 0x01, 0x2A, 0, 0x70, 0x11, 0x01, 0]);
        assert_eq!(bytes, want);
        assert_eq!(symbolic_path_bytes(&path), want.len());
    }

    /// pycomm3 1.2.16 builds the same bytes for `read('Tag[3]')` as the
    /// Read Tag service (`4C 03 91 03 Tag 00 28 03 01 00`).
    #[test]
    fn read_tag_matches_pycomm3() {
        let path = parse_enip_address("Tag[3]").unwrap();
        let path = encode(|w| write_symbolic_path(w, &path));
        let bytes = encode(|w| write_read_tag(w, &path, 1));
        assert_eq!(
            bytes,
            [0x4C, 4, 0x91, 3, b'T', b'a', b'g', 0, 0x28, 3, 1, 0]
        );
        assert_eq!(bytes.len(), read_tag_bytes(path.len()));
    }

    #[test]
    fn multiple_service_packet_offsets_count_from_the_count() {
        let bytes = encode(|w| {
            write_multiple(w, 2, |w, i| {
                write_read_tag(w, &[0x91, 1, b'a' + i as u8, 0], 1)
            })
        });
        let request = parse_request(&bytes).unwrap();
        assert_eq!(
            request_service(request.service, request.path),
            RequestKind::MultipleServicePacket
        );
        assert_eq!(request.path, MESSAGE_ROUTER_PATH);
        assert_eq!(&request.data[..6], &[2, 0, 6, 0, 14, 0]);
        let first = parse_request(&request.data[6..]).unwrap();
        assert_eq!(
            (first.service, first.path),
            (READ_TAG, &[0x91, 1, b'a', 0][..])
        );
        assert_eq!(
            bytes.len(),
            MSP_REQUEST_HEAD_BYTES + 2 * (MSP_OFFSET_BYTES + read_tag_bytes(4))
        );
    }

    #[test]
    fn service_0x52_is_told_apart_by_its_path() {
        assert_eq!(
            request_service(0x52, &CONNECTION_MANAGER_PATH),
            RequestKind::UnconnectedSend
        );
        assert_eq!(
            request_service(0x52, &[0x91, 1, b'x', 0]),
            RequestKind::ReadTagFragmented
        );
        assert_eq!(
            request_service(0x4E, &CONNECTION_MANAGER_PATH),
            RequestKind::ForwardClose
        );
        assert_eq!(
            request_service(0x4E, &[0x91, 1, b'x', 0]),
            RequestKind::Other(0x4E)
        );
    }

    #[test]
    fn msp_replies_refuse_offsets_outside_or_backwards() {
        // two replies of 4 bytes each
        let good = [2, 0, 6, 0, 10, 0, 0xCC, 0, 0, 0, 0xCC, 0, 5, 0];
        let replies = MspReplies::parse(&good, 2).unwrap();
        assert_eq!(replies.get(1), &[0xCC, 0, 5, 0]);
        let backwards = [2, 0, 10, 0, 6, 0, 0xCC, 0, 0, 0, 0xCC, 0, 5, 0];
        assert_eq!(
            MspReplies::parse(&backwards, 2).unwrap_err(),
            EnipError::MspOffset {
                index: 1,
                offset: 6
            }
        );
        let outside = [1, 0, 90, 0];
        assert!(MspReplies::parse(&outside, 1).is_err());
        assert_eq!(
            MspReplies::parse(&good, 3).unwrap_err(),
            EnipError::MspCount {
                expected: 3,
                found: 2
            }
        );
    }

    #[test]
    fn reply_header_reads_the_first_extended_word() {
        let reply = parse_reply(&[0xCC, 0, 0xFF, 1, 0x05, 0x21]).unwrap();
        assert_eq!(
            (reply.service, reply.general, reply.extended),
            (0x4C, 0xFF, 0x2105)
        );
        assert!(parse_reply(&[0x4C, 0, 0, 0]).is_err());
        assert!(parse_reply(&[0xCC, 0, 0, 9]).is_err());
    }

    #[test]
    fn forward_open_carries_the_route_and_the_router() {
        let route = crate::config::parse_enip_route("1,0").unwrap();
        let triad = Triad {
            connection_serial: 0x0102,
            vendor_id: VENDOR_ID,
            originator_serial: 0x0A0B_0C0D,
        };
        let large = encode(|w| write_forward_open(w, true, triad, 0x1234_5678, 4002, &route));
        assert_eq!(&large[..6], &[0x5B, 2, 0x20, 0x06, 0x24, 0x01]);
        let tail = &large[large.len() - 8..];
        assert_eq!(tail, &[0xA3, 3, 0x01, 0x00, 0x20, 0x02, 0x24, 0x01]);
        // O->T parameters: 0x42000FA2 after the RPI
        assert_eq!(&large[32..36], &(0x4200_0000u32 | 4002).to_le_bytes());
        let small = encode(|w| write_forward_open(w, false, triad, 1, 500, &[]));
        assert_eq!(small[0], 0x54);
        assert_eq!(
            &small[small.len() - 6..],
            &[0xA3, 2, 0x20, 0x02, 0x24, 0x01]
        );
        assert_eq!(&small[32..34], &(0x4200u16 | 500).to_le_bytes());
    }
}
