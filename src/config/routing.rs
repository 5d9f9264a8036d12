//! Which devices each sink takes: a sink's `devices` key is a list of glob
//! patterns on device names (`*` any run of characters, `?` one character,
//! nothing else is special); without the key a sink takes every device.
//!
//! Two rules keep a routing table honest, each an error at the place it is
//! written: every device goes to at least one sink (a device no sink takes
//! would be polled and written to the WAL for nobody), and every pattern
//! matches at least one device (a pattern that matches nothing is almost
//! always a typo, and the device it meant would then be missing from that
//! sink's table).

use super::error::ConfigError;
use super::tree::Section;
use super::types::{DeviceConfig, SinkConfig};

const DEVICES_EXPECTED: &str =
    "an array of device name patterns, e.g. [\"line1-*\", \"press-0?\"] (`*` any characters, \
     `?` one character)";

/// A pattern's most characters: a device name is a line of a tag table, and
/// the matcher below is quadratic in the worst case.
pub const PATTERN_CHARS_MAX: usize = 256;

/// The sink's `devices` patterns, checked for shape only (whether they match
/// is `check_routes`'s job, once the devices are known). `None`: every device.
pub fn sink_devices(section: &Section<'_>) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(list) = section.strings("devices", DEVICES_EXPECTED)? else {
        return Ok(None);
    };
    if list.value.is_empty() {
        return Err(list
            .error("the list is empty: this sink would take no device")
            .expected(DEVICES_EXPECTED));
    }
    for pattern in &list.value {
        let text = pattern.value;
        if text.is_empty() || text.chars().count() > PATTERN_CHARS_MAX {
            let problem =
                format!("`{text}` is empty or longer than {PATTERN_CHARS_MAX} characters");
            return Err(pattern.error(problem).expected(DEVICES_EXPECTED));
        }
    }
    Ok(Some(
        list.value.iter().map(|p| p.value.to_string()).collect(),
    ))
}

/// Every device is taken by some sink, and every pattern takes some device.
/// `sink_sections` are the `[[sink]]` tables in the order of `sinks`,
/// `device_sections` the `[[device]]` tables in the order of `devices`.
pub fn check_routes(
    sink_sections: &[Section<'_>],
    sinks: &[SinkConfig],
    device_sections: &[Section<'_>],
    devices: &[DeviceConfig],
) -> Result<(), ConfigError> {
    for (sink, section) in sinks.iter().zip(sink_sections) {
        let Some(patterns) = &sink.devices else {
            continue;
        };
        for (i, pattern) in patterns.iter().enumerate() {
            if devices.iter().any(|d| glob_match(pattern, &d.name)) {
                continue;
            }
            let at = section
                .strings("devices", DEVICES_EXPECTED)?
                .and_then(|list| list.value.into_iter().nth(i).map(|p| p.at));
            let at = at.unwrap_or_else(|| section.location("devices"));
            let names: Vec<&str> = devices.iter().map(|d| d.name.as_str()).take(5).collect();
            let more = if devices.len() > names.len() {
                ", ..."
            } else {
                ""
            };
            let problem = format!(
                "sink `{}`: the pattern `{pattern}` matches no device (devices: {}{more})",
                sink.name,
                names.join(", ")
            );
            return Err(ConfigError::new(at, problem)
                .expected("a pattern that matches at least one device name (a typo?)"));
        }
    }
    for (device, section) in devices.iter().zip(device_sections) {
        if sinks.iter().any(|s| s.takes(&device.name)) {
            continue;
        }
        let sink_names: Vec<&str> = sinks.iter().map(|s| s.name.as_str()).collect();
        let problem = format!(
            "device `{}` goes to no sink: no `devices` pattern of sink(s) {} matches it",
            device.name,
            sink_names.join(", ")
        );
        return Err(
            ConfigError::new(section.location("name"), problem).expected(
                "every device taken by at least one sink: add a pattern for it to a sink's \
             `devices`, or leave `devices` out of a sink to give it every device",
            ),
        );
    }
    Ok(())
}

/// Whether `name` matches the glob `pattern` (`*`: any run of characters,
/// `?`: one character). Iterative with one backtrack point, so it is
/// O(pattern × name) at worst and never recurses.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0usize, 0usize);
    // The last `*` seen and the name position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == n.get(ni) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                // Let the last `*` take one more character and try again.
                Some((sp, sn)) => {
                    star = Some((sp, sn + 1));
                    pi = sp + 1;
                    ni = sn + 1;
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_a_shell_does() {
        let cases = [
            ("*", "", true),
            ("*", "press-01", true),
            ("press-*", "press-01", true),
            ("press-*", "press", false),
            ("press-0?", "press-01", true),
            ("press-0?", "press-010", false),
            ("line1-*", "line2-a", false),
            ("*-01", "press-01", true),
            ("*a*b*", "xxaxxbxx", true),
            ("*a*b*", "xxbxxaxx", false),
            ("p*s*-*1", "press-01", true),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("", "", true),
            ("", "a", false),
            ("ü*", "über", true),
        ];
        for (pattern, name, want) in cases {
            assert_eq!(glob_match(pattern, name), want, "{pattern} vs {name}");
        }
    }
}
