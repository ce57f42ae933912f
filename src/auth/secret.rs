//! Whether a configured secret is fit to protect a server on a network:
//! long, not an example value, not a repeated character.

/// Fewest characters a token secret or admin key may have.
pub const MIN_LEN: usize = 32;

/// Words that mark a value copied from documentation.
const EXAMPLE_WORDS: &[&str] = &[
    "change", "example", "secret", "password", "replace", "tessera", "your", "default", "xxxx",
    "1234",
];

/// What is wrong with `value` as a secret, or None if it will do.
pub fn weakness(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("is empty".into());
    }
    let len = value.chars().count();
    if len < MIN_LEN {
        return Some(format!(
            "is {len} characters long; use at least {MIN_LEN} random characters"
        ));
    }
    let lower = value.to_ascii_lowercase();
    if let Some(word) = EXAMPLE_WORDS.iter().find(|w| lower.contains(*w)) {
        return Some(format!(
            "contains `{word}`, like an example value; use random characters"
        ));
    }
    let mut distinct: Vec<char> = value.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 10 {
        return Some(format!(
            "uses only {} different characters; use random characters",
            distinct.len()
        ));
    }
    None
}

/// How to make a good one, for error messages.
pub const HOW_TO_MAKE: &str = "generate one with `head -c 32 /dev/urandom | base64`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_values_pass_and_weak_ones_say_why() {
        assert_eq!(weakness("k3J9vQ2mX8pL5nR1tZ7wB4yH6dF0gC2s"), None);
        assert!(weakness("").unwrap().contains("empty"));
        assert!(weakness("short").unwrap().contains("5 characters"));
        let example = weakness("change-me-change-me-change-me-change-me").unwrap();
        assert!(example.contains("`change`"), "{example}");
        let repeated = weakness(&"ab".repeat(20)).unwrap();
        assert!(repeated.contains("2 different"), "{repeated}");
        assert!(weakness("this-is-my-tessera-token-secret-value").is_some());
    }
}
