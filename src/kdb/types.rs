//! The kdb+ object model the codec decodes into and encodes from.
//!
//! One representation per storage width, tagged with the kdb+ type number,
//! so that every type 1..=19 (and its temporal variants) round-trips byte
//! for byte: e.g. `Ints` carries int, month, date, minute, second and time.
//! Symbols are kept as one byte arena plus end offsets, not one `String` per
//! symbol: a hostile message of a million empty symbols then costs about
//! five bytes each, not thirty.

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

/// kdb+ type numbers (positive: vector; the atom is the negation).
pub mod ty {
    pub const LIST: i8 = 0;
    pub const BOOL: i8 = 1;
    pub const GUID: i8 = 2;
    pub const BYTE: i8 = 4;
    pub const SHORT: i8 = 5;
    pub const INT: i8 = 6;
    pub const LONG: i8 = 7;
    pub const REAL: i8 = 8;
    pub const FLOAT: i8 = 9;
    pub const CHAR: i8 = 10;
    pub const SYMBOL: i8 = 11;
    pub const TIMESTAMP: i8 = 12;
    pub const MONTH: i8 = 13;
    pub const DATE: i8 = 14;
    pub const DATETIME: i8 = 15;
    pub const TIMESPAN: i8 = 16;
    pub const MINUTE: i8 = 17;
    pub const SECOND: i8 = 18;
    pub const TIME: i8 = 19;
    pub const TABLE: i8 = 98;
    pub const DICT: i8 = 99;
    /// Unary primitive; `(::)` is this type with code 0.
    pub const UNARY: i8 = 101;
    pub const SORTED_DICT: i8 = 127;
    pub const ERROR: i8 = -128;
}

/// kdb+ attributes (the byte after a vector's type).
pub mod attr {
    pub const NONE: u8 = 0;
    pub const SORTED: u8 = 1;
    pub const UNIQUE: u8 = 2;
    pub const PARTED: u8 = 3;
    pub const GROUPED: u8 = 5;
}

/// Nulls and infinities as the documentation and `k.h` give them.
pub mod null {
    pub const SHORT: i16 = i16::MIN;
    pub const INT: i32 = i32::MIN;
    pub const LONG: i64 = i64::MIN;
    pub const SHORT_INF: i16 = i16::MAX;
    pub const INT_INF: i32 = i32::MAX;
    pub const LONG_INF: i64 = i64::MAX;
    pub const REAL_INF: f32 = f32::INFINITY;
    pub const FLOAT_INF: f64 = f64::INFINITY;
    pub const GUID: [u8; 16] = [0; 16];
    pub const CHAR: u8 = b' ';
}

/// Width in bytes of one element of vector type `t` (1..=19), `None` for
/// types without a fixed width (symbol) or that do not exist (3).
pub const fn element_size(t: i8) -> Option<usize> {
    match t {
        ty::BOOL | ty::BYTE | ty::CHAR => Some(1),
        ty::GUID => Some(16),
        ty::SHORT => Some(2),
        ty::INT | ty::MONTH | ty::DATE | ty::MINUTE | ty::SECOND | ty::TIME | ty::REAL => Some(4),
        ty::LONG | ty::TIMESTAMP | ty::TIMESPAN | ty::FLOAT | ty::DATETIME => Some(8),
        _ => None,
    }
}

/// A symbol vector: the bytes of all symbols back to back, and where each
/// one ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Symbols {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Symbols {
    pub fn with_capacity(count: usize, byte_count: usize) -> Self {
        Symbols {
            bytes: Vec::with_capacity(byte_count),
            ends: Vec::with_capacity(count),
        }
    }

    /// Appends one symbol. The caller guarantees it has no NUL byte
    /// (decoded symbols never do; `push_str` checks).
    pub fn push(&mut self, symbol: &[u8]) {
        debug_assert!(!symbol.contains(&0));
        self.bytes.extend_from_slice(symbol);
        // Arena size is bounded by the message size limit (< 4 GiB).
        self.ends.push(self.bytes.len() as u32);
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let end = *self.ends.get(index)? as usize;
        let start = match index.checked_sub(1) {
            Some(before) => *self.ends.get(before)? as usize,
            None => 0,
        };
        self.bytes.get(start..end)
    }

    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

impl<'a> FromIterator<&'a str> for Symbols {
    fn from_iter<I: IntoIterator<Item = &'a str>>(iter: I) -> Self {
        let mut s = Symbols::default();
        for text in iter {
            assert!(!text.contains('\0'), "a kdb+ symbol cannot hold NUL");
            s.push(text.as_bytes());
        }
        s
    }
}

/// The elements of a vector, by storage width.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    /// bool (1), byte (4), char (10).
    Bytes(Vec<u8>),
    Guids(Vec<[u8; 16]>),
    Shorts(Vec<i16>),
    /// int (6), month (13), date (14), minute (17), second (18), time (19).
    Ints(Vec<i32>),
    /// long (7), timestamp (12), timespan (16).
    Longs(Vec<i64>),
    Reals(Vec<f32>),
    /// float (9), datetime (15).
    Floats(Vec<f64>),
    Symbols(Symbols),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::Bytes(v) => v.len(),
            Data::Guids(v) => v.len(),
            Data::Shorts(v) => v.len(),
            Data::Ints(v) => v.len(),
            Data::Longs(v) => v.len(),
            Data::Reals(v) => v.len(),
            Data::Floats(v) => v.len(),
            Data::Symbols(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this storage can carry vector type `t`.
    pub fn fits_type(&self, t: i8) -> bool {
        match self {
            Data::Bytes(_) => matches!(t, ty::BOOL | ty::BYTE | ty::CHAR),
            Data::Guids(_) => t == ty::GUID,
            Data::Shorts(_) => t == ty::SHORT,
            Data::Ints(_) => element_size(t) == Some(4) && t != ty::REAL,
            Data::Longs(_) => matches!(t, ty::LONG | ty::TIMESTAMP | ty::TIMESPAN),
            Data::Reals(_) => t == ty::REAL,
            Data::Floats(_) => matches!(t, ty::FLOAT | ty::DATETIME),
            Data::Symbols(_) => t == ty::SYMBOL,
        }
    }
}

/// The value of an atom, by storage width (see `Data`).
#[derive(Clone, Debug, PartialEq)]
pub enum Atom {
    Byte(u8),
    Guid([u8; 16]),
    Short(i16),
    Int(i32),
    Long(i64),
    Real(f32),
    Float(f64),
    Symbol(Vec<u8>),
}

impl Atom {
    pub fn fits_type(&self, t: i8) -> bool {
        let as_data = match self {
            Atom::Byte(_) => Data::Bytes(Vec::new()),
            Atom::Guid(_) => Data::Guids(Vec::new()),
            Atom::Short(_) => Data::Shorts(Vec::new()),
            Atom::Int(_) => Data::Ints(Vec::new()),
            Atom::Long(_) => Data::Longs(Vec::new()),
            Atom::Real(_) => Data::Reals(Vec::new()),
            Atom::Float(_) => Data::Floats(Vec::new()),
            Atom::Symbol(_) => Data::Symbols(Symbols::default()),
        };
        as_data.fits_type(t)
    }
}

/// A kdb+ object.
#[derive(Clone, Debug, PartialEq)]
pub enum K {
    /// `ty` is the positive type number (the wire carries `-ty`).
    Atom {
        ty: i8,
        value: Atom,
    },
    Vector {
        ty: i8,
        attr: u8,
        data: Data,
    },
    /// General list (type 0).
    List {
        attr: u8,
        items: Vec<K>,
    },
    /// Dictionary (99), or sorted dictionary (127) when `sorted`.
    Dict {
        sorted: bool,
        keys: Box<K>,
        values: Box<K>,
    },
    /// Table (98): a flipped dictionary of column names to columns.
    Table {
        attr: u8,
        dict: Box<K>,
    },
    /// A kdb+ error (-128) with its text.
    Error(Vec<u8>),
    /// A unary primitive (101); `Unary(0)` is `(::)`, the generic null.
    Unary(u8),
}

impl K {
    /// The type number as it goes on the wire.
    pub fn wire_type(&self) -> i8 {
        match self {
            K::Atom { ty, .. } => -ty,
            K::Vector { ty, .. } => *ty,
            K::List { .. } => ty::LIST,
            K::Dict { sorted: false, .. } => ty::DICT,
            K::Dict { sorted: true, .. } => ty::SORTED_DICT,
            K::Table { .. } => ty::TABLE,
            K::Error(_) => ty::ERROR,
            K::Unary(_) => ty::UNARY,
        }
    }

    pub const fn null() -> K {
        K::Unary(0)
    }

    pub fn is_null(&self) -> bool {
        matches!(self, K::Unary(0))
    }

    pub fn atom(t: i8, value: Atom) -> K {
        assert!(value.fits_type(t), "atom storage does not fit type {t}");
        K::Atom { ty: t, value }
    }

    pub fn vector(t: i8, data: Data) -> K {
        assert!(data.fits_type(t), "vector storage does not fit type {t}");
        K::Vector {
            ty: t,
            attr: attr::NONE,
            data,
        }
    }

    pub fn with_attr(self, a: u8) -> K {
        match self {
            K::Vector { ty, data, .. } => K::Vector { ty, attr: a, data },
            K::List { items, .. } => K::List { attr: a, items },
            K::Table { dict, .. } => K::Table { attr: a, dict },
            other => other,
        }
    }

    pub fn int(v: i32) -> K {
        K::atom(ty::INT, Atom::Int(v))
    }

    pub fn long(v: i64) -> K {
        K::atom(ty::LONG, Atom::Long(v))
    }

    pub fn float(v: f64) -> K {
        K::atom(ty::FLOAT, Atom::Float(v))
    }

    pub fn symbol(s: &str) -> K {
        assert!(!s.contains('\0'), "a kdb+ symbol cannot hold NUL");
        K::atom(ty::SYMBOL, Atom::Symbol(s.as_bytes().to_vec()))
    }

    /// A char vector.
    pub fn string(s: &str) -> K {
        K::vector(ty::CHAR, Data::Bytes(s.as_bytes().to_vec()))
    }

    pub fn symbols(list: &[&str]) -> K {
        K::vector(ty::SYMBOL, Data::Symbols(list.iter().copied().collect()))
    }

    pub fn list(items: Vec<K>) -> K {
        K::List {
            attr: attr::NONE,
            items,
        }
    }

    pub fn dict(keys: K, values: K) -> K {
        K::Dict {
            sorted: false,
            keys: Box::new(keys),
            values: Box::new(values),
        }
    }

    /// `([] names...: columns...)`.
    pub fn table(names: &[&str], columns: Vec<K>) -> K {
        assert_eq!(names.len(), columns.len());
        K::Table {
            attr: attr::NONE,
            dict: Box::new(K::dict(K::symbols(names), K::list(columns))),
        }
    }

    pub fn error(text: &str) -> K {
        K::Error(text.as_bytes().to_vec())
    }

    /// Number of elements (1 for atoms and other scalars, rows for a table).
    pub fn count(&self) -> usize {
        match self {
            K::Vector { data, .. } => data.len(),
            K::List { items, .. } => items.len(),
            K::Dict { keys, .. } => keys.count(),
            K::Table { dict, .. } => match dict.as_ref() {
                K::Dict { values, .. } => match values.as_ref() {
                    K::List { items, .. } => items.first().map_or(0, K::count),
                    other => other.count(),
                },
                _ => 0,
            },
            _ => 1,
        }
    }

    /// The text of a symbol atom.
    pub fn as_symbol(&self) -> Option<&[u8]> {
        match self {
            K::Atom {
                value: Atom::Symbol(s),
                ..
            } => Some(s),
            _ => None,
        }
    }

    /// The text of a char vector.
    pub fn as_chars(&self) -> Option<&[u8]> {
        match self {
            K::Vector {
                ty: ty::CHAR,
                data: Data::Bytes(b),
                ..
            } => Some(b),
            _ => None,
        }
    }
}
