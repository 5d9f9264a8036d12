//! Tag lists from CSV files, the way plant engineers export them from other
//! tools (Excel, PLC programming suites, historians).
//!
//! RFC 4180 plus what exporters actually write: a UTF-8 byte-order mark,
//! CRLF or LF line ends, quoted fields with commas, doubled quotes and even
//! line breaks, rows that are all empty (skipped), trailing empty cells, and
//! header names in any case and any order. Errors name `FILE:LINE` (the line
//! where the record starts) and the column.

use std::path::Path;

use super::error::{ConfigError, Location, Place};
use super::suggest::{did_you_mean, one_of};
use super::tag::{finish_tag, Field, RawTag, AREAS, ORDERS, TYPES};
use super::tree::lookup_word;
use super::types::ModbusTag;
use super::validate::TagOrigin;

/// Columns a tag CSV may have; the first four are required.
pub const COLUMNS: &[&str] = &[
    "name",
    "area",
    "address",
    "type",
    "order",
    "scale",
    "offset",
    "bit",
    "length",
    "description",
];
const REQUIRED: usize = 4;
const HEADER_EXPECTED: &str = "a header such as `name,area,address,type,order,scale,offset` \
     (also `bit`, `length`, `description`)";

/// One CSV record: the line it starts on and its unquoted fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub line: u32,
    pub fields: Vec<String>,
}

/// A record that cannot be split: its line and the 0-based field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: u32,
    pub field_index: usize,
    pub problem: String,
}

/// Splits CSV text into records; all-empty records are dropped.
pub fn records(text: &str) -> Result<Vec<Record>, SyntaxError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line: u32 = 1;
    let mut record = Record {
        line,
        fields: Vec::new(),
    };
    let mut field = String::new();
    let mut quoted_field = false;
    while let Some(c) = chars.next() {
        match c {
            '"' if field.trim().is_empty() && !quoted_field => {
                field.clear();
                quoted_field = true;
                read_quoted(&mut chars, &mut field, &mut line, record.fields.len())?;
                while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                    chars.next();
                }
                if !matches!(chars.peek(), None | Some(',') | Some('\n') | Some('\r')) {
                    return Err(SyntaxError {
                        line,
                        field_index: record.fields.len(),
                        problem: "text after the closing quote".to_string(),
                    });
                }
            }
            ',' => {
                record.fields.push(finish_field(&mut field, quoted_field));
                quoted_field = false;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                record.fields.push(finish_field(&mut field, quoted_field));
                quoted_field = false;
                push_record(&mut out, std::mem::take(&mut record.fields), record.line);
                line = line.saturating_add(1);
                record.line = line;
            }
            c => field.push(c),
        }
    }
    if !field.is_empty() || quoted_field || !record.fields.is_empty() {
        record.fields.push(finish_field(&mut field, quoted_field));
        push_record(&mut out, record.fields, record.line);
    }
    Ok(out)
}

fn read_quoted(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    field: &mut String,
    line: &mut u32,
    field_index: usize,
) -> Result<(), SyntaxError> {
    let start_line = *line;
    loop {
        match chars.next() {
            None => {
                return Err(SyntaxError {
                    line: start_line,
                    field_index,
                    problem: "a quoted field is never closed".to_string(),
                })
            }
            Some('"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            Some('"') => return Ok(()),
            Some(c) => {
                if c == '\n' {
                    *line = line.saturating_add(1);
                }
                field.push(c);
            }
        }
    }
}

fn finish_field(field: &mut String, quoted: bool) -> String {
    let text = std::mem::take(field);
    if quoted {
        text
    } else {
        text.trim().to_string()
    }
}

fn push_record(out: &mut Vec<Record>, fields: Vec<String>, line: u32) {
    if fields.iter().any(|f| !f.is_empty()) {
        out.push(Record { line, fields });
    }
}

/// Reads the tags of a CSV file. `file` is used only in messages.
pub fn parse_tags_csv(text: &str, file: &Path) -> Result<Vec<(ModbusTag, TagOrigin)>, ConfigError> {
    let at = |line: u32, column: Option<&str>| {
        Location::new(
            file,
            Place::Csv {
                line,
                column: column.map(str::to_string),
            },
        )
    };
    let records = records(text).map_err(|e| {
        ConfigError::new(
            at(e.line, Some(&format!("#{}", e.field_index + 1))),
            e.problem,
        )
        .expected("RFC 4180 quoting: \"a, b\" and \"say \"\"hi\"\"\"")
    })?;
    let Some((header, rows)) = records.split_first() else {
        return Err(
            ConfigError::new(at(1, None), "the file has no header line").expected(HEADER_EXPECTED)
        );
    };
    let columns = read_header(header, &at)?;
    let mut tags = Vec::with_capacity(rows.len());
    for row in rows {
        tags.push(read_row(row, &columns, file)?);
    }
    Ok(tags)
}

/// For each column of the file, its index in `COLUMNS`.
fn read_header(
    header: &Record,
    at: &dyn Fn(u32, Option<&str>) -> Location,
) -> Result<Vec<Option<usize>>, ConfigError> {
    let mut columns: Vec<Option<usize>> = Vec::with_capacity(header.fields.len());
    for (i, raw) in header.fields.iter().enumerate() {
        let name = raw.trim().to_lowercase();
        if name.is_empty()
            && header
                .fields
                .get(i..)
                .is_some_and(|rest| rest.iter().all(|f| f.trim().is_empty()))
        {
            columns.push(None);
            continue;
        }
        let Some(index) = COLUMNS.iter().position(|c| *c == name) else {
            let problem = match did_you_mean(&name, COLUMNS) {
                Some(near) => format!("unknown column `{raw}` (did you mean `{near}`?)"),
                None if raw.contains(';') => {
                    format!("unknown column `{raw}` (is the file `;`-separated?)")
                }
                None => format!("unknown column `{raw}`"),
            };
            return Err(
                ConfigError::new(at(header.line, Some(raw)), problem).expected(one_of(COLUMNS))
            );
        };
        if columns.contains(&Some(index)) {
            let problem = format!("column `{name}` appears twice in the header");
            return Err(
                ConfigError::new(at(header.line, Some(&name)), problem).expected(HEADER_EXPECTED)
            );
        }
        columns.push(Some(index));
    }
    for required in COLUMNS.iter().take(REQUIRED) {
        let index = COLUMNS.iter().position(|c| c == required);
        if !columns.contains(&index) {
            let problem = format!("the header has no `{required}` column");
            return Err(ConfigError::new(at(header.line, Some(required)), problem)
                .expected(HEADER_EXPECTED));
        }
    }
    Ok(columns)
}

/// The cells of one row by column name, parsed into a tag.
fn read_row(
    row: &Record,
    columns: &[Option<usize>],
    file: &Path,
) -> Result<(ModbusTag, TagOrigin), ConfigError> {
    let line = row.line;
    let at = |column: &str| {
        Location::new(
            file,
            Place::Csv {
                line,
                column: Some(column.to_string()),
            },
        )
    };
    if row.fields.len() < columns.len() {
        let missing = columns
            .get(row.fields.len())
            .copied()
            .flatten()
            .and_then(|i| COLUMNS.get(i));
        let column = missing.map_or("?", |c| c);
        let problem = format!(
            "the row has {} fields, the header {}",
            row.fields.len(),
            columns.len()
        );
        return Err(ConfigError::new(at(column), problem).expected("one field per header column"));
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
        return Err(ConfigError::new(at(&column), problem).expected("one field per header column"));
    }
    let mut cells: [&str; COLUMNS.len()] = [""; COLUMNS.len()];
    for (field, column) in row.fields.iter().zip(columns) {
        if let Some(slot) = column.and_then(|i| cells.get_mut(i)) {
            *slot = field.as_str();
        }
    }
    let cell = |name: &str| {
        COLUMNS
            .iter()
            .position(|c| *c == name)
            .and_then(|i| cells.get(i))
            .copied()
            .unwrap_or("")
    };
    let word = |name: &str, choices| parse_word(cell(name), name, choices, &at);
    let raw = RawTag {
        name: cell("name").to_string(),
        area: required_cell(word("area", AREAS)?, "area", &at)?,
        address: required_cell(parse_int(cell("address"), &at("address"))?, "address", &at)?,
        data_type: required_cell(parse_word(cell("type"), "type", TYPES, &at)?, "type", &at)?,
        order: parse_word(cell("order"), "order", ORDERS, &at)?,
        bit: parse_int(cell("bit"), &at("bit"))?,
        length: parse_int(cell("length"), &at("length"))?,
        scale: parse_float(cell("scale"), &at("scale"))?,
        offset: parse_float(cell("offset"), &at("offset"))?,
    };
    let tag = finish_tag(raw, &|field: Field| at(field.key()))?;
    Ok((
        tag,
        TagOrigin {
            name: at("name"),
            address: at("address"),
        },
    ))
}

fn required_cell<T>(
    value: Option<T>,
    column: &str,
    at: &dyn Fn(&str) -> Location,
) -> Result<T, ConfigError> {
    value.ok_or_else(|| {
        let expected = match column {
            "area" => one_of(&AREAS.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
            "type" => one_of(&TYPES.iter().map(|(n, _)| *n).collect::<Vec<_>>()),
            _ => "a zero-based address 0..=65535".to_string(),
        };
        ConfigError::new(at(column), format!("`{column}` is empty")).expected(expected)
    })
}

fn parse_word<T: Copy>(
    text: &str,
    column: &str,
    choices: &[(&str, T)],
    at: &dyn Fn(&str) -> Location,
) -> Result<Option<T>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
    lookup_word(text, choices)
        .map(Some)
        .map_err(|problem| ConfigError::new(at(column), problem).expected(one_of(&names)))
}

/// A whole number, decimal or `0x` hexadecimal; empty is `None`.
fn parse_int(text: &str, at: &Location) -> Result<Option<i64>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    let parsed = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => i64::from_str_radix(hex, 16),
        None => text.parse::<i64>(),
    };
    parsed.map(Some).map_err(|_| {
        ConfigError::new(at.clone(), format!("`{text}` is not a whole number"))
            .expected("a decimal or 0x-hexadecimal integer")
    })
}

fn parse_float(text: &str, at: &Location) -> Result<Option<f64>, ConfigError> {
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => {
            let hint = if text.contains(',') {
                " (the decimal point is `.`)"
            } else {
                ""
            };
            Err(
                ConfigError::new(at.clone(), format!("`{text}` is not a number{hint}"))
                    .expected("a finite number such as 0.1 or -40"),
            )
        }
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
        assert_eq!(got[1].fields, ["x, y", "say \"hi\""]);
        assert_eq!(got[2].line, 4);
        assert_eq!(got[2].fields, ["multi\nline", "z"]);
        assert_eq!(fields("a , b\nc,d"), [["a", "b"], ["c", "d"]]);
    }

    #[test]
    fn syntax_errors_name_line_and_field() {
        let e = records("a,b\nc,\"open\n").err();
        assert_eq!(e.map(|e| (e.line, e.field_index)), Some((2, 1)));
        let e = records("a,\"b\"x\n").err();
        assert_eq!(e.map(|e| (e.line, e.field_index)), Some((1, 1)));
    }
}
