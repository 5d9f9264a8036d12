//! EtherNet/IP tag syntax: Logix tag addresses (`Program:Main.Temps[3]`,
//! `Flags.5`) and route paths (`1,0`). Pure text to the data model of
//! types.rs; every error is a sentence that names what was wrong.
//!
//! ```text
//! address := segment ("." segment)* ["." bit]
//! segment := name ["[" index ("," index){0,2} "]"]
//! name    := "Program:" ident (first segment only) | ident
//! ident   := (letter | "_") (letter | digit | "_")*     at most 40 characters
//! bit     := 0..=63                                     bit of an integer
//! route   := "" | hop ("," hop)*
//! hop     := port "," (slot 0..=255 | IPv4 address)
//! ```

use super::types::{PathSegment, RouteHop, RouteLink, SymbolicPath};

/// Longest Logix identifier (Studio 5000 allows 40 characters).
pub const IDENT_CHARS_MAX: usize = 40;
/// Dimensions a Logix array has at most.
pub const DIMENSIONS_MAX: usize = 3;
/// Segments an address may have: a deeply nested member is still far
/// below, and a request path stays well inside one connected message.
pub const SEGMENTS_MAX: usize = 16;
/// Hops of a route path (a chassis, a bridge, another chassis, ...).
pub const ROUTE_HOPS_MAX: usize = 8;

const PROGRAM_PREFIX: &str = "Program:";

/// Why a tag address or route path is not valid, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyntaxError {}

fn fail<T>(message: String) -> Result<T, SyntaxError> {
    Err(SyntaxError(message))
}

/// Parses a Logix tag address.
pub fn parse_enip_address(text: &str) -> Result<SymbolicPath, SyntaxError> {
    if text.is_empty() {
        return fail("the address is empty".into());
    }
    let parts: Vec<&str> = split_members(text)?;
    let mut path = SymbolicPath::default();
    let last = parts.len() - 1;
    for (position, part) in parts.iter().enumerate() {
        if position == last && position > 0 && part.bytes().all(|b| b.is_ascii_digit()) {
            let bit = part
                .parse::<u8>()
                .ok()
                .filter(|b| *b < 64)
                .map_or_else(|| fail(format!("bit `{part}` is past 63")), Ok)?;
            path.bit = Some(bit);
            break;
        }
        parse_segment(text, part, position == 0, &mut path.segments)?;
    }
    if path.segments.len() > SEGMENTS_MAX {
        return fail(format!(
            "`{text}` has {} segments, more than {SEGMENTS_MAX}",
            path.segments.len()
        ));
    }
    Ok(path)
}

/// Splits at the dots that separate members (not those inside brackets;
/// there are none in valid input, but say so clearly).
fn split_members(text: &str) -> Result<Vec<&str>, SyntaxError> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (at, c) in text.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                parts.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
        if parts.len() > SEGMENTS_MAX {
            return fail(format!("`{text}` has more than {SEGMENTS_MAX} members"));
        }
    }
    parts.push(&text[start..]);
    if let Some(empty) = parts.iter().position(|p| p.is_empty()) {
        return fail(format!(
            "`{text}` has an empty member name (member {} of {})",
            empty + 1,
            parts.len()
        ));
    }
    Ok(parts)
}

fn parse_segment(
    text: &str,
    part: &str,
    first: bool,
    segments: &mut Vec<PathSegment>,
) -> Result<(), SyntaxError> {
    let (name, indices) = match part.find('[') {
        Some(open) => (&part[..open], Some(&part[open..])),
        None => (part, None),
    };
    let ident = match name.strip_prefix(PROGRAM_PREFIX) {
        Some(program) if first => program,
        Some(_) => {
            return fail(format!(
                "`{text}`: `{PROGRAM_PREFIX}` may only start an address"
            ))
        }
        None => name,
    };
    check_ident(text, ident)?;
    segments.push(PathSegment::Name(name.to_string()));
    if let Some(indices) = indices {
        segments.push(PathSegment::Index(parse_indices(text, indices)?));
    }
    Ok(())
}

fn check_ident(text: &str, ident: &str) -> Result<(), SyntaxError> {
    let mut chars = ident.chars();
    let Some(first) = chars.next() else {
        return fail(format!("`{text}` has an empty name"));
    };
    if !(first.is_ascii_alphabetic() || first == '_') {
        return fail(format!(
            "`{text}`: the name `{ident}` must start with a letter or `_`"
        ));
    }
    if let Some(bad) = ident
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        return fail(format!(
            "`{text}`: the name `{ident}` holds `{bad}` (letters, digits and `_` only)"
        ));
    }
    if ident.len() > IDENT_CHARS_MAX {
        return fail(format!(
            "`{text}`: the name `{ident}` is {} characters long, more than {IDENT_CHARS_MAX}",
            ident.len()
        ));
    }
    Ok(())
}

/// `[1]`, `[1,2]`, `[1,2,3]`: exactly one bracket pair, at the end.
fn parse_indices(text: &str, bracketed: &str) -> Result<Vec<u32>, SyntaxError> {
    let Some(inner) = bracketed
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    else {
        return fail(format!(
            "`{text}`: `{bracketed}` is not one `[index]` at the end of a name"
        ));
    };
    if inner.contains(['[', ']']) {
        return fail(format!(
            "`{text}`: write several dimensions as `[i,j]`, not `[i][j]`"
        ));
    }
    let indices: Vec<&str> = inner.split(',').collect();
    if indices.len() > DIMENSIONS_MAX {
        return fail(format!(
            "`{text}` indexes {} dimensions, more than {DIMENSIONS_MAX}",
            indices.len()
        ));
    }
    indices
        .iter()
        .map(|index| {
            let digits = !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit());
            match index.parse::<u32>() {
                Ok(value) if digits => Ok(value),
                _ => fail(format!(
                    "`{text}`: the index `{index}` is not a number 0..=4294967295"
                )),
            }
        })
        .collect()
}

/// Parses a route path: `port,link` pairs separated by commas; empty for
/// no route.
pub fn parse_enip_route(text: &str) -> Result<Vec<RouteHop>, SyntaxError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let items: Vec<&str> = text.split(',').map(str::trim).collect();
    if items.len() % 2 != 0 {
        return fail(format!(
            "path `{text}` has {} item(s), an odd count: a route is pairs of port and \
             slot (or address)",
            items.len()
        ));
    }
    if items.len() / 2 > ROUTE_HOPS_MAX {
        return fail(format!(
            "path `{text}` has {} hops, more than {ROUTE_HOPS_MAX}",
            items.len() / 2
        ));
    }
    items
        .chunks_exact(2)
        .map(|pair| {
            let [port, link] = [pair[0], pair[1]];
            let port = match port.parse::<u16>() {
                Ok(p) if p >= 1 => p,
                _ => {
                    return fail(format!(
                        "path `{text}`: port `{port}` is not a number 1..=65535"
                    ))
                }
            };
            let link = if let Ok(slot) = link.parse::<u8>() {
                RouteLink::Slot(slot)
            } else if link.parse::<std::net::Ipv4Addr>().is_ok() {
                RouteLink::Address(link.to_string())
            } else {
                return fail(format!(
                    "path `{text}`: `{link}` is neither a slot 0..=255 nor an IPv4 address"
                ));
            };
            Ok(RouteHop { port, link })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(n: &str) -> PathSegment {
        PathSegment::Name(n.into())
    }

    #[test]
    fn addresses_parse_into_segments() {
        let p = parse_enip_address("Program:Main.Line[3].Temps[1,2,0]").unwrap();
        assert_eq!(
            p.segments,
            vec![
                name("Program:Main"),
                name("Line"),
                PathSegment::Index(vec![3]),
                name("Temps"),
                PathSegment::Index(vec![1, 2, 0]),
            ]
        );
        assert_eq!(p.bit, None);
        assert_eq!(p.to_string(), "Program:Main.Line[3].Temps[1,2,0]");
        let p = parse_enip_address("Flags.5").unwrap();
        assert_eq!((p.segments, p.bit), (vec![name("Flags")], Some(5)));
        let p = parse_enip_address("_x.y_2").unwrap();
        assert_eq!(p.segments, vec![name("_x"), name("y_2")]);
        assert_eq!(
            parse_enip_address("a[7]").unwrap().last_index(),
            Some(&[7][..])
        );
    }

    #[test]
    fn bad_addresses_say_why() {
        for (text, words) in [
            ("", "empty"),
            ("a..b", "empty member"),
            ("a.Program:b", "may only start"),
            ("1abc", "must start with a letter"),
            ("a-b", "holds `-`"),
            ("a[1][2]", "not `[i][j]`"),
            ("a[1,2,3,4]", "4 dimensions"),
            ("a[x]", "index `x`"),
            ("a[]", "index ``"),
            ("a[-1]", "index `-1`"),
            ("a.64", "past 63"),
            ("a[1", "not one `[index]`"),
            ("5", "must start with a letter"),
        ] {
            let error = parse_enip_address(text).unwrap_err().to_string();
            assert!(error.contains(words), "{text}: {error}");
        }
        let long = "a".repeat(41);
        assert!(parse_enip_address(&long).unwrap_err().0.contains("41"));
        let deep = vec!["m"; 20].join(".");
        assert!(parse_enip_address(&deep).is_err());
    }

    #[test]
    fn routes_parse_into_hops() {
        assert_eq!(parse_enip_route("").unwrap(), vec![]);
        assert_eq!(
            parse_enip_route("1,0").unwrap(),
            vec![RouteHop {
                port: 1,
                link: RouteLink::Slot(0)
            }]
        );
        let hops = parse_enip_route("1, 2, 2,10.0.0.9, 1,0").unwrap();
        assert_eq!(hops.len(), 3);
        assert_eq!(hops[1].link, RouteLink::Address("10.0.0.9".into()));
        for (text, words) in [
            ("1", "pairs"),
            ("0,1", "port `0`"),
            ("1,300", "neither a slot"),
            ("x,1", "port `x`"),
        ] {
            let error = parse_enip_route(text).unwrap_err().to_string();
            assert!(error.contains(words), "{text}: {error}");
        }
    }
}
