//! Turns a condition's source text into tokens with byte spans.

use std::{ops::Range, time::Duration};

use crate::condition_error::ConditionError;

/// One token and where it stands in the condition, as a byte range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: TokenKind,
    pub(crate) span: Range<usize>,
}

/// The kinds of token the condition language has.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum TokenKind {
    Number(f64),
    /// A number with a time unit (`500ms`, `30s`, `5m`, `1h`, `1d`): a window's length on reading time.
    Duration(Duration),
    /// A metric or function name, bare (`pH`) or written in backticks (`` `line-1.temp` ``), without the backticks.
    Metric(String),
    LParen,
    RParen,
    Comma,
    Plus,
    Minus,
    Star,
    Slash,
    Lt,
    Le,
    Gt,
    Ge,
    EqEq,
    Ne,
    And,
    Or,
    Not,
    Eof,
}

impl TokenKind {
    /// How the token is written, for error messages.
    pub(crate) fn describe(&self) -> String {
        let text = match self {
            TokenKind::Number(n) => return format!("number `{n}`"),
            TokenKind::Duration(d) => return format!("duration `{d:?}`"),
            TokenKind::Metric(name) => return format!("metric `{name}`"),
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::Comma => ",",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Lt => "<",
            TokenKind::Le => "<=",
            TokenKind::Gt => ">",
            TokenKind::Ge => ">=",
            TokenKind::EqEq => "==",
            TokenKind::Ne => "!=",
            TokenKind::And => "and",
            TokenKind::Or => "or",
            TokenKind::Not => "not",
            TokenKind::Eof => return "end of condition".to_owned(),
        };
        format!("`{text}`")
    }
}

/// Splits `src` into tokens, ending with [`TokenKind::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ConditionError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut tokens = Vec::new();
    loop {
        let token = lexer.next_token()?;
        let done = token.kind == TokenKind::Eof;
        tokens.push(token);
        if done {
            return Ok(tokens);
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.src[self.pos..].chars().nth(1)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn bump_while(&mut self, keep: impl Fn(char) -> bool) {
        while self.peek().is_some_and(&keep) {
            self.bump();
        }
    }

    fn next_token(&mut self) -> Result<Token, ConditionError> {
        self.bump_while(char::is_whitespace);
        let start = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token { kind: TokenKind::Eof, span: start..start });
        };
        let kind = match c {
            '(' => TokenKind::LParen,
            ')' => TokenKind::RParen,
            ',' => TokenKind::Comma,
            '+' => TokenKind::Plus,
            '-' => TokenKind::Minus,
            '*' => TokenKind::Star,
            '/' => TokenKind::Slash,
            '<' => self.with_eq(TokenKind::Le, TokenKind::Lt),
            '>' => self.with_eq(TokenKind::Ge, TokenKind::Gt),
            '!' => self.with_eq(TokenKind::Ne, TokenKind::Not),
            '=' if self.peek() == Some('=') => {
                self.bump();
                TokenKind::EqEq
            }
            '=' => return Err(error(start..self.pos, "`=` is not an operator; compare with `==`")),
            '&' | '|' if self.peek() == Some(c) => {
                self.bump();
                if c == '&' { TokenKind::And } else { TokenKind::Or }
            }
            '&' | '|' => {
                return Err(error(start..self.pos, format!("`{c}` is not an operator; write `{c}{c}`")));
            }
            '`' => return self.quoted_metric(start),
            c if c.is_ascii_digit() || (c == '.' && self.peek().is_some_and(|d| d.is_ascii_digit())) => {
                return self.number(start);
            }
            c if c.is_alphabetic() || c == '_' => {
                self.bump_while(|c| c.is_alphanumeric() || c == '_');
                match &self.src[start..self.pos] {
                    "and" => TokenKind::And,
                    "or" => TokenKind::Or,
                    "not" => TokenKind::Not,
                    name => TokenKind::Metric(name.to_owned()),
                }
            }
            other => {
                return Err(error(
                    start..self.pos,
                    format!("unexpected character `{other}`; write metric names with other characters in backticks"),
                ));
            }
        };
        Ok(Token { kind, span: start..self.pos })
    }

    fn with_eq(&mut self, with: TokenKind, without: TokenKind) -> TokenKind {
        if self.peek() == Some('=') {
            self.bump();
            with
        } else {
            without
        }
    }

    fn quoted_metric(&mut self, start: usize) -> Result<Token, ConditionError> {
        self.bump_while(|c| c != '`');
        if self.peek().is_none() {
            return Err(error(start..start + 1, "unclosed backtick: a quoted metric name ends with `"));
        }
        let name = &self.src[start + 1..self.pos];
        self.bump();
        if name.is_empty() {
            return Err(error(start..self.pos, "empty metric name"));
        }
        Ok(Token { kind: TokenKind::Metric(name.to_owned()), span: start..self.pos })
    }

    fn number(&mut self, start: usize) -> Result<Token, ConditionError> {
        self.bump_while(|c| c.is_ascii_digit());
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
            self.bump_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let exponent_start = self.pos;
            self.bump();
            if matches!(self.peek(), Some('+' | '-')) {
                self.bump();
            }
            if !self.peek().is_some_and(|c| c.is_ascii_digit()) {
                return Err(error(exponent_start..self.pos, "an exponent needs digits, as in `1e-3`"));
            }
            self.bump_while(|c| c.is_ascii_digit());
        }
        let text = &self.src[start..self.pos];
        let value: f64 = text.parse().map_err(|_| error(start..self.pos, format!("`{text}` is not a number")))?;
        let unit_start = self.pos;
        self.bump_while(|c| c.is_alphanumeric() || c == '_');
        let unit = &self.src[unit_start..self.pos];
        if unit.is_empty() {
            if self.peek() == Some('.') {
                return Err(error(self.pos..self.pos + 1, "unexpected character after a number"));
            }
            return Ok(Token { kind: TokenKind::Number(value), span: start..self.pos });
        }
        let millis_per_unit = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            _ => {
                return Err(error(
                    unit_start..self.pos,
                    format!("unknown unit `{unit}` after a number: a duration is written 500ms, 30s, 5m, 1h or 1d"),
                ));
            }
        };
        let millis = value * millis_per_unit;
        if millis.fract() != 0.0 || millis > u64::MAX as f64 {
            let text = &self.src[start..self.pos];
            return Err(error(start..self.pos, format!("`{text}` is not a whole number of milliseconds")));
        }
        Ok(Token { kind: TokenKind::Duration(Duration::from_millis(millis as u64)), span: start..self.pos })
    }
}

fn error(span: Range<usize>, message: impl Into<String>) -> ConditionError {
    ConditionError { span, message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn tokens_of_every_kind() {
        use TokenKind::*;
        assert_eq!(
            kinds("pH >= 5.5 && !(`line-1.temp` != 1e-3) || x_2 <= .5 and y == 2E3 or not z"),
            vec![
                Metric("pH".into()),
                Ge,
                Number(5.5),
                And,
                Not,
                LParen,
                Metric("line-1.temp".into()),
                Ne,
                Number(1e-3),
                RParen,
                Or,
                Metric("x_2".into()),
                Le,
                Number(0.5),
                And,
                Metric("y".into()),
                EqEq,
                Number(2000.0),
                Or,
                Not,
                Metric("z".into()),
                Eof,
            ]
        );
    }

    #[test]
    fn durations_and_calls() {
        use TokenKind::*;
        assert_eq!(
            kinds("avg(x, 30s) > rate(y, 1.5s) + ewma(z, 0.1) - max(w, 500ms, 5m, 1h)"),
            vec![
                Metric("avg".into()),
                LParen,
                Metric("x".into()),
                Comma,
                Duration(std::time::Duration::from_secs(30)),
                RParen,
                Gt,
                Metric("rate".into()),
                LParen,
                Metric("y".into()),
                Comma,
                Duration(std::time::Duration::from_millis(1500)),
                RParen,
                Plus,
                Metric("ewma".into()),
                LParen,
                Metric("z".into()),
                Comma,
                Number(0.1),
                RParen,
                Minus,
                Metric("max".into()),
                LParen,
                Metric("w".into()),
                Comma,
                Duration(std::time::Duration::from_millis(500)),
                Comma,
                Duration(std::time::Duration::from_secs(300)),
                Comma,
                Duration(std::time::Duration::from_secs(3600)),
                RParen,
                Eof,
            ]
        );
    }

    #[test]
    fn spans_are_byte_ranges() {
        let tokens = tokenize("temp < -10").unwrap();
        let spans: Vec<_> = tokens.iter().map(|t| t.span.clone()).collect();
        assert_eq!(spans, vec![0..4, 5..6, 7..8, 8..10, 10..10]);
    }

    #[test]
    fn errors_point_at_the_offending_text() {
        for (src, span, message) in [
            ("a = 1", 2..3, "`=` is not an operator; compare with `==`"),
            ("a & b", 2..3, "`&` is not an operator; write `&&`"),
            ("a > 1e", 5..6, "an exponent needs digits, as in `1e-3`"),
            ("`abc > 1", 0..1, "unclosed backtick: a quoted metric name ends with `"),
            ("`` > 1", 0..2, "empty metric name"),
            ("a > 12x", 6..7, "unknown unit `x` after a number: a duration is written 500ms, 30s, 5m, 1h or 1d"),
            ("a > 1.5.2", 7..8, "unexpected character after a number"),
            ("avg(a, 0.5ms) > 1", 7..12, "`0.5ms` is not a whole number of milliseconds"),
            ("a # b", 2..3, "unexpected character `#`; write metric names with other characters in backticks"),
        ] {
            let err = tokenize(src).unwrap_err();
            assert_eq!((err.span, err.message.as_str()), (span, message), "{src}");
        }
    }
}
