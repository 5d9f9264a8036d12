//! The login handshake. The client sends `user:password`, one capability
//! byte and a NUL; the server answers one byte (the agreed capability, the
//! lower of both sides') or closes the socket to refuse.
//!
//! Capabilities: 3 = compression and timestamps/timespans/guids (kdb+ 3.0+);
//! 6 = the same, plus 64-bit lengths for messages over 2 GiB (we never send or
//! accept those, so 6 frames exactly like 3 here).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::io::{Read, Write};

use super::error::{DecodeError, KdbError};

/// Highest capability we agree to.
pub const CAPABILITY_MAX: u8 = 6;
/// What a client offers by default (what kdb+ 3.x and most clients send).
pub const CAPABILITY_DEFAULT: u8 = 3;
/// Most bytes of `user:password` + capability + NUL we read from a peer
/// before giving up (memory the peer controls; kdb+ itself caps it too).
pub const HELLO_BYTES_MAX: usize = 1024;

/// Writes a client hello.
pub fn client_hello(
    user: &str,
    password: &str,
    capability: u8,
    out: &mut Vec<u8>,
) -> Result<(), KdbError> {
    if user.contains('\0') || user.contains(':') {
        return Err(KdbError::BadName { what: "user" });
    }
    if password.contains('\0') {
        return Err(KdbError::BadName { what: "password" });
    }
    if user.len() + password.len() + 3 > HELLO_BYTES_MAX {
        return Err(KdbError::BadName {
            what: "credentials",
        });
    }
    out.clear();
    out.extend_from_slice(user.as_bytes());
    if !password.is_empty() {
        out.push(b':');
        out.extend_from_slice(password.as_bytes());
    }
    out.push(capability);
    out.push(0);
    Ok(())
}

/// A parsed client hello, borrowing from the bytes received.
#[derive(Debug, PartialEq, Eq)]
pub struct ClientHello<'a> {
    pub user: &'a [u8],
    pub password: &'a [u8],
    pub capability: u8,
    /// Bytes the hello used (the NUL included).
    pub consumed: usize,
}

/// Parses a hello from the bytes received so far: `Ok(None)` when the NUL
/// has not arrived yet. A client from before kdb+ 2.6 sends no capability
/// byte; a last byte that is not a capability (>= 0x20, printable) is then
/// part of the credentials and the capability is 0.
pub fn parse_client_hello(bytes: &[u8]) -> Result<Option<ClientHello<'_>>, DecodeError> {
    let window = bytes
        .get(..bytes.len().min(HELLO_BYTES_MAX))
        .unwrap_or(bytes);
    let Some(nul) = window.iter().position(|&b| b == 0) else {
        if bytes.len() >= HELLO_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                what: "handshake",
                declared: bytes.len() as u64,
                max: HELLO_BYTES_MAX as u64,
            });
        }
        return Ok(None);
    };
    let before = window.get(..nul).unwrap_or(&[]);
    let (credentials, capability) = match before.split_last() {
        Some((&cap, rest)) if cap < 0x20 => (rest, cap),
        _ => (before, 0),
    };
    let (user, password) = match credentials.iter().position(|&b| b == b':') {
        Some(colon) => (
            credentials.get(..colon).unwrap_or(&[]),
            credentials.get(colon + 1..).unwrap_or(&[]),
        ),
        None => (credentials, &[][..]),
    };
    Ok(Some(ClientHello {
        user,
        password,
        capability,
        consumed: nul + 1,
    }))
}

/// The capability a server answers to a client offering `offered`.
pub fn agree(offered: u8) -> u8 {
    offered.min(CAPABILITY_MAX)
}

/// The client side over a blocking stream. Returns the agreed capability.
pub fn client_handshake<S: Read + Write>(
    stream: &mut S,
    user: &str,
    password: &str,
    capability: u8,
) -> Result<u8, KdbError> {
    let mut hello = Vec::with_capacity(64);
    client_hello(user, password, capability, &mut hello)?;
    stream.write_all(&hello)?;
    stream.flush()?;
    let mut answer = [0u8; 1];
    loop {
        match stream.read(&mut answer) {
            Ok(0) => return Err(KdbError::AuthenticationRefused),
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(KdbError::AuthenticationRefused)
            }
            Err(e) => return Err(e.into()),
        }
    }
    let [answered] = answer;
    if answered > capability {
        return Err(KdbError::BadCapability {
            offered: capability,
            answered,
        });
    }
    Ok(answered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_round_trip() {
        let mut out = Vec::new();
        client_hello("feed", "pw:x", 6, &mut out).unwrap();
        assert_eq!(out, b"feed:pw:x\x06\0");
        let h = parse_client_hello(&out).unwrap().unwrap();
        assert_eq!(
            (h.user, h.password, h.capability, h.consumed),
            (&b"feed"[..], &b"pw:x"[..], 6, 11)
        );
        client_hello("", "", 3, &mut out).unwrap();
        assert_eq!(out, b"\x03\0");
    }

    #[test]
    fn partial_old_and_oversized_hellos() {
        assert_eq!(parse_client_hello(b"user:pa"), Ok(None));
        let old = parse_client_hello(b"user:pw\0").unwrap().unwrap();
        assert_eq!((old.password, old.capability), (&b"pw"[..], 0));
        assert!(parse_client_hello(&[b'a'; HELLO_BYTES_MAX]).is_err());
        assert_eq!(agree(3), 3);
        assert_eq!(agree(9), 6);
    }

    #[test]
    fn names_with_nul_are_refused() {
        let mut out = Vec::new();
        assert!(client_hello("a\0", "", 3, &mut out).is_err());
        assert!(client_hello("a", "b\0", 3, &mut out).is_err());
    }
}
