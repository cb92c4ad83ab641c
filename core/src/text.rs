//! Text from outside (a plugin's message, a record's bytes) made safe to show in one line.
//!
//! Invariant: what [`escape`] returns holds no newline, carriage return, escape sequence or
//! bidirectional override, so it can never forge or hide a line of the host's log.

/// Longest plugin text shown in one line or message, in bytes.
pub const MAX_TEXT: usize = 4096;

/// `text` with control characters (C0, DEL, C1), line and paragraph separators and
/// bidirectional formatting characters escaped, cut to about `max` bytes.
pub fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max) + 16);
    for (i, c) in text.char_indices() {
        if out.len() >= max {
            out.push_str(&format!("… ({} more bytes)", text.len() - i));
            break;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control()
                || matches!(c, '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c) =>
            {
                out.push_str(&format!("\\u{{{:x}}}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_forged_lines_are_escaped() {
        let forged = "ok\nerror: node `out` failed\r\x1b[31mred\x1b[0m \u{202e}evil \u{9b}2J";
        let shown = escape(forged, MAX_TEXT);
        assert!(!shown.contains('\n') && !shown.contains('\r') && !shown.contains('\x1b'));
        assert!(!shown.contains('\u{202e}') && !shown.contains('\u{9b}'));
        assert_eq!(
            shown,
            "ok\\nerror: node `out` failed\\r\\u{1b}[31mred\\u{1b}[0m \\u{202e}evil \\u{9b}2J"
        );
        assert_eq!(escape("plain ünïcode", MAX_TEXT), "plain ünïcode");
    }

    #[test]
    fn long_text_is_cut_and_says_how_much() {
        let long = "x".repeat(10_000);
        let shown = escape(&long, 100);
        assert!(shown.starts_with(&"x".repeat(100)));
        assert!(shown.ends_with("(9900 more bytes)"), "{shown}");
    }
}
