//! Reading one kdb+ IPC message off a byte stream with a memory bound: the one
//! path every reader of kdb+ messages takes (the publisher's replies over TCP
//! or TLS, so also `millrace replay` and the bench's baseline; the stand-in's
//! sessions over TCP or TLS, so also `millrace tickerplant` and the bench's
//! stand-in).
//!
//! The header is checked first (byte order, type, and its total length
//! against the caller's maximum); then the buffer grows with the bytes that
//! arrived, at most doubling and never by less than `GROW_BYTES_MIN`, never
//! to the length the header claims at once. A peer that announces 256 MiB
//! and sends nothing costs 64 KiB; one that trickles costs at most about
//! twice what it sent (plus 64 KiB). Must never: allocate on a header's word
//! alone, or read past the message (the next message's bytes stay in the
//! stream).
//!
//! The stream is reached through a `fill` function, so each caller keeps its
//! own way of waiting (the publisher blocks under its socket timeout, the
//! stand-in polls a stop flag) and its own errors.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::io::Read;

use super::decode::DecodeLimits;
use super::error::{DecodeError, KdbError};
use super::header::{Header, HEADER_SIZE};

/// The least a message buffer grows by while its body arrives: small
/// messages (chasers, replies, most updates) need one read.
pub const GROW_BYTES_MIN: usize = 64 << 10;

/// Where in the stream a `fill` is asked for bytes: a stream that ends
/// between messages closed cleanly; one that ends inside a message was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// The header of the next message: nothing of it has been read.
    Boundary,
    /// The rest of a message whose header has been read.
    Inside,
}

/// Why no message was read.
#[derive(Debug)]
pub enum ReceiveError<E> {
    /// The stream failed or ended (the error `fill` returned).
    Stream(E),
    /// The header is malformed, or announces more than the maximum.
    Header(DecodeError),
}

/// Reads one whole message into `message` (header included; its length is
/// the header's total length on success). `fill(buf, at)` must fill all of
/// `buf` or fail. The buffer's capacity is kept for the next message.
pub fn receive<E>(
    message: &mut Vec<u8>,
    message_bytes_max: usize,
    mut fill: impl FnMut(&mut [u8], At) -> Result<(), E>,
) -> Result<Header, ReceiveError<E>> {
    let mut head = [0u8; HEADER_SIZE];
    fill(&mut head, At::Boundary).map_err(ReceiveError::Stream)?;
    let header = Header::parse(&head, message_bytes_max).map_err(ReceiveError::Header)?;
    let total = header.total_len as usize;
    // Header::parse refuses a total below a header and a byte.
    debug_assert!(total > HEADER_SIZE && total <= message_bytes_max);
    message.clear();
    message.extend_from_slice(&head);
    let mut filled = HEADER_SIZE;
    // Each round reads at least one byte more or returns.
    while filled < total {
        let upto = total.min(filled + filled.max(GROW_BYTES_MIN));
        message.resize(upto, 0);
        let chunk = message.get_mut(filled..upto).unwrap_or_default();
        fill(chunk, At::Inside).map_err(ReceiveError::Stream)?;
        filled = upto;
    }
    debug_assert_eq!(message.len(), total);
    Ok(header)
}

/// `receive` over a blocking stream (a socket with a read timeout, or TLS
/// over one): a timeout or an end of stream is an error, as the publisher
/// waits for a reply no longer than its I/O timeout.
pub fn read_message<R: Read>(
    stream: &mut R,
    message: &mut Vec<u8>,
    limits: &DecodeLimits,
) -> Result<Header, KdbError> {
    let received = receive(message, limits.message_bytes_max, |buf, _| {
        stream.read_exact(buf).map_err(closed_or_io)
    });
    received.map_err(|e| match e {
        ReceiveError::Stream(e) => e,
        ReceiveError::Header(e) => KdbError::Decode(e),
    })
}

/// A peer that went away is `Closed`; anything else stays an I/O error.
pub fn closed_or_io(e: std::io::Error) -> KdbError {
    use std::io::ErrorKind::*;
    match e.kind() {
        BrokenPipe | ConnectionReset | ConnectionAborted | UnexpectedEof => KdbError::Closed,
        _ => KdbError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn head(total: u32) -> [u8; HEADER_SIZE] {
        let [l0, l1, l2, l3] = total.to_le_bytes();
        [1, 2, 0, 0, l0, l1, l2, l3]
    }

    fn from(wire: &mut Cursor<Vec<u8>>, message: &mut Vec<u8>) -> Result<Header, KdbError> {
        read_message(wire, message, &DecodeLimits::default())
    }

    #[test]
    fn a_header_claiming_much_and_sending_little_holds_little() {
        // 200 MiB announced, 1,000 bytes sent, then the peer goes away.
        let mut bytes = head(200 << 20).to_vec();
        bytes.extend_from_slice(&[7u8; 1_000]);
        let mut message = Vec::new();
        let read = from(&mut Cursor::new(bytes), &mut message);
        assert!(matches!(read, Err(KdbError::Closed)), "{read:?}");
        assert!(
            message.capacity() <= 2 * GROW_BYTES_MIN,
            "{}",
            message.capacity()
        );
    }

    #[test]
    fn a_trickle_holds_about_twice_what_arrived() {
        let arrived = 3_000_000;
        let mut bytes = head(200 << 20).to_vec();
        bytes.resize(HEADER_SIZE + arrived, 9);
        let mut message = Vec::new();
        assert!(from(&mut Cursor::new(bytes), &mut message).is_err());
        let bound = 2 * (HEADER_SIZE + arrived) + GROW_BYTES_MIN;
        assert!(message.capacity() <= 2 * bound, "{}", message.capacity());
    }

    #[test]
    fn over_the_maximum_is_refused_before_the_body() {
        let limits = DecodeLimits {
            message_bytes_max: 1 << 16,
            ..DecodeLimits::default()
        };
        let mut wire = Cursor::new(head((1 << 16) + 1).to_vec());
        let mut message = Vec::new();
        let read = read_message(&mut wire, &mut message, &limits);
        assert!(
            matches!(read, Err(KdbError::Decode(DecodeError::TooLarge { .. }))),
            "{read:?}"
        );
        assert_eq!(message.capacity(), 0);
    }

    #[test]
    fn messages_of_every_size_arrive_whole_in_a_reused_buffer() {
        let sizes = [9usize, 4_096, 65_544, 65_545, 300_001, 1_000, 2_500_000, 17];
        let mut wire = Vec::new();
        let mut bodies = Vec::new();
        for total in sizes {
            let body: Vec<u8> = (0..total - HEADER_SIZE).map(|i| (i % 251) as u8).collect();
            wire.extend_from_slice(&head(total as u32));
            wire.extend_from_slice(&body);
            bodies.push(body);
        }
        let mut wire = Cursor::new(wire);
        let mut message = Vec::new();
        for (total, body) in sizes.into_iter().zip(&bodies) {
            let header = from(&mut wire, &mut message).expect("a whole message");
            assert_eq!(header.total_len as usize, total);
            assert_eq!(message.len(), total);
            assert_eq!(message.get(..HEADER_SIZE), Some(&head(total as u32)[..]));
            assert_eq!(message.get(HEADER_SIZE..), Some(&body[..]));
        }
        // Exactly at the end of the stream: a clean close at a boundary.
        assert!(matches!(
            from(&mut wire, &mut message),
            Err(KdbError::Closed)
        ));
    }

    #[test]
    fn fill_is_told_where_it_stands() {
        let mut wire = Cursor::new({
            let mut b = head(20).to_vec();
            b.extend_from_slice(&[0; 12]);
            b
        });
        let mut seen = Vec::new();
        let mut message = Vec::new();
        let read = receive(&mut message, 1 << 20, |buf, at| {
            seen.push((buf.len(), at));
            wire.read_exact(buf)
        });
        assert!(read.is_ok());
        assert_eq!(seen, [(HEADER_SIZE, At::Boundary), (12, At::Inside)]);
    }
}
