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
//!   second not sym (symbol), a column is not a vector/atom, or a column's
//!   type differs from the table's first update;
//! - `'length`: columns of different lengths;
//! - `'schema`: a different number of columns, or different column names,
//!   than the table's first update (tick.q's schema comes from sym.q; ours
//!   from the first update).

#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use std::collections::BTreeMap;

use super::columns::COLUMN_NAMES;
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
    let rows = check_columns(&columns)?;
    Ok(Some(Update {
        table,
        names,
        columns,
        rows,
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

/// Checks time and sym first, vectors (or all atoms) of one length; returns
/// the row count.
fn check_columns(columns: &[&K]) -> Result<usize, UpdError> {
    let (Some(time), Some(sym)) = (columns.first(), columns.get(1)) else {
        return Err(UpdError::Length);
    };
    if !matches!(column_type(time), Some(ty::TIMESPAN) | Some(ty::TIMESTAMP)) {
        return Err(UpdError::Type);
    }
    if column_type(sym) != Some(ty::SYMBOL) {
        return Err(UpdError::Type);
    }
    let atoms = columns.iter().all(|c| matches!(c, K::Atom { .. }));
    let vectors = columns.iter().all(|c| matches!(c, K::Vector { .. }));
    if atoms {
        return Ok(1);
    }
    if !vectors {
        return Err(UpdError::Type);
    }
    let rows = time.count();
    if columns.iter().any(|c| c.count() != rows) {
        return Err(UpdError::Length);
    }
    Ok(rows)
}

/// The vector type a column has (atoms count as their vector type).
fn column_type(k: &K) -> Option<i8> {
    match k {
        K::Atom { ty, .. } | K::Vector { ty, .. } => Some(*ty),
        _ => None,
    }
}

/// One table's state: its schema (from the first update) and row count.
#[derive(Clone, Debug, Default)]
pub struct TableState {
    pub types: Vec<i8>,
    pub names: Vec<Vec<u8>>,
    pub rows: u64,
    /// Column positions of sym, value and seq, when the names say so.
    pub record_columns: Option<(usize, usize, usize)>,
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
        let types: Vec<i8> = u.columns.iter().filter_map(|c| column_type(c)).collect();
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
                None if types.len() == COLUMN_NAMES.len() => {
                    COLUMN_NAMES.iter().map(|s| s.as_bytes().to_vec()).collect()
                }
                None => (0..types.len())
                    .map(|i| format!("x{i}").into_bytes())
                    .collect(),
            };
            let record_columns = record_positions(&names, types);
            let state = TableState {
                types: types.to_vec(),
                names,
                rows: 0,
                record_columns,
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
