//! What the stand-in does with a message, sans-IO: recognise a `.u.upd`
//! call, check it as tick.q would, and keep per-table schemas and counts.
//!
//! Accepted forms of the call (a general list of three): the function as a
//! symbol (`.u.upd` or `upd`) or as a string (what kdbplus and q's
//! `h(".u.upd";...)` send), the table as a symbol, then the data as a list
//! of columns (vectors), a list of atoms (one row), or a table.
//!
//! Checks, with the kdb+ error each one raises:
//! - `'type`: the first column is not time (timespan, or timestamp), the
//!   second not sym (symbol), a column is not a vector or a general list
//!   (a row: not an atom or a string), or a column's type differs from the
//!   table's first update;
//! - `'length`: columns of different lengths;
//! - `'schema`: a different number of columns, or different column names,
//!   than the table's first update (tick.q's schema comes from sym.q; ours
//!   from the first update).
//!
//! A general list is a column of type 0, as in q: millrace's `text` column
//! (a list of strings). Column names, when the data came as a list, are
//! millrace's when the types are one of its schemas (`millrace_names`).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::collections::BTreeMap;

use super::columns::COLUMN_NAMES;
use super::schema::Column;
use super::types::{ty, Atom, Data, K};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpdError {
    Type,
    Length,
    Schema,
}

impl UpdError {
    /// The kdb+ error text (without the leading quote).
    pub fn text(self) -> &'static str {
        match self {
            UpdError::Type => "type",
            UpdError::Length => "length",
            UpdError::Schema => "schema",
        }
    }
}

/// A recognised call, borrowing the decoded message.
pub struct Update<'k> {
    pub table: &'k [u8],
    /// Column names when the data came as a table.
    pub names: Option<Vec<&'k [u8]>>,
    pub columns: Vec<&'k K>,
    pub rows: usize,
    /// The data is one row of atoms (and strings), not columns.
    pub single_row: bool,
    /// The data item as received (what the journal logs).
    pub data: &'k K,
}

/// `Ok(None)`: not a `.u.upd` call (the caller answers `(::)`).
pub fn parse_update(k: &K) -> Result<Option<Update<'_>>, UpdError> {
    let K::List { items, .. } = k else {
        return Ok(None);
    };
    let [function, table, data] = items.as_slice() else {
        return Ok(None);
    };
    let name = function.as_symbol().or_else(|| function.as_chars());
    if !matches!(name, Some(b".u.upd") | Some(b"upd")) {
        return Ok(None);
    }
    let table = table.as_symbol().ok_or(UpdError::Type)?;
    if table.is_empty() {
        return Err(UpdError::Type);
    }
    let (names, columns) = match data {
        K::List { items, .. } => (None, items.iter().collect::<Vec<_>>()),
        K::Table { dict, .. } => table_columns(dict)?,
        _ => return Err(UpdError::Type),
    };
    let (rows, single_row) = check_columns(&columns)?;
    Ok(Some(Update {
        table,
        names,
        columns,
        rows,
        single_row,
        data,
    }))
}

/// Column names and columns of a table's dictionary.
type TableParts<'k> = (Option<Vec<&'k [u8]>>, Vec<&'k K>);

fn table_columns(dict: &K) -> Result<TableParts<'_>, UpdError> {
    let K::Dict { keys, values, .. } = dict else {
        return Err(UpdError::Type);
    };
    let K::Vector {
        data: Data::Symbols(names),
        ..
    } = keys.as_ref()
    else {
        return Err(UpdError::Type);
    };
    let columns: Vec<&K> = match values.as_ref() {
        K::List { items, .. } => items.iter().collect(),
        _ => return Err(UpdError::Type),
    };
    if names.len() != columns.len() {
        return Err(UpdError::Length);
    }
    Ok((Some(names.iter().collect()), columns))
}

/// Checks time and sym first, columns (vectors or general lists) of one
/// length, or one row (atoms, and strings for general-list cells); returns
/// the row count and whether it was one row. One row, as in tick.q's
/// `upd`, is when the first item is an atom.
fn check_columns(columns: &[&K]) -> Result<(usize, bool), UpdError> {
    let (Some(time), Some(sym)) = (columns.first(), columns.get(1)) else {
        return Err(UpdError::Length);
    };
    let single_row = matches!(time, K::Atom { .. });
    if !matches!(
        column_type(time, single_row),
        Some(ty::TIMESPAN) | Some(ty::TIMESTAMP)
    ) {
        return Err(UpdError::Type);
    }
    if column_type(sym, single_row) != Some(ty::SYMBOL) {
        return Err(UpdError::Type);
    }
    if single_row {
        let cells = columns.iter().all(|c| column_type(c, true).is_some());
        return if cells {
            Ok((1, true))
        } else {
            Err(UpdError::Type)
        };
    }
    if columns.iter().any(|c| column_type(c, false).is_none()) {
        return Err(UpdError::Type);
    }
    let rows = time.count();
    if columns.iter().any(|c| c.count() != rows) {
        return Err(UpdError::Length);
    }
    Ok((rows, false))
}

/// The type of the column `k` is (or, in a single row, is a cell of):
/// a vector's type, an atom's vector type, 0 for a general list (a string
/// cell of a row is one of a general list's items); `None` for anything
/// else.
fn column_type(k: &K, single_row: bool) -> Option<i8> {
    match k {
        K::Atom { ty, .. } if single_row => Some(*ty),
        K::Vector { ty: ty::CHAR, .. } if single_row => Some(ty::LIST),
        K::Vector { ty, .. } if !single_row => Some(*ty),
        K::List { .. } if !single_row => Some(ty::LIST),
        _ => None,
    }
}

/// Column names of one of millrace's schemas, when `types` is one: time
/// (timespan or timestamp) and sym first, then device (the next symbol),
/// value (float), quality (int), seq (long), each once, text (a general
/// list) and gateway (a symbol after device's) at most once. (A gateway
/// column before device is then named as if they were swapped: both are
/// symbols, and the stand-in checks neither by name.) A publisher that sends a list of columns gives no
/// names; tick.q takes them from sym.q, the stand-in from the types.
pub fn millrace_names(types: &[i8]) -> Option<Vec<Vec<u8>>> {
    let [time, sym, rest @ ..] = types else {
        return None;
    };
    if !matches!(*time, ty::TIMESPAN | ty::TIMESTAMP) || *sym != ty::SYMBOL {
        return None;
    }
    let mut names = vec![Column::Time, Column::Sym];
    for &t in rest {
        let column = match t {
            ty::SYMBOL if names.contains(&Column::Device) => Column::Gateway,
            ty::SYMBOL => Column::Device,
            ty::FLOAT => Column::Value,
            ty::INT => Column::Quality,
            ty::LONG => Column::Seq,
            ty::LIST => Column::Text,
            _ => return None,
        };
        if names.contains(&column) {
            return None;
        }
        names.push(column);
    }
    let required = [Column::Device, Column::Value, Column::Quality, Column::Seq];
    let complete = required.iter().all(|c| names.contains(c));
    complete.then(|| names.iter().map(|c| c.name().as_bytes().to_vec()).collect())
}

/// One table's state: its schema (from the first update) and row count.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    pub types: Vec<i8>,
    pub names: Vec<Vec<u8>>,
    pub rows: u64,
    /// Column positions of sym, value and seq, when the names say so.
    pub record_columns: Option<(usize, usize, usize)>,
    /// Column position of text (a general list), when the names say so.
    pub text_column: Option<usize>,
}

/// All tables the stand-in has seen.
#[derive(Debug, Default)]
pub struct Tables {
    pub tables: BTreeMap<Vec<u8>, TableState>,
    /// Most tables we keep (memory bound; more are refused with 'schema).
    pub table_count_max: usize,
}

impl Tables {
    pub fn new(table_count_max: usize) -> Self {
        Tables {
            tables: BTreeMap::new(),
            table_count_max,
        }
    }

    /// Checks `u` against the table's schema (creating it on first sight)
    /// and counts its rows.
    pub fn apply(&mut self, u: &Update<'_>) -> Result<&TableState, UpdError> {
        let types: Vec<i8> = u
            .columns
            .iter()
            .filter_map(|c| column_type(c, u.single_row))
            .collect();
        self.apply_columns(u.table, u.names.as_deref(), &types, u.rows)
    }

    /// `apply` for an update given by parts: the column types (vector types,
    /// atoms as their vector type), the names when the data came as a table,
    /// and the row count. Allocates only when a table is first seen.
    pub fn apply_columns(
        &mut self,
        table: &[u8],
        names: Option<&[&[u8]]>,
        types: &[i8],
        rows: usize,
    ) -> Result<&TableState, UpdError> {
        if !self.tables.contains_key(table) {
            if self.tables.len() >= self.table_count_max {
                return Err(UpdError::Schema);
            }
            let names: Vec<Vec<u8>> = match names {
                Some(n) => n.iter().map(|s| s.to_vec()).collect(),
                None => match millrace_names(types) {
                    Some(names) => names,
                    None if types.len() == COLUMN_NAMES.len() => {
                        COLUMN_NAMES.iter().map(|s| s.as_bytes().to_vec()).collect()
                    }
                    None => (0..types.len())
                        .map(|i| format!("x{i}").into_bytes())
                        .collect(),
                },
            };
            let record_columns = record_positions(&names, types);
            let text_column = names
                .iter()
                .zip(types)
                .position(|(n, &t)| n.as_slice() == b"text" && t == ty::LIST);
            let state = TableState {
                types: types.to_vec(),
                names,
                rows: 0,
                record_columns,
                text_column,
            };
            self.tables.insert(table.to_vec(), state);
        }
        let state = self.tables.get_mut(table).ok_or(UpdError::Schema)?;
        if state.types.len() != types.len() {
            return Err(UpdError::Schema);
        }
        if let Some(names) = names {
            if names
                .iter()
                .zip(&state.names)
                .any(|(a, b)| *a != b.as_slice())
            {
                return Err(UpdError::Schema);
            }
        }
        if state.types != types {
            return Err(UpdError::Type);
        }
        state.rows += rows as u64;
        Ok(state)
    }
}

fn record_positions(names: &[Vec<u8>], types: &[i8]) -> Option<(usize, usize, usize)> {
    let find = |name: &[u8], t: i8| {
        let i = names.iter().position(|n| n.as_slice() == name)?;
        (types.get(i) == Some(&t)).then_some(i)
    };
    Some((
        find(b"sym", ty::SYMBOL)?,
        find(b"value", ty::FLOAT)?,
        find(b"seq", ty::LONG)?,
    ))
}

/// Calls `f(sym, value, seq)` for each row of an update whose table has
/// sym, value and seq columns.
pub fn for_each_record(u: &Update<'_>, state: &TableState, mut f: impl FnMut(&[u8], f64, i64)) {
    let Some((sym_at, value_at, seq_at)) = state.record_columns else {
        return;
    };
    let (Some(sym), Some(value), Some(seq)) = (
        u.columns.get(sym_at),
        u.columns.get(value_at),
        u.columns.get(seq_at),
    ) else {
        return;
    };
    match (sym, value, seq) {
        (
            K::Vector {
                data: Data::Symbols(s),
                ..
            },
            K::Vector {
                data: Data::Floats(v),
                ..
            },
            K::Vector {
                data: Data::Longs(q),
                ..
            },
        ) => {
            for ((s, v), q) in s.iter().zip(v).zip(q) {
                f(s, *v, *q);
            }
        }
        (
            K::Atom {
                value: Atom::Symbol(s),
                ..
            },
            K::Atom {
                value: Atom::Float(v),
                ..
            },
            K::Atom {
                value: Atom::Long(q),
                ..
            },
        ) => f(s, *v, *q),
        _ => {}
    }
}

/// Calls `f(sym, seq, text)` for each row with a non-empty text of an update
/// whose table has sym, seq and text columns (the text column a list of
/// strings, or a string in a single row).
pub fn for_each_text(u: &Update<'_>, state: &TableState, mut f: impl FnMut(&[u8], i64, &[u8])) {
    let (Some((sym_at, _, seq_at)), Some(text_at)) = (state.record_columns, state.text_column)
    else {
        return;
    };
    let (Some(sym), Some(seq), Some(text)) = (
        u.columns.get(sym_at),
        u.columns.get(seq_at),
        u.columns.get(text_at),
    ) else {
        return;
    };
    match (sym, seq, text) {
        (
            K::Vector {
                data: Data::Symbols(s),
                ..
            },
            K::Vector {
                data: Data::Longs(q),
                ..
            },
            K::List { items, .. },
        ) => {
            for ((s, q), t) in s.iter().zip(q).zip(items) {
                if let Some(t) = t.as_chars().filter(|t| !t.is_empty()) {
                    f(s, *q, t);
                }
            }
        }
        (
            K::Atom {
                value: Atom::Symbol(s),
                ..
            },
            K::Atom {
                value: Atom::Long(q),
                ..
            },
            t,
        ) => {
            if let Some(t) = t.as_chars().filter(|t| !t.is_empty()) {
                f(s, *q, t);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(types: &[i8]) -> Option<Vec<String>> {
        millrace_names(types).map(|n| {
            n.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect()
        })
    }

    #[test]
    fn millrace_names_come_from_the_types_of_any_schema() {
        use ty::*;
        assert_eq!(
            names(&[TIMESPAN, SYMBOL, SYMBOL, FLOAT, INT, LONG]).unwrap(),
            ["time", "sym", "device", "value", "quality", "seq"]
        );
        assert_eq!(
            names(&[TIMESTAMP, SYMBOL, LIST, LONG, SYMBOL, INT, FLOAT]).unwrap(),
            ["time", "sym", "text", "seq", "device", "quality", "value"]
        );
        for not_ours in [
            &[TIMESPAN, SYMBOL, SYMBOL, FLOAT, BYTE, LONG][..],
            &[TIMESPAN, SYMBOL, SYMBOL, FLOAT, INT][..],
            &[TIMESPAN, SYMBOL, SYMBOL, FLOAT, INT, LONG, LIST, LIST][..],
            &[SYMBOL, TIMESPAN, SYMBOL, FLOAT, INT, LONG][..],
            &[][..],
        ] {
            assert_eq!(names(not_ours), None, "{not_ours:?}");
        }
    }

    /// A text column (a general list of strings) is a column; one row may
    /// carry its text as a string; a list in a row, or an atom among
    /// columns, is a `'type`.
    #[test]
    fn general_lists_are_columns_and_strings_are_cells() {
        let time = || K::vector(ty::TIMESPAN, Data::Longs(vec![1, 2]));
        let sym = || K::symbols(&["a", "b"]);
        let text = || K::list(vec![K::string("x"), K::string("")]);
        let call = |data: Vec<K>| K::list(vec![K::symbol(".u.upd"), K::symbol("t"), K::list(data)]);
        let k = call(vec![time(), sym(), text()]);
        let u = parse_update(&k).unwrap().unwrap();
        assert_eq!((u.rows, u.single_row), (2, false));
        let mut tables = Tables::new(4);
        let state = tables.apply(&u).unwrap();
        assert_eq!(state.types, [ty::TIMESPAN, ty::SYMBOL, ty::LIST]);
        let row = call(vec![
            K::atom(ty::TIMESPAN, Atom::Long(1)),
            K::symbol("a"),
            K::string("text"),
        ]);
        let u = parse_update(&row).unwrap().unwrap();
        assert_eq!((u.rows, u.single_row), (1, true));
        assert_eq!(tables.apply(&u).unwrap().rows, 3, "same schema");
        let bad = call(vec![
            K::atom(ty::TIMESPAN, Atom::Long(1)),
            K::symbol("a"),
            text(),
        ]);
        assert_eq!(parse_update(&bad).err(), Some(UpdError::Type));
        let short = call(vec![time(), sym(), K::list(vec![K::string("x")])]);
        assert_eq!(parse_update(&short).err(), Some(UpdError::Length));
    }
}
