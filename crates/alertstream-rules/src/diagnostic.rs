//! Diagnostics: where in a rules file a problem is (1-based line and column, counted in characters) and how a
//! position inside a TOML string's value maps back to the file, through its escapes.

use std::fmt;

/// One problem in a rules file, at a 1-based line and column (counted in characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The line of the offending text.
    pub line: usize,
    /// The column of the offending text.
    pub col: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.col, self.message)
    }
}
/// Maps byte `offset` of a TOML string's decoded value to a byte offset in its `literal` (quotes included).
///
/// Returns `None` when the literal cannot be followed exactly (an escape this walker does not know), so the caller
/// falls back to the start of the literal.
pub(crate) fn file_offset(literal: &str, offset: usize) -> Option<usize> {
    let (quote, multiline) = if literal.starts_with("\"\"\"") {
        ('"', true)
    } else if literal.starts_with("'''") {
        ('\'', true)
    } else {
        (literal.chars().next()?, false)
    };
    let delimiter = if multiline { 3 } else { 1 };
    let mut pos = delimiter;
    let body_end = literal.len().checked_sub(delimiter)?;
    if multiline {
        if literal[pos..].starts_with("\r\n") {
            pos += 2;
        } else if literal[pos..].starts_with('\n') {
            pos += 1;
        }
    }
    let mut decoded = 0;
    while pos < body_end {
        if decoded >= offset {
            return Some(pos);
        }
        let rest = &literal[pos..];
        let c = rest.chars().next()?;
        if quote == '"' && c == '\\' {
            let next = rest[1..].chars().next()?;
            if multiline && next.is_whitespace() {
                // A line-ending backslash drops all whitespace and newlines up to the next other character.
                pos += 1 + rest[1..].find(|c: char| !c.is_whitespace()).unwrap_or(rest.len() - 1);
                continue;
            }
            let (raw_len, value) = match next {
                'u' => (6, char::from_u32(u32::from_str_radix(rest.get(2..6)?, 16).ok()?)?),
                'U' => (10, char::from_u32(u32::from_str_radix(rest.get(2..10)?, 16).ok()?)?),
                'x' => (4, char::from_u32(u32::from_str_radix(rest.get(2..4)?, 16).ok()?)?),
                'b' | 't' | 'n' | 'f' | 'r' | '"' | '\\' | 'e' => (2, ' '),
                _ => return None,
            };
            decoded += value.len_utf8();
            pos += raw_len;
        } else {
            decoded += c.len_utf8();
            pos += c.len_utf8();
        }
    }
    (decoded >= offset).then_some(pos)
}

/// The 1-based line and column, counted in characters, of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_from_one() {
        assert_eq!(line_col("abc", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é > x", 3), (1, 3));
        assert_eq!(line_col("ab", 9), (1, 3));
    }

    #[test]
    fn file_offsets_follow_escapes() {
        assert_eq!(file_offset("\"abc\"", 1), Some(2));
        assert_eq!(file_offset("\"\\tbc\"", 1), Some(3));
        assert_eq!(file_offset("'a\\b'", 2), Some(3));
        assert_eq!(file_offset("\"\"\"\nab\"\"\"", 1), Some(5));
        assert_eq!(file_offset("\"a\\qb\"", 2), None);
    }
}
