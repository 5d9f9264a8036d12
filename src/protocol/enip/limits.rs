//! Every cap of the EtherNet/IP codec as a named constant with its reason.
//! They bound memory and work the peer controls: nothing from the wire is
//! trusted beyond them.

/// The encapsulation header: command, length, session handle, status,
/// sender context (8), options.
pub const ENCAP_HEADER_BYTES: usize = 24;
/// The largest connection size a Large Forward Open negotiates (a
/// ControlLogix EN2T/L8x, CompactLogix 5380).
pub const CONNECTION_SIZE_MAX: usize = 4002;
/// The connection size asked for in a plain Forward Open when the module
/// refuses the large one (pycomm3 does the same; the 16-bit parameters
/// allow 511, libplctag asks 508).
pub const CONNECTION_SIZE_SMALL: usize = 500;
/// Data bytes of one encapsulation message this client accepts: a
/// connected reply is the common packet format (interface handle 4,
/// timeout 2, item count 2, address item 8, data item header 4, sequence
/// count 2 = 22 bytes) around at most `CONNECTION_SIZE_MAX` bytes of CIP.
/// Servers are trusted with no more than 256 bytes beyond that (a reply of
/// a server that counts differently, extra items); the framer buffers at
/// most one such message.
pub const ENCAP_DATA_BYTES_MAX: usize = CONNECTION_SIZE_MAX + 22 + 256;
/// One whole encapsulation message at most.
pub const ENCAP_FRAME_BYTES_MAX: usize = ENCAP_HEADER_BYTES + ENCAP_DATA_BYTES_MAX;
/// Items of a common packet format this client reads through: an address
/// and a data item, plus the two socket address items a Forward Open reply
/// may carry.
pub const CPF_ITEMS_MAX: u16 = 4;
/// Services one Multiple Service Packet reply may carry: each takes at
/// least a 2-byte offset and a 4-byte reply header, so a maximal connection
/// holds fewer than 4002 / 6.
pub const MSP_SERVICES_MAX: u16 = 667;
/// Extended status words of a reply: the field is a byte of words, but a
/// Logix reply carries one (Forward Open errors two); anything above this
/// is not a CIP reply this client understands.
pub const EXTENDED_STATUS_WORDS_MAX: u8 = 8;
/// The Logix STRING structure: DINT LEN, SINT[82] DATA, padded to 88.
pub const STRING_STRUCT_BYTES: usize = 88;
/// The Logix STRING structure handle (`A0 02 CE 0F` before its data).
pub const STRING_STRUCT_HANDLE: u16 = 0x0FCE;
/// Bytes a request path may take: the path size is one byte of words.
pub const PATH_BYTES_MAX: usize = 2 * 255;
/// Requests in flight on one connection at most (a Logix controller serves
/// a connection's requests one at a time; a few in flight hide the network).
pub const INFLIGHT_MAX: usize = 32;

const _: () = assert!(MSP_SERVICES_MAX as usize * 6 >= CONNECTION_SIZE_MAX);
const _: () = assert!(ENCAP_DATA_BYTES_MAX <= u16::MAX as usize);
const _: () = assert!(CONNECTION_SIZE_SMALL <= 511);
