//! One-line notices for the operator: a tag the controller does not have
//! (or refuses), a module that refused the Large Forward Open. Each distinct
//! condition is raised once per session, not per poll; the tag's samples
//! carry the status as their quality every cycle.

use std::fmt;

/// A short copy of a tag's name and address for a notice (notices are
/// `Copy`, so they cannot own a `String`): at most `SHORT_TEXT_BYTES`
/// bytes, cut with `...` past that.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ShortText {
    bytes: [u8; SHORT_TEXT_BYTES],
    len: u8,
    cut: bool,
}

pub const SHORT_TEXT_BYTES: usize = 96;

impl ShortText {
    pub fn new(text: &str) -> Self {
        let mut bytes = [0u8; SHORT_TEXT_BYTES];
        // Cut at a character boundary so the copy stays valid UTF-8.
        let mut end = text.len().min(SHORT_TEXT_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let kept = text.get(..end).unwrap_or_default().as_bytes();
        for (b, t) in bytes.iter_mut().zip(kept) {
            *b = *t;
        }
        ShortText {
            bytes,
            len: end as u8,
            cut: end < text.len(),
        }
    }

    pub fn as_str(&self) -> &str {
        let kept = self.bytes.get(..usize::from(self.len)).unwrap_or_default();
        std::str::from_utf8(kept).unwrap_or("?")
    }
}

impl fmt::Display for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ShortText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnipNotice {
    /// CIP status 0x05 (or 0x04) for a tag's read: the controller has no
    /// such tag (or cannot parse its path).
    TagNotFound {
        tag: ShortText,
        general: u8,
        extended: u16,
    },
    /// Another CIP status for a tag's read.
    TagRefused {
        tag: ShortText,
        general: u8,
        extended: u16,
    },
    /// The reply's data type is not the configured one.
    TypeMismatch { tag: ShortText, found: u16 },
    /// The whole request (a Multiple Service Packet) was refused.
    RequestRefused { general: u8, extended: u16 },
    /// The module refused the Large Forward Open; the session fell back to
    /// a Forward Open of `size` bytes.
    LargeForwardOpenRefused {
        general: u8,
        extended: u16,
        size: u16,
    },
}

fn status_words(general: u8, extended: u16) -> &'static str {
    match (general, extended) {
        (0x04, _) => "path segment error",
        (0x05, _) => "path destination unknown",
        (0x08, _) => "service not supported",
        (0x0A, _) => "attribute list error",
        (0x11, _) => "reply data too large",
        (0x13, _) => "not enough data",
        (0x15, _) => "too much data",
        (0x26, _) => "invalid path size",
        (0xFF, 0x2105) => "access beyond the end of the tag",
        (0xFF, 0x2107) => "data type mismatch",
        (0xFF, 0x2104) => "offset beyond the end of the tag",
        _ => "CIP error",
    }
}

impl fmt::Display for EnipNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            EnipNotice::TagNotFound {
                tag,
                general,
                extended,
            } => write!(
                f,
                "tag {tag} does not exist on the controller (CIP status {general:#04x} {}, \
                 extended {extended:#06x}): its samples carry that status; check the address \
                 and its program scope (`Program:Name.Tag`)",
                status_words(general, extended)
            ),
            EnipNotice::TagRefused {
                tag,
                general,
                extended,
            } => write!(
                f,
                "the controller refuses the read of tag {tag} (CIP status {general:#04x} {}, \
                 extended {extended:#06x}): its samples carry that status",
                status_words(general, extended)
            ),
            EnipNotice::TypeMismatch { tag, found } => write!(
                f,
                "tag {tag} holds CIP type {found:#06x}, not the configured type: its samples \
                 are marked as a type mismatch; fix the tag's `type`"
            ),
            EnipNotice::RequestRefused { general, extended } => write!(
                f,
                "the controller refuses a Multiple Service Packet (CIP status {general:#04x} \
                 {}, extended {extended:#06x}): the tags in it carry that status",
                status_words(general, extended)
            ),
            EnipNotice::LargeForwardOpenRefused {
                general,
                extended,
                size,
            } => write!(
                f,
                "the module refused the Large Forward Open (CIP status {general:#04x}, extended \
                 {extended:#06x}); connected with a Forward Open of {size} bytes, reads are \
                 planned for that (a ControlLogix needs an EN2T-class module and firmware v20+ \
                 for 4002 bytes)"
            ),
        }
    }
}

/// Notices raised so far and those waiting for the reader; both bounded
/// and allocated at start-up.
#[derive(Clone, Debug)]
pub struct Notices {
    raised: Vec<EnipNotice>,
    queue: std::collections::VecDeque<EnipNotice>,
    /// Distinct conditions past what `raised` holds (not announced).
    pub dropped: u64,
}

/// Distinct conditions remembered (a notice per bad tag of a large device).
const RAISED_MAX: usize = 1024;
/// Notices waiting for the reader to log them.
const QUEUED_MAX: usize = 64;

impl Default for Notices {
    fn default() -> Self {
        Notices {
            raised: Vec::with_capacity(RAISED_MAX),
            queue: std::collections::VecDeque::with_capacity(QUEUED_MAX),
            dropped: 0,
        }
    }
}

impl Notices {
    /// Queues `notice` unless it was raised before.
    pub fn raise(&mut self, notice: EnipNotice) {
        if self.raised.contains(&notice) {
            return;
        }
        if self.raised.len() >= RAISED_MAX || self.queue.len() >= QUEUED_MAX {
            self.dropped += 1;
            return;
        }
        self.raised.push(notice);
        self.queue.push_back(notice);
    }

    pub fn pop(&mut self) -> Option<EnipNotice> {
        self.queue.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_cuts_at_a_character_boundary() {
        let long = "é".repeat(60);
        let text = ShortText::new(&long);
        assert!(text.as_str().len() <= SHORT_TEXT_BYTES);
        assert!(text.to_string().ends_with("..."));
        assert_eq!(ShortText::new("a (b)").to_string(), "a (b)");
    }

    #[test]
    fn a_notice_is_raised_once() {
        let mut notices = Notices::default();
        let n = EnipNotice::TagNotFound {
            tag: ShortText::new("x (Missing)"),
            general: 5,
            extended: 0,
        };
        notices.raise(n);
        notices.raise(n);
        assert_eq!(notices.pop(), Some(n));
        assert_eq!(notices.pop(), None);
        assert!(n.to_string().contains("x (Missing) does not exist"));
    }
}
