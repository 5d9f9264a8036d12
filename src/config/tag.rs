//! What every tag has, whatever its protocol, and the one interface through
//! which a protocol reads a tag: `TagFields`, implemented by a
//! `[[device.tag]]` table (`TomlTag`) and by a CSV row (`csv::CsvRow`).
//! Each protocol has one function that finishes a tag from `TagFields`
//! (`modbus::finish_tag`, `s7_device::finish_tag`), so a rule is written
//! once for both places. Rules between tags live in `validate.rs`.

use super::error::{ConfigError, Location};
use super::suggest::one_of;
use super::tree::{lookup_word, Section, Spanned};
use super::validate::TagOrigin;

/// Longest tag name: it becomes a kdb+ symbol and a metrics label.
pub const TAG_NAME_BYTES_MAX: usize = 128;
pub const NAME_EXPECTED: &str = "a non-empty name of printable characters";

/// The fields of one tag, wherever it was written. Every getter gives `None`
/// for an absent key (or an empty CSV cell) and an error, at the value, for
/// one of the wrong kind.
pub trait TagFields {
    /// The text of `key`; `expected` is said if it is not text.
    fn text(&self, key: &str, expected: &str) -> Result<Option<Spanned<&str>>, ConfigError>;
    /// A whole number (a CSV cell may be `0x` hexadecimal).
    fn integer(&self, key: &str) -> Result<Option<Spanned<i64>>, ConfigError>;
    /// A finite number (an integer is accepted too).
    fn float(&self, key: &str) -> Result<Option<Spanned<f64>>, ConfigError>;
    /// Where `key`'s value is, or where it would go.
    fn at(&self, key: &str) -> Location;
    /// The error for a required `key` that is absent.
    fn missing(&self, key: &str, expected: &str) -> ConfigError;
}

/// `key`'s value, or the missing-key error.
pub fn required<T>(
    fields: &dyn TagFields,
    key: &str,
    expected: &str,
    value: Option<Spanned<T>>,
) -> Result<Spanned<T>, ConfigError> {
    value.ok_or_else(|| fields.missing(key, expected))
}

/// One of a fixed set of words, case-insensitive.
pub fn word<T: Copy>(
    fields: &dyn TagFields,
    key: &str,
    choices: &[(&str, T)],
) -> Result<Option<Spanned<T>>, ConfigError> {
    let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
    let expected = one_of(&names);
    let Some(text) = fields.text(key, &format!("a string, {expected}"))? else {
        return Ok(None);
    };
    match lookup_word(text.value, choices) {
        Ok(value) => Ok(Some(Spanned { value, at: text.at })),
        Err(problem) => Err(text.error(problem).expected(expected)),
    }
}

/// The tag's `name`, checked, and the origin the checks between tags need.
pub fn name_and_origin(fields: &dyn TagFields) -> Result<(String, TagOrigin), ConfigError> {
    let name = required(
        fields,
        "name",
        NAME_EXPECTED,
        fields.text("name", NAME_EXPECTED)?,
    )?;
    if let Err(problem) = check_name(name.value) {
        return Err(name.error(problem).expected(NAME_EXPECTED));
    }
    let origin = TagOrigin {
        name: name.at,
        address: fields.at("address"),
    };
    Ok((name.value.to_string(), origin))
}

/// A sample name the configuration takes, or why not.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("the name is empty".to_string());
    }
    if name.trim() != name {
        return Err(format!("the name `{name}` has spaces at an end"));
    }
    if name.chars().any(char::is_control) {
        return Err("the name has a control character".to_string());
    }
    if name.len() > TAG_NAME_BYTES_MAX {
        return Err(format!(
            "the name is {} bytes, more than {TAG_NAME_BYTES_MAX}",
            name.len()
        ));
    }
    Ok(())
}

/// `scale` (default 1) and `offset` (default 0): finite, a non-zero scale,
/// and only on a numeric type (`type_name` is the tag's type, for the
/// message).
pub fn scaling(
    fields: &dyn TagFields,
    numeric: bool,
    type_name: &str,
) -> Result<(f64, f64), ConfigError> {
    let scale = fields.float("scale")?;
    let offset = fields.float("offset")?;
    for (key, value, neutral) in [("scale", &scale, 1.0), ("offset", &offset, 0.0)] {
        let Some(v) = value else { continue };
        let (problem, expected) = if !v.value.is_finite() {
            (
                format!("{} is not a finite number", v.value),
                "a finite number",
            )
        } else if key == "scale" && v.value == 0.0 {
            (
                "a scale of 0 makes every value 0".to_string(),
                "a finite non-zero number",
            )
        } else if !numeric && v.value != neutral {
            let problem = format!("`{key}` is only for numeric tags, this one is `{type_name}`");
            (problem, "no scaling on a tag that is not a number")
        } else {
            continue;
        };
        return Err(v.error(problem).expected(expected));
    }
    Ok((
        scale.map_or(1.0, |s| s.value),
        offset.map_or(0.0, |o| o.value),
    ))
}

/// The free-text `description`: any text, ignored.
pub fn description(fields: &dyn TagFields) -> Result<(), ConfigError> {
    fields.text("description", "a string").map(|_| ())
}

/// A `[[device.tag]]` table (or inline table) as `TagFields`.
pub struct TomlTag<'s, 'a>(pub &'s Section<'a>);

impl TagFields for TomlTag<'_, '_> {
    fn text(&self, key: &str, expected: &str) -> Result<Option<Spanned<&str>>, ConfigError> {
        self.0.string(key, expected)
    }
    fn integer(&self, key: &str) -> Result<Option<Spanned<i64>>, ConfigError> {
        self.0.integer(key, i64::MIN..=i64::MAX)
    }
    fn float(&self, key: &str) -> Result<Option<Spanned<f64>>, ConfigError> {
        self.0.float(key)
    }
    fn at(&self, key: &str) -> Location {
        self.0.location(key)
    }
    fn missing(&self, key: &str, expected: &str) -> ConfigError {
        self.0.missing(key, expected)
    }
}
