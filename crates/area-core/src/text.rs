//! Text helpers shared by reactions that keep bounded excerpts of what a service said.

/// The longest prefix of `text` that fits in `max_bytes` without splitting a
/// character, and whether anything was cut.
pub fn truncate_on_char_boundary(text: &str, max_bytes: usize) -> (&str, bool) {
    if text.len() <= max_bytes {
        return (text, false);
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// The longest prefix of `text` with at most `max_chars` characters, and whether
/// anything was cut.
pub fn truncate_chars(text: &str, max_chars: usize) -> (&str, bool) {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => (&text[..end], true),
        None => (text, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_cuts_inside_a_character() {
        let text = "aé東✅";
        assert_eq!(truncate_on_char_boundary(text, 100), (text, false));
        assert_eq!(truncate_on_char_boundary(text, 2), ("a", true));
        assert_eq!(truncate_on_char_boundary(text, 3), ("aé", true));
        assert_eq!(truncate_on_char_boundary(text, 5), ("aé", true));
        assert_eq!(truncate_on_char_boundary(text, 6), ("aé東", true));
        assert_eq!(truncate_chars(text, 3), ("aé東", true));
        assert_eq!(truncate_chars(text, 4), (text, false));
    }
}
