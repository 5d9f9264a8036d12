//! "Did you mean": the closest known word by edit distance (`strsim`'s
//! Levenshtein distance).

/// The candidate closest to `word` (Levenshtein distance, case-insensitive),
/// if it is close enough to be a likely typo: at most 1 edit for words of up
/// to 4 characters, otherwise at most a third of the word, and at most 3.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word = word.to_lowercase();
    let limit = if word.chars().count() <= 4 {
        1
    } else {
        (word.chars().count() / 3).min(3)
    };
    candidates
        .iter()
        .map(|c| (edit_distance(&word, &c.to_lowercase()), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters (not bytes: a key may hold any
/// UTF-8, and one mistyped `ü` is one edit).
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::levenshtein(a, b)
}

/// `one of a, b, c` for an "expected" clause.
pub fn one_of(candidates: &[&str]) -> String {
    let quoted: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
    format!("one of {}", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("poll_interval", "pol_interval"), 1);
        assert_eq!(edit_distance("grün", "grun"), 1);
    }

    #[test]
    fn suggestions() {
        let keys = ["name", "address", "poll_interval", "timeout"];
        assert_eq!(did_you_mean("pol_interval", &keys), Some("poll_interval"));
        assert_eq!(did_you_mean("adress", &keys), Some("address"));
        assert_eq!(did_you_mean("nmae", &keys), None);
        assert_eq!(did_you_mean("nam", &keys), Some("name"));
        assert_eq!(did_you_mean("colour", &keys), None);
    }
}
