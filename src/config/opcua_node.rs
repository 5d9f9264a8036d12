//! OPC UA NodeId text, as Part 6 §5.3.1.10 writes it and as servers,
//! UaExpert and asyncua print it: an optional `ns=N;` and one of `i=`
//! (numeric), `s=` (string), `g=` (GUID) or `b=` (opaque, base64).
//!
//! ```text
//!   i=2258                       ns 0, numeric 2258 (Server_ServerStatus_CurrentTime)
//!   ns=2;s=Cell3.Temp            ns 2, string "Cell3.Temp" (any text after `s=`, `;` too)
//!   ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a
//!   ns=1;b=M/RbKBsRVkePCePcx24oRA==
//! ```
//!
//! This is text from a configuration file or a tag CSV (a `discover` output
//! or an engineer's export): parsed here without panicking on any input,
//! with a size cap on every part, and `Display` writes back text that parses
//! to the same NodeId (the fuzz target checks both). `nsu=` (a namespace
//! URI instead of an index) is refused with a message: it needs the
//! server's namespace table, which a configuration check does not have.

use std::fmt;

/// Longest string identifier: OPC UA servers keep them short, and this
/// bounds what a tag table holds per tag (Part 3 recommends < 4096).
pub const STRING_ID_BYTES_MAX: usize = 4096;
/// Longest opaque identifier, decoded.
pub const OPAQUE_ID_BYTES_MAX: usize = 4096;

/// A NodeId: namespace index and identifier.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeIdText {
    pub namespace: u16,
    pub identifier: Identifier,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identifier {
    Numeric(u32),
    String(String),
    /// The 16 bytes in the order the canonical text writes them.
    Guid([u8; 16]),
    Opaque(Vec<u8>),
}

/// Why a text is not a NodeId, in words for a configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeIdError {
    Empty,
    Namespace(String),
    NamespaceUri,
    NoIdentifier,
    UnknownKind(String),
    Numeric(String),
    EmptyString,
    StringTooLong(usize),
    Guid(String),
    Base64,
    OpaqueTooLong(usize),
}

impl fmt::Display for NodeIdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeIdError::Empty => f.write_str("the NodeId is empty"),
            NodeIdError::Namespace(t) => {
                write!(f, "`{t}` is not a namespace index 0..=65535")
            }
            NodeIdError::NamespaceUri => f.write_str(
                "`nsu=` (a namespace URI) is not supported: write the server's namespace \
                 index as `ns=N;` (`millrace discover` prints it)",
            ),
            NodeIdError::NoIdentifier => {
                f.write_str("no identifier: expected `i=`, `s=`, `g=` or `b=` after `ns=N;`")
            }
            NodeIdError::UnknownKind(t) => write!(
                f,
                "`{t}` is not an identifier: expected `i=`, `s=`, `g=` or `b=`"
            ),
            NodeIdError::Numeric(t) => {
                write!(f, "`{t}` is not a numeric identifier 0..=4294967295")
            }
            NodeIdError::EmptyString => f.write_str("the string identifier after `s=` is empty"),
            NodeIdError::StringTooLong(n) => write!(
                f,
                "the string identifier is {n} bytes, more than {STRING_ID_BYTES_MAX}"
            ),
            NodeIdError::Guid(t) => write!(
                f,
                "`{t}` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, hexadecimal)"
            ),
            NodeIdError::Base64 => f.write_str("the opaque identifier after `b=` is not base64"),
            NodeIdError::OpaqueTooLong(n) => write!(
                f,
                "the opaque identifier is {n} bytes, more than {OPAQUE_ID_BYTES_MAX}"
            ),
        }
    }
}

impl std::error::Error for NodeIdError {}

/// Parses the text form of a NodeId (see the module documentation).
pub fn parse_node_id(text: &str) -> Result<NodeIdText, NodeIdError> {
    if text.is_empty() {
        return Err(NodeIdError::Empty);
    }
    if text.starts_with("nsu=") {
        return Err(NodeIdError::NamespaceUri);
    }
    let (namespace, rest) = match text.strip_prefix("ns=") {
        Some(after) => {
            let Some((index, rest)) = after.split_once(';') else {
                return Err(NodeIdError::NoIdentifier);
            };
            let namespace = parse_decimal(index)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| NodeIdError::Namespace(index.to_string()))?;
            (namespace, rest)
        }
        None => (0, text),
    };
    if rest.is_empty() {
        return Err(NodeIdError::NoIdentifier);
    }
    let identifier = if let Some(n) = rest.strip_prefix("i=") {
        let value = parse_decimal(n)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| NodeIdError::Numeric(n.to_string()))?;
        Identifier::Numeric(value)
    } else if let Some(s) = rest.strip_prefix("s=") {
        if s.is_empty() {
            return Err(NodeIdError::EmptyString);
        }
        if s.len() > STRING_ID_BYTES_MAX {
            return Err(NodeIdError::StringTooLong(s.len()));
        }
        Identifier::String(s.to_string())
    } else if let Some(g) = rest.strip_prefix("g=") {
        Identifier::Guid(parse_guid(g).ok_or_else(|| NodeIdError::Guid(cut(g)))?)
    } else if let Some(b) = rest.strip_prefix("b=") {
        // Checked before decoding: the decoded form is 3/4 of the text.
        if b.len() / 4 * 3 > OPAQUE_ID_BYTES_MAX + 2 {
            return Err(NodeIdError::OpaqueTooLong(b.len() / 4 * 3));
        }
        let bytes = base64_decode(b).ok_or(NodeIdError::Base64)?;
        if bytes.len() > OPAQUE_ID_BYTES_MAX {
            return Err(NodeIdError::OpaqueTooLong(bytes.len()));
        }
        Identifier::Opaque(bytes)
    } else {
        let head: String = rest.chars().take(8).collect();
        return Err(NodeIdError::UnknownKind(head));
    };
    Ok(NodeIdText {
        namespace,
        identifier,
    })
}

/// At most 40 characters of `text`, for a message.
fn cut(text: &str) -> String {
    text.chars().take(40).collect()
}

/// Decimal digits only (no sign, no spaces), at most 10 of them.
fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, either case; optional braces.
fn parse_guid(text: &str) -> Option<[u8; 16]> {
    let text = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    let groups: Vec<&str> = text.split('-').collect();
    let lengths = [8, 4, 4, 4, 12];
    if groups.len() != lengths.len() || groups.iter().zip(lengths).any(|(g, n)| g.len() != n) {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(out)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with `=` padding to a multiple of 4.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    let padding = bytes.iter().rev().take_while(|b| **b == b'=').count();
    if padding > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let body_len = bytes.len() - padding;
    let mut bits: u32 = 0;
    let mut bit_count = 0;
    for (index, b) in bytes.iter().enumerate() {
        if index >= body_len {
            break;
        }
        let value = BASE64.iter().position(|c| c == b)? as u32;
        bits = bits << 6 | value;
        bit_count += 6;
        if bit_count >= 8 {
            bit_count -= 8;
            out.push((bits >> bit_count) as u8);
            bits &= (1 << bit_count) - 1;
        }
    }
    // The unused low bits of the last character must be zero (canonical).
    if bits != 0 {
        return None;
    }
    Some(out)
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut word = [0u8; 3];
        for (w, b) in word.iter_mut().zip(chunk) {
            *w = *b;
        }
        let n = u32::from(word[0]) << 16 | u32::from(word[1]) << 8 | u32::from(word[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = (n >> (18 - 6 * i)) & 63;
                out.push(char::from(BASE64[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl fmt::Display for NodeIdText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace != 0 {
            write!(f, "ns={};", self.namespace)?;
        }
        match &self.identifier {
            Identifier::Numeric(n) => write!(f, "i={n}"),
            Identifier::String(s) => write!(f, "s={s}"),
            Identifier::Guid(g) => {
                f.write_str("g=")?;
                for (index, byte) in g.iter().enumerate() {
                    if matches!(index, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
            Identifier::Opaque(b) => write!(f, "b={}", base64_encode(b)),
        }
    }
}

/// The fuzz entry point (`fuzz/fuzz_targets/opcua_node_id.rs` and its
/// corpus replay): any text either fails with an error or parses to a
/// NodeId whose `Display` parses back to the same NodeId.
pub fn fuzz_node_id(data: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(data) else {
        return false;
    };
    match parse_node_id(text) {
        Ok(node) => {
            let shown = node.to_string();
            let again = parse_node_id(&shown).expect("Display parses back");
            assert_eq!(again, node, "{text:?} -> {shown:?}");
            true
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(namespace: u16, identifier: Identifier) -> NodeIdText {
        NodeIdText {
            namespace,
            identifier,
        }
    }

    #[test]
    fn the_four_kinds() {
        assert_eq!(
            parse_node_id("i=2258"),
            Ok(node(0, Identifier::Numeric(2258)))
        );
        assert_eq!(
            parse_node_id("ns=2;s=Cell3.Temp"),
            Ok(node(2, Identifier::String("Cell3.Temp".into())))
        );
        // A string identifier takes everything after `s=`, `;` and `=` too.
        assert_eq!(
            parse_node_id("ns=2;s=a;b=c"),
            Ok(node(2, Identifier::String("a;b=c".into())))
        );
        let guid = parse_node_id("ns=3;g=09087E75-8E5E-499B-954F-F2A9603DB28A").unwrap();
        assert_eq!(
            guid.to_string(),
            "ns=3;g=09087e75-8e5e-499b-954f-f2a9603db28a"
        );
        assert_eq!(
            parse_node_id("ns=1;b=M/RbKBsRVkePCePcx24oRA==").map(|n| n.to_string()),
            Ok("ns=1;b=M/RbKBsRVkePCePcx24oRA==".to_string())
        );
        assert_eq!(
            parse_node_id("ns=1;b=AQID"),
            Ok(node(1, Identifier::Opaque(vec![1, 2, 3])))
        );
    }

    #[test]
    fn refusals_say_why() {
        for (text, want) in [
            ("", NodeIdError::Empty),
            ("ns=70000;i=1", NodeIdError::Namespace("70000".into())),
            ("ns=-1;i=1", NodeIdError::Namespace("-1".into())),
            ("nsu=urn:x;i=1", NodeIdError::NamespaceUri),
            ("ns=2", NodeIdError::NoIdentifier),
            ("ns=2;", NodeIdError::NoIdentifier),
            ("x=1", NodeIdError::UnknownKind("x=1".into())),
            ("i=4294967296", NodeIdError::Numeric("4294967296".into())),
            ("i= 1", NodeIdError::Numeric(" 1".into())),
            ("s=", NodeIdError::EmptyString),
            ("g=1234", NodeIdError::Guid("1234".into())),
            ("b=abc", NodeIdError::Base64),
            ("b=AQJ=", NodeIdError::Base64),
        ] {
            assert_eq!(parse_node_id(text), Err(want), "{text}");
        }
        let long = format!("s={}", "x".repeat(STRING_ID_BYTES_MAX + 1));
        assert!(matches!(
            parse_node_id(&long),
            Err(NodeIdError::StringTooLong(_))
        ));
    }

    #[test]
    fn base64_round_trips() {
        for n in 0..40u8 {
            let bytes: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            let text = base64_encode(&bytes);
            if bytes.is_empty() {
                assert!(base64_decode(&text).is_none());
            } else {
                assert_eq!(base64_decode(&text), Some(bytes));
            }
        }
    }

    #[test]
    fn fuzz_entry_on_seeds() {
        for seed in [
            "i=1",
            "ns=2;s=x",
            "ns=3;g={09087e75-8e5e-499b-954f-f2a9603db28a}",
            "b=//8=",
        ] {
            assert!(fuzz_node_id(seed.as_bytes()), "{seed}");
        }
        assert!(!fuzz_node_id(b"\xff"));
    }
}
