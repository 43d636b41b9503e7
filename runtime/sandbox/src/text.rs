//! Strings that come from a guest and end up in the host's logs, job
//! records and API answers: bounded, and on one line, so a guest can neither
//! flood them nor forge a line that looks like the host's own.

/// `text` cut to at most `max` bytes at a character boundary, with a note of
/// how many bytes were cut.
pub fn bounded(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let cut = text.len();
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(&format!(" [... {} of {cut} bytes cut]", cut - end));
    text
}

/// `text` on one line: line breaks and other control characters become
/// their escapes, so a message cannot start a log line of its own.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_is_cut_at_a_character_boundary_with_a_note() {
        let cut = bounded("é".repeat(10), 5);
        assert!(cut.starts_with("éé [..."), "{cut}");
        assert!(cut.contains("16 of 20 bytes cut") || cut.contains("of 20 bytes cut"), "{cut}");
        assert_eq!(bounded("short".into(), 5), "short");
    }

    #[test]
    fn line_breaks_cannot_forge_a_log_line() {
        let forged = one_line("ok\n2026-12-02T00:00:00Z INFO tenant=acme forged\r\u{1b}[31m");
        assert!(!forged.contains('\n') && !forged.contains('\r') && !forged.contains('\u{1b}'), "{forged}");
        assert!(forged.contains("\\n2026"), "{forged}");
    }
}
