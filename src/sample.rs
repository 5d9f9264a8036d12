//! The one record that flows everywhere: reader ring slots, WAL frames and the
//! kdb+ publisher all see the same 24 bytes.
//!
//! ```text
//!  0       8       16          20        24
//!  | ts_ns | value | tag_kind  | quality |
//!  | i64   | u64   | u32       | u32     |
//!                    bits 0-23: tag id, bits 24-31: ValueKind
//! ```
//!
//! A `Sample` is plain old data with a fixed layout (`repr(C)`, no padding),
//! so copying one is a 24-byte move and a `[Sample]` can be viewed in place
//! inside a memory-mapped WAL segment. The tag id and the kind share one word
//! so that a status code of any protocol fits whole in `quality` (OPC UA's
//! StatusCode is 32 bits) without growing the record: 2^24 tags per
//! configuration is far more than one gateway polls.
//!
//! Text longer than 8 bytes (S7 STRING[254], a Logix STRING, an OPC UA
//! String) is a *text head* followed by *text extension* records of the same
//! tag, each carrying 20 bytes of the text (see [`write_text`]). The number
//! of extension records is fixed per tag (by its declared maximum length),
//! so a poll cycle's record count never depends on what the PLC answered.
//!
//! The per-sample `seq` (the kdb+ de-duplication key) is not stored here: the
//! WAL numbers records, and record `i` of a frame has `frame.first_seq + i`.
//! A text sample's seq is its head's; its extension records' numbers are
//! never delivered as rows.

/// Index into the run's tag table (all devices, in configuration order).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct TagId(pub u32);

impl TagId {
    /// The largest tag id a record can carry (24 bits).
    pub const MAX: u32 = (1 << 24) - 1;
}

/// The quality of a sample: a 32-bit status code that keeps every protocol's
/// own code whole. It follows OPC UA's StatusCode layout, so OPC UA codes
/// are carried verbatim and the severity is always in the top two bits:
///
/// | bits 31-30 | severity: `00` good, `01` uncertain, `10` bad           |
/// |------------|--------------------------------------------------------|
/// | bit 29     | 1: a code of another protocol (reserved, always 0 in OPC UA) |
/// | bits 27-24 | that protocol (`Source`)                               |
/// | bits 23-0  | that protocol's code, whole                            |
///
/// | value | meaning |
/// |---|---|
/// | `0x0000_0000` | good |
/// | `0x8031_0000` | bad: no connection to the device (OPC UA Bad_NoCommunication) |
/// | `0x800A_0000` | bad: the request timed out (Bad_Timeout) |
/// | `0x8007_0000` | bad: the answer could not be decoded (Bad_DecodingError) |
/// | `0x8074_0000` | bad: the device sent a value of another type (Bad_TypeMismatch) |
/// | `0x8037_0000` | bad: an array tag's element the value did not have (Bad_IndexRangeNoData) |
/// | `0x4090_0000` | uncertain: last usable value (Uncertain_LastUsableValue) |
/// | `0xA100_00cc` | bad: Modbus exception code `cc` |
/// | `0xA200_00rr` | bad: S7 item return code `rr` (0x05 address out of range, 0x0A object does not exist, ...) |
/// | `0xA201_ccdd` | bad: S7 header error class `cc`, code `dd` (0x8104: PUT/GET access off) |
/// | `0xA3gg_eeee` | bad: CIP general status `gg`, extended status `eeee` |
/// | any other     | an OPC UA StatusCode as the server sent it |
///
/// As a kdb+ `int` (signed) every bad code is negative: `quality<0` selects
/// the bad rows, `quality=0` the plainly good ones.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct Quality(pub u32);

/// The three severities of a `Quality`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Good,
    Uncertain,
    Bad,
}

/// Where a device-reported code came from (bits 27-24 of a foreign code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    Modbus = 1,
    S7 = 2,
    Cip = 3,
}

impl Quality {
    pub const GOOD: Quality = Quality(0);
    pub const NO_CONNECTION: Quality = Quality(0x8031_0000);
    pub const TIMEOUT: Quality = Quality(0x800A_0000);
    pub const DECODE_ERROR: Quality = Quality(0x8007_0000);
    pub const TYPE_MISMATCH: Quality = Quality(0x8074_0000);
    pub const STALE: Quality = Quality(0x4090_0000);
    /// An element of an array tag the value did not have (OPC UA
    /// Bad_IndexRangeNoData).
    pub const NO_SUCH_ELEMENT: Quality = Quality(0x8037_0000);

    const SEVERITY_MASK: u32 = 0xC000_0000;
    const BAD_BITS: u32 = 0x8000_0000;
    const UNCERTAIN_BITS: u32 = 0x4000_0000;
    const FOREIGN_BIT: u32 = 0x2000_0000;
    const SOURCE_SHIFT: u32 = 24;
    const CODE_MASK: u32 = 0x00FF_FFFF;
    const S7_HEADER_BIT: u32 = 0x0001_0000;

    const fn foreign(source: Source, code: u32) -> Quality {
        Quality(
            Self::BAD_BITS
                | Self::FOREIGN_BIT
                | (source as u32) << Self::SOURCE_SHIFT
                | (code & Self::CODE_MASK),
        )
    }

    /// A Modbus exception response (function code | 0x80, then `code`).
    pub const fn modbus_exception(code: u8) -> Quality {
        Self::foreign(Source::Modbus, code as u32)
    }

    /// An S7 Read Var item's return code other than 0xFF (success).
    pub const fn s7_item(return_code: u8) -> Quality {
        Self::foreign(Source::S7, return_code as u32)
    }

    /// An S7 header error (class, code), e.g. 0x81 0x04 when PUT/GET is off.
    pub const fn s7_header(class: u8, code: u8) -> Quality {
        let code = Self::S7_HEADER_BIT | (class as u32) << 8 | code as u32;
        Self::foreign(Source::S7, code)
    }

    /// A CIP general status other than 0 with its extended status (0 when
    /// the reply carried none).
    pub const fn cip(general: u8, extended: u16) -> Quality {
        Self::foreign(Source::Cip, (general as u32) << 16 | extended as u32)
    }

    /// An OPC UA StatusCode, verbatim.
    pub const fn opcua(status_code: u32) -> Quality {
        Quality(status_code)
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn severity(self) -> Severity {
        match self.0 & Self::SEVERITY_MASK {
            0 => Severity::Good,
            Self::UNCERTAIN_BITS => Severity::Uncertain,
            _ => Severity::Bad,
        }
    }

    pub const fn is_good(self) -> bool {
        matches!(self.severity(), Severity::Good)
    }

    pub const fn is_bad(self) -> bool {
        matches!(self.severity(), Severity::Bad)
    }

    /// The protocol and code of a device-reported code of another protocol
    /// than OPC UA; `None` for millrace's own codes and OPC UA's.
    pub const fn foreign_code(self) -> Option<(Source, u32)> {
        if self.0 & Self::FOREIGN_BIT == 0 {
            return None;
        }
        let code = self.0 & Self::CODE_MASK;
        match (self.0 >> Self::SOURCE_SHIFT) & 0xF {
            1 => Some((Source::Modbus, code)),
            2 => Some((Source::S7, code)),
            3 => Some((Source::Cip, code)),
            _ => None,
        }
    }

    /// Whether the device itself reported this (rather than millrace seeing
    /// no connection, a timeout or an undecodable answer).
    pub const fn is_device_reported(self) -> bool {
        if self.foreign_code().is_some() {
            return true;
        }
        !matches!(
            self,
            Quality::GOOD
                | Quality::NO_CONNECTION
                | Quality::TIMEOUT
                | Quality::DECODE_ERROR
                | Quality::STALE
        )
    }
}

impl std::fmt::Display for Quality {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Quality::GOOD => return f.write_str("good"),
            Quality::NO_CONNECTION => return f.write_str("bad: no connection"),
            Quality::TIMEOUT => return f.write_str("bad: timeout"),
            Quality::DECODE_ERROR => return f.write_str("bad: undecodable answer"),
            Quality::TYPE_MISMATCH => return f.write_str("bad: value of another type"),
            Quality::STALE => return f.write_str("uncertain: last usable value"),
            _ => {}
        }
        match self.foreign_code() {
            Some((Source::Modbus, code)) => write!(f, "bad: Modbus exception {code:#04x}"),
            Some((Source::S7, code)) if code & Self::S7_HEADER_BIT != 0 => {
                write!(f, "bad: S7 error class/code {:#06x}", code & 0xFFFF)
            }
            Some((Source::S7, code)) => write!(f, "bad: S7 item return code {code:#04x}"),
            Some((Source::Cip, code)) => write!(
                f,
                "bad: CIP general status {:#04x}, extended {:#06x}",
                code >> 16,
                code & 0xFFFF
            ),
            None => {
                let severity = match self.severity() {
                    Severity::Good => "good",
                    Severity::Uncertain => "uncertain",
                    Severity::Bad => "bad",
                };
                write!(f, "{severity}: OPC UA status {:#010x}", self.0)
            }
        }
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
    /// The head of a longer text: `value` is the text's byte length (low 32
    /// bits) and the number of `TextExt` records that follow (high 32 bits).
    Text = 5,
    /// 20 bytes of the text of the `Text` head before it: `ts_ns`, `value`
    /// and `quality` read as little-endian bytes, in that order.
    TextExt = 6,
}

impl ValueKind {
    pub const fn from_byte(byte: u8) -> Option<ValueKind> {
        match byte {
            0 => Some(ValueKind::F64),
            1 => Some(ValueKind::I64),
            2 => Some(ValueKind::U64),
            3 => Some(ValueKind::Bool),
            4 => Some(ValueKind::Str8),
            5 => Some(ValueKind::Text),
            6 => Some(ValueKind::TextExt),
            _ => None,
        }
    }

    /// Whether records of this kind carry text (a kdb+ `text` cell).
    pub const fn is_text(self) -> bool {
        matches!(self, ValueKind::Str8 | ValueKind::Text)
    }
}

/// One polled value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C, align(8))]
pub struct Sample {
    /// UNIX time in nanoseconds of the value: when the response carrying it
    /// arrived, or the source time stamp the device gave with it.
    pub ts_ns: i64,
    /// The value's bits, read according to the kind.
    pub value: u64,
    /// Tag id in bits 0-23, `ValueKind` byte in bits 24-31.
    pub tag_kind: u32,
    /// `Quality` bits.
    pub quality: u32,
}

/// Tag id, kind and quality of a run of samples whose tag ids count up from
/// `first` (a PLC's block of same-typed values), packed as the last eight
/// bytes of a `Sample` read as one little-endian word: tag in bits 0-23,
/// kind in 24-31, quality in 32-63.
///
/// Why: a decoder that writes the fields one by one gets more stores per
/// sample than the three 8-byte stores `Sample::set_run_member` compiles to,
/// which is what a store-bound decode loop wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunTail(u64);

impl RunTail {
    pub const fn new(first: TagId, quality: Quality, kind: ValueKind) -> Self {
        RunTail(pack_tag_kind(first, kind) as u64 | (quality.0 as u64) << 32)
    }

    /// The tag id of member `index` (`first + index`, within 24 bits).
    pub const fn tag(self, index: u32) -> TagId {
        TagId((self.0 as u32).wrapping_add(index) & TagId::MAX)
    }

    /// The run from its member `index` on (`first + index` stays within 24
    /// bits: the caller's run does).
    pub const fn advanced(self, index: u32) -> RunTail {
        RunTail(self.0 + index as u64)
    }

    /// The packed word: tag and kind in the low half, quality in the high.
    pub const fn word(self) -> u64 {
        self.0
    }
}

const fn pack_tag_kind(tag: TagId, kind: ValueKind) -> u32 {
    (tag.0 & TagId::MAX) | (kind as u32) << 24
}

pub const SAMPLE_SIZE: usize = 24;
const _: () = assert!(std::mem::size_of::<Sample>() == SAMPLE_SIZE);
const _: () = assert!(std::mem::align_of::<Sample>() == 8);

/// Text bytes one `TextExt` record carries.
pub const TEXT_EXT_BYTES: usize = 20;
/// Longest text a tag may declare: the kdb+ cell and the records stay
/// modest, and it covers S7 STRING[254], WSTRING as UTF-8 of 254 characters
/// with room, a Logix STRING (82) and ordinary OPC UA strings.
pub const TEXT_BYTES_MAX: usize = 1024;

/// Records a text tag of at most `capacity_bytes` bytes occupies: 1 for up
/// to 8 bytes (`Str8`), else a head plus enough extension records.
pub const fn text_records(capacity_bytes: usize) -> usize {
    if capacity_bytes <= 8 {
        1
    } else {
        1 + capacity_bytes.div_ceil(TEXT_EXT_BYTES)
    }
}

/// Writes `text` (at most `capacity_bytes`, longer input is cut) for `tag`
/// into exactly `text_records(capacity_bytes)` records at the front of
/// `out`, and returns that count; 0 if `out` is shorter (nothing written).
/// Unused extension bytes are zero.
pub fn write_text(
    out: &mut [Sample],
    ts_ns: i64,
    tag: TagId,
    quality: Quality,
    text: &[u8],
    capacity_bytes: usize,
) -> usize {
    let records = text_records(capacity_bytes);
    let Some(out) = out.get_mut(..records) else {
        return 0;
    };
    let text = text.get(..capacity_bytes).unwrap_or(text);
    let Some((head, exts)) = out.split_first_mut() else {
        return 0;
    };
    if capacity_bytes <= 8 {
        let mut bytes = [0u8; 8];
        for (b, t) in bytes.iter_mut().zip(text) {
            *b = *t;
        }
        *head = Sample::new(
            ts_ns,
            tag,
            quality,
            ValueKind::Str8,
            u64::from_le_bytes(bytes),
        );
        return 1;
    }
    let value = text.len() as u64 | (exts.len() as u64) << 32;
    *head = Sample::new(ts_ns, tag, quality, ValueKind::Text, value);
    let mut chunks = text.chunks(TEXT_EXT_BYTES);
    for ext in exts.iter_mut() {
        let mut bytes = [0u8; TEXT_EXT_BYTES];
        if let Some(chunk) = chunks.next() {
            copy_text_chunk(&mut bytes, chunk);
        }
        *ext = Sample::text_ext(tag, &bytes);
    }
    records
}

/// Copies the first `min(dst.len(), src.len())` bytes of `src` to `dst`: an
/// extension record's whole 20 bytes as one fixed-size move (no `memcpy`
/// call), a text's last, shorter piece as a plain copy.
#[inline(always)]
fn copy_text_chunk(dst: &mut [u8], src: &[u8]) {
    let n = dst.len().min(src.len());
    if let (Ok(d), Ok(s)) = (
        <&mut [u8; TEXT_EXT_BYTES]>::try_from(&mut *dst),
        <&[u8; TEXT_EXT_BYTES]>::try_from(src),
    ) {
        *d = *s;
    } else if let (Some(d), Some(s)) = (dst.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
    }
}

/// A text sample read back from its records: the head and the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextRecords<'a> {
    pub head: &'a Sample,
    /// The `TextExt` records after the head (empty for `Str8`).
    pub exts: &'a [Sample],
}

impl TextRecords<'_> {
    /// The text's byte length.
    pub fn len(&self) -> usize {
        match self.head.kind() {
            Some(ValueKind::Str8) => {
                let bytes = self.head.value.to_le_bytes();
                bytes.iter().position(|&b| b == 0).unwrap_or(8)
            }
            _ => (self.head.value as u32 as usize).min(self.exts.len() * TEXT_EXT_BYTES),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the text's bytes to `out` (which must hold `len()` bytes; a
    /// shorter one gets what fits), 20 bytes an extension record at a time.
    pub fn copy_to(&self, out: &mut [u8]) {
        let len = self.len().min(out.len());
        let out = out.get_mut(..len).unwrap_or_default();
        if self.exts.is_empty() {
            let bytes = self.head.value.to_le_bytes();
            if let Some(bytes) = bytes.get(..len) {
                out.copy_from_slice(bytes);
            }
            return;
        }
        for (o, ext) in out.chunks_mut(TEXT_EXT_BYTES).zip(self.exts) {
            copy_text_chunk(o, &ext.text_ext_bytes());
        }
    }
}

/// Why records that claim to be a text sample are not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextError {
    /// The head says more extension records than follow.
    Truncated { wanted: u32, found: usize },
    /// An extension record of another tag, or not an extension at all.
    ExtensionMismatch { index: usize },
    /// An extension record without a head.
    Orphan,
    /// The head's length exceeds what its extension records hold.
    Length { bytes: u32, room: usize },
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextError::Truncated { wanted, found } => write!(
                f,
                "a text head announces {wanted} extension records but {found} follow"
            ),
            TextError::ExtensionMismatch { index } => write!(
                f,
                "record {index} after a text head is not an extension record of the same tag"
            ),
            TextError::Orphan => f.write_str("a text extension record without a head"),
            TextError::Length { bytes, room } => write!(
                f,
                "a text head says {bytes} bytes but its extension records hold {room}"
            ),
        }
    }
}

/// How many records sample `records[0]` occupies (1, or a text head and its
/// extensions), checking the extensions are there and belong to it.
pub fn record_span(records: &[Sample]) -> Result<usize, TextError> {
    let Some(head) = records.first() else {
        return Ok(0);
    };
    match head.kind() {
        Some(ValueKind::TextExt) => Err(TextError::Orphan),
        Some(ValueKind::Text) => {
            let wanted = (head.value >> 32) as u32;
            let bytes = head.value as u32;
            let exts = records.get(1..).unwrap_or_default();
            let Some(exts) = exts.get(..wanted as usize) else {
                return Err(TextError::Truncated {
                    wanted,
                    found: exts.len(),
                });
            };
            for (i, ext) in exts.iter().enumerate() {
                if ext.kind() != Some(ValueKind::TextExt) || ext.tag_id() != head.tag_id() {
                    return Err(TextError::ExtensionMismatch { index: i + 1 });
                }
            }
            let room = exts.len() * TEXT_EXT_BYTES;
            if bytes as usize > room {
                return Err(TextError::Length { bytes, room });
            }
            Ok(1 + exts.len())
        }
        _ => Ok(1),
    }
}

/// The text of the sample at the front of `records` (a `Str8` or a `Text`
/// head with its extensions); `None` if it is not text or the records do
/// not hold together.
pub fn text_at(records: &[Sample]) -> Option<TextRecords<'_>> {
    let head = records.first()?;
    if !head.kind()?.is_text() {
        return None;
    }
    let span = record_span(records).ok()?;
    Some(TextRecords {
        head,
        exts: records.get(1..span)?,
    })
}

/// Extension records one text head may announce: what `TEXT_BYTES_MAX`
/// needs. A head announcing more is broken.
pub const TEXT_EXT_RECORDS_MAX: usize = text_records(TEXT_BYTES_MAX) - 1;

/// The length of the longest prefix of `records` that does not end inside
/// a text sample or a packed run (`packed.rs`): a WAL frame or a batch cut
/// there never splits a head from the records after it that it counts
/// (bits 32-63 of its `value`, for both kinds of head). Steps from head to
/// head: one step a record that is not a head, one a head and its
/// records. Records that are broken already (an orphan extension, a head
/// announcing more than `TEXT_EXT_RECORDS_MAX`) are not held back: cutting
/// cannot mend them, and `record_span` names them where they are read.
///
/// 0 means `records[0]` is a head whose records are not all there.
pub fn whole_samples_len(records: &[Sample]) -> usize {
    let mut at = 0;
    while let Some(head) = records.get(at) {
        let kind = head.kind_byte();
        let counted = if kind == ValueKind::Text as u8 || kind == crate::packed::PACKED_HEAD {
            (head.value >> 32) as usize
        } else {
            0
        };
        let end = at
            + 1
            + if counted > TEXT_EXT_RECORDS_MAX {
                0
            } else {
                counted
            };
        if end > records.len() {
            return at;
        }
        at = end;
    }
    records.len()
}

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
            tag_kind: pack_tag_kind(tag, kind),
            quality: quality.0,
        }
    }

    pub fn f64(ts_ns: i64, tag: TagId, v: f64) -> Self {
        Self::new(ts_ns, tag, Quality::GOOD, ValueKind::F64, v.to_bits())
    }

    /// A sample with bad quality and no value (value bits zero).
    pub const fn bad(ts_ns: i64, tag: TagId, quality: Quality) -> Self {
        Self::new(ts_ns, tag, quality, ValueKind::F64, 0)
    }

    /// An extension record carrying 20 bytes of `tag`'s text.
    pub fn text_ext(tag: TagId, bytes: &[u8; TEXT_EXT_BYTES]) -> Self {
        // Fixed ranges of a fixed-size array: the conversions cannot fail
        // and compile to plain loads.
        let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
        let quality = u32::from_le_bytes(bytes[16..20].try_into().unwrap_or_default());
        Sample {
            ts_ns: word(0) as i64,
            value: word(8),
            tag_kind: pack_tag_kind(tag, ValueKind::TextExt),
            quality,
        }
    }

    /// The 20 text bytes of an extension record.
    pub fn text_ext_bytes(&self) -> [u8; TEXT_EXT_BYTES] {
        let mut out = [0u8; TEXT_EXT_BYTES];
        out[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[8..16].copy_from_slice(&self.value.to_le_bytes());
        out[16..20].copy_from_slice(&self.quality.to_le_bytes());
        out
    }

    pub const fn tag_id(&self) -> TagId {
        TagId(self.tag_kind & TagId::MAX)
    }

    pub const fn kind_byte(&self) -> u8 {
        (self.tag_kind >> 24) as u8
    }

    pub const fn kind(&self) -> Option<ValueKind> {
        ValueKind::from_byte(self.kind_byte())
    }

    pub const fn quality(&self) -> Quality {
        Quality(self.quality)
    }

    /// Whether this record is a row of its own (not a text extension).
    pub const fn is_row(&self) -> bool {
        self.kind_byte() != ValueKind::TextExt as u8
    }

    /// The value as a float, the form kdb+'s `value` column carries. Bad
    /// samples, text and unknown kinds give NaN (kdb+'s float null `0n`);
    /// uncertain samples keep their value.
    pub fn value_f64(&self) -> f64 {
        if self.quality().is_bad() {
            return f64::NAN;
        }
        match self.kind() {
            Some(ValueKind::F64) => f64::from_bits(self.value),
            Some(ValueKind::I64) => self.value as i64 as f64,
            Some(ValueKind::U64) => self.value as f64,
            Some(ValueKind::Bool) => (self.value != 0) as u8 as f64,
            Some(ValueKind::Str8 | ValueKind::Text | ValueKind::TextExt) | None => f64::NAN,
        }
    }

    /// Overwrites the whole record with member `index` of `run`: stamped
    /// `ts_ns`, value bits `value`, tag id `first + index`, the run's quality
    /// and kind. Compiles to three 8-byte stores.
    ///
    /// The caller keeps `first + index` within `TagId::MAX` (tag ids index a
    /// table in memory that validation caps; a decode program checks its
    /// runs when it is compiled).
    #[inline(always)]
    pub fn set_run_member(&mut self, ts_ns: i64, value: u64, run: RunTail, index: u32) {
        let tail = run.0 + u64::from(index);
        debug_assert!((run.0 as u32 & TagId::MAX) + index <= TagId::MAX);
        self.ts_ns = ts_ns;
        self.value = value;
        self.tag_kind = tail as u32;
        self.quality = (tail >> 32) as u32;
    }

    /// The record's bytes as they sit in a ring slot or a WAL frame.
    pub fn to_bytes(&self) -> [u8; SAMPLE_SIZE] {
        let mut out = [0u8; SAMPLE_SIZE];
        out[0..8].copy_from_slice(&self.ts_ns.to_le_bytes());
        out[8..16].copy_from_slice(&self.value.to_le_bytes());
        out[16..20].copy_from_slice(&self.tag_kind.to_le_bytes());
        out[20..24].copy_from_slice(&self.quality.to_le_bytes());
        out
    }

    pub fn from_bytes(bytes: &[u8; SAMPLE_SIZE]) -> Self {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            for (o, b) in w.iter_mut().zip(bytes.iter().skip(at)) {
                *o = *b;
            }
            u64::from_le_bytes(w)
        };
        let tail = word(16);
        Sample {
            ts_ns: word(0) as i64,
            value: word(8),
            tag_kind: tail as u32,
            quality: (tail >> 32) as u32,
        }
    }
}

/// Writes one run of same-typed values into `slot`: each `N`-byte chunk of
/// `values` through `value_of` into the next sample of the run (`tail`,
/// `Sample::set_run_member`). Returns the samples written: the fewer of the
/// slot and the whole chunks. The decoders' decode programs (Modbus, S7)
/// share it; no bounds check and no branch per sample.
#[inline(always)]
pub fn fill_run<const N: usize>(
    values: &[u8],
    tail: RunTail,
    ts_ns: i64,
    slot: &mut [Sample],
    value_of: impl Fn([u8; N]) -> u64,
) -> usize {
    // chunks_exact(N) yields N-byte slices, so the conversion never fails
    // (and compiles to nothing); `as_chunks` would need Rust 1.88 (MSRV 1.85).
    let chunks = values
        .chunks_exact(N)
        .map(|c| <[u8; N]>::try_from(c).unwrap_or([0; N]));
    let written = slot.len().min(values.len() / N);
    // The zip ends the loop.
    for ((sample, chunk), index) in slot.iter_mut().zip(chunks).zip(0u32..) {
        sample.set_run_member(ts_ns, value_of(chunk), tail, index);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_codes_keep_every_protocol_code_whole() {
        assert_eq!(Quality::modbus_exception(2).bits(), 0xA100_0002);
        assert_eq!(Quality::s7_item(0x0A).bits(), 0xA200_000A);
        assert_eq!(Quality::s7_header(0x81, 0x04).bits(), 0xA201_8104);
        assert_eq!(Quality::cip(0x05, 0x1234).bits(), 0xA305_1234);
        assert_eq!(Quality::opcua(0x4092_0400).bits(), 0x4092_0400);
        for q in [
            Quality::modbus_exception(0xFF),
            Quality::s7_item(5),
            Quality::s7_header(0x85, 0),
            Quality::cip(0xFF, 0xFFFF),
        ] {
            assert!(q.is_bad() && q.is_device_reported(), "{q}");
            assert!((q.bits() as i32) < 0, "bad is negative as a kdb+ int");
        }
        assert_eq!(
            Quality::cip(0x1E, 7).foreign_code(),
            Some((Source::Cip, 0x1E_0007))
        );
        assert_eq!(Quality::opcua(0x8034_0000).foreign_code(), None);
        assert!(Quality::opcua(0x8034_0000).is_device_reported());
        assert!(!Quality::TIMEOUT.is_device_reported());
        assert_eq!(Quality::STALE.severity(), Severity::Uncertain);
        assert_eq!(Quality::opcua(0x0000_0400).severity(), Severity::Good);
    }

    #[test]
    fn quality_prints_words() {
        assert_eq!(Quality::NO_CONNECTION.to_string(), "bad: no connection");
        assert_eq!(
            Quality::s7_header(0x81, 0x04).to_string(),
            "bad: S7 error class/code 0x8104"
        );
        assert_eq!(
            Quality::cip(5, 0).to_string(),
            "bad: CIP general status 0x05, extended 0x0000"
        );
        assert_eq!(
            Quality::opcua(0x4090_0001).to_string(),
            "uncertain: OPC UA status 0x40900001"
        );
    }

    #[test]
    fn sample_bytes_round_trip() {
        let s = Sample::new(
            -5,
            TagId(TagId::MAX),
            Quality::modbus_exception(3),
            ValueKind::I64,
            u64::MAX - 1,
        );
        assert_eq!(Sample::from_bytes(&s.to_bytes()), s);
        assert_eq!(s.tag_id(), TagId(TagId::MAX));
        assert_eq!(s.kind(), Some(ValueKind::I64));
        assert_eq!(s.quality(), Quality::modbus_exception(3));
    }

    #[test]
    fn run_member_is_the_sample_new_builds() {
        let run = RunTail::new(TagId(40), Quality::opcua(0xC0DE_0001), ValueKind::Str8);
        for index in [0u32, 1, 7, 65_535] {
            let mut s = Sample::default();
            s.set_run_member(-9, u64::MAX, run, index);
            let tag = TagId(40 + index);
            assert_eq!(run.tag(index), tag);
            let expected = Sample::new(-9, tag, Quality::opcua(0xC0DE_0001), ValueKind::Str8, !0);
            assert_eq!(s, expected);
        }
    }

    #[test]
    fn value_f64_by_kind_and_severity() {
        assert_eq!(Sample::f64(0, TagId(0), 1.5).value_f64(), 1.5);
        let i = Sample::new(0, TagId(0), Quality::GOOD, ValueKind::I64, (-3i64) as u64);
        assert_eq!(i.value_f64(), -3.0);
        assert!(Sample::bad(0, TagId(0), Quality::TIMEOUT)
            .value_f64()
            .is_nan());
        let uncertain = Sample::new(0, TagId(0), Quality::STALE, ValueKind::F64, 2f64.to_bits());
        assert_eq!(uncertain.value_f64(), 2.0);
    }

    fn text_round_trip(text: &[u8], capacity: usize) -> Vec<u8> {
        let mut out = vec![Sample::default(); text_records(capacity) + 2];
        let n = write_text(&mut out, 7, TagId(9), Quality::GOOD, text, capacity);
        assert_eq!(n, text_records(capacity));
        assert_eq!(record_span(&out), Ok(n));
        let t = text_at(&out).unwrap();
        let mut bytes = vec![0u8; t.len()];
        t.copy_to(&mut bytes);
        bytes
    }

    #[test]
    fn text_of_every_length_round_trips() {
        for capacity in [1, 8, 9, 20, 21, 82, 254, TEXT_BYTES_MAX] {
            for len in [0, 1, 7, 8, 9, 19, 20, 21, 40, 81, 82, 254, TEXT_BYTES_MAX] {
                let text: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
                let back = text_round_trip(&text, capacity);
                assert_eq!(back, &text[..len.min(capacity)], "cap {capacity} len {len}");
            }
        }
        assert_eq!(text_records(8), 1);
        assert_eq!(text_records(9), 2);
        assert_eq!(text_records(254), 1 + 13);
    }

    #[test]
    fn whole_samples_len_never_ends_inside_a_text_sample() {
        let mut records = vec![Sample::f64(1, TagId(0), 1.0)];
        let mut text = vec![Sample::default(); text_records(40)];
        write_text(
            &mut text,
            2,
            TagId(1),
            Quality::GOOD,
            b"forty bytes of text, more or less..",
            40,
        );
        records.extend_from_slice(&text);
        records.push(Sample::f64(3, TagId(2), 2.0));
        // [number][head][ext][ext][number]
        for (len, whole) in [(0, 0), (1, 1), (2, 1), (3, 1), (4, 4), (5, 5)] {
            assert_eq!(whole_samples_len(&records[..len]), whole, "len {len}");
        }
        // A head first whose extensions are cut off: 0.
        assert_eq!(whole_samples_len(&records[1..3]), 0);
        assert_eq!(whole_samples_len(&records[1..4]), 3);
        // Broken records are not held back.
        assert_eq!(whole_samples_len(&records[2..4]), 2, "orphans");
        let mut greedy = records[..2].to_vec();
        greedy[1].value = 1 << 40;
        assert_eq!(whole_samples_len(&greedy), 2, "a head announcing too much");
        // A Str8 and a head with no extensions are whole on their own.
        let mut short = vec![Sample::default(); 1];
        write_text(&mut short, 0, TagId(4), Quality::GOOD, b"abc", 8);
        assert_eq!(whole_samples_len(&short), 1);
        let empty_head = Sample::new(0, TagId(5), Quality::GOOD, ValueKind::Text, 0);
        assert_eq!(whole_samples_len(&[empty_head]), 1);
        assert_eq!(TEXT_EXT_RECORDS_MAX, 52);
    }

    #[test]
    fn broken_text_records_are_named() {
        let mut out = vec![Sample::default(); 8];
        let n = write_text(
            &mut out,
            0,
            TagId(3),
            Quality::GOOD,
            b"a longer text, 30 bytes long!!",
            40,
        );
        assert_eq!(n, 3);
        assert_eq!(
            record_span(&out[..2]),
            Err(TextError::Truncated {
                wanted: 2,
                found: 1
            })
        );
        assert_eq!(record_span(&out[1..]), Err(TextError::Orphan));
        let mut other = out.clone();
        other[2] = Sample::text_ext(TagId(4), &[0; TEXT_EXT_BYTES]);
        assert_eq!(
            record_span(&other),
            Err(TextError::ExtensionMismatch { index: 2 })
        );
        let mut long = out.clone();
        long[0].value = 41 | 2 << 32;
        assert_eq!(
            record_span(&long),
            Err(TextError::Length {
                bytes: 41,
                room: 40
            })
        );
        assert!(text_at(&long).is_none());
    }
}
