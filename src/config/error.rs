//! Where a configuration error is and what is wrong with it.
//!
//! Every error names a file and a place in it: a line and column plus the key
//! path for TOML, a line plus the column name for a tag CSV. The message reads
//! like a compiler's, one line, so editors and CI logs can jump to it:
//!
//! ```text
//! plant.toml:12:9: key `device[0].tag[3].type`: `float32` does not fit area `coil`; expected bool
//! tags.csv:7: column `address`: `7x` is not a whole number; expected 0..=65535
//! ```
//!
//! Messages never carry a secret: they quote what the file says, and a secret
//! is never in the file (only the name of its variable or file is).

use std::fmt;
use std::path::{Path, PathBuf};

/// A place inside a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// The file as a whole (it could not be read).
    File,
    /// A TOML position, 1-based; `key` is the dotted key path, with array
    /// elements as zero-based `[i]` (`device[0].tag[2].address`).
    Toml {
        line: u32,
        column: u32,
        key: Option<String>,
    },
    /// A CSV record (1-based line where it starts) and the column's header name.
    Csv { line: u32, column: Option<String> },
}

/// A file and a place in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub place: Place,
}

impl Location {
    pub fn new(file: &Path, place: Place) -> Self {
        Location {
            file: file.to_path_buf(),
            place,
        }
    }

    /// `FILE:LINE:COL` or `FILE:LINE`, without the key: the short form used
    /// when an error points at a second place ("first defined at ...").
    pub fn short(&self) -> String {
        match &self.place {
            Place::File => self.file.display().to_string(),
            Place::Toml { line, column, .. } => {
                format!("{}:{line}:{column}", self.file.display())
            }
            Place::Csv { line, .. } => format!("{}:{line}", self.file.display()),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.short())?;
        match &self.place {
            Place::Toml { key: Some(key), .. } => write!(f, ": key `{key}`"),
            Place::Csv {
                column: Some(column),
                ..
            } => write!(f, ": column `{column}`"),
            _ => Ok(()),
        }
    }
}

/// A configuration that cannot be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub location: Location,
    /// What is wrong, in the file's own words where possible.
    pub problem: String,
    /// What would be valid; `None` when nothing shorter than the docs says it.
    pub expected: Option<String>,
}

impl ConfigError {
    pub fn new(location: Location, problem: impl Into<String>) -> Self {
        ConfigError {
            location,
            problem: problem.into(),
            expected: None,
        }
    }

    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// The same place with another problem (a missing key that needs more
    /// words than "missing key").
    pub fn with_problem(mut self, problem: impl Into<String>) -> Self {
        self.problem = problem.into();
        self
    }

    pub fn file(&self) -> &Path {
        &self.location.file
    }

    /// The 1-based line, for TOML and CSV places.
    pub fn line(&self) -> Option<u32> {
        match self.location.place {
            Place::File => None,
            Place::Toml { line, .. } | Place::Csv { line, .. } => Some(line),
        }
    }

    /// The 1-based column, for TOML places.
    pub fn column(&self) -> Option<u32> {
        match self.location.place {
            Place::Toml { column, .. } => Some(column),
            _ => None,
        }
    }

    /// The TOML key path.
    pub fn key(&self) -> Option<&str> {
        match &self.location.place {
            Place::Toml { key, .. } => key.as_deref(),
            _ => None,
        }
    }

    /// The CSV column's header name.
    pub fn csv_column(&self) -> Option<&str> {
        match &self.location.place {
            Place::Csv { column, .. } => column.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.location, self.problem)?;
        if let Some(expected) = &self.expected {
            write!(f, "; expected {expected}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// 1-based line and column (in characters) of a byte offset. Offsets past the
/// end or inside a character clamp to the nearest boundary before them.
pub fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (saturating_u32(line), saturating_u32(column))
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_characters() {
        let text = "ab\nçd = 1\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 3), (2, 1));
        // `ç` is two bytes: the `d` after it is column 2.
        assert_eq!(line_column(text, 5), (2, 2));
        assert_eq!(line_column(text, 4), (2, 1));
        assert_eq!(line_column(text, 1000), (3, 1));
    }

    #[test]
    fn display_forms() {
        let toml = Place::Toml {
            line: 3,
            column: 7,
            key: Some("wal.quota".into()),
        };
        let e = ConfigError::new(Location::new(Path::new("p.toml"), toml), "too small")
            .expected("at least 2 segments");
        assert_eq!(
            e.to_string(),
            "p.toml:3:7: key `wal.quota`: too small; expected at least 2 segments"
        );
        let csv = Place::Csv {
            line: 4,
            column: Some("bit".into()),
        };
        let e = ConfigError::new(Location::new(Path::new("t.csv"), csv), "bad");
        assert_eq!(e.to_string(), "t.csv:4: column `bit`: bad");
    }
}
