//! Human durations ("100ms", "1.5s", "2m") and sizes ("64MiB", "1GB").
//!
//! Both are a decimal number (optionally with a fraction) and a unit, with at
//! most one space between. The arithmetic is integer (u128, checked), so
//! "0.1s" is exactly 100 ms and nothing rounds silently: a value that is not a
//! whole number of nanoseconds or bytes is an error.

use std::time::Duration;

pub const DURATION_EXPECTED: &str =
    "a duration such as \"100ms\", \"1s\", \"2m\" or \"500us\" (units ns, us, ms, s, m, h)";
pub const SIZE_EXPECTED: &str =
    "a size such as \"64MiB\", \"4KiB\" or \"1GB\" (units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)";

/// Digits accepted on either side of the decimal point; keeps every product
/// far inside u128.
const DIGITS_MAX: usize = 20;

const DURATION_UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

const SIZE_UNITS: &[(&str, u128)] = &[
    ("b", 1),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
];

/// Parses a duration; the error says what is wrong (the caller adds where).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = split_number(text)?;
    let Some(&(_, unit_ns)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown duration unit `{unit}` in \"{text}\""));
    };
    let ns = scale(number, unit_ns, text, "nanoseconds")?;
    let ns = u64::try_from(ns).map_err(|_| format!("\"{text}\" is too long a duration"))?;
    Ok(Duration::from_nanos(ns))
}

/// Parses a size in bytes; units are case-insensitive ("64mib" = "64MiB").
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (number, unit) = split_number(text)?;
    let unit_lower = unit.to_ascii_lowercase();
    let Some(&(_, unit_bytes)) = SIZE_UNITS.iter().find(|(name, _)| *name == unit_lower) else {
        return Err(format!("unknown size unit `{unit}` in \"{text}\""));
    };
    let bytes = scale(number, unit_bytes, text, "bytes")?;
    u64::try_from(bytes).map_err(|_| format!("\"{text}\" is too large a size"))
}

/// A duration the way a person would write it back: the largest unit that
/// divides it exactly.
pub fn format_duration(duration: Duration) -> String {
    let ns = duration.as_nanos();
    let units = [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
    ];
    let finer = [("ms", 1_000_000u128), ("us", 1_000), ("ns", 1)];
    for (name, size) in units.iter().chain(finer.iter()) {
        if ns != 0 && ns % size == 0 {
            return format!("{}{name}", ns / size);
        }
    }
    "0s".to_string()
}

/// A size with the largest binary unit that divides it exactly.
pub fn format_size(bytes: u64) -> String {
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
    ];
    for (name, size) in units {
        if bytes != 0 && bytes % size == 0 {
            return format!("{}{name}", bytes / size);
        }
    }
    format!("{bytes}B")
}

struct Number<'a> {
    whole: &'a str,
    fraction: &'a str,
}

fn split_number(text: &str) -> Result<(Number<'_>, &str), String> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, rest) = text.split_at(end);
    let unit = rest.strip_prefix(' ').unwrap_or(rest);
    if number.is_empty() {
        return Err(format!("\"{text}\" does not start with a number"));
    }
    if unit.is_empty() {
        return Err(format!("\"{text}\" has no unit"));
    }
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let malformed = whole.is_empty() || fraction.contains('.') || number.ends_with('.');
    if malformed {
        return Err(format!(
            "\"{text}\" is not a decimal number followed by a unit"
        ));
    }
    if whole.len() > DIGITS_MAX || fraction.len() > DIGITS_MAX {
        return Err(format!("\"{text}\" has too many digits"));
    }
    Ok((Number { whole, fraction }, unit))
}

/// `number * unit` as an integer, or an error if the product is fractional.
fn scale(number: Number<'_>, unit: u128, text: &str, what: &str) -> Result<u128, String> {
    let overflow = || format!("\"{text}\" is too large");
    let whole: u128 = number.whole.parse().map_err(|_| overflow())?;
    let mut total = whole.checked_mul(unit).ok_or_else(overflow)?;
    if !number.fraction.is_empty() {
        let fraction: u128 = number.fraction.parse().map_err(|_| overflow())?;
        let exponent = u32::try_from(number.fraction.len()).map_err(|_| overflow())?;
        let denominator = 10u128.checked_pow(exponent).ok_or_else(overflow)?;
        let numerator = fraction.checked_mul(unit).ok_or_else(overflow)?;
        if numerator % denominator != 0 {
            return Err(format!("\"{text}\" is not a whole number of {what}"));
        }
        total = total
            .checked_add(numerator / denominator)
            .ok_or_else(overflow)?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("10 ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0.5ns").is_err());
        assert!(parse_duration("100").is_err());
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("1.s").is_err());
        assert!(parse_duration("1..2s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("4KiB"), Ok(4096));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("16GiB"), Ok(16 << 30));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("512 b"), Ok(512));
        assert!(parse_size("0.3B").is_err());
        assert!(parse_size("64XB").is_err());
        assert!(parse_size("99999999999999999999TiB").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for text in ["100ms", "1s", "2m", "500us", "1h", "7ns"] {
            let d = parse_duration(text).unwrap_or_default();
            assert_eq!(format_duration(d), text);
        }
        for text in ["64MiB", "4KiB", "16GiB", "1TiB", "100B"] {
            let n = parse_size(text).unwrap_or_default();
            assert_eq!(format_size(n), text);
        }
    }
}
