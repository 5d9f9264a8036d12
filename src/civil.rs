//! Calendar dates in UTC (proleptic Gregorian, no leap seconds), both ways:
//! for instants shown to people (`wal inspect`, certificate dates in TLS
//! errors) and for the dates a certificate carries. Howard Hinnant's
//! `days_from_civil` / `civil_from_days`; exact over the whole `i64` range
//! of days that a year of four digits can reach.

#![forbid(unsafe_code)]

/// Days from 1970-01-01 to `year-month-day` (month 1..=12, day 1..=31).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let month = i64::from(month);
    let mp = if month > 2 { month - 3 } else { month + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of the day `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// `2026-11-26T12:27:05.000000123Z`: an instant in nanoseconds since the
/// Unix epoch.
pub fn format_ns(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let nanos = ns.rem_euclid(1_000_000_000);
    let (date, tod) = split(secs);
    format!("{date}T{tod}.{nanos:09}Z")
}

/// `2026-11-26 12:27:05 UTC`: an instant in seconds since the Unix epoch.
pub fn format_secs(secs: i64) -> String {
    let (date, tod) = split(secs);
    format!("{date} {tod} UTC")
}

fn split(secs: i64) -> (String, String) {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let tod = secs.rem_euclid(86_400);
    let (h, m, s) = (tod / 3600, tod % 3600 / 60, tod % 60);
    (
        format!("{year:04}-{month:02}-{day:02}"),
        format!("{h:02}:{m:02}:{s:02}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days_both_ways() {
        for (days, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (11_016, (2000, 2, 29)),
            (19_782, (2024, 2, 29)),
            (29_584, (2050, 12, 31)),
            (2_932_896, (9999, 12, 31)),
            (-719_162, (1, 1, 1)),
        ] {
            assert_eq!(civil_from_days(days), date, "{days}");
            assert_eq!(days_from_civil(date.0, date.1, date.2), days, "{date:?}");
        }
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn formats() {
        assert_eq!(format_secs(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_secs(1_764_159_999), "2025-11-26 12:26:39 UTC");
        assert_eq!(format_ns(-1), "1969-12-31T23:59:59.999999999Z");
    }
}
