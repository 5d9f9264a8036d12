//! The one record that flows everywhere: reader ring slots, WAL frames and the
//! kdb+ publisher all see the same 24 bytes.
//!
//! A `Sample` is plain old data with a fixed layout (`repr(C)`, no padding the
//! compiler may fill with garbage: the explicit `reserved` bytes are always
//! zero). It never owns memory, so copying one is a 24-byte move and a
//! `[Sample]` can be viewed in place inside a memory-mapped WAL segment.
//!
//! The per-sample `seq` (the kdb+ de-duplication key) is not stored here: the
//! WAL numbers samples, and sample `i` of a frame has `frame.first_seq + i`.

/// Index into the run's tag table (all devices, in configuration order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct TagId(pub u32);

/// Quality of a sample, one byte on the wire, in the WAL and in kdb+.
///
/// | byte        | meaning                                               |
/// |-------------|-------------------------------------------------------|
/// | `0x00`      | good                                                  |
/// | `0x01`      | bad: no connection to the device                      |
/// | `0x02`      | bad: the request timed out                            |
/// | `0x03`      | bad: the response could not be decoded                |
/// | `0x04`      | stale: last good value, not refreshed this cycle      |
/// | `0x80 \| c` | bad: the device answered with Modbus exception code c |
///
/// Exception codes are 1..=0x7F in practice (the specification defines 1-4,
/// 5, 6, 8, 0x0A, 0x0B); a code with the high bit set is folded into 0x7F so
/// that every byte value decodes to exactly one `Quality`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    Good,
    NoConnection,
    Timeout,
    DecodeError,
    Stale,
    Exception(u8),
}

impl Quality {
    pub const GOOD: u8 = 0x00;
    pub const NO_CONNECTION: u8 = 0x01;
    pub const TIMEOUT: u8 = 0x02;
    pub const DECODE_ERROR: u8 = 0x03;
    pub const STALE: u8 = 0x04;
    pub const EXCEPTION_BIT: u8 = 0x80;

    pub const fn to_byte(self) -> u8 {
        match self {
            Quality::Good => Self::GOOD,
            Quality::NoConnection => Self::NO_CONNECTION,
            Quality::Timeout => Self::TIMEOUT,
            Quality::DecodeError => Self::DECODE_ERROR,
            Quality::Stale => Self::STALE,
            Quality::Exception(code) => {
                let code = if code > 0x7F { 0x7F } else { code };
                Self::EXCEPTION_BIT | code
            }
        }
    }

    /// Decodes a quality byte; `None` for the reserved values 0x05..=0x7F.
    pub const fn from_byte(byte: u8) -> Option<Quality> {
        match byte {
            Self::GOOD => Some(Quality::Good),
            Self::NO_CONNECTION => Some(Quality::NoConnection),
            Self::TIMEOUT => Some(Quality::Timeout),
            Self::DECODE_ERROR => Some(Quality::DecodeError),
            Self::STALE => Some(Quality::Stale),
            b if b & Self::EXCEPTION_BIT != 0 => Some(Quality::Exception(b & 0x7F)),
            _ => None,
        }
    }

    pub const fn is_good(self) -> bool {
        matches!(self, Quality::Good)
    }
}

/// How the 64 value bits of a sample are to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ValueKind {
    /// IEEE 754 binary64 bits (float32 tags are widened; scaled tags land here).
    F64 = 0,
    /// Two's complement signed integer.
    I64 = 1,
    /// Unsigned integer.
    U64 = 2,
    /// 0 or 1.
    Bool = 3,
    /// Up to 8 bytes of text, first byte in the least significant position,
    /// NUL-padded.
    Str8 = 4,
}

impl ValueKind {
    pub const fn from_byte(byte: u8) -> Option<ValueKind> {
        match byte {
            0 => Some(ValueKind::F64),
            1 => Some(ValueKind::I64),
            2 => Some(ValueKind::U64),
            3 => Some(ValueKind::Bool),
            4 => Some(ValueKind::Str8),
            _ => None,
        }
    }
}

/// One polled value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct Sample {
    /// UNIX time in nanoseconds when the response carrying this value arrived.
    pub ts_ns: i64,
    /// The value's bits, read according to `kind`.
    pub value: u64,
    /// Index into the tag table.
    pub tag: u32,
    /// A `Quality` byte.
    pub quality: u8,
    /// A `ValueKind` byte.
    pub kind: u8,
    /// Always zero; keeps the layout free of implicit padding.
    pub reserved: [u8; 2],
}

/// Tag id, quality and kind of a run of samples whose tag ids count up from
/// `first` (a PLC's block of same-typed values), packed as the last eight
/// bytes of a `Sample` read as one little-endian word: tag in bits 0-31,
/// quality in 32-39, kind in 40-47, reserved (zero) in 48-63.
///
/// Why: a decoder that writes `tag`, `quality`, `kind` and `reserved` one by
/// one gets four stores per sample, because LLVM only merges adjacent field
/// stores into one 64-bit store when they are all pieces of one word it
/// cannot see through (a constant quality next to a variable tag stays two
/// stores). `Sample::set_run_member` writes the record as three 8-byte
/// stores from this word, which is what a store-bound decode loop wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunTail(u64);

impl RunTail {
    pub const fn new(first: TagId, quality: Quality, kind: ValueKind) -> Self {
        RunTail(first.0 as u64 | (quality.to_byte() as u64) << 32 | (kind as u8 as u64) << 40)
    }

    /// The tag id of member `index` (`first + index`, wrapping).
    pub const fn tag(self, index: u32) -> TagId {
        TagId((self.0 as u32).wrapping_add(index))
    }
}

pub const SAMPLE_SIZE: usize = 24;
const _: () = assert!(std::mem::size_of::<Sample>() == SAMPLE_SIZE);
const _: () = assert!(std::mem::size_of::<Sample>() <= 32);
const _: () = assert!(std::mem::align_of::<Sample>() == 8);

impl Sample {
    pub const fn new(
        ts_ns: i64,
        tag: TagId,
        quality: Quality,
        kind: ValueKind,
        value: u64,
    ) -> Self {
        Sample {
            ts_ns,
            value,
            tag: tag.0,
            quality: quality.to_byte(),
            kind: kind as u8,
            reserved: [0; 2],
        }
    }

    pub fn f64(ts_ns: i64, tag: TagId, v: f64) -> Self {
        Self::new(ts_ns, tag, Quality::Good, ValueKind::F64, v.to_bits())
    }

    /// A sample with bad quality and no value (value bits zero).
    pub const fn bad(ts_ns: i64, tag: TagId, quality: Quality) -> Self {
        Self::new(ts_ns, tag, quality, ValueKind::F64, 0)
    }

    pub const fn tag_id(&self) -> TagId {
        TagId(self.tag)
    }

    pub const fn quality(&self) -> Option<Quality> {
        Quality::from_byte(self.quality)
    }

    pub const fn kind(&self) -> Option<ValueKind> {
        ValueKind::from_byte(self.kind)
    }

    /// The value as a float, the form kdb+'s `value` column carries. Bad
    /// samples and unknown kinds give NaN (kdb+'s float null `0n`).
    pub fn value_f64(&self) -> f64 {
        if self.quality != Quality::GOOD {
            return f64::NAN;
        }
        match self.kind() {
            Some(ValueKind::F64) => f64::from_bits(self.value),
            Some(ValueKind::I64) => self.value as i64 as f64,
            Some(ValueKind::U64) => self.value as f64,
            Some(ValueKind::Bool) => (self.value != 0) as u8 as f64,
            Some(ValueKind::Str8) | None => f64::NAN,
        }
    }

    /// Overwrites the whole record with member `index` of `run`: stamped
    /// `ts_ns`, value bits `value`, tag id `first + index`, the run's quality
    /// and kind, reserved bytes zero. Compiles to three 8-byte stores.
    ///
    /// The caller keeps `first + index` within `u32` (tag ids index a table in
    /// memory; a decode program checks its runs when it is compiled). Past it
    /// the carry would land in the quality byte, never in `reserved`: the word
    /// is below 2^45 and `index` below 2^32, so the sum stays below 2^48.
    #[inline(always)]
    pub fn set_run_member(&mut self, ts_ns: i64, value: u64, run: RunTail, index: u32) {
        let tail = run.0 + u64::from(index);
        debug_assert!(run.0 as u32 as u64 + u64::from(index) <= u64::from(u32::MAX));
        self.ts_ns = ts_ns;
        self.value = value;
        // Four stores of one word's pieces, which LLVM merges into one.
        self.tag = tail as u32;
        self.quality = (tail >> 32) as u8;
        self.kind = (tail >> 40) as u8;
        self.reserved = [(tail >> 48) as u8, (tail >> 56) as u8];
    }

    /// The record's bytes as they sit in a ring slot or a WAL frame.
    pub fn to_bytes(&self) -> [u8; SAMPLE_SIZE] {
        let mut out = [0u8; SAMPLE_SIZE];
        out[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[8..16].copy_from_slice(&self.value.to_le_bytes());
        out[16..20].copy_from_slice(&self.tag.to_le_bytes());
        out[20] = self.quality;
        out[21] = self.kind;
        out
    }

    pub fn from_bytes(bytes: &[u8; SAMPLE_SIZE]) -> Self {
        let (ts, rest) = bytes.split_at(8);
        let (value, rest) = rest.split_at(8);
        let (tag, rest) = rest.split_at(4);
        Sample {
            ts_ns: i64::from_le_bytes(ts.try_into().unwrap_or_default()),
            value: u64::from_le_bytes(value.try_into().unwrap_or_default()),
            tag: u32::from_le_bytes(tag.try_into().unwrap_or_default()),
            quality: rest[0],
            kind: rest[1],
            reserved: [0; 2],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_bytes_round_trip() {
        for byte in 0..=255u8 {
            if let Some(q) = Quality::from_byte(byte) {
                assert_eq!(q.to_byte(), byte, "{q:?}");
            } else {
                assert!((0x05..0x80).contains(&byte));
            }
        }
        assert_eq!(Quality::Exception(2).to_byte(), 0x82);
        assert_eq!(Quality::Exception(0xFF).to_byte(), 0xFF);
    }

    #[test]
    fn sample_bytes_round_trip() {
        let s = Sample::new(
            -5,
            TagId(7),
            Quality::Exception(3),
            ValueKind::I64,
            u64::MAX - 1,
        );
        assert_eq!(Sample::from_bytes(&s.to_bytes()), s);
    }

    #[test]
    fn run_member_is_the_sample_new_builds() {
        let run = RunTail::new(TagId(40), Quality::Exception(0x7F), ValueKind::Str8);
        for index in [0u32, 1, 7, 65_535] {
            let mut s = Sample::default();
            s.set_run_member(-9, u64::MAX, run, index);
            let tag = TagId(40 + index);
            assert_eq!(run.tag(index), tag);
            let expected = Sample::new(-9, tag, Quality::Exception(0x7F), ValueKind::Str8, !0);
            assert_eq!(s, expected);
            assert_eq!(s.reserved, [0, 0]);
        }
    }

    #[test]
    fn value_f64_by_kind() {
        assert_eq!(Sample::f64(0, TagId(0), 1.5).value_f64(), 1.5);
        let i = Sample::new(0, TagId(0), Quality::Good, ValueKind::I64, (-3i64) as u64);
        assert_eq!(i.value_f64(), -3.0);
        assert!(Sample::bad(0, TagId(0), Quality::Timeout)
            .value_f64()
            .is_nan());
    }
}
