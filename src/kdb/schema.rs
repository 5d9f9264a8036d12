//! The columns a sink's `.u.upd` carries, in the order the tickerplant's
//! table has them: the sink's `columns` key, checked here so that the
//! configuration, the encoder and the stand-in agree on one set of rules.
//!
//! tick.q (KxSystems/kdb-tick) refuses to start unless every table's first
//! two columns are `time` and `sym` (`'timesym`), and its `upd` pairs the
//! table's column names with the data lists by position (`f!x`): so `time`
//! and `sym` come first, and the other columns may come in any order as long
//! as the tickerplant's table has the same order. millrace always sends its
//! six columns (dropping `seq` would lose exact de-duplication, dropping
//! `quality` the bad rows); `text` and `gateway` are the optional columns.

#![forbid(unsafe_code)]

use crate::config::TimeType;

/// One column of millrace's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// timespan (ns since midnight UTC) or timestamp.
    Time,
    /// symbol: the tag name.
    Sym,
    /// symbol: the device name.
    Device,
    /// float: the value, `0n` for bad and text samples.
    Value,
    /// int: the `sample::Quality` bits.
    Quality,
    /// long: the sample's sequence number (unique: de-duplication key).
    Seq,
    /// general list of char vectors: the text of a text sample, `""` else.
    Text,
    /// symbol: the gateway's `[gateway] id`, the same in every row; with
    /// `seq` the de-duplication key across gateways.
    Gateway,
}

impl Column {
    /// Every column, in the default order (`text`, then `gateway` last).
    pub const ALL: [Column; 8] = [
        Column::Time,
        Column::Sym,
        Column::Device,
        Column::Value,
        Column::Quality,
        Column::Seq,
        Column::Text,
        Column::Gateway,
    ];

    /// Whether a schema may leave the column out.
    pub const fn is_optional(self) -> bool {
        matches!(self, Column::Text | Column::Gateway)
    }

    pub const fn name(self) -> &'static str {
        match self {
            Column::Time => "time",
            Column::Sym => "sym",
            Column::Device => "device",
            Column::Value => "value",
            Column::Quality => "quality",
            Column::Seq => "seq",
            Column::Text => "text",
            Column::Gateway => "gateway",
        }
    }

    /// The column a name stands for (exact, lower case as q spells them).
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The empty column in a q table definition, e.g. `` `float$() ``.
    fn q_empty(self, time_type: TimeType) -> &'static str {
        match (self, time_type) {
            (Column::Time, TimeType::Timespan) => "`timespan$()",
            (Column::Time, TimeType::Timestamp) => "`timestamp$()",
            (Column::Sym | Column::Device | Column::Gateway, _) => "`symbol$()",
            (Column::Value, _) => "`float$()",
            (Column::Quality, _) => "`int$()",
            (Column::Seq, _) => "`long$()",
            (Column::Text, _) => "()",
        }
    }
}

const COLUMN_COUNT_MAX: usize = Column::ALL.len();

/// The columns of one sink, in order: `time`, `sym`, then `device`,
/// `value`, `quality` and `seq` in any order, and `text` and `gateway`
/// anywhere after `sym` or not at all. Plain data: copied into every publisher.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schema {
    columns: [Column; COLUMN_COUNT_MAX],
    count: u8,
}

/// Why a list of column names is not a schema. Positions count from 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SchemaError {
    /// A name that is no column.
    Unknown { index: usize, name: String },
    /// A column listed twice.
    Duplicate { index: usize, column: Column },
    /// `time` is not first or `sym` not second (tick.q's `'timesym`).
    TimeSymFirst { index: usize, column: Column },
    /// A required column is not listed.
    Missing { column: Column },
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SchemaError::Unknown { name, .. } => write!(f, "unknown column `{name}`"),
            SchemaError::Duplicate { column, .. } => {
                write!(f, "column `{}` is listed twice", column.name())
            }
            SchemaError::TimeSymFirst { index, column } => write!(
                f,
                "`{}` at position {} where tick.q wants `{}`",
                column.name(),
                index + 1,
                if *index == 0 { "time" } else { "sym" }
            ),
            SchemaError::Missing { column } => {
                write!(f, "column `{}` is missing", column.name())
            }
        }
    }
}

impl Schema {
    /// `time, sym, device, value, quality, seq`: what every sink sends
    /// unless its `columns` key says otherwise.
    pub const DEFAULT: Schema = Schema {
        columns: Column::ALL,
        count: 6,
    };

    /// The default columns with `text` last.
    pub const WITH_TEXT: Schema = Schema {
        columns: Column::ALL,
        count: 7,
    };

    /// Checks `names` in order; the first problem is the error.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Schema, SchemaError> {
        let mut columns = Vec::with_capacity(COLUMN_COUNT_MAX);
        for (index, name) in names.into_iter().enumerate() {
            let column = Column::from_name(name).ok_or_else(|| SchemaError::Unknown {
                index,
                name: name.to_string(),
            })?;
            columns.push(column);
        }
        Schema::new(&columns)
    }

    /// Checks `columns` in order; the first problem is the error.
    pub fn new(columns: &[Column]) -> Result<Schema, SchemaError> {
        let mut schema = Schema {
            columns: Column::ALL,
            count: 0,
        };
        for (index, &column) in columns.iter().enumerate() {
            if schema.columns().contains(&column) {
                return Err(SchemaError::Duplicate { index, column });
            }
            let due = match index {
                0 => Some(Column::Time),
                1 => Some(Column::Sym),
                _ => None,
            };
            if due.is_some_and(|due| due != column) {
                return Err(SchemaError::TimeSymFirst { index, column });
            }
            // Seven distinct columns at most: the duplicate check bounds this.
            if let Some(slot) = schema.columns.get_mut(index) {
                *slot = column;
                schema.count += 1;
            }
        }
        for column in Column::ALL {
            if !column.is_optional() && !schema.columns().contains(&column) {
                return Err(SchemaError::Missing { column });
            }
        }
        Ok(schema)
    }

    pub fn columns(&self) -> &[Column] {
        self.columns
            .get(..usize::from(self.count))
            .unwrap_or(&self.columns)
    }

    pub fn len(&self) -> usize {
        self.columns().len()
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn has_text(&self) -> bool {
        self.columns().contains(&Column::Text)
    }

    pub fn has_gateway(&self) -> bool {
        self.columns().contains(&Column::Gateway)
    }

    /// Where `column` is in the message, if it is sent.
    pub fn position(&self, column: Column) -> Option<usize> {
        self.columns().iter().position(|&c| c == column)
    }

    /// The q definition of the tickerplant's table (what sym.q holds), e.g.
    /// ``plc:([]time:`timespan$();sym:`symbol$();...;text:())``.
    pub fn q_table(&self, table: &str, time_type: TimeType) -> String {
        let columns: Vec<String> = self
            .columns()
            .iter()
            .map(|c| format!("{}:{}", c.name(), c.q_empty(time_type)))
            .collect();
        format!("{table}:([]{})", columns.join(";"))
    }
}

impl Default for Schema {
    fn default() -> Self {
        Schema::DEFAULT
    }
}

/// `time, sym, device, ...`: the list as a configuration writes it.
impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, c) in self.columns().iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(c.name())?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema[{self}]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(names: &[&str]) -> Result<Schema, SchemaError> {
        Schema::from_names(names.iter().copied())
    }

    #[test]
    fn the_default_and_text_anywhere_after_sym() {
        let six = ["time", "sym", "device", "value", "quality", "seq"];
        assert_eq!(schema(&six), Ok(Schema::DEFAULT));
        assert!(!Schema::DEFAULT.has_text());
        for at in 2..=6 {
            let mut names = six.to_vec();
            names.insert(at, "text");
            let s = schema(&names).unwrap();
            assert!(s.has_text());
            assert_eq!(s.position(Column::Text), Some(at));
            assert_eq!(s.len(), 7);
        }
        let reordered = schema(&["time", "sym", "seq", "value", "device", "quality"]).unwrap();
        assert_eq!(reordered.position(Column::Seq), Some(2));
        assert_eq!(
            reordered.to_string(),
            "time, sym, seq, value, device, quality"
        );
    }

    #[test]
    fn each_rule_names_the_column_and_place() {
        let cases: [(&[&str], SchemaError); 6] = [
            (
                &["time", "sym", "device", "value", "quality", "seq", "txt"],
                SchemaError::Unknown {
                    index: 6,
                    name: "txt".into(),
                },
            ),
            (
                &["sym", "time", "device", "value", "quality", "seq"],
                SchemaError::TimeSymFirst {
                    index: 0,
                    column: Column::Sym,
                },
            ),
            (
                &["time", "device", "sym", "value", "quality", "seq"],
                SchemaError::TimeSymFirst {
                    index: 1,
                    column: Column::Device,
                },
            ),
            (
                &["time", "sym", "device", "value", "value", "seq"],
                SchemaError::Duplicate {
                    index: 4,
                    column: Column::Value,
                },
            ),
            (
                &["time", "sym", "device", "value", "quality"],
                SchemaError::Missing {
                    column: Column::Seq,
                },
            ),
            (
                &[],
                SchemaError::Missing {
                    column: Column::Time,
                },
            ),
        ];
        for (names, expected) in cases {
            assert_eq!(schema(names), Err(expected), "{names:?}");
        }
        assert_eq!(
            schema(&["time", "sym", "text", "time"])
                .unwrap_err()
                .to_string(),
            "column `time` is listed twice"
        );
    }

    #[test]
    fn q_table_is_the_tick_schema_line() {
        assert_eq!(
            Schema::WITH_TEXT.q_table("plc", TimeType::Timespan),
            "plc:([]time:`timespan$();sym:`symbol$();device:`symbol$();value:`float$();\
             quality:`int$();seq:`long$();text:())"
        );
        assert_eq!(
            Schema::DEFAULT.q_table("t", TimeType::Timestamp),
            "t:([]time:`timestamp$();sym:`symbol$();device:`symbol$();value:`float$();\
             quality:`int$();seq:`long$())"
        );
    }
}
