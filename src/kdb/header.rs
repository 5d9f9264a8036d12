//! The 8-byte message header: byte order, message type, compressed flag,
//! total length (header included).
//!
//! ```text
//! 0: 1 little-endian, 0 big-endian
//! 1: 0 async, 1 sync, 2 response
//! 2: 1 when the body is compressed (then bytes 8..12 hold the uncompressed
//!    total length and the compressed stream starts at byte 12)
//! 3: 0 (capability 6 uses it for messages over 2 GiB; we never accept those)
//! 4..8: total length, in the message's byte order
//! ```

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use super::error::DecodeError;

pub const HEADER_SIZE: usize = 8;

/// Default cap on a message (compressed or not), in bytes. Memory the peer
/// controls: the stand-in holds at most one message per connection, so this
/// times the connection cap bounds its buffers.
pub const MESSAGE_BYTES_MAX_DEFAULT: usize = 256 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    Async = 0,
    Sync = 1,
    Response = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub little_endian: bool,
    pub msg_type: MsgType,
    pub compressed: bool,
    /// Total bytes of the message as sent, header included.
    pub total_len: u32,
}

impl Header {
    /// Parses and checks a header; `max` caps `total_len`.
    pub fn parse(bytes: &[u8; HEADER_SIZE], max: usize) -> Result<Header, DecodeError> {
        let [endian, kind, compressed, reserved, l0, l1, l2, l3] = *bytes;
        let little_endian = match endian {
            0 => false,
            1 => true,
            _ => return Err(DecodeError::BadHeader { what: "byte order" }),
        };
        let msg_type = match kind {
            0 => MsgType::Async,
            1 => MsgType::Sync,
            2 => MsgType::Response,
            _ => {
                return Err(DecodeError::BadHeader {
                    what: "message type",
                })
            }
        };
        let compressed = match compressed {
            0 => false,
            1 => true,
            _ => {
                return Err(DecodeError::BadHeader {
                    what: "compressed flag",
                })
            }
        };
        if reserved != 0 {
            return Err(DecodeError::BadHeader {
                what: "reserved byte",
            });
        }
        let len = [l0, l1, l2, l3];
        let total_len = if little_endian {
            u32::from_le_bytes(len)
        } else {
            u32::from_be_bytes(len)
        };
        let min = if compressed {
            HEADER_SIZE + 4
        } else {
            HEADER_SIZE + 1
        };
        if (total_len as usize) < min {
            return Err(DecodeError::BadHeader {
                what: "total length",
            });
        }
        if total_len as usize > max {
            return Err(DecodeError::TooLarge {
                what: "message",
                declared: total_len as u64,
                max: max as u64,
            });
        }
        Ok(Header {
            little_endian,
            msg_type,
            compressed,
            total_len,
        })
    }

    /// The header bytes (little-endian messages only: we always send LE).
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let len = if self.little_endian {
            self.total_len.to_le_bytes()
        } else {
            self.total_len.to_be_bytes()
        };
        let [l0, l1, l2, l3] = len;
        [
            self.little_endian as u8,
            self.msg_type as u8,
            self.compressed as u8,
            0,
            l0,
            l1,
            l2,
            l3,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            little_endian: true,
            msg_type: MsgType::Sync,
            compressed: false,
            total_len: 13,
        };
        assert_eq!(Header::parse(&h.to_bytes(), 100), Ok(h));
        let be = Header {
            little_endian: false,
            ..h
        };
        assert_eq!(be.to_bytes(), [0, 1, 0, 0, 0, 0, 0, 13]);
        assert_eq!(Header::parse(&be.to_bytes(), 100), Ok(be));
        assert!(matches!(
            Header::parse(&h.to_bytes(), 12),
            Err(DecodeError::TooLarge { .. })
        ));
        assert!(Header::parse(&[2, 0, 0, 0, 13, 0, 0, 0], 100).is_err());
        assert!(Header::parse(&[1, 3, 0, 0, 13, 0, 0, 0], 100).is_err());
        assert!(Header::parse(&[1, 0, 2, 0, 13, 0, 0, 0], 100).is_err());
        assert!(Header::parse(&[1, 0, 0, 0, 8, 0, 0, 0], 100).is_err());
    }
}
