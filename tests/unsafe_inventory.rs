//! docs/security.md lists every `unsafe` block, impl and fn of the product
//! (src/ and loadgen/src/) with its line; this test scans the source and
//! fails on any drift, naming each row to add, remove or renumber. It also
//! holds the lint layout to the inventory: the crate roots deny (or forbid)
//! `unsafe_code`, and exactly the files with `unsafe` allow it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const ROOTS: [&str; 2] = ["src", "loadgen/src"];
const DOC: &str = "docs/security.md";
const SECTION: &str = "## Every `unsafe` block and why";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// The code of a line: comments and the contents of string and char
/// literals blanked (a block comment may span lines: `in_block` carries it).
fn code_of(line: &str, in_block: &mut bool) -> String {
    let chars: Vec<char> = line.chars().collect();
    let mut code = String::new();
    let mut i = 0;
    let mut in_string = false;
    while i < chars.len() {
        let (c, next) = (chars[i], chars.get(i + 1).copied());
        if *in_block {
            if c == '*' && next == Some('/') {
                *in_block = false;
                i += 1;
            }
        } else if in_string {
            match c {
                '\\' => i += 1,
                '"' => in_string = false,
                _ => {}
            }
            code.push(' ');
        } else if c == '/' && next == Some('/') {
            break;
        } else if c == '/' && next == Some('*') {
            *in_block = true;
            i += 1;
        } else if c == '"' {
            in_string = true;
            code.push(' ');
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // A char literal such as '"' or '{'.
            code.push_str("   ");
            i += 2;
        } else {
            code.push(c);
        }
        i += 1;
    }
    code
}

/// Whether `code` holds the keyword `unsafe` starting a block, impl, fn,
/// trait or extern block.
fn has_unsafe(code: &str) -> bool {
    let bytes = code.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut from = 0;
    while let Some(at) = code[from..].find("unsafe").map(|i| i + from) {
        from = at + "unsafe".len();
        let before_ok = at == 0 || !word(bytes[at - 1]);
        let after_ok = bytes.get(from).is_none_or(|&b| !word(b));
        if !(before_ok && after_ok) {
            continue;
        }
        let rest = code[from..].trim_start();
        let starts = ["{", "impl", "fn", "trait", "extern"];
        if rest.is_empty() || starts.iter().any(|s| rest.starts_with(s)) {
            return true;
        }
    }
    false
}

struct Scan {
    /// `path:line` of every `unsafe`, path relative to the repository.
    sites: BTreeSet<String>,
    /// Files that say `#![allow(unsafe_code)]`.
    allowing: BTreeSet<String>,
}

fn scan() -> Scan {
    let mut files = Vec::new();
    for root in ROOTS {
        rust_files(&repo().join(root), &mut files);
    }
    assert!(files.len() > 50, "found only {} source files", files.len());
    let mut sites = BTreeSet::new();
    let mut allowing = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source file");
        let name = file
            .strip_prefix(repo())
            .expect("inside the repository")
            .display()
            .to_string();
        let mut in_block = false;
        for (index, line) in text.lines().enumerate() {
            if line.trim() == "#![allow(unsafe_code)]" {
                allowing.insert(name.clone());
            }
            if has_unsafe(&code_of(line, &mut in_block)) {
                sites.insert(format!("{name}:{}", index + 1));
            }
        }
    }
    Scan { sites, allowing }
}

/// The `path:line` of every row of the inventory table.
fn inventory() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(repo().join(DOC)).expect("docs/security.md");
    let section = doc
        .split_once(SECTION)
        .unwrap_or_else(|| panic!("{DOC} has no section `{SECTION}`"))
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(site, _)| site.to_string())
        .collect()
}

#[test]
fn the_inventory_lists_every_unsafe_at_its_line() {
    let found = scan().sites;
    let listed = inventory();
    assert!(!found.is_empty(), "the scan found no unsafe at all");
    let missing: Vec<&String> = found.difference(&listed).collect();
    let stale: Vec<&String> = listed.difference(&found).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "{DOC} (`{SECTION}`) has drifted from the source.\n\
         unsafe in the source but not in the table (add a row, or renumber one):\n  {}\n\
         rows whose line holds no unsafe (remove or renumber):\n  {}\n\
         The source has {} sites, the table {} rows.",
        join(&missing),
        join(&stale),
        found.len(),
        listed.len()
    );
}

fn join(sites: &[&String]) -> String {
    if sites.is_empty() {
        return "(none)".into();
    }
    sites
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join("\n  ")
}

#[test]
fn exactly_the_inventoried_files_allow_unsafe_code() {
    let Scan { sites, allowing } = scan();
    let with_unsafe: BTreeSet<String> = sites
        .iter()
        .filter_map(|s| s.rsplit_once(':').map(|(file, _)| file.to_string()))
        .collect();
    assert_eq!(
        allowing, with_unsafe,
        "files that say #![allow(unsafe_code)] must be exactly those with unsafe"
    );
    let lib = std::fs::read_to_string(repo().join("src/lib.rs")).expect("src/lib.rs");
    assert!(
        lib.contains("\n#![deny(unsafe_code)]"),
        "src/lib.rs must deny unsafe_code"
    );
    for root in ["src/main.rs", "loadgen/src/main.rs"] {
        let text = std::fs::read_to_string(repo().join(root)).expect("crate root");
        assert!(
            text.contains("\n#![forbid(unsafe_code)]"),
            "{root}: forbid unsafe_code"
        );
    }
}

#[test]
fn the_scanner_sees_code_not_comments_or_strings() {
    let mut in_block = false;
    let code = |line: &str, in_block: &mut bool| has_unsafe(&code_of(line, in_block));
    assert!(code("    let x = unsafe { f() };", &mut in_block));
    assert!(code("unsafe impl Send for X {}", &mut in_block));
    assert!(code("pub unsafe fn f() {}", &mut in_block));
    assert!(!code("// unsafe { f() }", &mut in_block));
    assert!(!code("//! holds all of the WAL's `unsafe`.", &mut in_block));
    assert!(!code("let s = \"unsafe { }\";", &mut in_block));
    assert!(!code("#![allow(unsafe_code)]", &mut in_block));
    assert!(!code("let c = '\"'; // unsafe {", &mut in_block));
    assert!(!code("/* a block", &mut in_block));
    assert!(!code(
        "unsafe { still a comment */ let x = 1;",
        &mut in_block
    ));
    assert!(!in_block);
    assert!(code("/* c */ unsafe { f() }", &mut in_block));
}
