//! A hand walk over the parsed TOML tree that keeps every position.
//!
//! `toml_edit::ImDocument` keeps the byte span of every key, value and table
//! header. `Section` wraps one table (or inline table) with its key path, and
//! its getters turn a wrong type, an unknown key or a missing key into a
//! `ConfigError` that points at the exact place: the value when there is one,
//! the key for an unknown key, the table header for a missing key.

use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::time::Duration;

use toml_edit::{Item, TableLike, Value};

use super::error::{line_column, ConfigError, Location, Place};
use super::suggest::{did_you_mean, one_of};
use super::units::{parse_duration, parse_size, DURATION_EXPECTED, SIZE_EXPECTED};

/// The source text and where it came from, with a line index for fast
/// offset -> line:column: every value keeps its location, and scanning the
/// text from the start for each made start-up quadratic in the file (2 s for
/// 1,000 devices, minutes for 10,000).
pub struct Doc<'a> {
    pub text: &'a str,
    pub file: &'a Path,
    /// Byte offset where each line starts; `line_starts[0] == 0`.
    line_starts: Vec<usize>,
}

impl<'a> Doc<'a> {
    pub fn new(text: &'a str, file: &'a Path) -> Self {
        let newlines = text.bytes().enumerate().filter(|&(_, b)| b == b'\n');
        let line_starts = std::iter::once(0)
            .chain(newlines.map(|(i, _)| i + 1))
            .collect();
        Doc {
            text,
            file,
            line_starts,
        }
    }

    pub fn location(&self, span: Option<Range<usize>>, key: Option<String>) -> Location {
        let offset = span.map_or(0, |s| s.start).min(self.text.len());
        // The line holding `offset`; line_column then scans only that line.
        let index = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[index];
        let (_, column) = line_column(&self.text[start..], offset - start);
        let line = u32::try_from(index + 1).unwrap_or(u32::MAX);
        Location::new(self.file, Place::Toml { line, column, key })
    }
}

/// A value with the place it came from.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub at: Location,
}

impl<T> Spanned<T> {
    pub fn error(&self, problem: impl Into<String>) -> ConfigError {
        ConfigError::new(self.at.clone(), problem)
    }
}

/// One TOML table or inline table, with its key path and header span.
#[derive(Clone)]
pub struct Section<'a> {
    doc: &'a Doc<'a>,
    table: &'a dyn TableLike,
    path: String,
    span: Option<Range<usize>>,
}

impl<'a> Section<'a> {
    pub fn root(doc: &'a Doc<'a>, table: &'a dyn TableLike) -> Self {
        Section {
            doc,
            table,
            path: String::new(),
            span: None,
        }
    }

    pub fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Where the table starts (its header), named by `key` inside it.
    pub fn header_location(&self, key: &str) -> Location {
        self.doc
            .location(self.span.clone(), Some(self.key_path(key)))
    }

    /// Where `key`'s value is, or the table header if the key is absent.
    pub fn location(&self, key: &str) -> Location {
        match self.table.get(key) {
            Some(item) => self.doc.location(item.span(), Some(self.key_path(key))),
            None => self.header_location(key),
        }
    }

    /// Rejects any key not in `allowed`, pointing at the key itself.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self.first_unknown_key(allowed) {
            None => Ok(()),
            Some((key, at)) => {
                let problem = match did_you_mean(key, allowed) {
                    Some(near) => format!("unknown key `{key}` (did you mean `{near}`?)"),
                    None => format!("unknown key `{key}`"),
                };
                Err(ConfigError::new(at, problem).expected(one_of(allowed)))
            }
        }
    }

    /// The first key in file order that is not in `allowed`, and where the
    /// key itself is.
    pub fn first_unknown_key(&self, allowed: &[&str]) -> Option<(&'a str, Location)> {
        let (key, _) = self.table.iter().find(|(key, _)| !allowed.contains(key))?;
        let span = self.table.key(key).and_then(|k| k.span());
        Some((key, self.doc.location(span, Some(self.key_path(key)))))
    }

    pub fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Whether `key` is there and a string (a value that may be written as
    /// text or as an integer, such as a TSAP).
    pub fn is_string(&self, key: &str) -> bool {
        self.table.get(key).is_some_and(|item| item.is_str())
    }

    pub fn missing(&self, key: &str, expected: &str) -> ConfigError {
        let what = if self.path.is_empty() {
            "the file".to_string()
        } else {
            self.path.clone()
        };
        ConfigError::new(
            self.header_location(key),
            format!("missing key `{key}` in {what}"),
        )
        .expected(expected.to_string())
    }

    fn wrong_type(&self, key: &str, item: &Item, expected: &str) -> ConfigError {
        ConfigError::new(
            self.location(key),
            format!("wrong type: found {}", item.type_name()),
        )
        .expected(expected.to_string())
    }

    fn spanned<T>(&self, key: &str, value: T) -> Spanned<T> {
        Spanned {
            value,
            at: self.location(key),
        }
    }

    pub fn string(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<Spanned<&'a str>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_str() {
            Some(s) => Ok(Some(self.spanned(key, s))),
            None => Err(self.wrong_type(key, item, expected)),
        }
    }

    pub fn integer(
        &self,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<Spanned<i64>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        let expected = format!("an integer in {}..={}", range.start(), range.end());
        let Some(n) = item.as_integer() else {
            return Err(self.wrong_type(key, item, &expected));
        };
        if !range.contains(&n) {
            return Err(
                ConfigError::new(self.location(key), format!("{n} is out of range"))
                    .expected(expected),
            );
        }
        Ok(Some(self.spanned(key, n)))
    }

    pub fn boolean(&self, key: &str) -> Result<Option<Spanned<bool>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_bool() {
            Some(b) => Ok(Some(self.spanned(key, b))),
            None => Err(self.wrong_type(key, item, "`true` or `false`")),
        }
    }

    /// A float; an integer is accepted too (`scale = 10`).
    pub fn float(&self, key: &str) -> Result<Option<Spanned<f64>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        let value = item
            .as_float()
            .or_else(|| item.as_integer().map(|n| n as f64));
        match value {
            Some(v) if v.is_finite() => Ok(Some(self.spanned(key, v))),
            Some(v) => Err(
                ConfigError::new(self.location(key), format!("{v} is not finite"))
                    .expected("a finite number"),
            ),
            None => Err(self.wrong_type(key, item, "a number")),
        }
    }

    pub fn duration(&self, key: &str) -> Result<Option<Spanned<Duration>>, ConfigError> {
        let Some(text) = self.string(key, DURATION_EXPECTED)? else {
            return Ok(None);
        };
        match parse_duration(text.value) {
            Ok(d) => Ok(Some(Spanned {
                value: d,
                at: text.at,
            })),
            Err(problem) => Err(text.error(problem).expected(DURATION_EXPECTED)),
        }
    }

    /// A size string; a plain integer is taken as bytes.
    pub fn size(&self, key: &str) -> Result<Option<Spanned<u64>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        if let Some(n) = item.as_integer() {
            return match u64::try_from(n) {
                Ok(bytes) => Ok(Some(self.spanned(key, bytes))),
                Err(_) => Err(
                    ConfigError::new(self.location(key), format!("{n} is negative"))
                        .expected(SIZE_EXPECTED),
                ),
            };
        }
        let Some(text) = self.string(key, SIZE_EXPECTED)? else {
            return Ok(None);
        };
        match parse_size(text.value) {
            Ok(bytes) => Ok(Some(Spanned {
                value: bytes,
                at: text.at,
            })),
            Err(problem) => Err(text.error(problem).expected(SIZE_EXPECTED)),
        }
    }

    /// One of a fixed set of words, case-insensitive.
    pub fn word<T: Copy>(
        &self,
        key: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<Spanned<T>>, ConfigError> {
        let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
        let Some(text) = self.string(key, &format!("a string, {}", one_of(&names)))? else {
            return Ok(None);
        };
        match lookup_word(text.value, choices) {
            Ok(value) => Ok(Some(Spanned { value, at: text.at })),
            Err(problem) => Err(text.error(problem).expected(one_of(&names))),
        }
    }

    /// A sub-table (`[wal]` or `wal = { ... }`).
    pub fn table(&self, key: &str) -> Result<Option<Section<'a>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        match item.as_table_like() {
            Some(table) => Ok(Some(Section {
                doc: self.doc,
                table,
                path: self.key_path(key),
                span: item.span().or_else(|| self.key_span(key)),
            })),
            None => Err(self.wrong_type(key, item, &format!("a table `[{}]`", self.key_path(key)))),
        }
    }

    /// An array of tables (`[[device]]`) or an array of inline tables.
    pub fn tables(&self, key: &str) -> Result<Vec<Section<'a>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(Vec::new());
        };
        let expected = format!("an array of tables `[[{}]]`", self.key_path(key));
        let path = |i: usize| format!("{}[{i}]", self.key_path(key));
        if let Some(array) = item.as_array_of_tables() {
            return Ok(array
                .iter()
                .enumerate()
                .map(|(i, table)| Section {
                    doc: self.doc,
                    table: table as &dyn TableLike,
                    path: path(i),
                    span: table.span(),
                })
                .collect());
        }
        let Some(array) = item.as_array() else {
            return Err(self.wrong_type(key, item, &expected));
        };
        let mut sections = Vec::with_capacity(array.len());
        for (i, value) in array.iter().enumerate() {
            let Value::InlineTable(table) = value else {
                let at = self.doc.location(value.span(), Some(path(i)));
                let problem = format!("wrong type: found {}", value.type_name());
                return Err(ConfigError::new(at, problem).expected(expected));
            };
            sections.push(Section {
                doc: self.doc,
                table,
                path: path(i),
                span: value.span(),
            });
        }
        Ok(sections)
    }

    /// An array of integers, each in `range`.
    pub fn integers(
        &self,
        key: &str,
        range: RangeInclusive<i64>,
    ) -> Result<Option<Spanned<Vec<i64>>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        let expected = format!(
            "an array of integers in {}..={}",
            range.start(),
            range.end()
        );
        let Some(array) = item.as_array() else {
            return Err(self.wrong_type(key, item, &expected));
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, value) in array.iter().enumerate() {
            let at = self
                .doc
                .location(value.span(), Some(format!("{}[{i}]", self.key_path(key))));
            match value.as_integer() {
                Some(n) if range.contains(&n) => out.push(n),
                Some(n) => {
                    return Err(
                        ConfigError::new(at, format!("{n} is out of range")).expected(expected)
                    )
                }
                None => {
                    let problem = format!("wrong type: found {}", value.type_name());
                    return Err(ConfigError::new(at, problem).expected(expected));
                }
            }
        }
        Ok(Some(self.spanned(key, out)))
    }

    /// An array of strings, each with its own location (`key[i]`).
    pub fn strings(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<Spanned<Vec<Spanned<&'a str>>>>, ConfigError> {
        let Some(item) = self.table.get(key) else {
            return Ok(None);
        };
        let Some(array) = item.as_array() else {
            return Err(self.wrong_type(key, item, expected));
        };
        let mut out = Vec::with_capacity(array.len());
        for (i, value) in array.iter().enumerate() {
            let at = self
                .doc
                .location(value.span(), Some(format!("{}[{i}]", self.key_path(key))));
            match value.as_str() {
                Some(text) => out.push(Spanned { value: text, at }),
                None => {
                    let problem = format!("wrong type: found {}", value.type_name());
                    return Err(ConfigError::new(at, problem).expected(expected));
                }
            }
        }
        Ok(Some(self.spanned(key, out)))
    }

    fn key_span(&self, key: &str) -> Option<Range<usize>> {
        self.table.key(key).and_then(|k| k.span())
    }
}

/// Looks a word up case-insensitively; the error names the word and a near
/// miss if there is one (the caller adds the full list as "expected").
pub fn lookup_word<T: Copy>(text: &str, choices: &[(&str, T)]) -> Result<T, String> {
    if let Some((_, value)) = choices
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(text))
    {
        return Ok(*value);
    }
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    Err(match did_you_mean(text, &names) {
        Some(near) => format!("unknown value `{text}` (did you mean `{near}`?)"),
        None => format!("unknown value `{text}`"),
    })
}

/// `Some(value)` or the missing-key error.
pub fn required<T>(
    section: &Section<'_>,
    key: &str,
    expected: &str,
    value: Option<Spanned<T>>,
) -> Result<Spanned<T>, ConfigError> {
    value.ok_or_else(|| section.missing(key, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The indexed lookup gives what scanning from the start gives, for
    /// every offset (multi-byte characters, empty lines, past the end).
    #[test]
    fn location_agrees_with_a_scan_from_the_start() {
        let text = "a = 1\n\nçé = \"x\"\n[t]\n  k = 2";
        let doc = Doc::new(text, Path::new("f.toml"));
        for offset in 0..=text.len() + 3 {
            let (line, column) = line_column(text, offset);
            let expected = Location::new(
                Path::new("f.toml"),
                Place::Toml {
                    line,
                    column,
                    key: None,
                },
            );
            let got = doc.location(Some(offset..offset + 1), None);
            assert_eq!(
                format!("{got:?}"),
                format!("{expected:?}"),
                "offset {offset}"
            );
        }
    }
}
