//! Text from a guest (reasons, labels) or from a log (fields) on a terminal:
//! one line, control characters shown escaped, so that an agent or a log
//! line cannot move the cursor, clear the screen or forge output lines.

/// `text` with every control character, bidirectional override and
/// zero-width character escaped (`\n`, `\u{1b}`, `\u{202e}`).
pub fn one_line(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || mcp_columns::is_invisible_format(c) {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_and_newlines_are_shown_not_obeyed() {
        assert_eq!(super::one_line("a\u{1b}[2Jb\nc"), "a\\u{1b}[2Jb\\nc");
        assert_eq!(super::one_line("/y\u{202e}live"), "/y\\u{202e}live");
    }
}
