//! Tag lists from CSV files, the way plant engineers export them from other
//! tools (Excel, PLC programming suites, historians).
//!
//! The `csv` crate splits the text (RFC 4180: quoted cells with commas,
//! doubled quotes and line breaks; CRLF, LF or CR line ends; a UTF-8
//! byte-order mark is dropped) and says on which line each record starts.
//! On top of it: rows that are all empty are skipped, spaces around a cell
//! are dropped, and the header names the columns in any case and any order.
//! The columns are the tag keys of the device's protocol (`device::Keys`),
//! and each row is finished by the protocol's `finish_tag` through
//! `TagFields`, as a `[[device.tag]]` table is. Errors name `FILE:LINE`
//! (the line where the record starts) and the column.

use std::path::Path;

use super::device::{keys, Keys};
use super::error::{ConfigError, Location, Place};
use super::suggest::{did_you_mean, one_of};
use super::tag::TagFields;
use super::tree::Spanned;
use super::types::Protocol;

/// One CSV record: the line it starts on and its cells, trimmed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub line: u32,
    pub fields: Vec<String>,
}

/// A record that cannot be read, and the line it starts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u32,
    pub problem: String,
}

/// Splits CSV text into records; all-empty records are dropped.
pub fn records(text: &str) -> Result<Vec<Record>, SyntaxError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut lines = Lines {
        text: text.as_bytes(),
        offset: 0,
        line: 1,
    };
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return Ok(out),
            // Text that is already a `str` has no invalid UTF-8 to find, and
            // a slice no I/O error; kept as an error, never a panic.
            Err(e) => {
                return Err(SyntaxError {
                    line: e.position().map_or(1, |p| saturating_line(p.line())),
                    problem: e.to_string(),
                })
            }
        }
        let line = lines.start_of(record.position().map_or(0, csv::Position::byte));
        let fields: Vec<String> = record.iter().map(|f| f.trim().to_string()).collect();
        if fields.iter().any(|f| !f.is_empty()) {
            out.push(Record { line, fields });
        }
    }
}

/// The line a record starts on. `csv` gives each record the position where
/// the reader stood when the record began, which is before the line ends
/// and blank lines in front of it, so its `line()` falls short (by one after
/// every CRLF). Its byte offset is right, though: skip the line ends from
/// there, and count those before (`\r\n`, `\n` or a lone `\r`, as `csv`
/// ends records), moving forward only, so the whole file is scanned once.
struct Lines<'t> {
    text: &'t [u8],
    offset: usize,
    line: u32,
}

impl Lines<'_> {
    fn start_of(&mut self, position: u64) -> u32 {
        let from = usize::try_from(position).unwrap_or(usize::MAX);
        let rest = self.text.get(from..).unwrap_or_default();
        let start = from.saturating_add(
            rest.iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count(),
        );
        while self.offset < start.min(self.text.len()) {
            let ends_line = match self.text.get(self.offset) {
                Some(b'\n') => true,
                Some(b'\r') => self.text.get(self.offset + 1) != Some(&b'\n'),
                _ => false,
            };
            if ends_line {
                self.line = self.line.saturating_add(1);
            }
            self.offset += 1;
        }
        self.line
    }
}

fn saturating_line(line: u64) -> u32 {
    u32::try_from(line).unwrap_or(u32::MAX)
}

fn at(file: &Path, line: u32, column: Option<&str>) -> Location {
    Location::new(
        file,
        Place::Csv {
            line,
            column: column.map(str::to_string),
        },
    )
}

fn header_expected(keys: &Keys) -> String {
    format!("a header such as {}", keys.csv_example)
}

/// Reads the tags of a CSV file for a device of `protocol`, handing each
/// row to `add` (which finishes and keeps it). `file` is used only in
/// messages.
pub fn read_tags(
    text: &str,
    file: &Path,
    protocol: Protocol,
    add: &mut dyn FnMut(&dyn TagFields) -> Result<(), ConfigError>,
) -> Result<(), ConfigError> {
    let keys = keys(protocol);
    let records = records(text).map_err(|e| {
        ConfigError::new(at(file, e.line, None), e.problem).expected("an RFC 4180 CSV file")
    })?;
    let Some((header, rows)) = records.split_first() else {
        return Err(
            ConfigError::new(at(file, 1, None), "the file has no header line")
                .expected(header_expected(keys)),
        );
    };
    let columns = read_header(header, file, protocol)?;
    for row in rows {
        let cells = row_cells(row, &columns, keys, file)?;
        add(&CsvRow {
            file,
            line: row.line,
            keys: keys.tag,
            cells,
        })?;
    }
    Ok(())
}

/// For each column of the file, its index in the protocol's tag keys
/// (`None` for trailing empty header cells).
fn read_header(
    header: &Record,
    file: &Path,
    protocol: Protocol,
) -> Result<Vec<Option<usize>>, ConfigError> {
    let keys = keys(protocol);
    let mut columns: Vec<Option<usize>> = Vec::with_capacity(header.fields.len());
    for (i, raw) in header.fields.iter().enumerate() {
        let name = raw.to_lowercase();
        let rest_empty = header
            .fields
            .get(i..)
            .is_some_and(|rest| rest.iter().all(String::is_empty));
        if rest_empty {
            columns.push(None);
            continue;
        }
        let Some(index) = keys.tag.iter().position(|c| *c == name) else {
            return Err(unknown_column(raw, &name, protocol, header.line, file));
        };
        if columns.contains(&Some(index)) {
            let problem = format!("column `{name}` appears twice in the header");
            return Err(
                ConfigError::new(at(file, header.line, Some(&name)), problem)
                    .expected(header_expected(keys)),
            );
        }
        columns.push(Some(index));
    }
    for (index, required) in keys.tag.iter().enumerate().take(keys.tag_required) {
        if !columns.contains(&Some(index)) {
            let problem = format!("the header has no `{required}` column");
            return Err(
                ConfigError::new(at(file, header.line, Some(required)), problem)
                    .expected(header_expected(keys)),
            );
        }
    }
    Ok(columns)
}

/// A header cell that is not a column of `protocol`'s tags: a near miss, a
/// `;`-separated file, or a column of another protocol's tags.
fn unknown_column(
    raw: &str,
    name: &str,
    protocol: Protocol,
    line: u32,
    file: &Path,
) -> ConfigError {
    let columns = keys(protocol).tag;
    let others: Vec<&str> = Protocol::ALL
        .iter()
        .filter(|(_, p)| keys(*p).tag.contains(&name))
        .map(|(n, _)| *n)
        .collect();
    let problem = match did_you_mean(name, columns) {
        Some(near) => format!("unknown column `{raw}` (did you mean `{near}`?)"),
        None if raw.contains(';') => {
            format!("unknown column `{raw}` (is the file `;`-separated?)")
        }
        None if !others.is_empty() => format!(
            "unknown column `{raw}` for protocol `{protocol}` (it is a column of {} tags)",
            others.join(" and ")
        ),
        None => format!("unknown column `{raw}` for protocol `{protocol}`"),
    };
    let expected = format!("a column {protocol} tags take, {}", one_of(columns));
    ConfigError::new(at(file, line, Some(raw)), problem).expected(expected)
}

/// The cells of one row, one per tag key ("" where the file has no column).
fn row_cells<'r>(
    row: &'r Record,
    columns: &[Option<usize>],
    keys: &Keys,
    file: &Path,
) -> Result<Vec<&'r str>, ConfigError> {
    let line = row.line;
    if row.fields.len() < columns.len() {
        let missing = columns
            .get(row.fields.len())
            .copied()
            .flatten()
            .and_then(|i| keys.tag.get(i));
        // An unterminated quote swallows the rest of the file into one cell.
        let hint = if row.fields.iter().any(|f| f.contains('\n')) {
            " (is a quote left open?)"
        } else {
            ""
        };
        let problem = format!(
            "the row has {} fields, the header {}{hint}",
            row.fields.len(),
            columns.len()
        );
        return Err(
            ConfigError::new(at(file, line, Some(missing.map_or("?", |c| c))), problem)
                .expected("one field per header column"),
        );
    }
    if let Some(extra) = row
        .fields
        .iter()
        .skip(columns.len())
        .position(|f| !f.is_empty())
    {
        let problem = format!(
            "the row has more fields than the header ({})",
            columns.len()
        );
        let column = format!("#{}", columns.len() + extra + 1);
        return Err(ConfigError::new(at(file, line, Some(&column)), problem)
            .expected("one field per header column"));
    }
    let mut cells = vec![""; keys.tag.len()];
    for (field, column) in row.fields.iter().zip(columns) {
        if let Some(slot) = column.and_then(|i| cells.get_mut(i)) {
            *slot = field.as_str();
        }
    }
    Ok(cells)
}

/// One CSV row as `TagFields`: an empty cell is an absent key.
struct CsvRow<'r> {
    file: &'r Path,
    line: u32,
    keys: &'static [&'static str],
    cells: Vec<&'r str>,
}

impl CsvRow<'_> {
    fn cell(&self, key: &str) -> Option<Spanned<&str>> {
        let index = self.keys.iter().position(|k| *k == key)?;
        let text = self.cells.get(index).copied().filter(|c| !c.is_empty())?;
        Some(Spanned {
            value: text,
            at: self.at(key),
        })
    }
}

impl TagFields for CsvRow<'_> {
    fn text(&self, key: &str, _expected: &str) -> Result<Option<Spanned<&str>>, ConfigError> {
        Ok(self.cell(key))
    }

    /// A whole number, decimal or `0x` hexadecimal.
    fn integer(&self, key: &str) -> Result<Option<Spanned<i64>>, ConfigError> {
        let Some(cell) = self.cell(key) else {
            return Ok(None);
        };
        let text = cell.value;
        let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
            Some(hex) => i64::from_str_radix(hex, 16),
            None => text.parse::<i64>(),
        };
        match parsed {
            Ok(value) => Ok(Some(Spanned { value, at: cell.at })),
            Err(_) => Err(cell
                .error(format!("`{text}` is not a whole number"))
                .expected("a decimal or 0x-hexadecimal integer")),
        }
    }

    fn float(&self, key: &str) -> Result<Option<Spanned<f64>>, ConfigError> {
        let Some(cell) = self.cell(key) else {
            return Ok(None);
        };
        let text = cell.value;
        match text.parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(Some(Spanned { value, at: cell.at })),
            _ => {
                let hint = if text.contains(',') {
                    " (the decimal point is `.`)"
                } else {
                    ""
                };
                Err(cell
                    .error(format!("`{text}` is not a number{hint}"))
                    .expected("a finite number such as 0.1 or -40"))
            }
        }
    }

    fn at(&self, key: &str) -> Location {
        at(self.file, self.line, Some(key))
    }

    fn missing(&self, key: &str, expected: &str) -> ConfigError {
        ConfigError::new(self.at(key), format!("`{key}` is empty")).expected(expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        records(text)
            .map(|r| r.into_iter().map(|r| r.fields).collect())
            .unwrap_or_default()
    }

    #[test]
    fn quoting_and_line_ends() {
        let text = "\u{feff}a,b\r\n\"x, y\",\"say \"\"hi\"\"\"\r\n,,\r\n\"multi\nline\",z\n";
        let got = records(text).unwrap_or_default();
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].fields, ["a", "b"]);
        assert_eq!(got[1].fields, ["x, y", "say \"hi\""]);
        assert_eq!((got[1].line, got[2].line), (2, 4));
        assert_eq!(got[2].fields, ["multi\nline", "z"]);
        assert_eq!(fields("a , b\nc,d"), [["a", "b"], ["c", "d"]]);
        // Old Mac line ends, blank lines and a missing final line end.
        assert_eq!(fields("a,b\r\rc,d"), [["a", "b"], ["c", "d"]]);
        let got = records("a\rb\r\r\nc").unwrap_or_default();
        assert_eq!(got.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 4]);
        assert_eq!(fields("a\n\n\nb"), [["a"], ["b"]]);
        let got = records("h\n\n\"x\ny\"\nz").unwrap_or_default();
        assert_eq!(got.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 3, 5]);
    }

    #[test]
    fn an_open_quote_takes_the_rest_of_the_file() {
        let got = records("a,b\nc,\"open\nd,e\n").unwrap_or_default();
        assert_eq!(got.len(), 2);
        assert_eq!((got[1].line, got[1].fields.len()), (2, 2));
        assert_eq!(got[1].fields[1], "open\nd,e");
    }
}
